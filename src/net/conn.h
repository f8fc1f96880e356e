/* conn: the transport seam. A byte stream under a codec, behind a small ops
 * table, as Redis' ConnectionType or HAProxy's xprt layer.
 *
 * Codecs (the HTTP/1 client side, the backend side, the tunnel) read and
 * write only through conn_read() and conn_writev(), and ask what the
 * transport waits for through the readiness flags. The flags are the
 * transport's business: the plain socket (conn.c) clears `readable` after a
 * short read, because on a stream socket a short read means the kernel
 * buffer is drained; the TLS transport (src/tls/) clears it when the library
 * holds nothing more and its last socket read was short, sets
 * `read_needs_out` when a read must wait for the socket to take a write (a
 * handshake message, a key update), and `write_needs_in` when a write must
 * wait for the peer (a client handshake not finished yet).
 *
 * Sockets are registered edge-triggered once for read; write readiness
 * (EPOLLOUT) is watched only while a connect is in progress or after a write
 * was refused (on loopback every ACK would otherwise wake the loop). */
#ifndef USHER_NET_CONN_H
#define USHER_NET_CONN_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/loop.h"

struct conn;

struct conn_ops {
    /* Reads at most len bytes: returns > 0, 0 at the peer's end, or -errno
     * (-EAGAIN: nothing now). Clears c->readable when nothing more can be
     * read until the next readiness event. */
    ssize_t (*read)(struct conn *c, void *p, size_t len);
    /* Writes from iov[0..n): returns the bytes taken or -errno (-EAGAIN).
     * Taking fewer than offered clears c->writable and watches for write
     * readiness. */
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int n);
    /* Ends our direction of the stream (a FIN); reading goes on. */
    int (*shutdown)(struct conn *c);
    /* Frees what the transport holds (before the socket is closed); may be NULL. */
    void (*close)(struct conn *c);
};

/* A connection: the loop's io first, so the loop's callback gets &c->io. */
struct conn {
    struct loop_io io;
    const struct conn_ops *ops;
    struct loop *loop;
    void *tls;                  /* the transport's state (an SSL * for TLS), or NULL */
    uint8_t readable;           /* edge-triggered: bytes or an EOF may be waiting */
    uint8_t writable;           /* edge-triggered: the socket may take more bytes */
    uint8_t rdhup;              /* the peer half-closed: read until EOF */
    uint8_t out_armed;          /* EPOLLOUT is watched */
    uint8_t read_needs_out : 1; /* a read waits for write readiness (TLS) */
    uint8_t write_needs_in : 1; /* a write waits for read readiness (TLS) */
    uint8_t in_drained : 1;     /* TLS: the last socket read was short */
    uint8_t tls_wpend : 1;      /* TLS: a write was refused; its retry must offer as much */
};

/* The plain socket transport. */
extern const struct conn_ops conn_plain;

/* Makes c a connection over the socket fd and registers it with loop for
 * reads (and for writes when connecting: the end of a connect shows as
 * writability). cb receives &c->io. Returns 0 or -errno (fd is then not
 * registered; the caller still owns it). */
int conn_open(struct conn *c, struct loop *loop, int fd, const struct conn_ops *ops, loop_io_cb cb,
              int connecting);

/* Records what an epoll event says about c. */
void conn_events(struct conn *c, uint32_t events);

static inline ssize_t conn_read(struct conn *c, void *p, size_t len)
{
    return c->ops->read(c, p, len);
}
static inline ssize_t conn_writev(struct conn *c, const struct iovec *iov, int n)
{
    return c->ops->writev(c, iov, n);
}
static inline int conn_shutdown(struct conn *c)
{
    return c->ops->shutdown(c);
}

/* The result of a non-blocking connect once c became writable or readable:
 * 0, or -errno. Stops watching for writability until a write blocks. */
int conn_connect_result(struct conn *c);
/* Watches for write readiness (a write was refused). */
void conn_want_write(struct conn *c);
/* Closes the socket (events already fetched for it are dropped). */
void conn_close(struct conn *c);

#endif
