/* health: active checks (control thread) and passive failure detection
 * (workers) that move backends between UP and DOWN.
 *
 * Active: every interval (with jitter) each backend gets a TCP connect, or an
 * HTTP GET of the health path when one is configured; `rise` successes in a
 * row bring a DOWN backend up, `fall` failures in a row take an UP one down.
 * Until its first result a backend counts as up, except one DNS discovery
 * just gave (backend.unchecked): it is DOWN, checked at once, and its first
 * passing check brings it up.
 *
 * Passive: workers report how each attempt on real traffic went; `max_fails`
 * failures in a row (connect refused or timed out, reset before a response,
 * response timeout) take the backend down at once. Only the active checks
 * bring it back.
 *
 * Every transition is logged in words, with the list of healthy backends. */
#ifndef USHER_UPSTREAM_HEALTH_H
#define USHER_UPSTREAM_HEALTH_H

#include "core/loop.h"
#include "upstream/backend.h"

struct health;

/* Starts active checks of every backend of p, with the settings of p->cfg, on loop (the control
 * thread's). Returns NULL when checks are off or on ENOMEM. */
struct health *health_start(struct loop *loop, struct pool *p);
void health_stop(struct health *h);

/* Workers: an attempt on b failed (why: "connection refused", ...). */
void health_passive_failure(struct pool *p, struct backend *b, const char *why, uint32_t max_fails);
/* Workers: b answered. */
static inline void health_passive_success(struct backend *b)
{
    if (atomic_load_explicit(&b->fails, memory_order_relaxed))
        atomic_store_explicit(&b->fails, 0, memory_order_relaxed);
}

/* Writes "http://a, http://b" (the UP backends, or "none") into out. */
void health_list_up(const struct pool *p, char *out, size_t cap);

#endif
