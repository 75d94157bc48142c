/* The server's options, one row each: the one place an option is spelled.
 * core.server, server:configure and core.options read this list; the
 * command line derives its flags and --help from it, and
 * spec/inprocess_options_spec.lua checks the README's table against it.
 *
 * Adding an option: its field in dx_config (transport/server.h) with its
 * default in dx_config_defaults, and one row here. Rows without a field
 * (host, port, static) are checked here and used by the Lua layer
 * (lua/duplex/init.lua); tls is a table read by ltls.c. */
#include "binding/binding.h"
#include "binding/options.h"
#include "protocol/origin.h"

static const char *const deflate_modes[] = { "off", "shared", "dedicated", NULL };
static const char *const backpressure_policies[] = { "close", "drop", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const gc_modes[] = { "incremental", "generational", NULL };
static const char *const rate_policies[] = { "close", "drop", NULL };
static const char *const tls_flag_keys[] = { "cert", "key", NULL };
static const char *const any_origin[] = { "*", NULL };

#define CFG(f) DX_FIELD(dx_config, f)
#define TiB 1099511627776.0

const dx_option dx_server_options[] = {
    { .name = "host", .kind = DX_OPT_STRING, .noun = "host name or address",
      .unset = "every interface (IPv6 and IPv4)", .flag = "--host", .doc = "address to listen on" },
    { .name = "tls", .kind = DX_OPT_TABLE, .words = tls_flag_keys, .noun = "file name", .unset = "off",
      .flag = "--tls", .doc = "serve `wss://` and `https://` (see TLS)" },
    { .name = "port", .kind = DX_OPT_INTEGER, .lo = 0, .hi = 65535, .def = 8080, .flag = "--port",
      .doc = "0 picks a free port; the command prints it" },
    { .name = "static", .kind = DX_OPT_STRING, .noun = "directory name", .unset = "none",
      .flag = "--static", .doc = "plain `GET` and `HEAD` requests are answered with the files under it" },
    { .name = "metrics", .kind = DX_OPT_STRING, .noun = "path", .unset = "off",
      .flag = "--metrics", .doc = "Prometheus metrics (text format) at this path on the app's port, e.g. `\"/metrics\"`" },
    { .name = "client_js", .kind = DX_OPT_BOOLEAN, CFG(client_js), .flag = "--no-client-js",
      .doc = "`GET /duplex.js` answers the browser client (see duplex.js) unless the app serves that path "
      "itself; false (the flag) turns it off" },
    { .name = "sse", .kind = DX_OPT_BOOLEAN, CFG(sse), .flag = "--no-sse",
      .doc = "a client that cannot open a WebSocket may talk to a WebSocket route over Server-Sent Events "
      "and POSTs instead (see duplex.js); false (the flag) turns that off" },
    { .name = "history", .kind = DX_OPT_TABLE, .noun = "rule", .unset = "none",
      .doc = "topics that keep their last publications, with positions to resume from: "
      "`{ size = N, ttl = S, frame = fn }` for every topic, and/or topic prefixes to such rules "
      "(see History and resume)" },
    { .name = "broker", .kind = DX_OPT_STRING, .noun = "URL", .unset = "`\"memory\"`",
      .flag = "--broker", .doc = "where publishes go beyond this process, and where history and presence "
      "live: `\"memory\"` (this process, or the workers of one `--workers` box), or "
      "`\"redis://host:port/db\"` for many boxes (see Beyond one process)" },
    { .name = "node", .kind = DX_OPT_STRING, .noun = "name", .unset = "host:pid",
      .flag = "--node", .doc = "this process's name in presence (see Presence)" },
    { .name = "log_format", .kind = DX_OPT_ENUM, .words = log_formats,
      .flag = "--log-format", .doc = "the log on stderr: readable `\"text\"` lines, or `\"json\"`, one object a line "
      "(time, level, event, conn, remote, message); the process's, whichever app sets it" },
    { .name = "gc", .kind = DX_OPT_ENUM, .words = gc_modes,
      .flag = "--gc", .doc = "Lua 5.4's garbage collector: `\"generational\"` spends less on the short-lived "
      "strings of messages; the incremental one runs at the `duplex` command's pace (both: see What a "
      "message costs); the process's, whichever app sets it; LuaJIT has only the incremental one and "
      "ignores it" },
    { .name = "origins", .kind = DX_OPT_LIST, CFG(origins), .words = any_origin, .noun = "origin",
      .item = dx_origin_valid, .unset = "the request's own host", .flag = "--origins",
      .doc = "an upgrade whose `Origin` is not its own host is refused with 403 unless listed here "
      "(`{ \"https://app.example\" }`), or `\"*\"` for any; one without `Origin` is served" },
    { .name = "max_connections", .kind = DX_OPT_INTEGER, CFG(max_connections), .lo = 0, .hi = 1e8,
      .flag = "--max-connections", .doc = "connections held at once, HTTP and WebSocket; past it a "
      "request is answered 503 with `Retry-After`; 0: no limit" },
    { .name = "max_connections_per_ip", .kind = DX_OPT_INTEGER, CFG(max_connections_per_ip), .lo = 0,
      .hi = 1e8, .flag = "--max-connections-per-ip", .doc = "of them from one peer address; past it "
      "503 with `Retry-After`; 0: no limit (behind a proxy every client has the proxy's address)" },
    { .name = "max_message", .kind = DX_OPT_BYTES, CFG(max_message), .lo = 1, .hi = TiB,
      .flag = "--max-message", .doc = "larger messages are refused with close 1009 as soon as a frame "
      "header announces them, before their payload is buffered" },
    { .name = "max_message_rate", .kind = DX_OPT_INTEGER, CFG(max_message_rate), .lo = 0, .hi = 1e8,
      .flag = "--max-message-rate", .doc = "messages a second from one peer, after a burst of "
      "`message_burst`; past it `message_rate_policy` applies; 0: no limit" },
    { .name = "message_burst", .kind = DX_OPT_INTEGER, CFG(message_burst), .lo = 1, .hi = 1e8,
      .flag = "--message-burst", .doc = "messages a peer may send at once before `max_message_rate` holds it" },
    { .name = "message_rate_policy", .kind = DX_OPT_ENUM, CFG(message_rate_drop), .words = rate_policies,
      .flag = "--message-rate-policy", .doc = "past `max_message_rate`: `\"close\"` the peer (1008) or "
      "`\"drop\"` the message (the `message` handler is not called; counted in `rate_limited`)" },
    { .name = "max_head", .kind = DX_OPT_BYTES, CFG(max_head), .lo = 256, .hi = 64 * 1024,
      .flag = "--max-head", .doc = "request head larger: 431" },
    { .name = "max_headers", .kind = DX_OPT_INTEGER, CFG(max_headers), .lo = 8, .hi = 128,
      .flag = "--max-headers", .doc = "more header fields: 431" },
    { .name = "handshake_timeout", .kind = DX_OPT_SECONDS, CFG(handshake_timeout),
      .flag = "--handshake-timeout", .doc = "TCP connect to a complete request head (TLS handshake included)" },
    { .name = "close_timeout", .kind = DX_OPT_SECONDS, CFG(close_timeout),
      .flag = "--close-timeout", .doc = "waiting for the peer's close frame, and for a failed peer to go" },
    { .name = "ping_interval", .kind = DX_OPT_SECONDS, CFG(ping_interval),
      .flag = "--ping-interval", .doc = "a peer silent this long is pinged (0: never)" },
    { .name = "pong_timeout", .kind = DX_OPT_SECONDS, CFG(pong_timeout),
      .flag = "--pong-timeout", .doc = "no pong this long after a ping: `pong_timeout`, then close 1001" },
    { .name = "shutdown_timeout", .kind = DX_OPT_SECONDS, CFG(shutdown_timeout),
      .flag = "--shutdown-timeout", .doc = "SIGTERM, SIGINT or `app:shutdown()`: how long queued messages "
      "and close replies are waited for before the last connections are dropped" },
    { .name = "handler_timeout", .kind = DX_OPT_SECONDS, CFG(handler_timeout),
      .flag = "--handler-timeout", .doc = "a handler, timer or HTTP route running longer is stopped: "
      "1011 for its connection, 500 for a route, a timer ends (see Handlers that never return)" },
    { .name = "idle_timeout", .kind = DX_OPT_SECONDS, CFG(idle_timeout),
      .flag = "--idle-timeout", .doc = "a peer silent this long is closed with 1001" },
    { .name = "max_backpressure", .kind = DX_OPT_BYTES, CFG(max_backpressure), .lo = 1024, .hi = TiB,
      .flag = "--max-backpressure", .doc = "bytes queued for one peer; a send past it is refused "
      "(and, by policy, the peer closed with 1008)" },
    { .name = "backpressure", .kind = DX_OPT_ENUM, CFG(backpressure_drop), .words = backpressure_policies,
      .flag = "--backpressure", .doc = "past `max_backpressure`: `\"close\"` the peer (1008) or `\"drop\"` the message" },
    { .name = "drain_mark", .kind = DX_OPT_BYTES, CFG(drain_mark), .lo = 0, .hi = TiB,
      .flag = "--drain-mark", .doc = "a queue that held more than this runs `drain` when it empties" },
    { .name = "deflate", .kind = DX_OPT_ENUM, CFG(deflate.mode), .words = deflate_modes,
      .flag = "--deflate", .doc = "permessage-deflate (RFC 7692): `\"off\"`, `\"shared\"`, `\"dedicated\"` (see compression modes)" },
    { .name = "deflate_threshold", .kind = DX_OPT_BYTES, CFG(deflate_threshold), .lo = 0, .hi = TiB,
      .flag = "--deflate-threshold", .doc = "messages shorter than this many bytes go uncompressed" },
    { .name = "deflate_window_bits", .kind = DX_OPT_INTEGER, CFG(deflate.window_bits), .lo = 9, .hi = 15,
      .flag = "--deflate-window-bits", .doc = "dedicated: the largest window either side may use" },
    { .name = "deflate_mem_level", .kind = DX_OPT_INTEGER, CFG(deflate.mem_level), .lo = 1, .hi = 9,
      .flag = "--deflate-mem-level", .doc = "zlib's memLevel for compressing" },
};

const size_t dx_server_option_count = DX_COUNT(dx_server_options);

const dx_option *dx_server_option(const char *name)
{
    return dx_opt_find(dx_server_options, dx_server_option_count, name);
}

/* core.options() -> the list above as Lua tables (see dx_opt_push_list),
 * defaults from dx_config_defaults. [-0, +1, m] */
static int l_options(lua_State *L)
{
    dx_config defaults;
    dx_config_defaults(&defaults);
    dx_opt_push_list(L, dx_server_options, dx_server_option_count, &defaults);
    return 1;
}

void dx_server_options_open_lib(lua_State *L)
{
    lua_pushcfunction(L, l_options);
    lua_setfield(L, -2, "options");
}
