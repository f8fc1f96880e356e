/* balance: the interface every balancing algorithm implements.
 *
 * An algorithm is one file with one `const struct balancer_ops` and one entry
 * in the table in balance.c. pick() is called by worker threads concurrently:
 * whatever state it shares across workers must be atomic. */
#ifndef USHER_BALANCE_BALANCE_H
#define USHER_BALANCE_BALANCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/span.h"
#include "upstream/backend.h"

#define BALANCE_MAX_TRIES 8

/* Backends already tried for this request (a retry must go elsewhere).
 * Indexes fit 16 bits: a pool has at most CONFIG_MAX_BACKENDS. */
struct balance_tried {
    uint16_t n;
    uint16_t idx[BALANCE_MAX_TRIES];
};

/* What a balancer may read of a request, whatever protocol carried it
 * (an HTTP/1 head today, an HTTP/2 stream's fields later). */
struct balance_request {
    struct span target; /* path and query, as the client sent them */
    /* The i-th header field (from 0): 1 with name and value set, or 0 past
     * the last one. msg is passed back as is. */
    int (*field)(const void *msg, uint32_t i, struct span *name, struct span *value);
    const void *msg;
};

/* What an algorithm may look at to choose. */
struct balance_ctx {
    const char *client_ip;             /* the client's address, as text */
    const struct balance_request *req; /* NULL on a retry (the head is gone) */
    uint64_t *hash;                    /* the request's hash key, kept across retries by
                                          the exchange: 0 until an algorithm computes it */
};

enum balance_outcome { BALANCE_OK, BALANCE_FAILED };

struct balancer_ops {
    const char *name;
    /* Optional: allocates *state for pool p. 0 or -errno. */
    int (*init)(struct pool *p, void **state);
    void (*destroy)(void *state);
    /* Required: a usable backend not in tried, or NULL when there is none. */
    struct backend *(*pick)(void *state, struct pool *p, const struct balance_ctx *ctx,
                            const struct balance_tried *tried);
    /* Optional hooks around one request on backend b (called by the worker
     * that serves it; latency is from the request being sent to the response
     * head arriving, or to the failure). */
    void (*on_request_start)(void *state, struct backend *b);
    void (*on_request_done)(void *state, struct backend *b, enum balance_outcome outcome,
                            uint64_t latency_us);
    /* Optional: a header line to add to the response served by b, written
     * into out as "Name: value" without CRLF (sticky sessions set a cookie).
     * Returns its length, or 0 for none. */
    size_t (*response_header)(void *state, const struct backend *b, char *out, size_t cap);
};

/* The backend for a request: p's algorithm's pick, then slow start (a
 * backend ramping up after coming back UP takes only its part of what the
 * algorithm would give it; the rest goes to another backend, see
 * slow_start_pick in balance.c). */
struct backend *balance_pick(struct pool *p, const struct balance_ctx *ctx,
                             const struct balance_tried *tried);

/* Slow start: b has just come back UP; over its pool's slow_start_ms its share
 * rises linearly from nothing to what the algorithm gives it. */
void balance_slow_start(struct backend *b);

#define BALANCE_SHARE_FULL 1024
/* The part of its normal share b may take now, 0..BALANCE_SHARE_FULL. */
uint32_t balance_share(struct backend *b, const struct pool *p);

/* The algorithm called name, or NULL. */
const struct balancer_ops *balance_find(const char *name);
/* "round-robin, ..." for help texts and errors. */
const char *balance_names(void);

/* Whether b may take a new request that has already tried the backends in t. */
static inline int balance_usable(const struct backend *b, const struct balance_tried *t)
{
    if (!backend_usable(b)) return 0;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->idx[i] == b->index) return 0;
    return 1;
}

static inline void balance_tried_add(struct balance_tried *t, const struct backend *b)
{
    if (t->n < BALANCE_MAX_TRIES) t->idx[t->n++] = (uint16_t)b->index;
}

#endif
