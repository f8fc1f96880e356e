/* usher: process start. Reads the command line, starts the worker threads,
 * then runs the control loop (signals; health checks) on the main thread. */
#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/worker.h"
#include "upstream/backend.h"
#include "upstream/health.h"
#include "version.h"

/* The control loop's view of the process. */
static struct {
    struct worker *workers;
    uint32_t nworkers;
    uint32_t grace_ms;
    int shutting_down;
    struct loop_timer tick; /* while shutting down: have the workers finished? */
    uint64_t deadline;
} ctl;

static void on_tick(struct loop *loop, struct loop_timer *t)
{
    uint32_t running = 0;
    for (uint32_t i = 0; i < ctl.nworkers; i++) running += !atomic_load(&ctl.workers[i].exited);
    if (!running) {
        loop->stop = 1;
        return;
    }
    if (loop->now >= ctl.deadline) {
        log_warn("grace period of %u ms over: closing the connections still open", ctl.grace_ms);
        for (uint32_t i = 0; i < ctl.nworkers; i++) worker_signal(&ctl.workers[i], WORKER_STOP);
        loop->stop = 1;
        return;
    }
    loop_timer_set(loop, t, 50);
}

static void on_signal(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo != SIGINT && si.ssi_signo != SIGTERM) continue;
        const char *name = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
        if (ctl.shutting_down) {
            log_warn("received %s again: stopping now", name);
            for (uint32_t i = 0; i < ctl.nworkers; i++) worker_signal(&ctl.workers[i], WORKER_STOP);
            loop->stop = 1;
            return;
        }
        ctl.shutting_down = 1;
        log_info("received %s: no new connections; finishing the requests in flight "
                 "(at most %u ms; send it again to stop at once)",
                 name, ctl.grace_ms);
        for (uint32_t i = 0; i < ctl.nworkers; i++) worker_signal(&ctl.workers[i], WORKER_DRAIN);
        ctl.deadline = loop->now + ctl.grace_ms;
        ctl.tick.cb = on_tick;
        loop_timer_set(loop, &ctl.tick, 10);
    }
}

static uint32_t cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (uint32_t)n;
}

int main(int argc, char **argv)
{
    static struct config cfg;
    int check_only;
    int rc = config_from_args(&cfg, argc, argv, &check_only);
    if (rc) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    if (check_only) {
        printf("configuration ok\n");
        config_free(&cfg);
        return 0;
    }
    if (getenv("USHER_DEBUG")) log_min_level = LOG_DEBUG;
    signal(SIGPIPE, SIG_IGN);

    /* Block the signals we handle before any thread starts, so that only the
     * main thread's signalfd ever sees them. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);

    struct pool *pools = calloc(cfg.npools, sizeof(*pools));
    if (!pools) return 1;
    int err;
    for (uint32_t i = 0, gbase = 0; i < cfg.npools; gbase += pools[i].n, i++) {
        if ((err = pool_init(&pools[i], &cfg.pools[i], gbase)) < 0) {
            log_err("cannot set up pool '%s': %s", cfg.pools[i].name, strerror(-err));
            return 1;
        }
    }
    uint32_t nthreads = cfg.threads ? cfg.threads : cpu_count();
    struct worker *workers = calloc(nthreads, sizeof(*workers));
    if (!workers) return 1;
    for (uint32_t i = 0; i < nthreads; i++) {
        uint32_t bad = 0;
        err = worker_init(&workers[i], i, &cfg, pools, &bad);
        if (err < 0) {
            log_err("cannot listen on %s: %s", cfg.listeners[bad].bind, strerror(-err));
            return 1;
        }
    }
    for (uint32_t i = 0; i < nthreads; i++) {
        if ((err = worker_start(&workers[i])) < 0) {
            log_err("cannot start worker thread %u: %s", i, strerror(-err));
            return 1;
        }
    }

    for (uint32_t l = 0; l < cfg.nlisteners; l++)
        log_info("usher %s listening on %s with %u worker thread%s; requests go to pool '%s'%s",
                 USHER_VERSION, cfg.listeners[l].bind, nthreads, nthreads == 1 ? "" : "s",
                 cfg.pools[cfg.listeners[l].pool].name,
                 cfg.listeners[l].nroutes ? " unless a route says otherwise" : "");

    struct loop control;
    if ((err = loop_init(&control)) < 0) return 1;
    struct loop_io sig = {.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC), .cb = on_signal};
    if (sig.fd < 0 || loop_add(&control, &sig, EPOLLIN) < 0) {
        log_err("cannot watch signals: %s", strerror(errno));
        return 1;
    }
    struct health **health = calloc(cfg.npools, sizeof(*health));
    if (!health) return 1;
    for (uint32_t i = 0; i < cfg.npools; i++) {
        const struct pool_conf *pc = &cfg.pools[i];
        char list[1024];
        size_t off = 0;
        for (uint32_t b = 0; b < pc->nbackends && off < sizeof(list); b++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", b ? ", " : "",
                                    pc->backends[b].url);
        log_info("pool '%s': %s over %u backend%s: %s", pc->name, pc->balance, pc->nbackends,
                 pc->nbackends == 1 ? "" : "s", list);
        health[i] = health_start(&control, &pools[i]);
        if (pc->health_interval_ms)
            log_info("pool '%s': health checks: %s every %u ms (timeout %u ms, rise %u, fall %u); "
                     "%u failures in a row on live traffic take a backend out",
                     pc->name, pc->health_path[0] ? "HTTP GET" : "TCP connect",
                     pc->health_interval_ms, pc->health_timeout_ms, pc->health_rise,
                     pc->health_fall, pc->max_fails);
    }
    ctl.workers = workers;
    ctl.nworkers = nthreads;
    ctl.grace_ms = cfg.grace_ms;
    loop_run(&control);
    for (uint32_t i = 0; i < cfg.npools; i++) health_stop(health[i]);
    free(health);
    loop_timer_stop(&control, &ctl.tick);

    for (uint32_t i = 0; i < nthreads; i++) worker_signal(&workers[i], WORKER_STOP);
    for (uint32_t i = 0; i < nthreads; i++) worker_join(&workers[i]);
    for (uint32_t i = 0; i < nthreads; i++) worker_destroy(&workers[i]);
    free(workers);
    loop_close(&control, &sig);
    loop_destroy(&control);
    for (uint32_t i = 0; i < cfg.npools; i++) pool_destroy(&pools[i]);
    free(pools);
    config_free(&cfg);
    log_info("stopped");
    return 0;
}
