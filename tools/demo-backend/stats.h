/* stats: request counters for /stats, total and per method, since start or
 * the last POST /stats/reset. */
#ifndef DEMO_STATS_H
#define DEMO_STATS_H

#include "buf.h"

/* Counts one request with this method; past 64 distinct methods the rest share the last slot. */
void stats_count(const char *method);
/* Sets every counter back to zero. */
void stats_reset(void);
/* Appends "requests":N,"by_method":{"GET":N,...} (JSON members, no braces around). */
void stats_append_json(struct buf *b);

#endif
