/* The Redis engine's topics: a hash of the topics this node has interest
 * in or presence members on, each with its subscription state. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "broker/redis_internal.h"

dx_rtopic *dx_rt_find(const dx_rtable *tab, const char *name, size_t len)
{
    return (dx_rtopic *)dx_names_find(tab, name, len);
}

dx_rtopic *dx_rt_get(dx_rtable *tab, const char *name, size_t len)
{
    dx_rtopic *t = dx_rt_find(tab, name, len);
    return t ? t : dx_names_add(tab, offsetof(dx_rtopic, name), name, len);
}

static void destroy(dx_rtopic *t)
{
    for (size_t i = 0; i < t->nmembers; i++)
        dx_rmember_clear(&t->members[i]);
    for (size_t i = 0; i < t->nleaving; i++)
        dx_rmember_clear(&t->leaving[i]);
    free(t->members);
    free(t->leaving);
    free(t);
}

void dx_rt_release(dx_rtable *tab, dx_rtopic *t)
{
    if (t->interest || t->sub != DX_RT_NONE || t->nmembers || t->nleaving)
        return;
    dx_names_remove(tab, &t->named);
    destroy(t);
}

void dx_rt_free(dx_rtable *tab)
{
    for (dx_named *e = dx_names_first(tab), *next; e; e = next) {
        next = dx_names_next(tab, e);
        destroy((dx_rtopic *)e);
    }
    dx_names_free(tab);
}

void dx_rmember_clear(dx_rmember *m)
{
    free(m->node);
    m->node = NULL;
}

/* A copy of m in one block (node, then info). */
static int member_copy(dx_rmember *out, const dx_member *m, int with_info)
{
    size_t ilen = with_info ? m->info_len : 0;
    char *block = malloc(m->node_len + ilen + 1);
    if (block == NULL)
        return -1;
    memcpy(block, m->node, m->node_len);
    if (ilen)
        memcpy(block + m->node_len, m->info, ilen);
    *out = (dx_rmember){ .conn = m->conn, .node = block, .node_len = m->node_len,
                         .info = (uint8_t *)block + m->node_len, .info_len = ilen };
    return 0;
}

dx_rmember *dx_rt_member_find(dx_rtopic *t, const dx_member *m)
{
    for (size_t i = 0; i < t->nmembers; i++) {
        dx_rmember *x = &t->members[i];
        if (x->conn == m->conn && x->node_len == m->node_len && memcmp(x->node, m->node, m->node_len) == 0)
            return x;
    }
    return NULL;
}

int dx_rt_member_set(dx_rtopic *t, const dx_member *m)
{
    dx_rmember copy;
    if (member_copy(&copy, m, 1) < 0)
        return -1;
    dx_rmember *x = dx_rt_member_find(t, m);
    if (x) {
        dx_rmember_clear(x);
        *x = copy;
        return 0;
    }
    if (t->nmembers == t->members_cap) {
        size_t cap = t->members_cap ? t->members_cap * 2 : 4;
        dx_rmember *mm = realloc(t->members, cap * sizeof *mm);
        if (mm == NULL) {
            dx_rmember_clear(&copy);
            return -1;
        }
        t->members = mm;
        t->members_cap = cap;
    }
    t->members[t->nmembers++] = copy;
    return 0;
}

int dx_rt_member_del(dx_rtopic *t, const dx_member *m)
{
    dx_rmember *x = dx_rt_member_find(t, m);
    if (x == NULL)
        return 0;
    dx_rmember_clear(x);
    *x = t->members[--t->nmembers];
    return 1;
}

int dx_rt_leaving_add(dx_rtopic *t, const dx_member *m)
{
    if (t->nleaving == t->leaving_cap) {
        size_t cap = t->leaving_cap ? t->leaving_cap * 2 : 4;
        dx_rmember *l = realloc(t->leaving, cap * sizeof *l);
        if (l == NULL)
            return -1;
        t->leaving = l;
        t->leaving_cap = cap;
    }
    if (member_copy(&t->leaving[t->nleaving], m, 0) < 0)
        return -1;
    t->nleaving++;
    return 0;
}
