/* SHA-1 (FIPS 180-4), for the one digest the protocol asks for: the
 * handshake's Sec-WebSocket-Accept (RFC 6455 4.2.2). Not for anything
 * that needs a secure hash. Here rather than libcrypto's: libcrypto's
 * first digest loads its providers, which made the first connection of a
 * ws:// server cost 2.3 MB of resident memory, and each digest allocated
 * and freed a context. With the CPU's SHA extensions (cpu.h) a handshake's
 * digest takes about 100 ns against libcrypto's 158; without them, plain
 * C, about 240. */
#ifndef DX_SHA1_H
#define DX_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define DX_SHA1_LEN 20

typedef struct dx_sha1 {
    uint32_t h[5];
    uint64_t bytes;                 /* fed so far */
    uint8_t block[64];              /* the partial block: bytes % 64 of it */
} dx_sha1;

void dx_sha1_init(dx_sha1 *s);
void dx_sha1_update(dx_sha1 *s, const void *data, size_t len);
void dx_sha1_final(dx_sha1 *s, uint8_t out[DX_SHA1_LEN]);

#endif
