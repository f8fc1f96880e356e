/* loop: one epoll event loop per thread, with a timer heap and deferred frees.
 *
 * Connections are registered edge-triggered once for read and write; the owner
 * keeps track of what it still wants to do (see session.c). Timers live in a
 * binary min-heap keyed by their deadline in monotonic milliseconds. Objects
 * closed during an iteration are freed at its end, so an event already fetched
 * for them in the same batch never touches freed memory. */
#ifndef USHER_CORE_LOOP_H
#define USHER_CORE_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_io;
struct loop_timer;

typedef void (*loop_io_cb)(struct loop *loop, struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop *loop, struct loop_timer *timer);

struct loop_io {
    int fd; /* -1 once closed: pending events for it are dropped */
    loop_io_cb cb;
};

struct loop_timer {
    uint64_t when;   /* deadline, monotonic ms */
    uint32_t heap_i; /* position in the heap + 1; 0 when not armed */
    loop_timer_cb cb;
};

/* An object whose free must wait for the end of the current iteration. */
struct loop_defer {
    struct loop_defer *next;
    void (*fn)(struct loop_defer *d);
};

struct loop {
    int epfd;
    int stop;
    int in_timers;   /* run_timers is calling timer callbacks */
    uint64_t now;    /* monotonic ms, refreshed once per iteration */
    uint64_t now_us; /* the same instant in microseconds (latency metrics) */
    /* where `now` comes from; NULL: loop_clock_ms (tests and fuzzers set
     * their own to reach timeouts without waiting) */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
    struct loop_timer **heap;
    uint32_t heap_len, heap_cap;
    struct loop_defer *deferred;
};

/* Tests: read the time from clock(arg) instead of CLOCK_MONOTONIC (it must
 * not go backwards). Takes effect at the next loop_update_time. */
void loop_set_clock(struct loop *loop, uint64_t (*clock)(void *arg), void *arg);

/* Creates the epoll instance. Returns 0 or -errno. */
int loop_init(struct loop *loop);
/* Releases what loop_init took; timers and ios must already be gone. */
void loop_destroy(struct loop *loop);

/* Registers io->fd for events (EPOLLIN, EPOLLOUT, EPOLLET, ...). 0 or -errno. */
int loop_add(struct loop *loop, struct loop_io *io, uint32_t events);
int loop_mod(struct loop *loop, struct loop_io *io, uint32_t events);
/* Unregisters and closes io->fd and marks io closed (fd = -1). */
void loop_close(struct loop *loop, struct loop_io *io);
/* Unregisters io->fd without closing it (a library owns it) and marks io
 * closed (fd = -1): pending events for it are dropped as for loop_close. */
void loop_forget(struct loop *loop, struct loop_io *io);

/* Arms (or re-arms) timer to fire ms milliseconds from loop->now. A timer
 * armed by a timer callback for now or earlier fires at the next iteration
 * (1 ms later), never again in the same pass: a connection that keeps
 * re-arming itself cannot keep the loop from epoll and other sockets. */
void loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t ms);
/* Arms timer for an absolute deadline. */
void loop_timer_at(struct loop *loop, struct loop_timer *t, uint64_t when);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
static inline int loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_i != 0;
}

/* Queues d->fn(d) to run at the end of the current iteration. */
void loop_defer(struct loop *loop, struct loop_defer *d);
/* Runs the deferred frees now: for an owner that closes its objects after
 * the loop stopped (no iteration will come to free them). */
void loop_run_deferred(struct loop *loop);

/* Refreshes loop->now from CLOCK_MONOTONIC. */
void loop_update_time(struct loop *loop);
/* Runs one iteration: waits at most max_wait_ms (or until the next timer),
 * dispatches events, fires due timers, runs deferred frees. */
void loop_run_once(struct loop *loop, int max_wait_ms);
/* Runs until loop->stop is set. */
void loop_run(struct loop *loop);
/* Monotonic milliseconds. */
uint64_t loop_clock_ms(void);

#endif
