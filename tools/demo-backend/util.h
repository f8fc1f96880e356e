/* util: process-wide helpers of demo-backend: fatal errors, allocation that
 * cannot fail, the monotonic clock and strict decimal parsing.
 *
 * demo-backend shares no code with src/ on purpose: the server the tests run
 * against must not inherit the bugs of the balancer under test. */
#ifndef DEMO_UTIL_H
#define DEMO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The struct of type `type` whose member `member` is at ptr. */
#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Prints "demo-backend: WHAT: <strerror(errno)>" and exits with status 1. */
__attribute__((noreturn)) void util_die(const char *what);
/* realloc that aborts when out of memory; the caller owns the result. */
void *util_xrealloc(void *p, size_t n);
/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t util_now_ms(void);
/* Parses s[0..n) as an unsigned decimal no larger than max; false on anything else. */
bool util_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out);

#endif
