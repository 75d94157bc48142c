/* --workers N for Lua: core.supervise starts the supervisor
 * (transport/supervisor.h) and returns in every worker; core.worker says
 * which worker this process is; core.worker_ready tells the supervisor
 * that it listens; core.cpus counts the CPUs online (--workers auto).
 *
 * Being a worker is the process's, not a server's: what the child learnt
 * at the fork is kept here, once per process. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "binding/binding.h"
#include "transport/supervisor.h"

static dx_worker me;                /* index 0: not a worker */

/* core.supervise{ workers = N [, hooks = p] } starts N worker processes (2 to 1024),
 * each a fork of this one, and supervises them. Returns twice over: in
 * each worker a table { worker = i, workers = N, bus = fd, port = P }
 * (bus: its end of the socket to the supervisor, kept open; port: the one
 * to listen on, 0 for the app's own); in the supervisor, once every
 * worker is gone, its exit status (0 after SIGTERM or SIGINT, else the
 * status of the worker that could not start). nil, message, "ESUPERVISE"
 * when the supervisor cannot start. Call it before anything runs on the
 * loop: the worker's default loop is the one this process had. hooks: a
 * light userdata, a dx_supervisor_hooks (supervisor.h) that outlives the
 * call, for the hub between workers.
 * [-0, +1|3, e] */
static int l_supervise(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "workers");
    lua_Integer n = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "hooks");
    luaL_argcheck(L, lua_isnil(L, -1) || lua_islightuserdata(L, -1), 1, "hooks must be a light userdata");
    const dx_supervisor_hooks *hooks = lua_touserdata(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, n >= 2 && n <= DX_MAX_WORKERS, 1, "workers must be 2 to 1024");
    if (me.index)
        return luaL_error(L, "supervise: this process is a worker already");
    dx_supervisor_config cfg;
    dx_supervisor_defaults(&cfg);
    cfg.workers = (int)n;
    char err[256];
    dx_supervisor *s = dx_supervisor_new(&cfg, err, sizeof err);
    if (s == NULL)
        return dx_fail(L, "ESUPERVISE", "%s", err);
    if (hooks)
        dx_supervisor_set_hooks(s, hooks);
    dx_worker child;
    memset(&child, 0, sizeof child);
    int index = dx_supervisor_run(s, &child);
    int status = dx_supervisor_status(s);
    dx_supervisor_free(s);
    if (index == 0) {
        lua_pushinteger(L, status);
        return 1;
    }
    me = child;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, me.index);
    lua_setfield(L, -2, "worker");
    lua_pushinteger(L, me.workers);
    lua_setfield(L, -2, "workers");
    lua_pushinteger(L, me.bus);
    lua_setfield(L, -2, "bus");
    lua_pushinteger(L, me.port);
    lua_setfield(L, -2, "port");
    return 1;
}

uint64_t dx_box_restarts(void)
{
    return dx_worker_restarts(&me);
}

int dx_worker_take_bus(unsigned *index)
{
    if (me.index == 0 || me.bus < 0)
        return -1;
    int fd = me.bus;
    me.bus = -1;
    *index = (unsigned)me.index;
    return fd;
}

/* core.worker() -> index (1..N), N in a worker of --workers N; nil
 * otherwise. [-0, +1|2, -] */
static int l_worker(lua_State *L)
{
    if (me.index == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, me.index);
    lua_pushinteger(L, me.workers);
    return 2;
}

/* core.worker_ready(port, text) tells the supervisor that this worker
 * listens on port; text is what the supervisor prints for worker 1's first
 * start (the "duplex: listening on" lines). Once per worker. Returns true,
 * or nil, message, "EREPORT". [-0, +1|3, e] */
static int l_worker_ready(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    size_t len;
    const char *text = luaL_optlstring(L, 2, "", &len);
    if (me.index == 0)
        return luaL_error(L, "worker_ready: this process is not a worker");
    if (me.ready < 0)
        return luaL_error(L, "worker_ready: called twice");
    int fd = me.ready;
    me.ready = -1;
    if (dx_worker_ready(fd, (int)port, text, len) < 0)
        return dx_fail(L, "EREPORT", "cannot report to the supervisor: %s", strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

/* core.cpus() -> the number of CPUs online (at least 1). [-0, +1, -] */
static int l_cpus(lua_State *L)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    lua_pushinteger(L, n > 0 ? n : 1);
    return 1;
}

void dx_supervisor_open_lib(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "supervise", l_supervise }, { "worker", l_worker }, { "worker_ready", l_worker_ready },
        { "cpus", l_cpus }, { NULL, NULL }
    };
    dx_setfuncs(L, functions);
}
