/* Tests src/net/conn.c: the plain transport and its readiness bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/conn.h"

static void on_io(struct loop *l, struct loop_io *io, uint32_t events) {}

/* c over one end of a socketpair (non-blocking), peer is the other end. */
static void pair(struct loop *l, struct conn *c, int *peer, int connecting)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(loop_init(l), 0);
    assert_int_equal(conn_open(c, l, sv[0], &conn_plain, on_io, connecting), 0);
    *peer = sv[1];
}

static void done(struct loop *l, struct conn *c, int peer)
{
    conn_close(c);
    close(peer);
    loop_destroy(l);
}

static void an_accepted_conn_tries_at_once(void **state)
{
    struct loop l;
    struct conn c;
    int peer;
    pair(&l, &c, &peer, 0);
    assert_int_equal(c.readable, 1);
    assert_int_equal(c.writable, 1);
    assert_int_equal(c.out_armed, 0);
    done(&l, &c, peer);
    pair(&l, &c, &peer, 1); /* connecting: wait for the connect's writability */
    assert_int_equal(c.readable, 0);
    assert_int_equal(c.writable, 0);
    assert_int_equal(c.out_armed, 1);
    assert_int_equal(conn_connect_result(&c), 0);
    assert_int_equal(c.out_armed, 0);
    done(&l, &c, peer);
}

static void a_short_read_means_drained(void **state)
{
    struct loop l;
    struct conn c;
    int peer;
    pair(&l, &c, &peer, 0);
    char buf[64];
    assert_int_equal(write(peer, "0123456789", 10), 10);
    /* a read that fills what was offered says nothing: maybe more is there */
    assert_int_equal(conn_read(&c, buf, 4), 4);
    assert_int_equal(c.readable, 1);
    /* a shorter one drained the socket */
    assert_int_equal(conn_read(&c, buf, sizeof(buf)), 6);
    assert_int_equal(c.readable, 0);
    assert_memory_equal(buf, "456789", 6);
    /* nothing there: -EAGAIN, still not readable */
    c.readable = 1;
    assert_int_equal(conn_read(&c, buf, sizeof(buf)), -EAGAIN);
    assert_int_equal(c.readable, 0);
    done(&l, &c, peer);
}

static void a_pending_fin_keeps_reading(void **state)
{
    struct loop l;
    struct conn c;
    int peer;
    pair(&l, &c, &peer, 0);
    char buf[64];
    assert_int_equal(write(peer, "abc", 3), 3);
    shutdown(peer, SHUT_WR);
    conn_events(&c, EPOLLIN | EPOLLRDHUP);
    assert_int_equal(c.rdhup, 1);
    /* short, but the FIN is still to be read: stay readable */
    assert_int_equal(conn_read(&c, buf, sizeof(buf)), 3);
    assert_int_equal(c.readable, 1);
    assert_int_equal(conn_read(&c, buf, sizeof(buf)), 0);
    assert_int_equal(c.readable, 0);
    done(&l, &c, peer);
}

static void events_set_the_flags(void **state)
{
    struct conn c = {0};
    conn_events(&c, EPOLLOUT);
    assert_int_equal(c.writable, 1);
    assert_int_equal(c.readable, 0);
    c.writable = 0;
    conn_events(&c, EPOLLIN);
    assert_int_equal(c.readable, 1);
    assert_int_equal(c.rdhup, 0);
    c = (struct conn){0};
    conn_events(&c, EPOLLHUP); /* a hang-up: read the end, and writes will fail */
    assert_int_equal(c.readable, 1);
    assert_int_equal(c.rdhup, 1);
    assert_int_equal(c.writable, 1);
}

static void a_refused_write_watches_for_room(void **state)
{
    struct loop l;
    struct conn c;
    int peer;
    pair(&l, &c, &peer, 0);
    static char big[65536];
    struct iovec iov = {big, sizeof(big)};
    ssize_t w = 0;
    int rounds = 0;
    while (c.writable && rounds++ < 1000) w = conn_writev(&c, &iov, 1);
    /* the peer reads nothing: the socket buffer fills, a write comes back
     * short or refused, and EPOLLOUT is watched from then on */
    assert_true(rounds < 1000);
    assert_true(w == -EAGAIN || (w >= 0 && (size_t)w < sizeof(big)));
    assert_int_equal(c.writable, 0);
    assert_int_equal(c.out_armed, 1);
    struct epoll_event ev;
    assert_int_equal(epoll_wait(l.epfd, &ev, 1, 0), 0); /* still full */
    char sink[65536];
    while (read(peer, sink, sizeof(sink)) > 0) {
    }
    assert_int_equal(epoll_wait(l.epfd, &ev, 1, 1000), 1);
    assert_true(ev.events & EPOLLOUT);
    done(&l, &c, peer);
}

static void a_write_to_a_closed_peer_fails(void **state)
{
    struct loop l;
    struct conn c;
    int peer;
    pair(&l, &c, &peer, 0);
    close(peer);
    struct iovec iov = {"x", 1};
    assert_int_equal(conn_writev(&c, &iov, 1), -EPIPE);
    assert_int_equal(conn_shutdown(&c), 0);
    conn_close(&c);
    assert_int_equal(c.io.fd, -1);
    loop_destroy(&l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_accepted_conn_tries_at_once),
        cmocka_unit_test(a_short_read_means_drained),
        cmocka_unit_test(a_pending_fin_keeps_reading),
        cmocka_unit_test(events_set_the_flags),
        cmocka_unit_test(a_refused_write_watches_for_room),
        cmocka_unit_test(a_write_to_a_closed_peer_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
