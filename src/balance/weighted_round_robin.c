/* weighted-round-robin: nginx's smooth weighted round robin, exact across
 * worker threads.
 *
 * nginx (ngx_http_upstream_round_robin.c, ngx_http_upstream_get_peer) keeps a
 * current weight per backend; for each pick every backend's current weight
 * grows by its weight, the largest wins (the first one on a tie) and loses
 * the total. Weights 5,1,1 give a a b a c a a: the exact proportions, with
 * the light backends interleaved instead of a run of five a's.
 *
 * That state changes on every pick, which threads could only share under a
 * lock. But the sequence depends on nothing else and repeats after
 * sum(weight)/gcd picks, so it is computed once at start and the workers
 * share one position in it, as round-robin shares its counter. A backend that
 * cannot take the request (down, draining, already tried) gives its slot up:
 * the position moves past a whole run of such slots with one compare-and-swap,
 * so the others keep their exact proportions and nobody waits on a lock.
 *
 * The cycle is at most 1024 backends x weight 1000 entries (2 bytes each).
 * Computing it compares, at each step, one candidate per distinct weight
 * rather than every backend: backends of equal weight are picked in list
 * order (they start equal, and the one picked falls behind the others of its
 * weight), so nginx's choice among them is always the next in that order.
 * Typical pools take microseconds; the worst case (1024 backends, all weights
 * different) takes about a second, once, at start. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "balance/balance.h"

struct wrr_state {
    _Alignas(64) _Atomic uint64_t next; /* position in seq; own cache line */
    _Alignas(64) uint64_t len;          /* length of the cycle */
    uint16_t *seq;                      /* backend index for each position */
};

/* The backends of one weight, in list order, and how often they were picked. */
struct wrr_group {
    int64_t weight;
    uint32_t first, size; /* their indices: members[first .. first + size) */
    uint64_t picks;
};

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Fills seq[0..total) with nginx's choices for weights w (divided by their gcd). */
static void schedule(const struct pool *p, const uint32_t *w, uint64_t total, uint16_t *seq,
                     struct wrr_group *group, uint16_t *members)
{
    /* group the backends by weight, keeping list order inside a group */
    uint32_t ngroups = 0, nmembers = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        uint32_t g = 0;
        while (g < ngroups && group[g].weight != w[i]) g++;
        if (g < ngroups) continue; /* its group is already complete */
        group[ngroups] = (struct wrr_group){w[i], nmembers, 0, 0};
        for (uint32_t j = i; j < p->n; j++)
            if (w[j] == w[i]) members[nmembers++] = (uint16_t)j, group[ngroups].size++;
        ngroups++;
    }
    for (uint64_t t = 1; t <= total; t++) {
        /* After t additions, a backend of weight w picked c times has the
         * current weight t*w - total*c; in a group of k that was picked
         * `picks` times, the next in turn has c = picks / k. */
        int64_t top = INT64_MIN;
        uint32_t best = 0, best_g = 0;
        for (uint32_t g = 0; g < ngroups; g++) {
            const struct wrr_group *gr = &group[g];
            int64_t cur = (int64_t)t * gr->weight - (int64_t)(total * (gr->picks / gr->size));
            uint32_t who = members[gr->first + gr->picks % gr->size];
            if (cur > top || (cur == top && who < best)) top = cur, best = who, best_g = g;
        }
        group[best_g].picks++;
        seq[t - 1] = (uint16_t)best;
    }
}

static int wrr_init(struct pool *p, void **state)
{
    if (p->n == 0 || p->n > UINT16_MAX + 1u) return -EINVAL;
    uint32_t g = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < p->n; i++) g = gcd(p->backends[i].conf->weight, g);
    struct wrr_state *s = aligned_alloc(64, sizeof(*s));
    uint32_t *w = malloc(p->n * sizeof(*w));
    struct wrr_group *group = malloc(p->n * sizeof(*group));
    uint16_t *members = malloc(p->n * sizeof(*members));
    for (uint32_t i = 0; w && i < p->n; i++) total += w[i] = p->backends[i].conf->weight / g;
    uint16_t *seq = w ? malloc(total * sizeof(*seq)) : NULL;
    int ok = s && w && group && members && seq;
    if (ok) schedule(p, w, total, seq, group, members);
    free(w);
    free(group);
    free(members);
    if (!ok) {
        free(s);
        free(seq);
        return -ENOMEM;
    }
    atomic_init(&s->next, 0);
    s->len = total;
    s->seq = seq;
    *state = s;
    return 0;
}

static void wrr_destroy(void *state)
{
    struct wrr_state *s = state;
    if (!s) return;
    free(s->seq);
    free(s);
}

static struct backend *wrr_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                const struct balance_tried *tried)
{
    struct wrr_state *s = state;
    uint64_t pos = atomic_load_explicit(&s->next, memory_order_relaxed);
    for (;;) {
        struct backend *b = &p->backends[s->seq[pos % s->len]];
        uint64_t at = pos;
        if (!balance_usable(b, tried)) {
            /* degraded: is anyone usable at all? (else a whole cycle for nothing) */
            uint32_t i;
            for (i = 0; i < p->n; i++)
                if (balance_usable(&p->backends[i], tried)) break;
            if (i == p->n) return NULL;
            uint64_t k;
            for (k = 1; k < s->len; k++) {
                b = &p->backends[s->seq[(pos + k) % s->len]];
                if (balance_usable(b, tried)) break;
            }
            if (k == s->len) return NULL; /* states changed meanwhile */
            at = pos + k;
        }
        /* take slot `at` and give up the unusable ones before it */
        if (atomic_compare_exchange_weak_explicit(&s->next, &pos, at + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return b;
        /* another worker moved on: pos now holds the new position */
    }
}

const struct balancer_ops balance_weighted_round_robin = {
    .name = "weighted-round-robin",
    .init = wrr_init,
    .destroy = wrr_destroy,
    .pick = wrr_pick,
};
