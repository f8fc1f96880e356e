/* ws: see ws.h. */
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"
#include "out.h"
#include "request.h"
#include "response.h"
#include "sha1.h"

/* Bytes of frame header implied by the first `have` bytes of h (RFC 6455 5.2). */
static size_t ws_hdr_need(const unsigned char *h, size_t have)
{
    if (have < 2) return 2;
    size_t need = 2 + ((h[1] & 0x80) ? 4 : 0);
    if ((h[1] & 0x7f) == 126)
        need += 2;
    else if ((h[1] & 0x7f) == 127)
        need += 8;
    return need;
}

static void ws_frame_head(struct conn *c, bool fin, int op, uint64_t len)
{
    unsigned char h[10];
    size_t n = 0;
    h[n++] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        h[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[n++] = 126;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--) h[n++] = (unsigned char)(len >> (8 * i));
    }
    out_append(c, h, n);
}

static void ws_fail(struct conn *c, unsigned code)
{
    unsigned char f[4] = {0x88, 2, (unsigned char)(code >> 8), (unsigned char)code};
    out_append(c, f, sizeof f);
    c->close_after_flush = true;
}

static void ws_end_frame(struct conn *c)
{
    if (c->ws_op == 0x8) c->close_after_flush = true;
}

static void ws_begin_frame(struct conn *c)
{
    const unsigned char *h = c->ws_hdr;
    bool fin = h[0] & 0x80;
    int op = h[0] & 0x0f;
    size_t i = 2;
    uint64_t len = h[1] & 0x7f;
    c->ws_hlen = 0;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        i = 4;
    } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; k++) len = len << 8 | h[2 + k];
        i = 10;
    }
    /* RFC 6455 5.1, 5.2: no RSV bits, client frames masked, 63-bit lengths */
    if ((h[0] & 0x70) || !(h[1] & 0x80) || (len >> 63)) {
        ws_fail(c, 1002);
        return;
    }
    /* RFC 6455 5.5: control frames are not fragmented and carry <= 125 bytes */
    bool control = op & 0x8;
    if ((op > 0x2 && op < 0x8) || op > 0xa || (control && (!fin || len > 125))) {
        ws_fail(c, 1002);
        return;
    }
    memcpy(c->ws_mask, h + i, 4);
    c->ws_op = op;
    c->ws_left = len;
    c->ws_pos = 0;
    c->ws_echo = true;
    if (op == 0xa) {
        c->ws_echo = false; /* unsolicited pong: ignore */
    } else if (op == 0x9) {
        ws_frame_head(c, true, 0xa, len);
    } else if (op == 0x8 && len == 1) {
        ws_fail(c, 1002);
        return;
    } else {
        ws_frame_head(c, fin, op, len); /* data, continuation, close: echoed */
    }
    if (len == 0) ws_end_frame(c);
}

void ws_feed(struct conn *c, const unsigned char *d, size_t n)
{
    while (n > 0 && !c->close_after_flush) {
        if (c->ws_left == 0) {
            size_t need = ws_hdr_need(c->ws_hdr, c->ws_hlen);
            while (c->ws_hlen < need && n > 0) {
                c->ws_hdr[c->ws_hlen++] = *d++;
                n--;
                need = ws_hdr_need(c->ws_hdr, c->ws_hlen);
            }
            if (c->ws_hlen < need) return;
            ws_begin_frame(c);
            continue;
        }
        size_t k = n < c->ws_left ? n : (size_t)c->ws_left;
        if (c->ws_echo) {
            out_reserve(c, k);
            unsigned char *o = (unsigned char *)c->out.p + c->out.len;
            for (size_t j = 0; j < k; j++) o[j] = d[j] ^ c->ws_mask[(c->ws_pos + j) & 3];
            c->out.len += k;
        }
        c->ws_pos += k;
        c->ws_left -= k;
        d += k;
        n -= k;
        if (c->ws_left == 0) ws_end_frame(c);
    }
}

void ws_handshake(struct conn *c)
{
    const char *key;
    size_t kl;
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[128 + sizeof guid]; /* http.c accepts keys of at most 128 bytes */
    unsigned char dig[20];
    char acc[32];
    req_header(c, "Sec-WebSocket-Key", &key, &kl);
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    sha1_digest(cat, kl + sizeof guid - 1, dig);
    base64_encode(dig, sizeof dig, acc);
    out_printf(c,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n",
               acc, resp_name);
    c->ws = true;
    c->ws_hlen = 0;
    c->ws_left = 0;
}
