/* reqlog: what the access log line of one request needs, kept from its head
 * (which is gone by the time the response ends) in a buffer from the
 * worker's cache, only while the access log is on. */
#ifndef USHER_PROXY_REQLOG_H
#define USHER_PROXY_REQLOG_H

#include <stdint.h>

#include "core/accesslog.h"
#include "core/buf.h"
#include "core/span.h"

struct reqlog_rec {
    uint64_t start_ms, t0_us;
    uint64_t bytes;          /* response body bytes sent to the client */
    uint32_t off[5], len[5]; /* method, target, referer, user agent, host */
    uint16_t status;         /* the final status sent (0: none yet) */
    uint8_t http10, h2;
};

/* The request fields the line shows, whatever protocol carried them. */
struct reqlog_head {
    struct span method, target, referer, user_agent, host;
    uint8_t http10, h2; /* HTTP/1.0, HTTP/2 (else HTTP/1.1) */
};

/* Keeps f in *slot (a buffer taken from bufs) when the access log is on. */
void reqlog_begin(struct buf **slot, struct buf_cache *bufs, const struct reqlog_head *f);
/* Appends the request's line to alog and gives the buffer back. */
void reqlog_end(struct buf **slot, struct buf_cache *bufs, struct accesslog_buf *alog,
                const char *client_ip, const char *backend);

static inline struct reqlog_rec *reqlog_of(struct buf *slot)
{
    return slot ? (struct reqlog_rec *)slot->data : NULL;
}
static inline void reqlog_status(struct buf *slot, uint16_t status)
{
    if (slot) reqlog_of(slot)->status = status;
}
static inline void reqlog_bytes(struct buf *slot, uint64_t n)
{
    if (slot) reqlog_of(slot)->bytes += n;
}

#endif
