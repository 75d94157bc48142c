/* The connection handle seen by handlers as `ws`. */
#include <stdlib.h>
#include <string.h>
#include "binding/binding.h"
#include "protocol/message.h"
#include "protocol/utf8.h"

static const char *const closed_msg = "attempt to use a closed connection";

/* The handle at 1. A handle carries a tag, its own address mixed with a
 * constant: a userdata of exactly a handle's size whose bytes say so can
 * only have been made here (Lua code cannot write a userdata's bytes, and
 * no other C code has a reason to store that value there), so the tag
 * stands for the metatable test on the path of every ws:send, at a
 * fraction of its cost. Anything else goes through luaL_checkudata, which
 * raises the usual error. */
static dx_lconn *check(lua_State *L)
{
    dx_lconn *w = lua_touserdata(L, 1);
    if (w && dx_rawlen(L, 1) == sizeof *w && w->tag == DX_LCONN_TAG(w))
        return w;
    return luaL_checkudata(L, 1, DX_CONN_MT);
}

/* The live connection behind the handle at 1, or a raised error once the
 * close event has run. */
static dx_conn *live(lua_State *L)
{
    dx_lconn *w = check(L);
    if (w->conn == NULL)
        luaL_error(L, "%s", closed_msg);
    return w->conn;
}

static int check_binary(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    if (t == LUA_TBOOLEAN)
        return lua_toboolean(L, idx);
    if (t != LUA_TNONE && t != LUA_TNIL)
        luaL_checktype(L, idx, LUA_TBOOLEAN);   /* raises the usual error */
    return 0;
}

/* A send that found the connection closing or its queue full: a failure
 * of the world. The queue's message says what happens next, by the
 * server's backpressure policy. */
static int push_result(lua_State *L, const dx_lconn *w, int r)
{
    if (r == DX_SEND_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    switch (r) {
    case DX_SEND_CLOSED:
        return dx_fail(L, "closed", "connection is closing");
    case DX_SEND_BACKPRESSURE:
        if (w->ls->srv && dx_server_config(w->ls->srv)->backpressure_drop)
            return dx_fail(L, "backpressure", "send queue full (max_backpressure): the message was dropped");
        return dx_fail(L, "backpressure", "send queue full (max_backpressure): the connection is being closed");
    default:
        return dx_fail(L, "ENOMEM", "out of memory");
    }
}

/* ws:send(data [, binary]) -> true | nil, message, name. A large payload
 * is queued without a copy: a registry reference keeps the string (whose
 * bytes never move) until the transport has written it (dx_conn_unhold). */
static inline __attribute__((always_inline)) int send_as(lua_State *L, int raw)
{
    dx_conn *c = live(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = check_binary(L, 3);
    if (binary && !raw && ((dx_lconn *)lua_touserdata(L, 1))->duplex1) {
        lua_pushlstring(L, "\0", 1);           /* duplex.1: the app's binary message, tagged */
        lua_pushvalue(L, 2);
        lua_concat(L, 2);
        lua_replace(L, 2);
        data = lua_tolstring(L, 2, &len);
    }
    if (len < DX_SEND_HOLD_MIN)
        return push_result(L, lua_touserdata(L, 1), dx_conn_send(c, data, len, binary));
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int held;
    int r = dx_conn_send_held(c, data, len, binary, ref, &held);
    if (!held)
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return push_result(L, lua_touserdata(L, 1), r);
}

static int l_send(lua_State *L)
{
    return send_as(L, 0);
}

#if LUA_VERSION_NUM == 501
/* failed(ws, r): the result l_send gives for dx_conn_send's r
 * (lconn_ffi.c). */
static int l_send_failed(lua_State *L)
{
    return push_result(L, check(L), (int)luaL_checkinteger(L, 2));
}

/* ws:send's message path from LuaJIT's compiled code, through the FFI
 * with the handle's payload (lconn_ffi.c): what dx_conn_send returns, or
 * 1 for what only l_send does (a closed handle, a payload to hold, a
 * tagged duplex.1 message, and anything without a handle's tag: the
 * caller checked the metatable, which debug.setmetatable can give to
 * another userdata). */
static int fast_send(void *ud, const char *data, size_t len, int binary)
{
    dx_lconn *w = ud;
    if (w->tag != DX_LCONN_TAG(w) || w->conn == NULL || len >= DX_SEND_HOLD_MIN || (binary && w->duplex1))
        return 1;
    return dx_conn_send(w->conn, data, len, binary);
}
#endif

/* ws:_send_raw(data [, binary]): ws:send without the duplex.1 tag (the
 * Lua layer's controls). */
static int l_send_raw(lua_State *L)
{
    return send_as(L, 1);
}

/* ws:ping([data]) -> true | nil, message, name */
static int l_ping(lua_State *L)
{
    dx_conn *c = live(L);
    size_t len = 0;
    const char *data = luaL_optlstring(L, 2, "", &len);
    luaL_argcheck(L, len <= DX_CONTROL_MAX, 2, "ping payload longer than 125 bytes");
    return push_result(L, lua_touserdata(L, 1), dx_conn_ping(c, data, len));
}

/* ws:close([code [, reason]]) -> true. Closing a closed connection does
 * nothing. */
static int l_close(lua_State *L)
{
    dx_lconn *w = check(L);
    lua_Integer code = luaL_optinteger(L, 2, DX_CLOSE_NORMAL);
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    luaL_argcheck(L, code >= 0 && code <= 0xffff && dx_close_code_valid((unsigned)code), 2,
                  "invalid close code");
    luaL_argcheck(L, len <= DX_CONTROL_MAX - 2, 3, "reason longer than 123 bytes");
    luaL_argcheck(L, dx_utf8_valid((const uint8_t *)reason, len), 3, "reason is not valid UTF-8");
    if (w->conn)
        dx_conn_close(w->conn, (unsigned)code, reason, len);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:subscribe(topic [, opts]) -> true when newly subscribed, false when
 * it was. opts (lbroker.c): since or last, recovered, presence. */
static int l_subscribe(lua_State *L)
{
    dx_conn *c = live(L);
    size_t len;
    const char *topic = luaL_checklstring(L, 2, &len);
    if (len && topic[0] == DX_SHADOW)
        check(L)->ls->shadows = 1;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        return dx_node_subscribe(L, check(L), topic, len, 3);
    }
    int r = dx_conn_subscribe(c, topic, len);
    if (r < 0)
        return luaL_error(L, "out of memory");
    lua_pushboolean(L, r);
    return 1;
}

/* ws:unsubscribe(topic) -> true when it was subscribed (or catching up on
 * topic's history), and it leaves topic's presence. A closed connection
 * has left every topic already: false. */
static int l_unsubscribe(lua_State *L)
{
    dx_lconn *w = check(L);
    size_t len;
    const char *topic = luaL_checklstring(L, 2, &len);
    if (w->conn == NULL) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int was = dx_conn_unsubscribe(w->conn, topic, len);
    if (w->ls->node)
        was |= dx_node_unsubscribe(L, w, topic, len);
    lua_pushboolean(L, was);
    return 1;
}

/* ws:publish(topic, data [, binary [, include_self]]) -> subscribers of
 * this node reached at once. The sender is left out unless include_self
 * is true. In the close handler it still works (to tell a room who left);
 * the connection has left its topics by then. */
static int l_publish(lua_State *L)
{
    dx_lconn *w = check(L);
    if (w->conn == NULL && !w->in_close)
        luaL_error(L, "%s", closed_msg);
    size_t tlen, len;
    const char *topic = luaL_checklstring(L, 2, &tlen);
    const char *data = luaL_checklstring(L, 3, &len);
    int binary = check_binary(L, 4);
    int include_self = 0;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TBOOLEAN);
        include_self = lua_toboolean(L, 5);
    }
    lua_pushinteger(L, (lua_Integer)dx_node_publish(L, w->ls, topic, tlen, data, len, binary,
                                                    include_self ? 0 : (uint64_t)w->id));
    return 1;
}

/* ws:buffered() -> bytes queued for sending */
static int l_buffered(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)dx_conn_buffered(live(L)));
    return 1;
}

/* ws.data: the app's table, made on first use. [-0, +1, m] */
static void push_data(lua_State *L)
{
    dx_getuv(L, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        dx_setuv(L, 1);
    }
}

static int l_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));        /* a method: no need to look at ws */
    if (!lua_isnil(L, -1) || lua_type(L, 2) != LUA_TSTRING)
        return 1;
    dx_lconn *w = check(L);
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "id") == 0)
        lua_pushinteger(L, w->id);
    else if (strcmp(k, "remote") == 0) {
        char remote[DX_ADDR_STRLEN];
        lua_pushstring(L, dx_addr_format(&w->remote, remote));
    }
    else if (strcmp(k, "data") == 0)
        push_data(L);
    else if (strcmp(k, "protocol") == 0 && w->protocol)
        lua_pushstring(L, w->protocol);
    else if (strcmp(k, "transport") == 0)
        lua_pushstring(L, w->sse ? "sse" : "websocket");
    else
        lua_pushnil(L);
    return 1;
}

static int l_newindex(lua_State *L)
{
    check(L);
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "data") == 0) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushvalue(L, 3);
        dx_setuv(L, 1);
        return 0;
    }
    return luaL_error(L, "cannot set field '%s' of a connection (use ws.data)", k ? k : "?");
}

static int l_tostring(lua_State *L)
{
    dx_lconn *w = check(L);
    char remote[DX_ADDR_STRLEN];
    lua_pushfstring(L, "duplex.connection %d (%s%s)", (int)w->id, dx_addr_format(&w->remote, remote),
                    w->conn ? "" : ", closed");
    return 1;
}

static int l_gc(lua_State *L)
{
    dx_lconn *w = check(L);
    free(w->protocol);
    w->protocol = NULL;
    return 0;
}

static const luaL_Reg methods[] = {
    { "send", l_send }, { "_send_raw", l_send_raw }, { "ping", l_ping }, { "close", l_close }, { "buffered", l_buffered },
    { "subscribe", l_subscribe }, { "unsubscribe", l_unsubscribe }, { "publish", l_publish },
    { NULL, NULL }
};

void dx_conn_open_lib(lua_State *L)
{
    luaL_newmetatable(L, DX_CONN_MT);
    lua_newtable(L);
    dx_setfuncs(L, methods);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_index, 1);           /* upvalue: the methods */
    lua_setfield(L, -3, "__index");
#if LUA_VERSION_NUM == 501
    dx_conn_open_ffi(L, l_send, l_send_failed, fast_send);
#endif
    lua_pop(L, 1);
    lua_pushcfunction(L, l_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "duplex.connection");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

dx_lconn *dx_conn_push_new(lua_State *L, dx_lserver *ls, dx_conn *c, int route)
{
    dx_lconn *w = dx_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    w->tag = DX_LCONN_TAG(w);
    dx_inituv(L, -1);
    luaL_getmetatable(L, DX_CONN_MT);
    lua_setmetatable(L, -2);
    w->conn = c;
    w->ls = ls;
    w->route = route;
    w->id = (lua_Integer)dx_conn_id(c);
    w->remote = *dx_conn_addr(c);
    lua_pushvalue(L, -1);
    w->self = luaL_ref(L, LUA_REGISTRYINDEX);
    dx_conn_set_user(c, w);
    return w;
}

void dx_conn_push(lua_State *L, dx_lconn *w)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->self);
}

void dx_conn_release(lua_State *L, dx_lconn *w)
{
    if (w->conn)
        dx_conn_set_user(w->conn, NULL);
    w->conn = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, w->self);
    w->self = LUA_NOREF;
}
