/* The bench's messages: printable ASCII (valid as text or binary), which
 * carry a sequence number and a send time and are filled deterministically,
 * so every echo or delivery is checked for length and content.
 *
 *   bytes 0..7    sequence number, 48 bits, 6 bits per byte ('0' + v)
 *   bytes 8..15   send time in ns since the run began, 48 bits, same way
 *   bytes 16..    'A' + (seq + i) % 26 for byte i */
#ifndef DX_PAYLOAD_H
#define DX_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define DX_PAYLOAD_MIN 16

/* The fill pattern for messages of size bytes (read-only, shared by every
 * message of a run): dx_payload_make and dx_payload_check need it. NULL
 * when out of memory. Free with free(). */
uint8_t *dx_payload_pattern(size_t size);

/* Writes a message of size (>= DX_PAYLOAD_MIN) bytes into out. */
void dx_payload_make(uint8_t *out, size_t size, const uint8_t *pattern,
                     uint64_t seq, uint64_t ts_ns);

/* Checks p[0..len) is a whole message of size bytes; sets *seq and *ts_ns.
 * Returns 0, or -1 when the length, the header or the fill is wrong. */
int dx_payload_check(const uint8_t *p, size_t len, size_t size, const uint8_t *pattern,
                     uint64_t *seq, uint64_t *ts_ns);

#endif
