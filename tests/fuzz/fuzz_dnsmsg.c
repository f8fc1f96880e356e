/* fuzz_dnsmsg: the DNS answers usher reads for service discovery
 * (src/upstream/dnsmsg.c), the one reader of bytes a DNS server sends.
 *
 * The input is a DNS response. Invariants: nothing is read past the input
 * (ASan, on an exact-size copy); a refusal says why; every record kept is an
 * A, AAAA or SRV with a TTL below 2^31, an owner and an SRV target that are
 * lower-case printable names of at most 255 bytes with no empty label; at
 * most DNS_MAX_RECORDS are kept; reading the same bytes twice gives the
 * same answer. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/dnsmsg.h"

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant %s violated\n", name);                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_name(const char *n)
{
    size_t len = strlen(n);
    CHECK("name-length", len <= DNS_NAME_MAX);
    if (!len) return;
    CHECK("no-empty-label", n[0] != '.' && n[len - 1] != '.' && !strstr(n, ".."));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        CHECK("printable-lower", c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z'));
    }
}

static struct dns_answer a, b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    const char *why = NULL;
    int r = dns_parse_answer(p, size, &a, &why);
    CHECK("result", r == 0 || r == -1);
    if (r < 0) {
        CHECK("why", why && why[0]);
    } else {
        CHECK("kept", a.nrecords <= DNS_MAX_RECORDS);
        CHECK("dropped-only-when-full", !a.dropped || a.nrecords == DNS_MAX_RECORDS);
        for (uint32_t i = 0; i < a.nrecords; i++) {
            const struct dns_record *rec = &a.records[i];
            CHECK("type",
                  rec->type == DNS_T_A || rec->type == DNS_T_AAAA || rec->type == DNS_T_SRV);
            CHECK("ttl", rec->ttl <= 0x7fffffffu);
            check_name(rec->owner);
            if (rec->type == DNS_T_SRV) check_name(rec->u.srv.target);
        }
        CHECK("same-again", dns_parse_answer(p, size, &b, NULL) == 0 && b.nrecords == a.nrecords &&
                                b.dropped == a.dropped &&
                                !memcmp(b.records, a.records, a.nrecords * sizeof(a.records[0])));
    }
    free(p);
    return 0;
}
