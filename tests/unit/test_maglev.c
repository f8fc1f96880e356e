/* Tests src/balance/maglev.c: the spread of the table and of keys over 3, 10
 * and 1000 backends, weights, disruption when a backend leaves, bounded load,
 * determinism (pinned values: a change here remaps every key of every
 * deployment), hash keys taken from requests, and retries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"
#include "http/h1.h"

#define M BALANCE_MAGLEV_TABLE_SIZE

static uint64_t key_hash(uint32_t i)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "user-%u", i);
    return balance_hash64(key, (size_t)len, BALANCE_HASH_SEED);
}

/* Largest relative distance of count[i] from its share want[i]. */
static double worst(const uint32_t *count, const double *want, uint32_t n)
{
    double w = 0;
    for (uint32_t i = 0; i < n; i++) {
        double d = (count[i] - want[i]) / want[i];
        if (d < 0) d = -d;
        if (d > w) w = d;
    }
    return w;
}

static void spread_over(uint32_t n, uint32_t keys, double table_tol, double key_tol)
{
    struct pool p;
    fx_pool(&p, "maglev", n, NULL);
    uint32_t *slots = calloc(n, sizeof(*slots)), *count = calloc(n, sizeof(*count));
    double *want = calloc(n, sizeof(*want));
    for (uint32_t s = 0; s < M; s++) slots[maglev_owner(p.balancer, s)]++;
    for (uint32_t i = 0; i < n; i++) want[i] = (double)M / n;
    double wt = worst(slots, want, n);
    for (uint32_t k = 0; k < keys; k++) count[fx_pick_hash(&p, key_hash(k), &fx_none)->index]++;
    for (uint32_t i = 0; i < n; i++) want[i] = (double)keys / n;
    double wk = worst(count, want, n);
    printf("    %4u backends: table slots within %.2f%% of M/n; %u keys within %.2f%% of "
           "keys/n\n",
           n, 100 * wt, keys, 100 * wk);
    assert_true(wt <= table_tol);
    assert_true(wk <= key_tol);
    free(slots);
    free(count);
    free(want);
    pool_destroy(&p);
}

static void spreads_over_3_backends(void **state)
{
    spread_over(3, 1000000, 0.0001, 0.01);
}

static void spreads_over_10_backends(void **state)
{
    spread_over(10, 1000000, 0.001, 0.01);
}

static void spreads_over_1000_backends(void **state)
{
    /* M/n = 65.5 slots: every backend owns 65 or 66 of them. With 10^4 keys
     * per backend the keys' own randomness is about 1% (one sigma). */
    spread_over(1000, 10000000, 1.0 / 65, 0.06);
}

static void weights_set_the_share_of_slots(void **state)
{
    struct pool p;
    const uint32_t w[] = {2, 1, 1, 4};
    fx_pool(&p, "maglev", 4, w);
    uint32_t slots[4] = {0};
    for (uint32_t s = 0; s < M; s++) slots[maglev_owner(p.balancer, s)]++;
    const double want[4] = {M * 2 / 8.0, M / 8.0, M / 8.0, M * 4 / 8.0};
    printf("    weights 2,1,1,4: slots %u %u %u %u\n", slots[0], slots[1], slots[2], slots[3]);
    assert_true(worst(slots, want, 4) < 0.001);
    pool_destroy(&p);
}

#define KEYS 200000

/* Disruption when backend `gone` of n goes down: only its keys move, they are
 * about 1/n of all, and they spread over the others. */
static void disruption_when_one_goes_down(uint32_t n, uint32_t gone)
{
    struct pool p;
    fx_pool(&p, "maglev", n, NULL);
    uint16_t *before = malloc(KEYS * sizeof(*before));
    uint32_t *got = calloc(n, sizeof(*got));
    for (uint32_t k = 0; k < KEYS; k++)
        before[k] = (uint16_t)fx_pick_hash(&p, key_hash(k), &fx_none)->index;
    fx_set_state(&p, gone, BACKEND_DOWN);
    uint32_t moved = 0, wrong = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        uint32_t now = fx_pick_hash(&p, key_hash(k), &fx_none)->index;
        assert_int_not_equal(now, gone);
        if (now == before[k]) continue;
        moved++;
        got[now]++;
        if (before[k] != gone) wrong++;
    }
    uint32_t least = UINT32_MAX, most = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == gone) continue;
        if (got[i] < least) least = got[i];
        if (got[i] > most) most = got[i];
    }
    printf("    %u backends, one DOWN: %.2f%% of keys moved (1/n = %.2f%%), %u of another "
           "backend; each other backend took %u..%u of them (mean %.0f)\n",
           n, 100.0 * moved / KEYS, 100.0 / n, wrong, least, most, (double)moved / (n - 1));
    assert_int_equal(wrong, 0);
    assert_true(moved > KEYS / n * 0.9 && moved < KEYS / n * 1.1);
    double mean = (double)moved / (n - 1); /* spread evenly, not to one heir */
    if (n <= 10) assert_true(least > 0.9 * mean && most < 1.1 * mean);
    /* back up: every key is back where it was */
    fx_set_state(&p, gone, BACKEND_UP);
    for (uint32_t k = 0; k < KEYS; k++)
        assert_int_equal(fx_pick_hash(&p, key_hash(k), &fx_none)->index, before[k]);
    free(before);
    free(got);
    pool_destroy(&p);
}

static void only_the_keys_of_a_down_backend_move(void **state)
{
    disruption_when_one_goes_down(3, 1);
    disruption_when_one_goes_down(10, 4);
    disruption_when_one_goes_down(100, 57);
}

/* Disruption when backend `gone` is removed from the configuration (a new
 * table without it, as after a restart). Its own keys move, and some others:
 * Maglev trades minimal disruption for an even spread (paper, 3.4 and 5.3),
 * more so the fewer slots each backend has (65 for 1000 backends). */
static void disruption_when_one_is_removed(uint32_t n, uint32_t gone, double extra)
{
    static struct pool_conf without;
    static struct backend_conf without_backends[CONFIG_MAX_BACKENDS];
    struct pool a, b;
    fx_pool(&a, "maglev", n, NULL);
    without = fx_cfg; /* the same list without backend `gone` */
    memcpy(without_backends, fx_backends, n * sizeof(fx_backends[0]));
    without.backends = without_backends;
    memmove(&without.backends[gone], &without.backends[gone + 1],
            (n - gone - 1) * sizeof(without.backends[0]));
    without.nbackends = n - 1;
    assert_int_equal(pool_init(&b, &without, 0), 0);
    uint32_t moved = 0, moved_gone = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        const char *ua = fx_pick_hash(&a, key_hash(k), &fx_none)->conf->url;
        const char *ub = fx_pick_hash(&b, key_hash(k), &fx_none)->conf->url;
        if (!strcmp(ua, ub)) continue;
        moved++;
        if (!strcmp(ua, a.backends[gone].conf->url)) moved_gone++;
    }
    printf("    %u backends, one removed from the list: %.2f%% of keys moved (1/n = %.2f%%; "
           "%.2f%% were its own)\n",
           n, 100.0 * moved / KEYS, 100.0 / n, 100.0 * moved_gone / KEYS);
    assert_true(moved >= moved_gone);
    assert_true((double)moved / KEYS < extra / n);
    pool_destroy(&a);
    pool_destroy(&b);
}

static void about_1_in_n_keys_move_when_one_is_removed(void **state)
{
    disruption_when_one_is_removed(10, 4, 1.3);
    disruption_when_one_is_removed(100, 57, 2.0);
    disruption_when_one_is_removed(1000, 500, 8.0);
}

static void bounded_load_passes_keys_of_an_overloaded_backend_on(void **state)
{
    struct pool p;
    struct pool_conf *c = fx_config("maglev", 3, NULL);
    c->hash_balance_factor = 150;
    fx_init(&p);
    uint16_t *before = malloc(KEYS * sizeof(*before));
    for (uint32_t k = 0; k < KEYS; k++)
        before[k] = (uint16_t)fx_pick_hash(&p, key_hash(k), &fx_none)->index;
    /* backend 1 has 10 in flight, the others none: bound ceil(1.5 x 11 / 3) = 6 */
    fx_set_inflight(&p, 1, 10);
    uint32_t moved = 0, wrong = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        uint32_t now = fx_pick_hash(&p, key_hash(k), &fx_none)->index;
        if (now == before[k]) continue;
        moved++;
        if (before[k] != 1) wrong++;
    }
    assert_int_equal(wrong, 0);
    assert_true(moved > KEYS / 3 * 0.95 && moved < KEYS / 3 * 1.05);
    /* 4, 9, 4 in flight: bound ceil(1.5 x 18 / 3) = 9: at the bound, keys move */
    fx_set_inflight(&p, 0, 4);
    fx_set_inflight(&p, 1, 9);
    fx_set_inflight(&p, 2, 4);
    for (uint32_t k = 0; k < KEYS; k += 7)
        if (before[k] == 1) assert_int_not_equal(fx_pick_hash(&p, key_hash(k), &fx_none)->index, 1);
    /* 4, 8, 4: bound ceil(1.5 x 17 / 3) = 9: below it, every key stays */
    fx_set_inflight(&p, 1, 8);
    for (uint32_t k = 0; k < KEYS; k += 7)
        assert_int_equal(fx_pick_hash(&p, key_hash(k), &fx_none)->index, before[k]);
    /* without the factor a loaded backend keeps its keys */
    pool_destroy(&p);
    fx_pool(&p, "maglev", 3, NULL);
    fx_set_inflight(&p, 1, 1000);
    for (uint32_t k = 0; k < KEYS; k += 7)
        assert_int_equal(fx_pick_hash(&p, key_hash(k), &fx_none)->index, before[k]);
    free(before);
    pool_destroy(&p);
}

static void bounded_load_is_relative_to_weight(void **state)
{
    struct pool p;
    const uint32_t w[] = {1, 3};
    struct pool_conf *c = fx_config("maglev", 2, w);
    c->hash_balance_factor = 125;
    fx_init(&p);
    /* total 8 in flight: bounds ceil(1.25 x 9 x 1/4) = 3 and ceil(1.25 x 9 x 3/4) = 9 */
    fx_set_inflight(&p, 0, 3);
    fx_set_inflight(&p, 1, 5);
    uint32_t count[2] = {0};
    for (uint32_t k = 0; k < 1000; k++) count[fx_pick_hash(&p, key_hash(k), &fx_none)->index]++;
    assert_int_equal(count[0], 0);
    fx_set_inflight(&p, 0, 2);
    memset(count, 0, sizeof(count));
    for (uint32_t k = 0; k < 1000; k++) count[fx_pick_hash(&p, key_hash(k), &fx_none)->index]++;
    assert_in_range(count[0], 200, 300); /* its own quarter of the keys */
    pool_destroy(&p);
}

static void same_backends_same_table(void **state)
{
    struct pool a, b;
    fx_pool(&a, "maglev", 50, NULL);
    fx_pool(&b, "maglev", 50, NULL);
    for (uint32_t s = 0; s < M; s++)
        if (maglev_owner(a.balancer, s) != maglev_owner(b.balancer, s))
            fail_msg("slot %u differs", s);
    pool_destroy(&a);
    pool_destroy(&b);
}

static void pinned_values(void **state)
{
    /* These values are part of usher's behaviour: two ushers (or two
     * versions of usher) must send a key to the same backend. */
    /* MurmurHash64A, checked against a Python transcription of the reference code */
    assert_true(balance_hash64("", 0, BALANCE_HASH_SEED) == UINT64_C(0x380cd7bea1b11ecd));
    assert_true(balance_hash64("user-42", 7, BALANCE_HASH_SEED) == UINT64_C(0x829747e1d2e43d19));
    assert_true(balance_hash64("hello world, this is usher", 26, BALANCE_HASH_SEED) ==
                UINT64_C(0x93c95d33819a25b3));
    struct pool p;
    fx_pool(&p, "maglev", 5, NULL);
    static const uint32_t owners[] = {2, 3, 1, 2, 3, 4, 0, 1};
    uint32_t got[8];
    for (uint32_t k = 0; k < 8; k++) got[k] = fx_pick_hash(&p, key_hash(k), &fx_none)->index;
    printf("    owners of user-0..7: %u %u %u %u %u %u %u %u\n", got[0], got[1], got[2], got[3],
           got[4], got[5], got[6], got[7]);
    assert_memory_equal(got, owners, sizeof(owners));
    pool_destroy(&p);
}

/* ---- keys from requests ---- */

static struct h1_head head;

static struct balance_request view;

/* The balancers' view of request s (parsed into the static head). */
static const struct balance_request *parse(const char *s)
{
    static llhttp_t parser;
    h1_parser_init(&parser, 1);
    head.max_headers = 100;
    size_t scanned = 0, n = h1_find_head_end(s, strlen(s), &scanned);
    const char *why;
    assert_true(n > 0);
    assert_int_equal(h1_parse_head(&parser, &head, s, n, &why), 0);
    view = (struct balance_request){.target = head.target, .field = h1_field, .msg = &head};
    return &view;
}

static uint64_t hash_of(const char *s)
{
    return balance_hash64(s, strlen(s), BALANCE_HASH_SEED);
}

static uint64_t key_of(const char *spec, const char *req, const char *ip)
{
    struct balance_key k;
    char why[160];
    assert_int_equal(balance_key_parse(spec, &k, why, sizeof(why)), 0);
    uint64_t h = 0;
    struct balance_ctx ctx = {.client_ip = ip, .req = req ? parse(req) : NULL, .hash = &h};
    uint64_t r = balance_key_hash(&k, &ctx);
    assert_true(r == h); /* kept for retries */
    return r;
}

static void keys_come_from_the_request(void **state)
{
    const char *req = "GET /a/b?x=1&user=alice&y HTTP/1.1\r\nHost: h\r\nX-User: bob\r\n"
                      "Cookie: theme=dark; sid=\"carol\"\r\nCookie: other=1\r\n\r\n";
    assert_true(key_of("client_ip", req, "192.0.2.7") == hash_of("192.0.2.7"));
    assert_true(key_of("uri", req, "192.0.2.7") == hash_of("/a/b?x=1&user=alice&y"));
    assert_true(key_of("header:X-User", req, NULL) == hash_of("bob"));
    assert_true(key_of("header:x-user", req, NULL) == hash_of("bob")); /* names: any case */
    assert_true(key_of("cookie:sid", req, NULL) == hash_of("carol"));  /* quotes dropped */
    assert_true(key_of("cookie:other", req, NULL) == hash_of("1"));    /* second Cookie line */
    assert_true(key_of("query:user", req, NULL) == hash_of("alice"));
    assert_true(key_of("query:x", req, NULL) == hash_of("1"));
    /* missing or empty: no key (round robin) */
    assert_true(key_of("header:X-None", req, NULL) == 0);
    assert_true(key_of("cookie:Sid", req, NULL) == 0); /* cookie names are case-sensitive */
    assert_true(key_of("query:y", req, NULL) == 0);
    assert_true(key_of("query:users", req, NULL) == 0);
    assert_true(key_of("header:X-User", NULL, NULL) == 0); /* a retry without a hash */
}

static void bad_key_specs_are_refused(void **state)
{
    static const char *bad[] = {"",           "ip",         "header:", "cookie:",   "query",
                                "header:a b", "cookie:a;b", "URI",     "header:x:y"};
    struct balance_key k;
    char why[160];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = 0;
        if (balance_key_parse(bad[i], &k, why, sizeof(why)) == 0) fail_msg("accepted '%s'", bad[i]);
        assert_true(why[0] != 0);
    }
}

static void same_key_same_backend_and_missing_key_goes_round_robin(void **state)
{
    struct pool p;
    struct pool_conf *c = fx_config("maglev", 4, NULL);
    snprintf(c->hash_key, sizeof(c->hash_key), "header:X-User");
    fx_init(&p);
    const char *with = "GET / HTTP/1.1\r\nHost: h\r\nX-User: dave\r\n\r\n";
    uint32_t first = UINT32_MAX;
    for (int i = 0; i < 20; i++) {
        uint64_t h = 0;
        struct balance_ctx ctx = {.req = parse(with), .hash = &h};
        uint32_t got = p.ops->pick(p.balancer, &p, &ctx, &fx_none)->index;
        if (first == UINT32_MAX) first = got;
        assert_int_equal(got, first);
    }
    const char *without = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for (uint32_t i = 0; i < 8; i++) {
        uint64_t h = 0;
        struct balance_ctx ctx = {.req = parse(without), .hash = &h};
        assert_int_equal(p.ops->pick(p.balancer, &p, &ctx, &fx_none)->index, i % 4);
        assert_true(h == 0);
    }
    pool_destroy(&p);
}

static void a_retry_goes_to_the_next_owner_with_the_same_hash(void **state)
{
    struct pool p;
    struct pool_conf *c = fx_config("maglev", 5, NULL);
    snprintf(c->hash_key, sizeof(c->hash_key), "header:X-User");
    fx_init(&p);
    uint64_t h = 0;
    struct balance_tried t = {0};
    struct balance_ctx ctx = {.req = parse("GET / HTTP/1.1\r\nHost: h\r\nX-User: erin\r\n\r\n"),
                              .hash = &h};
    struct backend *a = p.ops->pick(p.balancer, &p, &ctx, &t);
    assert_true(h == hash_of("erin"));
    balance_tried_add(&t, a);
    ctx.req = NULL; /* retries have no head: the kept hash is used */
    struct backend *b = p.ops->pick(p.balancer, &p, &ctx, &t);
    assert_non_null(b);
    assert_int_not_equal(a->index, b->index);
    /* and it is the backend that would own the key if the first were down */
    fx_set_state(&p, a->index, BACKEND_DOWN);
    assert_int_equal(fx_pick_hash(&p, h, &fx_none)->index, b->index);
    for (uint32_t i = 0; i < 5; i++) fx_set_state(&p, i, FX_DRAIN);
    assert_null(fx_pick_hash(&p, h, &fx_none));
    pool_destroy(&p);
}

static void finds_the_one_usable_among_many(void **state)
{
    struct pool p;
    fx_pool(&p, "maglev", 1000, NULL);
    for (uint32_t i = 0; i < 1000; i++)
        if (i != 777) fx_set_state(&p, i, BACKEND_DOWN);
    for (uint32_t k = 0; k < 1000; k++)
        assert_int_equal(fx_pick_hash(&p, key_hash(k), &fx_none)->index, 777);
    pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spreads_over_3_backends),
        cmocka_unit_test(spreads_over_10_backends),
        cmocka_unit_test(spreads_over_1000_backends),
        cmocka_unit_test(weights_set_the_share_of_slots),
        cmocka_unit_test(only_the_keys_of_a_down_backend_move),
        cmocka_unit_test(about_1_in_n_keys_move_when_one_is_removed),
        cmocka_unit_test(bounded_load_passes_keys_of_an_overloaded_backend_on),
        cmocka_unit_test(bounded_load_is_relative_to_weight),
        cmocka_unit_test(same_backends_same_table),
        cmocka_unit_test(pinned_values),
        cmocka_unit_test(keys_come_from_the_request),
        cmocka_unit_test(bad_key_specs_are_refused),
        cmocka_unit_test(same_key_same_backend_and_missing_key_goes_round_robin),
        cmocka_unit_test(a_retry_goes_to_the_next_owner_with_the_same_hash),
        cmocka_unit_test(finds_the_one_usable_among_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
