/* proxy: what a worker's client connections share, and how the process
 * layer hands connections to them.
 *
 * A worker thread (src/app/worker.c) owns one struct proxy_worker: the
 * sessions it accepted, its backend connections, its buffer cache and a
 * scratch header table. Nothing in it is touched by another thread; the
 * generation pointer is changed by the worker itself between two events. */
#ifndef USHER_PROXY_PROXY_H
#define USHER_PROXY_PROXY_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/accesslog.h"
#include "core/buf.h"
#include "core/loop.h"
#include "http/h1.h"
#include "upstream/generation.h"
#include "upstream/upconn.h"

struct session;
struct h2_stream;

struct proxy_worker {
    struct loop *loop;
    struct generation *gen; /* in force for new connections and requests */
    int draining;           /* shutting down: no next request on any connection */
    uint32_t settle_seq;    /* spreads the settle times of idle connections (session_settle) */
    struct buf_cache bufs;
    struct upconn_pool ups;
    struct session *sessions; /* open client connections */
    struct session *free_sessions;
    struct h2_stream *free_streams; /* HTTP/2 streams given back (h2_stream.c) */
    uint32_t nsessions;
    struct accesslog_buf alog; /* access log lines not written yet */
    struct h1_head scratch;    /* head parsing; never held across iterations */
    llhttp_t parser;           /* the same: initialised for each head */
    char peer_text[1024];      /* the mTLS header values, while a head is rewritten */
};

/* Takes ownership of the socket fd accepted on config listener `listener`
 * and serves it as an HTTP/1 connection. */
void proxy_accept(struct proxy_worker *px, int fd, const struct sockaddr *peer, uint32_t listener);
/* Graceful shutdown: the connections that wait for a next request are
 * closed after a settle time each (spread over SETTLE_MIN_MS..SETTLE_MAX_MS);
 * a request that arrives before is answered with Connection: close. */
void proxy_close_idle(struct proxy_worker *px);
/* After a reload: idle connections move to the generation in force; those
 * whose listener is gone are closed after a settle time, as at a stop. */
void proxy_generation_switched(struct proxy_worker *px);
/* Closes every connection at once (shutdown). */
void proxy_close_all(struct proxy_worker *px);
/* Frees the cached session objects (after the loop ran its deferred frees). */
void proxy_free_cache(struct proxy_worker *px);

#endif
