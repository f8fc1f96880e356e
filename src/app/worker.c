/* worker: a thread with its own loop and SO_REUSEPORT listener. See worker.h. */
#include "app/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sock.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100 /* after EMFILE: let connections finish before accepting again */

/* Accepts up to a batch of connections; 1 when the batch was used up
 * (more may be waiting), 0 when the queue is empty or accept failed. */
static int accept_batch(struct loop *loop, struct loop_io *io)
{
    struct worker_listener *wl = (struct worker_listener *)io;
    struct worker *w = wl->w;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sock_addr peer;
        socklen_t len = sizeof(peer.in6);
        int fd = accept4(io->fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (w->px.nsessions >= w->px.gen->cfg->max_conns) {
                close(fd);
                continue;
            }
            proxy_accept(&w->px, fd, &peer.sa, wl->index);
            continue;
        }
        if (errno == EAGAIN) return 0;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The pending connection stays in the backlog; stop listening for a
             * moment instead of spinning on an error we cannot fix right now. */
            if (loop->now >= w->emfile_logged + 5000) { /* once per 5 s, not per pause */
                log_warn("worker %u: cannot accept (%s): pausing new connections for %d ms", w->id,
                         strerror(errno), ACCEPT_PAUSE_MS);
                w->emfile_logged = loop->now;
            }
            for (uint32_t k = 0; k < w->nlisteners; k++) {
                struct worker_listener *x = &w->listeners[k];
                if (x->io.fd >= 0 && !x->paused) {
                    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, x->io.fd, NULL);
                    x->paused = 1;
                }
            }
            loop_timer_set(loop, &w->accept_resume, ACCEPT_PAUSE_MS);
            return 0;
        }
        log_warn("worker %u: accept failed: %s", w->id, strerror(errno));
        return 0;
    }
    return 1;
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
    (void)events;
    accept_batch(loop, io);
}

/* Before a listener closes: the connections the kernel already completed
 * wait in its queue, and closing it would reset them with their request
 * unread. They are taken first (at most 64 batches). */
static void accept_pending(struct worker *w, struct worker_listener *x)
{
    for (int b = 0; b < 64 && x->io.fd >= 0 && !x->paused && accept_batch(&w->loop, &x->io); b++)
        ;
}

static void on_accept_resume(struct loop *loop, struct loop_timer *t)
{
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, accept_resume));
    for (uint32_t k = 0; k < w->nlisteners; k++) {
        struct worker_listener *x = &w->listeners[k];
        if (x->io.fd < 0 || !x->paused) continue;
        if (loop_add(loop, &x->io, EPOLLIN) < 0)
            loop_timer_set(loop, t, ACCEPT_PAUSE_MS);
        else
            x->paused = 0;
    }
}

static void worker_switch(struct worker *w, struct generation *g);

static void on_alog_timer(struct loop *loop, struct loop_timer *t)
{
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, alog_timer));
    if (w->px.alog.len) accesslog_flush(&w->px.alog);
    loop_timer_set(loop, t, 1000);
}

static void on_wake(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct worker *w = (struct worker *)((char *)io - offsetof(struct worker, wake));
    uint64_t v;
    ssize_t n = read(io->fd, &v, sizeof(v));
    (void)n;
    struct generation *g = atomic_exchange(&w->next, NULL);
    if (g) worker_switch(w, g);
    int mode = atomic_load(&w->mode);
    if (mode == WORKER_STOP) {
        loop->stop = 1;
        return;
    }
    if (mode == WORKER_DRAIN && !w->px.draining) {
        /* Stop accepting; the kernel keeps queued connections for the other
         * listeners of the port (a new usher), or refuses them once all are closed. */
        w->px.draining = 1;
        loop_timer_stop(loop, &w->accept_resume);
        /* connections already in the queue are answered, with Connection: close */
        for (uint32_t k = 0; k < w->nlisteners; k++) {
            accept_pending(w, &w->listeners[k]);
            loop_close(loop, &w->listeners[k].io);
        }
        proxy_close_idle(&w->px);
    }
}

static int same_addr(const struct sock_addr *a, const struct sock_addr *b)
{
    return a->len == b->len && !memcmp(&a->sa, &b->sa, a->len);
}

/* Moves w to generation g: listening sockets that stay are kept (nothing is
 * refused), new ones are opened, removed ones closed; pooled connections to
 * the old backends are closed. Sessions move between requests (h1_client.c). */
static void worker_switch(struct worker *w, struct generation *g)
{
    const struct config *nc = g->cfg, *oc = w->px.gen->cfg;
    struct worker_listener *nl = calloc(nc->nlisteners ? nc->nlisteners : 1, sizeof(*nl));
    if (!nl || upconn_pool_reset(&w->px.ups, g, nc->upstream_idle_ms) < 0) {
        log_err("worker %u: out of memory: keeping the previous configuration", w->id);
        free(nl);
        gen_release(g);
        return;
    }
    for (uint32_t i = 0; i < nc->nlisteners; i++) {
        struct worker_listener *x = &nl[i];
        x->w = w;
        x->index = i;
        x->io.cb = on_accept;
        x->io.fd = -1;
        for (uint32_t k = 0; k < w->nlisteners; k++) {
            struct worker_listener *o = &w->listeners[k];
            if (o->io.fd < 0 || !same_addr(&oc->listeners[o->index].addr, &nc->listeners[i].addr))
                continue;
            x->io.fd = o->io.fd; /* the same socket: its queue of connections stays */
            x->paused = o->paused;
            o->io.fd = -1; /* events already fetched for the old entry are dropped */
            if (!x->paused) loop_mod(&w->loop, &x->io, EPOLLIN);
            break;
        }
        if (x->io.fd >= 0 || w->px.draining) continue;
        x->io.fd = sock_listen(&nc->listeners[i].addr, 4096);
        if (x->io.fd < 0) {
            log_err("worker %u: cannot listen on %s: %s", w->id, nc->listeners[i].bind,
                    strerror(-x->io.fd));
            x->io.fd = -1;
        } else if (loop_add(&w->loop, &x->io, EPOLLIN) < 0) {
            loop_close(&w->loop, &x->io);
        }
    }
    for (uint32_t k = 0; k < w->nlisteners; k++) { /* listeners the new config does not have */
        if (w->listeners[k].io.fd < 0) continue;
        accept_pending(w, &w->listeners[k]); /* served in the old generation, then settled */
        loop_close(&w->loop, &w->listeners[k].io);
    }
    free(w->old_listeners);
    w->old_listeners = w->listeners;
    w->listeners = nl;
    w->nlisteners = nc->nlisteners;

    struct generation *old = w->px.gen;
    w->px.gen = g;
    gen_release(old);
    proxy_generation_switched(&w->px); /* idle connections whose listener is gone settle */
}

void worker_reload(struct worker *w, struct generation *g)
{
    struct generation *prev = atomic_exchange(&w->next, g);
    if (prev) gen_release(prev); /* two reloads before the worker woke: skip the first */
    uint64_t one = 1;
    ssize_t n = write(w->wake.fd, &one, sizeof(one));
    (void)n;
}

int worker_init(struct worker *w, uint32_t id, struct generation *gen, uint32_t *failed)
{
    memset(w, 0, sizeof(*w));
    const struct config *cfg = gen->cfg;
    w->id = id;
    w->px.gen = gen;
    w->px.loop = &w->loop;
    w->px.bufs.max = 4096;
    w->px.stats = stats_worker(id);
    w->wake.fd = -1;
    int err = loop_init(&w->loop);
    if (err < 0) return err;
    if (upconn_pool_init(&w->px.ups, &w->loop, gen->nbackends, cfg->upstream_idle_ms) < 0)
        return -ENOMEM;
    w->px.ups.stats = w->px.stats;
    w->listeners = calloc(cfg->nlisteners, sizeof(*w->listeners));
    if (!w->listeners) return -ENOMEM;
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        struct worker_listener *wl = &w->listeners[i];
        wl->w = w;
        wl->index = i;
        wl->io.cb = on_accept;
        wl->io.fd = sock_listen(&cfg->listeners[i].addr, 4096);
        w->nlisteners = i + 1;
        if (wl->io.fd < 0) {
            *failed = i;
            return wl->io.fd;
        }
        /* level-triggered: a batch limit on accept never loses a connection */
        if ((err = loop_add(&w->loop, &wl->io, EPOLLIN)) < 0) return err;
    }
    w->accept_resume.cb = on_accept_resume;
    w->px.alog.data = malloc(ACCESSLOG_BUF);
    if (!w->px.alog.data) return -ENOMEM;
    w->alog_timer.cb = on_alog_timer;
    loop_timer_set(&w->loop, &w->alog_timer, 1000);
    w->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake.fd < 0) return -errno;
    w->wake.cb = on_wake;
    return loop_add(&w->loop, &w->wake, EPOLLIN);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!w->loop.stop) {
        loop_run_once(&w->loop, 1000);
        if (w->px.draining && w->px.nsessions == 0) break; /* every in-flight request is done */
    }
    atomic_store(&w->exited, 1);
    return NULL;
}

int worker_start(struct worker *w)
{
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    return err ? -err : 0;
}

void worker_signal(struct worker *w, enum worker_mode mode)
{
    atomic_store(&w->mode, mode);
    uint64_t one = 1;
    ssize_t n = write(w->wake.fd, &one, sizeof(one));
    (void)n;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
    for (uint32_t k = 0; k < w->nlisteners; k++)
        if (w->listeners[k].io.fd >= 0) loop_close(&w->loop, &w->listeners[k].io);
    free(w->listeners);
    free(w->old_listeners);
    w->listeners = w->old_listeners = NULL;
    struct generation *g = atomic_exchange(&w->next, NULL);
    if (g) gen_release(g);
    if (w->wake.fd >= 0) loop_close(&w->loop, &w->wake);
    if (w->px.ups.idle) {
        proxy_close_all(&w->px);
        upconn_close_all_idle(&w->px.ups);
    }
    if (w->px.gen) gen_release(w->px.gen);
    w->px.gen = NULL;
    loop_timer_stop(&w->loop, &w->accept_resume);
    loop_timer_stop(&w->loop, &w->alog_timer);
    loop_run_once(&w->loop, 0); /* runs the deferred frees */
    if (w->px.alog.data) accesslog_flush(&w->px.alog);
    free(w->px.alog.data);
    w->px.alog.data = NULL;
    proxy_free_cache(&w->px);
    upconn_pool_destroy(&w->px.ups);
    buf_cache_drain(&w->px.bufs);
    loop_destroy(&w->loop);
}
