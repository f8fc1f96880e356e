/* conn: see conn.h. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bytes.h"
#include "http.h"
#include "out.h"
#include "routes.h"
#include "util.h"
#include "ws.h"

#define LINGER_MS 2000

static int g_epfd = -1;
static struct conn *g_conns;
static char g_rbuf[RBUF_SIZE]; /* shared: input is parsed or saved before the next read */

void conn_set_epoll(int epfd)
{
    g_epfd = epfd;
}

void conn_close(struct conn *c)
{
    timer_cancel(&c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        g_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->pend);
    buf_free(&c->out);
    buf_free(&c->url);
    buf_free(&c->hbuf);
    free(c->hdrs);
    free(c);
}

void conn_close_all(void)
{
    while (g_conns) conn_close(g_conns);
}

void conn_drop_pend(struct conn *c)
{
    free(c->pend);
    c->pend = NULL;
    c->pend_off = c->pend_len = 0;
}

static void pend_save(struct conn *c, const char *d, size_t n)
{
    conn_drop_pend(c);
    c->pend = util_xrealloc(NULL, n);
    memcpy(c->pend, d, n);
    c->pend_len = n;
}

void conn_response_done(struct conn *c)
{
    if (!c->ka) {
        c->close_after_flush = true;
        conn_drop_pend(c);
        return;
    }
    llhttp_resume(&c->parser);
    c->at_start = true;
}

/* Level-triggered: ask for EPOLLIN only while we would act on new input. */
static void update_interest(struct conn *c)
{
    size_t pend = out_pending(c);
    uint32_t want = 0;
    if (pend > 0 || c->gen_active || c->runnable) want |= EPOLLOUT;
    bool waiting = c->gen_active || pend >= OUT_LOW || c->timer.kind == TIMER_SLOW ||
                   c->req_ready || (c->pend && !c->ws) || (c->close_after_flush && pend > 0);
    if (!waiting) want |= EPOLLIN;
    if (want != c->ev) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->ev = want;
    }
}

/* Reads into g_rbuf: >0 bytes, 0 on EOF, -1 would block, -2 error. */
static ssize_t conn_read(struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, g_rbuf, sizeof g_rbuf);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
}

void conn_run(struct conn *c)
{
    c->runnable = false;
    /* a budget, so that one busy connection cannot starve the others */
    for (int budget = 64;; budget--) {
        if (budget == 0) {
            c->runnable = true;
            break;
        }
        if (c->gen_active && out_pending(c) < OUT_LOW) bytes_fill(c);
        if (out_pending(c) > 0 && out_flush(c) < 0) {
            conn_close(c);
            return;
        }
        size_t pend = out_pending(c);
        if (c->gen_active) {
            if (pend > 0) break; /* socket full */
            continue;
        }
        if (pend >= OUT_LOW || c->timer.kind == TIMER_SLOW) break;

        if (c->close_after_flush) {
            if (pend > 0) break;
            if (!c->lingering) {
                if (c->eof_seen) {
                    conn_close(c);
                    return;
                }
                /* Half-close and drain, so that unread input does not turn
                 * our close into a RST that could destroy the response. */
                shutdown(c->fd, SHUT_WR);
                c->lingering = true;
                conn_drop_pend(c);
                timer_arm(&c->timer, LINGER_MS, TIMER_LINGER);
            }
            ssize_t n = conn_read(c);
            if (n > 0) continue;
            if (n == -1) break;
            conn_close(c);
            return;
        }

        if (c->ws) {
            if (c->pend) {
                ws_feed(c, (unsigned char *)c->pend + c->pend_off, c->pend_len - c->pend_off);
                conn_drop_pend(c);
                continue;
            }
        } else {
            if (c->req_ready) {
                routes_dispatch(c);
                continue;
            }
            if (c->pend) {
                size_t used = http_feed(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
                if (c->pend) { /* (a bad request drops it) */
                    c->pend_off += used;
                    if (c->pend_off == c->pend_len) conn_drop_pend(c);
                }
                continue;
            }
        }
        ssize_t n = conn_read(c);
        if (n == -1) break;
        if (n == -2) {
            conn_close(c);
            return;
        }
        if (n == 0) {
            c->eof_seen = true;
            c->close_after_flush = true;
            continue;
        }
        if (c->ws) {
            ws_feed(c, (unsigned char *)g_rbuf, (size_t)n);
        } else {
            size_t used = http_feed(c, g_rbuf, (size_t)n);
            if (used < (size_t)n && !c->close_after_flush)
                pend_save(c, g_rbuf + used, (size_t)n - used);
        }
    }
    update_interest(c);
}

void conn_timer_fire(struct conn *c)
{
    enum timer_kind k = c->timer.kind;
    timer_cancel(&c->timer);
    if (k == TIMER_LINGER) {
        conn_close(c);
        return;
    }
    routes_respond_slow(c);
    conn_response_done(c);
    conn_run(c);
}

void conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->timer.idx = -1;
    c->at_start = true;
    c->ka = true;
    c->minor = 1;
    http_parser_init(c);
    c->ev = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = g_conns;
    if (g_conns) g_conns->prev = c;
    g_conns = c;
}
