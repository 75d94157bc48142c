/* The log: text or JSON lines on stderr (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "transport/log.h"

static int json_lines;             /* the process's format: stderr is the process's too */

void dx_log_set_json(int json) { json_lines = json != 0; }
int dx_log_is_json(void) { return json_lines; }

static const char *level_name(int level)
{
    return level == DX_LOG_ERROR ? "error" : level == DX_LOG_WARN ? "warn" : "info";
}

/* Writes s as the body of a JSON string (no quotes). */
static void put_json(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

static void write_line(int level, const char *event, uint64_t conn, const dx_addr *remote, const char *msg);

/* Formats and writes one line; note (or NULL) is appended to the message. */
static void vlog(int level, const char *event, uint64_t conn, const dx_addr *remote, const char *note,
                 const char *fmt, va_list ap)
{
    char small[1024], *msg = small;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    size_t extra = note ? strlen(note) : 0;
    if (n >= 0 && (size_t)n + extra >= sizeof small && (msg = malloc((size_t)n + extra + 1)) != NULL)
        vsnprintf(msg, (size_t)n + 1, fmt, again);           /* a long traceback */
    va_end(again);
    if (msg == NULL)
        msg = small;                   /* cut short rather than lost */
    else if (note)
        memcpy(msg + strlen(msg), note, extra + 1);
    write_line(level, event, conn, remote, msg);
    if (msg != small)
        free(msg);
}

void dx_log(int level, const char *event, uint64_t conn, const dx_addr *remote, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, conn, remote, NULL, fmt, ap);
    va_end(ap);
}

int dx_log_budgeted(dx_log_budget *b, int level, const char *event, uint64_t conn, const dx_addr *remote,
                    const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    if (b->at == 0)
        b->tokens = b->burst;
    else if ((b->tokens += (now - b->at) * b->rate) > b->burst)
        b->tokens = b->burst;
    b->at = now;
    if (b->tokens < 1) {
        b->unlogged++;
        return 0;
    }
    b->tokens -= 1;
    char note[96] = "";
    if (b->unlogged)
        snprintf(note, sizeof note, " (%llu more %s lines not logged before this one)",
                 (unsigned long long)b->unlogged, event);
    b->unlogged = 0;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, conn, remote, note[0] ? note : NULL, fmt, ap);
    va_end(ap);
    return 1;
}

static void write_line(int level, const char *event, uint64_t conn, const dx_addr *remote, const char *msg)
{
    /* Built whole, then written with one call: a reader (or another
     * process on the same stderr) never sees half a line. */
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL)
        return;
    if (!json_lines) {
        fprintf(f, "duplex: %s\n", msg);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(f, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":\"", when, ts.tv_nsec / 1000000,
                level_name(level));
        put_json(f, event);
        fputc('"', f);
        if (conn)
            fprintf(f, ",\"conn\":%llu", (unsigned long long)conn);
        if (remote) {
            char r[DX_ADDR_STRLEN];
            fprintf(f, ",\"remote\":\"%s\"", dx_addr_format(remote, r));
        }
        fputs(",\"message\":\"", f);
        put_json(f, msg);
        fputs("\"}\n", f);
    }
    if (fclose(f) == 0) {
        fwrite(line, 1, len, stderr);
        fflush(stderr);
    }
    free(line);
}
