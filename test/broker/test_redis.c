/* The Redis engine against a real redis-server: two engines ("nodes") on
 * one loop, a redis-server of our own on a free port in a temporary
 * directory, killed, stopped and restarted under them.
 *
 * Waits are on events with deadlines, never on the clock alone; a wait
 * for nothing to happen (no delivery without interest) is closed by a
 * later event that would have come after it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ev.h>
#include <hiredis/hiredis.h>
#include "../unit/unit.h"
#include "broker/redis.h"

static struct ev_loop *loop;
static char tmpdir[] = "/tmp/dx-redis-XXXXXX";
static int port;
static pid_t redis_pid;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the redis-server ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        exit(2);
    close(fd);
    return ntohs(a.sin_port);
}

static int can_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void redis_start(void)
{
    char portstr[12], log[300];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", tmpdir);
    if ((redis_pid = fork()) == 0) {
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmpdir, "--logfile", log, (char *)NULL);
        _exit(127);
    }
    for (double end = now() + 5; now() < end; usleep(10000))
        if (can_connect())
            return;
    fprintf(stderr, "redis-server did not start on port %d\n", port);
    exit(2);
}

static void redis_kill(void)
{
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
}

/* A command on a blocking connection of the test's own (FLUSHALL). */
static void redis_admin(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, cmd) : NULL;
    CHECK(r && r->type != REDIS_REPLY_ERROR);
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
}

/* Subscribers Redis counts on channel (PUBSUB NUMSUB). */
static long long redis_numsub(const char *channel)
{
    long long n = -1;
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, "PUBSUB NUMSUB %s", channel) : NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER)
        n = r->element[1]->integer;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return n;
}

/* ---- nodes: an engine and what its sink saw ---- */

#define MAX_SEEN 2048

typedef struct seen {
    char topic[32];
    char data[64];
    int binary;
    int positioned;
    dx_pos pos;
    uint64_t from;
} seen;

typedef struct node {
    dx_broker *b;
    const char *name;
    seen *got;
    size_t ngot;
    int up, ups, downs;
    int joins, leaves;
    uint64_t last_conn;
    char last_member_node[32];
} node;

static void on_publication(void *ud, const dx_publication *p)
{
    node *n = ud;
    if (n->ngot == MAX_SEEN)
        return;
    seen *s = &n->got[n->ngot++];
    snprintf(s->topic, sizeof s->topic, "%.*s", (int)p->tlen, p->topic);
    snprintf(s->data, sizeof s->data, "%.*s", (int)p->len, (const char *)p->data);
    s->binary = p->binary;
    s->positioned = p->pos != NULL;
    s->from = p->from;
    if (p->pos)
        s->pos = *p->pos;
}

static void on_presence(void *ud, const char *topic, size_t tlen, int joined, const dx_member *m)
{
    node *n = ud;
    (void)topic;
    (void)tlen;
    if (joined)
        n->joins++;
    else
        n->leaves++;
    n->last_conn = m->conn;
    snprintf(n->last_member_node, sizeof n->last_member_node, "%.*s", (int)m->node_len, m->node);
}

static void on_link(void *ud, int up, const char *why)
{
    node *n = ud;
    (void)why;
    n->up = up;
    if (up)
        n->ups++;
    else
        n->downs++;
}

static void node_open(node *n, const char *name)
{
    dx_redis_config cfg;
    char err[200];
    dx_redis_config_init(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = port;
    snprintf(cfg.node, sizeof cfg.node, "%s", name);
    snprintf(cfg.prefix, sizeof cfg.prefix, "t:");
    cfg.presence_ttl = 1.5;
    cfg.probe_interval = 0.2;
    cfg.probe_timeout = 0.5;
    cfg.reconnect_min = 0.05;
    cfg.reconnect_max = 0.4;
    memset(n, 0, sizeof *n);
    n->name = name;
    n->got = calloc(MAX_SEEN, sizeof *n->got);
    dx_broker_sink sink = { n, on_publication, on_presence, on_link, NULL, NULL };
    n->b = dx_redis_broker_new(loop, &sink, &cfg, err, sizeof err);
    if (n->b == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
}

static void node_close(node *n)
{
    n->b->ops->free(n->b);
    free(n->got);
    n->b = NULL;
}

static dx_broker_stats stats_of(node *n)
{
    dx_broker_stats st;
    n->b->ops->stats(n->b, &st);
    return st;
}

/* ---- driving the loop ---- */

static void tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Runs the loop until cond(arg) or timeout seconds; returns cond's last value. */
static int run_until(int (*cond)(void *), void *arg, double timeout)
{
    double end = now() + timeout;
    while (!cond(arg) && now() < end)
        ev_run(loop, EVRUN_ONCE);
    return cond(arg);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void run_for(double seconds)
{
    run_until(never, NULL, seconds);
}

static int both_up_cond(void *arg)
{
    node **n = arg;
    return n[0]->up && n[1]->up;
}

static int got_at_least_cond(void *arg)
{
    node *n = ((void **)arg)[0];
    return n->ngot >= *(size_t *)((void **)arg)[1];
}

static int got_at_least(node *n, size_t count, double timeout)
{
    void *arg[] = { n, &count };
    return run_until(got_at_least_cond, arg, timeout);
}

/* ---- recover ---- */

typedef struct answer {
    int done, status;
    size_t n;
    uint64_t first;
    char data[MAX_SEEN][16];
    dx_pos top;
} answer;

static void on_recover(void *arg, int status, const dx_publication *e, size_t n, const dx_pos *top)
{
    answer *a = arg;
    a->done++;
    a->status = status;
    a->n = n;
    a->first = n ? e[0].pos->offset : 0;
    for (size_t i = 0; i < n && i < MAX_SEEN; i++)
        snprintf(a->data[i], sizeof a->data[i], "%.*s", (int)e[i].len, (const char *)e[i].data);
    if (top)
        a->top = *top;
}

static int answered_cond(void *arg)
{
    return ((answer *)arg)->done > 0;
}

static answer *recover(node *n, const char *topic, const char *epoch, uint64_t since, size_t size)
{
    static answer a;
    memset(&a, 0, sizeof a);
    dx_pos p = { since, "" };
    snprintf(p.epoch, sizeof p.epoch, "%s", epoch);
    dx_history_rule h = { size, 0 };
    n->b->ops->recover(n->b, topic, strlen(topic), &p, &h, on_recover, &a);
    run_until(answered_cond, &a, 5);
    return &a;
}

/* Interest in topic, and a wait until its subscription is confirmed (a
 * recover is answered only then). */
static void subscribe(node *n, const char *topic)
{
    n->b->ops->interest(n->b, topic, strlen(topic), 1);
    CHECK_EQ(recover(n, topic, "sync", 0, 1)->done, 1);
}

static int publish(node *n, const char *topic, const char *data, size_t history)
{
    dx_publication p = { .topic = topic, .tlen = strlen(topic), .data = (const uint8_t *)data,
                         .len = strlen(data), .from = 77 };
    dx_history_rule h = { history, 0 };
    return n->b->ops->publish(n->b, &p, &h);
}

/* ---- the tests ---- */

static node A, B;
static node *both[] = { &A, &B };

static void test_delivery(void)
{
    subscribe(&B, "chat");
    subscribe(&A, "chat");
    char msg[32];
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        CHECK_EQ(publish(&A, "chat", msg, 0), 0);
    }
    CHECK(got_at_least(&B, 100, 5));
    run_for(0.2);                                /* room for a duplicate */
    CHECK_EQ(B.ngot, 100);
    int in_order = 1;
    for (size_t i = 0; i < B.ngot; i++) {
        snprintf(msg, sizeof msg, "m%zu", i);
        in_order &= strcmp(B.got[i].data, msg) == 0 && strcmp(B.got[i].topic, "chat") == 0
                    && !B.got[i].positioned;
    }
    CHECK(in_order);
    CHECK_EQ(A.ngot, 0);                         /* its own: delivered when published */
    CHECK_EQ(stats_of(&A).published, 100);
    CHECK_EQ(stats_of(&B).received, 100);
    CHECK_EQ(stats_of(&B).topics, 1);
    B.ngot = A.ngot = 0;
}

static void test_interest(void)
{
    CHECK_EQ(publish(&A, "nobody", "x", 0), 0);  /* no node has interest */
    B.b->ops->interest(B.b, "chat", 4, 0);
    subscribe(&B, "other");                      /* after the UNSUBSCRIBE, on the same connection */
    CHECK_EQ(stats_of(&B).topics, 1);
    CHECK_EQ(redis_numsub("t:ch:chat"), 1);      /* A's; B's is gone */
    CHECK_EQ(redis_numsub("t:ch:other"), 1);
    CHECK_EQ(publish(&A, "chat", "lost", 0), 0);
    CHECK_EQ(publish(&A, "other", "kept", 0), 0);
    CHECK(got_at_least(&B, 1, 5));               /* what came before it would be here */
    CHECK_EQ(B.ngot, 1);
    CHECK(strcmp(B.got[0].data, "kept") == 0);
    B.ngot = 0;
}

static void test_history(void)
{
    subscribe(&A, "hist");
    subscribe(&B, "hist");
    A.ngot = B.ngot = 0;
    char msg[16];
    for (int i = 1; i <= 3; i++) {
        snprintf(msg, sizeof msg, "h%d", i);
        CHECK_EQ(publish(&A, "hist", msg, 5), 0);
    }
    CHECK(got_at_least(&A, 3, 5));               /* positioned: back to the publisher too */
    CHECK(got_at_least(&B, 3, 5));
    int ok = A.ngot == 3 && B.ngot == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = A.got[i].positioned && B.got[i].positioned && A.got[i].pos.offset == i + 1
             && B.got[i].pos.offset == i + 1 && strcmp(A.got[i].pos.epoch, A.got[0].pos.epoch) == 0
             && strcmp(B.got[i].pos.epoch, A.got[0].pos.epoch) == 0
             && strcmp(B.got[i].data, (char[]){ 'h', (char)('1' + i), 0 }) == 0
             && A.got[i].from == 77 && B.got[i].from == 0;   /* the publisher, for its own node only */
    CHECK(ok);
    char epoch[DX_EPOCH_MAX + 1];
    snprintf(epoch, sizeof epoch, "%s", A.got[0].pos.epoch);
    CHECK(strlen(epoch) > 0);

    answer *a = recover(&B, "hist", epoch, 1, 5);
    CHECK_EQ(a->status, DX_RECOVERED);
    CHECK_EQ(a->n, 2);
    CHECK_EQ(a->first, 2);
    CHECK(strcmp(a->data[0], "h2") == 0 && strcmp(a->data[1], "h3") == 0);
    CHECK_EQ(a->top.offset, 3);
    a = recover(&B, "hist", epoch, 3, 5);
    CHECK_EQ(a->status, DX_RECOVERED);
    CHECK_EQ(a->n, 0);

    for (int i = 4; i <= 10; i++) {              /* the stream keeps 6..10 */
        snprintf(msg, sizeof msg, "h%d", i);
        CHECK_EQ(publish(&A, "hist", msg, 5), 0);
    }
    CHECK(got_at_least(&B, 10, 5));
    a = recover(&B, "hist", epoch, 2, 5);
    CHECK_EQ(a->status, DX_RECOVER_TOO_OLD);
    CHECK_EQ(a->top.offset, 10);
    a = recover(&B, "hist", epoch, 5, 5);
    CHECK_EQ(a->status, DX_RECOVERED);
    CHECK_EQ(a->n, 5);
    CHECK_EQ(a->first, 6);
    CHECK(strcmp(a->data[4], "h10") == 0);
    a = recover(&B, "hist", "otherepoch", 5, 5);
    CHECK_EQ(a->status, DX_RECOVER_EPOCH);
    a = recover(&B, "hist", "", 0, 5);           /* no epoch: the newest kept, a newcomer's */
    CHECK_EQ(a->status, DX_RECOVERED);
    CHECK_EQ(a->n, 5);
    CHECK_EQ(a->first, 6);

    redis_admin("FLUSHALL");                     /* the history is lost: a new epoch */
    a = recover(&B, "hist", epoch, 10, 5);
    CHECK_EQ(a->status, DX_RECOVER_EPOCH);
    CHECK_EQ(a->top.offset, 0);
    CHECK(strcmp(a->top.epoch, epoch) != 0);
    CHECK_EQ(publish(&A, "hist", "after", 5), 0);
    CHECK(got_at_least(&B, 11, 5));
    CHECK(got_at_least(&A, 11, 5));
    CHECK_EQ(B.got[10].pos.offset, 1);
    CHECK(strcmp(B.got[10].pos.epoch, a->top.epoch) == 0);

    A.b->ops->interest(A.b, "fresh", 5, 1);     /* published before its SUBSCRIBE is confirmed */
    size_t had = A.ngot;
    CHECK_EQ(publish(&A, "fresh", "first", 5), 0);
    CHECK(got_at_least(&A, had + 1, 5));
    CHECK(A.got[had].positioned && A.got[had].pos.offset == 1 && strcmp(A.got[had].data, "first") == 0);
    A.b->ops->interest(A.b, "fresh", 5, 0);

    redis_admin("SCRIPT FLUSH");                 /* EVALSHA fails: EVAL, and the scripts again */
    CHECK_EQ(publish(&A, "hist", "flushed", 5), 0);
    CHECK(got_at_least(&B, 12, 5));
    CHECK_EQ(B.got[11].pos.offset, 2);
    CHECK_EQ(stats_of(&A).lost, 0);
    a = recover(&B, "hist", B.got[11].pos.epoch, 1, 5);
    CHECK_EQ(a->status, DX_RECOVERED);
    CHECK_EQ(a->n, 1);

    dx_history_rule none = { 0, 0 };
    dx_pos since = { 1, "x" };
    answer n = { 0 };
    B.b->ops->recover(B.b, "hist", 4, &since, &none, on_recover, &n);
    CHECK_EQ(n.done, 1);
    CHECK_EQ(n.status, DX_RECOVER_NO_HISTORY);
    A.ngot = B.ngot = 0;
}

static int a_down_cond(void *arg)
{
    (void)arg;
    return !A.up;
}

static void test_probe(void)
{
    uint64_t reconnects = stats_of(&A).reconnects;
    kill(redis_pid, SIGSTOP);                    /* silent: no FIN, no RST */
    double t0 = now();
    CHECK(run_until(a_down_cond, NULL, 3));
    double took = now() - t0;
    CHECK(took <= 0.2 + 0.5 + 0.3);              /* probe interval + timeout, and some slack */
    CHECK_EQ(stats_of(&A).link_up, 0);
    CHECK_EQ(publish(&A, "chat", "while stopped", 0), -1);
    kill(redis_pid, SIGCONT);
    CHECK(run_until(both_up_cond, both, 5));
    CHECK(stats_of(&A).reconnects > reconnects);
}

static node *steady;
static int steady_seq, steady_lost;

static void steady_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    char msg[16];
    (void)l;
    (void)w;
    (void)revents;
    snprintf(msg, sizeof msg, "%d", steady_seq++);
    if (publish(steady, "ticks", msg, 0) < 0)
        steady_lost++;
}

static int both_down_cond(void *arg)
{
    (void)arg;
    return !A.up && !B.up;
}

static void test_outage(void)
{
    subscribe(&B, "ticks");
    B.ngot = 0;
    dx_broker_stats a0 = stats_of(&A), b0 = stats_of(&B);
    ev_timer pub;
    steady = &A;
    ev_timer_init(&pub, steady_cb, 0.002, 0.002);
    ev_timer_start(loop, &pub);
    CHECK(got_at_least(&B, 50, 5));
    redis_kill();
    CHECK(run_until(both_down_cond, NULL, 3));
    int lost_before = steady_lost;
    run_for(0.3);                                /* publishing into the outage */
    CHECK(steady_lost > lost_before);
    CHECK_EQ(publish(&A, "hist", "no redis", 5), -1);
    ev_timer_stop(loop, &pub);                   /* before B can be back: what B misses while
                                                  * it resubscribes is not A's to count */
    redis_start();
    CHECK(run_until(both_up_cond, both, 5));
    subscribe(&B, "ticks");                      /* resubscribed by the engine: confirmed */
    CHECK(B.ngot > 0);
    size_t before = B.ngot;
    char msg[16];
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof msg, "%d", steady_seq++);
        CHECK_EQ(publish(&A, "ticks", msg, 0), 0);
    }
    CHECK(got_at_least(&B, before + 20, 5));
    run_for(0.1);
    int increasing = 1;
    for (size_t i = 1; i < B.ngot; i++)
        increasing &= atoi(B.got[i].data) > atoi(B.got[i - 1].data);
    CHECK(increasing);                           /* in order, never twice */
    CHECK_EQ(atoi(B.got[B.ngot - 1].data), steady_seq - 1);
    dx_broker_stats a1 = stats_of(&A), b1 = stats_of(&B);
    uint64_t published = a1.published - a0.published - 1;   /* the "no redis" one is not a tick */
    CHECK_EQ(published, (uint64_t)steady_seq);
    /* Nothing lost quietly: every tick reached B or was counted lost. */
    if (!CHECK(B.ngot + (a1.lost - a0.lost - 1) >= published))
        fprintf(stderr, "    received %zu, lost %llu, published %llu\n", B.ngot,
                (unsigned long long)(a1.lost - a0.lost - 1), (unsigned long long)published);
    CHECK(B.ngot <= published);
    CHECK(a1.reconnects > a0.reconnects && b1.reconnects > b0.reconnects);
    CHECK_EQ(a1.link_up, 1);
    B.ngot = 0;
}

typedef struct listing {
    int done, ok;
    size_t n;
    char nodes[8][32];
    char infos[8][32];
} listing;

static void on_list(void *arg, int ok, const dx_member *m, size_t n)
{
    listing *l = arg;
    l->done++;
    l->ok = ok;
    l->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(l->nodes[i], sizeof l->nodes[i], "%.*s", (int)m[i].node_len, m[i].node);
        snprintf(l->infos[i], sizeof l->infos[i], "%.*s", (int)m[i].info_len, (const char *)m[i].info);
    }
}

static int listed_cond(void *arg)
{
    return ((listing *)arg)->done > 0;
}

static listing *list_members(node *n, const char *topic)
{
    static listing l;
    memset(&l, 0, sizeof l);
    n->b->ops->presence(n->b, topic, strlen(topic), on_list, &l);
    run_until(listed_cond, &l, 5);
    return &l;
}

static int events_cond(void *arg)
{
    int *want = arg;
    return A.joins >= want[0] && B.joins >= want[0] && A.leaves >= want[1] && B.leaves >= want[1];
}

static int a_leaves_cond(void *arg)
{
    return A.leaves >= *(int *)arg;
}

static void test_presence(void)
{
    subscribe(&A, "room");
    subscribe(&B, "room");
    dx_member alice = { 1, "a", 1, (const uint8_t *)"alice", 5 };
    dx_member bob = { 2, "b", 1, (const uint8_t *)"bob", 3 };
    A.b->ops->join(A.b, "room", 4, &alice);
    B.b->ops->join(B.b, "room", 4, &bob);
    int want[2] = { 2, 0 };
    CHECK(run_until(events_cond, want, 5));
    listing *l = list_members(&A, "room");
    CHECK(l->ok && l->n == 2);
    int alice_seen = 0, bob_seen = 0;
    for (size_t i = 0; i < l->n; i++) {
        alice_seen += strcmp(l->nodes[i], "a") == 0 && strcmp(l->infos[i], "alice") == 0;
        bob_seen += strcmp(l->nodes[i], "b") == 0 && strcmp(l->infos[i], "bob") == 0;
    }
    CHECK(alice_seen == 1 && bob_seen == 1);

    B.b->ops->leave(B.b, "room", 4, &bob);
    want[1] = 1;
    CHECK(run_until(events_cond, want, 5));
    CHECK_EQ(A.last_conn, 2);
    CHECK(strcmp(A.last_member_node, "b") == 0);
    CHECK_EQ(A.joins, 2);                        /* refreshes announce nothing */
    run_for(1.0);
    CHECK_EQ(A.joins, 2);
    dx_member renamed = alice;                   /* joining again with a new table: a join */
    renamed.info = (const uint8_t *)"alicia";
    renamed.info_len = 6;
    A.b->ops->join(A.b, "room", 4, &renamed);
    want[0] = 3;
    CHECK(run_until(events_cond, want, 5));
    CHECK_EQ(B.joins, 3);
    CHECK_EQ(list_members(&B, "room")->n, 1);

    dx_member carol = { 3, "b", 1, (const uint8_t *)"carol", 5 };
    B.b->ops->join(B.b, "room", 4, &carol);
    want[0] = 4;
    CHECK(run_until(events_cond, want, 5));
    node_close(&B);                              /* a node killed: carol is never left */
    double t0 = now();
    int leaves = 2;
    CHECK(run_until(a_leaves_cond, &leaves, 4));
    double took = now() - t0;
    CHECK(took <= 1.5 + 0.5 + 0.5);              /* presence_ttl, the cleanup period, slack */
    CHECK(took >= 1.0);                          /* not at once: it expired */
    CHECK_EQ(A.last_conn, 3);
    l = list_members(&A, "room");
    CHECK(l->ok && l->n == 1 && strcmp(l->infos[0], "alicia") == 0);
}

static int a_joins_cond(void *arg)
{
    return A.joins >= *(int *)arg;
}

/* A member joining as its node's subscription to the topic is only being
 * made (ws:subscribe(topic, { presence = ... }) on a topic new here): its
 * node hears its join too (sent once the SUBSCRIBE is confirmed). */
static void test_first_join(void)
{
    int want = A.joins + 1;
    A.b->ops->interest(A.b, "lobby", 5, 1);
    dx_member dora = { 4, "a", 1, (const uint8_t *)"dora", 4 };
    A.b->ops->join(A.b, "lobby", 5, &dora);
    CHECK(run_until(a_joins_cond, &want, 3));
    CHECK_EQ(A.last_conn, 4);
    A.b->ops->leave(A.b, "lobby", 5, &dora);
    A.b->ops->interest(A.b, "lobby", 5, 0);
}

static void test_url(void)
{
    dx_redis_config c;
    char err[200];
    dx_redis_config_init(&c);
    CHECK_EQ(dx_redis_url_parse("redis://:s3cr@t@cache.local:6380/2", &c, err, sizeof err), 0);
    CHECK(strcmp(c.host, "cache.local") == 0 && strcmp(c.password, "s3cr@t") == 0);
    CHECK_EQ(c.port, 6380);
    CHECK_EQ(c.db, 2);
    CHECK_EQ(dx_redis_url_parse("redis://[::1]", &c, err, sizeof err), 0);
    CHECK(strcmp(c.host, "::1") == 0 && c.port == 6379 && c.db == 0 && c.password[0] == 0);
    CHECK_EQ(dx_redis_url_parse("http://x", &c, err, sizeof err), -1);
    CHECK(strstr(err, "expected redis://") != NULL);
    CHECK_EQ(dx_redis_url_parse("redis://user:pw@x", &c, err, sizeof err), -1);
    CHECK(strstr(err, "user name") != NULL);
    CHECK_EQ(dx_redis_url_parse("redis://x:99999", &c, err, sizeof err), -1);
    CHECK_EQ(dx_redis_url_parse("redis://x/db", &c, err, sizeof err), -1);
    CHECK_EQ(dx_redis_url_parse("redis://:pw@", &c, err, sizeof err), -1);
}

/* Clients Redis has connected (INFO clients), the asking one left out. */
static long long redis_clients(void)
{
    long long n = -1;
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, "INFO clients") : NULL;
    const char *at = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "connected_clients:") : NULL;
    if (at)
        n = atoll(at + strlen("connected_clients:")) - 1;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return n;
}

static long long clients_wanted;

static int clients_cond(void *arg)
{
    (void)arg;
    return redis_clients() == clients_wanted;
}

/* A process forked from a node's (a worker forked by the hub's supervisor)
 * lets go of Redis's sockets (ops->forked): when the node closes its
 * connections, Redis sees them go while the child still lives. */
static void test_forked(void)
{
    node c;
    node *one[] = { &c, &c };
    long long before = redis_clients();
    node_open(&c, "c");
    CHECK(run_until(both_up_cond, one, 5));
    clients_wanted = before + 2;                 /* the commands and the subscriptions */
    CHECK(run_until(clients_cond, NULL, 2));
    int hold[2];
    CHECK(pipe(hold) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(hold[1]);
        c.b->ops->forked(c.b);
        char byte;
        while (read(hold[0], &byte, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(hold[0]);
    node_close(&c);
    clients_wanted = before;
    CHECK(run_until(clients_cond, NULL, 3));      /* the child lives on */
    close(hold[1]);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_url();
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    port = free_port();
    redis_start();
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer ticker;                             /* EVRUN_ONCE returns at least this often */
    ev_timer_init(&ticker, tick, 0.01, 0.01);
    ev_timer_start(loop, &ticker);
    node_open(&A, "a");
    node_open(&B, "b");
    CHECK(run_until(both_up_cond, both, 5));
    CHECK_EQ(A.ups, 1);
    CHECK_EQ(A.downs, 0);

    test_delivery();
    test_interest();
    test_history();
    test_probe();
    test_outage();
    test_presence();
    test_first_join();
    test_forked();

    node_close(&A);
    ev_timer_stop(loop, &ticker);
    ev_loop_destroy(loop);
    redis_kill();
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return unit_report("test_redis");
}
