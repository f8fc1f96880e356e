/* h1_backend: the HTTP/1 backend side of an exchange. See h1_backend.h. */
#include "proxy/h1_backend.h"

#include <errno.h>
#include <stdio.h>

#include "core/log.h"
#include "proxy/proxy.h"

void h1_backend_on_event(void *owner, struct upconn *u)
{
    struct exchange *x = owner;
    if (x->up != u) return;
    x->ops->wake(x);
}

static int backend_write(struct exchange *x)
{
    struct upconn *u = x->up;
    if (!u->conn.writable || x->req_abandoned) return 0;
    struct iovec iov[2];
    int n = 0;
    struct buf *rh = x->req_head;
    if (rh && rh->start < rh->end)
        iov[n++] = (struct iovec){rh->data + rh->start, rh->end - rh->start};
    n += x->ops->body_ready(x, &iov[n]);
    if (n == 0) return 0;
    ssize_t w = conn_writev(&u->conn, iov, n);
    if (w < 0) {
        if (w == -EAGAIN) return 0;
        if (w == -EINTR) return 1;
        /* The backend may have answered and closed (413, say): read what it
         * said before deciding anything. */
        x->up_err = (int)w;
        x->req_abandoned = 1;
        u->conn.readable = 1;
        return 1;
    }
    size_t left = (size_t)w;
    if (x->st) STATS_ADD(x->st->bytes_out, left);
    x->sent_any = 1;
    x->up_at = x->px->loop->now;
    if (rh && rh->start < rh->end) {
        size_t k = left < rh->end - rh->start ? left : rh->end - rh->start;
        rh->start += (uint32_t)k;
        left -= k;
    }
    x->ops->body_sent(x, left);
    return 1;
}

static int backend_read(struct exchange *x)
{
    struct upconn *u = x->up;
    if (!u->conn.readable || x->up_eof) return 0;
    if (x->rs != RS_HEAD && x->rs != RS_BODY) return 0;
    struct buf *b = x->uin;
    if (!b && !(b = x->uin = buf_get(&x->px->bufs))) {
        x->ops->abort(x);
        return 1;
    }
    if (buf_room(b) == 0) {
        if (b->start == 0) return 0;
        uint32_t shift = b->start;
        buf_compact(b);
        x->uin_parsed -= shift;
    }
    ssize_t n = conn_read(&u->conn, b->data + b->end, buf_room(b));
    if (n > 0) {
        b->end += (uint32_t)n;
        if (x->st) STATS_ADD(x->st->bytes_in, n);
        x->resp_bytes = 1;
        x->up_at = x->px->loop->now;
        return 1;
    }
    if (n == -EAGAIN) return 0;
    if (n == -EINTR) return 1;
    if (n < 0) x->up_err = (int)n;
    x->up_eof = 1;
    return 1;
}

int h1_backend_io(struct exchange *x)
{
    struct upconn *u = x->up;
    if (!u) return 0;
    int progress = 0;
    if (x->rs == RS_CONNECTING) {
        if (!u->conn.writable && !u->conn.readable) return 0;
        /* the TLS handshake is part of connecting: nothing of the request
         * has gone when it fails, so the request may go elsewhere */
        char why[256];
        int err = upconn_connected(u, why, sizeof(why));
        if (err == -EAGAIN) return 0;
        if (err) {
            exchange_failed_why(x, err, why);
            return 1;
        }
        x->rs = RS_HEAD;
        x->up_at = x->px->loop->now;
        progress = 1;
    }
    progress |= backend_write(x);
    if (x->up != u) return 1;
    progress |= backend_read(x);
    return progress;
}

/* The response is not one usher can pass on: 502, and the backend is blamed. */
static void invalid_response(struct exchange *x, const char *what)
{
    log_warn("backend %s: %s", x->be->conf->url, what);
    exchange_backend_failed(x, "invalid response");
    x->ops->respond(x, 502, "Bad gateway: invalid response from the backend");
}

static int response_head(struct exchange *x)
{
    struct buf *b = x->uin;
    if (!b || buf_len(b) == 0) {
        if (x->up_eof) {
            int err = x->up_err ? x->up_err : -ECONNRESET;
            char why[160];
            exchange_failed_why(x, err, upconn_why(x->up, err, why, sizeof(why)));
            return 1;
        }
        return 0;
    }
    const char *p = b->data + b->start;
    size_t len = buf_len(b);
    size_t scan = x->uin_scan;
    size_t head_len = h1_find_head_end(p, len, &scan);
    x->uin_scan = (uint16_t)scan;
    if (!head_len) {
        if (len >= BUF_SIZE || x->up_eof) {
            invalid_response(x, x->up_eof ? "closed the connection inside the response head"
                                          : "response head larger than the buffer");
            return 1;
        }
        return 0;
    }
    struct h1_head *h = &x->px->scratch;
    h->max_headers = H1_MAX_HEADERS;
    h->skip_body = x->is_head;
    const char *why = NULL;
    llhttp_t *parser = &x->px->parser;
    h1_parser_init(parser, 0);
    int err = h1_parse_head(parser, h, p, head_len, &why);
    struct h1_response_plan plan;
    h1_plan_response(h, p, head_len, err, why, x->is_head, x->upgrade_req, &plan);
    if (plan.kind == H1_RES_INVALID && plan.backend_fault) {
        char what[160];
        snprintf(what, sizeof(what), "invalid response head (%s)", plan.why);
        invalid_response(x, what);
        return 1;
    }
    /* a response has begun: no retry from here on */
    buf_put(&x->px->bufs, x->req_head);
    x->req_head = NULL;
    x->ops->body_release(x);
    if (plan.kind == H1_RES_INVALID) { /* a 101 nobody asked for */
        log_warn("backend %s: %s", x->be->conf->url, plan.why);
        x->ops->respond(x, 502, "Bad gateway: invalid response from the backend");
        return 1;
    }
    if (plan.kind == H1_RES_FINAL) exchange_report_ok(x, h->status);
    if (plan.kind == H1_RES_FINAL) body_init(&x->res_body, plan.body, h->content_length);
    if (x->ops->response_head(x, h, &plan) < 0) {
        x->ops->respond(x, 502, "Bad gateway: response head too large");
        return 1;
    }
    b->start += (uint32_t)head_len;
    switch (plan.kind) {
    case H1_RES_UPGRADE:
        x->uin_parsed = (uint16_t)b->start;
        x->rs = RS_TUNNEL;
        break;
    case H1_RES_INTERIM:
        x->uin_scan = 0;
        if (b->start == b->end) b->start = b->end = 0;
        break;
    default:
        x->up_keepalive = plan.backend_keepalive;
        x->uin_parsed = (uint16_t)b->start;
        x->rs = h->complete ? RS_DONE : RS_BODY;
        break;
    }
    return 1;
}

static int response_body(struct exchange *x)
{
    struct buf *b = x->uin;
    if (b && x->uin_parsed < b->end) {
        int done;
        long n;
        uint32_t avail = b->end - x->uin_parsed;
        if (x->dechunk) {
            char *out = b->data + x->uin_parsed;
            n = body_parse(&x->res_body, out, avail, &done, &out);
            if (n >= 0) {
                if ((uint32_t)n < avail) x->up_keepalive = 0; /* bytes after the end */
                b->end = (uint32_t)(out - b->data);
                x->uin_parsed = (uint16_t)b->end;
            }
        } else {
            n = body_parse(&x->res_body, b->data + x->uin_parsed, avail, &done, NULL);
            if (n >= 0) x->uin_parsed += (uint16_t)n;
        }
        if (n < 0) {
            log_warn("backend %s: invalid chunked framing in a response body", x->be->conf->url);
            exchange_backend_failed(x, "invalid response body");
            x->truncated = 1;
            x->rs = RS_DONE;
            return 1;
        }
        if (done) x->rs = RS_DONE;
        return 1;
    }
    if (x->up_eof) {
        if (x->res_body.kind == BODY_CLOSE) {
            x->up_keepalive = 0; /* the close is the end of this body */
        } else {
            log_warn("backend %s: connection closed in the middle of a response body",
                     x->be->conf->url);
            exchange_backend_failed(x, "connection closed mid-response");
            x->truncated = 1;
        }
        x->rs = RS_DONE;
        return 1;
    }
    return 0;
}

int h1_backend_response(struct exchange *x)
{
    switch (x->rs) {
    case RS_HEAD: {
        int p = response_head(x);
        /* parse the body bytes that came with the head, so that head and body
         * leave in one write */
        if (x->rs == RS_BODY) response_body(x);
        return p;
    }
    case RS_BODY: return response_body(x);
    default: return 0;
    }
}
