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

#include "admin/admin.h"
#include "app/discovery.h"
#include "app/notify.h"
#include "app/privs.h"
#include "app/worker.h"
#include "config/config.h"
#include "core/accesslog.h"
#include "core/log.h"
#include "core/loop.h"
#include "tls/tls.h"
#include "upstream/backend.h"
#include "upstream/health.h"
#include "upstream/stats.h"
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
    struct loop_timer rotate;   /* a new session ticket key */
    struct loop_timer failures; /* TLS handshake failures, counted, said once a minute */
} ctl;

#define FAILURE_REPORT_MS 60000

/* Whether c has a TLS listener or an https:// backend (or a pool that
 * discovers https:// ones). */
static int any_tls(const struct config *c)
{
    for (uint32_t i = 0; i < c->nlisteners; i++)
        if (c->listeners[i].tls) return 1;
    for (uint32_t i = 0; i < c->npools; i++)
        if (config_pool_tls(&c->pools[i])) return 1;
    return 0;
}

static void on_rotate(struct loop *loop, struct loop_timer *t)
{
    tls_tickets_rotate();
    log_debug("TLS: new session ticket key (the previous one still decrypts)");
    loop_timer_set(loop, t, ctl.gen->cfg->tls_ticket_rotation_ms);
}

static void on_failures(struct loop *loop, struct loop_timer *t)
{
    const struct config *c = ctl.gen->cfg;
    for (uint32_t i = 0; ctl.gen->tls && i < c->nlisteners; i++) {
        char last[128];
        uint64_t n = ctl.gen->tls[i] ? tls_server_failures(ctl.gen->tls[i], last, sizeof(last)) : 0;
        if (n)
            log_warn("listener %s: %llu TLS handshake%s failed in the last minute (the last: %s; "
                     "USHER_DEBUG=1 logs each one)",
                     c->listeners[i].bind, (unsigned long long)n, n == 1 ? "" : "s", last);
    }
    loop_timer_set(loop, t, FAILURE_REPORT_MS);
}

/* Logs each line of text (errors or warnings gathered in a memstream) after prefix. */
static void log_lines(int level, const char *prefix, char *text)
{
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (level == LOG_WARN)
            log_warn("%s%s", prefix, line);
        else
            log_info("%s%s", prefix, line);
    }
}

/* The TLS side of next, for a reload: 0, or minus the number of errors (logged). */
static int reload_tls(const struct config *next, struct gen_tls *out, int log_loaded)
{
    char *etext = NULL, *wtext = NULL;
    size_t elen = 0, wlen = 0;
    FILE *errs = open_memstream(&etext, &elen), *warns = open_memstream(&wtext, &wlen);
    int rc = errs && warns ? gen_tls_new(next, errs, warns, log_loaded, out) : -1;
    if (errs) fclose(errs);
    if (warns) fclose(warns);
    if (rc < 0) { /* -(the number of errors) */
        rc = 0;
        for (const char *p = etext; p && *p; p++) rc -= *p == '\n';
        if (!rc) rc = -1;
    }
    log_lines(LOG_WARN, "reload: ", etext);
    log_lines(LOG_WARN, "reload: warning: ", wtext);
    if (rc < 0 && privs_dropped()) log_warn("reload: the certificates are read%s", privs_hint());
    free(etext);
    free(wtext);
    return rc;
}

static int reload(char *msg, size_t cap);

/* A reload after the drop to user: keeps the user and refuses listeners the
 * user cannot bind. 0, or -1 (logged: the reload fails). */
static int reload_privs(struct config *next)
{
    const struct config *cur = ctl.gen->cfg;
    if (strcmp(next->user, cur->user) || strcmp(next->group, cur->group))
        log_warn("reload: user and group stay '%s'%s%s until a restart",
                 cur->user[0] ? cur->user : "as started", cur->group[0] ? ":" : "", cur->group);
    snprintf(next->user, sizeof(next->user), "%s", cur->user);
    snprintf(next->group, sizeof(next->group), "%s", cur->group);
    int bad = 0;
    for (uint32_t i = 0; i < next->nlisteners; i++) {
        const struct listener_conf *l = &next->listeners[i];
        int open_now = 0;
        for (uint32_t k = 0; k < cur->nlisteners && !open_now; k++)
            open_now = cur->listeners[k].addr.len == l->addr.len &&
                       !memcmp(&cur->listeners[k].addr, &l->addr, l->addr.len);
        char why[256];
        if (!open_now && privs_check_listener(l, why, sizeof(why)) < 0) {
            log_warn("reload: %s:%u: %s", next->file, l->line, why);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

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
                log_warn("SIGUSR1: cannot reopen the access log: %s%s", strerror(-err),
                         err == -EACCES ? privs_hint() : "");
            else
                log_info("SIGUSR1: access log reopened");
            continue;
        }
        if (si.ssi_signo == SIGHUP) {
            if (ctl.shutting_down) continue;
            notify_reloading();
            char msg[300];
            int rc = reload(msg, sizeof(msg));
            if (rc != 1) admin_reloaded(rc == 0, msg);
            notify_ready(); /* after a failed reload too: the previous configuration serves */
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
        notify_stopping();
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
        char list[1024] = "";
        size_t off = 0;
        for (uint32_t b = 0; b < pc->nbackends && off < sizeof(list); b++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s%s", b ? ", " : "",
                                    pc->backends[b].url,
                                    pc->backends[b].drain ? " (draining: no new requests)" : "");
        log_info("pool '%s': %s over %u backend%s: %s%s", pc->name, pc->balance, pc->nbackends,
                 pc->nbackends == 1 ? "" : "s", list,
                 pc->discover.dns[0]
                     ? (pc->nbackends ? " (with those DNS gives)" : "none yet (DNS gives them)")
                     : "");
        /* those DNS will give count as one of their scheme */
        uint32_t https = 0, plain = 0;
        for (uint32_t b = 0; b < pc->nbackends; b++) {
            if (pc->backends[b].dns) continue;
            https += pc->backends[b].tls;
            plain += !pc->backends[b].tls;
        }
        if (pc->discover.dns[0]) {
            https += pc->discover.scheme == DISC_HTTPS;
            plain += pc->discover.scheme != DISC_HTTPS;
        }
        if (pc->health_interval_ms)
            log_info("pool '%s': health checks: %s every %u ms (timeout %u ms, rise %u, fall %u); "
                     "%u failures in a row on live traffic take a backend out",
                     pc->name,
                     pc->health_path[0] ? (https ? "HTTP GET (over TLS for https://)" : "HTTP GET")
                     : https && !plain  ? "TLS handshake"
                     : https            ? "TCP connect (a TLS handshake for https://)"
                                        : "TCP connect",
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

/* Switches every worker to a generation built from next (taken over) and
 * tls (given to it): 0, or -1 with msg (the previous one still serves). */
static int switch_to(struct config *next, struct gen_tls *tls, const char *what, char *msg,
                     size_t cap)
{
    if (next->threads && next->threads != ctl.nworkers)
        log_warn("reload: threads stays %u until a restart", ctl.nworkers);
    next->threads = ctl.gen->cfg->threads;
    if (strcmp(next->admin_bind, ctl.gen->cfg->admin_bind))
        log_warn("reload: the admin listener stays on %s until a restart",
                 ctl.gen->cfg->admin_bind[0] ? ctl.gen->cfg->admin_bind : "(off)");
    struct generation *g = gen_new(next, ctl.gen);
    if (!g) {
        config_free(next);
        gen_tls_free(tls);
        snprintf(msg, cap, "%s failed: still serving with the previous configuration", what);
        log_warn("%s", msg);
        return -1;
    }
    gen_tls_give(g, tls);
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
    log_configure((enum log_level)g->cfg->log_level, (enum log_format)g->cfg->log_format);
    if (getenv("USHER_DEBUG")) log_configure(LOG_DEBUG, (enum log_format)g->cfg->log_format);
    loop_timer_set(ctl.loop, &ctl.rotate, g->cfg->tls_ticket_rotation_ms);
    snprintf(msg, cap, "%s", what);
    return 0;
}

/* A configuration built from the one in force; log_tls: say again what the
 * TLS contexts were made with. */
static int apply_change(struct config *next, int log_tls, char *msg, size_t cap)
{
    struct gen_tls tls = {0};
    if (any_tls(next) && (tls_init() < 0 || reload_tls(next, &tls, log_tls) < 0)) {
        config_free(next);
        snprintf(msg, cap, "the TLS side could not be set up (see the log)");
        return -1;
    }
    return switch_to(next, &tls, "runtime change applied", msg, cap);
}

/* The admin API's changes. */
static int admin_apply(struct config *next, char *msg, size_t cap)
{
    return apply_change(next, 1, msg, cap);
}

/* Discovery (app/discovery.c): the configuration in force, and a new set
 * applied the API's way; not while shutting down. */
static const struct config *current_config(void)
{
    return ctl.gen->cfg;
}

static int discovery_apply(struct config *next, char *msg, size_t cap)
{
    if (ctl.shutting_down) {
        config_free(next);
        snprintf(msg, cap, "shutting down");
        return -1;
    }
    /* the TLS settings are the file's, said at start: not again at each answer */
    return apply_change(next, 0, msg, cap);
}

/* SIGHUP or the API: read the file again; if it is valid, switch every
 * worker to it, else keep serving with what is in force and say why.
 * Returns 0 (reloaded), -1 (failed) or 1 (nothing to reload); msg says it. */
static int reload(char *msg, size_t cap)
{
    /* a copy: the generation that holds the name may be freed below */
    char file[sizeof(ctl.gen->cfg->file)];
    snprintf(file, sizeof(file), "%s", ctl.gen->cfg->file);
    struct config next;
    struct gen_tls tls = {0};
    if (!file[0]) {
        /* quick mode: the command line stays what it was; certificates are files */
        if (!any_tls(ctl.gen->cfg)) {
            snprintf(msg, cap, "nothing to reload (started without -c FILE)");
            log_warn("received SIGHUP: %s", msg);
            return 1;
        }
        log_info("received SIGHUP: reading the certificates again");
        if (config_copy(&next, ctl.gen->cfg) < 0 || reload_tls(&next, &tls, 1) < 0) {
            snprintf(msg, cap, "reload failed: still serving with the previous certificates");
            log_warn("%s", msg);
            config_free(&next);
            return -1;
        }
        goto build;
    }
    log_info("received SIGHUP: reloading %s", file);
    config_defaults(&next);
    snprintf(next.file, sizeof(next.file), "%s", file);
    char *text = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&text, &len);
    int errors = errs ? config_load_file(&next, file, errs) : 1;
    if (errs) fclose(errs);
    config_apply_overrides(&next); /* --log-level, --user...: the command line still wins */
    if (!errors && reload_privs(&next) < 0) {
        errors = 1;
        if (!text || !text[0]) {
            free(text);
            text = strdup("a listener the user cannot open (see the log)");
        }
    }
    if (errors) {
        /* the first error is the answer's; every one is logged */
        size_t first = text ? strcspn(text, "\n") : 0;
        snprintf(msg, cap, "reload of %s failed (%d error%s): %.*s", file, errors,
                 errors == 1 ? "" : "s", (int)first, text ? text : "");
        for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
            log_warn("reload: %s%s", line, strstr(line, "Permission denied") ? privs_hint() : "");
        log_warn("reload of %s failed (%d error%s): still serving with the previous configuration",
                 file, errors, errors == 1 ? "" : "s");
        free(text);
        config_free(&next);
        return -1;
    }
    free(text);
    discovery_fill(&next);   /* the backends DNS gives stay */
    admin_overlay(&next, 1); /* the API's changes stay */
    int terrs = 0;
    if (any_tls(&next) && (tls_init() < 0 || (terrs = reload_tls(&next, &tls, 1)) < 0)) {
        terrs = -terrs;
        snprintf(msg, cap, "reload of %s failed (%d TLS error%s, see the log)", file, terrs,
                 terrs == 1 ? "" : "s");
        log_warn("reload of %s failed (%d error%s): still serving with the previous configuration",
                 file, terrs, terrs == 1 ? "" : "s");
        config_free(&next);
        return -1;
    }
build:;
    char what[300];
    snprintf(what, sizeof(what), "reloaded %s", file[0] ? file : "the certificates");
    if (switch_to(&next, &tls, what, msg, cap) < 0) return -1;
    discovery_sync(ctl.gen->cfg);
    log_info("%s", what);
    describe(ctl.gen, ctl.nworkers);
    return 0;
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
    log_configure(getenv("USHER_DEBUG") ? LOG_DEBUG : (enum log_level)cfg.log_level,
                  (enum log_format)cfg.log_format);
    struct gen_tls tls = {0};
    if (any_tls(&cfg)) {
        /* certificates are checked by -t as well: a file that parses is not enough */
        char *wtext = NULL;
        size_t wlen = 0;
        char *etext = NULL;
        size_t elen = 0;
        FILE *warns = open_memstream(&wtext, &wlen), *errs = open_memstream(&etext, &elen);
        int bad = tls_init() < 0 || !warns || !errs ||
                  gen_tls_new(&cfg, errs, warns, !check_only, &tls) < 0;
        if (warns) fclose(warns);
        if (errs) fclose(errs);
        for (char *line = etext ? strtok(etext, "\n") : NULL; line; line = strtok(NULL, "\n")) {
            if (check_only)
                fprintf(stderr, "usher: %s\n", line);
            else
                log_err("%s", line); /* the log's format: --log-format json holds at start */
        }
        free(etext);
        if (check_only) {
            for (char *line = wtext ? strtok(wtext, "\n") : NULL; line; line = strtok(NULL, "\n"))
                fprintf(stderr, "usher: warning: %s\n", line);
        } else {
            log_lines(LOG_WARN, "warning: ", wtext);
        }
        free(wtext);
        if (bad) {
            if (check_only)
                fprintf(stderr,
                        "usher: the TLS certificates are not usable; configuration not ok\n");
            else
                log_err("the TLS certificates are not usable; not started");
            config_free(&cfg);
            return 1;
        }
    }
    if (check_only) {
        printf("configuration ok\n");
        gen_tls_free(&tls);
        config_free(&cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    privs_check_start(&cfg);

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
        privs_give_files(&cfg);
    }
    uint32_t nthreads = cfg.threads ? cfg.threads : cpu_count();
    if (stats_init(nthreads) < 0) return 1; /* before the first generation: it takes slots */
    struct generation *gen = gen_new(&cfg, NULL);
    if (!gen) return 1;
    gen_tls_give(gen, &tls);
    int err;
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
    /* Everything that needs root is open above (listeners, the access log,
     * certificates and keys): from here on usher runs as user:, and the
     * worker threads start with its ids. */
    if (privs_drop(gen->cfg) < 0) return 1;
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
    if (gen->cfg->admin_bind[0]) {
        struct admin_host host = {
            .loop = &control, .gen = &ctl.gen, .reload = reload, .apply = admin_apply};
        if (admin_start(&host, gen->cfg) < 0) return 1;
    }
    struct discovery_host dhost = {
        .loop = &control, .current = current_config, .apply = discovery_apply};
    if (discovery_start(&dhost, gen->cfg) < 0) return 1;
    ctl.rotate.cb = on_rotate;
    ctl.failures.cb = on_failures;
    loop_timer_set(&control, &ctl.rotate, gen->cfg->tls_ticket_rotation_ms);
    loop_timer_set(&control, &ctl.failures, FAILURE_REPORT_MS);
    notify_start(&control, &ctl.gen, workers, nthreads); /* READY=1: listeners open, workers run */
    loop_run(&control);
    notify_stop(&control);
    discovery_stop();
    admin_stop();
    stop_health();
    loop_run_deferred(&control); /* the loop has stopped: what they deferred is freed now */
    loop_timer_stop(&control, &ctl.tick);
    loop_timer_stop(&control, &ctl.rotate);
    loop_timer_stop(&control, &ctl.failures);

    for (uint32_t i = 0; i < nthreads; i++) worker_signal(&workers[i], WORKER_STOP);
    for (uint32_t i = 0; i < nthreads; i++) worker_join(&workers[i]);
    for (uint32_t i = 0; i < nthreads; i++) worker_destroy(&workers[i]);
    free(workers);
    loop_close(&control, &sig);
    loop_destroy(&control);
    gen_release(ctl.gen);
    stats_free();
    log_info("stopped");
    return 0;
}
