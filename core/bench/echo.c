/* The echo scenario's traffic: each connection keeps `depth` messages in
 * flight and replaces every echo it receives; echoes come back in order,
 * so each is checked against the sequence number expected next. */
#include "bench/internal.h"
#include "bench/payload.h"

static void start(dx_brun *b)
{
    for (int i = 0; i < b->n; i++)
        for (int d = 0; d < b->o->depth; d++)
            if (dx_bench_send_next(b, &b->k[i]) == 0)
                b->r->sent++;
}

static void message(dx_brun *b, dx_bconn *k, const uint8_t *p, size_t len, int binary)
{
    uint64_t seq, ts;
    int bad = dx_payload_check(p, len, b->o->size, b->pattern, &seq, &ts) < 0
        || binary != b->o->binary || seq != (k->next_rx & 0xFFFFFFFFFFFFull);
    if (bad) {
        b->r->content_errors++;
        b->r->received++;               /* it came back, wrong: not lost */
    } else {
        dx_bench_count(b, ts, len);
    }
    k->next_rx++;
    if (b->sending && dx_bench_send_next(b, k) == 0)
        b->r->sent++;
    dx_bench_check_drained(b);
}

static void ended(dx_brun *b, dx_bconn *k)
{
    b->dead_inflight += k->next_tx - k->next_rx;
}

static void nothing(dx_brun *b) { (void)b; }

const dx_bench_ops dx_bench_echo_ops = { start, message, ended, nothing };
