/* Tests src/http/h2map.c: HTTP/2 request fields to an HTTP/1 head (RFC 9113 8.2, 8.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/h2map.h"

static char area[16384];
static struct h1_head head;

/* Feeds "name", "value", ... (NULL-ended) and finishes; returns the result. */
static int map_fields(int end_stream, const char *const *f)
{
    struct h2map m;
    h2map_init(&m, area, sizeof(area), 100, 0);
    for (; f[0]; f += 2) h2map_field(&m, f[0], strlen(f[0]), f[1], strlen(f[1]));
    head.max_headers = 100;
    return h2map_finish(&m, end_stream, &head);
}

#define MAP(end, ...) map_fields(end, (const char *const[]){__VA_ARGS__, NULL})

static int span_is(struct span s, const char *want)
{
    return s.len == strlen(want) && !memcmp(s.p, want, s.len);
}

static const char *field(const char *name)
{
    static char v[4096];
    for (uint32_t i = 0; i < head.nheaders; i++)
        if (!head.h[i].drop && span_is(head.h[i].name, name)) {
            snprintf(v, sizeof(v), "%.*s", (int)head.h[i].value.len, head.h[i].value.p);
            return v;
        }
    return NULL;
}

static void get_maps_to_request_line_and_host(void **state)
{
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "https", ":authority", "a.test:8443",
                         ":path", "/x?y=1", "accept", "*/*"),
                     0);
    assert_true(span_is(head.method, "GET"));
    assert_true(span_is(head.target, "/x?y=1"));
    assert_int_equal(head.method_id, HTTP_GET);
    assert_int_equal(head.major, 1);
    assert_int_equal(head.minor, 1);
    assert_true(head.complete);
    assert_false(head.chunked);
    assert_true(head.host_i >= 0);
    assert_true(span_is(head.h[head.host_i].value, "a.test:8443"));
    assert_string_equal(field("accept"), "*/*");
    assert_null(field("Transfer-Encoding"));
}

static void host_field_without_authority(void **state)
{
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "host", "b.test"),
                     0);
    assert_string_equal(field("host"), "b.test");
    assert_int_equal(head.host_i, 0);
    /* neither: no Host (the backend gets the pool's default) */
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/"), 0);
    assert_int_equal(head.host_i, -1);
}

static void host_must_agree_with_authority(void **state)
{
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path",
                         "/", "host", "A.test"),
                     0);
    assert_int_equal(head.nhost, 1);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path",
                         "/", "host", "evil.test"),
                     H2MAP_MALFORMED);
}

static void cookies_are_joined(void **state)
{
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "cookie", "a=1",
                         "x-other", "o", "cookie", "b=2", "cookie", "c=3"),
                     0);
    assert_string_equal(field("cookie"), "a=1; b=2; c=3");
    int n = 0;
    for (uint32_t i = 0; i < head.nheaders; i++) n += span_is(head.h[i].name, "cookie");
    assert_int_equal(n, 1);
    assert_string_equal(field("x-other"), "o");
}

static void body_without_length_is_chunked(void **state)
{
    assert_int_equal(MAP(0, ":method", "POST", ":scheme", "http", ":path", "/up"), 0);
    assert_false(head.complete);
    assert_true(head.chunked);
    assert_string_equal(field("Transfer-Encoding"), "chunked");
    assert_int_equal(
        MAP(0, ":method", "POST", ":scheme", "http", ":path", "/up", "content-length", "12"), 0);
    assert_false(head.chunked);
    assert_true(head.has_cl);
    assert_int_equal(head.content_length, 12);
    assert_null(field("Transfer-Encoding"));
}

static void content_length_checks(void **state)
{
    assert_int_equal(
        MAP(0, ":method", "POST", ":scheme", "http", ":path", "/", "content-length", "1x"),
        H2MAP_MALFORMED);
    assert_int_equal(MAP(0, ":method", "POST", ":scheme", "http", ":path", "/", "content-length",
                         "3", "content-length", "4"),
                     H2MAP_MALFORMED);
    /* END_STREAM on HEADERS with a non-zero length: the DATA can never come */
    assert_int_equal(
        MAP(1, ":method", "POST", ":scheme", "http", ":path", "/", "content-length", "4"),
        H2MAP_MALFORMED);
}

static void connection_specific_fields_are_malformed(void **state)
{
    const char *bad[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "upgrade"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", bad[i], "x"),
                         H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "te", "gzip"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "te", "trailers"),
                     0);
    assert_null(field("te")); /* hop-by-hop towards HTTP/1 */
}

static void names_and_pseudo_headers(void **state)
{
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "X-Upper", "1"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", "accept", "x", ":path", "/"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":method", "GET", ":scheme", "http", ":path", "/"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", ":status", "200"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":scheme", "http", ":path", "/"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "x"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "*"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "OPTIONS", ":scheme", "http", ":path", "*"), 0);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/a b"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":path", "/", "x", " lead"),
                     H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "G T", ":scheme", "http", ":path", "/"), H2MAP_MALFORMED);
    assert_int_equal(MAP(1, ":method", "GET", ":scheme", "http", ":authority", "a b", ":path", "/"),
                     H2MAP_MALFORMED);
    /* :protocol only when the caller allows extended CONNECT (RFC 8441) */
    assert_int_equal(MAP(1, ":method", "CONNECT", ":protocol", "websocket", ":scheme", "https",
                         ":authority", "a", ":path", "/"),
                     H2MAP_MALFORMED);
}

static void connect_form(void **state)
{
    assert_int_equal(MAP(0, ":method", "CONNECT", ":authority", "a.test:443"), 0);
    assert_int_equal(head.method_id, HTTP_CONNECT);
    assert_true(span_is(head.target, "a.test:443"));
    assert_int_equal(MAP(0, ":method", "CONNECT", ":authority", "a.test:443", ":path", "/"),
                     H2MAP_MALFORMED);
}

static void extended_connect_is_an_upgrade(void **state)
{
    struct h2map m;
    h2map_init(&m, area, sizeof(area), 100, 0);
    m.extended_connect = 1;
    const char *f[] = {":method",
                       "CONNECT",
                       ":protocol",
                       "websocket",
                       ":scheme",
                       "https",
                       ":authority",
                       "a.test",
                       ":path",
                       "/chat",
                       "sec-websocket-version",
                       "13",
                       NULL};
    for (int i = 0; f[i]; i += 2) h2map_field(&m, f[i], strlen(f[i]), f[i + 1], strlen(f[i + 1]));
    head.max_headers = 100;
    assert_int_equal(h2map_finish(&m, 0, &head), 0);
    assert_true(span_is(head.method, "GET"));
    assert_int_equal(head.method_id, HTTP_GET);
    assert_true(span_is(head.target, "/chat"));
    assert_true(head.upgrade_i >= 0 && head.conn_upgrade);
    assert_true(span_is(head.h[head.upgrade_i].value, "websocket"));
    assert_true(head.complete); /* no body framing: the stream becomes the tunnel */
    assert_false(head.chunked);
    assert_true(span_is(head.h[head.host_i].value, "a.test"));
    /* without :path it is malformed */
    h2map_init(&m, area, sizeof(area), 100, 0);
    m.extended_connect = 1;
    h2map_field(&m, ":method", 7, "CONNECT", 7);
    h2map_field(&m, ":protocol", 9, "websocket", 9);
    h2map_field(&m, ":authority", 10, "a.test", 6);
    assert_int_equal(h2map_finish(&m, 0, &head), H2MAP_MALFORMED);
}

static void too_large_is_not_malformed(void **state)
{
    struct h2map m;
    char small[64];
    h2map_init(&m, small, sizeof(small), 100, 0);
    assert_int_equal(h2map_field(&m, ":method", 7, "GET", 3), 0);
    char big[100];
    memset(big, 'v', sizeof(big));
    assert_int_equal(h2map_field(&m, "x-big", 5, big, sizeof(big)), H2MAP_TOO_LARGE);
    /* sticky: what follows is ignored */
    assert_int_equal(h2map_field(&m, "a", 1, "b", 1), H2MAP_TOO_LARGE);
    /* too many fields */
    h2map_init(&m, area, sizeof(area), 2, 0);
    assert_int_equal(h2map_field(&m, "a", 1, "1", 1), 0);
    assert_int_equal(h2map_field(&m, "b", 1, "1", 1), 0);
    assert_int_equal(h2map_field(&m, "c", 1, "1", 1), H2MAP_TOO_LARGE);
}

static void trailers_have_no_pseudo_headers(void **state)
{
    struct h2map m;
    h2map_init(&m, area, sizeof(area), 100, 1);
    assert_int_equal(h2map_field(&m, "x-sum", 5, "abc", 3), 0);
    struct span n, v;
    assert_true(h2map_get(&m, 0, &n, &v));
    assert_true(span_is(n, "x-sum") && span_is(v, "abc"));
    assert_false(h2map_get(&m, 1, &n, &v));
    assert_int_equal(h2map_field(&m, ":path", 5, "/", 1), H2MAP_MALFORMED);
}

static void response_fields(void **state)
{
    assert_false(h2map_response_field_ok((struct span){"Connection", 10}));
    assert_false(h2map_response_field_ok((struct span){"Transfer-Encoding", 17}));
    assert_false(h2map_response_field_ok((struct span){"keep-alive", 10}));
    assert_true(h2map_response_field_ok((struct span){"Content-Type", 12}));
    char out[16];
    h2map_lower(out, (struct span){"X-Served-By", 11});
    assert_memory_equal(out, "x-served-by", 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_maps_to_request_line_and_host),
        cmocka_unit_test(host_field_without_authority),
        cmocka_unit_test(host_must_agree_with_authority),
        cmocka_unit_test(cookies_are_joined),
        cmocka_unit_test(body_without_length_is_chunked),
        cmocka_unit_test(content_length_checks),
        cmocka_unit_test(connection_specific_fields_are_malformed),
        cmocka_unit_test(names_and_pseudo_headers),
        cmocka_unit_test(connect_form),
        cmocka_unit_test(extended_connect_is_an_upgrade),
        cmocka_unit_test(too_large_is_not_malformed),
        cmocka_unit_test(trailers_have_no_pseudo_headers),
        cmocka_unit_test(response_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
