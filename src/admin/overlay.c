/* overlay: the admin API's runtime changes. See overlay.h. */
#include "admin/overlay.h"

#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/log.h"

static struct {
    struct ov *v;
    uint32_t n, cap;
} ovs;

struct ov *ov_find(const char *pool, const char *url)
{
    for (uint32_t i = 0; i < ovs.n; i++)
        if (!strcmp(ovs.v[i].pool, pool) && !strcmp(ovs.v[i].url, url)) return &ovs.v[i];
    return NULL;
}

struct ov *ov_get(const char *pool, const struct backend_conf *bc)
{
    struct ov *o = ov_find(pool, bc->url);
    if (o) return o;
    if (ovs.n == ovs.cap) {
        uint32_t cap = ovs.cap ? ovs.cap * 2 : 16;
        struct ov *v = realloc(ovs.v, cap * sizeof(*v));
        if (!v) return NULL;
        ovs.v = v;
        ovs.cap = cap;
    }
    o = &ovs.v[ovs.n++];
    memset(o, 0, sizeof(*o));
    snprintf(o->pool, sizeof(o->pool), "%s", pool);
    snprintf(o->url, sizeof(o->url), "%s", bc->url);
    snprintf(o->name, sizeof(o->name), "%s", bc->name);
    o->in_file = !bc->api;
    o->file_weight = bc->weight;
    o->file_drain = bc->drain;
    return o;
}

void ov_drop(struct ov *o)
{
    *o = ovs.v[--ovs.n];
}

void admin_overlay(struct config *c, int from_file)
{
    for (uint32_t i = 0; i < ovs.n; i++) {
        struct ov *o = &ovs.v[i];
        struct pool_conf *p = NULL;
        for (uint32_t k = 0; k < c->npools && !p; k++)
            if (!strcmp(c->pools[k].name, o->pool)) p = &c->pools[k];
        if (!p) {
            if (from_file && o->api)
                log_info("admin: pool '%s' is gone from the file: backend %s (added by the API) "
                         "goes with it",
                         o->pool, o->url);
            ov_drop(o);
            i--;
            continue;
        }
        struct backend_conf *bc = NULL;
        for (uint32_t k = 0; k < p->nbackends && !bc; k++)
            if (!strcmp(p->backends[k].url, o->url)) bc = &p->backends[k];
        if (from_file) {
            o->in_file = bc != NULL;
            if (bc) {
                o->file_weight = bc->weight, o->file_drain = bc->drain;
                o->api = 0;       /* the file names it now */
            } else if (!o->api) { /* a file backend the file dropped: nothing to keep */
                ov_drop(o);
                i--;
                continue;
            }
        }
        if (!bc && o->api && !o->removed) { /* added by the API: append */
            if (p->nbackends >= CONFIG_MAX_BACKENDS) continue;
            struct backend_conf *grown = realloc(p->backends, (p->nbackends + 1) * sizeof(*bc));
            char why[160];
            if (!grown) continue;
            p->backends = grown;
            bc = &p->backends[p->nbackends];
            if (config_parse_backend(o->url, bc, why, sizeof(why)) < 0) continue;
            snprintf(bc->name, sizeof(bc->name), "%s", o->name);
            bc->api = 1;
            p->nbackends++;
        }
        if (!bc) continue;
        bc->api = o->api;
        if (o->has_weight) bc->weight = o->weight;
        if (o->has_state) {
            bc->drain = o->state == OV_DRAIN;
            bc->maint = o->state == OV_MAINT;
        }
        if (o->removing) bc->drain = 1;
        if (o->removed && p->nbackends > 1) {
            size_t at = (size_t)(bc - p->backends);
            memmove(bc, bc + 1, (p->nbackends - at - 1) * sizeof(*bc));
            p->nbackends--;
        }
    }
}

uint32_t ov_count(void)
{
    return ovs.n;
}

struct ov *ov_at(uint32_t i)
{
    return &ovs.v[i];
}

void ov_free(void)
{
    free(ovs.v);
    ovs.v = NULL;
    ovs.n = ovs.cap = 0;
}
