/* Peers' addresses: taken raw from accept, formatted only when asked. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "transport/internal.h"

void dx_addr_from_sockaddr(dx_addr *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        memcpy(out->ip, &a->sin_addr, 4);
        out->port = ntohs(a->sin_port);
        return;
    }
    if (sa->sa_family != AF_INET6)
        return;                                 /* "0.0.0.0:0": not expected from accept */
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    out->port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
        memcpy(out->ip, &a->sin6_addr.s6_addr[12], 4);
    } else {
        memcpy(out->ip, &a->sin6_addr, 16);
        out->v6 = 1;
    }
}

char *dx_addr_format(const dx_addr *a, char out[DX_ADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->v6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        snprintf(out, DX_ADDR_STRLEN, "[%s]:%u", ip, (unsigned)a->port);
    } else {
        inet_ntop(AF_INET, a->ip, ip, sizeof ip);
        snprintf(out, DX_ADDR_STRLEN, "%s:%u", ip, (unsigned)a->port);
    }
    return out;
}
