/* worker: one thread, one event loop, one listening socket per listener
 * (SO_REUSEPORT).
 *
 * A worker owns everything it touches on the request path (its struct
 * proxy_worker: sessions, backend connections and their idle pools, buffer
 * cache, scratch header table). The only shared state is the pools'
 * backends (atomics) and the generation handed over on reload. */
#ifndef USHER_APP_WORKER_H
#define USHER_APP_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/loop.h"
#include "proxy/proxy.h"
#include "upstream/generation.h"

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
    struct loop_timer accept_resume;
    uint64_t emfile_logged;                /* when the accept pause was last logged */
    _Atomic(struct generation *) next;     /* set by the main thread on reload */
    struct worker_listener *old_listeners; /* the previous generation's, freed at the next */
    struct loop_timer alog_timer;          /* writes the access log out every second */
    struct proxy_worker px;                /* the connections this worker serves */
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
