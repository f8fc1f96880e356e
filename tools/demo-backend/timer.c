/* timer: see timer.h. */
#include "timer.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

#include "util.h"

static struct timer **g_heap;
static size_t g_heap_n, g_heap_cap;

static void heap_set(size_t i, struct timer *t)
{
    g_heap[i] = t;
    t->idx = (long)i;
}

static void heap_up(size_t i)
{
    struct timer *t = g_heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (g_heap[p]->deadline <= t->deadline) break;
        heap_set(i, g_heap[p]);
        i = p;
    }
    heap_set(i, t);
}

static void heap_down(size_t i)
{
    struct timer *t = g_heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = t->deadline;
        if (l < g_heap_n && g_heap[l]->deadline < best) {
            m = l;
            best = g_heap[l]->deadline;
        }
        if (l + 1 < g_heap_n && g_heap[l + 1]->deadline < best) m = l + 1;
        if (m == i) break;
        heap_set(i, g_heap[m]);
        i = m;
    }
    heap_set(i, t);
}

void timer_cancel(struct timer *t)
{
    if (t->idx < 0) return;
    size_t i = (size_t)t->idx, last = --g_heap_n;
    t->idx = -1;
    t->kind = TIMER_NONE;
    if (i != last) {
        struct timer *m = g_heap[last];
        heap_set(i, m);
        heap_down(i);
        heap_up((size_t)m->idx);
    }
}

void timer_arm(struct timer *t, uint64_t ms, enum timer_kind kind)
{
    timer_cancel(t);
    if (g_heap_n == g_heap_cap) {
        g_heap_cap = g_heap_cap ? 2 * g_heap_cap : 64;
        g_heap = util_xrealloc(g_heap, g_heap_cap * sizeof *g_heap);
    }
    t->deadline = util_now_ms() + ms;
    t->kind = kind;
    heap_set(g_heap_n++, t);
    heap_up(g_heap_n - 1);
}

int timer_wait_ms(void)
{
    if (g_heap_n == 0) return -1;
    uint64_t now = util_now_ms(), dl = g_heap[0]->deadline;
    return dl <= now ? 0 : (dl - now > INT_MAX ? INT_MAX : (int)(dl - now));
}

struct timer *timer_due(uint64_t now)
{
    return g_heap_n > 0 && g_heap[0]->deadline <= now ? g_heap[0] : NULL;
}

void timer_free(void)
{
    free(g_heap);
    g_heap = NULL;
    g_heap_n = g_heap_cap = 0;
}
