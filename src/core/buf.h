/* buf: fixed-size byte buffers from a per-worker free list.
 *
 * Every buffer is BUF_SIZE bytes. A connection takes buffers only while it
 * has bytes to hold and gives them back as soon as they are empty, so an idle
 * keep-alive connection holds none. The cache belongs to one worker thread and
 * is never touched by another, so it needs no lock. */
#ifndef USHER_CORE_BUF_H
#define USHER_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_SIZE 16384

struct buf {
    uint32_t start; /* first byte not yet consumed */
    uint32_t end;   /* one past the last byte held */
    union {
        struct buf *next_free; /* while in the cache */
        char data[BUF_SIZE];
    };
};

struct buf_cache {
    struct buf *free;
    uint32_t count; /* buffers in the free list */
    uint32_t max;   /* beyond this, released buffers go back to malloc */
};

/* Takes a buffer (start = end = 0) from the cache, or malloc. NULL on ENOMEM. */
struct buf *buf_get(struct buf_cache *c);
/* Gives b back to the cache. b may be NULL. */
void buf_put(struct buf_cache *c, struct buf *b);
/* Frees every cached buffer. */
void buf_cache_drain(struct buf_cache *c);

static inline uint32_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}
static inline uint32_t buf_room(const struct buf *b)
{
    return BUF_SIZE - b->end;
}
/* Moves the held bytes to the front so that buf_room() is as large as possible. */
void buf_compact(struct buf *b);

#endif
