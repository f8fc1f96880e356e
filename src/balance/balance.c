/* balance: the table of algorithms, and slow start on top of any of them. */
#include "balance/balance.h"

#include <string.h>

#include "balance/common.h"

extern const struct balancer_ops balance_round_robin, balance_weighted_round_robin,
    balance_least_conn, balance_random, balance_p2c, balance_ewma, balance_maglev, balance_sticky;

static const struct balancer_ops *const algorithms[] = {
    &balance_round_robin, &balance_weighted_round_robin,
    &balance_least_conn,  &balance_random,
    &balance_p2c,         &balance_ewma,
    &balance_maglev,      &balance_sticky,
};

#define NALGOS (sizeof(algorithms) / sizeof(algorithms[0]))

const struct balancer_ops *balance_find(const char *name)
{
    for (size_t i = 0; i < NALGOS; i++)
        if (!strcmp(algorithms[i]->name, name)) return algorithms[i];
    return NULL;
}

const char *balance_names(void)
{
    static char names[256];
    if (!names[0]) {
        for (size_t i = 0; i < NALGOS; i++) {
            if (i) strcat(names, ", ");
            strcat(names, algorithms[i]->name);
        }
    }
    return names;
}

/* ---- slow start -------------------------------------------------------------------- */

void balance_slow_start(struct backend *b)
{
    uint64_t now = balance_now_ms();
    atomic_store_explicit(&b->ramp_from_ms, now ? now : 1, memory_order_relaxed);
}

uint32_t balance_share(struct backend *b, const struct pool *p)
{
    uint64_t from = atomic_load_explicit(&b->ramp_from_ms, memory_order_relaxed);
    uint32_t span = p->cfg->slow_start_ms;
    if (!from) return BALANCE_SHARE_FULL;
    uint64_t now = balance_now_ms();
    uint64_t elapsed = now > from ? now - from : 0;
    if (elapsed >= span) {
        /* the ramp is over (or a reload turned slow start off): later picks
         * need not look at the clock */
        atomic_compare_exchange_strong_explicit(&b->ramp_from_ms, &from, 0, memory_order_relaxed,
                                                memory_order_relaxed);
        return BALANCE_SHARE_FULL;
    }
    return (uint32_t)(elapsed * BALANCE_SHARE_FULL / span);
}

/* Whether this request may go to b, which takes share/BALANCE_SHARE_FULL of
 * its usual requests. A request with a hash key decides by the key, so each
 * key moves to b once, at its point of the ramp, instead of going back and
 * forth; others decide at random. */
static int slow_start_admits(const struct balance_ctx *ctx, const struct backend *b, uint32_t share)
{
    uint64_t r = ctx->hash && *ctx->hash ? balance_hash64(ctx->hash, sizeof(*ctx->hash), b->gindex)
                                         : balance_rand();
    return (r % BALANCE_SHARE_FULL) < share;
}

/* The cold path of balance_pick: b is ramping up. When it does not admit the
 * request, another backend takes it: for a request with a hash key the
 * algorithm's next choice for that key (so the key has one place to go);
 * for the others one chosen at random by weight, which leaves the
 * algorithm's own state (round-robin's turn, least-conn's ties) untouched,
 * so that b's part of its share is exactly the ramp. When no other backend
 * admits it, the first choice serves (ramping up is better than a 503). */
static struct backend *slow_start_pick(struct pool *p, const struct balance_ctx *ctx,
                                       const struct balance_tried *tried, struct backend *b)
{
    struct balance_tried t = *tried;
    struct backend *first = b;
    while (b) {
        uint32_t share = balance_share(b, p);
        if (share >= BALANCE_SHARE_FULL || slow_start_admits(ctx, b, share)) return b;
        if (t.n >= BALANCE_MAX_TRIES) break;
        balance_tried_add(&t, b);
        b = ctx->hash && *ctx->hash ? p->ops->pick(p->balancer, p, ctx, &t)
                                    : balance_random_weighted(p, &t);
    }
    return first;
}

struct backend *balance_pick(struct pool *p, const struct balance_ctx *ctx,
                             const struct balance_tried *tried)
{
    if (!p->n) return NULL; /* discovered backends, none yet */
    struct backend *b = p->ops->pick(p->balancer, p, ctx, tried);
    if (b && atomic_load_explicit(&b->ramp_from_ms, memory_order_relaxed))
        return slow_start_pick(p, ctx, tried, b);
    return b;
}
