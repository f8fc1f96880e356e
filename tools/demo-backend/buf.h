/* buf: a growable byte string (response bodies, request URL and headers, a
 * connection's output). Growth never fails: out of memory aborts. */
#ifndef DEMO_BUF_H
#define DEMO_BUF_H

#include <stddef.h>

/* A zeroed struct buf is empty and valid; p is owned by the buf. */
struct buf {
    char *p;
    size_t len, cap;
};

/* Makes room for extra more bytes after len (doubling, from 256). */
void buf_reserve(struct buf *b, size_t extra);
/* Appends d[0..n). */
void buf_append(struct buf *b, const void *d, size_t n);
/* Appends the string s without its NUL. */
void buf_puts(struct buf *b, const char *s);
/* Appends one byte. */
void buf_putc(struct buf *b, char ch);
/* Appends printf output (no NUL counted in len). */
__attribute__((format(printf, 2, 3))) void buf_printf(struct buf *b, const char *fmt, ...);
/* Frees the storage and leaves b empty and reusable. */
void buf_free(struct buf *b);

#endif
