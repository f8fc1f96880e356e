/* Tests the pure parts of src/upstream/discover.c: the set an answer gives
 * (A, AAAA, SRV with additional records or looked-up targets), its order,
 * the change in words, and the delay before the next question. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/discover.h"

static struct dns_answer ans;
static struct discover_set set, other;

static void add_a(int answer, const char *owner, uint32_t ttl, uint8_t a, uint8_t b, uint8_t c,
                  uint8_t d)
{
    struct dns_record *r = &ans.records[ans.nrecords++];
    memset(r, 0, sizeof(*r));
    r->type = DNS_T_A;
    r->answer = (uint8_t)answer;
    r->ttl = ttl;
    snprintf(r->owner, sizeof(r->owner), "%s", owner);
    r->u.a[0] = a, r->u.a[1] = b, r->u.a[2] = c, r->u.a[3] = d;
}

static void add_srv(const char *target, uint32_t ttl, uint16_t prio, uint16_t weight, uint16_t port)
{
    struct dns_record *r = &ans.records[ans.nrecords++];
    memset(r, 0, sizeof(*r));
    r->type = DNS_T_SRV;
    r->answer = 1;
    r->ttl = ttl;
    snprintf(r->owner, sizeof(r->owner), "_http._tcp.web");
    r->u.srv.priority = prio;
    r->u.srv.weight = weight;
    r->u.srv.port = port;
    snprintf(r->u.srv.target, sizeof(r->u.srv.target), "%s", target);
}

static struct discover_spec spec(enum discover_type t)
{
    struct discover_spec s;
    memset(&s, 0, sizeof(s));
    snprintf(s.pool, sizeof(s.pool), "web");
    snprintf(s.name, sizeof(s.name), "web.test");
    s.type = t;
    s.port = 8080;
    s.min_ttl_ms = 1000;
    s.max_ttl_ms = 300000;
    s.hold_ms = 60000;
    return s;
}

static const char *text(const struct discover_target *t)
{
    static char out[8][64];
    static int i;
    i = (i + 1) % 8;
    discover_target_text(t, out[i], sizeof(out[i]));
    return out[i];
}

static void test_a_answer_sorted_with_the_port_and_smallest_ttl(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_A);
    const char *why = NULL;
    ans.nrecords = 0;
    add_a(1, "web.test", 30, 10, 0, 0, 2);
    add_a(1, "web.test", 20, 10, 0, 0, 1);
    add_a(1, "web.test", 30, 10, 0, 0, 2); /* twice: one backend */
    add_a(0, "web.test", 1, 10, 0, 0, 9);  /* additional section: not an answer */
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &set, &why), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(text(&set.t[0]), "10.0.0.1:8080");
    assert_string_equal(text(&set.t[1]), "10.0.0.2:8080");
    assert_int_equal(set.t[0].weight, 1);
    assert_int_equal(set.ttl_s, 20);
}

static void test_empty_answer_is_a_failure(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_AAAA);
    const char *why = NULL;
    ans.nrecords = 0;
    add_a(1, "web.test", 30, 10, 0, 0, 1); /* an A when AAAA was asked */
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &set, &why), -1);
    assert_non_null(why);
    assert_int_equal(set.n, 0);
}

static void test_srv_targets_from_additional_records_and_lookups(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_SRV);
    const char *why = NULL;
    ans.nrecords = 0;
    add_srv("node-a", 60, 1, 10, 8080);
    add_srv("node-b", 60, 1, 5, 9090);
    add_srv("node-c", 60, 2, 1, 7070); /* no address anywhere: left out */
    add_srv("", 60, 1, 1, 80);         /* "." : not offered there */
    add_a(0, "node-a", 15, 127, 0, 0, 5);
    struct discover_addr looked[1] = {{.target = 1, .family = AF_INET, .ttl = 40}};
    looked[0].a[0] = 127, looked[0].a[3] = 6;
    assert_int_equal(discover_build_set(&s, &ans, looked, 1, &set, &why), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(text(&set.t[0]), "127.0.0.5:8080");
    assert_int_equal(set.t[0].weight, 10);
    assert_int_equal(set.t[0].priority, 1);
    assert_string_equal(text(&set.t[1]), "127.0.0.6:9090");
    assert_int_equal(set.t[1].weight, 5);
    assert_int_equal(set.ttl_s, 15);
}

static void test_aaaa_text_in_brackets(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_SRV);
    const char *why = NULL;
    ans.nrecords = 0;
    add_srv("v6", 60, 0, 1, 8443);
    struct discover_addr looked[1] = {{.target = 0, .family = AF_INET6, .ttl = 60}};
    looked[0].a[15] = 1;
    assert_int_equal(discover_build_set(&s, &ans, looked, 1, &set, &why), 0);
    assert_string_equal(text(&set.t[0]), "[::1]:8443");
}

static void test_diff_in_words(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_SRV);
    const char *why = NULL;
    ans.nrecords = 0;
    add_srv("a", 60, 0, 10, 8080);
    add_srv("b", 60, 0, 10, 8080);
    add_a(0, "a", 60, 10, 0, 0, 1);
    add_a(0, "b", 60, 10, 0, 0, 2);
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &set, &why), 0);
    char out[512];
    assert_int_equal(discover_diff(&set, &set, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    ans.nrecords = 0;
    add_srv("b", 60, 0, 20, 8080);
    add_srv("c", 60, 2, 10, 8080);
    add_a(0, "b", 60, 10, 0, 0, 2);
    add_a(0, "c", 60, 10, 0, 0, 4);
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &other, &why), 0);
    assert_int_equal(discover_diff(&set, &other, out, sizeof(out)), 1);
    assert_string_equal(out, "-10.0.0.1:8080, ~10.0.0.2:8080 (weight 20), +10.0.0.4:8080 "
                             "(weight 10, priority 2)");
    /* from nothing, and a small buffer stays a string */
    struct discover_set none = {.n = 0};
    assert_int_equal(discover_diff(&none, &other, out, 12), 1);
    assert_int_equal(strlen(out), 11);
}

/* Each SRV backend carries its target's name (what TLS checks); A and AAAA
 * ones none. One address under two names is one backend, under the first
 * name in byte order whatever the records' order; a new name for the same
 * address is a change, said with the name. */
static void test_srv_target_names(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_SRV);
    const char *why = NULL;
    ans.nrecords = 0;
    add_srv("node-b.web.test", 60, 0, 10, 8443);
    add_srv("node-a.web.test", 60, 0, 10, 8443);
    add_srv("node-c.web.test", 60, 0, 10, 8443);
    add_a(0, "node-b.web.test", 60, 10, 0, 0, 1);
    add_a(0, "node-a.web.test", 60, 10, 0, 0, 1); /* the same address as node-b */
    add_a(0, "node-c.web.test", 60, 10, 0, 0, 3);
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &set, &why), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(text(&set.t[0]), "10.0.0.1:8443");
    assert_string_equal(set.t[0].name, "node-a.web.test");
    assert_string_equal(set.t[1].name, "node-c.web.test");
    /* the records in another order: the same set */
    ans.nrecords = 0;
    add_srv("node-c.web.test", 60, 0, 10, 8443);
    add_srv("node-a.web.test", 60, 0, 10, 8443);
    add_srv("node-b.web.test", 60, 0, 10, 8443);
    add_a(0, "node-a.web.test", 60, 10, 0, 0, 1);
    add_a(0, "node-c.web.test", 60, 10, 0, 0, 3);
    add_a(0, "node-b.web.test", 60, 10, 0, 0, 1);
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &other, &why), 0);
    char out[512];
    assert_int_equal(discover_diff(&set, &other, out, sizeof(out)), 0);
    assert_string_equal(other.t[0].name, "node-a.web.test");
    /* node-c's address now under another name: the same backend, renamed */
    ans.nrecords = 0;
    add_srv("node-a.web.test", 60, 0, 10, 8443);
    add_srv("node-d.web.test", 60, 0, 10, 8443);
    add_a(0, "node-a.web.test", 60, 10, 0, 0, 1);
    add_a(0, "node-d.web.test", 60, 10, 0, 0, 3);
    assert_int_equal(discover_build_set(&s, &ans, NULL, 0, &other, &why), 0);
    assert_int_equal(discover_diff(&set, &other, out, sizeof(out)), 1);
    assert_string_equal(out, "~10.0.0.3:8443 (weight 10, target node-d.web.test)");
    /* A records: no name */
    struct discover_spec a = spec(DISCOVER_A);
    ans.nrecords = 0;
    add_a(1, "web.test", 30, 10, 0, 0, 7);
    assert_int_equal(discover_build_set(&a, &ans, NULL, 0, &set, &why), 0);
    assert_string_equal(set.t[0].name, "");
    struct discover_addr both[1] = {{.family = AF_INET, .ttl = 5}};
    both[0].a[0] = 10, both[0].a[3] = 8;
    assert_int_equal(discover_build_addrs(&a, both, 1, &set, &why), 0);
    assert_string_equal(set.t[0].name, "");
}

static void test_next_question_follows_the_ttl_within_bounds(void **state)
{
    (void)state;
    struct discover_spec s = spec(DISCOVER_A);
    s.min_ttl_ms = 2000;
    s.max_ttl_ms = 60000;
    assert_int_equal(discover_next_ms(&s, 0), 2000);
    assert_int_equal(discover_next_ms(&s, 30), 30000);
    assert_int_equal(discover_next_ms(&s, 86400), 60000);
    assert_int_equal(discover_next_ms(&s, UINT32_MAX), 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_answer_sorted_with_the_port_and_smallest_ttl),
        cmocka_unit_test(test_empty_answer_is_a_failure),
        cmocka_unit_test(test_srv_targets_from_additional_records_and_lookups),
        cmocka_unit_test(test_aaaa_text_in_brackets),
        cmocka_unit_test(test_diff_in_words),
        cmocka_unit_test(test_srv_target_names),
        cmocka_unit_test(test_next_question_follows_the_ttl_within_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
