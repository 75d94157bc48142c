/* See compat.h. */
#include "binding/compat.h"

#if LUA_VERSION_NUM >= 502

/* The attached values live in one table, keyed by their userdata, with
 * weak keys: an ephemeron table, so a value that refers back to its key
 * (ws.data.self = ws) does not keep it alive. A user value slot in every
 * userdata would cost 24 bytes each (a 1-value userdata's header is 56
 * bytes, a plain one's 32), also for the many that never attach one. */
static const char store_key = 0;  /* its address: the table's registry key */

static void push_store(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &store_key) != LUA_TNIL)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &store_key);
}

void dx_getuv(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_store(L);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

void dx_setuv(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_store(L);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

void dx_inituv(lua_State *L, int idx)
{
    (void)L;
    (void)idx;
}

#else

static const char none_key = 0;   /* registry key of the "nothing attached" marker */

static void push_none(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&none_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, (void *)&none_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
}

void dx_getuv(lua_State *L, int idx)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_getfenv(L, idx);
    push_none(L);
    if (lua_rawequal(L, -1, -2)) {
        lua_pop(L, 2);
        lua_pushnil(L);
    } else {
        lua_pop(L, 1);
    }
}

void dx_setuv(lua_State *L, int idx)
{
    lua_setfenv(L, idx);
}

void dx_inituv(lua_State *L, int idx)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    push_none(L);
    lua_setfenv(L, idx);
}

#ifndef DX_LUAL_TRACEBACK

void dx_traceback(lua_State *L, lua_State *L1, const char *msg, int level)
{
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_remove(L, -2);
    if (L1 != L) {
        lua_pushthread(L1);
        lua_xmove(L1, L, 1);
    }
    lua_pushstring(L, msg);
    /* from L's own stack, debug.traceback is level 0 and its caller 1 */
    lua_pushinteger(L, L1 == L ? level + 1 : level);
    lua_call(L, L1 != L ? 3 : 2, 1);
}

#endif
#endif
