/* sha1: SHA-1 (RFC 3174), only for Sec-WebSocket-Accept (RFC 6455 4.2.2);
 * nothing here is used for security. */
#ifndef DEMO_SHA1_H
#define DEMO_SHA1_H

#include <stddef.h>

/* Writes the 20-byte digest of data[0..n) to out. */
void sha1_digest(const void *data, size_t n, unsigned char out[20]);

#endif
