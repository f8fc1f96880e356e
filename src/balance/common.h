/* balance/common: helpers shared by the balancing algorithms (not part of the
 * balancer interface; only src/balance/ and their tests use it).
 *
 *  - fixed, seeded 64-bit hash (Maglev tables and request keys must map the
 *    same way in every usher process) and SipHash-2-4 (sticky cookie values);
 *  - hash keys: "client_ip", "uri", "header:NAME", "cookie:NAME", "query:NAME";
 *  - a per-thread pseudo-random generator (random, p2c, ewma), no locks;
 *  - uniform choice among the usable backends;
 *  - a coarse millisecond clock that tests can set. */
#ifndef USHER_BALANCE_COMMON_H
#define USHER_BALANCE_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "balance/balance.h"

/* ---- hashing ---- */

/* The seed of every request-key hash. Changing it remaps every key. */
#define BALANCE_HASH_SEED UINT64_C(0x75736865722d6c62) /* "usher-lb" */

/* MurmurHash64A (Austin Appleby, public domain) over p[0..len), reading
 * words little-endian, so the value is the same on every platform. */
uint64_t balance_hash64(const void *p, size_t len, uint64_t seed);

/* SipHash-2-4 (Aumasson, Bernstein) of p[0..len) under a 128-bit key: a keyed
 * hash that cannot be computed without the key. */
uint64_t balance_siphash(const uint64_t key[2], const void *p, size_t len);

/* ---- hash keys ---- */

enum balance_key_kind {
    BALANCE_KEY_CLIENT_IP,
    BALANCE_KEY_URI,
    BALANCE_KEY_HEADER,
    BALANCE_KEY_COOKIE,
    BALANCE_KEY_QUERY,
};

struct balance_key {
    enum balance_key_kind kind;
    char name[96]; /* header, cookie or query parameter name */
    uint32_t name_len;
};

/* Parses a --hash-key value into k. Returns 0, or -EINVAL with a sentence
 * for a person in why. */
int balance_key_parse(const char *s, struct balance_key *k, char *why, size_t why_cap);

/* The hash of the request's key, computed once per request and kept in
 * *ctx->hash so that retries (which have no head) map the same way. Returns
 * 0 when the request has no such key (no header, cookie or parameter). */
uint64_t balance_key_hash(const struct balance_key *k, const struct balance_ctx *ctx);

/* The value of the first header called name in r, or {NULL, 0}. */
struct span balance_header(const struct balance_request *r, const char *name, size_t name_len);
/* The value of cookie name in r's Cookie headers (quotes removed), or {NULL, 0}. */
struct span balance_cookie(const struct balance_request *r, const char *name, size_t name_len);
/* The value of query parameter name in the request target (not decoded), or {NULL, 0}. */
struct span balance_query(const struct balance_request *r, const char *name, size_t name_len);

/* ---- randomness ---- */

/* A pseudo-random 64-bit value from the calling thread's generator
 * (splitmix64, seeded from getrandom on first use). */
uint64_t balance_rand(void);
/* Uniform in [0, n), n > 0 (Lemire's multiply-shift). */
static inline uint64_t balance_rand_below(uint64_t n)
{
    return (uint64_t)(((unsigned __int128)balance_rand() * n) >> 64);
}
/* Makes the calling thread's generator deterministic (tests). */
void balance_rand_seed(uint64_t seed);

/* A uniformly chosen backend that is usable for t and is not `except`
 * (may be NULL), or NULL when there is none. */
struct backend *balance_random_usable(struct pool *p, const struct balance_tried *t,
                                      const struct backend *except);

/* A backend chosen at random in proportion to its weight among those usable
 * for t, or NULL (O(n): for cold paths). */
struct backend *balance_random_weighted(struct pool *p, const struct balance_tried *t);

/* ---- round robin ---- */

/* The next usable backend after *next (which it advances), as round-robin
 * does: used as the fallback of the hashing algorithms. */
struct backend *balance_next_usable(_Atomic uint64_t *next, struct pool *p,
                                    const struct balance_tried *t);

/* ---- time ---- */

/* Milliseconds from a monotonic clock (CLOCK_MONOTONIC_COARSE: a few ms of
 * resolution, no system call), or the value set by balance_clock_set. */
uint64_t balance_now_ms(void);
/* Tests: freeze the clock at ms (0 returns to the real clock). Not for use
 * while other threads pick. */
void balance_clock_set(uint64_t ms);

/* e^-x for x >= 0, to about 1e-9 relative (usher does not link libm). */
double balance_exp_neg(double x);

/* ---- internals the unit tests look at ---- */

/* ewma: the current cost of b (average latency x (in flight + 1) / weight). */
double ewma_cost(void *state, const struct backend *b);

/* maglev: the table size, and the index of the backend that owns slot. */
#define BALANCE_MAGLEV_TABLE_SIZE 65537
uint32_t maglev_owner(void *state, uint32_t slot);

#endif
