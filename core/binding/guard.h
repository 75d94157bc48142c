/* The guard against handlers that never return (the handler_timeout
 * option): see guard.c for how it works and what it can stop.
 *
 * A "section" is a stretch of Lua the loop runs and the guard times: the
 * outermost dx_call (one nested in a section is part of it), or a
 * core.guarded call (hooks and scripts that duplex's own Lua runs inside
 * an event: stopping one of them does not stop the event around it, and
 * the event's clock starts again when it returns). dx_call enters and leaves
 * sections through the inline functions below, so that the steady-state
 * cost is a few stores (no system call, no hook). */
#ifndef DX_GUARD_H
#define DX_GUARD_H

#include <signal.h>
#include "binding/compat.h"

/* A section's limit: "the process default" (the handler_timeout of the
 * server made or configured last; 1 s before any). */
#define DX_GUARD_DEFAULT (-1)

typedef struct dx_guard_state {
    unsigned seq;                   /* odd while a section runs; changes at every entry and
                                     * exit (read by the tick's signal handler) */
    unsigned limit_ms;              /* the running section's limit, 0: unguarded */
    const char *what;               /* the running section's name */
    lua_State *running;             /* the running section's thread, NULL between sections */
    volatile sig_atomic_t fired;    /* the hook is set: the running section is being stopped */
    unsigned default_ms;            /* DX_GUARD_DEFAULT's value */
} dx_guard_state;

/* The one per process: a signal handler needs it (the loop it watches,
 * ev_default_loop, is one per process too). */
extern dx_guard_state dx_guard;

/* What a section being left saves of the one it interrupts. */
typedef struct dx_guard_saved {
    lua_State *running;
    unsigned limit_ms;
    const char *what;
    int fired;
} dx_guard_saved;

/* Enters a section of thread L with limit ms (DX_GUARD_DEFAULT: the
 * process default) named what (a string that outlives it), saving what
 * it interrupts into s. */
static inline void dx_guard_enter(dx_guard_saved *s, lua_State *L, int ms, const char *what)
{
    s->running = dx_guard.running;
    s->limit_ms = dx_guard.limit_ms;
    s->what = dx_guard.what;
    s->fired = dx_guard.fired;
    dx_guard.running = L;
    __atomic_store_n(&dx_guard.what, what, __ATOMIC_RELAXED);
    __atomic_store_n(&dx_guard.limit_ms, ms < 0 ? dx_guard.default_ms : (unsigned)ms, __ATOMIC_RELAXED);
    /* odd from here; a nested section restarts the clock (+2) */
    __atomic_store_n(&dx_guard.seq, (dx_guard.seq | 1) + 2, __ATOMIC_RELEASE);
}

/* Lets go of the hook that stopped the running section (guard.c). */
void dx_guard_disarm(void);

/* Leaves the section entered with s; returns 1 when the guard stopped it
 * (then its Lua call failed with the guard's error, which was counted),
 * else 0. */
static inline int dx_guard_leave(const dx_guard_saved *s)
{
    unsigned seq = s->running ? dx_guard.seq + 2 : dx_guard.seq + 1;   /* even when outermost */
    __atomic_store_n(&dx_guard.seq, seq, __ATOMIC_RELEASE);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);     /* the signal handler sees seq first */
    int stopped = dx_guard.fired && !s->fired;
    if (stopped)
        dx_guard_disarm();
    dx_guard.running = s->running;
    __atomic_store_n(&dx_guard.what, s->what, __ATOMIC_RELAXED);
    __atomic_store_n(&dx_guard.limit_ms, s->limit_ms, __ATOMIC_RELAXED);
    return stopped;
}

/* The running section starts its clock again: it goes on as the next
 * of several handlers that one call runs in turn (a batch of messages),
 * each with its own limit. */
static inline void dx_guard_restart(void)
{
    __atomic_store_n(&dx_guard.seq, dx_guard.seq + 2, __ATOMIC_RELEASE);   /* odd still */
}

/* Starts the guard's tick in this process, once (again in a child after
 * fork): a POSIX timer signalling the calling thread, which must be the
 * loop's. Called by everything that makes the loop call Lua (servers,
 * timers, signals, clients); a failure is logged once and leaves the
 * guard off. */
void dx_guard_start(void);

/* Sets the process default limit (DX_GUARD_DEFAULT) from seconds. */
void dx_guard_set_default(double seconds);

/* Seconds to the milliseconds a section takes (0: off; at least 1 ms when
 * positive). */
unsigned dx_guard_ms(double seconds);

/* Handlers the guard stopped in this process. */
unsigned long dx_guard_timeouts(void);

/* Pushes the traceback taken where the guard stopped the last section
 * (a string), and forgets it; counts the stop. [-0, +1, m] */
void dx_guard_push_report(lua_State *L);

/* Registers core.guarded into the module table on top of the stack.
 * [-0, +0, e] */
void dx_guard_open_lib(lua_State *L);

#endif
