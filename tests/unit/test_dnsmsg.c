/* Tests src/upstream/dnsmsg.c: reading DNS responses, as dnsmasq, Consul
 * and CoreDNS write them, and refusing malformed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/dnsmsg.h"

/* A message under construction. */
struct msg {
    uint8_t b[2048];
    size_t n;
};

static void put8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* Writes name uncompressed ("a.b" -> 1a1b0). */
static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)l);
        memcpy(m->b + m->n, name, l);
        m->n += l;
        name += l + (dot ? 1 : 0);
    }
    put8(m, 0);
}

static void header(struct msg *m, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                   unsigned ar)
{
    m->n = 0;
    put16(m, 0x1234);
    put16(m, flags);
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
}

static void question(struct msg *m, const char *name, unsigned type)
{
    put_name(m, name);
    put16(m, type);
    put16(m, 1);
}

/* The owner as a pointer to offset 12 (the question's name). */
static void rr_head_ptr(struct msg *m, unsigned type, uint32_t ttl, unsigned rdlen)
{
    put16(m, 0xc00c);
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    put16(m, rdlen);
}

static void rr_a(struct msg *m, uint32_t ttl, unsigned a, unsigned b, unsigned c, unsigned d)
{
    rr_head_ptr(m, DNS_T_A, ttl, 4);
    put8(m, a), put8(m, b), put8(m, c), put8(m, d);
}

static int parse(struct msg *m, struct dns_answer *a, const char **why)
{
    *why = NULL;
    return dns_parse_answer(m->b, m->n, a, why);
}

static struct dns_answer ans;

static void test_a_records_with_ttls(void **state)
{
    (void)state;
    struct msg m;
    const char *why;
    header(&m, 0x8180, 1, 2, 0, 0);
    question(&m, "Web.Example", DNS_T_A);
    rr_a(&m, 30, 10, 0, 0, 1);
    rr_a(&m, 0x80000001u, 10, 0, 0, 2); /* top bit set: 0 (RFC 2181 8) */
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.id, 0x1234);
    assert_int_equal(ans.rcode, DNS_RCODE_NOERROR);
    assert_int_equal(ans.nrecords, 2);
    assert_string_equal(ans.records[0].owner, "web.example");
    assert_int_equal(ans.records[0].type, DNS_T_A);
    assert_int_equal(ans.records[0].ttl, 30);
    assert_int_equal(ans.records[0].answer, 1);
    assert_memory_equal(ans.records[0].u.a, "\x0a\x00\x00\x01", 4);
    assert_int_equal(ans.records[1].ttl, 0);
    assert_memory_equal(ans.records[1].u.a, "\x0a\x00\x00\x02", 4);
}

static void test_aaaa_and_other_types_skipped(void **state)
{
    (void)state;
    struct msg m;
    const char *why;
    header(&m, 0x8180, 1, 3, 0, 1);
    question(&m, "v6.test", DNS_T_AAAA);
    rr_head_ptr(&m, DNS_T_CNAME, 60, 4); /* a CNAME: skipped */
    put8(&m, 2), put8(&m, 'x'), put8(&m, 'y'), put8(&m, 0);
    rr_head_ptr(&m, DNS_T_AAAA, 5, 16);
    for (int i = 0; i < 15; i++) put8(&m, 0);
    put8(&m, 1);
    rr_head_ptr(&m, 16 /* TXT */, 5, 2);
    put8(&m, 1), put8(&m, 'z');
    put8(&m, 0); /* OPT in the additional section: root name */
    put16(&m, 41), put16(&m, 1232), put32(&m, 0), put16(&m, 0);
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.nrecords, 1);
    assert_int_equal(ans.records[0].type, DNS_T_AAAA);
    assert_int_equal(ans.records[0].ttl, 5);
    assert_int_equal(ans.records[0].u.aaaa[15], 1);
}

static void test_srv_with_additional_addresses(void **state)
{
    (void)state;
    struct msg m;
    const char *why;
    header(&m, 0x8580, 1, 2, 0, 1);
    question(&m, "_http._tcp.web.service.consul", DNS_T_SRV);
    size_t target_at;
    /* SRV 1 10 8080 node-a.node.dc1.consul (written out) */
    rr_head_ptr(&m, DNS_T_SRV, 0, 6 + 24);
    put16(&m, 1), put16(&m, 10), put16(&m, 8080);
    target_at = m.n;
    put_name(&m, "Node-A.node.dc1.consul");
    /* SRV 2 5 9090 -> a pointer into the first target's "node.dc1.consul" */
    rr_head_ptr(&m, DNS_T_SRV, 7, 6 + 7 + 2);
    put16(&m, 2), put16(&m, 5), put16(&m, 9090);
    put8(&m, 6), memcpy(m.b + m.n, "node-b", 6), m.n += 6;
    put16(&m, 0xc000 | (unsigned)(target_at + 7));
    /* the additional A of node-a (its name as a pointer to the target) */
    put16(&m, 0xc000 | (unsigned)target_at);
    put16(&m, DNS_T_A), put16(&m, 1), put32(&m, 0), put16(&m, 4);
    put8(&m, 127), put8(&m, 0), put8(&m, 0), put8(&m, 5);
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.nrecords, 3);
    assert_int_equal(ans.records[0].type, DNS_T_SRV);
    assert_int_equal(ans.records[0].u.srv.priority, 1);
    assert_int_equal(ans.records[0].u.srv.weight, 10);
    assert_int_equal(ans.records[0].u.srv.port, 8080);
    assert_string_equal(ans.records[0].u.srv.target, "node-a.node.dc1.consul");
    assert_string_equal(ans.records[1].u.srv.target, "node-b.node.dc1.consul");
    assert_int_equal(ans.records[1].ttl, 7);
    assert_int_equal(ans.records[2].answer, 0);
    assert_string_equal(ans.records[2].owner, "node-a.node.dc1.consul");
    assert_true(dns_name_eq(ans.records[2].owner, "NODE-A.node.dc1.consul."));
    assert_false(dns_name_eq(ans.records[2].owner, "node-a.node.dc1"));
}

static void test_nxdomain_and_truncation(void **state)
{
    (void)state;
    struct msg m;
    const char *why;
    header(&m, 0x8183, 1, 0, 0, 0);
    question(&m, "gone.test", DNS_T_A);
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.rcode, DNS_RCODE_NXDOMAIN);
    assert_int_equal(ans.nrecords, 0);
    /* TC set and the message ends inside the second record: the first kept */
    header(&m, 0x8380, 1, 2, 0, 0);
    question(&m, "big.test", DNS_T_A);
    rr_a(&m, 30, 10, 0, 0, 1);
    rr_head_ptr(&m, DNS_T_A, 30, 4);
    put8(&m, 10);
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.truncated, 1);
    assert_int_equal(ans.nrecords, 1);
}

static void test_more_records_than_kept_are_counted(void **state)
{
    (void)state;
    struct msg m;
    const char *why;
    header(&m, 0x8180, 1, DNS_MAX_RECORDS + 3, 0, 0);
    question(&m, "many.test", DNS_T_A);
    for (unsigned i = 0; i < DNS_MAX_RECORDS + 3; i++) rr_a(&m, 30, 10, 0, i >> 8, i & 0xff);
    assert_int_equal(parse(&m, &ans, &why), 0);
    assert_int_equal(ans.nrecords, DNS_MAX_RECORDS);
    assert_int_equal(ans.dropped, 3);
}

static void expect_refused(struct msg *m, const char *words)
{
    const char *why;
    assert_int_equal(parse(m, &ans, &why), -1);
    assert_non_null(why);
    if (!strstr(why, words)) fail_msg("why is \"%s\", expected \"%s\" in it", why, words);
}

static void test_malformed_messages_are_refused(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 0x8180, 0, 0, 0, 0);
    m.n = 11;
    expect_refused(&m, "shorter than a DNS header");
    header(&m, 0x0100, 0, 0, 0, 0); /* QR clear */
    expect_refused(&m, "a query");
    /* a pointer to itself */
    header(&m, 0x8180, 1, 0, 0, 0);
    put16(&m, 0xc00c), put16(&m, 1), put16(&m, 1);
    expect_refused(&m, "points forwards or loops");
    /* a pointer forwards */
    header(&m, 0x8180, 1, 0, 0, 0);
    put16(&m, 0xc020), put16(&m, 1), put16(&m, 1);
    expect_refused(&m, "points forwards or loops");
    /* label type 0x40 */
    header(&m, 0x8180, 1, 0, 0, 0);
    put8(&m, 0x41), put8(&m, 'a'), put8(&m, 0);
    expect_refused(&m, "label type");
    /* a label past the end */
    header(&m, 0x8180, 1, 0, 0, 0);
    put8(&m, 20), put8(&m, 'a');
    expect_refused(&m, "past the end");
    /* an A record of 5 bytes */
    header(&m, 0x8180, 1, 1, 0, 0);
    question(&m, "x.test", DNS_T_A);
    rr_head_ptr(&m, DNS_T_A, 1, 5);
    for (int i = 0; i < 5; i++) put8(&m, 1);
    expect_refused(&m, "not 4 bytes");
    /* rdlength past the end, no TC */
    header(&m, 0x8180, 1, 1, 0, 0);
    question(&m, "x.test", DNS_T_A);
    rr_head_ptr(&m, DNS_T_A, 1, 4);
    put8(&m, 1);
    expect_refused(&m, "past the end");
    /* an SRV whose target runs past its data */
    header(&m, 0x8180, 1, 1, 0, 0);
    question(&m, "_s._tcp.x", DNS_T_SRV);
    rr_head_ptr(&m, DNS_T_SRV, 1, 8);
    put16(&m, 1), put16(&m, 1), put16(&m, 80), put8(&m, 5), put8(&m, 'a');
    put8(&m, 'b'), put8(&m, 'c'), put8(&m, 'd'), put8(&m, 'e'), put8(&m, 0);
    expect_refused(&m, "SRV");
    /* a dot or a NUL inside a label */
    header(&m, 0x8180, 1, 0, 0, 0);
    put8(&m, 3), put8(&m, 'a'), put8(&m, '.'), put8(&m, 'b'), put8(&m, 0);
    expect_refused(&m, "inside a label");
    header(&m, 0x8180, 1, 0, 0, 0);
    put8(&m, 2), put8(&m, 'a'), put8(&m, 0), put8(&m, 0);
    expect_refused(&m, "inside a label");
    /* a name of more than 255 bytes */
    header(&m, 0x8180, 1, 0, 0, 0);
    for (int i = 0; i < 5; i++) {
        put8(&m, 63);
        memset(m.b + m.n, 'a', 63);
        m.n += 63;
    }
    put8(&m, 0);
    expect_refused(&m, "longer than 255");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_records_with_ttls),
        cmocka_unit_test(test_aaaa_and_other_types_skipped),
        cmocka_unit_test(test_srv_with_additional_addresses),
        cmocka_unit_test(test_nxdomain_and_truncation),
        cmocka_unit_test(test_more_records_than_kept_are_counted),
        cmocka_unit_test(test_malformed_messages_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
