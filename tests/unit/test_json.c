/* json.c: the strict flat-object reader and the writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admin/json.h"

static int parse(const char *text, struct json_object *o, char *why)
{
    return json_parse_object(text, strlen(text), o, why, 160);
}

static void reads_fields_of_each_type(void **state)
{
    struct json_object o;
    char why[160];
    assert_int_equal(parse(" { \"state\" : \"drain\", \"weight\":5, \"x\":-1.5e2, \"t\":true,"
                           " \"f\":false, \"n\":null } ",
                           &o, why),
                     0);
    assert_int_equal(o.n, 6);
    assert_string_equal(json_get(&o, "state")->str, "drain");
    assert_int_equal(json_get(&o, "weight")->type, JSON_NUMBER);
    assert_true(json_get(&o, "weight")->num == 5);
    assert_true(json_get(&o, "x")->num == -150);
    assert_int_equal(json_get(&o, "t")->type, JSON_BOOL);
    assert_true(json_get(&o, "t")->num == 1);
    assert_true(json_get(&o, "f")->num == 0);
    assert_int_equal(json_get(&o, "n")->type, JSON_NULL);
    assert_null(json_get(&o, "missing"));
    assert_int_equal(parse("{}", &o, why), 0);
    assert_int_equal(o.n, 0);
}

static void decodes_escapes(void **state)
{
    struct json_object o;
    char why[160];
    assert_int_equal(parse("{\"s\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\"}", &o, why), 0);
    assert_string_equal(json_get(&o, "s")->str, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80");
}

static void refuses_malformed_input(void **state)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "expected a JSON object"},
        {"[1]", "expected a JSON object"},
        {"{\"a\":1", "expected ',' or '}'"},
        {"{\"a\" 1}", "expected ':'"},
        {"{a:1}", "expected a key in quotes"},
        {"{\"a\":1,}", "expected a key in quotes"},
        {"{\"a\":01}", "expected ',' or '}'"},
        {"{\"a\":1.}", "bad number"},
        {"{\"a\":-}", "bad number"},
        {"{\"a\":1e}", "bad number"},
        {"{\"a\":tru}", "expected a value"},
        {"{\"a\":{\"b\":1}}", "nested"},
        {"{\"a\":[1]}", "nested"},
        {"{\"a\":\"x}", "unterminated string"},
        {"{\"a\":\"\x01\"}", "control character"},
        {"{\"a\":\"\\x\"}", "unknown escape"},
        {"{\"a\":\"\\u12\"}", "bad \\u escape"},
        {"{\"a\":\"\\ud800\"}", "unpaired surrogate"},
        {"{\"a\":\"\\u0000\"}", "NUL"},
        {"{\"a\":1,\"a\":2}", "key given twice"},
        {"{\"a\":1} x", "unexpected text after the object"},
        {"{\"a\":1}{}", "unexpected text after the object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct json_object o;
        char why[160] = "";
        if (parse(bad[i].text, &o, why) != -1 || !strstr(why, bad[i].why))
            fail_msg("'%s': expected an error with '%s', got '%s'", bad[i].text, bad[i].why, why);
    }
}

static void refuses_too_long_strings_and_too_many_fields(void **state)
{
    char text[2048];
    struct json_object o;
    char why[160];
    snprintf(text, sizeof(text), "{\"a\":\"%0600d\"}", 0);
    assert_int_equal(parse(text, &o, why), -1);
    assert_non_null(strstr(why, "string too long"));
    size_t n = (size_t)snprintf(text, sizeof(text), "{");
    for (int i = 0; i <= JSON_MAX_FIELDS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"k%d\":1", i ? "," : "", i);
    snprintf(text + n, sizeof(text) - n, "}");
    assert_int_equal(parse(text, &o, why), -1);
    assert_non_null(strstr(why, "too many fields"));
}

static void writes_escaped_strings_and_numbers(void **state)
{
    struct jbuf b = {0};
    jb_str(&b, "a\"b\\c\n\x01");
    jb_putn(&b, " ", 1);
    jb_num(&b, 5);
    jb_putn(&b, " ", 1);
    jb_num(&b, 0.25);
    jb_putn(&b, " ", 1);
    jb_num(&b, 0.0 / 0.0);
    jb_putn(&b, " ", 1);
    jb_u64(&b, 18446744073709551615ULL);
    jb_putn(&b, " ", 1);
    jb_u64(&b, 0);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\" 5 0.25 null 18446744073709551615 0");
    /* what the writer wrote, the reader reads back */
    struct jbuf o = {0};
    jb_puts(&o, "{\"s\":");
    jb_str(&o, "tab\there \"q\"");
    jb_puts(&o, "}");
    struct json_object obj;
    char why[160];
    assert_int_equal(json_parse_object(o.p, o.len, &obj, why, sizeof(why)), 0);
    assert_string_equal(json_get(&obj, "s")->str, "tab\there \"q\"");
    jb_free(&b);
    jb_free(&o);
}

/* jb_u64_at writes two digits at a time: every length, and each side of a
 * power of ten, against printf */
static void writes_integers_like_printf(void **state)
{
    uint64_t v[64];
    int n = 0;
    for (uint64_t p = 1; n < 60; p *= 10) {
        v[n++] = p - 1;
        v[n++] = p;
        v[n++] = p + 7;
        if (p > UINT64_MAX / 10) break;
    }
    v[n++] = 18446744073709551615ULL;
    v[n++] = 1234567890123ULL;
    for (int i = 0; i < n; i++) {
        char want[32], got[32];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        char *e = jb_u64_at(got, v[i]);
        *e = 0;
        assert_string_equal(got, want);
    }
    /* reserve, write, commit: the buffer holds what was written, 0-terminated */
    struct jbuf b = {0};
    jb_puts(&b, "x=");
    char *o = jb_reserve(&b, 100000);
    assert_non_null(o);
    assert_true(b.cap >= b.len + 100001);
    o = jb_u64_at(o, 42);
    *o++ = ';';
    jb_commit(&b, o);
    assert_string_equal(b.p, "x=42;");
    assert_int_equal(b.len, 5);
    jb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_fields_of_each_type),
        cmocka_unit_test(decodes_escapes),
        cmocka_unit_test(refuses_malformed_input),
        cmocka_unit_test(refuses_too_long_strings_and_too_many_fields),
        cmocka_unit_test(writes_escaped_strings_and_numbers),
        cmocka_unit_test(writes_integers_like_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
