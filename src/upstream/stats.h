/* stats: the counters behind /metrics and the admin API.
 *
 * Per worker, one writer each: a worker's counters are written by that worker
 * only, with a relaxed load and a relaxed store (a plain mov on x86-64: no
 * lock, no atomic read-modify-write on the request path), and read by the
 * control thread, which sums relaxed loads over the workers.
 *
 * A backend has a stable slot: the same (pool, URL) gets the same slot in
 * every generation (reloads and API changes), so its counters go on across
 * them; a backend removed and added again continues where it was. Slots are
 * handed out by the control thread only (gen_new), and the per-worker counter
 * chunks of a slot exist before any generation naming it is published.
 *
 * The shared part of a slot (state since when and why, last check, check
 * failures, transitions) is written by the health checks (control thread) and
 * by passive failures (a worker, rare), under a mutex: never per request. */
#ifndef USHER_UPSTREAM_STATS_H
#define USHER_UPSTREAM_STATS_H

#include <stdint.h>

/* Histogram upper bounds, seconds: 0.5 ms .. 30 s, then +Inf. */
#define STATS_NBOUNDS 15
#define STATS_NBUCKETS (STATS_NBOUNDS + 1)
extern const double stats_bounds[STATS_NBOUNDS];
extern const uint64_t stats_bounds_us[STATS_NBOUNDS];

#define STATS_CHUNK 64          /* backend slots per allocation */
#define STATS_MAX_CHUNKS 1024   /* 65536 backend slots */
#define STATS_MAX_LISTENERS 256 /* listener slots (by bind address) */

struct stats_hist {
    uint64_t
        bucket[STATS_NBUCKETS]; /* not cumulative: bucket i counts bounds[i-1] < v <= bounds[i] */
    uint64_t sum_us;
};

/* One backend on one worker. */
struct stats_backend {
    uint64_t requests;     /* attempts sent (a retry counts again) */
    uint64_t responses[5]; /* final responses by class 1xx..5xx */
    uint64_t connect_errors, retries;
    uint64_t bytes_in, bytes_out; /* from the backend, to the backend */
    uint64_t ended;               /* attempts released */
    uint64_t idle_opened,
        idle_closed; /* put in and taken out of the idle pool: idle = the difference */
    struct stats_hist response_time, total_time;
};

/* One listener (bind address) on one worker. */
struct stats_listener {
    uint64_t opened, closed; /* connections */
    uint64_t responses[5];   /* final statuses the clients got, usher's own included */
};

struct stats_worker {
    struct stats_backend *chunks[STATS_MAX_CHUNKS];
    struct stats_listener listeners[STATS_MAX_LISTENERS];
};

/* One writer: a plain load and store, never torn, never a locked instruction. */
#define STATS_ADD(field, n)                                                                        \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define STATS_READ(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* The bucket of a duration in microseconds (0..STATS_NBOUNDS; the last is +Inf). */
static inline unsigned stats_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < STATS_NBOUNDS && us > stats_bounds_us[i]) i++;
    return i;
}

static inline void stats_hist_add(struct stats_hist *h, uint64_t us)
{
    STATS_ADD(h->bucket[stats_bucket(us)], 1);
    STATS_ADD(h->sum_us, us);
}

static inline struct stats_backend *stats_backend_of(struct stats_worker *w, uint32_t slot)
{
    return &w->chunks[slot / STATS_CHUNK][slot % STATS_CHUNK];
}

static inline unsigned stats_class(int status)
{
    return status >= 100 && status <= 599 ? (unsigned)(status / 100 - 1) : 4;
}

/* Sets up counters for n workers. Main thread, before any generation. 0 or -ENOMEM. */
int stats_init(uint32_t nworkers);
void stats_free(void);
uint32_t stats_nworkers(void);
/* Worker i's counters (NULL before stats_init: counting is then off). */
struct stats_worker *stats_worker(uint32_t i);

/* The slot of backend url in pool (a new one the first time). Control
 * thread. Returns the slot, or UINT32_MAX when none is left (ENOMEM). */
uint32_t stats_backend_slot(const char *pool, const char *url);
/* The slot of listener bind (a new one the first time), or UINT32_MAX. */
uint32_t stats_listener_slot(const char *bind);
/* Slots handed out so far. */
uint32_t stats_backend_slots(void);

/* A backend's counters summed over the workers. */
void stats_backend_sum(uint32_t slot, struct stats_backend *out);
void stats_listener_sum(uint32_t slot, struct stats_listener *out);

/* The shared part of a backend slot. */
struct stats_info {
    double since;      /* unix seconds of the last state change */
    char reason[200];  /* why */
    double check_time; /* last active check, unix seconds (0: none yet) */
    int check_ok;
    char check_detail[120];
    uint64_t check_failures, transitions;
};
/* A state change of slot's backend (health, API): since = now, reason. */
void stats_note_state(uint32_t slot, const char *reason, int transition);
/* An active check of slot's backend ended. */
void stats_note_check(uint32_t slot, int ok, const char *detail);
/* A copy of slot's shared part. */
void stats_info_get(uint32_t slot, struct stats_info *out);

/* Unix time in seconds, as a double. */
double stats_unix_now(void);

/* The q-quantile (0..1), in seconds, of the histogram whose buckets
 * (not cumulative) are b[], as Prometheus' histogram_quantile reads it
 * (linear within a bucket; the +Inf bucket answers the last bound).
 * A negative value when it holds no sample. */
double stats_quantile(const uint64_t b[STATS_NBUCKETS], double q);

#endif
