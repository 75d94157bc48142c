/* TLS contexts of a server: built from the configured files, chosen by SNI,
 * rebuilt on a reload (see tls.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "transport/tls.h"

typedef struct site {
    char **names;
    size_t nnames;
    char *cert, *key;
    SSL_CTX *ctx;                /* NULL until loaded */
} site;

struct dx_tls {
    char *cert, *key, *ca, *ciphers;
    int min_version;
    site *sites;
    size_t nsites;
    SSL_CTX *ctx;                /* the default; NULL until loaded */
    BIO_METHOD *bio;             /* send/recv on the connection's socket */
};

/* ---- a socket BIO without SIGPIPE ----
 * OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
 * the peer is gone; a server embedded in a host program must not die of it. */

static int bio_write(BIO *b, const char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t w = send(fd, p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            BIO_set_retry_write(b);
        return -1;
    }
    return (int)w;
}

static int bio_read(BIO *b, char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r = recv(fd, p, (size_t)n, MSG_DONTWAIT);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            BIO_set_retry_read(b);
        return -1;
    }
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD *dx_tls_bio_method(void)
{
    int index = BIO_get_new_index();     /* -1 once OpenSSL ran out: the type is only a label */
    BIO_METHOD *m = BIO_meth_new((index > 0 ? index : 0) | BIO_TYPE_SOURCE_SINK, "duplex socket");
    if (m == NULL)
        return NULL;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
}

/* ---- configuration ---- */

static char *dup_or_null(const char *s, int *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = 1;
    return d;
}

dx_tls *dx_tls_new(const dx_tls_config *cfg)
{
    dx_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    int oom = 0;
    t->cert = dup_or_null(cfg->cert, &oom);
    t->key = dup_or_null(cfg->key, &oom);
    t->ca = dup_or_null(cfg->ca, &oom);
    t->ciphers = dup_or_null(cfg->ciphers, &oom);
    t->min_version = cfg->min_version == 13 ? 13 : 12;
    t->bio = dx_tls_bio_method();
    oom |= t->bio == NULL;
    if (cfg->nsites) {
        t->sites = calloc(cfg->nsites, sizeof *t->sites);
        oom |= t->sites == NULL;
    }
    for (size_t i = 0; t->sites && i < cfg->nsites; i++) {
        const dx_tls_site *in = &cfg->sites[i];
        site *s = &t->sites[i];
        t->nsites++;
        s->cert = dup_or_null(in->cert, &oom);
        s->key = dup_or_null(in->key, &oom);
        s->names = calloc(in->nnames ? in->nnames : 1, sizeof *s->names);
        oom |= s->names == NULL;
        for (size_t j = 0; s->names && j < in->nnames; j++, s->nnames++)
            s->names[j] = dup_or_null(in->names[j], &oom);
    }
    if (oom) {
        dx_tls_free(t);
        return NULL;
    }
    return t;
}

const char *dx_tls_error_reason(const char *fallback, char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return fallback;
    const char *r = ERR_reason_error_string(e);
    if (r == NULL) {
        snprintf(buf, cap, "OpenSSL error %lx", e);
        return buf;
    }
    return r;
}

/* Fails the load when file cannot be opened for reading. */
static int check_readable(const char *file, const char *what, char *err, size_t cap)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, cap, "cannot read %s file '%s': %s", what, file, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* An encrypted key would otherwise make OpenSSL ask for a password on the
 * terminal: refuse it instead. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

/* SNI: the first site one of whose names matches the requested host name
 * answers; no name, or no match, gets the default certificate. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    dx_tls *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < t->nsites; i++)
        for (size_t j = 0; j < t->sites[i].nnames; j++)
            if (t->sites[i].ctx && matches(t->sites[i].names[j], name)) {
                if (t->sites[i].ctx != SSL_get_SSL_CTX(ssl))
                    SSL_set_SSL_CTX(ssl, t->sites[i].ctx);
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_OK;
}

/* A context for one certificate; NULL with err set. what names the
 * options ("tls.cert", "tls.sni[2].cert", ...). */
static SSL_CTX *make_ctx(dx_tls *t, const char *cert, const char *key,
                         const char *what_cert, const char *what_key, char *err, size_t cap)
{
    char why[128];
    if (check_readable(cert, what_cert, err, cap) < 0 || check_readable(key, what_key, err, cap) < 0)
        return NULL;
    if (t->ca && check_readable(t->ca, "tls.ca", err, cap) < 0)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, cap, "cannot create a TLS context: %s",
                 dx_tls_error_reason("out of memory", why, sizeof why));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    /* Partial writes: one record per SSL_write, so the queue advances by
     * what went out; the staging buffer may move between retries; idle
     * connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    if (t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        snprintf(err, cap, "bad tls.ciphers '%s': %s", t->ciphers,
                 dx_tls_error_reason("no cipher matches", why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, cap, "%s file '%s' holds no usable PEM certificate: %s", what_cert, cert,
                 dx_tls_error_reason("unknown error", why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                                ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)) {
            ERR_clear_error();
            snprintf(err, cap, "%s '%s' does not match %s '%s'", what_key, key, what_cert, cert);
        } else {
            snprintf(err, cap, "%s file '%s' holds no usable PEM private key (an encrypted key "
                     "is not supported): %s", what_key, key,
                     dx_tls_error_reason("unknown error", why, sizeof why));
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, cap, "%s '%s' does not match %s '%s'", what_key, key, what_cert, cert);
        goto fail;
    }
    if (t->ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, cap, "tls.ca file '%s' holds no usable PEM certificate: %s", t->ca,
                     dx_tls_error_reason("unknown error", why, sizeof why));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"duplex", 6);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int dx_tls_load(dx_tls *t, char *err, size_t errcap)
{
    size_t n = t->nsites;
    SSL_CTX **fresh = calloc(n + 1, sizeof *fresh);   /* [0] the default, then the sites */
    if (fresh == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int ok = 1;
    if (t->cert)
        ok = (fresh[0] = make_ctx(t, t->cert, t->key, "tls.cert", "tls.key", err, errcap)) != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char wc[48], wk[48];
        snprintf(wc, sizeof wc, "tls.sni[%zu].cert", i + 1);
        snprintf(wk, sizeof wk, "tls.sni[%zu].key", i + 1);
        ok = (fresh[i + 1] = make_ctx(t, t->sites[i].cert, t->sites[i].key, wc, wk, err, errcap)) != NULL;
    }
    if (ok && fresh[0] == NULL) {                 /* no default of its own: the first site's */
        if (n == 0) {
            snprintf(err, errcap, "tls needs a certificate: cert and key, or sni");
            ok = 0;
        } else {
            SSL_CTX_up_ref(fresh[1]);
            fresh[0] = fresh[1];
        }
    }
    if (!ok) {
        for (size_t i = 0; i <= n; i++)
            SSL_CTX_free(fresh[i]);
        free(fresh);
        return -1;
    }
    SSL_CTX_free(t->ctx);
    t->ctx = fresh[0];
    for (size_t i = 0; i < n; i++) {
        SSL_CTX_free(t->sites[i].ctx);
        t->sites[i].ctx = fresh[i + 1];
    }
    free(fresh);
    return 0;
}

int dx_tls_ready(const dx_tls *t) { return t->ctx != NULL; }

int dx_tls_read_some(SSL *ssl, unsigned char *buf, size_t want, size_t *got)
{
    /* Cleared once: a call that succeeds queues no error. */
    ERR_clear_error();
    *got = 0;
    while (*got < want) {
        size_t n;
        if (!SSL_read_ex(ssl, buf + *got, want - *got, &n))
            return SSL_get_error(ssl, 0);
        *got += n;
    }
    return SSL_ERROR_NONE;
}

int dx_tls_write_some(SSL *ssl, const unsigned char *p, size_t len, size_t *took)
{
    ERR_clear_error();
    *took = 0;
    while (*took < len) {
        size_t n;
        if (!SSL_write_ex(ssl, p + *took, len - *took, &n))
            return SSL_get_error(ssl, 0);
        *took += n;
    }
    return SSL_ERROR_NONE;
}

int dx_tls_set_socket(SSL *ssl, BIO_METHOD *m, int fd)
{
    BIO *b = BIO_new(m);
    if (b == NULL)
        return -1;
    BIO_set_data(b, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, b, b);
    return 0;
}

SSL *dx_tls_accept(dx_tls *t, int fd)
{
    if (t->ctx == NULL)
        return NULL;
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL || dx_tls_set_socket(ssl, t->bio, fd) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void dx_tls_free(dx_tls *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nsites; i++) {
        site *s = &t->sites[i];
        for (size_t j = 0; j < s->nnames; j++)
            free(s->names[j]);
        free(s->names);
        free(s->cert);
        free(s->key);
        SSL_CTX_free(s->ctx);
    }
    free(t->sites);
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->bio);
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t->ciphers);
    free(t);
}
