/* bytes: see bytes.h. */
#include "bytes.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crc32.h"
#include "out.h"
#include "request.h"
#include "response.h"

#define BYTES_CHUNK (16 * 1024) /* chunk size of /bytes?chunked=1 */
#define MAX_BYTES_N (UINT64_C(1) << 40)

/* Enough of the pattern that any slice of up to RBUF_SIZE bytes starting at
 * any phase is contiguous. */
static char g_pat[RBUF_SIZE + 26];

void bytes_init(void)
{
    for (size_t i = 0; i < sizeof g_pat; i++) g_pat[i] = (char)('a' + i % 26);
}

/* CRC32 of the first n pattern bytes, by doubling 26-byte blocks with crc32_combine. */
static uint32_t pattern_crc(uint64_t n)
{
    uint32_t res = 0, blk = crc32_update(0, g_pat, 26);
    uint64_t blen = 26;
    for (uint64_t m = n / 26; m; m >>= 1) {
        if (m & 1) res = crc32_combine(res, blk, blen);
        blk = crc32_combine(blk, blk, blen);
        blen *= 2;
    }
    uint64_t tail = n % 26;
    return crc32_combine(res, crc32_update(0, g_pat, tail), tail);
}

void bytes_fill(struct conn *c)
{
    while (c->gen_active && out_pending(c) < OUT_LOW) {
        uint64_t left = c->gen_total - c->gen_pos;
        size_t k = c->gen_chunked ? BYTES_CHUNK : RBUF_SIZE;
        if (left < k) k = (size_t)left;
        const char *src = g_pat + c->gen_pos % 26;
        if (c->gen_chunked) {
            out_printf(c, "%zx\r\n", k);
            out_append(c, src, k);
            out_puts(c, "\r\n");
        } else {
            out_append(c, src, k);
        }
        c->gen_pos += k;
        if (c->gen_pos == c->gen_total) {
            if (c->gen_chunked) out_puts(c, "0\r\n\r\n");
            c->gen_active = false;
            conn_response_done(c);
        }
    }
}

void bytes_respond(struct conn *c)
{
    uint64_t n;
    if (!req_query_u64(c, "n", MAX_BYTES_N, &n)) {
        resp_error(c, 400, "bad or missing n");
        conn_response_done(c);
        return;
    }
    const char *v;
    size_t vl;
    bool chunked = req_query_param(c, "chunked", &v, &vl) && !(vl == 1 && v[0] == '0') &&
                   !(vl == 5 && memcmp(v, "false", 5) == 0);
    if (c->minor == 0) chunked = false; /* HTTP/1.0 has no chunked coding */
    char extra[64];
    snprintf(extra, sizeof extra, "X-Body-CRC32: %08" PRIx32 "\r\n", pattern_crc(n));
    resp_head(c, 200, "application/octet-stream", (int64_t)n, chunked, extra);
    if (c->is_head || n == 0) {
        if (chunked && !c->is_head) out_puts(c, "0\r\n\r\n");
        conn_response_done(c);
        return;
    }
    c->gen_active = true;
    c->gen_chunked = chunked;
    c->gen_pos = 0;
    c->gen_total = n;
}
