/* h2_client: an HTTP/2 client connection (RFC 9113) over nghttp2. See h2.h.
 *
 * nghttp2 does the framing, HPACK, flow-control bookkeeping and the
 * protocol checks (with its HTTP messaging rules on: pseudo-headers,
 * content-length against DATA, connection-specific fields); usher feeds it
 * the bytes read (nghttp2_session_mem_recv) and writes what it produces
 * (nghttp2_session_mem_send), gathered into one conn_writev per round.
 *
 * The defences, each bounded per connection:
 *   - streams: SETTINGS_MAX_CONCURRENT_STREAMS (h2.max_concurrent_streams;
 *     nghttp2 refuses more with REFUSED_STREAM), h2.max_total_streams
 *     (then GOAWAY NO_ERROR and the streams in flight finish);
 *   - header blocks: h2.max_header_list_size decoded bytes (counted per
 *     field as RFC 9113 6.5.2 does; past it the stream is reset and the
 *     rest of the block is not looked at), h2.max_header_frames frames
 *     (nghttp2_option_set_max_continuations: the CONTINUATION flood);
 *   - the glitch budget (h2.glitches_threshold), as HAProxy's: a stream
 *     reset by the client before its response began (Rapid Reset), a
 *     malformed request, an invalid frame, and control frames (PING,
 *     SETTINGS, PRIORITY, empty DATA, WINDOW_UPDATE of less than 1 KiB)
 *     past CTL_PER_SECOND a second each count one; past the budget: GOAWAY
 *     ENHANCE_YOUR_CALM;
 *   - nghttp2's own limits as a second line: the RST_STREAM rate, SETTINGS
 *     entries, queued PING/SETTINGS acknowledgements;
 *   - work: one turn of a connection lasts at most TURN_US (a quarter of it
 *     past half the glitch budget); its input goes to nghttp2 in slices, a new
 *     request after the turn's time pauses nghttp2, and what is left waits in
 *     hc->in for the next turn (the resume timer), so that a flood cannot hold
 *     the worker's other connections;
 *   - output: while frames wait for the socket (the out buffer is full), the
 *     connection is not read, so that a client that does not read cannot
 *     make usher queue acknowledgements or responses without end. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proxy/h2.h"
#include "tls/tls.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define CTL_PER_SECOND 100 /* control frames a second before each counts as a glitch */
#define MAX_CONN_WINDOW (1U << 30)
/* The work one connection does in a loop turn before it yields to the other
 * connections of its worker (F6): a flood's frames cost nghttp2 (and usher)
 * far more per byte than a request does (an HPACK bomb ~1 ms a 16 KiB read,
 * a Rapid Reset a stream per 35 bytes), so the bound is on time, checked
 * between slices of the input; a connection past half its glitch budget gets
 * a quarter of it. */
#define TURN_US 1000
#define SLICE 4096           /* bytes given to nghttp2 at a time */
#define MAX_FREE_STREAMS 256 /* stream objects a worker keeps for reuse (~1 KiB each) */

static struct h2_conn *hc_of(void *ud)
{
    return ud;
}

static struct h2_stream *stream_get(struct h2_conn *hc, int32_t id)
{
    return nghttp2_session_get_stream_user_data(hc->ng, id);
}

void h2_glitch(struct h2_conn *hc, const char *what)
{
    const struct config *c = cfg(hc->s);
    if (!c->h2_glitches_threshold || hc->fatal) return;
    if (++hc->glitches < c->h2_glitches_threshold) return;
    log_warn("client %s: HTTP/2 connection ended: %u suspicious events (the last: %s)",
             hc->s->x.client_ip, hc->glitches, what);
    hc->fatal = 1;
    nghttp2_session_terminate_session(hc->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* A control frame: free up to CTL_PER_SECOND a second, then each is a glitch. */
static void control_frame(struct h2_conn *hc, const char *what)
{
    uint64_t sec = px_of(hc->s)->loop->now / 1000;
    if (sec != hc->ctl_second) {
        hc->ctl_second = sec;
        hc->ctl_in_second = 0;
    }
    if (++hc->ctl_in_second > CTL_PER_SECOND) h2_glitch(hc, what);
}

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Whether this turn's time is spent (h2_progress set turn_end). */
static int turn_spent(const struct h2_conn *hc)
{
    return clock_us() >= hc->turn_end;
}

/* nghttp2_session_mem_recv failed with err: nghttp2 queues no GOAWAY for
 * these (a flood, too many CONTINUATION frames, a broken header block, the
 * preface), so usher writes one itself after what is pending (RFC 9113
 * 5.4.1), and the connection closes. */
static void broken(struct h2_conn *hc, int err)
{
    log_debug("client %s: HTTP/2: %s", hc->s->x.client_ip, nghttp2_strerror(err));
    if (hc->broken) return;
    hc->broken = hc->fatal = 1;
    uint32_t code = err == NGHTTP2_ERR_FLOODED || err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                        ? NGHTTP2_ENHANCE_YOUR_CALM
                    : err == NGHTTP2_ERR_HEADER_COMP      ? NGHTTP2_COMPRESSION_ERROR
                    : err == NGHTTP2_ERR_CALLBACK_FAILURE ? NGHTTP2_INTERNAL_ERROR
                                                          : NGHTTP2_PROTOCOL_ERROR;
    uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(hc->ng);
    uint8_t *t = hc->tail;
    static const uint8_t head[9] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
    memcpy(t, head, 9);
    for (int i = 0; i < 4; i++) {
        t[9 + i] = (uint8_t)(last >> (24 - 8 * i));
        t[13 + i] = (uint8_t)(code >> (24 - 8 * i));
    }
    hc->tail_len = sizeof(hc->tail);
}

static void feed_or_hold(struct h2_conn *hc, const uint8_t *p, size_t n);

/* ---- nghttp2 callbacks ----------------------------------------------------------- */

/* RFC 9113 5.1.1: a stream id the client skipped is closed for good; a
 * HEADERS on it is a connection error. nghttp2 cannot tell a skipped id
 * from a closed stream (which a trailer may still race with, and which it
 * ignores), so the client's last few jumps are remembered here. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1) || hc->closed) return 0;
    int32_t id = hd->stream_id;
    if (id > hc->max_id) {
        int32_t expect = hc->max_id ? hc->max_id + 2 : 1;
        if (id != expect) {
            uint8_t k = hc->ngaps < 4 ? hc->ngaps++ : (uint8_t)(id % 4);
            hc->gap[k][0] = expect;
            hc->gap[k][1] = id - 2;
        }
        hc->max_id = id;
        return 0;
    }
    if (nghttp2_session_find_stream(ng, id)) return 0;
    for (uint8_t k = 0; k < hc->ngaps; k++)
        if (id >= hc->gap[k][0] && id <= hc->gap[k][1]) {
            h2_glitch(hc, "HEADERS on a skipped stream id");
            nghttp2_session_terminate_session(ng, NGHTTP2_PROTOCOL_ERROR);
            return 0;
        }
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if (hc->closed) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        struct h2_stream *st = stream_get(hc, f->hd.stream_id);
        if (st) st->header_bytes = 0; /* the trailer section: a new block */
        return 0;
    }
    struct h2_stream *st = h2_stream_new(hc, f->hd.stream_id);
    if (!st) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    uint32_t max = cfg(hc->s)->h2_max_total_streams;
    if (max && hc->total >= max && !hc->goaway) {
        /* this one is the last: GOAWAY names it, the streams in flight finish */
        nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR, NULL, 0);
        hc->goaway = hc->notice = 1;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if (hc->closed) return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct h2_stream *st = stream_get(hc, f->hd.stream_id);
    if (!st || st->closed) return 0;
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, namelen, valuelen, flags};
    int first = f->headers.cat == NGHTTP2_HCAT_REQUEST && !st->header_bytes;
    int r = h2_stream_header(st, &nv);
    /* a new request once the turn is spent: the rest waits for the next turn
     * (each request may cost a backend connect, and Rapid Reset sends one
     * every 35 bytes: a 4 KiB slice would be ~100 connects) */
    if (!r && first && turn_spent(hc)) return NGHTTP2_ERR_PAUSE;
    if (r == NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) {
        log_debug("client %s: stream %d: header block over h2.max_header_list_size",
                  hc->s->x.client_ip, st->id);
        h2_glitch(hc, "header block too large");
        st->refused = 1;
    }
    return r;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if (hc->closed) return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct h2_stream *st = f->hd.stream_id ? stream_get(hc, f->hd.stream_id) : NULL;
    int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (st && !st->closed && !st->refused) h2_stream_headers_done(st, end);
        break;
    case NGHTTP2_DATA:
        if (!end && f->hd.length == 0) control_frame(hc, "empty DATA");
        if (st && end) h2_stream_body_end(st);
        break;
    case NGHTTP2_RST_STREAM:
        /* Rapid Reset (CVE-2023-44487): a stream cancelled before its
         * response began cost a backend request for nothing */
        if (st && !st->head_sent) h2_glitch(hc, "stream reset before its response");
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) {
            if (hc->prefaced) control_frame(hc, "SETTINGS");
            hc->prefaced = 1;
        }
        break;
    case NGHTTP2_PING:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) control_frame(hc, "PING");
        break;
    case NGHTTP2_WINDOW_UPDATE:
        /* a client that reads a large response fast sends many, each
         * opening a useful amount; the flood is of tiny ones */
        if (f->window_update.window_size_increment < 1024) control_frame(hc, "WINDOW_UPDATE");
        break;
    case NGHTTP2_PRIORITY: control_frame(hc, "PRIORITY"); break;
    default: break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if (hc->closed) return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct h2_stream *st = stream_get(hc, id);
    if (!st || st->closed) {
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    return h2_stream_data(st, data, len);
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    struct h2_stream *st = stream_get(hc, id);
    if (!st || st->closed) return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    h2_stream_closed(st, code);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = stream_get(hc, f->hd.stream_id);
        if (st) h2_stream_sent_end(st);
    }
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    struct h2_conn *hc = hc_of(ud);
    log_debug("client %s: HTTP/2 invalid frame (type %u, stream %d): %s", hc->s->x.client_ip,
              f->hd.type, f->hd.stream_id, nghttp2_strerror(err));
    h2_glitch(hc, "invalid frame");
    return 0;
}

static nghttp2_session_callbacks *callbacks;

static void callbacks_once(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) return;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    callbacks = cb;
}

/* ---- starting ------------------------------------------------------------------------ */

static int start(struct session *s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, callbacks_once);
    if (!callbacks) return -ENOMEM;
    const struct config *c = cfg(s);
    struct h2_conn *hc = calloc(1, sizeof(*hc));
    if (!hc) return -ENOMEM;
    hc->s = s;
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt)) {
        free(hc);
        return -ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, c->h2_max_header_frames - 1);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    int r = nghttp2_session_server_new2(&hc->ng, callbacks, hc, opt);
    nghttp2_option_del(opt);
    if (r) {
        free(hc);
        return -ENOMEM;
    }
    nghttp2_settings_entry set[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->h2_max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->h2_initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->h2_max_header_list_size},
        /* RFC 8441: WebSocket over a stream, as an HTTP/1.1 upgrade to the backend */
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    uint64_t w = (uint64_t)c->h2_initial_window_size * c->h2_max_concurrent_streams;
    if (w > MAX_CONN_WINDOW) w = MAX_CONN_WINDOW;
    if (nghttp2_submit_settings(hc->ng, NGHTTP2_FLAG_NONE, set, sizeof(set) / sizeof(set[0])) ||
        (w > 65535 &&
         nghttp2_session_set_local_window_size(hc->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)w))) {
        nghttp2_session_del(hc->ng);
        free(hc);
        return -ENOMEM;
    }
    hc->idle_since = px_of(s)->loop->now;
    s->h2 = hc;
    return 0;
}

int h2_maybe_start(struct session *s)
{
    if (s->h2_checked) return 0;
    struct buf *b = s->cin;
    uint8_t proto = listener_of(s)->protocols;
    if (proto == PROTO_HTTP1) {
        s->h2_checked = 1;
        return 0;
    }
    /* protocols h2: every connection is HTTP/2, and a wrong preface is
     * nghttp2's connection error (GOAWAY PROTOCOL_ERROR), not an HTTP/1 400 */
    if (proto != PROTO_H2 && !(client_tls(s) && tls_conn_alpn_h2(&s->c))) {
        /* a plain listener: HTTP/2 with prior knowledge starts with the preface */
        uint32_t len = b ? buf_len(b) : 0;
        uint32_t n = len < PREFACE_LEN ? len : PREFACE_LEN;
        if (!n || memcmp(b->data + b->start, PREFACE, n)) {
            s->h2_checked = 1;
            return 0;
        }
        if (n < PREFACE_LEN) {
            if (!s->c_eof) return -1;
            s->h2_checked = 1;
            return 0;
        }
    }
    s->h2_checked = 1;
    if (start(s) < 0) {
        session_close(s);
        return 1;
    }
    s->rq = RQ_IDLE;
    if (b && buf_len(b)) {
        /* what the HTTP/1 side read already is the preface and what follows
         * (h2_progress runs next: it takes what this turn left) */
        s->h2->turn_end = clock_us() + TURN_US;
        feed_or_hold(s->h2, (const uint8_t *)b->data + b->start, buf_len(b));
    }
    drop_buf(s, &s->cin);
    s->cin_parsed = s->cin_sent = 0;
    if (px_of(s)->draining) h2_shutdown(s); /* it came while usher stops */
    return 1;
}

/* ---- reading, writing ------------------------------------------------------------ */

/* Gives nghttp2 the bytes at p (n of them) in slices while the turn lasts;
 * returns how many it took (what is left waits in hc->in). */
static size_t feed(struct h2_conn *hc, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n && !hc->fatal) {
        size_t k = n - done < SLICE ? n - done : SLICE;
        ssize_t r = nghttp2_session_mem_recv(hc->ng, p + done, k);
        if (r < 0) {
            broken(hc, (int)r);
            return n;
        }
        done += (size_t)r; /* fewer than k: paused (on_header) */
        if (hc->s->closed || (size_t)r < k || turn_spent(hc)) break;
    }
    return hc->fatal ? n : done;
}

/* feed, then what the turn left is held in hc->in until the next one. */
static void feed_or_hold(struct h2_conn *hc, const uint8_t *p, size_t n)
{
    struct session *s = hc->s;
    size_t k = feed(hc, p, n);
    if (k == n || s->closed) return;
    struct buf *b = take_buf(s, &hc->in);
    if (!b) {
        broken(hc, NGHTTP2_ERR_NOMEM);
        return;
    }
    memcpy(b->data, p + k, n - k);
    b->end = (uint32_t)(n - k);
}

static int h2_read(struct h2_conn *hc)
{
    struct session *s = hc->s;
    if (hc->in && (hc->fatal || s->lingering)) drop_buf(s, &hc->in);
    /* frames wait for the socket: do not take more work (or acknowledgements) */
    if (hc->pend_len || (hc->out && buf_room(hc->out) == 0)) return 0;
    if (hc->in) {
        /* the last turn's input first: the socket waits behind it */
        struct buf *b = hc->in;
        b->start += (uint32_t)feed(hc, (const uint8_t *)b->data + b->start, buf_len(b));
        if (!s->closed && b->start == b->end) drop_buf(s, &hc->in);
        return 1;
    }
    if (!s->c.readable || s->c_eof) return 0;
    /* a lingering close reads (and drops) whatever came before the client's
     * FIN, fatal or not: else it waits LINGER_MS for a FIN it never reads, and
     * a client that reconnects at once after each GOAWAY (F7) has thousands
     * of connections (their nghttp2 sessions, streams, buffers) held */
    if (!s->lingering && (hc->fatal || !nghttp2_session_want_read(hc->ng))) return 0;
    uint8_t in[BUF_SIZE];
    ssize_t n = conn_read(&s->c, in, sizeof(in));
    if (n > 0) {
        if (s->lingering) return 1; /* closing: read and dropped */
        feed_or_hold(hc, in, (size_t)n);
        return 1;
    }
    if (n == -EAGAIN) return 0;
    if (n == -EINTR) return 1;
    s->c_eof = 1; /* the client is gone (or half-closed: nothing more will come) */
    return 1;
}

/* Gathers what nghttp2 has to send into out, as long as it fits. */
static void fill(struct h2_conn *hc)
{
    struct session *s = hc->s;
    for (;;) {
        if (!hc->pend_len) {
            if (hc->broken || (hc->fatal && !nghttp2_session_want_write(hc->ng))) return;
            ssize_t n = nghttp2_session_mem_send(hc->ng, &hc->pend);
            if (n < 0) {
                log_debug("client %s: HTTP/2: %s", s->x.client_ip, nghttp2_strerror((int)n));
                hc->fatal = 1;
                hc->pend_len = 0;
                return;
            }
            hc->pend_len = (size_t)n;
            if (!n) return;
        }
        struct buf *o = take_buf(s, &hc->out);
        if (!o) return;
        if (buf_room(o) < hc->pend_len && o->start) buf_compact(o);
        if (buf_room(o) < hc->pend_len) return; /* written from where it is */
        memcpy(o->data + o->end, hc->pend, hc->pend_len);
        o->end += (uint32_t)hc->pend_len;
        hc->pend_len = 0;
    }
}

static int h2_flush(struct h2_conn *hc)
{
    struct session *s = hc->s;
    int moved = 0;
    for (int round = 0; round < 64; round++) {
        fill(hc);
        struct iovec iov[2];
        int n = 0;
        struct buf *o = hc->out;
        size_t total = 0;
        if (o && o->start < o->end) iov[n++] = (struct iovec){o->data + o->start, buf_len(o)};
        if (hc->pend_len) iov[n++] = (struct iovec){(void *)hc->pend, hc->pend_len};
        if (hc->tail_len)
            iov[n++] = (struct iovec){hc->tail + sizeof(hc->tail) - hc->tail_len, hc->tail_len};
        for (int i = 0; i < n; i++) total += iov[i].iov_len;
        if (!n || !s->c.writable) break;
        ssize_t w = conn_writev(&s->c, iov, n);
        if (w < 0) {
            if (w == -EAGAIN) break;
            if (w == -EINTR) continue;
            session_close(s); /* the client is gone */
            return 1;
        }
        moved = 1;
        size_t left = (size_t)w;
        if (o && o->start < o->end) {
            size_t k = left < buf_len(o) ? left : buf_len(o);
            o->start += (uint32_t)k;
            left -= k;
            if (o->start == o->end) o->start = o->end = 0;
        }
        if (hc->pend_len && left) {
            size_t k = left < hc->pend_len ? left : hc->pend_len;
            hc->pend += k;
            hc->pend_len -= k;
            left -= k;
        }
        hc->tail_len -= (uint8_t)left;
        if ((size_t)w < total) break; /* the socket is full: wait for it */
    }
    if (hc->out && hc->out->start == hc->out->end) drop_buf(s, &hc->out);
    return moved;
}

static int flushed(const struct h2_conn *hc)
{
    return !hc->pend_len && !hc->tail_len && (!hc->out || hc->out->start == hc->out->end);
}

/* ---- the connection's life ------------------------------------------------------------ */

/* Gives st back to the worker's free list, which keeps at most
 * MAX_FREE_STREAMS (a burst of streams must not stay held once it is over):
 * each entry's id holds the length of the list from it down. */
static void stream_put(struct proxy_worker *px, struct h2_stream *st)
{
    int32_t n = px->free_streams ? px->free_streams->id : 0;
    if (n >= MAX_FREE_STREAMS) {
        free(st);
        return;
    }
    st->id = n + 1;
    st->next = px->free_streams;
    px->free_streams = st;
}

static void free_dead(struct h2_conn *hc)
{
    struct proxy_worker *px = px_of(hc->s);
    while (hc->dead) {
        struct h2_stream *st = hc->dead;
        hc->dead = st->next;
        stream_put(px, st);
    }
}

void h2_stream_gone(struct h2_stream *st)
{
    struct h2_conn *hc = st->hc;
    struct session *s = hc->s;
    if (st->prev)
        st->prev->next = st->next;
    else
        hc->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    st->prev = NULL;
    st->next = hc->dead;
    hc->dead = st;
    if (--hc->nstreams) return;
    hc->idle_since = px_of(s)->loop->now;
    if (s->x.gen != px_of(s)->gen) h2_generation_switched(s);
}

/* Half-closes after the last frames (GOAWAY), then reads and drops what the
 * client still sends until its FIN or LINGER_MS, so that our close does
 * not turn into a reset that destroys those frames (as session_linger). */
static void h2_linger(struct session *s)
{
    if (s->lingering) return;
    s->lingering = 1;
    conn_shutdown(&s->c);
    s->deadline = px_of(s)->loop->now + LINGER_MS;
    loop_timer_at(px_of(s)->loop, &s->timer, s->deadline);
}

/* The next time the connection needs its timer. */
static uint64_t due(const struct h2_conn *hc)
{
    const struct session *s = hc->s;
    if (s->lingering) return s->deadline;
    const struct config *c = cfg(s);
    uint64_t d = hc->prefaced ? UINT64_MAX : hc->idle_since + c->client_header_ms;
    if (!hc->nstreams && hc->idle_since + c->client_idle_ms < d)
        d = hc->idle_since + c->client_idle_ms;
    if (hc->goaway_at && !hc->goaway && hc->goaway_at < d) d = hc->goaway_at;
    for (const struct h2_stream *st = hc->streams; st; st = st->next) {
        uint64_t t = h2_stream_due(st);
        if (t < d) d = t;
    }
    return d;
}

static void watch(struct h2_conn *hc)
{
    struct session *s = hc->s;
    uint64_t d = due(hc);
    if (d == UINT64_MAX) return;
    if (!loop_timer_armed(&s->timer) || s->timer.when > d)
        loop_timer_at(px_of(s)->loop, &s->timer, d);
}

void h2_progress(struct session *s)
{
    struct h2_conn *hc = s->h2;
    if (hc->stepping || s->closed) return;
    hc->stepping = 1;
    const struct config *c = cfg(s);
    int suspect = c->h2_glitches_threshold && hc->glitches >= c->h2_glitches_threshold / 2;
    hc->turn_end = clock_us() + (suspect ? TURN_US / 4 : TURN_US);
    int busy = 0;
    for (int round = 0;; round++) {
        int p = h2_read(hc);
        if (s->closed) goto out;
        if (s->lingering) {
            if (s->c_eof) {
                session_close(s);
                goto out;
            }
            if (!p) break; /* the linger's deadline is armed below (watch) */
        } else {
            if (!hc->broken)
                for (struct h2_stream *st = hc->streams; st; st = st->next) p |= h2_stream_step(st);
            if (s->closed) goto out;
            p |= h2_flush(hc);
            if (s->closed) goto out;
            free_dead(hc);
            if (!p) break;
        }
        if (round + 1 == MAX_ROUNDS || hc->in || turn_spent(hc)) {
            busy = 1;
            break;
        }
    }
    if (!busy && !s->lingering && flushed(hc) &&
        (s->c_eof || hc->fatal ||
         (!nghttp2_session_want_read(hc->ng) && !nghttp2_session_want_write(hc->ng)))) {
        /* GOAWAY went (or the client left) and no stream is open: the end */
        if (s->c_eof || !hc->prefaced)
            session_close(s);
        else
            h2_linger(s);
        goto out;
    }
    if (busy) {
        /* still busy: let other connections run, come back on the next iteration
         * (1 ms on: a timer due now would run again in this same pass of the
         * loop's timers, which would then never get back to epoll) */
        s->resume = 1;
        loop_timer_at(px_of(s)->loop, &s->timer, px_of(s)->loop->now + 1);
    }
    watch(hc);
out:
    hc->stepping = 0;
}

static void deferred_flush(struct loop_defer *d)
{
    struct session *s = (struct session *)((char *)d - offsetof(struct session, h2_flush));
    s->h2_flush_queued = 0;
    if (s->h2 && !s->closed) h2_progress(s); /* the session may be in the free list: h2 is NULL */
}

void h2_wake(struct h2_stream *st)
{
    struct h2_conn *hc = st->hc;
    struct session *s = hc->s;
    if (hc->stepping) return; /* h2_progress steps every stream anyway */
    hc->stepping = 1;
    for (int round = 0; round < MAX_ROUNDS && !st->closed && !s->closed; round++)
        if (!h2_stream_step(st)) break;
    hc->stepping = 0;
    if (s->closed || s->h2_flush_queued) return;
    s->h2_flush_queued = 1;
    s->h2_flush.fn = deferred_flush;
    loop_defer(px_of(s)->loop, &s->h2_flush);
}

void h2_on_timer(struct session *s)
{
    struct h2_conn *hc = s->h2;
    struct loop *l = px_of(s)->loop;
    if (s->resume) {
        s->resume = 0;
        /* a client that keeps sending while we linger is cut at the deadline */
        if (s->lingering && l->now >= s->deadline)
            session_close(s);
        else
            h2_progress(s);
        return;
    }
    if (s->lingering) {
        if (l->now >= s->deadline)
            session_close(s);
        else
            loop_timer_at(l, &s->timer, s->deadline);
        return;
    }
    if (hc->broken) {
        h2_progress(s); /* its GOAWAY goes, then the close */
        return;
    }
    const struct config *c = cfg(s);
    if (hc->goaway_at && !hc->goaway && l->now >= hc->goaway_at) {
        /* the second GOAWAY of a graceful stop: streams past this id are refused */
        nghttp2_submit_goaway(hc->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(hc->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
        hc->goaway = 1;
    }
    if (!hc->prefaced && l->now >= hc->idle_since + c->client_header_ms) {
        session_close(s); /* no preface and SETTINGS in time */
        return;
    }
    if (!hc->nstreams && l->now >= hc->idle_since + c->client_idle_ms && !hc->goaway) {
        nghttp2_session_terminate_session(hc->ng, NGHTTP2_NO_ERROR);
        hc->goaway = 1;
    }
    for (struct h2_stream *st = hc->streams; st; st = st->next)
        if (h2_stream_due(st) <= l->now) h2_stream_timeout(st);
    h2_progress(s);
}

void h2_shutdown(struct session *s)
{
    struct h2_conn *hc = s->h2;
    if (s->closed || hc->notice || hc->goaway) return;
    /* RFC 9113 6.8: a GOAWAY with the largest id first, so that the requests
     * in flight are not refused, then one with the last stream id after
     * about a round trip (the settle time, spread as HTTP/1's) */
    nghttp2_submit_shutdown_notice(hc->ng);
    hc->notice = 1;
    struct proxy_worker *px = px_of(s);
    px->settle_seq = px->settle_seq * 1103515245u + 12345u;
    hc->goaway_at =
        px->loop->now + SETTLE_MIN_MS + (px->settle_seq >> 8) % (SETTLE_MAX_MS - SETTLE_MIN_MS + 1);
    h2_progress(s);
}

void h2_generation_switched(struct session *s)
{
    struct h2_conn *hc = s->h2;
    if (s->closed || s->x.gen == px_of(s)->gen || hc->nstreams) return;
    if (!session_move_generation(s)) h2_shutdown(s); /* its listener is gone */
}

void h2_close(struct session *s)
{
    struct h2_conn *hc = s->h2;
    hc->closed = 1;
    for (struct h2_stream *st = hc->streams; st; st = st->next) h2_stream_release(st);
    drop_buf(s, &hc->out);
    drop_buf(s, &hc->in);
    hc->pend_len = 0;
}

void h2_free(struct session *s)
{
    struct h2_conn *hc = s->h2;
    struct proxy_worker *px = px_of(s);
    nghttp2_session_del(hc->ng);
    while (hc->streams) {
        struct h2_stream *st = hc->streams;
        hc->streams = st->next;
        stream_put(px, st);
    }
    free_dead(hc);
    free(hc);
    s->h2 = NULL;
}
