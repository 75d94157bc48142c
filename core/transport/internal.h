/* Private to the transport: the server and connection structs and the
 * functions its files share. Nothing above the transport includes this. */
#ifndef DX_TRANSPORT_INTERNAL_H
#define DX_TRANSPORT_INTERNAL_H

#include <string.h>
#include <sys/socket.h>
#include "transport/server.h"
#include "protocol/frame.h"
#include "protocol/message.h"
#include "transport/queue.h"

#define DX_MAX_LISTENERS 4
#define DX_READ_BUFFER (256 * 1024)   /* one per server, shared by its connections */

/* A topic: its subscribers, in no order. Lives while it has any. */
typedef struct dx_topic {
    struct dx_topic *next;         /* hash chain */
    dx_conn **subs;
    size_t n, cap;
    uint32_t hash;
    uint32_t holds;                /* dx_server_hold_topic: it lives while held, subscribers or not */
    size_t len;
    char name[];
} dx_topic;

/* One subscription of a connection: the topic, and where in its array the
 * connection sits (so leaving is O(1) in the topic's size). */
typedef struct dx_membership {
    dx_topic *topic;
    size_t at;
} dx_membership;

/* A connection's subscriptions, allocated at its first (its counts live
 * here, not in every connection). */
typedef struct dx_memberships {
    uint32_t n, cap;
    dx_membership at[];
} dx_memberships;

/* How many connections the server holds from one address (limits.c):
 * an entry lives while its count is not 0. */
typedef struct dx_ip_count {
    struct dx_ip_count *next;      /* hash chain */
    uint8_t ip[16];                /* dx_addr.ip */
    uint32_t n;
} dx_ip_count;

enum dx_state {
    DX_HANDSHAKE,      /* reading the HTTP request head */
    DX_OPEN,           /* messages flow both ways */
    DX_CLOSING,        /* we sent a close frame and wait for the peer's */
    DX_LINGER,         /* done: flush what is queued, then close the socket */
    DX_DEAD            /* socket closed; the struct waits on the flush list to be freed */
};

enum dx_phase { DX_PH_HEADER, DX_PH_PAYLOAD };

/* What few connections need, kept out of dx_conn (whose size is every
 * connection's cost): allocated on first need (dx_conn_rare_get), freed
 * when nothing in it is held any more (dx_conn_rare_trim) or with the
 * connection. */
typedef struct dx_conn_rare {
    struct ssl_st *ssl;            /* TLS: for the connection's life */
    z_stream *inflater;            /* dedicated with context takeover, or a compressed
                                    * message split across reads */
    z_stream *deflater;            /* dedicated with context takeover */
    uint8_t *ctl;                  /* a control frame's payload split across reads */
    struct dx_sse *sse;            /* the fallback transport's session (sse.c): for the connection's life */
    struct dx_sse_wait *wait;      /* a POST forwarded to the session's worker, waiting for its answer
                                    * (sse.c): reading stays paused while it is set */
} dx_conn_rare;

/* One per connection, so its size is the idle cost: 312 bytes on 64-bit
 * (a 320-byte malloc chunk, full to its last byte: one more byte makes it
 * 336). Fill padding holes before adding at the end. */
struct dx_conn {
    dx_server *srv;
    dx_conn *prev, *next;          /* the server's list of connections */
    dx_conn *next_dirty;           /* the server's list of connections to flush */
    void *user;
    uint64_t id;
    uint8_t state;                 /* enum dx_state */
    uint8_t opened : 1;            /* the open event ran */
    uint8_t reported : 1;          /* the close event ran */
    uint8_t dirty : 1;             /* on the flush list */
    uint8_t writing : 1;           /* the socket was full: io waits for writable */
    uint8_t awaiting_pong : 1;
    uint8_t drain : 1;             /* LINGER: shut down writing, read until EOF */
    uint8_t shut_wr : 1;
    uint8_t busy : 1;              /* an I/O callback is working on it: dx_conn_free keeps the struct */
    uint8_t deflate_on : 1;        /* permessage-deflate negotiated: pmd holds the terms */
    uint8_t overflow : 1;          /* a send found max_backpressure passed: close 1008 from the timer */
    uint8_t over_mark : 1;         /* the queue passed drain_mark: drain when it empties */
    uint8_t paused : 1;            /* HTTP: reading stopped until the queued responses go */
    uint8_t tls_handshaking : 1;   /* TLS: the TLS handshake is not done yet */
    uint8_t tls_read_wants_write : 1; /* TLS: the handshake or a read waits for the socket to be writable */
    uint8_t tls_flush_wants_read : 1; /* TLS: a write waits for the socket to be readable */
    uint8_t tls_failed : 1;        /* TLS: a fatal error: no close_notify may follow */
    uint8_t tls_shut : 1;          /* TLS: close_notify sent */
    uint8_t tls : 1;               /* rare->ssl is set: a TLS connection */
    uint8_t heartbeat : 1;         /* each idle ping comes with a binary "\x02" (duplex.1) */
    uint8_t deflate_dedicated : 1; /* negotiated under the route's dedicated mode */
    uint8_t deflate_mem_level : 4; /* that route's zlib memLevel (1..9) */
    dx_pmd_params pmd;             /* permessage-deflate terms when deflate_on */
    dx_conn_rare *rare;            /* NULL until something in it is needed */
    uint8_t phase;                 /* enum dx_phase */
    uint8_t hdr_len;               /* bytes of a partial frame header in hdr */
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    uint16_t close_sent;           /* the code we sent, 0 when none */
    dx_addr remote;                /* the peer (here, not last: it fills padding) */
    float rate_debt;               /* max_message_rate: messages taken from the bucket and not
                                    * yet refilled (0: full), refilled from last_rx on each read */
    ev_io io;                      /* the socket (io.fd): one watcher for both directions,
                                    * its events set by dx_conn_watch from the flags */
    ev_timer timer;
    /* Moments, two slots shared by states that never need the same one
     * (each is written only in the states that read it). */
    union {
        ev_tstamp accepted_at;     /* HANDSHAKE: accepted, or the last request answered */
        ev_tstamp last_rx;         /* OPEN, CLOSING: last bytes received */
    };
    union {
        ev_tstamp last_tx;         /* HANDSHAKE: the socket last took bytes from us */
        ev_tstamp ping_at;         /* OPEN: our unanswered ping went out */
        ev_tstamp since;           /* CLOSING, LINGER: closing since */
    };

    /* The frame being received. */
    dx_frame_header fh;
    union {
        uint64_t payload_off;      /* OPEN, CLOSING: payload bytes of fh received so far */
        uint64_t request_need;     /* HANDSHAKE: bytes of head and body c->buf must hold for the
                                    * request under way (a POST to a session), 0: its head only */
    };
    dx_message msg;
    uint8_t *buf;                  /* request head (HANDSHAKE), or message under assembly */
    size_t buf_len, buf_cap;

    /* Output. */
    dx_queue out;

    dx_memberships *topics;        /* subscriptions; NULL before the first */
};

struct dx_server {
    struct ev_loop *loop;
    dx_config cfg;
    dx_events ev;
    void *ud;
    ev_io listeners[DX_MAX_LISTENERS];
    int nlisteners;
    int port;
    int reuse_port;                /* listeners share their port (SO_REUSEPORT): --workers */
    int shutting_down;
    ev_tstamp shutdown_at;         /* shutting down: every connection ends by then */
    ev_timer accept_pause;         /* out of file descriptors: accepting resumes later */
    ev_prepare flusher;            /* flushes every dirty connection once per loop iteration */
    dx_conn *conns;
    size_t nconns;
    dx_conn *dirty;
    uint64_t next_id;
    uint8_t *rbuf;
    z_stream *shared_deflate[16];  /* by window bits: messages compressed from an empty window */
    z_stream *shared_inflate;      /* messages whose whole payload is in one read */
    uint8_t *zbuf;                 /* compressed output before it is framed */
    size_t zbuf_cap;
    dx_chunks chunks;              /* the connections' output chunks (queue.c) */
    dx_topic **buckets;            /* topics by name */
    size_t nbuckets, ntopics;
    void (*topic_hook)(void *ud, const char *topic, size_t tlen, int on);
    void *topic_hook_ud;
    dx_stats stats;
    char *static_root;             /* plain GET/HEAD are served from here; NULL: none */
    char *client_js;               /* the body of /duplex.js (cfg.client_js); NULL: none */
    size_t client_js_len;
    char client_js_etag[24];       /* "\"<FNV-1a 64 of the body, hex>\"" */
    struct dx_tls *tls;            /* NULL: plain TCP */
    ev_tstamp tls_logged_at;       /* the last TLS error line */
    uint64_t tls_unlogged;         /* TLS errors since, not logged */
    dx_ip_count **ips;             /* connections by address, while max_connections_per_ip is on */
    size_t nips_buckets, nips;     /* buckets (a power of 2), addresses held */
    uint64_t ips_seed[2];          /* the address hash's key: a peer cannot aim at a bucket */
    int ips_on;                    /* ips counts every connection in conns */
    ev_tstamp limit_logged_at;     /* the last "refusing" line */
    struct dx_sse **sessions;      /* event-stream sessions by id (sse.c) */
    struct dx_sse_wait **waiting;  /* POSTs forwarded to another worker, waiting for its answer:
                                    * DX_SSE_WAIT_BUCKETS chains by token, NULL before the first */
    unsigned worker;               /* this process's worker index (--workers N), 0: the only one */
    size_t nsessions_buckets, nsessions;
    uint8_t *sse_stage;            /* DX_SSE_STAGE bytes: events encoded for one write */
    uint64_t limit_unlogged;       /* refusals since, not logged */
};

/* http_serve.c */
int dx_http_is_head(const dx_http_request *req);
int dx_http_is_get_or_head(const dx_http_request *req);
int dx_http_keep_alive(const dx_http_request *req);
/* The value of a hex digit, or -1. */
int dx_http_hexval(char ch);
/* Serves a static file under root for req: 1 when answered (the file, 304,
 * 400/404 for a path that tries to leave root, 405), 0 when root has no
 * such file. */
int dx_static_serve(dx_conn *c, const char *root, const dx_http_request *req, int keep);
/* Answers a request for /duplex.js (query ignored) with s->client_js: 1
 * when answered (200, 304 for a matching If-None-Match, 405), 0 for
 * another path. */
int dx_client_js_serve(dx_conn *c, const dx_http_request *req, int keep);

/* sse.c: the fallback transport (events down, POSTs up) */
/* 1 when c is a session (no flag of its own: dx_conn has no bit to spare,
 * and a plain connection has no rare part, so the test costs it one load). */
#define DX_CONN_SSE(c) ((c)->rare && (c)->rare->sse)
/* 1 when req asks for an event stream (GET, Accept: text/event-stream). */
int dx_sse_wanted(const dx_http_request *req);
/* 1 when req is a POST for a session (its query names one). */
int dx_sse_is_post(const dx_http_request *req);
/* Opens a session on c for req (a WebSocket route's path): the app's
 * upgrade decides as for a WebSocket; then the stream's head, the open
 * event, and c is OPEN (or refused and lingering). */
void dx_sse_open(dx_conn *c, const dx_http_request *req);
/* A POST for a session whose head (head bytes) is in c->buf: 0 while its
 * body is still coming (c->request_need says how much c->buf must hold),
 * 1 when it was answered and c may take another request (2: c should
 * close), 3 when it was forwarded to the session's worker (c must read no
 * more until dx_server_forward_answer answers it: c->rare->wait is set),
 * *used the bytes of head and body; -1 when c was refused and lingers. */
int dx_sse_post(dx_conn *c, const dx_http_request *req, size_t head, size_t *used);
/* The writer's flush for a session: the queue's frames go as events.
 * Returns as dx_tls_flush does. */
int dx_sse_flush(dx_conn *c);
/* c (which has a rare part) is being freed: its session, or its wait for
 * a forwarded POST's answer, goes. */
void dx_sse_conn_free(dx_conn *c);
void dx_sse_server_free(dx_server *s);

/* topics.c */
void dx_topics_leave_all(dx_conn *c);
void dx_topics_free(dx_server *s);

/* addr.c */
struct sockaddr;
void dx_addr_from_sockaddr(dx_addr *out, const struct sockaddr *sa);

/* limits.c */
/* Past a connection limit, this many more connections are accepted (to be
 * answered 503 once their request comes); past those, closed at accept. */
#define DX_REFUSE_SLACK 64
/* The Retry-After of those 503s, in seconds. */
#define DX_RETRY_AFTER "5"
/* A connection from a is being accepted: 0 to take it (counted under its
 * address while max_connections_per_ip is on), or -1 to close it at once
 * (far past a limit, or out of memory), counted in refused_at_accept. */
int dx_limits_accept(dx_server *s, const dx_addr *a);
/* A connection from a is gone (or was never made after dx_limits_accept
 * took it): its address counts one less. */
void dx_limits_release(dx_server *s, const dx_addr *a);
/* A request came on c: NULL when it may be answered, else why it gets a
 * 503 (counted in refused_full or refused_per_ip, and logged at most once
 * every 10 s). */
const char *dx_limits_refusal(dx_conn *c);
/* An upgrade request's Origin is not allowed: counts it (refused_origin). */
void dx_limits_origin_refused(dx_conn *c);
/* 1 when c's message bucket is not full (rate_debt is never -0.0: its bits
 * are 0 exactly when it is full, a test of one word on every read). */
static inline int dx_rate_owed(const dx_conn *c)
{
    uint32_t bits;
    memcpy(&bits, &c->rate_debt, sizeof bits);
    return bits != 0;
}
/* Refills c's message bucket for the time since c->last_rx (call before
 * moving last_rx to now; only when dx_rate_owed). */
void dx_rate_refill(dx_conn *c, ev_tstamp now);
/* A whole data message came, max_message_rate on: 1 when the bucket had a
 * message for it; else 0 with the policy applied (counted in rate_limited;
 * "close": c is failed with 1008, counted in rate_closes). */
int dx_rate_take(dx_conn *c);
/* 1 when dx_rate_take would refuse c's next message and close c (policy
 * close), running the close event: nothing is taken or changed. Like
 * dx_rate_take, only while max_message_rate is on. */
int dx_rate_closes(const dx_conn *c);
/* Frees the address table. */
void dx_limits_free(dx_server *s);

/* conn.c */
int dx_conn_admit(dx_conn *c);
dx_conn *dx_conn_new(dx_server *s, int fd, const dx_addr *addr);
void dx_conn_free(dx_conn *c);
void dx_conn_report_close(dx_conn *c, unsigned code, const uint8_t *reason, size_t len);
void dx_conn_fail(dx_conn *c, unsigned code, const char *reason);
void dx_conn_lost(dx_conn *c);
void dx_conn_linger(dx_conn *c, int drain);
void dx_conn_arm_timer(dx_conn *c);
/* c->rare, allocated (zeroed) when c has none; NULL when out of memory. */
dx_conn_rare *dx_conn_rare_get(dx_conn *c);
/* Frees c->rare when nothing in it is held. */
void dx_conn_rare_trim(dx_conn *c);
/* Sets what c's watcher waits for: readable unless reading is paused (a
 * TLS write waiting for readable reads anyway), writable while the queue
 * waits for the socket or a TLS read waits for writable. Call after
 * changing paused, writing or a tls_*_wants_* flag; nothing once c is
 * DX_DEAD. */
void dx_conn_watch(dx_conn *c);

/* reader.c */
/* c->io's callback: the socket is readable or writable (or both). */
void dx_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
void dx_reader_feed_frames(dx_conn *c, uint8_t *p, size_t n);
void dx_reader_resume(dx_conn *c);
/* Answers c's request with an HTTP error (headers: more header lines, or
 * NULL; body NULL: the reason phrase) and lingers until the peer goes. */
void dx_conn_refuse(dx_conn *c, int status, const char *headers, const char *body);
/* Bytes c may read now while it is in HANDSHAKE: up to the head's limit,
 * or to the end of a body it waits for, and at most DX_READ_BUFFER (a
 * read goes into the server's rbuf). */
static inline size_t dx_reader_head_room(const dx_conn *c)
{
    size_t limit = c->request_need ? (size_t)c->request_need : c->srv->cfg.max_head;
    size_t room = limit > c->buf_len ? limit - c->buf_len : 0;
    return room < DX_READ_BUFFER ? room : DX_READ_BUFFER;
}
/* The frames in p, from c's peer, go through c's reader as if c's socket
 * had read them (the caller holds c->busy). */
void dx_reader_take(dx_conn *c, uint8_t *p, size_t n);

int dx_conn_buf_reserve(dx_conn *c, size_t need, size_t limit);

/* deflate.c */
/* How a message to c is compressed: 0 not at all, 1 alone (from an empty
 * window, any stream of that window size will do), 2 by c's own stream. */
int dx_deflate_kind(const dx_conn *c, size_t len);
/* A frame of data compressed alone with window bits, ready to share, or
 * NULL when it did not shrink or memory ran out (send it plain). */
dx_shared *dx_deflate_shared_frame(dx_server *s, int bits, int opcode, const void *data, size_t len);
/* Negotiates permessage-deflate for c under cfg (which must outlive c):
 * dx_pmd_negotiate's returns, and c->deflate_on. */
int dx_deflate_negotiate(dx_conn *c, const dx_http_request *req, const dx_pmd_config *cfg,
                         char *resp, size_t cap);
/* Queues one data message, compressed when negotiated and worth it.
 * Returns 0, or -1 out of memory. */
int dx_deflate_send(dx_conn *c, int opcode, const void *data, size_t len);
/* Inflates a piece of the compressed message being received into c->buf
 * (whole: the piece is the entire message; final: its last piece).
 * Returns 0 or a close code (1007 bad data, 1009 too big). */
int dx_deflate_receive(dx_conn *c, const uint8_t *p, size_t n, int whole, int final);
void dx_deflate_conn_free(dx_conn *c);
void dx_deflate_server_free(dx_server *s);

/* What a byte source or sink says after a read or a write. */
enum {
    DX_IO_FULL = 0,        /* a read filled the buffer (more may be pending); a write took it all */
    DX_IO_AGAIN = -1,      /* the socket has no more now: its watcher waits */
    DX_IO_EOF = -2,        /* the peer ended the stream */
    DX_IO_ERROR = -3,      /* the connection failed (logged when worth it) */
    DX_IO_PLAIN = -4,      /* TLS: plain HTTP came to the TLS port (the TLS layer is gone) */
    DX_IO_WANTS_READ = -5  /* TLS: a write waits for the socket to be readable */
};

/* tls_io.c: TLS under a connection, a byte source and a byte sink */
/* Makes c a TLS connection on the server's contexts. Returns 0, or -1. */
int dx_tls_conn_start(dx_conn *c);
/* Sends close_notify once (best effort, never after a fatal error). */
void dx_tls_conn_shutdown(dx_conn *c);
/* Frees c's SSL (after close_notify when none was sent). */
void dx_tls_conn_free(dx_conn *c);
/* Reads up to want plaintext bytes into buf (the TLS handshake first,
 * while it is not done): *got of them, and DX_IO_FULL (want were read),
 * DX_IO_AGAIN, DX_IO_EOF, DX_IO_ERROR or DX_IO_PLAIN. */
int dx_tls_read(dx_conn *c, uint8_t *buf, size_t want, size_t *got);
/* 1 when OpenSSL holds plaintext already read from the socket (which then
 * does not become readable for it). */
int dx_tls_pending(const dx_conn *c);
/* Writes p[0..len) as TLS records: *took bytes taken, and DX_IO_FULL (all),
 * DX_IO_AGAIN (wait for writable), DX_IO_WANTS_READ (wait for readable) or
 * DX_IO_ERROR. */
int dx_tls_write(dx_conn *c, const uint8_t *p, size_t len, size_t *took);
/* Logs a TLS error of c, at most one line a second (with a count of the
 * ones not logged), and counts it. */
void dx_tls_log(dx_conn *c, const char *what, const char *reason);

/* reader.c, the input side of a connection: */
/* Hands n bytes read into buf (the server's buffer, or the tail of c->buf
 * for a large frame read in place) to c's state (the caller holds c->busy). */
void dx_reader_consume(dx_conn *c, uint8_t *buf, size_t n);
/* The peer closed (eof) or the socket failed. */
void dx_reader_end(dx_conn *c, int eof);

/* writer.c */
/* Writes what c's socket takes of p[0..len), through TLS when c has it:
 * returns the bytes taken (fewer than len: the socket is full and the
 * watcher waits), or -1 when c was lost (it may be freed). */
long dx_sink_write(dx_conn *c, const uint8_t *p, size_t len);
uint8_t *dx_out_reserve(dx_conn *c, size_t n);
/* Like dx_out_reserve, but into an empty queue the n bytes go in a chunk of
 * their own size (freed once sent, never a spare): a handshake response,
 * so that a burst of handshakes does not hold a DX_OUT_CHUNK chunk each.
 * Later sends take a new chunk behind it. */
uint8_t *dx_out_reserve_fitted(dx_conn *c, size_t n);
int dx_out_shared(dx_conn *c, dx_shared *f);
int dx_out_frame(dx_conn *c, int opcode, const void *data, size_t len);
/* Queues one unmasked frame with fin set whose payload stays at data until
 * ev.unhold(token). Returns 0, or -1 out of memory (nothing queued). */
int dx_out_frame_held(dx_conn *c, int opcode, const void *data, size_t len, intptr_t token);
int dx_out_close_frame(dx_conn *c, unsigned code, const char *reason, size_t len);
/* Queues the first len bytes of the open file fd, to be sent from the
 * file: the queue holds the descriptor, not the bytes, so a download
 * costs no memory however large the file. Takes fd: it is closed once sent
 * or when c goes, or at once when this fails. Returns 0, or -1 out of
 * memory. */
int dx_out_file(dx_conn *c, int fd, size_t len);
void dx_out_mark_dirty(dx_conn *c);
void dx_out_flush(dx_conn *c);
static inline void dx_out_consume(dx_conn *c, size_t n)
{
    dx_queue_consume(&c->out, &c->srv->chunks, n);
}
/* The socket is full: c's watcher waits for writable. */
void dx_out_wait_writable(dx_conn *c);
static inline void dx_out_free(dx_conn *c)
{
    dx_queue_clear(&c->out, &c->srv->chunks);
}
void dx_flusher_cb(struct ev_loop *loop, ev_prepare *w, int revents);

#endif
