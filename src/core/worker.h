/* worker: one thread, one event loop, one listening socket per listener
 * (SO_REUSEPORT).
 *
 * A worker owns everything it touches on the request path: its sessions, its
 * upstream connections and their idle pools, its buffer cache and a scratch
 * header table. The only shared state is the pool's backends (atomics). */
#ifndef USHER_CORE_WORKER_H
#define USHER_CORE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "core/accesslog.h"
#include "core/buf.h"
#include "core/loop.h"
#include "http/h1.h"
#include "upstream/backend.h"

struct session;
struct upconn;

/* Idle keep-alive connections to one backend, most recently used first. */
struct upconn_idle_list {
    struct upconn *head;
    uint32_t count;
};

/* A configuration in force: the config and the pools built from it. Workers,
 * sessions and the main thread each hold a reference; the last one frees it.
 * A reload (SIGHUP) makes a new generation; sessions finish the exchange they
 * are in on their own generation and move to the new one between requests. */
struct generation {
    struct config *cfg;
    struct pool *pools; /* indexed like cfg->pools */
    _Atomic uint32_t refs;
};

static inline void gen_acquire(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}
/* Drops a reference; the last one frees the pools and the config. */
void gen_release(struct generation *g);

struct worker_listener {
    struct loop_io io;
    struct worker *w;
    uint32_t index; /* in config.listeners */
    int paused;     /* removed from epoll after EMFILE */
};

struct worker {
    struct loop loop;
    pthread_t thread;
    uint32_t id;
    struct worker_listener *listeners; /* one per config listener */
    uint32_t nlisteners;
    struct loop_io wake; /* eventfd: the main thread asks the loop to drain or stop */
    _Atomic int mode;    /* WORKER_RUN, WORKER_DRAIN or WORKER_STOP, set by the main thread */
    _Atomic int exited;  /* the thread has left its loop */
    int draining;        /* this worker's view of mode == WORKER_DRAIN */
    struct loop_timer accept_resume;
    uint64_t emfile_logged;                /* when the accept pause was last logged */
    struct generation *gen;                /* in force for new connections and requests */
    _Atomic(struct generation *) next;     /* set by the main thread on reload */
    struct worker_listener *old_listeners; /* the previous generation's, freed at the next */
    const struct config *cfg;              /* gen->cfg */
    struct pool *pools;                    /* gen->pools */
    uint32_t npools;
    uint32_t nbackends; /* backends of all pools (size of idle[]) */
    struct buf_cache bufs;
    struct upconn_idle_list *idle; /* one list per backend, indexed by backend.gindex */
    struct session *sessions;      /* open client connections */
    struct session *free_sessions;
    struct upconn *free_upconns;
    uint32_t nsessions;
    struct accesslog_buf alog;    /* access log lines not written yet */
    struct loop_timer alog_timer; /* writes them out every second */
    struct h1_head scratch;       /* head parsing; never held across iterations */
    llhttp_t parser;              /* the same: initialised for each head */
};

/* Prepares w (loop, listening sockets). Returns 0 or -errno; on a listening
 * error *failed is the config listener that failed. Main thread. */
int worker_init(struct worker *w, uint32_t id, struct generation *gen, uint32_t *failed);
/* Starts the thread. Returns 0 or -errno. */
int worker_start(struct worker *w);
enum worker_mode { WORKER_RUN, WORKER_DRAIN, WORKER_STOP };

/* Hands generation g (with a reference for the worker already taken) to w:
 * it switches between two events. Main thread. */
void worker_reload(struct worker *w, struct generation *g);

/* Asks the worker to drain (stop accepting, finish in-flight requests, close
 * idle connections, then leave its loop) or to stop at once. Main thread;
 * returns immediately. */
void worker_signal(struct worker *w, enum worker_mode mode);
/* Waits for the worker's thread to end. */
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

#endif
