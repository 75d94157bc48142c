/* One bench run: its own loop, the connections (opened at most
 * `concurrency` at a time), and the phases connect -> warm-up -> measured
 * window -> drain -> close, each bounded by a timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench/internal.h"
#include "bench/payload.h"
#include "bench/proc.h"
#include "transport/server.h"

void dx_bench_defaults(dx_bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->scenario = DX_BENCH_ECHO;
    o->connections = 100;
    o->depth = 16;
    o->size = 32;
    o->seconds = 5;
    o->warmup = 2;
    o->timeout = 10;
    o->concurrency = 256;
}

uint64_t dx_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int dx_bench_send_next(dx_brun *b, dx_bconn *k)
{
    if (k->c == NULL)
        return -1;
    dx_payload_make(b->msg, b->o->size, b->pattern, k->next_tx, dx_bench_now() - b->t0);
    if (dx_client_send(k->c, b->msg, b->o->size, b->o->binary) != DX_CSEND_OK)
        return -1;
    k->next_tx++;
    return 0;
}

void dx_bench_count(dx_brun *b, uint64_t ts, size_t len)
{
    b->r->received++;
    if (!b->measuring)
        return;
    uint64_t now = dx_bench_now() - b->t0;
    b->r->messages++;
    b->window_bytes += len;
    dx_hist_add(b->hist, now > ts ? now - ts : 0);
}

static void set_timer(dx_brun *b, double seconds)
{
    ev_timer_stop(b->loop, &b->timer);
    ev_timer_set(&b->timer, seconds > 0 ? seconds : 0, 0);
    ev_timer_start(b->loop, &b->timer);
}

static void note_error(dx_brun *b, const char *why)
{
    if (b->r->first_error[0] == 0)
        snprintf(b->r->first_error, sizeof b->r->first_error, "%s", why);
}

/* Closes every connection still open; the loop ends when all are gone or
 * after a short bound. */
static void enter_close(dx_brun *b)
{
    b->phase = P_CLOSE;
    b->sending = b->measuring = 0;
    for (int i = 0; i < b->n; i++)
        if (b->k[i].c)
            dx_client_close(b->k[i].c, 1000);
    if (dx_client_count(b->ctx) == 0)
        ev_break(b->loop, EVBREAK_ALL);
    else
        set_timer(b, 3);
}

static void fatal(dx_brun *b, const char *why)
{
    if (!b->fatal) {
        b->fatal = 1;
        snprintf(b->err, sizeof b->err, "%s", why);
    }
    enter_close(b);
}

static void end_window(dx_brun *b)
{
    b->measuring = 0;
    b->r->seconds = (double)(dx_bench_now() - b->window_start) / 1e9;
}

void dx_bench_check_drained(dx_brun *b)
{
    if (b->phase == P_DRAIN && b->r->received + b->dead_inflight >= b->r->sent)
        enter_close(b);
}

static void start_window(dx_brun *b)
{
    b->phase = P_MEASURE;
    b->measuring = 1;
    b->window_start = dx_bench_now();
    set_timer(b, b->o->seconds);
}

/* Every connection is open. */
static void all_open(dx_brun *b)
{
    dx_bench_result *r = b->r;
    r->connect_seconds = (double)(dx_bench_now() - b->connect_start) / 1e9;
    if (r->connect_seconds > 0)
        r->handshakes_per_s = r->opened / r->connect_seconds;
    if (b->o->scenario == DX_BENCH_CONNECT) {
        if (b->o->server_pid > 0) {
            r->rss_after = dx_proc_rss(b->o->server_pid);
            if (r->rss_after >= 0 && r->rss_before >= 0 && r->opened > 0)
                r->rss_per_conn = (double)(r->rss_after - r->rss_before) / r->opened;
        }
        enter_close(b);
        return;
    }
    b->phase = P_WARMUP;
    b->sending = 1;
    b->ops->start(b);
    if (b->phase != P_WARMUP)
        return;
    if (b->o->warmup > 0)
        set_timer(b, b->o->warmup);
    else
        start_window(b);
}

/* Starts connects while fewer than `concurrency` are in progress. */
static void pump(dx_brun *b)
{
    while (b->phase == P_CONNECT && b->next_connect < b->n && b->in_progress < b->o->concurrency) {
        dx_bconn *k = &b->k[b->next_connect++];
        const dx_bench_opts *o = b->o;
        char err[200];
        static const dx_client_tls any_cert = { NULL, 1, NULL };   /* a bench measures */
        if (o->scenario == DX_BENCH_BROADCAST && k->idx == b->n - 1 && o->pub_addrlen > 0)
            k->c = dx_client_connect(b->ctx, (const struct sockaddr *)&o->pub_addr, o->pub_addrlen,
                                     o->pub_host, o->pub_target, o->pub_tls ? &any_cert : NULL,
                                     NULL, err, sizeof err);
        else
            k->c = dx_client_connect(b->ctx, (const struct sockaddr *)&o->addr, o->addrlen,
                                     o->host, o->target, o->tls ? &any_cert : NULL,
                                     NULL, err, sizeof err);
        if (k->c == NULL) {
            note_error(b, err);
            b->r->conn_errors++;
            fatal(b, err);
            return;
        }
        dx_client_set_user(k->c, k);
        b->in_progress++;
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_brun *b = w->data;
    char why[420];
    switch (b->phase) {
    case P_CONNECT:
        snprintf(why, sizeof why, "only %d of %d connections opened within %g s%s%s",
                 b->r->opened, b->n, b->o->timeout, b->r->first_error[0] ? ": " : "",
                 b->r->first_error);
        fatal(b, why);
        break;
    case P_WARMUP:
        start_window(b);
        break;
    case P_MEASURE:
        end_window(b);
        b->sending = 0;
        b->phase = P_DRAIN;
        set_timer(b, b->o->timeout);
        dx_bench_check_drained(b);
        break;
    case P_DRAIN:                         /* what did not come back is lost */
        enter_close(b);
        break;
    default:
        ev_break(b->loop, EVBREAK_ALL);
        break;
    }
}

/* ---- client events ---- */

static void ev_open(void *ud, dx_client *c)
{
    dx_brun *b = ud;
    dx_bconn *k = dx_client_user(c);
    k->opened = 1;
    b->in_progress--;
    b->r->opened++;
    if (b->phase != P_CONNECT)
        return;
    if (b->r->opened == b->n)
        all_open(b);
    else
        pump(b);
}

static void ev_message(void *ud, dx_client *c, const uint8_t *data, size_t len, int binary)
{
    dx_brun *b = ud;
    b->ops->message(b, dx_client_user(c), data, len, binary);
}

static void ev_close(void *ud, dx_client *c, int opened, unsigned code, const char *why)
{
    (void)code;
    dx_brun *b = ud;
    dx_bconn *k = dx_client_user(c);
    k->c = NULL;
    switch (b->phase) {
    case P_CONNECT:
        note_error(b, why);
        b->r->conn_errors++;
        if (!opened)
            b->in_progress--;
        fatal(b, why);
        break;
    case P_WARMUP:
    case P_MEASURE:
    case P_DRAIN:
        note_error(b, why);
        b->r->conn_errors++;
        b->ops->ended(b, k);
        if (dx_client_count(b->ctx) == 0) {
            if (b->measuring)
                end_window(b);
            enter_close(b);
        } else {
            dx_bench_check_drained(b);
        }
        break;
    default:
        if (dx_client_count(b->ctx) == 0)
            ev_break(b->loop, EVBREAK_ALL);
        break;
    }
}

static const dx_client_events client_events = { ev_open, ev_message, ev_close };

/* ---- the run ---- */

static int setup(dx_brun *b, const dx_bench_opts *o, dx_bench_result *r)
{
    memset(b, 0, sizeof *b);
    b->o = o;
    b->r = r;
    b->n = o->connections + (o->scenario == DX_BENCH_BROADCAST ? 1 : 0);
    b->ops = o->scenario == DX_BENCH_BROADCAST ? &dx_bench_broadcast_ops : &dx_bench_echo_ops;
    b->loop = ev_loop_new(EVFLAG_AUTO);
    if (b->loop == NULL)
        return -1;
    dx_client_config cc;
    dx_client_config_defaults(&cc);
    cc.handshake_timeout = o->timeout;
    cc.max_message = o->size + 1024;
    b->ctx = dx_client_ctx_new(b->loop, &cc, &client_events, b);
    b->k = calloc((size_t)b->n, sizeof *b->k);
    b->hist = dx_hist_new();
    b->pattern = dx_payload_pattern(o->size);
    b->msg = malloc(o->size);
    if (!b->ctx || !b->k || !b->hist || !b->pattern || !b->msg)
        return -1;
    if (o->scenario == DX_BENCH_BROADCAST && dx_bench_broadcast_init(b) < 0)
        return -1;
    for (int i = 0; i < b->n; i++)
        b->k[i].idx = i;
    ev_init(&b->timer, on_timer);
    b->timer.data = b;
    return 0;
}

static void teardown(dx_brun *b)
{
    if (b->ops && b->sc)
        b->ops->free(b);
    dx_client_ctx_free(b->ctx);
    if (b->loop) {
        ev_timer_stop(b->loop, &b->timer);
        ev_loop_destroy(b->loop);
    }
    dx_hist_free(b->hist);
    free(b->k);
    free(b->pattern);
    free(b->msg);
}

static void results(dx_brun *b)
{
    dx_bench_result *r = b->r;
    if (r->seconds > 0) {
        r->rate = (double)r->messages / r->seconds;
        r->mbytes_per_s = (double)b->window_bytes / r->seconds / 1e6;
    }
    r->p50_us = dx_hist_quantile(b->hist, 0.5) / 1e3;
    r->p99_us = dx_hist_quantile(b->hist, 0.99) / 1e3;
    r->p999_us = dx_hist_quantile(b->hist, 0.999) / 1e3;
    r->max_us = dx_hist_quantile(b->hist, 1) / 1e3;
    r->mean_us = dx_hist_mean(b->hist) / 1e3;
    r->lost = r->sent > r->received ? r->sent - r->received : 0;
    r->errors = r->content_errors + r->conn_errors;
}

int dx_bench_run(const dx_bench_opts *o, dx_bench_result *r, char *err, size_t errcap)
{
    memset(r, 0, sizeof *r);
    r->rss_before = r->rss_after = -1;
    if (o->connections < 1 || o->depth < 1 || o->size < DX_PAYLOAD_MIN || o->concurrency < 1) {
        snprintf(err, errcap, "bad options (connections, depth >= 1; size >= %d)", DX_PAYLOAD_MIN);
        return -1;
    }
    dx_raise_fd_limit();
    dx_brun b;
    if (setup(&b, o, r) < 0) {
        teardown(&b);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (o->server_pid > 0)
        r->rss_before = dx_proc_rss(o->server_pid);
    b.t0 = b.connect_start = dx_bench_now();
    b.phase = P_CONNECT;
    set_timer(&b, o->timeout);
    pump(&b);
    if (dx_client_count(b.ctx) > 0 || b.phase != P_CLOSE)
        ev_run(b.loop, 0);
    results(&b);
    int failed = b.fatal;
    if (failed)
        snprintf(err, errcap, "%s", b.err);
    teardown(&b);
    return failed ? -1 : 0;
}
