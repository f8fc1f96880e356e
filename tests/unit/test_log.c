/* Tests src/core/log.c: the JSON string escaping of --log-format json (quotes,
 * backslashes, control characters, invalid UTF-8, truncation that never cuts
 * an escape), and the lines log_emit writes in each format (stderr captured
 * through a pipe). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/log.h"

static char out[256];

static const char *esc(const char *in, size_t len, size_t cap)
{
    memset(out, 'X', sizeof(out));
    size_t n = log_json_escape(out, cap, in, len);
    assert_int_equal(n, strlen(out));
    assert_true(n < cap);
    return out;
}

#define ESC(s) esc(s, sizeof(s) - 1, sizeof(out))

static void test_plain_and_quotes(void **state)
{
    (void)state;
    assert_string_equal(ESC("backend 127.0.0.1:9001 is down"), "backend 127.0.0.1:9001 is down");
    assert_string_equal(ESC("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
    assert_string_equal(ESC("a/b"), "a/b"); /* / needs no escape */
    assert_string_equal(ESC(""), "");
}

static void test_control_characters(void **state)
{
    (void)state;
    assert_string_equal(ESC("a\nb\rc\td"), "a\\nb\\rc\\td");
    assert_string_equal(ESC("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    /* a NUL inside the given length is a character like the others */
    assert_string_equal(esc("a\0b", 3, sizeof(out)), "a\\u0000b");
}

static void test_utf8_kept_invalid_replaced(void **state)
{
    (void)state;
    /* valid: é (2 bytes), € (3), 😀 (4) pass as they are */
    assert_string_equal(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* a lone continuation byte, a lead byte without its continuation, Latin-1 */
    assert_string_equal(ESC("a\x80z"), "a\\ufffdz");
    assert_string_equal(ESC("\xc3("), "\\ufffd(");
    assert_string_equal(ESC("\xe9t\xe9"), "\\ufffdt\\ufffd");
    /* overlong "/" (C0 AF), overlong 3-byte (E0 80 AF), a surrogate (ED A0 80),
     * above U+10FFFF (F4 90 80 80), F5 and FF never appear in UTF-8 */
    assert_string_equal(ESC("\xc0\xaf"), "\\ufffd\\ufffd");
    assert_string_equal(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
    assert_string_equal(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_string_equal(ESC("\xf5\xff"), "\\ufffd\\ufffd");
    /* a 3-byte character cut by the end of the input */
    assert_string_equal(esc("x\xe2\x82", 3, sizeof(out)), "x\\ufffd\\ufffd");
}

static void test_truncation_keeps_whole_pieces(void **state)
{
    (void)state;
    /* cap 4: "ab" fits, the 2-byte escape of " does not (3 + NUL is the limit) */
    assert_string_equal(esc("ab\"c", 4, 4), "ab");
    assert_string_equal(esc("\x01", 1, 6), ""); /* \u0001 needs 6 + NUL */
    assert_string_equal(esc("\x01", 1, 7), "\\u0001");
    assert_string_equal(esc("\xe2\x82\xac", 3, 3), ""); /* € is not cut in two */
    assert_string_equal(esc("\xe2\x82\xac", 3, 4), "\xe2\x82\xac");
    assert_int_equal(log_json_escape(out, 1, "abc", 3), 0);
    assert_string_equal(out, "");
}

/* Runs fn with stderr going to a pipe; returns what was written. */
static char captured[20000];
static const char *capture(void (*fn)(void))
{
    int p[2], saved = dup(STDERR_FILENO);
    assert_int_equal(pipe(p), 0);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = read(p[0], captured, sizeof(captured) - 1);
    close(p[0]);
    captured[n > 0 ? n : 0] = 0;
    return captured;
}

static int evaluated;
static const char *count_me(void)
{
    evaluated++;
    return "x";
}

static void emit_levels(void)
{
    log_debug("d %s", count_me());
    log_info("i %s", count_me());
    log_warn("w %s", count_me());
}

static void test_level_filters_before_arguments(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_configure(LOG_WARN, LOG_TEXT);
    evaluated = 0;
    const char *t = capture(emit_levels);
    assert_int_equal(evaluated, 1); /* debug and info were not even formatted */
    assert_null(strstr(t, "] d x"));
    assert_null(strstr(t, "] i x"));
    assert_non_null(strstr(t, " usher[warn] w x\n"));
    log_configure(LOG_DEBUG, LOG_TEXT);
    evaluated = 0;
    t = capture(emit_levels);
    assert_int_equal(evaluated, 3);
    assert_non_null(strstr(t, " usher[debug] d x\n"));
    log_configure(LOG_INFO, LOG_TEXT);
}

static void emit_json(void)
{
    const struct log_field f[] = {{"pool", "web"}, {"backend", "http://a\"b"}, {"none", NULL}};
    log_with(LOG_ERR, f, 3, "line one\nline \"two\" \x01");
}

static void test_json_line(void **state)
{
    (void)state;
    log_configure(LOG_INFO, LOG_JSON);
    const char *t = capture(emit_json);
    log_configure(LOG_INFO, LOG_TEXT);
    /* one line, the fields after time, level and msg, a field without value left out */
    assert_int_equal(strchr(t, '\n') - t, (long)strlen(t) - 1);
    assert_memory_equal(t, "{\"time\":\"20", 11);
    const char *rest = strstr(t, "Z\",\"level\":\"error\",\"msg\":");
    assert_non_null(rest);
    assert_string_equal(strchr(rest, 'm') - 1,
                        "\"msg\":\"line one\\nline \\\"two\\\" \\u0001\",\"pool\":\"web\","
                        "\"backend\":\"http://a\\\"b\"}\n");
}

static void emit_long(void)
{
    char big[3000];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const struct log_field f[] = {{"pool", "p"}};
    log_with(LOG_WARN, f, 1, "%s", big);
}

static void test_json_line_long_message_stays_json(void **state)
{
    (void)state;
    log_configure(LOG_INFO, LOG_JSON);
    const char *t = capture(emit_long);
    log_configure(LOG_INFO, LOG_TEXT);
    size_t n = strlen(t);
    /* the message is cut at 1023 bytes, each a \" escape; the line still closes */
    assert_string_equal(t + n - 14, "\",\"pool\":\"p\"}\n");
    const char *msg = strstr(t, "\"msg\":\"") + 7;
    size_t pairs = 0;
    while (msg[0] == '\\' && msg[1] == '"') {
        pairs++;
        msg += 2;
    }
    assert_int_equal(pairs, 1023);
    assert_string_equal(msg, "\",\"pool\":\"p\"}\n");
}

static void emit_newline_text(void)
{
    log_warn("peer said: a\nb");
}

static void test_text_line_is_one_line(void **state)
{
    (void)state;
    log_configure(LOG_INFO, LOG_TEXT);
    const char *t = capture(emit_newline_text);
    assert_non_null(strstr(t, "usher[warn] peer said: a b\n"));
    assert_int_equal(strchr(t, '\n') - t, (long)strlen(t) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_quotes),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_utf8_kept_invalid_replaced),
        cmocka_unit_test(test_truncation_keeps_whole_pieces),
        cmocka_unit_test(test_level_filters_before_arguments),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_json_line_long_message_stays_json),
        cmocka_unit_test(test_text_line_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
