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
    _Atomic uint32_t refs;
};

/* Builds the pools of cfg (taken over: its arrays move to the generation,
 * cfg is left empty) into a new generation with one reference (the
 * caller's). Backends that were in prev, in a pool of the same name with the
 * same URL, keep their health state. NULL on failure (logged). */
struct generation *gen_new(struct config *cfg, const struct generation *prev);

/* The TLS side of every listener of cfg (tls_server_new; errors and
 * warnings written as it says). 0 and *out (freed by gen_release once given
 * to a generation as g->tls, or by gen_tls_free), or -1. */
int gen_tls_new(const struct config *cfg, FILE *errs, FILE *warns, int log_loaded,
                struct tls_server ***out);
void gen_tls_free(struct tls_server **tls, uint32_t n);

static inline void gen_acquire(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}
/* Drops a reference; the last one frees the pools and the config. */
void gen_release(struct generation *g);

#endif
