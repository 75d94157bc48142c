/* The Redis engine's envelope and member record (see redis_env.h). */
#include <stdio.h>
#include <string.h>
#include "broker/redis_env.h"

/* Reads one field at *p (before end): its bytes in *f, *flen. */
int dx_renv_field(const char **p, const char *end, const char **f, size_t *flen)
{
    size_t n = 0, digits = 0;
    const char *q = *p;
    while (q < end && *q >= '0' && *q <= '9' && digits < 10) {
        n = n * 10 + (size_t)(*q++ - '0');
        digits++;
    }
    if (digits == 0 || q >= end || *q != ':' || (size_t)(end - q - 1) < n)
        return -1;
    *f = q + 1;
    *flen = n;
    *p = q + 1 + n;
    return 0;
}

int dx_renv_decimal(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int member_fields(const char **p, const char *end, dx_member *m)
{
    const char *conn, *info;
    size_t clen;
    if (dx_renv_field(p, end, &m->node, &m->node_len) < 0 || dx_renv_field(p, end, &conn, &clen) < 0
        || dx_renv_decimal(conn, clen, &m->conn) < 0 || dx_renv_field(p, end, &info, &m->info_len) < 0)
        return -1;
    m->info = (const uint8_t *)info;
    return 0;
}

int dx_rmember_parse(const char *s, size_t len, dx_member *m)
{
    const char *p = s, *end = s + len;
    return member_fields(&p, end, m) < 0 || p != end ? -1 : 0;
}

int dx_renv_parse(const char *s, size_t len, dx_renv *e)
{
    const char *p = s + 3, *end = s + len, *f;
    size_t flen;
    if (len < 3 || s[0] != 'D' || (s[2] != '0' && s[2] != '1'))
        return -1;
    memset(e, 0, sizeof *e);
    e->kind = s[1];
    e->binary = s[2] == '1';
    switch (e->kind) {
    case 'p':
    case 'h':
        if (dx_renv_field(&p, end, &e->node, &e->node_len) < 0)
            return -1;
        if (e->kind == 'h') {
            if (dx_renv_field(&p, end, &f, &flen) < 0 || flen == 0 || flen > DX_EPOCH_MAX)
                return -1;
            memcpy(e->pos.epoch, f, flen);
            e->pos.epoch[flen] = '\0';
            if (dx_renv_field(&p, end, &f, &flen) < 0 || dx_renv_decimal(f, flen, &e->pos.offset) < 0)
                return -1;
        }
        if (dx_renv_field(&p, end, &f, &e->len) < 0)
            return -1;
        e->data = (const uint8_t *)f;
        if (e->kind == 'h' && (dx_renv_field(&p, end, &f, &flen) < 0 || dx_renv_decimal(f, flen, &e->from) < 0))
            return -1;
        break;
    case 'j':
    case 'l':
        if (member_fields(&p, end, &e->member) < 0)
            return -1;
        e->node = e->member.node;
        e->node_len = e->member.node_len;
        break;
    default:
        return -1;
    }
    return p == end ? 0 : -1;
}

/* Writes the field header "<len>:" at out; returns its bytes. */
static size_t head(char *out, size_t len)
{
    return (size_t)sprintf(out, "%zu:", len);
}

static size_t put(char *out, const void *p, size_t len)
{
    size_t n = head(out, len);
    if (len)
        memcpy(out + n, p, len);
    return n + len;
}

size_t dx_renv_pub_size(size_t node_len, size_t len)
{
    return 3 + 2 * 21 + node_len + len;
}

size_t dx_renv_pub(char *out, const char *node, size_t node_len, const uint8_t *data, size_t len,
                   int binary)
{
    out[0] = 'D';
    out[1] = 'p';
    out[2] = binary ? '1' : '0';
    size_t n = 3 + put(out + 3, node, node_len);
    return n + put(out + n, data, len);
}

size_t dx_rmember_size(size_t node_len, size_t info_len)
{
    return 3 * 21 + 20 + node_len + info_len;
}

size_t dx_rmember_write(char *out, const char *node, size_t node_len, uint64_t conn, const uint8_t *info,
                  size_t info_len)
{
    char num[24];
    int d = snprintf(num, sizeof num, "%llu", (unsigned long long)conn);
    size_t n = put(out, node, node_len);
    n += put(out + n, num, (size_t)d);
    return n + put(out + n, info, info_len);
}
