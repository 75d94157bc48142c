/* Unit tests for core/transport/queue.c: the output queue both the
 * server's connections and the client's use. */
#include <fcntl.h>
#include "unit.h"
#include "transport/queue.h"

static intptr_t unheld[8];
static int nunheld;

static void unhold(void *ud, intptr_t token)
{
    CHECK(ud == (void *)unheld);
    if (nunheld < 8)
        unheld[nunheld++] = token;
}

/* Fills p[0..n) with bytes that tell where they are: seed, seed+1, ... */
static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i);
}

static void test_small_sends_share_a_chunk(dx_chunks *k)
{
    dx_queue q = { 0 };
    uint8_t *a = dx_queue_reserve(&q, k, 100);
    uint8_t *b = dx_queue_reserve(&q, k, 200);
    CHECK(a && b);
    CHECK(b == a + 100);                        /* the same chunk, end to end */
    CHECK(q.head == q.tail);
    CHECK_EQ(q.bytes, 300);
    CHECK_EQ(k->nchunks, 1);
    uint8_t *c = dx_queue_reserve(&q, k, DX_OUT_CHUNK - 300 + 1);   /* one byte too many */
    CHECK(c != NULL && q.head != q.tail);
    CHECK_EQ(q.tail->cap, DX_OUT_CHUNK);
    CHECK_EQ(k->nchunks, 2);
    struct iovec iov[DX_IOV_MAX];
    CHECK_EQ(dx_queue_iov(&q, iov), 2);
    CHECK_EQ(iov[0].iov_len, 300);
    CHECK_EQ(iov[1].iov_len, DX_OUT_CHUNK - 299);
    dx_queue_consume(&q, k, 250);               /* part of the head */
    CHECK_EQ(q.bytes, DX_OUT_CHUNK + 1 - 250);
    CHECK_EQ(dx_queue_iov(&q, iov), 2);
    CHECK_EQ(iov[0].iov_len, 50);
    CHECK(iov[0].iov_base == a + 250);
    dx_queue_consume(&q, k, 50 + 10);           /* the head, and into the next */
    CHECK(q.head == q.tail);
    CHECK_EQ(k->spare[0].n, 1);                     /* the sent chunk waits for the next queue */
    CHECK_EQ(dx_queue_iov(&q, iov), 1);
    CHECK(iov[0].iov_base == c + 10);
    dx_queue_consume(&q, k, q.bytes);
    CHECK(q.head == NULL && q.tail == NULL && q.bytes == 0);
    CHECK_EQ(k->spare[0].n, 2);
    CHECK_EQ(dx_queue_iov(&q, iov), 0);
    /* The next sends take the spares: no chunk more. */
    dx_queue_reserve(&q, k, 10);
    CHECK_EQ(k->spare[0].n, 1);
    CHECK_EQ(k->nchunks, 2);
    dx_queue_clear(&q, k);
    CHECK_EQ(k->spare[0].n, 2);
    CHECK(q.head == NULL && q.bytes == 0);
}

static void test_large_and_fitted(dx_chunks *k)
{
    dx_queue q = { 0 };
    int spares = k->spare[0].n;
    size_t chunks = k->nchunks;
    uint8_t *p = dx_queue_reserve_fitted(&q, k, 129);   /* an empty queue: a small chunk */
    CHECK(p && q.head->cap == DX_OUT_SMALL && q.head->len == 129);
    CHECK_EQ(k->nchunks, chunks + 1);
    uint8_t *r = dx_queue_reserve_fitted(&q, k, 10);    /* not empty: as dx_queue_reserve, */
    CHECK(r == p + 129 && q.tail == q.head);             /* into the small chunk's room */
    uint8_t *big = dx_queue_reserve(&q, k, 3 * DX_OUT_CHUNK);
    CHECK(big && q.tail->cap == 3 * DX_OUT_CHUNK);
    dx_queue_clear(&q, k);
    CHECK_EQ(k->spare[1].n, 1);                 /* the small one waits for the next handshake */
    CHECK_EQ(k->spare[0].n, spares);            /* the large one was freed */
    p = dx_queue_reserve_fitted(&q, k, 300);
    CHECK_EQ(k->spare[1].n, 0);                 /* taken again: no malloc */
    CHECK_EQ(k->nchunks, chunks + 1);
    dx_queue_clear(&q, k);
    p = dx_queue_reserve_fitted(&q, k, DX_OUT_SMALL + 1);   /* larger: a chunk of its size */
    CHECK(p && q.head->cap == DX_OUT_SMALL + 1);
    dx_queue_clear(&q, k);
    CHECK_EQ(k->nchunks, chunks + 1);
    CHECK_EQ(k->spare[1].n, 1);
}

static void test_pieces(dx_chunks *k)
{
    dx_queue q = { 0 };
    dx_shared *f = malloc(sizeof *f + 5);
    f->refs = 2;                                /* another queue holds it too */
    f->len = 5;
    memcpy(f->data, "hello", 5);
    static const uint8_t held[] = "held bytes";
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    memcpy(dx_queue_reserve(&q, k, 2), "ab", 2);
    dx_queue_piece(&q, malloc(sizeof(dx_out)), f, NULL, 0, f->len);
    dx_queue_piece(&q, malloc(sizeof(dx_out)), NULL, held, 42, 10);
    memcpy(dx_queue_reserve(&q, k, 2), "cd", 2);   /* a piece is never written into */
    dx_queue_piece(&q, malloc(sizeof(dx_out)), NULL, NULL, fds[0], 1000);
    memcpy(dx_queue_reserve(&q, k, 2), "ef", 2);
    CHECK_EQ(q.bytes, 2 + 5 + 10 + 2 + 1000 + 2);
    struct iovec iov[DX_IOV_MAX];
    CHECK_EQ(dx_queue_iov(&q, iov), 4);         /* up to the file */
    CHECK(memcmp(iov[1].iov_base, "hello", 5) == 0);
    CHECK(iov[2].iov_base == held);
    CHECK(memcmp(iov[3].iov_base, "cd", 2) == 0);
    size_t len;
    const uint8_t *rec = dx_queue_record(&q, k, &len);   /* small ones gathered, up to the file */
    CHECK(rec == k->stage);
    CHECK_EQ(len, 19);
    CHECK(rec && memcmp(rec, "abhelloheld bytescd", 19) == 0);
    dx_queue_consume(&q, k, 3);                 /* into the shared frame */
    CHECK_EQ(f->refs, 2);
    dx_queue_consume(&q, k, 4 + 10);            /* past it and the held payload */
    CHECK_EQ(f->refs, 1);
    CHECK_EQ(nunheld, 1);
    CHECK_EQ(unheld[0], 42);
    rec = dx_queue_record(&q, k, &len);         /* "cd" and a file next: gathered, stops there */
    CHECK_EQ(len, 2);
    dx_queue_consume(&q, k, 2);
    CHECK(DX_OUT_IS_FILE(q.head));
    CHECK_EQ(dx_queue_iov(&q, iov), 0);
    dx_queue_clear(&q, k);                      /* the file is closed with its chunk */
    CHECK_EQ(fcntl(fds[0], F_GETFD), -1);
    close(fds[1]);
    dx_shared_release(f);
}

static void test_record_takes_a_large_head_in_place(dx_chunks *k)
{
    dx_queue q = { 0 };
    uint8_t *big = dx_queue_reserve(&q, k, DX_TLS_STAGE + 100);
    fill(big, DX_TLS_STAGE + 100, 7);
    dx_queue_reserve(&q, k, 10);
    size_t len;
    CHECK(dx_queue_record(&q, k, &len) == big);   /* no copy */
    CHECK_EQ(len, DX_TLS_STAGE + 100);
    dx_queue_consume(&q, k, DX_TLS_STAGE + 100);
    CHECK(dx_queue_record(&q, k, &len) == q.head->data);   /* alone: no copy either */
    CHECK_EQ(len, 10);
    /* Many small chunks: one record's worth gathered, in order. */
    dx_queue_clear(&q, k);
    for (int i = 0; i < 20; i++)
        fill(dx_queue_reserve(&q, k, DX_OUT_CHUNK), DX_OUT_CHUNK, (uint8_t)(i * DX_OUT_CHUNK));
    const uint8_t *rec = dx_queue_record(&q, k, &len);
    CHECK_EQ(len, DX_TLS_STAGE);
    int ok = 1;
    for (size_t i = 0; i < len; i++)
        ok &= rec[i] == (uint8_t)i;
    CHECK(ok);
    dx_queue_clear(&q, k);
}

static void test_trim(dx_chunks *k)
{
    dx_queue q = { 0 };
    for (int i = 0; i < 5; i++)
        dx_queue_reserve(&q, k, DX_OUT_CHUNK);  /* takes the spares, then new chunks */
    dx_queue_clear(&q, k);
    int spares = k->spare[0].n;
    CHECK(spares >= 5);
    CHECK(ev_is_active(&k->trim));
    /* A run frees the spares none took since the last; none was taken
     * below spare_low here, so the next run frees them all. */
    k->spare[0].low = 2;
    k->spare[1].low = 0;
    ev_invoke(k->loop, &k->trim, EV_TIMER);
    CHECK_EQ(k->spare[0].n, spares - 2);
    CHECK_EQ(k->spare[1].n, 1);                 /* the small spare: none of it was unused */
    ev_invoke(k->loop, &k->trim, EV_TIMER);
    CHECK_EQ(k->spare[0].n, 0);
    CHECK_EQ(k->spare[1].n, 0);
    CHECK_EQ(k->nchunks, 0);
    CHECK(!ev_is_active(&k->trim));             /* nothing left: it stops */
}

int main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    dx_chunks k;
    dx_chunks_init(&k, loop, unhold, unheld);
    test_small_sends_share_a_chunk(&k);
    test_large_and_fitted(&k);
    test_pieces(&k);
    test_record_takes_a_large_head_in_place(&k);
    test_trim(&k);
    dx_chunks_free(&k);
    return unit_report("test_queue");
}
