/* body: where an HTTP/1.1 message body ends (RFC 9112 6 and 7.1).
 *
 * Bodies are forwarded as they arrive, so their framing is checked as they
 * pass: a Content-Length body is counted, a chunked body is validated byte by
 * byte (sizes, extensions, the CRLF after each chunk's data, trailer lines),
 * strictly: no bare CR or LF, no overflow, no whitespace where the grammar
 * has none, no obs-fold in trailers. Nothing after the end of a message is
 * ever counted as part of it. The state is a few bytes, kept per direction
 * of a session. */
#ifndef USHER_HTTP_BODY_H
#define USHER_HTTP_BODY_H

#include <stddef.h>
#include <stdint.h>

enum body_kind {
    BODY_NONE,    /* no body: the message ended with its head */
    BODY_LENGTH,  /* Content-Length */
    BODY_CHUNKED, /* Transfer-Encoding: chunked */
    BODY_CLOSE,   /* a response ended by the connection's close */
};

struct body {
    uint8_t kind;
    uint8_t state;        /* chunked: where in the grammar we are */
    uint16_t ext_len;     /* chunked: bytes of the current chunk extension */
    uint32_t trailer_len; /* chunked: bytes of trailer section so far */
    uint64_t n;           /* bytes left (length, chunk data), or the chunk size being read */
    uint64_t allowed;     /* chunked: data bytes the rest of the body may still hold */
};

#define BODY_ERR_FRAMING (-1)   /* body_parse: the framing is invalid */
#define BODY_ERR_TOO_LARGE (-2) /* body_parse: a chunk would take the body past its limit */

/* Starts a body of the given kind (length: its Content-Length), without a
 * size limit. */
void body_init(struct body *b, enum body_kind kind, uint64_t length);

/* Limits a chunked body to max data bytes (after de-chunking): a chunk whose
 * size line would take it past max makes body_parse return
 * BODY_ERR_TOO_LARGE when its size line ends, before any of its data is taken. (A
 * Content-Length body's size is known from its head: the caller checks it.) */
void body_limit(struct body *b, uint64_t max);

/* Looks at p[0..len): returns how many bytes belong to the body (the rest is
 * the next message, or garbage), sets *done when the body ended there, or
 * returns BODY_ERR_FRAMING (-1) on a framing error or BODY_ERR_TOO_LARGE past
 * the limit (body_limit); after an error, b must not be used again. With out non-NULL (chunked
 * only), the data bytes are moved down to *out, which advances: the body is de-chunked in place,
 * framing and trailers dropped. */
long body_parse(struct body *b, char *p, size_t len, int *done, char **out);

/* Whether b has ended: NONE, or LENGTH with nothing left. CLOSE ends only at
 * the connection's end, which the caller knows. */
int body_done(const struct body *b);

#endif
