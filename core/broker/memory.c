/* The memory engine: history and presence held in this process, for a node
 * that is alone (one process) or for the hub of a box's workers.
 *
 * Each topic it knows keeps a ring of its last publications and its
 * members. A topic's epoch is made when the engine first keeps a position
 * for it, at random, so that positions handed out before (by another
 * process, or before the topic was forgotten) are never trusted. A topic
 * is forgotten when it has no interest, no members and no publication
 * left: its expired entries go once a second. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <ev.h>
#include "broker/broker.h"
#include "broker/names.h"

typedef struct mem_entry {
    uint64_t offset;
    ev_tstamp at;                  /* when it was published */
    int binary;
    size_t len;
    uint8_t *data;
} mem_entry;

typedef struct mem_member {
    uint64_t conn;
    char *node;
    size_t node_len;
    uint8_t *info;
    size_t info_len;
} mem_member;

typedef struct mem_topic {
    dx_named named;                /* its name, in the engine's table */
    int interest;
    char epoch[DX_EPOCH_MAX + 1];  /* "" until its first position */
    uint64_t top;                  /* the newest offset given, 0 none */
    mem_entry *ring;               /* the last publications, oldest at head */
    size_t cap, head, n;
    double ttl;
    mem_member *members;
    size_t nmembers, mcap;
    char name[];
} mem_topic;

typedef struct memory {
    dx_broker base;
    struct ev_loop *loop;
    dx_names topics;
    ev_timer sweep;                /* expires entries once a second */
    dx_broker_stats stats;
} memory;

static mem_topic *find(const memory *m, const char *name, size_t len)
{
    return (mem_topic *)dx_names_find(&m->topics, name, len);
}

static mem_topic *get(memory *m, const char *name, size_t len)
{
    mem_topic *t = find(m, name, len);
    return t ? t : dx_names_add(&m->topics, offsetof(mem_topic, name), name, len);
}

static mem_entry *entry_at(mem_topic *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

static void drop_oldest(mem_topic *t)
{
    free(entry_at(t, 0)->data);
    t->head = (t->head + 1) % t->cap;
    t->n--;
}

/* Drops the entries older than the topic's ttl. */
static void expire(const memory *m, mem_topic *t)
{
    if (t->ttl <= 0)
        return;
    ev_tstamp oldest = ev_now(m->loop) - t->ttl;
    while (t->n && entry_at(t, 0)->at < oldest)
        drop_oldest(t);
}

/* Forgets t when nothing of it is left. */
static void maybe_forget(memory *m, mem_topic *t)
{
    if (t->interest || t->nmembers || t->n)
        return;
    dx_names_remove(&m->topics, &t->named);
    free(t->ring);
    free(t->members);
    free(t);
}

static void new_epoch(char out[DX_EPOCH_MAX + 1])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint8_t r[8];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)(uintptr_t)out ^ (uint64_t)(ev_time() * 1e6);
        memcpy(r, &x, sizeof r);
    }
    for (size_t i = 0; i < sizeof r; i++)
        out[i] = digits[r[i] % 36];
    out[sizeof r] = '\0';
}

/* Makes the ring hold size entries, keeping the newest. */
static int resize_ring(mem_topic *t, size_t size)
{
    mem_entry *ring = malloc(size * sizeof *ring);
    if (ring == NULL)
        return -1;
    while (t->n > size)
        drop_oldest(t);
    for (size_t i = 0; i < t->n; i++)
        ring[i] = *entry_at(t, i);
    free(t->ring);
    t->ring = ring;
    t->cap = size;
    t->head = 0;
    return 0;
}

static void mem_interest(dx_broker *b, const char *topic, size_t tlen, int on)
{
    memory *m = (memory *)b;
    mem_topic *t = on ? get(m, topic, tlen) : find(m, topic, tlen);
    if (t == NULL)
        return;                                   /* out of memory: it keeps no state either */
    if (t->interest != on)
        m->stats.topics += on ? 1 : (uint64_t)-1;
    t->interest = on;
    if (!on)
        maybe_forget(m, t);
}

/* Alone, a node has nobody to carry a publication to: only a topic with
 * history has something to do (keep it, position it, hand it back). */
static int mem_publish(dx_broker *b, const dx_publication *p, const dx_history_rule *h)
{
    memory *m = (memory *)b;
    m->stats.published++;
    if (h->size == 0)
        return 0;
    mem_topic *t = get(m, p->topic, p->tlen);
    uint8_t *copy = malloc(p->len ? p->len : 1);
    if (t == NULL || copy == NULL || (t->cap != h->size && resize_ring(t, h->size) < 0)) {
        free(copy);
        if (t)
            maybe_forget(m, t);
        m->stats.lost++;
        return -1;
    }
    if (t->epoch[0] == '\0')
        new_epoch(t->epoch);
    t->ttl = h->ttl;
    expire(m, t);
    if (t->n == t->cap)
        drop_oldest(t);
    memcpy(copy, p->data, p->len);
    mem_entry *e = &t->ring[(t->head + t->n) % t->cap];
    e->offset = ++t->top;
    e->at = ev_now(m->loop);
    e->binary = p->binary;
    e->len = p->len;
    e->data = copy;
    t->n++;
    if (t->interest) {
        dx_pos pos = { .offset = e->offset };
        memcpy(pos.epoch, t->epoch, sizeof pos.epoch);
        dx_publication back = *p;
        back.pos = &pos;
        m->stats.received++;
        b->sink.publication(b->sink.ud, &back);
    }
    return 0;
}

static void mem_recover(dx_broker *b, const char *topic, size_t tlen, const dx_pos *since,
                        const dx_history_rule *h, dx_recover_done done, void *arg)
{
    memory *m = (memory *)b;
    if (h->size == 0) {
        done(arg, DX_RECOVER_NO_HISTORY, NULL, 0, NULL);
        return;
    }
    mem_topic *t = get(m, topic, tlen);
    if (t == NULL) {
        done(arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        return;
    }
    if (t->epoch[0] == '\0')                      /* nothing published yet: an epoch to hold on to */
        new_epoch(t->epoch);
    expire(m, t);
    dx_pos top = { .offset = t->top };
    memcpy(top.epoch, t->epoch, sizeof top.epoch);
    int status = DX_RECOVERED;
    size_t first = 0;                             /* index in the ring of since + 1 */
    if (since->epoch[0] == '\0')                  /* the newest kept, whatever came before */
        first = 0;
    else if (strcmp(since->epoch, t->epoch) != 0 || since->offset > t->top)
        status = DX_RECOVER_EPOCH;
    else if (since->offset < t->top && (t->n == 0 || entry_at(t, 0)->offset > since->offset + 1))
        status = DX_RECOVER_TOO_OLD;
    else if (t->n)
        first = (size_t)(since->offset + 1 - entry_at(t, 0)->offset);
    size_t n = status == DX_RECOVERED ? t->n - first : 0;
    /* The answer is copied (the topic's name and data): the app's callback
     * may publish to the topic (dropping old entries) or leave it (t
     * forgotten) while the entries are still being sent. */
    size_t bytes = t->named.len;
    for (size_t i = 0; i < n; i++)
        bytes += entry_at(t, first + i)->len;
    dx_publication *list = n ? calloc(n, sizeof *list) : NULL;
    dx_pos *pos = n ? calloc(n, sizeof *pos) : NULL;
    char *copy = malloc(bytes + 1);
    if ((n && (list == NULL || pos == NULL)) || copy == NULL) {
        free(list);
        free(pos);
        free(copy);
        done(arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        maybe_forget(m, t);
        return;
    }
    memcpy(copy, t->name, t->named.len);
    size_t at = t->named.len;
    for (size_t i = 0; i < n; i++) {
        const mem_entry *e = entry_at(t, first + i);
        pos[i].offset = e->offset;
        memcpy(pos[i].epoch, t->epoch, sizeof pos[i].epoch);
        memcpy(copy + at, e->data, e->len);
        list[i] = (dx_publication){ .topic = copy, .tlen = t->named.len, .data = (const uint8_t *)copy + at,
                                    .len = e->len, .binary = e->binary, .pos = &pos[i] };
        at += e->len;
    }
    size_t len = t->named.len;
    done(arg, status, list, n, &top);             /* t may be gone after this */
    if ((t = find(m, copy, len)) != NULL)
        maybe_forget(m, t);
    free(list);
    free(pos);
    free(copy);
}

static int member_index(const mem_topic *t, uint64_t conn, const char *node, size_t node_len)
{
    for (size_t i = 0; i < t->nmembers; i++)
        if (t->members[i].conn == conn && t->members[i].node_len == node_len &&
            memcmp(t->members[i].node, node, node_len) == 0)
            return (int)i;
    return -1;
}

static dx_member as_member(const mem_member *x)
{
    return (dx_member){ .conn = x->conn, .node = x->node, .node_len = x->node_len,
                        .info = x->info, .info_len = x->info_len };
}

static void remove_member(memory *m, mem_topic *t, size_t i)
{
    mem_member gone = t->members[i];
    t->members[i] = t->members[--t->nmembers];
    if (t->interest) {
        dx_member dm = as_member(&gone);
        m->base.sink.presence(m->base.sink.ud, t->name, t->named.len, 0, &dm);
    }
    free(gone.node);
}

static void mem_join(dx_broker *b, const char *topic, size_t tlen, const dx_member *dm)
{
    memory *m = (memory *)b;
    mem_topic *t = get(m, topic, tlen);
    if (t == NULL)
        return;
    int i = member_index(t, dm->conn, dm->node, dm->node_len);
    if (i >= 0) {                                 /* joining again: its new info, told as a join */
        free(t->members[i].node);
        t->members[i] = t->members[--t->nmembers];
    }
    if (t->nmembers == t->mcap) {
        size_t cap = t->mcap ? t->mcap * 2 : 4;
        mem_member *mm = realloc(t->members, cap * sizeof *mm);
        if (mm == NULL) {
            maybe_forget(m, t);
            return;
        }
        t->members = mm;
        t->mcap = cap;
    }
    /* node and info in one block */
    char *block = malloc(dm->node_len + dm->info_len + 1);
    if (block == NULL) {
        maybe_forget(m, t);
        return;
    }
    memcpy(block, dm->node, dm->node_len);
    memcpy(block + dm->node_len, dm->info, dm->info_len);
    mem_member *x = &t->members[t->nmembers++];
    *x = (mem_member){ .conn = dm->conn, .node = block, .node_len = dm->node_len,
                       .info = (uint8_t *)block + dm->node_len, .info_len = dm->info_len };
    if (t->interest) {
        dx_member back = as_member(x);
        b->sink.presence(b->sink.ud, t->name, t->named.len, 1, &back);
    }
}

static void mem_leave(dx_broker *b, const char *topic, size_t tlen, const dx_member *dm)
{
    memory *m = (memory *)b;
    mem_topic *t = find(m, topic, tlen);
    if (t == NULL)
        return;
    int i = member_index(t, dm->conn, dm->node, dm->node_len);
    if (i >= 0)
        remove_member(m, t, (size_t)i);
    maybe_forget(m, t);
}

static void mem_presence(dx_broker *b, const char *topic, size_t tlen, dx_presence_done done,
                         void *arg)
{
    memory *m = (memory *)b;
    mem_topic *t = find(m, topic, tlen);
    size_t n = t ? t->nmembers : 0;
    dx_member *list = n ? malloc(n * sizeof *list) : NULL;
    if (n && list == NULL) {
        done(arg, 0, NULL, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = as_member(&t->members[i]);
    done(arg, 1, list, n);
    free(list);
}

static void mem_stats(const dx_broker *b, dx_broker_stats *out)
{
    *out = ((const memory *)b)->stats;
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    memory *m = w->data;
    for (dx_named *e = dx_names_first(&m->topics), *next; e; e = next) {
        next = dx_names_next(&m->topics, e);
        expire(m, (mem_topic *)e);
        maybe_forget(m, (mem_topic *)e);
    }
}

static void mem_free(dx_broker *b)
{
    memory *m = (memory *)b;
    ev_ref(m->loop);
    ev_timer_stop(m->loop, &m->sweep);
    for (dx_named *e = dx_names_first(&m->topics), *next; e; e = next) {
        next = dx_names_next(&m->topics, e);
        mem_topic *t = (mem_topic *)e;
        while (t->n)
            drop_oldest(t);
        for (size_t j = 0; j < t->nmembers; j++)
            free(t->members[j].node);
        free(t->ring);
        free(t->members);
        free(t);
    }
    dx_names_free(&m->topics);
    free(m);
}

static const dx_broker_ops memory_ops = {
    .name = "memory",
    .interest = mem_interest,
    .publish = mem_publish,
    .recover = mem_recover,
    .join = mem_join,
    .leave = mem_leave,
    .presence = mem_presence,
    .stats = mem_stats,
    .free = mem_free,
};

dx_broker *dx_memory_broker_new(struct ev_loop *loop, const dx_broker_sink *sink)
{
    memory *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->base.ops = &memory_ops;
    m->base.sink = *sink;
    m->loop = loop;
    m->stats.link_up = 1;
    ev_timer_init(&m->sweep, on_sweep, 1.0, 1.0);
    m->sweep.data = m;
    ev_timer_start(loop, &m->sweep);
    ev_unref(loop);                               /* the sweep keeps no loop running */
    return &m->base;
}
