/* metrics: the Prometheus text exposition. See metrics.h. */
#include "admin/metrics.h"

#include <dirent.h>
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

/* What one scrape knows of one backend: its labels and counters. */
struct be_snap {
    struct jbuf labels; /* pool="..",backend=".." */
    struct stats_backend c;
    struct stats_info in;
    int up, state;
};

/* name{LABELS[,extra]} value */
static void line(struct jbuf *b, const char *name, size_t nlen, const struct be_snap *s,
                 const char *extra, size_t elen, uint64_t v)
{
    jb_putn(b, name, nlen);
    jb_putn(b, "{", 1);
    jb_putn(b, s->labels.p, s->labels.len);
    if (extra) jb_putn(b, extra, elen);
    jb_putn(b, "} ", 2);
    jb_u64(b, v);
    jb_putn(b, "\n", 1);
}

static const char *const les[STATS_NBUCKETS] = {
    ",le=\"0.0005\"", ",le=\"0.001\"", ",le=\"0.0025\"", ",le=\"0.005\"",
    ",le=\"0.01\"",   ",le=\"0.025\"", ",le=\"0.05\"",   ",le=\"0.1\"",
    ",le=\"0.25\"",   ",le=\"0.5\"",   ",le=\"1\"",      ",le=\"2.5\"",
    ",le=\"5\"",      ",le=\"10\"",    ",le=\"30\"",     ",le=\"+Inf\""};

static void hist(struct jbuf *b, const char *name, const struct be_snap *s,
                 const struct stats_hist *h)
{
    char n[96];
    size_t len = strlen(name);
    uint64_t cum = 0;
    int nl = snprintf(n, sizeof(n), "%s_bucket", name);
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        cum += h->bucket[i];
        line(b, n, (size_t)nl, s, les[i], strlen(les[i]), cum);
    }
    jb_putn(b, name, len);
    jb_puts(b, "_sum{");
    jb_putn(b, s->labels.p, s->labels.len);
    jb_putn(b, "} ", 2);
    jb_fixed(b, (double)h->sum_us / 1e6, 6);
    jb_putn(b, "\n", 1);
    nl = snprintf(n, sizeof(n), "%s_count", name);
    line(b, n, (size_t)nl, s, NULL, 0, cum);
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

static void backends(struct jbuf *b, const struct generation *g)
{
    static const char *const classes_l[5] = {",code=\"1xx\"", ",code=\"2xx\"", ",code=\"3xx\"",
                                             ",code=\"4xx\"", ",code=\"5xx\""};
    static const char *const states_l[4] = {",state=\"up\"", ",state=\"down\"", ",state=\"drain\"",
                                            ",state=\"maint\""};
    uint32_t n = 0;
    for (uint32_t p = 0; p < g->cfg->npools; p++) n += g->pools[p].n;
    struct be_snap *snap = calloc(n ? n : 1, sizeof(*snap));
    if (!snap) {
        b->oom = 1;
        return;
    }
    /* one pass over the workers' counters per backend, then one per family */
    uint32_t k = 0;
    for (uint32_t p = 0; p < g->cfg->npools; p++)
        for (uint32_t i = 0; i < g->pools[p].n; i++, k++) {
            const struct backend *be = &g->pools[p].backends[i];
            struct be_snap *s = &snap[k];
            jb_puts(&s->labels, "pool=\"");
            label(&s->labels, g->cfg->pools[p].name);
            jb_puts(&s->labels, "\",backend=\"");
            label(&s->labels, be->conf->name);
            jb_putn(&s->labels, "\"", 1);
            if (s->labels.oom) b->oom = 1;
            stats_backend_sum(be->slot, &s->c);
            stats_info_get(be->slot, &s->in);
            s->up = backend_state(be) == BACKEND_UP;
            s->state = backend_maint(be) ? 3 : backend_draining(be) ? 2 : s->up ? 0 : 1;
        }
    for (int m = 0; m < M_N && !b->oom; m++) {
        const char *name = defs[m].name;
        size_t nl = strlen(name);
        help(b, name, defs[m].type, defs[m].help);
        for (uint32_t i = 0; i < n; i++) {
            const struct be_snap *s = &snap[i];
            const struct stats_backend *c = &s->c;
            switch (m) {
            case M_REQ: line(b, name, nl, s, NULL, 0, c->requests); break;
            case M_RESP:
                for (int q = 0; q < 5; q++)
                    line(b, name, nl, s, classes_l[q], strlen(classes_l[q]), c->responses[q]);
                break;
            case M_RT: hist(b, name, s, &c->response_time); break;
            case M_TT: hist(b, name, s, &c->total_time); break;
            case M_CUR: line(b, name, nl, s, NULL, 0, c->requests - c->ended); break;
            case M_UP: line(b, name, nl, s, NULL, 0, (uint64_t)s->up); break;
            case M_STATE:
                for (int q = 0; q < 4; q++)
                    line(b, name, nl, s, states_l[q], strlen(states_l[q]), q == s->state);
                break;
            case M_CONNERR: line(b, name, nl, s, NULL, 0, c->connect_errors); break;
            case M_RETRY: line(b, name, nl, s, NULL, 0, c->retries); break;
            case M_CHECKF: line(b, name, nl, s, NULL, 0, s->in.check_failures); break;
            case M_TRANS: line(b, name, nl, s, NULL, 0, s->in.transitions); break;
            case M_BIN: line(b, name, nl, s, NULL, 0, c->bytes_in); break;
            case M_BOUT: line(b, name, nl, s, NULL, 0, c->bytes_out); break;
            case M_IDLE: line(b, name, nl, s, NULL, 0, c->idle_opened - c->idle_closed); break;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) jb_free(&snap[i].labels);
    free(snap);
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
