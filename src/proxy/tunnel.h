/* tunnel: a byte relay between two connections, after 101 Switching
 * Protocols (WebSocket), and later for a TCP mode.
 *
 * The caller owns both connections and the two buffers; the relay only
 * moves bytes: what it reads from a goes to b and the other way round,
 * through conn_read/conn_writev, so either side may be TLS. Buffers are
 * kept for the life of the tunnel (bytes flow both ways at any time). It
 * ends when one side has ended and what that side sent is through. */
#ifndef USHER_PROXY_TUNNEL_H
#define USHER_PROXY_TUNNEL_H

#include <stdint.h>

#include "core/buf.h"
#include "net/conn.h"

/* What the relay remembers between two calls (kept by the caller). */
struct tunnel {
    uint8_t a_eof, b_eof; /* that side sent its last byte (or failed) */
    uint8_t b_failed;     /* a write to b failed: read b to its end, write nothing more */
};

/* The two sides, as the caller holds them. */
struct tunnel_io {
    struct conn *a, *b;
    struct buf **ab;      /* read from a, not written to b yet: [start, end) */
    struct buf **ba;      /* read from b, not written to a yet */
    struct buf **ba_head; /* written to a before *ba (the 101 head); emptied, then given back */
    struct buf_cache *bufs;
};

/* Moves what can be moved. Returns 1 when something changed, 0 when not,
 * or -1 when the relay cannot go on (out of memory, a write to a failed).
 * *read_any is set when bytes were read (either way: the idle clock starts
 * again); *to_a counts the bytes of *ba written to a (not the head). */
int tunnel_step(struct tunnel *t, const struct tunnel_io *io, int *read_any, uint64_t *to_a);

/* Whether the relay is over: one side ended and what it sent went through. */
int tunnel_done(const struct tunnel *t, const struct tunnel_io *io);

#endif
