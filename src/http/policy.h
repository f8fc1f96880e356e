/* policy: what usher accepts from a client and how it frames what it passes
 * on; pure functions of a parsed head, shared by the proxy and the fuzz
 * targets so that both decide the same way.
 *
 * Request acceptance (RFC 9112, RFC 9110): sizes first (414, 431), then what
 * h1_parse_head and h1_check_request found (400, 431, 505), then usher's own
 * rules (405 for CONNECT, 413 past the body limit).
 *
 * The response plan (RFC 9112 6.3, RFC 9110 6.4.1 and 15.2): what kind of
 * response a head is (interim, upgrade, final), where its body ends, whether
 * the backend connection may carry another request, and, for an HTTP/1
 * client, whether the body is de-chunked and which Connection header goes
 * with it. */
#ifndef USHER_HTTP_POLICY_H
#define USHER_HTTP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "http/body.h"
#include "http/h1.h"

struct h1_limits {
    uint32_t max_header_bytes; /* request head: 431 beyond */
    uint32_t max_request_line; /* 414 beyond */
    uint32_t max_headers;      /* header lines: 431 beyond */
    uint64_t max_body_size;    /* 413 beyond; 0 = no limit */
    uint32_t buf_size;         /* the buffer a head must fit in */
};

/* usher's answer to a request it refuses. */
struct h1_refusal {
    int status;
    const char *msg; /* for the JSON error body; may point into buf */
    char buf[160];
};

/* Whether a request head of which len bytes are buffered (head_len of them
 * the whole head, or 0 while it is not complete; eof: the client closed)
 * must be refused for its size or its end before it is parsed. 0 or the
 * status, with r filled. 0 with head_len == 0 means: wait for more. */
int h1_request_size_check(const char *p, size_t len, size_t head_len, int eof,
                          const struct h1_limits *l, struct h1_refusal *r);

/* Whether request h, parsed from p[0..head_len), is forwarded: 0, or the
 * status to answer (400, 405, 413, 431, 505) with r filled. */
int h1_accept_request(const struct h1_head *h, const char *p, size_t head_len,
                      const struct h1_limits *l, struct h1_refusal *r);

enum h1_response_kind {
    H1_RES_INVALID, /* answer 502; why says what was wrong */
    H1_RES_INTERIM, /* 1xx other than 101: forwarded (not to HTTP/1.0), then the next head */
    H1_RES_UPGRADE, /* 101 to an upgrade request: the connection becomes a tunnel */
    H1_RES_FINAL,
};

/* What the backend side needs to know about a response head. */
struct h1_response_plan {
    enum h1_response_kind kind;
    const char *why;           /* H1_RES_INVALID: what was wrong */
    uint8_t backend_fault;     /* H1_RES_INVALID: a malformed head (passive health counts it) */
    enum body_kind body;       /* H1_RES_FINAL: where the body ends */
    uint8_t backend_keepalive; /* the backend connection may carry another request */
};

/* Plans the response whose head h was parsed from p[0..head_len) with
 * parse_err (h1_parse_head's result, reason in parse_why), for a request
 * that was a HEAD (is_head) and did or did not ask to upgrade. For a final
 * response, sets h->complete when the message has no body whatever the
 * head says (HEAD, 204, 304). */
void h1_plan_response(struct h1_head *h, const char *p, size_t head_len, int parse_err,
                      const char *parse_why, int is_head, int upgrade_req,
                      struct h1_response_plan *plan);

/* How a final response goes to an HTTP/1 client. */
struct h1_client_plan {
    uint8_t dechunk;    /* chunked body to an HTTP/1.0 client: de-chunked, ended by close */
    uint8_t keep_alive; /* the client connection may carry another request */
    enum h1_conn_header conn;
};

/* For final response h planned as rp: keep_alive is what the request asked
 * for; must_close is set when the connection cannot carry another request
 * whatever the response says (shutting down, an upgrade request, a request
 * body not read to its end). */
void h1_plan_client(const struct h1_head *h, const struct h1_response_plan *rp, int http10,
                    int keep_alive, int must_close, struct h1_client_plan *cp);

#endif
