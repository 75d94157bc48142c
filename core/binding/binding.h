/* The Lua binding: the only C that includes Lua headers. Shared between
 * its files: the server and connection userdata and the call helper. */
#ifndef DX_BINDING_H
#define DX_BINDING_H

#include "binding/compat.h"
#include "binding/metrics.h"
#include "binding/guard.h"
#include "binding/options.h"
#include "broker/broker.h"
#include "transport/server.h"

#define DX_SERVER_MT "duplex.server"
#define DX_CONN_MT "duplex.connection"

/* The events a route's handler table may name. */
enum { DX_H_UPGRADE, DX_H_OPEN, DX_H_MESSAGE, DX_H_CLOSE, DX_H_PONG_TIMEOUT, DX_H_DRAIN,
       DX_H_DUPLEX,             /* "_duplex": the Lua layer's handler of duplex.1 controls */
       DX_H_COUNT };

/* The subprotocol of duplex.js: binary messages carry a tag byte (0x00 the
 * app's, 0x01 control, 0x02 heartbeat, 0x03 a topic's publication), and a
 * page's topics are shadow topics of the core's table ("\1" topic). */
#define DX_DUPLEX1 "duplex.1"
#define DX_TAG_APP 0x00
#define DX_TAG_PUBLICATION 0x03
#define DX_SHADOW '\1'

typedef struct dx_route {
    char *path;                 /* exact match on the request path */
    int fn[DX_H_COUNT];         /* registry refs of the handlers, LUA_NOREF when absent */
    char **protocols;           /* subprotocols it speaks, NULL-terminated; NULL for none */
    dx_pmd_config deflate;      /* its permessage-deflate settings ... */
    int own_deflate;            /* ... when set; else the server's */
    int gone;                   /* unrouted by a reload: no new upgrades; open
                                 * connections keep its handlers */
    int batch_loop;             /* LuaJIT: registry ref of its batch loop (batch_ffi.c), */
    int batch_state;            /* 0 on trial, 1 compiled, -1 run_batch for good, */
    unsigned batch_calls;       /* and the batches it ran */
} dx_route;

/* An HTTP route of app:get. */
typedef struct dx_http_route {
    char *path;
    int fn;                     /* registry ref */
} dx_http_route;

/* The server userdata. */
typedef struct dx_lserver {
    dx_server *srv;             /* NULL once closed */
    lua_State *T;               /* the thread events run on, rooted in the registry */
    dx_route *routes;
    int nroutes;
    dx_http_route *http;
    int nhttp;
    dx_metrics metrics;         /* handler errors, run times; served when metrics.path */
    int guard_ms;               /* handler_timeout in ms (dx_guard_ms), 0: off */
    struct dx_node *node;       /* history, presence, the broker (lbroker.c); NULL until asked for */
    int shadows;                /* a shadow topic (a page's, duplex.1) was ever subscribed: publishes
                                 * look for one (until then they cost nothing more) */
} dx_lserver;

/* The connection userdata: a handle. conn is NULL once the close event has
 * run; the fields stay readable. */
typedef struct dx_lconn {
    uintptr_t tag;              /* DX_LCONN_TAG(this handle): see check() in lconn.c */
    dx_conn *conn;
    dx_lserver *ls;
    int self;                   /* registry ref rooting this handle while open */
    int route;                  /* index into ls->routes */
    lua_Integer id;
    char *protocol;             /* the subprotocol agreed on, NULL for none; freed by __gc */
    dx_addr remote;             /* the peer, kept past the close (ws.remote) */
    unsigned char in_close;     /* the close handler is running */
    unsigned char duplex1;      /* speaks duplex.1: its binary messages are tagged */
    unsigned char sse;          /* came over events and POSTs, not a WebSocket (ws.transport) */
} dx_lconn;

#define DX_LCONN_TAG(w) ((uintptr_t)(w) ^ (uintptr_t)0x9e3779b97f4a7c15u)

/* Calls the function on L's stack below nargs arguments through the
 * traceback handler; L must be the event thread (dx_event_thread). The
 * outermost call is timed by the guard with timeout_ms (DX_GUARD_DEFAULT:
 * the process default; 0: unguarded). On an error, logs "duplex: error in
 * <what> handler [connection N from ADDR]: message + traceback" once
 * (conn may be NULL), or, when the guard stopped it, "duplex: stopped
 * <what> ...: handler ran past handler_timeout (S s) + traceback", and
 * returns 0 with nothing left on the stack; else returns 1 with nresults
 * values pushed. [-(nargs+1), +(nresults|0), -] */
int dx_call(lua_State *L, int nargs, int nresults, const char *what, const dx_lconn *conn, int timeout_ms);

/* Whether the last dx_call that returned 0 was stopped by the guard. */
int dx_call_stopped(void);

/* The message handler dx_call uses: the error value (or its __tostring,
 * or a note of its type) with a traceback appended. [-0, +1, m] */
int dx_traceback_handler(lua_State *L);

/* Registers metatable name for a userdata class: __index the methods,
 * __gc gc (when not NULL), __name name. [-0, +0, e] */
void dx_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc);

/* Registers the connection metatable. [-0, +0, e] */
void dx_conn_open_lib(lua_State *L);

#if LUA_VERSION_NUM == 501
/* With the connection metatable and its methods on top of L's stack: on
 * a LuaJIT with its FFI, makes ws:send and the handle's __index Lua
 * functions the JIT compiles, send going through fast; else leaves them
 * (lconn_ffi.c). [-0, +0, -] */
void dx_conn_open_ffi(lua_State *L, lua_CFunction send, lua_CFunction failed,
                      int (*fast)(void *, const char *, size_t, int));
#endif

/* Creates the handle of c on route and roots it; leaves it on the stack.
 * [-0, +1, m] */
dx_lconn *dx_conn_push_new(lua_State *L, dx_lserver *ls, dx_conn *c, int route);

/* Pushes the handle of c (its user pointer). [-0, +1, -] */
void dx_conn_push(lua_State *L, dx_lconn *w);

#if LUA_VERSION_NUM == 501
/* LuaJIT: hands the messages m[0..n) of c (handle w) to the message
 * handler of w's route from a compiled Lua loop, in one dx_call (*ok its
 * result), and returns 1 with *done the messages it went through: fewer
 * than n only when c is still open and the next one would close it
 * (max_message_rate), whose close event must run from C: the caller takes
 * m[*done..n) the other way. Returns 0, having done nothing, when that
 * route goes through lserver.c's run_batch instead (batch_ffi.c). */
int dx_batch_ffi(dx_lserver *ls, dx_lconn *w, dx_conn *c, const dx_message_ref *m, size_t n,
                 int *ok, size_t *done);
#endif

/* The close event ran: the handle lets go of c and stops rooting itself. */
void dx_conn_release(lua_State *L, dx_lconn *w);

/* Registers the server metatable and the core.server constructor into the
 * module table on top of the stack. [-0, +0, e] */
void dx_server_open_lib(lua_State *L);

/* The server's options, one row each (server_options.c), and the row
 * named name (NULL for none). */
extern const dx_option dx_server_options[];
extern const size_t dx_server_option_count;
const dx_option *dx_server_option(const char *name);

/* Registers core.options() into the module table on top of the stack.
 * [-0, +0, e] */
void dx_server_options_open_lib(lua_State *L);

/* A failure of the world, the way every call reports it: pushes nil, the
 * message (fmt and its arguments, as lua_pushfstring takes them) and
 * name, a stable word code can match ("EADDRINUSE", "closed"); returns 3
 * for `return dx_fail(...)`. [-0, +3, m] */
int dx_fail(lua_State *L, const char *name, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Reads the `tls` option of the options table at t (nothing when absent)
 * and makes srv speak TLS; raises an error naming a bad key or value, or
 * when srv listens already. The files are read at listen. [-0, +0, e] */
void dx_tls_read_option(lua_State *L, int t, dx_server *srv);

/* server:reload_tls() and server:tls(), methods of the server. */
int dx_tls_reload(lua_State *L);
int dx_tls_enabled(lua_State *L);

/* Registers the client metatables and core.connect into the module table
 * on top of the stack. [-0, +0, e] */
void dx_client_open_lib(lua_State *L);

/* Registers the timer metatable and core.timer into the module table on
 * top of the stack. [-0, +0, e] */
void dx_timer_open_lib(lua_State *L);

/* Registers core.bench, core.spawn, core.stop_process, core.rss and
 * core.exe into the module table on top of the stack. [-0, +0, e] */
void dx_bench_open_lib(lua_State *L);

/* lbroker.c: the node, a server's side of the broker. */
typedef struct dx_node dx_node;
/* The server's node, made (with the memory engine) on first need. [-0, +0, e] */
dx_node *dx_node_get(lua_State *L, dx_lserver *ls);
/* Frees the server's node, if any (before its server). */
void dx_node_free(lua_State *L, dx_lserver *ls);

/* True while the node runs Lua (a history frame, a recovered, presence
 * or join/leave callback): server:close() is refused then. */
int dx_node_busy(const dx_lserver *ls);
/* A publish from Lua (ws:publish, server:publish): through the node when
 * there is one, else the transport's. Returns the subscribers of this
 * node it reached at once. */
size_t dx_node_publish(lua_State *L, dx_lserver *ls, const char *topic, size_t tlen, const char *data,
                       size_t len, int binary, uint64_t skip);
/* ws:subscribe(topic, opts) with its options table at opts. [-0, +1, e] */
int dx_node_subscribe(lua_State *L, dx_lconn *w, const char *topic, size_t tlen, int opts);
/* ws:unsubscribe(topic): the node's part; 1 when a resume of it was called off. */
int dx_node_unsubscribe(lua_State *L, dx_lconn *w, const char *topic, size_t tlen);
/* The close event of w ran: its resumes are called off, it leaves every presence. */
void dx_node_closed(lua_State *L, dx_lconn *w);
/* lsupervisor.c: this worker's end of its bus to the supervisor (index set
 * to the worker's), once per process; -1 when not a worker, or taken. */
int dx_worker_take_bus(unsigned *index);

/* In a worker of --workers N: how many times the supervisor restarted a
 * worker that died, all workers together, so far; 0 in a single process. */
uint64_t dx_box_restarts(void);

/* The broker's counters (zeros while the server has no node). */
void dx_node_stats(const dx_lserver *ls, dx_broker_stats *out);
/* The server's dx_events.forward: a fallback POST for a session of
 * another worker goes to it through the node's engine (the bus). 0, or -1
 * when it cannot go (no node, an engine that cannot forward, or it
 * refused). */
int dx_node_forward(dx_lserver *ls, unsigned worker, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                    const uint8_t *body, size_t len);
/* The server's methods of the node: history, presence, presence_events, publish_local, node. */
extern const luaL_Reg dx_node_methods[];

/* llog.c: core.log and core.log_format. */
void dx_log_open_lib(lua_State *L);

/* lsupervisor.c: core.supervise, core.worker, core.worker_ready and
 * core.cpus (--workers N). [-0, +0, e] */
void dx_supervisor_open_lib(lua_State *L);
/* lhub.c: core.hub_hooks, the hub between workers for core.supervise. */
void dx_hub_open_lib(lua_State *L);

/* The registry-rooted thread events run on, created once per Lua state,
 * with the traceback handler at its stack index 1 for good (every user of
 * the thread leaves its stack as it found it). [-0, +0, m] */
lua_State *dx_event_thread(lua_State *L);

#endif
