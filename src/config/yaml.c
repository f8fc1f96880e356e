/* yaml: reads a YAML configuration file (libyaml's document API) into a
 * struct config, reporting every error as "FILE:LINE:COLUMN: what was expected".
 *
 * The file is loaded whole; then a small walker checks each mapping against
 * the keys it may hold (an unknown key gets the nearest known one suggested).
 * Scalar settings are the table's (settings.c): their keys, checks and
 * messages come from there, as on the command line. Listeners, routes, pools
 * and backend URLs are read here; pool names are resolved once all pools are
 * known. Nothing is applied unless the whole file is valid. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/settings.h"

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

/* One scalar setting at n: the table's validator, the file's position. Returns what
 * settings_parse returns (for an enum: the index of the choice), or -EINVAL. */
static int read_setting(struct walk *w, const yaml_node_t *n, const struct setting *s, void *base)
{
    char name[96], why[512], e[256];
    snprintf(name, sizeof(name), "%s%s", s->scope == SETTING_BACKEND ? "backend." : "", s->key);
    const char *text = scalar(n);
    if (!text) {
        /* only a file can hold a list or a mapping: the wording users know */
        int str = s->type == SETTING_STRING || s->type == SETTING_BALANCE ||
                  s->type == SETTING_KEY || s->type == SETTING_COOKIE || s->type == SETTING_PATH;
        if (str)
            snprintf(e, sizeof(e), "a single value");
        else
            settings_expected(s, e, sizeof(e));
        err(w, n, "%s: expected %s, %s %s", name, e,
            str || s->type == SETTING_UINT ? "found" : "not", kind_name(n));
        return -EINVAL;
    }
    int rc = settings_parse(s, text, base, why, sizeof(why));
    if (rc < 0) err(w, n, "%s: %s", name, why);
    return rc;
}

/* Reads mapping n: each key is a setting of the table in scope (its name after
 * prefix, "" or "health."), a section of them (read the same way), or one of
 * extra[], which the caller reads. */
static void read_settings(struct walk *w, const yaml_node_t *n, enum setting_scope scope,
                          const char *prefix, const char *where, const char *const *extra,
                          void *base)
{
    enum { MAX_KEYS = 48 };
    char names[MAX_KEYS][48];
    const char *keys[MAX_KEYS + 8];
    size_t nk = 0, plen = strlen(prefix);
    for (const struct setting *s = settings_table; s->key && nk < MAX_KEYS; s++) {
        if (s->scope != scope || strncmp(s->key, prefix, plen)) continue;
        const char *rest = s->key + plen;
        int len = (int)strcspn(rest, ".");
        size_t i = 0;
        while (i < nk && !(!strncmp(names[i], rest, (size_t)len) && !names[i][len])) i++;
        if (i < nk) continue; /* a section named again */
        snprintf(names[nk], sizeof(names[nk]), "%.*s", len, rest);
        keys[nk] = names[nk];
        nk++;
    }
    for (const char *const *x = extra; x && *x && nk < MAX_KEYS + 7; x++) keys[nk++] = *x;
    keys[nk] = NULL;
    check_keys(w, n, where, keys);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *name = scalar(node(w, p->key));
        yaml_node_t *v = node(w, p->value);
        if (!name || get(w, n, name) != v) continue; /* not a name, or given twice */
        char full[96], sub[160];
        snprintf(full, sizeof(full), "%s%s", prefix, name);
        const struct setting *s = settings_find(scope, full);
        int is_extra = 0;
        for (const char *const *x = extra; x && *x && !is_extra; x++) is_extra = !strcmp(*x, name);
        if (is_extra) continue; /* the caller's */
        if (s) {
            read_setting(w, v, s, base);
        } else if (settings_is_section(scope, full) && expect(w, v, YAML_MAPPING_NODE, full)) {
            snprintf(sub, sizeof(sub), "%s%s%s", scope == SETTING_TOP ? "" : where,
                     scope == SETTING_TOP ? "" : " ", full);
            snprintf(full, sizeof(full), "%s%s.", prefix, name);
            read_settings(w, v, scope, full, sub, NULL, base);
        }
    }
}

/* ---- sections ------------------------------------------------------------------ */

/* health.type decides what path and interval mean: "off" turns checks off
 * whatever the interval, "tcp" drops a path, "http" without a path checks /health. */
static void apply_health_type(struct walk *w, const yaml_node_t *pool, struct pool_conf *p)
{
    const struct setting *s = settings_find(SETTING_POOL, "health.type");
    yaml_node_t *h = get(w, pool, "health");
    yaml_node_t *t = h && h->type == YAML_MAPPING_NODE ? get(w, h, "type") : NULL;
    char why[256];
    int i = t && scalar(t) ? settings_parse(s, scalar(t), NULL, why, sizeof(why)) : -EINVAL;
    if (i < 0) return; /* not given, or reported */
    if (!strcmp(s->choices[i], "off"))
        p->health_interval_ms = 0;
    else if (!strcmp(s->choices[i], "tcp"))
        p->health_path[0] = 0;
    else if (!p->health_path[0])
        snprintf(p->health_path, sizeof(p->health_path), "/health");
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
        yaml_node_t *urlnode = b;
        struct backend_conf opts;
        memset(&opts, 0, sizeof(opts));
        settings_defaults(SETTING_BACKEND, &opts);
        if (b->type == YAML_MAPPING_NODE) {
            static const char *const extra[] = {"url", NULL};
            int before = w->errors;
            read_settings(w, b, SETTING_BACKEND, "", "backend", extra, &opts);
            urlnode = get(w, b, "url");
            if (!urlnode) {
                err(w, b, "backend: 'url' is required (e.g. url: http://10.0.0.1:8080)");
                continue;
            }
            if (w->errors != before) continue;
        }
        if (!get_str(w, urlnode, "backend url", url, sizeof(url))) continue;
        char why[160];
        struct backend_conf *bc = &p->backends[p->nbackends];
        if (strchr(url, ',')) {
            err(w, urlnode, "backend url '%s': write the weight as its own key (weight: N)", url);
            continue;
        }
        if (config_parse_backend(url, bc, why, sizeof(why)) < 0) {
            err(w, urlnode, "backend url '%s': %s (expected http://HOST:PORT or https://HOST:PORT)",
                url, why);
            continue;
        }
        bc->weight = opts.weight;
        bc->drain = opts.drain;
        if (opts.name[0]) snprintf(bc->name, sizeof(bc->name), "%s", opts.name);
        int dup = 0;
        for (uint32_t k = 0; k < p->nbackends && !dup; k++)
            dup = !strcmp(p->backends[k].name, bc->name);
        if (dup) {
            err(w, b, "pool '%s': two backends are named '%s' (give one another name:)", pool_name,
                bc->name);
            continue;
        }
        p->nbackends++;
    }
}

/* discover: { dns: NAME, type: a|aaaa|srv|a+aaaa, port: N, scheme: http|https,
 * resolvers: [...], min_ttl, max_ttl, hold, timeout }: the table's keys, the resolvers list, then
 * the block checked as a whole (config_check_discover). */
static void read_discover(struct walk *w, const yaml_node_t *n, struct pool_conf *p,
                          const char *where)
{
    static const char *const extra[] = {"resolvers", NULL};
    char sub[128];
    snprintf(sub, sizeof(sub), "%s discover", where);
    if (!expect(w, n, YAML_MAPPING_NODE, "discover")) return;
    struct discover_conf *d = &p->discover;
    d->line = (uint32_t)n->start_mark.line + 1;
    d->column = (uint32_t)n->start_mark.column + 1;
    int before = w->errors;
    read_settings(w, n, SETTING_POOL, "discover.", sub, extra, p);
    yaml_node_t *r = get(w, n, "resolvers");
    if (r && expect(w, r, YAML_SEQUENCE_NODE, "discover.resolvers")) {
        size_t count = (size_t)(r->data.sequence.items.top - r->data.sequence.items.start);
        if (count == 0 || count > CONFIG_MAX_RESOLVERS)
            err(w, r,
                "%s: resolvers: expected 1 to %d HOST:PORT addresses (or leave it out: "
                "/etc/resolv.conf)",
                sub, CONFIG_MAX_RESOLVERS);
        for (yaml_node_item_t *it = r->data.sequence.items.start;
             it < r->data.sequence.items.top && d->nresolvers < CONFIG_MAX_RESOLVERS; it++) {
            yaml_node_t *x = node(w, *it);
            const char *text = scalar(x);
            char why[256];
            if (!text) {
                err(w, x, "%s: resolvers: expected HOST:PORT, found %s", sub, kind_name(x));
                continue;
            }
            if (config_parse_resolver(text, d->resolvers[d->nresolvers], sizeof(d->resolvers[0]),
                                      why, sizeof(why)) < 0) {
                err(w, x, "%s: resolvers: %s", sub, why);
                continue;
            }
            d->nresolvers++;
        }
    }
    if (w->errors != before) return;
    const char *key = NULL;
    char why[300];
    if (config_check_discover(d, why, sizeof(why), &key) < 0) {
        /* max_ttl below min_ttl: said at whichever of the two the file gives */
        if (!strcmp(key, "max_ttl") && !get(w, n, "max_ttl")) key = "min_ttl";
        yaml_node_t *at = get(w, n, key);
        if (!strcmp(key, "port") && !at) at = get(w, n, "type");
        err(w, at ? at : n, "discover.%s: %s", key, why);
    }
}

static void read_pool(struct walk *w, const char *name, const yaml_node_t *n, struct pool_conf *p)
{
    static const char *const extra[] = {"backends", "discover", NULL};
    char where[96];
    snprintf(where, sizeof(where), "pool '%s'", name);
    if (!expect(w, n, YAML_MAPPING_NODE, where)) return;
    read_settings(w, n, SETTING_POOL, "", where, extra, p);
    apply_health_type(w, n, p);
    yaml_node_t *v = get(w, n, "backends");
    yaml_node_t *disc = get(w, n, "discover");
    int before = w->errors;
    if (disc) read_discover(w, disc, p, where);
    if (v)
        read_backends(w, v, p, name);
    else if (!disc)
        err(w, n,
            "%s: 'backends' is required (a list of URLs), unless the pool has 'discover' "
            "(backends from DNS)",
            where);
    yaml_node_t *t = get(w, n, "tls");
    /* a pool that discovers its https:// backends has none yet, and its tls
     * section is what they will use */
    if (t && w->errors == before && !config_pool_tls(p))
        err(w, t,
            "%s: tls: no backend of the pool is https:// (TLS to a backend is asked for by "
            "its URL, or by discover.scheme: https for the backends DNS gives)",
            where);
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

static void read_certificates(struct walk *w, const yaml_node_t *n, struct listener_conf *l)
{
    if (!expect(w, n, YAML_SEQUENCE_NODE, "tls.certificates")) return;
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0 || count > CONFIG_MAX_CERTS) {
        err(w, n, "tls.certificates: expected 1 to %d certificates", CONFIG_MAX_CERTS);
        return;
    }
    l->certs = calloc(count, sizeof(*l->certs));
    if (!l->certs) return;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *c = node(w, *it), *x;
        static const char *const keys[] = {"cert", "key", NULL};
        if (!expect(w, c, YAML_MAPPING_NODE, "certificate")) continue;
        check_keys(w, c, "certificate", keys);
        struct cert_conf *cc = &l->certs[l->ncerts];
        cc->line = (uint32_t)c->start_mark.line + 1;
        cc->column = (uint32_t)c->start_mark.column + 1;
        if (!(x = get(w, c, "cert"))) {
            err(w, c,
                "certificate: 'cert' is required (a PEM file: the certificate and its "
                "chain, and the key unless 'key' names it)");
            continue;
        }
        if (!get_str(w, x, "certificate cert", cc->cert, sizeof(cc->cert))) continue;
        cc->line = (uint32_t)x->start_mark.line + 1;
        cc->column = (uint32_t)x->start_mark.column + 1;
        if ((x = get(w, c, "key")) && !get_str(w, x, "certificate key", cc->key, sizeof(cc->key)))
            continue;
        l->ncerts++;
    }
}

static void read_listener(struct walk *w, const yaml_node_t *n, struct listener_conf *l)
{
    static const char *const extra[] = {"bind", "pool", "routes", "tls", NULL};
    if (!expect(w, n, YAML_MAPPING_NODE, "listener")) return;
    read_settings(w, n, SETTING_LISTENER, "", "listener", extra, l);
    yaml_node_t *v = get(w, n, "bind");
    if (!v) {
        err(w, n, "listener: 'bind' is required (e.g. bind: 0.0.0.0:8000)");
    } else if (get_str(w, v, "bind", l->bind, sizeof(l->bind))) {
        const char *why;
        char text[sizeof(l->bind)];
        snprintf(text, sizeof(text), "%s", l->bind);
        if (config_parse_listen(text, l, &why) < 0)
            err(w, v, "bind '%s': %s (expected HOST:PORT)", text, why);
        l->line = (uint32_t)v->start_mark.line + 1;
        l->column = (uint32_t)v->start_mark.column + 1;
    }
    int https = l->tls;
    yaml_node_t *t = get(w, n, "tls");
    if (t && expect(w, t, YAML_MAPPING_NODE, "tls")) {
        static const char *const textra[] = {"certificates", NULL};
        read_settings(w, t, SETTING_LISTENER, "tls.", "listener tls", textra, l);
        yaml_node_t *cs = get(w, t, "certificates");
        if (cs)
            read_certificates(w, cs, l);
        else
            err(w, t, "tls: 'certificates' is required (a list of {cert: FILE, key: FILE})");
        l->tls = 1;
    } else if (https) {
        err(w, v, "bind '%s': https:// needs a 'tls' section with certificates", l->bind);
    }
    if (l->tls && l->redirect_https)
        err(w, n, "listener %s: redirect_https is for a plain listener (this one is TLS)", l->bind);
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
    static const char *const extra[] = {"listeners", "pools", NULL};
    struct config *c = w->c;
    if (!expect(w, root, YAML_MAPPING_NODE, "configuration")) return;
    read_settings(w, root, SETTING_TOP, "", "top level", extra, c);
    if (c->group[0] && !c->user[0])
        err(w, get(w, root, "group"),
            "group: needs user: as well (usher changes its group only "
            "along with its user)");
    yaml_node_t *v;
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
            pc->line = (uint32_t)k->start_mark.line + 1;
            for (uint32_t i = 0; i < c->npools; i++)
                if (!strcmp(c->pools[i].name, pc->name))
                    err(w, k, "pool '%s' defined twice", pc->name);
            c->npools++;
            read_pool(w, pc->name, node(w, p->value), pc);
        }
    }
    yaml_node_t *adm = get(w, root, "admin");
    if (adm && adm->type == YAML_MAPPING_NODE && w->errors == 0) {
        char why[256];
        yaml_node_t *at = get(w, adm, "bind");
        if (config_check_admin(c, why, sizeof(why)) < 0)
            err(w, at ? at : adm, "admin.bind: %s", why);
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
            config_listener_defaults(l);
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
