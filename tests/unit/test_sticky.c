/* Tests src/balance/sticky.c: the cookie it sets (opaque, keyed by the
 * secret, the same in every usher with that secret), requests following
 * their cookie, and re-balancing (round robin among the usable backends)
 * when the named backend cannot take the request or the cookie is missing
 * or made up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balance_fixture.h"
#include "http/h1.h"

static void siphash_matches_the_reference_vectors(void **state)
{
    /* SipHash-2-4 paper, appendix A / reference vectors.h: key 00..0f,
     * message 00 01 02 ... of length 0, 8 and 15 */
    const uint64_t key[2] = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    unsigned char msg[15];
    for (int i = 0; i < 15; i++) msg[i] = (unsigned char)i;
    assert_true(balance_siphash(key, msg, 0) == UINT64_C(0x726fdb47dd0e0e31));
    assert_true(balance_siphash(key, msg, 8) == UINT64_C(0x93f5f5799a932462));
    assert_true(balance_siphash(key, msg, 15) == UINT64_C(0xa129ca6149be45e5));
}

static char line[3][256];
static char value[3][32];

/* The Set-Cookie lines of pool p's first three backends, and their values. */
static void cookies_of(struct pool *p)
{
    for (uint32_t i = 0; i < 3; i++) {
        size_t n = p->ops->response_header(p->balancer, &p->backends[i], line[i], 255);
        assert_true(n > 0);
        line[i][n] = 0;
        const char *eq = strchr(line[i], '=');
        assert_non_null(eq);
        snprintf(value[i], sizeof(value[i]), "%.*s", (int)strcspn(eq + 1, ";"), eq + 1);
    }
}

static void sets_an_opaque_cookie_per_backend(void **state)
{
    struct pool p;
    fx_pool(&p, "sticky", 3, NULL);
    cookies_of(&p);
    printf("    %s\n", line[0]);
    for (uint32_t i = 0; i < 3; i++) {
        assert_true(!strncmp(line[i], "Set-Cookie: usher_backend=", 26));
        assert_non_null(strstr(line[i], "; Path=/; HttpOnly"));
        assert_int_equal(strlen(value[i]), 16);
        assert_null(strstr(line[i], "10.0.")); /* the address is not in it */
        for (uint32_t j = 0; j < i; j++) assert_string_not_equal(value[i], value[j]);
    }
    /* too small a buffer: no header rather than half of one */
    char small[20];
    assert_int_equal(p.ops->response_header(p.balancer, &p.backends[0], small, sizeof(small)), 0);
    pool_destroy(&p);
}

static void values_depend_on_the_secret_only(void **state)
{
    struct pool a, b;
    char first[3][32];
    fx_pool(&a, "sticky", 3, NULL);
    cookies_of(&a);
    memcpy(first, value, sizeof(first));
    pool_destroy(&a);
    /* another usher, same secret (the default), same values */
    fx_pool(&b, "sticky", 3, NULL);
    cookies_of(&b);
    for (int i = 0; i < 3; i++) assert_string_equal(value[i], first[i]);
    pool_destroy(&b);
    /* another secret, other values; and the cookie name is configurable */
    struct pool_conf *c = fx_config("sticky", 3, NULL);
    snprintf(c->sticky_secret, sizeof(c->sticky_secret), "s3cret");
    snprintf(c->sticky_cookie, sizeof(c->sticky_cookie), "lb");
    fx_init(&b);
    cookies_of(&b);
    assert_true(!strncmp(line[0], "Set-Cookie: lb=", 15));
    for (int i = 0; i < 3; i++) assert_string_not_equal(value[i], first[i]);
    pool_destroy(&b);
}

static struct h1_head head;

static struct backend *pick_with(struct pool *p, const char *cookie_header,
                                 const struct balance_tried *t)
{
    static llhttp_t parser;
    char req[512];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\n%s%s\r\n", cookie_header,
             cookie_header[0] ? "\r\n" : "");
    h1_parser_init(&parser, 1);
    head.max_headers = 100;
    size_t scanned = 0, n = h1_find_head_end(req, strlen(req), &scanned);
    const char *why;
    assert_int_equal(h1_parse_head(&parser, &head, req, n, &why), 0);
    uint64_t h = 0;
    return p->ops->pick(
        p->balancer, p,
        &(struct balance_ctx){
            .req =
                &(struct balance_request){.target = head.target, .field = h1_field, .msg = &head},
            .hash = &h},
        t);
}

static void requests_follow_their_cookie(void **state)
{
    struct pool p;
    fx_pool(&p, "sticky", 3, NULL);
    cookies_of(&p);
    char hdr[192];
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(hdr, sizeof(hdr), "Cookie: theme=dark; usher_backend=%s; x=1", value[i]);
        for (int k = 0; k < 10; k++) assert_int_equal(pick_with(&p, hdr, &fx_none)->index, i);
    }
    pool_destroy(&p);
}

static void no_cookie_or_a_made_up_one_goes_round_robin(void **state)
{
    struct pool p;
    fx_pool(&p, "sticky", 3, NULL);
    cookies_of(&p);
    static const char *hdrs[] = {"", "Cookie: usher_backend=0123456789abcdef",
                                 "Cookie: usher_backend=10.0.0.1", "Cookie: other=1",
                                 "Cookie: usher_backend="};
    uint32_t next = 0;
    for (size_t h = 0; h < sizeof(hdrs) / sizeof(hdrs[0]); h++)
        for (int k = 0; k < 6; k++, next++)
            assert_int_equal(pick_with(&p, hdrs[h], &fx_none)->index, next % 3);
    /* upper case is not what usher writes: made up */
    char hdr[192], upper[32];
    snprintf(upper, sizeof(upper), "%s", value[2]);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 'a' + 'A');
    if (strcmp(upper, value[2])) {
        snprintf(hdr, sizeof(hdr), "Cookie: usher_backend=%s", upper);
        assert_int_equal(pick_with(&p, hdr, &fx_none)->index, next++ % 3);
    }
    pool_destroy(&p);
}

static void rebalanced_when_its_backend_is_down_draining_or_tried(void **state)
{
    struct pool p;
    fx_pool(&p, "sticky", 3, NULL);
    cookies_of(&p);
    char hdr[192];
    snprintf(hdr, sizeof(hdr), "Cookie: usher_backend=%s", value[1]);
    fx_set_state(&p, 1, BACKEND_DOWN);
    int count[3] = {0};
    for (int k = 0; k < 100; k++) count[pick_with(&p, hdr, &fx_none)->index]++;
    assert_int_equal(count[1], 0);
    assert_int_equal(count[0], 50); /* round robin among the usable ones */
    assert_int_equal(count[2], 50);
    fx_set_state(&p, 1, FX_DRAIN);
    assert_int_not_equal(pick_with(&p, hdr, &fx_none)->index, 1);
    /* back up: the client is back on its backend */
    fx_set_state(&p, 1, BACKEND_UP);
    assert_int_equal(pick_with(&p, hdr, &fx_none)->index, 1);
    /* a retry after its backend failed goes elsewhere */
    struct balance_tried t = {0};
    balance_tried_add(&t, &p.backends[1]);
    assert_int_not_equal(pick_with(&p, hdr, &t)->index, 1);
    balance_tried_add(&t, &p.backends[0]);
    assert_int_equal(pick_with(&p, hdr, &t)->index, 2);
    balance_tried_add(&t, &p.backends[2]);
    assert_null(pick_with(&p, hdr, &t));
    /* retries come without a head: round robin */
    struct balance_tried t1 = {0};
    balance_tried_add(&t1, &p.backends[0]);
    assert_non_null(fx_pick(&p, &t1));
    pool_destroy(&p);
}

static void cookie_follows_the_backend_not_its_position(void **state)
{
    /* the same backend listed at another position keeps its value */
    struct pool a;
    fx_pool(&a, "sticky", 3, NULL);
    cookies_of(&a);
    char v2[32];
    snprintf(v2, sizeof(v2), "%s", value[2]);
    pool_destroy(&a);
    struct pool_conf *c = fx_config("sticky", 3, NULL);
    struct backend_conf tmp = c->backends[0];
    c->backends[0] = c->backends[2];
    c->backends[2] = tmp;
    fx_init(&a);
    char hdr[192];
    snprintf(hdr, sizeof(hdr), "Cookie: usher_backend=%s", v2);
    struct backend *b = pick_with(&a, hdr, &fx_none);
    assert_int_equal(b->index, 0);
    assert_string_equal(b->conf->url, "http://10.0.0.2:80");
    pool_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(siphash_matches_the_reference_vectors),
        cmocka_unit_test(sets_an_opaque_cookie_per_backend),
        cmocka_unit_test(values_depend_on_the_secret_only),
        cmocka_unit_test(requests_follow_their_cookie),
        cmocka_unit_test(no_cookie_or_a_made_up_one_goes_round_robin),
        cmocka_unit_test(rebalanced_when_its_backend_is_down_draining_or_tried),
        cmocka_unit_test(cookie_follows_the_backend_not_its_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
