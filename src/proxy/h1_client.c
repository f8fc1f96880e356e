/* h1_client: the HTTP/1 client side of usher, one struct session per client
 * connection (session.h): reading requests, the end of a head, pipelining,
 * keep-alive, lingering close, the client's timers, usher's own answers.
 * Each request drives the exchange embedded in the session (exchange.c,
 * h1_backend.c) through struct exchange_ops (h1_response.c, with writing to
 * the client and the end of an exchange); after a 101 the session becomes a
 * tunnel.
 *
 * Everything that can make progress is done by session_progress(), which
 * runs these steps in a loop until none of them changes anything:
 *
 *   client_read -> request_step -> h1_backend_io -> h1_backend_response
 *               -> session_client_write -> session_exchange_end
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sock.h"
#include "http/body.h"
#include "http/h1.h"
#include "http/policy.h"
#include "proxy/h1_backend.h"
#include "proxy/h2.h"
#include "proxy/reqlog.h"
#include "proxy/session.h"
#include "tls/tls.h"

/* ---- small helpers ------------------------------------------------------------ */

/* Whether the session is in an exchange with a backend, whose deadline
 * follows from body_at and the exchange's clock rather than from s->deadline. */
static int in_exchange(const struct session *s)
{
    uint8_t rs = s->x.rs;
    return !s->lingering &&
           (rs == RS_CONNECTING || rs == RS_HEAD || rs == RS_BODY || rs == RS_DONE);
}

/* Whether usher waits on the client's request body: the head and every body
 * byte received so far went up (so the backend is not what holds things up),
 * and the client was not told to wait for 100 Continue. */
static int waits_for_body(const struct session *s)
{
    const struct exchange *x = &s->x;
    return s->rq == RQ_BODY && (x->rs == RS_HEAD || x->rs == RS_BODY) && !s->expect_wait &&
           !x->req_abandoned && (!x->req_head || x->req_head->start == x->req_head->end) &&
           (!s->cin || s->cin_sent >= s->cin_parsed);
}

/* When the exchange in progress times out; *client tells whether it is the
 * client's body timeout (408) rather than the backend's (504). A backend
 * waiting for the body is not timed; while a response is streamed, both
 * clocks run. */
static uint64_t due(const struct session *s, int *client)
{
    uint64_t d = UINT64_MAX;
    *client = waits_for_body(s);
    if (*client) d = s->body_at + cfg(s)->client_body_ms;
    if (!*client || s->x.rs == RS_BODY) {
        uint64_t up = exchange_due(&s->x);
        if (up < d) {
            d = up;
            *client = 0;
        }
    }
    return d;
}

/* Moves the timer earlier when the exchange's deadline came earlier (the
 * other clock took over); a later deadline is picked up when it fires. */
static void watch_exchange(struct session *s)
{
    if (!in_exchange(s)) return;
    int client;
    uint64_t d = due(s, &client);
    if (!loop_timer_armed(&s->timer) || s->timer.when > d)
        loop_timer_at(px_of(s)->loop, &s->timer, d);
}

void session_log_end(struct session *s)
{
    if (!s->logrec) return;
    reqlog_end(&s->logrec, &px_of(s)->bufs, &px_of(s)->alog, s->x.client_ip,
               s->x.be ? s->x.be->conf->url : NULL);
}

static void session_free(struct loop_defer *d)
{
    struct session *s = (struct session *)((char *)d - offsetof(struct session, defer));
    struct proxy_worker *px = px_of(s);
    if (s->h2) h2_free(s);
    s->next = px->free_sessions;
    px->free_sessions = s;
}

void session_close(struct session *s)
{
    struct proxy_worker *px = px_of(s);
    if (s->closed) return;
    if (s->h2) h2_close(s);
    s->closed = 1;
    session_log_end(s);
    exchange_release(&s->x, 0);
    drop_buf(s, &s->cin);
    drop_buf(s, &s->x.req_head);
    drop_buf(s, &s->x.uin);
    drop_buf(s, &s->res_out);
    loop_timer_stop(px->loop, &s->timer);
    conn_close(&s->c);
    gen_release(s->x.gen);
    if (s->prev)
        s->prev->next = s->next;
    else
        px->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    px->nsessions--;
    loop_defer(px->loop, &s->defer);
}

/* Closes after the client has seen everything: half-close, then wait a little
 * for the client's FIN so that unread bytes it sent do not turn our close
 * into a reset that destroys the answer in flight (RFC 9112 9.6). */
void session_linger(struct session *s, int always)
{
    exchange_release(&s->x, 0);
    /* Nothing unread and the request was read to its end: a plain close
     * cannot destroy anything (nginx decides the same way). */
    int unread = s->c.readable || (s->cin && buf_len(s->cin) > 0);
    if (s->c_eof || s->c.io.fd < 0 || (!always && !unread)) {
        session_close(s);
        return;
    }
    conn_shutdown(&s->c);
    s->lingering = 1;
    s->rq = RQ_DONE;
    s->x.rs = RS_NONE;
    drop_buf(s, &s->x.req_head);
    drop_buf(s, &s->x.uin);
    drop_buf(s, &s->res_out);
    arm(s, LINGER_MS);
}

/* Starts usher's own answer to the request in progress: anything the
 * backend said for it is dropped, and res_out is emptied for the answer.
 * NULL when the connection was closed instead: if the client already got
 * part of a response, the only honest thing left is to close. */
static struct buf *local_begin(struct session *s)
{
    exchange_release(&s->x, 0);
    if (s->client_started) {
        session_close(s);
        return NULL;
    }
    drop_buf(s, &s->x.req_head);
    drop_buf(s, &s->x.uin);
    struct buf *o = take_buf(s, &s->res_out);
    if (!o) {
        session_close(s);
        return NULL;
    }
    o->start = o->end = 0;
    return o;
}

/* usher's answer, n bytes in res_out (body of them its body), goes out;
 * n < 0 (it did not fit): the connection is closed instead. */
static void local_end(struct session *s, long n, int status, uint64_t body, int close)
{
    if (n < 0) {
        session_close(s);
        return;
    }
    s->res_out->end = (uint32_t)n;
    if (s->logrec) {
        reqlog_of(s->logrec)->status = (uint16_t)status;
        reqlog_of(s->logrec)->bytes = body;
    }
    s->keep_alive = !close;
    s->rq = RQ_DONE;
    s->x.rs = RS_LOCAL;
    arm(s, cfg(s)->client_idle_ms);
}

/* Answers the client with usher's own JSON error (with HSTS on a TLS
 * connection that asks for it: RFC 6797 applies to every response). */
void session_respond_error(struct session *s, int status, const char *msg)
{
    struct buf *o = local_begin(s);
    if (!o) return;
    int close = status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
                s->rq != RQ_DONE || !s->keep_alive || s->x.req_abandoned || px_of(s)->draining;
    char hsts[H1_HSTS_MAX];
    struct span extra = {hsts, (uint32_t)session_hsts(s, hsts, sizeof(hsts))};
    long n = h1_write_error(status, msg, close, &extra, o->data, BUF_SIZE);
    local_end(s, n, status, strlen(msg) + 12 /* {"error":"..."} */, close);
}

/* A plain listener with redirect_https answers the accepted request h
 * (head_len bytes of head) with 308 to its https:// URL, before any backend
 * is picked. A request that ends with its head leaves the connection to the
 * next request; one with a body is answered and closed, and the lingering
 * close drains the body, so none of it is ever read as a request. */
static void redirect_https(struct session *s, const struct h1_head *h, size_t head_len)
{
    if (h->complete) {
        s->cin->start += (uint32_t)head_len;
        s->cin_parsed = s->cin_sent = (uint16_t)s->cin->start;
    }
    struct buf *o = local_begin(s);
    if (!o) return;
    int close = !h->complete || !s->keep_alive || px_of(s)->draining;
    enum h1_conn_header conn = close       ? H1_CONN_CLOSE
                               : s->http10 ? H1_CONN_KEEP_ALIVE
                                           : H1_CONN_NONE;
    long n = h1_write_redirect(h, listener_of(s)->https_port, conn, o->data, BUF_SIZE);
    if (n == -EINVAL) {
        session_respond_error(s, 400, "Bad request: no Host to redirect to https");
        return;
    }
    if (n < 0) {
        session_respond_error(s, 414, "URI too long to redirect to https");
        return;
    }
    local_end(s, n, 308, 0, close);
}

/* ---- reading from the client ----------------------------------------------------- */

static int want_client_read(const struct session *s)
{
    if (s->c_eof) return 0;
    if (s->lingering) return 1;
    return s->rq == RQ_IDLE || s->rq == RQ_HEAD || s->rq == RQ_BODY;
}

static int client_read(struct session *s)
{
    if (!s->c.readable || !want_client_read(s)) return 0;
    if (s->lingering) {
        char sink[4096];
        ssize_t n = conn_read(&s->c, sink, sizeof(sink));
        if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
            session_close(s);
            return 1;
        }
        return n > 0;
    }
    struct buf *b = take_buf(s, &s->cin);
    if (!b) {
        session_close(s);
        return 1;
    }
    if (buf_room(b) == 0) {
        if (b->start < s->cin_sent) {
            /* room is needed: give up keeping the sent body for a retry */
            b->start = s->cin_sent;
            s->x.body_released = 1;
        }
        if (b->start == 0) return 0; /* full: wait until bytes move on */
        uint32_t shift = b->start;
        buf_compact(b);
        s->cin_parsed -= shift;
        s->cin_sent = s->cin_sent > shift ? s->cin_sent - shift : 0;
    }
    ssize_t n = conn_read(&s->c, b->data + b->end, buf_room(b));
    if (n > 0) {
        b->end += (uint32_t)n;
        if (s->rq == RQ_BODY) {
            s->body_at = px_of(s)->loop->now;
            s->expect_wait = 0; /* it sends its body without waiting for 100 Continue */
        }
        return 1;
    }
    if (n == -EAGAIN) return 0;
    if (n == -EINTR) return 1;
    s->c_eof = 1; /* the end, or reset by the client: nothing more will come */
    return 1;
}

/* ---- request -------------------------------------------------------------------- */

/* Forgets the body bytes already sent up (no retry will need them). */
void session_release_sent_body(struct session *s)
{
    struct buf *b = s->cin;
    if (!b || b->start >= s->cin_sent) return;
    b->start = s->cin_sent;
    if (b->start == b->end) {
        b->start = b->end = 0;
        s->cin_parsed = s->cin_sent = 0;
    }
}

static int span_ieq_str(struct span a, const char *b, size_t n)
{
    return a.len == n && strncasecmp(a.p, b, n) == 0;
}

/* The pool for request h: the first route of the listener whose host and
 * path prefix match, else the listener's own pool. */
struct pool *session_route(struct session *s, const struct h1_head *h)
{
    const struct listener_conf *l = &cfg(s)->listeners[s->listener];
    for (uint32_t i = 0; i < l->nroutes; i++) {
        const struct route_conf *r = &l->routes[i];
        if (r->host[0]) {
            if (h->host_i < 0) continue;
            struct span host = h->h[h->host_i].value;
            /* the Host without its port ("[v6]:port" keeps its brackets) */
            for (uint32_t k = host.len; k > 0; k--) {
                if (host.p[k - 1] == ']') break;
                if (host.p[k - 1] == ':') {
                    host.len = k - 1;
                    break;
                }
            }
            if (!span_ieq_str(host, r->host, strlen(r->host))) continue;
        }
        if (r->path_prefix[0]) {
            size_t n = strlen(r->path_prefix);
            if (h->target.len < n || memcmp(h->target.p, r->path_prefix, n)) continue;
        }
        return &s->x.gen->pools[r->pool];
    }
    return &s->x.gen->pools[l->pool];
}

/* The mTLS headers for the backend, which listener l asks for: the client
 * certificate check as "SUCCESS", "NONE" or "FAILED:reason", and the
 * subject (RFC 2253) when it succeeded; a header of those names that the
 * client sent goes nowhere, whatever the result. A plain connection has no
 * certificate: NONE. The values are written into text (cap bytes), which
 * must live until the head is rewritten. Asked of the TLS library per
 * request, and only on a listener that sets one of the headers. */
static void peer_headers(struct session *s, const struct listener_conf *l,
                         struct h1_request_rewrite *rw, char *text, size_t cap);

void session_peer_headers(struct session *s, struct h1_request_rewrite *rw)
{
    const struct listener_conf *l = listener_of(s);
    if (l->client_verify_header[0] || l->client_subject_header[0])
        peer_headers(s, l, rw, px_of(s)->peer_text, sizeof(px_of(s)->peer_text));
}

static void peer_headers(struct session *s, const struct listener_conf *l,
                         struct h1_request_rewrite *rw, char *text, size_t cap)
{
    static const char failed[] = "FAILED:";
    const size_t at = sizeof(failed) - 1;
    text[at] = 0;
    enum tls_peer r = client_tls(s) ? tls_conn_peer(&s->c, text + at, cap - at) : TLS_PEER_NONE;
    struct span got = {text + at, (uint32_t)strlen(text + at)}; /* the reason or the subject */
    h1_safe_value(text + at, got.len);
    struct span verify = {"NONE", 4};
    if (r == TLS_PEER_SUCCESS) verify = (struct span){"SUCCESS", 7};
    if (r == TLS_PEER_FAILED) {
        memcpy(text, failed, at);
        verify = (struct span){text, (uint32_t)at + got.len};
    }
    if (l->client_verify_header[0])
        rw->set[rw->nset++] = (struct h1_set_header){
            {l->client_verify_header, (uint32_t)strlen(l->client_verify_header)}, verify};
    if (l->client_subject_header[0])
        rw->set[rw->nset++] = (struct h1_set_header){
            {l->client_subject_header, (uint32_t)strlen(l->client_subject_header)},
            r == TLS_PEER_SUCCESS ? got : (struct span){NULL, 0}};
}

/* What the session's listener asks beyond proxying (s->http_extras) for
 * the accepted request h: the https redirect (then 1: answered), or the
 * mTLS headers in conn (their values in the worker's peer_text, valid
 * until the next head). Out of line: the plain path only tests the bit. */
static __attribute__((noinline)) int listener_http(struct session *s, const struct h1_head *h,
                                                   size_t head_len, struct h1_request_rewrite *conn)
{
    const struct listener_conf *l = listener_of(s);
    if (l->redirect_https && !conn->https) {
        redirect_https(s, h, head_len);
        return 1;
    }
    if (l->client_verify_header[0] || l->client_subject_header[0])
        peer_headers(s, l, conn, px_of(s)->peer_text, sizeof(px_of(s)->peer_text));
    return 0;
}

static void log_begin(struct session *s, const struct h1_head *h)
{
    if (!accesslog_enabled()) return;
    struct reqlog_head f = {.method = h->method, .target = h->target, .http10 = h->minor == 0};
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct span n = h->h[i].name;
        if (n.len == 7 && !strncasecmp(n.p, "referer", 7)) f.referer = h->h[i].value;
        if (n.len == 10 && !strncasecmp(n.p, "user-agent", 10)) f.user_agent = h->h[i].value;
    }
    if (h->host_i >= 0) f.host = h->h[h->host_i].value;
    reqlog_begin(&s->logrec, &px_of(s)->bufs, &f);
}

static int request_head(struct session *s)
{
    struct buf *b = s->cin;
    const struct config *c = cfg(s);
    if (s->rq == RQ_IDLE) {
        /* RFC 9112 2.2: empty lines before a request line are ignored */
        while (b && b->start < b->end && (b->data[b->start] == '\r' || b->data[b->start] == '\n'))
            b->start++;
        if (!b || b->start == b->end) {
            if (b) drop_buf(s, &s->cin); /* idle connections hold no buffer */
            s->cin_parsed = 0;
            if (s->c_eof) {
                session_close(s);
                return 1;
            }
            return 0;
        }
        if (!s->h2_checked) {
            int r = h2_maybe_start(s); /* the first bytes: HTTP/2? */
            if (r) return r > 0;
        }
        s->rq = RQ_HEAD;
        s->cin_scan = 0;
        /* a reload happened while this connection was idle: this request
         * already belongs to the new configuration */
        if (s->x.gen != px_of(s)->gen) {
            if (!session_move_generation(s)) s->listener_gone = 1;
            c = cfg(s); /* the old configuration may be gone */
        }
        s->client_started = 0; /* a new exchange: nothing of its answer was sent yet */
        arm(s, c->client_header_ms);
    }
    const char *p = b->data + b->start;
    size_t len = buf_len(b);
    size_t scan = s->cin_scan;
    size_t head_len = h1_find_head_end(p, len, &scan);
    s->cin_scan = (uint16_t)scan;
    const struct h1_limits lim = {
        .max_header_bytes = c->max_header_bytes,
        .max_request_line = c->max_request_line,
        .max_headers = c->max_headers,
        .max_body_size = c->max_body_size,
        .buf_size = BUF_SIZE,
    };
    struct h1_refusal r;
    if (h1_request_size_check(p, len, head_len, s->c_eof, &lim, &r)) {
        session_respond_error(s, r.status, r.msg);
        return 1;
    }
    if (!head_len) return 0;

    struct h1_head *h = &px_of(s)->scratch;
    h->max_headers = c->max_headers;
    h->skip_body = 0;
    const char *why = NULL;
    llhttp_t *parser = &px_of(s)->parser;
    h1_parser_init(parser, 1);
    int err = h1_parse_head(parser, h, p, head_len, &why);
    s->keep_alive = 0; /* until the head is known good */
    if (err) {
        log_debug("client %s: malformed request: %s", s->x.client_ip, why ? why : "?");
        session_respond_error(s, 400, "Bad request: malformed request head");
        return 1;
    }
    log_begin(s, h);
    if (h1_accept_request(h, p, head_len, &lim, &r)) {
        if (r.status == 413)
            log_debug("client %s: Content-Length %llu over the limit of %llu bytes", s->x.client_ip,
                      (unsigned long long)h->content_length, (unsigned long long)c->max_body_size);
        session_respond_error(s, r.status, r.msg);
        return 1;
    }
    s->http10 = h->minor == 0;
    s->keep_alive = (s->http10 ? h->conn_keep_alive : !h->conn_close) && !s->listener_gone;
    /* what the backend is told of the client connection */
    struct h1_request_rewrite conn; /* set[] is read up to nset only */
    conn.https = client_tls(s);
    conn.nset = 0;
    if (s->http_extras && listener_http(s, h, head_len, &conn)) return 1;
    int e = exchange_begin(&s->x, session_route(s, h), h, &conn);
    if (e == -ENOMEM) {
        session_close(s);
        return 1;
    }
    if (e < 0) {
        session_respond_error(s, 431, "Request header fields too large");
        return 1;
    }
    b->start += (uint32_t)head_len;
    s->cin_parsed = s->cin_sent = (uint16_t)b->start;
    s->rq = h->complete ? RQ_DONE : RQ_BODY;
    body_init(&s->req_body,
              h->complete  ? BODY_NONE
              : h->chunked ? BODY_CHUNKED
                           : BODY_LENGTH,
              h->content_length);
    if (h->chunked && c->max_body_size) body_limit(&s->req_body, c->max_body_size);
    s->body_at = px_of(s)->loop->now;
    s->expect_wait = h->expect_continue;
    s->client_started = 0;
    exchange_start(&s->x, h);
    watch_exchange(s);
    return 1;
}

static int request_body(struct session *s)
{
    struct buf *b = s->cin;
    if (b && s->cin_parsed < b->end) {
        int done;
        long n =
            body_parse(&s->req_body, b->data + s->cin_parsed, b->end - s->cin_parsed, &done, NULL);
        if (n == BODY_ERR_TOO_LARGE) {
            /* nothing past the limit was sent up; the backend saw an
             * unfinished request, and that connection is not reused */
            log_debug("client %s: chunked request body over the limit of %llu bytes",
                      s->x.client_ip, (unsigned long long)cfg(s)->max_body_size);
            s->keep_alive = 0;
            exchange_abandon(&s->x);
            session_respond_error(s, 413,
                                  "Payload too large: the request body is larger than the limit");
            return 1;
        }
        if (n < 0) {
            log_debug("client %s: malformed chunked request body", s->x.client_ip);
            s->keep_alive = 0;
            exchange_abandon(&s->x);
            session_respond_error(s, 400, "Bad request: malformed request body framing");
            return 1;
        }
        s->cin_parsed += (uint16_t)n;
        if (done) s->rq = RQ_DONE;
        return n > 0 || done;
    }
    if (s->c_eof) {
        /* the client went away in the middle of its body: nothing to answer */
        session_close(s);
        return 1;
    }
    return 0;
}

static int request_step(struct session *s)
{
    switch (s->rq) {
    case RQ_IDLE:
    case RQ_HEAD:
        if (s->x.rs != RS_NONE) return 0;
        if (!s->cin && !s->c_eof) return 0;
        if (!request_head(s)) return 0;
        /* body bytes that came with the head go up in the same write */
        if (s->rq == RQ_BODY && !s->closed) request_body(s);
        return 1;
    case RQ_BODY: return request_body(s);
    default: return 0;
    }
}

/* ---- driving ------------------------------------------------------------------------ */

void session_progress(struct session *s)
{
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int p;
        if (s->h2) {
            h2_progress(s);
            return;
        }
        if (s->x.rs == RS_TUNNEL) {
            p = session_tunnel_progress(s);
            if (s->closed || !p) return;
            continue;
        }
        p = client_read(s);
        if (s->closed) return;
        p |= request_step(s);
        if (s->closed) return;
        p |= h1_backend_io(&s->x);
        if (s->closed) return;
        p |= h1_backend_response(&s->x);
        if (s->closed) return;
        p |= session_client_write(s);
        if (s->closed) return;
        p |= session_exchange_end(s);
        if (s->closed) return;
        if (!p) {
            watch_exchange(s);
            return;
        }
    }
    /* still busy: let other connections run, come back on the next iteration */
    s->resume = 1;
    loop_timer_at(px_of(s)->loop, &s->timer, px_of(s)->loop->now);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
    struct session *s = (struct session *)((char *)t - offsetof(struct session, timer));
    if (s->h2) {
        h2_on_timer(s);
        return;
    }
    int client = 0;
    uint64_t d = in_exchange(s) ? due(s, &client) : s->deadline;
    if (s->resume) {
        s->resume = 0;
        loop_timer_at(loop, &s->timer, d);
        session_progress(s);
        return;
    }
    if (loop->now < d) {
        loop_timer_at(loop, &s->timer, d);
        return;
    }
    uint8_t rs = s->x.rs;
    if (client) {
        /* the client stopped sending its body (or closes, if part of a
         * response went out already); not the backend's fault */
        log_debug("client %s: no request body byte within %u ms", s->x.client_ip,
                  cfg(s)->client_body_ms);
        exchange_abandon(&s->x);
        session_respond_error(s, 408, "Request timeout: the request body stopped arriving");
    } else if (s->settling && s->rq == RQ_IDLE && rs == RS_NONE) {
        /* the settle time is over: a FIN, and what the client sends at this
         * very moment is read and dropped (a clean close it may retry) */
        session_linger(s, 1);
        return;
    } else if (s->lingering || rs == RS_TUNNEL || rs == RS_BODY || rs == RS_LOCAL ||
               (s->rq == RQ_IDLE && rs == RS_NONE)) {
        session_close(s);
        return;
    } else if (s->rq == RQ_HEAD && rs == RS_NONE) {
        session_respond_error(s, 408, "Request timeout: the request head did not arrive in time");
    } else if (rs == RS_CONNECTING || rs == RS_HEAD) {
        exchange_timeout(&s->x);
    } else {
        session_close(s);
        return;
    }
    if (!s->closed) session_progress(s);
}

static void on_client_event(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct session *s = (struct session *)io;
    conn_events(&s->c, events);
    if (s->h2)
        h2_progress(s);
    else
        session_progress(s);
}

void proxy_accept(struct proxy_worker *px, int fd, const struct sockaddr *peer, uint32_t listener)
{
    struct session *s = px->free_sessions;
    if (s)
        px->free_sessions = s->next;
    else if (!(s = malloc(sizeof(*s)))) {
        close(fd);
        return;
    }
    memset(s, 0, sizeof(*s));
    s->timer.cb = on_timer;
    s->defer.fn = session_free;
    s->listener = (uint16_t)listener;
    s->x.ops = &h1_exchange_ops;
    s->x.px = px;
    s->x.gen = px->gen;
    gen_acquire(s->x.gen);
    s->x.pool = &s->x.gen->pools[s->x.gen->cfg->listeners[listener].pool];
    s->http_extras = listener_extras(listener_of(s));
    sock_ip_str(peer, s->x.client_ip, sizeof(s->x.client_ip));
    sock_nodelay(fd);
    struct tls_server *tls = s->x.gen->tls ? s->x.gen->tls[listener] : NULL;
    if (conn_open(&s->c, px->loop, fd, tls ? &conn_tls : &conn_plain, on_client_event, 0) < 0) {
        close(fd);
        gen_release(s->x.gen);
        s->next = px->free_sessions;
        px->free_sessions = s;
        return;
    }
    if (tls && tls_server_attach(&s->c, tls) < 0) {
        conn_close(&s->c);
        gen_release(s->x.gen);
        s->next = px->free_sessions;
        px->free_sessions = s;
        return;
    }
    s->next = px->sessions;
    if (px->sessions) px->sessions->prev = s;
    px->sessions = s;
    px->nsessions++;
    arm(s, cfg(s)->client_header_ms);
    /* A plain connection's first request is often there already: serve it now.
     * A TLS handshake costs about a millisecond: leave it to the loop (the
     * ClientHello already queued shows as an event), so that a burst of
     * accepts does not make every handshake of the batch wait for the others. */
    if (!tls) session_progress(s);
}

void session_settle(struct session *s)
{
    struct proxy_worker *px = px_of(s);
    if (s->settling) return;
    px->settle_seq = px->settle_seq * 1103515245u + 12345u;
    uint32_t span = SETTLE_MAX_MS - SETTLE_MIN_MS + 1;
    s->settling = 1;
    arm(s, SETTLE_MIN_MS + (px->settle_seq >> 8) % span);
}

static int idle(const struct session *s)
{
    return s->rq == RQ_IDLE && s->x.rs == RS_NONE && !s->cin && !s->lingering && !s->closed;
}

void proxy_close_idle(struct proxy_worker *px)
{
    for (struct session *s = px->sessions; s; s = s->next) {
        if (s->h2)
            h2_shutdown(s); /* GOAWAY: what is in flight finishes */
        else if (idle(s))
            session_settle(s);
    }
}

void proxy_generation_switched(struct proxy_worker *px)
{
    for (struct session *s = px->sessions; s; s = s->next) {
        if (s->h2) {
            h2_generation_switched(s);
            continue;
        }
        if (!idle(s) || s->x.gen == px->gen) continue;
        if (!session_move_generation(s)) {
            s->listener_gone = 1;
            session_settle(s);
        }
    }
}

void proxy_close_all(struct proxy_worker *px)
{
    while (px->sessions) session_close(px->sessions);
}

void proxy_free_cache(struct proxy_worker *px)
{
    while (px->free_streams) {
        struct h2_stream *st = px->free_streams;
        px->free_streams = st->next;
        free(st);
    }
    while (px->free_sessions) {
        struct session *s = px->free_sessions;
        px->free_sessions = s->next;
        free(s);
    }
}
