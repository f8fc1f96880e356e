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
/* Writes the /api/v1/series answer (samples newer than since; since < 0: all). */
void series_json(struct jbuf *b, const struct generation *g, int64_t since);
/* The q-quantile in ms of the total time of slot over about the last minute;
 * a negative value without samples. */
double series_recent_ms(uint32_t slot, const struct stats_backend *now, double q);
void series_free(void);

#endif
