/* The broker: where a publish goes beyond this process's own subscribers,
 * and where history (positions, resume) and presence live.
 *
 * A node is one process serving connections (a worker, or the only
 * process). Its topics and local fan-out stay in the transport
 * (transport/topics.c); the node holds one engine behind this interface:
 *
 *   memory  in this process alone: history rings, exact presence
 *           (core/broker/memory.c). The default when history is asked for
 *           and there is no other broker.
 *   bus     a worker's link to its supervisor's hub, over a Unix socket;
 *           the hub holds the real engine for every worker of the box.
 *   redis   Redis (hiredis async on the node's libev loop): PUB/SUB for
 *           delivery, a Stream per topic for history, a hash and a sorted
 *           set with expiring entries for presence.
 *
 * Engines know nothing of Lua or of connections: topics, bytes, positions
 * and members. Every call is made from the node's loop thread. Strings are
 * bytes with a length (a topic may hold any byte).
 *
 * Delivery. A publish on a topic without history reaches this node's own
 * subscribers at once (the transport does that before calling the engine)
 * and the engine carries it to every other node that has shown interest,
 * once per node, where it arrives through sink.publication with pos NULL.
 * A publish on a topic with history is given its position by the engine
 * (offset = previous + 1 within the topic's epoch) and comes back through
 * sink.publication on every interested node, this one included, positioned:
 * so the local subscribers see positions too, in the engine's order.
 * Publications from one node to one topic reach every node in the order
 * they were published.
 *
 * Callbacks (recover, presence) are called exactly once per request,
 * possibly before the request call returns (the memory engine answers at
 * once), or with an error status when the engine is freed first. */
#ifndef DX_BROKER_H
#define DX_BROKER_H

#include <stddef.h>
#include <stdint.h>

#define DX_EPOCH_MAX 16            /* bytes of an epoch, at most */
#define DX_POS_STRLEN (DX_EPOCH_MAX + 1 + 20 + 1)  /* "epoch:offset" and its NUL */

/* Where a publication sits in its topic's history: offset counts from 1
 * within the epoch; the epoch changes whenever the history was lost (Redis
 * flushed or restarted empty, a memory engine started, the history expired
 * whole), so a position of an older epoch is never trusted. */
typedef struct dx_pos {
    uint64_t offset;
    char epoch[DX_EPOCH_MAX + 1];  /* NUL-terminated, [0-9a-z] */
} dx_pos;

/* Writes pos as "epoch:offset"; returns out. */
char *dx_pos_format(const dx_pos *pos, char out[DX_POS_STRLEN]);
/* Reads "epoch:offset": 0, or -1 when s is not one. */
int dx_pos_parse(dx_pos *pos, const char *s, size_t len);

/* A topic keeps its last size publications for ttl seconds (0: for as long
 * as the engine holds them). size 0: no history. */
typedef struct dx_history_rule {
    size_t size;
    double ttl;
} dx_history_rule;

/* One publication, as engines pass it around. */
typedef struct dx_publication {
    const char *topic;
    size_t tlen;
    const uint8_t *data;
    size_t len;
    int binary;
    const dx_pos *pos;             /* NULL: a topic without history */
    uint64_t from;                 /* the publishing connection's id when the publication
                                    * comes back to the node it was made on (so that node
                                    * can leave its publisher out), else 0; publish
                                    * carries it, its value on other nodes is 0 */
} dx_publication;

/* Someone in a topic's presence: a connection of some node, and the small
 * table the app attached when it subscribed, encoded by the layer above
 * (opaque bytes here). */
typedef struct dx_member {
    uint64_t conn;                 /* the connection's id on its node */
    const char *node;              /* the node's name */
    size_t node_len;
    const uint8_t *info;
    size_t info_len;
} dx_member;

/* What an engine calls in the node above it. */
typedef struct dx_broker_sink {
    void *ud;
    /* A publication for this node's subscribers of p->topic (see Delivery). */
    void (*publication)(void *ud, const dx_publication *p);
    /* m joined (1) or left (0) the presence of topic, on any node (this
     * one included). A node gets the events of the topics it has interest
     * in. A member that expired (its node stopped refreshing it) leaves
     * like any other. */
    void (*presence)(void *ud, const char *topic, size_t tlen, int joined, const dx_member *m);
    /* The engine's link went up (1) or down (0); why is a short line. The
     * node logs it; local delivery goes on either way. */
    void (*link)(void *ud, int up, const char *why);
    /* Optional, the bus's only (NULL elsewhere): a POST of the fallback
     * transport another worker (origin, as the hub names it) forwarded
     * here for session id; the node runs it and answers it with
     * ops->answer(origin, token, ...). Everything is valid only during the
     * call. */
    void (*forwarded)(void *ud, uint32_t origin, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                      const uint8_t *body, size_t len);
    /* Optional, the bus's only: the answer to what this node forwarded
     * under token (ops->forward). */
    void (*answered)(void *ud, uint64_t token, int status, const char *text, size_t len);
} dx_broker_sink;

/* What a resume got. */
enum dx_recover_status {
    DX_RECOVERED = 0,              /* entries are every publication after since, in order */
    DX_RECOVER_EPOCH,              /* since is of another epoch: the history was lost */
    DX_RECOVER_TOO_OLD,            /* publications after since are gone (trimmed or expired) */
    DX_RECOVER_NO_HISTORY,         /* the topic keeps no history */
    DX_RECOVER_UNAVAILABLE         /* the engine cannot answer now (link down, freed) */
};

/* The answer to dx_broker_ops.recover. entries (n of them, positioned)
 * and top are valid only during the call. top is the topic's newest
 * position when answered (offset 0 when it has none yet), given whatever
 * the status except UNAVAILABLE; every publication after top reaches the
 * node through sink.publication, after this call, so that entries, then
 * what arrives, is the topic's history without a gap. */
typedef void (*dx_recover_done)(void *arg, int status, const dx_publication *entries,
                                size_t n, const dx_pos *top);

/* The answer to dx_broker_ops.presence: ok 0 when the engine could not
 * answer (members then NULL, n 0). */
typedef void (*dx_presence_done)(void *arg, int ok, const dx_member *members, size_t n);

/* The counters every engine keeps. */
typedef struct dx_broker_stats {
    uint64_t published;            /* publications handed to the engine */
    uint64_t received;             /* publications it delivered to this node */
    uint64_t lost;                 /* publications it could not carry (link down) */
    uint64_t reconnects;           /* times its link came back after going down */
    uint64_t link_up;              /* 1 while its link is up (the memory engine: always) */
    uint64_t topics;               /* topics this node has interest in */
} dx_broker_stats;

typedef struct dx_broker dx_broker;

typedef struct dx_broker_ops {
    const char *name;              /* "memory", "bus", "redis" */
    /* This node has subscribers for topic from now on (on 1) or no longer
     * (on 0). Called once per change; an engine delivers only topics with
     * interest (a topic nobody here subscribes to costs this node nothing). */
    void (*interest)(dx_broker *b, const char *topic, size_t tlen, int on);
    /* Publishes p (its pos ignored) with history rule h (size 0: none); see
     * Delivery. Returns 0, or -1 when the engine cannot carry it now (its
     * link is down): counted lost, and for a history topic the caller
     * delivers it to the local subscribers itself, without a position. */
    int (*publish)(dx_broker *b, const dx_publication *p, const dx_history_rule *h);
    /* The publications of topic after since (see dx_recover_done); h is
     * the topic's rule (a resume asks for at most h->size entries). A
     * since with an empty epoch asks for the newest entries kept, whatever
     * the epoch (a newcomer's recent history): DX_RECOVERED with them. */
    void (*recover)(dx_broker *b, const char *topic, size_t tlen, const dx_pos *since,
                    const dx_history_rule *h, dx_recover_done done, void *arg);
    /* m (of this node) joins topic's presence; the engine keeps it (and,
     * with Redis, refreshes it) until leave. Joining again (the same conn
     * and node) replaces its info and tells a join again, with no leave
     * (a member renamed). */
    void (*join)(dx_broker *b, const char *topic, size_t tlen, const dx_member *m);
    /* m (its conn and node: info is not read) leaves topic's presence. */
    void (*leave)(dx_broker *b, const char *topic, size_t tlen, const dx_member *m);
    /* Who is in topic's presence on every node. */
    void (*presence)(dx_broker *b, const char *topic, size_t tlen, dx_presence_done done,
                     void *arg);
    void (*stats)(const dx_broker *b, dx_broker_stats *out);
    /* Frees the engine; pending requests are answered UNAVAILABLE / not ok
     * first. */
    void (*free)(dx_broker *b);
    /* Optional. In a process forked from the engine's: closes the sockets
     * this copy holds, sending nothing and freeing nothing (the copy is
     * never used again), so the parent's connections end when the parent
     * ends them. */
    void (*forked)(dx_broker *b);
    /* Optional, the bus's only (NULL for memory and Redis): hands a POST
     * for session id (whose worker is worker) to that worker, whose node
     * hears it through sink.forwarded; its answer comes back through
     * sink.answered with token. Returns 0, or -1 when it cannot go now
     * (link down, or past the engine's bound: no answer will come). */
    int (*forward)(dx_broker *b, unsigned worker, uint64_t token, const char *id, size_t idlen, uint64_t seq,
                   const uint8_t *body, size_t len);
    /* Optional, the bus's only: the answer to a forwarded POST (origin and
     * token as sink.forwarded gave them). Always queued while the link is
     * up. */
    void (*answer)(dx_broker *b, uint32_t origin, uint64_t token, int status, const char *text, size_t len);
} dx_broker_ops;

/* Every engine's struct starts with this. */
struct dx_broker {
    const dx_broker_ops *ops;
    dx_broker_sink sink;
};

/* The memory engine: history and presence in this process. Its epoch is
 * made at creation, so a restarted process never trusts old positions.
 * Returns NULL when out of memory. */
struct ev_loop;
dx_broker *dx_memory_broker_new(struct ev_loop *loop, const dx_broker_sink *sink);

#endif
