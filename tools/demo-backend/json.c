/* json: see json.h. */
#include "json.h"

#include <stdint.h>

/* Length of a valid UTF-8 multi-byte sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
    return len;
}

void json_str(struct buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = u[i];
        size_t k;
        if (ch == '"' || ch == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)ch);
            i++;
        } else if (ch >= 0x20 && ch < 0x7f) {
            buf_putc(b, (char)ch);
            i++;
        } else if (ch >= 0x80 && (k = utf8_seq(u + i, n - i)) > 0) {
            buf_append(b, s + i, k);
            i += k;
        } else {
            buf_printf(b, "\\u%04x", ch);
            i++;
        }
    }
    buf_putc(b, '"');
}
