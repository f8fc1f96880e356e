/* fuzz_worker: one usher worker in front of a backend that is the target
 * itself, for the targets that drive a whole connection (fuzz_session,
 * fuzz_h2).
 *
 * fz_worker_init() builds the configuration as the command line does (quick
 * mode: the most stable way in) with one backend, a listening socket of this
 * process on 127.0.0.1, then one generation and one worker that is never
 * started as a thread: the target drives its loop with loop_run_once. The
 * worker's loop reads a clock of the target (the real one plus clock_ahead,
 * how far the script moved it on). pump() runs the loop until nothing moves,
 * accepting the backend connections usher opens and collecting every byte
 * usher wrote: to the client into `down`, to each backend connection into
 * up[i]. Include it once, after fuzz_common.h. */
#ifndef USHER_FUZZ_WORKER_H
#define USHER_FUZZ_WORKER_H

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/worker.h"
#include "config/config.h"
#include "core/loop.h"
#include "upstream/generation.h"

#define MAX_UP 8
#define CAP (1 << 20)

static struct config cfg;
static struct worker w;
static int backend_lfd = -1;
static uint64_t clock_ahead; /* ms the script moved the clock on */

struct stream {
    char *p;
    size_t len;
};

static struct stream down;       /* usher -> client */
static struct stream up[MAX_UP]; /* usher -> backend, per connection */
static int up_fd[MAX_UP];
static int nup;

static uint64_t fuzz_clock(void *arg)
{
    return loop_clock_ms() + clock_ahead;
}

/* Appends to a collected stream, up to CAP bytes (the rest is dropped). */
static void stream_add(struct stream *s, const void *p, size_t n)
{
    if (!s->p) s->p = malloc(CAP);
    if (s->len + n > CAP) n = CAP - s->len;
    memcpy(s->p + s->len, p, n);
    s->len += n;
}

static void fz_worker_init(const char *target)
{
    signal(SIGPIPE, SIG_IGN); /* as usher's main() does */
    backend_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (backend_lfd < 0 || bind(backend_lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(backend_lfd, 512) < 0 || getsockname(backend_lfd, (struct sockaddr *)&a, &al) < 0) {
        fprintf(stderr, "%s: backend socket: %s\n", target, strerror(errno));
        exit(1);
    }
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
    char *args[] = {"usher", "--listen", "127.0.0.1:9", "--backend", url, "--threads", "1", NULL};
    int check_only = 0;
    if (config_from_args(&cfg, 7, args, &check_only) != 0) {
        fprintf(stderr, "%s: configuration refused\n", target);
        exit(1);
    }
    /* any free port: nobody connects to it, clients come through proxy_accept */
    for (uint32_t i = 0; i < cfg.nlisteners; i++) cfg.listeners[i].addr.in.sin_port = 0;
    for (uint32_t i = 0; i < cfg.npools; i++) {
        cfg.pools[i].max_fails = 0; /* passive health off: the backend never goes down */
        cfg.pools[i].retries = 0;
    }
    /* one generation, with a reference for the worker and one kept here: it
     * is never freed */
    struct generation *gen = gen_new(&cfg, NULL);
    int e = gen ? 0 : -ENOMEM;
    uint32_t bad = 0;
    if (gen) gen_acquire(gen);
    if (!e) e = worker_init(&w, 0, gen, &bad);
    if (e < 0) {
        fprintf(stderr, "%s: setup failed: %s\n", target, strerror(-e));
        exit(1);
    }
    loop_set_clock(&w.loop, fuzz_clock, NULL);
}

static void drain(int fd, struct stream *s)
{
    char buf[65536];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) return;
        stream_add(s, buf, (size_t)n);
    }
}

/* Runs the loop until nothing happens, accepting backend connections and
 * collecting what usher wrote (cfd: the client's end, or -1). */
static void pump(int cfd)
{
    for (int round = 0; round < 16; round++) {
        size_t before = down.len;
        size_t ub = 0;
        for (int i = 0; i < nup; i++) ub += up[i].len;
        int n0 = nup;
        loop_run_once(&w.loop, 0);
        for (;;) {
            int fd = accept4(backend_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            if (nup == MAX_UP) {
                close(fd);
                continue;
            }
            up_fd[nup++] = fd;
        }
        if (cfd >= 0) drain(cfd, &down);
        size_t ua = 0;
        for (int i = 0; i < nup; i++) {
            if (up_fd[i] >= 0) drain(up_fd[i], &up[i]);
            ua += up[i].len;
        }
        if (round > 1 && down.len == before && ua == ub && nup == n0) return;
    }
}

#endif
