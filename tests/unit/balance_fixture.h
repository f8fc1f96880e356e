/* Pools of made-up backends for the balancer tests (tests/unit/test_<algorithm>.c).
 * Include after cmocka.h. */
#ifndef USHER_TESTS_BALANCE_FIXTURE_H
#define USHER_TESTS_BALANCE_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "balance/balance.h"
#include "balance/common.h"
#include "config/config.h"

static struct pool_conf fx_cfg;
static struct backend_conf fx_backends[CONFIG_MAX_BACKENDS];

/* A configuration with n backends http://10.0.X.Y:80 (i = 256 X + Y) using
 * balancer `balance`, with the given weights (NULL: all 1). Adjust it before
 * fx_init. */
static inline struct pool_conf *fx_config(const char *balance, uint32_t n, const uint32_t *weights)
{
    config_pool_defaults(&fx_cfg);
    fx_cfg.backends = fx_backends;
    snprintf(fx_cfg.balance, sizeof(fx_cfg.balance), "%s", balance);
    char why[128];
    for (uint32_t i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://10.0.%u.%u:80", i / 256, i % 256);
        assert_int_equal(config_parse_backend(url, &fx_cfg.backends[i], why, sizeof(why)), 0);
        if (weights) fx_cfg.backends[i].weight = weights[i];
    }
    fx_cfg.nbackends = n;
    return &fx_cfg;
}

static inline void fx_init(struct pool *p)
{
    assert_int_equal(pool_init(p, &fx_cfg, 0), 0);
}

static inline void fx_pool(struct pool *p, const char *balance, uint32_t n, const uint32_t *weights)
{
    fx_config(balance, n, weights);
    fx_init(p);
}

static const struct balance_tried fx_none __attribute__((unused)) = {0};

/* A pick with no request context (round robin, weighted, least-conn...). */
static inline struct backend *fx_pick(struct pool *p, const struct balance_tried *t)
{
    return p->ops->pick(p->balancer, p, &(struct balance_ctx){0}, t);
}

/* A pick for a request whose key hash is h (h != 0). */
static inline struct backend *fx_pick_hash(struct pool *p, uint64_t h,
                                           const struct balance_tried *t)
{
    return p->ops->pick(p->balancer, p, &(struct balance_ctx){.hash = &h}, t);
}

/* fx_set_state: draining (health UP, but it takes no new requests) */
#define FX_DRAIN 100

static inline void fx_set_state(struct pool *p, uint32_t i, int state)
{
    /* FX_DRAIN: UP and draining; any other state: that state, not draining */
    atomic_store(&p->backends[i].drain, state == FX_DRAIN);
    atomic_store(&p->backends[i].state, state == FX_DRAIN ? BACKEND_UP : state);
}

static inline void fx_set_inflight(struct pool *p, uint32_t i, uint32_t n)
{
    atomic_store(&p->backends[i].inflight, n);
}

#endif
