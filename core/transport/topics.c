/* Topics and publish: a hash of topic names to subscriber arrays, each
 * connection keeping its memberships, and one framing per publish. */
#include <stdlib.h>
#include <string.h>
#include "transport/internal.h"

/* Below this a published frame is copied into each queue (cheaper than a
 * reference node per subscriber); from it on, subscribers share one buffer. */
#define DX_SHARE_MIN 512

static uint32_t hash_of(const char *p, size_t len)
{
    uint32_t h = 2166136261u;                    /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static dx_topic *find(const dx_server *s, const char *name, size_t len, uint32_t h)
{
    if (s->nbuckets == 0)
        return NULL;
    for (dx_topic *t = s->buckets[h & (s->nbuckets - 1)]; t; t = t->next)
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

/* Doubles the bucket array when topics outnumber buckets. */
static int grow_buckets(dx_server *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
    dx_topic **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < s->nbuckets; i++) {
        dx_topic *t = s->buckets[i];
        while (t) {
            dx_topic *next = t->next;
            t->next = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
            t = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    return 0;
}

static dx_topic *create(dx_server *s, const char *name, size_t len, uint32_t h)
{
    if (s->ntopics >= s->nbuckets && grow_buckets(s) < 0)
        return NULL;
    dx_topic *t = calloc(1, sizeof *t + len + 1);
    if (t == NULL)
        return NULL;
    memcpy(t->name, name, len);
    t->len = len;
    t->hash = h;
    t->next = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = t;
    s->ntopics++;
    if (s->topic_hook)
        s->topic_hook(s->topic_hook_ud, t->name, t->len, 1);
    return t;
}

static void destroy(dx_server *s, dx_topic *t)
{
    dx_topic **pp = &s->buckets[t->hash & (s->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    s->ntopics--;
    if (s->topic_hook)
        s->topic_hook(s->topic_hook_ud, t->name, t->len, 0);
    free(t->subs);
    free(t);
}

static int member_index(const dx_conn *c, const dx_topic *t)
{
    const dx_memberships *m = c->topics;
    for (uint32_t i = 0; m && i < m->n; i++)
        if (m->at[i].topic == t)
            return (int)i;
    return -1;
}

int dx_conn_subscribe(dx_conn *c, const char *name, size_t len)
{
    dx_server *s = c->srv;
    if (c->state != DX_OPEN)
        return 0;
    uint32_t h = hash_of(name, len);
    dx_topic *t = find(s, name, len, h);
    if (t && member_index(c, t) >= 0)
        return 0;
    dx_memberships *m = c->topics;
    if (m == NULL || m->n == m->cap) {
        uint32_t cap = m ? m->cap * 2 : 2;
        m = realloc(m, sizeof *m + cap * sizeof m->at[0]);
        if (m == NULL)
            return -1;
        if (c->topics == NULL)
            m->n = 0;
        m->cap = cap;
        c->topics = m;
    }
    if (t == NULL && (t = create(s, name, len, h)) == NULL)
        return -1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        dx_conn **subs = realloc(t->subs, cap * sizeof *subs);
        if (subs == NULL) {
            if (t->n == 0 && t->holds == 0)
                destroy(s, t);
            return -1;
        }
        t->subs = subs;
        t->cap = cap;
    }
    m->at[m->n].topic = t;
    m->at[m->n].at = t->n;
    m->n++;
    t->subs[t->n++] = c;
    return 1;
}

/* Takes membership i of c out of its topic (which goes when empty). */
static void leave(dx_conn *c, uint32_t i)
{
    dx_server *s = c->srv;
    dx_memberships *m = c->topics;
    dx_topic *t = m->at[i].topic;
    size_t at = m->at[i].at;
    dx_conn *moved = t->subs[--t->n];          /* the last subscriber fills the hole */
    t->subs[at] = moved;
    if (moved != c)
        moved->topics->at[member_index(moved, t)].at = at;
    m->at[i] = m->at[--m->n];
    if (t->n == 0 && t->holds == 0)
        destroy(s, t);
}

int dx_conn_subscribed(const dx_conn *c, const char *name, size_t len)
{
    const dx_topic *t = find(c->srv, name, len, hash_of(name, len));
    return t && member_index(c, t) >= 0;
}

int dx_conn_unsubscribe(dx_conn *c, const char *name, size_t len)
{
    dx_topic *t = find(c->srv, name, len, hash_of(name, len));
    int i = t ? member_index(c, t) : -1;
    if (i < 0)
        return 0;
    leave(c, (uint32_t)i);
    return 1;
}

void dx_topics_leave_all(dx_conn *c)
{
    while (c->topics && c->topics->n)
        leave(c, c->topics->n - 1);
    free(c->topics);
    c->topics = NULL;
}

void dx_topics_free(dx_server *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        dx_topic *t = s->buckets[i];
        while (t) {
            dx_topic *next = t->next;
            free(t->subs);
            free(t);
            t = next;
        }
    }
    free(s->buckets);
    s->buckets = NULL;
    s->nbuckets = s->ntopics = 0;
}

int dx_server_hold_topic(dx_server *s, const char *name, size_t len, int hold)
{
    uint32_t h = hash_of(name, len);
    dx_topic *t = find(s, name, len, h);
    if (hold) {
        if (t == NULL && (t = create(s, name, len, h)) == NULL)
            return -1;
        t->holds++;
    } else if (t && t->holds) {
        if (--t->holds == 0 && t->n == 0)
            destroy(s, t);
    }
    return 0;
}

void dx_server_set_topic_hook(dx_server *s, void (*hook)(void *ud, const char *topic, size_t tlen, int on),
                              void *ud)
{
    s->topic_hook = hook;
    s->topic_hook_ud = ud;
    for (size_t i = 0; hook && i < s->nbuckets; i++)
        for (dx_topic *t = s->buckets[i]; t; t = t->next)
            hook(ud, t->name, t->len, 1);
}

size_t dx_server_subscribers(const dx_server *s, const char *name, size_t len)
{
    const dx_topic *t = find(s, name, len, hash_of(name, len));
    return t ? t->n : 0;
}

int dx_server_has_topic(const dx_server *s, const char *name, size_t len)
{
    return find(s, name, len, hash_of(name, len)) != NULL;
}

/* A frame (header and payload) in a buffer to share. */
static dx_shared *shared_frame(int rsv, int opcode, const void *data, size_t len)
{
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    size_t hl = dx_frame_write_header(hdr, 1, rsv, opcode, len, NULL);
    dx_shared *f = malloc(sizeof *f + hl + len);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->len = hl + len;
    memcpy(f->data, hdr, hl);
    if (len)
        memcpy(f->data + hl, data, len);
    return f;
}

/* Queues a copy of frame (small) or a reference to it. */
static int queue(dx_conn *c, const dx_shared *f)
{
    if (f->len >= DX_SHARE_MIN)
        return dx_out_shared(c, (dx_shared *)f);
    uint8_t *p = dx_out_reserve(c, f->len);
    if (p == NULL)
        return -1;
    memcpy(p, f->data, f->len);
    return 0;
}

size_t dx_server_publish(dx_server *s, const char *name, size_t tlen,
                         const void *data, size_t len, int binary, uint64_t skip)
{
    s->stats.published++;
    return dx_server_deliver(s, name, tlen, data, len, binary, skip);
}

void dx_server_count_publish(dx_server *s)
{
    s->stats.published++;
}

size_t dx_server_deliver(dx_server *s, const char *name, size_t tlen,
                         const void *data, size_t len, int binary, uint64_t skip)
{
    dx_topic *t = find(s, name, tlen, hash_of(name, tlen));
    if (t == NULL)
        return 0;
    int opcode = binary ? DX_OP_BINARY : DX_OP_TEXT;
    dx_shared *plain = NULL;
    dx_shared *packed[16] = { NULL };             /* compressed alone, by window bits */
    uint16_t packed_tried = 0;
    size_t sent = 0;
    for (size_t i = 0; i < t->n; i++) {
        dx_conn *c = t->subs[i];
        if (c->id == skip || c->state != DX_OPEN || !dx_conn_admit(c))
            continue;
        int kind = dx_deflate_kind(c, len);
        int r;
        if (kind == 2) {                          /* its own stream: compressed for it alone */
            r = dx_deflate_send(c, opcode, data, len);
        } else {
            const dx_shared *f = NULL;
            if (kind == 1) {
                int bits = c->pmd.server_window_bits;
                if (!(packed_tried & (1u << bits))) {
                    packed_tried |= (uint16_t)(1u << bits);
                    packed[bits] = dx_deflate_shared_frame(s, bits, opcode, data, len);
                }
                f = packed[bits];
            }
            if (f == NULL) {
                if (plain == NULL && (plain = shared_frame(0, opcode, data, len)) == NULL)
                    break;                         /* out of memory: nobody else gets it either */
                f = plain;
            }
            r = queue(c, f);
        }
        if (r == 0)
            sent++;
    }
    if (plain)
        dx_shared_release(plain);
    for (int b = 0; b < 16; b++)
        if (packed[b])
            dx_shared_release(packed[b]);
    s->stats.deliveries += sent;
    s->stats.messages_out += sent;
    return sent;
}
