/* Prometheus metrics: one row per counter of dx_stats (name, help, field),
 * the refusals by status, the connections open, handler errors and the
 * handler run-time histogram, written in the text exposition format. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "binding/binding.h"
#include "binding/guard.h"
#include "binding/metrics.h"

static const double bounds[DX_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1
};

#define STAT(f) offsetof(dx_stats, f)

/* Every counter of dx_stats, once: its key in app:stats() and the
 * Prometheus counter it is (rows of one counter, told apart by a label,
 * follow each other; the help is read from the first). */
const dx_stat_row dx_stat_rows[] = {
    { "accepted", "duplex_connections_accepted_total", NULL, "WebSocket connections opened (101 sent).",
      STAT(accepted) },
    { "messages_in", "duplex_messages_received_total", NULL, "Whole messages received and handed to the app.",
      STAT(messages_in) },
    { "messages_out", "duplex_messages_sent_total", NULL, "Messages queued to peers: sends, and publish deliveries.",
      STAT(messages_out) },
    { "bytes_in", "duplex_received_bytes_total", NULL, "Bytes read from peers (after TLS): requests and frames.",
      STAT(bytes_in) },
    { "bytes_out", "duplex_sent_bytes_total", NULL,
      "Bytes written to peers (before TLS): responses, frames and files.", STAT(bytes_out) },
    { "published", "duplex_publishes_total", NULL, "Publish calls.", STAT(published) },
    { "deliveries", "duplex_deliveries_total", NULL, "Messages queued by publish, one per subscriber.",
      STAT(deliveries) },
    { "dropped", "duplex_dropped_messages_total", NULL, "Messages and pongs not queued: past max_backpressure.",
      STAT(dropped) },
    { "backpressure_closes", "duplex_backpressure_closes_total", NULL,
      "Connections closed 1008: past max_backpressure under policy close.", STAT(backpressure_closes) },
    { "tls_failures", "duplex_tls_failures_total", NULL,
      "TLS connections dropped for a failed handshake or a TLS error.", STAT(tls_failures) },
    { "deflate_in", "duplex_deflate_input_bytes_total", NULL,
      "Bytes of outgoing messages permessage-deflate compressed.", STAT(deflate_in) },
    { "deflate_out", "duplex_deflate_output_bytes_total", NULL, "Bytes permessage-deflate made of them.",
      STAT(deflate_out) },
    { "rate_limited", "duplex_rate_limited_messages_total", NULL,
      "Messages not handed to the app: past max_message_rate.", STAT(rate_limited) },
    { "rate_closes", "duplex_rate_limit_closes_total", NULL,
      "Connections closed 1008: past max_message_rate under policy close.", STAT(rate_closes) },
    { "refused_full", "duplex_limit_refusals_total", "limit=\"max_connections\"",
      "Connections refused by a limit: answered 503 (max_connections, max_connections_per_ip), closed "
      "unanswered far past them (at_accept), upgrades answered 403 (origins).", STAT(refused_full) },
    { "refused_per_ip", "duplex_limit_refusals_total", "limit=\"max_connections_per_ip\"", NULL,
      STAT(refused_per_ip) },
    { "refused_at_accept", "duplex_limit_refusals_total", "limit=\"at_accept\"", NULL, STAT(refused_at_accept) },
    { "refused_origin", "duplex_limit_refusals_total", "limit=\"origins\"", NULL, STAT(refused_origin) },
};

const size_t dx_stat_row_count = sizeof dx_stat_rows / sizeof dx_stat_rows[0];

#define BSTAT(f) offsetof(dx_broker_stats, f)

/* The broker's counters (all 0 while the app uses none). */
const dx_broker_row dx_broker_rows[] = {
    { "broker_published", "duplex_broker_published_total", "counter",
      "Publications handed to the broker (to other workers or nodes, or to a topic's history).",
      BSTAT(published) },
    { "broker_received", "duplex_broker_received_total", "counter",
      "Publications the broker delivered to this process.", BSTAT(received) },
    { "broker_lost", "duplex_broker_lost_total", "counter",
      "Publications the broker could not carry (its link was down): delivered here only.", BSTAT(lost) },
    { "broker_reconnects", "duplex_broker_reconnects_total", "counter",
      "Times the broker's link came back after going down.", BSTAT(reconnects) },
    { "broker_link_up", "duplex_broker_link_up", "gauge", "1 while the broker's link is up.", BSTAT(link_up) },
    { "broker_topics", "duplex_broker_topics", "gauge", "Topics this process has subscribers of, as the broker knows.",
      BSTAT(topics) },
};

const size_t dx_broker_row_count = sizeof dx_broker_rows / sizeof dx_broker_rows[0];

uint64_t dx_broker_value(const dx_broker_stats *bs, const dx_broker_row *row)
{
    uint64_t v;
    memcpy(&v, (const char *)bs + row->offset, sizeof v);
    return v;
}

uint64_t dx_stat_value(const dx_stats *st, const dx_stat_row *row)
{
    uint64_t v;
    memcpy(&v, (const char *)st + row->offset, sizeof v);
    return v;
}

double dx_metrics_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dx_metrics_observe(dx_metrics *m, double seconds)
{
    int b = 0;
    while (b < DX_METRICS_BUCKETS && seconds > bounds[b])
        b++;
    m->runs[b]++;
    m->count++;
    m->sum += seconds;
}

/* A growing text; a failed allocation sets oom and drops what follows. */
typedef struct text {
    char *p;
    size_t len, cap;
    int oom;
} text;

__attribute__((format(printf, 2, 3)))
static void add(text *t, const char *fmt, ...)
{
    for (;;) {
        if (t->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->p && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void head(text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *dx_metrics_render(const dx_metrics *m, const dx_stats *st, const dx_broker_stats *bs, size_t open,
                        size_t *len)
{
    text t = { 0 };
    head(&t, "duplex_connections", "gauge", "Connections open now, in any state.");
    add(&t, "duplex_connections %zu\n", open);
    for (size_t i = 0; i < dx_stat_row_count; i++) {
        const dx_stat_row *r = &dx_stat_rows[i];
        if (i == 0 || strcmp(r->metric, dx_stat_rows[i - 1].metric) != 0)
            head(&t, r->metric, "counter", r->help);
        add(&t, "%s%s%s%s %llu\n", r->metric, r->label ? "{" : "", r->label ? r->label : "", r->label ? "}" : "",
            (unsigned long long)dx_stat_value(st, r));
    }
    for (size_t i = 0; i < dx_broker_row_count; i++) {
        const dx_broker_row *r = &dx_broker_rows[i];
        head(&t, r->metric, r->type, r->help);
        add(&t, "%s %llu\n", r->metric, (unsigned long long)dx_broker_value(bs, r));
    }
    head(&t, "duplex_http_refusals_total", "counter",
         "Requests answered with an HTTP error instead of a 101 or a page, by status.");
    for (int i = 0; i < DX_REFUSED_SLOTS; i++)
        if (dx_refused_status[i])
            add(&t, "duplex_http_refusals_total{status=\"%d\"} %llu\n", dx_refused_status[i],
                (unsigned long long)st->refused[i]);
        else
            add(&t, "duplex_http_refusals_total{status=\"other\"} %llu\n", (unsigned long long)st->refused[i]);
    head(&t, "duplex_handler_timeouts_total", "counter",
         "Handlers stopped by the guard (handler_timeout), in the whole process.");
    add(&t, "duplex_handler_timeouts_total %llu\n", (unsigned long long)dx_guard_timeouts());
    head(&t, "duplex_worker_restarts_total", "counter",
         "Workers the supervisor started again after they died (--workers), all workers together.");
    add(&t, "duplex_worker_restarts_total %llu\n", (unsigned long long)dx_box_restarts());
    head(&t, "duplex_handler_errors_total", "counter", "Handlers and HTTP routes that raised an error.");
    add(&t, "duplex_handler_errors_total %llu\n", (unsigned long long)m->handler_errors);
    head(&t, "duplex_handler_duration_seconds", "histogram",
         "Run time of connection handlers and HTTP routes.");
    uint64_t below = 0;
    for (int b = 0; b < DX_METRICS_BUCKETS; b++) {
        below += m->runs[b];
        add(&t, "duplex_handler_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], (unsigned long long)below);
    }
    add(&t, "duplex_handler_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->count);
    add(&t, "duplex_handler_duration_seconds_sum %.9f\n", m->sum);
    add(&t, "duplex_handler_duration_seconds_count %llu\n", (unsigned long long)m->count);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
