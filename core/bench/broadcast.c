/* The broadcast scenario's traffic: connection n-1 publishes, the others
 * subscribe (the app publishes what it receives to every other
 * connection). The publisher keeps `depth` messages in flight: message s
 * is complete when every subscriber alive when it was sent got it, and the
 * next goes when the oldest in flight completes. Each subscriber gets the
 * messages in order and checks each. */
#include <stdlib.h>
#include "bench/internal.h"
#include "bench/payload.h"

typedef struct bstate {
    uint32_t *got;        /* by seq % depth: subscribers that received it */
    uint32_t *needed;     /* by seq % depth: subscribers it was sent to */
    uint64_t completed;   /* messages completed, in order */
    int live;             /* subscribers open */
} bstate;

int dx_bench_broadcast_init(dx_brun *b)
{
    bstate *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    b->sc = s;
    s->got = calloc((size_t)b->o->depth, sizeof *s->got);
    s->needed = calloc((size_t)b->o->depth, sizeof *s->needed);
    return s->got && s->needed ? 0 : -1;
}

static void sfree(dx_brun *b)
{
    bstate *s = b->sc;
    free(s->got);
    free(s->needed);
    free(s);
    b->sc = NULL;
}

static dx_bconn *publisher(dx_brun *b) { return &b->k[b->n - 1]; }

/* Publishes while fewer than depth messages are incomplete. */
static void publish_more(dx_brun *b)
{
    bstate *s = b->sc;
    dx_bconn *p = publisher(b);
    while (b->sending && p->c && p->next_tx - s->completed < (uint64_t)b->o->depth) {
        uint64_t seq = p->next_tx;
        unsigned slot = (unsigned)(seq % (uint64_t)b->o->depth);
        if (dx_bench_send_next(b, p) < 0)
            return;
        s->got[slot] = 0;
        s->needed[slot] = (uint32_t)s->live;
        b->r->sent += (uint64_t)s->live;
    }
}

static void advance(dx_brun *b)
{
    bstate *s = b->sc;
    dx_bconn *p = publisher(b);
    while (s->completed < p->next_tx) {
        unsigned slot = (unsigned)(s->completed % (uint64_t)b->o->depth);
        if (s->got[slot] < s->needed[slot])
            break;
        s->completed++;
    }
    publish_more(b);
}

static void start(dx_brun *b)
{
    bstate *s = b->sc;
    s->live = b->n - 1;
    publish_more(b);
}

static void message(dx_brun *b, dx_bconn *k, const uint8_t *p, size_t len, int binary)
{
    bstate *s = b->sc;
    if (k == publisher(b)) {               /* the app must not echo to the publisher */
        b->r->content_errors++;
        return;
    }
    uint64_t seq, ts;
    uint64_t expect = k->next_rx;
    int bad = dx_payload_check(p, len, b->o->size, b->pattern, &seq, &ts) < 0
        || binary != b->o->binary || seq != (expect & 0xFFFFFFFFFFFFull);
    if (bad) {
        b->r->content_errors++;
        b->r->received++;
    } else {
        dx_bench_count(b, ts, len);
    }
    k->next_rx++;
    if (expect < publisher(b)->next_tx && expect >= s->completed)
        s->got[expect % (uint64_t)b->o->depth]++;
    advance(b);
    dx_bench_check_drained(b);
}

static void ended(dx_brun *b, dx_bconn *k)
{
    bstate *s = b->sc;
    dx_bconn *p = publisher(b);
    if (k == p) {                          /* nothing more is published */
        return;
    }
    if (!k->opened)
        return;
    s->live--;
    for (uint64_t q = k->next_rx > s->completed ? k->next_rx : s->completed; q < p->next_tx; q++) {
        s->needed[q % (uint64_t)b->o->depth]--;
        b->dead_inflight++;
    }
    advance(b);
}

const dx_bench_ops dx_bench_broadcast_ops = { start, message, ended, sfree };
