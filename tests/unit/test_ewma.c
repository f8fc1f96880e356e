/* Tests src/balance/ewma.c: the peak-EWMA latency (jumps up at once, comes
 * down with decay time 10 s), the cost (latency x (in flight + 1) /
 * weight), the failure penalty, the cold-start penalty, and that a slow
 * backend gets less traffic. The clock is frozen with balance_clock_set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"

static void done(struct pool *p, uint32_t i, enum balance_outcome o, uint64_t us)
{
    p->ops->on_request_done(p->balancer, &p->backends[i], o, us);
}

static double cost(struct pool *p, uint32_t i)
{
    return ewma_cost(p->balancer, &p->backends[i]);
}

static void assert_near(double got, double want, double rel)
{
    if (got < want * (1 - rel) || got > want * (1 + rel))
        fail_msg("got %.3f, expected %.3f (+- %.2f%%)", got, want, 100 * rel);
}

static int teardown(void **state)
{
    balance_clock_set(0);
    return 0;
}

static void exp_neg_is_accurate(void **state)
{
    assert_near(balance_exp_neg(0), 1.0, 1e-12);
    assert_near(balance_exp_neg(1), 0.36787944117144233, 1e-12);
    assert_near(balance_exp_neg(0.5), 0.6065306597126334, 1e-12);
    assert_near(balance_exp_neg(3.25), 0.03877420783172201, 1e-12);
    assert_near(balance_exp_neg(20), 2.061153622438558e-09, 1e-9);
    assert_true(balance_exp_neg(1000) == 0);
}

static void peak_up_at_once_down_with_decay(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 2, NULL);
    balance_clock_set(1000000);
    done(&p, 0, BALANCE_OK, 1000);
    assert_near(cost(&p, 0), 1000, 1e-6);
    /* a slower answer replaces the average at once */
    done(&p, 0, BALANCE_OK, 80000);
    assert_near(cost(&p, 0), 80000, 1e-6);
    /* a faster one 1 s later moves it by 1 - e^(-1/10) */
    balance_clock_set(1001000);
    done(&p, 0, BALANCE_OK, 1000);
    double keep = 0.9048374180359595; /* e^-0.1 */
    assert_near(cost(&p, 0), 80000 * keep + 1000 * (1 - keep), 1e-6);
    pool_destroy(&p);
}

static void idle_average_decays_towards_zero(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 2, NULL);
    balance_clock_set(500000);
    done(&p, 1, BALANCE_OK, 100000);
    balance_clock_set(510000); /* one decay time later */
    assert_near(cost(&p, 1), 100000 * 0.36787944117144233, 1e-6);
    balance_clock_set(600000);
    assert_true(cost(&p, 1) < 10);
    pool_destroy(&p);
}

static void cost_grows_with_load_and_shrinks_with_weight(void **state)
{
    struct pool p;
    const uint32_t w[] = {1, 4};
    fx_pool(&p, "ewma", 2, w);
    balance_clock_set(1000000);
    done(&p, 0, BALANCE_OK, 2000);
    done(&p, 1, BALANCE_OK, 2000);
    fx_set_inflight(&p, 0, 3);
    assert_near(cost(&p, 0), 2000 * 4, 1e-6);
    assert_near(cost(&p, 1), 2000 / 4.0, 1e-6);
    pool_destroy(&p);
}

static void failures_count_as_a_growing_penalty(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 2, NULL);
    balance_clock_set(1000000);
    done(&p, 0, BALANCE_OK, 1000);
    done(&p, 0, BALANCE_FAILED, 200); /* fast failure: at least 50 ms */
    assert_near(cost(&p, 0), 50000, 1e-6);
    done(&p, 0, BALANCE_FAILED, 200); /* again: twice the average */
    assert_near(cost(&p, 0), 100000, 1e-6);
    done(&p, 0, BALANCE_FAILED, 900000); /* a slow failure counts as itself */
    assert_near(cost(&p, 0), 900000, 1e-6);
    pool_destroy(&p);
}

static void cold_backend_with_requests_in_flight_is_avoided(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 2, NULL);
    balance_clock_set(1000000);
    balance_rand_seed(7);
    /* nothing known yet: both cost 0, either may win */
    int count[2] = {0};
    for (int i = 0; i < 200; i++) count[fx_pick(&p, &fx_none)->index]++;
    assert_true(count[0] > 50 && count[1] > 50);
    /* backend 0 took a request and has not answered: don't pile on */
    fx_set_inflight(&p, 0, 1);
    done(&p, 1, BALANCE_OK, 5000000); /* even though backend 1 is known to be slow */
    for (int i = 0; i < 100; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 1);
    pool_destroy(&p);
}

static void slower_backend_gets_less(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 3, NULL);
    balance_clock_set(1000000);
    balance_rand_seed(8);
    done(&p, 0, BALANCE_OK, 100000);
    done(&p, 1, BALANCE_OK, 1000);
    done(&p, 2, BALANCE_OK, 1200);
    int count[3] = {0};
    for (int i = 0; i < 3000; i++) count[fx_pick(&p, &fx_none)->index]++;
    printf("    latencies 100/1/1.2 ms, no load, 3000 picks: %d %d %d\n", count[0], count[1],
           count[2]);
    assert_int_equal(count[0], 0); /* the slowest loses every comparison */
    /* the middle one wins only when paired with the slowest: 1 pair in 3 */
    assert_in_range(count[2], 900, 1100);
    /* under load the fast ones' cost grows: 1 ms x 120 > 100 ms x 1 */
    fx_set_inflight(&p, 1, 119);
    fx_set_inflight(&p, 2, 119);
    memset(count, 0, sizeof(count));
    for (int i = 0; i < 300; i++) count[fx_pick(&p, &fx_none)->index]++;
    assert_true(count[0] > 0);
    pool_destroy(&p);
}

static void skips_down_and_tried(void **state)
{
    struct pool p;
    fx_pool(&p, "ewma", 3, NULL);
    balance_clock_set(1000000);
    done(&p, 0, BALANCE_OK, 1000);
    done(&p, 1, BALANCE_OK, 900000);
    done(&p, 2, BALANCE_OK, 900000);
    fx_set_state(&p, 0, BACKEND_DOWN);
    struct balance_tried t = {0};
    for (int i = 0; i < 50; i++) assert_int_not_equal(fx_pick(&p, &t)->index, 0);
    balance_tried_add(&t, &p.backends[1]);
    for (int i = 0; i < 50; i++) assert_int_equal(fx_pick(&p, &t)->index, 2);
    balance_tried_add(&t, &p.backends[2]);
    assert_null(fx_pick(&p, &t));
    pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exp_neg_is_accurate),
        cmocka_unit_test_teardown(peak_up_at_once_down_with_decay, teardown),
        cmocka_unit_test_teardown(idle_average_decays_towards_zero, teardown),
        cmocka_unit_test_teardown(cost_grows_with_load_and_shrinks_with_weight, teardown),
        cmocka_unit_test_teardown(failures_count_as_a_growing_penalty, teardown),
        cmocka_unit_test_teardown(cold_backend_with_requests_in_flight_is_avoided, teardown),
        cmocka_unit_test_teardown(slower_backend_gets_less, teardown),
        cmocka_unit_test_teardown(skips_down_and_tried, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
