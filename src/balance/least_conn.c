/* least-conn: the backend with the fewest requests in flight, relative to its
 * weight.
 *
 * backend->inflight counts the requests being served right now by all
 * workers (the session adds one when it leases a backend and takes it away
 * when the exchange ends), so a slow backend, which holds its requests
 * longer, gets fewer new ones. With weights, inflight/weight is compared
 * (nginx's least_conn compares conns * weight the same way, without
 * division).
 *
 * Ties are broken in turn, not in favour of the first backend: a shared
 * atomic counter advances at every pick, and of the k equally loaded
 * backends the (counter mod k)-th in list order wins. So with no load at all
 * least-conn is round robin, and two idle backends alternate even when a
 * busy one sits between them (starting the scan at a rotating position would
 * favour the backend that follows a busy one).
 *
 * The scan is O(backends) per pick, like nginx's (a second, partial one when
 * there are ties); it reads only the backends' array and a copy of the
 * weights kept here, side by side, not the configuration (one cache miss per
 * backend otherwise). For 1000 backends see docs/benchmarks.md ("Balancer
 * pick cost"). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "balance/balance.h"

struct lc_state {
    _Alignas(64) _Atomic uint64_t turn; /* own cache line: every worker writes it */
    _Alignas(64) uint32_t *weight;      /* weight[i] of backend i */
};

static int lc_init(struct pool *p, void **state)
{
    struct lc_state *s = aligned_alloc(64, sizeof(*s));
    uint32_t *w = malloc((p->n ? p->n : 1) * sizeof(*w));
    if (!s || !w) {
        free(s);
        free(w);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < p->n; i++) w[i] = p->backends[i].conf->weight;
    atomic_init(&s->turn, 0);
    s->weight = w;
    *state = s;
    return 0;
}

static void lc_destroy(void *state)
{
    struct lc_state *s = state;
    if (!s) return;
    free(s->weight);
    free(s);
}

/* Whether load a / weight wa is below (< 0), equal to (0) or above (> 0) lb / wb. */
static int compare(uint64_t a, uint64_t wa, uint64_t b, uint64_t wb)
{
    return a * wb < b * wa ? -1 : a * wb > b * wa;
}

static struct backend *lc_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                               const struct balance_tried *tried)
{
    struct lc_state *s = state;
    uint64_t turn = atomic_fetch_add_explicit(&s->turn, 1, memory_order_relaxed);
    /* the lowest load / weight, and how many backends have it */
    struct backend *best = NULL;
    uint64_t best_load = 0, best_w = 1, ties = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        struct backend *b = &p->backends[i];
        if (!balance_usable(b, tried)) continue;
        uint64_t load = atomic_load_explicit(&b->inflight, memory_order_relaxed);
        int c = best ? compare(load, s->weight[i], best_load, best_w) : -1;
        if (c < 0) {
            best = b;
            best_load = load;
            best_w = s->weight[i];
            ties = 1;
        } else if (c == 0) {
            ties++;
        }
    }
    if (ties <= 1) return best;
    /* equals take turns: the (turn mod ties)-th of them */
    uint64_t k = turn % ties;
    for (uint32_t i = 0; i < p->n; i++) {
        struct backend *b = &p->backends[i];
        if (!balance_usable(b, tried)) continue;
        uint64_t load = atomic_load_explicit(&b->inflight, memory_order_relaxed);
        if (compare(load, s->weight[i], best_load, best_w) == 0 && k-- == 0) return b;
    }
    return best; /* loads changed meanwhile */
}

const struct balancer_ops balance_least_conn = {
    .name = "least-conn",
    .init = lc_init,
    .destroy = lc_destroy,
    .pick = lc_pick,
};
