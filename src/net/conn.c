/* conn: readiness bookkeeping and the plain socket transport. See conn.h. */
#include "net/conn.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/sock.h"

#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

int conn_open(struct conn *c, struct loop *loop, int fd, const struct conn_ops *ops, loop_io_cb cb,
              int connecting)
{
    c->io.fd = fd;
    c->io.cb = cb;
    c->ops = ops;
    c->loop = loop;
    c->tls = NULL;
    c->rdhup = 0;
    c->read_needs_out = c->write_needs_in = c->in_drained = c->tls_wpend = 0;
    c->out_armed = connecting ? 1 : 0;
    /* the first bytes often come with the connection: try at once */
    c->readable = connecting ? 0 : 1;
    c->writable = connecting ? 0 : 1;
    int err = loop_add(loop, &c->io, CONN_EVENTS | (connecting ? EPOLLOUT : 0));
    if (err < 0) c->io.fd = -1;
    return err;
}

void conn_events(struct conn *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        c->readable = 1;
        if (c->write_needs_in) c->writable = 1, c->write_needs_in = 0;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->rdhup = 1;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        c->writable = 1;
        if (c->read_needs_out) c->readable = 1, c->read_needs_out = 0;
    }
}

int conn_connect_result(struct conn *c)
{
    int err = sock_error(c->io.fd);
    if (!err && c->out_armed && loop_mod(c->loop, &c->io, CONN_EVENTS) == 0) c->out_armed = 0;
    return err;
}

void conn_want_write(struct conn *c)
{
    if (!c->out_armed && loop_mod(c->loop, &c->io, CONN_EVENTS | EPOLLOUT) == 0) c->out_armed = 1;
}

void conn_close(struct conn *c)
{
    if (c->ops && c->ops->close) c->ops->close(c);
    loop_close(c->loop, &c->io);
}

/* ---- the plain socket ------------------------------------------------------------ */

static ssize_t plain_read(struct conn *c, void *p, size_t len)
{
    ssize_t n = read(c->io.fd, p, len);
    if (n > 0) {
        /* a short read means the socket is drained, unless a FIN is pending */
        if ((size_t)n < len && !c->rdhup) c->readable = 0;
        return n;
    }
    if (n == 0) {
        c->readable = 0;
        return 0;
    }
    if (errno == EINTR) return -EINTR;
    c->readable = 0;
    return -errno;
}

static ssize_t plain_writev(struct conn *c, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    ssize_t w = writev(c->io.fd, iov, n);
    if (w < 0) {
        if (errno == EAGAIN) {
            c->writable = 0;
            conn_want_write(c);
            return -EAGAIN;
        }
        return -errno;
    }
    if ((size_t)w < total) {
        c->writable = 0;
        conn_want_write(c);
    }
    return w;
}

static int plain_shutdown(struct conn *c)
{
    return shutdown(c->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

const struct conn_ops conn_plain = {
    .read = plain_read,
    .writev = plain_writev,
    .shutdown = plain_shutdown,
};
