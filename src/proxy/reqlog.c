/* reqlog: access log fields of one request. See reqlog.h. */
#include "proxy/reqlog.h"

#include <string.h>
#include <time.h>

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void reqlog_begin(struct buf **slot, struct buf_cache *bufs, const struct reqlog_head *f)
{
    if (!accesslog_enabled()) return;
    if (!*slot && !(*slot = buf_get(bufs))) return;
    struct reqlog_rec *r = reqlog_of(*slot);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->start_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    r->t0_us = now_us();
    r->http10 = f->http10;
    r->h2 = f->h2;
    r->bytes = 0;
    r->status = 0;
    const struct span fields[5] = {f->method, f->target, f->referer, f->user_agent, f->host};
    uint32_t off = sizeof(*r);
    for (int i = 0; i < 5; i++) {
        uint32_t n = fields[i].len > 2048 ? 2048 : fields[i].len;
        if (n) memcpy((*slot)->data + off, fields[i].p, n);
        r->off[i] = off;
        r->len[i] = n;
        off += n;
    }
}

void reqlog_end(struct buf **slot, struct buf_cache *bufs, struct accesslog_buf *alog,
                const char *client_ip, const char *backend)
{
    if (!*slot) return;
    const struct reqlog_rec *r = reqlog_of(*slot);
    const char *d = (*slot)->data;
    uint64_t t = now_us();
    struct accesslog_entry e = {
        .client_ip = client_ip,
        .start_ms = r->start_ms,
        .duration_us = t > r->t0_us ? t - r->t0_us : 0,
        .method = d + r->off[0],
        .method_len = r->len[0],
        .target = d + r->off[1],
        .target_len = r->len[1],
        .referer = d + r->off[2],
        .referer_len = r->len[2],
        .user_agent = d + r->off[3],
        .user_agent_len = r->len[3],
        .host = d + r->off[4],
        .host_len = r->len[4],
        .backend = backend,
        .http10 = r->http10,
        .h2 = r->h2,
        .status = r->status ? r->status : 499, /* nginx's "client closed" */
        .bytes = r->bytes,
    };
    accesslog_add(alog, &e);
    buf_put(bufs, *slot);
    *slot = NULL;
}
