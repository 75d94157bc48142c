/* Incremental UTF-8 validation (RFC 3629) for WebSocket text messages.
 *
 * A small DFA (after Bjoern Hoehrmann's decoder) that can be fed a message
 * in any number of pieces, split anywhere, and reports the first invalid
 * byte at once. Surrogates (U+D800..U+DFFF), overlong forms and code points
 * above U+10FFFF are invalid. Pure C: no I/O, no allocation. */
#ifndef DX_UTF8_H
#define DX_UTF8_H

#include <stddef.h>
#include <stdint.h>

enum {
    DX_UTF8_ACCEPT = 0,   /* at a character boundary: the text so far is valid */
    DX_UTF8_REJECT = 1    /* an invalid byte was seen; stays rejected */
};

/* Feeds len bytes to the validator whose state is *state (start with
 * DX_UTF8_ACCEPT). Returns the new state: DX_UTF8_ACCEPT at a boundary,
 * DX_UTF8_REJECT as soon as a byte cannot continue valid UTF-8, or another
 * (positive) value in the middle of a multi-byte sequence. A message is valid
 * when its last piece leaves DX_UTF8_ACCEPT. ASCII runs are checked a word at
 * a time. */
uint32_t dx_utf8_feed(uint32_t state, const uint8_t *p, size_t len);

/* 1 when p[0..len) is complete, valid UTF-8, else 0. */
int dx_utf8_valid(const uint8_t *p, size_t len);

#endif
