/* metrics: GET /metrics, the Prometheus text format 0.0.4, from the
 * counters summed over the workers (stats.h) and the generation in force.
 * Every name is in docs/METRICS.md. Control thread. */
#ifndef USHER_ADMIN_METRICS_H
#define USHER_ADMIN_METRICS_H

#include "admin/json.h"
#include "upstream/generation.h"

/* What the control thread knows beyond the counters. */
struct metrics_ctl {
    uint64_t reloads_ok, reloads_failed;
    double last_reload_ok; /* unix seconds (the start counts as one) */
    double start_time;
};

/* Writes the whole exposition into b. */
void metrics_write(struct jbuf *b, const struct generation *g, const struct metrics_ctl *m);
/* Frees what scrapes keep from one to the next. */
void metrics_free(void);

#endif
