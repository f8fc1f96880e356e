/* upconn: backend connections and the per-worker idle pool. See upconn.h. */
#include "upstream/upconn.h"
#include "upstream/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sock.h"
#include "upstream/generation.h"
#include "tls/tls.h"

#define UPCONN_IDLE_MAX 1024 /* idle connections kept per worker and backend */

static void upconn_free(struct loop_defer *d)
{
    struct upconn *u = (struct upconn *)((char *)d - offsetof(struct upconn, defer));
    u->next = u->pool->free;
    u->pool->free = u;
}

static void idle_unlink(struct upconn *u)
{
    struct upconn_idle_list *l = &u->pool->idle[u->be->gindex];
    if (u->prev)
        u->prev->next = u->next;
    else
        l->head = u->next;
    if (u->next) u->next->prev = u->prev;
    u->next = u->prev = NULL;
    u->idle = 0;
    l->count--;
    if (u->st) STATS_ADD(u->st->idle_closed, 1);
}

void upconn_close(struct upconn *u)
{
    struct upconn_pool *p = u->pool;
    if (u->conn.io.fd < 0) return;
    if (u->idle) idle_unlink(u);
    loop_timer_stop(p->loop, &u->idle_timer);
    conn_close(&u->conn);
    u->owner = NULL;
    loop_defer(p->loop, &u->defer);
}

static void on_event(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct upconn *u = (struct upconn *)io;
    if (u->idle) {
        /* idle: readable means closed by the backend, or bytes it should not send */
        upconn_close(u);
        return;
    }
    conn_events(&u->conn, events);
    if (u->owner) u->cb(u->owner, u);
}

static void on_idle_timeout(struct loop *loop, struct loop_timer *t)
{
    struct upconn *u = (struct upconn *)((char *)t - offsetof(struct upconn, idle_timer));
    upconn_close(u);
}

struct upconn *upconn_take_idle(struct upconn_pool *p, struct backend *b, upconn_cb cb, void *owner)
{
    struct upconn *u = p->idle[b->gindex].head;
    if (!u) return NULL;
    idle_unlink(u);
    loop_timer_stop(p->loop, &u->idle_timer);
    u->cb = cb;
    u->owner = owner;
    u->reused = 1;
    u->conn.writable = 1; /* an idle socket has room; a failed write tells us otherwise */
    u->conn.readable = 0;
    u->conn.rdhup = 0;
    return u;
}

/* The list of b in p when b is a backend of p's generation, else NULL. */
static struct upconn_idle_list *list_of(struct upconn_pool *p, const struct backend *b)
{
    return b->gindex < p->nbackends ? &p->idle[b->gindex] : NULL;
}

/* A new TLS session of u (tls_session_sink): the next connect to its
 * backend resumes it. A connection of an older generation keeps none. */
static void store_session(struct conn *c, struct ssl_session_st *s)
{
    struct upconn *u = (struct upconn *)c;
    struct upconn_idle_list *l = list_of(u->pool, u->be);
    if (u->epoch != u->pool->epoch || !l) {
        tls_session_free(s);
        return;
    }
    if (l->session) tls_session_free(l->session);
    l->session = s;
    l->session_be = u->be;
}

static const struct tls_session_sink session_sink = {store_session};

/* Forgets the session kept for b (a handshake failed with it). */
static void drop_session(struct upconn_pool *p, const struct backend *b)
{
    struct upconn_idle_list *l = list_of(p, b);
    if (!l || !l->session || l->session_be != b) return;
    tls_session_free(l->session);
    l->session = NULL;
}

int upconn_connected(struct upconn *u, char *why, size_t cap)
{
    if (!u->connected) {
        int err = conn_connect_result(&u->conn);
        if (err) {
            snprintf(why, cap, "%s", strerror(-err));
            return err;
        }
        u->connected = 1;
    }
    if (!u->conn.tls) return 0;
    int err = tls_client_handshake(&u->conn, why, cap);
    if (err < 0 && err != -EAGAIN) drop_session(u->pool, u->be);
    return err;
}

const char *upconn_why(struct upconn *u, int err, char *buf, size_t cap)
{
    if (u && u->conn.tls && tls_conn_alert(&u->conn, buf, cap)) return buf;
    snprintf(buf, cap, "%s", strerror(-err));
    return buf;
}

struct upconn *upconn_connect(struct upconn_pool *p, struct backend *b, upconn_cb cb, void *owner,
                              int *err)
{
    int fd = sock_connect(&b->conf->addr);
    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    struct upconn *u = p->free;
    if (u)
        p->free = u->next;
    else if (!(u = malloc(sizeof(*u)))) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    *u = (struct upconn){0};
    u->idle_timer.cb = on_idle_timeout;
    u->defer.fn = upconn_free;
    u->pool = p;
    u->be = b;
    u->st = p->stats ? stats_backend_of(p->stats, b->slot) : NULL;
    u->cb = cb;
    u->owner = owner;
    u->epoch = p->epoch;
    int e = conn_open(&u->conn, p->loop, fd, b->tls ? &conn_tls : &conn_plain, on_event, 1);
    if (e < 0) {
        *err = e;
        close(fd);
        u->next = p->free;
        p->free = u;
        return NULL;
    }
    if (b->tls) {
        struct upconn_idle_list *l = list_of(p, b);
        struct ssl_session_st *resume = l && l->session_be == b ? l->session : NULL;
        e = tls_client_attach(&u->conn, b->tls, b->conf, resume, &session_sink);
        if (e < 0) {
            *err = e;
            upconn_close(u);
            return NULL;
        }
    }
    return u;
}

void upconn_release(struct upconn *u)
{
    struct upconn_pool *p = u->pool;
    struct upconn_idle_list *l = &p->idle[u->be->gindex];
    u->owner = NULL;
    /* TLS: bytes after the response wait inside OpenSSL, where no event
     * would tell: the connection cannot carry another request */
    if (l->count >= UPCONN_IDLE_MAX || tls_conn_pending(&u->conn)) {
        upconn_close(u);
        return;
    }
    u->idle = 1;
    u->prev = NULL;
    u->next = l->head;
    if (l->head) l->head->prev = u;
    l->head = u;
    l->count++;
    if (u->st) STATS_ADD(u->st->idle_opened, 1);
    loop_timer_set(p->loop, &u->idle_timer, p->idle_ms);
}

void upconn_close_all_idle(struct upconn_pool *p)
{
    for (uint32_t i = 0; i < p->nbackends; i++)
        while (p->idle[i].head) upconn_close(p->idle[i].head);
}

int upconn_pool_init(struct upconn_pool *p, struct loop *loop, uint32_t nbackends, uint32_t idle_ms)
{
    *p = (struct upconn_pool){.loop = loop, .idle_ms = idle_ms, .nbackends = nbackends};
    p->idle = calloc(nbackends ? nbackends : 1, sizeof(*p->idle));
    return p->idle ? 0 : -ENOMEM;
}

static void free_sessions(struct upconn_pool *p)
{
    for (uint32_t i = 0; p->idle && i < p->nbackends; i++) {
        if (p->idle[i].session) tls_session_free(p->idle[i].session);
        p->idle[i].session = NULL;
    }
}

/* The backend of g that is b's (the same pool and URL: the same counters
 * slot), for a plain backend, or NULL. by_slot: g's backends by slot. */
static struct backend *same_backend(struct backend **by_slot, uint32_t nslots,
                                    const struct backend *b)
{
    if (b->conf->tls || b->slot >= nslots) return NULL;
    struct backend *nb = by_slot[b->slot];
    /* out of slots, backends share slot 0: the URL tells */
    return nb && !strcmp(nb->conf->url, b->conf->url) ? nb : NULL;
}

int upconn_pool_reset(struct upconn_pool *p, const struct generation *g, uint32_t idle_ms)
{
    uint32_t nbackends = g->nbackends, nslots = stats_backend_slots();
    struct upconn_idle_list *idle = calloc(nbackends ? nbackends : 1, sizeof(*idle));
    struct backend **by_slot = calloc(nslots ? nslots : 1, sizeof(*by_slot));
    if (!idle || !by_slot) {
        free(idle);
        free(by_slot);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < g->cfg->npools; i++)
        for (uint32_t k = 0; k < g->pools[i].n; k++) {
            struct backend *b = &g->pools[i].backends[k];
            if (b->slot < nslots && !b->tls) by_slot[b->slot] = b;
        }
    /* idle connections to a plain backend that stays move to its new list:
     * a DNS answer or an API change that keeps a backend keeps its pooled
     * connections (TLS ones are closed: the new generation's TLS settings
     * may differ from those they were made with) */
    for (uint32_t i = 0; p->idle && i < p->nbackends; i++) {
        struct upconn_idle_list *l = &p->idle[i];
        struct backend *nb = l->head ? same_backend(by_slot, nslots, l->head->be) : NULL;
        if (!nb) continue;
        struct upconn_idle_list *nl = &idle[nb->gindex];
        while (l->head) {
            struct upconn *u = l->head;
            l->head = u->next;
            l->count--;
            u->be = nb;
            u->prev = NULL;
            u->next = nl->head;
            if (nl->head) nl->head->prev = u;
            nl->head = u;
            nl->count++;
        }
    }
    free(by_slot);
    upconn_close_all_idle(p);
    /* the sessions were made under the old generation's TLS settings */
    free_sessions(p);
    p->epoch++;
    free(p->idle);
    p->idle = idle;
    p->nbackends = nbackends;
    p->idle_ms = idle_ms;
    return 0;
}

void upconn_pool_destroy(struct upconn_pool *p)
{
    while (p->free) {
        struct upconn *u = p->free;
        p->free = u->next;
        free(u);
    }
    free_sessions(p);
    free(p->idle);
    p->idle = NULL;
}
