/* Tests src/proxy/tunnel.c: the byte relay between two connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxy/tunnel.h"

static void on_io(struct loop *l, struct loop_io *io, uint32_t events) {}

struct fixture {
    struct loop loop;
    struct buf_cache bufs;
    struct conn a, b;
    int pa, pb; /* the client's and the backend's own ends */
    struct buf *ab, *ba, *head;
    struct tunnel t;
    struct tunnel_io io;
};

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    int s1[2], s2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2), 0);
    assert_int_equal(loop_init(&f->loop), 0);
    f->bufs.max = 8;
    assert_int_equal(conn_open(&f->a, &f->loop, s1[0], &conn_plain, on_io, 0), 0);
    assert_int_equal(conn_open(&f->b, &f->loop, s2[0], &conn_plain, on_io, 0), 0);
    f->pa = s1[1];
    f->pb = s2[1];
    f->io = (struct tunnel_io){&f->a, &f->b, &f->ab, &f->ba, &f->head, &f->bufs};
}

static void teardown(struct fixture *f)
{
    buf_put(&f->bufs, f->ab);
    buf_put(&f->bufs, f->ba);
    buf_put(&f->bufs, f->head);
    conn_close(&f->a);
    conn_close(&f->b);
    if (f->pa >= 0) close(f->pa);
    if (f->pb >= 0) close(f->pb);
    buf_cache_drain(&f->bufs);
    loop_destroy(&f->loop);
}

/* Steps until nothing changes (at most 16 times); the sum of *to_a. */
static uint64_t run(struct fixture *f, int *read_any)
{
    uint64_t to_a = 0;
    for (int i = 0; i < 16; i++) {
        f->a.readable = f->b.readable = 1; /* as an event would say */
        if (tunnel_step(&f->t, &f->io, read_any, &to_a) <= 0) break;
    }
    return to_a;
}

static void bytes_go_both_ways_after_the_head(void **state)
{
    struct fixture f;
    setup(&f);
    f.head = buf_get(&f.bufs);
    memcpy(f.head->data, "HTTP/1.1 101 x\r\n\r\n", 18);
    f.head->end = 18;
    assert_int_equal(write(f.pa, "ping", 4), 4);
    assert_int_equal(write(f.pb, "pong", 4), 4);
    int read_any = 0;
    assert_int_equal(run(&f, &read_any), 4); /* the head is not counted */
    assert_int_equal(read_any, 1);
    char buf[64];
    assert_int_equal(read(f.pb, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(read(f.pa, buf, sizeof(buf)), 22);
    assert_memory_equal(buf, "HTTP/1.1 101 x\r\n\r\npong", 22);
    assert_null(f.head); /* given back once written */
    assert_int_equal(tunnel_done(&f.t, &f.io), 0);
    teardown(&f);
}

static void it_ends_when_one_side_ended_and_its_bytes_are_through(void **state)
{
    struct fixture f;
    setup(&f);
    assert_int_equal(write(f.pb, "bye", 3), 3);
    close(f.pb);
    f.pb = -1;
    int read_any = 0;
    run(&f, &read_any);
    assert_int_equal(f.t.b_eof, 1);
    assert_int_equal(tunnel_done(&f.t, &f.io), 1);
    char buf[8];
    assert_int_equal(read(f.pa, buf, sizeof(buf)), 3); /* what it sent came through first */
    teardown(&f);
}

static void a_gone_client_stops_the_relay(void **state)
{
    struct fixture f;
    setup(&f);
    close(f.pa);
    f.pa = -1;
    assert_int_equal(write(f.pb, "data", 4), 4);
    int read_any = 0;
    uint64_t to_a = 0;
    int r = 0;
    for (int i = 0; i < 4 && r >= 0; i++) {
        f.a.readable = f.b.readable = f.a.writable = 1;
        r = tunnel_step(&f.t, &f.io, &read_any, &to_a);
    }
    /* reading the client's end first sees its EOF; writing to it then fails */
    assert_int_equal(f.t.a_eof, 1);
    assert_int_equal(r, -1);
    teardown(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_go_both_ways_after_the_head),
        cmocka_unit_test(it_ends_when_one_side_ended_and_its_bytes_are_through),
        cmocka_unit_test(a_gone_client_stops_the_relay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
