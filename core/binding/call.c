/* The one way C calls into Lua: lua_pcall with a traceback handler, timed
 * by the guard (guard.c), and the failure policy "log it once, with its
 * traceback". */
#include <stdio.h>
#include "binding/binding.h"
#include "binding/gc_pace.h"
#include "transport/log.h"

static int last_stopped;   /* the last failed call was stopped by the guard */
/* A peer whose every message makes a handler raise must not flood the
 * log: 20 lines at once, then 10 a second, the rest counted. */
static dx_log_budget error_lines = { .rate = 10, .burst = 20 };

int dx_traceback_handler(lua_State *L)
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
 * for good (see dx_event_thread), so a call pushes nothing extra. The
 * outermost call is a guard section; one nested in it (an event the
 * handler set off) is part of that section. */
int dx_call(lua_State *L, int nargs, int nresults, const char *what, const dx_lconn *conn, int timeout_ms)
{
    dx_guard_saved s;
    int outer = dx_guard.running == NULL;
    if (outer)
        dx_guard_enter(&s, L, timeout_ms, what);
    int rc = lua_pcall(L, nargs, nresults, 1);
    int stopped = outer ? dx_guard_leave(&s) : 0;
    dx_gc_pace_after_call(L);
    if (rc == 0)
        return 1;
    if (!outer && dx_guard.fired) {      /* the section around is being stopped: it reports */
        lua_pop(L, 1);
        last_stopped = 0;
        return 0;
    }
    char where[DX_ADDR_STRLEN + 48] = "";
    if (conn) {
        char remote[DX_ADDR_STRLEN];
        snprintf(where, sizeof where, " (connection %lld from %s)", (long long)conn->id,
                 dx_addr_format(&conn->remote, remote));
    }
    uint64_t id = conn ? (uint64_t)conn->id : 0;
    const dx_addr *remote = conn ? &conn->remote : NULL;
    if (stopped) {
        lua_pop(L, 1);
        dx_guard_push_report(L);
        dx_log(DX_LOG_ERROR, "handler_timeout", id, remote, "stopped %s%s%s: %s", what, conn ? " handler" : "",
               where, lua_tostring(L, -1));
    } else {
        const char *err = lua_tostring(L, -1);
        dx_log_budgeted(&error_lines, DX_LOG_ERROR, "handler_error", id, remote, "error in %s%s%s: %s", what,
                        conn ? " handler" : "", where, err ? err : "?");
    }
    lua_pop(L, 1);
    last_stopped = stopped;
    return 0;
}

int dx_call_stopped(void)
{
    return last_stopped;
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
        lua_pushcfunction(T, dx_traceback_handler);     /* index 1 of T for as long as it lives */
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
