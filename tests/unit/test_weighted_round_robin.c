/* Tests src/balance/weighted_round_robin.c: nginx's smooth sequences, exact
 * proportions, down backends, the tried set, and exactness across threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"

/* nginx's ngx_http_upstream_get_peer, written out plainly: the reference. */
static void nginx_sequence(const uint32_t *w, uint32_t n, uint32_t count, uint32_t *out)
{
    int64_t cur[16] = {0}, total = 0;
    for (uint32_t i = 0; i < n; i++) total += w[i];
    for (uint32_t k = 0; k < count; k++) {
        int best = -1;
        for (uint32_t i = 0; i < n; i++) {
            cur[i] += w[i];
            if (best < 0 || cur[i] > cur[best]) best = (int)i;
        }
        cur[best] -= total;
        out[k] = (uint32_t)best;
    }
}

static void five_one_one_is_a_a_b_a_c_a_a(void **state)
{
    struct pool p;
    const uint32_t w[] = {5, 1, 1};
    fx_pool(&p, "weighted-round-robin", 3, w);
    const char *want = "aabacaa";
    char got[8 * 7 + 1] = {0};
    for (int i = 0; i < 8 * 7; i++) got[i] = (char)('a' + fx_pick(&p, &fx_none)->index);
    for (int cycle = 0; cycle < 8; cycle++) assert_memory_equal(got + 7 * cycle, want, 7);
    printf("    5,1,1: %.21s...\n", got);
    pool_destroy(&p);
}

static void same_sequence_as_nginx(void **state)
{
    /* equal weights (taken in list order), distinct ones, mixes, a common divisor */
    static const uint32_t sets[][12] = {
        {1, 1, 1},
        {3, 2, 1},
        {4, 2, 1},
        {10, 7, 3, 1},
        {2, 3, 5, 7, 11},
        {100, 1},
        {6, 4},
        {1, 5, 1, 5},
        {3, 1, 3, 2, 1, 3, 5, 2, 2, 1, 3, 4},
        {2, 2, 9, 2, 9, 1},
    };
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        uint32_t n = 0, total = 0;
        while (n < 12 && sets[s][n]) total += sets[s][n++];
        uint32_t count = 3 * total;
        uint32_t want[3 * 130], got;
        nginx_sequence(sets[s], n, count, want);
        struct pool p;
        fx_pool(&p, "weighted-round-robin", n, sets[s]);
        for (uint32_t k = 0; k < count; k++) {
            got = fx_pick(&p, &fx_none)->index;
            if (got != want[k])
                fail_msg("weights set %zu, pick %u: got %u, nginx %u", s, k, got, want[k]);
        }
        pool_destroy(&p);
    }
}

static void exact_proportions(void **state)
{
    struct pool p;
    const uint32_t w[] = {3, 2, 1};
    fx_pool(&p, "weighted-round-robin", 3, w);
    int count[3] = {0};
    for (int i = 0; i < 6000; i++) count[fx_pick(&p, &fx_none)->index]++;
    assert_int_equal(count[0], 3000);
    assert_int_equal(count[1], 2000);
    assert_int_equal(count[2], 1000);
    pool_destroy(&p);
}

static void never_two_light_picks_in_a_row(void **state)
{
    /* 5,1,1: b and c each come once per 7 and are never next to each other */
    struct pool p;
    const uint32_t w[] = {5, 1, 1};
    fx_pool(&p, "weighted-round-robin", 3, w);
    uint32_t prev = 0;
    for (int i = 0; i < 700; i++) {
        uint32_t x = fx_pick(&p, &fx_none)->index;
        if (i) assert_true(x == 0 || prev == 0);
        prev = x;
    }
    pool_destroy(&p);
}

static void equal_weights_are_round_robin(void **state)
{
    struct pool p;
    const uint32_t w[] = {7, 7, 7, 7};
    fx_pool(&p, "weighted-round-robin", 4, w);
    for (uint32_t i = 0; i < 40; i++) assert_int_equal(fx_pick(&p, &fx_none)->index, i % 4);
    pool_destroy(&p);
}

static void down_backends_keep_the_others_proportions(void **state)
{
    struct pool p;
    const uint32_t w[] = {5, 1, 1};
    fx_pool(&p, "weighted-round-robin", 3, w);
    fx_set_state(&p, 1, BACKEND_DOWN);
    int count[3] = {0};
    for (int i = 0; i < 6000; i++) count[fx_pick(&p, &fx_none)->index]++;
    assert_int_equal(count[1], 0);
    assert_int_equal(count[0], 5000);
    assert_int_equal(count[2], 1000);
    /* the heavy one draining: the light ones alternate */
    fx_set_state(&p, 1, BACKEND_UP);
    fx_set_state(&p, 0, FX_DRAIN);
    memset(count, 0, sizeof(count));
    uint32_t prev = 99;
    for (int i = 0; i < 600; i++) {
        uint32_t x = fx_pick(&p, &fx_none)->index;
        assert_int_not_equal(x, prev);
        count[x]++;
        prev = x;
    }
    assert_int_equal(count[1], 300);
    assert_int_equal(count[2], 300);
    fx_set_state(&p, 1, BACKEND_DOWN);
    fx_set_state(&p, 2, BACKEND_DOWN);
    assert_null(fx_pick(&p, &fx_none));
    pool_destroy(&p);
}

static void honours_the_tried_set(void **state)
{
    struct pool p;
    const uint32_t w[] = {5, 1, 1};
    fx_pool(&p, "weighted-round-robin", 3, w);
    struct balance_tried t = {0};
    for (int k = 0; k < 3; k++) {
        struct backend *b = fx_pick(&p, &t);
        assert_non_null(b);
        for (uint32_t i = 0; i < t.n; i++) assert_int_not_equal(t.idx[i], b->index);
        balance_tried_add(&t, b);
    }
    assert_null(fx_pick(&p, &t));
    pool_destroy(&p);
}

static struct pool shared;
static int per_thread[4][3];

static void *picker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 7000; i++) per_thread[id][fx_pick(&shared, &fx_none)->index]++;
    return NULL;
}

static void exact_across_threads(void **state)
{
    const uint32_t w[] = {5, 1, 1};
    fx_pool(&shared, "weighted-round-robin", 3, w);
    memset(per_thread, 0, sizeof(per_thread));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, picker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int total[3] = {0};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) total[j] += per_thread[i][j];
    /* one shared position: 28000 picks = 4000 whole cycles */
    assert_int_equal(total[0], 20000);
    assert_int_equal(total[1], 4000);
    assert_int_equal(total[2], 4000);
    pool_destroy(&shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(five_one_one_is_a_a_b_a_c_a_a),
        cmocka_unit_test(same_sequence_as_nginx),
        cmocka_unit_test(exact_proportions),
        cmocka_unit_test(never_two_light_picks_in_a_row),
        cmocka_unit_test(equal_weights_are_round_robin),
        cmocka_unit_test(down_backends_keep_the_others_proportions),
        cmocka_unit_test(honours_the_tried_set),
        cmocka_unit_test(exact_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
