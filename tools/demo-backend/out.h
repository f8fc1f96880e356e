/* out: a connection's output buffer (conn.out from conn.out_off on) and its
 * non-blocking flush. Everything a response writes goes through here. */
#ifndef DEMO_OUT_H
#define DEMO_OUT_H

#include <stddef.h>

#include "conn.h"

/* Bytes queued and not yet sent. */
size_t out_pending(const struct conn *c);
/* Makes room for n more bytes at c->out.p + c->out.len (sent bytes are reclaimed first). */
void out_reserve(struct conn *c, size_t n);
/* Queues d[0..n). */
void out_append(struct conn *c, const void *d, size_t n);
/* Queues the string s without its NUL. */
void out_puts(struct conn *c, const char *s);
/* Queues printf output. */
__attribute__((format(printf, 2, 3))) void out_printf(struct conn *c, const char *fmt, ...);
/* Sends what the socket takes; 0 (also when it would block) or -1 on a fatal socket error. */
int out_flush(struct conn *c);

#endif
