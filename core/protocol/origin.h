/* The Origin of a WebSocket upgrade. A page on any site can open a
 * WebSocket to any server, and the browser sends its visitor's cookies
 * along (cross-site WebSocket hijacking); the Origin header is what says
 * which site's page asks. Pure: no I/O. */
#ifndef DX_ORIGIN_H
#define DX_ORIGIN_H

#include <stddef.h>
#include "http.h"

/* 1 when req may be answered, else 0: it carries no Origin (bots and
 * servers send none), or its Origin is the request's own host, or allowed
 * lists it. The own host: the Origin's host (case-insensitive) and port
 * (its scheme's default when it has none: 80 for http and ws, 443 for
 * https and wss) are the Host header's; a Host without a port matches an
 * Origin on its scheme's default port (a proxy may have left the port out).
 * allowed: "" none listed, "*" any Origin, else origins each ending in
 * '\n', each matching an Origin of the same scheme, host and port (a
 * default port written or not); "null" (a sandboxed frame, a file) is
 * allowed only when listed. An Origin that is not one (two of them, a
 * path, an unknown scheme) matches nothing. */
int dx_origin_allowed(const dx_http_request *req, const char *allowed);

/* 1 when s[0..len) may be listed: "null", or scheme "://" host [":" port]
 * with scheme http, https, ws or wss (any case), a host of letters,
 * digits, '-', '.' or "[IPv6]", a port from 1 to 65535, and nothing after
 * (no path, not even "/"). */
int dx_origin_valid(const char *s, size_t len);

#endif
