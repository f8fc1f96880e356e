/* Tests src/app/notify.c: the NOTIFY_SOCKET address (a path, an abstract
 * name, what is refused), the STATUS= line, and a real datagram sent to a
 * socket of the test's own (tests/integration/test_packaging.py checks what a
 * running usher sends). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "app/notify.h"
#include "core/loop.h"

static void path_address(void **state)
{
    struct sockaddr_un a;
    socklen_t len = 0;
    assert_int_equal(notify_address("/run/systemd/notify", &a, &len), 0);
    assert_int_equal(a.sun_family, AF_UNIX);
    assert_string_equal(a.sun_path, "/run/systemd/notify");
    /* with the terminating NUL, as sd_notify passes it */
    assert_int_equal(len,
                     offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
}

static void abstract_address(void **state)
{
    struct sockaddr_un a;
    socklen_t len = 0;
    assert_int_equal(notify_address("@usher/notify", &a, &len), 0);
    assert_int_equal(a.sun_path[0], 0);
    assert_memory_equal(a.sun_path + 1, "usher/notify", 12);
    /* the length ends the name: no NUL after it */
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + 12);
}

static void refused_addresses(void **state)
{
    struct sockaddr_un a;
    socklen_t len = 0;
    char longname[sizeof(a.sun_path) + 2];
    assert_int_equal(notify_address("", &a, &len), -EINVAL);
    assert_int_equal(notify_address(NULL, &a, &len), -EINVAL);
    assert_int_equal(notify_address("@", &a, &len), -EINVAL);
    assert_int_equal(notify_address("run/notify", &a, &len), -EINVAL);
    assert_int_equal(notify_address("vsock:2:1234", &a, &len), -EAFNOSUPPORT);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(notify_address(longname, &a, &len), -EINVAL);
    longname[0] = '@';
    assert_int_equal(notify_address(longname, &a, &len), -EINVAL);
    /* the longest that fits: 107 characters and the NUL, or @ and 107 */
    longname[sizeof(a.sun_path) - 1] = 0;
    longname[0] = '/';
    assert_int_equal(notify_address(longname, &a, &len), 0);
    longname[sizeof(a.sun_path)] = 0;
    longname[sizeof(a.sun_path) - 1] = 'x';
    longname[0] = '@';
    assert_int_equal(notify_address(longname, &a, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_un));
}

/* Two pools: 3 backends (one down, one draining) and 1 backend; two workers. */
static void status_line(void **state)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.npools = 2;
    struct backend b0[3], b1[1];
    memset(b0, 0, sizeof(b0));
    memset(b1, 0, sizeof(b1));
    atomic_store(&b0[1].state, BACKEND_DOWN);
    atomic_store(&b0[2].drain, 1);
    struct pool pools[2] = {{.backends = b0, .n = 3}, {.backends = b1, .n = 1}};
    struct generation g = {.cfg = &cfg, .pools = pools};
    struct worker *w = calloc(2, sizeof(*w));
    assert_non_null(w);
    w[0].px.nsessions = 100;
    w[1].px.nsessions = 20;
    char line[256];
    notify_status_line(line, sizeof(line), &g, w, 2, 0);
    assert_string_equal(line, "3 of 4 backends up (1 draining), 120 connections");
    atomic_store(&b0[2].drain, 0);
    w[0].px.nsessions = 1;
    w[1].px.nsessions = 0;
    notify_status_line(line, sizeof(line), &g, w, 2, 0);
    assert_string_equal(line, "3 of 4 backends up, 1 connection");
    cfg.npools = 1;
    pools[0].n = 1;
    notify_status_line(line, sizeof(line), &g, w, 2, 0);
    assert_string_equal(line, "1 of 1 backend up, 1 connection");
    notify_status_line(line, sizeof(line), &g, w, 2, 1);
    assert_string_equal(line, "stopping: 1 connection still open");
    free(w);
}

/* Without NOTIFY_SOCKET nothing is opened and nothing is sent. */
static void unset_is_a_no_op(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    struct loop loop;
    assert_int_equal(loop_init(&loop), 0);
    struct generation *gen = NULL;
    notify_start(&loop, &gen, NULL, 0);
    notify_reloading();
    notify_ready();
    notify_stopping();
    assert_int_equal(notify_send("READY=1"), 0);
    notify_stop(&loop);
    loop_destroy(&loop);
}

/* A real datagram socket in the abstract namespace: READY=1 and STATUS= in
 * one datagram at start, then RELOADING=1 with MONOTONIC_USEC. */
static void sends_datagrams(void **state)
{
    char name[64];
    snprintf(name, sizeof(name), "@usher-test-notify-%ld", (long)getpid());
    struct sockaddr_un a;
    socklen_t len;
    assert_int_equal(notify_address(name, &a, &len), 0);
    int rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(rx >= 0);
    assert_int_equal(bind(rx, (struct sockaddr *)&a, len), 0);
    setenv("NOTIFY_SOCKET", name, 1);

    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.npools = 1;
    struct backend b[2];
    memset(b, 0, sizeof(b));
    struct pool pool = {.backends = b, .n = 2};
    struct generation g = {.cfg = &cfg, .pools = &pool}, *gen = &g;
    struct loop loop;
    assert_int_equal(loop_init(&loop), 0);
    notify_start(&loop, &gen, NULL, 0);
    char msg[512];
    ssize_t n = recv(rx, msg, sizeof(msg) - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    msg[n] = 0;
    assert_string_equal(msg, "READY=1\nSTATUS=2 of 2 backends up, 0 connections");
    notify_reloading();
    n = recv(rx, msg, sizeof(msg) - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    msg[n] = 0;
    unsigned long long usec = 0;
    assert_int_equal(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long now = (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
    assert_true(usec <= now && usec + 1000000ULL > now);
    notify_stopping();
    n = recv(rx, msg, sizeof(msg) - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    msg[n] = 0;
    assert_string_equal(msg, "STOPPING=1\nSTATUS=stopping: 0 connections still open");
    notify_stopping(); /* once only */
    assert_int_equal(recv(rx, msg, sizeof(msg), MSG_DONTWAIT), -1);
    notify_stop(&loop);
    loop_destroy(&loop);
    unsetenv("NOTIFY_SOCKET");
    close(rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_address),      cmocka_unit_test(abstract_address),
        cmocka_unit_test(refused_addresses), cmocka_unit_test(status_line),
        cmocka_unit_test(unset_is_a_no_op),  cmocka_unit_test(sends_datagrams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
