/* Tests src/http/body.c: Content-Length counting and strict chunked framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/body.h"

/* Feeds s in pieces of `step` bytes; returns bytes of the body, or -1. */
static long feed(enum body_kind kind, uint64_t length, const char *s, size_t step, int *done)
{
    struct body b;
    body_init(&b, kind, length);
    char buf[512];
    size_t len = strlen(s), off = 0;
    memcpy(buf, s, len);
    *done = 0;
    while (off < len && !*done) {
        size_t n = len - off < step ? len - off : step;
        long k = body_parse(&b, buf + off, n, done, NULL);
        if (k < 0) return -1;
        off += (size_t)k;
        if ((size_t)k < n && !*done) return -2; /* stopped early without an end */
    }
    return (long)off;
}

static void length_counts_exactly(void **state)
{
    int done;
    assert_int_equal(feed(BODY_LENGTH, 5, "helloGET / HTTP/1.1", 3, &done), 5);
    assert_true(done);
    assert_int_equal(feed(BODY_LENGTH, 10, "hello", 2, &done), 5);
    assert_false(done);
}

static void valid_chunked_bodies(void **state)
{
    const char *ok[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "5;a=b;c\r\nhello\r\n0;z=1\r\n\r\n",
        "5 ;a=\"q s\"\r\nhello\r\n0\r\n\r\n",
        "A\r\n0123456789\r\n0\r\nTrailer: x\r\nT2:\r\n\r\n",
        "00000\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        for (size_t step = 1; step <= strlen(ok[i]); step++) {
            int done;
            char with_next[256];
            snprintf(with_next, sizeof(with_next), "%sNEXT", ok[i]);
            assert_int_equal(feed(BODY_CHUNKED, 0, with_next, step, &done), (long)strlen(ok[i]));
            assert_true(done);
        }
    }
}

static void invalid_chunked_bodies(void **state)
{
    const char *bad[] = {
        "5\r\nhello\r\n0\r0\r\n\r\n",    /* bare CR in the size line */
        "5\r\nhelloXX0\r\n\r\n",         /* data longer than its size */
        "5\nhello\r\n0\r\n\r\n",         /* bare LF */
        "-5\r\nhello\r\n0\r\n\r\n",      /* sign */
        "0x5\r\nhello\r\n0\r\n\r\n",     /* 0x prefix */
        "5 \r\nhello\r\n0\r\n\r\n",      /* whitespace without an extension */
        "1000000000000000\r\n",          /* 16 hex digits: overflow guard */
        "5;a\x01\r\nhello\r\n0\r\n\r\n", /* control byte in an extension */
        "0\r\nX: a\r\n b\r\n\r\n",       /* obs-fold in a trailer */
        "0\r\nX : a\r\n\r\n",            /* space before the colon */
        "0\r\nNoColon\r\n\r\n",          /* trailer line without a colon */
        "\r\n",                          /* no size */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int done;
        assert_int_equal(feed(BODY_CHUNKED, 0, bad[i], 1, &done), -1);
        assert_int_equal(feed(BODY_CHUNKED, 0, bad[i], 64, &done), -1);
    }
}

static void dechunks_in_place(void **state)
{
    struct body b;
    body_init(&b, BODY_CHUNKED, 0);
    char s[] = "3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    char *out = s;
    int done;
    long n = body_parse(&b, s, strlen(s), &done, &out);
    assert_int_equal(n, (long)strlen(s) - 4);
    assert_true(done);
    assert_int_equal(out - s, 8);
    assert_memory_equal(s, "abcdefgh", 8);
}

/* Feeds a chunked body limited to max bytes in pieces of step bytes: returns
 * the bytes taken before the end, or the error, and how many were taken. */
static long feed_limited(uint64_t max, const char *s, size_t step, size_t *taken)
{
    struct body b;
    body_init(&b, BODY_CHUNKED, 0);
    body_limit(&b, max);
    char buf[512];
    size_t len = strlen(s);
    memcpy(buf, s, len);
    *taken = 0;
    int done = 0;
    while (*taken < len && !done) {
        size_t n = len - *taken < step ? len - *taken : step;
        long k = body_parse(&b, buf + *taken, n, &done, NULL);
        if (k < 0) return k;
        *taken += (size_t)k;
    }
    return done ? (long)*taken : -3;
}

static void chunked_limit(void **state)
{
    const char *ten = "3\r\nabc\r\n7;x=y\r\ndefghij\r\n0\r\nT: v\r\n\r\n"; /* 10 data bytes */
    for (size_t step = 1; step <= strlen(ten); step++) {
        size_t taken;
        /* exactly at the limit, or under it: the whole body */
        assert_int_equal(feed_limited(10, ten, step, &taken), (long)strlen(ten));
        assert_int_equal(feed_limited(11, ten, step, &taken), (long)strlen(ten));
        /* one byte over: refused when the second chunk's size line ends,
         * before any of its data was taken */
        assert_int_equal(feed_limited(9, ten, step, &taken), BODY_ERR_TOO_LARGE);
        assert_true(taken <= strlen("3\r\nabc\r\n7;x=y\r"));
        assert_int_equal(feed_limited(2, ten, step, &taken), BODY_ERR_TOO_LARGE);
        assert_true(taken <= strlen("3\r"));
    }
    /* a huge chunk size is refused at once, whatever the bytes after it */
    size_t taken;
    assert_int_equal(feed_limited(1 << 20, "FFFFFFFFFFFF\r\nab", 64, &taken), BODY_ERR_TOO_LARGE);
    assert_int_equal(taken, 0);
    /* a limit of 0 allows only the last chunk */
    assert_int_equal(feed_limited(0, "0\r\n\r\n", 1, &taken), 5);
    assert_int_equal(feed_limited(0, "1\r\na\r\n0\r\n\r\n", 64, &taken), BODY_ERR_TOO_LARGE);
    /* framing errors stay framing errors under a limit */
    assert_int_equal(feed_limited(100, "5\r\nhelloXX0\r\n\r\n", 64, &taken), BODY_ERR_FRAMING);
}

static void close_delimited_takes_everything(void **state)
{
    struct body b;
    body_init(&b, BODY_CLOSE, 0);
    char s[] = "anything at all";
    int done;
    assert_int_equal(body_parse(&b, s, strlen(s), &done, NULL), (long)strlen(s));
    assert_false(done);
    assert_false(body_done(&b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(length_counts_exactly),
        cmocka_unit_test(valid_chunked_bodies),
        cmocka_unit_test(invalid_chunked_bodies),
        cmocka_unit_test(dechunks_in_place),
        cmocka_unit_test(chunked_limit),
        cmocka_unit_test(close_delimited_takes_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
