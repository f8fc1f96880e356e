/* timer: one-shot deadlines in a binary min-heap (O(log n) arm and cancel).
 *
 * A struct timer is embedded in its owner (a connection) and is in the heap
 * while armed; the heap only holds pointers, so the owner must cancel before
 * it is freed. Single-threaded. */
#ifndef DEMO_TIMER_H
#define DEMO_TIMER_H

#include <stdint.h>

/* What an armed timer is for; its owner decides what firing means. */
enum timer_kind { TIMER_NONE, TIMER_SLOW, TIMER_LINGER };

struct timer {
    long idx; /* position in the heap, -1 while not armed (set this before first use) */
    enum timer_kind kind;
    uint64_t deadline; /* util_now_ms() value */
};

/* Arms t to fire ms milliseconds from now, replacing any earlier arming. */
void timer_arm(struct timer *t, uint64_t ms, enum timer_kind kind);
/* Disarms t (kind becomes TIMER_NONE); a no-op if it is not armed. */
void timer_cancel(struct timer *t);
/* The epoll_wait timeout until the earliest deadline: -1 if none, 0 if past. */
int timer_wait_ms(void);
/* The armed timer with the earliest deadline if it is due at now, else NULL; it stays armed. */
struct timer *timer_due(uint64_t now);
/* Frees the heap's storage; every timer must have been cancelled. */
void timer_free(void);

#endif
