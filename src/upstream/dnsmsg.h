/* dnsmsg: reading a DNS response (RFC 1035 4.1, RFC 3596 AAAA, RFC 2782
 * SRV) for service discovery: the answer's code and, from the answer and
 * additional sections, the A, AAAA and SRV records with their TTLs.
 *
 * Pure: no I/O, no allocation. c-ares (discover.c) carries the queries; the
 * answers are read here, so that A, AAAA and SRV all come with their TTLs
 * (c-ares 1.18 gives none for SRV) and so that this one reader of bytes from
 * the network can be fuzzed on its own (tests/fuzz/fuzz_dnsmsg.c). */
#ifndef USHER_UPSTREAM_DNSMSG_H
#define USHER_UPSTREAM_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 255   /* presentation form, without the final dot */
#define DNS_MAX_RECORDS 64 /* records kept from one answer; the rest are counted */

enum {
    DNS_T_A = 1,
    DNS_T_CNAME = 5,
    DNS_T_AAAA = 28,
    DNS_T_SRV = 33,
};

enum {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_REFUSED = 5,
};

struct dns_record {
    uint16_t type;                /* DNS_T_A, DNS_T_AAAA or DNS_T_SRV */
    uint8_t answer;               /* 1: from the answer section, 0: from the additional one */
    uint32_t ttl;                 /* seconds */
    char owner[DNS_NAME_MAX + 1]; /* lower case, no final dot */
    union {
        uint8_t a[4];
        uint8_t aaaa[16];
        struct {
            uint16_t priority, weight, port;
            char target[DNS_NAME_MAX + 1]; /* lower case, no final dot; "" for "." */
        } srv;
    } u;
};

struct dns_answer {
    uint16_t id;
    uint8_t rcode;     /* DNS_RCODE_* */
    uint8_t truncated; /* TC was set (c-ares retries over TCP itself) */
    uint32_t nrecords; /* kept in records[] */
    uint32_t dropped;  /* A/AAAA/SRV records past DNS_MAX_RECORDS */
    struct dns_record records[DNS_MAX_RECORDS];
};

/* Reads the response msg[0..len) into a. 0, or -1 when it is not a
 * well-formed response (too short, a name that points forward or loops, a
 * record that runs past the end, a record whose data does not fit its type);
 * then why (a static string) says what was wrong. Records of other types
 * (CNAME, OPT, ...) are skipped; names are compared by the caller. */
int dns_parse_answer(const uint8_t *msg, size_t len, struct dns_answer *a, const char **why);

/* Whether two names are the same DNS name (ASCII case-insensitive, a final
 * dot ignored). */
int dns_name_eq(const char *a, const char *b);

#endif
