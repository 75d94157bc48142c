/* The bus's records (broker/wire.h): the queue, the encoder, the decoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "broker/wire.h"

/* An emptied queue keeps at most this much memory. */
#define DX_WIRE_KEEP (256u << 10)

/* ---- the queue ---- */

void dx_wire_buf_free(dx_wire_buf *b)
{
    free(b->data);
    *b = (dx_wire_buf){ 0 };
}

/* An empty queue goes back to nothing when it grew big (a burst). */
static void settle(dx_wire_buf *b)
{
    if (b->head != b->tail)
        return;
    b->head = b->tail = 0;
    if (b->cap > DX_WIRE_KEEP)
        dx_wire_buf_free(b);
}

/* Room for n more bytes at tail: moves what is pending to the front, or
 * grows. */
static int reserve(dx_wire_buf *b, size_t n)
{
    if (b->cap - b->tail >= n)
        return 0;
    if (b->head) {
        size_t pending = b->tail - b->head;
        memmove(b->data, b->data + b->head, pending);
        b->head = 0;
        b->tail = pending;
        if (b->cap - b->tail >= n)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->tail < n)
        cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

ssize_t dx_wire_send(dx_wire_buf *b, int fd)
{
    if (b->head == b->tail)
        return 0;
    ssize_t n = send(fd, b->data + b->head, b->tail - b->head, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
        b->head += (size_t)n;
        settle(b);
    }
    return n;
}

ssize_t dx_wire_recv(dx_wire_buf *b, int fd, size_t max)
{
    if (reserve(b, max) < 0) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = recv(fd, b->data + b->tail, max, MSG_DONTWAIT);
    if (n > 0)
        b->tail += (size_t)n;
    else
        settle(b);
    return n;
}

/* ---- encoding ---- */

#define STR(len) (4 + (size_t)(len))
#define POS(p) (1 + strlen((p)->epoch) + 8)

static uint8_t *put_u8(uint8_t *o, unsigned v)
{
    *o = (uint8_t)v;
    return o + 1;
}

static uint8_t *put_u32(uint8_t *o, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        o[i] = (uint8_t)(v >> (8 * i));
    return o + 4;
}

static uint8_t *put_u64(uint8_t *o, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        o[i] = (uint8_t)(v >> (8 * i));
    return o + 8;
}

static uint8_t *put_f64(uint8_t *o, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return put_u64(o, bits);
}

static uint8_t *put_str(uint8_t *o, const void *s, size_t len)
{
    o = put_u32(o, (uint32_t)len);
    if (len)
        memcpy(o, s, len);
    return o + len;
}

static uint8_t *put_pos(uint8_t *o, const dx_pos *p)
{
    size_t elen = strlen(p->epoch);
    o = put_u8(o, (unsigned)elen);
    memcpy(o, p->epoch, elen);
    return put_u64(o + elen, p->offset);
}

/* Starts a record of type with a body of len bytes: its first body byte,
 * or NULL. finish() checks the encoder wrote exactly len. */
static uint8_t *begin(dx_wire_buf *b, int type, size_t len)
{
    if (len + 1 > DX_WIRE_RECORD_MAX || reserve(b, 5 + len) < 0)
        return NULL;
    uint8_t *o = b->data + b->tail;
    o = put_u32(o, (uint32_t)(len + 1));
    return put_u8(o, (unsigned)type);
}

static int finish(dx_wire_buf *b, size_t len)
{
    b->tail += 5 + len;
    return 0;
}

int dx_wire_hello(dx_wire_buf *b, const char *node, size_t len)
{
    size_t n = STR(len);
    uint8_t *o = begin(b, DX_WIRE_HELLO, n);
    if (o == NULL)
        return -1;
    put_str(o, node, len);
    return finish(b, n);
}

int dx_wire_interest(dx_wire_buf *b, const char *topic, size_t tlen, int on)
{
    size_t n = 1 + STR(tlen);
    uint8_t *o = begin(b, DX_WIRE_INTEREST, n);
    if (o == NULL)
        return -1;
    put_str(put_u8(o, on != 0), topic, tlen);
    return finish(b, n);
}

int dx_wire_publish(dx_wire_buf *b, const dx_publication *p, const dx_history_rule *h)
{
    size_t n = 8 + 1 + 4 + 8 + STR(p->tlen) + STR(p->len);
    uint8_t *o = begin(b, DX_WIRE_PUBLISH, n);
    if (o == NULL || h->size > UINT32_MAX)
        return -1;
    o = put_u8(put_u64(o, p->from), p->binary != 0);
    o = put_f64(put_u32(o, (uint32_t)h->size), h->ttl);
    put_str(put_str(o, p->topic, p->tlen), p->data, p->len);
    return finish(b, n);
}

int dx_wire_recover(dx_wire_buf *b, uint32_t id, const char *topic, size_t tlen, const dx_pos *since,
                    const dx_history_rule *h)
{
    size_t n = 4 + 4 + 8 + POS(since) + STR(tlen);
    uint8_t *o = begin(b, DX_WIRE_RECOVER, n);
    if (o == NULL || h->size > UINT32_MAX)
        return -1;
    o = put_f64(put_u32(put_u32(o, id), (uint32_t)h->size), h->ttl);
    put_str(put_pos(o, since), topic, tlen);
    return finish(b, n);
}

int dx_wire_join(dx_wire_buf *b, const char *topic, size_t tlen, const dx_member *m)
{
    size_t n = 8 + STR(tlen) + STR(m->info_len);
    uint8_t *o = begin(b, DX_WIRE_JOIN, n);
    if (o == NULL)
        return -1;
    put_str(put_str(put_u64(o, m->conn), topic, tlen), m->info, m->info_len);
    return finish(b, n);
}

int dx_wire_leave(dx_wire_buf *b, const char *topic, size_t tlen, uint64_t conn)
{
    size_t n = 8 + STR(tlen);
    uint8_t *o = begin(b, DX_WIRE_LEAVE, n);
    if (o == NULL)
        return -1;
    put_str(put_u64(o, conn), topic, tlen);
    return finish(b, n);
}

int dx_wire_presence(dx_wire_buf *b, uint32_t id, const char *topic, size_t tlen)
{
    size_t n = 4 + STR(tlen);
    uint8_t *o = begin(b, DX_WIRE_PRESENCE, n);
    if (o == NULL)
        return -1;
    put_str(put_u32(o, id), topic, tlen);
    return finish(b, n);
}

int dx_wire_publication(dx_wire_buf *b, const dx_publication *p, uint64_t from)
{
    size_t n = 8 + 1 + 1 + (p->pos ? POS(p->pos) : 0) + STR(p->tlen) + STR(p->len);
    uint8_t *o = begin(b, DX_WIRE_PUBLICATION, n);
    if (o == NULL)
        return -1;
    o = put_u8(put_u8(put_u64(o, from), p->binary != 0), p->pos != NULL);
    if (p->pos)
        o = put_pos(o, p->pos);
    put_str(put_str(o, p->topic, p->tlen), p->data, p->len);
    return finish(b, n);
}

int dx_wire_event(dx_wire_buf *b, const char *topic, size_t tlen, int joined, const dx_member *m)
{
    size_t n = 1 + 8 + STR(tlen) + STR(m->node_len) + STR(m->info_len);
    uint8_t *o = begin(b, DX_WIRE_EVENT, n);
    if (o == NULL)
        return -1;
    o = put_str(put_u64(put_u8(o, joined != 0), m->conn), topic, tlen);
    put_str(put_str(o, m->node, m->node_len), m->info, m->info_len);
    return finish(b, n);
}

int dx_wire_recovered(dx_wire_buf *b, uint32_t id, int status, const char *topic, size_t tlen,
                      const dx_publication *entries, size_t count, const dx_pos *top)
{
    size_t n = 4 + 1 + 1 + (top ? POS(top) : 0) + STR(tlen) + 4;
    for (size_t i = 0; i < count; i++) {
        n += 1 + POS(entries[i].pos) + STR(entries[i].len);
        if (n > DX_WIRE_RECORD_MAX)
            return -1;
    }
    uint8_t *o = begin(b, DX_WIRE_RECOVERED, n);
    if (o == NULL)
        return -1;
    o = put_u8(put_u8(put_u32(o, id), (unsigned)status), top != NULL);
    if (top)
        o = put_pos(o, top);
    o = put_u32(put_str(o, topic, tlen), (uint32_t)count);
    for (size_t i = 0; i < count; i++)
        o = put_str(put_pos(put_u8(o, entries[i].binary != 0), entries[i].pos), entries[i].data,
                    entries[i].len);
    return finish(b, n);
}

int dx_wire_members(dx_wire_buf *b, uint32_t id, int ok, const dx_member *members, size_t count)
{
    size_t n = 4 + 1 + 4;
    for (size_t i = 0; i < count; i++) {
        n += 8 + STR(members[i].node_len) + STR(members[i].info_len);
        if (n > DX_WIRE_RECORD_MAX)
            return -1;
    }
    uint8_t *o = begin(b, DX_WIRE_MEMBERS, n);
    if (o == NULL)
        return -1;
    o = put_u32(put_u8(put_u32(o, id), ok != 0), (uint32_t)count);
    for (size_t i = 0; i < count; i++) {
        o = put_str(put_u64(o, members[i].conn), members[i].node, members[i].node_len);
        o = put_str(o, members[i].info, members[i].info_len);
    }
    return finish(b, n);
}

int dx_wire_dropped(dx_wire_buf *b, uint64_t count)
{
    uint8_t *o = begin(b, DX_WIRE_DROPPED, 8);
    if (o == NULL)
        return -1;
    put_u64(o, count);
    return finish(b, 8);
}

int dx_wire_link(dx_wire_buf *b, int up, const char *why)
{
    size_t wlen = strlen(why), n = 1 + STR(wlen);
    uint8_t *o = begin(b, DX_WIRE_LINK, n);
    if (o == NULL)
        return -1;
    put_str(put_u8(o, up != 0), why, wlen);
    return finish(b, n);
}

int dx_wire_forward(dx_wire_buf *b, int type, uint32_t worker, uint64_t token, const char *id, size_t idlen,
                    uint64_t seq, const uint8_t *body, size_t len)
{
    if (len > DX_WIRE_RECORD_MAX)
        return -1;
    size_t n = 4 + 8 + STR(idlen) + 8 + STR(len);
    uint8_t *o = begin(b, type, n);
    if (o == NULL)
        return -1;
    o = put_str(put_u64(put_u32(o, worker), token), id, idlen);
    put_str(put_u64(o, seq), body, len);
    return finish(b, n);
}

int dx_wire_answer(dx_wire_buf *b, int type, uint32_t origin, uint64_t token, unsigned status, const char *text,
                   size_t len)
{
    int with_origin = type == DX_WIRE_ANSWER;
    size_t n = (with_origin ? 4 : 0) + 8 + 2 + STR(len);
    uint8_t *o = begin(b, type, n);
    if (o == NULL)
        return -1;
    if (with_origin)
        o = put_u32(o, origin);
    o = put_u64(o, token);
    o = put_u8(put_u8(o, status & 0xff), (status >> 8) & 0xff);
    put_str(o, text, len);
    return finish(b, n);
}

/* ---- decoding ---- */

/* A cursor over one record's body; bad is set by the first read past its
 * end (every later read then gives zeros). */
typedef struct reader {
    const uint8_t *p, *end;
    int bad;
} reader;

static int has(reader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static unsigned get_u8(reader *r)
{
    return has(r, 1) ? *r->p++ : 0;
}

static uint32_t get_u32(reader *r)
{
    if (!has(r, 4))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}

static uint64_t get_u64(reader *r)
{
    if (!has(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

static double get_f64(reader *r)
{
    uint64_t bits = get_u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static const uint8_t *get_str(reader *r, size_t *len)
{
    *len = get_u32(r);
    if (!has(r, *len)) {
        *len = 0;
        return (const uint8_t *)"";
    }
    const uint8_t *s = r->p;
    r->p += *len;
    return s;
}

static void get_pos(reader *r, dx_pos *pos)
{
    size_t elen = get_u8(r);
    if (elen > DX_EPOCH_MAX || !has(r, elen)) {
        r->bad = 1;
        memset(pos, 0, sizeof *pos);
        return;
    }
    for (size_t i = 0; i < elen; i++)
        if (!((r->p[i] >= '0' && r->p[i] <= '9') || (r->p[i] >= 'a' && r->p[i] <= 'z')))
            r->bad = 1;
    memcpy(pos->epoch, r->p, elen);
    pos->epoch[elen] = '\0';
    r->p += elen;
    pos->offset = get_u64(r);
}

static void get_topic(reader *r, dx_wire_msg *m)
{
    m->topic = (const char *)get_str(r, &m->tlen);
}

static void get_rule(reader *r, dx_wire_msg *m)
{
    m->rule.size = get_u32(r);
    m->rule.ttl = get_f64(r);
}

int dx_wire_next(dx_wire_buf *in, dx_wire_msg *m)
{
    size_t pending = in->tail - in->head;
    if (pending < 4)
        return 0;
    reader r = { in->data + in->head, in->data + in->tail, 0 };
    size_t len = get_u32(&r);
    if (len == 0 || len > DX_WIRE_RECORD_MAX)
        return -1;
    if (pending - 4 < len)
        return 0;
    r.end = r.p + len;
    memset(m, 0, sizeof *m);
    m->type = (int)get_u8(&r);
    switch (m->type) {
    case DX_WIRE_HELLO:
        m->text = (const char *)get_str(&r, &m->text_len);
        break;
    case DX_WIRE_INTEREST:
        m->flag = (int)get_u8(&r);
        get_topic(&r, m);
        break;
    case DX_WIRE_PUBLISH:
        m->pub.from = get_u64(&r);
        m->pub.binary = (int)get_u8(&r);
        get_rule(&r, m);
        get_topic(&r, m);
        m->pub.data = get_str(&r, &m->pub.len);
        break;
    case DX_WIRE_RECOVER:
        m->id = get_u32(&r);
        get_rule(&r, m);
        get_pos(&r, &m->pos);
        m->has_pos = 1;
        get_topic(&r, m);
        break;
    case DX_WIRE_JOIN:
    case DX_WIRE_LEAVE:
        m->member.conn = get_u64(&r);
        get_topic(&r, m);
        if (m->type == DX_WIRE_JOIN)
            m->member.info = get_str(&r, &m->member.info_len);
        break;
    case DX_WIRE_PRESENCE:
        m->id = get_u32(&r);
        get_topic(&r, m);
        break;
    case DX_WIRE_PUBLICATION:
        m->pub.from = get_u64(&r);
        m->pub.binary = (int)get_u8(&r);
        m->has_pos = (int)get_u8(&r);
        if (m->has_pos) {
            get_pos(&r, &m->pos);
            m->pub.pos = &m->pos;
        }
        get_topic(&r, m);
        m->pub.data = get_str(&r, &m->pub.len);
        break;
    case DX_WIRE_EVENT:
        m->flag = (int)get_u8(&r);
        m->member.conn = get_u64(&r);
        get_topic(&r, m);
        m->member.node = (const char *)get_str(&r, &m->member.node_len);
        m->member.info = get_str(&r, &m->member.info_len);
        break;
    case DX_WIRE_RECOVERED:
        m->id = get_u32(&r);
        m->flag = (int)get_u8(&r);
        m->has_pos = (int)get_u8(&r);
        if (m->has_pos)
            get_pos(&r, &m->pos);
        get_topic(&r, m);
        m->count = get_u32(&r);
        if (m->count > (size_t)(r.end - r.p) / (1 + 1 + 8 + 4))   /* smallest entry */
            r.bad = 1;
        m->list = r.p;
        m->list_end = r.p = r.end;
        break;
    case DX_WIRE_MEMBERS:
        m->id = get_u32(&r);
        m->flag = (int)get_u8(&r);
        m->count = get_u32(&r);
        if (m->count > (size_t)(r.end - r.p) / (8 + 4 + 4))       /* smallest member */
            r.bad = 1;
        m->list = r.p;
        m->list_end = r.p = r.end;
        break;
    case DX_WIRE_DROPPED:
        m->count = get_u64(&r);
        break;
    case DX_WIRE_LINK:
        m->flag = (int)get_u8(&r);
        m->text = (const char *)get_str(&r, &m->text_len);
        break;
    case DX_WIRE_FORWARD:
    case DX_WIRE_FORWARDED:
        m->worker = get_u32(&r);
        m->token = get_u64(&r);
        m->text = (const char *)get_str(&r, &m->text_len);
        m->seq = get_u64(&r);
        m->data = get_str(&r, &m->len);
        break;
    case DX_WIRE_ANSWER:
    case DX_WIRE_ANSWERED:
        if (m->type == DX_WIRE_ANSWER)
            m->worker = get_u32(&r);
        m->token = get_u64(&r);
        m->status = get_u8(&r);
        m->status |= get_u8(&r) << 8;
        m->text = (const char *)get_str(&r, &m->text_len);
        break;
    default:
        return -1;
    }
    if (r.bad || r.p != r.end)
        return -1;
    m->pub.topic = m->topic;
    m->pub.tlen = m->tlen;
    in->head += 4 + len;
    if (in->head == in->tail)
        in->head = in->tail = 0;
    return 1;
}

int dx_wire_entry(dx_wire_msg *m, dx_publication *p, dx_pos *pos)
{
    if (m->list == m->list_end)
        return 0;
    reader r = { m->list, m->list_end, 0 };
    memset(p, 0, sizeof *p);
    p->topic = m->topic;
    p->tlen = m->tlen;
    p->binary = (int)get_u8(&r);
    get_pos(&r, pos);
    p->pos = pos;
    p->data = get_str(&r, &p->len);
    if (r.bad)
        return -1;
    m->list = r.p;
    return 1;
}

int dx_wire_member(dx_wire_msg *m, dx_member *out)
{
    if (m->list == m->list_end)
        return 0;
    reader r = { m->list, m->list_end, 0 };
    out->conn = get_u64(&r);
    out->node = (const char *)get_str(&r, &out->node_len);
    out->info = get_str(&r, &out->info_len);
    if (r.bad)
        return -1;
    m->list = r.p;
    return 1;
}
