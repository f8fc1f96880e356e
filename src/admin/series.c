/* series: the per-second ring. See series.h. */
#include "admin/series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_RPS, S_4XX, S_5XX, S_P50, S_P95, S_P99, S_INFLIGHT, S_N };
#define SNAP_EVERY 10 /* seconds between the histogram snapshots */
#define SNAPS 7       /* 60 to 70 seconds back */

struct track {
    float v[S_N][SERIES_LEN]; /* by unix second % SERIES_LEN; NaN: no sample */
    uint64_t last_req, last_4xx, last_5xx;
    uint64_t last_hist[STATS_NBUCKETS];
    int64_t last_t; /* second of the last sample; 0: none */
    uint64_t snap[SNAPS][STATS_NBUCKETS];
    int64_t snap_t[SNAPS];
};

/* A pool's totals, by pool name (a pool keeps its series across reloads). */
struct pool_track {
    char name[64];
    struct track t; /* only v[][] is used */
};

static struct {
    struct track **t; /* by slot */
    uint32_t n;
    struct pool_track **pt;
    uint32_t npt;
    int64_t end;     /* newest sample second */
    uint32_t *order; /* series_json's ranking, kept between calls */
    double *score;
    uint32_t order_cap;
} se;

static void track_clear(struct track *k)
{
    for (int s = 0; s < S_N; s++)
        for (int i = 0; i < SERIES_LEN; i++) k->v[s][i] = NAN;
}

static struct pool_track *pool_track_of(const char *name, int create)
{
    for (uint32_t i = 0; i < se.npt; i++)
        if (!strncmp(se.pt[i]->name, name, sizeof(se.pt[i]->name) - 1)) return se.pt[i];
    if (!create) return NULL;
    struct pool_track **pt = realloc(se.pt, (se.npt + 1) * sizeof(*pt));
    if (!pt) return NULL;
    se.pt = pt;
    struct pool_track *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    snprintf(k->name, sizeof(k->name), "%s", name);
    track_clear(&k->t);
    se.pt[se.npt++] = k;
    return k;
}

static struct track *track_of(uint32_t slot)
{
    if (slot >= se.n) {
        uint32_t n = slot + 64;
        struct track **t = realloc(se.t, n * sizeof(*t));
        if (!t) return NULL;
        memset(t + se.n, 0, (n - se.n) * sizeof(*t));
        se.t = t;
        se.n = n;
    }
    if (!se.t[slot]) {
        struct track *k = calloc(1, sizeof(*k));
        if (!k) return NULL;
        track_clear(k);
        se.t[slot] = k;
    }
    return se.t[slot];
}

void series_free(void)
{
    for (uint32_t i = 0; i < se.n; i++) free(se.t[i]);
    free(se.t);
    for (uint32_t i = 0; i < se.npt; i++) free(se.pt[i]);
    free(se.pt);
    free(se.order);
    free(se.score);
    memset(&se, 0, sizeof(se));
}

/* A pool's second, summed from its backends' deltas (not from summed
 * counters, which would jump when a backend joins or leaves the pool). */
struct acc {
    double rps, r4, r5, inflight;
    uint64_t d[STATS_NBUCKETS];
    int rated; /* backends with a rate this second */
};

static void sample_one(struct track *k, const struct stats_backend *c, int64_t now, struct acc *a)
{
    int pos = (int)(now % SERIES_LEN);
    uint64_t hist[STATS_NBUCKETS];
    for (int i = 0; i < STATS_NBUCKETS; i++) hist[i] = c->total_time.bucket[i];
    if (k->last_t && k->last_t < now) {
        /* seconds skipped (a slow loop): no sample for them */
        for (int64_t t = k->last_t + 1; t < now && t > now - SERIES_LEN; t++)
            for (int s = 0; s < S_N; s++) k->v[s][t % SERIES_LEN] = NAN;
        double dt = (double)(now - k->last_t);
        k->v[S_RPS][pos] = (float)((double)(c->requests - k->last_req) / dt);
        k->v[S_4XX][pos] = (float)((double)(c->responses[3] - k->last_4xx) / dt);
        k->v[S_5XX][pos] = (float)((double)(c->responses[4] - k->last_5xx) / dt);
        uint64_t d[STATS_NBUCKETS];
        for (int i = 0; i < STATS_NBUCKETS; i++) d[i] = hist[i] - k->last_hist[i];
        a->rps += k->v[S_RPS][pos];
        a->r4 += k->v[S_4XX][pos];
        a->r5 += k->v[S_5XX][pos];
        for (int i = 0; i < STATS_NBUCKETS; i++) a->d[i] += d[i];
        a->rated++;
        double q50 = stats_quantile(d, 0.5), q95 = stats_quantile(d, 0.95),
               q99 = stats_quantile(d, 0.99);
        k->v[S_P50][pos] = q50 < 0 ? NAN : (float)(q50 * 1000);
        k->v[S_P95][pos] = q95 < 0 ? NAN : (float)(q95 * 1000);
        k->v[S_P99][pos] = q99 < 0 ? NAN : (float)(q99 * 1000);
    } else if (k->last_t != now) {
        for (int s = 0; s < S_INFLIGHT; s++) k->v[s][pos] = NAN; /* the first: no rate yet */
    }
    k->v[S_INFLIGHT][pos] = (float)(c->requests - c->ended);
    a->inflight += k->v[S_INFLIGHT][pos];
    k->last_req = c->requests;
    k->last_4xx = c->responses[3];
    k->last_5xx = c->responses[4];
    memcpy(k->last_hist, hist, sizeof(hist));
    k->last_t = now;
    int si = (int)((now / SNAP_EVERY) % SNAPS);
    if (k->snap_t[si] / SNAP_EVERY != now / SNAP_EVERY) {
        memcpy(k->snap[si], hist, sizeof(hist));
        k->snap_t[si] = now;
    }
}

static void pool_sample(struct track *k, const struct acc *a, int64_t now)
{
    int pos = (int)(now % SERIES_LEN);
    for (int s = 0; s < S_N; s++) k->v[s][pos] = NAN;
    k->v[S_INFLIGHT][pos] = (float)a->inflight;
    if (!a->rated) return;
    k->v[S_RPS][pos] = (float)a->rps;
    k->v[S_4XX][pos] = (float)a->r4;
    k->v[S_5XX][pos] = (float)a->r5;
    double q[3] = {stats_quantile(a->d, 0.5), stats_quantile(a->d, 0.95),
                   stats_quantile(a->d, 0.99)};
    for (int i = 0; i < 3; i++) k->v[S_P50 + i][pos] = q[i] < 0 ? NAN : (float)(q[i] * 1000);
}

void series_sample(const struct generation *g, int64_t now)
{
    if (now <= se.end) return;
    /* every track first: growing the table moves it */
    for (uint32_t p = 0; p < g->cfg->npools; p++) {
        pool_track_of(g->cfg->pools[p].name, 1);
        for (uint32_t b = 0; b < g->pools[p].n; b++) track_of(g->pools[p].backends[b].slot);
    }
    /* backends and pools not in g: no sample in this second */
    uint8_t *seen = calloc(se.n + 1, 1), *pseen = calloc(se.npt + 1, 1);
    for (uint32_t p = 0; p < g->cfg->npools; p++) {
        struct acc a = {0};
        for (uint32_t b = 0; b < g->pools[p].n; b++) {
            uint32_t slot = g->pools[p].backends[b].slot;
            if (slot >= se.n || !se.t[slot]) continue;
            struct stats_backend c;
            stats_backend_sum(slot, &c);
            sample_one(se.t[slot], &c, now, &a);
            if (seen) seen[slot] = 1;
        }
        for (uint32_t i = 0; i < se.npt; i++)
            if (!strncmp(se.pt[i]->name, g->cfg->pools[p].name, sizeof(se.pt[i]->name) - 1)) {
                pool_sample(&se.pt[i]->t, &a, now);
                if (pseen) pseen[i] = 1;
                break;
            }
    }
    for (uint32_t i = 0; seen && i < se.n; i++)
        if (se.t[i] && !seen[i]) {
            for (int s = 0; s < S_N; s++) se.t[i]->v[s][now % SERIES_LEN] = NAN;
            se.t[i]->last_t = 0;
        }
    for (uint32_t i = 0; pseen && i < se.npt; i++)
        if (!pseen[i])
            for (int s = 0; s < S_N; s++) se.pt[i]->t.v[s][now % SERIES_LEN] = NAN;
    free(seen);
    free(pseen);
    se.end = now;
}

double series_recent_ms(uint32_t slot, const struct stats_backend *now, double q)
{
    if (slot >= se.n || !se.t[slot]) return -1;
    struct track *k = se.t[slot];
    /* the oldest snapshot not older than 70 s */
    int best = -1;
    for (int i = 0; i < SNAPS; i++)
        if (k->snap_t[i] && se.end - k->snap_t[i] <= SNAP_EVERY * SNAPS &&
            (best < 0 || k->snap_t[i] < k->snap_t[best]))
            best = i;
    uint64_t d[STATS_NBUCKETS];
    for (int i = 0; i < STATS_NBUCKETS; i++)
        d[i] = now->total_time.bucket[i] - (best >= 0 ? k->snap[best][i] : 0);
    double v = stats_quantile(d, q);
    return v < 0 ? v : v * 1000;
}

static const char *const names[S_N] = {"rps",    "rate_4xx", "rate_5xx", "p50_ms",
                                       "p95_ms", "p99_ms",   "inflight"};

/* A sample as the API writes it: whole requests in flight; rates and ms with
 * 3 decimals below 100, 1 above. */
static void value(struct jbuf *b, int s, float v)
{
    if (isnan(v))
        jb_putn(b, "null", 4);
    else
        jb_fixed(b, v, s == S_INFLIGHT ? 0 : v >= 100 ? 1 : 3);
}

/* [,]"rps":[..],...,"inflight":[..] for seconds from..end of k (NULL: nulls) */
static void arrays(struct jbuf *b, const struct track *k, int64_t from, int64_t end, int comma)
{
    for (int s = 0; s < S_N; s++) {
        if (s || comma) jb_putn(b, ",", 1);
        jb_putn(b, "\"", 1);
        jb_puts(b, names[s]);
        jb_putn(b, "\":[", 3);
        for (int64_t t = from; t <= end; t++) {
            if (t > from) jb_putn(b, ",", 1);
            value(b, s, k ? k->v[s][t % SERIES_LEN] : NAN);
        }
        jb_putn(b, "]", 1);
    }
}

/* ,"last":{"rps":..,...}: the newest second's sample */
static void last(struct jbuf *b, const struct track *k, int64_t end)
{
    jb_puts(b, ",\"last\":{");
    for (int s = 0; s < S_N; s++) {
        if (s) jb_putn(b, ",", 1);
        jb_putn(b, "\"", 1);
        jb_puts(b, names[s]);
        jb_putn(b, "\":", 2);
        value(b, s, k && end > 0 ? k->v[s][end % SERIES_LEN] : NAN);
    }
    jb_putn(b, "}", 1);
}

int series_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_is_space)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '%') {
            unsigned v = 0;
            for (size_t j = 1; j <= 2; j++) {
                char h = i + j < n ? s[i + j] : 0;
                unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                             : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                             : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                                    : 16u;
                if (d == 16) return -1;
                v = v * 16 + d;
            }
            if (!v) return -1;
            c = (char)v;
            i += 2;
        }
        if (k + 1 >= cap) return -1;
        out[k++] = c;
    }
    out[k] = 0;
    return 0;
}

/* A whole number 0..max written in decimal digits only: 0, or -1. */
static int whole(const char *v, long long max, long long *out)
{
    long long n = 0;
    if (!*v) return -1;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        n = n * 10 + (*p - '0');
        if (n > max) return -1;
    }
    *out = n;
    return 0;
}

int series_parse_query(const char *query, struct series_query *q, char *why, size_t cap)
{
    *q = (struct series_query){.since = -1, .top = SERIES_TOP_DEFAULT};
    int have[4] = {0};
    static const char *const keys[4] = {"since", "top", "pool", "backend"};
    for (const char *p = query; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kl = eq ? (size_t)(eq - p) : n;
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strlen(keys[i]) == kl && !strncmp(p, keys[i], kl)) k = i;
        if (n && k < 0) {
            snprintf(why, cap, "unknown parameter '%.*s' (known: since, top, pool, backend)",
                     (int)(kl < 40 ? kl : 40), p);
            return -1;
        }
        if (k >= 0) {
            char v[128];
            if (have[k]++) {
                snprintf(why, cap, "parameter '%s' given twice", keys[k]);
                return -1;
            }
            if (!eq || series_pct_decode(eq + 1, n - kl - 1, v, sizeof(v), 1) < 0) {
                snprintf(why, cap, "parameter '%s': %s", keys[k],
                         eq ? "a bad %-escape or a value too long" : "no value (write name=value)");
                return -1;
            }
            long long x;
            switch (k) {
            case 0:
                if (whole(v, 1LL << 40, &x) < 0) {
                    snprintf(why, cap, "since must be a unix second (a whole number), not '%.40s'",
                             v);
                    return -1;
                }
                q->since = x;
                break;
            case 1:
                if (!strcmp(v, "all")) {
                    q->top = -1;
                } else if (whole(v, SERIES_TOP_MAX, &x) < 0) {
                    snprintf(why, cap, "top must be 0..%d or 'all', not '%.40s'", SERIES_TOP_MAX,
                             v);
                    return -1;
                } else {
                    q->top = (int)x;
                }
                break;
            case 2:
            case 3:
                if (!v[0] || strlen(v) >= sizeof(q->pool)) {
                    snprintf(why, cap, "parameter '%s' is %s", keys[k],
                             v[0] ? "longer than a name can be" : "empty");
                    return -1;
                }
                memcpy(k == 2 ? q->pool : q->backend, v, strlen(v) + 1);
                break;
            }
        }
        p += n;
        if (*p == '&') p++;
    }
    if (q->backend[0] && !q->pool[0]) {
        snprintf(why, cap, "backend= needs pool= (a backend's name is unique in its pool)");
        return -1;
    }
    return 0;
}

/* Requests over the ring: the ranking of top=. */
static double traffic(const struct track *k)
{
    double sum = 0;
    if (!k) return 0;
    for (int i = 0; i < SERIES_LEN; i++)
        if (!isnan(k->v[S_RPS][i])) sum += k->v[S_RPS][i];
    return sum;
}

static int by_score(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (se.score[x] != se.score[y]) return se.score[x] < se.score[y] ? 1 : -1;
    return x < y ? -1 : x > y;
}

/* Marks in chosen[] the backends of p whose arrays are written. 0, or -1 (oom). */
static int choose(const struct pool *p, const struct series_query *q, uint8_t *chosen)
{
    uint32_t n = p->n;
    if (q->backend[0]) {
        for (uint32_t i = 0; i < n; i++) chosen[i] = !strcmp(p->backends[i].conf->name, q->backend);
        return 0;
    }
    if (q->top < 0 || (uint32_t)q->top >= n) {
        memset(chosen, 1, n);
        return 0;
    }
    memset(chosen, 0, n);
    if (n > se.order_cap) {
        uint32_t *o = realloc(se.order, n * sizeof(*o));
        if (o) se.order = o;
        double *sc = o ? realloc(se.score, n * sizeof(*sc)) : NULL;
        if (sc) se.score = sc;
        if (!o || !sc) return -1;
        se.order_cap = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = p->backends[i].slot;
        se.order[i] = i;
        /* in steps of 25 %: backends of about the same traffic rank in the pool's
         * order, so that the charted set does not change with every second's noise */
        double x = 1 + traffic(slot < se.n ? se.t[slot] : NULL), step = 0;
        while (x >= 1.25) x /= 1.25, step++;
        se.score[i] = step;
    }
    qsort(se.order, n, sizeof(*se.order), by_score);
    for (int i = 0; i < q->top; i++) chosen[se.order[i]] = 1;
    return 0;
}

int series_json(struct jbuf *b, const struct generation *g, const struct series_query *q, char *why,
                size_t cap)
{
    int only = -1;
    if (q->pool[0]) {
        for (uint32_t p = 0; p < g->cfg->npools; p++)
            if (!strcmp(g->cfg->pools[p].name, q->pool)) only = (int)p;
        if (only < 0) {
            snprintf(why, cap, "no pool named '%s'", q->pool);
            return 404;
        }
        if (q->backend[0]) {
            const struct pool *p = &g->pools[only];
            uint32_t i = 0;
            while (i < p->n && strcmp(p->backends[i].conf->name, q->backend)) i++;
            if (i == p->n) {
                snprintf(why, cap, "pool '%s' has no backend '%s'", q->pool, q->backend);
                return 404;
            }
        }
    }
    int64_t end = se.end, from = end - SERIES_LEN + 1;
    if (q->since >= 0 && q->since + 1 > from) from = q->since + 1;
    int64_t points = end >= from ? end - from + 1 : 0;
    jb_printf(b, "{\"step\":1,\"end\":%lld,\"points\":%lld,\"top\":", (long long)end,
              (long long)points);
    if (q->top < 0)
        jb_puts(b, "\"all\"");
    else
        jb_u64(b, (uint64_t)q->top);
    jb_puts(b, ",\"pools\":[");
    int first = 1;
    for (uint32_t p = 0; p < g->cfg->npools; p++) {
        if (only >= 0 && (int)p != only) continue;
        const struct pool *pl = &g->pools[p];
        uint8_t *chosen = malloc(pl->n + 1);
        if (!chosen || choose(pl, q, chosen) < 0) {
            free(chosen);
            b->oom = 1;
            return 0;
        }
        uint32_t shown = 0;
        for (uint32_t i = 0; i < pl->n; i++) shown += chosen[i];
        jb_puts(b, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        jb_str(b, g->cfg->pools[p].name);
        jb_printf(b, ",\"backends_total\":%u,\"backends_charted\":%u,\"total\":{", pl->n, shown);
        const struct pool_track *pt = pool_track_of(g->cfg->pools[p].name, 0);
        arrays(b, pt ? &pt->t : NULL, from, end, 0);
        last(b, pt ? &pt->t : NULL, end);
        jb_puts(b, "},\"backends\":[");
        int bfirst = 1;
        for (uint32_t i = 0; i < pl->n; i++) {
            const struct backend *be = &pl->backends[i];
            if (q->backend[0] && !chosen[i]) continue;
            const struct track *k = be->slot < se.n ? se.t[be->slot] : NULL;
            jb_puts(b, bfirst ? "{\"name\":" : ",{\"name\":");
            bfirst = 0;
            jb_str(b, be->conf->name);
            if (chosen[i]) arrays(b, k, from, end, 1);
            last(b, k, end);
            jb_putn(b, "}", 1);
        }
        jb_puts(b, "]}");
        free(chosen);
    }
    jb_puts(b, "]}");
    return 0;
}
