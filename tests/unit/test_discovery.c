/* Tests src/app/discovery.c's pure part (SRV weights to usher weights), the
 * SRV priorities of src/upstream/backend.c (pool_update_standby, as
 * balance_pick sees them) and the discovery settings of
 * src/config/settings.c (the quick-mode URLs, resolvers, the block check). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app/discovery.h"
#include "balance/balance.h"
#include "config/config.h"
#include "config/settings.h"
#include "upstream/backend.h"

static void srv_weights(void **state)
{
    assert_int_equal(discovery_weight(0, 10), 1); /* 0: the smallest share */
    assert_int_equal(discovery_weight(10, 10), 10);
    assert_int_equal(discovery_weight(1000, 1000), 1000);
    /* above 1000: scaled, ratios kept */
    assert_int_equal(discovery_weight(65535, 65535), 1000);
    assert_int_equal(discovery_weight(32768, 65535), 500);
    assert_int_equal(discovery_weight(1, 65535), 1);
}

/* A pool of n backends: the first nstatic static, then SRV ones with prio[]. */
static void make_pool(struct pool *p, struct pool_conf *pc, uint32_t n, uint32_t nstatic,
                      const uint16_t *prio)
{
    config_pool_defaults(pc);
    snprintf(pc->name, sizeof(pc->name), "web");
    pc->backends = calloc(n, sizeof(*pc->backends));
    pc->nbackends = n;
    for (uint32_t i = 0; i < n; i++) {
        char url[64], why[128];
        snprintf(url, sizeof(url), "http://127.0.0.%u:80", i + 1);
        assert_int_equal(config_parse_backend(url, &pc->backends[i], why, sizeof(why)), 0);
        if (i >= nstatic) {
            pc->backends[i].dns = BACKEND_DNS_SRV;
            pc->backends[i].priority = prio[i - nstatic];
        }
    }
    assert_int_equal(pool_init(p, pc, 0), 0);
    pool_update_standby(p);
}

static void free_pool(struct pool *p, struct pool_conf *pc)
{
    pool_destroy(p);
    free(pc->backends);
}

/* Which backends 64 picks reach (bit i: backend i). */
static unsigned reached(struct pool *p)
{
    unsigned mask = 0;
    uint64_t hash = 0;
    struct balance_ctx ctx = {.client_ip = "10.0.0.1", .hash = &hash};
    for (int k = 0; k < 64; k++) {
        struct balance_tried t = {0};
        struct backend *b = balance_pick(p, &ctx, &t);
        if (b) mask |= 1u << b->index;
    }
    return mask;
}

static void priorities(void **state)
{
    struct pool p;
    struct pool_conf pc;
    static const uint16_t prio[] = {10, 10, 20};
    make_pool(&p, &pc, 3, 0, prio);
    assert_true(p.priorities);
    assert_int_equal(reached(&p), 0x3); /* priority 10 only */
    atomic_store(&p.backends[0].state, BACKEND_DOWN);
    pool_update_standby(&p);
    assert_int_equal(reached(&p), 0x2);
    atomic_store(&p.backends[1].drain, BACKEND_DRAIN); /* drained counts as not usable */
    pool_update_standby(&p);
    assert_int_equal(reached(&p), 0x4); /* priority 20 takes over */
    atomic_store(&p.backends[0].state, BACKEND_UP);
    pool_update_standby(&p);
    assert_int_equal(reached(&p), 0x1); /* back to priority 10 */
    free_pool(&p, &pc);
}

static void static_backends_are_never_standby(void **state)
{
    struct pool p;
    struct pool_conf pc;
    static const uint16_t prio[] = {5, 7};
    make_pool(&p, &pc, 3, 1, prio);
    assert_int_equal(reached(&p), 0x3); /* the static one and priority 5 */
    atomic_store(&p.backends[1].state, BACKEND_DOWN);
    pool_update_standby(&p);
    assert_int_equal(reached(&p), 0x5);
    free_pool(&p, &pc);
}

static void one_priority_needs_no_work(void **state)
{
    struct pool p;
    struct pool_conf pc;
    static const uint16_t prio[] = {3, 3};
    make_pool(&p, &pc, 2, 0, prio);
    assert_false(p.priorities);
    assert_int_equal(reached(&p), 0x3);
    free_pool(&p, &pc);
}

static void empty_pool_picks_nothing(void **state)
{
    struct pool p;
    struct pool_conf pc;
    config_pool_defaults(&pc);
    snprintf(pc.balance, sizeof(pc.balance), "maglev"); /* its init refuses 0 backends */
    assert_int_equal(pool_init(&p, &pc, 0), 0);
    struct balance_tried t = {0};
    uint64_t hash = 0;
    struct balance_ctx ctx = {.client_ip = "10.0.0.1", .hash = &hash};
    assert_null(balance_pick(&p, &ctx, &t));
    pool_destroy(&p);
}

static void quick_mode_urls(void **state)
{
    struct pool_conf pc;
    config_pool_defaults(&pc);
    char why[256];
    struct discover_conf d = pc.discover;
    assert_int_equal(config_parse_discover_url("http://10.0.0.1:80", &d, why, sizeof(why)), 0);
    assert_int_equal(config_parse_discover_url("dns+http://web.test:8080", &d, why, sizeof(why)),
                     1);
    assert_string_equal(d.dns, "web.test");
    assert_int_equal(d.port, 8080);
    assert_int_equal(d.type, DISC_A_AAAA);
    d = pc.discover;
    assert_int_equal(
        config_parse_discover_url("srv+http://_http._tcp.web.test/", &d, why, sizeof(why)), 1);
    assert_int_equal(d.type, DISC_SRV);
    assert_int_equal(d.port, 0);
    assert_int_equal(d.scheme, DISC_HTTP);
    static const char *const bad[] = {
        "dns+http://web.test",
        "dns+http://web.test:0",
        "dns+http://web.test:80/x",
        "srv+http://_http._tcp.web:1",
        "srv+http://web.test",
        "dns+ftp://web.test:443",
        "dns+http://-web.test:80",
        "dns+http://web..test:80",
        "dns+http://:80",
        "dns+https://web.test",
        "srv+https://web.test",
        "srv+https://_h._tcp.web:443",
        "dns+https://:443",
        "dns+httpss://web.test:1",
        "srv+https//_h._tcp.web.test",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = pc.discover;
        why[0] = 0;
        assert_int_equal(config_parse_discover_url(bad[i], &d, why, sizeof(why)), -EINVAL);
        assert_true(why[0]);
    }
}

/* dns+https:// and srv+https://: the same forms, with TLS to the backends;
 * the messages name the form given. */
static void quick_mode_https_urls(void **state)
{
    struct pool_conf pc;
    config_pool_defaults(&pc);
    assert_int_equal(pc.discover.scheme, DISC_HTTP); /* the default */
    char why[256];
    struct discover_conf d = pc.discover;
    assert_int_equal(config_parse_discover_url("dns+https://web.test:8443", &d, why, sizeof(why)),
                     1);
    assert_string_equal(d.dns, "web.test");
    assert_int_equal(d.port, 8443);
    assert_int_equal(d.type, DISC_A_AAAA);
    assert_int_equal(d.scheme, DISC_HTTPS);
    d = pc.discover;
    assert_int_equal(
        config_parse_discover_url("srv+https://_web._tcp.service.consul", &d, why, sizeof(why)), 1);
    assert_string_equal(d.dns, "_web._tcp.service.consul");
    assert_int_equal(d.type, DISC_SRV);
    assert_int_equal(d.port, 0);
    assert_int_equal(d.scheme, DISC_HTTPS);
    /* a later http form does not keep https */
    assert_int_equal(config_parse_discover_url("dns+http://web.test:80", &d, why, sizeof(why)), 1);
    assert_int_equal(d.scheme, DISC_HTTP);
    d = pc.discover;
    assert_int_equal(config_parse_discover_url("dns+https://web.test", &d, why, sizeof(why)),
                     -EINVAL);
    assert_string_equal(why, "dns+https://NAME:PORT needs the backends' port");
    assert_int_equal(
        config_parse_discover_url("srv+https://_h._tcp.web.test:443", &d, why, sizeof(why)),
        -EINVAL);
    assert_string_equal(why, "srv+https:// takes no port: the SRV records give it");
    assert_int_equal(config_parse_discover_url("dns+ftp://web.test:21", &d, why, sizeof(why)),
                     -EINVAL);
    assert_non_null(strstr(why, "dns+https://, srv+https://"));
    /* a plain https:// URL is not a discovery one */
    assert_int_equal(config_parse_discover_url("https://10.0.0.1", &d, why, sizeof(why)), 0);
}

/* config_pool_tls: a static https:// backend, or discovery with scheme https. */
static void pool_tls(void **state)
{
    struct pool_conf pc;
    config_pool_defaults(&pc);
    struct backend_conf b[2];
    char why[160];
    assert_int_equal(config_parse_backend("http://10.0.0.1:80", &b[0], why, sizeof(why)), 0);
    assert_int_equal(config_parse_backend("https://10.0.0.2", &b[1], why, sizeof(why)), 0);
    pc.backends = b;
    pc.nbackends = 1;
    assert_false(config_pool_tls(&pc));
    pc.nbackends = 2;
    assert_true(config_pool_tls(&pc));
    pc.nbackends = 1;
    snprintf(pc.discover.dns, sizeof(pc.discover.dns), "web.test");
    assert_false(config_pool_tls(&pc)); /* scheme http */
    pc.discover.scheme = DISC_HTTPS;
    assert_true(config_pool_tls(&pc));
    pc.nbackends = 0;
    assert_true(config_pool_tls(&pc)); /* no backend yet: DNS will give https:// ones */
    pc.discover.dns[0] = 0;
    assert_false(config_pool_tls(&pc)); /* scheme without discover: nothing */
}

static void resolvers(void **state)
{
    char out[64], why[256];
    assert_int_equal(config_parse_resolver("127.0.0.1:8600", out, sizeof(out), why, sizeof(why)),
                     0);
    assert_string_equal(out, "127.0.0.1:8600");
    assert_int_equal(config_parse_resolver("10.0.0.2", out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, "10.0.0.2:53");
    assert_int_equal(config_parse_resolver("[::1]:5353", out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, "[::1]:5353");
    assert_int_equal(config_parse_resolver("::1", out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, "[::1]:53");
    assert_int_equal(config_parse_resolver("dns.example:53", out, sizeof(out), why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(config_parse_resolver("1.2.3.4:70000", out, sizeof(out), why, sizeof(why)),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(srv_weights),
        cmocka_unit_test(priorities),
        cmocka_unit_test(static_backends_are_never_standby),
        cmocka_unit_test(one_priority_needs_no_work),
        cmocka_unit_test(empty_pool_picks_nothing),
        cmocka_unit_test(quick_mode_urls),
        cmocka_unit_test(quick_mode_https_urls),
        cmocka_unit_test(pool_tls),
        cmocka_unit_test(resolvers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
