/* What an operator bounds: connections held at once (max_connections) and
 * from one address (max_connections_per_ip), and the rate of each peer's
 * messages (max_message_rate).
 *
 * Connections are counted from accept to free, whatever their state: a
 * limit on connections is a limit on descriptors and memory. A connection
 * past a limit is still accepted, up to DX_REFUSE_SLACK more, so that its
 * request can be answered 503 with a Retry-After (a closed socket tells a
 * client nothing); past those, it is closed at accept. The check is made
 * at each request, not at accept, so no connection carries a flag: while
 * the server holds more than a limit, requests are refused.
 *
 * Per address: a small hash of addresses to counts, keyed with a random
 * seed (a peer picks its IPv6 address, not its bucket), an entry freed
 * when its count drops to 0. It is kept only while the limit is on, and
 * then counts every connection in the server's list: when the limit is
 * turned on or off (server:configure), the next accept builds or frees it.
 *
 * The message rate is a token bucket per connection kept as one float,
 * the messages taken and not yet refilled (0: full), refilled on each read
 * for the time since the last one (last_rx, which the read path keeps
 * anyway): no clock of its own, no cost while the limit is off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "transport/internal.h"
#include "transport/log.h"

/* ---- connections by address ---- */

static size_t bucket_of(const dx_server *s, const uint8_t ip[16])
{
    uint64_t a, b;
    memcpy(&a, ip, 8);
    memcpy(&b, ip + 8, 8);
    uint64_t h = (a ^ s->ips_seed[0]) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29) ^ b ^ s->ips_seed[1]) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    return (size_t)h & (s->nips_buckets - 1);
}

static dx_ip_count *ip_find(const dx_server *s, const uint8_t ip[16])
{
    if (s->nips_buckets == 0)
        return NULL;
    for (dx_ip_count *e = s->ips[bucket_of(s, ip)]; e; e = e->next)
        if (memcmp(e->ip, ip, 16) == 0)
            return e;
    return NULL;
}

/* Doubles the buckets when addresses outnumber them. */
static int ip_grow(dx_server *s)
{
    size_t n = s->nips_buckets ? s->nips_buckets * 2 : 64;
    dx_ip_count **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    dx_ip_count **old = s->ips;
    size_t nold = s->nips_buckets;
    s->ips = b;
    s->nips_buckets = n;
    for (size_t i = 0; i < nold; i++) {
        dx_ip_count *e = old[i];
        while (e) {
            dx_ip_count *next = e->next;
            size_t k = bucket_of(s, e->ip);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(old);
    return 0;
}

/* The entry of ip, made with a count of 0 when there is none; NULL when
 * out of memory. */
static dx_ip_count *ip_get(dx_server *s, const uint8_t ip[16])
{
    dx_ip_count *e = ip_find(s, ip);
    if (e)
        return e;
    if (s->nips >= s->nips_buckets && ip_grow(s) < 0)
        return NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    memcpy(e->ip, ip, 16);
    size_t k = bucket_of(s, ip);
    e->next = s->ips[k];
    s->ips[k] = e;
    s->nips++;
    return e;
}

static void ip_drop(dx_server *s, dx_ip_count *e)
{
    dx_ip_count **pp = &s->ips[bucket_of(s, e->ip)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    s->nips--;
    free(e);
}

void dx_limits_free(dx_server *s)
{
    for (size_t i = 0; i < s->nips_buckets; i++) {
        dx_ip_count *e = s->ips[i];
        while (e) {
            dx_ip_count *next = e->next;
            free(e);
            e = next;
        }
    }
    free(s->ips);
    s->ips = NULL;
    s->nips_buckets = s->nips = 0;
    s->ips_on = 0;
}

/* Turns the table on (counting every connection held) or off. Returns 0,
 * or -1 out of memory (the table is then off). */
static int ips_switch(dx_server *s, int on)
{
    dx_limits_free(s);
    if (!on)
        return 0;
    if (s->ips_seed[0] == 0 && s->ips_seed[1] == 0 &&
        getrandom(s->ips_seed, sizeof s->ips_seed, GRND_NONBLOCK) != (ssize_t)sizeof s->ips_seed) {
        s->ips_seed[0] = (uint64_t)(uintptr_t)s ^ (uint64_t)getpid() << 32;
        s->ips_seed[1] = (uint64_t)(ev_time() * 1e9);
    }
    for (dx_conn *c = s->conns; c; c = c->next) {
        dx_ip_count *e = ip_get(s, c->remote.ip);
        if (e == NULL) {
            dx_limits_free(s);
            return -1;
        }
        e->n++;
    }
    s->ips_on = 1;
    return 0;
}

/* Counts a refusal and says so on stderr, at most one line every 10 s. */
static void note_refusal(dx_server *s, const char *what)
{
    ev_tstamp now = ev_now(s->loop);
    if (s->limit_logged_at != 0 && now - s->limit_logged_at < 10) {
        s->limit_unlogged++;
        return;
    }
    if (s->limit_unlogged)
        dx_log(DX_LOG_WARN, "refusing", 0, NULL, "refusing connections: %s (%llu more refused in the last %.0f s)",
               what, (unsigned long long)s->limit_unlogged, now - s->limit_logged_at);
    else
        dx_log(DX_LOG_WARN, "refusing", 0, NULL, "refusing connections: %s", what);
    s->limit_logged_at = now;
    s->limit_unlogged = 0;
}

int dx_limits_accept(dx_server *s, const dx_addr *a)
{
    const dx_config *cfg = &s->cfg;
    if (cfg->max_connections && s->nconns >= cfg->max_connections + DX_REFUSE_SLACK) {
        s->stats.refused_at_accept++;
        note_refusal(s, "max_connections reached");
        return -1;
    }
    int on = cfg->max_connections_per_ip != 0;
    if (on != s->ips_on && ips_switch(s, on) < 0) {
        dx_log(DX_LOG_ERROR, "out_of_memory", 0, NULL, "out of memory counting connections by address");
        return -1;
    }
    if (!on)
        return 0;
    dx_ip_count *e = ip_get(s, a->ip);
    if (e == NULL)
        return -1;
    if (e->n >= cfg->max_connections_per_ip + DX_REFUSE_SLACK) {
        s->stats.refused_at_accept++;
        note_refusal(s, "max_connections_per_ip reached");
        return -1;
    }
    e->n++;
    return 0;
}

void dx_limits_release(dx_server *s, const dx_addr *a)
{
    if (!s->ips_on)
        return;
    dx_ip_count *e = ip_find(s, a->ip);
    if (e && --e->n == 0)
        ip_drop(s, e);
}

const char *dx_limits_refusal(dx_conn *c)
{
    dx_server *s = c->srv;
    const dx_config *cfg = &s->cfg;
    if (cfg->max_connections && s->nconns > cfg->max_connections) {
        s->stats.refused_full++;
        note_refusal(s, "max_connections reached");
        return "too many connections: try again later";
    }
    if (cfg->max_connections_per_ip && s->ips_on) {
        const dx_ip_count *e = ip_find(s, c->remote.ip);
        if (e && e->n > cfg->max_connections_per_ip) {
            s->stats.refused_per_ip++;
            note_refusal(s, "max_connections_per_ip reached");
            return "too many connections from your address: try again later";
        }
    }
    return NULL;
}

void dx_limits_origin_refused(dx_conn *c)
{
    c->srv->stats.refused_origin++;
}

/* ---- the message rate ---- */

void dx_rate_refill(dx_conn *c, ev_tstamp now)
{
    double rate = (double)c->srv->cfg.max_message_rate;
    double debt = rate > 0 ? c->rate_debt - (now - c->last_rx) * rate : 0;
    c->rate_debt = debt > 0 ? (float)debt : 0;
}

/* 1 when c's bucket has a message for the next one. */
static int bucket_has_one(const dx_conn *c)
{
    return c->rate_debt + 1 <= (float)c->srv->cfg.message_burst;
}

int dx_rate_closes(const dx_conn *c)
{
    return !c->srv->cfg.message_rate_drop && !bucket_has_one(c);
}

int dx_rate_take(dx_conn *c)
{
    dx_server *s = c->srv;
    if (bucket_has_one(c)) {
        c->rate_debt += 1;
        return 1;
    }
    s->stats.rate_limited++;
    if (!s->cfg.message_rate_drop) {
        s->stats.rate_closes++;
        dx_conn_fail(c, DX_CLOSE_POLICY, "message rate exceeded");
    }
    return 0;
}
