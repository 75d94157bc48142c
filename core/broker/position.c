/* Positions as text: "epoch:offset" (see broker.h). */
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
    size_t elen = (size_t)(colon - s), dlen = len - elen - 1;
    for (size_t i = 0; i < elen; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return -1;
    if (dlen == 0 || dlen > 20)
        return -1;
    uint64_t off = 0;
    for (size_t i = 0; i < dlen; i++) {
        unsigned d = (unsigned)(colon[1 + i] - '0');
        if (d > 9 || off > (UINT64_MAX - d) / 10)
            return -1;
        off = off * 10 + d;
    }
    memcpy(pos->epoch, s, elen);
    pos->epoch[elen] = '\0';
    pos->offset = off;
    return 0;
}
