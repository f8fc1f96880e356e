/* exchange: pick, lease, attempts, retries, reports. See exchange.h.
 * The HTTP/1 backend codec that moves the bytes is h1_backend.c. */
#include "proxy/exchange.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "upstream/health.h"

#define MAX_STALE_RETRIES 3 /* re-sends after a reused connection turned out closed */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#include "proxy/h1_backend.h"

/* be's counters on this worker, or NULL when counting is off (unit tests). */
static inline struct stats_backend *bstats(const struct exchange *x, const struct backend *be)
{
    return x->px->stats ? stats_backend_of(x->px->stats, be->slot) : NULL;
}

struct stats_listener *exchange_client_conn(struct proxy_worker *px, const struct generation *g,
                                            uint32_t listener)
{
    if (!px->stats) return NULL;
    struct stats_listener *l = &px->stats->listeners[g->listener_slot[listener]];
    STATS_ADD(l->opened, 1);
    return l;
}

/* Tells the balancer how the attempt on x->be ended (once per attempt). */
static void report_done(struct exchange *x, enum balance_outcome outcome)
{
    const struct balancer_ops *ops = x->pool->ops;
    if (!x->sent_us) return;
    if (ops->on_request_done) {
        uint64_t t = now_us();
        ops->on_request_done(x->pool->balancer, x->be, outcome,
                             t > x->sent_us ? t - x->sent_us : 0);
    }
    x->sent_us = 0;
}

/* A final response head arrived: the attempt succeeded, as far as the
 * balancer's latency goes. */
void exchange_report_ok(struct exchange *x, int status)
{
    report_done(x, BALANCE_OK);
    struct stats_backend *st = x->st;
    if (!st) return;
    STATS_ADD(st->responses[stats_class(status)], 1);
    uint64_t t = x->px->loop->now_us;
    stats_hist_add(&st->response_time, t > x->attempt_us ? t - x->attempt_us : 0);
}

void exchange_release(struct exchange *x, int reusable)
{
    struct upconn *u = x->up;
    if (!u) return;
    x->up = NULL;
    report_done(x, reusable ? BALANCE_OK : BALANCE_FAILED);
    if (x->be) {
        atomic_fetch_sub_explicit(&x->be->inflight, 1, memory_order_relaxed);
        if (x->st) STATS_ADD(x->st->ended, 1);
    }
    if (reusable)
        upconn_release(u);
    else
        upconn_close(u);
}

void exchange_abandon(struct exchange *x)
{
    x->sent_us = 0;
    exchange_release(x, 0);
}

static void backend_failed_at(struct exchange *x, struct backend *be, const char *why)
{
    health_passive_failure(x->pool, be, why, x->pool->cfg->max_fails);
}

void exchange_backend_failed(struct exchange *x, const char *why)
{
    backend_failed_at(x, x->be, why);
}

size_t exchange_extra_header(const struct exchange *x, char *out, size_t cap)
{
    const struct balancer_ops *ops = x->pool->ops;
    return ops->response_header ? ops->response_header(x->pool->balancer, x->be, out, cap) : 0;
}

int exchange_begin(struct exchange *x, struct pool *pool, const struct h1_head *h,
                   struct h1_request_rewrite *rw)
{
    x->is_head = h->method_id == HTTP_HEAD && h->method.len == 4;
    x->idempotent = h1_method_idempotent(h);
    x->upgrade_req = h->upgrade_i >= 0 && h->conn_upgrade;
    if (!x->req_head && !(x->req_head = buf_get(&x->px->bufs))) return -ENOMEM;
    struct buf *rh = x->req_head;
    rh->start = rh->end = 0;
    x->be = NULL;
    x->pool = pool;
    rw->client_ip = x->client_ip;
    /* a pool of discovered backends may have none yet: the request gets 503 */
    rw->default_host = pool->n ? pool->backends[0].conf->authority : "localhost";
    rw->upgrade = x->upgrade_req;
    long n = h1_write_request(h, rw, rh->data, BUF_SIZE);
    if (n < 0) return -ENOSPC;
    rh->end = (uint32_t)n;
    x->tried.n = 0;
    x->hash = 0;
    x->fail_502 = x->tls_failed = 0;
    x->retry_same = 0;
    x->attempts = x->stale_retries = 0;
    x->sent_any = x->body_released = x->resp_bytes = 0;
    x->req_abandoned = x->saw_timeout = x->truncated = x->dechunk = 0;
    x->begin_us = x->px->loop->now_us;
    return 0;
}

void exchange_start(struct exchange *x, const struct h1_head *h)
{
    struct pool *pool = x->pool;
    struct proxy_worker *px = x->px;
    struct balance_request req;
    if (h) req = (struct balance_request){.target = h->target, .field = h1_field, .msg = h};
    struct balance_ctx ctx = {
        .client_ip = x->client_ip,
        .req = h ? &req : NULL, /* the head is valid on the first pick only */
        .hash = &x->hash,
    };
    while (x->attempts <= pool->cfg->retries && x->attempts < BALANCE_MAX_TRIES) {
        struct backend *be = balance_pick(pool, &ctx, &x->tried);
        /* after a stale pooled connection, the same backend (fresh) is fine
         * when there is no other */
        if (!be && x->retry_same && x->be && backend_state(x->be) == BACKEND_UP) be = x->be;
        x->retry_same = 0;
        if (!be) break;
        x->attempts++;
        balance_tried_add(&x->tried, be);
        /* the worker's idle pool holds connections of its current generation only */
        struct upconn *u = x->stale_retries || x->gen != px->gen
                               ? NULL
                               : upconn_take_idle(&px->ups, be, h1_backend_on_event, x);
        int err = 0;
        if (!u) u = upconn_connect(&px->ups, be, h1_backend_on_event, x, &err);
        if (!u) {
            if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
                /* usher's own shortage, not the backend's fault: no other
                 * backend would fare better, and none is marked down for it */
                log_warn("cannot open a connection to backend %s: %s (usher's limit)",
                         be->conf->url, strerror(-err));
                x->ops->respond(x, 503, "Service unavailable: usher is out of connections");
                return;
            }
            log_warn("backend %s: connect failed (%s)", be->conf->url, strerror(-err));
            struct stats_backend *cst = bstats(x, be);
            if (cst) STATS_ADD(cst->connect_errors, 1);
            backend_failed_at(x, be, strerror(-err));
            continue;
        }
        x->be = be;
        x->up = u;
        atomic_fetch_add_explicit(&be->inflight, 1, memory_order_relaxed);
        struct stats_backend *st = x->st = bstats(x, be);
        if (st) {
            STATS_ADD(st->requests, 1);
            /* the loop's time of this event (one clock reading per iteration, as
             * HAProxy's timers): no clock_gettime per request */
            x->attempt_us = x->px->loop->now_us;
        }
        if (pool->ops->on_request_start) pool->ops->on_request_start(pool->balancer, be);
        x->sent_us = pool->ops->on_request_done ? now_us() : 0;
        x->up_eof = 0;
        x->up_err = 0;
        x->uin_scan = 0;
        x->uin_parsed = 0;
        if (x->req_head) {
            x->req_head->start = 0; /* (re)send the head, and the body kept so far */
            x->ops->body_rewind(x);
        }
        x->rs = u->reused ? RS_HEAD : RS_CONNECTING;
        x->up_at = px->loop->now; /* this attempt's clock: connect_ms, or response_ms */
        return;
    }
    if (x->fail_502)
        x->ops->respond(x, 502,
                        x->tls_failed ? "Bad gateway: the TLS handshake with the backend failed"
                                      : "Bad gateway: the backend closed the connection");
    else if (x->saw_timeout)
        x->ops->respond(x, 504, "Gateway timeout: no backend answered in time");
    else
        x->ops->respond(x, 503, "No healthy backends");
}

enum exchange_retry exchange_retry_decision(const struct exchange_attempt *a)
{
    /* nothing was sent: always safe to go to the next backend */
    if (a->connecting) return RETRY_NEXT;
    /* RFC 9110 9.2.2: a pooled connection that the backend had already closed
     * when the request went out is not the backend's fault; an idempotent
     * request (or one of which nothing was sent) goes again on a fresh
     * connection, possibly to the same backend. */
    if (a->replayable && a->reused && a->stale_retries < MAX_STALE_RETRIES) return RETRY_FRESH;
    /* Any other failure after sending is the backend's. An idempotent
     * request may go again, to another backend, unless it timed out. */
    if (a->replayable && a->idempotent && a->err != -ETIMEDOUT) return RETRY_ELSEWHERE;
    return RETRY_NONE;
}

void exchange_failed(struct exchange *x, int err)
{
    exchange_failed_why(x, err, NULL);
}

void exchange_failed_why(struct exchange *x, int err, const char *why)
{
    struct upconn *u = x->up;
    /* connecting, but the TCP connect had finished: the TLS handshake */
    int handshake = x->rs == RS_CONNECTING && u && u->connected;
    struct exchange_attempt a = {
        .connecting = x->rs == RS_CONNECTING,
        .reused = u && u->reused,
        /* nothing of a response came, the body kept so far is whole, and
         * the request is idempotent or none of it was sent */
        .replayable =
            !x->resp_bytes && !x->body_released && x->req_head && (x->idempotent || !x->sent_any),
        .idempotent = x->idempotent,
        .stale_retries = x->stale_retries,
        .err = err,
    };
    struct backend *be = x->be;
    char words[256];
    if (why)
        snprintf(words, sizeof(words), "%s", why); /* it may live in what is released below */
    else if (err == -ETIMEDOUT)
        snprintf(words, sizeof(words), "%s",
                 handshake      ? "TLS handshake timed out"
                 : a.connecting ? "connect timed out"
                                : "no response in time");
    else
        snprintf(words, sizeof(words), "%s", strerror(-err));
    if (err == -ETIMEDOUT) x->saw_timeout = 1;
    if (handshake && err != -ETIMEDOUT) x->fail_502 = x->tls_failed = 1;
    exchange_release(x, 0);
    buf_put(&x->px->bufs, x->uin);
    x->uin = NULL;
    x->req_abandoned = 0;
    enum exchange_retry r = exchange_retry_decision(&a);
    struct stats_backend *st = bstats(x, be);
    if (st) {
        if (a.connecting) STATS_ADD(st->connect_errors, 1);
        if (r != RETRY_NONE) STATS_ADD(st->retries, 1);
    }
    if (r == RETRY_NEXT) {
        log_warn("backend %s: connect failed (%s)", be->conf->url, words);
        backend_failed_at(x, be, words);
        x->rs = RS_NONE;
        exchange_start(x, NULL);
        return;
    }
    if (r == RETRY_FRESH) {
        x->stale_retries++;
        x->retry_same = 1;
        x->rs = RS_NONE;
        exchange_start(x, NULL);
        return;
    }
    log_warn("backend %s: %s before a response (%s)", be->conf->url,
             x->sent_any ? "connection lost" : "connection failed", words);
    backend_failed_at(x, be, words);
    if (r == RETRY_ELSEWHERE) {
        /* if there is no other backend, the answer is this failure (502) */
        x->rs = RS_NONE;
        x->fail_502 = 1;
        exchange_start(x, NULL);
        return;
    }
    if (err == -ETIMEDOUT)
        x->ops->respond(x, 504, "Gateway timeout: the backend did not answer in time");
    else
        x->ops->respond(x, 502, "Bad gateway: the backend closed the connection");
}

uint64_t exchange_due(const struct exchange *x)
{
    const struct pool_conf *pc = x->pool->cfg;
    return x->up_at + (x->rs == RS_CONNECTING ? pc->connect_ms : pc->response_ms);
}

void exchange_timeout(struct exchange *x)
{
    if (x->rs == RS_CONNECTING) {
        exchange_failed(x, -ETIMEDOUT);
        return;
    }
    log_warn("backend %s: no response within %u ms", x->be->conf->url, x->pool->cfg->response_ms);
    exchange_backend_failed(x, "no response in time");
    x->ops->respond(x, 504, "Gateway timeout: the backend did not answer in time");
}

void exchange_finish(struct exchange *x)
{
    int reusable = x->up_keepalive && !x->up_eof && !x->req_abandoned && x->gen == x->px->gen &&
                   (!x->uin || x->uin_parsed == x->uin->end);
    health_passive_success(x->be); /* a whole response: failures in a row start again */
    struct stats_backend *st = x->st;
    if (st) {
        uint64_t t = x->px->loop->now_us;
        stats_hist_add(&st->total_time, t > x->begin_us ? t - x->begin_us : 0);
    }
    exchange_release(x, reusable);
}
