/* backend: pool set-up. See backend.h. */
#include "upstream/backend.h"

#include <errno.h>
#include <stdlib.h>

#include "balance/balance.h"

int pool_init(struct pool *p, const struct pool_conf *c, uint32_t gbase)
{
    p->cfg = c;
    p->n = c->nbackends;
    p->backends = calloc(p->n, sizeof(*p->backends));
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
    }
    p->ops = balance_find(c->balance);
    if (!p->ops) return -EINVAL;
    p->balancer = NULL;
    if (p->ops->init) {
        int err = p->ops->init(p, &p->balancer);
        if (err < 0) return err;
    }
    return 0;
}

void pool_destroy(struct pool *p)
{
    if (p->ops && p->ops->destroy) p->ops->destroy(p->balancer);
    free(p->backends);
    p->backends = NULL;
}
