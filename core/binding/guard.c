/* The guard against handlers that never return (handler_timeout).
 *
 * The loop cannot time a handler itself: while Lua runs, it is blocked.
 * So the cost is split in two:
 *
 * - steady state (every event): dx_call notes that a section started and
 *   ended (guard.h: a few stores, no system call, no hook);
 * - a watchdog thread, one per process, wakes every limit/8 (5 to 125 ms),
 *   reads the sequence number and, when the same section has run for its
 *   limit, sends DX_GUARD_SIGNAL to the loop's thread. The signal handler
 *   sets a count hook on the section's thread (lua_sethook is meant to be
 *   called from a signal handler: lua.c and luajit.c do so for SIGINT).
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
 * (hooks are off while they run). For those the watchdog's last resort:
 * a section still running ten times its limit after it started is logged
 * and the process exits with status 70, so that a supervisor restarts it
 * rather than it hanging for good. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "binding/binding.h"

/* A real-time signal nothing else in the process uses. */
#define DX_GUARD_SIGNAL (SIGRTMIN + 4)
/* The last resort: exit when a section runs this many times its limit. */
#define DX_GUARD_LAST_RESORT 10
#define DX_GUARD_EXIT 70

dx_guard_state dx_guard = { .default_ms = 1000 };

static unsigned target;           /* the seq the watchdog asks to stop (__atomic) */
static pid_t started_in;          /* the process the watchdog runs in, 0 before */
static pthread_t loop_thread;     /* the thread it signals */
static unsigned long timeouts;    /* sections stopped */
static int report_taken;          /* the hook has taken the stop's traceback */
static lua_Hook saved_hook;       /* an app's own hook, given back by disarm */
static int saved_mask, saved_count;
static const char report_key = 0; /* its address: registry key of the traceback */

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

static void on_signal(int sig)
{
    (void)sig;
    int saved_errno = errno;
    unsigned seq = dx_guard.seq;
    lua_State *L = dx_guard.running;
    if ((seq & 1) && seq == __atomic_load_n(&target, __ATOMIC_ACQUIRE) && L && !dx_guard.fired) {
        saved_hook = lua_gethook(L);
        saved_mask = lua_gethookmask(L);
        saved_count = lua_gethookcount(L);
        dx_guard.fired = 1;
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    }
    errno = saved_errno;
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
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *watchdog(void *arg)
{
    (void)arg;
    unsigned last = 0;        /* the section seen at the last look */
    double since = 0;         /* when it was first seen */
    int asked = 0;            /* the loop's thread was asked to stop it */
    for (;;) {
        unsigned seq = __atomic_load_n(&dx_guard.seq, __ATOMIC_ACQUIRE);
        unsigned ms = __atomic_load_n(&dx_guard.limit_ms, __ATOMIC_RELAXED);
        unsigned period = ms / 8 < 5 ? 5 : ms / 8 > 125 ? 125 : ms / 8;
        if (!(seq & 1) || ms == 0 || seq != last) {
            last = seq;
            since = now();
            asked = 0;
        } else {
            double ran = (now() - since) * 1000;
            if (!asked && ran >= ms) {
                __atomic_store_n(&target, seq, __ATOMIC_RELEASE);
                asked = pthread_kill(loop_thread, DX_GUARD_SIGNAL) == 0;
            } else if (asked && ran >= (double)ms * DX_GUARD_LAST_RESORT) {
                char msg[512];
                const char *what = __atomic_load_n(&dx_guard.what, __ATOMIC_RELAXED);
                int n = snprintf(msg, sizeof msg,
                                 "duplex: a %s handler ran past handler_timeout (%g s) and could not be "
                                 "stopped (a loop compiled by LuaJIT, a coroutine that never yields on "
                                 "Lua 5.4, or a C function that does not return); it has run %g s: "
                                 "exiting with status %d\n",
                                 what ? what : "", ms / 1000.0, ran / 1000, DX_GUARD_EXIT);
                if (n > 0 && write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
                    n = 0;
                _exit(DX_GUARD_EXIT);
            }
        }
        struct timespec ts = { 0, (long)period * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

void dx_guard_start(void)
{
    pid_t pid = getpid();
    if (started_in == pid)
        return;
    started_in = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;        /* the C the handler interrupts goes on as before */
    sigemptyset(&sa.sa_mask);
    sigaction(DX_GUARD_SIGNAL, &sa, NULL);
    loop_thread = pthread_self();
    /* The watchdog takes no signal: SIGTERM, SIGHUP and the rest go to the
     * loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    int e = pthread_create(&t, &attr, watchdog, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        fprintf(stderr, "duplex: cannot start the handler_timeout watchdog (%s): handlers are not guarded\n",
                strerror(e));
        fflush(stderr);
    }
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

void dx_guard_open_lib(lua_State *L)
{
    lua_pushcfunction(L, l_guarded);
    lua_setfield(L, -2, "guarded");
}
