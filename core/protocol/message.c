/* Message-level rules of RFC 6455: see message.h. */
#include "message.h"
#include "utf8.h"

void dx_message_init(dx_message *m)
{
    m->in_message = 0;
    m->opcode = DX_OP_CONT;
    m->utf8 = DX_UTF8_ACCEPT;
    m->size = 0;
    m->compressed = 0;
    m->largest = 0;
}

/* 1 when length more bytes keep a message of size bytes within max_size. */
static int fits(uint64_t size, uint64_t length, uint64_t max_size)
{
    return size <= max_size && length <= max_size - size;
}

int dx_message_frame(dx_message *m, const dx_frame_header *h, uint64_t max_size)
{
    if (h->opcode == DX_OP_CONT) {
        if (!m->in_message || (h->rsv & DX_RSV1))   /* RFC 7692 6.1: RSV1 on the first frame only */
            return DX_CLOSE_PROTOCOL;
        if (!fits(m->size, h->length, max_size))
            return DX_CLOSE_TOO_BIG;
        m->size += h->length;
        if (h->fin)
            m->in_message = 0;
        return 0;
    }
    if (h->opcode != DX_OP_TEXT && h->opcode != DX_OP_BINARY)
        return DX_CLOSE_PROTOCOL;        /* a control frame: caller's mistake */
    if (m->in_message)
        return DX_CLOSE_PROTOCOL;
    if (!fits(0, h->length, max_size))
        return DX_CLOSE_TOO_BIG;
    m->opcode = h->opcode;
    m->compressed = (h->rsv & DX_RSV1) != 0;
    m->in_message = !h->fin;
    m->utf8 = DX_UTF8_ACCEPT;
    m->size = h->length;
    return 0;
}

int dx_message_payload(dx_message *m, const uint8_t *p, size_t len)
{
    if (m->opcode != DX_OP_TEXT)
        return 0;
    m->utf8 = dx_utf8_feed(m->utf8, p, len);
    return m->utf8 == DX_UTF8_REJECT ? DX_CLOSE_INVALID_DATA : 0;
}

int dx_message_end(dx_message *m)
{
    int bad = m->opcode == DX_OP_TEXT && m->utf8 != DX_UTF8_ACCEPT;
    uint8_t largest = m->largest;
    if (!bad && m->size >> largest) {        /* more bits than any before */
        largest = 0;
        for (uint64_t n = m->size; n; n >>= 1)
            largest++;
    }
    dx_message_init(m);
    m->largest = largest;
    return bad ? DX_CLOSE_INVALID_DATA : 0;
}

int dx_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) ||
           (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int dx_close_parse(const uint8_t *p, size_t len, unsigned *code,
                   const uint8_t **reason, size_t *reason_len)
{
    if (len == 0) {
        *code = DX_CLOSE_NO_STATUS;
        *reason = p;
        *reason_len = 0;
        return 0;
    }
    if (len == 1)
        return DX_CLOSE_PROTOCOL;
    *code = (unsigned)p[0] << 8 | p[1];
    if (!dx_close_code_valid(*code))
        return DX_CLOSE_PROTOCOL;
    if (!dx_utf8_valid(p + 2, len - 2))
        return DX_CLOSE_INVALID_DATA;
    *reason = p + 2;
    *reason_len = len - 2;
    return 0;
}
