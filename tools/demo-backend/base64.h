/* base64: standard base64 with padding (RFC 4648 4), for Sec-WebSocket-Accept. */
#ifndef DEMO_BASE64_H
#define DEMO_BASE64_H

#include <stddef.h>

/* Encodes in[0..n) into out as a NUL-terminated string; out must hold
 * 4 * ((n + 2) / 3) + 1 bytes. */
void base64_encode(const unsigned char *in, size_t n, char *out);

#endif
