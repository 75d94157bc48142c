/* The Redis engine's link: two hiredis async connections (commands, and
 * SUBSCRIBE) that go up and down together, the handshake, the backoff
 * and the probe (see redis.h).
 *
 * hiredis owns a context until it frees it; we let go of one by clearing
 * its data before redisAsyncFree (which defers the free when called from
 * the context's own callback). Every callback starts from ac->data, so a
 * context we let go of reaches nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>
#include "broker/redis_internal.h"

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);
static void on_hs_reply(redisAsyncContext *ac, void *reply, void *pd);
static void on_node_channel(redisAsyncContext *ac, void *reply, void *pd);

/* ---- keeping no loop running ---- */

static unsigned timer_bit(dx_redis *r, ev_timer *w)
{
    return w == &r->retry ? 1u : w == &r->handshake ? 2u : w == &r->probe ? 4u : w == &r->probe_wait ? 8u : 16u;
}

/* A started timer gives its reference back once (its bit in r->unrefs
 * says so); stopping takes it again. Kept as a bit rather than read from
 * ev_is_active: a one-shot timer that fired is inactive while still owed
 * its reference, until its callback runs or it is stopped while pending. */
void dx_rl_timer_start(dx_redis *r, ev_timer *w)
{
    unsigned bit = timer_bit(r, w);
    ev_timer_start(r->loop, w);
    if (!(r->unrefs & bit)) {
        r->unrefs |= bit;
        ev_unref(r->loop);
    }
}

void dx_rl_timer_fired(dx_redis *r, ev_timer *w)
{
    unsigned bit = timer_bit(r, w);
    if (r->unrefs & bit) {
        r->unrefs &= ~bit;
        ev_ref(r->loop);
    }
}

void dx_rl_timer_stop(dx_redis *r, ev_timer *w)
{
    dx_rl_timer_fired(r, w);
    ev_timer_stop(r->loop, w);
}

/* hiredis's libev adapter, with each socket watcher's reference given
 * back while it runs (the adapter's flags say which run). */
static void unref_add_read(void *pd)
{
    redisLibevEvents *e = pd;
    if (!e->reading) {
        redisLibevAddRead(pd);
        ev_unref(e->loop);
    }
}

static void unref_del_read(void *pd)
{
    redisLibevEvents *e = pd;
    if (e->reading) {
        ev_ref(e->loop);
        redisLibevDelRead(pd);
    }
}

static void unref_add_write(void *pd)
{
    redisLibevEvents *e = pd;
    if (!e->writing) {
        redisLibevAddWrite(pd);
        ev_unref(e->loop);
    }
}

static void unref_del_write(void *pd)
{
    redisLibevEvents *e = pd;
    if (e->writing) {
        ev_ref(e->loop);
        redisLibevDelWrite(pd);
    }
}

static void unref_cleanup(void *pd)
{
    unref_del_read(pd);
    unref_del_write(pd);
    redisLibevCleanup(pd);
}

static void attach(struct ev_loop *loop, redisAsyncContext *ac)
{
    redisLibevAttach(loop, ac);
    ac->ev.addRead = unref_add_read;
    ac->ev.delRead = unref_del_read;
    ac->ev.addWrite = unref_add_write;
    ac->ev.delWrite = unref_del_write;
    ac->ev.cleanup = unref_cleanup;
}

/* Stops everything the link runs and lets both contexts go. Commands
 * still awaiting a reply on them are answered NULL (now, or when hiredis
 * frees a context it is inside of). */
static void teardown(dx_redis *r)
{
    dx_rl_timer_stop(r, &r->handshake);
    dx_rl_timer_stop(r, &r->probe);
    dx_rl_timer_stop(r, &r->probe_wait);
    r->probing = 0;
    r->up = 0;
    r->cmd_steps = 0;
    r->sub_ready = 0;
    r->st.lost += r->inflight;       /* their replies will reach nothing */
    r->inflight = 0;
    redisAsyncContext *c = r->cmd, *s = r->sub;
    r->cmd = r->sub = NULL;
    if (c) {
        c->data = NULL;
        redisAsyncFree(c);
    }
    if (s) {
        s->data = NULL;
        redisAsyncFree(s);
    }
}

static void retry_later(dx_redis *r)
{
    double jitter = 0.5 + 0.5 * (double)(dx_redis_rand(r) % 1000) / 1000.0;
    ev_timer_set(&r->retry, r->backoff * jitter, 0);
    dx_rl_timer_start(r, &r->retry);
    r->backoff *= 2;
    if (r->backoff > r->cfg.reconnect_max)
        r->backoff = r->cfg.reconnect_max;
}

void dx_rl_fail(dx_redis *r, const char *why)
{
    dx_redis_hold(r);
    teardown(r);                     /* may answer requests, which may free r */
    if (!r->dead)
        dx_redis_down(r, why);
    if (dx_redis_unhold(r) || r->closing)
        return;
    retry_later(r);
}

void dx_rl_close(dx_redis *r)
{
    dx_rl_timer_stop(r, &r->retry);
    dx_rl_timer_stop(r, &r->presence);
    teardown(r);
}

size_t dx_rl_backlog(const dx_redis *r)
{
    return r->cmd ? sdslen(r->cmd->c.obuf) : 0;
}

int dx_rl_cmd(dx_redis *r, redisCallbackFn *fn, void *pd, int argc, const char **argv,
              const size_t *lens)
{
    if (r->cmd == NULL)
        return -1;
    return redisAsyncCommandArgv(r->cmd, fn, pd, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

int dx_rl_sub(dx_redis *r, redisCallbackFn *fn, void *pd, int argc, const char **argv,
              const size_t *lens)
{
    if (r->sub == NULL)
        return -1;
    return redisAsyncCommandArgv(r->sub, fn, pd, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

int dx_rl_script(dx_redis *r, int which, int eval, redisCallbackFn *fn, void *pd, int nkeys, int argc,
                 const char **argv, const size_t *lens)
{
    const char *small_v[32], **v = small_v;
    size_t small_l[32], *l = small_l;
    char nk[12];
    if (argc + 3 > 32) {
        v = malloc((size_t)(argc + 3) * sizeof *v);
        l = malloc((size_t)(argc + 3) * sizeof *l);
        if (v == NULL || l == NULL) {
            free(v);
            free(l);
            return -1;
        }
    }
    v[0] = eval ? "EVAL" : "EVALSHA";
    v[1] = eval ? dx_redis_scripts[which] : r->sha[which];
    v[2] = nk;
    l[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    for (int i = 0; i < 3; i++)
        if (i != 2)
            l[i] = strlen(v[i]);
    memcpy(v + 3, argv, (size_t)argc * sizeof *v);
    memcpy(l + 3, lens, (size_t)argc * sizeof *l);
    int rc = dx_rl_cmd(r, fn, pd, argc + 3, v, l);
    if (v != small_v) {
        free(v);
        free(l);
    }
    return rc;
}

/* Both connections ready: the link is up. */
static void maybe_up(dx_redis *r)
{
    if (r->up || r->cmd_steps > 0 || !r->sub_ready)
        return;
    dx_rl_timer_stop(r, &r->handshake);
    r->up = 1;
    r->backoff = r->cfg.reconnect_min;
    dx_rl_timer_start(r, &r->probe);
    dx_redis_up(r);
}

/* AUTH, then SELECT, on one connection; returns the replies to await. */
static int login(dx_redis *r, redisAsyncContext *ac)
{
    int n = 0;
    char db[12];
    if (r->cfg.password[0]) {
        const char *v[] = { "AUTH", r->cfg.password };
        size_t l[] = { 4, strlen(r->cfg.password) };
        n += redisAsyncCommandArgv(ac, on_hs_reply, NULL, 2, v, l) == REDIS_OK;
    }
    if (r->cfg.db) {
        const char *v[] = { "SELECT", db };
        size_t l[] = { 6, (size_t)snprintf(db, sizeof db, "%d", r->cfg.db) };
        n += redisAsyncCommandArgv(ac, on_hs_reply, NULL, 2, v, l) == REDIS_OK;
    }
    return n;
}

static redisAsyncContext *open_one(dx_redis *r, char why[DX_RL_WHY])
{
    redisAsyncContext *ac = redisAsyncConnect(r->cfg.host, r->cfg.port);
    if (ac == NULL) {
        snprintf(why, DX_RL_WHY, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, DX_RL_WHY, "cannot connect to Redis at %s:%d: %s", r->cfg.host, r->cfg.port, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    attach(r->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

void dx_rl_connect(dx_redis *r)
{
    char why[DX_RL_WHY];
    if ((r->cmd = open_one(r, why)) == NULL || (r->sub = open_one(r, why)) == NULL) {
        dx_rl_fail(r, why);
        return;
    }
    r->cmd_steps = login(r, r->cmd);
    for (int i = 0; i < DX_RS_COUNT; i++) {
        const char *v[] = { "SCRIPT", "LOAD", dx_redis_scripts[i] };
        size_t l[] = { 6, 4, strlen(dx_redis_scripts[i]) };
        r->cmd_steps += redisAsyncCommandArgv(r->cmd, on_hs_reply, (void *)(intptr_t)(i + 1), 3, v, l)
                        == REDIS_OK;
    }
    login(r, r->sub);
    const char *v[] = { "SUBSCRIBE", r->nchan };
    size_t l[] = { 9, r->nchan_len };
    redisAsyncCommandArgv(r->sub, on_node_channel, NULL, 2, v, l);
    ev_timer_set(&r->handshake, r->cfg.probe_timeout, 0);
    dx_rl_timer_start(r, &r->handshake);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    dx_redis *r = ac->data;
    if (r == NULL || status == REDIS_OK)
        return;
    char why[DX_RL_WHY];                   /* hiredis frees ac after this */
    snprintf(why, sizeof why, "cannot connect to Redis at %s:%d: %s", r->cfg.host, r->cfg.port, ac->errstr);
    if (r->cmd == ac)
        r->cmd = NULL;
    if (r->sub == ac)
        r->sub = NULL;
    dx_rl_fail(r, why);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    dx_redis *r = ac->data;
    (void)status;
    if (r == NULL)
        return;
    char why[DX_RL_WHY];
    snprintf(why, sizeof why, "lost the connection to Redis at %s:%d: %s", r->cfg.host, r->cfg.port,
             ac->err ? ac->errstr : "closed");
    if (r->cmd == ac)
        r->cmd = NULL;
    if (r->sub == ac)
        r->sub = NULL;
    dx_rl_fail(r, why);
}

/* A reply to AUTH, SELECT or SCRIPT LOAD (pd: 1 + the script's index). */
static void on_hs_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_redis *r = ac->data;
    redisReply *rep = reply;
    if (r == NULL || rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[DX_RL_WHY];
        snprintf(why, sizeof why, "Redis at %s:%d refused the handshake: %.200s", r->cfg.host, r->cfg.port, rep->str);
        dx_rl_fail(r, why);
        return;
    }
    int script = (int)(intptr_t)pd - 1;
    if (ac != r->cmd)
        return;                      /* the subscription's login: its SUBSCRIBE says the rest */
    if (script >= 0 && rep->type == REDIS_REPLY_STRING && rep->len < sizeof r->sha[0])
        memcpy(r->sha[script], rep->str, rep->len + 1);
    r->cmd_steps--;
    maybe_up(r);
}

/* Replies on the node's own channel: its SUBSCRIBE, probes, the rest for
 * the engine. */
static void on_node_channel(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_redis *r = ac->data;
    redisReply *rep = reply;
    (void)pd;
    if (r == NULL || rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3
        || rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        r->sub_ready = 1;
        maybe_up(r);
    } else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
        const char *s = rep->element[2]->str;
        size_t len = rep->element[2]->len;
        if (len > 0 && s[0] == 'P') {
            if (r->probing && strtoull(s + 1, NULL, 10) == r->probe_seq) {
                r->probing = 0;
                dx_rl_timer_stop(r, &r->probe_wait);
            }
        } else {
            dx_redis_node_message(r, s, len);
        }
    }
}

static void on_probe_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    dx_redis *r = ac->data;
    redisReply *rep = reply;
    (void)pd;
    if (r && rep && rep->type == REDIS_REPLY_ERROR) {
        char why[DX_RL_WHY];
        snprintf(why, sizeof why, "Redis at %s:%d refused a probe: %.200s", r->cfg.host, r->cfg.port, rep->str);
        dx_rl_fail(r, why);
    }
}

static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    dx_redis *r = w->data;
    (void)loop;
    (void)revents;
    if (!r->up || r->probing)
        return;
    char tok[24];
    const char *v[] = { "PUBLISH", r->nchan, tok };
    size_t l[] = { 7, r->nchan_len, (size_t)snprintf(tok, sizeof tok, "P%llu", (unsigned long long)++r->probe_seq) };
    if (dx_rl_cmd(r, on_probe_reply, NULL, 3, v, l) < 0)
        return;
    r->probing = 1;
    ev_timer_set(&r->probe_wait, r->cfg.probe_timeout, 0);
    dx_rl_timer_start(r, &r->probe_wait);
}

static void probe_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    dx_redis *r = w->data;
    (void)loop;
    (void)revents;
    dx_rl_timer_fired(r, w);
    char why[DX_RL_WHY];
    snprintf(why, sizeof why, "Redis at %s:%d did not answer a probe in %gs", r->cfg.host, r->cfg.port,
             r->cfg.probe_timeout);
    dx_rl_fail(r, why);
}

static void handshake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    dx_redis *r = w->data;
    (void)loop;
    (void)revents;
    dx_rl_timer_fired(r, w);
    char why[DX_RL_WHY];
    snprintf(why, sizeof why, "Redis at %s:%d did not answer the handshake in %gs", r->cfg.host,
             r->cfg.port, r->cfg.probe_timeout);
    dx_rl_fail(r, why);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_rl_timer_fired(w->data, w);
    dx_rl_connect(w->data);
}

void dx_rl_init(dx_redis *r)
{
    r->backoff = r->cfg.reconnect_min;
    ev_timer_init(&r->retry, retry_cb, 0, 0);
    ev_timer_init(&r->handshake, handshake_cb, 0, 0);
    ev_timer_init(&r->probe, probe_cb, r->cfg.probe_interval, r->cfg.probe_interval);
    ev_timer_init(&r->probe_wait, probe_wait_cb, 0, 0);
    r->retry.data = r->handshake.data = r->probe.data = r->probe_wait.data = r;
}
