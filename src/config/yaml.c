/* yaml: reads a YAML configuration file (libyaml's document API) into a
 * struct config, reporting every error as "FILE:LINE:COLUMN: what was expected".
 *
 * The file is loaded whole; then a small walker checks each mapping against
 * the keys it may hold (an unknown key gets the nearest known one suggested),
 * converts scalars (durations, numbers, URLs) and resolves pool names once all
 * pools are known. Nothing is applied unless the whole file is valid. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "balance/balance.h"
#include "balance/common.h"

struct walk {
    yaml_document_t *doc;
    const char *file;
    FILE *out;
    int errors;
    struct config *c;
};

static void err(struct walk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err(struct walk *w, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    fprintf(w->out, "%s:%zu:%zu: ", w->file, n ? n->start_mark.line + 1 : 0,
            n ? n->start_mark.column + 1 : 0);
    va_start(ap, fmt);
    vfprintf(w->out, fmt, ap);
    va_end(ap);
    fputc('\n', w->out);
    w->errors++;
}

static yaml_node_t *node(struct walk *w, int id)
{
    return yaml_document_get_node(w->doc, id);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a single value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping (key: value)";
    default: return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int expect(struct walk *w, const yaml_node_t *n, yaml_node_type_t type, const char *what)
{
    if (n->type == type) return 1;
    err(w, n, "%s: expected %s, found %s", what,
        type == YAML_MAPPING_NODE    ? "a mapping (key: value)"
        : type == YAML_SEQUENCE_NODE ? "a list"
                                     : "a single value",
        kind_name(n));
    return 0;
}

/* Levenshtein distance, small strings only: for "did you mean" suggestions. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* Checks that every key of map n is in keys[]; reports the others. */
static void check_keys(struct walk *w, const yaml_node_t *n, const char *where,
                       const char *const *keys)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key);
        const char *name = scalar(k);
        if (!name) {
            err(w, k, "%s: keys must be plain names", where);
            continue;
        }
        const yaml_node_pair_t *first = n->data.mapping.pairs.start;
        while (first < p &&
               !(scalar(node(w, first->key)) && !strcmp(scalar(node(w, first->key)), name)))
            first++;
        if (first < p) {
            /* YAML forbids it and libyaml does not check: the second would
             * silently win */
            err(w, k, "%s: key '%s' given twice (first at line %lu)", where, name,
                (unsigned long)node(w, first->key)->start_mark.line + 1);
            continue;
        }
        int known = 0;
        const char *best = NULL;
        size_t best_d = 3;
        for (const char *const *q = keys; *q; q++) {
            if (!strcmp(name, *q)) known = 1;
            size_t d = distance(name, *q);
            if (d < best_d) best_d = d, best = *q;
        }
        if (known) continue;
        char list[512] = "";
        for (const char *const *q = keys; *q; q++) {
            if (q != keys) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            strncat(list, *q, sizeof(list) - strlen(list) - 1);
        }
        if (best)
            err(w, k, "%s: unknown key '%s' (did you mean '%s'? expected one of: %s)", where, name,
                best, list);
        else
            err(w, k, "%s: unknown key '%s' (expected one of: %s)", where, name, list);
    }
}

/* The value node of key in map n, or NULL. */
static yaml_node_t *get(struct walk *w, const yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *name = scalar(node(w, p->key));
        if (name && !strcmp(name, key)) return node(w, p->value);
    }
    return NULL;
}

static int get_str(struct walk *w, const yaml_node_t *n, const char *what, char *out, size_t cap)
{
    const char *s = scalar(n);
    if (!s) {
        err(w, n, "%s: expected a single value, found %s", what, kind_name(n));
        return 0;
    }
    if (strlen(s) >= cap) {
        err(w, n, "%s: too long (at most %zu characters)", what, cap - 1);
        return 0;
    }
    snprintf(out, cap, "%s", s);
    return 1;
}

static int get_uint(struct walk *w, const yaml_node_t *n, const char *what, uint32_t min,
                    uint32_t max, uint32_t *out)
{
    const char *s = scalar(n);
    char *end;
    if (!s) {
        err(w, n, "%s: expected a number from %u to %u, found %s", what, min, max, kind_name(n));
        return 0;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!isdigit((unsigned char)s[0]) || *end || errno || v < min || v > max) {
        err(w, n, "%s: expected a number from %u to %u, not '%s'", what, min, max, s);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int get_bool(struct walk *w, const yaml_node_t *n, const char *what, int *out)
{
    const char *s = scalar(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "false"))) {
        *out = s[0] == 't';
        return 1;
    }
    err(w, n, "%s: expected true or false, not %s%s%s", what, s ? "'" : "", s ? s : kind_name(n),
        s ? "'" : "");
    return 0;
}

static int get_duration(struct walk *w, const yaml_node_t *n, const char *what, uint32_t *out)
{
    const char *s = scalar(n);
    if (!s || config_parse_duration(s, out) < 0) {
        err(w, n, "%s: expected a duration such as 500ms, 2s, 1m or 1h, not %s%s%s", what,
            s ? "'" : "", s ? s : kind_name(n), s ? "'" : "");
        return 0;
    }
    return 1;
}

#define MAX_SIZE_BYTES (1ULL << 40) /* 1 TiB: sizes above are surely a mistake */

/* A size in bytes: a number, optionally followed by k, m or g (KiB, MiB, GiB). */
static int get_size(struct walk *w, const yaml_node_t *n, const char *what, uint64_t *out)
{
    const char *s = scalar(n);
    char *end = NULL;
    unsigned long long v = 0, mult = 1;
    int ok = s && isdigit((unsigned char)s[0]);
    if (ok) {
        errno = 0;
        v = strtoull(s, &end, 10);
        ok = !errno;
    }
    if (ok && *end) {
        const char *units = "kKmMgG";
        const char *u = strchr(units, *end);
        ok = u && end[1] == 0;
        if (ok) mult = 1ULL << (10 * (1 + (u - units) / 2));
    }
    if (!ok || v > MAX_SIZE_BYTES / mult) {
        err(w, n,
            "%s: expected a size in bytes up to 1099511627776 (1 TiB), optionally with k, m "
            "or g (KiB, MiB, GiB), such as 1048576 or 10m, not %s%s%s",
            what, s ? "'" : "", s ? s : kind_name(n), s ? "'" : "");
        return 0;
    }
    *out = (uint64_t)(v * mult);
    return 1;
}

/* ---- sections ------------------------------------------------------------------ */

static void read_health(struct walk *w, const yaml_node_t *n, struct pool_conf *p)
{
    static const char *const keys[] = {"type", "path", "interval",      "timeout",
                                       "rise", "fall", "expect_status", NULL};
    if (!expect(w, n, YAML_MAPPING_NODE, "health")) return;
    check_keys(w, n, "health", keys);
    yaml_node_t *v;
    char type[16] = "";
    if ((v = get(w, n, "type")) && get_str(w, v, "health.type", type, sizeof(type))) {
        if (!strcmp(type, "off"))
            p->health_interval_ms = 0;
        else if (strcmp(type, "http") && strcmp(type, "tcp"))
            err(w, v, "health.type: expected http, tcp or off, not '%s'", type);
    }
    if ((v = get(w, n, "path"))) {
        if (get_str(w, v, "health.path", p->health_path, sizeof(p->health_path)) &&
            (p->health_path[0] != '/' || strpbrk(p->health_path, " \t\r\n")))
            err(w, v, "health.path: expected a path starting with / (no spaces)");
    }
    if (!strcmp(type, "tcp")) p->health_path[0] = 0;
    if (!strcmp(type, "http") && !p->health_path[0]) snprintf(p->health_path, 8, "/health");
    if ((v = get(w, n, "interval")) &&
        get_duration(w, v, "health.interval", &p->health_interval_ms) && p->health_interval_ms < 10)
        err(w, v, "health.interval: at least 10ms");
    if (!strcmp(type, "off")) p->health_interval_ms = 0;
    if ((v = get(w, n, "timeout"))) get_duration(w, v, "health.timeout", &p->health_timeout_ms);
    if ((v = get(w, n, "rise"))) get_uint(w, v, "health.rise", 1, 1000, &p->health_rise);
    if ((v = get(w, n, "fall"))) get_uint(w, v, "health.fall", 1, 1000, &p->health_fall);
    if ((v = get(w, n, "expect_status"))) {
        const char *s = scalar(v);
        unsigned lo = 0, hi = 0;
        char extra;
        int k = s ? sscanf(s, "%u-%u%c", &lo, &hi, &extra) : 0;
        if (k == 1) hi = lo;
        if ((k != 1 && k != 2) || lo < 100 || hi > 599 || lo > hi)
            err(w, v, "health.expect_status: expected a status or a range such as 200-399");
        else
            p->health_status_min = (uint16_t)lo, p->health_status_max = (uint16_t)hi;
    }
}

static void read_backends(struct walk *w, const yaml_node_t *n, struct pool_conf *p,
                          const char *pool_name)
{
    if (!expect(w, n, YAML_SEQUENCE_NODE, "backends")) return;
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        err(w, n, "pool '%s': backends: expected at least one backend", pool_name);
        return;
    }
    if (count > CONFIG_MAX_BACKENDS) {
        err(w, n, "pool '%s': at most %d backends", pool_name, CONFIG_MAX_BACKENDS);
        return;
    }
    p->backends = calloc(count, sizeof(*p->backends));
    if (!p->backends) {
        err(w, n, "out of memory");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *b = node(w, *it);
        char url[300];
        uint32_t weight = 1;
        int drain = 0;
        yaml_node_t *urlnode = b;
        if (b->type == YAML_MAPPING_NODE) {
            static const char *const keys[] = {"url", "weight", "drain", NULL};
            check_keys(w, b, "backend", keys);
            urlnode = get(w, b, "url");
            if (!urlnode) {
                err(w, b, "backend: 'url' is required (e.g. url: http://10.0.0.1:8080)");
                continue;
            }
            yaml_node_t *wn = get(w, b, "weight");
            if (wn && !get_uint(w, wn, "backend.weight", 1, 1000, &weight)) continue;
            yaml_node_t *dn = get(w, b, "drain");
            if (dn && !get_bool(w, dn, "backend.drain", &drain)) continue;
        }
        if (!get_str(w, urlnode, "backend url", url, sizeof(url))) continue;
        char why[160];
        struct backend_conf *bc = &p->backends[p->nbackends];
        if (strchr(url, ',')) {
            err(w, urlnode, "backend url '%s': write the weight as its own key (weight: N)", url);
            continue;
        }
        if (config_parse_backend(url, bc, why, sizeof(why)) < 0) {
            err(w, urlnode, "backend url '%s': %s (expected http://HOST:PORT)", url, why);
            continue;
        }
        bc->weight = weight;
        bc->drain = (uint8_t)drain;
        p->nbackends++;
    }
}

static void read_pool(struct walk *w, const char *name, const yaml_node_t *n, struct pool_conf *p)
{
    static const char *const keys[] = {"balance",       "hash_key",      "hash_balance_factor",
                                       "sticky_cookie", "sticky_secret", "health",
                                       "max_fails",     "retries",       "timeouts",
                                       "slow_start",    "backends",      NULL};
    char where[96];
    snprintf(where, sizeof(where), "pool '%s'", name);
    if (!expect(w, n, YAML_MAPPING_NODE, where)) return;
    check_keys(w, n, where, keys);
    yaml_node_t *v;
    if ((v = get(w, n, "balance")) && get_str(w, v, "balance", p->balance, sizeof(p->balance)) &&
        !balance_find(p->balance))
        err(w, v, "balance: unknown algorithm '%s' (expected one of: %s)", p->balance,
            balance_names());
    if ((v = get(w, n, "hash_key")) &&
        get_str(w, v, "hash_key", p->hash_key, sizeof(p->hash_key))) {
        struct balance_key k;
        char why[160];
        if (balance_key_parse(p->hash_key, &k, why, sizeof(why)) < 0)
            err(w, v, "hash_key '%s': %s", p->hash_key, why);
    }
    if ((v = get(w, n, "hash_balance_factor")) &&
        get_uint(w, v, "hash_balance_factor", 0, 10000, &p->hash_balance_factor) &&
        p->hash_balance_factor > 0 && p->hash_balance_factor < 100)
        err(w, v, "hash_balance_factor: expected 0 (off) or a percentage from 100 to 10000");
    if ((v = get(w, n, "sticky_cookie")) &&
        get_str(w, v, "sticky_cookie", p->sticky_cookie, sizeof(p->sticky_cookie))) {
        struct balance_key k;
        char why[160], spec[sizeof(p->sticky_cookie) + 8];
        snprintf(spec, sizeof(spec), "cookie:%s", p->sticky_cookie);
        if (!p->sticky_cookie[0] || balance_key_parse(spec, &k, why, sizeof(why)) < 0)
            err(w, v,
                "sticky_cookie '%s': expected a cookie name (letters, digits, "
                "!#$%%&'*+-.^_`|~)",
                p->sticky_cookie);
    }
    if ((v = get(w, n, "sticky_secret")))
        get_str(w, v, "sticky_secret", p->sticky_secret, sizeof(p->sticky_secret));
    if ((v = get(w, n, "health"))) read_health(w, v, p);
    if ((v = get(w, n, "max_fails"))) get_uint(w, v, "max_fails", 0, 1000, &p->max_fails);
    if ((v = get(w, n, "retries"))) get_uint(w, v, "retries", 0, 7, &p->retries);
    if ((v = get(w, n, "slow_start"))) get_duration(w, v, "slow_start", &p->slow_start_ms);
    if ((v = get(w, n, "timeouts")) && expect(w, v, YAML_MAPPING_NODE, "timeouts")) {
        static const char *const tkeys[] = {"connect", "response", NULL};
        check_keys(w, v, "pool timeouts", tkeys);
        yaml_node_t *t;
        if ((t = get(w, v, "connect"))) get_duration(w, t, "timeouts.connect", &p->connect_ms);
        if ((t = get(w, v, "response"))) get_duration(w, t, "timeouts.response", &p->response_ms);
    }
    if ((v = get(w, n, "backends")))
        read_backends(w, v, p, name);
    else
        err(w, n, "%s: 'backends' is required (a list of URLs)", where);
}

static int find_pool(struct walk *w, const yaml_node_t *n, const char *what)
{
    const char *name = scalar(n);
    if (!name) {
        err(w, n, "%s: expected a pool name, found %s", what, kind_name(n));
        return -1;
    }
    for (uint32_t i = 0; i < w->c->npools; i++)
        if (!strcmp(w->c->pools[i].name, name)) return (int)i;
    char list[512] = "";
    for (uint32_t i = 0; i < w->c->npools; i++) {
        if (i) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
        strncat(list, w->c->pools[i].name, sizeof(list) - strlen(list) - 1);
    }
    err(w, n, "%s: unknown pool '%s' (defined pools: %s)", what, name, list[0] ? list : "none");
    return -1;
}

static void read_listener(struct walk *w, const yaml_node_t *n, struct listener_conf *l)
{
    static const char *const keys[] = {"bind", "pool", "routes", NULL};
    if (!expect(w, n, YAML_MAPPING_NODE, "listener")) return;
    check_keys(w, n, "listener", keys);
    yaml_node_t *v = get(w, n, "bind");
    if (!v) {
        err(w, n, "listener: 'bind' is required (e.g. bind: 0.0.0.0:8000)");
    } else if (get_str(w, v, "bind", l->bind, sizeof(l->bind))) {
        const char *why;
        if (sock_parse_addr(l->bind, &l->addr, &why) < 0)
            err(w, v, "bind '%s': %s (expected HOST:PORT)", l->bind, why);
        l->line = (uint32_t)v->start_mark.line + 1;
    }
    v = get(w, n, "pool");
    if (!v)
        err(w, n, "listener: 'pool' is required (the pool that serves unrouted requests)");
    else
        l->pool = find_pool(w, v, "listener pool");
    v = get(w, n, "routes");
    if (!v || !expect(w, v, YAML_SEQUENCE_NODE, "routes")) return;
    size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    l->routes = calloc(count ? count : 1, sizeof(*l->routes));
    if (!l->routes) return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *r = node(w, *it);
        static const char *const rkeys[] = {"host", "path_prefix", "pool", NULL};
        if (!expect(w, r, YAML_MAPPING_NODE, "route")) continue;
        check_keys(w, r, "route", rkeys);
        struct route_conf *rc = &l->routes[l->nroutes];
        yaml_node_t *x;
        if ((x = get(w, r, "host"))) get_str(w, x, "route host", rc->host, sizeof(rc->host));
        if ((x = get(w, r, "path_prefix")) &&
            get_str(w, x, "route path_prefix", rc->path_prefix, sizeof(rc->path_prefix)) &&
            rc->path_prefix[0] != '/')
            err(w, x, "route path_prefix: expected a path starting with /");
        if (!rc->host[0] && !rc->path_prefix[0])
            err(w, r, "route: expected 'host', 'path_prefix' or both");
        x = get(w, r, "pool");
        if (!x) {
            err(w, r, "route: 'pool' is required");
            continue;
        }
        rc->pool = find_pool(w, x, "route pool");
        l->nroutes++;
    }
}

static void read_top(struct walk *w, const yaml_node_t *root)
{
    static const char *const keys[] = {"threads", "listeners",  "pools", "timeouts",
                                       "limits",  "access_log", NULL};
    struct config *c = w->c;
    if (!expect(w, root, YAML_MAPPING_NODE, "configuration")) return;
    check_keys(w, root, "top level", keys);
    yaml_node_t *v;
    if ((v = get(w, root, "threads"))) {
        const char *s = scalar(v);
        if (s && !strcmp(s, "auto"))
            c->threads = 0;
        else
            get_uint(w, v, "threads", 1, 256, &c->threads);
    }
    if ((v = get(w, root, "timeouts")) && expect(w, v, YAML_MAPPING_NODE, "timeouts")) {
        static const char *const tkeys[] = {
            "client_header", "client_idle", "client_body", "upstream_idle",
            "tunnel_idle",   "grace",       NULL};
        check_keys(w, v, "timeouts", tkeys);
        yaml_node_t *t;
        if ((t = get(w, v, "client_header")))
            get_duration(w, t, "timeouts.client_header", &c->client_header_ms);
        if ((t = get(w, v, "client_idle")))
            get_duration(w, t, "timeouts.client_idle", &c->client_idle_ms);
        if ((t = get(w, v, "client_body")) &&
            get_duration(w, t, "timeouts.client_body", &c->client_body_ms) && !c->client_body_ms)
            err(w, t, "timeouts.client_body: expected a duration of at least 1ms, not '%s'",
                scalar(t));
        if ((t = get(w, v, "upstream_idle")))
            get_duration(w, t, "timeouts.upstream_idle", &c->upstream_idle_ms);
        if ((t = get(w, v, "tunnel_idle")))
            get_duration(w, t, "timeouts.tunnel_idle", &c->tunnel_idle_ms);
        if ((t = get(w, v, "grace"))) get_duration(w, t, "timeouts.grace", &c->grace_ms);
    }
    if ((v = get(w, root, "limits")) && expect(w, v, YAML_MAPPING_NODE, "limits")) {
        static const char *const lkeys[] = {"max_header_bytes", "max_headers",   "max_request_line",
                                            "max_connections",  "max_body_size", NULL};
        check_keys(w, v, "limits", lkeys);
        yaml_node_t *t;
        if ((t = get(w, v, "max_header_bytes")))
            get_uint(w, t, "limits.max_header_bytes", 1024, 16384, &c->max_header_bytes);
        if ((t = get(w, v, "max_headers")))
            get_uint(w, t, "limits.max_headers", 1, 128, &c->max_headers);
        if ((t = get(w, v, "max_request_line")))
            get_uint(w, t, "limits.max_request_line", 64, 16384, &c->max_request_line);
        if ((t = get(w, v, "max_connections")))
            get_uint(w, t, "limits.max_connections", 1, 10000000, &c->max_conns);
        if ((t = get(w, v, "max_body_size")))
            get_size(w, t, "limits.max_body_size", &c->max_body_size);
    }
    if ((v = get(w, root, "access_log")) && expect(w, v, YAML_MAPPING_NODE, "access_log")) {
        static const char *const akeys[] = {"path", "format", NULL};
        check_keys(w, v, "access_log", akeys);
        yaml_node_t *t;
        if ((t = get(w, v, "path")))
            get_str(w, t, "access_log.path", c->access_log, sizeof(c->access_log));
        char fmt[16] = "combined";
        if ((t = get(w, v, "format")) && get_str(w, t, "access_log.format", fmt, sizeof(fmt))) {
            if (!strcmp(fmt, "json"))
                c->access_log_format = 1;
            else if (strcmp(fmt, "combined"))
                err(w, t, "access_log.format: expected combined or json, not '%s'", fmt);
        }
    }
    /* pools first: listeners and routes refer to them by name */
    v = get(w, root, "pools");
    if (!v) {
        err(w, root, "'pools' is required (a mapping of pool names to pools)");
    } else if (expect(w, v, YAML_MAPPING_NODE, "pools")) {
        size_t count = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        c->pools = calloc(count ? count : 1, sizeof(*c->pools));
        if (!c->pools) return;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = node(w, p->key);
            struct pool_conf *pc = &c->pools[c->npools];
            config_pool_defaults(pc);
            if (!get_str(w, k, "pool name", pc->name, sizeof(pc->name))) continue;
            for (uint32_t i = 0; i < c->npools; i++)
                if (!strcmp(c->pools[i].name, pc->name))
                    err(w, k, "pool '%s' defined twice", pc->name);
            c->npools++;
            read_pool(w, pc->name, node(w, p->value), pc);
        }
    }
    v = get(w, root, "listeners");
    if (!v) {
        err(w, root, "'listeners' is required (a list with at least one bind address)");
    } else if (expect(w, v, YAML_SEQUENCE_NODE, "listeners")) {
        size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (!count) err(w, v, "listeners: expected at least one listener");
        c->listeners = calloc(count ? count : 1, sizeof(*c->listeners));
        if (!c->listeners) return;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            struct listener_conf *l = &c->listeners[c->nlisteners];
            l->pool = -1;
            read_listener(w, node(w, *it), l);
            for (uint32_t i = 0; i < c->nlisteners; i++)
                if (l->bind[0] && c->listeners[i].addr.len == l->addr.len &&
                    !memcmp(&c->listeners[i].addr, &l->addr, l->addr.len))
                    err(w, node(w, *it), "bind %s: the same address is already bound at line %u",
                        l->bind, c->listeners[i].line);
            c->nlisteners++;
        }
    }
}

int config_load_file(struct config *c, const char *path, FILE *errors)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(errors, "%s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int n_err = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(errors, "%s:%zu:%zu: invalid YAML: %s%s%s\n", path, parser.problem_mark.line + 1,
                parser.problem_mark.column + 1, parser.problem ? parser.problem : "syntax error",
                parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        fclose(f);
        return 1;
    }
    struct walk w = {.doc = &doc, .file = path, .out = errors, .errors = 0, .c = c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        fprintf(errors, "%s:1:1: the file is empty: expected listeners and pools\n", path);
        w.errors++;
    } else
        read_top(&w, root);
    n_err = w.errors;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return n_err;
}
