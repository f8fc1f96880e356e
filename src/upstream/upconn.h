/* upconn: a connection from a worker to a backend, and the worker's idle pool.
 *
 * Ownership: an upconn belongs to the idle pool while idle and to exactly one
 * session while leased. An idle connection that becomes readable (the backend
 * closed it, or sent bytes nobody asked for) or stays idle too long is closed. */
#ifndef USHER_UPSTREAM_UPCONN_H
#define USHER_UPSTREAM_UPCONN_H

#include <stdint.h>

#include "core/loop.h"
#include "upstream/backend.h"

struct worker;
struct session;

struct upconn {
    struct loop_io io;
    struct loop_timer idle_timer;
    struct loop_defer defer;
    struct worker *w;
    struct backend *be;
    struct session *owner;      /* NULL while idle */
    struct upconn *next, *prev; /* idle list, or the worker's free list */
    uint8_t idle;               /* in the worker's idle list for be */
    uint8_t connected;          /* connect() finished */
    uint8_t reused;             /* taken from the idle pool: may have been closed by the backend */
    uint8_t readable;           /* edge-triggered: the socket may have bytes or EOF to read */
    uint8_t writable;           /* edge-triggered: the socket may take more bytes */
    uint8_t rdhup;              /* the backend half-closed: read until EOF */
    uint8_t out_armed; /* EPOLLOUT is watched (while connecting, or after a write blocked) */
};

/* Leases an idle connection to b, or NULL. */
struct upconn *upconn_take_idle(struct worker *w, struct backend *b, struct session *owner);
/* Starts a new connection to b. Returns it (connecting) or NULL with *err set. */
struct upconn *upconn_connect(struct worker *w, struct backend *b, struct session *owner, int *err);
/* The connect finished: stop watching for writability until a write blocks. */
void upconn_connected(struct upconn *u);
/* A write would block: be told when the socket takes bytes again. */
void upconn_want_write(struct upconn *u);
/* Returns a leased connection to the idle pool (after a response that ended
 * cleanly); closes it instead when the pool is full. Only for a backend of
 * the worker's current generation. */
void upconn_release(struct upconn *u);
/* Closes the connection; freed at the end of the loop iteration. */
void upconn_close(struct upconn *u);
/* Closes every idle connection of w (shutdown). */
void upconn_close_all_idle(struct worker *w);

#endif
