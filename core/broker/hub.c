/* The hub (broker/hub.h): routes the workers' bus records and is the sink
 * of the box's engine. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "broker/hub.h"
#include "broker/names.h"
#include "broker/wire.h"

#define DX_HUB_READ 262144         /* bytes read at most per recv */
#define DX_HUB_READS 4             /* recvs per worker at most per loop iteration */
#define CONN_BITS 40
#define CONN_MASK ((UINT64_C(1) << CONN_BITS) - 1)

/* A POST forwarded to a worker, not answered yet: answered 404 for it if
 * the worker goes first. */
typedef struct hub_fwd {
    struct hub_fwd *next;
    uint32_t origin;               /* generation << 16 | index */
    uint64_t token;
} hub_fwd;

typedef struct hub_worker {
    dx_hub *hub;
    unsigned index;
    unsigned gen;                  /* attaches of this slot, mod 256 */
    int fd;                        /* -1: not attached */
    int reading;                   /* in on_read: the input buffer is in use */
    int cut;                       /* past its bound: detached at the next write event */
    ev_io rio, wio;
    dx_wire_buf in, out;
    uint64_t unreported;           /* records dropped it has not heard of */
    char name[256];
    size_t name_len;
    hub_fwd *fwd, **fwd_tail;      /* forwarded to it, not answered, in the order sent (it
                                    * answers in that order: a match is found first) */
} hub_worker;

typedef struct hub_member {
    uint64_t conn;
    unsigned worker;
} hub_member;

typedef struct hub_topic {
    dx_named named;                /* its name, in the hub's table */
    unsigned *workers;             /* interested */
    size_t nworkers, capw;
    hub_member *members;           /* joined, each of a worker */
    size_t nmembers, capm;
    char name[];
} hub_topic;

/* A request the engine has not answered yet. */
typedef struct hub_req {
    struct hub_req *next, **pprev;
    dx_hub *hub;
    unsigned worker, gen;
    uint32_t id;
    int live;                      /* 0 once its worker is gone */
    char *topic;                   /* recover: the answer names it */
    size_t tlen;
} hub_req;

struct dx_hub {
    struct ev_loop *loop;
    dx_broker *engine;
    hub_worker **slots;
    size_t nslots;
    dx_names topics;               /* topics known (with interest or members) */
    hub_req *reqs;
    dx_hub_stats stats;
};

/* ---- topics ---- */

static hub_topic *find(const dx_hub *h, const char *name, size_t len)
{
    return (hub_topic *)dx_names_find(&h->topics, name, len);
}

static hub_topic *get(dx_hub *h, const char *name, size_t len)
{
    hub_topic *t = find(h, name, len);
    return t ? t : dx_names_add(&h->topics, offsetof(hub_topic, name), name, len);
}

/* Forgets t when no worker has interest in it or a member in it. */
static void maybe_forget(dx_hub *h, hub_topic *t)
{
    if (t->nworkers || t->nmembers)
        return;
    dx_names_remove(&h->topics, &t->named);
    free(t->workers);
    free(t->members);
    free(t);
}

static int interested(const hub_topic *t, unsigned w)
{
    for (size_t i = 0; i < t->nworkers; i++)
        if (t->workers[i] == w)
            return (int)i;
    return -1;
}

/* ---- queueing to a worker ---- */

static hub_worker *worker_at(const dx_hub *h, unsigned w)
{
    return w < h->nslots && h->slots[w] && h->slots[w]->fd >= 0 ? h->slots[w] : NULL;
}

/* The queue to encode a record for w into, or NULL: w is gone or cut, or
 * (droppable records: publications, events) past its bound. */
static dx_wire_buf *queue_of(hub_worker *w, int droppable)
{
    dx_hub *h = w->hub;
    if (w->fd < 0 || w->cut)
        return NULL;
    size_t pending = dx_wire_pending(&w->out);
    if (pending >= DX_HUB_OUT_CUT) {
        w->cut = 1;                               /* detached from its write event, not from here */
        h->stats.cut++;
        ev_feed_event(h->loop, &w->wio, EV_WRITE);
        return NULL;
    }
    if (droppable && pending >= DX_HUB_OUT_MAX) {
        w->unreported++;
        h->stats.dropped++;
        return NULL;
    }
    return &w->out;
}

/* The record for w was encoded (rc 0) or not (rc -1: out of memory). */
static void queued(hub_worker *w, int rc)
{
    if (rc < 0) {
        w->unreported++;
        w->hub->stats.dropped++;
        return;
    }
    w->hub->stats.routed++;
    if (!ev_is_active(&w->wio))
        ev_io_start(w->hub->loop, &w->wio);
}

static void send_publication(hub_worker *w, const dx_publication *p, uint64_t from)
{
    dx_wire_buf *q = queue_of(w, 1);
    if (q)
        queued(w, dx_wire_publication(q, p, from));
}

/* ---- the engine's from ---- */

static uint64_t from_up(const hub_worker *w, uint64_t conn)
{
    if (conn == 0 || conn > CONN_MASK)
        return 0;
    return (uint64_t)(w->index + 1) << 48 | (uint64_t)(w->gen & 0xff) << CONN_BITS | conn;
}

/* The worker a from of the engine names (or NULL), and its connection. */
static hub_worker *from_down(const dx_hub *h, uint64_t from, uint64_t *conn)
{
    *conn = from & CONN_MASK;
    if (from >> 48 == 0)
        return NULL;
    hub_worker *w = worker_at(h, (unsigned)(from >> 48) - 1);
    return w && (w->gen & 0xff) == ((from >> CONN_BITS) & 0xff) ? w : NULL;
}

/* ---- the engine's sink ---- */

/* p to every interested worker; origin (if any) gets conn as from. */
static void fan_out(dx_hub *h, const dx_publication *p, const hub_worker *origin, uint64_t conn,
                    const hub_worker *skip)
{
    hub_topic *t = find(h, p->topic, p->tlen);
    for (size_t i = 0; t && i < t->nworkers; i++) {
        hub_worker *w = worker_at(h, t->workers[i]);
        if (w && w != skip)
            send_publication(w, p, w == origin ? conn : 0);
    }
}

static void on_publication(void *ud, const dx_publication *p)
{
    dx_hub *h = ud;
    uint64_t conn;
    const hub_worker *origin = from_down(h, p->from, &conn);
    fan_out(h, p, origin, conn, NULL);
}

static void on_presence(void *ud, const char *topic, size_t tlen, int joined, const dx_member *m)
{
    dx_hub *h = ud;
    hub_topic *t = find(h, topic, tlen);
    for (size_t i = 0; t && i < t->nworkers; i++) {
        hub_worker *w = worker_at(h, t->workers[i]);
        dx_wire_buf *q = w ? queue_of(w, 1) : NULL;
        if (q)
            queued(w, dx_wire_event(q, topic, tlen, joined, m));
    }
}

static void on_link(void *ud, int up, const char *why)
{
    dx_hub *h = ud;
    for (size_t i = 0; i < h->nslots; i++) {
        hub_worker *w = worker_at(h, (unsigned)i);
        dx_wire_buf *q = w ? queue_of(w, 0) : NULL;
        if (q)
            queued(w, dx_wire_link(q, up, why));
    }
}

/* ---- requests ---- */

static hub_req *req_new(dx_hub *h, hub_worker *w, uint32_t id, const char *topic, size_t tlen)
{
    hub_req *r = calloc(1, sizeof *r);
    char *copy = topic ? malloc(tlen + 1) : NULL;
    if (r == NULL || (topic && copy == NULL)) {
        free(r);
        free(copy);
        return NULL;
    }
    if (topic)
        memcpy(copy, topic, tlen);
    *r = (hub_req){ .hub = h, .worker = w->index, .gen = w->gen, .id = id, .live = 1, .topic = copy,
                    .tlen = tlen };
    r->next = h->reqs;
    r->pprev = &h->reqs;
    if (h->reqs)
        h->reqs->pprev = &r->next;
    h->reqs = r;
    return r;
}

/* The worker r is for, if it is still there; r is unlinked (free it). */
static hub_worker *req_done(hub_req *r)
{
    *r->pprev = r->next;
    if (r->next)
        r->next->pprev = r->pprev;
    hub_worker *w = r->live ? worker_at(r->hub, r->worker) : NULL;
    return w && w->gen == r->gen ? w : NULL;
}

static void on_recovered(void *arg, int status, const dx_publication *entries, size_t n, const dx_pos *top)
{
    hub_req *r = arg;
    hub_worker *w = req_done(r);
    dx_wire_buf *q = w ? queue_of(w, 0) : NULL;
    if (q) {
        int rc = dx_wire_recovered(q, r->id, status, r->topic, r->tlen, entries, n, top);
        if (rc < 0)                               /* too big for a record: the worker cannot have it */
            rc = dx_wire_recovered(q, r->id, DX_RECOVER_UNAVAILABLE, r->topic, r->tlen, NULL, 0, NULL);
        queued(w, rc);
    }
    free(r->topic);
    free(r);
}

static void on_members(void *arg, int ok, const dx_member *members, size_t n)
{
    hub_req *r = arg;
    hub_worker *w = req_done(r);
    dx_wire_buf *q = w ? queue_of(w, 0) : NULL;
    if (q) {
        int rc = dx_wire_members(q, r->id, ok, members, n);
        if (rc < 0)
            rc = dx_wire_members(q, r->id, 0, NULL, 0);
        queued(w, rc);
    }
    free(r);
}

/* ---- what a worker sends ---- */

static const dx_history_rule no_history = { 0, 0 };

static void interest(dx_hub *h, hub_worker *w, const char *topic, size_t tlen, int on)
{
    hub_topic *t = on ? get(h, topic, tlen) : find(h, topic, tlen);
    if (t == NULL)
        return;
    int i = interested(t, w->index);
    if (on && i < 0) {
        if (t->nworkers == t->capw) {
            size_t cap = t->capw ? t->capw * 2 : 4;
            unsigned *ws = realloc(t->workers, cap * sizeof *ws);
            if (ws == NULL) {
                maybe_forget(h, t);
                return;
            }
            t->workers = ws;
            t->capw = cap;
        }
        t->workers[t->nworkers++] = w->index;
        if (t->nworkers == 1) {
            h->stats.topics++;
            h->engine->ops->interest(h->engine, topic, tlen, 1);
        }
    } else if (!on && i >= 0) {
        t->workers[i] = t->workers[--t->nworkers];
        if (t->nworkers == 0) {
            h->stats.topics--;
            h->engine->ops->interest(h->engine, topic, tlen, 0);
        }
        maybe_forget(h, t);
    }
}

static void publish(dx_hub *h, hub_worker *w, const dx_wire_msg *m)
{
    dx_publication p = m->pub;
    uint64_t conn = p.from;
    p.pos = NULL;
    p.from = from_up(w, conn);
    if (m->rule.size == 0) {
        fan_out(h, &p, NULL, 0, w);
        h->engine->ops->publish(h->engine, &p, &no_history);
    } else if (h->engine->ops->publish(h->engine, &p, &m->rule) < 0) {
        fan_out(h, &p, w, conn, NULL);            /* no position to be had: everywhere, as it is */
    }
}

static int member_index(const hub_topic *t, unsigned w, uint64_t conn)
{
    for (size_t i = 0; i < t->nmembers; i++)
        if (t->members[i].worker == w && t->members[i].conn == conn)
            return (int)i;
    return -1;
}

static dx_member member_of(const hub_worker *w, uint64_t conn, const uint8_t *info, size_t info_len)
{
    return (dx_member){ .conn = conn, .node = w->name, .node_len = w->name_len, .info = info,
                        .info_len = info_len };
}

static void join(dx_hub *h, hub_worker *w, const dx_wire_msg *m)
{
    hub_topic *t = get(h, m->topic, m->tlen);
    if (t == NULL)
        return;
    if (member_index(t, w->index, m->member.conn) < 0) {
        if (t->nmembers == t->capm) {
            size_t cap = t->capm ? t->capm * 2 : 4;
            hub_member *mm = realloc(t->members, cap * sizeof *mm);
            if (mm == NULL) {
                maybe_forget(h, t);
                return;
            }
            t->members = mm;
            t->capm = cap;
        }
        t->members[t->nmembers++] = (hub_member){ .conn = m->member.conn, .worker = w->index };
    }
    dx_member dm = member_of(w, m->member.conn, m->member.info, m->member.info_len);
    h->engine->ops->join(h->engine, m->topic, m->tlen, &dm);
}

static void leave(dx_hub *h, hub_worker *w, const dx_wire_msg *m)
{
    hub_topic *t = find(h, m->topic, m->tlen);
    int i = t ? member_index(t, w->index, m->member.conn) : -1;
    if (i < 0)
        return;
    t->members[i] = t->members[--t->nmembers];
    dx_member dm = member_of(w, m->member.conn, NULL, 0);
    h->engine->ops->leave(h->engine, m->topic, m->tlen, &dm);
    maybe_forget(h, t);
}

/* ---- forwarded POSTs ---- */

static void answer_to(hub_worker *w, uint64_t token, unsigned status, const char *text, size_t len)
{
    dx_wire_buf *q = queue_of(w, 0);              /* an answer is never dropped */
    if (q)
        queued(w, dx_wire_answer(q, DX_WIRE_ANSWERED, 0, token, status, text, len));
}

/* A POST w took for a session of m->worker: to that worker, with w's
 * index and generation as its origin; answered at once when it is not
 * there, or past its bound (the bound of what is dropped: a forward
 * counts like a publication, but is answered instead of dropped). */
static void forward(dx_hub *h, hub_worker *w, const dx_wire_msg *m)
{
    hub_worker *t = worker_at(h, m->worker);
    if (t == NULL) {
        static const char why[] = "no such session: its worker is gone";
        answer_to(w, m->token, 404, why, sizeof why - 1);
        return;
    }
    dx_wire_buf *q = t->cut || dx_wire_pending(&t->out) >= DX_HUB_OUT_MAX ? NULL : queue_of(t, 1);
    if (q == NULL) {
        static const char why[] = "the session's worker is not reading: try again";
        h->stats.dropped++;
        answer_to(w, m->token, 503, why, sizeof why - 1);
        return;
    }
    uint32_t origin = (uint32_t)(w->gen & 0xff) << 16 | (w->index & 0xffff);
    int rc = dx_wire_forward(q, DX_WIRE_FORWARDED, origin, m->token, m->text, m->text_len, m->seq, m->data,
                             m->len);
    queued(t, rc);
    hub_fwd *f = rc == 0 ? malloc(sizeof *f) : NULL;
    if (rc < 0) {
        static const char why[] = "the session's worker cannot be reached now";
        answer_to(w, m->token, 503, why, sizeof why - 1);
    } else if (f) {                               /* (without it, only a detach goes unanswered) */
        *f = (hub_fwd){ .next = NULL, .origin = origin, .token = m->token };
        if (t->fwd == NULL)
            t->fwd_tail = &t->fwd;
        *t->fwd_tail = f;
        t->fwd_tail = &f->next;
    }
}

/* The worker an origin names, if it is still that generation. */
static hub_worker *origin_at(const dx_hub *h, uint32_t origin)
{
    hub_worker *o = worker_at(h, origin & 0xffff);
    return o && (o->gen & 0xff) == ((origin >> 16) & 0xff) ? o : NULL;
}

/* Forgets the forward (origin, token) pending at t, if it is. */
static void fwd_done(hub_worker *t, uint32_t origin, uint64_t token)
{
    for (hub_fwd **pp = &t->fwd; *pp; pp = &(*pp)->next) {
        hub_fwd *f = *pp;
        if (f->origin == origin && f->token == token) {
            *pp = f->next;
            if (*pp == NULL)
                t->fwd_tail = pp;
            free(f);
            return;
        }
    }
}

/* t is gone: what was forwarded to it is answered 404 to its origins. */
static void fwd_fail(dx_hub *h, hub_worker *t)
{
    static const char why[] = "no such session: its worker is gone";
    while (t->fwd) {
        hub_fwd *f = t->fwd;
        t->fwd = f->next;
        hub_worker *o = origin_at(h, f->origin);
        if (o)
            answer_to(o, f->token, 404, why, sizeof why - 1);
        free(f);
    }
    t->fwd_tail = &t->fwd;
}

/* w's answer to a forwarded POST: to its origin, if that is still the
 * worker that asked (not one restarted in its slot since). */
static void answer(dx_hub *h, hub_worker *w, const dx_wire_msg *m)
{
    fwd_done(w, m->worker, m->token);
    hub_worker *o = origin_at(h, m->worker);
    if (o)
        answer_to(o, m->token, m->status, m->text, m->text_len);
}

/* One record from w: 0, or -1 when it makes no sense here. */
static int dispatch(dx_hub *h, hub_worker *w, dx_wire_msg *m)
{
    hub_req *r;
    switch (m->type) {
    case DX_WIRE_HELLO:
        w->name_len = m->text_len < sizeof w->name - 1 ? m->text_len : sizeof w->name - 1;
        memcpy(w->name, m->text, w->name_len);
        w->name[w->name_len] = '\0';
        return 0;
    case DX_WIRE_INTEREST:
        interest(h, w, m->topic, m->tlen, m->flag);
        return 0;
    case DX_WIRE_PUBLISH:
        publish(h, w, m);
        return 0;
    case DX_WIRE_RECOVER:
        if ((r = req_new(h, w, m->id, m->topic, m->tlen)) == NULL) {
            dx_wire_buf *q = queue_of(w, 0);
            if (q)
                queued(w, dx_wire_recovered(q, m->id, DX_RECOVER_UNAVAILABLE, m->topic, m->tlen, NULL, 0, NULL));
            return 0;
        }
        h->engine->ops->recover(h->engine, m->topic, m->tlen, &m->pos, &m->rule, on_recovered, r);
        return 0;
    case DX_WIRE_PRESENCE:
        if ((r = req_new(h, w, m->id, NULL, 0)) == NULL) {
            dx_wire_buf *q = queue_of(w, 0);
            if (q)
                queued(w, dx_wire_members(q, m->id, 0, NULL, 0));
            return 0;
        }
        h->engine->ops->presence(h->engine, m->topic, m->tlen, on_members, r);
        return 0;
    case DX_WIRE_JOIN:
        join(h, w, m);
        return 0;
    case DX_WIRE_LEAVE:
        leave(h, w, m);
        return 0;
    case DX_WIRE_FORWARD:
        forward(h, w, m);
        return 0;
    case DX_WIRE_ANSWER:
        answer(h, w, m);
        return 0;
    default:
        return -1;                                /* a hub's record, sent to the hub */
    }
}

static void detach(dx_hub *h, hub_worker *w);

static void on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    hub_worker *w = io->data;
    dx_hub *h = w->hub;
    w->reading = 1;
    for (int i = 0; i < DX_HUB_READS && w->fd >= 0; i++) {
        ssize_t n = dx_wire_recv(&w->in, w->fd, DX_HUB_READ);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            detach(h, w);                         /* the worker is gone */
            break;
        }
        if (n < 0)
            break;
        h->stats.bytes_in += (uint64_t)n;
        dx_wire_msg m;
        int rc;
        while (w->fd >= 0 && (rc = dx_wire_next(&w->in, &m)) != 0) {
            if (rc < 0 || dispatch(h, w, &m) < 0) {
                h->stats.cut++;
                detach(h, w);
                break;
            }
            h->stats.received++;
        }
        if ((size_t)n < DX_HUB_READ)
            break;
    }
    w->reading = 0;
    if (w->fd < 0)
        dx_wire_buf_free(&w->in);
}

static void on_write(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    hub_worker *w = io->data;
    dx_hub *h = w->hub;
    if (w->cut) {
        detach(h, w);
        return;
    }
    ssize_t n = dx_wire_send(&w->out, w->fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        detach(h, w);
        return;
    }
    if (n > 0)
        h->stats.bytes_out += (uint64_t)n;
    if (w->unreported && dx_wire_pending(&w->out) < DX_HUB_OUT_MAX / 2 &&
        dx_wire_dropped(&w->out, w->unreported) == 0)
        w->unreported = 0;
    if (dx_wire_pending(&w->out) == 0)
        ev_io_stop(loop, io);
}

/* ---- attach, detach ---- */

static void detach(dx_hub *h, hub_worker *w)
{
    if (w->fd < 0)
        return;
    ev_ref(h->loop);
    ev_io_stop(h->loop, &w->rio);
    ev_io_stop(h->loop, &w->wio);
    close(w->fd);
    w->fd = -1;
    w->cut = 0;
    w->unreported = 0;
    dx_wire_buf_free(&w->out);
    if (!w->reading)
        dx_wire_buf_free(&w->in);
    h->stats.workers--;
    fwd_fail(h, w);
    for (hub_req *r = h->reqs; r; r = r->next)
        if (r->worker == w->index && r->gen == w->gen)
            r->live = 0;
    /* its members leave (events to the others), then its interests go */
    for (dx_named *e = dx_names_first(&h->topics); e; e = dx_names_next(&h->topics, e)) {
        hub_topic *t = (hub_topic *)e;
        for (size_t i = 0; i < t->nmembers;) {
            if (t->members[i].worker != w->index) {
                i++;
                continue;
            }
            dx_member dm = member_of(w, t->members[i].conn, NULL, 0);
            t->members[i] = t->members[--t->nmembers];
            h->engine->ops->leave(h->engine, t->name, t->named.len, &dm);
        }
    }
    for (dx_named *e = dx_names_first(&h->topics), *next; e; e = next) {
        next = dx_names_next(&h->topics, e);
        hub_topic *t = (hub_topic *)e;
        int i = interested(t, w->index);
        if (i >= 0) {
            t->workers[i] = t->workers[--t->nworkers];
            if (t->nworkers == 0) {
                h->stats.topics--;
                h->engine->ops->interest(h->engine, t->name, t->named.len, 0);
            }
        }
        maybe_forget(h, t);
    }
}

void dx_hub_detach(dx_hub *h, unsigned worker)
{
    if (worker < h->nslots && h->slots[worker])
        detach(h, h->slots[worker]);
}

int dx_hub_attach(dx_hub *h, unsigned worker, int fd)
{
    if (worker >= DX_HUB_WORKERS_MAX)
        return -1;
    if (worker >= h->nslots) {
        size_t n = worker + 1 > h->nslots * 2 ? worker + 1 : h->nslots * 2;
        hub_worker **slots = realloc(h->slots, n * sizeof *slots);
        if (slots == NULL)
            return -1;
        memset(slots + h->nslots, 0, (n - h->nslots) * sizeof *slots);
        h->slots = slots;
        h->nslots = n;
    }
    hub_worker *w = h->slots[worker];
    if (w == NULL) {
        if ((w = calloc(1, sizeof *w)) == NULL)
            return -1;
        *w = (hub_worker){ .hub = h, .index = worker, .fd = -1 };
        h->slots[worker] = w;
    }
    detach(h, w);
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    w->fd = fd;
    w->gen = (w->gen + 1) & 0xff;
    w->name_len = (size_t)snprintf(w->name, sizeof w->name, "w%u", worker);   /* until its hello */
    ev_io_init(&w->rio, on_read, fd, EV_READ);
    ev_io_init(&w->wio, on_write, fd, EV_WRITE);
    w->rio.data = w->wio.data = w;
    ev_io_start(h->loop, &w->rio);
    ev_unref(h->loop);                             /* the workers' sockets keep no loop running */
    h->stats.workers++;
    return 0;
}

/* ---- the hub ---- */

dx_hub *dx_hub_new(struct ev_loop *loop,
                   dx_broker *(*make_engine)(struct ev_loop *, const dx_broker_sink *, void *), void *arg)
{
    dx_hub *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->loop = loop;
    dx_broker_sink sink = { h, on_publication, on_presence, on_link, NULL, NULL };
    h->engine = make_engine ? make_engine(loop, &sink, arg) : dx_memory_broker_new(loop, &sink);
    if (h->engine == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

void dx_hub_stats_get(const dx_hub *h, dx_hub_stats *out)
{
    *out = h->stats;
    out->queued = 0;
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i])
            out->queued += dx_wire_pending(&h->slots[i]->out);
}

dx_broker *dx_hub_engine(dx_hub *h)
{
    return h->engine;
}

void dx_hub_forked(dx_hub *h)
{
    if (h->engine->ops->forked)
        h->engine->ops->forked(h->engine);
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i] && h->slots[i]->fd >= 0) {
            close(h->slots[i]->fd);
            h->slots[i]->fd = -1;
        }
}

void dx_hub_free(dx_hub *h)
{
    for (size_t i = 0; i < h->nslots; i++)   /* all first: a detach may answer the others */
        if (h->slots[i])
            detach(h, h->slots[i]);
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i]) {
            dx_wire_buf_free(&h->slots[i]->in);
            free(h->slots[i]);
        }
    h->engine->ops->free(h->engine);              /* answers what is pending: dropped, freed */
    for (dx_named *e = dx_names_first(&h->topics), *next; e; e = next) {
        next = dx_names_next(&h->topics, e);
        free(((hub_topic *)e)->workers);
        free(((hub_topic *)e)->members);
        free(e);
    }
    dx_names_free(&h->topics);
    free(h->slots);
    free(h);
}
