/* The bus engine (broker/bus.h): the broker interface carried over a Unix
 * socket to the supervisor's hub. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "broker/bus.h"
#include "broker/wire.h"

#define DX_BUS_READ 262144         /* bytes read at most per recv */
#define DX_BUS_READS 4             /* recvs at most per loop iteration */

/* A request waiting for the hub's answer. */
typedef struct bus_req {
    struct bus_req *next;
    uint32_t id;
    dx_recover_done recovered;     /* one of the two */
    dx_presence_done members;
    void *arg;
} bus_req;

typedef struct bus {
    dx_broker base;
    struct ev_loop *loop;
    int fd;                        /* -1 once the link is down */
    ev_io rio, wio;
    dx_wire_buf in, out;
    bus_req *reqs, **reqs_tail;    /* in the order asked (the hub answers in that order, mostly) */
    uint32_t next_id;
    int busy;                      /* in a callback of the loop: free waits for it */
    int freed;
    dx_broker_stats stats;
} bus;

static void answer_unavailable(bus_req *r)
{
    if (r->recovered)
        r->recovered(r->arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
    else
        r->members(r->arg, 0, NULL, 0);
    free(r);
}

/* Answers every pending request as the engine cannot. */
static void fail_requests(bus *b)
{
    while (b->reqs) {
        bus_req *r = b->reqs;
        b->reqs = r->next;
        if (b->reqs == NULL)
            b->reqs_tail = &b->reqs;
        answer_unavailable(r);
    }
}

/* The link is down for good. The input buffer is left to the reader (it
 * may be in the middle of it). */
static void link_down(bus *b, const char *why)
{
    if (b->fd < 0)
        return;
    ev_ref(b->loop);
    ev_io_stop(b->loop, &b->rio);
    ev_io_stop(b->loop, &b->wio);
    close(b->fd);
    b->fd = -1;
    dx_wire_buf_free(&b->out);
    b->stats.link_up = 0;
    b->base.sink.link(b->base.sink.ud, 0, why);
    fail_requests(b);
}

/* Something was queued: it goes out at the next iteration. */
static void want_write(bus *b)
{
    if (b->fd >= 0 && !ev_is_active(&b->wio))
        ev_io_start(b->loop, &b->wio);
}

static int full(const bus *b)
{
    return dx_wire_pending(&b->out) >= DX_BUS_OUT_MAX;
}

/* ---- what the hub sends ---- */

static bus_req *take_req(bus *b, uint32_t id)
{
    for (bus_req **pp = &b->reqs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            bus_req *r = *pp;
            *pp = r->next;
            if (*pp == NULL)
                b->reqs_tail = pp;
            return r;
        }
    return NULL;
}

static int on_recovered(bus *b, dx_wire_msg *m)
{
    bus_req *r = take_req(b, m->id);
    size_t n = (size_t)m->count;
    dx_publication *list = n ? malloc(n * sizeof *list) : NULL;
    dx_pos *pos = n ? malloc(n * sizeof *pos) : NULL;
    int ok = !n || (list && pos);
    for (size_t i = 0; ok && i < n; i++)
        if (dx_wire_entry(m, &list[i], &pos[i]) != 1)
            ok = -1;
    dx_publication extra;
    dx_pos extra_pos;
    if (ok == 1 && dx_wire_entry(m, &extra, &extra_pos) != 0)
        ok = -1;                                   /* more than it said */
    if (r && r->recovered) {
        if (ok == 1)
            r->recovered(r->arg, m->flag, list, n, m->has_pos ? &m->pos : NULL);
        else
            r->recovered(r->arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        free(r);
    } else if (r) {
        answer_unavailable(r);
    }
    free(list);
    free(pos);
    return ok < 0 ? -1 : 0;
}

static int on_members(bus *b, dx_wire_msg *m)
{
    bus_req *r = take_req(b, m->id);
    size_t n = (size_t)m->count;
    dx_member *list = n ? malloc(n * sizeof *list) : NULL;
    int ok = !n || list;
    for (size_t i = 0; ok && i < n; i++)
        if (dx_wire_member(m, &list[i]) != 1)
            ok = -1;
    dx_member extra;
    if (ok == 1 && dx_wire_member(m, &extra) != 0)
        ok = -1;
    if (r && r->members) {
        if (ok == 1)
            r->members(r->arg, m->flag, list, n);
        else
            r->members(r->arg, 0, NULL, 0);
        free(r);
    } else if (r) {
        answer_unavailable(r);
    }
    free(list);
    return ok < 0 ? -1 : 0;
}

/* One record from the hub: 0, or -1 when it makes no sense here. */
static int dispatch(bus *b, dx_wire_msg *m)
{
    const dx_broker_sink *s = &b->base.sink;
    switch (m->type) {
    case DX_WIRE_PUBLICATION:
        b->stats.received++;
        s->publication(s->ud, &m->pub);
        return 0;
    case DX_WIRE_EVENT:
        s->presence(s->ud, m->topic, m->tlen, m->flag, &m->member);
        return 0;
    case DX_WIRE_RECOVERED:
        return on_recovered(b, m);
    case DX_WIRE_MEMBERS:
        return on_members(b, m);
    case DX_WIRE_DROPPED:
        b->stats.lost += m->count;
        return 0;
    case DX_WIRE_LINK: {
        char why[128];
        snprintf(why, sizeof why, "%.*s", (int)(m->text_len < 100 ? m->text_len : 100), m->text);
        s->link(s->ud, m->flag, why);
        return 0;
    }
    case DX_WIRE_FORWARDED:
        if (s->forwarded) {
            s->forwarded(s->ud, m->worker, m->token, m->text, m->text_len, m->seq, m->data, m->len);
        } else if (b->fd >= 0) {                   /* no node to run it: the origin hears so */
            static const char why[] = "no such session: this worker takes no forwarded POSTs";
            if (dx_wire_answer(&b->out, DX_WIRE_ANSWER, m->worker, m->token, 404, why, sizeof why - 1) == 0)
                want_write(b);
        }
        return 0;
    case DX_WIRE_ANSWERED:
        if (s->answered)
            s->answered(s->ud, m->token, (int)m->status, m->text, m->text_len);
        return 0;
    default:
        return -1;                                 /* a worker's record, sent to a worker */
    }
}

static void bus_destroy(bus *b);

/* Around what may call the sink (which may free the engine): 1 when the
 * engine is gone at the end. */
static void enter(bus *b)
{
    b->busy++;
}

static int leave_engine(bus *b)
{
    if (--b->busy || !b->freed)
        return 0;
    bus_destroy(b);
    return 1;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bus *b = w->data;
    enter(b);
    for (int i = 0; i < DX_BUS_READS && b->fd >= 0 && !b->freed; i++) {
        ssize_t n = dx_wire_recv(&b->in, b->fd, DX_BUS_READ);
        if (n == 0) {
            link_down(b, "the hub closed the link");
            break;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                link_down(b, strerror(errno));
            break;
        }
        dx_wire_msg m;
        int rc;
        while (b->fd >= 0 && !b->freed && (rc = dx_wire_next(&b->in, &m)) != 0)
            if (rc < 0 || dispatch(b, &m) < 0)
                link_down(b, "the hub sent a malformed record");
        if ((size_t)n < DX_BUS_READ)
            break;                                 /* drained */
    }
    if (b->fd < 0)
        dx_wire_buf_free(&b->in);
    leave_engine(b);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bus *b = w->data;
    if (dx_wire_send(&b->out, b->fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        enter(b);
        link_down(b, strerror(errno));
        leave_engine(b);
        return;
    }
    if (dx_wire_pending(&b->out) == 0)
        ev_io_stop(loop, w);
}

/* ---- the interface ---- */

static void bus_interest(dx_broker *base, const char *topic, size_t tlen, int on)
{
    bus *b = (bus *)base;
    if (b->fd < 0)
        return;
    b->stats.topics += on ? 1 : (uint64_t)-1;
    if (dx_wire_interest(&b->out, topic, tlen, on) < 0)
        b->stats.lost++;
    want_write(b);
}

static int bus_publish(dx_broker *base, const dx_publication *p, const dx_history_rule *h)
{
    bus *b = (bus *)base;
    b->stats.published++;
    if (b->fd < 0 || full(b) || dx_wire_publish(&b->out, p, h) < 0) {
        b->stats.lost++;
        return -1;
    }
    want_write(b);
    return 0;
}

/* A request queued, or NULL (then answered unavailable by the caller). */
static bus_req *ask(bus *b, void *arg)
{
    if (b->fd < 0 || full(b))
        return NULL;
    bus_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->id = b->next_id++;
    r->arg = arg;
    return r;
}

static void queue_req(bus *b, bus_req *r)
{
    *b->reqs_tail = r;
    b->reqs_tail = &r->next;
    want_write(b);
}

static void bus_recover(dx_broker *base, const char *topic, size_t tlen, const dx_pos *since,
                        const dx_history_rule *h, dx_recover_done done, void *arg)
{
    bus *b = (bus *)base;
    bus_req *r = ask(b, arg);
    if (r == NULL || dx_wire_recover(&b->out, r->id, topic, tlen, since, h) < 0) {
        free(r);
        done(arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        return;
    }
    r->recovered = done;
    queue_req(b, r);
}

static void bus_presence(dx_broker *base, const char *topic, size_t tlen, dx_presence_done done, void *arg)
{
    bus *b = (bus *)base;
    bus_req *r = ask(b, arg);
    if (r == NULL || dx_wire_presence(&b->out, r->id, topic, tlen) < 0) {
        free(r);
        done(arg, 0, NULL, 0);
        return;
    }
    r->members = done;
    queue_req(b, r);
}

static void bus_join(dx_broker *base, const char *topic, size_t tlen, const dx_member *m)
{
    bus *b = (bus *)base;
    if (b->fd < 0)
        return;
    if (dx_wire_join(&b->out, topic, tlen, m) < 0)
        b->stats.lost++;
    want_write(b);
}

static void bus_leave(dx_broker *base, const char *topic, size_t tlen, const dx_member *m)
{
    bus *b = (bus *)base;
    if (b->fd < 0)
        return;
    if (dx_wire_leave(&b->out, topic, tlen, m->conn) < 0)
        b->stats.lost++;
    want_write(b);
}

/* A forward counts against DX_BUS_OUT_MAX as a request does: past it,
 * the caller answers the POST itself. */
static int bus_forward(dx_broker *base, unsigned worker, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                       const uint8_t *body, size_t len)
{
    bus *b = (bus *)base;
    if (b->fd < 0 || full(b) || dx_wire_forward(&b->out, DX_WIRE_FORWARD, worker, token, id, idlen, seq, body, len) < 0)
        return -1;
    want_write(b);
    return 0;
}

/* An answer is always queued (another worker's connection waits for it). */
static void bus_answer(dx_broker *base, uint32_t origin, uint64_t token, int status, const char *text, size_t len)
{
    bus *b = (bus *)base;
    if (b->fd < 0)
        return;
    if (dx_wire_answer(&b->out, DX_WIRE_ANSWER, origin, token, (unsigned)status, text, len) < 0)
        b->stats.lost++;
    want_write(b);
}

static void bus_stats(const dx_broker *base, dx_broker_stats *out)
{
    *out = ((const bus *)base)->stats;
}

static void bus_destroy(bus *b)
{
    if (b->fd >= 0) {
        ev_ref(b->loop);
        ev_io_stop(b->loop, &b->rio);
        ev_io_stop(b->loop, &b->wio);
        close(b->fd);
        b->fd = -1;
    }
    fail_requests(b);
    dx_wire_buf_free(&b->in);
    dx_wire_buf_free(&b->out);
    free(b);
}

static void bus_free(dx_broker *base)
{
    bus *b = (bus *)base;
    if (b->busy)
        b->freed = 1;                              /* the callback under way finishes it */
    else
        bus_destroy(b);
}

static const dx_broker_ops bus_ops = {
    .name = "bus",
    .interest = bus_interest,
    .publish = bus_publish,
    .recover = bus_recover,
    .join = bus_join,
    .leave = bus_leave,
    .presence = bus_presence,
    .stats = bus_stats,
    .free = bus_free,
    .forward = bus_forward,
    .answer = bus_answer,
};

dx_broker *dx_bus_broker_new(struct ev_loop *loop, const dx_broker_sink *sink, int fd, const char *node_name)
{
    bus *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    size_t nlen = strlen(node_name);
    if (dx_wire_hello(&b->out, node_name, nlen < 255 ? nlen : 255) < 0) {
        free(b);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    b->base.ops = &bus_ops;
    b->base.sink = *sink;
    b->loop = loop;
    b->fd = fd;
    b->reqs_tail = &b->reqs;
    b->next_id = 1;
    b->stats.link_up = 1;
    ev_io_init(&b->rio, on_read, fd, EV_READ);
    ev_io_init(&b->wio, on_write, fd, EV_WRITE);
    b->rio.data = b->wio.data = b;
    ev_io_start(loop, &b->rio);
    ev_unref(loop);                                /* listening to the hub keeps no loop running */
    ev_io_start(loop, &b->wio);                    /* the hello */
    return &b->base;
}
