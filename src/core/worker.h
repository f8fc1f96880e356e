/* worker: one thread, one event loop, one listening socket (SO_REUSEPORT).
 *
 * A worker owns everything it touches on the request path: its sessions, its
 * upstream connections and their idle pools, its buffer cache and a scratch
 * header table. The only shared state is the pool's backends (atomics). */
#ifndef USHER_CORE_WORKER_H
#define USHER_CORE_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "config/config.h"
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

struct worker {
    struct loop loop;
    pthread_t thread;
    uint32_t id;
    int listen_fd;
    struct loop_io listener;
    struct loop_io wake; /* eventfd: the main thread asks the loop to stop */
    struct loop_timer accept_resume;
    const struct config *cfg;
    struct pool *pool;
    struct buf_cache bufs;
    struct upconn_idle_list *idle; /* one list per backend, indexed like pool->backends */
    struct session *sessions;      /* open client connections */
    struct session *free_sessions;
    struct upconn *free_upconns;
    uint32_t nsessions;
    struct h1_head scratch; /* head parsing; never held across iterations */
};

/* Prepares w (loop, listening socket). Returns 0 or -errno. Main thread. */
int worker_init(struct worker *w, uint32_t id, const struct config *cfg, struct pool *pool);
/* Starts the thread. Returns 0 or -errno. */
int worker_start(struct worker *w);
/* Asks the worker to stop and waits for its thread; closes its connections. */
void worker_stop(struct worker *w);
void worker_destroy(struct worker *w);

#endif
