/* Positions as text: "epoch:offset", the form apps and clients keep. */
#include <stdio.h>
#include <string.h>
#include "broker/broker.h"

char *dx_pos_format(const dx_pos *pos, char out[DX_POS_STRLEN])
{
    snprintf(out, DX_POS_STRLEN, "%s:%llu", pos->epoch, (unsigned long long)pos->offset);
    return out;
}

int dx_pos_parse(dx_pos *pos, const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s || (size_t)(colon - s) > DX_EPOCH_MAX)
        return -1;
    size_t elen = (size_t)(colon - s);
    for (size_t i = 0; i < elen; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return -1;
    const char *d = colon + 1, *end = s + len;
    if (d == end || end - d > 20)
        return -1;
    uint64_t off = 0;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        uint64_t digit = (uint64_t)(*d - '0');
        if (off > (UINT64_MAX - digit) / 10)      /* past 2^64 - 1 */
            return -1;
        off = off * 10 + digit;
    }
    memcpy(pos->epoch, s, elen);
    pos->epoch[elen] = '\0';
    pos->offset = off;
    return 0;
}
