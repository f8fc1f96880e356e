/* Tests src/balance/random.c: shares follow the weights (on average, with a
 * fixed seed so the counts are reproducible), unusable backends are skipped
 * without disturbing the others' proportions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"

#define PICKS 100000

static void count_picks(struct pool *p, int *count, uint32_t n)
{
    memset(count, 0, n * sizeof(*count));
    for (int i = 0; i < PICKS; i++) count[fx_pick(p, &fx_none)->index]++;
}

static void assert_share(int count, double want, const char *what)
{
    double got = (double)count / PICKS;
    if (got < want - 0.01 || got > want + 0.01)
        fail_msg("%s: share %.4f, expected %.4f +- 0.01", what, got, want);
}

static void shares_follow_the_weights(void **state)
{
    struct pool p;
    const uint32_t w[] = {1, 2, 7};
    fx_pool(&p, "random", 3, w);
    balance_rand_seed(1);
    int count[3];
    count_picks(&p, count, 3);
    printf("    weights 1,2,7 over %d picks: %d %d %d\n", PICKS, count[0], count[1], count[2]);
    assert_share(count[0], 0.1, "weight 1");
    assert_share(count[1], 0.2, "weight 2");
    assert_share(count[2], 0.7, "weight 7");
    pool_destroy(&p);
}

static void equal_weights_are_uniform(void **state)
{
    struct pool p;
    fx_pool(&p, "random", 10, NULL);
    balance_rand_seed(2);
    int count[10];
    count_picks(&p, count, 10);
    for (int i = 0; i < 10; i++) assert_share(count[i], 0.1, "one of 10");
    pool_destroy(&p);
}

static void down_backend_is_skipped_and_the_rest_keep_proportions(void **state)
{
    struct pool p;
    const uint32_t w[] = {1, 2, 7};
    fx_pool(&p, "random", 3, w);
    balance_rand_seed(3);
    fx_set_state(&p, 2, BACKEND_DOWN);
    int count[3];
    count_picks(&p, count, 3);
    assert_int_equal(count[2], 0);
    assert_share(count[0], 1.0 / 3, "weight 1 of 3");
    assert_share(count[1], 2.0 / 3, "weight 2 of 3");
    pool_destroy(&p);
}

static void finds_the_one_usable_among_many(void **state)
{
    struct pool p;
    fx_pool(&p, "random", 100, NULL);
    for (uint32_t i = 0; i < 100; i++)
        if (i != 42) fx_set_state(&p, i, i % 2 ? BACKEND_DOWN : FX_DRAIN);
    for (int i = 0; i < 1000; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, 42);
    fx_set_state(&p, 42, BACKEND_DOWN);
    assert_null(fx_pick(&p, &fx_none));
    pool_destroy(&p);
}

static void honours_the_tried_set(void **state)
{
    struct pool p;
    fx_pool(&p, "random", 3, NULL);
    for (int round = 0; round < 100; round++) {
        struct balance_tried t = {0};
        for (int k = 0; k < 3; k++) {
            struct backend *b = fx_pick(&p, &t);
            assert_non_null(b);
            for (uint32_t i = 0; i < t.n; i++) assert_int_not_equal(t.idx[i], b->index);
            balance_tried_add(&t, b);
        }
        assert_null(fx_pick(&p, &t));
    }
    pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares_follow_the_weights),
        cmocka_unit_test(equal_weights_are_uniform),
        cmocka_unit_test(down_backend_is_skipped_and_the_rest_keep_proportions),
        cmocka_unit_test(finds_the_one_usable_among_many),
        cmocka_unit_test(honours_the_tried_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
