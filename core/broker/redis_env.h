/* The Redis engine's wire formats, with no I/O: the envelope every
 * message on a topic's channel is, and the member record presence keeps.
 *
 * Both are built by the server-side scripts too (redis_scripts.c), so
 * they stay simple: a field is "<decimal length>:<bytes>".
 *
 *   envelope  'D', kind, flag, then fields by kind:
 *             'p' publication        flag binary ('0'/'1'); node, data
 *             'h' positioned one     flag binary; node, epoch, offset (decimal), data,
 *                                    publisher (decimal: a connection of node)
 *             'j' join, 'l' leave    flag '0'; a member record's fields
 *   member    node, conn (decimal), info
 */
#ifndef DX_REDIS_ENV_H
#define DX_REDIS_ENV_H

#include <stddef.h>
#include <stdint.h>
#include "broker/broker.h"

typedef struct dx_renv {
    char kind;                   /* 'p', 'h', 'j', 'l' */
    int binary;
    const char *node;
    size_t node_len;
    dx_pos pos;                  /* 'h' */
    uint64_t from;               /* 'h': the publishing connection on node */
    const uint8_t *data;         /* 'p', 'h' */
    size_t len;
    dx_member member;            /* 'j', 'l' */
} dx_renv;

/* Reads an envelope of s[0..len); pointers point into s. 0, or -1 when
 * it is not one. */
int dx_renv_parse(const char *s, size_t len, dx_renv *e);

/* Reads a member record; pointers point into s. 0, or -1. */
int dx_rmember_parse(const char *s, size_t len, dx_member *m);

/* Reads one field at *p (before end) into *f, *flen and moves *p past
 * it: 0, or -1. */
int dx_renv_field(const char **p, const char *end, const char **f, size_t *flen);
/* Reads a decimal of s[0..len): 0, or -1. */
int dx_renv_decimal(const char *s, size_t len, uint64_t *out);

/* Bytes an unpositioned envelope of node and len bytes of data takes,
 * and writes one into out (that many bytes). */
size_t dx_renv_pub_size(size_t node_len, size_t len);
size_t dx_renv_pub(char *out, const char *node, size_t node_len, const uint8_t *data, size_t len,
                   int binary);

/* Bytes a member record takes, and writes one into out. */
size_t dx_rmember_size(size_t node_len, size_t info_len);
size_t dx_rmember_write(char *out, const char *node, size_t node_len, uint64_t conn, const uint8_t *info,
                  size_t info_len);

#endif
