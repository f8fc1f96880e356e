/* ewma: peak-EWMA of response latency times load, chosen by two random
 * choices (Finagle's "p2cPeakEwma", also Linkerd's default balancer).
 *
 * Each backend keeps a moving average of its latency (from the request being
 * sent to the response head). The average is time-weighted, with decay
 * time TAU: an observation after dt moves it by a factor 1 - e^(-dt/TAU).
 * It is a *peak* average: a latency above the average replaces it at once,
 * so a backend that turns slow is avoided from its first slow answer and
 * wins its traffic back only gradually. The cost of a backend is
 *
 *     average latency x (requests in flight + 1) / weight
 *
 * and of two different usable backends chosen at random the cheaper one
 * wins. Like Finagle, the average also decays towards zero while a backend
 * gets no answers, so a backend that was slow is eventually tried again; and
 * a backend with requests in flight but no latency known yet (just started)
 * costs a large penalty, so it is not flooded before it has answered once.
 *
 * A failed attempt (refused, reset, timed out, invalid answer) counts as an
 * answer twice as slow as the current average, at least FAIL_MIN_US: a
 * backend that fails fast does not attract traffic by looking fast, and
 * repeated failures push it away exponentially.
 *
 * Shared state: one 64-bit word per backend (average as a float, time of the
 * last update in ms), updated with compare-and-swap by whichever worker got
 * the answer. Each word has its own cache line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balance/common.h"

#define TAU_MS 10000.0               /* decay time (Finagle's default) */
#define FAIL_MIN_US 50000.0          /* a failure counts at least as 50 ms */
#define MAX_US 60000000.0            /* averages are capped at 60 s */
#define COLD_PENALTY_US 1000000000.0 /* in flight, no latency known yet */

struct ewma_slot {
    _Alignas(64) _Atomic uint64_t word; /* float average (us) << 32 | stamp (ms) */
};

struct ewma_state {
    struct ewma_slot *slot; /* one per backend */
};

static uint64_t pack(float avg, uint32_t stamp)
{
    uint32_t bits;
    memcpy(&bits, &avg, sizeof(bits));
    return (uint64_t)bits << 32 | stamp;
}

static float avg_of(uint64_t w)
{
    uint32_t bits = (uint32_t)(w >> 32);
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* The average as of now: decayed since its last update. The stamp is the
 * clock in ms modulo 2^32; differences are taken modulo 2^32 too. */
static double decayed(uint64_t w, uint32_t now)
{
    double avg = avg_of(w);
    uint32_t dt = now - (uint32_t)w;
    return avg * balance_exp_neg(dt / TAU_MS);
}

static int ewma_init(struct pool *p, void **state)
{
    struct ewma_state *s = malloc(sizeof(*s));
    struct ewma_slot *slot = aligned_alloc(64, (p->n ? p->n : 1) * sizeof(*slot));
    if (!s || !slot) {
        free(s);
        free(slot);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < p->n; i++) atomic_init(&slot[i].word, 0);
    s->slot = slot;
    *state = s;
    return 0;
}

static void ewma_destroy(void *state)
{
    struct ewma_state *s = state;
    if (!s) return;
    free(s->slot);
    free(s);
}

static double cost(struct ewma_state *s, const struct backend *b, uint32_t now)
{
    uint64_t w = atomic_load_explicit(&s->slot[b->index].word, memory_order_relaxed);
    double avg = decayed(w, now);
    double load = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    if (avg_of(w) == 0 && load > 0) return COLD_PENALTY_US + load;
    return avg * (load + 1) / b->conf->weight;
}

static struct backend *ewma_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                 const struct balance_tried *tried)
{
    struct ewma_state *s = state;
    struct backend *a = balance_random_usable(p, tried, NULL);
    if (!a) return NULL;
    struct backend *b = balance_random_usable(p, tried, a);
    if (!b) return a;
    uint32_t now = (uint32_t)balance_now_ms();
    return cost(s, b, now) < cost(s, a, now) ? b : a;
}

static void ewma_done(void *state, struct backend *b, enum balance_outcome outcome,
                      uint64_t latency_us)
{
    struct ewma_state *s = state;
    _Atomic uint64_t *word = &s->slot[b->index].word;
    uint32_t now = (uint32_t)balance_now_ms();
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    for (;;) {
        double avg = avg_of(old);
        double rtt = latency_us ? (double)latency_us : 1; /* 0 means "none yet" */
        if (outcome == BALANCE_FAILED) {
            if (rtt < 2 * avg) rtt = 2 * avg;
            if (rtt < FAIL_MIN_US) rtt = FAIL_MIN_US;
        }
        if (rtt > MAX_US) rtt = MAX_US;
        double next;
        if (rtt > avg) {
            next = rtt; /* peak: a slower answer counts at once */
        } else {
            double keep = balance_exp_neg((uint32_t)(now - (uint32_t)old) / TAU_MS);
            next = avg * keep + rtt * (1 - keep);
        }
        if (atomic_compare_exchange_weak_explicit(word, &old, pack((float)next, now),
                                                  memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

const struct balancer_ops balance_ewma = {
    .name = "ewma",
    .init = ewma_init,
    .destroy = ewma_destroy,
    .pick = ewma_pick,
    .on_request_done = ewma_done,
};

double ewma_cost(void *state, const struct backend *b)
{
    return cost(state, b, (uint32_t)balance_now_ms());
}
