/* Private to core/bench: one run's state, shared by the phase machine
 * (run.c) and the scenarios' traffic (echo.c, broadcast.c). */
#ifndef DX_BENCH_INTERNAL_H
#define DX_BENCH_INTERNAL_H

#include <ev.h>
#include "bench/bench.h"
#include "bench/hist.h"
#include "client/client.h"

/* One connection of the run. */
typedef struct dx_bconn {
    dx_client *c;                 /* NULL before connect and once ended */
    int idx;
    uint8_t opened;
    uint64_t next_tx;             /* sequence number of the next message sent */
    uint64_t next_rx;             /* sequence number expected next */
} dx_bconn;

typedef struct dx_brun dx_brun;

/* What a scenario does with traffic. */
typedef struct dx_bench_ops {
    void (*start)(dx_brun *b);    /* every connection is open: send */
    void (*message)(dx_brun *b, dx_bconn *k, const uint8_t *p, size_t len, int binary);
    void (*ended)(dx_brun *b, dx_bconn *k);   /* k ended while traffic ran (k->c is NULL) */
    void (*free)(dx_brun *b);
} dx_bench_ops;

enum { P_CONNECT, P_WARMUP, P_MEASURE, P_DRAIN, P_CLOSE };

struct dx_brun {
    const dx_bench_opts *o;
    dx_bench_result *r;
    struct ev_loop *loop;
    dx_client_ctx *ctx;
    const dx_bench_ops *ops;
    void *sc;                     /* the scenario's own state */
    dx_bconn *k;
    int n;                        /* connections (broadcast: subscribers + the publisher) */
    int next_connect, in_progress, failed;
    int phase;
    int sending;                  /* traffic replaces what it receives */
    int measuring;                /* receipts count toward the window */
    ev_timer timer;
    uint64_t t0;                  /* clock origin of the run (ns) */
    uint64_t connect_start, window_start;
    uint64_t dead_inflight;       /* sent to (or by) connections that ended, never received */
    uint64_t window_bytes;
    dx_hist *hist;
    uint8_t *pattern;             /* dx_payload_pattern(o->size) */
    uint8_t *msg;                 /* o->size bytes to build a message in */
    int fatal;
    char err[512];
};

/* Monotonic nanoseconds. */
uint64_t dx_bench_now(void);

/* Sends k the next message of its sequence (counted in r->sent by the
 * caller's rules). Returns 0, or -1 when the client is not open. */
int dx_bench_send_next(dx_brun *b, dx_bconn *k);

/* Records a received message's latency and size when measuring. */
void dx_bench_count(dx_brun *b, uint64_t ts, size_t len);

/* Traffic is over (drain or a fatal end): when every message sent was
 * received or is known lost, the drain ends. */
void dx_bench_check_drained(dx_brun *b);

extern const dx_bench_ops dx_bench_echo_ops;
extern const dx_bench_ops dx_bench_broadcast_ops;

/* broadcast.c: sets up b->sc. Returns 0, or -1 out of memory. */
int dx_bench_broadcast_init(dx_brun *b);

#endif
