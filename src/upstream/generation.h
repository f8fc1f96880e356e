/* generation: one configuration in force, with the pools built from it.
 *
 * Workers, client sessions and the main thread each hold a reference; the
 * last one frees it. A reload (SIGHUP) makes a new generation; sessions finish
 * the exchange they are in on their own generation and move to the new one
 * between requests. */
#ifndef USHER_UPSTREAM_GENERATION_H
#define USHER_UPSTREAM_GENERATION_H

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "tls/tls.h"
#include "upstream/backend.h"

struct generation {
    struct config *cfg;
    struct pool *pools;      /* indexed like cfg->pools */
    uint32_t nbackends;      /* backends of all pools */
    struct tls_server **tls; /* indexed like cfg->listeners: NULL for a plain one */
    /* indexed like cfg->pools: NULL for a pool without https:// backends
     * (each such backend's tls points to its pool's) */
    struct tls_client **tls_clients;
    uint32_t *listener_slot; /* indexed like cfg->listeners: its counters (stats.h) */
    _Atomic uint32_t refs;
};

/* The TLS side of a configuration, built before its generation (so that a
 * reload that cannot read a certificate changes nothing). */
struct gen_tls {
    struct tls_server **servers; /* indexed like cfg->listeners, or NULL */
    struct tls_client **clients; /* indexed like cfg->pools, or NULL */
    uint32_t nservers, nclients;
};

/* Builds the pools of cfg (taken over: its arrays move to the generation,
 * cfg is left empty) into a new generation with one reference (the
 * caller's). Backends that were in prev, in a pool of the same name with the
 * same URL, keep their health state. NULL on failure (logged). */
struct generation *gen_new(struct config *cfg, const struct generation *prev);

/* The TLS side of every TLS listener (tls_server_new) and of every pool
 * with https:// backends (tls_client_new) of cfg; errors and warnings
 * written as they say. 0 and *out (given to a generation by gen_tls_give,
 * or freed by gen_tls_free), or -1 (*out empty). */
int gen_tls_new(const struct config *cfg, FILE *errs, FILE *warns, int log_loaded,
                struct gen_tls *out);
/* Moves t into g (g->tls, g->tls_clients, the backends' tls): before g is
 * shared. t is left empty; gen_release frees what it held. */
void gen_tls_give(struct generation *g, struct gen_tls *t);
void gen_tls_free(struct gen_tls *t);

static inline void gen_acquire(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}
/* Drops a reference; the last one frees the pools and the config. */
void gen_release(struct generation *g);

#endif
