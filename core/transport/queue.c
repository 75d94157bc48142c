/* Queued output and its pool of chunks. See queue.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "transport/queue.h"

static void trim_cb(struct ev_loop *loop, ev_timer *w, int revents);

void dx_chunks_init(dx_chunks *k, struct ev_loop *loop, void (*unhold)(void *ud, intptr_t token), void *ud)
{
    memset(k, 0, sizeof *k);
    k->loop = loop;
    k->unhold = unhold;
    k->ud = ud;
    ev_init(&k->trim, trim_cb);
    ev_timer_set(&k->trim, DX_SPARE_TRIM, DX_SPARE_TRIM);
    k->trim.data = k;
}

/* The pool of chunks of cap bytes, or NULL for a size not pooled. */
static dx_spares *pool_of(dx_chunks *k, size_t cap)
{
    return cap == DX_OUT_CHUNK ? &k->spare[0] : cap == DX_OUT_SMALL ? &k->spare[1] : NULL;
}

/* One of sp's spares, made empty, or NULL when it has none. */
static inline dx_out *take_spare(dx_spares *sp)
{
    dx_out *t = sp->list;
    if (t) {
        sp->list = t->next;
        if (--sp->n < sp->low)
            sp->low = sp->n;
        t->len = t->off = 0;
    }
    return t;
}

/* A chunk of cap bytes, its fields set: a spare when its size is pooled
 * and one is there, else a new one from malloc (a pooled size is counted,
 * nchunks, and keeps trim running until none is left). NULL when out of
 * memory. */
static dx_out *new_chunk(dx_chunks *k, size_t cap)
{
    dx_spares *sp = pool_of(k, cap);
    dx_out *t;
    if (sp && (t = take_spare(sp)) != NULL)  /* the common case: no malloc */
        return t;
    if ((t = malloc(sizeof *t + cap)) == NULL)
        return NULL;
    if (sp) {
        k->nchunks++;
        if (!ev_is_active(&k->trim)) {
            k->spare[0].low = k->spare[0].n;
            k->spare[1].low = k->spare[1].n;
            ev_timer_again(k->loop, &k->trim);
            ev_unref(k->loop);             /* chunks alone do not keep the loop running */
        }
    }
    t->shared = NULL;
    t->held = NULL;
    t->len = t->off = 0;
    t->cap = cap;
    return t;
}

/* Puts the new chunk t (NULL: out of memory) at the end of q with its
 * first n bytes queued; returns where they go, or NULL. */
static uint8_t *push(dx_queue *q, dx_out *t, size_t n)
{
    if (t == NULL)
        return NULL;
    dx_queue_append(q, t);
    t->len = n;
    q->bytes += n;
    return t->data;
}

uint8_t *dx_queue_grow(dx_queue *q, dx_chunks *k, size_t n)
{
    /* The common case first, without new_chunk's size test: a spare. */
    dx_out *t = n <= DX_OUT_CHUNK ? take_spare(&k->spare[0]) : NULL;
    return push(q, t ? t : new_chunk(k, n > DX_OUT_CHUNK ? n : DX_OUT_CHUNK), n);
}

uint8_t *dx_queue_fit(dx_queue *q, dx_chunks *k, size_t n)
{
    return push(q, new_chunk(k, n > DX_OUT_SMALL ? n : DX_OUT_SMALL), n);
}

uint8_t *dx_chunks_stage(dx_chunks *k)
{
    if (k->stage == NULL)
        k->stage = malloc(DX_TLS_STAGE);
    return k->stage;
}

void dx_shared_release(dx_shared *f)
{
    if (--f->refs == 0)
        free(f);
}

/* Lets go of a chunk: one of a pooled size goes back to its spares (while
 * there are fewer than DX_SPARE_MAX), anything else is freed. */
static void chunk_done(dx_chunks *k, dx_out *o)
{
    dx_spares *sp;
    if (o->cap != 0 && (sp = pool_of(k, o->cap)) != NULL) {   /* own bytes: the common case first */
        if (sp->n < DX_SPARE_MAX) {
            o->next = sp->list;
            sp->list = o;
            sp->n++;
            return;
        }
        k->nchunks--;
    } else if (o->shared) {
        dx_shared_release(o->shared);
    } else if (o->held) {
        k->unhold(k->ud, o->token);
    } else if (DX_OUT_IS_FILE(o)) {
        close((int)o->token);
    }
    free(o);
}

void dx_queue_consume(dx_queue *q, dx_chunks *k, size_t n)
{
    q->bytes -= n;
    while (n) {
        dx_out *o = q->head;
        size_t left = o->len - o->off;
        if (n < left) {
            o->off += n;
            return;
        }
        n -= left;
        q->head = o->next;
        chunk_done(k, o);
    }
    if (q->head == NULL)
        q->tail = NULL;
}

void dx_queue_clear(dx_queue *q, dx_chunks *k)
{
    dx_out *o = q->head;
    while (o) {
        dx_out *next = o->next;
        chunk_done(k, o);
        o = next;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

const uint8_t *dx_queue_record(const dx_queue *q, dx_chunks *k, size_t *len)
{
    const dx_out *o = q->head;
    *len = o->len - o->off;
    if (*len >= DX_TLS_STAGE || o->next == NULL)
        return DX_OUT_BYTES(o) + o->off;
    uint8_t *stage = dx_chunks_stage(k);
    if (stage == NULL)
        return NULL;
    size_t got = 0;
    for (; o && got < DX_TLS_STAGE && !DX_OUT_IS_FILE(o); o = o->next) {
        size_t n = o->len - o->off;
        if (n > DX_TLS_STAGE - got)
            n = DX_TLS_STAGE - got;
        memcpy(stage + got, DX_OUT_BYTES(o) + o->off, n);
        got += n;
    }
    *len = got;
    return stage;
}

static void stop_trimming(dx_chunks *k)
{
    if (ev_is_active(&k->trim)) {
        ev_ref(k->loop);
        ev_timer_stop(k->loop, &k->trim);
    }
}

/* Frees the spares that none took since the last run (low of each size). */
static void trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_chunks *k = w->data;
    for (int i = 0; i < 2; i++) {
        dx_spares *sp = &k->spare[i];
        for (int n = sp->low; n > 0 && sp->list; n--) {
            dx_out *o = sp->list;
            sp->list = o->next;
            sp->n--;
            k->nchunks--;
            free(o);
        }
        sp->low = sp->n;
    }
    if (k->nchunks == 0)                   /* none in queues either: none can come back */
        stop_trimming(k);
}

void dx_chunks_free(dx_chunks *k)
{
    stop_trimming(k);
    for (int i = 0; i < 2; i++) {
        dx_spares *sp = &k->spare[i];
        while (sp->list) {
            dx_out *next = sp->list->next;
            free(sp->list);
            sp->list = next;
        }
        sp->n = 0;
    }
    free(k->stage);
    k->stage = NULL;
}
