/* conn: one client connection of demo-backend and its state machine.
 *
 * Per connection, at most one request is "in flight": llhttp is paused in
 * on_message_complete, the response is produced (possibly over time: /slow,
 * /bytes), and only then is the parser resumed on the bytes that followed
 * (pipelining, answered in order). Small responses are queued back to back
 * while the output buffer stays under OUT_LOW bytes. After a 101 the
 * connection carries WebSocket frames (ws.c) and the parser stays paused.
 *
 * A conn is owned by the connection list in conn.c, from conn_new until
 * conn_close frees it; callers must not touch c after a call that may close it
 * (conn_run, conn_timer_fire, conn_close). */
#ifndef DEMO_CONN_H
#define DEMO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llhttp.h"

#include "buf.h"
#include "timer.h"

#define RBUF_SIZE (64 * 1024) /* one read() */
#define OUT_LOW (64 * 1024)   /* stop producing output above this */
#define MTOK_MAX 32           /* longest method token accepted (incl. NUL) */

/* The endpoint a request is for (routes_match). */
enum route {
    ROUTE_NOT_FOUND,
    ROUTE_ROOT,
    ROUTE_HEALTH,
    ROUTE_ECHO,
    ROUTE_SLOW,
    ROUTE_BYTES,
    ROUTE_STATUS,
    ROUTE_CLOSE,
    ROUTE_EARLY_HINTS,
    ROUTE_WS,
    ROUTE_STATS,
    ROUTE_STATS_RESET,
};

/* One request header field, as offsets into conn.hbuf. */
struct hdr {
    uint32_t name_off, name_len, val_off, val_len;
};

struct conn {
    int fd;
    uint32_t ev; /* current epoll interest */
    struct conn *prev, *next;
    llhttp_t parser;

    /* unparsed input left over when the parser paused */
    char *pend;
    size_t pend_off, pend_len;

    /* output */
    struct buf out;
    size_t out_off;

    /* method prefilter (see http_feed) */
    bool at_start;
    char mtok[MTOK_MAX];
    size_t mtok_len;

    /* current request */
    char custom_method[MTOK_MAX]; /* non-empty: method llhttp does not know */
    struct buf url, hbuf;
    struct hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    bool hdr_open, in_trailers;
    bool req_ready;   /* message complete, parser paused, awaiting dispatch */
    bool keep_alive;  /* from llhttp at message complete */
    bool chunked_req; /* Transfer-Encoding: chunked */
    bool is_head;
    bool ws_ok; /* a valid WebSocket upgrade request for /ws */
    int minor;
    int err_status;
    enum route route;
    size_t path_off, path_len, query_off, query_len; /* into url */
    uint64_t body_len;
    uint32_t body_crc;

    /* response in progress */
    bool ka;         /* keep the connection after this response */
    bool gen_active; /* /bytes body being produced */
    bool gen_chunked;
    uint64_t gen_pos, gen_total;
    uint64_t slow_ms;
    bool close_after_flush; /* no more requests: flush, then close */
    bool eof_seen;
    bool lingering; /* SHUT_WR done, draining input until EOF or timeout */
    bool runnable;  /* yielded with work left */

    /* /slow or lingering close */
    struct timer timer;

    /* WebSocket */
    bool ws;
    unsigned char ws_hdr[14];
    size_t ws_hlen;
    unsigned char ws_mask[4];
    uint64_t ws_left, ws_pos;
    int ws_op;
    bool ws_echo;
};

/* The epoll instance that conn_new registers connections with; set once at startup. */
void conn_set_epoll(int epfd);
/* Takes ownership of the accepted non-blocking socket fd (closed on failure). */
void conn_new(int fd);
/* Does whatever can be done now without blocking; may close and free c. */
void conn_run(struct conn *c);
/* Closes the socket and frees c (cancelling its timer). */
void conn_close(struct conn *c);
/* Closes every connection (at shutdown). */
void conn_close_all(void);
/* Handles c's timer, which timer_due returned: answers /slow or ends a linger; may free c. */
void conn_timer_fire(struct conn *c);
/* The current response has been fully queued: resume parsing, or close after flushing. */
void conn_response_done(struct conn *c);
/* Forgets any unparsed input saved in c. */
void conn_drop_pend(struct conn *c);

#endif
