/* crc32: see crc32.h. */
#include "crc32.h"

#include <string.h>

#define CRC_POLY 0xedb88320u

static uint32_t crc_tab[8][256];
static uint32_t crc_x2n[32]; /* x^(2^k) mod P */

static uint32_t crc_multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = UINT32_C(1) << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ CRC_POLY : b >> 1;
    }
    return p;
}

void crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    uint32_t p = UINT32_C(1) << 30; /* x^1 */
    crc_x2n[0] = p;
    for (int k = 1; k < 32; k++) crc_x2n[k] = p = crc_multmodp(p, p);
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^ crc_tab[5][(a >> 16) & 0xff] ^
              crc_tab[4][a >> 24] ^ crc_tab[3][b & 0xff] ^ crc_tab[2][(b >> 8) & 0xff] ^
              crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
    uint32_t p = UINT32_C(1) << 31; /* x^0 */
    unsigned k = 3;                 /* len2 bytes = 8 * len2 bits = 2^3 * len2 */
    for (uint64_t n = len2; n; n >>= 1, k++)
        if (n & 1) p = crc_multmodp(crc_x2n[k & 31], p);
    return crc_multmodp(p, crc1) ^ crc2;
}
