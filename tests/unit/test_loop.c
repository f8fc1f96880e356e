/* Tests src/core/loop.c: the timer heap and deferred frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/loop.h"

static int fired[64];
static int nfired;

struct tagged {
    struct loop_timer t;
    int tag;
};

static void record(struct loop *l, struct loop_timer *t)
{
    fired[nfired++] = ((struct tagged *)t)->tag;
}

static void timers_fire_in_deadline_order(void **state)
{
    struct loop l;
    assert_int_equal(loop_init(&l), 0);
    nfired = 0;
    struct tagged t[6];
    const uint64_t when[6] = {50, 10, 40, 20, 30, 60};
    for (int i = 0; i < 6; i++) {
        t[i] = (struct tagged){.t = {.cb = record}, .tag = (int)when[i]};
        loop_timer_at(&l, &t[i].t, l.now + when[i]);
    }
    /* stop one, move one earlier, move one later */
    loop_timer_stop(&l, &t[4].t);          /* 30 never fires */
    loop_timer_at(&l, &t[5].t, l.now + 5); /* 60 now first */
    t[5].tag = 5;
    loop_timer_at(&l, &t[1].t, l.now + 45); /* 10 now after 40 */
    t[1].tag = 45;
    /* with no wait limit, each iteration sleeps until the earliest timer */
    for (int guard = 0; guard < 20 && nfired < 5; guard++) loop_run_once(&l, -1);
    int expect[] = {5, 20, 40, 45, 50};
    assert_int_equal(nfired, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(fired[i], expect[i]);
    for (int i = 0; i < 6; i++) assert_false(loop_timer_armed(&t[i].t));
    loop_destroy(&l);
}

static void heap_stays_ordered_under_random_use(void **state)
{
    struct loop l;
    assert_int_equal(loop_init(&l), 0);
    enum { N = 500 };
    static struct loop_timer ts[N];
    srand(7);
    for (int i = 0; i < N; i++) {
        ts[i] = (struct loop_timer){.cb = record};
        loop_timer_at(&l, &ts[i], (uint64_t)(rand() % 10000));
    }
    for (int i = 0; i < N; i += 3) loop_timer_stop(&l, &ts[i]);
    for (int i = 1; i < N; i += 5) loop_timer_at(&l, &ts[i], (uint64_t)(rand() % 10000));
    uint32_t armed = 0;
    for (int i = 0; i < N; i++) armed += loop_timer_armed(&ts[i]);
    assert_int_equal(armed, l.heap_len);
    /* pop in order by hand: the root is always the minimum */
    uint64_t last = 0;
    uint32_t count = 0;
    while (l.heap_len) {
        struct loop_timer *t = l.heap[0];
        assert_true(t->when >= last);
        last = t->when;
        loop_timer_stop(&l, t);
        count++;
    }
    assert_int_equal(count, armed);
    /* stopped: i % 3 == 0, unless re-armed (i % 5 == 1) */
    uint32_t expect = 0;
    for (int i = 0; i < N; i++) expect += i % 3 != 0 || i % 5 == 1;
    assert_int_equal(count, expect);
    loop_destroy(&l);
}

static int freed;
static uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    return *(uint64_t *)arg;
}

/* loop_set_clock: the loop's time is the clock's, and a timer fires when that
 * clock passes its deadline, however far the real time is. */
static void timers_follow_a_set_clock(void **state)
{
    struct loop l;
    assert_int_equal(loop_init(&l), 0);
    fake_now = 1000;
    loop_set_clock(&l, fake_clock, &fake_now);
    loop_update_time(&l);
    assert_int_equal(l.now, 1000);
    nfired = 0;
    struct tagged t = {.t = {.cb = record}, .tag = 7};
    loop_timer_set(&l, &t.t, 60000); /* a minute */
    loop_run_once(&l, 0);
    assert_int_equal(nfired, 0);
    fake_now += 59999;
    loop_run_once(&l, 0);
    assert_int_equal(nfired, 0);
    fake_now += 1;
    loop_run_once(&l, 0);
    assert_int_equal(nfired, 1);
    assert_int_equal(fired[0], 7);
    loop_set_clock(&l, NULL, NULL);
    loop_update_time(&l);
    uint64_t real = loop_clock_ms();
    assert_in_range(l.now, real - 1000, real); /* the real clock again */
    loop_destroy(&l);
}

static void count_free(struct loop_defer *d)
{
    freed++;
}

static void deferred_frees_run_at_end_of_iteration(void **state)
{
    struct loop l;
    assert_int_equal(loop_init(&l), 0);
    struct loop_defer a = {.fn = count_free}, b = {.fn = count_free};
    freed = 0;
    loop_defer(&l, &a);
    loop_defer(&l, &b);
    assert_int_equal(freed, 0);
    loop_run_once(&l, 0);
    assert_int_equal(freed, 2);
    loop_destroy(&l);
}

static int rearms;

static void rearm_now(struct loop *loop, struct loop_timer *t)
{
    rearms++;
    loop_timer_set(loop, t, 0); /* again at once: a busy connection yielding */
}

static void a_timer_rearmed_at_once_runs_once_per_iteration(void **state)
{
    struct loop l;
    assert_int_equal(loop_init(&l), 0);
    fake_now = 5000;
    loop_set_clock(&l, fake_clock, &fake_now);
    loop_update_time(&l);
    struct loop_timer t = {.cb = rearm_now};
    rearms = 0;
    loop_timer_set(&l, &t, 0);
    loop_run_once(&l, 0);
    assert_int_equal(rearms, 1); /* not an endless pass */
    assert_true(loop_timer_armed(&t));
    assert_int_equal(t.when, 5001);
    fake_now += 1;
    loop_run_once(&l, 0);
    assert_int_equal(rearms, 2);
    loop_timer_stop(&l, &t);
    loop_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timers_fire_in_deadline_order),
        cmocka_unit_test(heap_stays_ordered_under_random_use),
        cmocka_unit_test(timers_follow_a_set_clock),
        cmocka_unit_test(deferred_frees_run_at_end_of_iteration),
        cmocka_unit_test(a_timer_rearmed_at_once_runs_once_per_iteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
