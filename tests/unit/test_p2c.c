/* Tests src/balance/p2c.c: of two different random backends the less loaded
 * one wins, so the most loaded backend never does; without load the choice
 * is uniform; unusable backends are never candidates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"

static void of_two_the_less_loaded_wins(void **state)
{
    struct pool p;
    fx_pool(&p, "p2c", 2, NULL);
    balance_rand_seed(1);
    fx_set_inflight(&p, 0, 5);
    fx_set_inflight(&p, 1, 2);
    /* two backends: the two candidates are always both */
    for (int i = 0; i < 100; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    pool_destroy(&p);
}

static void the_most_loaded_never_wins(void **state)
{
    struct pool p;
    fx_pool(&p, "p2c", 3, NULL);
    balance_rand_seed(2);
    fx_set_inflight(&p, 2, 10);
    int count[3] = {0};
    for (int i = 0; i < 3000; i++) count[fx_pick(&p, &fx_none)->index]++;
    printf("    in flight 0,0,10 over 3000 picks: %d %d %d\n", count[0], count[1], count[2]);
    assert_int_equal(count[2], 0);
    assert_in_range(count[0], 1350, 1650);
    assert_in_range(count[1], 1350, 1650);
    pool_destroy(&p);
}

static void without_load_the_choice_is_uniform(void **state)
{
    struct pool p;
    fx_pool(&p, "p2c", 5, NULL);
    balance_rand_seed(3);
    int count[5] = {0};
    for (int i = 0; i < 50000; i++) count[fx_pick(&p, &fx_none)->index]++;
    for (int i = 0; i < 5; i++) assert_in_range(count[i], 9500, 10500);
    pool_destroy(&p);
}

static void load_is_relative_to_weight(void **state)
{
    struct pool p;
    const uint32_t w[] = {4, 1};
    fx_pool(&p, "p2c", 2, w);
    balance_rand_seed(4);
    fx_set_inflight(&p, 0, 3); /* 3/4 < 1/1 */
    fx_set_inflight(&p, 1, 1);
    for (int i = 0; i < 50; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 0);
    fx_set_inflight(&p, 0, 5); /* 5/4 > 1/1 */
    for (int i = 0; i < 50; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    pool_destroy(&p);
}

static void unusable_backends_are_never_candidates(void **state)
{
    struct pool p;
    fx_pool(&p, "p2c", 4, NULL);
    balance_rand_seed(5);
    fx_set_inflight(&p, 0, 9); /* loaded, but the only other one left is worse off */
    fx_set_inflight(&p, 3, 50);
    fx_set_state(&p, 1, BACKEND_DOWN);
    fx_set_state(&p, 2, FX_DRAIN);
    for (int i = 0; i < 100; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 0);
    struct balance_tried t = {0};
    balance_tried_add(&t, &p.backends[0]);
    for (int i = 0; i < 100; i++) assert_int_equal(fx_pick(&p, &t)->index, 3);
    balance_tried_add(&t, &p.backends[3]);
    assert_null(fx_pick(&p, &t));
    pool_destroy(&p);
}

/* A closed loop of 12 clients over 3 backends; backend 0 takes 20 ticks per
 * request, the others 1 tick (as in test_least_conn.c). */
static void slow_backend_gets_less(void **state)
{
    struct pool p;
    fx_pool(&p, "p2c", 3, NULL);
    balance_rand_seed(6);
    enum { CLIENTS = 12 };
    int busy[CLIENTS] = {0}, on[CLIENTS], count[3] = {0}, done = 0;
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
    printf("    slow backend's share of 3000 requests: %.1f%% (round robin: 33.3%%)\n",
           count[0] / 30.0);
    assert_true(count[0] < 1000 / 3);
    pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(of_two_the_less_loaded_wins),
        cmocka_unit_test(the_most_loaded_never_wins),
        cmocka_unit_test(without_load_the_choice_is_uniform),
        cmocka_unit_test(load_is_relative_to_weight),
        cmocka_unit_test(unusable_backends_are_never_candidates),
        cmocka_unit_test(slow_backend_gets_less),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
