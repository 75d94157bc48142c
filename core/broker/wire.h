/* The in-box bus's wire: what a worker's bus engine (broker/bus.c) and
 * the supervisor's hub (broker/hub.c) say to each other over the Unix
 * stream socket the supervisor made for that worker. One encoder and one
 * decoder for both sides, and the byte queue each side reads into and
 * writes from.
 *
 * A record is
 *
 *     u32 len   the bytes after this field (type and body), at most
 *               DX_WIRE_RECORD_MAX
 *     u8  type  one of dx_wire_type
 *     body      the fields of that type, in order
 *
 * Fields: u8, u32 and u64 little-endian; f64 as the u64 of its bits; str
 * is a u32 length and that many bytes (topics, data, names are binary);
 * pos is a u8 epoch length (at most DX_EPOCH_MAX, [0-9a-z]), the epoch and
 * a u64 offset.
 *
 *   worker -> hub
 *     'H' hello      str node               first record: the worker's node name
 *     'I' interest   u8 on, str topic
 *     'P' publish    u64 from, u8 binary, u32 size, f64 ttl, str topic, str data
 *                                           size, ttl: the history rule (size 0: none)
 *     'R' recover    u32 id, u32 size, f64 ttl, pos since, str topic
 *     'J' join       u64 conn, str topic, str info      (the node is the hello's)
 *     'L' leave      u64 conn, str topic
 *     'Q' presence   u32 id, str topic
 *     'F' forward    u32 worker, u64 token, str id, u64 seq, str body
 *                                           a fallback POST for a session of worker
 *                                           (seq all ones: its body was too big, refused;
 *                                           the session closes 1009)
 *     'A' answer     u32 origin, u64 token, u16 status, str text
 *                                           the answer to a forwarded POST
 *   hub -> worker
 *     'p' publication u64 from, u8 binary, u8 positioned, [pos], str topic, str data
 *     'e' event       u8 joined, u64 conn, str topic, str node, str info
 *     'r' recovered   u32 id, u8 status, u8 has top, [pos top], str topic, u32 n,
 *                     n x (u8 binary, pos, str data)
 *     'm' members     u32 id, u8 ok, u32 n, n x (u64 conn, str node, str info)
 *     'd' dropped     u64 n                 the hub dropped n records for this worker
 *                                           (its queue was past its cap)
 *     'k' link        u8 up, str why        the hub's engine's link went up or down
 *     'f' forwarded   u32 origin, u64 token, str id, u64 seq, str body
 *                                           a POST another worker took for a session
 *                                           of this one; origin: the hub's name of
 *                                           that worker (generation << 16 | index)
 *     'a' answered    u64 token, u16 status, str text
 *                                           the answer to this worker's forward
 *
 * Every request (recover, presence) carries an id the worker chose; its
 * answer carries it back. A forward carries a token (the origin worker's
 * connection id) that its answer carries back, and the hub's name of the
 * origin, which the answer names for the hub to route it. A stream is in order: what a side wrote first is
 * read first. The wire is the same program on both ends (the supervisor
 * forks its workers), so it has no version. */
#ifndef DX_WIRE_H
#define DX_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "broker/broker.h"

#define DX_WIRE_RECORD_MAX (64u << 20)   /* bytes of one record after its length */

enum dx_wire_type {
    DX_WIRE_HELLO = 'H', DX_WIRE_INTEREST = 'I', DX_WIRE_PUBLISH = 'P', DX_WIRE_RECOVER = 'R',
    DX_WIRE_JOIN = 'J', DX_WIRE_LEAVE = 'L', DX_WIRE_PRESENCE = 'Q',
    DX_WIRE_PUBLICATION = 'p', DX_WIRE_EVENT = 'e', DX_WIRE_RECOVERED = 'r',
    DX_WIRE_MEMBERS = 'm', DX_WIRE_DROPPED = 'd', DX_WIRE_LINK = 'k',
    DX_WIRE_FORWARD = 'F', DX_WIRE_ANSWER = 'A', DX_WIRE_FORWARDED = 'f', DX_WIRE_ANSWERED = 'a'
};

/* Bytes queued: data[head, tail) is what is left to send, or read and not
 * yet decoded. Zeroed is empty. */
typedef struct dx_wire_buf {
    uint8_t *data;
    size_t head, tail, cap;
} dx_wire_buf;

static inline size_t dx_wire_pending(const dx_wire_buf *b)
{
    return b->tail - b->head;
}

void dx_wire_buf_free(dx_wire_buf *b);

/* One send() of what b holds (MSG_NOSIGNAL: a gone peer is an error, not
 * a signal). Returns the bytes sent (0 when b is empty), or -1 with errno
 * (EAGAIN: the socket is full). */
ssize_t dx_wire_send(dx_wire_buf *b, int fd);

/* One recv() of at most max bytes into b. Returns the bytes read, 0 at
 * the end of the stream, or -1 with errno (EAGAIN: nothing now, ENOMEM).
 * Decoded records' pointers into b are invalid after it. */
ssize_t dx_wire_recv(dx_wire_buf *b, int fd, size_t max);

/* ---- encoding: each appends one record to b; 0, or -1 when out of
 * memory or past DX_WIRE_RECORD_MAX (b unchanged) ---- */

int dx_wire_hello(dx_wire_buf *b, const char *node, size_t len);
int dx_wire_interest(dx_wire_buf *b, const char *topic, size_t tlen, int on);
/* p->from, binary, topic and data; h the rule */
int dx_wire_publish(dx_wire_buf *b, const dx_publication *p, const dx_history_rule *h);
int dx_wire_recover(dx_wire_buf *b, uint32_t id, const char *topic, size_t tlen, const dx_pos *since,
                    const dx_history_rule *h);
/* m's conn and info (its node is not sent) */
int dx_wire_join(dx_wire_buf *b, const char *topic, size_t tlen, const dx_member *m);
int dx_wire_leave(dx_wire_buf *b, const char *topic, size_t tlen, uint64_t conn);
int dx_wire_presence(dx_wire_buf *b, uint32_t id, const char *topic, size_t tlen);
/* p with from as given (the hub sets it per worker) */
int dx_wire_publication(dx_wire_buf *b, const dx_publication *p, uint64_t from);
int dx_wire_event(dx_wire_buf *b, const char *topic, size_t tlen, int joined, const dx_member *m);
/* entries' topics are not sent (they are topic's) */
int dx_wire_recovered(dx_wire_buf *b, uint32_t id, int status, const char *topic, size_t tlen,
                      const dx_publication *entries, size_t n, const dx_pos *top);
int dx_wire_members(dx_wire_buf *b, uint32_t id, int ok, const dx_member *members, size_t n);
int dx_wire_dropped(dx_wire_buf *b, uint64_t n);
int dx_wire_link(dx_wire_buf *b, int up, const char *why);
/* type DX_WIRE_FORWARD (worker: the target) or DX_WIRE_FORWARDED (worker:
 * the origin) */
int dx_wire_forward(dx_wire_buf *b, int type, uint32_t worker, uint64_t token, const char *id, size_t idlen,
                    uint64_t seq, const uint8_t *body, size_t len);
/* type DX_WIRE_ANSWER (origin sent) or DX_WIRE_ANSWERED (origin not sent) */
int dx_wire_answer(dx_wire_buf *b, int type, uint32_t origin, uint64_t token, unsigned status, const char *text,
                   size_t len);

/* ---- decoding ---- */

/* One decoded record. Its pointers point into the buffer it came from:
 * valid until the next dx_wire_recv into that buffer. Which fields a type
 * fills is in the table above. */
typedef struct dx_wire_msg {
    int type;
    const char *topic;
    size_t tlen;
    dx_publication pub;            /* publish, publication (topic, data, binary, from, pos) */
    dx_pos pos;                    /* publication's position, recover's since, recovered's top */
    int has_pos;
    dx_history_rule rule;          /* publish, recover */
    dx_member member;              /* join, leave (conn, info), event (conn, node, info) */
    uint32_t id;                   /* recover, presence, recovered, members */
    int flag;                      /* interest on, event joined, recovered status, members ok, link up */
    const char *text;              /* hello's node, link's why, forward's id, answer's text (not
                                    * NUL-terminated) */
    size_t text_len;
    uint64_t count;                /* recovered's or members' n, dropped's n */
    uint32_t worker;               /* forward's worker, forwarded's and answer's origin */
    uint64_t token;                /* forward, forwarded, answer, answered */
    uint64_t seq;                  /* forward, forwarded (their id in text, body in data) */
    const uint8_t *data;           /* forward's and forwarded's body */
    size_t len;
    unsigned status;               /* answer, answered (their text in text) */
    const uint8_t *list, *list_end;  /* the n entries or members not yet read */
} dx_wire_msg;

/* Decodes the next whole record of in (and takes it off). Returns 1, 0
 * when in holds no whole record yet, or -1 when the stream is malformed
 * (a record too long, of an unknown type, or with bad fields). */
int dx_wire_next(dx_wire_buf *in, dx_wire_msg *m);

/* The next entry of a recovered record m: 1 with *p (its topic m's) and
 * *pos, 0 after the last, -1 when malformed. */
int dx_wire_entry(dx_wire_msg *m, dx_publication *p, dx_pos *pos);

/* The next member of a members record m: 1 with *out, 0 after the last,
 * -1 when malformed. */
int dx_wire_member(dx_wire_msg *m, dx_member *out);

#endif
