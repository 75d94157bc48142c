/* The bus engine: a worker's broker when `duplex run --workers N` runs
 * its workers under one supervisor. It carries every call of the broker
 * interface (broker/broker.h) over the Unix stream socket the supervisor
 * made for this worker, to the supervisor's hub (broker/hub.h), which
 * holds the one real engine of the box, and hands what the hub sends back
 * to the node through the sink. The records are broker/wire.h's.
 *
 * It carries the fallback transport's POSTs between workers too
 * (ops.forward, ops.answer; sink.forwarded, sink.answered): the memory
 * and Redis engines leave those NULL.
 *
 * Output is queued and written once per loop iteration (all the records
 * of an iteration in one send); input is decoded as it comes, in order.
 *
 * The link. It is up from creation (no callback for that) and goes down,
 * for good, when the hub closes its end, the socket fails or the hub
 * sends something malformed: sink.link(0, why) once, pending requests are
 * answered UNAVAILABLE (recover) or not ok (presence), and from then on
 * publish returns -1 (the node delivers locally itself) and requests are
 * answered at once the same way. A worker whose link is down should be
 * restarted by its supervisor (a new socket means a new engine). The hub's
 * own engine going up or down (Redis) comes through sink.link too, with
 * the bus's link unchanged.
 *
 * Bounds. Past DX_BUS_OUT_MAX bytes queued for a hub that does not read,
 * publishes return -1 (counted lost) and requests are answered UNAVAILABLE
 * at once, and forward returns -1 (the transport answers that POST 503);
 * interest, join, leave and answers to forwarded POSTs are always queued
 * (they keep the hub's picture of this worker exact, or another worker's
 * connection waits for them). When the hub dropped
 * records for this worker (its own bound), their number is added to
 * stats.lost.
 *
 * Names. Every presence member of this worker carries node_name: the hub
 * fills it in, whatever node the member given to join says, so members of
 * two workers never collide when their names differ. A worker names
 * itself "<host>:<pid>/w<index>" (pid: unique in the box, and never the
 * name of a worker that died before; index: its slot in the supervisor,
 * for people reading it); the node (binding/lbroker.c) must use the same
 * name for its members. */
#ifndef DX_BUS_H
#define DX_BUS_H

#include "broker/broker.h"

#define DX_BUS_OUT_MAX (64u << 20)     /* bytes queued for the hub, at most */

struct ev_loop;

/* A bus engine over fd (one end of the supervisor's socketpair; the
 * engine makes it non-blocking, owns it and closes it), that says it is
 * node_name (a NUL-terminated string of at most 255 bytes). Calls sink
 * from loop. Returns NULL when out of memory (fd then untouched). */
dx_broker *dx_bus_broker_new(struct ev_loop *loop, const dx_broker_sink *sink, int fd, const char *node_name);

#endif
