/* Tests src/http/policy.c: which requests are forwarded, and the response plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/policy.h"

static struct h1_head head;
static const char *raw;
static size_t raw_len;

static const struct h1_limits lim = {
    .max_header_bytes = 1024,
    .max_request_line = 64,
    .max_headers = 4,
    .max_body_size = 1000,
    .buf_size = 16384,
};

/* Parses s as a request (or response) head; returns h1_parse_head's result. */
static int parse(int is_request, const char *s, int skip_body)
{
    static llhttp_t p;
    h1_parser_init(&p, is_request);
    head.max_headers = is_request ? lim.max_headers : H1_MAX_HEADERS;
    head.skip_body = (uint32_t)skip_body;
    const char *why;
    size_t scanned = 0;
    raw = s;
    raw_len = h1_find_head_end(s, strlen(s), &scanned);
    assert_true(raw_len > 0);
    return h1_parse_head(&p, &head, s, raw_len, &why);
}

static int accept_req(const char *s, struct h1_refusal *r)
{
    assert_int_equal(parse(1, s, 0), 0);
    return h1_accept_request(&head, raw, raw_len, &lim, r);
}

static void sizes_are_checked_before_parsing(void **state)
{
    struct h1_refusal r;
    char line[200];
    memset(line, 'a', sizeof(line));
    /* no end of line within the limit: 414 */
    assert_int_equal(h1_request_size_check(line, 100, 0, 0, &lim, &r), 414);
    /* a line that ends in time, but a head that never does: wait, then 431 */
    char h[2000];
    memset(h, 'b', sizeof(h));
    memcpy(h, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(h1_request_size_check(h, 500, 0, 0, &lim, &r), 0);
    assert_int_equal(h1_request_size_check(h, 1024, 0, 0, &lim, &r), 431);
    /* the client closed inside the head: 400 */
    assert_int_equal(h1_request_size_check(h, 20, 0, 1, &lim, &r), 400);
    assert_non_null(strstr(r.msg, "closed inside the request head"));
    /* a whole head: its own size and its request line */
    assert_int_equal(h1_request_size_check(h, 1100, 1100, 0, &lim, &r), 431);
    const char *longline = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
                           "HTTP/1.1\r\n\r\n";
    assert_int_equal(
        h1_request_size_check(longline, strlen(longline), strlen(longline), 0, &lim, &r), 414);
    const char *ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(h1_request_size_check(ok, strlen(ok), strlen(ok), 0, &lim, &r), 0);
}

static void requests_usher_refuses(void **state)
{
    struct h1_refusal r;
    assert_int_equal(accept_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
    /* CONNECT: usher is no forward proxy (an authority-form target is
     * already refused as a target usher does not take, with 400) */
    assert_int_equal(accept_req("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 405);
    assert_int_equal(accept_req("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", &r), 400);
    assert_int_equal(accept_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", &r),
                     413);
    assert_int_equal(accept_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n", &r),
                     0);
    /* a chunked body's size is checked as it arrives (body_limit), not here */
    assert_int_equal(
        accept_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &r), 0);
    assert_int_equal(
        accept_req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &r), 431);
    assert_non_null(strstr(r.msg, "too many header lines"));
    assert_int_equal(accept_req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r), 400);
    assert_true(!strncmp(r.msg, "Bad request: ", 13));
    assert_int_equal(accept_req("GET / HTTP/1.1\r\n\r\n", &r), 400); /* no Host */
}

static void a_head_or_204_or_304_has_no_body(void **state)
{
    struct h1_response_plan p;
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 1, 0, &p);
    assert_int_equal(p.kind, H1_RES_FINAL);
    assert_int_equal(p.body, BODY_NONE);
    assert_int_equal(p.backend_keepalive, 1);
    assert_int_equal(parse(0, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
                     0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.body, BODY_NONE);
    assert_int_equal(head.complete, 1);
}

static void framing_and_backend_reuse(void **state)
{
    struct h1_response_plan p;
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.body, BODY_CHUNKED);
    assert_int_equal(p.backend_keepalive, 1);
    /* no length: the body ends with the connection, which is then not reused */
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.body, BODY_CLOSE);
    assert_int_equal(p.backend_keepalive, 0);
    assert_int_equal(
        parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.body, BODY_LENGTH);
    assert_int_equal(p.backend_keepalive, 0);
    /* HTTP/1.0 keeps the connection only when it says keep-alive */
    assert_int_equal(parse(0, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.backend_keepalive, 0);
    assert_int_equal(
        parse(0, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.backend_keepalive, 1);
}

static void interim_upgrade_and_invalid(void **state)
{
    struct h1_response_plan p;
    assert_int_equal(parse(0, "HTTP/1.1 100 Continue\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.kind, H1_RES_INTERIM);
    const char *up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                     "upgrade\r\n\r\n";
    assert_int_equal(parse(0, up, 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 1, &p);
    assert_int_equal(p.kind, H1_RES_UPGRADE);
    /* a 101 nobody asked for is refused, but it is no malformed head */
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.kind, H1_RES_INVALID);
    assert_int_equal(p.backend_fault, 0);
    /* what llhttp refused, and what usher's own checks refuse */
    h1_plan_response(&head, raw, raw_len, 1, "bad status", 0, 0, &p);
    assert_int_equal(p.kind, H1_RES_INVALID);
    assert_int_equal(p.backend_fault, 1);
    assert_string_equal(p.why, "bad status");
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    assert_int_equal(p.kind, H1_RES_INVALID);
    assert_int_equal(p.backend_fault, 1);
}

static void the_client_side_plan(void **state)
{
    struct h1_response_plan p;
    struct h1_client_plan cp;
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    /* an HTTP/1.0 client cannot read chunked: de-chunked, ended by close */
    h1_plan_client(&head, &p, 1, 1, 0, &cp);
    assert_int_equal(cp.dechunk, 1);
    assert_int_equal(cp.keep_alive, 0);
    assert_int_equal(cp.conn, H1_CONN_CLOSE);
    h1_plan_client(&head, &p, 0, 1, 0, &cp);
    assert_int_equal(cp.dechunk, 0);
    assert_int_equal(cp.keep_alive, 1);
    assert_int_equal(cp.conn, H1_CONN_NONE);
    /* shutting down, or an unread request body: close, and say so */
    h1_plan_client(&head, &p, 0, 1, 1, &cp);
    assert_int_equal(cp.keep_alive, 0);
    assert_int_equal(cp.conn, H1_CONN_CLOSE);
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    h1_plan_client(&head, &p, 1, 1, 0, &cp);
    assert_int_equal(cp.conn, H1_CONN_KEEP_ALIVE);
    h1_plan_client(&head, &p, 1, 0, 0, &cp);
    assert_int_equal(cp.conn, H1_CONN_CLOSE);
    assert_int_equal(parse(0, "HTTP/1.1 200 OK\r\n\r\n", 0), 0);
    h1_plan_response(&head, raw, raw_len, 0, NULL, 0, 0, &p);
    h1_plan_client(&head, &p, 0, 1, 0, &cp);
    assert_int_equal(cp.keep_alive, 0); /* a body ended by close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_are_checked_before_parsing),
        cmocka_unit_test(requests_usher_refuses),
        cmocka_unit_test(a_head_or_204_or_304_has_no_body),
        cmocka_unit_test(framing_and_backend_reuse),
        cmocka_unit_test(interim_upgrade_and_invalid),
        cmocka_unit_test(the_client_side_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
