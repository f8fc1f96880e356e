/* Tests slow start and drain (src/balance/balance.c balance_pick) on top of
 * several algorithms. The balancer clock is frozen, so the ramp is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "balance_fixture.h"

#define T0 1000000 /* ms: any fixed point of the frozen clock */

static struct backend *pick(struct pool *p)
{
    return balance_pick(p, &(struct balance_ctx){0}, &fx_none);
}

/* How many of n picks go to backend i. */
static int picks_of(struct pool *p, uint32_t i, int n)
{
    int k = 0;
    for (int r = 0; r < n; r++) k += pick(p)->index == i;
    return k;
}

static void round_robin_ramps_linearly(void **state)
{
    struct pool p;
    fx_config("round-robin", 2, NULL)->slow_start_ms = 10000;
    fx_init(&p);
    balance_rand_seed(7);
    balance_clock_set(T0);
    balance_slow_start(&p.backends[1]);

    /* at once: nothing (backend 0 takes all while another can serve) */
    assert_int_equal(picks_of(&p, 1, 2000), 0);

    /* a quarter of the way: a quarter of its 1000 of 2000 (the turns it
     * gives up go to the other backend; its own turns come as usual) */
    balance_clock_set(T0 + 2500);
    assert_int_equal(balance_share(&p.backends[1], &p), BALANCE_SHARE_FULL / 4);
    int quarter = picks_of(&p, 1, 2000);
    print_message("slow start, round robin, 2 backends, at 25%% of the ramp: %d of 2000\n",
                  quarter);
    assert_in_range(quarter, 180, 320);

    /* three quarters */
    balance_clock_set(T0 + 7500);
    int three = picks_of(&p, 1, 2000);
    print_message("slow start, round robin, 2 backends, at 75%% of the ramp: %d of 2000\n", three);
    assert_in_range(three, 660, 840);

    /* over: exactly round robin again, and the ramp is forgotten */
    balance_clock_set(T0 + 10000);
    assert_int_equal(picks_of(&p, 1, 2000), 1000);
    assert_int_equal(atomic_load(&p.backends[1].ramp_from_ms), 0);
    balance_clock_set(0);
    pool_destroy(&p);
}

static void off_when_the_pool_has_no_slow_start(void **state)
{
    struct pool p;
    fx_pool(&p, "round-robin", 2, NULL); /* slow_start_ms = 0 by default */
    balance_clock_set(T0);
    balance_slow_start(&p.backends[1]);
    assert_int_equal(balance_share(&p.backends[1], &p), BALANCE_SHARE_FULL);
    /* (a ramp carried over by a reload that turned slow start off is dropped) */
    assert_int_equal(atomic_load(&p.backends[1].ramp_from_ms), 0);
    assert_int_equal(picks_of(&p, 1, 100), 50);
    balance_clock_set(0);
    pool_destroy(&p);
}

static void a_ramping_backend_still_serves_when_it_is_the_only_one(void **state)
{
    struct pool p;
    fx_config("least-conn", 3, NULL)->slow_start_ms = 60000;
    fx_init(&p);
    balance_clock_set(T0);
    balance_slow_start(&p.backends[2]);
    fx_set_state(&p, 0, BACKEND_DOWN);
    fx_set_state(&p, 1, FX_DRAIN);
    for (int i = 0; i < 10; i++) assert_int_equal(pick(&p)->index, 2);
    /* and a request that has tried it already gets nothing */
    struct balance_tried t = {0};
    balance_tried_add(&t, &p.backends[2]);
    assert_null(balance_pick(&p, &(struct balance_ctx){0}, &t));
    balance_clock_set(0);
    pool_destroy(&p);
}

/* least-conn would send everything to a backend with nothing in flight: slow
 * start is what keeps a backend that just came back from being flooded. */
static void least_conn_does_not_flood_a_returning_backend(void **state)
{
    struct pool p;
    fx_config("least-conn", 2, NULL)->slow_start_ms = 10000;
    fx_init(&p);
    balance_rand_seed(11);
    fx_set_inflight(&p, 0, 50);
    balance_clock_set(T0 + 1000);
    /* without slow start: all of them */
    assert_int_equal(picks_of(&p, 1, 1000), 1000);
    balance_clock_set(T0);
    balance_slow_start(&p.backends[1]);
    balance_clock_set(T0 + 1000); /* 10% of the ramp */
    int got = picks_of(&p, 1, 1000);
    print_message("slow start, least-conn, at 10%% of the ramp: %d of 1000\n", got);
    assert_in_range(got, 50, 160);
    balance_clock_set(0);
    pool_destroy(&p);
}

/* With a hash key the decision follows the key: a key either has moved to
 * the returning backend or has not, it does not alternate. */
static void hashed_keys_move_once(void **state)
{
    struct pool p;
    fx_config("maglev", 4, NULL)->slow_start_ms = 10000;
    fx_init(&p);
    balance_clock_set(T0);
    /* keys that maglev gives to backend 3 when it has its full share */
    uint64_t keys[400];
    int nkeys = 0;
    for (uint64_t k = 1; nkeys < 400 && k < 100000; k++) {
        uint64_t h = k * UINT64_C(0x9e3779b97f4a7c15);
        if (balance_pick(&p, &(struct balance_ctx){.hash = &h}, &fx_none)->index == 3)
            keys[nkeys++] = h;
    }
    assert_int_equal(nkeys, 400);
    balance_slow_start(&p.backends[3]);
    int moved_at[3] = {0};
    uint64_t at[3] = {T0 + 2000, T0 + 6000, T0 + 9999};
    for (int step = 0; step < 3; step++) {
        balance_clock_set(at[step]);
        for (int i = 0; i < nkeys; i++) {
            uint64_t h = keys[i];
            uint32_t first = balance_pick(&p, &(struct balance_ctx){.hash = &h}, &fx_none)->index;
            for (int again = 0; again < 5; again++) {
                h = keys[i];
                assert_int_equal(
                    balance_pick(&p, &(struct balance_ctx){.hash = &h}, &fx_none)->index, first);
            }
            moved_at[step] += first == 3;
        }
    }
    print_message("slow start, maglev: keys of the returning backend back on it at 20%%, 60%%, "
                  "~100%% of the ramp: %d, %d, %d of %d\n",
                  moved_at[0], moved_at[1], moved_at[2], nkeys);
    assert_in_range(moved_at[0], 40, 130);
    assert_in_range(moved_at[1], 180, 300);
    assert_in_range(moved_at[2], 380, 400);
    balance_clock_set(0);
    pool_destroy(&p);
}

/* The ramp is the same whatever the algorithm: the returning backend's part
 * of its usual share is the elapsed part of slow_start. */
static void every_algorithm_ramps_linearly(void **state)
{
    static const char *const algos[] = {
        "round-robin", "weighted-round-robin", "least-conn", "random", "p2c", "ewma", "sticky"};
    balance_rand_seed(3);
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        for (uint32_t n = 2; n <= 5; n += 3) {
            print_message("slow start, %-20s %u backends, share at 0/25/50/75/100%%:", algos[a], n);
            for (int q = 0; q <= 4; q++) {
                struct pool p;
                fx_config(algos[a], n, NULL)->slow_start_ms = 10000;
                fx_init(&p);
                balance_clock_set(T0);
                balance_slow_start(&p.backends[n - 1]);
                balance_clock_set(T0 + (uint64_t)q * 2500);
                int got = picks_of(&p, n - 1, 20000);
                double part = (double)got * n / 20000; /* of its usual share */
                print_message(" %.2f", part);
                assert_true(part > q * 0.25 - 0.05 && part < q * 0.25 + 0.05);
                balance_clock_set(0);
                pool_destroy(&p);
            }
            print_message("\n");
        }
    }
}

static void draining_backends_take_no_new_requests(void **state)
{
    static const char *const algos[] = {
        "round-robin", "weighted-round-robin", "least-conn", "random", "p2c", "ewma", "maglev",
        "sticky"};
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        struct pool p;
        fx_pool(&p, algos[a], 3, NULL);
        fx_set_state(&p, 1, FX_DRAIN);
        int count[3] = {0};
        for (uint64_t r = 1; r <= 300; r++) {
            uint64_t h = r * UINT64_C(0x9e3779b97f4a7c15);
            count[balance_pick(&p, &(struct balance_ctx){.hash = &h}, &fx_none)->index]++;
        }
        assert_int_equal(count[1], 0);
        assert_true(count[0] > 50 && count[2] > 50);
        pool_destroy(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_robin_ramps_linearly),
        cmocka_unit_test(off_when_the_pool_has_no_slow_start),
        cmocka_unit_test(a_ramping_backend_still_serves_when_it_is_the_only_one),
        cmocka_unit_test(least_conn_does_not_flood_a_returning_backend),
        cmocka_unit_test(hashed_keys_move_once),
        cmocka_unit_test(every_algorithm_ramps_linearly),
        cmocka_unit_test(draining_backends_take_no_new_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
