/* admin: listener, connections, routing and auth. See admin.h.
 *
 * A connection reads one request at a time into a buffer of its own (head
 * and body together, at most ADMIN_MAX_REQUEST bytes), parses the head with
 * the HTTP/1 codec (h1.c), answers from a growing buffer, and waits for the
 * next request (keep-alive) or closes. Everything runs on the control loop;
 * a slow client costs a buffer, never a wait. */
#include "admin/admin.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admin/dashboard.h"
#include "core/log.h"
#include "core/sock.h"
#include "http/h1.h"
#include "upstream/events.h"
#include "upstream/stats.h"

#define ADMIN_MAX_REQUEST 65536
#define ADMIN_IDLE_MS 30000
#define ADMIN_MAX_CONNS 256
/* A large answer (a scrape of many backends: megabytes) is sent at most this
 * much per call, and the CPU is given away between calls (sched_yield). The
 * kernel is not preempted inside a call (PREEMPT_NONE, Debian's default): one
 * call of 4.6 MB kept a worker that shares the CPU waiting for about a
 * millisecond; 512 KB takes about a tenth of that. Smaller calls cost more CPU
 * per byte (128 KB: +50 % per scrape), 512 KB no more than one call. */
#define ADMIN_WRITE_CHUNK (512u << 10)

struct admin_conn {
    struct loop_io io; /* first: the loop hands us the io */
    struct loop_timer timer;
    struct loop_defer defer;
    struct admin_conn *next, *prev;
    char *in;
    size_t in_len;
    struct jbuf head, body; /* the answer being sent: head, then body (no copy) */
    size_t out_off;         /* bytes of head + body sent */
    int head_only;
    int keep_alive, closed;
    char peer[64];
};

void admin_reloaded_note(int ok, const char *msg);

struct admin_host admin_host;
struct metrics_ctl admin_metrics;

static struct {
    struct loop_io lis;
    struct loop_timer tick;
    struct admin_conn *conns;
    uint32_t nconns;
    struct h1_head head; /* large: one, used while a head is parsed */
    llhttp_t parser;
    int on;
    struct jbuf spare; /* the last answer's body buffer, kept for the next (a big scrape
                          then costs no page faults); at most SPARE_MAX bytes */
} ad;

#define SPARE_MAX (32u << 20)

/* A body buffer for the next answer: the spare one, emptied. */
static struct jbuf take_spare(void)
{
    struct jbuf b = ad.spare;
    ad.spare = (struct jbuf){0};
    b.len = 0;
    b.oom = 0;
    if (b.p) b.p[0] = 0;
    return b;
}

static void give_spare(struct jbuf *b)
{
    if (!ad.spare.p && b->cap <= SPARE_MAX && !b->oom) {
        ad.spare = *b;
        *b = (struct jbuf){0};
    } else {
        jb_free(b);
    }
}

static void aconn_free(struct loop_defer *d)
{
    struct admin_conn *c = (struct admin_conn *)((char *)d - offsetof(struct admin_conn, defer));
    free(c);
}

static void aconn_close(struct admin_conn *c)
{
    if (c->closed) return;
    c->closed = 1;
    loop_timer_stop(admin_host.loop, &c->timer);
    loop_close(admin_host.loop, &c->io);
    free(c->in);
    jb_free(&c->head);
    jb_free(&c->body);
    if (c->prev)
        c->prev->next = c->next;
    else
        ad.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    ad.nconns--;
    c->defer.fn = aconn_free;
    loop_defer(admin_host.loop, &c->defer);
}

void api_error(struct admin_res *rs, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs->status = status;
    rs->body.len = 0;
    jb_puts(&rs->body, "{\"error\":");
    jb_str(&rs->body, msg);
    jb_puts(&rs->body, "}\n");
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Constant time in the token's length: the comparison does not stop at
 * the first difference. */
static int token_ok(const char *given, size_t glen, const char *token)
{
    size_t tlen = strlen(token);
    unsigned char diff = (unsigned char)(glen != tlen);
    for (size_t i = 0; i < tlen; i++) diff |= (unsigned char)(token[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

static struct span header(const struct h1_head *h, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (h->h[i].name.len == n && !strncasecmp(h->h[i].name.p, name, n)) return h->h[i].value;
    return (struct span){NULL, 0};
}

/* 0 when rq may go on; else rs holds the 401 or 403. */
static int check_auth(const struct h1_head *h, struct admin_res *rs, const char **www)
{
    const char *token = (*admin_host.gen)->cfg->admin_token;
    if (!token[0]) return 0;
    struct span a = header(h, "Authorization");
    if (!a.p) {
        api_error(rs, 401, "this change needs Authorization: Bearer TOKEN (admin.token)");
        *www = "Bearer realm=\"usher\"";
        return -1;
    }
    if (a.len < 7 || strncasecmp(a.p, "Bearer ", 7)) {
        api_error(rs, 401, "the Authorization header must be Bearer TOKEN");
        *www = "Bearer realm=\"usher\", error=\"invalid_request\"";
        return -1;
    }
    if (!token_ok(a.p + 7, a.len - 7, token)) {
        api_error(rs, 403, "wrong token");
        return -1;
    }
    return 0;
}

static void route(const struct admin_req *rq, const struct h1_head *h, struct admin_res *rs,
                  const char **www)
{
    if (!strcmp(rq->path, "/metrics")) {
        if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")) {
            api_error(rs, 405, "/metrics: only GET");
            rs->allow = "GET, HEAD";
            return;
        }
        rs->status = 200;
        rs->type = "text/plain; version=0.0.4; charset=utf-8";
        metrics_write(&rs->body, *admin_host.gen, &admin_metrics);
        return;
    }
    if (!strcmp(rq->path, "/")) {
        if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")) {
            api_error(rs, 405, "/: only GET");
            rs->allow = "GET, HEAD";
            return;
        }
        rs->status = 200;
        rs->type = "text/html; charset=utf-8";
        jb_putn(&rs->body, (const char *)dashboard_html, dashboard_html_len);
        return;
    }
    if (api_is_change(rq) && check_auth(h, rs, www) < 0) return;
    api_handle(rq, rs);
}

/* The answer goes out: its head is written, its body moves to c (rs->body is left empty). */
static void respond(struct admin_conn *c, struct admin_res *rs, int head_only, const char *www)
{
    struct jbuf *o = &c->head;
    o->len = 0;
    c->out_off = 0;
    int html = rs->type && !strncmp(rs->type, "text/html", 9);
    jb_printf(o,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s",
              rs->status, reason(rs->status), rs->type ? rs->type : "application/json",
              rs->body.len, c->keep_alive ? "" : "Connection: close\r\n");
    if (html)
        jb_puts(o, "Content-Security-Policy: default-src 'none'; script-src 'self' "
                   "'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'\r\n");
    if (rs->allow) jb_printf(o, "Allow: %s\r\n", rs->allow);
    if (www) jb_printf(o, "WWW-Authenticate: %s\r\n", www);
    jb_puts(o, "\r\n");
    jb_free(&c->body);
    c->body = rs->body;
    rs->body = (struct jbuf){0};
    c->head_only = head_only;
}

/* A whole request is in c->in: 1 when one was answered, 0 when more bytes are needed. */
static int serve(struct admin_conn *c)
{
    size_t scanned = 0;
    size_t head_len = h1_find_head_end(c->in, c->in_len, &scanned);
    struct admin_res rs = {.status = 500, .body = take_spare()};
    const char *www = NULL;
    if (!head_len) {
        if (c->in_len < ADMIN_MAX_REQUEST) {
            give_spare(&rs.body); /* not answering yet */
            return 0;
        }
        c->keep_alive = 0;
        api_error(&rs, 431, "request head too large");
        goto answer;
    }
    struct h1_head *h = &ad.head;
    h->max_headers = H1_MAX_HEADERS;
    h->skip_body = 0;
    const char *why = NULL;
    h1_parser_init(&ad.parser, 1);
    if (h1_parse_head(&ad.parser, h, c->in, head_len, &why) ||
        h1_check_request(h, c->in, head_len, &why) || h->chunked) {
        c->keep_alive = 0;
        api_error(&rs, 400, "malformed request: %s",
                  h->chunked ? "chunked bodies are not accepted: send Content-Length" : why);
        c->in_len = 0;
        goto answer;
    }
    if (h->content_length > ADMIN_MAX_REQUEST - head_len) {
        c->keep_alive = 0;
        api_error(&rs, 413, "request body too large (at most %u bytes)",
                  (unsigned)(ADMIN_MAX_REQUEST - head_len));
        c->in_len = 0;
        goto answer;
    }
    size_t total = head_len + (size_t)h->content_length;
    if (c->in_len < total) {
        give_spare(&rs.body);
        return 0;
    }
    c->keep_alive = !h->conn_close && (h->minor == 1 || h->conn_keep_alive);
    char method[16], path[512], query[512];
    snprintf(method, sizeof(method), "%.*s", (int)(h->method.len < 15 ? h->method.len : 15),
             h->method.p);
    size_t qpos = 0;
    while (qpos < h->target.len && h->target.p[qpos] != '?') qpos++;
    if (qpos >= sizeof(path) || h->target.len - qpos >= sizeof(query)) {
        api_error(&rs, 414, "request target too long");
    } else {
        snprintf(path, sizeof(path), "%.*s", (int)qpos, h->target.p);
        snprintf(query, sizeof(query), "%.*s",
                 (int)(qpos < h->target.len ? h->target.len - qpos - 1 : 0),
                 h->target.p + (qpos < h->target.len ? qpos + 1 : qpos));
        struct admin_req rq = {method, path, query, c->in + head_len, (size_t)h->content_length,
                               c->peer};
        route(&rq, h, &rs, &www);
    }
    int head_only = !strcmp(method, "HEAD");
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    if (rs.body.oom) api_error(&rs, 500, "out of memory");
    respond(c, &rs, head_only, www);
    return 1;
answer:
    respond(c, &rs, 0, www);
    return 1;
}

static void aconn_step(struct admin_conn *c)
{
    for (;;) {
        size_t blen = c->head_only ? 0 : c->body.len, total = c->head.len + blen;
        if (c->out_off < total) {
            struct iovec iov[2];
            int n = 0;
            if (c->out_off < c->head.len)
                iov[n++] = (struct iovec){c->head.p + c->out_off, c->head.len - c->out_off};
            size_t boff = c->out_off > c->head.len ? c->out_off - c->head.len : 0;
            if (boff < blen) {
                size_t room = ADMIN_WRITE_CHUNK - (n ? iov[0].iov_len : 0);
                iov[n++] =
                    (struct iovec){c->body.p + boff, blen - boff < room ? blen - boff : room};
            }
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            ssize_t w = sendmsg(c->io.fd, &m, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (w < 0) {
                aconn_close(c);
                return;
            }
            c->out_off += (size_t)w;
            if (c->out_off < total) {
                if ((size_t)w == ADMIN_WRITE_CHUNK) sched_yield();
                continue;
            }
            c->head.len = c->out_off = 0;
            give_spare(&c->body);
            if (!c->keep_alive) {
                aconn_close(c);
                return;
            }
            loop_timer_set(admin_host.loop, &c->timer, ADMIN_IDLE_MS);
        }
        if (c->in_len && serve(c)) continue;
        if (c->in_len >= ADMIN_MAX_REQUEST) return;
        ssize_t n = recv(c->io.fd, c->in + c->in_len, ADMIN_MAX_REQUEST - c->in_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            aconn_close(c);
            return;
        }
        c->in_len += (size_t)n;
        if (!serve(c)) continue;
    }
}

static void on_conn(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct admin_conn *c = (struct admin_conn *)io;
    if (events & (EPOLLERR)) {
        aconn_close(c);
        return;
    }
    aconn_step(c);
}

static void on_conn_timer(struct loop *loop, struct loop_timer *t)
{
    aconn_close((struct admin_conn *)((char *)t - offsetof(struct admin_conn, timer)));
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
    for (;;) {
        struct sock_addr peer;
        peer.len = sizeof(peer.in6);
        int fd = accept4(io->fd, &peer.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        struct admin_conn *c = ad.nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
        if (c) c->in = malloc(ADMIN_MAX_REQUEST);
        if (!c || !c->in) {
            if (c) free(c);
            close(fd);
            continue;
        }
        sock_addr_str(&peer, c->peer, sizeof(c->peer));
        c->io.fd = fd;
        c->io.cb = on_conn;
        c->timer.cb = on_conn_timer;
        if (loop_add(loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLET) < 0) {
            close(fd);
            free(c->in);
            free(c);
            continue;
        }
        c->next = ad.conns;
        if (ad.conns) ad.conns->prev = c;
        ad.conns = c;
        ad.nconns++;
        loop_timer_set(loop, &c->timer, ADMIN_IDLE_MS);
        aconn_step(c);
    }
}

static void on_tick(struct loop *loop, struct loop_timer *t)
{
    api_tick();
    /* the next whole second, so that samples land one per unix second */
    uint64_t ms = (uint64_t)(stats_unix_now() * 1000) % 1000;
    loop_timer_set(loop, t, 1000 - ms + 5);
}

int admin_start(const struct admin_host *h, const struct config *cfg)
{
    admin_host = *h;
    if (!admin_metrics.start_time) admin_metrics.start_time = stats_unix_now();
    if (!admin_metrics.last_reload_ok) admin_metrics.last_reload_ok = admin_metrics.start_time;
    struct sock_addr a;
    const char *why;
    if (sock_parse_addr(cfg->admin_bind, &a, &why) < 0) {
        log_err("admin: cannot listen on %s: %s", cfg->admin_bind, why);
        return -EINVAL;
    }
    int fd = sock_listen(&a, 128);
    if (fd < 0) {
        log_err("admin: cannot listen on %s: %s", cfg->admin_bind, strerror(-fd));
        return fd;
    }
    ad.lis.fd = fd;
    ad.lis.cb = on_accept;
    int err = loop_add(h->loop, &ad.lis, EPOLLIN);
    if (err < 0) {
        close(fd);
        return err;
    }
    ad.on = 1;
    ad.tick.cb = on_tick;
    loop_timer_set(h->loop, &ad.tick, 10);
    log_info("admin: the API, /metrics and the dashboard on http://%s/ (%s)", cfg->admin_bind,
             cfg->admin_token[0] ? "changes need the token" : "changes need no token: loopback");
    return 0;
}

void admin_stop(void)
{
    if (!ad.on) return;
    while (ad.conns) aconn_close(ad.conns);
    loop_run_deferred(admin_host.loop); /* the control loop has stopped: no iteration frees them */
    loop_timer_stop(admin_host.loop, &ad.tick);
    loop_close(admin_host.loop, &ad.lis);
    jb_free(&ad.spare);
    metrics_free();
    api_free();
    ad.on = 0;
}

void admin_reloaded(int ok, const char *msg)
{
    if (ok) {
        admin_metrics.reloads_ok++;
        admin_metrics.last_reload_ok = stats_unix_now();
    } else {
        admin_metrics.reloads_failed++;
    }
    admin_reloaded_note(ok, msg);
    events_add("reload", NULL, NULL, "%s", msg);
}
