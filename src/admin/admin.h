/* admin: the admin listener on the control thread's loop: /metrics, the
 * JSON API (/api/v1/...), /healthz, /readyz and the dashboard at /.
 *
 * It never runs on a worker: it reads the workers' counters (stats.h), the
 * generation in force and the backends' atomics, and changes backends by
 * setting those atomics (drain, maintenance) or by asking main to switch to
 * a new generation built from the one in force plus the runtime overlay
 * (weights, added and removed backends): the same switch as a reload. */
#ifndef USHER_ADMIN_ADMIN_H
#define USHER_ADMIN_ADMIN_H

#include <stddef.h>

#include "config/config.h"
#include "core/loop.h"
#include "upstream/generation.h"

/* What main lends the admin listener. */
struct admin_host {
    struct loop *loop;       /* the control thread's */
    struct generation **gen; /* the generation in force (main's reference) */
    /* Reads the file again, as SIGHUP does: 0, or -1; msg says what happened. */
    int (*reload)(char *msg, size_t cap);
    /* Switches to a generation built from next (taken over; the overlay is
     * applied on the way): 0, or -1 with msg. */
    int (*apply)(struct config *next, char *msg, size_t cap);
};

/* Listens on cfg's admin.bind. 0, or -errno (logged). */
int admin_start(const struct admin_host *h, const struct config *cfg);
void admin_stop(void);

/* Applies the runtime overlay (the API's weights, states, added and removed
 * backends) to a configuration about to become a generation; from_file: it
 * was just read from the file (which may name API backends anew). */
void admin_overlay(struct config *next, int from_file);
/* A reload ended (SIGHUP or the API): counted, and an event. */
void admin_reloaded(int ok, const char *msg);

#endif
