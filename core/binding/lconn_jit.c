/* The handle's __index as a Lua function, on LuaJIT.
 *
 * On LuaJIT a handler runs in the interpreter while its app is guarded
 * (lua/duplex/init.lua), and so does everything it reaches through a C
 * function, the handle's __index among them: every `ws:send` called it
 * to find the method. As a Lua function of this file's chunk it becomes
 * a trace of its own (not the app's, so it stays compiled; it holds no
 * loop, so the guard still reaches the handler at its next instruction):
 * a method is found in the methods table, and only a field (ws.id,
 * ws.data, ...) goes on to the C __index. Measured with
 * bench/instructions.sh, LuaJIT, A: 1 806-1 820 -> 1 756-1 786.
 *
 * Lua 5.4 keeps the C function: a Lua __index costs it more (A: 2 200
 * against 2 080-2 160), and so it would PUC Lua 5.1, which has no JIT.
 *
 * (Tried and not kept: ws:send itself as a Lua function that queues the
 * message through an FFI call, which took A down to 1 580-1 600. With any
 * FFI call made per message, LuaJIT's string table compared each new
 * 1 KiB message of scenario B with half as many strings again of the same
 * length and hash: B went from 6 860 to 8 380 instructions a message,
 * medians of 16 and 17 runs.) */
#include "binding/binding.h"

#if LUA_VERSION_NUM == 501
static const char chunk[] =
    "local methods, mt, field = ...\n"
    "if not rawget(_G, 'jit') then return end\n"
    "mt.__index = function(ws, k)\n"
    "  local m = methods[k]\n"
    "  if m ~= nil then return m end\n"
    "  return field(ws, k)\n"
    "end\n";

void dx_conn_open_jit(lua_State *L)
{
    int top = lua_gettop(L);
    if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=duplex.connection") != 0) {
        lua_settop(L, top);                    /* out of memory: the C __index stays */
        return;
    }
    lua_pushvalue(L, top);                     /* methods */
    lua_pushvalue(L, top - 1);                 /* mt */
    lua_getfield(L, top - 1, "__index");       /* the C __index: the fields */
    lua_pcall(L, 3, 0, 0);                     /* an error (memory) leaves the C __index */
    lua_settop(L, top);
}
#endif
