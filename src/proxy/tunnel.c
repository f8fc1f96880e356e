/* tunnel: the byte relay. See tunnel.h. */
#include "proxy/tunnel.h"

#include <errno.h>

/* Reads from c into *slot. 1: progress, 0: nothing, -1: no buffer. */
static int relay_read(struct conn *c, struct buf **slot, struct buf_cache *bufs, uint8_t *eof,
                      int *read_any)
{
    if (!c->readable || *eof) return 0;
    struct buf *b = *slot;
    if (!b && !(b = *slot = buf_get(bufs))) return -1;
    if (buf_room(b) == 0) {
        if (b->start == 0) return 0; /* full: wait until bytes move on */
        buf_compact(b);
    }
    ssize_t n = conn_read(c, b->data + b->end, buf_room(b));
    if (n > 0) {
        b->end += (uint32_t)n;
        *read_any = 1;
        return 1;
    }
    if (n == -EAGAIN) return 0;
    if (n == -EINTR) return 1;
    *eof = 1; /* the end, or a reset: nothing more will come */
    return 1;
}

/* Writes [head] + *slot to c. Returns the bytes written, 0, or -errno;
 * *from_slot counts those that came from *slot. */
static ssize_t relay_write(struct conn *c, struct buf **head, struct buf **slot,
                           struct buf_cache *bufs, uint64_t *from_slot)
{
    if (!c->writable) return 0;
    struct iovec iov[2];
    int n = 0;
    struct buf *h = head ? *head : NULL, *b = *slot;
    if (h && h->start < h->end) iov[n++] = (struct iovec){h->data + h->start, buf_len(h)};
    if (b && b->start < b->end) iov[n++] = (struct iovec){b->data + b->start, buf_len(b)};
    if (n == 0) return 0;
    ssize_t w = conn_writev(c, iov, n);
    if (w == -EAGAIN) return 0;
    if (w < 0) return w;
    size_t left = (size_t)w;
    if (h && h->start < h->end) {
        size_t k = left < buf_len(h) ? left : buf_len(h);
        h->start += (uint32_t)k;
        left -= k;
        if (h->start == h->end) {
            buf_put(bufs, h);
            *head = NULL;
        }
    }
    if (left) {
        *from_slot += left;
        b->start += (uint32_t)left;
        if (b->start == b->end) b->start = b->end = 0;
    }
    return w;
}

int tunnel_step(struct tunnel *t, const struct tunnel_io *io, int *read_any, uint64_t *to_a)
{
    int progress = 0, r;
    if ((r = relay_read(io->a, io->ab, io->bufs, &t->a_eof, read_any)) < 0) return -1;
    progress |= r;
    if (!t->b_failed) {
        uint64_t up = 0;
        ssize_t w = relay_write(io->b, NULL, io->ab, io->bufs, &up);
        if (w == -EINTR) {
            progress = 1;
        } else if (w < 0) {
            /* the backend may still have bytes for the client: read to its end */
            t->b_failed = 1;
            io->b->readable = 1;
            progress = 1;
        } else if (w > 0) {
            progress = 1;
        }
    }
    if ((r = relay_read(io->b, io->ba, io->bufs, &t->b_eof, read_any)) < 0) return -1;
    progress |= r;
    ssize_t w = relay_write(io->a, io->ba_head, io->ba, io->bufs, to_a);
    if (w == -EINTR) return 1;
    if (w < 0) return -1; /* the client is gone */
    return progress | (w > 0);
}

static int empty(struct buf *const *slot)
{
    return !*slot || (*slot)->start == (*slot)->end;
}

int tunnel_done(const struct tunnel *t, const struct tunnel_io *io)
{
    int b_done = t->b_eof && (!io->ba_head || empty(io->ba_head)) && empty(io->ba);
    int a_done = t->a_eof && empty(io->ab);
    return a_done || b_done;
}
