/* The `duplex` command: a Lua VM with the core linked in, which hands its
 * arguments to lua/duplex/cli.lua. Being a C program (rather than a script
 * run by some `lua` on PATH) it picks its VM at build time, needs nothing
 * else installed, and runs whole under the sanitizers in `make test-asan`. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "binding/compat.h"

int luaopen_duplex_core(lua_State *L);

#ifndef DX_LUA_DIR
#define DX_LUA_DIR "/usr/local/share/lua/5.4"
#endif

/* Where the Lua half lives: beside a build tree (build/<vm>/duplex finds
 * lua/ two levels up), else where `make install` put it. */
static void set_lua_path(lua_State *L)
{
    char exe[PATH_MAX], dir[PATH_MAX + 32];
    const char *root = DX_LUA_DIR;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(dir, sizeof dir, "%s/../../lua/duplex/cli.lua", exe);
            if (access(dir, R_OK) == 0) {
                snprintf(dir, sizeof dir, "%s/../../lua", exe);
                root = dir;
            }
        }
    }
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", root, root);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_duplex_core);
    lua_setfield(L, -2, "duplex.core");
    lua_pop(L, 2);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(non-string error)", 1);
    return 1;
}

/* require("duplex.cli").main(args) -> exit status */
static int run(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "duplex.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_setglobal(L, "arg");
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);      /* a vanished peer is an error return, never a kill */
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fputs("duplex: cannot create a Lua state (out of memory)\n", stderr);
        return 1;
    }
    luaL_openlibs(L);
    set_lua_path(L);
    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, run);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = 1;
    if (lua_pcall(L, 2, 1, 1) != 0)
        fprintf(stderr, "duplex: internal error: %s\n", lua_tostring(L, -1));
    else
        status = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_close(L);
    return status;
}
