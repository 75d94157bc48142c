/* The one way C calls into Lua: lua_pcall with a traceback handler, and the
 * failure policy "log it once, with its traceback". */
#include <stdio.h>
#include "binding/binding.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    dx_traceback(L, L, msg, 1);
    return 1;
}

/* L is the event thread: its stack keeps the traceback handler at index 1
 * for good (see dx_event_thread), so a call pushes nothing extra. */
int dx_call(lua_State *L, int nargs, int nresults, const char *what, const dx_lconn *conn)
{
    if (lua_pcall(L, nargs, nresults, 1) == 0)
        return 1;
    const char *err = lua_tostring(L, -1);
    if (conn) {
        char remote[DX_ADDR_STRLEN];
        fprintf(stderr, "duplex: error in %s handler (connection %lld from %s): %s\n",
                what, (long long)conn->id, dx_addr_format(&conn->remote, remote), err ? err : "?");
    }
    else
        fprintf(stderr, "duplex: error in %s: %s\n", what, err ? err : "?");
    fflush(stderr);
    lua_pop(L, 1);
    return 0;
}

lua_State *dx_event_thread(lua_State *L)
{
    static const char key = 0;             /* its address is the registry key */
    lua_pushlightuserdata(L, (void *)&key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_State *T = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (T == NULL) {
        lua_pushlightuserdata(L, (void *)&key);
        T = lua_newthread(L);
        lua_rawset(L, LUA_REGISTRYINDEX);
        lua_pushcfunction(T, traceback);     /* index 1 of T for as long as it lives */
    }
    return T;
}

void dx_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    dx_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    if (gc) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}
