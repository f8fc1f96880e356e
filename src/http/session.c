/* session: the proxy state machine for one client connection. See session.h.
 *
 * Everything that can make progress is done by session_progress(), which runs
 * the steps below in a loop until none of them changes anything:
 *
 *   client_read -> request_step -> upstream_step -> response_step
 *               -> client_write -> exchange_end
 *
 * Sockets are registered edge-triggered once; c_readable/c_writable (and the
 * upconn's flags) remember what the kernel last told us, so a step that could
 * not run for lack of buffer room runs again as soon as room is made, without
 * another epoll_ctl.
 *
 * Buffers (all from the worker's cache, all given back when empty):
 *   cin       bytes from the client: [start, cin_sent) body bytes already sent up
 *             but kept until the response begins, so that the request can be
 *             sent again (given up when the buffer is needed); [cin_sent,
 *             cin_parsed) body bytes ready to go up; [cin_parsed, end) not
 *             looked at yet (the rest of the body, or the next request)
 *   req_head  the rewritten request head; kept until the response starts so a
 *             request can be sent again on another connection
 *   uin       bytes from the backend; [start, uin_parsed) ready to go down
 *   res_out   the rewritten response head(s), or usher's own answer
 */
#include "http/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "balance/balance.h"
#include "core/accesslog.h"
#include "core/log.h"
#include "core/sock.h"
#include "core/worker.h"
#include "http/body.h"
#include "http/h1.h"
#include "upstream/health.h"
#include "upstream/upconn.h"

#define LINGER_MS 2000      /* how long a closing connection waits for the client's FIN */
#define MAX_STALE_RETRIES 3 /* re-sends after a reused connection turned out closed */
#define MAX_ROUNDS 64       /* progress rounds before yielding to other connections */

enum rq_state { RQ_IDLE, RQ_HEAD, RQ_BODY, RQ_DONE };
enum rs_state { RS_NONE, RS_CONNECTING, RS_HEAD, RS_BODY, RS_DONE, RS_TUNNEL, RS_LOCAL };

struct session {
    struct loop_io io;
    struct loop_timer timer;
    struct loop_defer defer;
    struct session *next, *prev; /* worker's open sessions, or its free list */
    struct worker *w;
    struct upconn *up;
    struct generation *gen; /* the configuration this session works with (a reference) */
    struct pool *pool;      /* serves the current request (chosen by the listener's routes) */
    struct backend *be;
    struct buf *cin, *req_head, *uin, *res_out;
    struct buf *logrec;             /* the request's access log fields, only while the log is on */
    uint64_t log_bytes;             /* response body bytes sent to the client */
    uint16_t log_status;            /* the final status sent (0: none yet) */
    struct body req_body, res_body; /* where each message's body ends */
    uint64_t deadline; /* outside an exchange with a backend: when what we wait for times out */
    /* during an exchange the deadline follows from two clocks (exchange_due):
     * body_at: the client last sent body bytes, or usher last made room for
     * more (sent what it had up); up_at: the attempt started, or the backend
     * last took or sent bytes */
    uint64_t body_at, up_at;
    uint64_t hash;    /* balancer's hash key for this request (0: not computed) */
    uint64_t sent_us; /* when the request went to the backend, for latency-aware balancers */
    struct balance_tried tried;
    uint32_t cin_parsed, cin_sent, cin_scan, uin_parsed, uin_scan;
    int up_err; /* -errno seen on the upstream socket */
    uint8_t rq, rs;
    uint16_t listener;    /* index in config.listeners */
    uint16_t fail_status; /* answer when no backend is left: 502 after a failure mid-exchange */
    uint8_t attempts, stale_retries;
    /* client socket */
    uint8_t c_readable : 1, c_writable : 1, c_rdhup : 1, c_eof : 1, closed : 1, lingering : 1,
        resume : 1, c_out_armed : 1;
    /* current exchange */
    uint8_t keep_alive : 1, http10 : 1, is_head : 1, upgrade_req : 1, idempotent : 1, dechunk : 1,
        truncated : 1;
    uint8_t retry_same : 1;    /* a retry may use the same backend (stale pooled connection) */
    uint8_t listener_gone : 1; /* a reload removed the listener: last request on this one */
    uint8_t sent_any : 1, body_released : 1, resp_bytes : 1, client_started : 1, up_eof : 1,
        up_keepalive : 1, req_abandoned : 1, saw_timeout : 1;
    uint8_t expect_wait : 1; /* Expect: 100-continue: the client waits on the backend */
    char client_ip[46];
};

static void session_progress(struct session *s);

/* ---- small helpers ------------------------------------------------------------ */

static const struct config *cfg(const struct session *s)
{
    return s->gen->cfg;
}

/* The settings of the pool serving the current request. */
static const struct pool_conf *pcfg(const struct session *s)
{
    return s->pool->cfg;
}

/* Sets the deadline for whatever the session is waiting for now. The heap
 * timer is only moved when the deadline comes earlier; a later deadline is
 * picked up when the timer fires, so refreshing it per read costs nothing. */
static void arm(struct session *s, uint32_t ms)
{
    struct loop *l = &s->w->loop;
    s->deadline = l->now + ms;
    if (!loop_timer_armed(&s->timer) || s->timer.when > s->deadline)
        loop_timer_at(l, &s->timer, s->deadline);
}

/* Whether the session is in an exchange with a backend, whose deadline
 * follows from body_at and up_at rather than from s->deadline. */
static int in_exchange(const struct session *s)
{
    return !s->lingering &&
           (s->rs == RS_CONNECTING || s->rs == RS_HEAD || s->rs == RS_BODY || s->rs == RS_DONE);
}

/* Whether usher waits on the client's request body: the head and every body
 * byte received so far went up (so the backend is not what holds things up),
 * and the client was not told to wait for 100 Continue. */
static int waits_for_body(const struct session *s)
{
    return s->rq == RQ_BODY && (s->rs == RS_HEAD || s->rs == RS_BODY) && !s->expect_wait &&
           !s->req_abandoned && (!s->req_head || s->req_head->start == s->req_head->end) &&
           (!s->cin || s->cin_sent >= s->cin_parsed);
}

/* When the exchange in progress times out; *client tells whether it is the
 * client's body timeout (408) rather than the backend's (connect_ms while
 * connecting, else response_ms). A backend waiting for the body is not
 * timed; while a response is streamed, both clocks run. */
static uint64_t exchange_due(const struct session *s, int *client)
{
    uint64_t due = UINT64_MAX;
    *client = waits_for_body(s);
    if (*client) due = s->body_at + cfg(s)->client_body_ms;
    if (!*client || s->rs == RS_BODY) {
        uint64_t up =
            s->up_at + (s->rs == RS_CONNECTING ? pcfg(s)->connect_ms : pcfg(s)->response_ms);
        if (up < due) {
            due = up;
            *client = 0;
        }
    }
    return due;
}

/* Moves the timer earlier when the exchange's deadline came earlier (the
 * other clock took over); a later deadline is picked up when it fires. */
static void watch_exchange(struct session *s)
{
    if (!in_exchange(s)) return;
    int client;
    uint64_t due = exchange_due(s, &client);
    if (!loop_timer_armed(&s->timer) || s->timer.when > due)
        loop_timer_at(&s->w->loop, &s->timer, due);
}

static struct buf *take_buf(struct session *s, struct buf **slot)
{
    if (!*slot) *slot = buf_get(&s->w->bufs);
    return *slot;
}

static void drop_buf(struct session *s, struct buf **slot)
{
    buf_put(&s->w->bufs, *slot);
    *slot = NULL;
}

/* ---- access log ---------------------------------------------------------------- */

struct logrec {
    uint64_t start_ms, t0_us;
    uint32_t off[5], len[5]; /* method, target, referer, user agent, host */
    uint8_t http10;
};

static uint64_t now_us(void);

/* Keeps what the log line needs from the request head (which is gone by the
 * time the response ends), in a buffer from the worker's cache. */
static void log_begin(struct session *s, const struct h1_head *h)
{
    if (!accesslog_enabled() || !take_buf(s, &s->logrec)) return;
    struct logrec *r = (struct logrec *)s->logrec->data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->start_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    r->t0_us = now_us();
    r->http10 = h->minor == 0;
    struct h1_span f[5] = {h->method, h->target, {0}, {0}, {0}};
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct h1_span n = h->h[i].name;
        if (n.len == 7 && !strncasecmp(n.p, "referer", 7)) f[2] = h->h[i].value;
        if (n.len == 10 && !strncasecmp(n.p, "user-agent", 10)) f[3] = h->h[i].value;
    }
    if (h->host_i >= 0) f[4] = h->h[h->host_i].value;
    uint32_t off = sizeof(*r);
    for (int i = 0; i < 5; i++) {
        uint32_t n = f[i].len > 2048 ? 2048 : f[i].len;
        if (n) memcpy(s->logrec->data + off, f[i].p, n);
        r->off[i] = off;
        r->len[i] = n;
        off += n;
    }
    s->log_bytes = 0;
    s->log_status = 0;
}

/* Writes the request's line (once) and gives the buffer back. */
static void log_end(struct session *s)
{
    if (!s->logrec) return;
    const struct logrec *r = (const struct logrec *)s->logrec->data;
    const char *d = s->logrec->data;
    uint64_t t = now_us();
    struct accesslog_entry e = {
        .client_ip = s->client_ip,
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
        .backend = s->be ? s->be->conf->url : NULL,
        .http10 = r->http10,
        .status = s->log_status ? s->log_status : 499, /* nginx's "client closed" */
        .bytes = s->log_bytes,
    };
    accesslog_add(&s->w->alog, &e);
    drop_buf(s, &s->logrec);
}

static void session_free(struct loop_defer *d)
{
    struct session *s = (struct session *)((char *)d - offsetof(struct session, defer));
    struct worker *w = s->w;
    s->next = w->free_sessions;
    w->free_sessions = s;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Tells the balancer how the attempt on s->be ended (once per attempt). */
static void report_done(struct session *s, enum balance_outcome outcome)
{
    const struct balancer_ops *ops = s->pool->ops;
    if (!s->sent_us) return;
    if (ops->on_request_done) {
        uint64_t t = now_us();
        ops->on_request_done(s->pool->balancer, s->be, outcome,
                             t > s->sent_us ? t - s->sent_us : 0);
    }
    s->sent_us = 0;
}

static void release_upstream(struct session *s, int reusable)
{
    struct upconn *u = s->up;
    if (!u) return;
    s->up = NULL;
    report_done(s, reusable ? BALANCE_OK : BALANCE_FAILED);
    if (s->be) atomic_fetch_sub_explicit(&s->be->inflight, 1, memory_order_relaxed);
    if (reusable)
        upconn_release(u);
    else
        upconn_close(u);
}

/* The exchange ends for a reason of the client's (its body stalled, was too
 * large or malformed): the backend connection is closed, as the backend saw
 * an unfinished request, but the attempt counts neither as a success nor as a
 * failure of the backend (no latency sample for the balancer). */
static void abandon_upstream(struct session *s)
{
    s->sent_us = 0;
    release_upstream(s, 0);
}

static void close_now(struct session *s)
{
    struct worker *w = s->w;
    if (s->closed) return;
    s->closed = 1;
    log_end(s);
    release_upstream(s, 0);
    drop_buf(s, &s->cin);
    drop_buf(s, &s->req_head);
    drop_buf(s, &s->uin);
    drop_buf(s, &s->res_out);
    loop_timer_stop(&w->loop, &s->timer);
    loop_close(&w->loop, &s->io);
    gen_release(s->gen);
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    w->nsessions--;
    loop_defer(&w->loop, &s->defer);
}

/* Closes after the client has seen everything: half-close, then wait a little
 * for the client's FIN so that unread bytes it sent do not turn our close
 * into a reset that destroys the answer in flight (RFC 9112 9.6). */
static void linger_close(struct session *s, int always)
{
    release_upstream(s, 0);
    /* Nothing unread and the request was read to its end: a plain close
     * cannot destroy anything (nginx decides the same way). */
    int unread = s->c_readable || (s->cin && buf_len(s->cin) > 0);
    if (s->c_eof || s->io.fd < 0 || (!always && !unread)) {
        close_now(s);
        return;
    }
    shutdown(s->io.fd, SHUT_WR);
    s->lingering = 1;
    s->rq = RQ_DONE;
    s->rs = RS_NONE;
    drop_buf(s, &s->req_head);
    drop_buf(s, &s->uin);
    drop_buf(s, &s->res_out);
    arm(s, LINGER_MS);
}

/* Answers the client with usher's own JSON error. Anything the backend said
 * for this request is dropped; if the client already got part of a response,
 * the only honest thing left is to close. */
static void respond_error(struct session *s, int status, const char *msg)
{
    if (s->client_started) {
        release_upstream(s, 0);
        close_now(s);
        return;
    }
    release_upstream(s, 0);
    drop_buf(s, &s->req_head);
    drop_buf(s, &s->uin);
    int close = status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
                s->rq != RQ_DONE || !s->keep_alive || s->req_abandoned;
    struct buf *o = take_buf(s, &s->res_out);
    if (!o) {
        close_now(s);
        return;
    }
    o->start = o->end = 0;
    long n = h1_write_error(status, msg, close, o->data, BUF_SIZE);
    if (n < 0) {
        close_now(s);
        return;
    }
    o->end = (uint32_t)n;
    s->log_status = (uint16_t)status;
    s->log_bytes = strlen(msg) + 12; /* {"error":"..."} */
    s->keep_alive = !close;
    s->rq = RQ_DONE;
    s->rs = RS_LOCAL;
    arm(s, cfg(s)->client_idle_ms);
}

/* ---- reading from the client ----------------------------------------------------- */

static int want_client_read(const struct session *s)
{
    if (s->c_eof) return 0;
    if (s->lingering || s->rs == RS_TUNNEL) return 1;
    return s->rq == RQ_IDLE || s->rq == RQ_HEAD || s->rq == RQ_BODY;
}

static int client_read(struct session *s)
{
    if (!s->c_readable || !want_client_read(s)) return 0;
    if (s->lingering) {
        char sink[4096];
        ssize_t n = read(s->io.fd, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close_now(s);
            return 1;
        }
        if (n < 0 && errno == EAGAIN) s->c_readable = 0;
        return n > 0;
    }
    struct buf *b = take_buf(s, &s->cin);
    if (!b) {
        close_now(s);
        return 1;
    }
    if (buf_room(b) == 0) {
        if (b->start < s->cin_sent) {
            /* room is needed: give up keeping the sent body for a retry */
            b->start = s->cin_sent;
            s->body_released = 1;
        }
        if (b->start == 0) return 0; /* full: wait until bytes move on */
        uint32_t shift = b->start;
        buf_compact(b);
        s->cin_parsed -= shift;
        s->cin_sent = s->cin_sent > shift ? s->cin_sent - shift : 0;
    }
    size_t room = buf_room(b);
    ssize_t n = read(s->io.fd, b->data + b->end, room);
    if (n > 0) {
        b->end += (uint32_t)n;
        /* a short read means the socket is drained, unless a FIN is pending */
        if ((size_t)n < room && !s->c_rdhup) s->c_readable = 0;
        if (s->rs == RS_TUNNEL) {
            s->deadline = s->w->loop.now + cfg(s)->tunnel_idle_ms;
        } else if (s->rq == RQ_BODY) {
            s->body_at = s->w->loop.now;
            s->expect_wait = 0; /* it sends its body without waiting for 100 Continue */
        }
        return 1;
    }
    if (n == 0) {
        s->c_eof = 1;
        s->c_readable = 0;
        return 1;
    }
    if (errno == EAGAIN) {
        s->c_readable = 0;
        return 0;
    }
    if (errno == EINTR) return 1;
    s->c_eof = 1; /* reset by the client: nothing more will come */
    s->c_readable = 0;
    return 1;
}

/* ---- request -------------------------------------------------------------------- */

static void upstream_start(struct session *s);
static int move_to_current_generation(struct session *s);

/* Forgets the body bytes already sent up (no retry will need them). */
static void release_sent_body(struct session *s)
{
    struct buf *b = s->cin;
    if (!b || b->start >= s->cin_sent) return;
    b->start = s->cin_sent;
    if (b->start == b->end) {
        b->start = b->end = 0;
        s->cin_parsed = s->cin_sent = 0;
    }
}

/* Passive health: an attempt on be failed for a reason of the backend's. */
static void backend_failed(struct session *s, struct backend *be, const char *why)
{
    health_passive_failure(s->pool, be, why, pcfg(s)->max_fails);
}

static int span_ieq_str(struct h1_span a, const char *b, size_t n)
{
    return a.len == n && strncasecmp(a.p, b, n) == 0;
}

/* The pool for request h: the first route of the listener whose host and
 * path prefix match, else the listener's own pool. */
static struct pool *route(struct session *s, const struct h1_head *h)
{
    const struct listener_conf *l = &cfg(s)->listeners[s->listener];
    for (uint32_t i = 0; i < l->nroutes; i++) {
        const struct route_conf *r = &l->routes[i];
        if (r->host[0]) {
            if (h->host_i < 0) continue;
            struct h1_span host = h->h[h->host_i].value;
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
        return &s->gen->pools[r->pool];
    }
    return &s->gen->pools[l->pool];
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
                close_now(s);
                return 1;
            }
            return 0;
        }
        s->rq = RQ_HEAD;
        s->cin_scan = 0;
        /* a reload happened while this connection was idle: this request
         * already belongs to the new configuration */
        if (s->gen != s->w->gen) {
            if (!move_to_current_generation(s)) s->listener_gone = 1;
            c = cfg(s); /* the old configuration may be gone */
        }
        s->client_started = 0; /* a new exchange: nothing of its answer was sent yet */
        arm(s, c->client_header_ms);
    }
    const char *p = b->data + b->start;
    size_t len = buf_len(b);
    size_t scan = s->cin_scan;
    size_t head_len = h1_find_head_end(p, len, &scan);
    s->cin_scan = (uint32_t)scan;
    if (!head_len) {
        if (len >= c->max_request_line && !memchr(p, '\n', c->max_request_line)) {
            respond_error(s, 414, "Request line too long");
        } else if (len >= c->max_header_bytes || len >= BUF_SIZE) {
            respond_error(s, 431, "Request header fields too large");
        } else if (s->c_eof) {
            respond_error(s, 400, "Bad request: the connection closed inside the request head");
        }
        return s->rs == RS_LOCAL;
    }
    if (head_len > c->max_header_bytes) {
        respond_error(s, 431, "Request header fields too large");
        return 1;
    }
    const char *lf = memchr(p, '\n', head_len);
    if (lf && (size_t)(lf - p) > c->max_request_line) {
        respond_error(s, 414, "Request line too long");
        return 1;
    }

    struct h1_head *h = &s->w->scratch;
    h->max_headers = c->max_headers;
    h->skip_body = 0;
    const char *why = NULL;
    llhttp_t *parser = &s->w->parser;
    h1_parser_init(parser, 1);
    int err = h1_parse_head(parser, h, p, head_len, &why);
    s->keep_alive = 0; /* until the head is known good */
    if (err) {
        log_debug("client %s: malformed request: %s", s->client_ip, why ? why : "?");
        respond_error(s, 400, "Bad request: malformed request head");
        return 1;
    }
    log_begin(s, h);
    if (h->too_many) {
        respond_error(s, 431, "Request header fields too large: too many header lines");
        return 1;
    }
    if (h->bad_value || h->bad_name) {
        respond_error(s, 400, "Bad request: invalid header name, character or line folding");
        return 1;
    }
    int status = h1_check_request(h, p, head_len, &why);
    if (status) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s: %s",
                 status == 505 ? "HTTP version not supported" : "Bad request", why);
        respond_error(s, status, msg);
        return 1;
    }
    if (h->method_id == HTTP_CONNECT && h->method.len == 7) {
        respond_error(s, 405, "Method not allowed: usher is not a forward proxy");
        return 1;
    }
    if (c->max_body_size && !h->complete && !h->chunked && h->content_length > c->max_body_size) {
        log_debug("client %s: Content-Length %llu over the limit of %llu bytes", s->client_ip,
                  (unsigned long long)h->content_length, (unsigned long long)c->max_body_size);
        respond_error(s, 413, "Payload too large: the request body is larger than the limit");
        return 1;
    }
    s->http10 = h->minor == 0;
    s->keep_alive = (s->http10 ? h->conn_keep_alive : !h->conn_close) && !s->listener_gone;
    s->is_head = h->method_id == HTTP_HEAD && h->method.len == 4;
    s->idempotent = h1_method_idempotent(h);
    s->upgrade_req = h->upgrade_i >= 0 && h->conn_upgrade;

    struct buf *rh = take_buf(s, &s->req_head);
    if (!rh) {
        close_now(s);
        return 1;
    }
    rh->start = rh->end = 0;
    s->be = NULL;
    s->pool = route(s, h);
    struct backend *first = &s->pool->backends[0];
    struct h1_request_rewrite rw = {
        .client_ip = s->client_ip,
        .default_host = first->conf->authority,
        .upgrade = s->upgrade_req,
    };
    long n = h1_write_request(h, &rw, rh->data, BUF_SIZE);
    if (n < 0) {
        respond_error(s, 431, "Request header fields too large");
        return 1;
    }
    rh->end = (uint32_t)n;
    b->start += (uint32_t)head_len;
    s->cin_parsed = s->cin_sent = b->start;
    s->rq = h->complete ? RQ_DONE : RQ_BODY;
    body_init(&s->req_body,
              h->complete  ? BODY_NONE
              : h->chunked ? BODY_CHUNKED
                           : BODY_LENGTH,
              h->content_length);
    if (h->chunked && c->max_body_size) body_limit(&s->req_body, c->max_body_size);
    s->body_at = s->w->loop.now;
    s->expect_wait = h->expect_continue;
    s->tried.n = 0;
    s->hash = 0;
    s->fail_status = 0;
    s->retry_same = 0;
    s->attempts = s->stale_retries = 0;
    s->sent_any = s->body_released = s->resp_bytes = s->client_started = 0;
    s->req_abandoned = s->saw_timeout = s->truncated = s->dechunk = 0;
    upstream_start(s);
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
            log_debug("client %s: chunked request body over the limit of %llu bytes", s->client_ip,
                      (unsigned long long)cfg(s)->max_body_size);
            s->keep_alive = 0;
            abandon_upstream(s);
            respond_error(s, 413, "Payload too large: the request body is larger than the limit");
            return 1;
        }
        if (n < 0) {
            log_debug("client %s: malformed chunked request body", s->client_ip);
            s->keep_alive = 0;
            abandon_upstream(s);
            respond_error(s, 400, "Bad request: malformed request body framing");
            return 1;
        }
        s->cin_parsed += (uint32_t)n;
        if (done) s->rq = RQ_DONE;
        return n > 0 || done;
    }
    if (s->c_eof) {
        /* the client went away in the middle of its body: nothing to answer */
        close_now(s);
        return 1;
    }
    return 0;
}

static int request_step(struct session *s)
{
    switch (s->rq) {
    case RQ_IDLE:
    case RQ_HEAD:
        if (s->rs != RS_NONE) return 0;
        if (!s->cin && !s->c_eof) return 0;
        if (!request_head(s)) return 0;
        /* body bytes that came with the head go up in the same write */
        if (s->rq == RQ_BODY && !s->closed) request_body(s);
        return 1;
    case RQ_BODY: return request_body(s);
    default: return 0;
    }
}

/* ---- upstream ------------------------------------------------------------------- */

/* Picks a backend that has not been tried yet and leases a connection to it:
 * a pooled one if there is one, else a new connect. No backend left: 503 (or
 * 504 when the last failures were timeouts). */
static void upstream_start(struct session *s)
{
    struct pool *pool = s->pool;
    struct balance_ctx ctx = {
        .client_ip = s->client_ip,
        .head = s->attempts == 0 ? &s->w->scratch : NULL, /* valid on the first pick only */
        .hash = &s->hash,
    };
    while (s->attempts <= pcfg(s)->retries && s->attempts < BALANCE_MAX_TRIES) {
        struct backend *be = balance_pick(pool, &ctx, &s->tried);
        /* after a stale pooled connection, the same backend (fresh) is fine
         * when there is no other */
        if (!be && s->retry_same && s->be && backend_state(s->be) == BACKEND_UP) be = s->be;
        s->retry_same = 0;
        if (!be) break;
        s->attempts++;
        balance_tried_add(&s->tried, be);
        /* the worker's idle pool holds connections of its current generation only */
        struct upconn *u =
            s->stale_retries || s->gen != s->w->gen ? NULL : upconn_take_idle(s->w, be, s);
        int err = 0;
        if (!u) u = upconn_connect(s->w, be, s, &err);
        if (!u) {
            if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
                /* usher's own shortage, not the backend's fault: no other
                 * backend would fare better, and none is marked down for it */
                log_warn("cannot open a connection to backend %s: %s (usher's limit)",
                         be->conf->url, strerror(-err));
                respond_error(s, 503, "Service unavailable: usher is out of connections");
                return;
            }
            log_warn("backend %s: connect failed (%s)", be->conf->url, strerror(-err));
            backend_failed(s, be, strerror(-err));
            continue;
        }
        s->be = be;
        s->up = u;
        atomic_fetch_add_explicit(&be->inflight, 1, memory_order_relaxed);
        if (pool->ops->on_request_start) pool->ops->on_request_start(pool->balancer, be);
        s->sent_us = pool->ops->on_request_done ? now_us() : 0;
        s->up_eof = 0;
        s->up_err = 0;
        s->uin_scan = 0;
        s->uin_parsed = 0;
        if (s->req_head) {
            s->req_head->start = 0; /* (re)send the head, and the body kept so far */
            if (s->cin) s->cin_sent = s->cin->start;
        }
        s->rs = u->reused ? RS_HEAD : RS_CONNECTING;
        s->up_at = s->w->loop.now; /* this attempt's clock: connect_ms, or response_ms */
        watch_exchange(s);
        return;
    }
    if (s->fail_status == 502)
        respond_error(s, 502, "Bad gateway: the backend closed the connection");
    else if (s->saw_timeout)
        respond_error(s, 504, "Gateway timeout: no backend answered in time");
    else
        respond_error(s, 503, "No healthy backends");
}

/* The upstream connection failed before the response could be forwarded.
 * Retry when it is safe (see DESIGN.md "retries"), else answer 502/503/504. */
static void upstream_failed(struct session *s, int err)
{
    struct upconn *u = s->up;
    int connecting = s->rs == RS_CONNECTING;
    int reused = u && u->reused;
    struct backend *be = s->be;
    if (err == -ETIMEDOUT) s->saw_timeout = 1;
    release_upstream(s, 0);
    drop_buf(s, &s->uin);
    s->req_abandoned = 0;
    if (connecting) {
        /* nothing was sent: always safe to go to the next backend */
        log_warn("backend %s: connect failed (%s)", be->conf->url, strerror(-err));
        backend_failed(s, be, err == -ETIMEDOUT ? "connect timed out" : strerror(-err));
        s->rs = RS_NONE;
        upstream_start(s);
        return;
    }
    /* RFC 9110 9.2.2: a pooled connection that the backend had already closed
     * when the request went out is not the backend's fault; an idempotent
     * request (or one of which nothing was sent) goes again on a fresh
     * connection, possibly to the same backend. Any other failure after
     * sending is the backend's: 502. */
    int replayable =
        !s->resp_bytes && !s->body_released && s->req_head && (s->idempotent || !s->sent_any);
    if (replayable && reused && s->stale_retries < MAX_STALE_RETRIES) {
        s->stale_retries++;
        s->retry_same = 1;
        s->rs = RS_NONE;
        upstream_start(s);
        return;
    }
    log_warn("backend %s: %s before a response (%s)", be->conf->url,
             s->sent_any ? "connection lost" : "connection failed", strerror(-err));
    backend_failed(s, be, err == -ETIMEDOUT ? "no response in time" : strerror(-err));
    if (replayable && s->idempotent && err != -ETIMEDOUT) {
        /* RFC 9110 9.2.2: an idempotent request may go again, to another
         * backend; if there is none, the answer is this failure (502) */
        s->rs = RS_NONE;
        s->fail_status = 502;
        upstream_start(s);
        return;
    }
    if (err == -ETIMEDOUT)
        respond_error(s, 504, "Gateway timeout: the backend did not answer in time");
    else
        respond_error(s, 502, "Bad gateway: the backend closed the connection");
}

static int upstream_write(struct session *s)
{
    struct upconn *u = s->up;
    if (!u->writable || s->req_abandoned) return 0;
    struct iovec iov[2];
    int n = 0;
    struct buf *rh = s->req_head;
    if (rh && rh->start < rh->end)
        iov[n++] = (struct iovec){rh->data + rh->start, rh->end - rh->start};
    struct buf *b = s->cin;
    uint32_t body_end = 0;
    if (b) body_end = s->rs == RS_TUNNEL ? b->end : s->cin_parsed;
    if (b && s->rq != RQ_IDLE && s->rq != RQ_HEAD && s->cin_sent < body_end)
        iov[n++] = (struct iovec){b->data + s->cin_sent, body_end - s->cin_sent};
    if (n == 0) return 0;
    size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);
    ssize_t w = writev(u->io.fd, iov, n);
    if (w < 0) {
        if (errno == EAGAIN) {
            u->writable = 0;
            upconn_want_write(u);
            return 0;
        }
        if (errno == EINTR) return 1;
        /* The backend may have answered and closed (413, say): read what it
         * said before deciding anything. */
        s->up_err = -errno;
        s->req_abandoned = 1;
        u->readable = 1;
        return 1;
    }
    if ((size_t)w < total) {
        u->writable = 0;
        upconn_want_write(u);
    }
    size_t left = (size_t)w;
    s->sent_any = 1;
    s->up_at = s->w->loop.now;
    /* room for more of the body: the client's clock starts again from here */
    if (s->rq == RQ_BODY) s->body_at = s->up_at;
    if (rh && rh->start < rh->end) {
        size_t k = left < rh->end - rh->start ? left : rh->end - rh->start;
        rh->start += (uint32_t)k;
        left -= k;
    }
    if (left) {
        s->cin_sent += (uint32_t)left;
        if (!s->req_head) release_sent_body(s); /* no retry possible: nothing to keep */
    }
    return 1;
}

static int upstream_read(struct session *s)
{
    struct upconn *u = s->up;
    if (!u->readable || s->up_eof) return 0;
    if (s->rs != RS_HEAD && s->rs != RS_BODY && s->rs != RS_TUNNEL) return 0;
    struct buf *b = take_buf(s, &s->uin);
    if (!b) {
        close_now(s);
        return 1;
    }
    if (buf_room(b) == 0) {
        if (b->start == 0) return 0;
        uint32_t shift = b->start;
        buf_compact(b);
        s->uin_parsed -= shift;
    }
    size_t room = buf_room(b);
    ssize_t n = read(u->io.fd, b->data + b->end, room);
    if (n > 0) {
        b->end += (uint32_t)n;
        s->resp_bytes = 1;
        if ((size_t)n < room && !(u->rdhup)) u->readable = 0;
        if (s->rs == RS_TUNNEL)
            s->deadline = s->w->loop.now + cfg(s)->tunnel_idle_ms;
        else
            s->up_at = s->w->loop.now;
        return 1;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (n < 0) s->up_err = -errno;
        s->up_eof = 1;
        u->readable = 0;
        return 1;
    }
    if (errno == EAGAIN) u->readable = 0;
    return errno == EINTR;
}

static int upstream_step(struct session *s)
{
    struct upconn *u = s->up;
    if (!u) return 0;
    int progress = 0;
    if (s->rs == RS_CONNECTING) {
        if (!u->writable && !u->readable) return 0;
        int err = sock_error(u->io.fd);
        if (err) {
            upstream_failed(s, err);
            return 1;
        }
        upconn_connected(u);
        s->rs = RS_HEAD;
        s->up_at = s->w->loop.now;
        progress = 1;
    }
    progress |= upstream_write(s);
    if (s->closed || s->up != u) return 1;
    progress |= upstream_read(s);
    return progress;
}

/* ---- response ------------------------------------------------------------------- */

/* Appends the rewritten head of the scratch response to res_out. */
static int append_out(struct session *s, const struct h1_response_rewrite *rw)
{
    struct buf *o = take_buf(s, &s->res_out);
    if (!o) return -1;
    buf_compact(o);
    long n = h1_write_response(&s->w->scratch, rw, o->data + o->end, buf_room(o));
    if (n < 0) return -1;
    o->end += (uint32_t)n;
    return 0;
}

static int response_head(struct session *s)
{
    struct buf *b = s->uin;
    if (!b || buf_len(b) == 0) {
        if (s->up_eof) {
            upstream_failed(s, s->up_err ? s->up_err : -ECONNRESET);
            return 1;
        }
        return 0;
    }
    const char *p = b->data + b->start;
    size_t len = buf_len(b);
    size_t scan = s->uin_scan;
    size_t head_len = h1_find_head_end(p, len, &scan);
    s->uin_scan = (uint32_t)scan;
    if (!head_len) {
        if (len >= BUF_SIZE || s->up_eof) {
            log_warn("backend %s: %s", s->be->conf->url,
                     s->up_eof ? "closed the connection inside the response head"
                               : "response head larger than the buffer");
            backend_failed(s, s->be, "invalid response");
            respond_error(s, 502, "Bad gateway: invalid response from the backend");
            return 1;
        }
        return 0;
    }
    struct h1_head *h = &s->w->scratch;
    h->max_headers = H1_MAX_HEADERS;
    h->skip_body = s->is_head;
    const char *why = NULL;
    llhttp_t *parser = &s->w->parser;
    h1_parser_init(parser, 0);
    int err = h1_parse_head(parser, h, p, head_len, &why);
    if (!err && !h->too_many && !h->bad_value && !h->bad_name &&
        h1_check_response(h, p, head_len, &why)) {
        log_warn("backend %s: invalid response head (%s)", s->be->conf->url, why);
        backend_failed(s, s->be, "invalid response");
        respond_error(s, 502, "Bad gateway: invalid response from the backend");
        return 1;
    }
    if (err || h->too_many || h->bad_value || h->bad_name) {
        log_warn("backend %s: invalid response head (%s)", s->be->conf->url,
                 err           ? (why ? why : "?")
                 : h->too_many ? "too many headers"
                               : "bad header value");
        backend_failed(s, s->be, "invalid response");
        respond_error(s, 502, "Bad gateway: invalid response from the backend");
        return 1;
    }
    /* a response has begun: no retry from here on */
    drop_buf(s, &s->req_head);
    release_sent_body(s);
    if (h->status >= 200) report_done(s, BALANCE_OK);
    if (h->status < 200) {
        if (h->status == 101) {
            if (!s->upgrade_req) {
                log_warn("backend %s: 101 Switching Protocols without an upgrade request",
                         s->be->conf->url);
                respond_error(s, 502, "Bad gateway: invalid response from the backend");
                return 1;
            }
            struct h1_response_rewrite rw = {.dechunk = 0, .conn = H1_CONN_UPGRADE};
            if (append_out(s, &rw) < 0) {
                respond_error(s, 502, "Bad gateway: response head too large");
                return 1;
            }
            b->start += (uint32_t)head_len;
            s->uin_parsed = b->start;
            /* what follows the request head (if anything) is tunnel data */
            if (s->cin) s->cin_parsed = s->cin->end;
            s->rs = RS_TUNNEL;
            s->rq = RQ_DONE;
            s->log_status = 101;
            s->keep_alive = 0;
            s->client_started = 1;
            arm(s, cfg(s)->tunnel_idle_ms);
            return 1;
        }
        /* RFC 9110 15.2: interim responses go on, except to HTTP/1.0 clients */
        if (!s->http10) {
            struct h1_response_rewrite rw = {.dechunk = 0, .conn = H1_CONN_NONE};
            if (append_out(s, &rw) < 0) {
                respond_error(s, 502, "Bad gateway: response head too large");
                return 1;
            }
        }
        b->start += (uint32_t)head_len;
        s->uin_scan = 0;
        if (b->start == b->end) b->start = b->end = 0;
        /* (100 Continue) the client may send its body from now on */
        s->expect_wait = 0;
        s->body_at = s->w->loop.now;
        return 1;
    }
    /* RFC 9110 6.4.1: no content after HEAD, 204 or 304, whatever the head says
     * (and never forward the bytes that follow, nor reuse that connection) */
    if (s->is_head || h->status == 204 || h->status == 304) h->complete = 1;
    int close_delimited = !h->complete && !h->chunked && !h->has_cl;
    if (s->w->draining) s->keep_alive = 0; /* shutting down: say so in this response */
    s->dechunk = h->chunked && s->http10 && !h->complete;
    /* an answer before the request body ended: the rest of that body would be
     * read as the next request, so the connection ends, and says so (RFC 9112 9.6) */
    if (close_delimited || s->dechunk || s->upgrade_req || s->req_abandoned || s->rq != RQ_DONE)
        s->keep_alive = 0;
    s->up_keepalive = !close_delimited && !h->conn_close && !(h->minor == 0 && !h->conn_keep_alive);
    struct h1_response_rewrite rw = {
        .dechunk = s->dechunk,
        .conn = !s->keep_alive ? H1_CONN_CLOSE
                : s->http10    ? H1_CONN_KEEP_ALIVE
                               : H1_CONN_NONE,
    };
    char extra[256]; /* a balancer's header line (sticky: its Set-Cookie) */
    const struct balancer_ops *ops = s->pool->ops;
    if (ops->response_header) {
        rw.extra_len = ops->response_header(s->pool->balancer, s->be, extra, sizeof(extra));
        rw.extra = rw.extra_len ? extra : NULL;
    }
    body_init(&s->res_body,
              h->complete  ? BODY_NONE
              : h->chunked ? BODY_CHUNKED
              : h->has_cl  ? BODY_LENGTH
                           : BODY_CLOSE,
              h->content_length);
    if (append_out(s, &rw) < 0) {
        respond_error(s, 502, "Bad gateway: response head too large");
        return 1;
    }
    b->start += (uint32_t)head_len;
    s->uin_parsed = b->start;
    s->log_status = h->status;
    s->rs = h->complete ? RS_DONE : RS_BODY;
    return 1;
}

static int response_body(struct session *s)
{
    struct buf *b = s->uin;
    if (b && s->uin_parsed < b->end) {
        int done;
        long n;
        uint32_t avail = b->end - s->uin_parsed;
        if (s->dechunk) {
            char *out = b->data + s->uin_parsed;
            n = body_parse(&s->res_body, out, avail, &done, &out);
            if (n >= 0) {
                if ((uint32_t)n < avail) s->up_keepalive = 0; /* bytes after the end */
                b->end = (uint32_t)(out - b->data);
                s->uin_parsed = b->end;
            }
        } else {
            n = body_parse(&s->res_body, b->data + s->uin_parsed, avail, &done, NULL);
            if (n >= 0) s->uin_parsed += (uint32_t)n;
        }
        if (n < 0) {
            log_warn("backend %s: invalid chunked framing in a response body", s->be->conf->url);
            backend_failed(s, s->be, "invalid response body");
            s->truncated = 1;
            s->rs = RS_DONE;
            return 1;
        }
        if (done) s->rs = RS_DONE;
        return 1;
    }
    if (s->up_eof) {
        if (s->res_body.kind == BODY_CLOSE) {
            s->up_keepalive = 0; /* the close is the end of this body */
        } else {
            log_warn("backend %s: connection closed in the middle of a response body",
                     s->be->conf->url);
            backend_failed(s, s->be, "connection closed mid-response");
            s->truncated = 1;
        }
        s->rs = RS_DONE;
        return 1;
    }
    return 0;
}

static int response_step(struct session *s)
{
    switch (s->rs) {
    case RS_HEAD: {
        int p = response_head(s);
        /* parse the body bytes that came with the head, so that head and body
         * leave in one write */
        if (s->rs == RS_BODY && !s->closed) response_body(s);
        return p;
    }
    case RS_BODY: return response_body(s);
    default: return 0;
    }
}

/* ---- writing to the client ------------------------------------------------------- */

/* EPOLLOUT is watched only once a write has blocked (see upconn_connected). */
static void client_want_write(struct session *s)
{
    if (!s->c_out_armed &&
        loop_mod(&s->w->loop, &s->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == 0)
        s->c_out_armed = 1;
}

static int client_write(struct session *s)
{
    if (!s->c_writable || s->lingering) return 0;
    struct iovec iov[2];
    int n = 0;
    struct buf *o = s->res_out;
    if (o && o->start < o->end) iov[n++] = (struct iovec){o->data + o->start, o->end - o->start};
    struct buf *b = s->uin;
    uint32_t body_end = 0;
    if (b) {
        if (s->rs == RS_TUNNEL)
            body_end = b->end;
        else if (s->rs == RS_BODY || s->rs == RS_DONE)
            body_end = s->uin_parsed;
        if (b->start < body_end) iov[n++] = (struct iovec){b->data + b->start, body_end - b->start};
    }
    if (n == 0) return 0;
    size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);
    ssize_t w = writev(s->io.fd, iov, n);
    if (w < 0) {
        if (errno == EAGAIN) {
            s->c_writable = 0;
            client_want_write(s);
            return 0;
        }
        if (errno == EINTR) return 1;
        close_now(s); /* the client is gone */
        return 1;
    }
    if ((size_t)w < total) {
        s->c_writable = 0;
        client_want_write(s);
    }
    size_t left = (size_t)w;
    if (o && o->start < o->end) {
        size_t k = left < o->end - o->start ? left : o->end - o->start;
        o->start += (uint32_t)k;
        left -= k;
        if (o->start == o->end) drop_buf(s, &s->res_out);
    }
    if (left) {
        b->start += (uint32_t)left;
        s->log_bytes += left;
        s->client_started = 1;
        if (b->start == b->end) {
            b->start = b->end = 0;
            s->uin_parsed = 0;
        }
    }
    if (s->rs == RS_LOCAL || s->rs == RS_BODY || s->rs == RS_DONE) s->client_started = 1;
    return 1;
}

/* ---- end of an exchange ------------------------------------------------------------- */

static int flushed(const struct session *s)
{
    if (s->res_out && s->res_out->start < s->res_out->end) return 0;
    if (s->uin && s->rs == RS_TUNNEL) return s->uin->start == s->uin->end;
    return !s->uin || s->uin->start >= s->uin_parsed;
}

/* Between two requests: from now on, the configuration in force. Returns 0
 * when the session's listener is not part of it any more. */
static int move_to_current_generation(struct session *s)
{
    struct generation *old = s->gen, *g = s->w->gen;
    const struct sock_addr *a = &old->cfg->listeners[s->listener].addr;
    int found = -1;
    for (uint32_t i = 0; i < g->cfg->nlisteners && found < 0; i++) {
        const struct sock_addr *b = &g->cfg->listeners[i].addr;
        if (a->len == b->len && !memcmp(&a->sa, &b->sa, a->len)) found = (int)i;
    }
    if (found < 0) return 0;
    gen_acquire(g);
    s->gen = g;
    s->listener = (uint16_t)found;
    s->pool = &g->pools[g->cfg->listeners[found].pool];
    gen_release(old);
    return 1;
}

static void next_request(struct session *s)
{
    /* whatever is left of the request just answered (a body usher answered
     * without sending on, say) is not the next request */
    if (s->cin && s->cin->start < s->cin_parsed) {
        s->cin->start = s->cin_parsed;
        s->cin_sent = s->cin_parsed;
        if (s->cin->start == s->cin->end) s->cin->start = s->cin->end = 0;
    }
    s->rq = RQ_IDLE;
    s->rs = RS_NONE;
    s->be = NULL;
    s->cin_scan = 0;
    drop_buf(s, &s->req_head);
    drop_buf(s, &s->uin);
    drop_buf(s, &s->res_out);
    if (s->cin && buf_len(s->cin) == 0) {
        drop_buf(s, &s->cin);
        s->cin_parsed = 0;
    }
    if (s->gen != s->w->gen && !move_to_current_generation(s)) {
        linger_close(s, 1); /* its listener is gone with the reload */
        return;
    }
    arm(s, cfg(s)->client_idle_ms);
    if (s->w->draining && !s->cin) linger_close(s, 1); /* shutting down: no next request */
}

static int exchange_end(struct session *s)
{
    if (s->lingering) return 0;
    if (s->rs == RS_TUNNEL) {
        /* a tunnel ends when either side has closed and what it sent is through */
        int up_done = s->up_eof && flushed(s);
        int client_done = s->c_eof && (!s->cin || s->cin->start == s->cin->end);
        if (up_done || client_done) {
            close_now(s);
            return 1;
        }
        return 0;
    }
    if (s->rs == RS_LOCAL) {
        if (!flushed(s)) return 0;
        log_end(s);
        if (s->keep_alive && s->rq == RQ_DONE)
            next_request(s);
        else
            linger_close(s, 1); /* an error: the client may still be sending */
        return 1;
    }
    if (s->rs != RS_DONE || !flushed(s)) return 0;
    if (s->truncated) {
        /* the client must see the response cut short: close without an end */
        close_now(s);
        return 1;
    }
    if (s->rq != RQ_DONE) {
        /* the backend answered before the request body ended: that body will
         * not be read by anyone, so neither connection can carry another request */
        linger_close(s, 1);
        return 1;
    }
    log_end(s);
    int reusable = s->up_keepalive && !s->up_eof && !s->req_abandoned && s->gen == s->w->gen &&
                   (!s->uin || s->uin_parsed == s->uin->end);
    health_passive_success(s->be); /* a whole response: failures in a row start again */
    release_upstream(s, reusable);
    if (!s->keep_alive) {
        linger_close(s, 0);
        return 1;
    }
    next_request(s);
    return 1;
}

/* ---- driving ------------------------------------------------------------------------ */

static void session_progress(struct session *s)
{
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int p = client_read(s);
        if (s->closed) return;
        p |= request_step(s);
        if (s->closed) return;
        p |= upstream_step(s);
        if (s->closed) return;
        p |= response_step(s);
        if (s->closed) return;
        p |= client_write(s);
        if (s->closed) return;
        p |= exchange_end(s);
        if (s->closed) return;
        if (!p) {
            watch_exchange(s);
            return;
        }
    }
    /* still busy: let other connections run, come back on the next iteration */
    s->resume = 1;
    loop_timer_at(&s->w->loop, &s->timer, s->w->loop.now);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
    struct session *s = (struct session *)((char *)t - offsetof(struct session, timer));
    int client = 0;
    uint64_t due = in_exchange(s) ? exchange_due(s, &client) : s->deadline;
    if (s->resume) {
        s->resume = 0;
        loop_timer_at(loop, &s->timer, due);
        session_progress(s);
        return;
    }
    if (loop->now < due) {
        loop_timer_at(loop, &s->timer, due);
        return;
    }
    if (client) {
        /* the client stopped sending its body (or closes, if part of a
         * response went out already); not the backend's fault */
        log_debug("client %s: no request body byte within %u ms", s->client_ip,
                  cfg(s)->client_body_ms);
        abandon_upstream(s);
        respond_error(s, 408, "Request timeout: the request body stopped arriving");
    } else if (s->lingering || s->rs == RS_TUNNEL || s->rs == RS_BODY || s->rs == RS_LOCAL ||
               (s->rq == RQ_IDLE && s->rs == RS_NONE)) {
        close_now(s);
        return;
    } else if (s->rq == RQ_HEAD && s->rs == RS_NONE) {
        respond_error(s, 408, "Request timeout: the request head did not arrive in time");
    } else if (s->rs == RS_CONNECTING) {
        upstream_failed(s, -ETIMEDOUT);
    } else if (s->rs == RS_HEAD) {
        log_warn("backend %s: no response within %u ms", s->be->conf->url, pcfg(s)->response_ms);
        backend_failed(s, s->be, "no response in time");
        respond_error(s, 504, "Gateway timeout: the backend did not answer in time");
    } else {
        close_now(s);
        return;
    }
    if (!s->closed) session_progress(s);
}

static void on_client_event(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct session *s = (struct session *)io;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->c_readable = 1;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->c_rdhup = 1;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->c_writable = 1;
    session_progress(s);
}

void session_on_upstream(struct session *s, struct upconn *u, uint32_t events)
{
    if (s->closed || s->up != u) return;
    session_progress(s);
}

void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                    uint32_t listener)
{
    struct session *s = w->free_sessions;
    if (s)
        w->free_sessions = s->next;
    else if (!(s = malloc(sizeof(*s)))) {
        close(fd);
        return;
    }
    memset(s, 0, sizeof(*s));
    s->io.fd = fd;
    s->io.cb = on_client_event;
    s->timer.cb = on_timer;
    s->defer.fn = session_free;
    s->w = w;
    s->listener = (uint16_t)listener;
    s->gen = w->gen;
    gen_acquire(s->gen);
    s->pool = &s->gen->pools[s->gen->cfg->listeners[listener].pool];
    sock_ip_str(peer, s->client_ip, sizeof(s->client_ip));
    (void)peer_len;
    sock_nodelay(fd);
    if (loop_add(&w->loop, &s->io, EPOLLIN | EPOLLRDHUP | EPOLLET) < 0) {
        close(fd);
        s->next = w->free_sessions;
        w->free_sessions = s;
        return;
    }
    s->next = w->sessions;
    if (w->sessions) w->sessions->prev = s;
    w->sessions = s;
    w->nsessions++;
    s->c_writable = 1;
    s->c_readable = 1; /* the request often arrives with the connection: try at once */
    arm(s, cfg(s)->client_header_ms);
    session_progress(s);
}

void session_close_idle(struct worker *w)
{
    struct session *s = w->sessions;
    while (s) {
        struct session *next = s->next;
        /* a FIN, not a reset: a request the client sends at this very moment
         * is read and dropped, and the client sees a clean close it may retry */
        if (s->rq == RQ_IDLE && s->rs == RS_NONE && !s->cin && !s->lingering) linger_close(s, 1);
        s = next;
    }
}

void session_close_all(struct worker *w)
{
    while (w->sessions) close_now(w->sessions);
}

void session_free_cache(struct worker *w)
{
    while (w->free_sessions) {
        struct session *s = w->free_sessions;
        w->free_sessions = s->next;
        free(s);
    }
}
