/* crc32: CRC-32 as zlib.crc32 computes it (IEEE 802.3, reflected), so the
 * tests can check bodies with Python's zlib. Slice-by-8 for request bodies
 * streamed through it, and combine for the CRC of /bytes bodies that are
 * never materialised. */
#ifndef DEMO_CRC32_H
#define DEMO_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Fills the tables; must run once before any other crc32_ call. */
void crc32_init(void);
/* CRC of the bytes so far (crc, 0 to start) followed by data[0..n). */
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);
/* CRC of A||B from crc(A), crc(B) and len(B) (zlib's crc32_combine). */
uint32_t crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

#endif
