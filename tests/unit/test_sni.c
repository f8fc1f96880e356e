/* The server_name extension reader and the DNS name matching (src/tls/sni.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tls/sni.h"

/* The extension_data for one host_name entry. */
static size_t ext(uint8_t *out, const char *name)
{
    size_t n = strlen(name);
    out[0] = (uint8_t)((n + 3) >> 8), out[1] = (uint8_t)(n + 3);
    out[2] = 0;
    out[3] = (uint8_t)(n >> 8), out[4] = (uint8_t)n;
    memcpy(out + 5, name, n);
    return n + 5;
}

static void reads_the_host_name_lower_cased(void **state)
{
    uint8_t e[300];
    char name[TLS_NAME_MAX + 1];
    size_t len = ext(e, "WWW.Example.COM");
    assert_int_equal(tls_sni_parse(e, len, name, sizeof(name)), 15);
    assert_string_equal(name, "www.example.com");
    len = ext(e, "a.test."); /* the trailing dot of a fully qualified name */
    assert_int_equal(tls_sni_parse(e, len, name, sizeof(name)), 6);
    assert_string_equal(name, "a.test");
}

static void refuses_what_is_not_a_dns_name(void **state)
{
    static const char *const bad[] = {
        "", ".", "a..b", ".a.b", "a.b..", "a b.test", "a/b", "a\r\nb", "caf\xc3\xa9.test"};
    uint8_t e[300];
    char name[TLS_NAME_MAX + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = ext(e, bad[i]);
        assert_int_equal(tls_sni_parse(e, len, name, sizeof(name)), -1);
    }
    char longname[300];
    memset(longname, 'a', 254);
    longname[254] = 0;
    size_t len = ext(e, longname);
    assert_int_equal(tls_sni_parse(e, len, name, sizeof(name)), -1);
}

static void refuses_lengths_that_do_not_add_up(void **state)
{
    uint8_t e[300];
    char name[TLS_NAME_MAX + 1];
    size_t len = ext(e, "a.test");
    assert_int_equal(tls_sni_parse(e, len - 1, name, sizeof(name)), -1); /* cut short */
    e[4]++;                                                              /* entry longer */
    assert_int_equal(tls_sni_parse(e, len, name, sizeof(name)), -1);
    assert_int_equal(tls_sni_parse(e, 1, name, sizeof(name)), -1);
    /* a list that holds another type only: no name, not an error */
    const uint8_t other[] = {0, 4, 7, 0, 1, 'x'};
    assert_int_equal(tls_sni_parse(other, sizeof(other), name, sizeof(name)), 0);
    /* another type first, then the host_name */
    const uint8_t both[] = {0, 10, 7, 0, 1, 'x', 0, 0, 3, 'a', '.', 'b'};
    assert_int_equal(tls_sni_parse(both, sizeof(both), name, sizeof(name)), 3);
    assert_string_equal(name, "a.b");
}

static void wildcards_cover_exactly_one_label(void **state)
{
    assert_true(tls_name_match("a.test", "a.test"));
    assert_false(tls_name_match("a.test", "b.test"));
    assert_true(tls_name_match("*.wild.test", "x.wild.test"));
    assert_false(tls_name_match("*.wild.test", "wild.test"));
    assert_false(tls_name_match("*.wild.test", "a.b.wild.test"));
    assert_false(tls_name_match("*.wild.test", ".wild.test"));
    assert_false(tls_name_match("*wild.test", "xwild.test")); /* partial wildcards: not honoured */
    assert_false(tls_name_match("*.test", "x.wild.test"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_the_host_name_lower_cased),
        cmocka_unit_test(refuses_what_is_not_a_dns_name),
        cmocka_unit_test(refuses_lengths_that_do_not_add_up),
        cmocka_unit_test(wildcards_cover_exactly_one_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
