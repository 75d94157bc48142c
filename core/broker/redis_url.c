/* The Redis engine's configuration: defaults and redis:// URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker/redis.h"

void dx_redis_config_init(dx_redis_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->host, "127.0.0.1");
    cfg->port = 6379;
    strcpy(cfg->prefix, "duplex:");
    cfg->presence_ttl = 15;
    cfg->probe_interval = 1;
    cfg->probe_timeout = 3;
    cfg->reconnect_min = 0.1;
    cfg->reconnect_max = 5;
    cfg->max_pending = 64u << 20;
}

/* Reads a decimal in s[0..len) into *out, within [0, max]. */
static int number(const char *s, size_t len, long max, long *out)
{
    long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

#define FAIL(...) do { snprintf(err, cap, __VA_ARGS__); return -1; } while (0)

/* Seconds in s[0..len), more than 0 and at most a day. */
static int seconds(const char *s, size_t len, double *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *e;
    double v = strtod(buf, &e);
    if (*e || !(v > 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

/* The query of a URL: name=value pairs joined by '&' (no escapes):
 * prefix, presence_ttl, probe_interval, probe_timeout. */
static int options(const char *url, const char *q, dx_redis_config *cfg, char *err, size_t cap)
{
    while (*q) {
        const char *amp = strchr(q, '&'), *stop = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq == NULL)
            FAIL("redis URL '%s': '%.*s' is not name=value", url, (int)(stop - q), q);
        size_t nlen = (size_t)(eq - q), vlen = (size_t)(stop - eq - 1);
        const char *v = eq + 1;
        double *secs = nlen == 12 && memcmp(q, "presence_ttl", 12) == 0 ? &cfg->presence_ttl
                     : nlen == 14 && memcmp(q, "probe_interval", 14) == 0 ? &cfg->probe_interval
                     : nlen == 13 && memcmp(q, "probe_timeout", 13) == 0 ? &cfg->probe_timeout : NULL;
        if (secs) {
            if (seconds(v, vlen, secs) < 0)
                FAIL("redis URL '%s': %.*s needs seconds (more than 0)", url, (int)nlen, q);
        } else if (nlen == 6 && memcmp(q, "prefix", 6) == 0) {
            if (vlen == 0 || vlen >= sizeof cfg->prefix)
                FAIL("redis URL '%s': prefix needs 1 to %zu bytes", url, sizeof cfg->prefix - 1);
            memcpy(cfg->prefix, v, vlen);
            cfg->prefix[vlen] = '\0';
        } else {
            FAIL("redis URL '%s': unknown setting '%.*s' (prefix, presence_ttl, probe_interval, "
                 "probe_timeout)", url, (int)nlen, q);
        }
        q = amp ? amp + 1 : stop;
    }
    return 0;
}

int dx_redis_url_parse(const char *url, dx_redis_config *cfg, char *err, size_t cap)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        FAIL("redis URL '%s': expected redis://[:password@]host[:port][/db]", url);
    const char *p = url + sizeof scheme - 1, *end = p + strlen(p);
    const char *query = memchr(p, '?', (size_t)(end - p));
    if (query)
        end = query;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;                                  /* the last one: a password may hold '@' */
    char password[DX_REDIS_PASSWORD_MAX] = "";
    if (at) {
        if (*p != ':')
            FAIL("redis URL '%s': a user name is not supported (redis://:password@host)", url);
        size_t n = (size_t)(at - p - 1);
        if (n == 0 || n >= sizeof password)
            FAIL("redis URL '%s': the password is empty or longer than %zu bytes", url, sizeof password - 1);
        memcpy(password, p + 1, n);
        password[n] = '\0';
        p = at + 1;
    }
    const char *host = p, *host_end, *port_at = NULL;
    if (*p == '[') {                                 /* [v6 address] */
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (close == NULL)
            FAIL("redis URL '%s': '[' without ']' in the host", url);
        host = p + 1;
        host_end = close;
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                FAIL("redis URL '%s': unexpected text after the host", url);
            port_at = close + 2;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (host_end)
            port_at = host_end + 1;
        else
            host_end = auth_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0)
        FAIL("redis URL '%s': no host", url);
    if (hlen >= sizeof cfg->host)
        FAIL("redis URL '%s': host longer than %zu bytes", url, sizeof cfg->host - 1);
    long port = 6379, db = 0;
    if (port_at && (number(port_at, (size_t)(auth_end - port_at), 65535, &port) < 0 || port == 0))
        FAIL("redis URL '%s': the port is not a number in 1..65535", url);
    if (slash && slash + 1 < end && number(slash + 1, (size_t)(end - slash - 1), 1000000, &db) < 0)
        FAIL("redis URL '%s': the database is not a number (redis://host/0)", url);
    dx_redis_config q = *cfg;
    if (query && options(url, query + 1, &q, err, cap) < 0)
        return -1;
    *cfg = q;
    memcpy(cfg->host, host, hlen);
    cfg->host[hlen] = '\0';
    cfg->port = (int)port;
    cfg->db = (int)db;
    strcpy(cfg->password, password);
    return 0;
}
