/* The Lua allocator of the `duplex` command (both VMs; see main.c): small
 * blocks recycled through per-size free lists, larger ones from the
 * process heap, whose pages are kept. */
#ifndef DX_CLI_ALLOC_H
#define DX_CLI_ALLOC_H

#include <stddef.h>

/* Freed blocks kept for reuse, by size class. */
typedef struct dx_alloc_cache dx_alloc_cache;

/* A cache, or NULL when out of memory. */
dx_alloc_cache *dx_alloc_cache_new(void);

/* Frees the cache and every block it keeps (after lua_close). */
void dx_alloc_cache_free(dx_alloc_cache *k);

/* A lua_Alloc: ud is a dx_alloc_cache. */
void *dx_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
