/* Prometheus metrics of one server: the binding's own measures (handler
 * errors, a histogram of handler run time) beside the transport's
 * counters (dx_stats), rendered in Prometheus's text format (0.0.4) for
 * the `metrics` path on the app's port. */
#ifndef DX_METRICS_H
#define DX_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "transport/server.h"
#include "broker/broker.h"

/* Upper bounds of the run-time histogram's buckets, in seconds. */
#define DX_METRICS_BUCKETS 12

typedef struct dx_metrics {
    char *path;                 /* served at this path; NULL: off (no timing either) */
    uint64_t handler_errors;    /* handlers and HTTP routes that raised */
    uint64_t runs[DX_METRICS_BUCKETS + 1]; /* handler runs by the first bucket they fit, +Inf last */
    uint64_t count;             /* handler runs timed */
    double sum;                 /* their seconds */
} dx_metrics;

/* A counter of dx_stats: its key in app:stats(), and the Prometheus
 * counter it is (with a label, or NULL; help on a counter's first row). */
typedef struct dx_stat_row {
    const char *stat, *metric, *label, *help;
    size_t offset;              /* of its uint64_t in dx_stats */
} dx_stat_row;

extern const dx_stat_row dx_stat_rows[];
extern const size_t dx_stat_row_count;

/* A counter (or gauge) of dx_broker_stats: its key in app:stats() and
 * its Prometheus metric. */
typedef struct dx_broker_row {
    const char *stat, *metric, *type, *help;
    size_t offset;              /* of its uint64_t in dx_broker_stats */
} dx_broker_row;

extern const dx_broker_row dx_broker_rows[];
extern const size_t dx_broker_row_count;

/* The value of row in bs. */
uint64_t dx_broker_value(const dx_broker_stats *bs, const dx_broker_row *row);

/* The value of row's counter in st. */
uint64_t dx_stat_value(const dx_stats *st, const dx_stat_row *row);

/* A monotonic clock in seconds, for timing a handler run. */
double dx_metrics_clock(void);

/* Counts one handler run of the given seconds. */
void dx_metrics_observe(dx_metrics *m, double seconds);

/* Renders every metric: m's, st's, the broker's bs, and the connections open now (open).
 * Returns a malloc'd NUL-terminated text (*len its length), or NULL when
 * out of memory. */
char *dx_metrics_render(const dx_metrics *m, const dx_stats *st, const dx_broker_stats *bs, size_t open,
                        size_t *len);

#endif
