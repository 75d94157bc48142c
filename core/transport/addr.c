/* Peers' addresses: taken raw from accept, formatted only when asked. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "transport/internal.h"

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

void dx_addr_from_sockaddr(dx_addr *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        memcpy(out->ip, v4_mapped, sizeof v4_mapped);
        memcpy(out->ip + 12, &a->sin_addr, 4);
        out->port = ntohs(a->sin_port);
        return;
    }
    if (sa->sa_family != AF_INET6) {            /* "0.0.0.0:0": not expected from accept */
        memcpy(out->ip, v4_mapped, sizeof v4_mapped);
        return;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(out->ip, &a->sin6_addr, 16);         /* an IPv4-mapped one stays as it is */
    out->port = ntohs(a->sin6_port);
}

int dx_addr_is_v4(const dx_addr *a)
{
    return memcmp(a->ip, v4_mapped, sizeof v4_mapped) == 0;
}

char *dx_addr_format(const dx_addr *a, char out[DX_ADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (dx_addr_is_v4(a)) {
        inet_ntop(AF_INET, a->ip + 12, ip, sizeof ip);
        snprintf(out, DX_ADDR_STRLEN, "%s:%u", ip, (unsigned)a->port);
    } else {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        snprintf(out, DX_ADDR_STRLEN, "[%s]:%u", ip, (unsigned)a->port);
    }
    return out;
}
