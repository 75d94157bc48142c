/* The server's log: one line per event on stderr, readable text
 * ("duplex: <message>", the default) or one JSON object per line (time,
 * level, event, conn, remote, message) for log collectors. The format is
 * the process's, as stderr is: the command line sets it (--log-format). */
#ifndef DX_LOG_H
#define DX_LOG_H

#include <stdint.h>
#include "transport/server.h"

enum { DX_LOG_INFO, DX_LOG_WARN, DX_LOG_ERROR };

/* 1: JSON lines from now on; 0: text. */
void dx_log_set_json(int json);
int dx_log_is_json(void);

/* Logs one event: level (DX_LOG_*), event a stable word naming what
 * happened ("handler_error", "tls_error", ...), conn and remote the
 * connection it concerns (0 and NULL for none), and the message. */
void dx_log(int level, const char *event, uint64_t conn, const dx_addr *remote, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A budget of lines for one kind of event a peer can set off at will
 * (handler errors): at most burst lines at once, refilled at rate a
 * second; the lines past it are counted, not written, and the next line
 * written says how many. Zeroed, then rate and burst set. */
typedef struct dx_log_budget {
    double rate, burst;
    double tokens, at;          /* what is left, and when it was counted */
    uint64_t unlogged;          /* lines not written since the last one */
} dx_log_budget;

/* dx_log within budget b. Returns 1 when the line was written, 0 when
 * only counted. */
int dx_log_budgeted(dx_log_budget *b, int level, const char *event, uint64_t conn, const dx_addr *remote,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
