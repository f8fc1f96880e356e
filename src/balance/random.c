/* random: each request goes to a backend chosen at random, in proportion to
 * its weight.
 *
 * No shared state at all (each worker thread has its own generator), so it
 * costs nothing in contention; the shares are exact only on average. A draw
 * is a binary search in the cumulative weights; a draw that lands on a
 * backend that cannot take the request is redrawn (which keeps the
 * proportions among the others), and after a few misses the choice is made
 * among the usable backends directly. */
#include <errno.h>
#include <stdlib.h>

#include "balance/common.h"

struct random_state {
    uint64_t total; /* sum of the weights */
    uint64_t *cum;  /* cum[i] = weight[0] + ... + weight[i] */
};

static int random_init(struct pool *p, void **state)
{
    if (p->n == 0) return -EINVAL;
    struct random_state *s = malloc(sizeof(*s));
    uint64_t *cum = malloc(p->n * sizeof(*cum));
    if (!s || !cum) {
        free(s);
        free(cum);
        return -ENOMEM;
    }
    uint64_t t = 0;
    for (uint32_t i = 0; i < p->n; i++) cum[i] = t += p->backends[i].conf->weight;
    s->total = t;
    s->cum = cum;
    *state = s;
    return 0;
}

static void random_destroy(void *state)
{
    struct random_state *s = state;
    if (!s) return;
    free(s->cum);
    free(s);
}

static struct backend *random_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                   const struct balance_tried *tried)
{
    struct random_state *s = state;
    for (int k = 0; k < 4; k++) {
        uint64_t r = balance_rand_below(s->total);
        /* first i with cum[i] > r: a binary search without branches to mispredict */
        uint32_t lo = 0, len = p->n;
        while (len > 1) {
            uint32_t half = len / 2;
            lo = s->cum[lo + half - 1] <= r ? lo + half : lo;
            len -= half;
        }
        struct backend *b = &p->backends[lo];
        if (balance_usable(b, tried)) return b;
    }
    return balance_random_weighted(p, tried);
}

const struct balancer_ops balance_random = {
    .name = "random",
    .init = random_init,
    .destroy = random_destroy,
    .pick = random_pick,
};
