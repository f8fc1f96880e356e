/* conn_tls: the TLS transport (see tls.h and net/conn.h).
 *
 * The SSL's BIO is our own, over the connection's socket: it reads with
 * read() and writes with write(), and remembers whether its last read was
 * short. With read-ahead on, OpenSSL asks it for as much as its buffer
 * holds, so a short read means the socket is drained, as for the plain
 * transport: `readable` is cleared when OpenSSL holds nothing more
 * (SSL_has_pending) and the socket is drained, without the read() that
 * would return EAGAIN. A write gathers the iovecs into one SSL_write (one
 * record and one write() for a small response) when they fit a record.
 *
 * The handshake runs inside the first reads (server) or writes (client):
 * a read that needs the socket to take bytes first asks for write readiness
 * (read_needs_out), a write that waits for the peer's handshake messages
 * asks for read readiness (write_needs_in); conn_events() turns the one
 * readiness into the other. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

#define GATHER_MAX 16384 /* one TLS record of plaintext */

/* ---- the BIO ------------------------------------------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *p, int len)
{
    struct conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = read(c->io.fd, p, (size_t)len);
    if (n > 0) {
        c->in_drained = n < len;
        return (int)n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->in_drained = 1;
        BIO_set_retry_read(b);
        return -1;
    }
    c->in_drained = 1;
    return n == 0 ? 0 : -1;
}

static int bio_write(BIO *b, const char *p, int len)
{
    struct conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(c->io.fd, p, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == EINTR) BIO_set_retry_write(b);
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "usher-conn");
    if (!m || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

int tls_conn_bind(struct conn *c, SSL *ssl)
{
    pthread_once(&bio_once, bio_method_make);
    BIO *b = bio_method ? BIO_new(bio_method) : NULL;
    if (!b) return -ENOMEM;
    BIO_set_data(b, c);
    SSL_set_bio(ssl, b, b);
    c->tls = ssl;
    c->in_drained = c->tls_wpend = 0;
    return 0;
}

/* ---- the ops ------------------------------------------------------------------ */

/* After a failed SSL call: what the connection waits for, or -errno. */
static ssize_t tls_failed(struct conn *c, SSL *ssl, int r, int reading)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        if (reading) {
            c->readable = 0;
        } else {
            c->writable = 0;
            c->write_needs_in = 1;
        }
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading) {
            c->readable = 0;
            c->read_needs_out = 1;
        } else {
            c->writable = 0;
        }
        conn_want_write(c);
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or an EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
        c->readable = 0;
        return 0;
    case SSL_ERROR_SYSCALL: {
        int err = errno;
        ERR_clear_error();
        c->readable = 0;
        if (!SSL_is_init_finished(ssl)) tls_note_failure(ssl, "connection closed in the handshake");
        return err ? -err : -ECONNRESET;
    }
    default: {
        unsigned long why = ERR_peek_last_error();
        if (!SSL_is_init_finished(ssl)) tls_note_failure(ssl, ERR_reason_error_string(why));
        tls_handshake_refused(c, ssl, why);
        ERR_clear_error();
        c->readable = 0;
        return -EPROTO;
    }
    }
}

static ssize_t tls_read(struct conn *c, void *p, size_t len)
{
    SSL *ssl = c->tls;
    size_t got = 0;
    /* in_drained must say what a socket read of this call saw: a record
     * OpenSSL returns without reading the socket says nothing of what came
     * since an earlier short read (the edge of those bytes was taken already) */
    c->in_drained = 0;
    int r = SSL_read_ex(ssl, p, len, &got);
    if (r == 1) {
        /* nothing left in OpenSSL and the socket is drained: wait for the next edge */
        if (c->in_drained && !c->rdhup && !SSL_has_pending(ssl)) c->readable = 0;
        if (tls13_candidate(ssl)) tls13_try_handoff(c); /* usher's record layer from here */
        return (ssize_t)got;
    }
    ssize_t e = tls_failed(c, ssl, r, 1);
    /* the handshake ended in this read, nothing else came yet: the usual handoff point */
    if (e == -EAGAIN && !c->read_needs_out && tls13_candidate(ssl)) tls13_try_handoff(c);
    return e;
}

static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int n)
{
    SSL *ssl = c->tls;
    static __thread char gather[GATHER_MAX];
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    if (total == 0) return 0;
    size_t done = 0, off = 0;
    int i = 0;
    /* Several pieces that fit one record go as one. After a write OpenSSL
     * refused (WANT_WRITE), the retry must offer the same first bytes and at
     * least as many (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets them come from
     * another buffer): the codec offers them again, maybe with more after
     * them, so the first min(total, a record) bytes are gathered again. */
    if (n > 1 && (total <= GATHER_MAX || c->tls_wpend)) {
        size_t want = total < GATHER_MAX ? total : GATHER_MAX, got = 0;
        while (got < want) {
            size_t k = iov[i].iov_len - off < want - got ? iov[i].iov_len - off : want - got;
            memcpy(gather + got, (const char *)iov[i].iov_base + off, k);
            got += k;
            off += k;
            if (off == iov[i].iov_len) i++, off = 0;
        }
        size_t w = 0;
        int r = SSL_write_ex(ssl, gather, want, &w);
        if (r != 1) {
            ssize_t e = tls_failed(c, ssl, r, 0);
            if (e == -EAGAIN) c->tls_wpend = 1;
            return e == 0 ? -EPIPE : e;
        }
        c->tls_wpend = 0;
        if (w < want) return (ssize_t)w; /* the codec offers the rest again */
        done = w;
    }
    for (; i < n; i++, off = 0) {
        while (off < iov[i].iov_len) {
            size_t w = 0;
            int r =
                SSL_write_ex(ssl, (const char *)iov[i].iov_base + off, iov[i].iov_len - off, &w);
            if (r != 1) {
                ssize_t e = tls_failed(c, ssl, r, 0);
                if (e == -EAGAIN) c->tls_wpend = 1;
                if (done) return (ssize_t)done; /* what went through; the next call finds out */
                return e == 0 ? -EPIPE : e;
            }
            c->tls_wpend = 0;
            off += w;
            done += w;
        }
    }
    return (ssize_t)done;
}

static int tls_shutdown(struct conn *c)
{
    SSL *ssl = c->tls;
    /* close_notify (RFC 8446 6.1), then the FIN; a full socket loses only the alert */
    if (SSL_is_init_finished(ssl)) {
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
    return shutdown(c->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

static void tls_close(struct conn *c)
{
    /* close_notify before the close (RFC 8446 6.1), unless the peer has ended
     * already; either way the shutdown is recorded, else OpenSSL would drop
     * the session from the cache as "bad" (an SSL 3 rule that TLS 1.1
     * lifted). A connection that failed was dropped by its fatal alert. */
    SSL *ssl = c->tls;
    if (SSL_is_init_finished(ssl)) {
        if (c->rdhup || (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN))
            SSL_set_quiet_shutdown(ssl, 1);
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
    SSL_free(ssl);
    c->tls = NULL;
}

const struct conn_ops conn_tls = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
};
