/* series: per-second samples of every backend for the last SERIES_LEN
 * seconds (request rate, 4xx and 5xx rates, p50/p95/p99 of the total time,
 * requests in flight), taken by the control thread once a second from the
 * counters (stats.h), for /api/v1/series and the dashboard; and the
 * histograms of about a minute ago, for the recent p50/p99 of /api/v1/pools.
 *
 * Memory: 7 float series of SERIES_LEN samples, 16.8 KB per backend slot,
 * plus 7 cumulative histograms of 16 buckets (0.9 KB): 17.7 MB for 1,000
 * backends. Control thread only. */
#ifndef USHER_ADMIN_SERIES_H
#define USHER_ADMIN_SERIES_H

#include <stdint.h>

#include "admin/json.h"
#include "upstream/generation.h"
#include "upstream/stats.h"

#define SERIES_LEN 600

/* Takes the sample of unix second now for every backend of g. */
void series_sample(const struct generation *g, int64_t now);
#define SERIES_TOP_DEFAULT 10 /* backends per pool with their arrays, unless asked */
#define SERIES_TOP_MAX 100000

/* What /api/v1/series was asked (docs/API.md). */
struct series_query {
    long long since;  /* samples newer than this unix second; -1: the whole ring */
    int top;          /* backends per pool written with their arrays, by traffic; -1: all */
    char pool[64];    /* "": every pool */
    char backend[64]; /* "": by top; else only this backend of pool */
};

/* Reads query (after '?') into q: 0, or -1 with why (a 400). */
int series_parse_query(const char *query, struct series_query *q, char *why, size_t cap);
/* Writes the /api/v1/series answer for q: 0, or an HTTP status (404: no
 * such pool or backend) with why, b untouched. */
int series_json(struct jbuf *b, const struct generation *g, const struct series_query *q, char *why,
                size_t cap);
/* The q-quantile in ms of the total time of slot over about the last minute;
 * a negative value without samples. */
double series_recent_ms(uint32_t slot, const struct stats_backend *now, double q);
void series_free(void);

/* %XX-decodes [s, s + n) into out[cap]; plus_is_space: '+' is a space (a
 * query value, as in a form), else a '+' (a path segment). 0, or -1: a bad
 * escape, a NUL, or too long. */
int series_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_is_space);

#endif
