/* The transport: listeners, connections and their state machine on libev.
 *
 * A dx_server owns its listeners, its connections, one read buffer shared by
 * all of them, and its configuration; nothing lives in C globals, so several
 * servers can share one loop and one process. It knows nothing of Lua: the
 * layer above hands it a dx_events table of callbacks. */
#ifndef DX_SERVER_H
#define DX_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include "protocol/http.h"
#include "protocol/handshake.h"
#include "protocol/pmd.h"

typedef struct dx_server dx_server;
typedef struct dx_conn dx_conn;

/* A peer's address, kept raw and formatted only when asked (a log line,
 * ws.remote): accepting formats nothing. Every address is kept in IPv6
 * form, an IPv4 one as IPv4-mapped (::ffff:a.b.c.d), so that one host is
 * one key however it connected (18 bytes: it sits in every connection). */
typedef struct dx_addr {
    uint8_t ip[16];             /* IPv6, or IPv4-mapped IPv6 */
    uint16_t port;              /* host order */
} dx_addr;

/* 1 when a is an IPv4 address (kept IPv4-mapped), else 0. */
int dx_addr_is_v4(const dx_addr *a);

/* Room for "[v6 address]:port" and its NUL. */
#define DX_ADDR_STRLEN 56

/* Writes a as "ip:port" ("[ip6]:port" for IPv6) into out; returns out. */
char *dx_addr_format(const dx_addr *a, char out[DX_ADDR_STRLEN]);

/* Room for a server's list of origins (dx_config.origins), its NUL included. */
#define DX_ORIGINS_MAX 1024

/* Limits and timeouts of one server. Times are seconds; 0 turns one off. */
typedef struct dx_config {
    uint64_t max_message;       /* bytes in one assembled message; default 16 MiB */
    size_t max_head;            /* bytes in an HTTP request head; default 8 KiB */
    size_t max_headers;         /* header fields in a request head; default 64 */
    double handshake_timeout;   /* TCP open to complete request head; default 10 */
    double close_timeout;       /* our close frame to the peer's, and lingering; default 5 */
    double idle_timeout;        /* nothing received for this long: close 1001; default 0 (off) */
    double ping_interval;       /* ping a peer that was silent this long; default 30 */
    double pong_timeout;        /* no pong this long after a ping: pong_timeout event, close 1001; default 10 */
    size_t max_backpressure;    /* bytes queued for one peer before a send is refused; default 1 MiB */
    int backpressure_drop;      /* past it: 0 close the peer 1008 (default), 1 drop the message */
    size_t drain_mark;          /* a queue that held more than this runs drain when empty; default 64 KiB */
    dx_pmd_config deflate;      /* permessage-deflate; default off (window 15, memLevel 8 when on) */
    size_t deflate_threshold;   /* messages shorter than this go uncompressed; default 64 */
    double shutdown_timeout;    /* a shutdown waits this long for queues and close replies; default 10 */
    double handler_timeout;     /* a Lua handler running longer is stopped (the binding's
                                 * guard; the transport does not read it); default 1 */
    size_t max_connections;     /* connections held at once, in any state; 0: no limit; default 10000 */
    size_t max_connections_per_ip; /* of them from one address; 0: no limit; default 256 */
    uint32_t max_message_rate;  /* data messages a second from one peer; 0: no limit; default 1000 */
    uint32_t message_burst;     /* ... of which this many at once; default 1000 */
    int message_rate_drop;      /* past it: 0 close the peer 1008 (default), 1 drop the message */
    char origins[DX_ORIGINS_MAX]; /* Origins an upgrade may come from besides its own host: "" none
                                 * (default), "*" any, else origins each ending in '\n' */
    int client_js;              /* GET/HEAD /duplex.js answers the browser client given by
                                 * dx_server_set_client_js (when the app and the static
                                 * files have no such path); default 1 */
    int sse;                    /* a GET of a WebSocket route with Accept: text/event-stream opens
                                 * a session of events down and POSTs up (sse.c); default 1 */
} dx_config;

/* The statuses requests are refused with, one slot each in
 * dx_stats.refused; the last slot, 0 here, counts any other. */
#define DX_REFUSED_SLOTS 9
extern const int dx_refused_status[DX_REFUSED_SLOTS];
/* The slot of status in dx_stats.refused. */
int dx_refused_slot(int status);

/* Counters of one server since it started. */
typedef struct dx_stats {
    uint64_t accepted;              /* connections opened (101 sent) */
    uint64_t messages_in;           /* messages received and handed to the app */
    uint64_t published;             /* publish calls */
    uint64_t deliveries;            /* messages queued by publish, one per subscriber */
    uint64_t dropped;               /* messages not queued: max_backpressure with policy "drop" */
    uint64_t backpressure_closes;   /* connections closed 1008: max_backpressure with policy "close" */
    uint64_t tls_failures;          /* TLS connections dropped for a failed handshake or a TLS error */
    uint64_t messages_out;          /* data messages queued: sends and deliveries */
    uint64_t bytes_in;              /* bytes read from peers (after TLS) */
    uint64_t bytes_out;             /* bytes written to peers (before TLS) */
    uint64_t deflate_in;            /* bytes of outgoing messages compressed ... */
    uint64_t deflate_out;           /* ... and what they were compressed to */
    uint64_t refused[DX_REFUSED_SLOTS]; /* requests answered with an HTTP error, by dx_refused_slot */
    uint64_t refused_full;          /* requests answered 503: max_connections held */
    uint64_t refused_per_ip;        /* requests answered 503: max_connections_per_ip from their address */
    uint64_t refused_at_accept;     /* connections closed unanswered, far past one of those limits */
    uint64_t refused_origin;        /* upgrades answered 403: an Origin not allowed */
    uint64_t rate_limited;          /* messages not handed to the app: past max_message_rate */
    uint64_t rate_closes;           /* connections closed 1008: max_message_rate with policy "close" */
} dx_stats;

/* What the layer above decides when it accepts an upgrade. */
typedef struct dx_accept {
    char protocol[128];              /* the subprotocol to answer with, "" for none */
    const dx_pmd_config *deflate;    /* the route's permessage-deflate; NULL: the server's */
} dx_accept;

/* Fills *cfg with the defaults above. */
void dx_config_defaults(dx_config *cfg);

/* One whole message of a batch (dx_events.messages): its bytes stay valid
 * during the call only. */
typedef struct dx_message_ref {
    const uint8_t *data;
    uint32_t len;
    int binary;
} dx_message_ref;

/* What the transport tells the layer above. ud is dx_server_new's ud. Every
 * callback may call dx_conn_send/close/ping on any connection; none may free
 * the server. */
typedef struct dx_events {
    /* A valid upgrade request arrived. Return 0 to accept it (filling *acc,
     * which comes zeroed), or an HTTP status (400-599) to refuse it,
     * optionally writing a body of at most body_cap - 1 bytes,
     * NUL-terminated, into body. */
    int (*upgrade)(void *ud, dx_conn *c, const dx_http_request *req,
                   const dx_upgrade *up, dx_accept *acc, char *body, size_t body_cap);
    /* The 101 has been queued: the connection is open. */
    void (*open)(void *ud, dx_conn *c);
    /* A whole message. data is valid only during the call. */
    void (*message)(void *ud, dx_conn *c, const uint8_t *data, size_t len, int binary);
    /* Optional (NULL: message, for each in turn): n >= 2 whole messages of
     * c that one read brought in, in order, with nothing else of c's
     * between them. Each goes to the app only when dx_conn_take_message(c),
     * called just before it, returns 1 (0: c is no longer open, or
     * max_message_rate dropped that one). */
    void (*messages)(void *ud, dx_conn *c, const dx_message_ref *m, size_t n);
    /* The connection left the open state for good, once per open: code is the
     * peer's close code when it sent one, else the one we sent, else 1006. */
    void (*close)(void *ud, dx_conn *c, unsigned code, const uint8_t *reason, size_t len);
    /* A ping went unanswered for pong_timeout; the connection is closed with
     * 1001 right after this returns. */
    void (*pong_timeout)(void *ud, dx_conn *c);
    /* The send queue emptied after having held more than drain_mark. */
    void (*drain)(void *ud, dx_conn *c);
    /* A request that is not a WebSocket upgrade. Answer it with
     * dx_http_respond and return DX_HTTP_ANSWERED; or return DX_HTTP_WS_ROUTE
     * (its path is a WebSocket route: the static files are tried, then it
     * gets the upgrade answers, 426) or DX_HTTP_NONE (the static files are
     * tried, then 404). */
    int (*http)(void *ud, dx_conn *c, const dx_http_request *req, int keep_alive);
    /* The connection is being freed while it still has a user pointer (the
     * server was freed, or an accepted upgrade failed before the 101). */
    void (*release)(void *ud, dx_conn *c);
    /* The bytes dx_conn_send_held queued under token are no longer needed
     * (written, or their connection freed). Called once per held send. */
    void (*unhold)(void *ud, intptr_t token);
    /* Optional (NULL: a POST for another worker's session is 404). A POST
     * of the fallback transport names a session of worker (its id's first
     * four hex digits), not this process's (dx_server_set_worker): hand
     * (token, id of idlen bytes, seq, body of len bytes) to that worker and
     * return 0; the POST's connection reads nothing more until
     * dx_server_forward_answer(s, token, ...) answers it (or its
     * handshake_timeout ends it). Return -1 when it cannot go now (it is
     * answered 503). seq UINT64_MAX (token 0, no body, no answer waited
     * for): the POST was refused 413 for a body past max_message, and the
     * session should close 1009 as a local one does. Everything given is
     * valid only during the call. */
    int (*forward)(void *ud, unsigned worker, uint64_t token, const char *id, size_t idlen,
                   uint64_t seq, const uint8_t *body, size_t len);
} dx_events;

/* Creates a server on loop with a copy of *cfg. Returns NULL when out of
 * memory. Nothing listens until dx_server_listen. */
dx_server *dx_server_new(struct ev_loop *loop, const dx_config *cfg,
                         const dx_events *ev, void *ud);

/* Binds and listens on host:port (host NULL: every interface, IPv6 and IPv4;
 * port 0: one the kernel picks, the same for every address of host). Returns
 * 0, or -1 with errbuf set to a one-line message and *errname to a stable
 * word ("EADDRINUSE", "EACCES", "EAI_NONAME", ...). */
int dx_server_listen(dx_server *s, const char *host, int port,
                     char *errbuf, size_t errcap, const char **errname);

/* on: the listeners dx_server_listen opens from now on share their port
 * with other processes' that say so too (SO_REUSEPORT: the workers of
 * --workers N, where the kernel spreads connections among them); off,
 * the default, a port in use is EADDRINUSE. */
void dx_server_set_reuse_port(dx_server *s, int on);

/* This process is worker index of --workers N (0, the default: the only
 * process). The fallback transport's session ids start with it, four hex
 * digits, so that a POST landing on another worker can be forwarded to
 * this one (dx_events.forward). */
void dx_server_set_worker(dx_server *s, unsigned index);

/* The answer to the POST forwarded under token (dx_events.forward): its
 * connection gets status (with text, len bytes, as a text/plain body when
 * not empty, and the CORS lines its request earned) and reads its next
 * request. Nothing when that connection is gone. */
void dx_server_forward_answer(dx_server *s, uint64_t token, int status, const char *text, size_t len);

/* Answers every forwarded POST still waiting with status and text (the
 * link that carries their answers went down: none will come). */
void dx_server_forward_fail(dx_server *s, int status, const char *text);

/* A POST forwarded here by another worker for session id (idlen bytes):
 * runs as one that came here would (seq check, body fed to the session's
 * reader, which may run the message event; seq UINT64_MAX: its body was
 * too big, the session closes 1009). Returns the status to answer
 * it with (204, or 4xx/5xx with a reason, NUL-terminated, in text of cap
 * bytes; "" for 204). */
int dx_server_forwarded_post(dx_server *s, const char *id, size_t idlen, uint64_t seq, const uint8_t *body,
                             size_t len, char *text, size_t cap);

/* Raises this process's soft limit on open files to its hard limit: every
 * connection is a descriptor, and the usual soft limit (1024) would cap a
 * server at about a thousand of them. dx_server_listen calls it; a process
 * started afterwards inherits the limit. */
void dx_raise_fd_limit(void);

/* The port bound by dx_server_listen, or 0. */
int dx_server_port(const dx_server *s);

/* The server's configuration; changes apply to connections from then on. */
dx_config *dx_server_config(dx_server *s);

/* Stops listening, and starts the close handshake (1001, reason) on every
 * open connection, behind what is queued for it; an HTTP connection with a
 * response under way lingers until it is sent, an idle one is dropped.
 * Every connection ends by shutdown_timeout from now at the latest (those
 * still there are dropped then, a close event with 1001 for open ones), so
 * the loop keeps running until dx_server_conn_count is 0, within that. */
void dx_server_shutdown(dx_server *s, const char *reason);

/* Connections not yet freed, in any state. */
size_t dx_server_conn_count(const dx_server *s);

/* Frees the server and every connection at once, without calling any
 * event (sockets are closed, queued output is lost). */
void dx_server_free(dx_server *s);

enum { DX_HTTP_NONE = -1, DX_HTTP_WS_ROUTE = 0, DX_HTTP_ANSWERED = 1 };

/* 1 for a session of the fallback transport (events down, POSTs up), 0
 * for a WebSocket. */
int dx_conn_is_sse(const dx_conn *c);

/* Serves plain GET and HEAD requests from files under dir (NULL: none).
 * Returns 0, or -1 out of memory. */
int dx_server_set_static(dx_server *s, const char *dir);

/* The browser client served at /duplex.js while cfg.client_js is on: a
 * copy of body is kept (NULL: none), its ETag a hash of the bytes.
 * Returns 0, or -1 out of memory. */
int dx_server_set_client_js(dx_server *s, const void *body, size_t len);

/* Queues an HTTP/1.1 response: status line, Content-Length: len,
 * Connection, then headers (each line ending in CRLF, may be NULL), then
 * body unless head_only (or status 304). Returns 0 or -1 out of memory. */
int dx_http_respond(dx_conn *c, int status, const char *headers, const void *body,
                    size_t len, int head_only, int keep_alive);

struct dx_tls;

/* Makes the server speak TLS on every listener, with tls's certificates
 * (see transport/tls.h); the server owns tls from here on, even when this
 * fails. The files are read by dx_server_listen. Returns 0, or -1 when the
 * server listens already. */
int dx_server_set_tls(dx_server *s, struct dx_tls *tls);

/* 1 when the server speaks TLS. */
int dx_server_tls(const dx_server *s);

/* Reads the certificate and key files again; new connections get the new
 * ones, open connections keep theirs. Returns 0, or -1 with a one-line
 * message in errbuf (the certificates in use stay). */
int dx_server_reload_tls(dx_server *s, char *errbuf, size_t errcap);

/* The server's counters. */
const dx_stats *dx_server_stats(const dx_server *s);

/* Topics (names are bytes, any length). */

/* Sends one message to every open subscriber of topic but the connection
 * whose id is skip (0 for none): framed once (shared by reference when
 * large, copied into each queue when small) and, for subscribers that
 * compress each message alone, compressed once per window size. Each
 * subscriber's max_backpressure applies. Counts a publish call. Returns
 * the number of subscribers it was queued for. */
size_t dx_server_publish(dx_server *s, const char *topic, size_t tlen,
                         const void *data, size_t len, int binary, uint64_t skip);

/* dx_server_publish for a publication made elsewhere (another worker or
 * node, or handed back by the broker): not counted as a publish call. */
size_t dx_server_deliver(dx_server *s, const char *topic, size_t tlen,
                         const void *data, size_t len, int binary, uint64_t skip);

/* Counts a publish call whose delivery comes later (through the broker). */
void dx_server_count_publish(dx_server *s);

/* Keeps topic alive without a subscriber (hold 1) or lets go of one such
 * hold (0): a connection catching up on a topic's history holds it so the
 * topic's publications keep coming. Returns 0, or -1 out of memory. */
int dx_server_hold_topic(dx_server *s, const char *topic, size_t tlen, int hold);

/* Calls hook(ud, topic, tlen, 1) when a topic comes to be (its first
 * subscriber or hold) and hook(ud, topic, tlen, 0) when it goes, and at
 * once for every topic there is (NULL: no hook). The broker's interest. */
void dx_server_set_topic_hook(dx_server *s, void (*hook)(void *ud, const char *topic, size_t tlen, int on),
                              void *ud);

/* Open connections subscribed to topic. */
size_t dx_server_subscribers(const dx_server *s, const char *topic, size_t tlen);

/* 1 when topic is in the table (a subscriber or a hold), else 0. */
int dx_server_has_topic(const dx_server *s, const char *topic, size_t tlen);

/* ---- connections ---- */

enum { DX_SEND_OK = 0, DX_SEND_CLOSED = -1, DX_SEND_NOMEM = -2, DX_SEND_BACKPRESSURE = -3 };

/* Queues one message (text or binary) for sending, compressed when
 * permessage-deflate was negotiated and it is not shorter than
 * deflate_threshold; it goes out with every other send of this loop
 * iteration in one write. Returns DX_SEND_OK, or DX_SEND_CLOSED when the
 * connection is no longer open (closing or closed), DX_SEND_NOMEM when
 * memory ran out, DX_SEND_BACKPRESSURE when more than max_backpressure
 * bytes were already queued: the message is not queued (counted in
 * stats.dropped), and with the "close" policy the connection is closed
 * with 1008 from its timer, not from inside the caller. */
int dx_conn_send(dx_conn *c, const void *data, size_t len, int binary);

/* For dx_events.messages: 1 when the next message of the batch goes to
 * the app (counted in messages_in), 0 when it does not: c is no longer
 * open, or max_message_rate drops it (or closed c). */
int dx_conn_take_message(dx_conn *c);

/* dx_conn_take_message without calling the app: -1, having taken and
 * changed nothing, when taking the message would close c (max_message_rate
 * with the policy close) and so run the close event; else its 1 or 0. */
int dx_conn_take_message_quiet(dx_conn *c);

/* Payloads at least this large can be queued without a copy. */
#define DX_SEND_HOLD_MIN (16 * 1024)

/* dx_conn_send for a caller that can keep data unchanged for a while: a
 * payload of DX_SEND_HOLD_MIN bytes or more that goes uncompressed is not
 * copied but written from data, and *held is set to 1: the transport then
 * calls ev.unhold(ud, token) once, when it no longer needs the bytes.
 * Otherwise (a copy was queued, or nothing) *held is 0 and the caller
 * keeps data to itself. Same returns as dx_conn_send. */
int dx_conn_send_held(dx_conn *c, const void *data, size_t len, int binary,
                      intptr_t token, int *held);

/* Queues a ping with payload data (at most 125 bytes). Same returns. */
int dx_conn_ping(dx_conn *c, const void *data, size_t len);

/* Starts the close handshake with code (a valid wire code, or 0 for a close
 * frame without a code) and reason (at most 123 bytes). The close event
 * follows when the peer answers or close_timeout passes. Does nothing when
 * the connection is already closing. */
void dx_conn_close(dx_conn *c, unsigned code, const char *reason, size_t len);

/* Subscribes c to topic: 1 when it was not subscribed, 0 when it was, -1
 * out of memory. Only an open connection subscribes (else 0). A
 * connection leaves all its topics when it closes. */
int dx_conn_subscribe(dx_conn *c, const char *topic, size_t tlen);

/* 1 when c is subscribed to topic, else 0. */
int dx_conn_subscribed(const dx_conn *c, const char *topic, size_t tlen);

/* 1 when c was subscribed to topic and no longer is, else 0. */
int dx_conn_unsubscribe(dx_conn *c, const char *topic, size_t tlen);

/* 1 while messages may be sent (open, not closing). */
int dx_conn_is_open(const dx_conn *c);

/* Bytes queued in user space, not yet written to the socket. */
size_t dx_conn_buffered(const dx_conn *c);

/* The connection's number, unique within its server, from 1. */
uint64_t dx_conn_id(const dx_conn *c);

/* The permessage-deflate parameters agreed on, or NULL when none. */
const dx_pmd_params *dx_conn_deflate(const dx_conn *c);

/* The peer's address (dx_addr_format writes it out). */
const dx_addr *dx_conn_addr(const dx_conn *c);

/* The layer above's pointer for this connection. */
void *dx_conn_user(const dx_conn *c);
void dx_conn_set_user(dx_conn *c, void *user);
/* With on, every ping the server sends c for its silence (ping_interval)
 * is followed by a binary message of one byte, 0x02: the heartbeat of the
 * duplex.1 subprotocol, which a browser page can see. */
void dx_conn_set_heartbeat(dx_conn *c, int on);

#endif
