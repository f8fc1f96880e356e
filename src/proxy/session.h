/* session: the HTTP/1 client connection, shared by h1_client.c (reading
 * requests, the connection's life and timers) and h1_response.c (what the
 * exchange asks of the client side, writing the response, the end of an
 * exchange). Internal to src/proxy/.
 *
 * Buffers (all from the worker's cache, all given back when empty):
 *   cin       bytes from the client: [start, cin_sent) body bytes already sent up
 *             but kept until the response begins, so that the request can be
 *             sent again (given up when the buffer is needed); [cin_sent,
 *             cin_parsed) body bytes ready to go up; [cin_parsed, end) not
 *             looked at yet (the rest of the body, or the next request)
 *   res_out   the rewritten response head(s), or usher's own answer
 *   x.req_head, x.uin   the exchange's (see exchange.h)
 */
#ifndef USHER_PROXY_SESSION_H
#define USHER_PROXY_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "proxy/exchange.h"
#include "proxy/proxy.h"
#include "proxy/tunnel.h"

#define LINGER_MS 2000 /* how long a closing connection waits for the client's FIN */
/* A graceful stop (or a reload that removes its listener) closes an idle
 * keep-alive connection after a settle time, spread over [SETTLE_MIN_MS,
 * SETTLE_MAX_MS] so that clients do not all reconnect at once; a request
 * that arrives before is answered, with Connection: close. */
#define SETTLE_MIN_MS 50
#define SETTLE_MAX_MS 500
#define MAX_ROUNDS 64 /* progress rounds before yielding to other connections */

enum rq_state { RQ_IDLE, RQ_HEAD, RQ_BODY, RQ_DONE };

struct session {
    struct conn c; /* the client connection; first, so the loop's io is the session */
    struct loop_timer timer;
    struct loop_defer defer;
    struct session *next, *prev; /* worker's open sessions, or its free list */
    struct buf *cin, *res_out;
    struct buf *logrec;   /* the request's access log fields, only while the log is on */
    struct body req_body; /* where the request body ends */
    uint64_t deadline;    /* outside an exchange with a backend: when what we wait for times out */
    /* during an exchange the deadline follows from two clocks (due): body_at:
     * the client last sent body bytes, or usher last made room for more (sent
     * what it had up); the exchange's up_at: the attempt started, or the
     * backend last took or sent bytes */
    uint64_t body_at;
    uint16_t cin_parsed, cin_sent, cin_scan; /* offsets in cin (BUF_SIZE < 64 KiB) */
    uint16_t listener;                       /* index in config.listeners */
    uint8_t rq;
    uint8_t c_eof : 1, closed : 1, lingering : 1, resume : 1, keep_alive : 1, http10 : 1,
        client_started : 1;
    uint8_t listener_gone : 1;   /* a reload removed the listener: last request on this one */
    uint8_t expect_wait : 1;     /* Expect: 100-continue: the client waits on the backend */
    uint8_t http_extras : 1;     /* listener_extras(): the listener asks for more than proxying */
    uint8_t settling : 1;        /* idle, to be closed at its deadline (graceful stop, reload) */
    uint8_t h2_checked : 1;      /* the first bytes were looked at for HTTP/2 (h2_maybe_start) */
    uint8_t h2_flush_queued : 1; /* h2_flush is in the loop's deferred list */
    struct h2_conn *h2;          /* HTTP/2 was chosen: the connection is h2_client.c's */
    struct loop_defer h2_flush;  /* HTTP/2: one write per loop iteration for every stream */
    struct tunnel tun;           /* after a 101 */
    struct exchange x;           /* the request in progress */
};

#define session_of(xp) ((struct session *)((char *)(xp)-offsetof(struct session, x)))

/* The exchange's ops for an HTTP/1 client connection (h1_response.c). */
extern const struct exchange_ops h1_exchange_ops;

static inline struct proxy_worker *px_of(const struct session *s)
{
    return s->x.px;
}

static inline const struct config *cfg(const struct session *s)
{
    return s->x.gen->cfg;
}

/* The session's listener, in its generation. */
static inline const struct listener_conf *listener_of(const struct session *s)
{
    return &s->x.gen->cfg->listeners[s->listener];
}

/* Whether listener l asks for more than proxying (the https redirect, the
 * mTLS headers, HSTS): kept in session.http_extras whenever the session's
 * listener is set, so that the plain path tests one bit. */
static inline uint8_t listener_extras(const struct listener_conf *l)
{
    return l->redirect_https || l->client_verify_header[0] || l->client_subject_header[0] ||
           l->hsts_max_age;
}

/* Whether the client connection is TLS: decided by its transport, not by
 * the listener's configuration, which a reload may change under it. */
static inline int client_tls(const struct session *s)
{
    return s->c.ops != &conn_plain;
}

/* The Strict-Transport-Security line of a final response (RFC 6797: on a
 * TLS connection whose listener sets hsts.max_age), written into out
 * (H1_HSTS_MAX bytes); its length, or 0 for none. */
static inline size_t session_hsts(const struct session *s, char *out, size_t cap)
{
    if (!s->http_extras) return 0;
    const struct listener_conf *l = listener_of(s);
    if (!l->hsts_max_age || !client_tls(s)) return 0;
    return h1_hsts_line(l->hsts_max_age, l->hsts_subdomains, out, cap);
}

/* Sets the deadline for whatever the session is waiting for now. The heap
 * timer is only moved when the deadline comes earlier; a later deadline is
 * picked up when the timer fires, so refreshing it per read costs nothing. */
static inline void arm(struct session *s, uint32_t ms)
{
    struct loop *l = px_of(s)->loop;
    s->deadline = l->now + ms;
    if (!loop_timer_armed(&s->timer) || s->timer.when > s->deadline)
        loop_timer_at(l, &s->timer, s->deadline);
}

static inline struct buf *take_buf(struct session *s, struct buf **slot)
{
    if (!*slot) *slot = buf_get(&px_of(s)->bufs);
    return *slot;
}

static inline void drop_buf(struct session *s, struct buf **slot)
{
    buf_put(&px_of(s)->bufs, *slot);
    *slot = NULL;
}

/* h1_client.c */
/* Runs every step that can make progress (see h1_client.c). */
void session_progress(struct session *s);
/* Closes the connection now; freed at the end of the loop iteration. */
void session_close(struct session *s);
/* Closes after the client has seen everything (half-close, then drain). */
void session_linger(struct session *s, int always);
/* Idle between requests while usher stops (or its listener is gone): closes
 * the connection after a settle time; a request before that is answered. */
void session_settle(struct session *s);
/* Answers with usher's own JSON error (or closes if a response began). */
void session_respond_error(struct session *s, int status, const char *msg);
/* Forgets the body bytes already sent up (no retry will need them). */
void session_release_sent_body(struct session *s);
/* Writes the request's access log line, if the log is on. */
void session_log_end(struct session *s);

/* The pool for request h: the first route of the session's listener that
 * matches, else the listener's own pool. */
struct pool *session_route(struct session *s, const struct h1_head *h);
/* The mTLS headers the session's listener asks for, added to rw (their
 * values in the worker's peer_text, valid until the next head). */
void session_peer_headers(struct session *s, struct h1_request_rewrite *rw);

/* h1_response.c */
/* Writes res_out and the response body bytes ready; whether anything moved. */
int session_client_write(struct session *s);
/* After a 101: relays bytes both ways (tunnel.c); whether anything moved. */
int session_tunnel_progress(struct session *s);
/* The response is through: the next request, or the close. */
int session_exchange_end(struct session *s);
/* Between two requests: the generation in force. 0 when the listener is gone. */
int session_move_generation(struct session *s);

#endif
