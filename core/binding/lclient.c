/* Clients for Lua: core.connect(host, port, target, handlers) on the
 * default loop, on the client core (client/client.h). One client ctx per
 * Lua state, made on first use and rooted in the registry. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include "binding/binding.h"
#include "client/client.h"
#include "protocol/client_handshake.h"
#include "protocol/message.h"

#define DX_CLIENT_MT "duplex.client"
#define DX_CLIENT_CTX_MT "duplex.client_ctx"

enum { DX_C_OPEN, DX_C_MESSAGE, DX_C_CLOSE, DX_C_COUNT };
static const char *const client_handlers[DX_C_COUNT] = { "open", "message", "close" };

/* The handle: NULL client once the close event has run. */
typedef struct dx_lclient {
    dx_client *c;
    lua_State *T;
    int self;                   /* registry ref rooting it while connected */
    int fn[DX_C_COUNT];         /* registry refs of the handlers, LUA_NOREF when absent */
    lua_Integer id;
} dx_lclient;

typedef struct dx_lctx {
    dx_client_ctx *x;
    lua_Integer next_id;
} dx_lctx;

/* Pushes handler h and the handle; 0 (nothing pushed) when there is none. */
static int begin(dx_lclient *w, int h)
{
    if (w == NULL || w->fn[h] == LUA_NOREF)
        return 0;
    lua_rawgeti(w->T, LUA_REGISTRYINDEX, w->fn[h]);
    lua_rawgeti(w->T, LUA_REGISTRYINDEX, w->self);
    return 1;
}

static void ev_open(void *ud, dx_client *c)
{
    (void)ud;
    dx_lclient *w = dx_client_user(c);
    if (begin(w, DX_C_OPEN) && !dx_call(w->T, 1, 0, "client open", NULL, DX_GUARD_DEFAULT))
        dx_client_close(c, DX_CLOSE_INTERNAL);
}

static void ev_message(void *ud, dx_client *c, const uint8_t *data, size_t len, int binary)
{
    (void)ud;
    dx_lclient *w = dx_client_user(c);
    if (!begin(w, DX_C_MESSAGE))
        return;
    lua_pushlstring(w->T, len ? (const char *)data : "", len);
    lua_pushboolean(w->T, binary);
    if (!dx_call(w->T, 3, 0, "client message", NULL, DX_GUARD_DEFAULT))
        dx_client_close(c, DX_CLOSE_INTERNAL);
}

/* Once per connect: the handle lets go of c (freed when this returns). */
static void ev_close(void *ud, dx_client *c, int opened, unsigned code, const char *why)
{
    (void)ud;
    (void)opened;
    dx_lclient *w = dx_client_user(c);
    if (w == NULL)
        return;
    w->c = NULL;
    if (begin(w, DX_C_CLOSE)) {
        lua_pushinteger(w->T, (lua_Integer)code);
        lua_pushstring(w->T, why);
        dx_call(w->T, 3, 0, "client close", NULL, DX_GUARD_DEFAULT);
    }
    for (int h = 0; h < DX_C_COUNT; h++) {
        luaL_unref(w->T, LUA_REGISTRYINDEX, w->fn[h]);
        w->fn[h] = LUA_NOREF;
    }
    luaL_unref(w->T, LUA_REGISTRYINDEX, w->self);
    w->self = LUA_NOREF;
}

static const dx_client_events events = { ev_open, ev_message, ev_close };

static int ctx_gc(lua_State *L)
{
    dx_lctx *k = luaL_checkudata(L, 1, DX_CLIENT_CTX_MT);
    if (k->x)
        dx_client_ctx_free(k->x);           /* no events run from here */
    k->x = NULL;
    return 0;
}

/* This Lua state's ctx, made on first use. */
static dx_lctx *get_ctx(lua_State *L)
{
    static const char key = 0;              /* its address is the registry key */
    lua_pushlightuserdata(L, (void *)&key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    dx_lctx *k = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (k)
        return k;
    k = dx_newuserdata(L, sizeof *k);
    memset(k, 0, sizeof *k);
    luaL_getmetatable(L, DX_CLIENT_CTX_MT);
    lua_setmetatable(L, -2);
    k->x = dx_client_ctx_new(ev_default_loop(0), NULL, &events, k);
    if (k->x == NULL)
        luaL_error(L, "out of memory");
    lua_pushlightuserdata(L, (void *)&key);
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return k;
}

/* core.connect(host, port, target, handlers [, tls [, protocols]]) ->
 * client | nil, message, name. tls (wss://): true, or a table { ca = FILE,
 * insecure = bool, servername = NAME }; nil or false for ws://. protocols:
 * the subprotocols offered, tokens joined by ", " ("duplex.1, chat"), or
 * nil. [-0, +1|3, e] */
static int l_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    const char *target = luaL_checkstring(L, 3);
    luaL_argcheck(L, port > 0 && port <= 65535, 2, "port out of range");
    luaL_argcheck(L, target[0] == '/', 3, "target must start with '/'");
    luaL_checktype(L, 4, LUA_TTABLE);
    for (int h = 0; h < DX_C_COUNT; h++) {
        lua_getfield(L, 4, client_handlers[h]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            return luaL_error(L, "bad handler '%s' (function expected, got %s)",
                              client_handlers[h], luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    dx_client_tls tls = { NULL, 0, NULL };
    int use_tls = !lua_isnoneornil(L, 5) && !(lua_type(L, 5) == LUA_TBOOLEAN && !lua_toboolean(L, 5));
    if (use_tls && lua_istable(L, 5)) {
        lua_getfield(L, 5, "ca");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "bad option 'ca' (file name expected, got %s)", luaL_typename(L, -1));
        tls.ca = lua_tostring(L, -1);       /* reachable through the table */
        lua_getfield(L, 5, "servername");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "bad option 'servername' (host name expected, got %s)", luaL_typename(L, -1));
        tls.servername = lua_tostring(L, -1);
        lua_getfield(L, 5, "insecure");
        tls.insecure = lua_toboolean(L, -1);
        lua_pop(L, 3);
    } else if (use_tls && lua_type(L, 5) != LUA_TBOOLEAN) {
        return luaL_argerror(L, 5, "table or boolean expected");
    }
    const char *protocols = luaL_optstring(L, 6, NULL);
    luaL_argcheck(L, protocols == NULL || dx_client_protocols_valid(protocols), 6,
                  "tokens joined by \", \" expected");
    dx_lctx *k = get_ctx(L);

    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    char service[8], hosthdr[300], err[256];
    snprintf(service, sizeof service, "%d", (int)port);
    int e = getaddrinfo(host, service, &hints, &ai);     /* blocks: resolve names up front */
    if (e != 0)
        return dx_fail(L, "EAI_NONAME", "cannot resolve %s: %s", host, gai_strerror(e));
    snprintf(hosthdr, sizeof hosthdr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, (int)port);
    dx_client *c = dx_client_connect(k->x, ai->ai_addr, ai->ai_addrlen, hosthdr, target,
                                     use_tls ? &tls : NULL, protocols, err, sizeof err);
    freeaddrinfo(ai);
    if (c == NULL)
        return dx_fail(L, strstr(err, "tls") ? "ETLS" : "ECONNECT", "%s", err);
    dx_lclient *w = dx_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    luaL_getmetatable(L, DX_CLIENT_MT);
    lua_setmetatable(L, -2);
    w->c = c;
    w->T = dx_event_thread(L);
    dx_guard_start();
    w->id = ++k->next_id;
    for (int h = 0; h < DX_C_COUNT; h++) {
        lua_getfield(L, 4, client_handlers[h]);
        w->fn[h] = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF) : luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_pushvalue(L, -1);
    w->self = luaL_ref(L, LUA_REGISTRYINDEX);
    dx_client_set_user(c, w);
    return 1;
}

static dx_lclient *check(lua_State *L)
{
    return luaL_checkudata(L, 1, DX_CLIENT_MT);
}

/* client:send(data [, binary]) -> true | nil, message, name */
static int l_send(lua_State *L)
{
    dx_lclient *w = check(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TBOOLEAN);
        binary = lua_toboolean(L, 3);
    }
    if (w->c == NULL)
        return luaL_error(L, "attempt to use a closed connection");
    int r = dx_client_send(w->c, data, len, binary);
    if (r == DX_CSEND_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (r == DX_CSEND_CLOSED)
        return dx_fail(L, "closed", "connection is not open");
    return dx_fail(L, "ENOMEM", "out of memory");
}

/* client:close([code]) -> true. Closing a closed client does nothing. */
static int l_close(lua_State *L)
{
    dx_lclient *w = check(L);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    luaL_argcheck(L, code >= 0 && code <= 0xffff && dx_close_code_valid((unsigned)code), 2,
                  "invalid close code");
    if (w->c)
        dx_client_close(w->c, (unsigned)code);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:is_open() -> true while messages may be sent */
static int l_is_open(lua_State *L)
{
    dx_lclient *w = check(L);
    lua_pushboolean(L, w->c != NULL && dx_client_is_open(w->c));
    return 1;
}

/* client:protocol() -> the subprotocol the server chose, or nil (none,
 * not open yet, or closed) */
static int l_protocol(lua_State *L)
{
    dx_lclient *w = check(L);
    const char *p = w->c ? dx_client_protocol(w->c) : NULL;
    if (p)
        lua_pushstring(L, p);
    else
        lua_pushnil(L);
    return 1;
}

static int l_buffered(lua_State *L)
{
    dx_lclient *w = check(L);
    lua_pushinteger(L, w->c ? (lua_Integer)dx_client_buffered(w->c) : 0);
    return 1;
}

void dx_client_open_lib(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send", l_send }, { "close", l_close }, { "is_open", l_is_open },
        { "buffered", l_buffered }, { "protocol", l_protocol }, { NULL, NULL }
    };
    static const luaL_Reg none[] = { { NULL, NULL } };
    dx_new_class(L, DX_CLIENT_MT, methods, NULL);
    dx_new_class(L, DX_CLIENT_CTX_MT, none, ctx_gc);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
}
