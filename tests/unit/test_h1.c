/* Tests src/http/h1.c: finding, parsing and rewriting heads. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/h1.h"
#include "http/tchar.h"

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

static void status_line_is_written_from_the_code(void **state)
{
    static const struct {
        const char *in, *line;
    } cases[] = {
        {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n"},
        {"HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 204 No Content\r\n"},
        {"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
        {"HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 599 \r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(0, cases[i].in, 0), 0);
        struct h1_response_rewrite rw = {.conn = H1_CONN_NONE};
        long n = h1_write_response(&head, &rw, out, sizeof(out));
        assert_true(n > 0);
        out[n] = 0;
        assert_memory_equal(out, cases[i].line, strlen(cases[i].line));
    }
}

static void tchar_is_rfc9110_token(void **state)
{
    for (int c = 0; c < 256; c++) {
        int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c && c < 128 && strchr("!#$%&'*+-.^_`|~", c));
        assert_int_equal(http_is_tchar((unsigned char)c), want);
    }
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
    long n = h1_write_error(503, "No healthy backends", 0, NULL, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n{\"error\":\"No healthy backends\"}"));
    assert_null(strstr(out, "Connection: close"));
}

static void rewrite_sets_forwarded_proto_from_the_connection(void **state)
{
    assert_int_equal(parse(1, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n", 0),
                     0);
    struct h1_request_rewrite rw = {.client_ip = "10.1.1.1", .https = 1};
    long n = h1_write_request(&head, &rw, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.1.1\r\n"
                             "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\r\n");
    rw.https = 0;
    n = h1_write_request(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
    assert_null(strstr(out, "https"));
}

static struct span sp(const char *s)
{
    return (struct span){s, (uint32_t)strlen(s)};
}

static void rewrite_replaces_the_headers_usher_sets(void **state)
{
    /* the client's copies go, whatever their case, wherever they are */
    assert_int_equal(parse(1,
                           "GET / HTTP/1.1\r\nx-client-verify: SUCCESS\r\nHost: a\r\n"
                           "X-CLIENT-SUBJECT: CN=admin\r\nX-Keep: 1\r\nX-Client-Verify: x\r\n"
                           "X-Client-Verify-Not: kept\r\n\r\n",
                           0),
                     0);
    struct h1_request_rewrite rw = {.client_ip = "1.2.3.4", .https = 1, .nset = 2};
    rw.set[0] = (struct h1_set_header){sp("X-Client-Verify"), sp("FAILED:certificate expired")};
    rw.set[1] = (struct h1_set_header){sp("X-Client-Subject"), {NULL, 0}}; /* removed only */
    long n = h1_write_request(&head, &rw, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\n"
                             "X-Client-Verify-Not: kept\r\nX-Forwarded-For: 1.2.3.4\r\n"
                             "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n"
                             "X-Client-Verify: FAILED:certificate expired\r\n\r\n");
    /* success: both, in the order given */
    rw.set[0].value = sp("SUCCESS");
    rw.set[1].value = sp("CN=alice,O=Example");
    n = h1_write_request(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_non_null(strstr(out, "X-Forwarded-Host: a\r\nX-Client-Verify: SUCCESS\r\n"
                                "X-Client-Subject: CN=alice,O=Example\r\n\r\n"));
    assert_null(strstr(out, "admin"));
    /* names usher does not set are untouched when nothing is set */
    rw.nset = 0;
    n = h1_write_request(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_non_null(strstr(out, "x-client-verify: SUCCESS\r\n"));
    assert_non_null(strstr(out, "X-CLIENT-SUBJECT: CN=admin\r\n"));
}

static void rewrite_set_headers_survive_connection_tricks(void **state)
{
    /* naming the header in Connection drops the client's copy anyway; ours is added */
    assert_int_equal(
        parse(1, "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Client-Verify\r\n\r\n", 0), 0);
    struct h1_request_rewrite rw = {.client_ip = "1.2.3.4", .nset = 1};
    rw.set[0] = (struct h1_set_header){sp("X-Client-Verify"), sp("NONE")};
    long n = h1_write_request(&head, &rw, out, sizeof(out));
    out[n] = 0;
    assert_non_null(strstr(out, "\r\nX-Client-Verify: NONE\r\n\r\n"));
    assert_null(strstr(out, "Connection"));
}

static void safe_value_replaces_what_a_header_cannot_hold(void **state)
{
    char v[] = "CN=a\r\nX-Evil: 1\x01\x7f\xc3\xa9\tok ~";
    h1_safe_value(v, strlen(v));
    assert_string_equal(v, "CN=a??X-Evil: 1????\tok ~");
    char nul[4] = {'a', 0, 'b', 0};
    h1_safe_value(nul, 3);
    assert_memory_equal(nul, "a?b", 3);
}

static void hsts_line(void **state)
{
    char b[H1_HSTS_MAX];
    assert_int_equal(h1_hsts_line(31536000, 0, b, sizeof(b)),
                     strlen("Strict-Transport-Security: max-age=31536000"));
    assert_string_equal(b, "Strict-Transport-Security: max-age=31536000");
    h1_hsts_line(1000000000, 1, b, sizeof(b));
    assert_string_equal(b, "Strict-Transport-Security: max-age=1000000000; includeSubDomains");
    assert_int_equal(h1_hsts_line(5, 1, b, 10), 9); /* cut, never past cap */
}

static long write_response_with(const char *cookie, const char *hsts)
{
    struct h1_response_rewrite rw = {.conn = H1_CONN_NONE};
    if (cookie) rw.extra[rw.nextra++] = (struct h1_extra){sp(cookie), 0};
    if (hsts) rw.extra[rw.nextra++] = (struct h1_extra){sp(hsts), 1};
    long n = h1_write_response(&head, &rw, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    return n;
}

static void response_gets_hsts_unless_the_backend_sent_one(void **state)
{
    const char *ours = "Strict-Transport-Security: max-age=600";
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), 0);
    write_response_with("Set-Cookie: b=1", ours);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: b=1\r\n"
                             "Strict-Transport-Security: max-age=600\r\n\r\n");
    /* the backend's own policy is kept, whatever its case, and ours not added */
    assert_int_equal(parse(0,
                           "HTTP/1.1 404 Not Found\r\nstrict-transport-security: max-age=0\r\n"
                           "Content-Length: 0\r\n\r\n",
                           0),
                     0);
    write_response_with(NULL, ours);
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nstrict-transport-security: max-age=0\r\n"
                             "Content-Length: 0\r\n\r\n");
    /* a balancer's line is added whatever the head holds */
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\n\r\n", 0),
                     0);
    write_response_with("Set-Cookie: b=1", NULL);
    assert_non_null(strstr(out, "Set-Cookie: a=1\r\nContent-Length: 0\r\nSet-Cookie: b=1\r\n"));
    /* one the backend named in Connection is not forwarded: ours goes instead */
    assert_int_equal(parse(0,
                           "HTTP/1.1 200 OK\r\nConnection: Strict-Transport-Security\r\n"
                           "Strict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n",
                           0),
                     0);
    write_response_with(NULL, ours);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             "Strict-Transport-Security: max-age=600\r\n\r\n");
    /* a look-alike name is not the header */
    assert_int_equal(parse(0,
                           "HTTP/1.1 200 OK\r\nStrict-Transport-Security-X: 1\r\n"
                           "Content-Length: 0\r\n\r\n",
                           0),
                     0);
    write_response_with(NULL, ours);
    assert_non_null(strstr(out, "\r\nStrict-Transport-Security: max-age=600\r\n\r\n"));
}

static void error_response_carries_an_extra_line(void **state)
{
    struct span hsts = sp("Strict-Transport-Security: max-age=60; includeSubDomains");
    long n = h1_write_error(502, "Bad gateway", 1, &hsts, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_non_null(strstr(out, "Cache-Control: no-store\r\nStrict-Transport-Security: max-age=60; "
                                "includeSubDomains\r\nConnection: close\r\n\r\n{\"error\""));
    struct span none = {NULL, 0};
    n = h1_write_error(502, "Bad gateway", 1, &none, out, sizeof(out));
    out[n] = 0;
    assert_null(strstr(out, "Strict"));
}

/* The Location of the redirect for request req with https port port, or the error. */
static const char *location(const char *req, uint32_t port)
{
    static char loc[512];
    const char *why;
    assert_int_equal(parse(1, req, 0), 0);
    assert_int_equal(h1_check_request(&head, req, strlen(req), &why), 0);
    long n = h1_https_location(&head, port, loc, sizeof(loc));
    if (n == -EINVAL) return "EINVAL";
    assert_true(n > 0);
    loc[n] = 0;
    return loc;
}

static void https_location_from_host_and_target(void **state)
{
    assert_string_equal(location("GET /a/b?c=d HTTP/1.1\r\nHost: Example.COM\r\n\r\n", 443),
                        "https://Example.COM/a/b?c=d");
    /* the request's port goes; the https port is written unless it is 443 */
    assert_string_equal(location("GET /x HTTP/1.1\r\nHost: a.test:8080\r\n\r\n", 443),
                        "https://a.test/x");
    assert_string_equal(location("GET /x HTTP/1.1\r\nHost: a.test:8080\r\n\r\n", 8443),
                        "https://a.test:8443/x");
    assert_string_equal(location("GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n", 443),
                        "https://10.0.0.1/");
    /* an IPv6 literal keeps its brackets, with or without a port */
    assert_string_equal(location("GET /v6 HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", 443),
                        "https://[::1]/v6");
    assert_string_equal(location("GET /v6 HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", 4443),
                        "https://[2001:db8::1]:4443/v6");
    /* the target as sent: no decoding, no normalisation */
    assert_string_equal(location("GET /a%20b/../c?q=%2F&r HTTP/1.1\r\nHost: a\r\n\r\n", 443),
                        "https://a/a%20b/../c?q=%2F&r");
    /* absolute-form: its authority and its path */
    assert_string_equal(
        location("GET http://a.test:8080/p?q HTTP/1.1\r\nHost: a.test:8080\r\n\r\n", 443),
        "https://a.test/p?q");
    assert_string_equal(location("GET HTTPS://A.test/p HTTP/1.1\r\nHost: a.test\r\n\r\n", 443),
                        "https://A.test/p");
    assert_string_equal(location("GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n", 443),
                        "https://a.test/");
    assert_string_equal(location("GET http://a.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n", 443),
                        "https://a.test/?q");
    assert_string_equal(location("GET http://[::1]:81/z HTTP/1.1\r\nHost: [::1]:81\r\n\r\n", 8443),
                        "https://[::1]:8443/z");
    /* OPTIONS *: the server's root */
    assert_string_equal(location("OPTIONS * HTTP/1.1\r\nHost: a:1\r\n\r\n", 443), "https://a/");
    /* no usable host */
    assert_string_equal(location("GET / HTTP/1.0\r\n\r\n", 443), "EINVAL");
    assert_string_equal(location("GET / HTTP/1.1\r\nHost:\r\n\r\n", 443), "EINVAL");
    assert_string_equal(location("GET / HTTP/1.1\r\nHost: :8080\r\n\r\n", 443), "EINVAL");
    char small[12];
    assert_int_equal(parse(1, "GET /long HTTP/1.1\r\nHost: a.test\r\n\r\n", 0), 0);
    assert_int_equal(h1_https_location(&head, 443, small, sizeof(small)), -ENOSPC);
}

static void redirect_response(void **state)
{
    assert_int_equal(parse(1, "POST /f?x=1 HTTP/1.1\r\nHost: a.test:80\r\n\r\n", 0), 0);
    long n = h1_write_redirect(&head, 8443, H1_CONN_NONE, out, sizeof(out));
    assert_true(n > 0);
    out[n] = 0;
    assert_string_equal(out, "HTTP/1.1 308 Permanent Redirect\r\n"
                             "Location: https://a.test:8443/f?x=1\r\n"
                             "Content-Length: 0\r\n\r\n");
    n = h1_write_redirect(&head, 443, H1_CONN_CLOSE, out, sizeof(out));
    out[n] = 0;
    assert_string_equal(out, "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://a.test/f?x=1\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    n = h1_write_redirect(&head, 443, H1_CONN_KEEP_ALIVE, out, sizeof(out));
    out[n] = 0;
    assert_non_null(strstr(out, "\r\nConnection: keep-alive\r\n\r\n"));
    /* exactly n bytes fit; one less does not; the prefix alone does not */
    char exact[128];
    assert_int_equal(h1_write_redirect(&head, 443, H1_CONN_KEEP_ALIVE, exact, (size_t)n), n);
    assert_memory_equal(exact, out, (size_t)n);
    assert_int_equal(h1_write_redirect(&head, 443, H1_CONN_KEEP_ALIVE, exact, (size_t)n - 1),
                     -ENOSPC);
    assert_int_equal(h1_write_redirect(&head, 443, H1_CONN_NONE, exact, 10), -ENOSPC);
    assert_int_equal(parse(1, "GET / HTTP/1.0\r\n\r\n", 0), 0);
    assert_int_equal(h1_write_redirect(&head, 443, H1_CONN_NONE, out, sizeof(out)), -EINVAL);
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
        cmocka_unit_test(status_line_is_written_from_the_code),
        cmocka_unit_test(tchar_is_rfc9110_token),
        cmocka_unit_test(head_response_has_no_body),
        cmocka_unit_test(too_many_headers_flagged),
        cmocka_unit_test(request_checks),
        cmocka_unit_test(error_response_is_json),
        cmocka_unit_test(rewrite_sets_forwarded_proto_from_the_connection),
        cmocka_unit_test(rewrite_replaces_the_headers_usher_sets),
        cmocka_unit_test(rewrite_set_headers_survive_connection_tricks),
        cmocka_unit_test(safe_value_replaces_what_a_header_cannot_hold),
        cmocka_unit_test(hsts_line),
        cmocka_unit_test(response_gets_hsts_unless_the_backend_sent_one),
        cmocka_unit_test(error_response_carries_an_extra_line),
        cmocka_unit_test(https_location_from_host_and_target),
        cmocka_unit_test(redirect_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
