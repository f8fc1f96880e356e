/* h1: HTTP/1.x message heads: find, parse (with llhttp), check and rewrite.
 *
 * A head is parsed only once it is complete in one buffer, so every span
 * points into that buffer and stays valid until the buffer is consumed. The
 * header table is large (H1_MAX_HEADERS entries): each worker has one scratch
 * table that is used only while a head is being parsed and rewritten, never
 * across event-loop iterations. Bodies are framed by body.c, not here. */
#ifndef USHER_HTTP_H1_H
#define USHER_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "llhttp.h"

#define H1_MAX_HEADERS 128 /* hard cap of the table; config max_headers <= this */

struct h1_header {
    struct span name, value;
    uint8_t drop; /* not forwarded: hop-by-hop, or named in Connection */
};

struct h1_head {
    struct span method, target, reason;
    uint8_t major, minor;
    uint16_t status;
    uint8_t method_id;      /* llhttp_method_t; HTTP_PUT for methods llhttp does not know */
    uint32_t nheaders;      /* entries used in h[] */
    uint32_t max_headers;   /* set by the caller before parsing */
    uint32_t too_many : 1;  /* more header lines than max_headers */
    uint32_t bad_value : 1; /* a value with CR, LF (obs-fold) or NUL */
    uint32_t bad_name : 1;  /* a field name that is not a token (e.g. "Name :") */
    uint32_t skip_body : 1; /* set by the caller: response to HEAD */
    uint32_t complete : 1;  /* the whole message (no body) ended with the head */
    uint32_t chunked : 1;
    uint32_t has_cl : 1;
    uint32_t has_te : 1;
    uint32_t conn_close : 1;
    uint32_t conn_keep_alive : 1;
    uint32_t conn_upgrade : 1;
    uint32_t expect_continue : 1;
    uint32_t nhost;
    int32_t host_i;    /* index of the Host header or -1 */
    int32_t upgrade_i; /* index of the Upgrade header or -1 */
    uint64_t content_length;
    struct h1_header h[H1_MAX_HEADERS];
};

/* Parser settings for requests and responses; the parser's data pointer is
 * set by h1_parse_head. */
void h1_parser_init(llhttp_t *p, int is_request);

/* Finds the end of a head in p[0..len): returns the length of the head
 * including its empty line, or 0 when it is not complete yet. *scanned keeps
 * the position between calls so bytes are looked at once. */
size_t h1_find_head_end(const char *p, size_t len, size_t *scanned);

/* Parses one complete head p[0..len) with parser (at a message start) into h
 * and derives framing and connection flags. Returns 0, or an HPE_* error
 * code (> 0) with llhttp's reason in *reason. h->complete is set when the
 * message has no body. */
int h1_parse_head(llhttp_t *parser, struct h1_head *h, const char *p, size_t len,
                  const char **reason);

/* Checks what llhttp leaves to us (RFC 9112): bare CR, version, Host,
 * Transfer-Encoding, the request target. Returns 0, or the status to answer
 * (400, 505) with the reason in *why. head is the raw head h was parsed from. */
int h1_check_request(const struct h1_head *h, const char *head, size_t len, const char **why);
/* The same for a response head: status line, bare CR, reason, Transfer-Encoding.
 * Returns 0, or 502 with the reason in *why. */
int h1_check_response(const struct h1_head *h, const char *head, size_t len, const char **why);

/* The i-th header field of head h (a struct h1_head), for readers that do
 * not know HTTP/1 (the balancers' request view): 1 with name and value set,
 * or 0 past the last one. */
int h1_field(const void *h, uint32_t i, struct span *name, struct span *value);

/* Whether the request method is idempotent (RFC 9110 9.2.2). */
int h1_method_idempotent(const struct h1_head *h);

/* A header usher sets itself on a request, from what it knows of the client
 * connection (the mTLS result): every header of that name the client sent
 * is removed (case-insensitively), then `name: value` is added unless
 * value.p is NULL. The value must be safe (h1_safe_value). */
struct h1_set_header {
    struct span name, value;
};

#define H1_MAX_SET 2

struct h1_request_rewrite {
    const char *client_ip;    /* appended to X-Forwarded-For */
    const char *default_host; /* Host to send when the client sent none (HTTP/1.0) */
    int upgrade;              /* forward Upgrade / Connection: upgrade */
    int https;                /* X-Forwarded-Proto: https (the client came over TLS), else http */
    uint32_t nset;            /* entries used in set[] */
    struct h1_set_header set[H1_MAX_SET];
};

/* Writes the head to send to the backend into out. Returns its length or
 * -ENOSPC. */
long h1_write_request(const struct h1_head *h, const struct h1_request_rewrite *rw, char *out,
                      size_t cap);

/* Replaces, in p[0..n), every byte that may not stand in a header value as
 * usher writes it (anything but visible ASCII, space and tab) with '?'. */
void h1_safe_value(char *p, size_t n);

enum h1_conn_header { H1_CONN_NONE, H1_CONN_CLOSE, H1_CONN_KEEP_ALIVE, H1_CONN_UPGRADE };

/* A header line usher adds to a response, without its CRLF. With if_absent,
 * it is left out when the response already has a header of that name (the
 * backend's wins). */
struct h1_extra {
    struct span line;
    uint8_t if_absent;
};

#define H1_MAX_EXTRA 2

struct h1_response_rewrite {
    int dechunk;              /* body is de-chunked for an HTTP/1.0 client: drop TE */
    enum h1_conn_header conn; /* Connection header to add */
    uint32_t nextra;          /* entries used in extra[]: a balancer's Set-Cookie, HSTS */
    struct h1_extra extra[H1_MAX_EXTRA];
};

/* Writes the head to send to the client into out. Returns length or -ENOSPC. */
long h1_write_response(const struct h1_head *h, const struct h1_response_rewrite *rw, char *out,
                       size_t cap);

#define H1_HSTS_MAX 80 /* room for any h1_hsts_line */

/* Writes "Strict-Transport-Security: max-age=N[; includeSubDomains]"
 * (RFC 6797 6.1) into out (cap > 0), without CRLF. Returns its length,
 * cut to cap - 1 (H1_HSTS_MAX always suffices). */
size_t h1_hsts_line(uint32_t max_age, int include_subdomains, char *out, size_t cap);

/* Writes usher's own JSON answer {"error":msg}, with the header line extra
 * (without CRLF; NULL or empty: none). Returns length or -ENOSPC. */
long h1_write_error(int status, const char *msg, int close, const struct span *extra, char *out,
                    size_t cap);

/* The https:// URL that request h names (RFC 9110 4.2.2): the host of its
 * Host header (of the authority for an absolute-form target) without the
 * port (an IPv6 literal keeps its brackets), ":port" unless port is 443,
 * then the target as sent ("/" for "*" or an empty path). h must have been
 * accepted (h1_check_request). Returns its length, -EINVAL when the request
 * has no usable host, or -ENOSPC. */
long h1_https_location(const struct h1_head *h, uint32_t port, char *out, size_t cap);

/* Writes usher's answer to a request on a listener that redirects to https:
 * 308 Permanent Redirect (RFC 9110 15.4.9: the method and body are kept)
 * with Location from h1_https_location, no body, and the Connection header
 * conn. Returns length, -EINVAL (no usable host) or -ENOSPC. */
long h1_write_redirect(const struct h1_head *h, uint32_t port, enum h1_conn_header conn, char *out,
                       size_t cap);

/* Standard reason phrase for a status code usher itself sends. */
const char *h1_reason(int status);

#endif
