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

#endif
