/* events: a ring of the last EVENTS_MAX events. See events.h. */
#include "upstream/events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "upstream/stats.h"

static struct {
    struct event ring[EVENTS_MAX];
    uint64_t last; /* seq of the newest */
    pthread_mutex_t lock;
} ev = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t events_add(const char *kind, const char *pool, const char *backend, const char *fmt, ...)
{
    pthread_mutex_lock(&ev.lock);
    uint64_t seq = ++ev.last;
    struct event *e = &ev.ring[seq % EVENTS_MAX];
    e->seq = seq;
    e->time = stats_unix_now();
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->pool, sizeof(e->pool), "%s", pool ? pool : "");
    snprintf(e->backend, sizeof(e->backend), "%s", backend ? backend : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&ev.lock);
    return seq;
}

uint32_t events_since(uint64_t since, struct event *out, uint32_t cap, uint64_t *last)
{
    pthread_mutex_lock(&ev.lock);
    uint64_t first = ev.last > EVENTS_MAX ? ev.last - EVENTS_MAX + 1 : 1;
    if (since + 1 > first) first = since + 1;
    uint32_t n = 0;
    for (uint64_t s = first; s <= ev.last && n < cap; s++) out[n++] = ev.ring[s % EVENTS_MAX];
    *last = ev.last;
    pthread_mutex_unlock(&ev.lock);
    return n;
}
