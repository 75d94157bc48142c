/* The node: a server's side of the broker (broker/broker.h). It exists
 * once the app asks for history, presence or a broker; until then publish
 * is the transport's alone and costs nothing more.
 *
 * It keeps the history rules (topic prefix -> size, ttl, frame function),
 * hands publishes to the engine, delivers what the engine brings back
 * (framed once per publication: the app's frame function puts the position
 * into the bytes its clients get), runs resumes, and keeps which
 * connection is in which topic's presence.
 *
 * A resume (ws:subscribe(topic, { since = pos })) holds the topic (so its
 * publications keep coming to this node) without subscribing the
 * connection, asks the engine for what came after pos, and buffers what
 * arrives meanwhile; the answer is delivered, then what was buffered and
 * is newer, and only then is the connection subscribed: no gap, no
 * duplicate, in order. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "binding/binding.h"
#include "broker/broker.h"
#include "broker/bus.h"
#include "broker/redis.h"
#include "transport/log.h"

#define DX_INFO_MAX 4096           /* bytes of a presence member's encoded table */

typedef struct rule {
    char *prefix;
    size_t plen;
    dx_history_rule h;
    int frame;                     /* registry ref, LUA_NOREF: publications go as they are */
} rule;

/* A publication that arrived while a resume was under way. */
typedef struct held {
    dx_pos pos;
    int positioned;
    int binary;
    size_t len;
    uint8_t data[];
} held;

typedef struct resume {
    struct resume *next;
    struct dx_node *node;          /* NULL once the node is gone */
    dx_lconn *w;                   /* NULL once canceled (closed, unsubscribed) */
    char *topic;
    size_t tlen;
    dx_pos since;
    size_t last;                   /* "last = n": the newest n, since has no epoch */
    int done;                      /* registry ref of the callback, LUA_NOREF */
    held **buf;
    size_t nbuf, capbuf, bytes;
    int overflow;                  /* buf passed its bound: the catch-up cannot be whole */
    int answering;                 /* its recovered callback runs */
    int shadow;                    /* a page's (topic is "\1" + the topic): held publications are
                                    * kept as published, and sent in the duplex.1 envelope */
} resume;

struct dx_node {
    dx_lserver *ls;
    dx_broker *b;
    char name[256];                /* this node's name in presence */
    rule *rules;
    size_t nrules;
    resume *resumes;               /* under way */
    int on_join, on_leave;         /* registry refs, LUA_NOREF */
    int joined;                    /* registry ref: { [ws id] = { [topic] = true } } */
    lua_State *L;                  /* the thread of the Lua call under way, NULL from the loop */
    int busy;                      /* Lua calls under way from here (the server cannot close) */
    int sweeping;                  /* the topic hook hears of every topic there is */
};

/* ---- calling Lua ---- */

/* The thread to call Lua on: the caller's during a call from Lua (it may
 * be a coroutine of the app), else the event thread. */
static lua_State *thread_of(const dx_node *n)
{
    return n->L ? n->L : n->ls->T;
}

/* Calls the function below nargs arguments on L, logging an error with
 * its traceback; 1 when it returned (nresults pushed), else 0. From the
 * loop (n->L NULL) it is a guarded event on the event thread; from inside
 * a call of Lua (ws:subscribe answered at once, even on the event thread)
 * the stack's index 1 is that C function's first argument, not the
 * traceback handler dx_call expects there, so a handler is pushed. */
static int call_lua(dx_node *n, lua_State *L, int nargs, int nresults, const char *what, const dx_lconn *w)
{
    if (n->L == NULL && L == n->ls->T)
        return dx_call(L, nargs, nresults, what, w, n->ls->guard_ms);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, dx_traceback_handler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc != 0)
        dx_log(DX_LOG_ERROR, "handler_error", w ? (uint64_t)w->id : 0, w ? &w->remote : NULL,
               "error in %s: %s", what, lua_tostring(L, -1));
    lua_remove(L, base);
    if (rc != 0)
        lua_pop(L, 1);
    return rc == 0;
}

/* call_lua, with the node kept: the server refuses to close meanwhile
 * (dx_node_busy), since the engine and the caller go on with it after. */
static int call(dx_node *n, lua_State *L, int nargs, int nresults, const char *what, const dx_lconn *w)
{
    n->busy++;
    int ok = call_lua(n, L, nargs, nresults, what, w);
    n->busy--;
    return ok;
}

int dx_node_busy(const dx_lserver *ls)
{
    return ls->node && ls->node->busy;
}

/* ---- rules ---- */

/* The longest prefix of topic with a rule, or NULL. */
static const rule *rule_of(const dx_node *n, const char *topic, size_t tlen)
{
    const rule *best = NULL;
    for (size_t i = 0; i < n->nrules; i++) {
        const rule *r = &n->rules[i];
        if (r->plen <= tlen && memcmp(r->prefix, topic, r->plen) == 0 && (best == NULL || r->plen > best->plen))
            best = r;
    }
    return best;
}

static const dx_history_rule no_history = { 0, 0 };

/* The bytes the subscribers of p get: frame(topic, data, position, binary,
 * replay) when its rule has one, else p's own (replay: p is sent again to
 * a connection catching up). Pushes what it returns (or
 * nothing) and points *data, *len, *binary at the bytes to send. An error
 * in frame is logged and the publication goes as it is. */
static int framed(dx_node *n, lua_State *L, const dx_publication *p, int replay, const uint8_t **data,
                  size_t *len, int *binary)
{
    *data = p->data;
    *len = p->len;
    *binary = p->binary;
    const rule *r = p->pos ? rule_of(n, p->topic, p->tlen) : NULL;
    if (r == NULL || r->frame == LUA_NOREF)
        return 0;
    char pos[DX_POS_STRLEN];
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->frame);
    lua_pushlstring(L, p->topic, p->tlen);
    lua_pushlstring(L, (const char *)p->data, p->len);
    lua_pushstring(L, dx_pos_format(p->pos, pos));
    lua_pushboolean(L, p->binary);
    lua_pushboolean(L, replay);
    if (!call(n, L, 5, 2, "history frame function", NULL))
        return 0;
    if (lua_type(L, -2) != LUA_TSTRING) {
        dx_log(DX_LOG_ERROR, "handler_error", 0, NULL,
               "history frame function returned a %s, not a string: the publication goes as it is",
               luaL_typename(L, -2));
        lua_pop(L, 2);
        return 0;
    }
    *data = (const uint8_t *)lua_tolstring(L, -2, len);
    if (!lua_isnil(L, -1))
        *binary = lua_toboolean(L, -1);
    return 2;
}

/* ---- pages (duplex.1) ---- */

/* The duplex.1 envelope of a publication, malloc'd (NULL out of memory):
 * 0x03, the topic's length (u16 big-endian), the topic, the position's
 * length (u8), the position ("" without history), flags (bit 0: binary),
 * and the data as published. */
static uint8_t *envelope(const char *topic, size_t tlen, const uint8_t *data, size_t len, int binary,
                         const dx_pos *pos, size_t *elen)
{
    char ps[DX_POS_STRLEN];
    size_t plen = pos ? strlen(dx_pos_format(pos, ps)) : 0;
    *elen = 1 + 2 + tlen + 1 + plen + 1 + len;
    uint8_t *e = malloc(*elen), *q = e;
    if (e == NULL)
        return NULL;
    *q++ = DX_TAG_PUBLICATION;
    *q++ = (uint8_t)(tlen >> 8);
    *q++ = (uint8_t)tlen;
    memcpy(q, topic, tlen);
    q += tlen;
    *q++ = (uint8_t)plen;
    memcpy(q, ps, plen);
    q += plen;
    *q++ = binary ? 1 : 0;
    if (len)
        memcpy(q, data, len);
    return e;
}

/* The shadow topic of topic ("\1" + topic) in buf when it fits, else
 * malloc'd; NULL out of memory. */
static char *shadow_name(const char *topic, size_t tlen, char *buf, size_t cap)
{
    char *s = tlen + 1 <= cap ? buf : malloc(tlen + 1);
    if (s) {
        s[0] = DX_SHADOW;
        memcpy(s + 1, topic, tlen);
    }
    return s;
}

/* Sends a publication to the pages subscribed to topic (its shadow's
 * subscribers), once, in the envelope; the connection skip left out. A
 * lookup, and nothing more, when there are none. Returns how many. */
static size_t shadow_deliver(dx_lserver *ls, const char *topic, size_t tlen, const uint8_t *data, size_t len,
                             int binary, const dx_pos *pos, uint64_t skip)
{
    char buf[256];
    if (tlen > 0xFFFF)
        return 0;
    char *name = shadow_name(topic, tlen, buf, sizeof buf);
    size_t sent = 0, elen;
    if (name && dx_server_subscribers(ls->srv, name, tlen + 1)) {
        uint8_t *e = envelope(topic, tlen, data, len, binary, pos, &elen);
        if (e)
            sent = dx_server_deliver(ls->srv, name, tlen + 1, e, elen, 1, skip);
        free(e);
    }
    if (name != buf)
        free(name);
    return sent;
}

/* Sends one publication to page c in the envelope (shadow: "\1" + topic). */
static void shadow_send(dx_conn *c, const char *shadow, size_t slen, const uint8_t *data, size_t len, int binary,
                        const dx_pos *pos)
{
    size_t elen;
    uint8_t *e = envelope(shadow + 1, slen - 1, data, len, binary, pos, &elen);
    if (e)
        dx_conn_send(c, e, elen, 1);
    free(e);
}

/* ---- resumes ---- */

static void resume_free(lua_State *L, resume *r)
{
    for (size_t i = 0; i < r->nbuf; i++)
        free(r->buf[i]);
    free(r->buf);
    if (L && r->done != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, r->done);
    free(r->topic);
    free(r);
}

static void resume_unlink(dx_node *n, resume *r)
{
    for (resume **pp = &n->resumes; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

/* Keeps a copy of a publication that came during r (bounded: past
 * max_backpressure bytes the catch-up is given up). */
static void resume_hold(resume *r, const dx_publication *p, const uint8_t *data, size_t len, int binary,
                        size_t bound)
{
    if (r->overflow)
        return;
    held *h = NULL;
    if (r->bytes + len > bound || (r->nbuf == r->capbuf &&
        !(r->capbuf = r->capbuf ? r->capbuf * 2 : 8, r->buf = realloc(r->buf, r->capbuf * sizeof *r->buf))) ||
        (h = malloc(sizeof *h + len)) == NULL) {
        r->overflow = 1;
        return;
    }
    h->positioned = p->pos != NULL;
    if (p->pos)
        h->pos = *p->pos;
    h->binary = binary;
    h->len = len;
    memcpy(h->data, data, len);
    r->buf[r->nbuf++] = h;
    r->bytes += len;
}

static const char *const status_words[] = {
    [DX_RECOVERED] = NULL, [DX_RECOVER_EPOCH] = "epoch", [DX_RECOVER_TOO_OLD] = "too_old",
    [DX_RECOVER_NO_HISTORY] = "no_history", [DX_RECOVER_UNAVAILABLE] = "unavailable",
};

/* Sends p (framed) to the connection of r. */
static void send_one(dx_node *n, lua_State *L, dx_conn *c, const dx_publication *p, const resume *r)
{
    if (r->shadow) {
        shadow_send(c, r->topic, r->tlen, p->data, p->len, p->binary, p->pos);
        return;
    }
    const uint8_t *data;
    size_t len;
    int binary;
    int pushed = framed(n, L, p, 1, &data, &len, &binary);
    dx_conn_send(c, data, len, binary);
    lua_pop(L, pushed);
}

static void on_recovered(void *arg, int status, const dx_publication *entries, size_t count,
                         const dx_pos *top)
{
    resume *r = arg;
    dx_node *n = r->node;
    if (n == NULL) {                              /* the node is being freed */
        resume_free(NULL, r);
        return;
    }
    lua_State *L = thread_of(n);
    dx_lconn *w = r->w;
    dx_server *srv = n->ls->srv;
    if (w == NULL || w->conn == NULL) {           /* canceled */
        resume_unlink(n, r);
        dx_server_hold_topic(srv, r->topic, r->tlen, 0);
        resume_free(L, r);
        return;
    }
    if (status == DX_RECOVERED && r->last && count > r->last) {   /* "last = n": the newest n */
        entries += count - r->last;
        count = r->last;
    }
    if (r->overflow && status == DX_RECOVERED)
        status = DX_RECOVER_UNAVAILABLE;
    if (r->overflow)
        count = 0;
    int ok = status == DX_RECOVERED;
    char pos[DX_POS_STRLEN];
    if (r->done != LUA_NOREF) {                   /* the app hears first: it may reset the page */
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->done);
        dx_conn_push(L, w);
        lua_pushlstring(L, r->topic, r->tlen);
        lua_createtable(L, 0, 4);
        lua_pushboolean(L, ok);
        lua_setfield(L, -2, "ok");
        if (!ok) {
            lua_pushstring(L, r->overflow ? "too_many" : status_words[status]);
            lua_setfield(L, -2, "reason");
        }
        lua_pushinteger(L, (lua_Integer)(ok ? count : 0));
        lua_setfield(L, -2, "missed");
        if (top && top->offset) {
            lua_pushstring(L, dx_pos_format(top, pos));
            lua_setfield(L, -2, "position");
        }
        /* r stays listed while the app runs: a close of ws, an
         * unsubscribe or another catch-up of the topic cancels it (r->w),
         * and publications meanwhile are held for it. */
        r->answering = 1;
        int called = call(n, L, 3, 0, "recovered", w);
        r->answering = 0;
        if (!called && r->w && r->w->conn)
            dx_conn_close(r->w->conn, 1011, "", 0);
        w = r->w;
        if (ok && r->overflow && w && w->conn)    /* told whole, and more came meanwhile than fits */
            dx_conn_close(w->conn, 1013, "resume overflowed", 17);
    }
    resume_unlink(n, r);
    int again = 0;                                /* the callback started another catch-up, or
                                                   * subscribed: that one delivers */
    for (resume *o = n->resumes; o; o = o->next)
        again |= o->w == w && o->tlen == r->tlen && memcmp(o->topic, r->topic, r->tlen) == 0;
    if (w && w->conn && !again && !dx_conn_subscribed(w->conn, r->topic, r->tlen)) {
        for (size_t i = 0; ok && i < count; i++)
            send_one(n, L, w->conn, &entries[i], r);
        for (size_t i = 0; !r->overflow && i < r->nbuf; i++) {
            held *h = r->buf[i];
            if (h->positioned && top && strcmp(h->pos.epoch, top->epoch) == 0 && h->pos.offset <= top->offset)
                continue;                          /* in the answer already (or older) */
            if (r->shadow)
                shadow_send(w->conn, r->topic, r->tlen, h->data, h->len, h->binary, h->positioned ? &h->pos : NULL);
            else
                dx_conn_send(w->conn, h->data, h->len, h->binary);
        }
        dx_conn_subscribe(w->conn, r->topic, r->tlen);
    }
    dx_server_hold_topic(srv, r->topic, r->tlen, 0);
    resume_free(L, r);
}

/* ---- the sink: what the engine brings ---- */

static void on_publication(void *ud, const dx_publication *p)
{
    dx_node *n = ud;
    lua_State *L = thread_of(n);
    const uint8_t *data;
    size_t len;
    int binary;
    int pushed = framed(n, L, p, 0, &data, &len, &binary);
    dx_server_deliver(n->ls->srv, p->topic, p->tlen, data, len, binary, p->from);
    if (n->ls->shadows)
        shadow_deliver(n->ls, p->topic, p->tlen, p->data, p->len, p->binary, p->pos, p->from);
    for (resume *r = n->resumes; r; r = r->next)
        if (r->w && r->tlen - (size_t)r->shadow == p->tlen
            && memcmp(r->topic + r->shadow, p->topic, p->tlen) == 0) {
            if (r->shadow)                         /* a page's: as published, enveloped when sent */
                resume_hold(r, p, p->data, p->len, p->binary, dx_server_config(n->ls->srv)->max_backpressure);
            else
                resume_hold(r, p, data, len, binary, dx_server_config(n->ls->srv)->max_backpressure);
        }
    lua_pop(L, pushed);
}

/* Pushes { id =, node =, info = {...} } for m. */
static void push_member(lua_State *L, const dx_member *m)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)m->conn);
    lua_setfield(L, -2, "id");
    lua_pushlstring(L, m->node, m->node_len);
    lua_setfield(L, -2, "node");
    lua_newtable(L);
    /* entries: type byte ('s' string, 'n' number, 't' true, 'f' false),
     * key length (2 bytes), key, value length (4 bytes), value */
    const uint8_t *p = m->info, *end = m->info + m->info_len;
    while (end - p >= 3) {
        uint8_t type = p[0];
        size_t klen = (size_t)p[1] << 8 | p[2];
        p += 3;
        if ((size_t)(end - p) < klen + 4)
            break;
        const uint8_t *k = p;
        p += klen;
        size_t vlen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        p += 4;
        if ((size_t)(end - p) < vlen)
            break;
        lua_pushlstring(L, (const char *)k, klen);
        if (type == 't' || type == 'f')
            lua_pushboolean(L, type == 't');
        else {
            lua_pushlstring(L, (const char *)p, vlen);
            if (type == 'n') {                 /* "7" an integer again, "7.0" or "7.5" a float */
                lua_Number x = lua_tonumber(L, -1);
                int integral = memchr(p, '.', vlen) == NULL && memchr(p, 'e', vlen) == NULL &&
                               x == (lua_Number)(lua_Integer)x;
                lua_pop(L, 1);
                if (integral)
                    lua_pushinteger(L, (lua_Integer)x);
                else
                    lua_pushnumber(L, x);
            }
        }
        lua_rawset(L, -3);
        p += vlen;
    }
    lua_setfield(L, -2, "info");
}

static void on_presence(void *ud, const char *topic, size_t tlen, int joined, const dx_member *m)
{
    dx_node *n = ud;
    int fn = joined ? n->on_join : n->on_leave;
    if (fn == LUA_NOREF)
        return;
    lua_State *L = thread_of(n);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    lua_pushlstring(L, topic, tlen);
    push_member(L, m);
    call(n, L, 2, 0, joined ? "join" : "leave", NULL);
}

static void on_link(void *ud, int up, const char *why)
{
    dx_node *n = ud;
    dx_log(up ? DX_LOG_INFO : DX_LOG_WARN, up ? "broker_up" : "broker_down", 0, NULL, "broker %s %s: %s",
           n->b->ops->name, up ? "connected" : "lost", why);
    dx_broker_stats st;
    if (!up && n->b->ops->forward) {
        n->b->ops->stats(n->b, &st);
        if (!st.link_up)                     /* the bus's own link (not the hub's engine's): the
                                              * forwarded POSTs' answers will not come */
            dx_server_forward_fail(n->ls->srv, 503, "the link to the session's worker went down");
    }
}

static void on_topic(void *ud, const char *topic, size_t tlen, int on)
{
    dx_node *n = ud;
    if (n->ls->shadows) {
        /* A page's shadow topic ("\1" + topic) needs the topic's
         * publications: the node has interest in the topic while either
         * is in the table (the sweep of them all names the topic once). */
        int shadow = tlen && topic[0] == DX_SHADOW;
        char buf[256];
        const char *other = shadow ? topic + 1 : shadow_name(topic, tlen, buf, sizeof buf);
        size_t olen = shadow ? tlen - 1 : tlen + 1;
        int exists = other && dx_server_has_topic(n->ls->srv, other, olen);
        if (!shadow && other != buf)
            free((char *)other);
        if (n->sweeping ? shadow && exists : exists)
            return;
        if (shadow) {
            topic++;
            tlen--;
        }
    }
    n->b->ops->interest(n->b, topic, tlen, on);
}

/* A fallback POST another worker took for a session of this one: run
 * here, answered back. */
static void on_forwarded(void *ud, uint32_t origin, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                         const uint8_t *body, size_t len)
{
    dx_node *n = ud;
    char text[128];
    int status = dx_server_forwarded_post(n->ls->srv, id, idlen, seq, body, len, text, sizeof text);
    if (n->b->ops->answer)                   /* n->b: the handler may have changed the engine */
        n->b->ops->answer(n->b, origin, token, status, text, strlen(text));
}

static void on_answered(void *ud, uint64_t token, int status, const char *text, size_t len)
{
    dx_node *n = ud;
    dx_server_forward_answer(n->ls->srv, token, status, text, len);
}

int dx_node_forward(dx_lserver *ls, unsigned worker, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                    const uint8_t *body, size_t len)
{
    dx_node *n = ls->node;
    if (n == NULL || n->b->ops->forward == NULL)
        return -1;
    return n->b->ops->forward(n->b, worker, token, id, idlen, seq, body, len);
}

/* Sets the node's topic hook: the engine hears of every topic there is. */
static void hook_topics(dx_node *n)
{
    n->sweeping = 1;
    dx_server_set_topic_hook(n->ls->srv, on_topic, n);
    n->sweeping = 0;
}

/* ---- the node's life ---- */

dx_node *dx_node_get(lua_State *L, dx_lserver *ls)
{
    if (ls->node)
        return ls->node;
    dx_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        luaL_error(L, "out of memory");
    n->ls = ls;
    n->on_join = n->on_leave = LUA_NOREF;
    char host[200] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(n->name, sizeof n->name, "%s:%ld", host, (long)getpid());
    dx_broker_sink sink = { n, on_publication, on_presence, on_link, on_forwarded, on_answered };
    n->b = dx_memory_broker_new(ev_default_loop(0), &sink);
    if (n->b == NULL) {
        free(n);
        luaL_error(L, "out of memory");
    }
    lua_newtable(L);
    n->joined = luaL_ref(L, LUA_REGISTRYINDEX);
    ls->node = n;
    hook_topics(n);
    return n;
}

static void free_rules(lua_State *L, dx_node *n)
{
    for (size_t i = 0; i < n->nrules; i++) {
        free(n->rules[i].prefix);
        luaL_unref(L, LUA_REGISTRYINDEX, n->rules[i].frame);
    }
    free(n->rules);
    n->rules = NULL;
    n->nrules = 0;
}

void dx_node_free(lua_State *L, dx_lserver *ls)
{
    dx_node *n = ls->node;
    if (n == NULL)
        return;
    for (resume *r = n->resumes; r; r = r->next)
        r->node = NULL;                          /* answered by the engine's free: just freed */
    if (ls->srv)
        dx_server_set_topic_hook(ls->srv, NULL, NULL);
    n->b->ops->free(n->b);
    free_rules(L, n);
    luaL_unref(L, LUA_REGISTRYINDEX, n->on_join);
    luaL_unref(L, LUA_REGISTRYINDEX, n->on_leave);
    luaL_unref(L, LUA_REGISTRYINDEX, n->joined);
    free(n);
    ls->node = NULL;
}

void dx_node_stats(const dx_lserver *ls, dx_broker_stats *out)
{
    memset(out, 0, sizeof *out);
    if (ls->node)
        ls->node->b->ops->stats(ls->node->b, out);
}

/* ---- publish ---- */

size_t dx_node_publish(lua_State *L, dx_lserver *ls, const char *topic, size_t tlen, const char *data,
                       size_t len, int binary, uint64_t skip)
{
    dx_node *n = ls->node;
    if (n == NULL) {
        size_t reached = dx_server_publish(ls->srv, topic, tlen, data, len, binary, skip);
        if (ls->shadows)
            reached += shadow_deliver(ls, topic, tlen, (const uint8_t *)data, len, binary, NULL, skip);
        return reached;
    }
    const rule *r = rule_of(n, topic, tlen);
    dx_publication p = { .topic = topic, .tlen = tlen, .data = (const uint8_t *)data, .len = len,
                         .binary = binary, .from = skip };
    size_t reached = 0;
    lua_State *saved = n->L;
    n->L = L;
    if (r == NULL) {                              /* here at once, then elsewhere */
        reached = dx_server_publish(ls->srv, topic, tlen, data, len, binary, skip);
        if (ls->shadows)
            reached += shadow_deliver(ls, topic, tlen, (const uint8_t *)data, len, binary, NULL, skip);
        n->b->ops->publish(n->b, &p, &no_history);
    } else {
        size_t before = dx_server_stats(ls->srv)->deliveries;
        dx_server_count_publish(ls->srv);
        if (n->b->ops->publish(n->b, &p, &r->h) < 0)
            on_publication(n, &p);                /* no position to be had: here, as it is */
        reached = (size_t)(dx_server_stats(ls->srv)->deliveries - before);
    }
    n->L = saved;
    return reached;
}

/* ---- Lua API ---- */

static dx_lserver *check_server(lua_State *L)
{
    dx_lserver *ls = luaL_checkudata(L, 1, DX_SERVER_MT);
    if (ls->srv == NULL)
        luaL_error(L, "attempt to use a closed server");
    return ls;
}

/* Reads one rule { size =, ttl =, frame = } at idx into r. */
static void read_rule(lua_State *L, int idx, const char *prefix, size_t plen, rule *r)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "size") != 0 && strcmp(k, "ttl") != 0 && strcmp(k, "frame") != 0)
            luaL_error(L, "bad option 'history' (unknown key '%s' in the rule for \"%s\")", k, prefix);
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "size");
    lua_Number size = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || size < 1 || size > 1e6 || size != (lua_Number)(size_t)size)
        luaL_error(L, "bad option 'history' (size of \"%s\" must be an integer from 1 to 1000000)", prefix);
    lua_getfield(L, idx, "ttl");
    lua_Number ttl = lua_isnil(L, -1) ? 0 : lua_tonumber(L, -1);
    if (!lua_isnil(L, -1) && (!lua_isnumber(L, -1) || ttl < 0))
        luaL_error(L, "bad option 'history' (ttl of \"%s\" must be seconds, 0 or more)", prefix);
    lua_getfield(L, idx, "frame");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        luaL_error(L, "bad option 'history' (frame of \"%s\" must be a function)", prefix);
    r->frame = lua_isnil(L, -1) ? LUA_NOREF : (lua_pushvalue(L, -1), luaL_ref(L, LUA_REGISTRYINDEX));
    lua_pop(L, 3);
    r->h.size = (size_t)size;
    r->h.ttl = ttl;
    r->plen = plen;
    r->prefix = malloc(plen + 1);
    if (r->prefix == NULL)
        luaL_error(L, "out of memory");
    memcpy(r->prefix, prefix, plen);
    r->prefix[plen] = 0;
}

/* server:history(rules | false): which topics keep history. rules is a
 * rule for every topic ({ size =, ttl =, frame = }), or a table of topic
 * prefixes to rules, or both (the rule's keys beside prefix keys); the
 * longest prefix wins. false: none. */
static int l_history(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    if (lua_isboolean(L, 2) && !lua_toboolean(L, 2)) {
        if (ls->node)
            free_rules(L, ls->node);
        return 0;
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t count = 1;                             /* an upper bound: every key a prefix, and "" */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad option 'history' (keys are topic prefixes or size, ttl, frame)");
        count++;
        lua_pop(L, 1);
    }
    rule *rules = calloc(count, sizeof *rules);
    if (rules == NULL)
        return luaL_error(L, "out of memory");
    size_t n = 0;
    lua_getfield(L, 2, "size");
    int has_default = !lua_isnil(L, -1);
    lua_pop(L, 1);
    lua_newtable(L);                              /* the default rule's keys, read as one table */
    int def = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if (strcmp(k, "size") == 0 || strcmp(k, "ttl") == 0 || strcmp(k, "frame") == 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, def);
            continue;
        }
        if (!lua_istable(L, -1))
            luaL_error(L, "bad option 'history' (the rule for \"%s\" must be a table)", k);
        read_rule(L, -1, k, klen, &rules[n++]);
        lua_pop(L, 1);
    }
    if (has_default)
        read_rule(L, def, "", 0, &rules[n++]);
    else {
        lua_pushnil(L);
        if (lua_next(L, def))
            luaL_error(L, "bad option 'history' (ttl and frame need a size)");
    }
    dx_node *node = dx_node_get(L, ls);
    free_rules(L, node);
    node->rules = rules;
    node->nrules = n;
    return 0;
}

/* Encodes the presence table at idx (string keys; string, number or
 * boolean values) into out; returns its length. */
static size_t encode_info(lua_State *L, int idx, uint8_t *out)
{
    size_t at = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad presence table (keys must be strings)");
        size_t klen, vlen = 0;
        const char *k = lua_tolstring(L, -2, &klen);
        const char *v = "";
        uint8_t type;
        switch (lua_type(L, -1)) {
        case LUA_TSTRING: type = 's'; v = lua_tolstring(L, -1, &vlen); break;
        case LUA_TNUMBER: type = 'n'; lua_pushvalue(L, -1); v = lua_tolstring(L, -1, &vlen); lua_pop(L, 1); break;
        case LUA_TBOOLEAN: type = lua_toboolean(L, -1) ? 't' : 'f'; break;
        default: luaL_error(L, "bad presence table (value of '%s' must be a string, number or boolean)", k);
                 return 0;
        }
        if (at + 7 + klen + vlen > DX_INFO_MAX || klen > 0xffff)
            luaL_error(L, "bad presence table (more than %d bytes)", DX_INFO_MAX);
        out[at++] = type;
        out[at++] = (uint8_t)(klen >> 8);
        out[at++] = (uint8_t)klen;
        memcpy(out + at, k, klen);
        at += klen;
        out[at++] = (uint8_t)(vlen >> 24);
        out[at++] = (uint8_t)(vlen >> 16);
        out[at++] = (uint8_t)(vlen >> 8);
        out[at++] = (uint8_t)vlen;
        memcpy(out + at, v, vlen);
        at += vlen;
        lua_pop(L, 1);
    }
    return at;
}

/* Marks (or, with on 0, unmarks) ws id in topic's presence; returns
 * whether it was marked before. */
static int mark_joined(lua_State *L, dx_node *n, lua_Integer id, const char *topic, size_t tlen, int on)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, n->joined);
    lua_rawgeti(L, -1, id);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (!on) {
            lua_pop(L, 1);
            return 0;
        }
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, id);
    }
    lua_pushlstring(L, topic, tlen);
    lua_rawget(L, -2);
    int was = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_pushlstring(L, topic, tlen);
    if (on)
        lua_pushboolean(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    return was;
}

static void leave(lua_State *L, dx_node *n, dx_lconn *w, const char *topic, size_t tlen)
{
    if (!mark_joined(L, n, w->id, topic, tlen, 0))
        return;
    dx_member m = { .conn = (uint64_t)w->id, .node = n->name, .node_len = strlen(n->name) };
    n->b->ops->leave(n->b, topic, tlen, &m);
}

/* ws:subscribe(topic, opts): the options of a subscription. opts.since
 * (a position) or opts.last (a count) catch up on the history first;
 * opts.recovered(ws, topic, result) hears how that went; opts.presence (a
 * table) joins the topic's presence. Returns true when newly subscribed. */
int dx_node_subscribe(lua_State *L, dx_lconn *w, const char *topic, size_t tlen, int opts)
{
    dx_lserver *ls = w->ls;
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "since") && strcmp(k, "last") && strcmp(k, "presence") && strcmp(k, "recovered"))
            luaL_error(L, "bad argument #3 to 'subscribe' (unknown option '%s')", k);
        lua_pop(L, 1);
    }
    lua_getfield(L, opts, "since");
    lua_getfield(L, opts, "last");
    lua_getfield(L, opts, "presence");
    lua_getfield(L, opts, "recovered");
    int since = lua_gettop(L) - 3, last = since + 1, presence = since + 2, done = since + 3;
    dx_pos pos = { 0 };
    size_t slen = 0;
    const char *s = lua_isnil(L, since) ? NULL : lua_tolstring(L, since, &slen);
    if (!lua_isnil(L, since) && (lua_type(L, since) != LUA_TSTRING || dx_pos_parse(&pos, s, slen) < 0))
        luaL_error(L, "bad argument #3 to 'subscribe' (since must be a position \"epoch:offset\")");
    lua_Number lastn = lua_isnil(L, last) ? 0 : lua_tonumber(L, last);
    if (!lua_isnil(L, last) && (lua_type(L, last) != LUA_TNUMBER || lastn < 1 || lastn > 1e6))
        luaL_error(L, "bad argument #3 to 'subscribe' (last must be a count from 1)");
    if (s && lastn > 0)
        luaL_error(L, "bad argument #3 to 'subscribe' (since and last exclude each other)");
    if (!lua_isnil(L, presence) && !lua_istable(L, presence))
        luaL_error(L, "bad argument #3 to 'subscribe' (presence must be a table)");
    if (!lua_isnil(L, done) && !lua_isfunction(L, done))
        luaL_error(L, "bad argument #3 to 'subscribe' (recovered must be a function)");
    uint8_t info[DX_INFO_MAX];
    size_t ilen = lua_isnil(L, presence) ? 0 : encode_info(L, presence, info);
    dx_node *n = dx_node_get(L, ls);
    dx_conn *c = w->conn;
    lua_State *saved = n->L;
    n->L = L;
    int fresh = 1;
    for (resume *r = n->resumes; r; r = r->next)
        if (r->w == w && r->tlen == tlen && memcmp(r->topic, topic, tlen) == 0) {
            if (r->answering && (s || lastn > 0))
                r->w = NULL;                      /* its own callback starts another: that one delivers */
            else
                fresh = 0;                        /* already catching up */
        }
    if (fresh && (s || lastn > 0)) {
        int shadow = tlen && topic[0] == DX_SHADOW;  /* a page's: the topic's history */
        const rule *rl = rule_of(n, topic + shadow, tlen - (size_t)shadow);
        resume *r = calloc(1, sizeof *r);
        char *name = malloc(tlen + 1);
        if (r == NULL || name == NULL || dx_server_hold_topic(ls->srv, topic, tlen, 1) < 0) {
            free(r);
            free(name);
            n->L = saved;
            return luaL_error(L, "out of memory");
        }
        memcpy(name, topic, tlen);
        *r = (resume){ .node = n, .w = w, .topic = name, .tlen = tlen, .since = pos,
                       .last = (size_t)lastn, .done = LUA_NOREF, .shadow = shadow };
        if (!lua_isnil(L, done)) {
            lua_pushvalue(L, done);
            r->done = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        r->next = n->resumes;
        n->resumes = r;
        /* a resume of a subscribed connection: it leaves, so nothing comes twice */
        fresh = dx_conn_unsubscribe(c, topic, tlen) == 0;
        n->b->ops->recover(n->b, topic + shadow, tlen - (size_t)shadow, &r->since, rl ? &rl->h : &no_history,
                           on_recovered, r);
    } else if (fresh) {
        int rc = dx_conn_subscribe(c, topic, tlen);
        if (rc < 0) {
            n->L = saved;
            return luaL_error(L, "out of memory");
        }
        fresh = rc;
    }
    if (!lua_isnil(L, presence) && w->conn) {
        mark_joined(L, n, w->id, topic, tlen, 1);
        dx_member m = { .conn = (uint64_t)w->id, .node = n->name, .node_len = strlen(n->name),
                        .info = info, .info_len = ilen };
        n->b->ops->join(n->b, topic, tlen, &m);
    }
    n->L = saved;
    lua_settop(L, opts);
    lua_pushboolean(L, fresh);
    return 1;
}

/* ws left topic (ws:unsubscribe): its resume of it is called off, and it
 * leaves the topic's presence. */
int dx_node_unsubscribe(lua_State *L, dx_lconn *w, const char *topic, size_t tlen)
{
    dx_node *n = w->ls->node;
    int was = 0;
    if (n == NULL)
        return 0;
    for (resume *r = n->resumes; r; r = r->next)
        if (r->w == w && r->tlen == tlen && memcmp(r->topic, topic, tlen) == 0) {
            r->w = NULL;
            was = 1;
        }
    lua_State *saved = n->L;
    n->L = L;
    leave(L, n, w, topic, tlen);
    n->L = saved;
    return was;
}

/* ws closed: its resumes are called off, it leaves every presence. */
void dx_node_closed(lua_State *L, dx_lconn *w)
{
    dx_node *n = w->ls->node;
    if (n == NULL)
        return;
    for (resume *r = n->resumes; r; r = r->next)
        if (r->w == w)
            r->w = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, n->joined);
    lua_rawgeti(L, -1, w->id);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);
        return;
    }
    lua_pushnil(L);
    lua_rawseti(L, -3, w->id);
    dx_member m = { .conn = (uint64_t)w->id, .node = n->name, .node_len = strlen(n->name) };
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t tlen;
        const char *topic = lua_tolstring(L, -2, &tlen);
        n->b->ops->leave(n->b, topic, tlen, &m);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

typedef struct presence_ask {
    dx_node *node;
    int fn;
} presence_ask;

static void on_presence_list(void *arg, int ok, const dx_member *m, size_t count)
{
    presence_ask *a = arg;
    dx_node *n = a->node;
    lua_State *L = thread_of(n);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->fn);
    luaL_unref(L, LUA_REGISTRYINDEX, a->fn);
    free(a);
    if (ok) {
        lua_createtable(L, (int)count, 0);
        for (size_t i = 0; i < count; i++) {
            push_member(L, &m[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        call(n, L, 1, 0, "presence", NULL);
    } else {
        lua_pushnil(L);
        lua_pushliteral(L, "the broker cannot answer now");
        call(n, L, 2, 0, "presence", NULL);
    }
}

/* server:presence(topic, fn): fn(members) with who is in topic's presence
 * on every node ({ id =, node =, info = }), or fn(nil, message) when the
 * broker cannot tell; fn may run before this returns. */
static int l_presence(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    size_t tlen;
    const char *topic = luaL_checklstring(L, 2, &tlen);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    dx_node *n = dx_node_get(L, ls);
    presence_ask *a = malloc(sizeof *a);
    if (a == NULL)
        return luaL_error(L, "out of memory");
    a->node = n;
    lua_pushvalue(L, 3);
    a->fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_State *saved = n->L;
    n->L = L;
    n->b->ops->presence(n->b, topic, tlen, on_presence_list, a);
    n->L = saved;
    return 0;
}

/* server:presence_events(join, leave): join(topic, member) and
 * leave(topic, member) for every topic this node has subscribers of
 * (either may be nil). */
static int l_presence_events(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    dx_node *n = dx_node_get(L, ls);
    luaL_unref(L, LUA_REGISTRYINDEX, n->on_join);
    luaL_unref(L, LUA_REGISTRYINDEX, n->on_leave);
    lua_pushvalue(L, 2);
    n->on_join = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF) : luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 3);
    n->on_leave = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF) : luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* server:publish_local(topic, data [, binary]) -> subscribers reached:
 * this node's subscribers alone (a join event told to a room). */
static int l_publish_local(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    size_t tlen, len;
    const char *topic = luaL_checklstring(L, 2, &tlen);
    const char *data = luaL_checklstring(L, 3, &len);
    int binary = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TBOOLEAN);
        binary = lua_toboolean(L, 4);
    }
    lua_pushinteger(L, (lua_Integer)dx_server_deliver(ls->srv, topic, tlen, data, len, binary, 0));
    return 1;
}

/* server:broker(spec): where publishes go beyond this process, and where
 * history and presence live: "memory" (this process alone, the default),
 * "bus" (a worker's link to its supervisor's hub, whose engine serves the
 * box: only in a worker, once per process) or a redis:// URL (see
 * broker/redis.h for its query settings). Raises for a spec that is none
 * of these; returns true, or nil, message, name when the engine cannot be
 * made ("EBUS": not a worker, or its bus is taken). Made before the
 * server has connections (at creation or listen): what the old engine
 * held is dropped. */
static int l_broker(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    const char *spec = luaL_checkstring(L, 2);
    dx_node *n = dx_node_get(L, ls);
    dx_broker_sink sink = { n, on_publication, on_presence, on_link, on_forwarded, on_answered };
    struct ev_loop *loop = ev_default_loop(0);
    dx_broker *b;
    if (strcmp(spec, "memory") == 0) {
        b = dx_memory_broker_new(loop, &sink);
    } else if (strcmp(spec, "bus") == 0) {
        unsigned index;
        int fd = dx_worker_take_bus(&index);
        if (fd < 0)
            return dx_fail(L, "EBUS", "no bus to the supervisor: not a worker of --workers N, or taken");
        char host[200] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(n->name, sizeof n->name, "%s:%ld/w%u", host, (long)getpid(), index);
        b = dx_bus_broker_new(loop, &sink, fd, n->name);
        if (b == NULL)
            close(fd);
        else
            dx_server_set_worker(ls->srv, index);   /* its session ids name it: POSTs find it */
    } else if (strncmp(spec, "redis://", 8) == 0) {
        dx_redis_config cfg;
        char err[512];
        dx_redis_config_init(&cfg);
        if (dx_redis_url_parse(spec, &cfg, err, sizeof err) < 0)
            return luaL_error(L, "bad option 'broker' (%s)", err);
        if (strlen(n->name) >= sizeof cfg.node)
            return luaL_error(L, "bad option 'node' (at most %d bytes with a Redis broker)", (int)sizeof cfg.node - 1);
        strcpy(cfg.node, n->name);
        /* hiredis writes with write(2): a Redis that went away must be an
         * error return, not SIGPIPE killing a Lua program that left the
         * signal at its default (the duplex command ignores it already). */
        struct sigaction was;
        if (sigaction(SIGPIPE, NULL, &was) == 0 && was.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
        b = dx_redis_broker_new(loop, &sink, &cfg, err, sizeof err);
        if (b == NULL)
            return dx_fail(L, "EBROKER", "%s", err);
    } else {
        return luaL_error(L, "bad option 'broker' (\"memory\" or a redis:// URL expected, got \"%s\")", spec);
    }
    if (b == NULL)
        return luaL_error(L, "out of memory");
    dx_server_set_topic_hook(ls->srv, NULL, NULL);
    lua_State *saved = n->L;
    n->L = L;
    n->b->ops->free(n->b);
    n->b = b;
    n->L = saved;
    hook_topics(n);                           /* the topics there are, to the new engine */
    lua_pushboolean(L, 1);
    return 1;
}

/* server:broker_name() -> the engine's name: "memory", "bus", "redis". */
static int l_broker_name(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    lua_pushstring(L, ls->node ? ls->node->b->ops->name : "memory");
    return 1;
}

/* server:node() -> this node's name (presence members carry it). */
static int l_node(lua_State *L)
{
    dx_lserver *ls = check_server(L);
    if (!lua_isnoneornil(L, 2)) {
        size_t len;
        const char *name = luaL_checklstring(L, 2, &len);
        luaL_argcheck(L, len > 0 && len < sizeof ls->node->name, 2, "a name of 1 to 255 bytes");
        dx_node *n = dx_node_get(L, ls);
        memcpy(n->name, name, len + 1);
    }
    lua_pushstring(L, dx_node_get(L, ls)->name);
    return 1;
}

const luaL_Reg dx_node_methods[] = {
    { "history", l_history }, { "presence", l_presence }, { "presence_events", l_presence_events },
    { "publish_local", l_publish_local }, { "node", l_node }, { "broker", l_broker },
    { "broker_name", l_broker_name },
    { NULL, NULL }
};
