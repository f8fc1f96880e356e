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
#include "upstream/backend.h"

struct generation {
    struct config *cfg;
    struct pool *pools; /* indexed like cfg->pools */
    uint32_t nbackends; /* backends of all pools */
    _Atomic uint32_t refs;
};

/* Builds the pools of cfg (taken over: its arrays move to the generation,
 * cfg is left empty) into a new generation with one reference (the
 * caller's). Backends that were in prev, in a pool of the same name with the
 * same URL, keep their health state. NULL on failure (logged). */
struct generation *gen_new(struct config *cfg, const struct generation *prev);

static inline void gen_acquire(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}
/* Drops a reference; the last one frees the pools and the config. */
void gen_release(struct generation *g);

#endif
