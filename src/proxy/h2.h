/* h2: HTTP/2 from clients, internal to src/proxy/. One struct h2_conn per
 * client connection that chose HTTP/2 (ALPN h2, or the prior-knowledge
 * preface on a plain listener), hung on the struct session that owns the
 * transport, its timer and its place in the worker's list; the session's
 * io and timer callbacks hand over to h2_client.c once it is set.
 *
 *   h2_client.c  the connection: the nghttp2 session, reading and writing
 *                through conn_read/conn_writev, settings and limits, the
 *                glitch budget, GOAWAY (limits, stop, reload), timers
 *   h2_stream.c  one stream: its struct exchange and exchange_ops, the
 *                request mapped by http/h2map.c, its body under flow control,
 *                its timers and its end
 *   h2_response.c  the response as HEADERS/DATA (and trailers), the
 *                WebSocket tunnel's 200, usher's own answers
 *
 * Each stream drives one struct exchange exactly as an HTTP/1 request does:
 * the backends stay HTTP/1.1 (h1_backend.c), so that retries, health, the
 * balancers and the access log work per stream.
 *
 * Memory of a stream: the struct (from the worker's free list), one header
 * area buffer, the exchange's req_head and uin, the request body in at most
 * H2_BODY_BUFS(window) buffers (the receive window opens only as the
 * backend takes bytes), and the access log buffer when the log is on. */
#ifndef USHER_PROXY_H2_H
#define USHER_PROXY_H2_H

#include <nghttp2/nghttp2.h>
#include <stdint.h>

#include "http/h2map.h"
#include "proxy/exchange.h"
#include "proxy/session.h"

/* Buffers a stream's request body may hold with a receive window of w bytes:
 * the window, plus one for the chunk framing and one partly filled. */
#define H2_BODY_BUFS_MAX 66 /* for the largest h2.initial_window_size (1 MiB) */
#define H2_BODY_BUFS(w) ((w) / BUF_SIZE + 2)

/* Counts the payload bytes in chunked framing usher wrote itself. */
struct h2_chunk_cursor {
    uint8_t state; /* 0 size line, 1 data, 2 CRLF after data, 3 after the last chunk */
    uint8_t crlf;  /* bytes of the CRLF seen */
    uint32_t left; /* data bytes left in the chunk, or the size being read */
};

/* Takes a chunked response body apart (framing already checked by the
 * exchange's body parser): the data goes into DATA frames, the trailer
 * section into a trailing HEADERS frame. */
struct h2_unchunk {
    uint8_t state; /* 0 size line, 1 data, 2 CRLF after data, 3 trailer lines, 4 the end */
    uint8_t ext;   /* in the size line: past the digits (an extension) */
    uint8_t line;  /* in a trailer line: bytes seen on it (0: the line is empty so far) */
    uint32_t left; /* data bytes left in the chunk, or the size being read */
};

struct h2_conn;

struct h2_stream {
    struct exchange x; /* first: the exchange's owner is the stream */
    struct h2_conn *hc;
    struct h2_stream *next, *prev; /* the connection's streams, or a free list */
    int32_t id;                    /* in the worker's free list: the length of the list from here */
    struct buf *area;              /* the request's fields (h2map), then usher's own answer */
    struct buf *logrec;            /* access log fields, while the log is on */
    struct buf *body[H2_BODY_BUFS_MAX];
    struct h2map map;
    struct h2_chunk_cursor cc;
    struct h2_unchunk uc;    /* the response body, when chunked */
    uint16_t trailer_len;    /* the backend's trailer lines kept in area */
    uint64_t body_bytes;     /* request payload received */
    uint64_t unconsumed;     /* of it, not given back to the window yet */
    uint64_t pos, consumed;  /* payload sent to the backend in this attempt; given back */
    uint64_t body_at;        /* the client last sent body bytes or usher made room */
    uint64_t client_at;      /* the client last took response bytes (window) */
    uint32_t sent;           /* body[0]: bytes before this went to the backend */
    uint32_t open_at;        /* chunked: where the open chunk's size line is */
    uint16_t local_len;      /* usher's own answer: body bytes in area */
    uint16_t local_off;      /* of them, given to nghttp2 */
    uint32_t header_bytes;   /* RFC 9113 6.5.2 size of the header block so far */
    uint8_t nbody, max_body; /* buffers in body[], and its bound */
    uint8_t chunked : 1;     /* the body goes up chunked (no content-length) */
    uint8_t framed_end : 1;  /* chunked: the last chunk (and trailers) were written */
    uint8_t no_body : 1;     /* the final response has no DATA (HEAD, 204, 304) */
    uint8_t res_chunked : 1; /* the response body comes chunked: h2_unchunk takes it apart */
    uint8_t tun_shut : 1;    /* tunnel: the client's END_STREAM went on as the backend's FIN */
    uint8_t open : 1;        /* chunked: a chunk is open at open_at */
    uint8_t req_done : 1;    /* END_STREAM from the client */
    uint8_t began : 1;       /* the exchange began (the head was mapped) */
    uint8_t head_sent : 1;   /* a final response HEADERS was submitted */
    uint8_t deferred : 1;    /* the data source waits for bytes */
    uint8_t finished : 1;    /* the exchange is over (finished, abandoned or local) */
    uint8_t closed : 1;      /* nghttp2 closed the stream */
    uint8_t trailers : 1;    /* the block being received is the trailer section */
    uint8_t refused : 1;     /* reset by usher before any exchange began */
    uint8_t too_big : 1;     /* the header block went past h2.max_header_list_size */
    uint8_t expect_wait : 1; /* Expect: 100-continue: the client waits on the backend */
    uint8_t end_rst : 1;     /* once the response ended, reset the stream (NO_ERROR) */
};

#define stream_of(xp) ((struct h2_stream *)(xp))

struct h2_conn {
    nghttp2_session *ng;
    struct session *s;
    struct h2_stream *streams; /* open */
    struct h2_stream *dead;    /* closed by nghttp2, given back once it returned */
    struct buf *out;           /* frames gathered for one write */
    struct buf *in;            /* bytes read that nghttp2 gets in the next turn (F6) */
    uint64_t turn_end;         /* h2_progress: when this turn's time is spent (us) */
    const uint8_t *pend;       /* a chunk from nghttp2_session_mem_send not copied to out */
    size_t pend_len;
    uint32_t nstreams;      /* open streams */
    uint32_t total;         /* streams begun on this connection */
    uint32_t glitches;      /* suspicious events (h2.glitches_threshold) */
    uint32_t ctl_in_second; /* control frames in the current second */
    uint64_t ctl_second;    /* which second (loop time / 1000) */
    uint64_t idle_since;    /* no stream open since (for timeouts.client_idle) */
    uint64_t goaway_at;     /* the final GOAWAY goes at this time (0: not planned) */
    int32_t max_id;         /* the highest stream id the client used */
    int32_t gap[4][2];      /* ids the client skipped (idle, so closed: RFC 9113 5.1.1) */
    uint8_t ngaps;
    uint8_t closed : 1;   /* session_close ran; the rest waits for the deferred free */
    uint8_t notice : 1;   /* the first GOAWAY (shutdown notice) went */
    uint8_t goaway : 1;   /* the final GOAWAY went: close when the streams are done */
    uint8_t fatal : 1;    /* a connection error: flush what nghttp2 has, then close */
    uint8_t broken : 1;   /* nghttp2 gave up (a flood, a bad preface): its session is not
                             used again; what was pending goes out, then tail (a GOAWAY) */
    uint8_t tail_len;     /* bytes of tail not written yet */
    uint8_t tail[17];     /* usher's own GOAWAY frame when nghttp2 is broken */
    uint8_t prefaced : 1; /* the client's preface and SETTINGS came */
    uint8_t stepping : 1; /* h2_progress is running (wake does not re-enter) */
};

/* h2_client.c */
/* Whether the session must become HTTP/2 (ALPN h2, or the preface in cin):
 * 1 (it did: h2_progress runs it from now on), 0 (HTTP/1), -1 (too few
 * bytes to tell yet). Looked at once, on a connection's first bytes. */
int h2_maybe_start(struct session *s);
/* Runs every step that can make progress on an HTTP/2 connection. */
void h2_progress(struct session *s);
/* The session's timer fired. */
void h2_on_timer(struct session *s);
/* session_close: releases what the streams hold (the exchanges end). */
void h2_close(struct session *s);
/* The session's deferred free: the nghttp2 session and the stream objects. */
void h2_free(struct session *s);
/* Graceful stop or reload that removed the listener: GOAWAY (shutdown
 * notice, then the last stream id), the streams in flight finish, then the
 * connection closes. */
void h2_shutdown(struct session *s);
/* After a reload: the connection takes the new configuration once no
 * stream is open, or goes away when its listener is gone. */
void h2_generation_switched(struct session *s);
/* Counts a suspicious event; past h2.glitches_threshold the connection
 * ends with GOAWAY ENHANCE_YOUR_CALM. */
void h2_glitch(struct h2_conn *hc, const char *what);
/* The backend side of st has events: its step runs now, the connection's
 * writing once at the end of the loop iteration, for every stream at once. */
void h2_wake(struct h2_stream *st);
/* A stream ended (nghttp2 closed it): it goes to the dead list. */
void h2_stream_gone(struct h2_stream *st);

static inline struct proxy_worker *px_st(const struct h2_stream *st)
{
    return st->x.px;
}

static inline const struct config *cfg_st(const struct h2_stream *st)
{
    return st->x.gen->cfg;
}

/* Resets st with code (RST_STREAM, sent with the next write). */
static inline void h2_stream_reset(struct h2_stream *st, uint32_t code)
{
    nghttp2_submit_rst_stream(st->hc->ng, NGHTTP2_FLAG_NONE, st->id, code);
}

/* h2_response.c */
/* exchange_ops.response_head and .respond of a stream. */
int h2_response_head(struct exchange *x, const struct h1_head *h, const struct h1_response_plan *p);
void h2_respond(struct exchange *x, int status, const char *msg);
/* The response went down whole: the exchange finishes (the backend
 * connection goes back, or closes when the request body never ended). */
void h2_response_done(struct h2_stream *st);

/* h2_stream.c */
extern const struct exchange_ops h2_exchange_ops;
/* Answers st with 308 to the https URL loc (a plain listener with redirect_https). */
void h2_stream_redirect(struct h2_stream *st, const char *loc, size_t len);
/* A new request stream (on_begin_headers): NULL when out of memory. */
struct h2_stream *h2_stream_new(struct h2_conn *hc, int32_t id);
/* One decoded field of the stream's header block. 0, or an nghttp2 error. */
int h2_stream_header(struct h2_stream *st, const nghttp2_nv *nv);
/* The stream's header block ended (end_stream: with END_STREAM). */
void h2_stream_headers_done(struct h2_stream *st, int end_stream);
/* Request body bytes (DATA payload). 0, or an nghttp2 error. */
int h2_stream_data(struct h2_stream *st, const uint8_t *p, size_t n);
/* END_STREAM came on DATA. */
void h2_stream_body_end(struct h2_stream *st);
/* The client reset the stream, or nghttp2 closed it. */
void h2_stream_closed(struct h2_stream *st, uint32_t error_code);
/* usher's frame with END_STREAM went out for st. */
void h2_stream_sent_end(struct h2_stream *st);
/* The backend side and the response: whether anything moved. */
int h2_stream_step(struct h2_stream *st);
/* When the stream next needs the timer (UINT64_MAX: never). */
uint64_t h2_stream_due(const struct h2_stream *st);
/* The deadline passed: 408, 504, or the reset. */
void h2_stream_timeout(struct h2_stream *st);
/* Gives back everything the stream holds (the connection closes). */
void h2_stream_release(struct h2_stream *st);

#endif
