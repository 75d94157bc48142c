/* The Redis engine: the broker's operations over the link (see redis.h
 * for the design, redis_link.c for the connections, redis_scripts.c for
 * what runs inside Redis). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "broker/redis_internal.h"
#include "broker/redis_env.h"

enum { RQ_HPUB, RQ_RECOVER, RQ_PRESENCE };
enum { RS_WAIT_SUB, RS_SENT, RS_WAIT_RESULT };

/* A request awaiting Redis. It belongs to the engine while in its list
 * (r set); once detached (r NULL), to the hiredis callback still owed to
 * it (pending), or to no one (freed). */
struct dx_rreq {
    dx_rreq *prev, *next;
    dx_redis *r;
    int kind, state, pending, eval, binary;
    uint64_t id;
    uint64_t from;                   /* a history publish: its publisher, given back with it */
    dx_history_rule h;
    dx_pos since;
    dx_recover_done done;
    dx_presence_done pdone;
    void *arg;
    char *topic;
    size_t tlen;
    uint8_t *data;
    size_t len;
    char tail[];
};

/* ---- helpers ---- */

uint64_t dx_redis_rand(dx_redis *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);          /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A fresh epoch: 12 characters of [0-9a-z]. */
static void new_epoch(dx_redis *r, char out[13])
{
    uint64_t a = dx_redis_rand(r), b = dx_redis_rand(r);
    for (int i = 0; i < 12; i++) {
        uint64_t *x = i < 6 ? &a : &b;
        out[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[*x % 36];
        *x /= 36;
    }
    out[12] = '\0';
}

const char *dx_redis_key(dx_redis *r, int slot, const char *kind, const char *t, size_t tlen,
                         size_t *len)
{
    size_t plen = strlen(r->cfg.prefix), klen = strlen(kind), need = plen + klen + tlen + 1;
    if (need > r->scratch_cap[slot]) {
        char *s = realloc(r->scratch[slot], need);
        if (s == NULL)
            return NULL;
        r->scratch[slot] = s;
        r->scratch_cap[slot] = need;
    }
    char *s = r->scratch[slot];
    memcpy(s, r->cfg.prefix, plen);
    memcpy(s + plen, kind, klen);
    memcpy(s + plen + klen, t, tlen);
    *len = plen + klen + tlen;
    return s;
}

static int is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

/* Loads every script again (after a SCRIPT FLUSH); the digests stay. */
static void reload_scripts(dx_redis *r)
{
    for (int i = 0; i < DX_RS_COUNT; i++) {
        const char *v[] = { "SCRIPT", "LOAD", dx_redis_scripts[i] };
        size_t l[] = { 6, 4, strlen(dx_redis_scripts[i]) };
        dx_rl_cmd(r, NULL, NULL, 3, v, l);
    }
}

static void report(dx_redis *r, int up, const char *why)
{
    if (r->reported == up)
        return;
    r->reported = up;
    if (r->base.sink.link)
        r->base.sink.link(r->base.sink.ud, up, why);
}

static dx_rreq *req_new(dx_redis *r, int kind, const char *topic, size_t tlen, const uint8_t *data,
                        size_t len)
{
    dx_rreq *q = calloc(1, sizeof *q + tlen + 1 + len);
    if (q == NULL)
        return NULL;
    q->r = r;
    q->kind = kind;
    q->id = ++r->next_id;
    q->topic = q->tail;
    memcpy(q->topic, topic, tlen);
    q->tlen = tlen;
    q->data = (uint8_t *)q->tail + tlen + 1;
    if (len)
        memcpy(q->data, data, len);
    q->len = len;
    q->prev = r->reqs_tail;
    if (r->reqs_tail)
        r->reqs_tail->next = q;
    else
        r->reqs = q;
    r->reqs_tail = q;
    return q;
}

/* Takes q out of its engine's list: from now on it reaches nothing. */
static void req_detach(dx_rreq *q)
{
    dx_redis *r = q->r;
    if (r == NULL)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        r->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->reqs_tail = q->prev;
    q->prev = q->next = NULL;
    q->r = NULL;
}

/* Detaches q and frees it unless a hiredis callback is still owed to it. */
static void req_done(dx_rreq *q)
{
    req_detach(q);
    if (!q->pending)
        free(q);
}

/* ---- publish ---- */

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_redis *r = ac->data;
    redisReply *rep = reply;
    (void)pd;
    if (r == NULL)
        return;                      /* let go: counted lost then */
    r->inflight--;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        r->st.lost++;
}

static int publish_plain(dx_redis *r, const dx_publication *p)
{
    char small[1024], *env = small;
    size_t cap = dx_renv_pub_size(r->node_len, p->len), clen;
    if (cap > sizeof small && (env = malloc(cap)) == NULL)
        return -1;
    size_t elen = dx_renv_pub(env, r->cfg.node, r->node_len, p->data, p->len, p->binary);
    const char *chan = dx_redis_key(r, 0, "ch:", p->topic, p->tlen, &clen);
    const char *v[] = { "PUBLISH", chan, env };
    size_t l[] = { 7, clen, elen };
    int rc = chan ? dx_rl_cmd(r, on_pub_reply, NULL, 3, v, l) : -1;
    if (env != small)
        free(env);
    if (rc == 0)
        r->inflight++;
    return rc;
}

static void on_hpub_reply(redisAsyncContext *ac, void *reply, void *pd);

static int send_hpub(dx_redis *r, dx_rreq *q)
{
    size_t kl[3];
    const char *m = dx_redis_key(r, 0, "m:", q->topic, q->tlen, &kl[0]);
    const char *s = dx_redis_key(r, 1, "s:", q->topic, q->tlen, &kl[1]);
    const char *c = dx_redis_key(r, 2, "ch:", q->topic, q->tlen, &kl[2]);
    char size[24], ttl[24], epoch[13], from[24];
    new_epoch(r, epoch);
    long long ms = q->h.ttl > 0 ? (long long)(q->h.ttl * 1000) : 0;
    const char *v[] = { m, s, c, size, ttl, r->cfg.node, q->binary ? "1" : "0", (const char *)q->data, epoch,
                        from };
    size_t l[] = { kl[0], kl[1], kl[2], (size_t)snprintf(size, sizeof size, "%zu", q->h.size),
                   (size_t)snprintf(ttl, sizeof ttl, "%lld", ms), r->node_len, 1, q->len, 12,
                   (size_t)snprintf(from, sizeof from, "%llu", (unsigned long long)q->from) };
    if (m == NULL || s == NULL || c == NULL
        || dx_rl_script(r, DX_RS_PUBLISH, q->eval, on_hpub_reply, q, 3, 10, v, l) < 0)
        return -1;
    q->pending = 1;
    return 0;
}

/* The script's answer: its publication comes back on the channel. When
 * it failed, the local subscribers get it without a position. */
static void on_hpub_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_rreq *q = pd;
    dx_redis *r = q->r;
    redisReply *rep = reply;
    (void)ac;
    q->pending = 0;
    if (r == NULL) {
        free(q);
        return;
    }
    if (rep && rep->type != REDIS_REPLY_ERROR) {
        req_done(q);
        return;
    }
    if (is_noscript(rep) && !q->eval) {
        q->eval = 1;
        reload_scripts(r);
        if (send_hpub(r, q) == 0)
            return;
    }
    r->st.lost++;
    req_detach(q);
    if (!r->closing) {
        dx_publication p = { .topic = q->topic, .tlen = q->tlen, .data = q->data, .len = q->len,
                             .binary = q->binary, .from = q->from };
        r->base.sink.publication(r->base.sink.ud, &p);
    }
    free(q);
}

static int publish(dx_broker *b, const dx_publication *p, const dx_history_rule *h)
{
    dx_redis *r = (dx_redis *)b;
    r->st.published++;
    if (r->up && dx_rl_backlog(r) <= r->cfg.max_pending) {
        if (h == NULL || h->size == 0) {
            if (publish_plain(r, p) == 0)
                return 0;
        } else {
            dx_rreq *q = req_new(r, RQ_HPUB, p->topic, p->tlen, p->data, p->len);
            if (q) {
                q->binary = p->binary != 0;
                q->from = p->from;
                q->h = *h;
                /* Its positioned copy comes back on the topic's channel:
                 * sent once this node listens there, so the local
                 * subscribers get it too. */
                dx_rtopic *t = dx_rt_find(&r->topics, p->topic, p->tlen);
                if (t && t->interest && t->sub != DX_RT_SUBSCRIBED) {
                    q->state = RS_WAIT_SUB;
                    return 0;
                }
                if (send_hpub(r, q) == 0)
                    return 0;
                req_done(q);
            }
        }
    }
    r->st.lost++;
    return -1;
}

/* ---- recover ---- */

static void finish_recover(dx_rreq *q, int status, const dx_publication *e, size_t n, const dx_pos *top)
{
    dx_recover_done done = q->done;
    void *arg = q->arg;
    req_done(q);                     /* q may be gone now */
    done(arg, status, e, n, top);
}

static void on_recover_reply(redisAsyncContext *ac, void *reply, void *pd);

static int send_recover(dx_redis *r, dx_rreq *q)
{
    size_t kl[3];
    const char *m = dx_redis_key(r, 0, "m:", q->topic, q->tlen, &kl[0]);
    const char *s = dx_redis_key(r, 1, "s:", q->topic, q->tlen, &kl[1]);
    char since[24], count[24], epoch[13], ttl[24], id[24];
    new_epoch(r, epoch);
    long long ms = q->h.ttl > 0 ? (long long)(q->h.ttl * 1000) : 0;
    const char *v[] = { m, s, r->nchan, since, q->since.epoch, count, epoch, ttl, id };
    size_t l[] = { kl[0], kl[1], r->nchan_len,
                   (size_t)snprintf(since, sizeof since, "%llu", (unsigned long long)q->since.offset),
                   strlen(q->since.epoch), (size_t)snprintf(count, sizeof count, "%zu", q->h.size + 1), 12,
                   (size_t)snprintf(ttl, sizeof ttl, "%lld", ms),
                   (size_t)snprintf(id, sizeof id, "%llu", (unsigned long long)q->id) };
    if (m == NULL || s == NULL || dx_rl_script(r, DX_RS_RECOVER, q->eval, on_recover_reply, q, 3, 9, v, l) < 0)
        return -1;
    q->pending = 1;
    q->state = RS_SENT;
    return 0;
}

/* The script's own reply says only whether it ran; its answer comes on
 * the node's channel (dx_redis_node_message). */
static void on_recover_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_rreq *q = pd;
    dx_redis *r = q->r;
    redisReply *rep = reply;
    (void)ac;
    q->pending = 0;
    if (r == NULL) {
        free(q);                     /* answered, or the engine let go */
        return;
    }
    if (rep && rep->type != REDIS_REPLY_ERROR) {
        q->state = RS_WAIT_RESULT;
        return;
    }
    if (is_noscript(rep) && !q->eval) {
        q->eval = 1;
        reload_scripts(r);
        if (send_recover(r, q) == 0)
            return;
    }
    finish_recover(q, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
}

static void recover(dx_broker *b, const char *topic, size_t tlen, const dx_pos *since,
                    const dx_history_rule *h, dx_recover_done done, void *arg)
{
    dx_redis *r = (dx_redis *)b;
    if (h == NULL || h->size == 0) {
        dx_pos top = { 0, "" };
        done(arg, DX_RECOVER_NO_HISTORY, NULL, 0, &top);
        return;
    }
    dx_rreq *q = r->up ? req_new(r, RQ_RECOVER, topic, tlen, NULL, 0) : NULL;
    if (q == NULL) {
        done(arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        return;
    }
    q->since = *since;
    q->h = *h;
    q->done = done;
    q->arg = arg;
    q->state = RS_WAIT_SUB;
    dx_rtopic *t = dx_rt_find(&r->topics, topic, tlen);
    if (t && t->interest && t->sub != DX_RT_SUBSCRIBED)
        return;                      /* its SUBSCRIBE confirmed sends it */
    if (send_recover(r, q) < 0)
        finish_recover(q, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
}

/* Sends, oldest first, the publishes and recovers that waited for t's
 * subscription. One that cannot be sent waits on: the link is failing,
 * and going down answers it. */
static void send_waiting(dx_redis *r, const dx_rtopic *t)
{
    for (dx_rreq *q = r->reqs; q; q = q->next)
        if (q->state == RS_WAIT_SUB && !q->pending && q->tlen == t->named.len
            && memcmp(q->topic, t->name, t->named.len) == 0) {
            if (q->kind == RQ_RECOVER)
                send_recover(r, q);
            else if (q->kind == RQ_HPUB && send_hpub(r, q) == 0)
                q->state = RS_SENT;
        }
}

/* The answer to a recover: 'R', id, epoch, top, then entries (offset,
 * binary, data) after since. */
static void recover_result(dx_redis *r, const char *s, size_t len)
{
    const char *p = s + 1, *end = s + len, *f;
    size_t flen;
    uint64_t id;
    dx_pos top = { 0, "" };
    if (dx_renv_field(&p, end, &f, &flen) < 0 || dx_renv_decimal(f, flen, &id) < 0)
        return;
    dx_rreq *q = r->reqs;
    while (q && !(q->kind == RQ_RECOVER && q->id == id))
        q = q->next;
    if (q == NULL)
        return;
    if (dx_renv_field(&p, end, &f, &flen) < 0 || flen == 0 || flen > DX_EPOCH_MAX)
        goto bad;
    memcpy(top.epoch, f, flen);
    top.epoch[flen] = '\0';
    if (dx_renv_field(&p, end, &f, &flen) < 0 || dx_renv_decimal(f, flen, &top.offset) < 0)
        goto bad;
    size_t n = 0;
    for (const char *c = p; c < end; n++)
        for (int i = 0; i < 3; i++)
            if (dx_renv_field(&c, end, &f, &flen) < 0)
                goto bad;
    /* The entries, their positions and the topic's name in one block: q
     * is freed before the answer is given (finish_recover). */
    dx_publication *e = n ? malloc(n * (sizeof *e + sizeof(dx_pos)) + q->tlen) : NULL;
    dx_pos *pos = (dx_pos *)(e + n);
    char *topic = (char *)(pos + n);
    if (n && e == NULL)
        goto bad;
    if (n)
        memcpy(topic, q->topic, q->tlen);
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t blen;
        dx_renv_field(&p, end, &f, &flen);
        if (dx_renv_decimal(f, flen, &pos[i].offset) < 0) {
            free(e);
            goto bad;
        }
        strcpy(pos[i].epoch, top.epoch);
        dx_renv_field(&p, end, &b, &blen);
        dx_renv_field(&p, end, &f, &flen);
        e[i] = (dx_publication){ .topic = topic, .tlen = q->tlen, .data = (const uint8_t *)f, .len = flen,
                                 .binary = blen == 1 && b[0] == '1', .pos = &pos[i] };
    }
    /* Exactly the publications after since, or a status saying why not. */
    const dx_pos *since = &q->since;      /* read before finish_recover frees q */
    int status = DX_RECOVERED;
    if (since->epoch[0] == '\0')
        ;                            /* the newest kept, whatever came before */
    else if (strcmp(top.epoch, since->epoch) != 0 || top.offset < since->offset)
        status = DX_RECOVER_EPOCH;
    else if (top.offset > since->offset && (n != top.offset - since->offset || pos[0].offset != since->offset + 1))
        status = DX_RECOVER_TOO_OLD;
    for (size_t i = 1; status == DX_RECOVERED && i < n; i++)
        if (pos[i].offset != pos[i - 1].offset + 1)
            status = DX_RECOVER_TOO_OLD;
    finish_recover(q, status, status == DX_RECOVERED ? e : NULL, status == DX_RECOVERED ? n : 0, &top);
    free(e);
    return;
bad:
    finish_recover(q, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
}

void dx_redis_node_message(dx_redis *r, const char *s, size_t len)
{
    if (len > 0 && s[0] == 'R')
        recover_result(r, s, len);
}

/* ---- interest and delivery ---- */

static void send_join(dx_redis *r, const dx_rtopic *t, const dx_rmember *m, size_t n);

static void on_topic_channel(redisAsyncContext *ac, void *reply, void *pd)
{
    (void)pd;
    if (ac->data && reply)
        dx_redis_channel(ac->data, reply);
}

static void sync_sub(dx_redis *r, dx_rtopic *t)
{
    size_t clen;
    if (!r->up)
        return;
    const char *chan = dx_redis_key(r, 0, "ch:", t->name, t->named.len, &clen);
    if (chan == NULL)
        return;
    if (t->interest && t->sub == DX_RT_NONE) {
        const char *v[] = { "SUBSCRIBE", chan };
        size_t l[] = { 9, clen };
        if (dx_rl_sub(r, on_topic_channel, NULL, 2, v, l) == 0)
            t->sub = DX_RT_SUBSCRIBING;
    } else if (!t->interest && t->sub == DX_RT_SUBSCRIBED) {
        const char *v[] = { "UNSUBSCRIBE", chan };
        size_t l[] = { 11, clen };
        if (dx_rl_sub(r, on_topic_channel, NULL, 2, v, l) == 0)
            t->sub = DX_RT_UNSUBSCRIBING;
    }
}

static void interest(dx_broker *b, const char *topic, size_t tlen, int on)
{
    dx_redis *r = (dx_redis *)b;
    dx_rtopic *t = on ? dx_rt_get(&r->topics, topic, tlen) : dx_rt_find(&r->topics, topic, tlen);
    if (t == NULL || t->interest == (on != 0))
        return;
    t->interest = on != 0;
    r->st.topics += on ? 1 : (uint64_t)-1;
    sync_sub(r, t);
    dx_rt_release(&r->topics, t);
}

/* One message on a topic's channel (topic points into the reply, which
 * outlives the sink's calls, unlike t). */
static void deliver(dx_redis *r, const char *topic, size_t tlen, const char *s, size_t len)
{
    dx_renv e;
    if (dx_renv_parse(s, len, &e) < 0)
        return;
    if (e.kind == 'p' || e.kind == 'h') {
        int mine = e.node_len == r->node_len && memcmp(e.node, r->cfg.node, e.node_len) == 0;
        if (e.kind == 'p' && mine)
            return;                  /* delivered here when published */
        r->st.received++;
        dx_publication p = { .topic = topic, .tlen = tlen, .data = e.data, .len = e.len, .binary = e.binary,
                             .pos = e.kind == 'h' ? &e.pos : NULL, .from = mine ? e.from : 0 };
        r->base.sink.publication(r->base.sink.ud, &p);
    } else if (r->base.sink.presence) {
        r->base.sink.presence(r->base.sink.ud, topic, tlen, e.kind == 'j', &e.member);
    }
}

void dx_redis_channel(dx_redis *r, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str, *chan = rep->element[1]->str;
    size_t plen = strlen(r->cfg.prefix) + 3, clen = rep->element[1]->len;
    if (clen < plen || memcmp(chan, r->cfg.prefix, plen - 3) != 0 || memcmp(chan + plen - 3, "ch:", 3) != 0)
        return;
    dx_rtopic *t = dx_rt_find(&r->topics, chan + plen, clen - plen);
    if (t == NULL)
        return;
    if (strcmp(kind, "subscribe") == 0) {
        t->sub = DX_RT_SUBSCRIBED;
        if (t->interest) {
            send_waiting(r, t);
            if (t->nmembers)             /* the joins that waited (refreshes are silent) */
                send_join(r, t, t->members, t->nmembers);
        }
        else
            sync_sub(r, t);
    } else if (strcmp(kind, "unsubscribe") == 0) {
        t->sub = DX_RT_NONE;
        sync_sub(r, t);
        dx_rt_release(&r->topics, t);
    } else if (strcmp(kind, "message") == 0 && t->interest && rep->element[2]->type == REDIS_REPLY_STRING) {
        deliver(r, chan + plen, clen - plen, rep->element[2]->str, rep->element[2]->len);
    }
}

/* ---- presence ---- */

/* Member key "node:conn" and record of m (of this node) into buf;
 * returns the bytes used. */
/* A member's key in the presence hash, "<node>:<conn>", written at buf;
 * returns its length. */
static int member_key(const dx_rmember *m, char *buf)
{
    memcpy(buf, m->node, m->node_len);
    return (int)m->node_len + sprintf(buf + m->node_len, ":%llu", (unsigned long long)m->conn);
}

static size_t member_args(const dx_rmember *m, char *buf, const char **v, size_t *l)
{
    int k = member_key(m, buf);
    v[0] = buf;
    l[0] = (size_t)k;
    v[1] = buf + k;
    l[1] = dx_rmember_write(buf + k, m->node, m->node_len, m->conn, m->info, m->info_len);
    return (size_t)k + l[1];
}

/* Runs script which on the presence keys of topic with extra arguments:
 * 0, or -1 when it could not be sent. */
static int presence_script(dx_redis *r, const char *topic, size_t tlen, int which, redisCallbackFn *fn,
                           void *pd, int argc, const char **argv, const size_t *lens)
{
    int rc = -1;
    const char **v = malloc((size_t)(argc + 3) * sizeof *v);
    size_t *l = malloc((size_t)(argc + 3) * sizeof *l);
    if (v && l && (v[0] = dx_redis_key(r, 0, "p:", topic, tlen, &l[0]))
        && (v[1] = dx_redis_key(r, 1, "pe:", topic, tlen, &l[1]))
        && (v[2] = dx_redis_key(r, 2, "ch:", topic, tlen, &l[2]))) {
        memcpy(v + 3, argv, (size_t)argc * sizeof *v);
        memcpy(l + 3, lens, (size_t)argc * sizeof *l);
        rc = dx_rl_script(r, which, 0, fn, pd, 3, argc + 3, v, l);
    }
    free(v);
    free(l);
    return rc;
}

/* Joins (or refreshes) members m[0..n) of t. */
static void send_join(dx_redis *r, const dx_rtopic *t, const dx_rmember *m, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += 2 * (m[i].node_len + 24) + 3 * 21 + m[i].info_len;
    char *buf = malloc(bytes + 24);
    const char **v = malloc((2 * n + 1) * sizeof *v);
    size_t *l = malloc((2 * n + 1) * sizeof *l);
    if (buf && v && l) {
        char *at = buf + 24;
        v[0] = buf;
        l[0] = (size_t)sprintf(buf, "%lld", (long long)(r->cfg.presence_ttl * 1000));
        for (size_t i = 0; i < n; i++)
            at += member_args(&m[i], at, v + 1 + 2 * i, l + 1 + 2 * i);
        presence_script(r, t->name, t->named.len, DX_RS_JOIN, NULL, NULL, (int)(2 * n + 1), v, l);
    }
    free(buf);
    free(v);
    free(l);
}

static void send_leave(dx_redis *r, const dx_rtopic *t, const dx_rmember *m, size_t n)
{
    size_t bytes = 1;
    for (size_t i = 0; i < n; i++)
        bytes += m[i].node_len + 24;
    char *buf = malloc(bytes);
    const char **v = malloc((n + 1) * sizeof *v);
    size_t *l = malloc((n + 1) * sizeof *l);
    if (buf && v && l) {
        char *at = buf;
        for (size_t i = 0; i < n; i++) {
            v[i] = at;
            l[i] = (size_t)member_key(&m[i], at);
            at += l[i];
        }
        presence_script(r, t->name, t->named.len, DX_RS_LEAVE, NULL, NULL, (int)n, v, l);
    }
    free(buf);
    free(v);
    free(l);
}

static void join(dx_broker *b, const char *topic, size_t tlen, const dx_member *m)
{
    dx_redis *r = (dx_redis *)b;
    dx_member own = *m;
    if (own.node_len == 0) {             /* no name given: this node's */
        own.node = r->cfg.node;
        own.node_len = r->node_len;
    }
    dx_rtopic *t = dx_rt_get(&r->topics, topic, tlen);
    if (t == NULL || dx_rt_member_set(t, &own) < 0) {
        if (t)
            dx_rt_release(&r->topics, t);
        return;
    }
    /* Its join event comes back on the topic's channel: while the node's
     * SUBSCRIBE is not confirmed, the confirmation sends it (this node
     * would not hear its own member join otherwise). */
    if (r->up && !(t->interest && t->sub != DX_RT_SUBSCRIBED))
        send_join(r, t, dx_rt_member_find(t, &own), 1);
}

static void leave(dx_broker *b, const char *topic, size_t tlen, const dx_member *m)
{
    dx_redis *r = (dx_redis *)b;
    dx_member own = *m;
    if (own.node_len == 0) {
        own.node = r->cfg.node;
        own.node_len = r->node_len;
    }
    dx_rtopic *t = dx_rt_find(&r->topics, topic, tlen);
    if (t == NULL || !dx_rt_member_del(t, &own))
        return;
    if (r->up) {
        dx_rmember key = { .conn = own.conn, .node = (char *)own.node, .node_len = own.node_len };
        send_leave(r, t, &key, 1);
    } else {
        dx_rt_leaving_add(t, &own);  /* sent when the link is back */
    }
    dx_rt_release(&r->topics, t);
}

static void on_presence_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_rreq *q = pd;
    dx_redis *r = q->r;
    redisReply *rep = reply;
    (void)ac;
    q->pending = 0;
    if (r == NULL) {
        free(q);
        return;
    }
    dx_presence_done done = q->pdone;
    void *arg = q->arg;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        req_done(q);
        done(arg, 0, NULL, 0);
        return;
    }
    req_done(q);
    dx_member *m = malloc((rep->elements ? rep->elements : 1) * sizeof *m);
    size_t n = 0;
    for (size_t i = 0; m && i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING
            && dx_rmember_parse(rep->element[i]->str, rep->element[i]->len, &m[n]) == 0)
            n++;
    done(arg, m != NULL, m, n);
    free(m);
}

static void presence(dx_broker *b, const char *topic, size_t tlen, dx_presence_done done, void *arg)
{
    dx_redis *r = (dx_redis *)b;
    dx_rreq *q = r->up ? req_new(r, RQ_PRESENCE, topic, tlen, NULL, 0) : NULL;
    if (q == NULL) {
        done(arg, 0, NULL, 0);
        return;
    }
    q->pdone = done;
    q->arg = arg;
    const char *v[] = { "1" };
    size_t l[] = { 1 };
    if (presence_script(r, topic, tlen, DX_RS_CLEANUP, on_presence_reply, q, 1, v, l) == 0) {
        q->pending = 1;
        return;
    }
    req_done(q);
    done(arg, 0, NULL, 0);
}

/* Every presence_ttl/3: this node's members refreshed, the expired ones
 * of every topic with interest cleaned up (their leaves announced). */
static void presence_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    dx_redis *r = w->data;
    (void)loop;
    (void)revents;
    if (!r->up)
        return;
    for (dx_named *e = dx_names_first(&r->topics); e; e = dx_names_next(&r->topics, e)) {
        dx_rtopic *t = (dx_rtopic *)e;
        if (t->nmembers && !(t->interest && t->sub != DX_RT_SUBSCRIBED))  /* else: once subscribed */
            send_join(r, t, t->members, t->nmembers);
        if (t->interest) {
            const char *v[] = { "0" };
            size_t l[] = { 1 };
            presence_script(r, t->name, t->named.len, DX_RS_CLEANUP, NULL, NULL, 1, v, l);
        }
    }
}

/* ---- the link going up and down ---- */

void dx_redis_up(dx_redis *r)
{
    char why[DX_RL_WHY];
    for (dx_named *e = dx_names_first(&r->topics); e; e = dx_names_next(&r->topics, e)) {
        dx_rtopic *t = (dx_rtopic *)e;
        if (t->nleaving) {
            send_leave(r, t, t->leaving, t->nleaving);
            for (size_t j = 0; j < t->nleaving; j++)
                dx_rmember_clear(&t->leaving[j]);
            t->nleaving = 0;
        }
        if (t->nmembers && !t->interest)  /* with interest: once subscribed again */
            send_join(r, t, t->members, t->nmembers);
        sync_sub(r, t);
    }
    if (r->ever_up)
        r->st.reconnects++;
    r->ever_up = 1;
    snprintf(why, sizeof why, "connected to Redis at %s:%d", r->cfg.host, r->cfg.port);
    report(r, 1, why);
}

void dx_redis_down(dx_redis *r, const char *why)
{
    for (dx_named *e = dx_names_first(&r->topics), *next; e; e = next) {
        next = dx_names_next(&r->topics, e);
        dx_rtopic *t = (dx_rtopic *)e;
        t->sub = DX_RT_NONE;
        dx_rt_release(&r->topics, t);
    }
    /* Requests not owed a hiredis callback are answered here (the others
     * by theirs): detached first, as an answer may free the engine. A
     * publish that waited for its topic's subscription is lost, and goes
     * to the local subscribers without a position. */
    dx_rreq *list = NULL, **end = &list;
    for (dx_rreq *q = r->reqs, *next; q; q = next) {
        next = q->next;
        if (!q->pending) {
            req_detach(q);
            *end = q;
            end = &q->next;
        }
    }
    dx_redis_hold(r);
    while (list) {
        dx_rreq *q = list;
        list = q->next;
        if (q->kind == RQ_RECOVER) {
            q->done(q->arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        } else if (q->kind == RQ_HPUB && !r->dead) {
            dx_publication p = { .topic = q->topic, .tlen = q->tlen, .data = q->data, .len = q->len,
                                 .binary = q->binary, .from = q->from };
            r->st.lost++;
            r->base.sink.publication(r->base.sink.ud, &p);
        }
        free(q);
    }
    if (dx_redis_unhold(r))
        return;
    report(r, 0, why);
}

/* ---- the rest of the ops ---- */

static void stats(const dx_broker *b, dx_broker_stats *out)
{
    const dx_redis *r = (const dx_redis *)b;
    *out = r->st;
    out->link_up = (uint64_t)r->up;
}

static void rfree(dx_broker *b)
{
    dx_redis *r = (dx_redis *)b;
    if (r->closing)
        return;
    r->closing = 1;
    dx_rl_close(r);                  /* answers what awaited a reply (at once, or later if ... */
    while (r->reqs) {                /* ... hiredis is inside a callback: then detached now) */
        dx_rreq *q = r->reqs;
        int kind = q->kind;
        dx_recover_done done = q->done;
        dx_presence_done pdone = q->pdone;
        void *arg = q->arg;
        req_done(q);
        if (kind == RQ_RECOVER)
            done(arg, DX_RECOVER_UNAVAILABLE, NULL, 0, NULL);
        else if (kind == RQ_PRESENCE)
            pdone(arg, 0, NULL, 0);
    }
    dx_rt_free(&r->topics);
    for (int i = 0; i < 4; i++)
        free(r->scratch[i]);
    if (r->busy)
        r->dead = 1;                 /* a caller up the stack frees it */
    else
        free(r);
}

void dx_redis_hold(dx_redis *r)
{
    r->busy++;
}

int dx_redis_unhold(dx_redis *r)
{
    if (--r->busy > 0)
        return r->dead;
    if (r->dead) {
        free(r);
        return 1;
    }
    return 0;
}

/* A process forked from this one (a worker of the hub's supervisor) must
 * not keep Redis's sockets open: the supervisor's reconnect after a dead
 * link would leave the old connection alive, subscribed, and filling
 * Redis's output buffer for a reader that never reads. */
static void rforked(dx_broker *b)
{
    dx_redis *r = (dx_redis *)b;
    redisAsyncContext *ctx[2] = { r->cmd, r->sub };
    for (int i = 0; i < 2; i++)
        if (ctx[i] && ctx[i]->c.fd >= 0) {
            close(ctx[i]->c.fd);
            ctx[i]->c.fd = -1;
        }
}

static const dx_broker_ops redis_ops = {
    .name = "redis",
    .interest = interest,
    .publish = publish,
    .recover = recover,
    .join = join,
    .leave = leave,
    .presence = presence,
    .stats = stats,
    .free = rfree,
    .forked = rforked,
};

const char *dx_redis_broker_node(const dx_broker *b)
{
    return ((const dx_redis *)b)->cfg.node;
}

dx_broker *dx_redis_broker_new(struct ev_loop *loop, const dx_broker_sink *sink,
                               const dx_redis_config *cfg, char *err, size_t errcap)
{
    if (cfg->port <= 0 || cfg->port > 65535 || cfg->db < 0 || !cfg->host[0] || cfg->presence_ttl <= 0
        || cfg->probe_interval <= 0 || cfg->probe_timeout <= 0 || cfg->reconnect_min <= 0
        || cfg->reconnect_max < cfg->reconnect_min) {
        snprintf(err, errcap, "redis broker: host, port 1..65535, db >= 0 and positive times are needed");
        return NULL;
    }
    if (sink->publication == NULL) {
        snprintf(err, errcap, "redis broker: the sink has no publication callback");
        return NULL;
    }
    dx_redis *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errcap, "redis broker: out of memory");
        return NULL;
    }
    r->base.ops = &redis_ops;
    r->base.sink = *sink;
    r->loop = loop;
    r->cfg = *cfg;
    r->cfg.host[sizeof r->cfg.host - 1] = r->cfg.prefix[sizeof r->cfg.prefix - 1] = '\0';
    r->cfg.password[sizeof r->cfg.password - 1] = r->cfg.node[sizeof r->cfg.node - 1] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = 0;
    if (getentropy(&seed, sizeof seed) < 0)
        seed = 0;
    r->rng = seed ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40)
             ^ (uint64_t)(uintptr_t)r;
    if (!r->cfg.node[0]) {
        char host[32] = "node", tag[13];
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        new_epoch(r, tag);
        tag[6] = '\0';
        snprintf(r->cfg.node, sizeof r->cfg.node, "%s-%ld-%s", host, (long)getpid(), tag);
    }
    r->node_len = strlen(r->cfg.node);
    r->nchan_len = (size_t)snprintf(r->nchan, sizeof r->nchan, "%sn:%s", r->cfg.prefix, r->cfg.node);
    r->reported = -1;
    dx_rl_init(r);
    ev_timer_init(&r->presence, presence_cb, r->cfg.presence_ttl / 3, r->cfg.presence_ttl / 3);
    r->presence.data = r;
    dx_rl_timer_start(r, &r->presence);
    dx_rl_timer_start(r, &r->retry);     /* connects from the loop: nothing is called back from here */
    return &r->base;
}
