/* The hub: the supervisor's side of the in-box bus. It holds the box's
 * one engine (the memory engine, or one that reaches other boxes such as
 * Redis) and routes between the workers' bus engines (broker/bus.h), one
 * Unix stream socket each, records of broker/wire.h.
 *
 * Why a hub in the supervisor, not workers talking to each other (a
 * socket per pair, or a ring in shared memory): presence and history are
 * exact in one place, with no agreement to reach between workers; a
 * restarted worker is a new socketpair made by the supervisor, with no fd
 * passing and no shared segment left half-written by a dying worker; and
 * an engine that reaches other boxes runs once per box, not once per
 * worker. The cost, a hop through the supervisor, is measured by
 * test/broker/bench_bus.c (`make bench-bus`): on a busy 2-core box, 1M
 * publications of 32 bytes from one worker to another go at 3.4-4.2 M/s
 * for 230 ns of CPU each (hub 95, publisher 92, subscriber 45), where the
 * same records written straight over one socketpair go at 17 M/s for 52
 * ns: the hub costs about 180 ns of CPU per message per receiving worker
 * (never per subscriber), less than one Lua handler call and far below
 * the ~370 ns a server spends per echoed message. A ring in shared memory
 * could go below the direct figure, but needs a wakeup per batch anyway,
 * and leaves presence, history and a dying writer's half-written records
 * to agree on between processes.
 *
 * Routing. The hub keeps, per topic, the workers interested (the engine's
 * interest is on while there is one) and the members each worker joined.
 *   - a publish without history from worker A goes to every other
 *     interested worker, one record per worker, and to the engine (which
 *     carries it to other boxes, if it reaches any);
 *   - a publish with history goes to the engine, which positions it and
 *     hands it back: it goes to every interested worker, A included, with
 *     from (the publishing connection) for A only. When the engine cannot
 *     take it, it goes the same way without a position;
 *   - what the engine brings from elsewhere goes to every interested
 *     worker; presence events too;
 *   - recover and presence are answered to the worker that asked, in its
 *     stream, so an answer comes before any later publication.
 *   - a forwarded POST (the fallback transport's, for a session of another
 *     worker) goes to the worker its record names, with the sender's index
 *     and generation as its origin; the answer goes back to that origin
 *     if it is still the same generation (else it is dropped). A target
 *     not attached gets the origin an immediate 404 ("no such session:
 *     its worker is gone"), and so does every POST forwarded to a worker
 *     that detaches before answering it.
 * Everything a worker sends is handled in its order, so publications from
 * one publisher to one topic reach every worker in the order published.
 *
 * The engine's from. The hub publishes with from = (worker + 1) << 48 |
 * generation << 40 | connection (generation: the slot's attach count, 8
 * bits), and maps it back when the engine hands a publication back, so a
 * late answer (Redis) never goes to a restarted worker's connection of
 * the same number. A connection id past 2^40 travels as 0 (its publisher
 * then gets its own positioned publication).
 *
 * Bounds. Past DX_HUB_OUT_MAX bytes queued for a worker that does not
 * read, publications and presence events for it are dropped and counted
 * (hub stats, and the worker hears how many when it reads again); answers
 * to its requests are still queued. A forwarded POST counts like a
 * publication, but past the bound it is answered 503 to its origin
 * instead of dropped; answers to forwarded POSTs are always queued. Past
 * DX_HUB_OUT_CUT the hub detaches it (closes its socket: its bus sees the
 * link down), as if it had died; the supervisor should restart it.
 *
 * Detach (a worker killed, exited, cut or restarted): every member it had
 * leaves (the other workers get the leave events), every interest it had
 * is dropped, and the answers to its pending requests are dropped. */
#ifndef DX_HUB_H
#define DX_HUB_H

#include <stdint.h>
#include "broker/broker.h"

#define DX_HUB_OUT_MAX (64u << 20)        /* bytes queued for a worker before dropping */
#define DX_HUB_OUT_CUT (2 * DX_HUB_OUT_MAX)  /* ... before detaching it */
#define DX_HUB_WORKERS_MAX 65534           /* worker indexes below this */

typedef struct dx_hub dx_hub;

/* The hub's counters. */
typedef struct dx_hub_stats {
    uint64_t received;             /* records read from workers */
    uint64_t bytes_in;             /* their bytes */
    uint64_t routed;               /* records queued for workers */
    uint64_t bytes_out;            /* bytes written to workers */
    uint64_t dropped;              /* records not queued: a worker past its bound (or out of memory) */
    uint64_t cut;                  /* workers detached for not reading, or for a malformed record */
    uint64_t queued;               /* bytes queued for workers now */
    uint64_t workers;              /* attached now */
    uint64_t topics;               /* topics some worker has interest in */
} dx_hub_stats;

/* make_engine: the box's engine, made with the hub's sink (and arg); NULL
 * for the memory engine. Calls everything from loop. Returns NULL when
 * out of memory or when the engine cannot be made. */
dx_hub *dx_hub_new(struct ev_loop *loop,
                   dx_broker *(*make_engine)(struct ev_loop *, const dx_broker_sink *, void *), void *arg);

/* Worker worker (an index below DX_HUB_WORKERS_MAX) is at the other end of
 * fd from now on (a stream socket; the hub makes it non-blocking, owns it
 * and closes it on detach). A worker attached already is detached first.
 * Returns 0, or -1 when out of memory or worker is out of range (fd then
 * untouched). */
int dx_hub_attach(dx_hub *hub, unsigned worker, int fd);

/* Worker worker is gone (see Detach above). Nothing when it is not
 * attached (the hub may have detached it already: its end closed). */
void dx_hub_detach(dx_hub *hub, unsigned worker);

void dx_hub_stats_get(const dx_hub *hub, dx_hub_stats *out);

/* The engine (for its stats; the hub keeps it). */
dx_broker *dx_hub_engine(dx_hub *hub);

/* In a process forked from the hub's (a new worker): closes the workers'
 * sockets this copy holds, so that only the hub's own process holds them
 * (a worker sees the hub go when the supervisor dies), and the engine's
 * (its ops->forked: Redis's connections), sending nothing and
 * freeing nothing: this copy of the hub is never used again. */
void dx_hub_forked(dx_hub *hub);

/* Detaches every worker and frees the engine and the hub. */
void dx_hub_free(dx_hub *hub);

#endif
