/* sticky: a cookie set by usher keeps a client on one backend.
 *
 * Every response from backend b carries
 *
 *     Set-Cookie: usher_backend=<16 hex digits>; Path=/; HttpOnly
 *
 * (the name is --sticky-cookie). The value is SipHash-2-4 of b's URL under a
 * key derived from --sticky-secret: it names the backend without revealing
 * its address, a client cannot make up a value for a backend it has not
 * been sent to without knowing the secret, and it stays valid when backends
 * are added, removed or reordered. Every usher with the same secret gives a
 * backend the same value, so a client can move between ushers and keep its
 * backend (the secret has a documented default for that reason: set your own
 * if the values should not be predictable).
 *
 * A request whose cookie names a usable backend goes there. A request
 * without the cookie, with a value that names no backend, or naming one that
 * is down, draining or already tried for this request goes round robin
 * among the usable ones; the response then sets the cookie to its new
 * backend. This is HAProxy's "cookie NAME insert" and nginx's "sticky
 * cookie". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance/common.h"

#define LINE_MAX_LEN 192

struct sticky_entry {
    uint64_t value;
    uint32_t index;
};

struct sticky_state {
    _Alignas(64) _Atomic uint64_t rr; /* re-balancing; own cache line */
    _Alignas(64) char cookie[64];
    uint32_t cookie_len;
    uint32_t n;
    struct sticky_entry *by_value; /* sorted by value, for lookups */
    char (*line)[LINE_MAX_LEN];    /* "Set-Cookie: ..." per backend */
    uint32_t *line_len;
};

/* The key under which backend URLs are hashed, derived from the secret
 * (itself hashed under two fixed keys, so any length of secret works). */
static void derive_key(const char *secret, uint64_t key[2])
{
    static const uint64_t k0[2] = {UINT64_C(0x7573686572737469), UINT64_C(0x636b792d6b657930)};
    static const uint64_t k1[2] = {UINT64_C(0x7573686572737469), UINT64_C(0x636b792d6b657931)};
    key[0] = balance_siphash(k0, secret, strlen(secret));
    key[1] = balance_siphash(k1, secret, strlen(secret));
}

static int by_value(const void *a, const void *b)
{
    const struct sticky_entry *x = a, *y = b;
    if (x->value != y->value) return x->value < y->value ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int sticky_init(struct pool *p, void **state)
{
    const struct pool_conf *c = p->cfg;
    const char *name = c->sticky_cookie[0] ? c->sticky_cookie : "usher_backend";
    const char *secret = c->sticky_secret[0] ? c->sticky_secret : "usher";
    if (p->n == 0 || strlen(name) >= 64) return -EINVAL;
    struct sticky_state *s = aligned_alloc(64, sizeof(*s));
    if (!s) return -ENOMEM;
    memset(s, 0, sizeof(*s));
    s->by_value = calloc(p->n, sizeof(*s->by_value));
    s->line = calloc(p->n, sizeof(*s->line));
    s->line_len = calloc(p->n, sizeof(*s->line_len));
    if (!s->by_value || !s->line || !s->line_len) {
        free(s->by_value);
        free(s->line);
        free(s->line_len);
        free(s);
        return -ENOMEM;
    }
    snprintf(s->cookie, sizeof(s->cookie), "%s", name);
    s->cookie_len = (uint32_t)strlen(s->cookie);
    s->n = p->n;
    uint64_t key[2];
    derive_key(secret, key);
    for (uint32_t i = 0; i < p->n; i++) {
        const char *url = p->backends[i].conf->url;
        uint64_t v = balance_siphash(key, url, strlen(url));
        s->by_value[i] = (struct sticky_entry){v, i};
        int len = snprintf(s->line[i], LINE_MAX_LEN, "Set-Cookie: %s=%016llx; Path=/; HttpOnly",
                           s->cookie, (unsigned long long)v);
        s->line_len[i] = len > 0 && len < LINE_MAX_LEN ? (uint32_t)len : 0;
    }
    qsort(s->by_value, p->n, sizeof(*s->by_value), by_value);
    atomic_init(&s->rr, 0);
    *state = s;
    return 0;
}

static void sticky_destroy(void *state)
{
    struct sticky_state *s = state;
    if (!s) return;
    free(s->by_value);
    free(s->line);
    free(s->line_len);
    free(s);
}

/* The backend the cookie value v names, or NULL. */
static struct backend *named(struct sticky_state *s, struct pool *p, struct span v)
{
    if (v.len != 16) return NULL;
    uint64_t value = 0;
    for (uint32_t i = 0; i < 16; i++) {
        char ch = v.p[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16;
        if (d == 16) return NULL;
        value = value << 4 | d;
    }
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->by_value[mid].value < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->n || s->by_value[lo].value != value) return NULL;
    return &p->backends[s->by_value[lo].index];
}

static struct backend *sticky_pick(void *state, struct pool *p, const struct balance_ctx *ctx,
                                   const struct balance_tried *tried)
{
    struct sticky_state *s = state;
    if (ctx->req) {
        struct backend *b = named(s, p, balance_cookie(ctx->req, s->cookie, s->cookie_len));
        if (b && balance_usable(b, tried)) return b;
    }
    return balance_next_usable(&s->rr, p, tried);
}

static size_t sticky_header(void *state, const struct backend *b, char *out, size_t cap)
{
    struct sticky_state *s = state;
    size_t len = s->line_len[b->index];
    if (!len || len > cap) return 0;
    memcpy(out, s->line[b->index], len);
    return len;
}

const struct balancer_ops balance_sticky = {
    .name = "sticky",
    .init = sticky_init,
    .destroy = sticky_destroy,
    .pick = sticky_pick,
    .response_header = sticky_header,
};
