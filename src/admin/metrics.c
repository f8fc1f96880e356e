/* metrics: the Prometheus text exposition. See metrics.h. */
#include "admin/metrics.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upstream/stats.h"
#include "upstream/discover.h"
#include "version.h"

static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void help(struct jbuf *b, const char *name, const char *type, const char *text)
{
    jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A label value: \ " and newline escaped (text format 0.0.4). */
static void label(struct jbuf *b, const char *v)
{
    size_t n = strcspn(v, "\\\"\n");
    jb_putn(b, v, n); /* the usual case: nothing to escape */
    for (const char *p = v + n; *p; p++) {
        if (*p == '\\' || *p == '"')
            jb_putn(b, "\\", 1), jb_putn(b, p, 1);
        else if (*p == '\n')
            jb_putn(b, "\\n", 2);
        else
            jb_putn(b, p, 1);
    }
}

/* What one scrape knows of one backend: where its labels are, its counters.
 * The array and the labels' buffer are kept from one scrape to the next, so
 * that a scrape of many backends makes no allocation once they have grown. */
struct be_snap {
    size_t lab_off; /* in ms.labels: pool="..",backend=".." */
    size_t lab_len;
    struct stats_backend c;
    uint64_t check_failures, transitions;
    int up, state;
};

static struct {
    struct be_snap *snap;
    uint32_t cap;
    struct jbuf labels;
} ms;

void metrics_free(void)
{
    free(ms.snap);
    jb_free(&ms.labels);
    memset(&ms, 0, sizeof(ms));
}

struct lit {
    const char *s;
    size_t n;
};
#define LIT(x)                                                                                     \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }

static inline char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* name{LABELS[,extra]} v: at most nl + ll + el + 25 bytes */
static inline char *line_at(char *o, const char *name, size_t nl, const char *lab, size_t ll,
                            const struct lit *extra, uint64_t v)
{
    o = put(o, name, nl);
    *o++ = '{';
    o = put(o, lab, ll);
    if (extra) o = put(o, extra->s, extra->n);
    *o++ = '}';
    *o++ = ' ';
    o = jb_u64_at(o, v);
    *o++ = '\n';
    return o;
}

static const struct lit les[STATS_NBUCKETS] = {
    LIT(",le=\"0.0005\""), LIT(",le=\"0.001\""), LIT(",le=\"0.0025\""), LIT(",le=\"0.005\""),
    LIT(",le=\"0.01\""),   LIT(",le=\"0.025\""), LIT(",le=\"0.05\""),   LIT(",le=\"0.1\""),
    LIT(",le=\"0.25\""),   LIT(",le=\"0.5\""),   LIT(",le=\"1\""),      LIT(",le=\"2.5\""),
    LIT(",le=\"5\""),      LIT(",le=\"10\""),    LIT(",le=\"30\""),     LIT(",le=\"+Inf\"")};
static const struct lit classes_l[5] = {LIT(",code=\"1xx\""), LIT(",code=\"2xx\""),
                                        LIT(",code=\"3xx\""), LIT(",code=\"4xx\""),
                                        LIT(",code=\"5xx\"")};
static const struct lit states_l[4] = {LIT(",state=\"up\""), LIT(",state=\"down\""),
                                       LIT(",state=\"drain\""), LIT(",state=\"maint\"")};
#define EXTRA_MAX 16 /* the longest of the extras above */

/* The _bucket lines (cumulative), _sum and _count of one backend's histogram:
 * at most STATS_NBUCKETS + 2 lines. bucket and count are name_bucket and
 * name_count, made once per family. */
static char *hist_at(char *o, const struct lit *name, const struct lit *bucket,
                     const struct lit *count, const char *lab, size_t ll,
                     const struct stats_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        cum += h->bucket[i];
        o = line_at(o, bucket->s, bucket->n, lab, ll, &les[i], cum);
    }
    /* the sum in seconds with six decimals at most, from the integer microseconds */
    o = put(o, name->s, name->n);
    o = put(o, "_sum{", 5);
    o = put(o, lab, ll);
    o = put(o, "} ", 2);
    o = jb_u64_at(o, h->sum_us / 1000000);
    uint32_t frac = (uint32_t)(h->sum_us % 1000000);
    if (frac) {
        char d[6];
        int k = 6;
        while (frac % 10 == 0) frac /= 10, k--;
        for (int i = k; i > 0; i--) d[i - 1] = (char)('0' + frac % 10), frac /= 10;
        *o++ = '.';
        o = put(o, d, (size_t)k);
    }
    *o++ = '\n';
    return line_at(o, count->s, count->n, lab, ll, NULL, cum);
}

enum {
    M_REQ,
    M_RESP,
    M_RT,
    M_TT,
    M_CUR,
    M_UP,
    M_STATE,
    M_CONNERR,
    M_RETRY,
    M_CHECKF,
    M_TRANS,
    M_BIN,
    M_BOUT,
    M_IDLE,
    M_N
};

static const struct {
    const char *name, *type, *help;
} defs[M_N] = {
    {"usher_backend_requests_total", "counter", "Requests sent to the backend (each attempt)."},
    {"usher_backend_responses_total", "counter", "Final responses from the backend by class."},
    {"usher_backend_response_time_seconds", "histogram",
     "From the request sent until the response head arrived."},
    {"usher_backend_total_time_seconds", "histogram",
     "From the request head read until the last response byte was sent."},
    {"usher_backend_current_requests", "gauge", "Requests in flight to the backend."},
    {"usher_backend_up", "gauge", "1 when the health checks see the backend up."},
    {"usher_backend_state", "gauge", "1 for the backend's current state."},
    {"usher_backend_connect_errors_total", "counter", "Connects to the backend that failed."},
    {"usher_backend_retries_total", "counter", "Requests tried again after failing here."},
    {"usher_backend_check_failures_total", "counter", "Active health checks that failed."},
    {"usher_backend_transitions_total", "counter", "Changes between up and down."},
    {"usher_backend_bytes_in_total", "counter", "Bytes read from the backend."},
    {"usher_backend_bytes_out_total", "counter", "Bytes written to the backend."},
    {"usher_backend_idle_connections", "gauge", "Idle keep-alive connections to the backend."},
};

/* Lines of family m per backend. */
static size_t family_lines(int m)
{
    return m == M_RESP ? 5 : m == M_STATE ? 4 : (m == M_RT || m == M_TT) ? STATS_NBUCKETS + 2 : 1;
}

/* One pass over the backends: labels and counters (the workers' summed). 0, or -1 (oom). */
static int snapshot(const struct generation *g, uint32_t n)
{
    if (n > ms.cap) {
        struct be_snap *s = realloc(ms.snap, n * sizeof(*s));
        if (!s) return -1;
        ms.snap = s;
        ms.cap = n;
    }
    ms.labels.len = 0;
    ms.labels.oom = 0;
    uint32_t k = 0;
    for (uint32_t p = 0; p < g->cfg->npools; p++)
        for (uint32_t i = 0; i < g->pools[p].n; i++, k++) {
            const struct backend *be = &g->pools[p].backends[i];
            struct be_snap *s = &ms.snap[k];
            s->lab_off = ms.labels.len;
            jb_putn(&ms.labels, "pool=\"", 6);
            label(&ms.labels, g->cfg->pools[p].name);
            jb_putn(&ms.labels, "\",backend=\"", 11);
            label(&ms.labels, be->conf->name);
            jb_putn(&ms.labels, "\"", 1);
            s->lab_len = ms.labels.len - s->lab_off;
            stats_backend_sum(be->slot, &s->c);
            struct stats_info in;
            stats_info_get(be->slot, &in);
            s->check_failures = in.check_failures;
            s->transitions = in.transitions;
            s->up = backend_state(be) == BACKEND_UP;
            s->state = backend_maint(be) ? 3 : backend_draining(be) ? 2 : s->up ? 0 : 1;
        }
    return ms.labels.oom ? -1 : 0;
}

/* A scrape of many backends runs on the control thread, which may share a CPU
 * with a worker. After each YIELD_EVERY backends of a family it gives the CPU
 * away (sched_yield), so that a worker that became runnable waits for a slice
 * of the scrape (tens of microseconds), not for the whole of it. */
#define YIELD_EVERY 256

static void backends(struct jbuf *b, const struct generation *g)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < g->cfg->npools; p++) n += g->pools[p].n;
    if (snapshot(g, n) < 0) {
        b->oom = 1;
        return;
    }
    const char *labels = ms.labels.p;
    /* then one pass per family (the text format keeps a family's lines together),
     * each backend's lines written behind one check for room */
    for (int m = 0; m < M_N && !b->oom; m++) {
        struct lit name = {defs[m].name, strlen(defs[m].name)};
        char bn[64], cn[64];
        struct lit bucket = {bn, (size_t)snprintf(bn, sizeof(bn), "%s_bucket", name.s)};
        struct lit count = {cn, (size_t)snprintf(cn, sizeof(cn), "%s_count", name.s)};
        size_t per_line = bucket.n + EXTRA_MAX + 25, lines = family_lines(m);
        help(b, name.s, defs[m].type, defs[m].help);
        for (uint32_t i = 0; i < n; i++) {
            const struct be_snap *s = &ms.snap[i];
            const struct stats_backend *c = &s->c;
            const char *lab = labels + s->lab_off;
            size_t ll = s->lab_len;
            char *o = jb_reserve(b, lines * (per_line + ll));
            if (!o) return;
            switch (m) {
            case M_REQ: o = line_at(o, name.s, name.n, lab, ll, NULL, c->requests); break;
            case M_RESP:
                for (int q = 0; q < 5; q++)
                    o = line_at(o, name.s, name.n, lab, ll, &classes_l[q], c->responses[q]);
                break;
            case M_RT: o = hist_at(o, &name, &bucket, &count, lab, ll, &c->response_time); break;
            case M_TT: o = hist_at(o, &name, &bucket, &count, lab, ll, &c->total_time); break;
            case M_CUR:
                o = line_at(o, name.s, name.n, lab, ll, NULL, c->requests - c->ended);
                break;
            case M_UP: o = line_at(o, name.s, name.n, lab, ll, NULL, (uint64_t)s->up); break;
            case M_STATE:
                for (int q = 0; q < 4; q++)
                    o = line_at(o, name.s, name.n, lab, ll, &states_l[q], q == s->state);
                break;
            case M_CONNERR: o = line_at(o, name.s, name.n, lab, ll, NULL, c->connect_errors); break;
            case M_RETRY: o = line_at(o, name.s, name.n, lab, ll, NULL, c->retries); break;
            case M_CHECKF: o = line_at(o, name.s, name.n, lab, ll, NULL, s->check_failures); break;
            case M_TRANS: o = line_at(o, name.s, name.n, lab, ll, NULL, s->transitions); break;
            case M_BIN: o = line_at(o, name.s, name.n, lab, ll, NULL, c->bytes_in); break;
            case M_BOUT: o = line_at(o, name.s, name.n, lab, ll, NULL, c->bytes_out); break;
            case M_IDLE:
                o = line_at(o, name.s, name.n, lab, ll, NULL, c->idle_opened - c->idle_closed);
                break;
            }
            jb_commit(b, o);
            if ((i + 1) % YIELD_EVERY == 0) sched_yield();
        }
    }
}

static void listeners(struct jbuf *b, const struct generation *g)
{
    const struct config *c = g->cfg;
    help(b, "usher_listener_connections_current", "gauge", "Client connections open now.");
    for (uint32_t l = 0; l < c->nlisteners; l++) {
        struct stats_listener s;
        stats_listener_sum(g->listener_slot[l], &s);
        jb_puts(b, "usher_listener_connections_current{listener=\"");
        label(b, c->listeners[l].bind);
        jb_puts(b, "\"} ");
        jb_u64(b, s.opened - s.closed);
        jb_putn(b, "\n", 1);
    }
    help(b, "usher_listener_connections_total", "counter", "Client connections accepted.");
    for (uint32_t l = 0; l < c->nlisteners; l++) {
        struct stats_listener s;
        stats_listener_sum(g->listener_slot[l], &s);
        jb_puts(b, "usher_listener_connections_total{listener=\"");
        label(b, c->listeners[l].bind);
        jb_puts(b, "\"} ");
        jb_u64(b, s.opened);
        jb_putn(b, "\n", 1);
    }
    help(b, "usher_listener_responses_total", "counter",
         "Final responses sent to clients by class, usher's own included.");
    for (uint32_t l = 0; l < c->nlisteners; l++) {
        struct stats_listener s;
        stats_listener_sum(g->listener_slot[l], &s);
        for (int k = 0; k < 5; k++) {
            jb_puts(b, "usher_listener_responses_total{listener=\"");
            label(b, c->listeners[l].bind);
            jb_printf(b, "\",code=\"%s\"} ", classes[k]);
            jb_u64(b, s.responses[k]);
            jb_putn(b, "\n", 1);
        }
    }
}

/* process_* from /proc/self, as the Prometheus client libraries write them. */
static void process(struct jbuf *b, const struct metrics_ctl *m)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long utime = 0, stime = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        char *p = strrchr(buf, ')'); /* the command may hold spaces */
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %*u %*u %ld",
                        &utime, &stime, &rss) != 3)
            utime = stime = 0, rss = 0;
        fclose(f);
    }
    unsigned fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) fds += e->d_name[0] != '.';
    if (d) closedir(d), fds--; /* the directory's own */
    help(b, "process_cpu_seconds_total", "counter", "User and system CPU time, seconds.");
    jb_printf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)tick);
    help(b, "process_resident_memory_bytes", "gauge", "Resident memory, bytes.");
    jb_printf(b, "process_resident_memory_bytes %ld\n", rss * page);
    help(b, "process_open_fds", "gauge", "Open file descriptors.");
    jb_printf(b, "process_open_fds %u\n", fds);
    help(b, "process_start_time_seconds", "gauge", "Start time, unix seconds.");
    jb_printf(b, "process_start_time_seconds %.3f\n", m->start_time);
}

/* DNS discovery (upstream/discover.c): one series per discovering pool */
static void discovery(struct jbuf *b)
{
    const struct discover *d = discover_running(0);
    if (!d) return;
    help(b, "usher_discovery_queries_total", "counter",
         "DNS rounds of a discovering pool by result: ok (a set), failed (timeout, SERVFAIL, "
         "NXDOMAIN, no address).");
    for (uint32_t i = 0; (d = discover_running(i)); i++) {
        uint64_t ok, failed;
        discover_counts(d, &ok, &failed);
        jb_puts(b, "usher_discovery_queries_total{pool=\"");
        label(b, discover_spec_of(d)->pool);
        jb_printf(b, "\",result=\"ok\"} %llu\n", (unsigned long long)ok);
        jb_puts(b, "usher_discovery_queries_total{pool=\"");
        label(b, discover_spec_of(d)->pool);
        jb_printf(b, "\",result=\"failed\"} %llu\n", (unsigned long long)failed);
    }
    help(b, "usher_discovery_backends", "gauge", "Backends the DNS answer in use gives a pool.");
    for (uint32_t i = 0; (d = discover_running(i)); i++) {
        jb_puts(b, "usher_discovery_backends{pool=\"");
        label(b, discover_spec_of(d)->pool);
        jb_printf(b, "\"} %u\n", discover_current(d)->n);
    }
}

void metrics_write(struct jbuf *b, const struct generation *g, const struct metrics_ctl *m)
{
    backends(b, g);
    listeners(b, g);
    discovery(b);
    help(b, "usher_config_reloads_total", "counter", "Reloads (SIGHUP or the API) by result.");
    jb_printf(b, "usher_config_reloads_total{result=\"ok\"} %llu\n",
              (unsigned long long)m->reloads_ok);
    jb_printf(b, "usher_config_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)m->reloads_failed);
    help(b, "usher_config_last_reload_success_timestamp_seconds", "gauge",
         "When the configuration in force was loaded, unix seconds.");
    jb_printf(b, "usher_config_last_reload_success_timestamp_seconds %.3f\n", m->last_reload_ok);
    help(b, "usher_build_info", "gauge", "1, labelled with usher's version.");
    jb_printf(b, "usher_build_info{version=\"%s\"} 1\n", USHER_VERSION);
    process(b, m);
}
