/* maglev: Maglev consistent hashing, with bounded load.
 *
 * Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer" (NSDI 2016), section 3.4. A lookup table of M slots (M prime,
 * 65537) is filled once at start: each backend has its own permutation of
 * the slots (offset and skip from two hashes of its URL) and the backends take
 * turns claiming their next free preferred slot, so every backend owns M/n
 * slots, give or take one. A request's key is hashed and slot key % M names
 * its backend: lookups are O(1), the spread is even, and every usher given
 * the same --backend list (same URLs, same order, same weights) builds the
 * same table: the table depends on nothing else (a fixed hash function with a
 * fixed seed; no randomness, no addresses), so two ushers send a key to the
 * same backend.
 *
 * Weights: a backend takes a turn in proportion to its weight (as Envoy's
 * Maglev does), so it owns that share of the slots.
 *
 * A backend that cannot take the request (down, draining, already tried)
 * passes it on: the key is hashed again (a fixed function of the key hash
 * and the attempt) to another slot, and so on: only the keys of that backend
 * move, and they spread evenly over the others. The table itself never
 * changes while usher runs; a backend that comes back gets exactly its keys
 * back.
 *
 * Bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads", 2018; HAProxy's hash-balance-factor): with a factor F
 * (percent), a backend may have at most ceil(F/100 x (all in flight + 1) x
 * its weight / weight of the backends up) requests in flight; one at that
 * bound passes the key on the same way. So a hot key cannot overload its
 * backend, at the price of its requests spreading.
 *
 * A request without the key (no such header, cookie or parameter) goes round
 * robin, as HAProxy does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balance/common.h"

#define SEED_OFFSET UINT64_C(0x6d61676c65762d6f) /* "maglev-o" */
#define SEED_SKIP UINT64_C(0x6d61676c65762d73)   /* "maglev-s" */
#define EMPTY UINT16_MAX

struct maglev_state {
    _Alignas(64) _Atomic uint64_t rr; /* requests without a key; own cache line */
    _Alignas(64) struct balance_key key;
    uint32_t factor;  /* bounded load, percent; 0 = off */
    uint32_t m;       /* table size */
    uint16_t *table;  /* slot -> backend index */
    uint32_t *weight; /* weight[i] of backend i, next to each other for the load sum */
};

struct perm {
    uint64_t offset, skip, next, turns;
};

/* Fills table[0..m) (section 3.4, Pseudocode 1, with weighted turns). */
static int build(const struct pool *p, uint16_t *table, uint32_t m)
{
    struct perm *pm = calloc(p->n, sizeof(*pm));
    if (!pm) return -ENOMEM;
    uint64_t maxw = 1;
    for (uint32_t i = 0; i < p->n; i++) {
        const char *url = p->backends[i].conf->url;
        size_t len = strlen(url);
        pm[i].offset = balance_hash64(url, len, SEED_OFFSET) % m;
        pm[i].skip = balance_hash64(url, len, SEED_SKIP) % (m - 1) + 1;
        if (p->backends[i].conf->weight > maxw) maxw = p->backends[i].conf->weight;
    }
    memset(table, 0xff, (size_t)m * sizeof(*table));
    uint32_t filled = 0;
    for (uint64_t round = 1; filled < m; round++) {
        for (uint32_t i = 0; i < p->n && filled < m; i++) {
            /* weight w takes w turns in every maxw rounds */
            if (pm[i].turns * maxw >= round * p->backends[i].conf->weight) continue;
            uint64_t c = (pm[i].offset + pm[i].next * pm[i].skip) % m;
            while (table[c] != EMPTY) {
                pm[i].next++;
                c = (pm[i].offset + pm[i].next * pm[i].skip) % m;
            }
            table[c] = (uint16_t)i;
            pm[i].next++;
            pm[i].turns++;
            filled++;
        }
    }
    free(pm);
    return 0;
}

static int maglev_init(struct pool *p, void **state)
{
    if (p->n == 0 || p->n >= EMPTY) return -EINVAL;
    struct maglev_state *s = aligned_alloc(64, sizeof(*s));
    if (!s) return -ENOMEM;
    memset(s, 0, sizeof(*s));
    char why[160];
    const char *key = p->cfg->hash_key[0] ? p->cfg->hash_key : "client_ip";
    if (balance_key_parse(key, &s->key, why, sizeof(why)) < 0) {
        free(s);
        return -EINVAL;
    }
    s->factor = p->cfg->hash_balance_factor;
    s->m = BALANCE_MAGLEV_TABLE_SIZE; /* prime; the paper's small table */
    s->table = malloc((size_t)s->m * sizeof(*s->table));
    s->weight = malloc(p->n * sizeof(*s->weight));
    if (!s->table || !s->weight || build(p, s->table, s->m) < 0) {
        free(s->table);
        free(s->weight);
        free(s);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < p->n; i++) s->weight[i] = p->backends[i].conf->weight;
    atomic_init(&s->rr, 0);
    *state = s;
    return 0;
}

static void maglev_destroy(void *state)
{
    struct maglev_state *s = state;
    if (!s) return;
    free(s->table);
    free(s->weight);
    free(s);
}

/* The load bound, computed on first need (O(backends)) for one pick. */
struct bound {
    int known;
    uint64_t total;  /* requests in flight, all backends */
    uint64_t weight; /* weight of the backends that are up */
};

static int under_bound(const struct maglev_state *s, const struct pool *p, struct bound *bd,
                       const struct backend *b)
{
    if (!s->factor) return 1;
    uint64_t load = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    if (load == 0) return 1; /* the bound is never below 1 */
    if (!bd->known) {
        bd->known = 1;
        for (uint32_t i = 0; i < p->n; i++) {
            const struct backend *o = &p->backends[i];
            bd->total += atomic_load_explicit(&o->inflight, memory_order_relaxed);
            if (backend_state(o) == BACKEND_UP) bd->weight += s->weight[i];
        }
        if (!bd->weight) bd->weight = 1;
    }
    /* load < ceil(F/100 * (total + 1) * w / W) */
    uint64_t num = (uint64_t)s->factor * (bd->total + 1) * s->weight[b->index];
    uint64_t den = 100 * bd->weight;
    uint64_t cap = (num + den - 1) / den;
    return load < (cap ? cap : 1);
}

/* The k-th other slot for key hash h (splitmix64's finalizer): independent
 * of the table's layout, so the keys a backend passes on spread evenly over
 * the others (neighbouring slots would not: the fill makes them correlated). */
static uint64_t rehash(uint64_t h, uint64_t k)
{
    uint64_t z = h + k * UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static struct backend *maglev_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                   const struct balance_tried *tried)
{
    struct maglev_state *s = state;
    uint64_t h = balance_key_hash(&s->key, ctx);
    if (!h) return balance_next_usable(&s->rr, p, tried);
    struct bound bd = {0};
    /* the key's slot, then the slots of its rehashes (the key passed on) */
    uint32_t limit = 4 * p->n + 64;
    for (uint32_t k = 0; k < limit; k++) {
        uint64_t slot = (k ? rehash(h, k) : h) % s->m;
        struct backend *b = &p->backends[s->table[slot]];
        if (balance_usable(b, tried) && under_bound(s, p, &bd, b)) return b;
    }
    /* almost nobody usable: a deterministic scan (bounded work per request) */
    uint32_t start = (uint32_t)(h % p->n);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t k = 0, i = start; k < p->n; k++, i = i + 1 == p->n ? 0 : i + 1) {
            struct backend *b = &p->backends[i];
            if (balance_usable(b, tried) && (pass || under_bound(s, p, &bd, b))) return b;
        }
    }
    return NULL;
}

const struct balancer_ops balance_maglev = {
    .name = "maglev",
    .init = maglev_init,
    .destroy = maglev_destroy,
    .pick = maglev_pick,
};

uint32_t maglev_owner(void *state, uint32_t slot)
{
    struct maglev_state *s = state;
    return s->table[slot % s->m];
}
