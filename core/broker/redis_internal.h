/* What the Redis engine's files share: the engine, its topics, its link
 * and its scripts. See redis.h for the design. */
#ifndef DX_REDIS_INTERNAL_H
#define DX_REDIS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <hiredis/async.h>
#include "broker/names.h"
#include "broker/redis.h"

/* ---- scripts (redis_scripts.c) ---- */

enum { DX_RS_PUBLISH, DX_RS_RECOVER, DX_RS_JOIN, DX_RS_LEAVE, DX_RS_CLEANUP, DX_RS_COUNT };
extern const char *const dx_redis_scripts[DX_RS_COUNT];

/* ---- topics (redis_topics.c) ---- */

/* Where a topic's channel stands on the subscription connection. One
 * SUBSCRIBE or UNSUBSCRIBE is in flight at a time, so replies never
 * cross (older hiredis forgets a channel's callback when an UNSUBSCRIBE
 * is answered while a SUBSCRIBE is still pending). */
enum { DX_RT_NONE, DX_RT_SUBSCRIBING, DX_RT_SUBSCRIBED, DX_RT_UNSUBSCRIBING };

/* A member this engine joined: its node (this node's name, or a worker's
 * under a hub) and connection name it; node and info share one block. */
typedef struct dx_rmember {
    uint64_t conn;
    char *node;
    size_t node_len;
    uint8_t *info;
    size_t info_len;
} dx_rmember;

typedef struct dx_rtopic {
    dx_named named;              /* its name, in the engine's table */
    int interest;                /* the node has subscribers */
    int sub;                     /* DX_RT_* */
    dx_rmember *members;         /* this node's presence members */
    size_t nmembers, members_cap;
    dx_rmember *leaving;         /* members that left while the link was down (no info) */
    size_t nleaving, leaving_cap;
    char name[];
} dx_rtopic;

typedef dx_names dx_rtable;

dx_rtopic *dx_rt_find(const dx_rtable *tab, const char *name, size_t len);
/* Finds or makes; NULL when out of memory. */
dx_rtopic *dx_rt_get(dx_rtable *tab, const char *name, size_t len);
/* Frees t when nothing holds it (no interest, no subscription, no
 * members, nothing to leave). */
void dx_rt_release(dx_rtable *tab, dx_rtopic *t);
void dx_rt_free(dx_rtable *tab);
/* The member m (node and conn) of t, or NULL. */
dx_rmember *dx_rt_member_find(dx_rtopic *t, const dx_member *m);
/* Sets (adds or replaces) a member: 0, or -1 when out of memory. */
int dx_rt_member_set(dx_rtopic *t, const dx_member *m);
/* Removes a member: 1 when it was there, else 0. */
int dx_rt_member_del(dx_rtopic *t, const dx_member *m);
/* Keeps m (node and conn) to leave when the link is back: 0, or -1. */
int dx_rt_leaving_add(dx_rtopic *t, const dx_member *m);
/* Frees what a member holds. */
void dx_rmember_clear(dx_rmember *m);

/* ---- the engine ---- */

typedef struct dx_rreq dx_rreq;

typedef struct dx_redis {
    dx_broker base;
    struct ev_loop *loop;
    dx_redis_config cfg;
    size_t node_len;
    char nchan[DX_REDIS_PREFIX_MAX + 2 + DX_REDIS_NODE_MAX]; /* <prefix>n:<node> */
    size_t nchan_len;

    /* the link (redis_link.c) */
    redisAsyncContext *cmd, *sub;
    int cmd_steps;               /* handshake replies still awaited on cmd */
    int sub_ready;               /* the node's channel is subscribed */
    int up;                      /* both ready: the link is up */
    int ever_up;
    int closing;                 /* free() runs */
    int reported;                /* the link state sink.link last told: -1 none yet */
    int busy;                    /* calls out under way (see dx_redis_hold) */
    int dead;                    /* free() ran during one: freed when the last returns */
    double backoff;
    ev_timer retry, handshake, probe, probe_wait;
    uint64_t probe_seq;
    int probing;
    char sha[DX_RS_COUNT][41];
    uint64_t inflight;           /* plain PUBLISHes awaiting their reply */

    /* the engine (redis.c) */
    dx_rtable topics;
    dx_rreq *reqs, *reqs_tail;   /* requests awaiting an answer, oldest first */
    uint64_t next_id;
    uint64_t rng;
    ev_timer presence;
    unsigned unrefs;             /* the timers started with their loop reference given back */
    dx_broker_stats st;
    char *scratch[4];            /* key names being built */
    size_t scratch_cap[4];
} dx_redis;

/* ---- the link (redis_link.c) ---- */

void dx_rl_init(dx_redis *r);
/* Opens both connections (now, or after the backoff when called again). */
void dx_rl_connect(dx_redis *r);
/* Closes both connections; why not NULL: the link failed, so it goes
 * down and is opened again after the backoff. */
void dx_rl_fail(dx_redis *r, const char *why);
/* Closes both for good (free). */
void dx_rl_close(dx_redis *r);
/* Sends a command on the command or the subscription connection: 0, or
 * -1 when that connection is not open (fn is then not called). */
int dx_rl_cmd(dx_redis *r, redisCallbackFn *fn, void *pd, int argc, const char **argv,
              const size_t *lens);
int dx_rl_sub(dx_redis *r, redisCallbackFn *fn, void *pd, int argc, const char **argv,
              const size_t *lens);
/* Runs script which (EVALSHA, or EVAL when eval) with nkeys keys among
 * argv's argc arguments. */
int dx_rl_script(dx_redis *r, int which, int eval, redisCallbackFn *fn, void *pd, int nkeys, int argc,
                 const char **argv, const size_t *lens);
/* Unsent bytes on the command connection. */
size_t dx_rl_backlog(const dx_redis *r);
/* The engine's timers and sockets keep no loop running (as the memory
 * engine's sweep and a worker's bus): a process whose server shut down
 * ends its loop, Redis or not. Every start and stop of a timer of r goes
 * through these; a one-shot timer's callback calls dx_rl_timer_fired
 * first (libev stopped it, taking a reference of its own). */
void dx_rl_timer_start(dx_redis *r, ev_timer *w);
void dx_rl_timer_stop(dx_redis *r, ev_timer *w);
void dx_rl_timer_fired(dx_redis *r, ev_timer *w);

/* ---- what the link calls in the engine (redis.c) ---- */

void dx_redis_up(dx_redis *r);
void dx_redis_down(dx_redis *r, const char *why);
/* A reply on the subscription connection for a topic's channel, or a
 * message on the node's own channel that is not a probe. */
void dx_redis_channel(dx_redis *r, const redisReply *reply);
void dx_redis_node_message(dx_redis *r, const char *s, size_t len);

/* Around code that calls out (a sink, a done callback) and goes on
 * after: free() called meanwhile leaves the struct for unhold to free.
 * unhold returns 1 when r is gone and must not be touched. */
void dx_redis_hold(dx_redis *r);
int dx_redis_unhold(dx_redis *r);

/* Room for a line saying why the link went down. */
#define DX_RL_WHY 640

/* A pseudo-random number of the engine's own sequence. */
uint64_t dx_redis_rand(dx_redis *r);

/* "<prefix><kind><topic>" in scratch slot (0..3); NULL when out of memory. */
const char *dx_redis_key(dx_redis *r, int slot, const char *kind, const char *t, size_t tlen,
                         size_t *len);

#endif
