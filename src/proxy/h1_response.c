/* h1_response: the HTTP/1 client connection's side of an exchange: what the
 * exchange asks of it (struct exchange_ops: the request body ready to go up,
 * the response head to write), writing the response to the client, the
 * tunnel after a 101, and the end of an exchange (the next request on a
 * keep-alive connection, or the close). See session.h. */
#include <errno.h>
#include <string.h>

#include "core/sock.h"
#include "proxy/reqlog.h"
#include "proxy/session.h"

/* ---- what the exchange asks of the client side -------------------------------------- */

static int x_body_ready(struct exchange *x, struct iovec *iov)
{
    struct session *s = session_of(x);
    struct buf *b = s->cin;
    if (!b || s->rq == RQ_IDLE || s->rq == RQ_HEAD || s->cin_sent >= s->cin_parsed) return 0;
    *iov = (struct iovec){b->data + s->cin_sent, s->cin_parsed - s->cin_sent};
    return 1;
}

static void x_body_sent(struct exchange *x, size_t n)
{
    struct session *s = session_of(x);
    /* room for more of the body: the client's clock starts again from here */
    if (s->rq == RQ_BODY) s->body_at = x->up_at;
    if (!n) return;
    s->cin_sent += (uint16_t)n;
    if (!x->req_head) session_release_sent_body(s); /* no retry possible: nothing to keep */
}

static void x_body_rewind(struct exchange *x)
{
    struct session *s = session_of(x);
    if (s->cin) s->cin_sent = (uint16_t)s->cin->start;
}

static void x_body_release(struct exchange *x)
{
    session_release_sent_body(session_of(x));
}

/* Appends the rewritten response head h to res_out. */
static int append_out(struct session *s, const struct h1_head *h,
                      const struct h1_response_rewrite *rw)
{
    struct buf *o = take_buf(s, &s->res_out);
    if (!o) return -1;
    buf_compact(o);
    long n = h1_write_response(h, rw, o->data + o->end, buf_room(o));
    if (n < 0) return -1;
    o->end += (uint32_t)n;
    return 0;
}

static int x_response_head(struct exchange *x, const struct h1_head *h,
                           const struct h1_response_plan *p)
{
    struct session *s = session_of(x);
    struct proxy_worker *px = px_of(s);
    if (p->kind == H1_RES_UPGRADE) {
        struct h1_response_rewrite rw = {.dechunk = 0, .conn = H1_CONN_UPGRADE};
        if (append_out(s, h, &rw) < 0) return -1;
        /* what follows the request head (if anything) is tunnel data */
        if (s->cin) s->cin_parsed = (uint16_t)s->cin->end;
        s->tun =
            (struct tunnel){.a_eof = s->c_eof, .b_eof = x->up_eof, .b_failed = x->req_abandoned};
        s->rq = RQ_DONE;
        reqlog_status(s->logrec, 101);
        exchange_client_status(s->lstats, 101);
        s->keep_alive = 0;
        s->client_started = 1;
        arm(s, cfg(s)->tunnel_idle_ms);
        return 0;
    }
    if (p->kind == H1_RES_INTERIM) {
        /* RFC 9110 15.2: interim responses go on, except to HTTP/1.0 clients */
        if (!s->http10) {
            struct h1_response_rewrite rw = {.dechunk = 0, .conn = H1_CONN_NONE};
            if (append_out(s, h, &rw) < 0) return -1;
        }
        /* (100 Continue) the client may send its body from now on */
        s->expect_wait = 0;
        s->body_at = px->loop->now;
        return 0;
    }
    struct h1_client_plan cp;
    int must_close = px->draining /* shutting down: say so in this response */
                     || x->upgrade_req || x->req_abandoned || s->rq != RQ_DONE;
    h1_plan_client(h, p, s->http10, s->keep_alive, must_close, &cp);
    s->keep_alive = cp.keep_alive;
    x->dechunk = cp.dechunk;
    struct h1_response_rewrite rw; /* extra[] is read up to nextra only */
    rw.dechunk = cp.dechunk;
    rw.conn = cp.conn;
    rw.nextra = 0;
    char extra[256]; /* a balancer's header line (sticky: its Set-Cookie) */
    size_t n = exchange_extra_header(x, extra, sizeof(extra));
    if (n) rw.extra[rw.nextra++] = (struct h1_extra){{extra, (uint32_t)n}, 0};
    char hsts[H1_HSTS_MAX]; /* RFC 6797 7.1: the backend's own policy wins */
    if ((n = session_hsts(s, hsts, sizeof(hsts))))
        rw.extra[rw.nextra++] = (struct h1_extra){{hsts, (uint32_t)n}, 1};
    if (append_out(s, h, &rw) < 0) return -1;
    reqlog_status(s->logrec, h->status);
    exchange_client_status(s->lstats, h->status);
    return 0;
}

static void x_respond(struct exchange *x, int status, const char *msg)
{
    session_respond_error(session_of(x), status, msg);
}

static void x_abort(struct exchange *x)
{
    session_close(session_of(x));
}

static void x_wake(struct exchange *x)
{
    struct session *s = session_of(x);
    if (!s->closed) session_progress(s);
}

const struct exchange_ops h1_exchange_ops = {
    .body_ready = x_body_ready,
    .body_sent = x_body_sent,
    .body_rewind = x_body_rewind,
    .body_release = x_body_release,
    .response_head = x_response_head,
    .respond = x_respond,
    .abort = x_abort,
    .wake = x_wake,
};

/* ---- writing to the client ------------------------------------------------------- */

int session_client_write(struct session *s)
{
    if (!s->c.writable || s->lingering) return 0;
    struct iovec iov[2];
    int n = 0;
    struct buf *o = s->res_out;
    if (o && o->start < o->end) iov[n++] = (struct iovec){o->data + o->start, o->end - o->start};
    struct buf *b = s->x.uin;
    uint32_t body_end = 0;
    if (b) {
        if (s->x.rs == RS_BODY || s->x.rs == RS_DONE) body_end = s->x.uin_parsed;
        if (b->start < body_end) iov[n++] = (struct iovec){b->data + b->start, body_end - b->start};
    }
    if (n == 0) return 0;
    ssize_t w = conn_writev(&s->c, iov, n);
    if (w < 0) {
        if (w == -EAGAIN) return 0;
        if (w == -EINTR) return 1;
        session_close(s); /* the client is gone */
        return 1;
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
        reqlog_bytes(s->logrec, left);
        s->client_started = 1;
        if (b->start == b->end) {
            b->start = b->end = 0;
            s->x.uin_parsed = 0;
        }
    }
    if (s->x.rs == RS_LOCAL || s->x.rs == RS_BODY || s->x.rs == RS_DONE) s->client_started = 1;
    return 1;
}

/* ---- after a 101: a tunnel ----------------------------------------------------------- */

int session_tunnel_progress(struct session *s)
{
    struct exchange *x = &s->x;
    const struct tunnel_io io = {
        .a = &s->c,
        .b = &x->up->conn,
        .ab = &s->cin,
        .ba = &x->uin,
        .ba_head = &s->res_out,
        .bufs = &px_of(s)->bufs,
    };
    int read_any = 0;
    uint64_t to_a = 0;
    int r = tunnel_step(&s->tun, &io, &read_any, &to_a);
    if (r < 0 || tunnel_done(&s->tun, &io)) {
        reqlog_bytes(s->logrec, to_a);
        session_close(s);
        return 1;
    }
    if (read_any) s->deadline = px_of(s)->loop->now + cfg(s)->tunnel_idle_ms;
    reqlog_bytes(s->logrec, to_a);
    return r;
}

/* ---- end of an exchange ------------------------------------------------------------- */

static int flushed(const struct session *s)
{
    if (s->res_out && s->res_out->start < s->res_out->end) return 0;
    return !s->x.uin || s->x.uin->start >= s->x.uin_parsed;
}

/* Between two requests: from now on, the configuration in force. Returns 0
 * when the session's listener is not part of it any more. */
int session_move_generation(struct session *s)
{
    struct generation *old = s->x.gen, *g = px_of(s)->gen;
    const struct sock_addr *a = &old->cfg->listeners[s->listener].addr;
    int found = -1;
    for (uint32_t i = 0; i < g->cfg->nlisteners && found < 0; i++) {
        const struct sock_addr *b = &g->cfg->listeners[i].addr;
        if (a->len == b->len && !memcmp(&a->sa, &b->sa, a->len)) found = (int)i;
    }
    if (found < 0) return 0;
    gen_acquire(g);
    s->x.gen = g;
    s->listener = (uint16_t)found;
    s->x.pool = &g->pools[g->cfg->listeners[found].pool];
    s->http_extras = listener_extras(listener_of(s));
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
    s->x.rs = RS_NONE;
    s->x.be = NULL;
    s->cin_scan = 0;
    drop_buf(s, &s->x.req_head);
    drop_buf(s, &s->x.uin);
    drop_buf(s, &s->res_out);
    if (s->cin && buf_len(s->cin) == 0) {
        drop_buf(s, &s->cin);
        s->cin_parsed = 0;
    }
    arm(s, cfg(s)->client_idle_ms);
    /* The response said keep-alive, so the client may be sending its next
     * request already: it is answered (with Connection: close) if it comes
     * within the settle time, and the connection closes after it. */
    if (s->x.gen != px_of(s)->gen && !session_move_generation(s)) {
        s->listener_gone = 1; /* its listener is gone with the reload */
        if (!s->cin) session_settle(s);
        return;
    }
    if (px_of(s)->draining && !s->cin) session_settle(s); /* shutting down */
}

int session_exchange_end(struct session *s)
{
    struct exchange *x = &s->x;
    if (s->lingering) return 0;
    if (x->rs == RS_LOCAL) {
        if (!flushed(s)) return 0;
        session_log_end(s);
        if (s->keep_alive && s->rq == RQ_DONE)
            next_request(s);
        else
            session_linger(s, 1); /* an error: the client may still be sending */
        return 1;
    }
    if (x->rs != RS_DONE || !flushed(s)) return 0;
    if (x->truncated) {
        /* the client must see the response cut short: close without an end */
        session_close(s);
        return 1;
    }
    if (s->rq != RQ_DONE) {
        /* the backend answered before the request body ended: that body will
         * not be read by anyone, so neither connection can carry another request */
        session_linger(s, 1);
        return 1;
    }
    session_log_end(s);
    exchange_finish(x);
    if (!s->keep_alive) {
        session_linger(s, 0);
        return 1;
    }
    next_request(s);
    return 1;
}
