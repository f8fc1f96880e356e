/* metrics: the Prometheus text exposition. See metrics.h. */
#include "admin/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "upstream/stats.h"
#include "version.h"

static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void help(struct jbuf *b, const char *name, const char *type, const char *text)
{
    jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A label value: \ " and newline escaped (text format 0.0.4). */
static void label(struct jbuf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            jb_putn(b, "\\", 1), jb_putn(b, p, 1);
        else if (*p == '\n')
            jb_putn(b, "\\n", 2);
        else
            jb_putn(b, p, 1);
    }
}

/* name{pool="..",backend=".."[,extra]} value */
static void be_line(struct jbuf *b, const char *name, const char *pool, const char *be,
                    const char *extra, uint64_t v)
{
    jb_puts(b, name);
    jb_puts(b, "{pool=\"");
    label(b, pool);
    jb_puts(b, "\",backend=\"");
    label(b, be);
    jb_putn(b, "\"", 1);
    if (extra) jb_puts(b, extra);
    jb_puts(b, "} ");
    jb_u64(b, v);
    jb_putn(b, "\n", 1);
}

static void hist(struct jbuf *b, const char *name, const char *pool, const char *be,
                 const struct stats_hist *h)
{
    char n[96], extra[48];
    uint64_t cum = 0;
    snprintf(n, sizeof(n), "%s_bucket", name);
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        cum += h->bucket[i];
        if (i < STATS_NBOUNDS)
            snprintf(extra, sizeof(extra), ",le=\"%g\"", stats_bounds[i]);
        else
            snprintf(extra, sizeof(extra), ",le=\"+Inf\"");
        be_line(b, n, pool, be, extra, cum);
    }
    jb_printf(b, "%s_sum{pool=\"", name);
    label(b, pool);
    jb_puts(b, "\",backend=\"");
    label(b, be);
    jb_printf(b, "\"} %.6f\n", (double)h->sum_us / 1e6);
    snprintf(n, sizeof(n), "%s_count", name);
    be_line(b, n, pool, be, NULL, cum);
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
};

static void backends(struct jbuf *b, const struct generation *g)
{
    static const char *const states[4] = {"up", "down", "drain", "maint"};
    for (int m = 0; m < M_N; m++) {
        help(b, defs[m].name, defs[m].type, defs[m].help);
        for (uint32_t p = 0; p < g->cfg->npools; p++) {
            const char *pool = g->cfg->pools[p].name;
            for (uint32_t i = 0; i < g->pools[p].n; i++) {
                const struct backend *be = &g->pools[p].backends[i];
                const char *nm = be->conf->name, *name = defs[m].name;
                struct stats_backend c;
                struct stats_info in;
                if (m != M_UP && m != M_STATE && m != M_CHECKF && m != M_TRANS)
                    stats_backend_sum(be->slot, &c);
                if (m == M_CHECKF || m == M_TRANS) stats_info_get(be->slot, &in);
                char extra[32];
                switch (m) {
                case M_REQ: be_line(b, name, pool, nm, NULL, c.requests); break;
                case M_RESP:
                    for (int k = 0; k < 5; k++) {
                        snprintf(extra, sizeof(extra), ",code=\"%s\"", classes[k]);
                        be_line(b, name, pool, nm, extra, c.responses[k]);
                    }
                    break;
                case M_RT: hist(b, name, pool, nm, &c.response_time); break;
                case M_TT: hist(b, name, pool, nm, &c.total_time); break;
                case M_CUR: be_line(b, name, pool, nm, NULL, c.started - c.ended); break;
                case M_UP: be_line(b, name, pool, nm, NULL, backend_state(be) == BACKEND_UP); break;
                case M_STATE: {
                    int cur = backend_maint(be)                 ? 3
                              : backend_draining(be)            ? 2
                              : backend_state(be) == BACKEND_UP ? 0
                                                                : 1;
                    for (int k = 0; k < 4; k++) {
                        snprintf(extra, sizeof(extra), ",state=\"%s\"", states[k]);
                        be_line(b, name, pool, nm, extra, k == cur);
                    }
                    break;
                }
                case M_CONNERR: be_line(b, name, pool, nm, NULL, c.connect_errors); break;
                case M_RETRY: be_line(b, name, pool, nm, NULL, c.retries); break;
                case M_CHECKF: be_line(b, name, pool, nm, NULL, in.check_failures); break;
                case M_TRANS: be_line(b, name, pool, nm, NULL, in.transitions); break;
                case M_BIN: be_line(b, name, pool, nm, NULL, c.bytes_in); break;
                case M_BOUT: be_line(b, name, pool, nm, NULL, c.bytes_out); break;
                }
            }
        }
    }
}

/* Idle pooled connections per backend are the workers' own lists: not
 * counted per worker yet, so this gauge is left out rather than made up. */

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

void metrics_write(struct jbuf *b, const struct generation *g, const struct metrics_ctl *m)
{
    backends(b, g);
    listeners(b, g);
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
