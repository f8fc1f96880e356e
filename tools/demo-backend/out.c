/* out: see out.h. */
#include "out.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

size_t out_pending(const struct conn *c)
{
    return c->out.len - c->out_off;
}

void out_reserve(struct conn *c, size_t n)
{
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    } else if (c->out_off > 0 && c->out.len + n > c->out.cap) {
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    buf_reserve(&c->out, n);
}

void out_append(struct conn *c, const void *d, size_t n)
{
    out_reserve(c, n);
    buf_append(&c->out, d, n);
}

void out_puts(struct conn *c, const char *s)
{
    out_append(c, s, strlen(s));
}

void out_printf(struct conn *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        out_append(c, tmp, (size_t)n);
        return;
    }
    out_reserve(c, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(c->out.p + c->out.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->out.len += (size_t)n;
}

int out_flush(struct conn *c)
{
    while (out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    c->out.len = c->out_off = 0;
    /* keep a big buffer only while /bytes refills it */
    if (c->out.cap > 16 * 1024 && !c->gen_active) buf_free(&c->out);
    return 0;
}
