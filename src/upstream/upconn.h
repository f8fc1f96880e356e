/* upconn: a connection from a worker to a backend, and the worker's pool of
 * them (idle keep-alive lists and recycled objects).
 *
 * Ownership: an upconn belongs to the idle pool while idle and to exactly one
 * owner (an exchange) while leased; the owner is told of events through the
 * callback it leased the connection with, so this module knows nothing of
 * what uses it. An idle connection that becomes readable (the backend closed
 * it, or sent bytes nobody asked for) or stays idle too long is closed.
 *
 * An https:// backend is reached through the TLS transport (conn_tls, the
 * pool's struct tls_client): the handshake is part of connecting
 * (upconn_connected), so a certificate the backend fails to show counts as a
 * failed connect. The worker keeps the last TLS session of each backend and
 * resumes it on the next connect. */
#ifndef USHER_UPSTREAM_UPCONN_H
#define USHER_UPSTREAM_UPCONN_H

#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "net/conn.h"
#include "upstream/backend.h"

struct upconn;

/* Called on the owner's behalf when its leased connection has events. */
typedef void (*upconn_cb)(void *owner, struct upconn *u);

struct ssl_session_st;

/* Idle keep-alive connections to one backend, most recently used first,
 * and the backend's last TLS session (for the next connect to resume). */
struct upconn_idle_list {
    struct upconn *head;
    uint32_t count;
    struct ssl_session_st *session;
    const struct backend *session_be; /* whose session it is (a backend of the generation) */
};

/* One worker's backend connections. */
struct upconn_pool {
    struct loop *loop;
    struct upconn_idle_list *idle; /* one list per backend, indexed by backend.gindex */
    uint32_t nbackends;
    uint32_t idle_ms; /* an idle connection is closed after this */
    uint32_t epoch;   /* counts resets: a connection of an older one has no list */
    struct upconn *free;
    struct stats_worker *stats; /* the worker's counters (idle connections), or NULL */
};

struct upconn {
    struct conn conn;
    struct loop_timer idle_timer;
    struct loop_defer defer;
    struct upconn_pool *pool;
    struct backend *be;
    struct stats_backend *st; /* be's counters on the pool's worker (idle count), or NULL */
    upconn_cb cb;
    void *owner;                /* NULL while idle */
    struct upconn *next, *prev; /* idle list, or the pool's free list */
    uint32_t epoch;             /* the pool's when connected */
    uint8_t idle;               /* in the idle list for be */
    uint8_t reused;             /* taken from the idle pool: may have been closed by the backend */
    uint8_t connected;          /* the TCP connect finished (a TLS handshake may follow) */
};

/* Sets up p for nbackends backends (all pools of a generation). 0 or -ENOMEM. */
int upconn_pool_init(struct upconn_pool *p, struct loop *loop, uint32_t nbackends,
                     uint32_t idle_ms);
struct generation;
/* For a new generation g: idle connections to a plain backend g still has
 * (same pool, same URL) move to it; every other one is closed. On -ENOMEM
 * nothing changed. */
int upconn_pool_reset(struct upconn_pool *p, const struct generation *g, uint32_t idle_ms);
/* Frees the cached objects and the lists. Every connection must be closed
 * and the loop's deferred frees run (upconn_close_all_idle, then an
 * iteration of the loop). */
void upconn_pool_destroy(struct upconn_pool *p);

/* Leases an idle connection to b, or NULL. */
struct upconn *upconn_take_idle(struct upconn_pool *p, struct backend *b, upconn_cb cb,
                                void *owner);
/* Starts a new connection to b. Returns it (connecting) or NULL with *err set. */
struct upconn *upconn_connect(struct upconn_pool *p, struct backend *b, upconn_cb cb, void *owner,
                              int *err);
/* After an event on a connecting u: 0 when it is ready for the request (the
 * TCP connect and, for https://, the TLS handshake are done), -EAGAIN while
 * it waits, else -errno with why written in words. */
int upconn_connected(struct upconn *u, char *why, size_t cap);
/* Why a leased connection failed with err (-errno), in words: what the
 * backend's TLS said when it said something, else strerror. */
const char *upconn_why(struct upconn *u, int err, char *buf, size_t cap);
/* Returns a leased connection to the idle pool (after a response that ended
 * cleanly); closes it instead when the pool is full. Only for a backend of
 * the pool's current generation. */
void upconn_release(struct upconn *u);
/* Closes the connection; freed at the end of the loop iteration. */
void upconn_close(struct upconn *u);
/* Closes every idle connection of p (shutdown). */
void upconn_close_all_idle(struct upconn_pool *p);

#endif
