/* The server userdata: options, routes, listening, and the transport's
 * events turned into calls of the app's handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/stat.h>
#include "binding/binding.h"
#include "transport/log.h"
#include "protocol/message.h"

static const char *const handler_names[DX_H_COUNT] = {
    "upgrade", "open", "message", "close", "pong_timeout", "drain", "_duplex"
};

static dx_lserver *check(lua_State *L)
{
    return luaL_checkudata(L, 1, DX_SERVER_MT);
}

static dx_lserver *check_open(lua_State *L)
{
    dx_lserver *ls = check(L);
    if (ls->srv == NULL)
        luaL_error(L, "attempt to use a closed server");
    return ls;
}

/* ---- events from the transport ---- */

/* Pushes route r's handler h; returns 0 (pushing nothing) when it has none. */
static int push_handler(lua_State *T, const dx_lserver *ls, int r, int h)
{
    int ref = ls->routes[r].fn[h];
    if (ref == LUA_NOREF)
        return 0;
    lua_rawgeti(T, LUA_REGISTRYINDEX, ref);
    return 1;
}

/* dx_call, timed into ls's metrics. */
__attribute__((noinline))
static int timed_call(dx_lserver *ls, lua_State *T, int nargs, int nresults, const char *what,
                      const dx_lconn *w)
{
    double start = dx_metrics_clock();
    int ok = dx_call(T, nargs, nresults, what, w, ls->guard_ms);
    dx_metrics_observe(&ls->metrics, dx_metrics_clock() - start);
    return ok;
}

/* dx_call for ls's handlers and routes, timed while metrics are served
 * (the callers count the failures: failed()). Without metrics it is
 * dx_call, a tail call: the message path pays one test. */
static int server_call(dx_lserver *ls, lua_State *T, int nargs, int nresults, const char *what,
                       const dx_lconn *w)
{
    if (ls->metrics.path == NULL)
        return dx_call(T, nargs, nresults, what, w, ls->guard_ms);
    return timed_call(ls, T, nargs, nresults, what, w);
}

/* Counts a handler or route of ls that raised. */
static void failed(dx_lserver *ls)
{
    ls->metrics.handler_errors++;
}

/* A handler raised: that connection closes with 1011, the rest go on. */
static void handler_failed(dx_lconn *w)
{
    static const char reason[] = "internal server error";
    failed(w->ls);
    if (w->conn)
        dx_conn_close(w->conn, DX_CLOSE_INTERNAL, reason, sizeof reason - 1);
}

/* The index of the route for path, -1 for none; one that a reload took
 * away counts only when gone_too. */
static int lookup_route(const dx_lserver *ls, const char *path, size_t len, int gone_too)
{
    for (int i = 0; i < ls->nroutes; i++)
        if (strlen(ls->routes[i].path) == len && memcmp(ls->routes[i].path, path, len) == 0
            && (gone_too || !ls->routes[i].gone))
            return i;
    return -1;
}

static int find_route(const dx_lserver *ls, const char *path, size_t len)
{
    return lookup_route(ls, path, len, 0);
}

/* Lets go of what route r holds (its handlers, protocols); not its path. */
static void route_release(lua_State *L, dx_route *r)
{
    for (int h = 0; h < DX_H_COUNT; h++) {
        luaL_unref(L, LUA_REGISTRYINDEX, r->fn[h]);
        r->fn[h] = LUA_NOREF;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, r->batch_loop);
    r->batch_loop = LUA_NOREF;
    r->batch_state = 0;
    r->batch_calls = 0;
    for (char **p = r->protocols; p && *p; p++)
        free(*p);
    free(r->protocols);
    r->protocols = NULL;
}

#define DX_MAX_OFFERS 32

/* The subprotocols a request offers, in its order, from every
 * Sec-WebSocket-Protocol field (comma-separated tokens). */
typedef struct offers {
    const char *p[DX_MAX_OFFERS];
    size_t len[DX_MAX_OFFERS];
    int n;
} offers;

/* Adds the offers of one Sec-WebSocket-Protocol value to o. */
static void add_offers(offers *o, const char *v, const char *end)
{
    while (v < end && o->n < DX_MAX_OFFERS) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *t = v;
        while (v < end && *v != ',' && *v != ' ' && *v != '\t')
            v++;
        if (v > t) {
            o->p[o->n] = t;
            o->len[o->n++] = (size_t)(v - t);
        }
    }
}

static void find_offers(const dx_http_request *req, const dx_upgrade *up, offers *o)
{
    o->n = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &req->headers[i];
        if (h->name_len == 22 && strncasecmp(h->name, "sec-websocket-protocol", 22) == 0)
            add_offers(o, h->value, h->value + h->value_len);
    }
    if (up->offers_len)
        add_offers(o, up->offers, up->offers + up->offers_len);
}

/* Index of s[0..len) among the offers, or -1. */
static int offer_index(const offers *o, const char *s, size_t len)
{
    for (int i = 0; i < o->n; i++)
        if (o->len[i] == len && memcmp(o->p[i], s, len) == 0)
            return i;
    return -1;
}

/* The route's choice: the first offer, in the client's order, it speaks. */
static int route_choice(const dx_route *r, const offers *o)
{
    if (r->protocols == NULL)
        return -1;
    for (int i = 0; i < o->n; i++)
        for (char **p = r->protocols; *p; p++)
            if (strlen(*p) == o->len[i] && memcmp(*p, o->p[i], o->len[i]) == 0)
                return i;
    return -1;
}

/* Builds the request table of a handler: method, path, query (when
 * there is one), remote, headers (lower-case names; repeated fields joined
 * with ", "). [-0, +1, m] */
static void push_request_base(lua_State *T, dx_conn *c, const dx_http_request *req,
                              const char *path, size_t path_len, const char *query, size_t query_len)
{
    lua_createtable(T, 0, 8);
    lua_pushlstring(T, req->method, req->method_len);
    lua_setfield(T, -2, "method");
    lua_pushlstring(T, path, path_len);
    lua_setfield(T, -2, "path");
    if (query_len) {
        lua_pushlstring(T, query, query_len);
        lua_setfield(T, -2, "query");
    }
    char remote[DX_ADDR_STRLEN];
    lua_pushstring(T, dx_addr_format(dx_conn_addr(c), remote));
    lua_setfield(T, -2, "remote");
    lua_createtable(T, 0, (int)req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &req->headers[i];
        char name[128];
        size_t n = h->name_len < sizeof name ? h->name_len : sizeof name;
        for (size_t j = 0; j < n; j++)
            name[j] = (char)(h->name[j] >= 'A' && h->name[j] <= 'Z' ? h->name[j] + 32 : h->name[j]);
        lua_pushlstring(T, name, n);
        lua_pushvalue(T, -1);
        lua_rawget(T, -3);
        if (lua_isstring(T, -1)) {             /* a repeated field: join with ", " */
            lua_pushliteral(T, ", ");
            lua_pushlstring(T, h->value, h->value_len);
            lua_concat(T, 3);
        } else {
            lua_pop(T, 1);
            lua_pushlstring(T, h->value, h->value_len);
        }
        lua_rawset(T, -3);
    }
    lua_setfield(T, -2, "headers");
}

/* The request table given to upgrade(req): the base fields, plus the
 * subprotocol offers and the route's choice. [-0, +1, m] */
static void push_request(lua_State *T, dx_conn *c, const dx_http_request *req,
                         const dx_upgrade *up, const offers *o, int chosen)
{
    push_request_base(T, c, req, up->path, up->path_len, up->query, up->query_len);
    lua_createtable(T, o->n, 0);
    for (int i = 0; i < o->n; i++) {
        lua_pushlstring(T, o->p[i], o->len[i]);
        lua_rawseti(T, -2, i + 1);
    }
    lua_setfield(T, -2, "protocols");
    if (chosen >= 0) {
        lua_pushlstring(T, o->p[chosen], o->len[chosen]);
        lua_setfield(T, -2, "protocol");
    }
}

/* upgrade(req) said no: the HTTP status it asked for. */
static int refusal(lua_State *T, int base, char *body, size_t body_cap)
{
    int status = 403;
    if (lua_type(T, base) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(T, base);
        status = n >= 400 && n <= 599 ? (int)n : 500;
        if (status == 500)
            dx_log(DX_LOG_ERROR, "handler_error", 0, NULL, "upgrade handler returned status %g; answering 500", n);
    }
    const char *b = lua_tostring(T, base + 1);
    if (b) {
        strncpy(body, b, body_cap - 1);
        body[body_cap - 1] = 0;
    }
    return status;
}

/* After upgrade(req): req.protocol, if the handler set it, must be one of
 * the offers. Returns the offer's index, -1 for none, -2 when invalid. */
static int handler_choice(lua_State *T, int req, const offers *o)
{
    lua_getfield(T, req, "protocol");
    int chosen = -1;
    if (lua_type(T, -1) == LUA_TSTRING) {
        size_t len;
        const char *p = lua_tolstring(T, -1, &len);
        chosen = offer_index(o, p, len);
        if (chosen < 0) {
            dx_log(DX_LOG_ERROR, "handler_error", 0, NULL, "upgrade handler chose protocol '%s', which the "
                   "client did not offer; answering 500", p);
            chosen = -2;
        }
    } else if (!lua_isnil(T, -1)) {
        dx_log(DX_LOG_ERROR, "handler_error", 0, NULL, "upgrade handler set req.protocol to a %s; answering 500",
               luaL_typename(T, -1));
        chosen = -2;
    }
    lua_pop(T, 1);
    return chosen;
}

static int ev_upgrade(void *ud, dx_conn *c, const dx_http_request *req,
                      const dx_upgrade *up, dx_accept *acc, char *body, size_t body_cap)
{
    dx_lserver *ls = ud;
    lua_State *T = ls->T;
    int r = find_route(ls, up->path, up->path_len);
    if (r < 0)
        return 404;
    offers o;
    find_offers(req, up, &o);
    int chosen = route_choice(&ls->routes[r], &o);
    int base = lua_gettop(T);
    int has_data = 0;
    if (push_handler(T, ls, r, DX_H_UPGRADE)) {
        push_request(T, c, req, up, &o, chosen);
        lua_pushvalue(T, -1);
        lua_insert(T, base + 1);               /* keep req below the call */
        if (!server_call(ls, T, 1, 2, "upgrade", NULL)) {
            failed(ls);
            lua_settop(T, base);
            return 500;
        }
        int accept = lua_isnil(T, base + 2) || (lua_type(T, base + 2) == LUA_TBOOLEAN && lua_toboolean(T, base + 2));
        if (!accept) {
            int status = refusal(T, base + 2, body, body_cap);
            lua_settop(T, base);
            return status;
        }
        chosen = handler_choice(T, base + 1, &o);
        if (chosen == -2) {
            lua_settop(T, base);
            return 500;
        }
        lua_getfield(T, base + 1, "data");
        has_data = lua_istable(T, -1);
    }
    if (chosen >= 0 && o.len[chosen] < sizeof acc->protocol) {
        memcpy(acc->protocol, o.p[chosen], o.len[chosen]);
        acc->protocol[o.len[chosen]] = 0;
    }
    if (ls->routes[r].own_deflate)
        acc->deflate = &ls->routes[r].deflate;
    dx_lconn *w = dx_conn_push_new(T, ls, c, r);
    if (acc->protocol[0])
        w->protocol = strdup(acc->protocol);   /* NULL when out of memory: ws.protocol nil */
    if (strcmp(acc->protocol, DX_DUPLEX1) == 0) {
        w->duplex1 = 1;
        dx_conn_set_heartbeat(c, 1);
    }
    if (has_data) {
        lua_pushvalue(T, -2);
        dx_setuv(T, -2);
    }
    lua_settop(T, base);
    return 0;
}

/* Pushes handler h of c's route and c's handle, and returns the handle;
 * NULL (nothing pushed) when the route has no such handler. */
static dx_lconn *begin_event(dx_lserver *ls, dx_conn *c, int h)
{
    dx_lconn *w = dx_conn_user(c);
    if (w == NULL || !push_handler(ls->T, ls, w->route, h))
        return NULL;
    dx_conn_push(ls->T, w);
    return w;
}

/* An event whose handler takes ws alone; an error in it closes ws 1011. */
static void simple_event(void *ud, dx_conn *c, int h)
{
    dx_lserver *ls = ud;
    dx_lconn *w = begin_event(ls, c, h);
    if (w && !server_call(ls, ls->T, 1, 0, handler_names[h], w))
        handler_failed(w);
}

/* A duplex.1 page hears first who it is and how often the server pings
 * (it notices a dead link from that); sent here, not from a Lua wrapper
 * of every route's open, so a plain connection costs nothing more. */
static void ev_open(void *ud, dx_conn *c)
{
    dx_lserver *ls = ud;
    dx_lconn *w = dx_conn_user(c);
    if (w && dx_conn_is_sse(c))
        w->sse = 1;
    if (w && w->duplex1) {
        char hello[96];
        int n = snprintf(hello, sizeof hello, "\x01{\"t\":\"hello\",\"ping\":%.17g,\"id\":%lld}",
                         dx_server_config(ls->srv)->ping_interval, (long long)w->id);
        dx_conn_send(c, hello, (size_t)n, 1);
    }
    simple_event(ud, c, DX_H_OPEN);
}
static void ev_pong_timeout(void *ud, dx_conn *c) { simple_event(ud, c, DX_H_PONG_TIMEOUT); }
static void ev_drain(void *ud, dx_conn *c) { simple_event(ud, c, DX_H_DRAIN); }

static void ev_message(void *ud, dx_conn *c, const uint8_t *data, size_t len, int binary)
{
    dx_lserver *ls = ud;
    dx_lconn *u;
    if (binary && (u = dx_conn_user(c)) && u->duplex1) {   /* duplex.1: the tag says whose it is */
        if (len == 0 || data[0] != DX_TAG_APP) {
            dx_lconn *w = begin_event(ls, c, DX_H_DUPLEX);
            if (w == NULL)
                return;
            lua_pushlstring(ls->T, len ? (const char *)data : "", len);
            if (!server_call(ls, ls->T, 2, 0, "duplex.1 control", w))
                handler_failed(w);
            return;
        }
        data++;                                /* the app's: as it was sent */
        len--;
    }
    dx_lconn *w = begin_event(ls, c, DX_H_MESSAGE);
    if (w == NULL)
        return;
    lua_pushlstring(ls->T, len ? (const char *)data : "", len);
    lua_pushboolean(ls->T, binary);
    if (!server_call(ls, ls->T, 3, 0, "message", w))
        handler_failed(w);
}

/* A batch of one connection's messages on its way through run_batch. */
typedef struct dx_batch_call {
    dx_conn *c;
    const dx_message_ref *m;
    size_t n;
    dx_metrics *timed;          /* each handler's time goes here; NULL: untimed */
    double started;             /* when the handler running (or the last one) started */
} dx_batch_call;

/* (batch, handler, ws): the handler for each admitted message of the
 * batch in turn, unprotected: the first error ends the batch and, through
 * the one protected call around it, closes the connection 1011 as an
 * error in a lone message's handler would (the messages after it, of a
 * connection no longer open, are not delivered then either). Each
 * message has the whole handler_timeout, and its own entry in the
 * metrics' histogram. */
static int run_batch(lua_State *T)
{
    dx_batch_call *b = lua_touserdata(T, 1);
    for (size_t i = 0; i < b->n; i++) {
        if (!dx_conn_take_message(b->c))
            continue;
        const dx_message_ref *m = &b->m[i];
        lua_pushvalue(T, 2);
        lua_pushvalue(T, 3);
        lua_pushlstring(T, m->len ? (const char *)m->data : "", m->len);
        lua_pushboolean(T, m->binary);
        if (i)
            dx_guard_restart();
        if (b->timed) {
            b->started = dx_metrics_clock();
            lua_call(T, 3, 0);
            dx_metrics_observe(b->timed, dx_metrics_clock() - b->started);
            b->started = 0;
        } else {
            lua_call(T, 3, 0);
        }
    }
    return 0;
}

/* Messages one read brought in for c, from one protected call (run_batch)
 * rather than one each: the handler and ws pushed once, no guard section
 * or error handler set up per message. On LuaJIT, unless each handler's
 * run is timed for the metrics, a compiled Lua loop calls the handler
 * instead, where it can be (batch_ffi.c). A duplex.1 page's messages,
 * which carry a tag saying which handler they are for, go one by one. */
static void ev_messages(void *ud, dx_conn *c, const dx_message_ref *m, size_t n)
{
    dx_lserver *ls = ud;
    dx_lconn *w = dx_conn_user(c);
    lua_State *T = ls->T;
    if (w == NULL || w->duplex1) {
        for (size_t i = 0; i < n; i++)
            if (dx_conn_take_message(c))
                ev_message(ud, c, m[i].data, m[i].len, m[i].binary);
        return;
    }
#if LUA_VERSION_NUM == 501
    int ok;
    size_t done;
    if (!ls->metrics.path && dx_batch_ffi(ls, w, c, m, n, &ok, &done)) {
        if (!ok)
            handler_failed(w);
        if (!ok || done == n)
            return;
        m += done;                         /* the next would close c: from here, as C calls */
        n -= done;
    }
#endif
    dx_batch_call b = { c, m, n, ls->metrics.path ? &ls->metrics : NULL, 0 };
    lua_pushcfunction(T, run_batch);
    lua_pushlightuserdata(T, &b);
    if (!push_handler(T, ls, w->route, DX_H_MESSAGE)) {
        lua_pop(T, 2);
        for (size_t i = 0; i < n; i++)     /* counted, as lone ones are */
            dx_conn_take_message(c);
        return;
    }
    dx_conn_push(T, w);
    if (dx_call(T, 3, 0, "message", w, ls->guard_ms))
        return;
    if (b.timed && b.started)              /* the one that raised, timed to its end */
        dx_metrics_observe(b.timed, dx_metrics_clock() - b.started);
    handler_failed(w);
}

static void ev_close(void *ud, dx_conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    dx_lserver *ls = ud;
    dx_lconn *w = dx_conn_user(c);
    lua_State *T = ls->T;
    if (w == NULL)
        return;
    w->conn = NULL;                        /* from here on the handle is closed */
    dx_conn_set_user(c, NULL);
    if (push_handler(T, ls, w->route, DX_H_CLOSE)) {
        dx_conn_push(T, w);
        lua_pushinteger(T, (lua_Integer)code);
        lua_pushlstring(T, len ? (const char *)reason : "", len);
        w->in_close = 1;                   /* ws:publish still reaches the topics */
        if (!server_call(ls, T, 3, 0, "close", w))
            failed(ls);
        w->in_close = 0;
    }
    if (ls->node)
        dx_node_closed(T, w);
    dx_conn_release(T, w);
}

static void ev_release(void *ud, dx_conn *c)
{
    dx_lserver *ls = ud;
    dx_conn_release(ls->T, dx_conn_user(c));
}

/* Header lines from the table at idx (name -> value) into out; 0, or -1
 * for a name or value that is not a string or holds CR or LF. */
static int header_lines(lua_State *T, int idx, char *out, size_t cap, int *has_type)
{
    size_t used = 0;
    out[0] = 0;
    if (lua_isnil(T, idx))
        return 0;
    if (!lua_istable(T, idx))
        return -1;
    lua_pushnil(T);
    while (lua_next(T, idx)) {
        size_t kl, vl;
        const char *k = lua_type(T, -2) == LUA_TSTRING ? lua_tolstring(T, -2, &kl) : NULL;
        const char *v = lua_type(T, -1) == LUA_TSTRING ? lua_tolstring(T, -1, &vl) : NULL;
        if (k == NULL || v == NULL || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n") ||
            used + kl + vl + 5 > cap) {
            lua_pop(T, 2);
            return -1;
        }
        if (strcasecmp(k, "content-type") == 0)
            *has_type = 1;
        used += (size_t)snprintf(out + used, cap - used, "%s: %s\r\n", k, v);
        lua_pop(T, 1);
    }
    return 0;
}

static int method_is(const dx_http_request *req, const char *m, size_t n)
{
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

/* 1 when req is a GET or HEAD (what routes and the metrics answer); else
 * answers 405 and returns 0. */
static int get_or_head(dx_conn *c, const dx_http_request *req, int keep)
{
    if (method_is(req, "GET", 3) || method_is(req, "HEAD", 4))
        return 1;
    dx_http_respond(c, 405, "Allow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\n",
                    "Method Not Allowed", 18, 0, keep);
    return 0;
}

/* An app:get route answers: fn(req) -> body [, status [, headers]]. */
static void run_http_route(dx_lserver *ls, dx_conn *c, const dx_http_request *req, int fn,
                           const char *path, size_t plen, const char *query, size_t qlen, int keep)
{
    lua_State *T = ls->T;
    int base = lua_gettop(T);
    int head = method_is(req, "HEAD", 4);
    lua_rawgeti(T, LUA_REGISTRYINDEX, fn);
    push_request_base(T, c, req, path, plen, query, qlen);
    static const char plain[] = "Content-Type: text/plain; charset=utf-8\r\n";
    if (!server_call(ls, T, 1, 3, "http route", NULL)) {
        failed(ls);
        dx_http_respond(c, 500, plain, "Internal Server Error", 21, head, keep);
        lua_settop(T, base);
        return;
    }
    size_t len = 0;
    const char *body = lua_tolstring(T, base + 1, &len);
    int status = lua_isnumber(T, base + 2) ? (int)lua_tointeger(T, base + 2) : 200;
    char headers[2048];
    int has_type = 0;
    int bad = header_lines(T, base + 3, headers, sizeof headers - sizeof plain, &has_type) < 0;
    if ((body == NULL && !lua_isnil(T, base + 1)) || status < 200 || status > 599 || bad) {
        dx_log(DX_LOG_ERROR, "handler_error", 0, NULL, "http route %.*s returned a bad response (body string, "
               "status 200-599, headers table of strings expected); answering 500", (int)plen, path);
        dx_http_respond(c, 500, plain, "Internal Server Error", 21, head, keep);
    } else {
        if (!has_type)
            strcat(headers, plain);
        dx_http_respond(c, status, headers, body ? body : "", body ? len : 0, head, keep);
    }
    lua_settop(T, base);
}

/* GET or HEAD of the metrics path: Prometheus's text format. */
static void serve_metrics(dx_lserver *ls, dx_conn *c, const dx_http_request *req, int keep)
{
    if (!get_or_head(c, req, keep))
        return;
    int head = method_is(req, "HEAD", 4);
    size_t len;
    dx_broker_stats bs;
    dx_node_stats(ls, &bs);
    char *text = dx_metrics_render(&ls->metrics, dx_server_stats(ls->srv), &bs, dx_server_conn_count(ls->srv), &len);
    if (text == NULL) {
        dx_http_respond(c, 500, "Content-Type: text/plain; charset=utf-8\r\n", "Internal Server Error", 21,
                        head, keep);
        return;
    }
    dx_http_respond(c, 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", text, len, head, keep);
    free(text);
}

static int ev_http(void *ud, dx_conn *c, const dx_http_request *req, int keep)
{
    dx_lserver *ls = ud;
    const char *t = req->target;
    const char *q = memchr(t, '?', req->target_len);
    size_t plen = q ? (size_t)(q - t) : req->target_len;
    size_t qlen = q ? req->target_len - plen - 1 : 0;
    if (ls->metrics.path && strlen(ls->metrics.path) == plen && memcmp(ls->metrics.path, t, plen) == 0) {
        serve_metrics(ls, c, req, keep);
        return DX_HTTP_ANSWERED;
    }
    for (int i = 0; i < ls->nhttp; i++) {
        if (strlen(ls->http[i].path) != plen || memcmp(ls->http[i].path, t, plen) != 0)
            continue;
        if (get_or_head(c, req, keep))
            run_http_route(ls, c, req, ls->http[i].fn, t, plen, q ? q + 1 : NULL, qlen, keep);
        return DX_HTTP_ANSWERED;
    }
    return find_route(ls, t, plen) >= 0 ? DX_HTTP_WS_ROUTE : DX_HTTP_NONE;
}

/* A payload ws:send queued without a copy was written: its string may go. */
static void ev_unhold(void *ud, intptr_t token)
{
    dx_lserver *ls = ud;
    lua_checkstack(ls->T, 2);
    luaL_unref(ls->T, LUA_REGISTRYINDEX, (int)token);
}

/* A fallback POST for another worker's session: through the bus. */
static int ev_forward(void *ud, unsigned worker, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                      const uint8_t *body, size_t len)
{
    return dx_node_forward(ud, worker, token, id, idlen, seq, body, len);
}

static const dx_events events = {
    .upgrade = ev_upgrade, .open = ev_open, .message = ev_message, .messages = ev_messages,
    .close = ev_close, .pong_timeout = ev_pong_timeout, .drain = ev_drain, .http = ev_http,
    .release = ev_release, .unhold = ev_unhold, .forward = ev_forward,
};

/* ---- Lua API ---- */

/* Reads the options table at t over cfg through the server's rows: an
 * unknown key or a bad value raises an error naming it. The rows without
 * a field (host, port, static) are checked only; tls is read by
 * dx_tls_read_option. [-0, +0, e] */
static void read_config(lua_State *L, int t, dx_config *cfg)
{
    dx_opt_read(L, t, dx_server_options, dx_server_option_count, cfg, "option", "");
}

/* The server's config changed: its handlers' limit, and the process
 * default (timers, signals, clients) follows the server configured last. */
static void guard_config(dx_lserver *ls)
{
    double t = dx_server_config(ls->srv)->handler_timeout;
    ls->guard_ms = (int)dx_guard_ms(t);
    dx_guard_set_default(t);
}

/* core.server([options]) -> server */
static int l_new(lua_State *L)
{
    dx_config cfg;
    dx_config_defaults(&cfg);
    read_config(L, 1, &cfg);
    dx_lserver *ls = dx_newuserdata(L, sizeof *ls);
    memset(ls, 0, sizeof *ls);
    luaL_getmetatable(L, DX_SERVER_MT);
    lua_setmetatable(L, -2);
    ls->T = dx_event_thread(L);
    ls->srv = dx_server_new(ev_default_loop(0), &cfg, &events, ls);
    if (ls->srv == NULL)
        return luaL_error(L, "out of memory");
    dx_tls_read_option(L, 1, ls->srv);
    guard_config(ls);
    dx_guard_start();
    return 1;
}

/* server:route(path, handlers [, replace]): handlers for connections to
 * path. With replace (a reload), a route already there takes the new
 * handlers and options: its open connections run the new handlers from
 * their next event on. [-0, +0, e] */
static int l_route(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    const char *path = luaL_checkstring(L, 2);
    luaL_argcheck(L, path[0] == '/', 2, "path must start with '/'");
    luaL_checktype(L, 3, LUA_TTABLE);
    int replace = lua_toboolean(L, 4);
    int existing = lookup_route(ls, path, strlen(path), replace);
    luaL_argcheck(L, replace || existing < 0, 2, "a route for this path exists");
    lua_pushnil(L);
    while (lua_next(L, 3)) {                   /* every key names a handler (or is "path") */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int known = strcmp(k, "path") == 0 || strcmp(k, "protocols") == 0 || strcmp(k, "deflate") == 0;
        for (int h = 0; h < DX_H_COUNT; h++)
            if (strcmp(k, handler_names[h]) == 0) {
                known = 1;
                if (!lua_isfunction(L, -1))
                    return luaL_error(L, "bad handler '%s' (function expected, got %s)",
                                      k, luaL_typename(L, -1));
            }
        if (!known)
            return luaL_error(L, "unknown handler '%s'", k);
        lua_pop(L, 1);
    }
    lua_getfield(L, 3, "deflate");              /* the server's option, for this route */
    const dx_option *mode = dx_server_option("deflate");
    int deflate = lua_isnil(L, -1) ? -1 : dx_opt_word(L, mode, -1, "route option", "");
    lua_pop(L, 1);
    lua_getfield(L, 3, "protocols");
    int nprotocols = 0;
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "bad route option 'protocols' (table of strings expected, got %s)",
                              luaL_typename(L, -1));
        nprotocols = (int)dx_rawlen(L, -1);
        for (int i = 1; i <= nprotocols; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING || dx_rawlen(L, -1) == 0 || dx_rawlen(L, -1) > 127)
                return luaL_error(L, "bad route option 'protocols' (entry %d is not a protocol name)", i);
            lua_pop(L, 1);
        }
    }
    dx_route *r;
    if (existing >= 0) {                       /* checked above: nothing raises from here */
        r = &ls->routes[existing];
        route_release(L, r);
        r->gone = 0;
    } else {
        dx_route *routes = realloc(ls->routes, sizeof *routes * (size_t)(ls->nroutes + 1));
        if (routes == NULL)
            return luaL_error(L, "out of memory");
        ls->routes = routes;
        r = &routes[ls->nroutes];
        memset(r, 0, sizeof *r);
        r->batch_loop = LUA_NOREF;
        r->path = strdup(path);
        if (r->path == NULL)
            return luaL_error(L, "out of memory");
        ls->nroutes++;
    }
    r->own_deflate = deflate >= 0;
    r->deflate = dx_server_config(ls->srv)->deflate;
    if (deflate >= 0)
        r->deflate.mode = deflate;
    if (nprotocols > 0) {
        r->protocols = calloc((size_t)nprotocols + 1, sizeof *r->protocols);
        for (int i = 0; r->protocols && i < nprotocols; i++) {
            lua_rawgeti(L, -1, i + 1);
            r->protocols[i] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);                             /* the protocols table (or nil) */
    for (int h = 0; h < DX_H_COUNT; h++) {
        lua_getfield(L, 3, handler_names[h]);
        r->fn[h] = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF) : luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

/* server:unroute(path) -> whether there was such a route: new upgrades to
 * path are refused (404); connections open on it keep its handlers. A
 * later route(path, handlers, true) brings it back. [-0, +1, e] */
static int l_unroute(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    size_t len;
    const char *path = luaL_checklstring(L, 2, &len);
    int r = find_route(ls, path, len);
    if (r >= 0)
        ls->routes[r].gone = 1;
    lua_pushboolean(L, r >= 0);
    return 1;
}

/* server:ungets(): forgets every app:get route (a reload registers the
 * new script's). [-0, +0, e] */
static void free_gets(lua_State *L, dx_lserver *ls)
{
    for (int i = 0; i < ls->nhttp; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->http[i].fn);
        free(ls->http[i].path);
    }
    ls->nhttp = 0;
}

static int l_ungets(lua_State *L)
{
    free_gets(L, check_open(L));
    return 0;
}

/* server:listen([host [, port]]) -> true | nil, message, name */
static int l_listen(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    const char *host = luaL_optstring(L, 2, NULL);
    lua_Integer port = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, port >= 0 && port <= 65535, 3, "port out of range");
    char err[256];
    const char *name = "ELISTEN";
    if (dx_server_listen(ls->srv, host, (int)port, err, sizeof err, &name) < 0)
        return dx_fail(L, name, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* server:reuse_port(on): the listeners of the next listen share their
 * port with other processes' (SO_REUSEPORT), as the workers of
 * --workers N do. [-0, +0, e] */
static int l_reuse_port(lua_State *L)
{
    dx_server_set_reuse_port(check_open(L)->srv, lua_toboolean(L, 2));
    return 0;
}

/* server:configure(options): changes the given options; connections
 * already open see the new limits and timeouts from their next event. */
static int l_configure(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    dx_config cfg = *dx_server_config(ls->srv);
    read_config(L, 2, &cfg);
    dx_tls_read_option(L, 2, ls->srv);
    *dx_server_config(ls->srv) = cfg;
    guard_config(ls);
    return 0;
}

/* server:take_config(other): this server's limits, timeouts and
 * compression become other's (a reload: other was made from the script
 * loaded again); open connections see them from their next event. TLS,
 * static files, host and port are not part of it. [-0, +0, e] */
static int l_take_config(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    dx_lserver *other = luaL_checkudata(L, 2, DX_SERVER_MT);
    luaL_argcheck(L, other->srv != NULL, 2, "a closed server");
    *dx_server_config(ls->srv) = *dx_server_config(other->srv);
    guard_config(ls);
    return 0;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, dx_server_port(check_open(L)->srv));
    return 1;
}

static int l_connections(lua_State *L)
{
    dx_lserver *ls = check(L);
    lua_pushinteger(L, ls->srv ? (lua_Integer)dx_server_conn_count(ls->srv) : 0);
    return 1;
}

/* server:shutdown([reason]): stop accepting, close every connection 1001. */
static int l_shutdown(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    dx_server_shutdown(ls->srv, luaL_optstring(L, 2, "server shutting down"));
    return 0;
}

/* server:close() and __gc: frees everything at once, without events. */
static int l_close(lua_State *L)
{
    dx_lserver *ls = check(L);
    if (ls->srv == NULL)
        return 0;
    if (dx_node_busy(ls))
        return luaL_error(L, "server:close() from a callback of its broker (history frame, recovered, "
                             "presence, join or leave): close it from a timer, e.g. app:after(0, ...)");
    dx_node_free(L, ls);
    dx_server_free(ls->srv);             /* no event runs from here */
    ls->srv = NULL;
    for (int i = 0; i < ls->nroutes; i++) {
        route_release(L, &ls->routes[i]);
        free(ls->routes[i].path);
    }
    free(ls->routes);
    ls->routes = NULL;
    ls->nroutes = 0;
    free_gets(L, ls);
    free(ls->http);
    free(ls->metrics.path);
    ls->metrics.path = NULL;
    ls->http = NULL;
    ls->nhttp = 0;
    return 0;
}

/* server:get(path, fn): an HTTP route for GET and HEAD on path. */
static int l_get(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    const char *path = luaL_checkstring(L, 2);
    luaL_argcheck(L, path[0] == '/', 2, "path must start with '/'");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    for (int i = 0; i < ls->nhttp; i++)
        luaL_argcheck(L, strcmp(ls->http[i].path, path) != 0, 2, "a route for this path exists");
    dx_http_route *r = realloc(ls->http, sizeof *r * (size_t)(ls->nhttp + 1));
    if (r == NULL)
        return luaL_error(L, "out of memory");
    ls->http = r;
    r[ls->nhttp].path = strdup(path);
    if (r[ls->nhttp].path == NULL)
        return luaL_error(L, "out of memory");
    lua_pushvalue(L, 3);
    r[ls->nhttp].fn = luaL_ref(L, LUA_REGISTRYINDEX);
    ls->nhttp++;
    return 0;
}

/* server:metrics(path): serves the Prometheus metrics at path (on the
 * app's port) and times handler runs from now on; false: neither any
 * more. [-0, +0, e] */
static int l_metrics(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    char *path = NULL;
    if (!(lua_isboolean(L, 2) && !lua_toboolean(L, 2))) {
        const char *p = luaL_checkstring(L, 2);
        luaL_argcheck(L, p[0] == '/', 2, "path must start with '/'");
        if ((path = strdup(p)) == NULL)
            return luaL_error(L, "out of memory");
    }
    free(ls->metrics.path);
    ls->metrics.path = path;
    return 0;
}

/* server:static(dir) -> true | nil, message, name: plain GET/HEAD served
 * from files under dir, which must be a directory; false: none any more. */
static int l_static(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    if (lua_isboolean(L, 2) && !lua_toboolean(L, 2)) {
        dx_server_set_static(ls->srv, NULL);
        lua_pushboolean(L, 1);
        return 1;
    }
    const char *dir = luaL_checkstring(L, 2);
    struct stat st;
    int e = stat(dir, &st) < 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (e)
        return dx_fail(L, e == ENOENT ? "ENOENT" : e == ENOTDIR ? "ENOTDIR" : "ESTATIC",
                       "cannot serve %s: %s", dir, strerror(e));
    if (dx_server_set_static(ls->srv, dir) < 0)
        return luaL_error(L, "out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* server:client_js(source | false): the browser client served at
 * /duplex.js while the option client_js is on. [-0, +0, e] */
static int l_client_js(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    size_t len = 0;
    const char *body = lua_isboolean(L, 2) && !lua_toboolean(L, 2) ? NULL : luaL_checklstring(L, 2, &len);
    if (dx_server_set_client_js(ls->srv, body, len) < 0)
        return luaL_error(L, "out of memory");
    return 0;
}

/* server:publish(topic, data [, binary]) -> subscribers it was queued for */
static int l_publish(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    size_t tlen, len;
    const char *topic = luaL_checklstring(L, 2, &tlen);
    const char *data = luaL_checklstring(L, 3, &len);
    int binary = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TBOOLEAN);
        binary = lua_toboolean(L, 4);
    }
    lua_pushinteger(L, (lua_Integer)dx_node_publish(L, ls, topic, tlen, data, len, binary, 0));
    return 1;
}

/* server:subscribers(topic) -> open connections subscribed */
static int l_subscribers(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    size_t tlen;
    const char *topic = luaL_checklstring(L, 2, &tlen);
    lua_pushinteger(L, (lua_Integer)dx_server_subscribers(ls->srv, topic, tlen));
    return 1;
}

/* server:stats() -> table of counters */
static int l_stats(lua_State *L)
{
    dx_lserver *ls = check_open(L);
    const dx_stats *st = dx_server_stats(ls->srv);
    lua_createtable(L, 0, (int)(dx_stat_row_count + dx_broker_row_count) + 3);
    for (size_t i = 0; i < dx_stat_row_count; i++) {
        lua_pushinteger(L, (lua_Integer)dx_stat_value(st, &dx_stat_rows[i]));
        lua_setfield(L, -2, dx_stat_rows[i].stat);
    }
    dx_broker_stats bs;
    dx_node_stats(ls, &bs);
    for (size_t i = 0; i < dx_broker_row_count; i++) {
        lua_pushinteger(L, (lua_Integer)dx_broker_value(&bs, &dx_broker_rows[i]));
        lua_setfield(L, -2, dx_broker_rows[i].stat);
    }
    lua_pushinteger(L, (lua_Integer)dx_server_conn_count(ls->srv));
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)dx_guard_timeouts());   /* the process's: its loop is shared */
    lua_setfield(L, -2, "handler_timeouts");
    lua_pushinteger(L, (lua_Integer)dx_box_restarts());
    lua_setfield(L, -2, "worker_restarts");
    return 1;
}

static const luaL_Reg methods[] = {
    { "publish", l_publish }, { "subscribers", l_subscribers }, { "stats", l_stats },
    { "get", l_get }, { "static", l_static }, { "client_js", l_client_js }, { "reload_tls", dx_tls_reload }, { "tls", dx_tls_enabled },
    { "metrics", l_metrics }, { "take_config", l_take_config }, { "route", l_route }, { "unroute", l_unroute }, { "ungets", l_ungets }, { "listen", l_listen }, { "reuse_port", l_reuse_port }, { "configure", l_configure }, { "port", l_port },
    { "connections", l_connections }, { "shutdown", l_shutdown }, { "close", l_close },
    { NULL, NULL }
};

void dx_server_open_lib(lua_State *L)
{
    dx_new_class(L, DX_SERVER_MT, methods, l_close);
    luaL_getmetatable(L, DX_SERVER_MT);
    lua_getfield(L, -1, "__index");
    dx_setfuncs(L, dx_node_methods);
    lua_pop(L, 2);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "server");
}
