/* The `duplex` command: a Lua VM with the core linked in, which hands its
 * arguments to lua/duplex/cli.lua. Being a C program (rather than a script
 * run by some `lua` on PATH) it picks its VM at build time, needs nothing
 * else installed, and runs whole under the sanitizers in `make test-asan`. */
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "binding/compat.h"
#include "binding/gc_pace.h"
#include "cli/alloc.h"

int luaopen_duplex_core(lua_State *L);

/* The VM takes our allocator (cli/alloc.c), Lua 5.4 always, LuaJIT when
 * it can; not under AddressSanitizer, which must see every Lua block
 * freed. */
#if !defined(__SANITIZE_ADDRESS__)
#define DX_OWN_ALLOC 1

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg ? msg : "?");
    return 0;                      /* abort() follows */
}

#if LUA_VERSION_NUM >= 504
/* Warnings as luaL_newstate sets them up: off until "@on". */
static void warn_off(void *ud, const char *msg, int tocont);
static void warn_cont(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont)
{
    if (tocont || *msg++ != '@')
        return 0;
    if (strcmp(msg, "off") == 0)
        lua_setwarnf(L, warn_off, L);
    else if (strcmp(msg, "on") == 0)
        lua_setwarnf(L, warn_cont, L);
    return 1;
}

static void warn_off(void *ud, const char *msg, int tocont)
{
    warn_control((lua_State *)ud, msg, tocont);
}

static void warn_on_cont(void *ud, const char *msg, int tocont);

static void warn_cont(void *ud, const char *msg, int tocont)
{
    if (warn_control((lua_State *)ud, msg, tocont))
        return;
    fputs("Lua warning: ", stderr);
    warn_on_cont(ud, msg, tocont);
}

static void warn_on_cont(void *ud, const char *msg, int tocont)
{
    lua_State *L = ud;
    fputs(msg, stderr);
    fflush(stderr);
    if (tocont) {
        lua_setwarnf(L, warn_on_cont, L);
    } else {
        fputs("\n", stderr);
        lua_setwarnf(L, warn_cont, L);
    }
}

#endif

#if LUA_VERSION_NUM < 504
/* Given its own allocator, LuaJIT mapped every block of 128 KiB or more
 * for itself and unmapped it when collected: the kernel zeroed 64 fresh
 * pages for each 256 KiB message (65 minor faults a message), and that
 * echo ran at a tenth of its speed (650 against 7 200 a second). Small
 * strings cost about 90 instructions more to allocate and free (echo A,
 * bench/instructions.sh: 1 594 against 1 505). But a 64-bit LuaJIT takes
 * an allocator only when built with 64-bit GC references (GC64, as
 * Debian's is on amd64 and arm64); without, its lua_newstate prints "Must
 * use luaL_newstate() for 64 bit target" and fails. A throwaway state's
 * ffi.abi says which it is (no FFI: it keeps its own). */
static int takes_allocator(void)
{
    static const char ask[] = "local ok, ffi = pcall(require, 'ffi')\n"
                              "return ok and (ffi.abi('gc64') or not ffi.abi('64bit'))";
    lua_State *P = luaL_newstate();
    if (P == NULL)
        return 0;
    luaL_openlibs(P);
    int yes = luaL_loadstring(P, ask) == 0 && lua_pcall(P, 0, 1, 0) == 0 && lua_toboolean(P, -1);
    lua_close(P);
    return yes;
}
#else
static int takes_allocator(void) { return 1; }
#endif

static lua_State *new_state(dx_alloc_cache **cache)
{
    *cache = NULL;
    if (!takes_allocator())
        return luaL_newstate();
    *cache = dx_alloc_cache_new();
    lua_State *L = *cache ? lua_newstate(dx_alloc, *cache) : NULL;
    if (L) {
        lua_atpanic(L, panic);
#if LUA_VERSION_NUM >= 504
        lua_setwarnf(L, warn_off, L);
#endif
    }
    return L;
}
#else
static lua_State *new_state(void **cache)
{
    *cache = NULL;
    return luaL_newstate();
}
#endif

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
    dx_traceback(L, L, msg ? msg : "(non-string error)", 1);
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

/* glibc gives the top of its heap back to the kernel once 128 KiB of it
 * are free, and maps blocks over 128 KiB one by one: a server echoing
 * 64 KiB messages grew and shrank its heap with every string (a page
 * fault a message, and half its CPU time), one echoing 1 MiB messages
 * mapped and faulted in each. The command keeps up to 8 MiB of free heap
 * and takes blocks up to 4 MiB from the heap; above that, mappings as
 * before. (As a module in another program, duplex leaves malloc alone.) */
static void tune_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);      /* a vanished peer is an error return, never a kill */
    tune_malloc();
#ifdef DX_OWN_ALLOC
    dx_alloc_cache *cache;
#else
    void *cache;
#endif
    lua_State *L = new_state(&cache);
    if (L == NULL) {
        fputs("duplex: cannot create a Lua state (out of memory)\n", stderr);
        return 1;
    }
    luaL_openlibs(L);
    dx_gc_pace_start(L);
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
#ifdef DX_OWN_ALLOC
    dx_alloc_cache_free(cache);
#endif
    return status;
}
