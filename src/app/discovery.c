/* discovery: pools' backends from DNS, applied like runtime API changes. See discovery.h. */
#include "app/discovery.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/log.h"
#include "upstream/discover.h"

struct disc_pool {
    char pool[64];
    struct discover_conf conf; /* what it was started with */
    struct discover *d;
    struct discover_set *set; /* the last set it gave (NULL: none yet) */
};

static struct {
    struct discovery_host host;
    struct disc_pool *v;
    uint32_t n;
} ds;

unsigned discovery_weight(unsigned srv_weight, unsigned max)
{
    /* usher's weights are 1..1000: SRV weights above are scaled down, keeping
     * their ratios; 0 (RFC 2782: "very small chance") is the smallest, 1 */
    unsigned w = srv_weight;
    if (max > 1000) w = (unsigned)(((unsigned long)srv_weight * 1000 + max / 2) / max);
    return w < 1 ? 1 : w > 1000 ? 1000 : w;
}

static void to_spec(const char *pool, const struct discover_conf *c, struct discover_spec *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->pool, sizeof(s->pool), "%s", pool);
    snprintf(s->name, sizeof(s->name), "%s", c->dns);
    s->type = c->type == DISC_A      ? DISCOVER_A
              : c->type == DISC_AAAA ? DISCOVER_AAAA
              : c->type == DISC_SRV  ? DISCOVER_SRV
                                     : DISCOVER_A_AAAA;
    s->port = (uint16_t)c->port;
    for (uint32_t i = 0; i < c->nresolvers && i < DISCOVER_MAX_RESOLVERS; i++)
        snprintf(s->resolvers[i], sizeof(s->resolvers[i]), "%s", c->resolvers[i]);
    s->nresolvers = c->nresolvers < DISCOVER_MAX_RESOLVERS ? c->nresolvers : DISCOVER_MAX_RESOLVERS;
    s->min_ttl_ms = c->min_ttl_ms;
    s->max_ttl_ms = c->max_ttl_ms;
    s->hold_ms = c->hold_ms;
    s->timeout_ms = c->timeout_ms;
}

/* The same name, type and port: the set one gave is the other's too. */
static int same_source(const struct discover_conf *a, const struct discover_conf *b)
{
    return !strcmp(a->dns, b->dns) && a->type == b->type && a->port == b->port;
}

static int same_conf(const struct discover_conf *a, const struct discover_conf *b)
{
    if (!same_source(a, b) || a->nresolvers != b->nresolvers || a->min_ttl_ms != b->min_ttl_ms ||
        a->max_ttl_ms != b->max_ttl_ms || a->hold_ms != b->hold_ms ||
        a->timeout_ms != b->timeout_ms)
        return 0;
    for (uint32_t i = 0; i < a->nresolvers; i++)
        if (strcmp(a->resolvers[i], b->resolvers[i])) return 0;
    return 1;
}

static struct disc_pool *find(const char *pool)
{
    for (uint32_t i = 0; i < ds.n; i++)
        if (!strcmp(ds.v[i].pool, pool)) return &ds.v[i];
    return NULL;
}

/* The DNS name a discovered https:// backend of p is checked against: its SRV
 * target's, else discover.dns (without a final dot). */
static void tls_name_of(const struct pool_conf *p, const struct discover_target *t, char *out,
                        size_t cap)
{
    const char *name = t->name[0] ? t->name : p->discover.dns;
    size_t n = strlen(name);
    if (n && name[n - 1] == '.') n--;
    snprintf(out, cap, "%.*s", (int)n, name);
}

/* Pool p's backends: the static (and API) ones, then those of set. */
static void fill_pool(struct pool_conf *p, const struct discover_set *set)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < p->nbackends; i++)
        if (!p->backends[i].dns) p->backends[w++] = p->backends[i];
    p->nbackends = w;
    if (!set || !set->n) return;
    struct backend_conf *grown =
        realloc(p->backends, (p->nbackends + set->n) * sizeof(*p->backends));
    if (!grown) {
        log_warn("pool '%s': out of memory for the backends DNS gives", p->name);
        return;
    }
    p->backends = grown;
    unsigned maxw = 0;
    for (uint32_t i = 0; i < set->n; i++)
        if (set->t[i].weight > maxw) maxw = set->t[i].weight;
    int srv = p->discover.type == DISC_SRV, https = p->discover.scheme == DISC_HTTPS;
    for (uint32_t i = 0; i < set->n && p->nbackends < CONFIG_MAX_BACKENDS; i++) {
        char hostport[64], url[80], why[160];
        discover_target_text(&set->t[i], hostport, sizeof(hostport));
        snprintf(url, sizeof(url), "%s://%s", https ? "https" : "http", hostport);
        struct backend_conf *bc = &p->backends[p->nbackends];
        if (config_parse_backend(url, bc, why, sizeof(why)) < 0) continue; /* cannot be */
        int dup = 0; /* a static backend with the same address or name wins */
        for (uint32_t k = 0; k < p->nbackends && !dup; k++)
            dup = !strcmp(p->backends[k].url, bc->url) || !strcmp(p->backends[k].name, bc->name);
        if (dup) continue;
        bc->dns = srv ? BACKEND_DNS_SRV : BACKEND_DNS_ADDR;
        bc->weight = srv ? discovery_weight(set->t[i].weight, maxw) : 1;
        bc->priority = srv ? set->t[i].priority : 0;
        /* the name a certificate can carry (an address is no use to SNI): the
         * SRV target, else the name asked; the pool's tls.server_name wins */
        if (https) tls_name_of(p, &set->t[i], bc->tls_name, sizeof(bc->tls_name));
        p->nbackends++;
    }
}

void discovery_fill(struct config *next)
{
    for (uint32_t i = 0; i < next->npools; i++) {
        struct pool_conf *p = &next->pools[i];
        if (!p->discover.dns[0]) continue;
        const struct disc_pool *dp = find(p->name);
        fill_pool(p, dp && same_source(&dp->conf, &p->discover) ? dp->set : NULL);
    }
}

/* A new set from d: the configuration in force with it, through the API's path. */
static void on_set(struct discover *d, void *arg, const struct discover_set *set,
                   const char *changes)
{
    (void)arg;
    (void)changes; /* discover.c logged them */
    struct disc_pool *dp = NULL;
    for (uint32_t i = 0; i < ds.n && !dp; i++)
        if (ds.v[i].d == d) dp = &ds.v[i];
    if (!dp) return;
    if (!dp->set && !(dp->set = malloc(sizeof(*dp->set)))) {
        log_warn("pool '%s': out of memory: the DNS answer is not applied", dp->pool);
        return;
    }
    memcpy(dp->set, set, sizeof(*set));
    struct config next;
    if (config_copy(&next, ds.host.current()) < 0) {
        log_warn("pool '%s': out of memory: the DNS answer is not applied", dp->pool);
        return;
    }
    discovery_fill(&next);
    admin_overlay(&next, 0); /* the API's changes stay */
    char msg[300];
    if (ds.host.apply(&next, msg, sizeof(msg)) < 0)
        log_warn("pool '%s': the backends DNS gives could not be applied: %s", dp->pool, msg);
}

static int start_one(struct disc_pool *dp)
{
    struct discover_spec spec;
    char why[256];
    to_spec(dp->pool, &dp->conf, &spec);
    dp->d = discover_start(ds.host.loop, &spec, on_set, NULL, why, sizeof(why));
    if (!dp->d) {
        log_err("pool '%s': cannot discover %s: %s", dp->pool, dp->conf.dns, why);
        return -1;
    }
    log_info("pool '%s': backends from DNS: %s records of %s%s%s", dp->pool,
             dp->conf.type == DISC_SRV    ? "SRV"
             : dp->conf.type == DISC_A    ? "A"
             : dp->conf.type == DISC_AAAA ? "AAAA"
                                          : "A and AAAA",
             dp->conf.dns, dp->conf.nresolvers ? " from " : " (resolvers of /etc/resolv.conf)",
             dp->conf.nresolvers ? dp->conf.resolvers[0] : "");
    return 0;
}

static int add(const struct pool_conf *p)
{
    struct disc_pool *v = realloc(ds.v, (ds.n + 1) * sizeof(*v));
    if (!v) return -1;
    ds.v = v;
    struct disc_pool *dp = &ds.v[ds.n];
    memset(dp, 0, sizeof(*dp));
    snprintf(dp->pool, sizeof(dp->pool), "%s", p->name);
    dp->conf = p->discover;
    if (start_one(dp) < 0) return -1;
    ds.n++;
    return 0;
}

int discovery_start(const struct discovery_host *host, const struct config *cfg)
{
    ds.host = *host;
    for (uint32_t i = 0; i < cfg->npools; i++)
        if (cfg->pools[i].discover.dns[0] && add(&cfg->pools[i]) < 0) return -1;
    return 0;
}

void discovery_sync(const struct config *cfg)
{
    for (uint32_t i = 0; i < ds.n; i++) {
        struct disc_pool *dp = &ds.v[i];
        const struct pool_conf *p = NULL;
        for (uint32_t k = 0; k < cfg->npools && !p; k++)
            if (!strcmp(cfg->pools[k].name, dp->pool)) p = &cfg->pools[k];
        if (p && p->discover.dns[0] && same_conf(&dp->conf, &p->discover)) continue;
        uint64_t ok = 0, failed = 0;
        discover_counts(dp->d, &ok, &failed);
        discover_stop(dp->d);
        dp->d = NULL;
        if (!p || !p->discover.dns[0]) {
            log_info("pool '%s': no longer discovers %s", dp->pool, dp->conf.dns);
            free(dp->set);
            ds.v[i--] = ds.v[--ds.n];
            continue;
        }
        if (!same_source(&dp->conf, &p->discover)) {
            free(dp->set); /* another name: its backends went with the reload */
            dp->set = NULL;
        }
        log_info("pool '%s': discover settings changed: asking again", dp->pool);
        dp->conf = p->discover;
        if (start_one(dp) < 0) {
            free(dp->set);
            ds.v[i--] = ds.v[--ds.n];
            continue;
        }
        discover_add_counts(dp->d, ok, failed);
    }
    for (uint32_t k = 0; k < cfg->npools; k++)
        if (cfg->pools[k].discover.dns[0] && !find(cfg->pools[k].name)) add(&cfg->pools[k]);
}

void discovery_stop(void)
{
    for (uint32_t i = 0; i < ds.n; i++) {
        discover_stop(ds.v[i].d);
        free(ds.v[i].set);
    }
    free(ds.v);
    ds.v = NULL;
    ds.n = 0;
}
