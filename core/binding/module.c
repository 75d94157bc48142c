/* luaopen_duplex_core: the module table, the event loop and signals. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "binding/binding.h"
#include "binding/gc_pace.h"

#ifndef DX_VERSION
#define DX_VERSION "0.1.0"
#endif

/* core.run([mode]) runs the default loop: "default" until stopped or nothing
 * is left to watch, "once" for one iteration (waiting for an event), "nowait"
 * for one iteration without waiting. Returns true while watchers remain. */
static int l_run(lua_State *L)
{
    static const char *const modes[] = { "default", "once", "nowait", NULL };
    static const int flags[] = { 0, EVRUN_ONCE, EVRUN_NOWAIT };
    int m = luaL_checkoption(L, 1, "default", modes);
    lua_pushboolean(L, ev_run(ev_default_loop(0), flags[m]));
    return 1;
}

/* core.stop(): makes core.run return after this iteration. */
static int l_stop(lua_State *L)
{
    (void)L;
    ev_break(ev_default_loop(0), EVBREAK_ALL);
    return 0;
}

/* core.now() -> the loop's time in seconds. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, ev_now(ev_default_loop(0)));
    return 1;
}

/* ---- signals ---- */

#define DX_SIGNAL_MT "duplex.signal"

typedef struct dx_lsignal {
    ev_signal w;
    lua_State *T;
    int fn;            /* registry ref of the handler */
    int self;          /* registry ref rooting the handle while active */
} dx_lsignal;

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_lsignal *s = (dx_lsignal *)w;
    lua_rawgeti(s->T, LUA_REGISTRYINDEX, s->fn);
    dx_call(s->T, 0, 0, "signal", NULL, DX_GUARD_DEFAULT);
}

static int signal_stop(lua_State *L)
{
    dx_lsignal *s = luaL_checkudata(L, 1, DX_SIGNAL_MT);
    if (s->self == LUA_NOREF)
        return 0;
    ev_signal_stop(ev_default_loop(0), &s->w);
    luaL_unref(L, LUA_REGISTRYINDEX, s->fn);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self);
    s->fn = s->self = LUA_NOREF;
    return 0;
}

/* core.signal(name, fn) -> handle with :stop(). name: "INT", "TERM",
 * "HUP", "USR1", "USR2". fn runs on the loop, not in the signal handler.
 * A signal watcher does not keep core.run going by itself. */
static int l_signal(lua_State *L)
{
    static const char *const names[] = { "INT", "TERM", "HUP", "USR1", "USR2", NULL };
    static const int nums[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };
    int i = luaL_checkoption(L, 1, NULL, names);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    dx_lsignal *s = dx_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    luaL_getmetatable(L, DX_SIGNAL_MT);
    lua_setmetatable(L, -2);
    s->T = dx_event_thread(L);
    lua_pushvalue(L, 2);
    s->fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    s->self = luaL_ref(L, LUA_REGISTRYINDEX);
    ev_signal_init(&s->w, signal_cb, nums[i]);
    ev_signal_start(ev_default_loop(0), &s->w);
    dx_guard_start();
    ev_unref(ev_default_loop(0));
    return 1;
}

static int signal_gc(lua_State *L)
{
    dx_lsignal *s = luaL_checkudata(L, 1, DX_SIGNAL_MT);
    if (s->self != LUA_NOREF) {          /* only at lua_close: an active one is rooted */
        ev_ref(ev_default_loop(0));
        ev_signal_stop(ev_default_loop(0), &s->w);
    }
    return 0;
}

static int signal_gc_stop(lua_State *L)
{
    dx_lsignal *s = luaL_checkudata(L, 1, DX_SIGNAL_MT);
    if (s->self != LUA_NOREF)
        ev_ref(ev_default_loop(0));
    return signal_stop(L);
}

static void open_signal_lib(lua_State *L)
{
    static const luaL_Reg methods[] = { { "stop", signal_gc_stop }, { NULL, NULL } };
    dx_new_class(L, DX_SIGNAL_MT, methods, signal_gc);
}

static const luaL_Reg functions[] = {
    { "run", l_run }, { "stop", l_stop }, { "now", l_now }, { "signal", l_signal },
    { "gc_pace", dx_gc_pace_set },
    { NULL, NULL }
};

int luaopen_duplex_core(lua_State *L);

int luaopen_duplex_core(lua_State *L)
{
    if (ev_default_loop(EVFLAG_AUTO) == NULL)
        return luaL_error(L, "duplex: cannot start the event loop (bad $LIBEV_FLAGS?)");
    dx_conn_open_lib(L);
    open_signal_lib(L);
    lua_newtable(L);
    dx_setfuncs(L, functions);
    dx_server_open_lib(L);
    dx_server_options_open_lib(L);
    dx_timer_open_lib(L);
    dx_client_open_lib(L);
    dx_bench_open_lib(L);
    dx_log_open_lib(L);
    dx_supervisor_open_lib(L);
    dx_hub_open_lib(L);
    dx_guard_open_lib(L);
    lua_pushliteral(L, DX_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
