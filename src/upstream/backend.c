/* backend: pool set-up. See backend.h. */
#include "upstream/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "balance/balance.h"

int pool_init(struct pool *p, const struct pool_conf *c, uint32_t gbase)
{
    p->cfg = c;
    p->n = c->nbackends;
    /* a pool of discovered backends may have none yet: requests get 503 */
    p->backends = calloc(p->n ? p->n : 1, sizeof(*p->backends));
    if (!p->backends) return -ENOMEM;
    for (uint32_t i = 0; i < p->n; i++) {
        p->backends[i].conf = &c->backends[i];
        p->backends[i].index = i;
        p->backends[i].gindex = gbase + i;
        atomic_init(&p->backends[i].state, BACKEND_UP);
        atomic_init(&p->backends[i].inflight, 0);
        atomic_init(&p->backends[i].fails, 0);
        atomic_init(&p->backends[i].drain, c->backends[i].maint   ? BACKEND_MAINT
                                           : c->backends[i].drain ? BACKEND_DRAIN
                                                                  : 0);
        atomic_init(&p->backends[i].ramp_from_ms, 0);
        atomic_init(&p->backends[i].standby, 0);
        atomic_init(&p->backends[i].unchecked, 0);
    }
    /* standby only matters with two SRV priorities or more */
    p->priorities = 0;
    int first = -1;
    for (uint32_t i = 0; i < p->n; i++) {
        if (c->backends[i].dns != BACKEND_DNS_SRV) continue;
        if (first < 0)
            first = c->backends[i].priority;
        else if (c->backends[i].priority != first)
            p->priorities = 1;
    }
    p->ops = balance_find(c->balance);
    if (!p->ops) return -EINVAL;
    p->balancer = NULL;
    if (p->ops->init && p->n) {
        int err = p->ops->init(p, &p->balancer);
        if (err < 0) return err;
    }
    return 0;
}

static pthread_mutex_t standby_lock = PTHREAD_MUTEX_INITIALIZER;

void pool_update_standby(struct pool *p)
{
    if (!p->priorities) return;
    /* each caller computes after its own change, one at a time: the last one
     * sees every change made before it */
    pthread_mutex_lock(&standby_lock);
    uint32_t best = UINT32_MAX, lowest = UINT32_MAX;
    for (uint32_t i = 0; i < p->n; i++) {
        const struct backend *b = &p->backends[i];
        if (b->conf->dns != BACKEND_DNS_SRV) continue;
        if (b->conf->priority < lowest) lowest = b->conf->priority;
        if (backend_state(b) == BACKEND_UP && !backend_draining(b) && b->conf->priority < best)
            best = b->conf->priority;
    }
    if (best == UINT32_MAX) best = lowest;
    for (uint32_t i = 0; i < p->n; i++) {
        struct backend *b = &p->backends[i];
        uint8_t sb = b->conf->dns == BACKEND_DNS_SRV && b->conf->priority != best;
        if (atomic_load_explicit(&b->standby, memory_order_relaxed) != sb)
            atomic_store_explicit(&b->standby, sb, memory_order_relaxed);
    }
    pthread_mutex_unlock(&standby_lock);
}

void pool_destroy(struct pool *p)
{
    if (p->ops && p->ops->destroy && p->balancer) p->ops->destroy(p->balancer);
    free(p->backends);
    p->backends = NULL;
}
