/* The few differences between Lua 5.4 and the 5.1 API of LuaJIT that the
 * binding needs, in one place. */
#ifndef DX_COMPAT_H
#define DX_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM >= 502
#define dx_rawlen lua_rawlen
#define dx_newuserdata(L, size) lua_newuserdatauv((L), (size), 0)
#define dx_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define dx_isinteger(L, i) lua_isinteger((L), (i))
#else
#define dx_rawlen lua_objlen
#define dx_newuserdata(L, size) lua_newuserdata((L), (size))
#define dx_setfuncs(L, l) luaL_register((L), NULL, (l))
#define dx_isinteger(L, i) (lua_type((L), (i)) == LUA_TNUMBER && \
    lua_tonumber((L), (i)) == (lua_Number)(lua_Integer)lua_tonumber((L), (i)))
#endif

/* Pushes the single Lua value attached to the userdata at idx (nil when
 * none was attached). [-0, +1, -] */
void dx_getuv(lua_State *L, int idx);

/* Attaches the table on top of the stack to the userdata at idx and pops
 * it. [-1, +0, -] */
void dx_setuv(lua_State *L, int idx);

/* Gives a new userdata at idx "no attached value" (on 5.1, where a
 * userdata's environment is always a table, a shared empty marker table
 * stands for none). [-0, +0, -] */
void dx_inituv(lua_State *L, int idx);

/* luaL_traceback as in 5.4 and LuaJIT 2.1; PUC Lua 5.1 (Debian's
 * `luarocks` builds the rock for it by default) has only debug.traceback,
 * which compat.c calls. Pushes msg and the traceback of L1 from level on
 * (level 0: the running function). [-0, +1, m]
 * (LuaJIT's lua.h says "5.1" too; its LUA_OK, which PUC 5.1 lacks, tells
 * them apart without luajit.h.) */
#if LUA_VERSION_NUM >= 502 || defined(LUA_OK)
#define DX_LUAL_TRACEBACK 1
#define dx_traceback luaL_traceback
#else
void dx_traceback(lua_State *L, lua_State *L1, const char *msg, int level);
#endif

#endif
