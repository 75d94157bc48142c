/* WebSocket clients on libev: outgoing connections, the client handshake,
 * masked frames out, server frames in.
 *
 * A dx_client_ctx groups clients on one loop: it owns their shared read
 * buffer, a pool of random bytes for masking keys and handshake keys
 * (filled by OpenSSL's RAND_bytes in bulk), the list of clients to flush,
 * and its settings; nothing lives in C globals. Sends made during one loop
 * iteration leave in one send() per client, from the ctx's prepare watcher.
 * It knows nothing of Lua. */
#ifndef DX_CLIENT_H
#define DX_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <ev.h>

typedef struct dx_client_ctx dx_client_ctx;
typedef struct dx_client dx_client;

typedef struct dx_client_config {
    double handshake_timeout;   /* connect() to 101 received; default 10 s */
    double close_timeout;       /* our close frame to the peer's; default 2 s */
    uint64_t max_message;       /* larger server messages fail the client with 1009; default 16 MiB */
} dx_client_config;

/* What the ctx tells its user. ud is dx_client_ctx_new's ud. Each callback
 * may send on or close any client, and connect new ones. */
typedef struct dx_client_events {
    /* The 101 arrived and checked out: messages may be sent. */
    void (*open)(void *ud, dx_client *c);
    /* A whole message from the server (fragments joined, text checked
     * UTF-8). data is valid only during the call. */
    void (*message)(void *ud, dx_client *c, const uint8_t *data, size_t len, int binary);
    /* Once per dx_client_connect, whatever ended it. opened: the open event
     * ran. code: the server's close code when it sent one (1005 for a close
     * without one), the one we failed it with (1002, 1007, 1009), or 1006
     * when TCP ended without a close frame or the client never opened. why:
     * a one-line reason ("connect: Connection refused", "upgrade refused:
     * HTTP 403", "handshake timeout", the peer's close reason, ...). c is
     * freed when this returns: drop every pointer to it. */
    void (*close)(void *ud, dx_client *c, int opened, unsigned code, const char *why);
} dx_client_events;

/* Fills *cfg with the defaults above. */
void dx_client_config_defaults(dx_client_config *cfg);

/* Creates a ctx on loop with a copy of *cfg (NULL: defaults) and the
 * events. Returns NULL when out of memory. */
dx_client_ctx *dx_client_ctx_new(struct ev_loop *loop, const dx_client_config *cfg,
                                 const dx_client_events *ev, void *ud);

/* Frees the ctx and every client it still has at once, without events:
 * sockets are closed (the server sees TCP end), queued output is lost. */
void dx_client_ctx_free(dx_client_ctx *x);

/* Clients of x not yet freed, in any state. */
size_t dx_client_count(const dx_client_ctx *x);

/* TLS for a connection (wss://). */
typedef struct dx_client_tls {
    const char *ca;             /* PEM file of the CAs to trust; NULL: the system's */
    int insecure;               /* 1: no certificate check at all (benchmarks, tests) */
    const char *servername;     /* SNI and the name the certificate must have;
                                 * NULL: host without its port (an IP address
                                 * is checked as one, and sent without SNI) */
} dx_client_tls;

/* Starts connecting to addr (a resolved address, copied) and, once
 * connected (and, with tls, the TLS handshake done), asks for target
 * ("/path?query") with Host: host, offering the subprotocols protocols
 * (tokens joined by ", ", most wanted first; NULL: none). Returns the client, whose close event
 * will run exactly once; or NULL (no event) with errbuf set when no socket
 * could be made (e.g. EMFILE), host/target/protocols are unusable or tls->ca cannot
 * be read. A TLS failure (a certificate that does not verify, ...) ends the
 * client with 1006 and "tls handshake: <reason>". */
dx_client *dx_client_connect(dx_client_ctx *x, const struct sockaddr *addr, socklen_t addrlen,
                             const char *host, const char *target, const dx_client_tls *tls,
                             const char *protocols, char *errbuf, size_t errcap);

enum { DX_CSEND_OK = 0, DX_CSEND_CLOSED = -1, DX_CSEND_NOMEM = -2 };

/* Queues one message, masked with a fresh key, for the end of this loop
 * iteration. Returns DX_CSEND_OK, DX_CSEND_CLOSED when the client is not
 * open (still connecting, closing or failed), or DX_CSEND_NOMEM. */
int dx_client_send(dx_client *c, const void *data, size_t len, int binary);

/* Starts the close handshake with code (0: a close frame without one); the
 * close event follows when the server answers or close_timeout passes.
 * A client not yet open is dropped at once (close event with 1006). Does
 * nothing when it is already closing. */
void dx_client_close(dx_client *c, unsigned code);

/* 1 while messages may be sent. */
int dx_client_is_open(const dx_client *c);

/* The subprotocol the server chose (one of those offered), from the open
 * event on; NULL when it chose none or before it opened. Valid until the
 * close event returns. */
const char *dx_client_protocol(const dx_client *c);

/* Bytes queued, not yet written to the socket. */
size_t dx_client_buffered(const dx_client *c);

/* The user's pointer for this client. */
void *dx_client_user(const dx_client *c);
void dx_client_set_user(dx_client *c, void *user);

#endif
