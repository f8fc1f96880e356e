/* exchange: one request from its accepted head to its end, on the backend
 * side: route, pick, lease, attempts, retry and replay, the reports to the
 * balancer and to health checking, the backend-side timeouts, and the
 * HTTP/1 backend codec that writes the request and reads the response
 * (h1_backend.c).
 *
 * The client side that drives an exchange (an HTTP/1 connection today, an
 * HTTP/2 stream or a tunnel later) implements struct exchange_ops: the
 * exchange pulls the request body from it, hands it the response head, and
 * asks it to answer with usher's own error. The client side may read the
 * exchange's fields (rs, uin, uin_parsed: the response bytes ready to go
 * down); the exchange never sees the client's.
 *
 * For HTTP/1 the exchange is embedded in the connection (struct session),
 * so no allocation happens per request. */
#ifndef USHER_PROXY_EXCHANGE_H
#define USHER_PROXY_EXCHANGE_H

#include <stdint.h>
#include <sys/uio.h>

#include "balance/balance.h"
#include "core/buf.h"
#include "http/body.h"
#include "http/h1.h"
#include "http/policy.h"
#include "upstream/stats.h"
#include "upstream/upconn.h"

_Static_assert(BUF_SIZE < 65536, "exchange offsets are 16 bits");

struct proxy_worker;
struct exchange;

/* Where the response is. */
enum exchange_state {
    RS_NONE,       /* no exchange (between requests) */
    RS_CONNECTING, /* an attempt is connecting */
    RS_HEAD,       /* the request goes up; the response head is awaited */
    RS_BODY,       /* the response body streams down */
    RS_DONE,       /* the response ended (the client may still be writing it) */
    RS_TUNNEL,     /* upgraded (101): bytes relay both ways (tunnel.c) */
    RS_LOCAL,      /* usher answers itself (the client side's own buffer) */
};

struct exchange_ops {
    /* The request body bytes ready to go up (at most one iovec): 1, or 0. */
    int (*body_ready)(struct exchange *x, struct iovec *iov);
    /* n of them were written (the backend took them). */
    void (*body_sent)(struct exchange *x, size_t n);
    /* A new attempt: the body kept so far goes again from its first byte. */
    void (*body_rewind)(struct exchange *x);
    /* A response has begun: nothing will be sent again; forget what was sent. */
    void (*body_release)(struct exchange *x);
    /* A response head arrived, planned as p (interim, upgrade or final; for
     * a final one the client side sets x->dechunk if it wants the body
     * de-chunked). Returns 0, or -1 when it cannot be passed on (too large). */
    int (*response_head)(struct exchange *x, const struct h1_head *h,
                         const struct h1_response_plan *p);
    /* Answers the request with usher's own error (or ends the connection if
     * part of a response went out already). The exchange is over. */
    void (*respond)(struct exchange *x, int status, const char *msg);
    /* The client connection cannot go on (out of memory): close it. */
    void (*abort)(struct exchange *x);
    /* The backend connection has events: run (the exchange's owner decides
     * the order of the steps; h1_backend.c has the backend side's). */
    void (*wake)(struct exchange *x);
};

struct exchange {
    const struct exchange_ops *ops;
    struct proxy_worker *px;
    struct generation *gen; /* the client side's, for this request */
    struct pool *pool;      /* serves the request (chosen by the listener's routes) */
    struct backend *be;     /* of the current (or last) attempt */
    struct upconn *up;      /* leased for the current attempt */
    struct buf *req_head;   /* the rewritten request head; kept until the response
                               starts so that the request can go again */
    struct buf *uin;        /* bytes from the backend; [start, uin_parsed) ready to go down */
    struct body res_body;   /* where the response body ends */
    uint64_t up_at;         /* the attempt started, or the backend last took or sent bytes */
    uint64_t hash;          /* balancer's hash key for this request (0: not computed) */
    uint64_t sent_us;       /* when the request went up, for latency-aware balancers */
    /* loop->now_us (the event loop's time of the iteration) when the request
     * head was read (usher_backend_total_time_seconds) and when the attempt
     * in progress began (usher_backend_response_time_seconds) */
    uint64_t begin_us, attempt_us;
    struct stats_backend *st; /* the counters of be on this worker (NULL: not counted) */
    struct balance_tried tried;
    uint16_t uin_parsed, uin_scan; /* offsets in uin (BUF_SIZE < 64 KiB) */
    int up_err;                    /* -errno seen on the backend socket */
    uint8_t rs;                    /* enum exchange_state */
    uint8_t attempts, stale_retries;
    uint8_t is_head : 1, idempotent : 1, upgrade_req : 1, dechunk : 1, truncated : 1,
        retry_same : 1, sent_any : 1, body_released : 1;
    uint8_t resp_bytes : 1, up_eof : 1, up_keepalive : 1, req_abandoned : 1, saw_timeout : 1;
    uint8_t fail_502 : 1;   /* no backend left after a failure mid-exchange: 502, not 503 */
    uint8_t tls_failed : 1; /* that failure was a TLS handshake with a backend */
    char client_ip[46];     /* the client's address, as text (X-Forwarded-For, balancers, logs) */
};

/* Begins the exchange for request h on pool: its head is rewritten into
 * req_head (with client_ip in X-Forwarded-For). The client side fills what
 * it knows of its connection in rw (https, nset and set: the headers it
 * sets itself, the mTLS result); the exchange fills the rest. Returns 0,
 * -ENOMEM, or -ENOSPC when the rewritten head does not fit. */
int exchange_begin(struct exchange *x, struct pool *pool, const struct h1_head *h,
                   struct h1_request_rewrite *rw);
/* Picks a backend not tried yet and leases a connection to it (pooled, else
 * a new connect). h is the request head for the balancer (the first pick
 * only; NULL on a retry). No backend left: respond() with 503 (502 or 504
 * after failures). */
void exchange_start(struct exchange *x, const struct h1_head *h);

/* The attempt in progress failed with err (-errno) before a response could
 * be forwarded: tries again when it is safe, else answers 502/504. */
void exchange_failed(struct exchange *x, int err);
/* The same, with why in words for the log and for health (NULL: strerror).
 * A TLS handshake that fails (the connect had finished) is a failed connect:
 * the request goes to the next backend, and 502 when there is none. */
void exchange_failed_why(struct exchange *x, int err, const char *why);

/* The backend-side deadline of the exchange (connecting: connect timeout;
 * else response timeout, from the backend's last progress). */
uint64_t exchange_due(const struct exchange *x);
/* The backend-side deadline passed: retry a connect, or answer 504. */
void exchange_timeout(struct exchange *x);

/* A final response head with status arrived: tells a latency-aware
 * balancer, and counts it for the backend (responses by class, response time). */
void exchange_report_ok(struct exchange *x, int status);

/* Client-side counters (usher_listener_*), for every client side: HTTP/1
 * connections today, HTTP/2 connections and their streams the same way.
 * At accept, exchange_client_conn() counts the connection on its listener
 * (index in g's config) and returns the listener's counters on this worker
 * (NULL when counting is off), which the client side keeps; at the close
 * it gives them to exchange_client_closed(). Whenever it sends a final
 * status to its client, a backend's or usher's own (400, 408, 503, ...),
 * once per response (each HTTP/2 stream), it calls exchange_client_status()
 * with them: usher_listener_responses_total. */
struct stats_listener *exchange_client_conn(struct proxy_worker *px, const struct generation *g,
                                            uint32_t listener);
static inline void exchange_client_closed(struct stats_listener *l)
{
    if (l) STATS_ADD(l->closed, 1);
}
static inline void exchange_client_status(struct stats_listener *l, int status)
{
    if (l) STATS_ADD(l->responses[stats_class(status)], 1);
}

/* The response was passed on whole: reports success, gives the backend
 * connection back to the pool when it can carry another request. */
void exchange_finish(struct exchange *x);
/* Ends the attempt in progress: the backend connection is closed (reusable
 * 0) or pooled, and the balancer told how it went. */
void exchange_release(struct exchange *x, int reusable);
/* The exchange ends for a reason of the client's (its body stalled, was
 * too large or malformed): the backend connection is closed, as the
 * backend saw an unfinished request, but the attempt counts neither as a
 * success nor as a failure of the backend. */
void exchange_abandon(struct exchange *x);
/* Passive health: the attempt on be failed for a reason of the backend's. */
void exchange_backend_failed(struct exchange *x, const char *why);
/* A balancer's header line for the response (sticky: Set-Cookie), written
 * into out; its length, or 0. */
size_t exchange_extra_header(const struct exchange *x, char *out, size_t cap);

/* What to do after an attempt failed before a response was forwarded. */
enum exchange_retry {
    RETRY_NEXT,      /* nothing was sent: the next backend */
    RETRY_FRESH,     /* a reused connection was already closed: again, on a fresh one */
    RETRY_ELSEWHERE, /* idempotent: again on another backend; 502 if there is none */
    RETRY_NONE,      /* answer 502 (or 504 on a timeout) */
};

/* The retry decision (RFC 9110 9.2.2) from what the attempt had done. */
struct exchange_attempt {
    uint8_t connecting;    /* the connect had not finished */
    uint8_t reused;        /* on a connection from the idle pool */
    uint8_t replayable;    /* the request can be sent again whole */
    uint8_t idempotent;    /* RFC 9110 9.2.2 */
    uint8_t stale_retries; /* fresh retries so far */
    int err;
};
enum exchange_retry exchange_retry_decision(const struct exchange_attempt *a);

#endif
