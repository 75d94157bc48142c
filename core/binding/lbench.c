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

#define BENCH(f) DX_FIELD(dx_bench_opts, f)

/* The options of core.bench stored in dx_bench_opts (scenario and the
 * target are read apart). */
static const dx_option bench_options[] = {
    { .name = "connections", .kind = DX_OPT_INTEGER, BENCH(connections), .lo = 1, .hi = 1000000 },
    { .name = "depth", .kind = DX_OPT_INTEGER, BENCH(depth), .lo = 1, .hi = 1 << 20 },
    { .name = "size", .kind = DX_OPT_BYTES, BENCH(size), .lo = 16, .hi = 64 << 20 },
    { .name = "binary", .kind = DX_OPT_BOOLEAN, BENCH(binary) },
    { .name = "seconds", .kind = DX_OPT_SECONDS, BENCH(seconds) },
    { .name = "warmup", .kind = DX_OPT_SECONDS, BENCH(warmup) },
    { .name = "timeout", .kind = DX_OPT_SECONDS, BENCH(timeout) },
    { .name = "concurrency", .kind = DX_OPT_INTEGER, BENCH(concurrency), .lo = 1, .hi = 1 << 20 },
    { .name = "server_pid", .kind = DX_OPT_INTEGER, BENCH(server_pid), .lo = 0, .hi = 1 << 30 },
    { .name = "tls", .kind = DX_OPT_BOOLEAN, BENCH(tls) },
};

/* Where core.bench connects. */
typedef struct bench_target {
    const char *host;
    int port;
    const char *path;
} bench_target;

#define TARGET(f) DX_FIELD(bench_target, f)

static const dx_option target_options[] = {
    { .name = "host", .kind = DX_OPT_STRING, TARGET(host), .noun = "host name or address" },
    { .name = "port", .kind = DX_OPT_INTEGER, TARGET(port), .lo = 1, .hi = 65535 },
    { .name = "path", .kind = DX_OPT_STRING, TARGET(path), .noun = "request target" },
};

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

/* Resolves host:port into addr and fills the Host header and the request
 * target. Returns 0, or pushes dx_fail's three values and returns 3. */
static int resolve(lua_State *L, const bench_target *tg, struct sockaddr_storage *addr,
                   socklen_t *addrlen, char *host, size_t hostcap, char *target, size_t targetcap)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", tg->port);
    int e = getaddrinfo(tg->host, service, &hints, &ai);
    if (e != 0 || ai == NULL)
        return dx_fail(L, "EAI_NONAME", "cannot resolve %s: %s", tg->host, gai_strerror(e));
    memcpy(addr, ai->ai_addr, ai->ai_addrlen);
    *addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (strchr(tg->host, ':'))
        snprintf(host, hostcap, "[%s]:%d", tg->host, tg->port);
    else
        snprintf(host, hostcap, "%s:%d", tg->host, tg->port);
    snprintf(target, targetcap, "%s", tg->path);
    return 0;
}

/* core.bench{ scenario = "echo"|"broadcast"|"connect", host = H, port = P,
 * path = "/p?q", connections, depth, size, binary, seconds, warmup,
 * timeout, concurrency, server_pid, tls, publish = { host =, port =,
 * path =, tls = } (broadcast: the publisher's server, when not the
 * subscribers') } -> results | nil, message, name.
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
    bench_target tg = { "127.0.0.1", 0, "/" };
    for (size_t i = 0; i < DX_COUNT(target_options); i++)
        dx_opt_get(L, 1, &target_options[i], &tg, "option", "");
    for (size_t i = 0; i < DX_COUNT(bench_options); i++)
        dx_opt_get(L, 1, &bench_options[i], &o, "option", "");
    if (tg.port == 0)
        return luaL_error(L, "bad option 'port' (integer from 1 to 65535 expected, got nil)");
    if (o.timeout <= 0)
        o.timeout = 10;
    if (resolve(L, &tg, &o.addr, &o.addrlen, o.host, sizeof o.host, o.target, sizeof o.target))
        return 3;

    lua_getfield(L, 1, "publish");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "bad option 'publish' (table expected, got %s)", luaL_typename(L, -1));
        if (o.scenario != DX_BENCH_BROADCAST)
            return luaL_error(L, "bad option 'publish' (broadcast only)");
        int t = lua_gettop(L);
        bench_target pt = { "127.0.0.1", 0, "/" };
        for (size_t i = 0; i < DX_COUNT(target_options); i++)
            dx_opt_get(L, t, &target_options[i], &pt, "option", "publish.");
        static const dx_option pub_tls = { .name = "tls", .kind = DX_OPT_BOOLEAN, BENCH(pub_tls) };
        dx_opt_get(L, t, &pub_tls, &o, "option", "publish.");
        if (pt.port == 0)
            return luaL_error(L, "bad option 'publish.port' (integer from 1 to 65535 expected, got nil)");
        if (resolve(L, &pt, &o.pub_addr, &o.pub_addrlen, o.pub_host, sizeof o.pub_host,
                    o.pub_target, sizeof o.pub_target))
            return 3;
    }
    lua_pop(L, 1);

    dx_bench_result r;
    char err[300];
    if (dx_bench_run(&o, &r, err, sizeof err) < 0) {
        dx_fail(L, "failed", "%s", err);
        push_result(L, &r);             /* what the run measured before it failed */
        return 4;
    }
    push_result(L, &r);
    return 1;
}

/* core.spawn(argv [, stderr_path [, timeout]]) -> pid, first_line |
 * nil, message, "ESPAWN". Starts argv[1] with the arguments argv[1..n]
 * and waits for its first line on stdout (default 10 s). [-0, +2|3, e] */
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
    if (pid < 0)
        return dx_fail(L, "ESPAWN", "%s", err);
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
