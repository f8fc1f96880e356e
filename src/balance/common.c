/* balance/common: hashing, request keys, randomness and time for the
 * balancing algorithms. See common.h. */
#include "balance/common.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- hashing ---- */

static uint64_t load64_le(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

uint64_t balance_hash64(const void *key, size_t len, uint64_t seed)
{
    const uint64_t m = UINT64_C(0xc6a4a7935bd1e995);
    const int r = 47;
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * m);
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t k = load64_le(p + i);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    const unsigned char *tail = p + (len & ~(size_t)7);
    size_t rest = len & 7;
    if (rest) {
        for (size_t i = rest; i > 0; i--) h ^= (uint64_t)tail[i - 1] << (8 * (i - 1));
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t balance_siphash(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = key[0] ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = key[1] ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = key[0] ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = key[1] ^ UINT64_C(0x7465646279746573);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = load64_le(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t k = 0; i + k < len; k++) b |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- hash keys ---- */

/* RFC 9110 5.6.2 tchar */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int balance_key_parse(const char *s, struct balance_key *k, char *why, size_t why_cap)
{
    static const struct {
        const char *prefix;
        enum balance_key_kind kind;
    } named[] = {
        {"header:", BALANCE_KEY_HEADER},
        {"cookie:", BALANCE_KEY_COOKIE},
        {"query:", BALANCE_KEY_QUERY},
    };
    memset(k, 0, sizeof(*k));
    if (!strcmp(s, "client_ip")) {
        k->kind = BALANCE_KEY_CLIENT_IP;
        return 0;
    }
    if (!strcmp(s, "uri")) {
        k->kind = BALANCE_KEY_URI;
        return 0;
    }
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        size_t pl = strlen(named[i].prefix);
        if (strncmp(s, named[i].prefix, pl)) continue;
        const char *name = s + pl;
        size_t len = strlen(name);
        if (len == 0 || len >= sizeof(k->name)) {
            snprintf(why, why_cap, "%s needs a name of 1 to %zu characters after the colon",
                     named[i].prefix, sizeof(k->name) - 1);
            return -EINVAL;
        }
        for (size_t j = 0; j < len; j++) {
            if (!is_tchar((unsigned char)name[j])) {
                snprintf(why, why_cap,
                         "'%s' is not a valid name (letters, digits and !#$%%&'*+-.^_`|~)", name);
                return -EINVAL;
            }
        }
        k->kind = named[i].kind;
        memcpy(k->name, name, len + 1);
        k->name_len = (uint32_t)len;
        return 0;
    }
    snprintf(why, why_cap, "expected client_ip, uri, header:NAME, cookie:NAME or query:NAME");
    return -EINVAL;
}

static const struct span no_span = {NULL, 0};

struct span balance_header(const struct balance_request *r, const char *name, size_t name_len)
{
    struct span n, v;
    for (uint32_t i = 0; r->field(r->msg, i, &n, &v); i++)
        if (n.len == name_len && !strncasecmp(n.p, name, name_len)) return v;
    return no_span;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Looks for name=value in one Cookie header value "a=1; b=2" (RFC 6265 4.2.1). */
static struct span cookie_in(struct span v, const char *name, size_t name_len)
{
    const char *p = v.p, *end = v.p + v.len;
    while (p < end) {
        while (p < end && (is_space(*p) || *p == ';')) p++;
        const char *n = p;
        while (p < end && *p != '=' && *p != ';') p++;
        const char *ne = p;
        while (ne > n && is_space(ne[-1])) ne--;
        if (p == end || *p == ';') continue; /* no '=': not a cookie pair */
        const char *val = ++p;
        while (p < end && *p != ';') p++;
        const char *ve = p;
        while (val < ve && is_space(*val)) val++;
        while (ve > val && is_space(ve[-1])) ve--;
        if (ve - val >= 2 && val[0] == '"' && ve[-1] == '"') val++, ve--;
        if ((size_t)(ne - n) == name_len && !memcmp(n, name, name_len))
            return (struct span){val, (uint32_t)(ve - val)};
    }
    return no_span;
}

struct span balance_cookie(const struct balance_request *r, const char *name, size_t name_len)
{
    struct span n, v;
    for (uint32_t i = 0; r->field(r->msg, i, &n, &v); i++) {
        if (n.len != 6 || strncasecmp(n.p, "cookie", 6)) continue;
        struct span c = cookie_in(v, name, name_len);
        if (c.p) return c;
    }
    return no_span;
}

struct span balance_query(const struct balance_request *r, const char *name, size_t name_len)
{
    if (!r->target.p) return no_span;
    const char *p = memchr(r->target.p, '?', r->target.len);
    if (!p) return no_span;
    const char *end = r->target.p + r->target.len;
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash) end = hash;
    p++;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        if ((size_t)(ne - p) == name_len && !memcmp(p, name, name_len)) {
            const char *val = eq ? eq + 1 : pe;
            return (struct span){val, (uint32_t)(pe - val)};
        }
        p = pe + 1;
    }
    return no_span;
}

uint64_t balance_key_hash(const struct balance_key *k, const struct balance_ctx *ctx)
{
    if (ctx->hash && *ctx->hash) return *ctx->hash;
    struct span v = no_span;
    if (k->kind == BALANCE_KEY_CLIENT_IP) {
        if (ctx->client_ip) v = (struct span){ctx->client_ip, (uint32_t)strlen(ctx->client_ip)};
    } else if (ctx->req) {
        switch (k->kind) {
        case BALANCE_KEY_URI: v = ctx->req->target; break;
        case BALANCE_KEY_HEADER: v = balance_header(ctx->req, k->name, k->name_len); break;
        case BALANCE_KEY_COOKIE: v = balance_cookie(ctx->req, k->name, k->name_len); break;
        case BALANCE_KEY_QUERY: v = balance_query(ctx->req, k->name, k->name_len); break;
        default: break;
        }
    }
    if (!v.p || v.len == 0) return 0;
    uint64_t h = balance_hash64(v.p, v.len, BALANCE_HASH_SEED);
    if (!h) h = 1; /* 0 means "not computed" */
    if (ctx->hash) *ctx->hash = h;
    return h;
}

/* ---- randomness ---- */

static _Thread_local uint64_t rand_state;
static _Thread_local int rand_seeded;

void balance_rand_seed(uint64_t seed)
{
    rand_state = seed;
    rand_seeded = 1;
}

uint64_t balance_rand(void)
{
    if (__builtin_expect(!rand_seeded, 0)) {
        uint64_t seed;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)gettid();
        }
        balance_rand_seed(seed);
    }
    /* splitmix64 (Steele, Lea, Flood; as in Vigna's xoshiro seeding) */
    uint64_t z = (rand_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

struct backend *balance_random_weighted(struct pool *p, const struct balance_tried *t)
{
    uint64_t usable = 0;
    for (uint32_t i = 0; i < p->n; i++)
        if (balance_usable(&p->backends[i], t)) usable += p->backends[i].conf->weight;
    if (!usable) return NULL;
    uint64_t r = balance_rand_below(usable);
    struct backend *last = NULL;
    for (uint32_t i = 0; i < p->n; i++) {
        struct backend *b = &p->backends[i];
        if (!balance_usable(b, t)) continue;
        last = b;
        if (r < b->conf->weight) break;
        r -= b->conf->weight;
    }
    return last; /* states may change meanwhile: any usable one will do */
}

struct backend *balance_random_usable(struct pool *p, const struct balance_tried *t,
                                      const struct backend *except)
{
    if (p->n == 0) return NULL;
    /* Usually the first draw is usable; a few draws keep it O(1). */
    for (int k = 0; k < 4; k++) {
        struct backend *b = &p->backends[balance_rand_below(p->n)];
        if (b != except && balance_usable(b, t)) return b;
    }
    /* Many are unusable: choose uniformly among those that are. */
    uint32_t count = 0;
    for (uint32_t i = 0; i < p->n; i++)
        if (&p->backends[i] != except && balance_usable(&p->backends[i], t)) count++;
    if (!count) return NULL;
    uint64_t r = balance_rand_below(count);
    struct backend *last = NULL;
    for (uint32_t i = 0; i < p->n; i++) {
        struct backend *b = &p->backends[i];
        if (b == except || !balance_usable(b, t)) continue;
        last = b;
        if (r-- == 0) break;
    }
    return last; /* states may change meanwhile: any usable one will do */
}

/* ---- round robin ---- */

struct backend *balance_next_usable(_Atomic uint64_t *next, struct pool *p,
                                    const struct balance_tried *t)
{
    for (uint32_t i = 0; i < p->n; i++) {
        uint64_t n = atomic_fetch_add_explicit(next, 1, memory_order_relaxed);
        struct backend *b = &p->backends[n % p->n];
        if (balance_usable(b, t)) return b;
    }
    return NULL;
}

/* ---- time ---- */

static _Atomic uint64_t clock_frozen;

void balance_clock_set(uint64_t ms)
{
    atomic_store_explicit(&clock_frozen, ms, memory_order_relaxed);
}

uint64_t balance_now_ms(void)
{
    uint64_t f = atomic_load_explicit(&clock_frozen, memory_order_relaxed);
    if (f) return f;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double balance_exp_neg(double x)
{
    if (!(x > 0)) return 1.0;
    if (x > 700) return 0.0;
    unsigned k = (unsigned)x;
    double f = x - k;
    /* e^-f for f in [0, 1): Taylor series to 1e-16 (at most 18 terms; a
     * handful for the small f of frequent updates) */
    double term = 1.0, sum = 1.0;
    for (int i = 1; i < 19 && (term > 1e-16 || term < -1e-16); i++) {
        term *= -f / i;
        sum += term;
    }
    /* e^-k by squaring */
    double base = 0.36787944117144233, pk = 1.0;
    for (; k; k >>= 1) {
        if (k & 1) pk *= base;
        base *= base;
    }
    return sum * pk;
}
