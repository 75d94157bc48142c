/* core.bench and the process helpers `duplex bench` uses: running a load
 * scenario (core/bench) and starting, measuring and stopping a server. */
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "binding/binding.h"
#include "bench/bench.h"
#include "bench/proc.h"

static int opt_int(lua_State *L, const char *k, int def, int lo, int hi)
{
    lua_getfield(L, 1, k);
    int v = def;
    if (!lua_isnil(L, -1)) {
        if (!dx_isinteger(L, -1) || lua_tonumber(L, -1) < lo || lua_tonumber(L, -1) > hi)
            luaL_error(L, "bad option '%s' (integer from %d to %d expected)", k, lo, hi);
        v = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static double opt_num(lua_State *L, const char *k, double def)
{
    lua_getfield(L, 1, k);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 0)
            luaL_error(L, "bad option '%s' (non-negative number expected)", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static const char *opt_str(lua_State *L, const char *k, const char *def)
{
    lua_getfield(L, 1, k);
    const char *v = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
    if (v == NULL)
        luaL_error(L, "bad option '%s' (string expected)", k);
    lua_pop(L, 1);                /* the string stays alive in the options table */
    return v;
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void push_result(lua_State *L, const dx_bench_result *r)
{
    lua_createtable(L, 0, 24);
    set_num(L, "seconds", r->seconds);
    set_int(L, "messages", (long long)r->messages);
    set_num(L, "rate", r->rate);
    set_num(L, "mbytes_per_s", r->mbytes_per_s);
    set_int(L, "sent", (long long)r->sent);
    set_int(L, "received", (long long)r->received);
    set_int(L, "errors", (long long)r->errors);
    set_int(L, "content_errors", (long long)r->content_errors);
    set_int(L, "conn_errors", (long long)r->conn_errors);
    set_int(L, "lost", (long long)r->lost);
    set_num(L, "p50_us", r->p50_us);
    set_num(L, "p99_us", r->p99_us);
    set_num(L, "p999_us", r->p999_us);
    set_num(L, "max_us", r->max_us);
    set_num(L, "mean_us", r->mean_us);
    set_int(L, "opened", r->opened);
    set_num(L, "connect_seconds", r->connect_seconds);
    set_num(L, "handshakes_per_s", r->handshakes_per_s);
    if (r->rss_before >= 0)
        set_int(L, "rss_before", r->rss_before);
    if (r->rss_after >= 0)
        set_int(L, "rss_after", r->rss_after);
    if (r->rss_per_conn > 0)
        set_num(L, "rss_per_conn", r->rss_per_conn);
    if (r->first_error[0]) {
        lua_pushstring(L, r->first_error);
        lua_setfield(L, -2, "first_error");
    }
}

/* core.bench{ scenario = "echo"|"broadcast"|"connect", host = H, port = P,
 * path = "/p?q", connections, depth, size, binary, seconds, warmup,
 * timeout, concurrency, server_pid, tls } -> results | nil, message, name.
 * Runs to its end on a loop of its own (the default loop does not run
 * meanwhile). [-0, +1|3, e] */
static int l_bench(lua_State *L)
{
    static const char *const scenarios[] = { "echo", "broadcast", "connect", NULL };
    luaL_checktype(L, 1, LUA_TTABLE);
    dx_bench_opts o;
    dx_bench_defaults(&o);
    lua_getfield(L, 1, "scenario");
    o.scenario = luaL_checkoption(L, -1, "echo", scenarios);
    lua_pop(L, 1);
    const char *host = opt_str(L, "host", "127.0.0.1");
    int port = opt_int(L, "port", 0, 1, 65535);
    if (port == 0)
        return luaL_error(L, "bad option 'port' (integer from 1 to 65535 expected)");
    const char *path = opt_str(L, "path", "/");
    o.connections = opt_int(L, "connections", o.connections, 1, 1000000);
    o.depth = opt_int(L, "depth", o.depth, 1, 1 << 20);
    o.size = (size_t)opt_int(L, "size", (int)o.size, 16, 64 << 20);
    lua_getfield(L, 1, "binary");
    o.binary = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.seconds = opt_num(L, "seconds", o.seconds);
    o.warmup = opt_num(L, "warmup", o.warmup);
    o.timeout = opt_num(L, "timeout", o.timeout);
    o.concurrency = opt_int(L, "concurrency", o.concurrency, 1, 1 << 20);
    o.server_pid = opt_int(L, "server_pid", 0, 0, 1 << 30);
    lua_getfield(L, 1, "tls");
    o.tls = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (o.timeout <= 0)
        o.timeout = 10;

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int e = getaddrinfo(host, service, &hints, &ai);
    if (e != 0 || ai == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot resolve %s: %s", host, gai_strerror(e));
        lua_pushliteral(L, "EAI_NONAME");
        return 3;
    }
    memcpy(&o.addr, ai->ai_addr, ai->ai_addrlen);
    o.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (strchr(host, ':'))
        snprintf(o.host, sizeof o.host, "[%s]:%d", host, port);
    else
        snprintf(o.host, sizeof o.host, "%s:%d", host, port);
    snprintf(o.target, sizeof o.target, "%s", path);

    dx_bench_result r;
    char err[300];
    if (dx_bench_run(&o, &r, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "failed");
        push_result(L, &r);
        return 4;
    }
    push_result(L, &r);
    return 1;
}

/* core.spawn(argv [, stderr_path [, timeout]]) -> pid, first_line |
 * nil, message. Starts argv[1] with the arguments argv[1..n] and waits
 * for its first line on stdout (default 10 s). [-0, +2, e] */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *errpath = luaL_optstring(L, 2, NULL);
    double timeout = luaL_optnumber(L, 3, 10);
    int n = (int)dx_rawlen(L, 1);
    luaL_argcheck(L, n >= 1 && n < 64, 1, "1 to 63 words expected");
    char *argv[64];
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        argv[i] = (char *)lua_tostring(L, -1);   /* kept alive by the table */
        lua_pop(L, 1);
        if (argv[i] == NULL)
            return luaL_argerror(L, 1, "strings expected");
    }
    argv[n] = NULL;
    char line[512], err[300];
    int fd = -1;
    pid_t pid = dx_proc_spawn(argv, errpath, timeout, line, sizeof line, &fd, err, sizeof err);
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    close(fd);                 /* the server only writes at start; later writes get EPIPE */
    lua_pushinteger(L, pid);
    lua_pushstring(L, line);
    return 2;
}

/* core.stop_process(pid [, signal_name [, timeout]]) -> exit status or
 * nil. Signals it ("TERM" by default) and reaps it within timeout (5 s),
 * SIGKILL after. [-0, +1, e] */
static int l_stop_process(lua_State *L)
{
    static const char *const names[] = { "TERM", "INT", "KILL", NULL };
    static const int nums[] = { SIGTERM, SIGINT, SIGKILL };
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = nums[luaL_checkoption(L, 2, "TERM", names)];
    int st = dx_proc_stop(pid, sig, luaL_optnumber(L, 3, 5));
    if (st < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, st);
    return 1;
}

/* core.rss(pid) -> bytes resident, or nil. [-0, +1, -] */
static int l_rss(lua_State *L)
{
    long long b = dx_proc_rss((int)luaL_checkinteger(L, 1));
    if (b < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)b);
    return 1;
}

/* core.exe() -> the path of the running program (/proc/self/exe). */
static int l_exe(lua_State *L)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        lua_pushnil(L);
    else
        lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static const luaL_Reg functions[] = {
    { "bench", l_bench }, { "spawn", l_spawn }, { "stop_process", l_stop_process },
    { "rss", l_rss }, { "exe", l_exe }, { NULL, NULL }
};

void dx_bench_open_lib(lua_State *L)
{
    dx_setfuncs(L, functions);
}
