/* ws:send along a path LuaJIT's compiler follows (LuaJIT with its FFI).
 *
 * On LuaJIT a handler runs in the interpreter while its app is guarded
 * (lua/duplex/init.lua), and so does everything it reaches through a C
 * function: `ws:send` was two of them, the handle's `__index` and
 * `send`. Here both become Lua functions of this file's chunk, which
 * the JIT compiles into traces of their own (they are not the app's, so
 * they stay compiled; they hold no loop, so the guard still reaches the
 * handler at its next instruction): the method is found in the methods
 * table, and the message goes to the connection's queue through an FFI
 * call of lconn.c's fast_send with the handle's payload. What that call
 * does not do (a closed handle, a payload to hold, a tagged duplex.1
 * message, an argument of another type) goes to the C send, which
 * raises or answers as before; a refused send gets its usual
 * nil, message, name from the C failed. dx_conn_send never calls back
 * into Lua, which an FFI call must not.
 *
 * bench/instructions.sh, LuaJIT: A 1 838-1 851 -> 1 592-1 610, B 3 829-
 * 3 844 -> 3 596-3 611, E 3 864-3 912 -> 3 659-3 691 instructions a
 * message; the __index alone took A to 1 756-1 786.
 *
 * Lua 5.4 keeps the C functions: a Lua __index costs it more than the C
 * one (A: 2 200 against 2 080-2 160). */
#include "binding/binding.h"

#if LUA_VERSION_NUM == 501
static const char chunk[] =
    "local methods, mt, field, send_c, failed, fast = ...\n"
    "local ok, ffi = pcall(require, 'ffi')\n"
    "if not ok then return end\n"
    "local getmetatable, type = getmetatable, type\n"
    "fast = ffi.cast('int (*)(void *, const char *, size_t, int)', fast)\n"
    "local function send(ws, data, binary)\n"
    "  if getmetatable(ws) == mt and type(data) == 'string' then\n"
    "    local b = 0\n"
    "    if binary == true then b = 1 elseif binary ~= nil and binary ~= false then\n"
    "      return send_c(ws, data, binary)\n"
    "    end\n"
    "    local r = fast(ws, data, #data, b)\n"
    "    if r == 0 then return true end\n"
    "    if r < 0 then return failed(ws, r) end\n"
    "  end\n"
    "  return send_c(ws, data, binary)\n"
    "end\n"
    "local function index(ws, k)\n"
    "  local m = methods[k]\n"
    "  if m ~= nil then return m end\n"
    "  return field(ws, k)\n"
    "end\n"
    "methods.send = send\n"
    "mt.__index = index\n";

void dx_conn_open_ffi(lua_State *L, lua_CFunction send, lua_CFunction failed,
                      int (*fast)(void *, const char *, size_t, int))
{
    int top = lua_gettop(L);
    if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=duplex.connection") != 0) {
        lua_settop(L, top);                    /* out of memory: the C path stays */
        return;
    }
    lua_pushvalue(L, top);                     /* methods */
    lua_pushvalue(L, top - 1);                 /* mt */
    lua_getfield(L, top - 1, "__index");       /* the C __index: the fields */
    lua_pushcfunction(L, send);
    lua_pushcfunction(L, failed);
    lua_pushlightuserdata(L, (void *)(uintptr_t)fast);
    lua_pcall(L, 6, 0, 0);                     /* an error (memory) leaves the C path */
    lua_settop(L, top);
}
#endif
