/* sni: the server_name extension and name matching. See sni.h. */
#include "tls/sni.h"

#include <string.h>

static int dns_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int tls_sni_parse(const uint8_t *p, size_t len, char *out, size_t cap)
{
    if (len < 2) return -1;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list != len - 2) return -1;
    p += 2;
    len -= 2;
    while (len) {
        if (len < 3) return -1;
        uint8_t type = p[0];
        size_t n = ((size_t)p[1] << 8) | p[2];
        p += 3;
        len -= 3;
        if (n > len) return -1;
        if (type == 0) { /* host_name: the only type; at most one of it (RFC 6066 3) */
            if (n && p[n - 1] == '.') n--;
            if (n == 0 || n > TLS_NAME_MAX || n >= cap) return -1;
            for (size_t i = 0; i < n; i++) {
                uint8_t c = p[i];
                if (c >= 'A' && c <= 'Z') c = (uint8_t)(c - 'A' + 'a');
                if (!dns_char(c)) return -1;
                out[i] = (char)c;
            }
            out[n] = 0;
            if (out[0] == '.' || out[n - 1] == '.' || strstr(out, "..")) return -1;
            return (int)n;
        }
        p += n;
        len -= n;
    }
    return 0;
}

int tls_name_match(const char *pattern, const char *name)
{
    if (pattern[0] != '*') return strcmp(pattern, name) == 0;
    if (pattern[1] != '.') return 0; /* "*foo.example.com" and such: not honoured */
    const char *dot = strchr(name, '.');
    if (!dot || dot == name) return 0; /* the wildcard must cover a whole, non-empty label */
    return strcmp(pattern + 1, dot) == 0;
}
