/* The Redis engine of the broker (see broker.h): hiredis async on the
 * node's libev loop, never a blocking call.
 *
 * Links. Two connections to one Redis: one for commands, one in
 * SUBSCRIBE mode. They go up and down together, as one link: when either
 * drops, fails to connect, or does not answer a probe in time, both are
 * closed and opened again after a jittered backoff (reconnect_min doubling
 * to reconnect_max). Going up means: AUTH and SELECT on both, the scripts
 * loaded on the command connection, this node's own channel subscribed on
 * the other; then every topic with interest is subscribed again, this
 * node's presence members joined again, and sink.link(1). A link that
 * only one side lost is still mended whole, which costs a resubscription
 * and keeps one state machine instead of two.
 *
 * Probe. Every probe_interval the command connection PUBLISHes a token on
 * this node's own channel (<prefix>n:<node>); the token must come back on
 * the subscription connection within probe_timeout, else the link is
 * declared dead. One probe thus proves both connections and the
 * subscription path itself (a Redis that stopped answering, SIGSTOPped or
 * behind a dropped TCP path, is noticed within interval + timeout). The
 * connect and handshake are bounded by probe_timeout as well.
 *
 * Publishes while Redis is away are lost and counted (stats.lost), never
 * queued: local subscribers got them at once (broker.h), a publication
 * sent seconds late to the other nodes would arrive out of step with what
 * followed it, and a queue is memory a long outage fills. What was
 * missed is recovered by positions: a client resumes from its last
 * position and gets the publications, or is told it cannot. A publish
 * also counts lost when the command connection already holds more than
 * max_pending unsent bytes (Redis too slow), so memory stays bounded.
 *
 * Keys and channels, under prefix (default "duplex:"), topics as bytes:
 *   <prefix>ch:<topic>  channel: publications and presence events
 *   <prefix>n:<node>    channel: this node's probes and recover barriers
 *   <prefix>m:<topic>   hash: e (epoch), o (last offset)
 *   <prefix>s:<topic>   stream: the history, id <offset>-0, fields b, d
 *   <prefix>p:<topic>   hash: member key (node:conn) -> member record
 *   <prefix>pe:<topic>  sorted set: member key -> expiry (ms, Redis time)
 *
 * Recover. interest(on) comes first; the recover script is sent once the
 * topic's SUBSCRIBE is confirmed, and it PUBLISHes its answer on the
 * node's own channel instead of returning it: the answer then reaches
 * the node on the subscription connection in Redis's order with the
 * topic's publications, so every publication after top comes after the
 * answer and none before it is missing. An answer is one message, so
 * it is bounded by Redis's pubsub output buffer limit (32 MB by default).
 *
 * Host names are resolved by hiredis when connecting (getaddrinfo, which
 * blocks): give an address, or a name the hosts file knows. hiredis
 * writes with write(2): the process ignores SIGPIPE (the duplex command
 * does, and server:broker ignores it when it was at its default). */
#ifndef DX_REDIS_H
#define DX_REDIS_H

#include <stddef.h>
#include "broker/broker.h"

#define DX_REDIS_HOST_MAX 256
#define DX_REDIS_PASSWORD_MAX 256
#define DX_REDIS_PREFIX_MAX 64
#define DX_REDIS_NODE_MAX 64

typedef struct dx_redis_config {
    char host[DX_REDIS_HOST_MAX];       /* default "127.0.0.1" */
    int port;                           /* default 6379 */
    int db;                             /* SELECTed on both connections; default 0 */
    char password[DX_REDIS_PASSWORD_MAX]; /* "" none */
    char prefix[DX_REDIS_PREFIX_MAX];   /* of keys and channels; default "duplex:" */
    char node[DX_REDIS_NODE_MAX];       /* this node's name, unique among the nodes
                                         * of one Redis; "" makes one (host-pid-random) */
    double presence_ttl;                /* seconds a member lives unless refreshed; default 15 */
    double probe_interval;              /* seconds between probes; default 1 */
    double probe_timeout;               /* a probe, a connect, a handshake; default 3 */
    double reconnect_min;               /* first backoff; default 0.1 */
    double reconnect_max;               /* backoff cap; default 5 */
    size_t max_pending;                 /* unsent bytes before publishes count lost; default 64 MiB */
} dx_redis_config;

/* Fills cfg with the defaults above. */
void dx_redis_config_init(dx_redis_config *cfg);

/* Sets host, port, password and db of cfg from
 * redis://[:password@]host[:port][/db][?name=value&...] (host may be [v6
 * address]; the query may set prefix, presence_ttl, probe_interval and
 * probe_timeout); the other fields are left alone. Returns 0, or -1 with a message in err. */
int dx_redis_url_parse(const char *url, dx_redis_config *cfg, char *err, size_t cap);

/* A Redis engine on loop, calling sink; starts connecting at once (the
 * link is down until sink.link says up). Returns NULL with a message in
 * err when cfg is unusable or memory is short. free() answers what is
 * pending and closes both connections at once; it does not leave this
 * node's presence members (the node leaves them first when it shuts down
 * gracefully): members left behind expire after presence_ttl and every
 * other node sees them leave. */
struct ev_loop;
dx_broker *dx_redis_broker_new(struct ev_loop *loop, const dx_broker_sink *sink,
                               const dx_redis_config *cfg, char *err, size_t errcap);

/* The node name the engine uses (cfg.node, or the one it made). */
const char *dx_redis_broker_node(const dx_broker *b);

#endif
