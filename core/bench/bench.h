/* `duplex bench`: load scenarios run in C on their own libev loop, with
 * the client core (client/client.h). The binding fills the options and
 * reads the results; nothing here knows Lua.
 *
 *   echo       N connections, each keeping D messages of S bytes in flight;
 *              every echo checked (order, length, content), latency from
 *              the send time carried in the message.
 *   broadcast  N subscribers and one publisher on an app that publishes
 *              what it receives to every other connection; the publisher
 *              keeps D messages in flight (closed loop: the next goes when
 *              every subscriber got an earlier one); every delivery checked.
 *              The publisher may connect elsewhere than the subscribers
 *              (another node of the same broker: delivery across nodes).
 *   connect    N connections opened at most `concurrency` at a time:
 *              handshakes per second, and with a server pid its resident
 *              memory per open connection. */
#ifndef DX_BENCH_H
#define DX_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { DX_BENCH_ECHO, DX_BENCH_BROADCAST, DX_BENCH_CONNECT };

typedef struct dx_bench_opts {
    int scenario;                   /* DX_BENCH_* */
    struct sockaddr_storage addr;   /* the server, resolved */
    socklen_t addrlen;
    char host[300];                 /* the Host header: "name:port" */
    char target[1024];              /* "/path?query" */
    int connections;                /* N (>= 1) */
    int depth;                      /* D in flight (>= 1) */
    size_t size;                    /* S bytes per message (>= DX_PAYLOAD_MIN) */
    int binary;                     /* binary frames instead of text */
    double seconds;                 /* the measured window */
    double warmup;                  /* before it: traffic, not counted */
    double timeout;                 /* bound of the connect phase and of the drain; default 10 */
    int concurrency;                /* connects in progress at once; default 256 */
    int server_pid;                 /* > 0: read its RSS (connect) */
    int tls;                        /* wss://, any certificate accepted */
    /* broadcast: where the publisher connects, when pub_addrlen > 0 (else
     * where the subscribers do) */
    struct sockaddr_storage pub_addr;
    socklen_t pub_addrlen;
    char pub_host[300];
    char pub_target[1024];
    int pub_tls;
} dx_bench_opts;

typedef struct dx_bench_result {
    double seconds;                 /* the measured window, as it ran */
    uint64_t messages;              /* echoes / deliveries received in the window */
    double rate;                    /* messages / seconds */
    double mbytes_per_s;            /* payload MB/s received in the window */
    uint64_t sent, received;        /* whole run (deliveries for broadcast: sent x subscribers) */
    uint64_t errors;                /* content_errors + conn_errors */
    uint64_t content_errors;        /* wrong length, content, order or type */
    uint64_t conn_errors;           /* connections that failed or ended during the run */
    uint64_t lost;                  /* sent, never received (after the drain) */
    double p50_us, p99_us, p999_us, max_us, mean_us;   /* latency in the window */
    int opened;                     /* connections that reached open */
    double connect_seconds;         /* first connect to last open */
    double handshakes_per_s;        /* opened / connect_seconds */
    long long rss_before, rss_after;/* server VmRSS in bytes; -1 unknown */
    double rss_per_conn;            /* (after - before) / opened; 0 unknown */
    char first_error[200];          /* the first connection error, "" for none */
} dx_bench_result;

/* Fills *o with defaults: echo, 100 connections, depth 16, 32 bytes, text,
 * 5 s window, 2 s warm-up, timeout 10, concurrency 256 (address unset). */
void dx_bench_defaults(dx_bench_opts *o);

/* Runs one scenario to its end; every phase is bounded in time. Returns 0
 * with *r filled (errors and lost say how it went), or -1 with err set to
 * a one-line reason when it could not run: no connection opened, or not all
 * of them in the echo and broadcast scenarios ("connect: Connection
 * refused", "handshake: upgrade refused: HTTP 404", "only 3 of 100
 * connections opened within 10 s", ...), or out of memory. */
int dx_bench_run(const dx_bench_opts *o, dx_bench_result *r, char *err, size_t errcap);

#endif
