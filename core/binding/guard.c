/* The guard against handlers that never return (handler_timeout).
 *
 * The loop cannot time a handler itself: while Lua runs, it is blocked.
 * So the cost is split in two:
 *
 * - steady state (every event): dx_call notes that a section started and
 *   ended (guard.h: a few stores, no system call, no hook);
 * - a POSIX timer of the process ticks every limit/8 (5 to 125 ms) with
 *   DX_GUARD_SIGNAL, sent to the loop's thread. Its handler reads the
 *   sequence number and, when the same section has run for its limit,
 *   sets a count hook on the section's thread (lua_sethook is meant to be
 *   called from a signal handler: lua.c and luajit.c do so for SIGINT).
 *   No thread: a second thread would switch glibc's malloc and stdio to
 *   their locking paths for every allocation of every message (measured:
 *   20 to 470 instructions a message more, bench/instructions.sh).
 *
 * The hook raises "handler ran past handler_timeout" at every VM
 * instruction until the section returns: an app's pcall catches the error
 * only for the next instruction after it to raise again, so the error
 * reaches the section's own pcall. The first raise takes the traceback
 * that is logged (where the handler was when it was stopped).
 *
 * What a hook cannot reach (see README.md, "Handlers that never return"):
 * code compiled by LuaJIT (traces do not check hooks unless LuaJIT was
 * built with LUAJIT_ENABLE_CHECKHOOK, which Debian's is not), on Lua 5.4 a
 * coroutine that never yields (hooks are per thread there), a C function
 * that does not return, and __gc metamethods and xpcall message handlers
 * (hooks are off while they run). For those the last resort: a section
 * still running ten times its limit after it started is logged and the
 * process exits with status 70, so that a supervisor restarts it rather
 * than it hanging for good. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "binding/binding.h"
#include "transport/log.h"

/* A real-time signal nothing else in the process uses. */
#define DX_GUARD_SIGNAL (SIGRTMIN + 4)
/* The last resort: exit when a section runs this many times its limit. */
#define DX_GUARD_LAST_RESORT 10
#define DX_GUARD_EXIT 70

dx_guard_state dx_guard = { .default_ms = 1000 };

static pid_t started_in;          /* the process the timer ticks in, 0 before */
static timer_t tick;              /* that timer, */
static int ticking;               /* when it could be made */
static unsigned tick_ms;          /* its period */
static unsigned shortest_ms;      /* the shortest limit set, 0 before any */
static unsigned last;             /* the tick handler's: the section seen at the last tick, */
static double since;              /* when it was first seen, */
static int asked;                 /* and whether the hook was set for it */
static unsigned long timeouts;    /* sections stopped */
static int report_taken;          /* the hook has taken the stop's traceback */
static lua_Hook saved_hook;       /* an app's own hook, given back by disarm */
static int saved_mask, saved_count;
static const char report_key = 0; /* its address: registry key of the traceback */

static void note_limit(unsigned ms);

unsigned dx_guard_ms(double seconds)
{
    if (!(seconds > 0))
        return 0;
    double ms = seconds * 1000;
    return ms < 1 ? 1 : ms > 4e9 ? 4000000000u : (unsigned)ms;
}

void dx_guard_set_default(double seconds)
{
    dx_guard.default_ms = dx_guard_ms(seconds);
    note_limit(dx_guard.default_ms);
}

unsigned long dx_guard_timeouts(void)
{
    return timeouts;
}

/* The count hook: raises until the section returns. */
static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (!dx_guard.fired)
        return;
    char msg[64];
    snprintf(msg, sizeof msg, "handler ran past handler_timeout (%g s)", dx_guard.limit_ms / 1000.0);
    lua_pushstring(L, msg);
    if (!report_taken) {
        report_taken = 1;
        lua_pushlightuserdata(L, (void *)&report_key);
        dx_traceback(L, L, lua_tostring(L, -2), 0);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_error(L);
}

void dx_guard_disarm(void)
{
    lua_sethook(dx_guard.running, saved_hook, saved_mask, saved_count);
    saved_hook = NULL;
    saved_mask = saved_count = 0;
    report_taken = 0;
    dx_guard.fired = 0;
}

void dx_guard_push_report(lua_State *L)
{
    timeouts++;
    lua_pushlightuserdata(L, (void *)&report_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "handler ran past handler_timeout");
    }
    lua_pushlightuserdata(L, (void *)&report_key);
    lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);            /* async-signal-safe */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The last resort: logs and exits (async-signal-safe calls only). */
static void give_up(unsigned ms, double ran_ms)
{
    char msg[512];
    const char *what = dx_guard.what;
    int n = snprintf(msg, sizeof msg,
                     "duplex: a %s handler ran past handler_timeout (%g s) and could not be "
                     "stopped (a loop compiled by LuaJIT, a coroutine that never yields on "
                     "Lua 5.4, or a C function that does not return); it has run %.1f s: "
                     "exiting with status %d\n",
                     what ? what : "", ms / 1000.0, ran_ms / 1000, DX_GUARD_EXIT);
    if (n > 0 && write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
        n = 0;
    _exit(DX_GUARD_EXIT);
}

/* A tick, on the loop's thread, between any two of its instructions. */
static void on_tick(int sig)
{
    (void)sig;
    int saved_errno = errno;
    unsigned seq = dx_guard.seq, ms = dx_guard.limit_ms;
    lua_State *L = dx_guard.running;
    if (!(seq & 1) || ms == 0 || L == NULL || seq != last) {
        last = seq;
        since = now();
        asked = 0;
    } else {
        double ran = (now() - since) * 1000;
        if (!asked && ran >= ms) {
            asked = 1;
            if (!dx_guard.fired) {
                saved_hook = lua_gethook(L);
                saved_mask = lua_gethookmask(L);
                saved_count = lua_gethookcount(L);
                dx_guard.fired = 1;
                lua_sethook(L, hook, LUA_MASKCOUNT, 1);
            }
        } else if (asked && ran >= (double)ms * DX_GUARD_LAST_RESORT) {
            give_up(ms, ran);
        }
    }
    errno = saved_errno;
}

/* (Re)arms the tick for the shortest limit set: an eighth of it, 5 to
 * 125 ms, so that a stop comes at most about that long after the limit. */
static void arm(void)
{
    if (!ticking || started_in != getpid())
        return;
    unsigned ms = shortest_ms == 0 || shortest_ms / 8 > 125 ? 125 : shortest_ms / 8 < 5 ? 5 : shortest_ms / 8;
    if (ms == tick_ms)
        return;
    tick_ms = ms;
    struct itimerspec it = { { ms / 1000, (long)(ms % 1000) * 1000000L }, { ms / 1000, (long)(ms % 1000) * 1000000L } };
    timer_settime(tick, 0, &it, NULL);
}

static void note_limit(unsigned ms)
{
    if (ms > 0 && (shortest_ms == 0 || ms < shortest_ms)) {
        shortest_ms = ms;
        arm();
    }
}

void dx_guard_start(void)
{
    pid_t pid = getpid();
    if (started_in == pid)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;        /* the C it interrupts goes on as before */
    sigemptyset(&sa.sa_mask);
    sigaction(DX_GUARD_SIGNAL, &sa, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_signo = DX_GUARD_SIGNAL;
#if defined(SIGEV_THREAD_ID) && defined(__GLIBC__)
    sev.sigev_notify = SIGEV_THREAD_ID;           /* the loop's thread, whatever others the host has */
#ifdef sigev_notify_thread_id
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
#else
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);   /* glibc before 2.41 names it so */
#endif
#else
    sev.sigev_notify = SIGEV_SIGNAL;
#endif
    if (timer_create(CLOCK_MONOTONIC, &sev, &tick) != 0) {
        dx_log(DX_LOG_ERROR, "guard_unavailable", 0, NULL,
               "cannot start the handler_timeout timer (%s): handlers are not guarded", strerror(errno));
        started_in = pid;            /* said once */
        ticking = 0;
        return;
    }
    started_in = pid;
    ticking = 1;
    tick_ms = 0;
    arm();
}

/* core.guarded(fn, ...) -> true, results... | false, message with its
 * traceback: fn(...) as a section of its own, under the process default
 * limit (DX_GUARD_DEFAULT). Unlike pcall, a guard's stop of fn ends at
 * this call, so the code around it (duplex's own: shutdown and reload
 * hooks, a script loaded again) goes on; the stop is counted. [-0, +?, -] */
static int l_guarded(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    lua_pushcfunction(L, dx_traceback_handler);
    lua_insert(L, 1);
    dx_guard_saved s;
    dx_guard_enter(&s, L, DX_GUARD_DEFAULT, "hook");
    int rc = lua_pcall(L, n - 1, LUA_MULTRET, 1);
    int stopped = dx_guard_leave(&s);
    if (rc != 0) {
        if (stopped) {
            lua_pop(L, 1);
            dx_guard_push_report(L);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_replace(L, 1);
    return lua_gettop(L);
}

static int users;                 /* Lua states that loaded the module and are not closed */

/* The last Lua state using the module is closing, and the module may be
 * unloaded next (dlclose): the tick stops and its signal is ignored, so
 * that no signal comes to a handler that is gone. */
static int l_unload(lua_State *L)
{
    (void)L;
    if (--users > 0)
        return 0;
    if (ticking && started_in == getpid())
        timer_delete(tick);
    ticking = 0;
    started_in = 0;
    tick_ms = 0;
    signal(DX_GUARD_SIGNAL, SIG_IGN);
    return 0;
}

void dx_guard_open_lib(lua_State *L)
{
    lua_pushcfunction(L, l_guarded);
    lua_setfield(L, -2, "guarded");
    /* A userdata in the registry whose __gc is l_unload: finalized at
     * lua_close, before the loaded C libraries (made before it). */
    static const char key = 0;
    lua_pushlightuserdata(L, (void *)&key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int had = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (had)
        return;
    lua_pushlightuserdata(L, (void *)&key);
    dx_newuserdata(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_unload);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    users++;
}
