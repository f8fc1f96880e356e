/* p2c: the power of two random choices, on requests in flight.
 *
 * Two different usable backends are chosen at random and the one with fewer
 * requests in flight (relative to its weight, as least-conn compares them)
 * gets the request. Mitzenmacher ("The Power of Two Choices in Randomized
 * Load Balancing", 2001) shows that this second choice takes the maximum
 * load down from O(log n / log log n) to O(log log n); Envoy's least_request
 * and Finagle's default balancer use it. Compared with least-conn it looks
 * at two backends instead of all of them (O(1) per pick) and writes no
 * shared counter, and it does not send every new request to the same least
 * loaded backend when many workers pick at the same instant. */
#include "balance/common.h"

static struct backend *p2c_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                const struct balance_tried *tried)
{
    struct backend *a = balance_random_usable(p, tried, NULL);
    if (!a) return NULL;
    struct backend *b = balance_random_usable(p, tried, a);
    if (!b) return a;
    uint64_t la = atomic_load_explicit(&a->inflight, memory_order_relaxed);
    uint64_t lb = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    /* lb/wb < la/wa, without division; on a tie the first (random) one */
    return lb * a->conf->weight < la * b->conf->weight ? b : a;
}

const struct balancer_ops balance_p2c = {
    .name = "p2c",
    .pick = p2c_pick,
};
