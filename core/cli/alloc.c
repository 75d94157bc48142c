/* See alloc.h. Every message handed to a handler is a fresh Lua string, and
 * the collector frees them in batches while new ones keep coming: glibc's
 * per-thread cache holds 7 blocks of a size, so most of those mallocs and
 * frees went the long way (about 290 instructions per message, more than
 * the core's whole read path). Blocks of up to DX_SMALL_MAX bytes (the
 * string of a message up to about 4 KiB) are sized as glibc sizes its
 * chunks (a multiple of 16 with 8 bytes of header: 16c - 8 bytes of room)
 * and, once freed, kept on a free list of their size (LIFO: the next
 * string reuses a block still in cache); the lists hold DX_CACHE_BYTES at
 * most in all, the rest goes back to free(). Every block is a malloc'ed
 * one, so any can be freed at any time. */
#include <stdlib.h>
#include <string.h>
#include "cli/alloc.h"

#define DX_CLASS_SHIFT 4
#define DX_CHUNK_HEADER 8                      /* glibc's size word before each block */
#define DX_SMALL_MAX 4096                      /* larger blocks: plain malloc */
#define DX_NCLASSES ((DX_SMALL_MAX + DX_CHUNK_HEADER + 15) >> DX_CLASS_SHIFT)
#define DX_CACHE_BYTES (4u * 1024 * 1024)

typedef struct dx_free_block {
    struct dx_free_block *next;
} dx_free_block;

struct dx_alloc_cache {
    dx_free_block *head[DX_NCLASSES + 1];      /* by class: size / 16, rounded up */
    size_t bytes;                              /* held by the lists */
};

/* Class c: blocks of 16c - 8 bytes, which glibc keeps in chunks of 16c.
 * (Rounding the size itself up to 16 would put a 120-byte userdata, or a
 * 56-byte table, in a chunk 16 bytes larger.) */
static size_t class_of(size_t size)
{
    return (size + DX_CHUNK_HEADER + (1u << DX_CLASS_SHIFT) - 1) >> DX_CLASS_SHIFT;
}

static size_t block_size(size_t c)
{
    return (c << DX_CLASS_SHIFT) - DX_CHUNK_HEADER;
}

static void *take(dx_alloc_cache *k, size_t size)
{
    if (size > DX_SMALL_MAX)
        return malloc(size);
    size_t c = class_of(size);
    dx_free_block *b = k->head[c];
    if (b == NULL)
        return malloc(block_size(c));
    k->head[c] = b->next;
    k->bytes -= c << DX_CLASS_SHIFT;
    return b;
}

static void give(dx_alloc_cache *k, void *p, size_t size)
{
    size_t c = class_of(size);
    if (size > DX_SMALL_MAX || k->bytes + (c << DX_CLASS_SHIFT) > DX_CACHE_BYTES) {
        free(p);
        return;
    }
    dx_free_block *b = p;
    b->next = k->head[c];
    k->head[c] = b;
    k->bytes += c << DX_CLASS_SHIFT;
}

void *dx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    dx_alloc_cache *k = ud;
    if (nsize == 0) {
        if (ptr)
            give(k, ptr, osize);
        return NULL;
    }
    if (ptr == NULL)                           /* osize is then a type tag, not a size */
        return take(k, nsize);
    if (osize > DX_SMALL_MAX && nsize > DX_SMALL_MAX)
        return realloc(ptr, nsize);
    if (nsize <= DX_SMALL_MAX && class_of(nsize) <= class_of(osize))
        return ptr;                            /* it fits where it is (a block may be
                                                * larger than its class: never smaller) */
    void *p = take(k, nsize);
    if (p == NULL)
        return NULL;                           /* Lua keeps ptr */
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    give(k, ptr, osize);
    return p;
}

dx_alloc_cache *dx_alloc_cache_new(void)
{
    return calloc(1, sizeof(dx_alloc_cache));
}

void dx_alloc_cache_free(dx_alloc_cache *k)
{
    if (k == NULL)
        return;
    for (size_t c = 0; c <= DX_NCLASSES; c++)
        while (k->head[c]) {
            dx_free_block *b = k->head[c];
            k->head[c] = b->next;
            free(b);
        }
    free(k);
}
