/* h2_response: the response side of an HTTP/2 stream (see h2.h): the
 * backend's head as a HEADERS frame (RFC 9113 8.3.2, without
 * connection-specific fields), its body as a data source reading the
 * exchange's uin (a chunked body taken apart, its trailers as a trailing
 * HEADERS frame), the 200 of a WebSocket tunnel, and usher's own answers. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/h2.h"
#include "proxy/reqlog.h"

/* ---- the response ----------------------------------------------------------------- */

/* The response went down whole: the backend connection goes back (or
 * closes when the request body never ended). */
void h2_response_done(struct h2_stream *st)
{
    if (st->finished) return;
    st->finished = 1;
    if (!st->req_done) {
        /* RFC 9113 8.1: a complete response ends the stream; the rest of
         * the request body is refused with RST_STREAM NO_ERROR */
        st->x.req_abandoned = 1;
        st->end_rst = 1;
    }
    exchange_finish(&st->x);
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud);

#define MAX_NV (H1_MAX_HEADERS + 8)

/* The response fields being built (names in lower case in names[]). */
struct nvs {
    nghttp2_nv nv[MAX_NV];
    size_t n;
    char names[BUF_SIZE];
    size_t used;
    char status[4];
};

static void nv_add(struct nvs *v, struct span name, struct span value, int lower)
{
    if (v->n >= MAX_NV) return;
    const char *np = name.p;
    if (lower) {
        if (v->used + name.len > sizeof(v->names)) return;
        h2map_lower(v->names + v->used, name);
        np = v->names + v->used;
        v->used += name.len;
    }
    v->nv[v->n++] =
        (nghttp2_nv){(uint8_t *)np, (uint8_t *)value.p, name.len, value.len, NGHTTP2_NV_FLAG_NONE};
}

static void nv_status(struct nvs *v, int status)
{
    v->n = v->used = 0;
    snprintf(v->status, sizeof(v->status), "%03d", status);
    nv_add(v, (struct span){":status", 7}, (struct span){v->status, 3}, 0);
}

/* A "Name: value" line (a balancer's Set-Cookie, HSTS), unless if_absent
 * and the response has that field. */
static void nv_line(struct nvs *v, struct span line, int if_absent, const struct h1_head *h)
{
    const char *colon = memchr(line.p, ':', line.len);
    if (!colon) return;
    struct span name = {line.p, (uint32_t)(colon - line.p)};
    struct span value = {colon + 1, (uint32_t)(line.len - name.len - 1)};
    while (value.len && value.p[0] == ' ') value.p++, value.len--;
    if (if_absent && h)
        for (uint32_t i = 0; i < h->nheaders; i++)
            if (!h->h[i].drop && h->h[i].name.len == name.len &&
                !strncasecmp(h->h[i].name.p, name.p, name.len))
                return;
    nv_add(v, name, value, 1);
}

/* Keeps a byte of the backend's trailer section (what does not fit is dropped). */
static void trailer_byte(struct h2_stream *st, char c)
{
    if (!st->area && !(st->area = buf_get(&px_st(st)->bufs))) return;
    if (st->trailer_len < BUF_SIZE) st->area->data[st->trailer_len++] = c;
}

/* Copies the data bytes of the chunked body in uin[start, uin_parsed) to
 * out (at most len), skipping the framing and keeping the trailer lines. */
static size_t unchunk(struct h2_stream *st, struct buf *b, uint32_t end, uint8_t *out, size_t len)
{
    struct h2_unchunk *u = &st->uc;
    size_t n = 0;
    while (b->start < end && n < len) {
        char c = b->data[b->start];
        switch (u->state) {
        case 0: /* chunk-size [ext] CRLF */
            b->start++;
            if (c == '\n') {
                u->state = u->left ? 1 : 3;
                u->ext = u->line = 0;
            } else if (!u->ext &&
                       ((c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'f'))) {
                u->left = u->left * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
            } else {
                u->ext = 1;
            }
            break;
        case 1: {
            size_t k = end - b->start;
            if (k > u->left) k = u->left;
            if (k > len - n) k = len - n;
            memcpy(out + n, b->data + b->start, k);
            b->start += (uint32_t)k;
            n += k;
            u->left -= (uint32_t)k;
            if (!u->left) u->state = 2;
            break;
        }
        case 2: /* the CRLF after the data */
            b->start++;
            if (c == '\n') u->state = 0, u->left = 0;
            break;
        case 3: /* trailer lines, then an empty line */
            b->start++;
            if (c == '\n') {
                if (!u->line) {
                    u->state = 4;
                    break;
                }
                trailer_byte(st, '\n');
                u->line = 0;
            } else if (c != '\r') {
                trailer_byte(st, c);
                u->line = 1;
            }
            break;
        default: b->start = end; break;
        }
    }
    return n;
}

/* Sends the backend's trailer fields (RFC 9113 8.1: a HEADERS frame that
 * ends the stream). Returns whether there were any. */
static int send_trailers(struct h2_stream *st)
{
    if (!st->trailer_len) return 0;
    static __thread struct nvs v;
    v.n = v.used = 0;
    const char *p = st->area->data, *end = p + st->trailer_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        struct span line = {p, (uint32_t)(nl - p)};
        const char *colon = memchr(p, ':', line.len);
        if (colon) {
            struct span name = {p, (uint32_t)(colon - p)};
            /* RFC 9110 6.5.1: no framing, routing or connection fields */
            if (h2map_response_field_ok(name) &&
                !(name.len == 14 && !strncasecmp(name.p, "content-length", 14)))
                nv_line(&v, line, 0, NULL);
        }
        p = nl + 1;
    }
    for (size_t i = 0; i < v.n; i++) /* values without trailing whitespace */
        while (v.nv[i].valuelen && (v.nv[i].value[v.nv[i].valuelen - 1] == ' ' ||
                                    v.nv[i].value[v.nv[i].valuelen - 1] == '\t'))
            v.nv[i].valuelen--;
    if (!v.n) return 0;
    return nghttp2_submit_trailer(st->hc->ng, st->id, v.nv, v.n) == 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct h2_stream *st = src->ptr;
    struct exchange *x = &st->x;
    if (x->rs == RS_LOCAL) {
        size_t n = (size_t)(st->local_len - st->local_off);
        if (n > len) n = len;
        if (n) memcpy(out, st->area->data + st->local_off, n);
        st->local_off += (uint16_t)n;
        if (st->local_off == st->local_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    struct buf *b = x->uin;
    if (x->rs == RS_TUNNEL) {
        /* the backend's bytes as they come; its FIN ends the stream */
        size_t n = b ? buf_len(b) : 0;
        if (n > len) n = len;
        if (n) {
            memcpy(out, b->data + b->start, n);
            b->start += (uint32_t)n;
            if (b->start == b->end) b->start = b->end = 0;
            reqlog_bytes(st->logrec, n);
            st->client_at = px_st(st)->loop->now;
            return (ssize_t)n;
        }
        if (!x->up_eof) {
            st->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        exchange_release(x, 0);
        st->finished = 1;
        if (!st->req_done) st->end_rst = 1;
        return 0;
    }
    uint32_t avail = b && (x->rs == RS_BODY || x->rs == RS_DONE) ? x->uin_parsed - b->start : 0;
    size_t n = 0;
    if (avail) {
        if (st->res_chunked) {
            n = unchunk(st, b, x->uin_parsed, out, len);
        } else {
            n = avail < len ? avail : len;
            memcpy(out, b->data + b->start, n);
            b->start += (uint32_t)n;
        }
        reqlog_bytes(st->logrec, n);
        st->client_at = px_st(st)->loop->now;
        if (b->start == b->end) {
            b->start = b->end = 0;
            x->uin_parsed = 0;
        }
    }
    if (x->rs != RS_DONE || (b && x->uin_parsed > b->start)) {
        if (n) return (ssize_t)n;
        st->deferred = 1; /* nothing yet (or only framing) */
        return NGHTTP2_ERR_DEFERRED;
    }
    if (x->truncated) {
        /* the backend broke off: the client must see the stream cut (RST_STREAM) */
        exchange_release(x, 0);
        st->finished = 1;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (send_trailers(st)) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    h2_response_done(st);
    return (ssize_t)n;
}

int h2_response_head(struct exchange *x, const struct h1_head *h, const struct h1_response_plan *p)
{
    struct h2_stream *st = stream_of(x);
    struct session *s = st->hc->s;
    static __thread struct nvs v;
    int upgrade = p->kind == H1_RES_UPGRADE;
    /* RFC 8441 5: the backend's 101 is a 200 on the stream, which becomes the tunnel */
    nv_status(&v, upgrade ? 200 : h->status);
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->h[i];
        if (hd->drop || !h2map_response_field_ok(hd->name)) continue;
        if (upgrade && hd->name.len == 20 && !strncasecmp(hd->name.p, "sec-websocket-accept", 20))
            continue;
        nv_add(&v, hd->name, hd->value, 1);
    }
    if (upgrade) {
        st->expect_wait = 0;
        st->body_at = px_st(st)->loop->now;
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
        if (nghttp2_submit_response(st->hc->ng, st->id, v.nv, v.n, &prd) < 0) return -1;
        st->head_sent = 1;
        reqlog_status(st->logrec, 101);
        return 0;
    }
    if (p->kind == H1_RES_INTERIM) {
        /* RFC 9113 8.1: interim responses are HEADERS frames before the final one */
        st->expect_wait = 0;
        st->body_at = px_st(st)->loop->now;
        return nghttp2_submit_headers(st->hc->ng, NGHTTP2_FLAG_NONE, st->id, NULL, v.nv, v.n,
                                      NULL) < 0
                   ? -1
                   : 0;
    }
    char extra[256];
    size_t n = exchange_extra_header(x, extra, sizeof(extra));
    if (n) nv_line(&v, (struct span){extra, (uint32_t)n}, 0, NULL);
    char hsts[H1_HSTS_MAX];
    if ((n = session_hsts(s, hsts, sizeof(hsts))))
        nv_line(&v, (struct span){hsts, (uint32_t)n}, 1, h);
    /* a chunked body is taken apart here (the trailers pass); a length or a
     * close ends by itself */
    x->dechunk = 0;
    st->res_chunked = p->body == BODY_CHUNKED;
    st->uc = (struct h2_unchunk){0};
    st->trailer_len = 0;
    st->no_body = h->complete;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    if (nghttp2_submit_response(st->hc->ng, st->id, v.nv, v.n, h->complete ? NULL : &prd) < 0)
        return -1;
    st->head_sent = 1;
    reqlog_status(st->logrec, h->status);
    return 0;
}

/* usher answers itself: status, the fields in v after :status, body. */
static void local(struct h2_stream *st, struct nvs *v, int status, const char *body, size_t len)
{
    struct exchange *x = &st->x;
    exchange_release(x, 0);
    buf_put(&px_st(st)->bufs, x->req_head);
    x->req_head = NULL;
    buf_put(&px_st(st)->bufs, x->uin);
    x->uin = NULL;
    if (!st->area && !(st->area = buf_get(&px_st(st)->bufs))) {
        h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        st->finished = 1;
        return;
    }
    if (len > BUF_SIZE) len = BUF_SIZE;
    memcpy(st->area->data, body, len);
    st->local_len = (uint16_t)len;
    st->local_off = 0;
    char hsts[H1_HSTS_MAX];
    size_t n = session_hsts(st->hc->s, hsts, sizeof(hsts));
    if (n) nv_line(v, (struct span){hsts, (uint32_t)n}, 0, NULL);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    x->rs = RS_LOCAL;
    st->finished = st->head_sent = 1;
    if (!st->req_done) st->end_rst = 1;
    if (nghttp2_submit_response(st->hc->ng, st->id, v->nv, v->n, len ? &prd : NULL) < 0)
        h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
    if (st->logrec) {
        reqlog_of(st->logrec)->status = (uint16_t)status;
        reqlog_of(st->logrec)->bytes = len;
    }
}

void h2_respond(struct exchange *x, int status, const char *msg)
{
    struct h2_stream *st = stream_of(x);
    if (st->head_sent || st->closed) {
        /* part of the response went already: the stream is cut */
        exchange_release(x, 0);
        st->finished = 1;
        if (!st->closed) h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    static __thread struct nvs v;
    char body[256], clen[24];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
    if (blen < 0 || blen >= (int)sizeof(body)) blen = (int)sizeof(body) - 1;
    int cl = snprintf(clen, sizeof(clen), "%d", blen);
    nv_status(&v, status);
    nv_add(&v, (struct span){"content-type", 12}, (struct span){"application/json", 16}, 0);
    nv_add(&v, (struct span){"content-length", 14}, (struct span){clen, (uint32_t)cl}, 0);
    nv_add(&v, (struct span){"cache-control", 13}, (struct span){"no-store", 8}, 0);
    local(st, &v, status, body, (size_t)blen);
}

void h2_stream_redirect(struct h2_stream *st, const char *loc, size_t len)
{
    static __thread struct nvs v;
    nv_status(&v, 308);
    nv_add(&v, (struct span){"location", 8}, (struct span){loc, (uint32_t)len}, 0);
    nv_add(&v, (struct span){"content-length", 14}, (struct span){"0", 1}, 0);
    local(st, &v, 308, "", 0);
}
