/* A table of named entries, shared by the broker's engines (the memory
 * engine's topics, the hub's, the Redis engine's): an entry is a struct
 * that starts with a dx_named and keeps its name's bytes itself (a
 * flexible array at its end); the table finds it by name, chains it in a
 * bucket (FNV-1a, power-of-two buckets, doubled as entries come) and
 * walks every entry. It allocates only its buckets: entries are the
 * caller's to make and free. */
#ifndef DX_NAMES_H
#define DX_NAMES_H
#include <stddef.h>
#include <stdint.h>

typedef struct dx_named {
    struct dx_named *next;         /* in its bucket */
    uint32_t hash;
    size_t len;
    const char *name;              /* len bytes (and a NUL), in the entry */
} dx_named;

typedef struct dx_names {
    dx_named **buckets;
    size_t nbuckets, count;
} dx_names;

dx_named *dx_names_find(const dx_names *t, const char *name, size_t len);

/* Makes an entry: a zeroed block of head + len + 1 bytes (head: the
 * offset of the struct's name array, offsetof(type, name)), name copied
 * there, and adds it. Returns it, or NULL when out of memory. */
void *dx_names_add(dx_names *t, size_t head, const char *name, size_t len);

/* Takes e out of the table (its memory stays the caller's). */
void dx_names_remove(dx_names *t, dx_named *e);

/* The entries one by one, in no order: the first, then the one after e
 * (NULL after the last). e may be removed once its next is known. */
dx_named *dx_names_first(const dx_names *t);
dx_named *dx_names_next(const dx_names *t, const dx_named *e);

/* Frees the buckets (not the entries). */
void dx_names_free(dx_names *t);

#endif
