/* The broker's table of named entries (names.h). */
#include <stdlib.h>
#include <string.h>
#include "broker/names.h"

static uint32_t hash_of(const char *p, size_t len)
{
    uint32_t h = 2166136261u;                    /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

dx_named *dx_names_find(const dx_names *t, const char *name, size_t len)
{
    if (t->nbuckets == 0)
        return NULL;
    uint32_t h = hash_of(name, len);
    for (dx_named *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

static int grow(dx_names *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 16;
    dx_named **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (dx_named *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

void *dx_names_add(dx_names *t, size_t head, const char *name, size_t len)
{
    if (t->count >= t->nbuckets && grow(t) < 0)
        return NULL;
    char *block = calloc(1, head + len + 1);
    if (block == NULL)
        return NULL;
    dx_named *e = (dx_named *)block;
    memcpy(block + head, name, len);
    e->name = block + head;
    e->len = len;
    e->hash = hash_of(name, len);
    e->next = t->buckets[e->hash & (t->nbuckets - 1)];
    t->buckets[e->hash & (t->nbuckets - 1)] = e;
    t->count++;
    return block;
}

void dx_names_remove(dx_names *t, dx_named *e)
{
    for (dx_named **p = &t->buckets[e->hash & (t->nbuckets - 1)]; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            t->count--;
            return;
        }
}

static dx_named *from_bucket(const dx_names *t, size_t i)
{
    for (; i < t->nbuckets; i++)
        if (t->buckets[i])
            return t->buckets[i];
    return NULL;
}

dx_named *dx_names_first(const dx_names *t)
{
    return from_bucket(t, 0);
}

dx_named *dx_names_next(const dx_names *t, const dx_named *e)
{
    return e->next ? e->next : from_bucket(t, (e->hash & (t->nbuckets - 1)) + 1);
}

void dx_names_free(dx_names *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}
