/* generation: a configuration and its pools, reference counted. See generation.h. */
#include "upstream/generation.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "upstream/stats.h"

void gen_release(struct generation *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < g->cfg->npools; i++) pool_destroy(&g->pools[i]);
    free(g->pools);
    free(g->listener_slot);
    struct gen_tls t = {g->tls, g->tls_clients, g->cfg->nlisteners, g->cfg->npools};
    gen_tls_free(&t);
    config_free(g->cfg);
    free(g->cfg);
    free(g);
}

/* Backends of new pool np that were in prev carry their health over; a
 * discovered backend that is new starts DOWN when the pool has active
 * checks, until its first check passes (health.c), so that it takes no
 * request before it was seen answering. */
static void carry_state(struct pool *np, const struct pool_conf *nc, const struct generation *prev)
{
    for (uint32_t b = 0; b < np->n; b++) {
        struct backend *nb = &np->backends[b];
        if (!nb->conf->dns || !nc->health_interval_ms) continue;
        atomic_store(&nb->state, BACKEND_DOWN);
        atomic_store(&nb->unchecked, 1);
    }
    for (uint32_t p = 0; prev && p < prev->cfg->npools; p++) {
        if (strcmp(prev->cfg->pools[p].name, nc->name)) continue;
        for (uint32_t b = 0; b < np->n; b++)
            for (uint32_t o = 0; o < prev->pools[p].n; o++) {
                const struct backend *ob = &prev->pools[p].backends[o];
                struct backend *nb = &np->backends[b];
                if (strcmp(ob->conf->url, nb->conf->url)) continue;
                atomic_store(&nb->state, backend_state(ob));
                atomic_store(&nb->fails, atomic_load(&ob->fails));
                atomic_store(&nb->ramp_from_ms, atomic_load(&ob->ramp_from_ms));
                atomic_store(&nb->unchecked, atomic_load(&ob->unchecked));
                if (backend_draining(ob) != backend_draining(nb))
                    log_info(backend_draining(ob)
                                 ? "pool '%s': backend %s no longer drains: it takes new "
                                   "requests again"
                                 : "pool '%s': backend %s is DRAINING: it takes no new "
                                   "requests; those in flight finish",
                             nc->name, ob->conf->url);
            }
    }
}

struct generation *gen_new(struct config *cfg, const struct generation *prev)
{
    struct generation *g = calloc(1, sizeof(*g));
    struct config *c = malloc(sizeof(*c));
    struct pool *pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*pools));
    if (!g || !c || !pools) {
        free(g);
        free(c);
        free(pools);
        return NULL;
    }
    *c = *cfg; /* the arrays now belong to c */
    memset(cfg, 0, sizeof(*cfg));
    uint32_t gbase = 0;
    for (uint32_t i = 0; i < c->npools; gbase += pools[i].n, i++) {
        int err = pool_init(&pools[i], &c->pools[i], gbase);
        if (err < 0) {
            log_err("cannot set up pool '%s': %s", c->pools[i].name, strerror(-err));
            for (uint32_t k = 0; k < i; k++) pool_destroy(&pools[k]);
            free(pools);
            config_free(c);
            free(c);
            free(g);
            return NULL;
        }
        carry_state(&pools[i], &c->pools[i], prev);
        for (uint32_t b = 0; b < pools[i].n; b++) {
            uint32_t slot = stats_backend_slot(c->pools[i].name, c->pools[i].backends[b].url);
            /* out of slots: shares slot 0's counters rather than failing a reload */
            pools[i].backends[b].slot = slot == UINT32_MAX ? 0 : slot;
        }
        pool_update_standby(&pools[i]);
    }
    g->listener_slot = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*g->listener_slot));
    if (!g->listener_slot) {
        for (uint32_t k = 0; k < c->npools; k++) pool_destroy(&pools[k]);
        free(pools);
        config_free(c);
        free(c);
        free(g);
        return NULL;
    }
    for (uint32_t l = 0; l < c->nlisteners; l++) {
        uint32_t slot = stats_listener_slot(c->listeners[l].bind);
        g->listener_slot[l] = slot == UINT32_MAX ? 0 : slot;
    }
    g->cfg = c;
    g->pools = pools;
    g->nbackends = gbase;
    atomic_init(&g->refs, 1);
    return g;
}

int gen_tls_new(const struct config *cfg, FILE *errs, FILE *warns, int log_loaded,
                struct gen_tls *out)
{
    struct gen_tls t = {.nservers = cfg->nlisteners, .nclients = cfg->npools};
    *out = (struct gen_tls){0};
    t.servers = calloc(t.nservers ? t.nservers : 1, sizeof(*t.servers));
    t.clients = calloc(t.nclients ? t.nclients : 1, sizeof(*t.clients));
    if (!t.servers || !t.clients) {
        gen_tls_free(&t);
        fprintf(errs, "TLS: out of memory\n");
        return -1;
    }
    int bad = 0;
    for (uint32_t i = 0; i < cfg->nlisteners; i++)
        if (cfg->listeners[i].tls &&
            !(t.servers[i] = tls_server_new(cfg, &cfg->listeners[i], errs, warns, log_loaded)))
            bad = 1;
    for (uint32_t i = 0; i < cfg->npools; i++) {
        /* a pool that discovers https:// backends has its context before DNS
         * gave any: usher -t and a reload check its files all the same */
        const struct pool_conf *p = &cfg->pools[i];
        if (config_pool_tls(p) && !(t.clients[i] = tls_client_new(cfg, p, errs, warns, log_loaded)))
            bad = 1;
    }
    if (bad) {
        gen_tls_free(&t);
        return -1;
    }
    *out = t;
    return 0;
}

void gen_tls_give(struct generation *g, struct gen_tls *t)
{
    g->tls = t->servers;
    g->tls_clients = t->clients;
    for (uint32_t i = 0; t->clients && i < g->cfg->npools; i++)
        for (uint32_t b = 0; b < g->pools[i].n; b++)
            g->pools[i].backends[b].tls = g->pools[i].backends[b].conf->tls ? t->clients[i] : NULL;
    *t = (struct gen_tls){0};
}

void gen_tls_free(struct gen_tls *t)
{
    for (uint32_t i = 0; t->servers && i < t->nservers; i++) tls_server_free(t->servers[i]);
    for (uint32_t i = 0; t->clients && i < t->nclients; i++) tls_client_free(t->clients[i]);
    free(t->servers);
    free(t->clients);
    *t = (struct gen_tls){0};
}
