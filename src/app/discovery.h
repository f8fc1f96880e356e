/* discovery: the glue between a pool's discover: settings and the
 * configuration in force (docs/DISCOVERY.md). On the control thread.
 *
 * One struct discover (upstream/discover.c) per pool that discovers. Each
 * new set it gives is applied as the admin API applies a change: a copy of
 * the configuration in force, that pool's discovered backends replaced by
 * the set, the API's overlay on top, then a new generation (host->apply). A
 * backend is identified by its URL (http://ADDRESS:PORT), so one that stays
 * keeps its state, counters and pooled connections (generation.c,
 * upconn.c); a new one starts DOWN until its first health check passes
 * when the pool has active checks; one that goes leaves the new generation
 * (requests in flight finish on the old one; its pooled connections close).
 *
 * A reload builds its configuration from the file: discovery_fill adds the
 * sets in use, so that a reload does not drop them; discovery_sync then
 * starts, restarts or stops the discoverers to match. */
#ifndef USHER_APP_DISCOVERY_H
#define USHER_APP_DISCOVERY_H

#include <stddef.h>

#include "config/config.h"
#include "core/loop.h"

struct discovery_host {
    struct loop *loop;
    /* the configuration in force */
    const struct config *(*current)(void);
    /* builds a generation from next (taken over); 0, or -1 with msg */
    int (*apply)(struct config *next, char *msg, size_t cap);
};

/* Starts a discoverer for every pool of cfg that has discover.dns. 0, or -1
 * (logged: c-ares could not start, a resolver it refuses). */
int discovery_start(const struct discovery_host *host, const struct config *cfg);
/* Replaces the discovered backends of next's pools by the sets in use (for
 * pools whose name, type and port are those of a running discoverer). */
void discovery_fill(struct config *next);
/* After a reload to cfg: stops the discoverers of pools that are gone or no
 * longer discover, restarts those whose settings changed, starts new ones. */
void discovery_sync(const struct config *cfg);
/* Stops every discoverer (at exit; their memory goes at the end of the loop
 * iteration or with loop_run_deferred). */
void discovery_stop(void);

/* The usher backend weight of an SRV weight (RFC 2782: 0..65535, 0 the
 * smallest share) in a set whose largest SRV weight is max: 1..1000. */
unsigned discovery_weight(unsigned srv_weight, unsigned max);

#endif
