/* h2map: HTTP/2 field sections mapped to and from the HTTP/1 heads the rest
 * of usher speaks (RFC 9113 8.2 and 8.3). Pure functions, no nghttp2.
 *
 * The request direction is fed one field at a time, as the HPACK decoder
 * gives them (h2map_field), into a byte area the caller owns (one buffer per
 * stream): the fields are validated as they come and copied there, so that
 * nothing points into the decoder's memory; h2map_finish then builds a
 * struct h1_head whose spans point into the area (valid while it lives).
 *
 * What is malformed (RFC 9113 8.1.1: a stream error PROTOCOL_ERROR) and what
 * is too large (a 431) are told apart, so that the caller can answer each. */
#ifndef USHER_HTTP_H2MAP_H
#define USHER_HTTP_H2MAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "http/h1.h"

#define H2MAP_MALFORMED (-1) /* RFC 9113 8.1.1: reset the stream (PROTOCOL_ERROR) */
#define H2MAP_TOO_LARGE (-2) /* the fields do not fit the area or the header count: 431 */

struct h2map {
    char *area;
    uint32_t used, cap;
    uint32_t max_fields; /* regular fields (limits.max_headers) */
    uint32_t nfields;    /* regular fields stored in the area */
    uint32_t ncookies, cookie_bytes;
    struct span method, scheme, authority, path, protocol;
    int err;                  /* sticky: the first error (0, H2MAP_MALFORMED, H2MAP_TOO_LARGE) */
    const char *why;          /* what was wrong, in words */
    uint8_t regular;          /* a regular field was seen: no pseudo-header may follow */
    uint8_t trailers;         /* a trailer section: no pseudo-header at all */
    uint8_t extended_connect; /* set by the caller: RFC 8441 CONNECT with :protocol is allowed */
};

/* Starts a request field section (trailers: a trailer section) into
 * area[0..cap), at most max_fields regular fields (<= H1_MAX_HEADERS). */
void h2map_init(struct h2map *m, char *area, uint32_t cap, uint32_t max_fields, int trailers);

/* One decoded field. Returns 0 or the sticky error (H2MAP_MALFORMED,
 * H2MAP_TOO_LARGE); after an error the rest is ignored. */
int h2map_field(struct h2map *m, const char *name, size_t nlen, const char *value, size_t vlen);

/* Ends a request section: fills h (HTTP/1.1, spans into the area; cookie
 * fields joined with "; ", :authority as Host; with a body but no
 * content-length (end_stream 0), a "Transfer-Encoding: chunked" field is
 * added so that the HTTP/1.1 backend can tell where the body ends). An
 * extended CONNECT (RFC 8441, when m->extended_connect) becomes a GET of
 * :path with "Upgrade: <:protocol>" and Connection: Upgrade (h->upgrade_i,
 * h->conn_upgrade), without a body framing. Returns 0 or an error as
 * h2map_field. */
int h2map_finish(struct h2map *m, int end_stream, struct h1_head *h);

/* The i-th regular field stored (trailers): 1, or 0 past the last. */
int h2map_get(const struct h2map *m, uint32_t i, struct span *name, struct span *value);

/* Whether the field `name` of an HTTP/1 response may go into an HTTP/2 one
 * (RFC 9113 8.2.2: no connection-specific fields). */
int h2map_response_field_ok(struct span name);

/* Writes name in lower case into out (name.len bytes). */
void h2map_lower(char *out, struct span name);

#endif
