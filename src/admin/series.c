/* series: the per-second ring. See series.h. */
#include "admin/series.h"

#include <math.h>
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

static struct {
    struct track **t; /* by slot */
    uint32_t n;
    int64_t end; /* newest sample second */
} se;

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
        for (int s = 0; s < S_N; s++)
            for (int i = 0; i < SERIES_LEN; i++) k->v[s][i] = NAN;
        se.t[slot] = k;
    }
    return se.t[slot];
}

void series_free(void)
{
    for (uint32_t i = 0; i < se.n; i++) free(se.t[i]);
    free(se.t);
    memset(&se, 0, sizeof(se));
}

static void sample_one(struct track *k, const struct stats_backend *c, int64_t now)
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
        double q50 = stats_quantile(d, 0.5), q95 = stats_quantile(d, 0.95),
               q99 = stats_quantile(d, 0.99);
        k->v[S_P50][pos] = q50 < 0 ? NAN : (float)(q50 * 1000);
        k->v[S_P95][pos] = q95 < 0 ? NAN : (float)(q95 * 1000);
        k->v[S_P99][pos] = q99 < 0 ? NAN : (float)(q99 * 1000);
    } else if (k->last_t != now) {
        for (int s = 0; s < S_INFLIGHT; s++) k->v[s][pos] = NAN; /* the first: no rate yet */
    }
    k->v[S_INFLIGHT][pos] = (float)(c->requests - c->ended);
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

void series_sample(const struct generation *g, int64_t now)
{
    if (now <= se.end) return;
    /* every track first: growing the table moves it */
    for (uint32_t p = 0; p < g->cfg->npools; p++)
        for (uint32_t b = 0; b < g->pools[p].n; b++) track_of(g->pools[p].backends[b].slot);
    /* backends not in g: no sample in this second */
    uint8_t *seen = calloc(se.n + 1, 1);
    for (uint32_t p = 0; p < g->cfg->npools; p++)
        for (uint32_t b = 0; b < g->pools[p].n; b++) {
            uint32_t slot = g->pools[p].backends[b].slot;
            if (slot >= se.n || !se.t[slot]) continue;
            struct stats_backend c;
            stats_backend_sum(slot, &c);
            sample_one(se.t[slot], &c, now);
            if (seen) seen[slot] = 1;
        }
    for (uint32_t i = 0; seen && i < se.n; i++)
        if (se.t[i] && !seen[i]) {
            for (int s = 0; s < S_N; s++) se.t[i]->v[s][now % SERIES_LEN] = NAN;
            se.t[i]->last_t = 0;
        }
    free(seen);
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

static void series_array(struct jbuf *b, const char *name, const struct track *k, int s,
                         int64_t from, int64_t end)
{
    jb_printf(b, ",\"%s\":[", name);
    for (int64_t t = from; t <= end; t++) {
        if (t > from) jb_putn(b, ",", 1);
        float v = k ? k->v[s][t % SERIES_LEN] : NAN;
        if (isnan(v))
            jb_putn(b, "null", 4);
        else
            jb_fixed(b, v, s == S_INFLIGHT ? 0 : v >= 100 ? 1 : 3);
    }
    jb_putn(b, "]", 1);
}

void series_json(struct jbuf *b, const struct generation *g, int64_t since)
{
    int64_t end = se.end, from = end - SERIES_LEN + 1;
    if (since >= 0 && since + 1 > from) from = since + 1;
    int64_t points = end >= from ? end - from + 1 : 0;
    jb_printf(b, "{\"step\":1,\"end\":%lld,\"points\":%lld,\"pools\":[", (long long)end,
              (long long)points);
    for (uint32_t p = 0; p < g->cfg->npools; p++) {
        jb_puts(b, p ? ",{\"name\":" : "{\"name\":");
        jb_str(b, g->cfg->pools[p].name);
        jb_puts(b, ",\"backends\":[");
        for (uint32_t i = 0; i < g->pools[p].n; i++) {
            const struct backend *be = &g->pools[p].backends[i];
            const struct track *k = be->slot < se.n ? se.t[be->slot] : NULL;
            jb_puts(b, i ? ",{\"name\":" : "{\"name\":");
            jb_str(b, be->conf->name);
            static const char *const names[S_N] = {"rps",    "rate_4xx", "rate_5xx", "p50_ms",
                                                   "p95_ms", "p99_ms",   "inflight"};
            for (int s = 0; s < S_N; s++) series_array(b, names[s], k, s, from, end);
            jb_putn(b, "}", 1);
        }
        jb_puts(b, "]}");
    }
    jb_puts(b, "]}");
}
