/* Tests src/tls/conn_tls.c over a socketpair, against an OpenSSL client: the
 * handshake inside the first reads, and a write that OpenSSL refused
 * (WANT_WRITE) retried with the same bytes grouped differently and more
 * after them, as the HTTP/1 codec does when more of a body arrived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/conn.h"
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "tls_fixture.h"

static void on_io(struct loop *l, struct loop_io *io, uint32_t events) {}

/* The fixture's context, with the modes conn_tls.c relies on. */
static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = fixture_server_ctx();
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

struct pair {
    struct loop l;
    struct conn c; /* usher's side */
    SSL_CTX *sctx, *cctx;
    SSL *client;
    int peer;
};

static void setup_pair(struct pair *p)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int small = 4096; /* so that the socket fills soon */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(loop_init(&p->l), 0);
    assert_int_equal(conn_open(&p->c, &p->l, sv[0], &conn_tls, on_io, 0), 0);
    p->sctx = server_ctx();
    SSL *s = SSL_new(p->sctx);
    assert_int_equal(tls_conn_bind(&p->c, s), 0);
    SSL_set_accept_state(s);
    p->cctx = SSL_CTX_new(TLS_client_method());
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, sv[1]);
    SSL_set_connect_state(p->client);
    p->peer = sv[1];
    /* the handshake: the client's messages, then usher's reads drive the server */
    char b[16];
    for (int k = 0; k < 50 && !(SSL_is_init_finished(s) && SSL_is_init_finished(p->client)); k++) {
        SSL_do_handshake(p->client);
        p->c.readable = 1;
        conn_read(&p->c, b, sizeof(b));
    }
    assert_true(SSL_is_init_finished(s));
    assert_true(SSL_is_init_finished(p->client));
}

static void teardown_pair(struct pair *p)
{
    conn_close(&p->c);
    SSL_free(p->client);
    close(p->peer);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    loop_destroy(&p->l);
}

/* Reads what the client can without blocking into out; returns the count. */
static size_t client_drain(struct pair *p, char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        size_t n = 0;
        if (got >= cap || SSL_read_ex(p->client, out + got, cap - got, &n) != 1) break;
        got += n;
    }
    return got;
}

static void a_refused_write_is_retried_with_more_bytes_after_it(void **state)
{
    struct pair p;
    setup_pair(&p);
    static char head[200], body[40000], seen[sizeof(head) + sizeof(body)];
    memset(head, 'h', sizeof(head));
    for (size_t i = 0; i < sizeof(body); i++) body[i] = (char)('a' + i % 26);
    /* the client reads nothing yet: head + 15000 body bytes fit one gathered
     * record, larger than the socket takes: the write is refused */
    size_t sent = 0, avail = 15000;
    ssize_t w = 0;
    for (int k = 0; k < 1000; k++) {
        struct iovec iov[2];
        int n = 0;
        if (sent < sizeof(head)) iov[n++] = (struct iovec){head + sent, sizeof(head) - sent};
        size_t boff = sent > sizeof(head) ? sent - sizeof(head) : 0;
        iov[n++] = (struct iovec){body + boff, avail - boff};
        w = conn_writev(&p.c, iov, n);
        if (w == -EAGAIN) break;
        assert_true(w > 0);
        sent += (size_t)w;
        if (sent == sizeof(head) + avail) fail_msg("the socket took %zu bytes at once", sent);
    }
    assert_int_equal(w, -EAGAIN);
    assert_true(p.c.tls_wpend);
    assert_int_equal(sent, 0); /* nothing of the record counted as written */
    /* more of the body arrived: the retry offers the same bytes first and 25000
     * more, past one record, in two pieces; it must not fail as a bad retry */
    avail = sizeof(body);
    size_t got = 0;
    for (int k = 0; k < 100000 && sent < sizeof(head) + avail; k++) {
        struct iovec iov[2];
        int n = 0;
        if (sent < sizeof(head)) iov[n++] = (struct iovec){head + sent, sizeof(head) - sent};
        size_t boff = sent > sizeof(head) ? sent - sizeof(head) : 0;
        iov[n++] = (struct iovec){body + boff, avail - boff};
        w = conn_writev(&p.c, iov, n);
        assert_true(w > 0 || w == -EAGAIN);
        if (w > 0) sent += (size_t)w;
        got += client_drain(&p, seen + got, sizeof(seen) - got);
    }
    for (int k = 0; k < 1000 && got < sizeof(seen); k++)
        got += client_drain(&p, seen + got, sizeof(seen) - got);
    assert_int_equal(sent, sizeof(head) + sizeof(body));
    assert_int_equal(got, sizeof(seen));
    assert_memory_equal(seen, head, sizeof(head));
    assert_memory_equal(seen + sizeof(head), body, sizeof(body));
    teardown_pair(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_refused_write_is_retried_with_more_bytes_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
