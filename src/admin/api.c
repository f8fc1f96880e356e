/* api: the JSON API, /healthz and /readyz. See docs/API.md for every call
 * and its answers; what the API changed is kept in the overlay (overlay.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "admin/overlay.h"
#include "admin/series.h"
#include "core/log.h"
#include "upstream/events.h"
#include "upstream/stats.h"
#include "version.h"

static struct {
    double time;
    int ok;
    char message[300];
} last_reload;

void api_free(void)
{
    ov_free();
    series_free();
}

/* ---- lookups and the backend's JSON ----------------------------------------------- */

static struct generation *cur(void)
{
    return *admin_host.gen;
}

static int pool_index(const char *name)
{
    const struct config *c = cur()->cfg;
    for (uint32_t i = 0; i < c->npools; i++)
        if (!strcmp(c->pools[i].name, name)) return (int)i;
    return -1;
}

static struct backend *backend_named(struct pool *p, const char *name)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (!strcmp(p->backends[i].conf->name, name)) return &p->backends[i];
    return NULL;
}

static const char *state_name(const struct backend *be)
{
    return backend_maint(be)                 ? "maint"
           : backend_draining(be)            ? "drain"
           : backend_state(be) == BACKEND_UP ? "up"
                                             : "down";
}

static void ms_or_null(struct jbuf *b, double v)
{
    if (v < 0)
        jb_puts(b, "null");
    else
        jb_printf(b, "%.3f", v);
}

static void backend_json(struct jbuf *b, const struct pool *p, const struct backend *be)
{
    struct stats_backend c;
    struct stats_info in;
    stats_backend_sum(be->slot, &c);
    stats_info_get(be->slot, &in);
    const struct ov *o = ov_find(p->cfg->name, be->conf->url);
    jb_puts(b, "{\"name\":");
    jb_str(b, be->conf->name);
    jb_puts(b, ",\"url\":");
    jb_str(b, be->conf->url);
    jb_printf(b, ",\"state\":\"%s\",\"since\":%.3f,\"reason\":", state_name(be), in.since);
    jb_str(b, in.reason);
    jb_printf(b, ",\"weight\":%u,\"inflight\":%llu,\"requests\":%llu,\"responses\":{",
              be->conf->weight, (unsigned long long)(c.requests - c.ended),
              (unsigned long long)c.requests);
    for (int k = 0; k < 5; k++)
        jb_printf(b, "%s\"%dxx\":%llu", k ? "," : "", k + 1, (unsigned long long)c.responses[k]);
    jb_puts(b, "},\"p50_ms\":");
    ms_or_null(b, series_recent_ms(be->slot, &c, 0.5));
    jb_puts(b, ",\"p99_ms\":");
    ms_or_null(b, series_recent_ms(be->slot, &c, 0.99));
    if (in.check_time) {
        jb_printf(b, ",\"last_check\":{\"time\":%.3f,\"ok\":%s,\"detail\":", in.check_time,
                  in.check_ok ? "true" : "false");
        jb_str(b, in.check_detail);
        jb_puts(b, "}");
    } else {
        jb_puts(b, ",\"last_check\":null");
    }
    int api = o ? o->api : be->conf->api;
    int dns = !api && be->conf->dns;
    jb_printf(b, ",\"source\":\"%s\",\"file\":", api ? "api" : dns ? "dns" : "file");
    if (api || dns)
        jb_puts(b, "null");
    else
        jb_printf(b, "{\"weight\":%u,\"drain\":%s}", o ? o->file_weight : be->conf->weight,
                  (o ? o->file_drain : be->conf->drain) ? "true" : "false");
    jb_puts(b, ",\"runtime\":{");
    int any = 0;
    if (o && o->has_weight) jb_printf(b, "\"weight\":%u", o->weight), any = 1;
    if (o && o->has_state)
        jb_printf(b, "%s\"state\":\"%s\"", any ? "," : "",
                  o->state == OV_DRAIN   ? "drain"
                  : o->state == OV_MAINT ? "maint"
                                         : "ready"),
            any = 1;
    if (o && o->removing) jb_printf(b, "%s\"removing\":true", any ? "," : "");
    jb_puts(b, "}");
    if (be->conf->dns == BACKEND_DNS_SRV)
        jb_printf(b, ",\"priority\":%u,\"standby\":%s", be->conf->priority,
                  atomic_load_explicit(&be->standby, memory_order_relaxed) ? "true" : "false");
    jb_puts(b, "}");
}

static void pool_json(struct jbuf *b, const struct pool *p)
{
    jb_puts(b, "{\"name\":");
    jb_str(b, p->cfg->name);
    jb_puts(b, ",\"balance\":");
    jb_str(b, p->cfg->balance);
    jb_puts(b, ",\"backends\":[");
    for (uint32_t i = 0; i < p->n; i++) {
        if (i) jb_putn(b, ",", 1);
        backend_json(b, p, &p->backends[i]);
    }
    jb_puts(b, "]}");
}

/* ---- changes ------------------------------------------------------------------------ */

/* A new generation from the one in force and the overlay. */
static int rebuild(char *msg, size_t cap)
{
    struct config next;
    if (config_copy(&next, cur()->cfg) < 0) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    admin_overlay(&next, 0);
    return admin_host.apply(&next, msg, cap);
}

static int parse_body(const struct admin_req *rq, struct admin_res *rs, struct json_object *o,
                      const char *const *allowed)
{
    char why[160];
    if (json_parse_object(rq->body, rq->body_len, o, why, sizeof(why)) < 0) {
        api_error(rs, 400, "bad JSON: %s", why);
        return -1;
    }
    for (uint32_t i = 0; i < o->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, o->f[i].key);
        if (!ok) {
            api_error(rs, 400, "unknown field '%s'", o->f[i].key);
            return -1;
        }
    }
    return 0;
}

/* A weight field: 1..1000, a whole number. */
static int weight_of(const struct json_field *f, struct admin_res *rs, uint32_t *w)
{
    if (f->type != JSON_NUMBER || f->num != (double)(int64_t)f->num || f->num < 1 ||
        f->num > 1000) {
        api_error(rs, 422, "invalid weight: expected a whole number from 1 to 1000");
        return -1;
    }
    *w = (uint32_t)f->num;
    return 0;
}

static void set_state_atomics(struct pool *p, struct backend *be, int drain, const char *why)
{
    atomic_store(&be->drain, drain);
    stats_note_state(be->slot, why, 0);
    pool_update_standby(p); /* a drained SRV priority lets the next one serve */
}

static void patch_backend(const struct admin_req *rq, struct admin_res *rs, int pi,
                          const char *name)
{
    static const char *const allowed[] = {"state", "weight", NULL};
    struct json_object o;
    if (parse_body(rq, rs, &o, allowed) < 0) return;
    struct pool *p = &cur()->pools[pi];
    struct backend *be = backend_named(p, name);
    if (!be) {
        api_error(rs, 404, "pool '%s' has no backend '%s'", p->cfg->name, name);
        return;
    }
    const struct json_field *fs = json_get(&o, "state"), *fw = json_get(&o, "weight");
    if (!fs && !fw) {
        api_error(rs, 400, "expected \"state\" (drain, maint or ready) and/or \"weight\"");
        return;
    }
    int st = -1;
    if (fs) {
        if (fs->type == JSON_STRING && !strcmp(fs->str, "drain")) st = OV_DRAIN;
        if (fs->type == JSON_STRING && !strcmp(fs->str, "maint")) st = OV_MAINT;
        if (fs->type == JSON_STRING && !strcmp(fs->str, "ready")) st = OV_READY;
        if (st < 0) {
            api_error(rs, 422, "invalid state: expected \"drain\", \"maint\" or \"ready\"");
            return;
        }
    }
    uint32_t w = 0;
    if (fw && weight_of(fw, rs, &w) < 0) return;
    const struct ov *old = ov_find(p->cfg->name, be->conf->url);
    if (old && old->removing) {
        api_error(rs, 409, "backend %s is being removed (it drains): it cannot be changed", name);
        return;
    }
    struct ov *ov = ov_get(p->cfg->name, be->conf);
    if (!ov) {
        api_error(rs, 500, "out of memory");
        return;
    }
    char pool[64], bname[64];
    snprintf(pool, sizeof(pool), "%s", p->cfg->name);
    snprintf(bname, sizeof(bname), "%s", name);
    if (st >= 0) {
        static const char *const words[] = {"ready", "drain", "maint"};
        char why[200];
        snprintf(why, sizeof(why), "%s by the admin API (from %s)",
                 st == OV_READY   ? "set ready"
                 : st == OV_DRAIN ? "drained"
                                  : "put in maintenance",
                 rq->peer);
        ov->has_state = 1;
        ov->state = (uint8_t)st;
        set_state_atomics(p, be,
                          st == OV_MAINT   ? BACKEND_MAINT
                          : st == OV_DRAIN ? BACKEND_DRAIN
                                           : 0,
                          why);
        log_info("admin: %s: pool '%s': backend %s %s", rq->peer, pool, bname,
                 st == OV_READY   ? "is ready: it takes new requests"
                 : st == OV_DRAIN ? "drains: no new requests; those in flight finish"
                                  : "is in maintenance: no requests, health checks paused");
        events_add(words[st], pool, bname, "backend %s: %s", bname, why);
    }
    if (fw && be->conf->weight != w) {
        char msg[300];
        uint32_t was = be->conf->weight;
        ov->has_weight = 1;
        ov->weight = w;
        if (rebuild(msg, sizeof(msg)) < 0) {
            api_error(rs, 500, "could not apply the weight: %s", msg);
            return;
        }
        log_info("admin: %s: pool '%s': backend %s weight %u -> %u", rq->peer, pool, bname, was, w);
        events_add("weight", pool, bname, "backend %s: weight %u -> %u (admin API, from %s)", bname,
                   was, w, rq->peer);
    } else if (fw) {
        ov->has_weight = 1;
        ov->weight = w;
    }
    pi = pool_index(pool);
    p = &cur()->pools[pi];
    rs->status = 200;
    backend_json(&rs->body, p, backend_named(p, bname));
}

static void post_backend(const struct admin_req *rq, struct admin_res *rs, int pi)
{
    static const char *const allowed[] = {"url", "weight", "name", NULL};
    struct json_object o;
    if (parse_body(rq, rs, &o, allowed) < 0) return;
    const struct json_field *fu = json_get(&o, "url"), *fw = json_get(&o, "weight"),
                            *fn = json_get(&o, "name");
    if (!fu || fu->type != JSON_STRING) {
        api_error(rs, 422, "\"url\" is required: \"http://HOST:PORT\" or \"https://HOST:PORT\"");
        return;
    }
    struct backend_conf bc;
    char why[160];
    if (strchr(fu->str, ',') || config_parse_backend(fu->str, &bc, why, sizeof(why)) < 0) {
        api_error(rs, 422, "invalid url '%s': %s", fu->str,
                  strchr(fu->str, ',') ? "give the weight as \"weight\"" : why);
        return;
    }
    if (fw && weight_of(fw, rs, &bc.weight) < 0) return;
    if (fn) {
        if (fn->type != JSON_STRING || !fn->str[0] || strlen(fn->str) >= sizeof(bc.name)) {
            api_error(rs, 422, "invalid name: expected 1 to %zu characters", sizeof(bc.name) - 1);
            return;
        }
        memcpy(bc.name, fn->str, strlen(fn->str) + 1); /* length checked above */
    }
    struct pool *p = &cur()->pools[pi];
    char pool[64];
    snprintf(pool, sizeof(pool), "%s", p->cfg->name);
    for (uint32_t i = 0; i < p->n; i++) {
        if (!strcmp(p->backends[i].conf->url, bc.url) ||
            !strcmp(p->backends[i].conf->name, bc.name)) {
            api_error(rs, 409, "pool '%s' already has backend %s (%s)", pool,
                      p->backends[i].conf->name, p->backends[i].conf->url);
            return;
        }
    }
    if (p->n >= CONFIG_MAX_BACKENDS) {
        api_error(rs, 409, "pool '%s' has %u backends, the most it can have", pool, p->n);
        return;
    }
    /* a file backend the API removed comes back as the API's (the file's
     * again at the next reload that names it) */
    struct ov *ov = ov_find(pool, bc.url);
    if (ov) ov_drop(ov);
    bc.api = 1;
    ov = ov_get(pool, &bc);
    if (!ov) {
        api_error(rs, 500, "out of memory");
        return;
    }
    ov->api = 1;
    ov->has_weight = 1;
    ov->weight = bc.weight;
    char msg[300];
    if (rebuild(msg, sizeof(msg)) < 0) {
        if ((ov = ov_find(pool, bc.url)) && ov->api) ov_drop(ov);
        api_error(rs, 422, "could not add the backend: %s", msg);
        return;
    }
    p = &cur()->pools[pool_index(pool)];
    struct backend *be = backend_named(p, bc.name);
    if (!be) {
        api_error(rs, 500, "the backend was not added");
        return;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "added by the admin API (from %s)", rq->peer);
    stats_note_state(be->slot, reason, 0);
    log_info("admin: %s: pool '%s': backend %s (%s) added with weight %u", rq->peer, pool, bc.name,
             bc.url, bc.weight);
    events_add("add", pool, bc.name, "backend %s (%s) added with weight %u (admin API, from %s)",
               bc.name, bc.url, bc.weight, rq->peer);
    rs->status = 201;
    backend_json(&rs->body, p, be);
}

static void delete_backend(const struct admin_req *rq, struct admin_res *rs, int pi,
                           const char *name)
{
    struct pool *p = &cur()->pools[pi];
    struct backend *be = backend_named(p, name);
    if (!be) {
        api_error(rs, 404, "pool '%s' has no backend '%s'", p->cfg->name, name);
        return;
    }
    uint32_t staying = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const struct ov *o = ov_find(p->cfg->name, p->backends[i].conf->url);
        staying += !(o && o->removing);
    }
    const struct ov *mine = ov_find(p->cfg->name, be->conf->url);
    if (staying <= 1 && !(mine && mine->removing)) {
        api_error(rs, 409, "backend %s is the last of pool '%s': a pool keeps at least one", name,
                  p->cfg->name);
        return;
    }
    struct ov *ov = ov_get(p->cfg->name, be->conf);
    if (!ov) {
        api_error(rs, 500, "out of memory");
        return;
    }
    ov->removing = 1;
    char why[200];
    snprintf(why, sizeof(why), "being removed by the admin API (from %s): draining", rq->peer);
    set_state_atomics(p, be, BACKEND_DRAIN, why);
    log_info("admin: %s: pool '%s': backend %s drains, then goes", rq->peer, p->cfg->name, name);
    events_add("drain", p->cfg->name, name,
               "backend %s drains before it is removed (admin API, "
               "from %s)",
               name, rq->peer);
    rs->status = 202;
    backend_json(&rs->body, p, be);
}

/* Backends being removed whose requests in flight ended: gone now. */
static void finish_removals(void)
{
    int any = 0;
    for (uint32_t i = 0; i < ov_count(); i++) {
        struct ov *o = ov_at(i);
        if (!o->removing) continue;
        uint32_t slot = stats_backend_slot(o->pool, o->url);
        struct stats_backend c;
        stats_backend_sum(slot, &c);
        if (c.requests != c.ended) continue;
        o->removing = 0;
        o->removed = 1;
        any = 1;
        events_add("remove", o->pool, o->name, "backend %s (%s) removed: its requests finished",
                   o->name, o->url);
        log_info("admin: pool '%s': backend %s removed (its requests in flight finished)", o->pool,
                 o->name);
    }
    if (!any) return;
    char msg[300];
    if (rebuild(msg, sizeof(msg)) < 0) log_warn("admin: could not remove backends: %s", msg);
    for (uint32_t i = 0; i < ov_count(); i++) /* an API backend removed is forgotten */
        if (ov_at(i)->removed && ov_at(i)->api) ov_drop(ov_at(i)), i--;
}

void api_tick(void)
{
    finish_removals();
    series_sample(cur(), (int64_t)stats_unix_now());
}

/* ---- reads ------------------------------------------------------------------------- */

static void status_json(struct admin_res *rs)
{
    const struct config *c = cur()->cfg;
    struct jbuf *b = &rs->body;
    double now = stats_unix_now();
    rs->status = 200;
    jb_printf(b, "{\"version\":\"%s\",\"uptime\":%.3f,\"start_time\":%.3f,\"config_file\":",
              USHER_VERSION, now - admin_metrics.start_time, admin_metrics.start_time);
    if (c->file[0])
        jb_str(b, c->file);
    else
        jb_puts(b, "null");
    jb_printf(b, ",\"threads\":%u,\"last_reload\":", stats_nworkers());
    if (last_reload.time) {
        jb_printf(b, "{\"time\":%.3f,\"result\":\"%s\",\"message\":", last_reload.time,
                  last_reload.ok ? "ok" : "failed");
        jb_str(b, last_reload.message);
        jb_puts(b, "}");
    } else {
        jb_puts(b, "null");
    }
    jb_printf(b, ",\"reloads\":{\"ok\":%llu,\"failed\":%llu}}\n",
              (unsigned long long)admin_metrics.reloads_ok,
              (unsigned long long)admin_metrics.reloads_failed);
}

static void events_json(struct admin_res *rs, const char *query)
{
    unsigned long long since = 0;
    const char *q = strstr(query, "since=");
    if (q && sscanf(q + 6, "%llu", &since) != 1) since = 0;
    static struct event evs[EVENTS_MAX];
    uint64_t last;
    uint32_t n = events_since(since, evs, EVENTS_MAX, &last);
    struct jbuf *b = &rs->body;
    rs->status = 200;
    jb_puts(b, "{\"events\":[");
    for (uint32_t i = 0; i < n; i++) {
        jb_printf(b, "%s{\"seq\":%llu,\"time\":%.3f,\"kind\":\"%s\",\"pool\":", i ? "," : "",
                  (unsigned long long)evs[i].seq, evs[i].time, evs[i].kind);
        if (evs[i].pool[0])
            jb_str(b, evs[i].pool);
        else
            jb_puts(b, "null");
        jb_puts(b, ",\"backend\":");
        if (evs[i].backend[0])
            jb_str(b, evs[i].backend);
        else
            jb_puts(b, "null");
        jb_puts(b, ",\"message\":");
        jb_str(b, evs[i].message);
        jb_puts(b, "}");
    }
    jb_printf(b, "],\"last\":%llu}\n", (unsigned long long)last);
}

static void readyz(struct admin_res *rs)
{
    const struct generation *g = cur();
    struct jbuf list = {0};
    int ready = 1;
    for (uint32_t p = 0; p < g->cfg->npools; p++) {
        int usable = 0;
        for (uint32_t i = 0; i < g->pools[p].n && !usable; i++)
            usable = backend_usable(&g->pools[p].backends[i]);
        if (usable) continue;
        if (!ready) jb_putn(&list, ",", 1);
        jb_str(&list, g->cfg->pools[p].name);
        ready = 0;
    }
    jb_printf(&rs->body, "{\"ready\":%s,\"unready_pools\":[%s]}\n", ready ? "true" : "false",
              list.p ? list.p : "");
    jb_free(&list);
    rs->status = ready ? 200 : 503;
}

void admin_reloaded_note(int ok, const char *msg);

void admin_reloaded_note(int ok, const char *msg)
{
    last_reload.time = stats_unix_now();
    last_reload.ok = ok;
    snprintf(last_reload.message, sizeof(last_reload.message), "%s", msg);
}

/* ---- routing ------------------------------------------------------------------------- */

int api_is_change(const struct admin_req *rq)
{
    return strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD");
}

static int method_is(const struct admin_req *rq, struct admin_res *rs, const char *allow)
{
    char want[64];
    snprintf(want, sizeof(want), "%s", allow);
    for (char *m = strtok(want, ", "); m; m = strtok(NULL, ", "))
        if (!strcmp(m, rq->method)) return 1;
    api_error(rs, 405, "%s: method %s not allowed (allowed: %s)", rq->path, rq->method, allow);
    rs->allow = allow;
    return 0;
}

void api_handle(const struct admin_req *rq, struct admin_res *rs)
{
    const char *path = rq->path;
    if (!strcmp(path, "/healthz")) {
        if (!method_is(rq, rs, "GET, HEAD")) return;
        rs->status = 200;
        jb_puts(&rs->body, "{\"status\":\"ok\"}\n");
        return;
    }
    if (!strcmp(path, "/readyz")) {
        if (method_is(rq, rs, "GET, HEAD")) readyz(rs);
        return;
    }
    if (strncmp(path, "/api/v1/", 8)) {
        api_error(rs, 404, "no such path: %s", path);
        return;
    }
    path += 8;
    if (!strcmp(path, "status")) {
        if (method_is(rq, rs, "GET, HEAD")) status_json(rs);
        return;
    }
    if (!strcmp(path, "events")) {
        if (method_is(rq, rs, "GET, HEAD")) events_json(rs, rq->query);
        return;
    }
    if (!strcmp(path, "series")) {
        if (!method_is(rq, rs, "GET, HEAD")) return;
        struct series_query sq;
        char why[200];
        int st = series_parse_query(rq->query, &sq, why, sizeof(why)) < 0 ? 400 : 0;
        if (!st) st = series_json(&rs->body, cur(), &sq, why, sizeof(why));
        if (st) {
            api_error(rs, st, "/api/v1/series: %s", why);
            return;
        }
        rs->status = 200;
        return;
    }
    if (!strcmp(path, "reload")) {
        if (!method_is(rq, rs, "POST")) return;
        char msg[300];
        log_info("admin: %s: reload asked for", rq->peer);
        int rc = admin_host.reload(msg, sizeof(msg));
        if (rc != 1) admin_reloaded(rc == 0, msg);
        if (rc < 0) {
            api_error(rs, 422, "reload failed: %s", msg);
            return;
        }
        rs->status = 200;
        jb_puts(&rs->body,
                rc ? "{\"result\":\"unchanged\",\"message\":" : "{\"result\":\"ok\",\"message\":");
        jb_str(&rs->body, msg);
        jb_puts(&rs->body, "}\n");
        return;
    }
    if (!strcmp(path, "pools")) {
        if (!method_is(rq, rs, "GET, HEAD")) return;
        const struct generation *g = cur();
        rs->status = 200;
        jb_puts(&rs->body, "{\"pools\":[");
        for (uint32_t p = 0; p < g->cfg->npools; p++) {
            if (p) jb_putn(&rs->body, ",", 1);
            pool_json(&rs->body, &g->pools[p]);
        }
        jb_puts(&rs->body, "]}\n");
        return;
    }
    if (strncmp(path, "pools/", 6)) {
        api_error(rs, 404, "no such path: %s", rq->path);
        return;
    }
    path += 6;
    char pool[64], rest[256], name[64];
    size_t n = strcspn(path, "/");
    if (n == 0 || series_pct_decode(path, n, pool, sizeof(pool), 0) < 0) {
        api_error(rs, 404, "no such pool");
        return;
    }
    snprintf(rest, sizeof(rest), "%s", path + n);
    int pi = pool_index(pool);
    if (pi < 0) {
        api_error(rs, 404, "no pool named '%s'", pool);
        return;
    }
    if (!rest[0]) {
        if (!method_is(rq, rs, "GET, HEAD")) return;
        rs->status = 200;
        pool_json(&rs->body, &cur()->pools[pi]);
        jb_putn(&rs->body, "\n", 1);
        return;
    }
    if (!strcmp(rest, "/backends")) {
        if (method_is(rq, rs, "POST")) post_backend(rq, rs, pi);
        return;
    }
    if (strncmp(rest, "/backends/", 10) || !rest[10] || strchr(rest + 10, '/')) {
        api_error(rs, 404, "no such path: %s", rq->path);
        return;
    }
    if (series_pct_decode(rest + 10, strlen(rest + 10), name, sizeof(name), 0) < 0) {
        api_error(rs, 404, "pool '%s' has no such backend (a bad %%-escape)", pool);
        return;
    }
    if (!strcmp(rq->method, "PATCH")) {
        patch_backend(rq, rs, pi, name);
    } else if (!strcmp(rq->method, "DELETE")) {
        delete_backend(rq, rs, pi, name);
    } else if (method_is(rq, rs, "GET, HEAD, PATCH, DELETE")) {
        struct pool *p = &cur()->pools[pi];
        struct backend *be = backend_named(p, name);
        if (!be) {
            api_error(rs, 404, "pool '%s' has no backend '%s'", pool, name);
            return;
        }
        rs->status = 200;
        backend_json(&rs->body, p, be);
    }
}
