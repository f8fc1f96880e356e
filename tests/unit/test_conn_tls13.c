/* Tests src/tls/conn_tls13.c over a socketpair against an OpenSSL client:
 * the handoff after the handshake for each TLS 1.3 suite (the record counts
 * are right when the client can read what usher seals and usher what the
 * client seals), transfers both ways in records split across reads and many
 * records per read, refused writes retried, KeyUpdate with and without
 * update_requested, close_notify, a forged record (bad_record_mac sent
 * back), and TLS 1.2 staying on OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/conn.h"
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "tls_fixture.h"

static void on_io(struct loop *l, struct loop_io *io, uint32_t events) {}

/* The fixture's context, set up as src/tls/server.c makes them. */
static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = fixture_server_ctx();
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_num_tickets(ctx, 2); /* records after our Finished: counted */
    SSL_CTX_set_keylog_callback(ctx, tls13_keylog);
    return ctx;
}

struct pair {
    struct loop l;
    struct conn c; /* usher's side */
    SSL_CTX *sctx, *cctx;
    SSL *client;
    int peer;
};

/* suites: the client's TLS 1.3 list; tls12: the client speaks TLS 1.2 only */
static void setup_pair(struct pair *p, const char *suites, int tls12, int small_buffers)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (small_buffers) {
        int small = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    assert_int_equal(loop_init(&p->l), 0);
    assert_int_equal(conn_open(&p->c, &p->l, sv[0], &conn_tls, on_io, 0), 0);
    p->sctx = server_ctx();
    SSL *s = SSL_new(p->sctx);
    assert_int_equal(tls_conn_bind(&p->c, s), 0);
    SSL_set_accept_state(s);
    assert_int_equal(tls13_hs_begin(s), 0);
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (suites) assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suites), 1);
    if (tls12) SSL_CTX_set_max_proto_version(p->cctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(p->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, sv[1]);
    SSL_set_connect_state(p->client);
    p->peer = sv[1];
    char b[16];
    for (int k = 0; k < 100 && !(SSL_is_init_finished(p->client) && p->c.ops == &conn_tls13); k++) {
        SSL_do_handshake(p->client);
        p->c.readable = 1;
        conn_read(&p->c, b, sizeof(b));
        if (tls12 && k > 20) break;
    }
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

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

/* The client sends n bytes in writes of wsize; usher reads them with reads
 * of rsize; returns nothing, checks they arrived in order. */
static void client_to_usher(struct pair *p, size_t n, size_t wsize, size_t rsize)
{
    static uint8_t data[1 << 20], got[1 << 20];
    assert_true(n <= sizeof(data));
    fill(data, n, (unsigned)n);
    size_t sent = 0, recvd = 0;
    for (int k = 0; k < 200000 && recvd < n; k++) {
        if (sent < n) {
            size_t w = 0, want = n - sent < wsize ? n - sent : wsize;
            if (SSL_write_ex(p->client, data + sent, want, &w) == 1) sent += w;
            ERR_clear_error();
        }
        for (;;) {
            size_t want = n - recvd < rsize ? n - recvd : rsize;
            if (!want) break;
            p->c.readable = 1;
            ssize_t r = conn_read(&p->c, got + recvd, want);
            if (r == -EAGAIN) break;
            assert_true(r > 0);
            assert_true((size_t)r <= want);
            recvd += (size_t)r;
        }
    }
    assert_int_equal(recvd, n);
    assert_memory_equal(got, data, n);
}

/* Reads what the client can without blocking into out; returns the count. */
static size_t client_drain(struct pair *p, uint8_t *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        size_t n = 0;
        if (got >= cap || SSL_read_ex(p->client, out + got, cap - got, &n) != 1) break;
        got += n;
    }
    ERR_clear_error();
    return got;
}

/* usher writes n bytes as three iovecs each time, as a codec does (a
 * refused write is offered again from where it was), the client reads. */
static void usher_to_client(struct pair *p, size_t n)
{
    static uint8_t data[1 << 20], got[1 << 20];
    assert_true(n <= sizeof(data));
    fill(data, n, (unsigned)n + 7);
    size_t sent = 0, recvd = 0;
    int refused = 0;
    for (int k = 0; k < 200000 && recvd < n; k++) {
        if (sent < n) {
            size_t rest = n - sent, a = rest / 3, b = rest / 3;
            struct iovec iov[3] = {
                {data + sent, a}, {data + sent + a, b}, {data + sent + a + b, rest - a - b}};
            ssize_t w = conn_writev(&p->c, iov, 3);
            assert_true(w > 0 || w == -EAGAIN);
            if (w > 0) sent += (size_t)w;
            if (w == -EAGAIN) refused++;
        }
        recvd += client_drain(p, got + recvd, sizeof(got) - recvd);
    }
    assert_int_equal(sent, n);
    assert_int_equal(recvd, n);
    assert_memory_equal(got, data, n);
    if (n > 100000) assert_true(refused > 0); /* the small socket buffer refused some */
}

static void each_suite_hands_off_and_carries_data_both_ways(void **state)
{
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    for (int i = 0; i < 3; i++) {
        struct pair p;
        uint64_t before = tls13_handoffs();
        setup_pair(&p, suites[i], 0, 1);
        assert_ptr_equal(p.c.ops, &conn_tls13);
        assert_int_equal(tls13_handoffs(), before + 1);
        assert_string_equal(SSL_get_cipher_name(p.client), suites[i]);
        /* the first records usher seals come after two tickets: the client reads them */
        usher_to_client(&p, 1000);
        client_to_usher(&p, 1000, 1000, 4096);
        /* records split across reads (1-byte reads), many records per read */
        client_to_usher(&p, 70000, 16384, 1);
        client_to_usher(&p, 300000, 100000, 1 << 20);
        client_to_usher(&p, 50000, 7, 100); /* tiny records */
        usher_to_client(&p, 400000);
        teardown_pair(&p);
    }
}

static void key_updates_from_the_client_are_followed(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    assert_ptr_equal(p.c.ops, &conn_tls13);
    for (int round = 0; round < 3; round++) {
        int req = round == 1 ? SSL_KEY_UPDATE_NOT_REQUESTED : SSL_KEY_UPDATE_REQUESTED;
        assert_int_equal(SSL_key_update(p.client, req), 1);
        client_to_usher(&p, 5000, 5000, 4096); /* the KeyUpdate goes with the data */
        /* usher answered update_requested under its old key, then switched: the
         * client (which expects that) reads what usher writes now */
        usher_to_client(&p, 20000);
        client_to_usher(&p, 100, 100, 100);
    }
    teardown_pair(&p);
}

static void close_notify_is_an_end(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    client_to_usher(&p, 3000, 3000, 4096);
    /* usher ends its direction: close_notify, then the FIN */
    assert_int_equal(conn_shutdown(&p.c), 0);
    char b[100];
    size_t n;
    assert_int_equal(SSL_read_ex(p.client, b, sizeof(b), &n), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    struct iovec iov = {"x", 1};
    assert_int_equal(conn_writev(&p.c, &iov, 1), -EPIPE);
    /* the client's close_notify: the end of what usher reads, after the data before it */
    static const char last[] = "last words";
    assert_int_equal(SSL_write_ex(p.client, last, sizeof(last), &n), 1);
    assert_true(SSL_shutdown(p.client) >= 0);
    p.c.readable = 1;
    ssize_t r = -EAGAIN;
    for (int k = 0; k < 100 && r == -EAGAIN; k++) r = conn_read(&p.c, b, sizeof(b));
    assert_int_equal(r, sizeof(last));
    assert_string_equal(b, last);
    assert_int_equal(conn_read(&p.c, b, sizeof(b)), 0);
    assert_int_equal(conn_read(&p.c, b, sizeof(b)), 0);
    teardown_pair(&p);
}

static void close_sends_close_notify(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    usher_to_client(&p, 100);
    conn_close(&p.c);
    p.c.ops = &conn_plain; /* closed: teardown's close is the plain one */
    p.c.io.fd = -1;
    char b[100];
    size_t n;
    assert_int_equal(SSL_read_ex(p.client, b, sizeof(b), &n), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    SSL_free(p.client);
    close(p.peer);
    SSL_CTX_free(p.sctx);
    SSL_CTX_free(p.cctx);
    loop_destroy(&p.l);
}

static void a_forged_record_gets_bad_record_mac(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    client_to_usher(&p, 100, 100, 100);
    uint8_t rec[5 + 40] = {23, 3, 3, 0, 40};
    fill(rec + 5, 40, 3);
    assert_int_equal(write(p.peer, rec, sizeof(rec)), (ssize_t)sizeof(rec));
    char b[100];
    p.c.readable = 1;
    assert_int_equal(conn_read(&p.c, b, sizeof(b)), -EPROTO);
    assert_int_equal(conn_read(&p.c, b, sizeof(b)), -EPROTO); /* and stays failed */
    struct iovec iov = {"x", 1};
    assert_int_equal(conn_writev(&p.c, &iov, 1), -EPROTO);
    size_t n;
    assert_int_equal(SSL_read_ex(p.client, b, sizeof(b), &n), 0);
    unsigned long e = ERR_peek_last_error();
    assert_int_equal(ERR_GET_REASON(e), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    ERR_clear_error();
    teardown_pair(&p);
}

static void a_plaintext_record_after_the_handshake_is_refused(void **state)
{
    /* a KeyUpdate in a plaintext record: after the handshake, an outer type
     * other than application_data is unexpected_message (RFC 8446 5) */
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    uint8_t rec[] = {22, 3, 3, 0, 5, 24, 0, 0, 1, 0};
    assert_int_equal(write(p.peer, rec, sizeof(rec)), (ssize_t)sizeof(rec));
    char b[100];
    p.c.readable = 1;
    assert_int_equal(conn_read(&p.c, b, sizeof(b)), -EPROTO);
    size_t n;
    assert_int_equal(SSL_read_ex(p.client, b, sizeof(b), &n), 0);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE);
    ERR_clear_error();
    teardown_pair(&p);
}

/* The client sends n KeyUpdates (update_not_requested) in a row. */
static void key_updates(struct pair *p, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(SSL_key_update(p->client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_do_handshake(p->client), 1); /* sends it */
    }
}

static void a_flood_of_records_without_data_is_refused(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 0, 0);
    key_updates(&p, 32); /* as many as OpenSSL allows empty records: still served */
    client_to_usher(&p, 1000, 1000, 4096);
    key_updates(&p, 33);
    char b[100];
    ssize_t r = -EAGAIN;
    for (int k = 0; k < 100 && r == -EAGAIN; k++) {
        p.c.readable = 1;
        r = conn_read(&p.c, b, sizeof(b));
    }
    assert_int_equal(r, -EPROTO);
    size_t n;
    assert_int_equal(SSL_read_ex(p.client, b, sizeof(b), &n), 0);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE);
    ERR_clear_error();
    teardown_pair(&p);
}

static void tls12_stays_on_openssl(void **state)
{
    struct pair p;
    setup_pair(&p, NULL, 1, 1);
    assert_ptr_equal(p.c.ops, &conn_tls);
    assert_int_equal(SSL_version(p.client), TLS1_2_VERSION);
    assert_false(tls13_candidate(p.c.tls)); /* given up at once */
    client_to_usher(&p, 70000, 16384, 1000);
    usher_to_client(&p, 200000);
    teardown_pair(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_suite_hands_off_and_carries_data_both_ways),
        cmocka_unit_test(key_updates_from_the_client_are_followed),
        cmocka_unit_test(close_notify_is_an_end),
        cmocka_unit_test(close_sends_close_notify),
        cmocka_unit_test(a_forged_record_gets_bad_record_mac),
        cmocka_unit_test(a_plaintext_record_after_the_handshake_is_refused),
        cmocka_unit_test(a_flood_of_records_without_data_is_refused),
        cmocka_unit_test(tls12_stays_on_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
