/* Timers on the loop: core.timer(after, every, fn) -> handle:stop().
 *
 * An active timer is rooted in the registry (handle and function), so it
 * runs even when the app keeps no reference to it; a one-shot timer lets go
 * after it ran, a stopped one at once. An error in fn is logged with its
 * traceback and does not stop a repeating timer; fn stopped by the guard
 * (handler_timeout: the process default, see guard.h) stops it. */
#include <string.h>
#include "binding/binding.h"

#define DX_TIMER_MT "duplex.timer"

typedef struct dx_ltimer {
    ev_timer w;
    lua_State *T;
    int fn;            /* registry ref of the function, LUA_NOREF once done */
    int self;          /* registry ref rooting the handle while active */
} dx_ltimer;

static void release(lua_State *L, dx_ltimer *t)
{
    ev_timer_stop(ev_default_loop(0), &t->w);
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self);
    t->fn = t->self = LUA_NOREF;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_ltimer *t = (dx_ltimer *)w;
    lua_State *T = t->T;
    int repeating = w->repeat > 0;
    lua_rawgeti(T, LUA_REGISTRYINDEX, t->fn);
    lua_rawgeti(T, LUA_REGISTRYINDEX, t->self);   /* fn(handle) */
    if (!repeating) {                /* a one-shot lets go first; fn still gets its handle */
        luaL_unref(T, LUA_REGISTRYINDEX, t->fn);
        luaL_unref(T, LUA_REGISTRYINDEX, t->self);
        t->fn = t->self = LUA_NOREF;
    }
    if (!dx_call(T, 1, 0, "timer", NULL, DX_GUARD_DEFAULT) && dx_call_stopped() && t->fn != LUA_NOREF)
        release(T, t);               /* stopped by the guard: it runs no more */
}

/* core.timer(after, every, fn) -> handle. after: seconds before the first
 * run (>= 0); every: seconds between runs (0: once). */
static int l_timer(lua_State *L)
{
    lua_Number after = luaL_checknumber(L, 1);
    lua_Number every = luaL_checknumber(L, 2);
    luaL_argcheck(L, after >= 0, 1, "seconds must not be negative");
    luaL_argcheck(L, every >= 0, 2, "seconds must not be negative");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    dx_ltimer *t = dx_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    luaL_getmetatable(L, DX_TIMER_MT);
    lua_setmetatable(L, -2);
    t->T = dx_event_thread(L);
    lua_pushvalue(L, 3);
    t->fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self = luaL_ref(L, LUA_REGISTRYINDEX);
    ev_timer_init(&t->w, timer_cb, after, every);
    /* libev counts from the time cached at the start of the loop iteration;
     * a timer made late in a long handler, or before the loop first runs,
     * would fire early. One clock read per timer made is cheap. */
    ev_now_update(ev_default_loop(0));
    ev_timer_start(ev_default_loop(0), &t->w);
    dx_guard_start();
    return 1;
}

/* handle:stop(): the timer runs no more. Stopping twice does nothing. */
static int l_stop(lua_State *L)
{
    dx_ltimer *t = luaL_checkudata(L, 1, DX_TIMER_MT);
    if (t->self != LUA_NOREF || t->fn != LUA_NOREF)
        release(L, t);
    return 0;
}

/* handle:active() -> true while it will run again. */
static int l_active(lua_State *L)
{
    dx_ltimer *t = luaL_checkudata(L, 1, DX_TIMER_MT);
    lua_pushboolean(L, ev_is_active(&t->w));
    return 1;
}

/* Only at lua_close can an active timer be collected (it is rooted). */
static int l_gc(lua_State *L)
{
    dx_ltimer *t = luaL_checkudata(L, 1, DX_TIMER_MT);
    ev_timer_stop(ev_default_loop(0), &t->w);
    return 0;
}

void dx_timer_open_lib(lua_State *L)
{
    static const luaL_Reg methods[] = { { "stop", l_stop }, { "active", l_active }, { NULL, NULL } };
    dx_new_class(L, DX_TIMER_MT, methods, l_gc);
    lua_pushcfunction(L, l_timer);
    lua_setfield(L, -2, "timer");
}
