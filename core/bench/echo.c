/* The echo scenario's traffic: each connection keeps `depth` messages in
 * flight and replaces every echo it receives; echoes come back in order,
 * so each is checked against the sequence number expected next. */
#include "bench/internal.h"
#include "bench/payload.h"

/* Each connection counts its messages from its own start, i * 7919: the
 * connections of a round are in step (one in flight each, in B), and
 * from one start every message of a round would carry the same sequence
 * number, hence the same fill (payload.h). Real clients are not in step:
 * a hash that samples a few bytes (LuaJIT's interning) would meet a
 * round's worth of same-looking messages, which measured that table's
 * handling of collisions rather than the server (scenario B on LuaJIT
 * moved between 2 900 and 9 800 instructions a message). */
static void start(dx_brun *b)
{
    for (int i = 0; i < b->n; i++)
        b->k[i].next_tx = b->k[i].next_rx = (uint64_t)i * 7919;
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
