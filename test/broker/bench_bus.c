/* What the in-box bus costs: COUNT publications of 32 bytes from one
 * worker to another, through the hub (three processes: a hub with the
 * memory engine, a publisher and a subscriber, each a bus engine on its
 * own loop, as `duplex run --workers` has them), beside the same records
 * written straight from one process to the other over one socketpair (the
 * lower bound of any design over Unix sockets: one write and one read per
 * batch, one decode per record).
 *
 *   build/broker/bench_bus [COUNT]      (make bench-bus; COUNT 1000000)
 *
 * Prints messages a second (first publish to last delivery) and the CPU
 * (user + system) of every process per message. The publisher keeps at
 * most WINDOW publications unacknowledged (the subscriber publishes an
 * acknowledgement every ACK_EVERY), so no queue drops anything. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "broker/bus.h"
#include "broker/hub.h"
#include "broker/wire.h"

#define WINDOW 65536
#define ACK_EVERY 8192
#define BURST 1024                 /* publications per loop iteration */

static const char payload[33] = "0123456789abcdef0123456789abcdef";
static const dx_history_rule none = { 0, 0 };

typedef struct shared {
    double start, end;
} shared;

static shared *times;
static long count = 1000000;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void publish(dx_broker *b, const char *topic, const void *data, size_t len)
{
    dx_publication p = { .topic = topic, .tlen = strlen(topic), .data = data, .len = len, .from = 1 };
    if (b->ops->publish(b, &p, &none) < 0) {
        fprintf(stderr, "bench_bus: publish failed\n");
        exit(1);
    }
}

static void ignore_presence(void *ud, const char *t, size_t tl, int j, const dx_member *m)
{
    (void)ud, (void)t, (void)tl, (void)j, (void)m;
}

static void on_link(void *ud, int up, const char *why)
{
    (void)ud;
    if (!up) {
        fprintf(stderr, "bench_bus: link down: %s\n", why);
        exit(1);
    }
}

/* ---- the subscriber ---- */

typedef struct sub {
    dx_broker *b;
    long got;
    struct ev_loop *loop;
} sub;

static void sub_pub(void *ud, const dx_publication *p)
{
    sub *s = ud;
    if (p->tlen == 4 && memcmp(p->topic, "ping", 4) == 0) {
        publish(s->b, "ack", "ready", 5);
        return;
    }
    if (++s->got % ACK_EVERY == 0 || s->got == count) {
        char n[24];
        int len = snprintf(n, sizeof n, "%ld", s->got);
        publish(s->b, "ack", n, (size_t)len);
    }
    if (s->got == count) {
        times->end = now();
        ev_break(s->loop, EVBREAK_ALL);
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;              /* keeps the loop running */
}

static void run_subscriber(int fd)
{
    struct ev_loop *loop = ev_loop_new(0);
    sub s = { .loop = loop };
    dx_broker_sink sink = { &s, sub_pub, ignore_presence, on_link, NULL, NULL };
    s.b = dx_bus_broker_new(loop, &sink, fd, "bench:sub");
    s.b->ops->interest(s.b, "room:1", 6, 1);
    s.b->ops->interest(s.b, "ping", 4, 1);         /* after room:1: a ping means room:1 is known */
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 1, 1);
    ev_timer_start(loop, &tick);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    while (ev_run(loop, EVRUN_NOWAIT))             /* the last acknowledgement goes out */
        ;
    s.b->ops->free(s.b);
    ev_loop_destroy(loop);
}

/* ---- the publisher ---- */

typedef struct pubr {
    dx_broker *b;
    long sent, acked;
    int ready;
    struct ev_loop *loop;
    ev_idle idle;
    ev_timer ping;
} pubr;

static void pub_pub(void *ud, const dx_publication *p)
{
    pubr *s = ud;
    if (p->len == 5 && memcmp(p->data, "ready", 5) == 0) {
        if (!s->ready) {
            s->ready = 1;
            ev_timer_stop(s->loop, &s->ping);
            times->start = now();
            ev_idle_start(s->loop, &s->idle);
        }
        return;
    }
    char n[24];
    snprintf(n, sizeof n, "%.*s", (int)(p->len < 20 ? p->len : 20), (const char *)p->data);
    s->acked = atol(n);
    if (s->acked == count)
        ev_break(s->loop, EVBREAK_ALL);
    else if (!ev_is_active(&s->idle))
        ev_idle_start(s->loop, &s->idle);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    pubr *s = w->data;
    for (int i = 0; i < BURST && s->sent < count && s->sent - s->acked < WINDOW; i++, s->sent++)
        publish(s->b, "room:1", payload, 32);
    if (s->sent == count || s->sent - s->acked >= WINDOW)
        ev_idle_stop(loop, w);
}

static void on_ping(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    pubr *s = w->data;
    publish(s->b, "ping", "?", 1);
}

static void run_publisher(int fd)
{
    struct ev_loop *loop = ev_loop_new(0);
    pubr s = { .loop = loop };
    dx_broker_sink sink = { &s, pub_pub, ignore_presence, on_link, NULL, NULL };
    s.b = dx_bus_broker_new(loop, &sink, fd, "bench:pub");
    s.b->ops->interest(s.b, "ack", 3, 1);
    ev_idle_init(&s.idle, on_idle);
    s.idle.data = &s;
    ev_timer_init(&s.ping, on_ping, 0.01, 0.01);
    s.ping.data = &s;
    ev_timer_start(loop, &s.ping);
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 1, 1);
    ev_timer_start(loop, &tick);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    ev_idle_stop(loop, &s.idle);
    ev_timer_stop(loop, &s.ping);
    s.b->ops->free(s.b);
    ev_loop_destroy(loop);
}

/* ---- the hub ---- */

static void on_hub_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    dx_hub_stats st;
    dx_hub_stats_get(w->data, &st);
    if (st.workers == 0)
        ev_break(loop, EVBREAK_ALL);
}

static void run_hub(int fd0, int fd1)
{
    struct ev_loop *loop = ev_loop_new(0);
    dx_hub *hub = dx_hub_new(loop, NULL, NULL);
    dx_hub_attach(hub, 0, fd0);
    dx_hub_attach(hub, 1, fd1);
    ev_timer tick;
    ev_timer_init(&tick, on_hub_tick, 0.01, 0.01);
    tick.data = hub;
    ev_timer_start(loop, &tick);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    dx_hub_stats st;
    dx_hub_stats_get(hub, &st);
    fprintf(stderr, "  hub: %llu records in, %llu routed, %llu dropped, %.1f MB in, %.1f MB out\n",
            (unsigned long long)st.received, (unsigned long long)st.routed, (unsigned long long)st.dropped,
            (double)st.bytes_in / 1e6, (double)st.bytes_out / 1e6);
    dx_hub_free(hub);
    ev_loop_destroy(loop);
}

/* ---- the lower bound: one socketpair, the same records ---- */

static void write_all(int fd, dx_wire_buf *b)
{
    while (dx_wire_pending(b)) {
        ssize_t n = write(fd, b->data + b->head, dx_wire_pending(b));
        if (n <= 0) {
            perror("bench_bus: write");
            exit(1);
        }
        b->head += (size_t)n;
    }
    b->head = b->tail = 0;
}

static void direct_writer(int fd)
{
    dx_wire_buf out = { 0 };
    dx_publication p = { .topic = "room:1", .tlen = 6, .data = (const uint8_t *)payload, .len = 32 };
    times->start = now();
    for (long sent = 0; sent < count;) {
        for (int i = 0; i < BURST && sent < count; i++, sent++)
            dx_wire_publication(&out, &p, 0);
        write_all(fd, &out);
    }
    dx_wire_buf_free(&out);
}

static void direct_reader(int fd)
{
    dx_wire_buf in = { 0 };
    long got = 0;
    volatile size_t sum = 0;
    while (got < count) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        poll(&pfd, 1, -1);                          /* block until there is something */
        ssize_t n = dx_wire_recv(&in, fd, 262144);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        dx_wire_msg m;
        while (dx_wire_next(&in, &m) == 1) {
            sum += m.pub.len;
            got++;
        }
    }
    times->end = now();
    dx_wire_buf_free(&in);
    if (got != count)
        fprintf(stderr, "bench_bus: direct: %ld of %ld\n", got, count);
}

/* ---- running and reporting ---- */

typedef struct child {
    pid_t pid;
    const char *name;
    struct rusage ru;
} child;

static double cpu_of(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 + (double)ru->ru_stime.tv_sec +
           (double)ru->ru_stime.tv_usec / 1e6;
}

static void report(const char *what, child *c, int n)
{
    for (int i = 0; i < n; i++)
        if (wait4(c[i].pid, NULL, 0, &c[i].ru) < 0)
            perror("bench_bus: wait4");
    double secs = times->end - times->start, cpu = 0;
    printf("%-26s %10.0f msg/s  %6.3f s", what, (double)count / secs, secs);
    for (int i = 0; i < n; i++) {
        cpu += cpu_of(&c[i].ru);
        printf("  %s %4.0f ns", c[i].name, cpu_of(&c[i].ru) / (double)count * 1e9);
    }
    printf("  | CPU %4.0f ns/msg\n", cpu / (double)count * 1e9);
    fflush(stdout);
}

static pid_t spawn(void (*fn)(int, int), int a, int b, int close1, int close2, int close3)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (close1 >= 0) close(close1);
        if (close2 >= 0) close(close2);
        if (close3 >= 0) close(close3);
        fn(a, b);
        _exit(0);
    }
    return pid;
}

static void hub_main(int a, int b) { run_hub(a, b); }
static void pub_main(int a, int b) { (void)b; run_publisher(a); }
static void sub_main(int a, int b) { (void)b; run_subscriber(a); }
static void writer_main(int a, int b) { (void)b; direct_writer(a); }
static void reader_main(int a, int b) { (void)b; direct_reader(a); }

static void bench_hub(void)
{
    int p[2], s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0) {
        perror("bench_bus: socketpair");
        exit(1);
    }
    child c[3] = { { .name = "hub" }, { .name = "pub" }, { .name = "sub" } };
    c[0].pid = spawn(hub_main, p[0], s[0], p[1], s[1], -1);
    c[1].pid = spawn(pub_main, p[1], -1, p[0], s[0], s[1]);
    c[2].pid = spawn(sub_main, s[1], -1, p[0], s[0], p[1]);
    close(p[0]), close(p[1]), close(s[0]), close(s[1]);
    report("worker -> hub -> worker", c, 3);
}

static void bench_direct(void)
{
    int d[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, d) < 0) {
        perror("bench_bus: socketpair");
        exit(1);
    }
    child c[2] = { { .name = "writer" }, { .name = "reader" } };
    c[0].pid = spawn(writer_main, d[0], -1, d[1], -1, -1);
    c[1].pid = spawn(reader_main, d[1], -1, d[0], -1, -1);
    close(d[0]), close(d[1]);
    report("worker -> worker (direct)", c, 2);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        count = atol(argv[1]);
    if (count < 1)
        count = 1000000;
    times = mmap(NULL, sizeof *times, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (times == MAP_FAILED) {
        perror("bench_bus: mmap");
        return 1;
    }
    printf("%ld publications of 32 bytes, batches of %d\n", count, BURST);
    bench_direct();
    bench_hub();
    return 0;
}
