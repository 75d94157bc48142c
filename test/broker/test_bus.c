/* The in-box bus, end to end in one process: a hub with the memory engine
 * and three bus engines over real socketpairs, on one libev loop, each
 * bus with a sink that records what it is handed. Plus the wire decoder
 * fed a byte at a time, a worker that never reads, one that sends
 * garbage, and the hub going away. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <ev.h>
#include "broker/broker.h"
#include "broker/bus.h"
#include "broker/hub.h"
#include "broker/wire.h"
#include "../unit/unit.h"

#define NBUS 3
#define MAXREC 512

/* What a sink was handed, in order (seq counts every call). */
typedef struct got_pub {
    char topic[32], data[64];
    size_t len;
    int positioned;
    dx_pos pos;
    uint64_t from;
    int seq;
} got_pub;

typedef struct got_event {
    char topic[32], node[32], info[32];
    int joined;
    uint64_t conn;
} got_event;

typedef struct rec {
    got_pub pubs[MAXREC];
    size_t npubs, nbig;
    got_event events[64];
    size_t nevents;
    int links, up;
    char why[128];
    int seq;
    /* forwarded POSTs this worker got, answers it got */
    int nfwd;
    uint32_t fwd_origin;
    uint64_t fwd_token, fwd_seq;
    char fwd_id[40], fwd_body[64];
    int nans;
    uint64_t ans_token;
    int ans_status;
    char ans_text[64];
} rec;

static struct ev_loop *loop;
static dx_hub *hub;
static dx_broker *bus[NBUS];
static rec recs[NBUS];

static void copy(char *out, size_t cap, const void *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void on_pub(void *ud, const dx_publication *p)
{
    rec *r = ud;
    if (p->len > 64) {                            /* the flood: counted only */
        r->nbig++;
        return;
    }
    if (r->npubs == MAXREC)
        return;
    got_pub *g = &r->pubs[r->npubs++];
    copy(g->topic, sizeof g->topic, p->topic, p->tlen);
    copy(g->data, sizeof g->data, p->data, p->len);
    g->len = p->len;
    g->positioned = p->pos != NULL;
    if (p->pos)
        g->pos = *p->pos;
    g->from = p->from;
    g->seq = r->seq++;
}

static void on_presence(void *ud, const char *topic, size_t tlen, int joined, const dx_member *m)
{
    rec *r = ud;
    if (r->nevents == 64)
        return;
    got_event *e = &r->events[r->nevents++];
    copy(e->topic, sizeof e->topic, topic, tlen);
    copy(e->node, sizeof e->node, m->node, m->node_len);
    copy(e->info, sizeof e->info, m->info, m->info_len);
    e->joined = joined;
    e->conn = m->conn;
    r->seq++;
}

static void on_link(void *ud, int up, const char *why)
{
    rec *r = ud;
    r->links++;
    r->up = up;
    copy(r->why, sizeof r->why, why, strlen(why));
}

static void on_forwarded(void *ud, uint32_t origin, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                         const uint8_t *body, size_t len)
{
    rec *r = ud;
    r->nfwd++;
    r->fwd_origin = origin;
    r->fwd_token = token;
    r->fwd_seq = seq;
    copy(r->fwd_id, sizeof r->fwd_id, id, idlen);
    copy(r->fwd_body, sizeof r->fwd_body, body, len);
}

static void on_answered(void *ud, uint64_t token, int status, const char *text, size_t len)
{
    rec *r = ud;
    r->nans++;
    r->ans_token = token;
    r->ans_status = status;
    copy(r->ans_text, sizeof r->ans_text, text, len);
}

/* ---- driving the loop ---- */

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    *(int *)w->data = 1;
}

/* Runs the loop until cond(arg) holds or seconds pass; returns cond. */
static int run_until(int (*cond)(void *), void *arg, double seconds)
{
    int late = 0;
    ev_timer t;
    ev_timer_init(&t, on_deadline, seconds, 0);
    t.data = &late;
    ev_timer_start(loop, &t);
    while (!cond(arg) && !late)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    return cond(arg);
}

/* A presence request's answer, kept. */
typedef struct asked {
    int answered, ok;
    size_t n;
    char nodes[8][32];
    char infos[8][32];
    uint64_t conns[8];
    int seq;
    rec *r;
} asked;

static void on_members(void *arg, int ok, const dx_member *m, size_t n)
{
    asked *a = arg;
    a->answered++;
    a->ok = ok;
    a->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        copy(a->nodes[i], 32, m[i].node, m[i].node_len);
        copy(a->infos[i], 32, m[i].info, m[i].info_len);
        a->conns[i] = m[i].conn;
    }
    if (a->r)
        a->seq = a->r->seq++;
}

static int all_answered(void *arg)
{
    asked *a = arg;
    for (int i = 0; i < NBUS; i++)
        if (bus[i] && !a[i].answered)
            return 0;
    return 1;
}

/* Waits until everything sent so far has been routed and received: a
 * round trip from every bus, twice (the second round's answers leave the
 * hub after everything the first round's requests came after). */
static void settle(void)
{
    for (int round = 0; round < 2; round++) {
        asked a[NBUS] = { { 0 } };
        for (int i = 0; i < NBUS; i++)
            if (bus[i])
                bus[i]->ops->presence(bus[i], "sync", 4, on_members, &a[i]);
        CHECK(run_until(all_answered, a, 5));
    }
}

static const dx_history_rule none = { 0, 0 };
static const dx_history_rule ten = { 10, 0 };

static void interest(int i, const char *topic, int on)
{
    bus[i]->ops->interest(bus[i], topic, strlen(topic), on);
}

static int publish(int i, const char *topic, const char *data, uint64_t from, const dx_history_rule *h)
{
    dx_publication p = { .topic = topic, .tlen = strlen(topic), .data = (const uint8_t *)data,
                         .len = strlen(data), .from = from };
    return bus[i]->ops->publish(bus[i], &p, h);
}

static size_t count_topic(const rec *r, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < r->npubs; i++)
        n += strcmp(r->pubs[i].topic, topic) == 0;
    return n;
}

/* The publications of r on topic, their data joined by ',' (at most cap). */
static const char *joined(const rec *r, const char *topic, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->npubs; i++)
        if (strcmp(r->pubs[i].topic, topic) == 0)
            at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, "%s%s", at ? "," : "", r->pubs[i].data);
    return out;
}

static void setup(void)
{
    loop = ev_default_loop(0);
    hub = dx_hub_new(loop, NULL, NULL);
    CHECK(hub != NULL);
    for (int i = 0; i < NBUS; i++) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK_EQ(dx_hub_attach(hub, (unsigned)i, sv[0]), 0);
        char name[32];
        snprintf(name, sizeof name, "box:%d/w%d", 100 + i, i);
        dx_broker_sink sink = { &recs[i], on_pub, on_presence, on_link, on_forwarded, on_answered };
        bus[i] = dx_bus_broker_new(loop, &sink, sv[1], name);
        CHECK(bus[i] != NULL);
    }
}

/* ---- the wire alone ---- */

static void test_wire_fragments(void)
{
    dx_wire_buf out = { 0 };
    dx_pos pos = { .offset = 7, .epoch = "ab12" };
    dx_publication p = { .topic = "t\0x", .tlen = 3, .data = (const uint8_t *)"\0\1\2", .len = 3,
                         .binary = 1, .pos = &pos, .from = 42 };
    dx_member m = { .conn = 9, .node = "n", .node_len = 1, .info = (const uint8_t *)"i", .info_len = 1 };
    CHECK_EQ(dx_wire_publication(&out, &p, 42), 0);
    CHECK_EQ(dx_wire_event(&out, "t", 1, 1, &m), 0);
    CHECK_EQ(dx_wire_recovered(&out, 5, DX_RECOVERED, "t", 1, &p, 1, &pos), 0);
    CHECK_EQ(dx_wire_members(&out, 6, 1, &m, 1), 0);
    CHECK_EQ(dx_wire_forward(&out, DX_WIRE_FORWARD, 2, 77, "0002ab", 6, 9, (const uint8_t *)"\x81\0", 2), 0);
    CHECK_EQ(dx_wire_forward(&out, DX_WIRE_FORWARDED, 0x10001, 78, "0002cd", 6, 10, NULL, 0), 0);
    CHECK_EQ(dx_wire_answer(&out, DX_WIRE_ANSWER, 0x20003, 79, 409, "later", 5), 0);
    CHECK_EQ(dx_wire_answer(&out, DX_WIRE_ANSWERED, 0, 80, 204, "", 0), 0);
    size_t total = dx_wire_pending(&out);
    /* fed one byte more at a time: nothing until a record is whole */
    int got = 0, bad = 0;
    size_t base = 0;                              /* bytes decoded */
    for (size_t k = 1; k <= total; k++) {
        dx_wire_buf in = { .data = out.data + base, .tail = k - base, .cap = out.cap - base };
        dx_wire_msg msg;
        int rc;
        while ((rc = dx_wire_next(&in, &msg)) == 1) {
            got++;
            if (msg.type == DX_WIRE_PUBLICATION)
                CHECK(msg.tlen == 3 && memcmp(msg.topic, "t\0x", 3) == 0 && msg.pub.len == 3 &&
                      memcmp(msg.pub.data, "\0\1\2", 3) == 0 && msg.pub.binary == 1 && msg.pub.from == 42 &&
                      msg.pub.pos && msg.pub.pos->offset == 7 && strcmp(msg.pub.pos->epoch, "ab12") == 0);
            if (msg.type == DX_WIRE_RECOVERED) {
                dx_publication e;
                dx_pos ep;
                CHECK(msg.id == 5 && msg.count == 1 && msg.has_pos && msg.pos.offset == 7);
                CHECK_EQ(dx_wire_entry(&msg, &e, &ep), 1);
                CHECK(e.len == 3 && ep.offset == 7 && e.binary == 1);
                CHECK_EQ(dx_wire_entry(&msg, &e, &ep), 0);
            }
            if (msg.type == DX_WIRE_FORWARD)
                CHECK(msg.worker == 2 && msg.token == 77 && msg.text_len == 6 && memcmp(msg.text, "0002ab", 6) == 0 &&
                      msg.seq == 9 && msg.len == 2 && memcmp(msg.data, "\x81\0", 2) == 0);
            if (msg.type == DX_WIRE_FORWARDED)
                CHECK(msg.worker == 0x10001 && msg.token == 78 && msg.text_len == 6 && msg.seq == 10 && msg.len == 0);
            if (msg.type == DX_WIRE_ANSWER)
                CHECK(msg.worker == 0x20003 && msg.token == 79 && msg.status == 409 && msg.text_len == 5 &&
                      memcmp(msg.text, "later", 5) == 0);
            if (msg.type == DX_WIRE_ANSWERED)
                CHECK(msg.token == 80 && msg.status == 204 && msg.text_len == 0);
            if (msg.type == DX_WIRE_MEMBERS) {
                dx_member x;
                CHECK_EQ(dx_wire_member(&msg, &x), 1);
                CHECK(x.conn == 9 && x.node_len == 1 && x.info_len == 1);
                CHECK_EQ(dx_wire_member(&msg, &x), 0);
            }
        }
        bad += rc < 0;
        base += in.tail == 0 ? k - base : in.head;  /* an emptied buffer starts over at 0 */
    }
    CHECK_EQ(base, total);
    CHECK_EQ(got, 8);
    CHECK_EQ(bad, 0);
    /* a length past the bound, an unknown type, a field past the end: malformed */
    uint8_t junk[3][9] = { { 0xff, 0xff, 0xff, 0x7f, 'p' }, { 1, 0, 0, 0, 'Z' }, { 5, 0, 0, 0, 'H', 9, 0, 0, 0 } };
    size_t jlen[3] = { 5, 5, 9 };
    for (int i = 0; i < 3; i++) {
        dx_wire_buf j = { .data = junk[i], .tail = jlen[i], .cap = sizeof junk[i] };
        dx_wire_msg msg;
        CHECK_EQ(dx_wire_next(&j, &msg), -1);
    }
    dx_wire_buf_free(&out);
}

/* ---- across workers ---- */

static void test_delivery(void)
{
    interest(0, "room", 1);
    interest(1, "room", 1);
    interest(2, "other", 1);
    settle();
    char data[16];
    for (int k = 1; k <= 100; k++) {
        snprintf(data, sizeof data, "a%d", k);
        CHECK_EQ(publish(0, "room", data, 7, &none), 0);
        snprintf(data, sizeof data, "b%d", k);
        CHECK_EQ(publish(1, "room", data, 8, &none), 0);
    }
    publish(0, "nobody", "x", 7, &none);
    settle();
    /* bus 1 has a's alone, in order; bus 0 b's alone; bus 2 nothing of room */
    int ok0 = 1, ok1 = 1;
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < recs[1].npubs; i++) {
        snprintf(data, sizeof data, "a%d", (int)(na + 1) & 0xffff);
        ok1 &= strcmp(recs[1].pubs[i].data, data) == 0 && recs[1].pubs[i].from == 0 && !recs[1].pubs[i].positioned;
        na++;
    }
    for (size_t i = 0; i < recs[0].npubs; i++) {
        snprintf(data, sizeof data, "b%d", (int)(nb + 1) & 0xffff);
        ok0 &= strcmp(recs[0].pubs[i].data, data) == 0 && recs[0].pubs[i].from == 0;
        nb++;
    }
    CHECK_EQ(na, 100);
    CHECK_EQ(nb, 100);
    CHECK(ok0 && ok1);
    CHECK_EQ(recs[2].npubs, 0);
    /* interest gone: no more */
    interest(1, "room", 0);
    settle();
    publish(0, "room", "c1", 7, &none);
    publish(2, "room", "c2", 9, &none);
    settle();
    CHECK_EQ(count_topic(&recs[1], "room"), 100);
    CHECK_EQ(count_topic(&recs[0], "room"), 101);   /* c2 from bus 2 */
    CHECK_EQ(count_topic(&recs[2], "room"), 0);
    for (int i = 0; i < NBUS; i++)
        recs[i].npubs = 0;
}

static dx_pos epoch_of_hist;

static void test_history(void)
{
    interest(0, "hist", 1);
    interest(1, "hist", 1);
    settle();
    char data[16];
    for (int k = 1; k <= 5; k++) {
        snprintf(data, sizeof data, "h%d", k);
        CHECK_EQ(publish(0, "hist", data, 77, &ten), 0);
    }
    settle();
    char buf[256];
    CHECK(strcmp(joined(&recs[0], "hist", buf, sizeof buf), "h1,h2,h3,h4,h5") == 0);
    CHECK(strcmp(joined(&recs[1], "hist", buf, sizeof buf), "h1,h2,h3,h4,h5") == 0);
    CHECK_EQ(count_topic(&recs[2], "hist"), 0);
    int ok = recs[0].npubs == 5 && recs[1].npubs == 5;
    for (size_t i = 0; ok && i < 5; i++) {
        const got_pub *a = &recs[0].pubs[i], *b = &recs[1].pubs[i];
        ok &= a->positioned && b->positioned && a->pos.offset == i + 1 && b->pos.offset == i + 1;
        ok &= strcmp(a->pos.epoch, b->pos.epoch) == 0 && a->pos.epoch[0] != '\0';
        ok &= a->from == 77 && b->from == 0;          /* from at the origin only */
    }
    CHECK(ok);
    epoch_of_hist = recs[0].pubs[0].pos;
    for (int i = 0; i < NBUS; i++)
        recs[i].npubs = 0;
}

typedef struct recovered {
    int answered, status, seq;
    size_t n;
    uint64_t offsets[16];
    char data[16][16];
    dx_pos top;
    int has_top;
    rec *r;
} recovered;

static void on_recovered(void *arg, int status, const dx_publication *e, size_t n, const dx_pos *top)
{
    recovered *x = arg;
    x->answered++;
    x->status = status;
    x->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        x->offsets[i] = e[i].pos->offset;
        copy(x->data[i], 16, e[i].data, e[i].len);
    }
    x->has_top = top != NULL;
    if (top)
        x->top = *top;
    if (x->r)
        x->seq = x->r->seq++;
}

static int is_answered(void *arg)
{
    return ((recovered *)arg)->answered > 0;
}

static recovered ask_recover(int i, const char *topic, const char *epoch, uint64_t offset, const dx_history_rule *h)
{
    recovered x = { 0 };
    dx_pos since = { .offset = offset };
    snprintf(since.epoch, sizeof since.epoch, "%s", epoch);
    bus[i]->ops->recover(bus[i], topic, strlen(topic), &since, h, on_recovered, &x);
    CHECK(run_until(is_answered, &x, 5));
    return x;
}

static void test_recover(void)
{
    const char *ep = epoch_of_hist.epoch;
    interest(2, "hist", 1);
    recovered x = ask_recover(2, "hist", ep, 2, &ten);
    CHECK_EQ(x.answered, 1);
    CHECK_EQ(x.status, DX_RECOVERED);
    CHECK(x.n == 3 && x.offsets[0] == 3 && x.offsets[2] == 5 && strcmp(x.data[0], "h3") == 0);
    CHECK(x.has_top && x.top.offset == 5 && strcmp(x.top.epoch, ep) == 0);
    x = ask_recover(2, "hist", ep, 5, &ten);      /* up to date */
    CHECK(x.status == DX_RECOVERED && x.n == 0 && x.top.offset == 5);
    x = ask_recover(2, "hist", "zzz", 1, &ten);
    CHECK_EQ(x.status, DX_RECOVER_EPOCH);
    CHECK_EQ(x.n, 0);
    x = ask_recover(2, "hist", ep, 1, &none);
    CHECK_EQ(x.status, DX_RECOVER_NO_HISTORY);
    char data[16];
    for (int k = 6; k <= 20; k++) {
        snprintf(data, sizeof data, "h%d", k);
        publish(1, "hist", data, 3, &ten);
    }
    settle();
    x = ask_recover(2, "hist", ep, 3, &ten);      /* 4..10 were trimmed */
    CHECK_EQ(x.status, DX_RECOVER_TOO_OLD);
    CHECK(x.has_top && x.top.offset == 20);
    x = ask_recover(2, "hist", "", 0, &ten);      /* the newest kept, whatever the epoch */
    CHECK_EQ(x.status, DX_RECOVERED);
    CHECK(x.n == 10 && x.offsets[0] == 11 && x.offsets[9] == 20 && strcmp(x.data[9], "h20") == 0);
    for (int i = 0; i < NBUS; i++)
        recs[i].npubs = 0;

    /* no gap: interest then recover from bus 2, a publish from bus 0 in
     * the same iteration; h21 comes once, in the answer or after it */
    interest(2, "gap", 1);
    interest(0, "gap", 1);
    publish(0, "gap", "g1", 1, &ten);
    settle();
    dx_pos first = recs[2].pubs[0].pos;
    recs[2].npubs = 0;
    interest(2, "gap", 0);
    settle();
    recovered y = { .r = &recs[2] };
    dx_pos since = first;
    interest(2, "gap", 1);
    bus[2]->ops->recover(bus[2], "gap", 3, &since, &ten, on_recovered, &y);
    publish(0, "gap", "g2", 1, &ten);
    CHECK(run_until(is_answered, &y, 5));
    settle();
    size_t in_answer = y.n == 1 && strcmp(y.data[0], "g2") == 0;
    size_t after = 0;
    for (size_t i = 0; i < recs[2].npubs; i++)
        if (strcmp(recs[2].pubs[i].data, "g2") == 0 && recs[2].pubs[i].seq > y.seq)
            after++;
    CHECK_EQ(in_answer + after, 1);
    CHECK_EQ(recs[2].npubs, after);               /* nothing came before the answer */
    for (int i = 0; i < NBUS; i++)
        recs[i].npubs = 0;
}

static int find_event(const rec *r, const char *topic, int joined_, uint64_t conn, const char *node)
{
    int n = 0;
    for (size_t i = 0; i < r->nevents; i++) {
        const got_event *e = &r->events[i];
        n += strcmp(e->topic, topic) == 0 && e->joined == joined_ && e->conn == conn && strcmp(e->node, node) == 0;
    }
    return n;
}

static int members_answered(void *arg)
{
    return ((asked *)arg)->answered > 0;
}

static asked ask_presence(int i, const char *topic)
{
    asked a = { 0 };
    bus[i]->ops->presence(bus[i], topic, strlen(topic), on_members, &a);
    CHECK(run_until(members_answered, &a, 5));
    return a;
}

static void test_presence(void)
{
    /* interest in "lobby": buses 0 and 1; bus 2 none */
    interest(0, "lobby", 1);
    interest(1, "lobby", 1);
    settle();
    dx_member m = { .conn = 5, .node = "ignored", .node_len = 7, .info = (const uint8_t *)"A", .info_len = 1 };
    bus[0]->ops->join(bus[0], "lobby", 5, &m);
    m.info = (const uint8_t *)"B";
    bus[1]->ops->join(bus[1], "lobby", 5, &m);   /* the same conn id on another worker */
    m.conn = 6;
    bus[1]->ops->join(bus[1], "lobby", 5, &m);
    settle();
    asked a = ask_presence(2, "lobby");
    CHECK(a.ok && a.n == 3);
    int w0 = 0, w1 = 0;
    for (size_t i = 0; i < a.n && i < 8; i++) {
        w0 += strcmp(a.nodes[i], "box:100/w0") == 0 && a.conns[i] == 5 && strcmp(a.infos[i], "A") == 0;
        w1 += strcmp(a.nodes[i], "box:101/w1") == 0 && (a.conns[i] == 5 || a.conns[i] == 6) &&
              strcmp(a.infos[i], "B") == 0;
    }
    CHECK_EQ(w0, 1);
    CHECK_EQ(w1, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(find_event(&recs[i], "lobby", 1, 5, "box:100/w0"), 1);
        CHECK_EQ(find_event(&recs[i], "lobby", 1, 5, "box:101/w1"), 1);
        CHECK_EQ(find_event(&recs[i], "lobby", 1, 6, "box:101/w1"), 1);
    }
    CHECK_EQ(recs[2].nevents, 0);
    m.conn = 5;
    bus[0]->ops->leave(bus[0], "lobby", 5, &m);
    settle();
    for (int i = 0; i < 2; i++)
        CHECK_EQ(find_event(&recs[i], "lobby", 0, 5, "box:100/w0"), 1);
    CHECK_EQ(find_event(&recs[1], "lobby", 0, 5, "box:101/w1"), 0);
    a = ask_presence(0, "lobby");
    CHECK(a.ok && a.n == 2);
}

/* A fallback POST forwarded from worker 0 to worker 2 and answered back;
 * one for a worker not attached is answered 404 by the hub; an answer
 * naming another generation of its origin is dropped. */
static int answered_0(void *arg)
{
    return recs[0].nans >= *(int *)arg;
}

static int forwarded_2(void *arg)
{
    return recs[2].nfwd >= *(int *)arg;
}

static int forwarded_1(void *arg)
{
    return recs[1].nfwd >= *(int *)arg;
}

static void test_forward(void)
{
    const char *id = "0002aaaabbbbccccddddeeeeffff0000";
    int want = 1;
    CHECK_EQ(bus[0]->ops->forward(bus[0], 2, 41, id, 32, 5, (const uint8_t *)"body", 4), 0);
    CHECK(run_until(forwarded_2, &want, 5));
    CHECK_EQ(recs[2].fwd_token, 41);
    CHECK_EQ(recs[2].fwd_seq, 5);
    CHECK_EQ(strcmp(recs[2].fwd_id, id), 0);
    CHECK_EQ(strcmp(recs[2].fwd_body, "body"), 0);
    CHECK_EQ(recs[2].fwd_origin & 0xffff, 0);     /* worker 0, its generation above */
    CHECK_EQ(recs[1].nfwd, 0);
    bus[2]->ops->answer(bus[2], recs[2].fwd_origin, 41, 409, "out of order", 12);
    CHECK(run_until(answered_0, &want, 5));
    CHECK(recs[0].ans_token == 41 && recs[0].ans_status == 409 && strcmp(recs[0].ans_text, "out of order") == 0);
    /* a worker not attached: the hub answers */
    CHECK_EQ(bus[0]->ops->forward(bus[0], 7, 42, id, 32, 0, NULL, 0), 0);
    want = 2;
    CHECK(run_until(answered_0, &want, 5));
    CHECK(recs[0].ans_token == 42 && recs[0].ans_status == 404 &&
          strcmp(recs[0].ans_text, "no such session: its worker is gone") == 0);
    /* an answer for another generation of worker 0 (a restarted one) goes nowhere */
    bus[2]->ops->answer(bus[2], recs[2].fwd_origin ^ (1u << 16), 43, 204, "", 0);
    settle();
    CHECK_EQ(recs[0].nans, 2);
    /* many, in order, each answered once */
    for (int k = 0; k < 100; k++)
        CHECK_EQ(bus[1]->ops->forward(bus[1], 2, 100 + (uint64_t)k, id, 32, (uint64_t)k, (const uint8_t *)"m", 1), 0);
    want = 101;
    CHECK(run_until(forwarded_2, &want, 5));
    CHECK(recs[2].fwd_token == 199 && recs[2].fwd_seq == 99 && (recs[2].fwd_origin & 0xffff) == 1);
    dx_hub_stats hs;
    dx_hub_stats_get(hub, &hs);
    CHECK_EQ(hs.dropped, 0);
}

static void test_detach(void)
{
    /* bus 1: members 5 and 6 in lobby, interest in lobby, hist, gap, room(off) */
    dx_broker_stats before, after;
    dx_hub_engine(hub)->ops->stats(dx_hub_engine(hub), &before);
    interest(1, "only1", 1);
    settle();
    dx_hub_engine(hub)->ops->stats(dx_hub_engine(hub), &before);
    recs[0].nevents = 0;
    /* a POST forwarded to bus 1 and not answered when it goes: its origin hears 404 */
    int nfwd = recs[1].nfwd + 1, nans = recs[0].nans + 1;
    CHECK_EQ(bus[0]->ops->forward(bus[0], 1, 55, "0001", 4, 0, NULL, 0), 0);
    CHECK(run_until(forwarded_1, &nfwd, 5));
    dx_hub_detach(hub, 1);
    settle();
    CHECK_EQ(recs[0].nans, nans);
    CHECK(recs[0].ans_token == 55 && recs[0].ans_status == 404 &&
          strcmp(recs[0].ans_text, "no such session: its worker is gone") == 0);
    CHECK_EQ(find_event(&recs[0], "lobby", 0, 5, "box:101/w1"), 1);
    CHECK_EQ(find_event(&recs[0], "lobby", 0, 6, "box:101/w1"), 1);
    asked a = ask_presence(0, "lobby");
    CHECK(a.ok && a.n == 0);
    dx_hub_engine(hub)->ops->stats(dx_hub_engine(hub), &after);
    CHECK_EQ(after.topics, before.topics - 1);   /* only1 had bus 1 alone */
    /* bus 1 hears its link went */
    CHECK_EQ(recs[1].links, 1);
    CHECK_EQ(recs[1].up, 0);
    CHECK_EQ(publish(1, "room", "late", 1, &none), -1);
    recovered x = { 0 };
    dx_pos since = { 0 };
    bus[1]->ops->recover(bus[1], "hist", 4, &since, &ten, on_recovered, &x);
    CHECK(x.answered == 1 && x.status == DX_RECOVER_UNAVAILABLE);   /* at once */
    dx_broker_stats bs;
    bus[1]->ops->stats(bus[1], &bs);
    CHECK(bs.link_up == 0 && bs.lost == 1 && bs.published > 0 && bs.received > 0);
    bus[1]->ops->free(bus[1]);
    bus[1] = NULL;
    /* publications no longer reach it (nothing crashes either) */
    publish(0, "lobby", "after", 1, &none);
    settle();
    dx_hub_stats hs;
    dx_hub_stats_get(hub, &hs);
    CHECK_EQ(hs.workers, 2);
}

/* A worker that never reads: the hub's queue for it stays bounded, the
 * rest is dropped and counted, and it hears the count once it reads. */
static int raw_fd = -1;

static int write_all(int fd, const dx_wire_buf *b)
{
    size_t at = b->head;
    while (at < b->tail) {
        ssize_t n = write(fd, b->data + at, b->tail - at);
        if (n <= 0)
            return -1;
        at += (size_t)n;
    }
    return 0;
}

static void test_slow_worker(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK_EQ(dx_hub_attach(hub, 3, sv[0]), 0);
    raw_fd = sv[1];
    dx_wire_buf b = { 0 };
    dx_wire_hello(&b, "raw", 3);
    dx_wire_interest(&b, "flood", 5, 1);
    CHECK_EQ(write_all(raw_fd, &b), 0);
    dx_wire_buf_free(&b);
    interest(2, "flood", 1);
    settle();
    size_t big = 1u << 20;
    char *payload = malloc(big + 1);
    memset(payload, 'x', big);
    payload[big] = '\0';
    size_t most = 0;
    for (int k = 0; k < 100; k++) {
        if (publish(0, "flood", payload, 1, &none) < 0)
            CHECK(0);
        if (k % 8 == 7) {
            settle();
            dx_hub_stats hs;
            dx_hub_stats_get(hub, &hs);
            if (hs.queued > most)
                most = hs.queued;
        }
    }
    settle();
    dx_hub_stats hs;
    dx_hub_stats_get(hub, &hs);
    CHECK(most <= DX_HUB_OUT_MAX + big + 4096);
    CHECK(hs.dropped >= 30);
    CHECK_EQ(recs[2].nbig, 100);                  /* the reading worker got every one */
    /* the raw worker reads now: publications, then the count of the dropped */
    uint64_t dropped = hs.dropped, told = 0;
    size_t pubs = 0;
    dx_wire_buf in = { 0 };
    double until = ev_time() + 10;
    while (pubs + told < 100 && ev_time() < until) {
        ev_run(loop, EVRUN_NOWAIT);              /* the hub writes as room comes */
        ssize_t n = dx_wire_recv(&in, raw_fd, 1 << 20);
        if (n < 0 && errno != EAGAIN)
            break;
        dx_wire_msg m;
        while (dx_wire_next(&in, &m) == 1) {
            pubs += m.type == DX_WIRE_PUBLICATION;
            if (m.type == DX_WIRE_DROPPED)
                told += m.count;
        }
    }
    dx_wire_buf_free(&in);
    CHECK_EQ(told, dropped);
    CHECK_EQ(pubs + told, 100);
    free(payload);
}

/* Writes b to fd (non-blocking) while the loop runs, so the hub reads. */
static int drive_write(int fd, const dx_wire_buf *b)
{
    size_t at = b->head;
    double until = ev_time() + 10;
    while (at < b->tail && ev_time() < until) {
        ssize_t n = send(fd, b->data + at, b->tail - at, MSG_DONTWAIT);
        if (n > 0)
            at += (size_t)n;
        else if (errno != EAGAIN)
            return -1;
        ev_run(loop, EVRUN_NOWAIT);
    }
    return at == b->tail ? 0 : -1;
}

static int is_eof(int fd)
{
    char c[4096];
    ssize_t n;
    while ((n = recv(fd, c, sizeof c, MSG_DONTWAIT)) > 0)
        ;
    return n == 0;
}

/* A worker that asks and never reads is cut off once the answers queued
 * for it pass DX_HUB_OUT_CUT: its socket closes, its members leave. */
static void test_cut(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK_EQ(dx_hub_attach(hub, 4, sv[0]), 0);
    dx_hub_stats before, after;
    dx_hub_stats_get(hub, &before);
    size_t fat = 16u << 20;
    uint8_t *info = calloc(1, fat);
    dx_member m = { .conn = 1, .info = info, .info_len = fat };
    dx_wire_buf b = { 0 };
    dx_wire_hello(&b, "asker", 5);
    dx_wire_join(&b, "fat", 3, &m);
    for (uint32_t i = 0; i < 12; i++)             /* 12 answers of 16 MiB: past 128 MiB */
        dx_wire_presence(&b, i, "fat", 3);
    CHECK_EQ(drive_write(sv[1], &b), 0);
    dx_wire_buf_free(&b);
    free(info);
    double until = ev_time() + 10;
    while (!is_eof(sv[1]) && ev_time() < until)
        ev_run(loop, EVRUN_NOWAIT);
    dx_hub_stats_get(hub, &after);
    CHECK_EQ(after.cut, before.cut + 1);
    CHECK_EQ(after.workers, before.workers - 1);
    CHECK(after.queued < DX_HUB_OUT_MAX);          /* its queue went with it */
    asked a = ask_presence(0, "fat");
    CHECK(a.ok && a.n == 0);
    close(sv[1]);
}

/* A worker that sends garbage is cut off. */
static void test_garbage(void)
{
    dx_hub_stats before, after;
    dx_hub_stats_get(hub, &before);
    CHECK(write(raw_fd, "\5\0\0\0Zjunk", 9) == 9);
    char c;
    int eof = 0;
    double until = ev_time() + 5;
    int flags = fcntl(raw_fd, F_GETFL);
    fcntl(raw_fd, F_SETFL, flags | O_NONBLOCK);
    while (!eof && ev_time() < until) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = read(raw_fd, &c, 1);
        eof = n == 0;
    }
    CHECK(eof);
    dx_hub_stats_get(hub, &after);
    CHECK_EQ(after.cut, before.cut + 1);
    CHECK_EQ(after.workers, before.workers - 1);
    close(raw_fd);
}

static int links_down(void *arg)
{
    (void)arg;
    for (int i = 0; i < NBUS; i++)
        if (bus[i] && recs[i].up != 0)
            return 0;
    return 1;
}

/* The hub goes away: every bus says its link is down, a pending request
 * is answered, publishes return -1. */
static void test_hub_gone(void)
{
    for (int i = 0; i < NBUS; i++)
        recs[i].up = 1;
    recovered x = { 0 };
    dx_pos since = { 0 };
    bus[2]->ops->recover(bus[2], "hist", 4, &since, &ten, on_recovered, &x);
    dx_hub_free(hub);
    hub = NULL;
    CHECK(run_until(links_down, NULL, 5));
    CHECK_EQ(recs[0].links, 1);
    CHECK_EQ(recs[2].links, 1);
    CHECK_EQ(x.answered, 1);
    CHECK_EQ(x.status, DX_RECOVER_UNAVAILABLE);
    CHECK_EQ(publish(0, "room", "x", 1, &none), -1);
    CHECK_EQ(publish(2, "hist", "x", 1, &ten), -1);
    asked a = ask_presence(0, "lobby");
    CHECK(a.answered == 1 && a.ok == 0);
    for (int i = 0; i < NBUS; i++)
        if (bus[i]) {
            bus[i]->ops->free(bus[i]);
            bus[i] = NULL;
        }
}

int main(void)
{
    test_wire_fragments();
    setup();
    test_delivery();
    test_history();
    test_recover();
    test_presence();
    test_forward();
    test_detach();
    test_slow_worker();
    test_cut();
    test_garbage();
    test_hub_gone();
    ev_loop_destroy(loop);
    return unit_report("test_bus");
}
