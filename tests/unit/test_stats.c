/* stats.c: histogram buckets, quantiles, stable slots and per-worker sums. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/stats.h"

static void buckets_follow_the_bounds(void **state)
{
    /* le: a value on a bound is in that bound's bucket */
    assert_int_equal(stats_bucket(0), 0);
    assert_int_equal(stats_bucket(500), 0);
    assert_int_equal(stats_bucket(501), 1);
    assert_int_equal(stats_bucket(1000), 1);
    assert_int_equal(stats_bucket(2499), 2);
    assert_int_equal(stats_bucket(30000000), STATS_NBOUNDS - 1);
    assert_int_equal(stats_bucket(30000001), STATS_NBOUNDS); /* +Inf */
    for (int i = 0; i < STATS_NBOUNDS; i++) {
        assert_true((double)stats_bounds_us[i] / 1e6 == stats_bounds[i]);
        if (i) assert_true(stats_bounds[i] > stats_bounds[i - 1]);
    }
    assert_int_equal(stats_class(204), 1);
    assert_int_equal(stats_class(503), 4);
    assert_int_equal(stats_class(101), 0);
    assert_int_equal(stats_class(0), 4);
}

static void quantiles_interpolate_like_prometheus(void **state)
{
    uint64_t b[STATS_NBUCKETS] = {0};
    assert_true(stats_quantile(b, 0.5) < 0); /* no sample */
    /* 100 samples in (1ms, 2.5ms]: the median is half way */
    b[2] = 100;
    assert_true(stats_quantile(b, 0.5) > 0.00174 && stats_quantile(b, 0.5) < 0.00176);
    assert_true(stats_quantile(b, 1.0) > 0.00249 && stats_quantile(b, 1.0) <= 0.0025);
    /* 90 in the first bucket, 10 in (50ms, 100ms]: p99 is in the second */
    memset(b, 0, sizeof(b));
    b[0] = 90;
    b[7] = 10;
    double p50 = stats_quantile(b, 0.5), p99 = stats_quantile(b, 0.99);
    assert_true(p50 > 0 && p50 <= 0.0005);
    assert_true(p99 > 0.05 && p99 <= 0.1);
    assert_true(p99 > 0.094 && p99 < 0.096); /* 9 of 10 into the bucket */
    /* +Inf answers the last finite bound */
    memset(b, 0, sizeof(b));
    b[STATS_NBOUNDS] = 3;
    assert_true(stats_quantile(b, 0.5) == 30);
}

static void slots_are_stable_and_sums_add_workers(void **state)
{
    assert_int_equal(stats_init(3), 0);
    uint32_t a = stats_backend_slot("web", "http://10.0.0.1:80");
    uint32_t b = stats_backend_slot("web", "http://10.0.0.2:80");
    uint32_t c = stats_backend_slot("api", "http://10.0.0.1:80");
    assert_int_not_equal(a, b);
    assert_int_not_equal(a, c);
    assert_int_equal(stats_backend_slot("web", "http://10.0.0.1:80"), a);
    /* many slots: new chunks for every worker, earlier slots unchanged */
    char url[64];
    for (int i = 0; i < 200; i++) {
        snprintf(url, sizeof(url), "http://10.1.0.%d:80", i);
        assert_true(stats_backend_slot("big", url) != UINT32_MAX);
    }
    assert_int_equal(stats_backend_slot("web", "http://10.0.0.2:80"), b);
    for (uint32_t w = 0; w < 3; w++) {
        struct stats_backend *s = stats_backend_of(stats_worker(w), b);
        STATS_ADD(s->requests, w + 1);
        STATS_ADD(s->responses[1], 2);
        stats_hist_add(&s->total_time, 1500 * (w + 1));
    }
    struct stats_backend sum;
    stats_backend_sum(b, &sum);
    assert_int_equal(sum.requests, 6);
    assert_int_equal(sum.responses[1], 6);
    assert_int_equal(sum.total_time.bucket[2], 1); /* 1.5 ms */
    assert_int_equal(sum.total_time.bucket[3], 2); /* 3 and 4.5 ms */
    assert_int_equal(sum.total_time.sum_us, 1500 + 3000 + 4500);
    stats_backend_sum(a, &sum);
    assert_int_equal(sum.requests, 0);
    uint32_t l = stats_listener_slot("0.0.0.0:8000");
    assert_int_equal(stats_listener_slot("0.0.0.0:8000"), l);
    STATS_ADD(stats_worker(1)->listeners[l].responses[4], 1);
    struct stats_listener ls;
    stats_listener_sum(l, &ls);
    assert_int_equal(ls.responses[4], 1);
    stats_note_state(b, "drained by a test", 1);
    struct stats_info in;
    stats_info_get(b, &in);
    assert_string_equal(in.reason, "drained by a test");
    assert_int_equal(in.transitions, 1);
    stats_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_follow_the_bounds),
        cmocka_unit_test(quantiles_interpolate_like_prometheus),
        cmocka_unit_test(slots_are_stable_and_sums_add_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
