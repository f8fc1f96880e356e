/* Tests src/balance/least_conn.c: the least loaded backend wins, relative to
 * its weight; ties go in turn; down, draining and tried backends are skipped;
 * a slow backend gets less in a simulated closed loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"

static void picks_the_fewest_in_flight(void **state)
{
    struct pool p;
    fx_pool(&p, "least-conn", 3, NULL);
    fx_set_inflight(&p, 0, 5);
    fx_set_inflight(&p, 1, 2);
    fx_set_inflight(&p, 2, 7);
    for (int i = 0; i < 10; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    fx_set_inflight(&p, 2, 1);
    for (int i = 0; i < 10; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 2);
    pool_destroy(&p);
}

static void ties_are_broken_in_turn(void **state)
{
    struct pool p;
    fx_pool(&p, "least-conn", 3, NULL);
    /* no load at all: round robin */
    for (uint32_t i = 0; i < 12; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, i % 3);
    /* b and c tie below a: they alternate, neither always wins */
    fx_set_inflight(&p, 0, 3);
    fx_set_inflight(&p, 1, 1);
    fx_set_inflight(&p, 2, 1);
    int count[3] = {0};
    for (int i = 0; i < 30; i++) count[fx_pick(&p, &fx_none)->index]++;
    assert_int_equal(count[0], 0);
    assert_int_equal(count[1], 15); /* the busy one before b does not favour b */
    assert_int_equal(count[2], 15);
    /* idle ones around a busy one in the middle alternate too */
    fx_set_inflight(&p, 0, 0);
    fx_set_inflight(&p, 1, 4);
    fx_set_inflight(&p, 2, 0);
    uint32_t prev = 1;
    for (int i = 0; i < 30; i++) {
        uint32_t x = fx_pick(&p, &fx_none)->index;
        assert_int_not_equal(x, 1);
        assert_int_not_equal(x, prev);
        prev = x;
    }
    pool_destroy(&p);
}

static void load_is_relative_to_weight(void **state)
{
    struct pool p;
    const uint32_t w[] = {3, 1};
    fx_pool(&p, "least-conn", 2, w);
    fx_set_inflight(&p, 0, 2); /* 2/3 */
    fx_set_inflight(&p, 1, 1); /* 1/1 */
    for (int i = 0; i < 6; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 0);
    fx_set_inflight(&p, 0, 4); /* 4/3 */
    for (int i = 0; i < 6; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    pool_destroy(&p);
}

static void weighted_steady_state_follows_weights(void **state)
{
    /* Requests arrive one at a time and none ends: the in-flight counts grow
     * in the proportion of the weights. */
    struct pool p;
    const uint32_t w[] = {3, 1, 2};
    fx_pool(&p, "least-conn", 3, w);
    for (int i = 0; i < 600; i++) atomic_fetch_add(&fx_pick(&p, &fx_none)->inflight, 1);
    assert_int_equal(atomic_load(&p.backends[0].inflight), 300);
    assert_int_equal(atomic_load(&p.backends[1].inflight), 100);
    assert_int_equal(atomic_load(&p.backends[2].inflight), 200);
    pool_destroy(&p);
}

static void skips_down_draining_and_tried(void **state)
{
    struct pool p;
    fx_pool(&p, "least-conn", 3, NULL);
    fx_set_inflight(&p, 0, 0);
    fx_set_inflight(&p, 1, 5);
    fx_set_inflight(&p, 2, 9);
    fx_set_state(&p, 0, BACKEND_DOWN);
    for (int i = 0; i < 5; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    fx_set_state(&p, 1, FX_DRAIN);
    for (int i = 0; i < 5; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 2);
    struct balance_tried t = {0};
    balance_tried_add(&t, &p.backends[2]);
    assert_null(fx_pick(&p, &t));
    fx_set_state(&p, 0, BACKEND_UP);
    assert_int_equal(fx_pick(&p, &t)->index, 0);
    pool_destroy(&p);
}

/* A closed loop of 12 clients over 3 backends; backend 0 takes 20 ticks per
 * request, the others 1 tick. Returns backend 0's share of 3000 requests. */
static double slow_share(const char *balance, int *count)
{
    struct pool p;
    fx_pool(&p, balance, 3, NULL);
    enum { CLIENTS = 12 };
    int busy[CLIENTS] = {0}, on[CLIENTS];
    int done = 0;
    memset(count, 0, 3 * sizeof(*count));
    for (int tick = 0; done < 3000 && tick < 100000; tick++) {
        for (int c = 0; c < CLIENTS && done < 3000; c++) {
            if (busy[c] > 0 && --busy[c] == 0) atomic_fetch_sub(&p.backends[on[c]].inflight, 1);
            if (busy[c] == 0) {
                struct backend *b = fx_pick(&p, &fx_none);
                on[c] = (int)b->index;
                atomic_fetch_add(&b->inflight, 1);
                busy[c] = b->index == 0 ? 20 : 1;
                count[b->index]++;
                done++;
            }
        }
    }
    pool_destroy(&p);
    return count[0] / 3000.0;
}

static void slow_backend_gets_less_than_round_robin(void **state)
{
    int rr[3], lc[3];
    double rr_share = slow_share("round-robin", rr);
    double lc_share = slow_share("least-conn", lc);
    printf("    slow backend's share of 3000 requests: round-robin %.1f%% (%d), least-conn %.1f%% "
           "(%d)\n",
           100 * rr_share, rr[0], 100 * lc_share, lc[0]);
    assert_int_equal(rr[0], 1000);
    assert_true(lc_share < rr_share / 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(picks_the_fewest_in_flight),
        cmocka_unit_test(ties_are_broken_in_turn),
        cmocka_unit_test(load_is_relative_to_weight),
        cmocka_unit_test(weighted_steady_state_follows_weights),
        cmocka_unit_test(skips_down_draining_and_tried),
        cmocka_unit_test(slow_backend_gets_less_than_round_robin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
