/* A read's messages handed to a route's handler from a Lua loop that
 * LuaJIT compiles (LuaJIT with its FFI; see binding.h, dx_batch_ffi).
 *
 * lserver.c's run_batch enters Lua once per message from C: lua_call,
 * the pushes, and the exit of the handler's trace back to C each time
 * (about 270 instructions of a 32 B echo's 1 200 on LuaJIT). Here the
 * loop is Lua: `while true do if take(out) == 0 then break end
 * handler(ws, ffi.string(...), out.binary ~= 0) end`, one trace with a
 * compiled handler inlined. take is an FFI call of this file's take():
 * it admits the next message (dx_conn_take_message_quiet), gives it the
 * whole handler_timeout (dx_guard_restart) and fills out. The first error
 * ends the batch through the one protected call around it, as in
 * run_batch.
 *
 * The take is inside the loop, after its LOOP instruction: in `while
 * take(out) ~= 0 do` the condition comes before it, so each batch's
 * first take ran in the interpreter, an FFI call the slow way (about 900
 * instructions a batch, 50 a message of A's 16). The way out is a break,
 * not a return: LuaJIT makes no root trace of an iteration that leaves
 * the loop by a jump (lj_record.c, LJ_TRERR_LLEAVE), so the trace is of
 * one that calls the handler, and a handler it may not compile still
 * gets the loop blacklisted. (With a return, a route whose handler loops
 * kept a compiled loop: spec/batch_loop_spec.lua's third test fails.)
 *
 * A handler LuaJIT may not compile (its app is guarded and it loops,
 * duplex.jit_guard, or it calls such a function for every message)
 * makes LuaJIT give up the loop's trace, blacklist it, and run the FFI
 * call in its interpreter: three times run_batch's cost (A 1 600 -> 4 600
 * instructions). So each route has its own loop (a prototype of its
 * own, blacklisted on its own), and after DX_BATCH_TRIAL batches, and
 * every DX_BATCH_RECHECK after, the loop's LOOP instruction is read
 * back: unless LuaJIT patched it into a JLOOP (a trace runs it), the
 * route goes back to run_batch for good. */
#include <stdint.h>
#include "binding/binding.h"

#if LUA_VERSION_NUM == 501

#define DX_BATCH_TRIAL 256
#define DX_BATCH_RECHECK 8192

typedef struct dx_batch_out {
    const char *data;
    size_t len;
    int binary;
} dx_batch_out;

/* The batch being handed over (saved and restored around a nested one). */
typedef struct dx_batch_now {
    dx_conn *c;
    const dx_message_ref *m;
    size_t n, next;
    int any;                    /* a message was admitted already */
} dx_batch_now;

static dx_batch_now now;

/* The FFI's take: 1 and the next admitted message in out, or 0 at the
 * end. It never calls into Lua: a C function that a compiled trace
 * calls through the FFI must not (LuaJIT's state is the trace's then;
 * the process crashed). So it stops before a message whose admission
 * would close the connection (max_message_rate's policy close runs the
 * close event), and dx_batch_ffi's caller takes that one from C. */
static int take(dx_batch_out *out)
{
    while (now.next < now.n) {
        int taken = dx_conn_take_message_quiet(now.c);
        if (taken < 0)
            return 0;
        const dx_message_ref *m = &now.m[now.next++];
        if (!taken)                            /* closed by a handler before: counted, not handed */
            continue;
        if (now.any)
            dx_guard_restart();
        now.any = 1;
        out->data = m->len ? (const char *)m->data : "";
        out->len = m->len;
        out->binary = m->binary;
        return 1;
    }
    return 0;
}

/* Returns new() -> a route's loop, and compiled(loop) -> whether a trace
 * runs it; nothing without the FFI or jit.util. */
static const char chunk[] =
    "local take = ...\n"
    "local ok, ffi = pcall(require, 'ffi')\n"
    "local ok2, util = pcall(require, 'jit.util')\n"
    "if not (ok and ok2) then return end\n"
    "local band = require('bit').band\n"
    "ffi.cdef 'typedef struct { const char *data; size_t len; int binary; } duplex_batch_out;'\n"
    "take = ffi.cast('int (*)(duplex_batch_out *)', take)\n"
    "local out, str = ffi.new('duplex_batch_out'), ffi.string\n"
    "local LOOP = band(util.funcbc(loadstring('repeat until g'), 1), 0xff)\n"
    "local source = 'local take, out, str = ...\\n'\n"
    "  .. 'return function(handler, ws)\\n'\n"
    "  .. '  while true do\\n'\n"
    "  .. '    if take(out) == 0 then break end\\n'\n"
    "  .. '    handler(ws, str(out.data, out.len), out.binary ~= 0)\\n'\n"
    "  .. '  end\\n'\n"
    "  .. 'end\\n'\n"
    "local function new()\n"
    "  return loadstring(source, '=duplex.batch')(take, out, str)\n"
    "end\n"
    "local function compiled(loop)\n"
    "  for pc = 1, 64 do\n"
    "    local ins = util.funcbc(loop, pc)\n"
    "    if not ins then return false end\n"
    "    if band(ins, 0xff) == LOOP + 2 then return true end\n"   /* JLOOP: lj_bc.h's LOOP + 2 */
    "  end\n"
    "  return false\n"
    "end\n"
    "return new, compiled\n";

static const char key = 0;      /* its address keys { new, compiled } in the registry */

/* Pushes new (which 1) or compiled (2); 0 without them. */
static int push_helper(lua_State *L, int which)
{
    lua_pushlightuserdata(L, (void *)&key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 2, 0);
        int t = lua_gettop(L);
        if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=duplex.batch") == 0) {
            lua_pushlightuserdata(L, (void *)(uintptr_t)take);
            if (lua_pcall(L, 1, 2, 0) == 0) {
                lua_rawseti(L, t, 2);
                lua_rawseti(L, t, 1);
            }
        }
        lua_settop(L, t);                      /* an error's message: gone (the pair stays empty) */
        lua_pushlightuserdata(L, (void *)&key);
        lua_pushvalue(L, t);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, -1, which);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return 1;
    lua_pop(L, 1);
    return 0;
}

/* Whether a trace runs route r's loop. */
static int loop_compiled(lua_State *T, const dx_route *r)
{
    if (!push_helper(T, 2))
        return 0;
    lua_rawgeti(T, LUA_REGISTRYINDEX, r->batch_loop);
    int yes = lua_pcall(T, 1, 1, 0) == 0 && lua_toboolean(T, -1);
    lua_pop(T, 1);
    return yes;
}

static void give_up(lua_State *T, dx_route *r)
{
    luaL_unref(T, LUA_REGISTRYINDEX, r->batch_loop);
    r->batch_loop = LUA_NOREF;
    r->batch_state = -1;
}

int dx_batch_ffi(dx_lserver *ls, dx_lconn *w, dx_conn *c, const dx_message_ref *m, size_t n,
                 int *ok, size_t *done)
{
    lua_State *T = ls->T;
    int route = w->route;
    dx_route *r = &ls->routes[route];
    if (r->batch_state < 0 || r->fn[DX_H_MESSAGE] == LUA_NOREF)
        return 0;
    if (r->batch_loop == LUA_NOREF) {
        if (!push_helper(T, 1)) {
            r->batch_state = -1;
            return 0;
        }
        if (lua_pcall(T, 0, 1, 0) != 0 || !lua_isfunction(T, -1)) {
            lua_pop(T, 1);
            r->batch_state = -1;
            return 0;
        }
        r->batch_loop = luaL_ref(T, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(T, LUA_REGISTRYINDEX, r->batch_loop);
    lua_rawgeti(T, LUA_REGISTRYINDEX, r->fn[DX_H_MESSAGE]);
    dx_conn_push(T, w);
    dx_batch_now outer = now;
    now = (dx_batch_now){ c, m, n, 0, 0 };
    *ok = dx_call(T, 2, 0, "message", w, ls->guard_ms);
    *done = now.next;
    now = outer;
    if (route >= ls->nroutes)                  /* the server was closed by the handler */
        return 1;
    r = &ls->routes[route];                    /* a handler may have added routes (realloc) */
    r->batch_calls++;
    if ((r->batch_state == 0 && r->batch_calls == DX_BATCH_TRIAL) ||
        (r->batch_state == 1 && r->batch_calls % DX_BATCH_RECHECK == 0)) {
        if (loop_compiled(T, r))
            r->batch_state = 1;
        else
            give_up(T, r);
    }
    return 1;
}

#endif
