/* loop: epoll, a timer min-heap and deferred frees. See loop.h. */
#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

uint64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void loop_update_time(struct loop *loop)
{
    if (loop->clock) {
        loop->now = loop->clock(loop->clock_arg);
        loop->now_us = loop->now * 1000;
        return;
    }
    struct timespec ts; /* one reading for both */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    loop->now = loop->now_us / 1000;
}

void loop_set_clock(struct loop *loop, uint64_t (*clock)(void *arg), void *arg)
{
    loop->clock = clock;
    loop->clock_arg = arg;
}

int loop_init(struct loop *loop)
{
    *loop = (struct loop){0};
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) return -errno;
    loop_update_time(loop);
    return 0;
}

void loop_destroy(struct loop *loop)
{
    if (loop->epfd >= 0) close(loop->epfd);
    free(loop->heap);
    loop->heap = NULL;
    loop->epfd = -1;
}

int loop_add(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0 ? -errno : 0;
}

void loop_close(struct loop *loop, struct loop_io *io)
{
    if (io->fd < 0) return;
    /* close() alone removes the fd from epoll unless it was dup()ed; we never dup. */
    close(io->fd);
    io->fd = -1;
}

void loop_forget(struct loop *loop, struct loop_io *io)
{
    if (io->fd < 0) return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fd = -1;
}

/* ---- timer heap (1-based positions stored in heap_i; 0 = not armed) ---- */

static void heap_swap(struct loop *loop, uint32_t a, uint32_t b)
{
    struct loop_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_i = a + 1;
    loop->heap[b]->heap_i = b + 1;
}

static void heap_up(struct loop *loop, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (loop->heap[parent]->when <= loop->heap[i]->when) break;
        heap_swap(loop, i, parent);
        i = parent;
    }
}

static void heap_down(struct loop *loop, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->when < loop->heap[m]->when) m = l;
        if (r < loop->heap_len && loop->heap[r]->when < loop->heap[m]->when) m = r;
        if (m == i) break;
        heap_swap(loop, i, m);
        i = m;
    }
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    if (!t->heap_i) return;
    uint32_t i = t->heap_i - 1;
    uint32_t last = --loop->heap_len;
    if (i != last) {
        loop->heap[i] = loop->heap[last];
        loop->heap[i]->heap_i = i + 1;
        heap_down(loop, i);
        heap_up(loop, i);
    }
    t->heap_i = 0;
}

void loop_timer_at(struct loop *loop, struct loop_timer *t, uint64_t when)
{
    if (loop->in_timers && when <= loop->now) when = loop->now + 1;
    if (t->heap_i) {
        uint64_t old = t->when;
        t->when = when;
        if (when < old)
            heap_up(loop, t->heap_i - 1);
        else
            heap_down(loop, t->heap_i - 1);
        return;
    }
    if (loop->heap_len == loop->heap_cap) {
        uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h) abort(); /* timers are per connection; without memory we cannot keep promises */
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->when = when;
    loop->heap[loop->heap_len] = t;
    t->heap_i = ++loop->heap_len;
    heap_up(loop, loop->heap_len - 1);
}

void loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t ms)
{
    loop_timer_at(loop, t, loop->now + ms);
}

static void run_timers(struct loop *loop)
{
    loop->in_timers = 1;
    while (loop->heap_len && loop->heap[0]->when <= loop->now) {
        struct loop_timer *t = loop->heap[0];
        loop_timer_stop(loop, t);
        t->cb(loop, t);
    }
    loop->in_timers = 0;
}

void loop_defer(struct loop *loop, struct loop_defer *d)
{
    d->next = loop->deferred;
    loop->deferred = d;
}

void loop_run_deferred(struct loop *loop)
{
    while (loop->deferred) {
        struct loop_defer *d = loop->deferred;
        loop->deferred = d->next;
        d->fn(d);
    }
}

void loop_run_once(struct loop *loop, int max_wait_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int wait = max_wait_ms;
    if (loop->heap_len) {
        uint64_t next = loop->heap[0]->when;
        int until = next <= loop->now ? 0 : (int)(next - loop->now);
        if (wait < 0 || until < wait) wait = until;
    }
    int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, wait);
    loop_update_time(loop);
    for (int i = 0; i < n; i++) {
        struct loop_io *io = evs[i].data.ptr;
        if (io->fd < 0) continue; /* closed earlier in this batch */
        io->cb(loop, io, evs[i].events);
    }
    run_timers(loop);
    loop_run_deferred(loop);
}

void loop_run(struct loop *loop)
{
    while (!loop->stop) loop_run_once(loop, 1000);
    loop_run_deferred(loop);
}
