/* events: the last EVENTS_MAX things that happened to backends and to the
 * configuration (a backend down or up with the reason, a reload and its
 * result, every admin API change), numbered, for the admin API's
 * /api/v1/events and the dashboard.
 *
 * Written by the health checks and the admin API (control thread) and by
 * passive failures (a worker, rare): under a mutex, never per request. */
#ifndef USHER_UPSTREAM_EVENTS_H
#define USHER_UPSTREAM_EVENTS_H

#include <stdint.h>

#define EVENTS_MAX 256

struct event {
    uint64_t seq;  /* 1, 2, ...: the ring keeps the last EVENTS_MAX */
    double time;   /* unix seconds */
    char kind[12]; /* down up drain maint ready weight add remove reload */
    char pool[64]; /* "" when it does not apply */
    char backend[64];
    char message[300];
};

/* Records an event (pool and backend may be NULL); returns its seq. */
uint64_t events_add(const char *kind, const char *pool, const char *backend, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Copies the events with seq > since, oldest first, into out (at most cap);
 * their number. *last is the seq of the newest event (0: none yet). */
uint32_t events_since(uint64_t since, struct event *out, uint32_t cap, uint64_t *last);

#endif
