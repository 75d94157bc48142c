/* The hub for --workers N: core.hub_hooks gives core.supervise the hooks
 * (transport/supervisor.h) that run the in-box bus's hub (broker/hub.h)
 * on the supervisor's loop, with the box's engine: the memory engine, or
 * Redis for a box among others.
 *
 * A process supervises once, so the hub is the process's (held here, like
 * the worker's own identity in lsupervisor.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "binding/binding.h"
#include "broker/hub.h"
#include "broker/redis.h"
#include "transport/log.h"
#include "transport/supervisor.h"

static struct {
    dx_hub *hub;
    dx_hub *forked;                /* in a worker: the supervisor's hub, copied by fork, never used */
    int redis;                     /* the engine is Redis, as cfg says */
    dx_redis_config cfg;
} box;

static dx_broker *make_redis(struct ev_loop *loop, const dx_broker_sink *sink, void *arg)
{
    (void)arg;
    char err[512];
    dx_broker *b = dx_redis_broker_new(loop, sink, &box.cfg, err, sizeof err);
    if (b == NULL)
        dx_log(DX_LOG_ERROR, "broker_error", 0, NULL, "the supervisor cannot use its broker: %s", err);
    return b;
}

static void on_start(void *ud, struct ev_loop *loop)
{
    (void)ud;
    box.hub = dx_hub_new(loop, box.redis ? make_redis : NULL, NULL);
    if (box.hub == NULL)
        dx_log(DX_LOG_ERROR, "broker_error", 0, NULL,
               "no hub between the workers: each publishes to its own subscribers only");
}

/* The supervisor keeps its end of the socket (and closes it after
 * detach); the hub owns what it is given: a copy. */
static void on_attach(void *ud, int worker, int fd)
{
    (void)ud;
    int own = box.hub ? dup(fd) : -1;
    if (own >= 0 && dx_hub_attach(box.hub, (unsigned)worker, own) < 0)
        close(own);
}

static void on_detach(void *ud, int worker)
{
    (void)ud;
    if (box.hub)
        dx_hub_detach(box.hub, (unsigned)worker);
}

static void on_forked(void *ud)
{
    (void)ud;
    if (box.hub)
        dx_hub_forked(box.hub);
    /* The copy stays reachable, not freed: freeing would stop watchers of
     * the supervisor's loop and end the Redis engine's requests, all the
     * supervisor's business; the worker only lets go of the sockets. */
    box.forked = box.hub;
    box.hub = NULL;
}

static void on_stop(void *ud)
{
    (void)ud;
    if (box.hub)
        dx_hub_free(box.hub);
    box.hub = NULL;
}

static const dx_supervisor_hooks hooks = {
    .start = on_start, .attach = on_attach, .detach = on_detach, .forked = on_forked, .stop = on_stop,
};

/* core.hub_hooks([broker [, node]]) -> the hooks for core.supervise: a hub
 * with the memory engine, or with Redis when broker is a redis:// URL
 * (node: the box's name in Redis; default host:pid). Raises for a bad
 * URL. */
static int l_hub_hooks(lua_State *L)
{
    const char *url = luaL_optstring(L, 1, NULL);
    memset(&box, 0, sizeof box);
    if (url && strcmp(url, "memory") != 0) {
        char err[512];
        dx_redis_config_init(&box.cfg);
        if (strncmp(url, "redis://", 8) != 0)
            return luaL_error(L, "bad option 'broker' (\"memory\" or a redis:// URL expected, got \"%s\")", url);
        if (dx_redis_url_parse(url, &box.cfg, err, sizeof err) < 0)
            return luaL_error(L, "bad option 'broker' (%s)", err);
        const char *node = luaL_optstring(L, 2, NULL);
        if (node) {
            luaL_argcheck(L, strlen(node) < sizeof box.cfg.node, 2, "a node name of at most 63 bytes");
            strcpy(box.cfg.node, node);
        } else {
            char host[200] = "localhost";
            gethostname(host, sizeof host - 1);
            snprintf(box.cfg.node, sizeof box.cfg.node, "%.50s:%ld", host, (long)getpid());
        }
        box.redis = 1;
    }
    lua_pushlightuserdata(L, (void *)&hooks);
    return 1;
}

void dx_hub_open_lib(lua_State *L)
{
    lua_pushcfunction(L, l_hub_hooks);
    lua_setfield(L, -2, "hub_hooks");
}
