/* cursor.h - opaque keyset-pagination cursors: (timestamp in microseconds since the epoch, UUID)
 * of the last row of a page, as base64url text.  Clients treat them as opaque; the server decodes
 * and validates them strictly (a forged or garbled cursor is a 400, never an SQL error). */
#ifndef VIGIL_CURSOR_H
#define VIGIL_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#define CURSOR_MAX 96

/* Encodes into out[CURSOR_MAX].  id must be a canonical UUID. */
void cursor_encode(int64_t ts_us, const char *id, char *out);
/* Decodes s.  Returns 0 with *ts_us and id_out[37] (lower-case UUID), or -1 if malformed. */
int cursor_decode(const char *s, int64_t *ts_us, char *id_out);

#endif
