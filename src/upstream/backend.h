/* backend: the shared, run-time view of a pool's backends.
 *
 * Backends and pools are created by the main thread before workers start and
 * live until exit. Workers read state and update counters with atomics only;
 * nothing here is locked on the request path. */
#ifndef USHER_UPSTREAM_BACKEND_H
#define USHER_UPSTREAM_BACKEND_H

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"

/* Health, as the checks see it. Draining is separate (an operator's choice,
 * from the configuration or the admin API): a draining backend is still
 * checked; one in maintenance (drain == BACKEND_MAINT) is not. */
#define BACKEND_DRAIN 1
#define BACKEND_MAINT 2
enum backend_state { BACKEND_UP = 0, BACKEND_DOWN = 1 };

struct tls_client;

struct backend {
    const struct backend_conf *conf;
    struct tls_client *tls;    /* https://: the pool's TLS client side (the generation's) */
    uint32_t index;            /* position in pool->backends */
    uint32_t gindex;           /* position among the backends of all pools */
    uint32_t slot;             /* its counters (stats.h): the same across generations */
    _Atomic int state;         /* enum backend_state, written by health checks */
    _Atomic uint32_t inflight; /* requests being served right now, all workers */
    _Atomic uint32_t fails;    /* failures in a row on live traffic (passive checks) */
    _Atomic int drain; /* BACKEND_DRAIN: no new requests, those in flight finish; BACKEND_MAINT */
    /* slow start: when it came back UP (balance_now_ms), 0 once it has its
     * full share; set by the health checks (balance_slow_start), cleared by
     * the first pick that finds the ramp over */
    _Atomic uint64_t ramp_from_ms;
    /* SRV priorities (conf->dns == BACKEND_DNS_SRV): 1 while a lower priority
     * of the pool has a usable backend; written by pool_update_standby */
    _Atomic uint8_t standby;
    /* discovered and not yet checked: DOWN until its first passing check
     * (health.c), whatever health.rise says */
    _Atomic uint8_t unchecked;
};

struct balancer_ops;

struct pool {
    const struct pool_conf *cfg; /* the configuration the pool was built from */
    struct backend *backends;
    uint32_t n;
    const struct balancer_ops *ops;
    void *balancer;     /* the algorithm's own state, from ops->init (NULL while n is 0) */
    uint8_t priorities; /* some backends have SRV priorities: pool_update_standby has work */
};

/* Builds a pool from c's backends with c's balancer; its backends are
 * numbered from gbase among all pools. Returns 0 or -errno. */
int pool_init(struct pool *p, const struct pool_conf *c, uint32_t gbase);
void pool_destroy(struct pool *p);
/* SRV priorities: marks standby the SRV backends of p whose priority is above
 * the lowest one that has a backend UP and not draining (none when no SRV
 * backend is usable: then the lowest priority serves). Called after every
 * change of state or drain (health checks, passive failures, the API, a new
 * generation), from any thread; serialised inside. */
void pool_update_standby(struct pool *p);

static inline int backend_state(const struct backend *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed);
}

/* Draining or in maintenance: takes no new requests. */
static inline int backend_draining(const struct backend *b)
{
    return atomic_load_explicit(&b->drain, memory_order_relaxed);
}

static inline int backend_maint(const struct backend *b)
{
    return backend_draining(b) == BACKEND_MAINT;
}

/* Whether b takes new requests: UP, not draining, not a standby SRV priority. */
static inline int backend_usable(const struct backend *b)
{
    return backend_state(b) == BACKEND_UP && !backend_draining(b) &&
           !atomic_load_explicit(&b->standby, memory_order_relaxed);
}

#endif
