/* Tests src/http/h1.c: finding, parsing and rewriting heads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/h1.h"

static struct h1_head head;

static int parse(int is_request, const char *s, int skip_body)
{
    static llhttp_t p;
    h1_parser_init(&p, is_request);
    head.max_headers = 100;
    head.skip_body = (uint32_t)skip_body;
    const char *why;
    size_t scanned = 0;
    size_t n = h1_find_head_end(s, strlen(s), &scanned);
    if (!n) return -1;
    return h1_parse_head(&p, &head, s, n, &why);
}

static char out[4096];

static const char *rewrite_request(const char *ip)
{
    struct h1_request_rewrite rw = {.client_ip = ip, .default_host = "10.0.0.1:80", .upgrade = 0};
    long n = h1_write_request(&head, &rw, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    return out;
}

static void finds_head_end_across_calls(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
    size_t scanned = 0;
    /* feed growing prefixes: the end is found exactly when the empty line is complete */
    size_t full = strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    for (size_t len = 1; len < full; len++) assert_int_equal(h1_find_head_end(s, len, &scanned), 0);
    assert_int_equal(h1_find_head_end(s, strlen(s), &scanned), full);
}

static void parses_request_head(void **state)
{
    assert_int_equal(parse(1,
                           "POST /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  v1 \r\n"
                           "Content-Length: 5\r\n\r\n",
                           0),
                     0);
    assert_int_equal(head.method.len, 4);
    assert_memory_equal(head.method.p, "POST", 4);
    assert_int_equal(head.target.len, strlen("/a%20b?x=1"));
    assert_int_equal(head.nheaders, 3);
    assert_int_equal(head.h[1].value.len, 2); /* OWS trimmed on both sides */
    assert_memory_equal(head.h[1].value.p, "v1", 2);
    assert_true(head.has_cl);
    assert_int_equal(head.content_length, 5);
    assert_false(head.complete);
    assert_int_equal(head.nhost, 1);
}

static void accepts_unknown_token_methods(void **state)
{
    assert_int_equal(parse(1, "FROBNICATE /x HTTP/1.1\r\nHost: a\r\n\r\n", 0), 0);
    assert_int_equal(head.method.len, 10);
    assert_memory_equal(head.method.p, "FROBNICATE", 10);
    assert_true(head.complete);
    assert_int_not_equal(parse(1, "FR(B /x HTTP/1.1\r\nHost: a\r\n\r\n", 0), 0);
}

static void rejects_malformed_heads(void **state)
{
    assert_int_not_equal(parse(1, "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 0), 0);
    assert_int_not_equal(
        parse(
            1,
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            0),
        0);
    assert_int_not_equal(parse(1, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 0), 0);
    /* obs-fold: parsed by llhttp, flagged by us so that it is never forwarded */
    assert_int_equal(parse(1, "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0), 0);
    assert_true(head.bad_value);
}

static void rewrite_drops_hop_by_hop_and_adds_forwarded(void **state)
{
    assert_int_equal(
        parse(1,
              "GET /p HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive, X-Secret, "
              "Host\r\nKeep-Alive: 5\r\nX-Secret: s\r\nTE: trailers\r\n"
              "Proxy-Connection: x\r\nUpgrade: websocket\r\nX-Forwarded-For: 1.2.3.4\r\n"
              "X-Forwarded-Proto: https\r\nX-Keep: k\r\n\r\n",
              0),
        0);
    const char *r = rewrite_request("127.0.0.1");
    assert_string_equal(r, "GET /p HTTP/1.1\r\n"
                           "Host: h.example\r\n"
                           "X-Keep: k\r\n"
                           "X-Forwarded-For: 1.2.3.4, 127.0.0.1\r\n"
                           "X-Forwarded-Proto: http\r\n"
                           "X-Forwarded-Host: h.example\r\n"
                           "\r\n");
}

static void rewrite_adds_host_for_http10(void **state)
{
    assert_int_equal(parse(1, "GET / HTTP/1.0\r\nUser-Agent: u\r\n\r\n", 0), 0);
    assert_int_equal(head.minor, 0);
    const char *r = rewrite_request("::1");
    assert_string_equal(r, "GET / HTTP/1.1\r\nUser-Agent: u\r\nHost: 10.0.0.1:80\r\n"
                           "X-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n\r\n");
}

static void rewrite_keeps_chunked_framing(void **state)
{
    assert_int_equal(
        parse(1, "PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0), 0);
    assert_true(head.chunked);
    const char *r = rewrite_request("127.0.0.1");
    assert_non_null(strstr(r, "\r\nTransfer-Encoding: chunked\r\n"));
}

static void rewrite_request_reports_overflow(void **state)
{
    assert_int_equal(parse(1, "GET /a-long-target HTTP/1.1\r\nHost: a\r\n\r\n", 0), 0);
    struct h1_request_rewrite rw = {.client_ip = "127.0.0.1"};
    assert_true(h1_write_request(&head, &rw, out, 20) < 0);
}

static void response_rewrite(void **state)
{
    assert_int_equal(parse(0,
                           "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
                           "Transfer-Encoding: chunked\r\nX-End: e\r\n\r\n",
                           0),
                     0);
    assert_int_equal(head.status, 200);
    assert_true(head.conn_close);
    struct h1_response_rewrite rw = {.dechunk = 0, .conn = H1_CONN_NONE};
    long n = h1_write_response(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-End: e\r\n\r\n");
    rw = (struct h1_response_rewrite){.dechunk = 1, .conn = H1_CONN_CLOSE};
    n = h1_write_response(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nX-End: e\r\nConnection: close\r\n\r\n");
}

static void head_response_has_no_body(void **state)
{
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 1), 0);
    assert_true(head.complete);
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 0), 0);
    assert_false(head.complete);
    assert_int_equal(parse(0, "HTTP/1.1 204 No Content\r\n\r\n", 0), 0);
    assert_true(head.complete);
}

static void too_many_headers_flagged(void **state)
{
    char big[8192];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 120; i++) n += snprintf(big + n, sizeof(big) - (size_t)n, "X-%d: v\r\n", i);
    snprintf(big + n, sizeof(big) - (size_t)n, "\r\n");
    assert_int_equal(parse(1, big, 0), 0);
    assert_true(head.too_many);
}

static int check(const char *req)
{
    const char *why;
    if (parse(1, req, 0) != 0) return -1;
    return h1_check_request(&head, req, strlen(req), &why);
}

static void request_checks(void **state)
{
    assert_int_equal(check("GET /a?b HTTP/1.1\r\nHost: a.test:80\r\n\r\n"), 0);
    assert_int_equal(check("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(check("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(check("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(check("GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"), 0);
    assert_int_equal(check("GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"), 400);
    assert_int_equal(check("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_int_equal(check("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), 400);
    assert_int_equal(check("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
    assert_int_equal(check("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(check("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    assert_int_equal(
        check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 400);
    /* chunked twice: llhttp refuses it already (-1), or the check does (400) */
    assert_int_not_equal(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"),
                         0);
}

static void error_response_is_json(void **state)
{
    long n = h1_write_error(503, "No healthy backends", 0, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n{\"error\":\"No healthy backends\"}"));
    assert_null(strstr(out, "Connection: close"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_head_end_across_calls),
        cmocka_unit_test(parses_request_head),
        cmocka_unit_test(accepts_unknown_token_methods),
        cmocka_unit_test(rejects_malformed_heads),
        cmocka_unit_test(rewrite_drops_hop_by_hop_and_adds_forwarded),
        cmocka_unit_test(rewrite_adds_host_for_http10),
        cmocka_unit_test(rewrite_keeps_chunked_framing),
        cmocka_unit_test(rewrite_request_reports_overflow),
        cmocka_unit_test(response_rewrite),
        cmocka_unit_test(head_response_has_no_body),
        cmocka_unit_test(too_many_headers_flagged),
        cmocka_unit_test(request_checks),
        cmocka_unit_test(error_response_is_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
