/* The collector's pace in the `duplex` command (gc_pace.c): after each
 * cycle the pause is set so the next one starts once the heap has grown
 * 2 MiB (LuaJIT: 1 MiB), or at Lua's 200 % when that is more. */
#ifndef DX_GC_PACE_H
#define DX_GC_PACE_H

#include "binding/compat.h"

/* Set by the sentinel's finalizer when a cycle has ended. */
extern int dx_gc_cycle_ended;

/* Starts pacing L's collector (the command does, before the app loads;
 * a module in another program leaves the host's collector alone). */
void dx_gc_pace_start(lua_State *L);

/* Sets the pause from the heap now and makes the next sentinel; ends the
 * pacing if the app set a pause of its own. Out of the collector only. */
void dx_gc_pace(lua_State *L);

/* core.gc_pace(false): ends the pacing, Lua's own pause again. */
int dx_gc_pace_set(lua_State *L);

/* After each call into Lua: cheap unless a cycle has ended. */
static inline void dx_gc_pace_after_call(lua_State *L)
{
    if (dx_gc_cycle_ended)
        dx_gc_pace(L);
}

#endif
