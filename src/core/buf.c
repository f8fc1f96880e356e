/* buf: per-worker buffer cache. See buf.h. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

struct buf *buf_get(struct buf_cache *c)
{
    struct buf *b = c->free;
    if (b) {
        c->free = b->next_free;
        c->count--;
    } else {
        b = malloc(sizeof(*b));
        if (!b) return NULL;
    }
    b->start = b->end = 0;
    return b;
}

void buf_put(struct buf_cache *c, struct buf *b)
{
    if (!b) return;
    if (c->count >= c->max) {
        free(b);
        return;
    }
    b->next_free = c->free;
    c->free = b;
    c->count++;
}

void buf_cache_drain(struct buf_cache *c)
{
    while (c->free) {
        struct buf *b = c->free;
        c->free = b->next_free;
        free(b);
    }
    c->count = 0;
}

void buf_compact(struct buf *b)
{
    if (b->start == 0) return;
    uint32_t n = b->end - b->start;
    if (n) memmove(b->data, b->data + b->start, n);
    b->start = 0;
    b->end = n;
}
