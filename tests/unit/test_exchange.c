/* Tests src/proxy/exchange.c: when a failed attempt is tried again
 * (RFC 9110 9.2.2), and where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "proxy/exchange.h"

static enum exchange_retry decide(int connecting, int reused, int replayable, int idempotent,
                                  int stale, int err)
{
    struct exchange_attempt a = {
        .connecting = (uint8_t)connecting,
        .reused = (uint8_t)reused,
        .replayable = (uint8_t)replayable,
        .idempotent = (uint8_t)idempotent,
        .stale_retries = (uint8_t)stale,
        .err = err,
    };
    return exchange_retry_decision(&a);
}

static void a_failed_connect_goes_to_the_next_backend(void **state)
{
    /* nothing was sent: whatever the method, whatever else */
    assert_int_equal(decide(1, 0, 0, 0, 0, -ECONNREFUSED), RETRY_NEXT);
    assert_int_equal(decide(1, 0, 1, 1, 0, -ETIMEDOUT), RETRY_NEXT);
}

static void a_stale_pooled_connection_is_replaced(void **state)
{
    /* the backend had closed the pooled connection: again, on a fresh one,
     * for a POST too when none of it was sent (replayable) */
    assert_int_equal(decide(0, 1, 1, 0, 0, -ECONNRESET), RETRY_FRESH);
    assert_int_equal(decide(0, 1, 1, 1, 2, -EPIPE), RETRY_FRESH);
    /* at most three times; then an idempotent request goes elsewhere */
    assert_int_equal(decide(0, 1, 1, 1, 3, -ECONNRESET), RETRY_ELSEWHERE);
    assert_int_equal(decide(0, 1, 1, 0, 3, -ECONNRESET), RETRY_NONE);
    /* part of a response came, or the body kept for a replay was given up */
    assert_int_equal(decide(0, 1, 0, 1, 0, -ECONNRESET), RETRY_NONE);
}

static void after_sending_only_idempotent_requests_go_again(void **state)
{
    assert_int_equal(decide(0, 0, 1, 1, 0, -ECONNRESET), RETRY_ELSEWHERE);
    assert_int_equal(decide(0, 0, 1, 0, 0, -ECONNRESET), RETRY_NONE); /* a POST: 502 */
    /* a backend that took too long is not asked twice */
    assert_int_equal(decide(0, 0, 1, 1, 0, -ETIMEDOUT), RETRY_NONE);
    assert_int_equal(decide(0, 1, 1, 1, 3, -ETIMEDOUT), RETRY_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failed_connect_goes_to_the_next_backend),
        cmocka_unit_test(a_stale_pooled_connection_is_replaced),
        cmocka_unit_test(after_sending_only_idempotent_requests_go_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
