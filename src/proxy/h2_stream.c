/* h2_stream: one HTTP/2 request stream as an exchange, its request side and
 * its life (the response side is h2_response.c). See h2.h.
 *
 * The request: its fields go through http/h2map.c into the stream's area
 * buffer; once the block ends the head is rewritten for the HTTP/1.1
 * backend by exchange_begin, exactly as an HTTP/1 request's. Its body
 * arrives in DATA frames into body[] (chunked for the backend when the
 * request has no content-length) and is given back to the flow-control
 * window (nghttp2_session_consume) only as the backend takes it.
 *
 * The response: its head becomes a HEADERS frame (RFC 9113 8.3.2, without
 * connection-specific fields), its body (de-chunked by the exchange) a data
 * source that reads from the exchange's uin; while the client's window is
 * closed, uin stays full and the backend is not read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/log.h"
#include "proxy/h1_backend.h"
#include "proxy/h2.h"
#include "proxy/reqlog.h"

#define CHUNK_HDR 6 /* "%04x\r\n": a chunk is at most BUF_SIZE (0x4000) bytes */

struct h2_stream *h2_stream_new(struct h2_conn *hc, int32_t id)
{
    struct session *s = hc->s;
    struct proxy_worker *px = px_of(s);
    struct h2_stream *st = px->free_streams;
    if (st)
        px->free_streams = st->next;
    else if (!(st = malloc(sizeof(*st))))
        return NULL;
    memset(st, 0, offsetof(struct h2_stream, body));
    memset(&st->map, 0, sizeof(*st) - offsetof(struct h2_stream, map));
    st->x.ops = &h2_exchange_ops;
    st->x.px = px;
    st->x.gen = s->x.gen;
    st->x.pool = s->x.pool;
    memcpy(st->x.client_ip, s->x.client_ip, sizeof(st->x.client_ip));
    st->hc = hc;
    st->id = id;
    uint32_t w = cfg_st(st)->h2_initial_window_size;
    st->max_body =
        (uint8_t)(H2_BODY_BUFS(w) > H2_BODY_BUFS_MAX ? H2_BODY_BUFS_MAX : H2_BODY_BUFS(w));
    st->body_at = st->client_at = px->loop->now;
    st->next = hc->streams;
    if (hc->streams) hc->streams->prev = st;
    hc->streams = st;
    hc->nstreams++;
    hc->total++;
    return st;
}

/* ---- the request head ---------------------------------------------------------- */

int h2_stream_header(struct h2_stream *st, const nghttp2_nv *nv)
{
    /* RFC 9113 6.5.2: name + value + 32 per field; counted whatever is kept,
     * so that no header block can make usher store or look at more */
    st->header_bytes += (uint32_t)(nv->namelen + nv->valuelen + 32);
    if (st->header_bytes > cfg_st(st)->h2_max_header_list_size) {
        st->too_big = 1;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM; the rest is skipped */
    }
    if (st->trailers && (st->finished || !st->chunked || (st->area && !st->map.trailers)))
        return 0; /* trailers nobody will read (the area may hold usher's own answer) */
    if (!st->area) {
        if (!(st->area = buf_get(&px_st(st)->bufs))) return NGHTTP2_ERR_CALLBACK_FAILURE;
        h2map_init(&st->map, st->area->data, BUF_SIZE, cfg_st(st)->max_headers, st->trailers);
        st->map.extended_connect = 1; /* SETTINGS_ENABLE_CONNECT_PROTOCOL is sent */
    }
    h2map_field(&st->map, (const char *)nv->name, nv->namelen, (const char *)nv->value,
                nv->valuelen);
    return 0;
}

static void log_begin(struct h2_stream *st, const struct h1_head *h)
{
    if (!accesslog_enabled()) return;
    struct reqlog_head f = {.method = h->method, .target = h->target, .h2 = 1};
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct span n = h->h[i].name;
        if (n.len == 7 && !strncasecmp(n.p, "referer", 7)) f.referer = h->h[i].value;
        if (n.len == 10 && !strncasecmp(n.p, "user-agent", 10)) f.user_agent = h->h[i].value;
    }
    if (h->host_i >= 0) f.host = h->h[h->host_i].value;
    reqlog_begin(&st->logrec, &px_st(st)->bufs, &f);
}

#define reset h2_stream_reset

/* A request usher refuses before anything went to a backend. */
static void refuse(struct h2_stream *st, int status, const char *msg)
{
    st->x.ops->respond(&st->x, status, msg);
}

/* An extended CONNECT (RFC 8441) goes to the backend as an HTTP/1.1
 * upgrade; for WebSocket, that needs the Sec-WebSocket-Key that HTTP/2
 * leaves out (RFC 8441 5), made here and written into the area after the
 * fields (h points into it). The client waits for the backend's 101 as for
 * a 100 Continue: no body clock until then. 0 when it does not fit. */
static int websocket_key(struct h2_stream *st, struct h1_head *h)
{
    st->expect_wait = 1;
    struct span proto = h->h[h->upgrade_i].value;
    if (proto.len != 9 || strncasecmp(proto.p, "websocket", 9)) return 1;
    if (st->map.used + 24 > BUF_SIZE || h->nheaders >= H1_MAX_HEADERS) return 0;
    uint8_t raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) return 0;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *k = st->area->data + st->map.used;
    for (int i = 0, o = 0; i < 18; i += 3, o += 4) {
        uint32_t v = (uint32_t)raw[i] << 16 | (i + 1 < 16 ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < 16 ? raw[i + 2] : 0);
        k[o] = b64[v >> 18 & 63];
        k[o + 1] = b64[v >> 12 & 63];
        k[o + 2] = i + 1 < 16 ? b64[v >> 6 & 63] : '=';
        k[o + 3] = i + 2 < 16 ? b64[v & 63] : '=';
    }
    st->map.used += 24;
    h->h[h->nheaders++] = (struct h1_header){{"Sec-WebSocket-Key", 17}, {k, 24}, 0};
    return 1;
}

/* Appends the trailer fields of the client to the chunked body. */
static void body_trailers(struct h2_stream *st);

void h2_stream_headers_done(struct h2_stream *st, int end_stream)
{
    if (st->trailers) {
        /* RFC 9113 8.1: a trailer section ends the stream */
        int ours = st->area && st->map.trailers;
        if ((ours && st->map.err) || !end_stream) {
            h2_glitch(st->hc, "malformed trailers");
            reset(st, NGHTTP2_PROTOCOL_ERROR);
            return;
        }
        if (ours) body_trailers(st);
        h2_stream_body_end(st);
        return;
    }
    struct session *s = st->hc->s;
    struct h1_head *h = &px_st(st)->scratch;
    const struct config *c = cfg_st(st);
    h->max_headers = c->max_headers;
    if (!st->area) {
        h2_glitch(st->hc, "empty header block");
        reset(st, NGHTTP2_PROTOCOL_ERROR);
        st->refused = 1;
        return;
    }
    int err = h2map_finish(&st->map, end_stream, h);
    st->req_done = end_stream != 0;
    st->trailers = 1; /* any later block is the trailer section */
    if (err == H2MAP_MALFORMED) {
        /* RFC 9113 8.1.1: malformed is a stream error */
        log_debug("client %s: stream %d: malformed request (%s)", st->x.client_ip, st->id,
                  st->map.why);
        h2_glitch(st->hc, "malformed request");
        reset(st, NGHTTP2_PROTOCOL_ERROR);
        st->refused = 1;
        return;
    }
    st->began = 1;
    if (err == H2MAP_TOO_LARGE) {
        refuse(st, 431, "Request header fields too large");
        return;
    }
    log_begin(st, h);
    if (h->method_id == HTTP_CONNECT) {
        refuse(st, 405, "Method not allowed: usher is not a forward proxy");
        return;
    }
    if (c->max_body_size && h->has_cl && h->content_length > c->max_body_size) {
        refuse(st, 413, "Payload too large: the request body is larger than the limit");
        return;
    }
    struct h1_request_rewrite conn;
    conn.https = client_tls(s);
    conn.nset = 0;
    if (s->http_extras) {
        const struct listener_conf *l = listener_of(s);
        if (l->redirect_https && !conn.https) {
            char loc[2048];
            long n = h1_https_location(h, l->https_port, loc, sizeof(loc));
            if (n < 0) {
                refuse(st, n == -EINVAL ? 400 : 414,
                       n == -EINVAL ? "Bad request: no Host to redirect to https"
                                    : "URI too long to redirect to https");
                return;
            }
            h2_stream_redirect(st, loc, (size_t)n);
            return;
        }
        session_peer_headers(s, &conn);
    }
    st->chunked = h->chunked;
    st->expect_wait = h->expect_continue;
    if (h->upgrade_i >= 0 && !websocket_key(st, h)) {
        refuse(st, 431, "Request header fields too large");
        return;
    }
    st->x.pool = session_route(s, h);
    int e = exchange_begin(&st->x, st->x.pool, h, &conn);
    if (e == -ENOMEM) {
        refuse(st, 503, "Service unavailable: usher is out of memory");
        return;
    }
    if (e < 0) {
        refuse(st, 431, "Request header fields too large");
        return;
    }
    /* the fields are in req_head now: the area is not needed any more */
    buf_put(&px_st(st)->bufs, st->area);
    st->area = NULL;
    st->body_at = px_st(st)->loop->now;
    exchange_start(&st->x, h);
}

/* ---- the request body ------------------------------------------------------------ */

static struct buf *body_last(struct h2_stream *st)
{
    return st->nbody ? st->body[st->nbody - 1] : NULL;
}

/* Closes the open chunk: its size line, then CRLF after its data. */
static void seal(struct h2_stream *st)
{
    if (!st->open) return;
    struct buf *b = body_last(st);
    uint32_t n = b->end - st->open_at - CHUNK_HDR;
    st->open = 0;
    if (n == 0) {
        b->end = st->open_at; /* "0000" would be the last chunk */
        return;
    }
    char hdr[16];
    snprintf(hdr, sizeof(hdr), "%04x\r\n", n & 0xffff); /* n <= BUF_SIZE */
    memcpy(b->data + st->open_at, hdr, CHUNK_HDR);
    memcpy(b->data + b->end, "\r\n", 2);
    b->end += 2;
}

/* A buffer with room for need bytes at its end (and, chunked, for the CRLF
 * that closes the open chunk); NULL when the stream holds all it may. */
static struct buf *body_room(struct h2_stream *st, uint32_t need)
{
    struct buf *b = body_last(st);
    if (b && buf_room(b) >= need + (st->open ? 2 : 0)) return b;
    seal(st);
    if (b && buf_room(b) >= need) return b;
    if (st->nbody >= st->max_body) return NULL;
    if (!(b = buf_get(&px_st(st)->bufs))) return NULL;
    st->body[st->nbody++] = b;
    if (st->nbody > 1 && st->x.req_head) st->x.body_released = 1; /* too much to keep for a retry */
    return b;
}

/* The buffer the next data byte goes to: with room for at least one, and
 * chunked, in an open chunk whose closing CRLF still fits (a new chunk
 * needs its size line too). NULL when the stream holds all it may. */
static struct buf *data_room(struct h2_stream *st)
{
    struct buf *b = body_last(st);
    uint32_t room = b ? buf_room(b) : 0;
    int fits = !st->chunked ? room >= 1 : st->open ? room >= 3 : room >= CHUNK_HDR + 3;
    if (!fits) {
        seal(st); /* an open chunk's CRLF always has its 2 bytes */
        if (st->nbody >= st->max_body || !(b = buf_get(&px_st(st)->bufs))) return NULL;
        st->body[st->nbody++] = b;
        if (st->nbody > 1 && st->x.req_head) st->x.body_released = 1; /* too much to keep */
    }
    if (st->chunked && !st->open) {
        st->open = 1;
        st->open_at = b->end;
        b->end += CHUNK_HDR;
    }
    return b;
}

/* Framing bytes (not payload) at the end of the body. */
static int body_put(struct h2_stream *st, const char *p, uint32_t n)
{
    struct buf *b = body_room(st, n);
    if (!b) return -1;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

/* The request can go on no more: the backend connection closes (it saw
 * an unfinished request), and st is answered with status or reset. */
static void body_refused(struct h2_stream *st, int status, const char *msg, uint32_t code)
{
    exchange_abandon(&st->x);
    st->x.req_abandoned = 1;
    if (status && !st->head_sent)
        refuse(st, status, msg);
    else
        reset(st, code);
    st->finished = 1;
}

int h2_stream_data(struct h2_stream *st, const uint8_t *p, size_t n)
{
    struct h2_conn *hc = st->hc;
    if (st->finished || !st->began || st->x.rs == RS_LOCAL || st->x.req_abandoned) {
        /* nobody will read it: the window is given back at once */
        nghttp2_session_consume(hc->ng, st->id, n);
        return 0;
    }
    const struct config *c = cfg_st(st);
    st->body_bytes += n;
    st->unconsumed += n;
    st->body_at = px_st(st)->loop->now;
    st->expect_wait = 0;
    if (c->max_body_size && st->body_bytes > c->max_body_size && !st->x.upgrade_req) {
        log_debug("client %s: request body over the limit of %llu bytes", st->x.client_ip,
                  (unsigned long long)c->max_body_size);
        body_refused(st, 413, "Payload too large: the request body is larger than the limit",
                     NGHTTP2_CANCEL);
        return 0;
    }
    while (n) {
        struct buf *b = data_room(st);
        if (!b) {
            /* more than the window allowed: nghttp2 would have refused it,
             * so this is usher out of buffers */
            body_refused(st, 503, "Service unavailable: usher is out of memory",
                         NGHTTP2_INTERNAL_ERROR);
            return 0;
        }
        uint32_t room = buf_room(b) - (st->chunked ? 2 : 0); /* >= 1 */
        uint32_t k = n < room ? (uint32_t)n : room;
        memcpy(b->data + b->end, p, k);
        b->end += k;
        p += k;
        n -= k;
    }
    return 0;
}

void h2_stream_body_end(struct h2_stream *st)
{
    st->req_done = 1;
    if (!st->began || st->finished || !st->chunked || st->framed_end) return;
    seal(st);
    if (body_put(st, "0\r\n\r\n", 5) < 0) {
        body_refused(st, 503, "Service unavailable: usher is out of memory",
                     NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->framed_end = 1;
}

static void body_trailers(struct h2_stream *st)
{
    st->req_done = 1;
    if (!st->began || st->finished || !st->chunked || st->framed_end) return;
    /* RFC 9112 7.1.2: the trailer section after the last chunk */
    seal(st);
    int err = body_put(st, "0\r\n", 3);
    struct span n, v;
    for (uint32_t i = 0; !err && h2map_get(&st->map, i, &n, &v); i++) {
        /* RFC 9110 6.5.1: no framing, routing or connection fields in trailers */
        if (!h2map_response_field_ok(n) || (n.len == 14 && !memcmp(n.p, "content-length", 14)) ||
            (n.len == 4 && !memcmp(n.p, "host", 4)))
            continue;
        err = body_put(st, n.p, n.len) || body_put(st, ": ", 2) || body_put(st, v.p, v.len) ||
              body_put(st, "\r\n", 2);
    }
    if (err || body_put(st, "\r\n", 2) < 0) {
        body_refused(st, 431, "Request header fields too large", NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->framed_end = 1;
}

/* Payload bytes among n framed bytes at p (the chunked body usher wrote). */
static uint32_t count_payload(struct h2_chunk_cursor *c, const char *p, uint32_t n)
{
    uint32_t payload = 0;
    for (uint32_t i = 0; i < n;) {
        switch (c->state) {
        case 0: /* "%04x\r\n", or "0\r\n" for the last chunk */
            if (p[i] == '\n') {
                c->state = c->left ? 1 : 3;
            } else if (p[i] != '\r') {
                char d = p[i];
                c->left = c->left * 16 + (uint32_t)(d <= '9' ? d - '0' : (d | 32) - 'a' + 10);
            }
            i++;
            break;
        case 1: {
            uint32_t k = n - i < c->left ? n - i : c->left;
            payload += k;
            c->left -= k;
            i += k;
            if (!c->left) c->state = 2, c->crlf = 0;
            break;
        }
        case 2:
            if (++c->crlf == 2) c->state = 0, c->left = 0;
            i++;
            break;
        default: i = n; break; /* trailers and the end */
        }
    }
    return payload;
}

static void body_drop_sent(struct h2_stream *st);

static int x_body_ready(struct exchange *x, struct iovec *iov)
{
    struct h2_stream *st = stream_of(x);
    body_drop_sent(st); /* body[0] went whole and the next one came since */
    if (!st->nbody) return 0;
    seal(st); /* what came so far goes as one chunk */
    struct buf *b = st->body[0];
    if (st->sent >= b->end) return 0;
    *iov = (struct iovec){b->data + st->sent, b->end - st->sent};
    return 1;
}

/* Forgets what went up once no retry can need it (or it must make room). */
static void body_drop_sent(struct h2_stream *st)
{
    if (st->x.req_head && st->nbody == 1) return; /* kept for a retry */
    while (st->nbody && st->sent >= st->body[0]->end) {
        if (st->x.req_head) st->x.body_released = 1;
        buf_put(&px_st(st)->bufs, st->body[0]);
        memmove(st->body, st->body + 1, (size_t)(st->nbody - 1) * sizeof(st->body[0]));
        st->nbody--;
        st->sent = 0;
    }
}

static void x_body_sent(struct exchange *x, size_t n)
{
    struct h2_stream *st = stream_of(x);
    st->body_at = px_st(st)->loop->now;
    if (!n || !st->nbody) return;
    struct buf *b = st->body[0];
    uint32_t payload =
        st->chunked ? count_payload(&st->cc, b->data + st->sent, (uint32_t)n) : (uint32_t)n;
    st->sent += (uint32_t)n;
    st->pos += payload;
    /* the window opens by what the backend took (once per byte, whatever the retries) */
    if (st->pos > st->consumed) {
        uint64_t give = st->pos - st->consumed;
        if (give > st->unconsumed) give = st->unconsumed;
        nghttp2_session_consume(st->hc->ng, st->id, give);
        st->unconsumed -= give;
        st->consumed = st->pos;
    }
    body_drop_sent(st);
}

static void x_body_rewind(struct exchange *x)
{
    struct h2_stream *st = stream_of(x);
    st->sent = 0;
    st->pos = 0;
    st->cc = (struct h2_chunk_cursor){0};
}

static void x_body_release(struct exchange *x)
{
    body_drop_sent(stream_of(x));
}

static void x_abort(struct exchange *x)
{
    session_close(stream_of(x)->hc->s);
}

static void x_wake(struct exchange *x)
{
    struct h2_stream *st = stream_of(x);
    if (!st->hc->closed && !st->hc->broken && !st->closed) h2_wake(st);
}

const struct exchange_ops h2_exchange_ops = {
    .body_ready = x_body_ready,
    .body_sent = x_body_sent,
    .body_rewind = x_body_rewind,
    .body_release = x_body_release,
    .response_head = h2_response_head,
    .respond = h2_respond,
    .abort = x_abort,
    .wake = x_wake,
};

/* ---- driving, timing, the end ---------------------------------------------------- */

/* After a 101: the backend's bytes into uin (the data source takes them
 * as the client's window allows), the client's END_STREAM as a FIN. */
static int h2_tunnel_step(struct h2_stream *st)
{
    struct exchange *x = &st->x;
    struct upconn *u = x->up;
    int p = 0;
    if (st->req_done && !st->tun_shut && (!st->nbody || st->sent >= st->body[st->nbody - 1]->end)) {
        conn_shutdown(&u->conn);
        st->tun_shut = 1;
        p = 1;
    }
    if (!u->conn.readable || x->up_eof) return p;
    struct buf *b = x->uin;
    if (!b && !(b = x->uin = buf_get(&px_st(st)->bufs))) return p;
    if (buf_room(b) == 0) {
        if (!b->start) return p; /* full: the client has not taken it yet */
        buf_compact(b);
    }
    ssize_t n = conn_read(&u->conn, b->data + b->end, buf_room(b));
    if (n > 0) {
        b->end += (uint32_t)n;
        x->up_at = px_st(st)->loop->now;
        return 1;
    }
    if (n == -EAGAIN) return p;
    if (n != -EINTR) x->up_eof = 1;
    return 1;
}

int h2_stream_step(struct h2_stream *st)
{
    struct exchange *x = &st->x;
    if (st->closed) return 0;
    int p = 0;
    if (x->up) {
        p |= h1_backend_io(x);
        if (x->up && x->rs == RS_TUNNEL)
            p |= h2_tunnel_step(st);
        else if (x->up)
            p |= h1_backend_response(x);
    }
    if (st->deferred && x->rs == RS_TUNNEL && ((x->uin && buf_len(x->uin)) || x->up_eof)) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->hc->ng, st->id);
        p = 1;
    }
    if (st->head_sent && x->rs != RS_LOCAL && st->no_body && x->rs == RS_DONE && !st->finished) {
        h2_response_done(st);
        p = 1;
    }
    if (st->deferred && x->rs != RS_TUNNEL &&
        ((x->uin && x->uin_parsed > x->uin->start) || x->rs == RS_DONE)) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->hc->ng, st->id);
        p = 1;
    }
    return p;
}

/* Whether usher waits on the client's request body (as h1_client.c's). */
static int waits_for_body(const struct h2_stream *st)
{
    const struct exchange *x = &st->x;
    return !st->req_done && (x->rs == RS_HEAD || x->rs == RS_BODY) && !st->expect_wait &&
           !x->req_abandoned && (!x->req_head || x->req_head->start == x->req_head->end) &&
           (!st->nbody || st->sent >= st->body[st->nbody - 1]->end);
}

/* Whether the response waits for the client (its window, or the socket). */
static int waits_for_client(const struct h2_stream *st)
{
    const struct exchange *x = &st->x;
    return (x->rs == RS_BODY || x->rs == RS_DONE) && x->uin && x->uin_parsed > x->uin->start;
}

uint64_t h2_stream_due(const struct h2_stream *st)
{
    const struct exchange *x = &st->x;
    if (st->closed || st->finished) return UINT64_MAX;
    if (!st->began) return st->body_at + cfg_st(st)->client_header_ms;
    if (x->rs == RS_TUNNEL) {
        uint64_t last = st->body_at > st->client_at ? st->body_at : st->client_at;
        if (x->up_at > last) last = x->up_at;
        return last + cfg_st(st)->tunnel_idle_ms;
    }
    if (waits_for_client(st)) return st->client_at + cfg_st(st)->client_idle_ms;
    if (waits_for_body(st)) return st->body_at + cfg_st(st)->client_body_ms;
    if (x->up && (x->rs == RS_CONNECTING || x->rs == RS_HEAD || x->rs == RS_BODY))
        return exchange_due(x);
    return UINT64_MAX;
}

void h2_stream_timeout(struct h2_stream *st)
{
    struct exchange *x = &st->x;
    if (!st->began) {
        reset(st, NGHTTP2_CANCEL);
        st->finished = 1;
    } else if (x->rs == RS_TUNNEL) {
        body_refused(st, 0, NULL, NGHTTP2_CANCEL); /* timeouts.tunnel_idle */
    } else if (waits_for_client(st)) {
        /* the client does not take the response (its window stays closed) */
        log_debug("client %s: stream %d: no window for the response within %u ms", x->client_ip,
                  st->id, cfg_st(st)->client_idle_ms);
        body_refused(st, 0, NULL, NGHTTP2_CANCEL);
    } else if (waits_for_body(st)) {
        log_debug("client %s: stream %d: no request body byte within %u ms", x->client_ip, st->id,
                  cfg_st(st)->client_body_ms);
        body_refused(st, 408, "Request timeout: the request body stopped arriving", NGHTTP2_CANCEL);
    } else if (x->rs == RS_CONNECTING || x->rs == RS_HEAD) {
        exchange_timeout(x);
    } else if (x->rs == RS_BODY) {
        log_warn("backend %s: response body stalled for %u ms", x->be->conf->url,
                 x->pool->cfg->response_ms);
        exchange_backend_failed(x, "no response in time");
        x->ops->respond(x, 504, "Gateway timeout: the backend did not answer in time");
    }
}

void h2_stream_release(struct h2_stream *st)
{
    struct proxy_worker *px = px_st(st);
    struct exchange *x = &st->x;
    if (st->began || st->logrec)
        reqlog_end(&st->logrec, &px->bufs, &px->alog, x->client_ip,
                   x->be ? x->be->conf->url : NULL);
    if (x->up) exchange_abandon(x);
    buf_put(&px->bufs, st->area);
    st->area = NULL;
    for (uint8_t i = 0; i < st->nbody; i++) buf_put(&px->bufs, st->body[i]);
    st->nbody = 0;
    buf_put(&px->bufs, x->req_head);
    x->req_head = NULL;
    buf_put(&px->bufs, x->uin);
    x->uin = NULL;
    /* what the client sent that nobody took still counts in the connection's window */
    if (st->unconsumed && !st->hc->closed)
        nghttp2_session_consume_connection(st->hc->ng, st->unconsumed);
    st->unconsumed = 0;
    st->finished = 1;
}

void h2_stream_closed(struct h2_stream *st, uint32_t error_code)
{
    st->closed = 1;
    h2_stream_release(st);
    h2_stream_gone(st);
}

void h2_stream_sent_end(struct h2_stream *st)
{
    if (st->end_rst && !st->closed) {
        st->end_rst = 0;
        reset(st, NGHTTP2_NO_ERROR);
    }
}
