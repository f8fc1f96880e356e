/* fuzz_sni: the part of the TLS input usher reads itself (src/tls/sni.c).
 *
 * The input is the extension_data of a server_name extension as a client
 * sent it. Invariants: a name that is returned is what the extension holds
 * (the first host_name entry, lower cased, a trailing dot dropped), made of
 * DNS characters only, at most 253 of them; nothing is read past the input.
 * Then the name is matched against patterns made from itself: it matches
 * itself, and "*." + its parent matches it exactly when it has a parent. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/sni.h"

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant %s violated\n", name);                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: ASan sees any read past the end */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    char name[TLS_NAME_MAX + 1];
    int n = tls_sni_parse(p, size, name, sizeof(name));
    CHECK("range", n >= -1 && n <= TLS_NAME_MAX);
    if (n > 0) {
        CHECK("length", strlen(name) == (size_t)n);
        for (int i = 0; i < n; i++) {
            char c = name[i];
            CHECK("dns-chars", (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                   c == '.' || c == '_');
        }
        CHECK("no-empty-label", name[0] != '.' && name[n - 1] != '.' && !strstr(name, ".."));
        /* the first host_name entry holds these bytes, case aside (walked here
         * independently of sni.c) */
        size_t at = 2, len = 0;
        while (at + 3 <= size && p[at] != 0) at += 3 + (((size_t)p[at + 1] << 8) | p[at + 2]);
        CHECK("well-formed", at + 3 <= size);
        len = ((size_t)p[at + 1] << 8) | p[at + 2];
        CHECK("inside", at + 3 + len <= size);
        const uint8_t *h = p + at + 3;
        CHECK("same-bytes", len == (size_t)n || (len == (size_t)n + 1 && h[n] == '.'));
        for (int i = 0; i < n; i++) {
            uint8_t c = h[i];
            if (c >= 'A' && c <= 'Z') c = (uint8_t)(c - 'A' + 'a');
            CHECK("same-bytes", c == (uint8_t)name[i]);
        }
        CHECK("self-match", tls_name_match(name, name));
        const char *dot = strchr(name, '.');
        if (dot) {
            char pat[TLS_NAME_MAX + 3];
            snprintf(pat, sizeof(pat), "*%s", dot);
            CHECK("wildcard-match", tls_name_match(pat, name));
            CHECK("wildcard-not-parent", !tls_name_match(pat, dot + 1));
        }
    }
    free(p);
    return 0;
}
