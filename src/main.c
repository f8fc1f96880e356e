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

#include "app/worker.h"
#include "config/config.h"
#include "core/accesslog.h"
#include "core/log.h"
#include "core/loop.h"
#include "upstream/backend.h"
#include "upstream/health.h"
#include "version.h"

/* The control loop's view of the process. */
static struct {
    struct worker *workers;
    uint32_t nworkers;
    uint32_t grace_ms;
    struct loop *loop;
    struct generation *gen; /* the latest configuration (the main thread's reference) */
    struct health **health; /* one per pool of gen */
    int shutting_down;
    struct loop_timer tick; /* while shutting down: have the workers finished? */
    uint64_t deadline;
} ctl;

static void reload(void);

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
        if (si.ssi_signo == SIGUSR1) {
            int err = accesslog_reopen();
            if (err < 0)
                log_warn("SIGUSR1: cannot reopen the access log: %s", strerror(-err));
            else
                log_info("SIGUSR1: access log reopened");
            continue;
        }
        if (si.ssi_signo == SIGHUP) {
            if (!ctl.shutting_down) reload();
            continue;
        }
        if (si.ssi_signo != SIGINT && si.ssi_signo != SIGTERM) continue;
        const char *name = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
        if (ctl.shutting_down) {
            log_warn("received %s again: stopping now", name);
            for (uint32_t i = 0; i < ctl.nworkers; i++) worker_signal(&ctl.workers[i], WORKER_STOP);
            loop->stop = 1;
            return;
        }
        ctl.shutting_down = 1;
        ctl.grace_ms = ctl.gen->cfg->grace_ms;
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

static void describe(const struct generation *g, uint32_t nthreads)
{
    const struct config *cfg = g->cfg;
    for (uint32_t l = 0; l < cfg->nlisteners; l++)
        log_info("usher %s listening on %s with %u worker thread%s; requests go to pool '%s'%s",
                 USHER_VERSION, cfg->listeners[l].bind, nthreads, nthreads == 1 ? "" : "s",
                 cfg->pools[cfg->listeners[l].pool].name,
                 cfg->listeners[l].nroutes ? " unless a route says otherwise" : "");
    for (uint32_t i = 0; i < cfg->npools; i++) {
        const struct pool_conf *pc = &cfg->pools[i];
        char list[1024];
        size_t off = 0;
        for (uint32_t b = 0; b < pc->nbackends && off < sizeof(list); b++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s%s", b ? ", " : "",
                                    pc->backends[b].url,
                                    pc->backends[b].drain ? " (draining: no new requests)" : "");
        log_info("pool '%s': %s over %u backend%s: %s", pc->name, pc->balance, pc->nbackends,
                 pc->nbackends == 1 ? "" : "s", list);
        if (pc->health_interval_ms)
            log_info("pool '%s': health checks: %s every %u ms (timeout %u ms, rise %u, fall %u); "
                     "%u failures in a row on live traffic take a backend out",
                     pc->name, pc->health_path[0] ? "HTTP GET" : "TCP connect",
                     pc->health_interval_ms, pc->health_timeout_ms, pc->health_rise,
                     pc->health_fall, pc->max_fails);
        if (pc->slow_start_ms)
            log_info("pool '%s': slow start: a backend that comes back UP gets its share of "
                     "requests ramped up over %u ms",
                     pc->name, pc->slow_start_ms);
    }
}

static void stop_health(void)
{
    if (!ctl.health) return;
    for (uint32_t i = 0; i < ctl.gen->cfg->npools; i++) health_stop(ctl.health[i]);
    free(ctl.health);
    ctl.health = NULL;
}

static int start_health(struct generation *g)
{
    ctl.health = calloc(g->cfg->npools ? g->cfg->npools : 1, sizeof(*ctl.health));
    if (!ctl.health) return -1;
    for (uint32_t i = 0; i < g->cfg->npools; i++)
        ctl.health[i] = health_start(ctl.loop, &g->pools[i]);
    return 0;
}

/* SIGHUP: read the file again; if it is valid, switch every worker to it,
 * else keep serving with what is in force and say why. */
static void reload(void)
{
    /* a copy: the generation that holds the name may be freed below */
    char file[sizeof(ctl.gen->cfg->file)];
    snprintf(file, sizeof(file), "%s", ctl.gen->cfg->file);
    if (!file[0]) {
        log_warn("received SIGHUP: nothing to reload (started without -c FILE)");
        return;
    }
    log_info("received SIGHUP: reloading %s", file);
    struct config next;
    config_defaults(&next);
    snprintf(next.file, sizeof(next.file), "%s", file);
    char *text = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&text, &len);
    int errors = errs ? config_load_file(&next, file, errs) : 1;
    if (errs) fclose(errs);
    if (errors) {
        for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
            log_warn("reload: %s", line);
        log_warn("reload of %s failed (%d error%s): still serving with the previous configuration",
                 file, errors, errors == 1 ? "" : "s");
        free(text);
        config_free(&next);
        return;
    }
    free(text);
    if (next.threads && next.threads != ctl.nworkers)
        log_warn("reload: threads stays %u until a restart", ctl.nworkers);
    next.threads = ctl.gen->cfg->threads;
    struct generation *g = gen_new(&next, ctl.gen);
    if (!g) {
        config_free(&next);
        log_warn("reload of %s failed: still serving with the previous configuration", file);
        return;
    }
    if (strcmp(g->cfg->access_log, ctl.gen->cfg->access_log) ||
        g->cfg->access_log_format != ctl.gen->cfg->access_log_format) {
        int aerr =
            accesslog_open(g->cfg->access_log, (enum accesslog_format)g->cfg->access_log_format);
        if (aerr < 0)
            log_warn("reload: cannot open the access log %s: %s (keeping the previous one)",
                     g->cfg->access_log, strerror(-aerr));
    }
    stop_health();
    struct generation *old = ctl.gen;
    ctl.gen = g;
    for (uint32_t i = 0; i < ctl.nworkers; i++) {
        gen_acquire(g);
        worker_reload(&ctl.workers[i], g);
    }
    start_health(g);
    gen_release(old);
    log_info("reloaded %s", file);
    describe(g, ctl.nworkers);
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

    if (cfg.access_log[0]) {
        int aerr = accesslog_open(cfg.access_log, (enum accesslog_format)cfg.access_log_format);
        if (aerr < 0) {
            log_err("cannot open the access log %s: %s", cfg.access_log, strerror(-aerr));
            return 1;
        }
    }
    struct generation *gen = gen_new(&cfg, NULL);
    if (!gen) return 1;
    int err;
    uint32_t nthreads = gen->cfg->threads ? gen->cfg->threads : cpu_count();
    struct worker *workers = calloc(nthreads, sizeof(*workers));
    if (!workers) return 1;
    for (uint32_t i = 0; i < nthreads; i++) {
        uint32_t bad = 0;
        gen_acquire(gen); /* the worker's reference */
        err = worker_init(&workers[i], i, gen, &bad);
        if (err < 0) {
            log_err("cannot listen on %s: %s", gen->cfg->listeners[bad].bind, strerror(-err));
            return 1;
        }
    }
    for (uint32_t i = 0; i < nthreads; i++) {
        if ((err = worker_start(&workers[i])) < 0) {
            log_err("cannot start worker thread %u: %s", i, strerror(-err));
            return 1;
        }
    }

    struct loop control;
    if ((err = loop_init(&control)) < 0) return 1;
    struct loop_io sig = {.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC), .cb = on_signal};
    if (sig.fd < 0 || loop_add(&control, &sig, EPOLLIN) < 0) {
        log_err("cannot watch signals: %s", strerror(errno));
        return 1;
    }
    ctl.workers = workers;
    ctl.nworkers = nthreads;
    ctl.loop = &control;
    ctl.gen = gen;
    describe(gen, nthreads);
    if (start_health(gen) < 0) return 1;
    loop_run(&control);
    stop_health();
    loop_timer_stop(&control, &ctl.tick);

    for (uint32_t i = 0; i < nthreads; i++) worker_signal(&workers[i], WORKER_STOP);
    for (uint32_t i = 0; i < nthreads; i++) worker_join(&workers[i]);
    for (uint32_t i = 0; i < nthreads; i++) worker_destroy(&workers[i]);
    free(workers);
    loop_close(&control, &sig);
    loop_destroy(&control);
    gen_release(ctl.gen);
    log_info("stopped");
    return 0;
}
