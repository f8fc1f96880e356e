/* round-robin: each new request goes to the next usable backend in order.
 *
 * One atomic counter is shared by all workers, so the order is exact across
 * threads: a client that opens a new connection per request (and so lands on
 * any worker) still sees backend1, backend2, backend1, ... A backend that is
 * skipped (down, or already tried) consumes its slot, so the others keep equal
 * shares. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "balance/balance.h"

struct rr_state {
    _Alignas(64) _Atomic uint64_t next; /* own cache line: every worker writes it */
};

static int rr_init(struct pool *p, void **state)
{
    struct rr_state *s = aligned_alloc(64, sizeof(*s));
    if (!s) return -ENOMEM;
    atomic_init(&s->next, 0);
    *state = s;
    return 0;
}

static void rr_destroy(void *state)
{
    free(state);
}

static struct backend *rr_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                               const struct balance_tried *tried)
{
    struct rr_state *s = state;
    for (uint32_t i = 0; i < p->n; i++) {
        uint64_t n = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
        struct backend *b = &p->backends[n % p->n];
        if (balance_usable(b, tried)) return b;
    }
    /* Other workers took slots in between, so this walk may have landed only
     * on unusable backends: fall back to a plain scan rather than answer 503
     * while a usable backend exists. */
    for (uint32_t i = 0; i < p->n; i++)
        if (balance_usable(&p->backends[i], tried)) return &p->backends[i];
    return NULL;
}

const struct balancer_ops balance_round_robin = {
    .name = "round-robin",
    .init = rr_init,
    .destroy = rr_destroy,
    .pick = rr_pick,
};
