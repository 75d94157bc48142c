/* TLS for a server: OpenSSL contexts built from certificate and key files,
 * SNI among several certificates, and reloading them in place.
 *
 * A dx_tls holds a copy of its configuration (file names, not their
 * contents) and the contexts last built from it. Building reads the files;
 * a reload builds new contexts and swaps them in only when every file was
 * good, so a bad file never takes the working certificates away.
 * Connections keep the context they started with (OpenSSL counts the
 * references), so a reload never disturbs them. */
#ifndef DX_TLS_H
#define DX_TLS_H

#include <stddef.h>

typedef struct dx_tls dx_tls;

/* A certificate chosen by SNI: names are exact host names or wildcards of
 * one label ("*.example.com" matches "a.example.com", not "example.com"). */
typedef struct dx_tls_site {
    const char *const *names;
    size_t nnames;
    const char *cert;            /* PEM file: the certificate, then its chain */
    const char *key;             /* PEM file: its private key */
} dx_tls_site;

typedef struct dx_tls_config {
    const char *cert, *key;      /* the default certificate; NULL: the first site's */
    const char *ca;              /* PEM file of CAs that must have signed a client
                                  * certificate; NULL: no client certificates */
    const char *ciphers;         /* OpenSSL cipher list for TLS 1.2; NULL: OpenSSL's */
    int min_version;             /* 12 (default) or 13 */
    const dx_tls_site *sites;
    size_t nsites;
} dx_tls_config;

/* A copy of cfg (strings included), with no context built yet. NULL when
 * out of memory. */
dx_tls *dx_tls_new(const dx_tls_config *cfg);

/* Builds the contexts from the files (again, on a reload) and swaps them
 * in. Returns 0, or -1 with a one-line message naming the option and the
 * file in err; the contexts in use, if any, stay. */
int dx_tls_load(dx_tls *t, char *err, size_t errcap);

/* 1 once dx_tls_load has succeeded. */
int dx_tls_ready(const dx_tls *t);

/* A server-side SSL on the default context for a connected socket, its I/O
 * through send/recv without SIGPIPE. NULL when out of memory or not ready. */
struct ssl_st *dx_tls_accept(dx_tls *t, int fd);

/* A BIO method doing send/recv on a socket without SIGPIPE (OpenSSL's own
 * socket BIO writes with write(2)); free it with BIO_meth_free after every
 * SSL using it. NULL when out of memory. */
struct bio_method_st *dx_tls_bio_method(void);

/* Gives ssl a BIO of method m on fd. Returns 0, or -1 out of memory. */
int dx_tls_set_socket(struct ssl_st *ssl, struct bio_method_st *m, int fd);

/* Frees t and its contexts (SSLs still alive keep theirs). */
void dx_tls_free(dx_tls *t);

/* The reason of the oldest error in OpenSSL's queue (the thread's), or
 * fallback when it is empty; empties the queue. */
const char *dx_tls_error_reason(const char *fallback, char *buf, size_t cap);

/* The read and write loops both sides share (the server's connections, the
 * client): they clear OpenSSL's error queue first, and return the
 * SSL_get_error code that stopped them (SSL_ERROR_NONE: want bytes were
 * read, or all len written). */
/* Reads up to want bytes of plaintext into buf: *got of them. */
int dx_tls_read_some(struct ssl_st *ssl, unsigned char *buf, size_t want, size_t *got);
/* Writes p[0..len) as records: *took bytes taken. */
int dx_tls_write_some(struct ssl_st *ssl, const unsigned char *p, size_t len, size_t *took);

#endif
