/* Queued output: a list of chunks waiting for a socket, and the pool of
 * small chunks they are taken from. The server's connections and the
 * client's both queue their frames here; what is above (marking a
 * connection to flush, backpressure) and below (sendmsg, sendfile, TLS)
 * stays theirs. */
#ifndef DX_TRANSPORT_QUEUE_H
#define DX_TRANSPORT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <ev.h>

#define DX_OUT_CHUNK 2048             /* output chunk; small sends share one */
#define DX_OUT_SMALL 320              /* a fitted chunk up to this: a handshake's response, a close */
#define DX_IOV_MAX 64                 /* chunks handed to one sendmsg */
#define DX_SPARE_MAX 1024             /* chunks of a size a pool keeps for reuse (2 MiB, 376 KiB) */
#define DX_SPARE_TRIM 2.0             /* seconds: spares none took in that long are freed */
#define DX_TLS_STAGE (16 * 1024)      /* one TLS record: small queued chunks are gathered into it */

/* A frame queued for many connections at once (a publish): one buffer,
 * freed when the last queue lets go of it. */
typedef struct dx_shared {
    size_t refs;
    size_t len;
    uint8_t data[];
} dx_shared;

/* One piece of queued output: bytes of its own (small frames are appended
 * to the tail chunk while it has room, so a burst of sends costs one
 * allocation), a reference to a shared frame, a large payload held by
 * the layer above (not copied; the pool's unhold lets go of it), or a
 * file: the bytes [off, len) of the open descriptor in token, sent from
 * the file (sendfile, or a record at a time under TLS), never read into
 * memory. */
typedef struct dx_out {
    struct dx_out *next;
    dx_shared *shared;   /* a shared frame, or NULL */
    const uint8_t *held; /* a held payload, or NULL; neither: the bytes are in data[] */
    intptr_t token;      /* the holder's token for held */
    size_t len;          /* bytes in data[], shared->data or held */
    size_t off;          /* bytes already sent */
    size_t cap;          /* room in data[]: 0 for shared and held */
    uint8_t data[];
} dx_out;

/* A file chunk is the one kind with neither a buffer nor room of its own. */
#define DX_OUT_IS_FILE(o) ((o)->cap == 0 && (o)->shared == NULL && (o)->held == NULL)
/* Where the bytes of o are; not for a file chunk. */
#define DX_OUT_BYTES(o) ((o)->shared ? (o)->shared->data : (o)->held ? (o)->held : (o)->data)

/* One connection's queue: head to tail, and the bytes in it not yet sent. */
typedef struct dx_queue {
    dx_out *head, *tail;
    size_t bytes;
} dx_queue;

/* Freed chunks of one size, kept for the next queue that needs one. */
typedef struct dx_spares {
    dx_out *list;
    int n;
    int low;                       /* the fewest since trim last ran */
} dx_spares;

/* The chunks of one loop's queues (a server's, a client context's): the
 * chunks of the two pooled sizes freed by one queue are taken by the next
 * (while fewer than DX_SPARE_MAX of a size are kept; trim frees those a
 * burst left unused), and the stage where a TLS record is gathered.
 * DX_OUT_CHUNK chunks carry sends; DX_OUT_SMALL ones what goes into an
 * empty queue on its own, a handshake's 101 or a close frame: allocated
 * and freed with every connection, those fragmented the heap between the
 * connections that stay (30 bytes a connection at 10 000, 256 handshakes
 * at a time), where a pool hands the same few round. */
typedef struct dx_chunks {
    struct ev_loop *loop;
    dx_spares spare[2];            /* [0] DX_OUT_CHUNK, [1] DX_OUT_SMALL */
    size_t nchunks;                /* pooled-size chunks alive: spares and queued */
    ev_timer trim;                 /* runs every DX_SPARE_TRIM while nchunks is not 0 */
    uint8_t *stage;                /* DX_TLS_STAGE bytes, made on first use */
    void (*unhold)(void *ud, intptr_t token);   /* a held payload was sent or dropped */
    void *ud;
} dx_chunks;

void dx_chunks_init(dx_chunks *k, struct ev_loop *loop, void (*unhold)(void *ud, intptr_t token), void *ud);
/* Frees the spares and the stage; every queue must be empty or freed. */
void dx_chunks_free(dx_chunks *k);
/* The stage (DX_TLS_STAGE bytes), made on first use; NULL out of memory. */
uint8_t *dx_chunks_stage(dx_chunks *k);

/* Room for n more bytes at the end of q: in the tail chunk when it has
 * room, else in a new chunk (dx_queue_grow). NULL when out of memory. */
uint8_t *dx_queue_grow(dx_queue *q, dx_chunks *k, size_t n);
static inline uint8_t *dx_queue_reserve(dx_queue *q, dx_chunks *k, size_t n)
{
    dx_out *t = q->tail;
    /* a shared or held tail has cap 0: never written into */
    if (t == NULL || t->cap == 0 || t->cap - t->len < n)
        return dx_queue_grow(q, k, n);
    uint8_t *p = t->data + t->len;
    t->len += n;
    q->bytes += n;
    return p;
}
/* Like dx_queue_reserve, but into an empty queue the n bytes go in a chunk
 * of their own (dx_queue_fit): a DX_OUT_SMALL one up to that size, else
 * one of their size, freed once sent. */
uint8_t *dx_queue_fit(dx_queue *q, dx_chunks *k, size_t n);
static inline uint8_t *dx_queue_reserve_fitted(dx_queue *q, dx_chunks *k, size_t n)
{
    return q->tail ? dx_queue_reserve(q, k, n) : dx_queue_fit(q, k, n);
}
/* Appends o, a piece with no bytes of its own (cap 0): a shared frame
 * (its reference taken by the caller), a held payload or a file (token:
 * the holder's token or the descriptor, which the queue then owns). */
/* Puts o at the end of q (its bytes are the caller's to count). */
static inline void dx_queue_append(dx_queue *q, dx_out *o)
{
    o->next = NULL;
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
}

static inline void dx_queue_piece(dx_queue *q, dx_out *o, dx_shared *shared, const uint8_t *held,
                                  intptr_t token, size_t len)
{
    o->shared = shared;
    o->held = held;
    o->token = token;
    o->len = len;
    o->off = o->cap = 0;
    dx_queue_append(q, o);
    q->bytes += len;
}
void dx_shared_release(dx_shared *f);
/* Drops n sent bytes from the head of q. */
void dx_queue_consume(dx_queue *q, dx_chunks *k, size_t n);
/* Drops everything in q. */
void dx_queue_clear(dx_queue *q, dx_chunks *k);
/* The chunks from the head up to the first file (at most DX_IOV_MAX) as
 * iov[]: one sendmsg's worth. Returns how many; 0 when the head is a file
 * or q is empty. */
static inline int dx_queue_iov(const dx_queue *q, struct iovec *iov)
{
    int n = 0;
    for (const dx_out *o = q->head; o && n < DX_IOV_MAX && !DX_OUT_IS_FILE(o); o = o->next, n++) {
        iov[n].iov_base = (void *)(DX_OUT_BYTES(o) + o->off);   /* only read */
        iov[n].iov_len = o->len - o->off;
    }
    return n;
}
/* TLS: the head's next record, up to DX_TLS_STAGE bytes or the first file:
 * the head chunk's own bytes when it is large or alone, else the small
 * chunks gathered into the stage. Sets *len; NULL out of memory. Not for
 * a file at the head. */
const uint8_t *dx_queue_record(const dx_queue *q, dx_chunks *k, size_t *len);

#endif
