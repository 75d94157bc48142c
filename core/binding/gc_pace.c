/* The collector's pace in the `duplex` command: a small heap is collected
 * once per 2 MiB allocated on Lua 5.4 (1 MiB on LuaJIT), not each time it
 * doubles.
 *
 * Lua starts a cycle when the heap reaches `pause` % of what the last one
 * left (200 %). A server whose live heap is 300 KiB then runs a whole
 * cycle, marking every module and table it holds, every 300 KiB of
 * messages: a cycle every five 64 KiB echoes, a quarter of the
 * instructions per echo. Here the pause is set after each cycle from the heap at that
 * moment (which Lua's own estimate of the live heap does not exceed), so
 * the next cycle starts by the time the heap has grown DX_GC_HEADROOM_KIB
 * beyond it, at most 1 000 % (Lua 5.4's limit is 1 020 %). From a heap as
 * large as the headroom up that is Lua's own 200 %: the heap never holds
 * more than the headroom of garbage beyond what Lua would let it.
 *
 * LuaJIT's headroom is half Lua 5.4's. LuaJIT interns every string in one
 * table, which grows as garbage strings wait for their cycle and shrinks
 * at its end: the more of them a cycle lets in, the more it rehashes
 * and sweeps. With 2 MiB the 1 KiB echoes gained less (bench/instructions.sh
 * B 3 126 -> 2 686, E 2 830 -> 2 139) than with 1 MiB (2 538-2 547,
 * 1 950-1 953), and the 32 B echo A lost a little either way (951-962 ->
 * 973-988). 512 KiB gained less again (B 2 864, E 2 254).
 *
 * The end of a cycle is seen by a sentinel: an unreachable userdata whose
 * __gc notes that it ran. dx_call sets the pause after its call, out of
 * the collector (Lua 5.4 refuses lua_gc in a finalizer), and makes the
 * next sentinel. By then Lua has set the next cycle's start from the pause
 * before; when the heap grew (a pause set for 300 KiB, up to 10 x, meeting
 * 8 MiB of new tables) that start is pulled down to the new pause's.
 *
 * An app that sets a pause of its own (collectgarbage "setpause" or
 * "incremental") keeps it: the pause found is not the one set last, so it
 * is put back and the pacing ends. So does option gc = "generational"
 * (core.gc_pace(false)): that collector has no use for a pause. */
#include <limits.h>
#include "binding/binding.h"
#include "binding/gc_pace.h"

#if LUA_VERSION_NUM == 501
#define DX_GC_HEADROOM_KIB 1024   /* LuaJIT: see above */
#else
#define DX_GC_HEADROOM_KIB 2048
#endif
#define DX_GC_PAUSE_LUA 200       /* both VMs' default */
#define DX_GC_PAUSE_MAX 1000

int dx_gc_cycle_ended;
static int pace_on;
static int pause_set;             /* the pause set last (a multiple of 4: Lua 5.4 keeps pause / 4) */
static const char sentinel_key;   /* its address keys the sentinel's metatable in the registry */

static int sentinel_gc(lua_State *L)
{
    (void)L;
    dx_gc_cycle_ended = 1;
    return 0;
}

static void new_sentinel(lua_State *L)
{
    dx_newuserdata(L, 1);
    lua_pushlightuserdata(L, (void *)&sentinel_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);                /* unreachable: collected by the next cycle that ends */
}

/* The pause that starts the next cycle at the heap plus the headroom. */
static int pause_for(int kib)
{
    long p = kib > 0 ? 100L * (kib + DX_GC_HEADROOM_KIB) / kib : DX_GC_PAUSE_MAX;
    if (p > DX_GC_PAUSE_MAX)
        p = DX_GC_PAUSE_MAX;
    if (p < DX_GC_PAUSE_LUA)
        p = DX_GC_PAUSE_LUA;
    return (int)(p - p % 4);
}

void dx_gc_pace_start(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&sentinel_key);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_rawset(L, LUA_REGISTRYINDEX);
    pause_set = DX_GC_PAUSE_LUA;
    pace_on = 1;
    dx_gc_pace(L);
}

void dx_gc_pace(lua_State *L)
{
    if (!pace_on) {
        dx_gc_cycle_ended = 0;
        return;
    }
    int kib = lua_gc(L, LUA_GCCOUNT, 0);
    if (kib < 0)                  /* Lua 5.4 within a finalizer (a call made by a __gc): later */
        return;
    dx_gc_cycle_ended = 0;
    int p = pause_for(kib);
    int found = lua_gc(L, LUA_GCSETPAUSE, p);
    if (found != pause_set) {     /* the app's own */
        lua_gc(L, LUA_GCSETPAUSE, found);
        pace_on = 0;
        return;
    }
    /* The cycle now due got its start at the end of the last one, from
     * the pause before: for a heap that grew meanwhile (the pause falls),
     * pull that start down by the difference, so the garbage let in stays
     * within the headroom (lua_gc's "step" with a size moves it down by
     * that many KiB, or starts the cycle if it is passed). LuaJIT's
     * "restart" with -1 sets the start from the heap now and the pause
     * (lj_api.c), which is the headroom beyond it whichever way the heap
     * went; its "step" with a size would run the collector instead. */
#if LUA_VERSION_NUM == 501
    lua_gc(L, LUA_GCRESTART, -1);
#else
    if (p < pause_set) {
        long pull = (long)kib * (pause_set - p) / 100;
        lua_gc(L, LUA_GCSTEP, pull < INT_MAX ? (int)pull : INT_MAX);
    }
#endif
    pause_set = p;
    new_sentinel(L);
}

/* core.gc_pace(false): the pacing ends and the pause is Lua's own again
 * (option gc = "generational", whose collector has no use for a pause). */
int dx_gc_pace_set(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    luaL_argcheck(L, !lua_toboolean(L, 1), 1, "only false: the command starts the pacing");
    if (pace_on)
        lua_gc(L, LUA_GCSETPAUSE, DX_GC_PAUSE_LUA);
    pace_on = 0;
    dx_gc_cycle_ended = 0;
    return 0;
}
