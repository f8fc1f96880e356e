/* Tests src/balance/round_robin.c through the balancer interface. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance/balance.h"
#include "config/config.h"

static struct pool_conf cfg;
static struct backend_conf backends[8];

static void make_pool(struct pool *p, int n)
{
    config_pool_defaults(&cfg);
    cfg.backends = backends;
    char why[128];
    for (int i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", 8001 + i);
        assert_int_equal(config_parse_backend(url, &cfg.backends[i], why, sizeof(why)), 0);
    }
    cfg.nbackends = (uint32_t)n;
    assert_int_equal(pool_init(p, &cfg, 0), 0);
}

static struct backend *pick(struct pool *p, struct balance_tried *t)
{
    return p->ops->pick(p->balancer, p, &(struct balance_ctx){0}, t);
}

static void alternates_in_order(void **state)
{
    struct pool p;
    make_pool(&p, 3);
    struct balance_tried none = {0};
    for (int i = 0; i < 30; i++) assert_int_equal(pick(&p, &none)->index, (uint32_t)(i % 3));
    pool_destroy(&p);
}

static void skips_down_backends_and_keeps_shares_equal(void **state)
{
    struct pool p;
    make_pool(&p, 3);
    atomic_store(&p.backends[1].state, BACKEND_DOWN);
    struct balance_tried none = {0};
    int count[3] = {0};
    for (int i = 0; i < 1000; i++) count[pick(&p, &none)->index]++;
    assert_int_equal(count[1], 0);
    assert_int_equal(count[0], 500);
    assert_int_equal(count[2], 500);
    atomic_store(&p.backends[0].state, BACKEND_DOWN);
    atomic_store(&p.backends[2].drain, 1);
    assert_null(pick(&p, &none));
    pool_destroy(&p);
}

static void honours_the_tried_set(void **state)
{
    struct pool p;
    make_pool(&p, 2);
    struct balance_tried t = {0};
    struct backend *a = pick(&p, &t);
    balance_tried_add(&t, a);
    struct backend *b = pick(&p, &t);
    assert_non_null(b);
    assert_int_not_equal(a->index, b->index);
    balance_tried_add(&t, b);
    assert_null(pick(&p, &t));
    pool_destroy(&p);
}

static struct pool shared;
static int per_thread[4][2];

static void *picker(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct balance_tried none = {0};
    for (int i = 0; i < 10000; i++) per_thread[id][pick(&shared, &none)->index]++;
    return NULL;
}

static void exact_across_threads(void **state)
{
    make_pool(&shared, 2);
    memset(per_thread, 0, sizeof(per_thread));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, picker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int total[2] = {0};
    for (int i = 0; i < 4; i++) total[0] += per_thread[i][0], total[1] += per_thread[i][1];
    /* one shared counter: 40000 picks split exactly in half */
    assert_int_equal(total[0], 20000);
    assert_int_equal(total[1], 20000);
    pool_destroy(&shared);
}

static int nulls;
static void *picker_down(void *arg)
{
    struct balance_tried none = {0};
    for (int i = 0; i < 200000; i++)
        if (!pick(&shared, &none)) __atomic_add_fetch(&nulls, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* With one of two backends down, picks racing on the shared counter may all
 * land on the down one; a usable backend must still be returned every time. */
static void never_null_while_one_is_up(void **state)
{
    make_pool(&shared, 2);
    atomic_store(&shared.backends[0].state, BACKEND_DOWN);
    nulls = 0;
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, picker_down, NULL);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(nulls, 0);
    pool_destroy(&shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alternates_in_order),
        cmocka_unit_test(skips_down_backends_and_keeps_shares_equal),
        cmocka_unit_test(honours_the_tried_set),
        cmocka_unit_test(exact_across_threads),
        cmocka_unit_test(never_null_while_one_is_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
