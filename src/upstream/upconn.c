/* upconn: backend connections and the per-worker idle pool. See upconn.h. */
#include "upstream/upconn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/sock.h"
#include "core/worker.h"
#include "http/session.h"

#define UPCONN_IDLE_MAX 1024 /* idle connections kept per worker and backend */

static void upconn_free(struct loop_defer *d)
{
    struct upconn *u = (struct upconn *)((char *)d - offsetof(struct upconn, defer));
    struct worker *w = u->w;
    u->next = w->free_upconns;
    w->free_upconns = u;
}

static void idle_unlink(struct upconn *u)
{
    struct upconn_idle_list *l = &u->w->idle[u->be->gindex];
    if (u->prev)
        u->prev->next = u->next;
    else
        l->head = u->next;
    if (u->next) u->next->prev = u->prev;
    u->next = u->prev = NULL;
    u->idle = 0;
    l->count--;
}

void upconn_close(struct upconn *u)
{
    struct worker *w = u->w;
    if (u->io.fd < 0) return;
    if (u->idle) idle_unlink(u);
    loop_timer_stop(&w->loop, &u->idle_timer);
    loop_close(&w->loop, &u->io);
    u->owner = NULL;
    loop_defer(&w->loop, &u->defer);
}

static void on_event(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct upconn *u = (struct upconn *)io;
    if (u->idle) {
        /* idle: readable means closed by the backend, or bytes it should not send */
        upconn_close(u);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) u->readable = 1;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) u->rdhup = 1;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) u->writable = 1;
    session_on_upstream(u->owner, u, events);
}

static void on_idle_timeout(struct loop *loop, struct loop_timer *t)
{
    struct upconn *u = (struct upconn *)((char *)t - offsetof(struct upconn, idle_timer));
    upconn_close(u);
}

struct upconn *upconn_take_idle(struct worker *w, struct backend *b, struct session *owner)
{
    struct upconn *u = w->idle[b->gindex].head;
    if (!u) return NULL;
    idle_unlink(u);
    loop_timer_stop(&w->loop, &u->idle_timer);
    u->owner = owner;
    u->reused = 1;
    u->writable = 1; /* an idle socket has room; a failed write tells us otherwise */
    u->readable = 0;
    u->rdhup = 0;
    return u;
}

struct upconn *upconn_connect(struct worker *w, struct backend *b, struct session *owner, int *err)
{
    int fd = sock_connect(&b->conf->addr);
    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    struct upconn *u = w->free_upconns;
    if (u)
        w->free_upconns = u->next;
    else if (!(u = malloc(sizeof(*u)))) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    *u = (struct upconn){0};
    u->io.fd = fd;
    u->io.cb = on_event;
    u->idle_timer.cb = on_idle_timeout;
    u->defer.fn = upconn_free;
    u->w = w;
    u->be = b;
    u->owner = owner;
    u->out_armed = 1; /* the end of the connect shows as writability */
    int e = loop_add(&w->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    if (e < 0) {
        *err = e;
        close(fd);
        u->io.fd = -1;
        u->next = w->free_upconns;
        w->free_upconns = u;
        return NULL;
    }
    return u;
}

/* EPOLLOUT is only watched while it is needed: on loopback every ACK would
 * otherwise wake the loop for a socket nobody wants to write to. */
void upconn_connected(struct upconn *u)
{
    u->connected = 1;
    if (u->out_armed && loop_mod(&u->w->loop, &u->io, EPOLLIN | EPOLLRDHUP | EPOLLET) == 0)
        u->out_armed = 0;
}

void upconn_want_write(struct upconn *u)
{
    if (!u->out_armed &&
        loop_mod(&u->w->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == 0)
        u->out_armed = 1;
}

void upconn_release(struct upconn *u)
{
    struct worker *w = u->w;
    struct upconn_idle_list *l = &w->idle[u->be->gindex];
    u->owner = NULL;
    if (l->count >= UPCONN_IDLE_MAX) {
        upconn_close(u);
        return;
    }
    u->idle = 1;
    u->prev = NULL;
    u->next = l->head;
    if (l->head) l->head->prev = u;
    l->head = u;
    l->count++;
    loop_timer_set(&w->loop, &u->idle_timer, w->cfg->upstream_idle_ms);
}

void upconn_close_all_idle(struct worker *w)
{
    for (uint32_t i = 0; i < w->nbackends; i++)
        while (w->idle[i].head) upconn_close(w->idle[i].head);
}
