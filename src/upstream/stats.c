/* stats: per-worker counters, stable slots, the shared part. See stats.h. */
#include "upstream/stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double stats_bounds[STATS_NBOUNDS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1,      2.5,   5,    10,    30};
const uint64_t stats_bounds_us[STATS_NBOUNDS] = {500,     1000,    2500,    5000,     10000,
                                                 25000,   50000,   100000,  250000,   500000,
                                                 1000000, 2500000, 5000000, 10000000, 30000000};

struct slot_key {
    char *key; /* "pool\nurl", or the bind address */
};

static struct {
    struct stats_worker **workers;
    uint32_t nworkers;
    struct slot_key *backends; /* by slot */
    struct stats_info *info;   /* by slot, under lock */
    uint32_t nbackends, cap;
    char *listeners[STATS_MAX_LISTENERS];
    uint32_t nlisteners;
    pthread_mutex_t lock;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER};

double stats_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int stats_init(uint32_t nworkers)
{
    st.workers = calloc(nworkers ? nworkers : 1, sizeof(*st.workers));
    if (!st.workers) return -ENOMEM;
    for (uint32_t i = 0; i < nworkers; i++)
        if (!(st.workers[i] = calloc(1, sizeof(struct stats_worker)))) return -ENOMEM;
    st.nworkers = nworkers;
    return 0;
}

void stats_free(void)
{
    for (uint32_t i = 0; i < st.nworkers; i++) {
        for (uint32_t c = 0; c < STATS_MAX_CHUNKS; c++) free(st.workers[i]->chunks[c]);
        free(st.workers[i]);
    }
    free(st.workers);
    for (uint32_t i = 0; i < st.nbackends; i++) free(st.backends[i].key);
    free(st.backends);
    free(st.info);
    for (uint32_t i = 0; i < st.nlisteners; i++) free(st.listeners[i]);
    memset(&st.workers, 0, sizeof(st) - sizeof(st.lock));
}

uint32_t stats_nworkers(void)
{
    return st.nworkers;
}

struct stats_worker *stats_worker(uint32_t i)
{
    return i < st.nworkers ? st.workers[i] : NULL;
}

uint32_t stats_backend_slots(void)
{
    return st.nbackends;
}

uint32_t stats_backend_slot(const char *pool, const char *url)
{
    char key[400];
    snprintf(key, sizeof(key), "%s\n%s", pool, url);
    for (uint32_t i = 0; i < st.nbackends; i++)
        if (!strcmp(st.backends[i].key, key)) return i;
    uint32_t slot = st.nbackends;
    if (slot >= STATS_CHUNK * STATS_MAX_CHUNKS) return UINT32_MAX;
    if (slot == st.cap) {
        uint32_t cap = st.cap ? st.cap * 2 : 64;
        struct slot_key *k = realloc(st.backends, cap * sizeof(*k));
        if (!k) return UINT32_MAX;
        st.backends = k;
        pthread_mutex_lock(&st.lock);
        struct stats_info *in = realloc(st.info, cap * sizeof(*in));
        if (in) st.info = in;
        pthread_mutex_unlock(&st.lock);
        if (!in) return UINT32_MAX;
        st.cap = cap;
    }
    if (slot % STATS_CHUNK == 0)
        for (uint32_t w = 0; w < st.nworkers; w++) {
            struct stats_backend *c = calloc(STATS_CHUNK, sizeof(*c));
            if (!c) return UINT32_MAX;
            st.workers[w]->chunks[slot / STATS_CHUNK] = c;
        }
    if (!(st.backends[slot].key = strdup(key))) return UINT32_MAX;
    pthread_mutex_lock(&st.lock);
    memset(&st.info[slot], 0, sizeof(st.info[slot]));
    st.info[slot].since = stats_unix_now();
    snprintf(st.info[slot].reason, sizeof(st.info[slot].reason), "started");
    st.nbackends++;
    pthread_mutex_unlock(&st.lock);
    return slot;
}

uint32_t stats_listener_slot(const char *bind)
{
    for (uint32_t i = 0; i < st.nlisteners; i++)
        if (!strcmp(st.listeners[i], bind)) return i;
    if (st.nlisteners >= STATS_MAX_LISTENERS) return UINT32_MAX;
    if (!(st.listeners[st.nlisteners] = strdup(bind))) return UINT32_MAX;
    return st.nlisteners++;
}

void stats_backend_sum(uint32_t slot, struct stats_backend *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= st.nbackends) return;
    /* every field is a uint64_t: sum them as an array */
    uint64_t *o = (uint64_t *)out;
    for (uint32_t w = 0; w < st.nworkers; w++) {
        uint64_t *in = (uint64_t *)stats_backend_of(st.workers[w], slot);
        for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++) o[i] += STATS_READ(in[i]);
    }
}

void stats_listener_sum(uint32_t slot, struct stats_listener *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= STATS_MAX_LISTENERS) return;
    uint64_t *o = (uint64_t *)out;
    for (uint32_t w = 0; w < st.nworkers; w++) {
        uint64_t *in = (uint64_t *)&st.workers[w]->listeners[slot];
        for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++) o[i] += STATS_READ(in[i]);
    }
}

void stats_note_state(uint32_t slot, const char *reason, int transition)
{
    pthread_mutex_lock(&st.lock);
    if (slot < st.nbackends) {
        st.info[slot].since = stats_unix_now();
        snprintf(st.info[slot].reason, sizeof(st.info[slot].reason), "%s", reason);
        st.info[slot].transitions += transition != 0;
    }
    pthread_mutex_unlock(&st.lock);
}

void stats_note_check(uint32_t slot, int ok, const char *detail)
{
    pthread_mutex_lock(&st.lock);
    if (slot < st.nbackends) {
        st.info[slot].check_time = stats_unix_now();
        st.info[slot].check_ok = ok;
        snprintf(st.info[slot].check_detail, sizeof(st.info[slot].check_detail), "%s", detail);
        st.info[slot].check_failures += !ok;
    }
    pthread_mutex_unlock(&st.lock);
}

void stats_info_get(uint32_t slot, struct stats_info *out)
{
    pthread_mutex_lock(&st.lock);
    if (slot < st.nbackends)
        *out = st.info[slot];
    else
        memset(out, 0, sizeof(*out));
    pthread_mutex_unlock(&st.lock);
}

double stats_quantile(const uint64_t b[STATS_NBUCKETS], double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < STATS_NBUCKETS; i++) total += b[i];
    if (!total) return -1;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (unsigned i = 0; i < STATS_NBUCKETS; i++) {
        if (!b[i] || (double)(cum + b[i]) < rank) {
            cum += b[i];
            continue;
        }
        if (i == STATS_NBOUNDS) return stats_bounds[STATS_NBOUNDS - 1];
        double lo = i ? stats_bounds[i - 1] : 0, hi = stats_bounds[i];
        return lo + (hi - lo) * (rank - (double)cum) / (double)b[i];
    }
    return stats_bounds[STATS_NBOUNDS - 1];
}
