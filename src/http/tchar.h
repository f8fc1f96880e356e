/* tchar.h: the token characters of RFC 9110 5.6.2, for the HTTP/1 parsers. */
#ifndef USHER_HTTP_TCHAR_H
#define USHER_HTTP_TCHAR_H

#include <stdint.h>

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
 *         "`" / "|" / "~" / DIGIT / ALPHA, as a bitmap of the 128 ASCII codes:
 * checked for every byte of every header name, so one load and a shift. */
static inline int http_is_tchar(unsigned char c)
{
    static const uint64_t bits[2] = {0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull};
    return c < 128 && (bits[c >> 6] >> (c & 63) & 1);
}

#endif
