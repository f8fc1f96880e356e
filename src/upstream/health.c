/* health: active and passive health checks. See health.h. */
#include "upstream/health.h"
#include "upstream/events.h"
#include "upstream/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balance/balance.h"
#include "core/log.h"
#include "core/sock.h"
#include "net/conn.h"
#include "tls/tls.h"

/* https:// backends: the TLS handshake follows the connect; a TCP check
 * passes when it completes, an HTTP check sends its GET through it. After a
 * TLS 1.3 handshake a TCP check waits for the backend's ticket
 * (CHECK_TICKET): it is the session the next check resumes (each is used
 * once), and the sign that the backend took our side of the handshake (a
 * backend refuses a client certificate only then, with an alert); no ticket
 * within the timeout still passes. */
enum check_phase { CHECK_IDLE, CHECK_CONNECTING, CHECK_HANDSHAKE, CHECK_READING, CHECK_TICKET };

struct check {
    struct conn conn;        /* the check's connection, through the transport like any backend's */
    struct loop_timer timer; /* next check while idle; timeout while running */
    struct health *h;
    struct backend *be;
    uint8_t phase;
    uint8_t seen_down;     /* state was DOWN when we last looked */
    uint8_t fresh_session; /* this connection brought a session */
    uint32_t ok_streak, fail_streak;
    uint32_t got;
    struct ssl_session_st *session; /* https://: the last TLS session, resumed by the next check */
    char resp[64];                  /* enough for the status line */
};

struct health {
    struct loop *loop;
    struct pool *pool;
    const struct pool_conf *cfg;
    unsigned seed;
    struct loop_defer defer; /* the free waits for the end of the loop iteration */
    struct check checks[];
};

void health_list_up(const struct pool *p, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < p->n && off + 1 < cap; i++) {
        const struct backend *b = &p->backends[i];
        if (backend_state(b) != BACKEND_UP) continue;
        int n = snprintf(out + off, cap - off, "%s%s%s", off ? ", " : "", b->conf->url,
                         backend_draining(b) ? " (draining)" : "");
        if (n < 0) break;
        off += (size_t)n;
    }
    if (!off) snprintf(out, cap, "none");
}

/* Moves b from `from` to `to` unless someone else already did; logs once. */
static int transition(struct pool *p, struct backend *b, int from, int to, const char *why)
{
    int expected = from;
    if (!atomic_compare_exchange_strong(&b->state, &expected, to)) return 0;
    pool_update_standby(p); /* SRV priorities: the lowest one with a backend up serves */
    char up[1024];
    health_list_up(p, up, sizeof(up));
    /* --log-format json: the pool and the backend as fields of their own */
    const struct log_field f[] = {{"pool", p->cfg->name},
                                  {"backend", b->conf->url},
                                  {"state", to == BACKEND_DOWN ? "down" : "up"}};
    uint32_t nup = 0;
    for (uint32_t i = 0; i < p->n; i++) nup += backend_state(&p->backends[i]) == BACKEND_UP;
    stats_note_state(b->slot, why, 1);
    events_add(to == BACKEND_DOWN ? "down" : "up", p->cfg->name, b->conf->name,
               "backend %s is %s: %s (%u of %u backends up)", b->conf->name,
               to == BACKEND_DOWN ? "down" : "up", why, nup, p->n);
    if (to == BACKEND_DOWN)
        log_with(LOG_WARN, f, 3, "backend %s is DOWN (%s); healthy: %s", b->conf->url, why, up);
    else if (p->cfg->slow_start_ms)
        log_with(LOG_INFO, f, 3,
                 "backend %s is UP (%s); healthy: %s; its share of requests ramps up over %u ms "
                 "(slow start)",
                 b->conf->url, why, up, p->cfg->slow_start_ms);
    else
        log_with(LOG_INFO, f, 3, "backend %s is UP (%s); healthy: %s", b->conf->url, why, up);
    return 1;
}

void health_passive_failure(struct pool *p, struct backend *b, const char *why, uint32_t max_fails)
{
    uint32_t n = atomic_fetch_add_explicit(&b->fails, 1, memory_order_relaxed) + 1;
    if (max_fails == 0 || n < max_fails) return;
    char reason[400];
    snprintf(reason, sizeof(reason), "%s, %u failures in a row on live traffic", why, n);
    if (transition(p, b, BACKEND_UP, BACKEND_DOWN, reason))
        atomic_store_explicit(&b->fails, 0, memory_order_relaxed);
}

static uint32_t jitter(struct health *h, uint32_t ms)
{
    /* +-10%: checks of many backends (and many ushers) do not all fire together */
    uint32_t span = ms / 5;
    return span ? ms - ms / 10 + (uint32_t)rand_r(&h->seed) % span : ms;
}

static void check_schedule(struct check *c, uint32_t ms)
{
    c->phase = CHECK_IDLE;
    loop_timer_set(c->h->loop, &c->timer, ms);
}

/* A new TLS session of a check's connection (tls_session_sink). */
static void store_session(struct conn *conn, struct ssl_session_st *s)
{
    struct check *c = (struct check *)((char *)conn - offsetof(struct check, conn));
    if (c->session) tls_session_free(c->session);
    c->session = s;
    c->fresh_session = 1;
}

static const struct tls_session_sink session_sink = {store_session};

static void check_close(struct check *c)
{
    if (c->conn.io.fd >= 0) conn_close(&c->conn); /* TLS: with close_notify (conn_tls) */
}

static void check_done(struct check *c, int ok, const char *why)
{
    struct health *h = c->h;
    const struct pool_conf *cfg = h->cfg;
    check_close(c);
    loop_timer_stop(h->loop, &c->timer);
    stats_note_check(c->be->slot, ok, why);
    int state = backend_state(c->be);
    if (state == BACKEND_DOWN && !c->seen_down) c->ok_streak = 0; /* taken down passively */
    if (ok && atomic_load(&c->be->unchecked)) {
        /* a discovered backend: its first passing check lets it in */
        char reason[400];
        snprintf(reason, sizeof(reason), "%s, its first check since DNS gave it", why);
        atomic_store(&c->be->unchecked, 0);
        c->ok_streak = cfg->health_rise;
        c->fail_streak = 0;
        if (cfg->slow_start_ms) balance_slow_start(c->be);
        transition(h->pool, c->be, BACKEND_DOWN, BACKEND_UP, reason);
    } else if (ok) {
        c->ok_streak++;
        c->fail_streak = 0;
        if (state == BACKEND_DOWN && c->ok_streak >= cfg->health_rise) {
            char reason[400];
            snprintf(reason, sizeof(reason), "%s, %u of %u checks passed", why, c->ok_streak,
                     cfg->health_rise);
            /* the ramp starts before the first request can see it UP */
            if (cfg->slow_start_ms) balance_slow_start(c->be);
            transition(h->pool, c->be, BACKEND_DOWN, BACKEND_UP, reason);
            atomic_store_explicit(&c->be->fails, 0, memory_order_relaxed);
        }
    } else {
        c->fail_streak++;
        c->ok_streak = 0;
        if (state == BACKEND_UP && c->fail_streak >= cfg->health_fall) {
            char reason[400];
            snprintf(reason, sizeof(reason), "%s, %u of %u checks failed", why, c->fail_streak,
                     cfg->health_fall);
            transition(h->pool, c->be, BACKEND_UP, BACKEND_DOWN, reason);
        } else if (state == BACKEND_UP) {
            const struct log_field f[] = {{"pool", cfg->name}, {"backend", c->be->conf->url}};
            log_with(LOG_INFO, f, 2,
                     "backend %s: health check failed (%s), %u of %u before it is taken out",
                     c->be->conf->url, why, c->fail_streak, cfg->health_fall);
        } else if (c->fail_streak == 1 && atomic_load(&c->be->unchecked)) {
            /* a backend DNS gave that never passed: it never had a transition
             * to say why it takes no traffic (a certificate that does not
             * name it, a port that refuses), so say it once */
            const struct log_field f[] = {{"pool", cfg->name}, {"backend", c->be->conf->url}};
            log_with(LOG_WARN, f, 2,
                     "backend %s: its first check since DNS gave it failed (%s); it takes no "
                     "requests until a check passes",
                     c->be->conf->url, why);
        }
    }
    c->seen_down = backend_state(c->be) == BACKEND_DOWN;
    check_schedule(c, jitter(h, cfg->health_interval_ms));
}

static void check_send(struct check *c)
{
    const struct pool_conf *cfg = c->h->cfg;
    if (!cfg->health_path[0] && tls_conn_tls13(&c->conn) && !c->fresh_session) {
        c->phase = CHECK_TICKET;
        return;
    }
    if (!cfg->health_path[0]) {
        check_done(c, 1, c->conn.tls ? "TLS handshake completed" : "TCP connect succeeded");
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: usher-health-check\r\n"
                     "Connection: close\r\n\r\n",
                     cfg->health_path, c->be->conf->authority);
    /* a fresh socket has far more room than one small request */
    struct iovec iov = {req, (size_t)(n < 0 ? 0 : n)};
    if (n < 0 || conn_writev(&c->conn, &iov, 1) != n) {
        check_done(c, 0, "could not send the check request");
        return;
    }
    c->phase = CHECK_READING;
    c->got = 0;
}

static void check_read(struct check *c)
{
    for (;;) {
        if (c->got >= sizeof(c->resp) - 1) break;
        if (!c->conn.readable) {                        /* nothing more until the next event */
            if (!memchr(c->resp, '\n', c->got)) return; /* wait for the status line */
            break;
        }
        ssize_t n = conn_read(&c->conn, c->resp + c->got, sizeof(c->resp) - 1 - c->got);
        if (n > 0) {
            c->got += (uint32_t)n;
            continue;
        }
        if (n == -EAGAIN || n == -EINTR) continue;
        if (n < 0) {
            char why[160];
            if (!c->conn.tls || !tls_conn_alert(&c->conn, why, sizeof(why)))
                snprintf(why, sizeof(why), "%s", strerror((int)-n));
            check_done(c, 0, why);
            return;
        }
        break; /* EOF */
    }
    c->resp[c->got] = 0;
    unsigned status = 0;
    char why[320];
    if (sscanf(c->resp, "HTTP/1.%*1[01] %3u", &status) != 1 || status < 100 || status > 599) {
        check_done(c, 0, c->got ? "not an HTTP response" : "connection closed without a response");
        return;
    }
    const struct pool_conf *cfg = c->h->cfg;
    int ok = status >= cfg->health_status_min && status <= cfg->health_status_max;
    snprintf(why, sizeof(why), "GET %s answered %u", cfg->health_path, status);
    check_done(c, ok, why);
}

static void on_check_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct check *c = (struct check *)((char *)io - offsetof(struct check, conn));
    conn_events(&c->conn, events);
    if (c->phase == CHECK_CONNECTING) {
        int err = conn_connect_result(&c->conn);
        if (err) {
            check_done(c, 0, strerror(-err));
            return;
        }
        if (!c->conn.tls) {
            check_send(c);
            return;
        }
        c->phase = CHECK_HANDSHAKE;
    }
    if (c->phase == CHECK_HANDSHAKE) {
        char why[256];
        int err = tls_client_handshake(&c->conn, why, sizeof(why));
        if (err == -EAGAIN) return;
        if (err < 0) {
            /* a session that did not resume is not tried again */
            if (c->session) tls_session_free(c->session);
            c->session = NULL;
            check_done(c, 0, why);
            return;
        }
        check_send(c);
        return;
    }
    if (c->phase == CHECK_READING) check_read(c);
    if (c->phase == CHECK_TICKET) {
        char b[64], why[160];
        ssize_t n = conn_read(&c->conn, b, sizeof(b));
        if (c->fresh_session || n > 0) {
            check_done(c, 1, "TLS handshake completed");
        } else if (n == 0) {
            check_done(c, 0, "TLS: the backend closed the connection after the handshake");
        } else if (n != -EAGAIN && n != -EINTR) {
            if (!tls_conn_alert(&c->conn, why, sizeof(why)))
                snprintf(why, sizeof(why), "%s", strerror((int)-n));
            check_done(c, 0, why);
        }
    }
}

static void on_check_timer(struct loop *loop, struct loop_timer *t)
{
    struct check *c = (struct check *)((char *)t - offsetof(struct check, timer));
    if (c->phase == CHECK_TICKET) { /* no ticket: the handshake passed all the same */
        check_done(c, 1, "TLS handshake completed");
        return;
    }
    if (c->phase != CHECK_IDLE) {
        check_done(c, 0, "timed out");
        return;
    }
    if (backend_maint(c->be)) { /* maintenance: checks pause, the state stays */
        check_schedule(c, c->h->cfg->health_interval_ms);
        return;
    }
    int fd = sock_connect(&c->be->conf->addr);
    if (fd < 0) {
        check_done(c, 0, strerror(-fd));
        return;
    }
    struct tls_client *tls = c->be->tls;
    if (conn_open(&c->conn, loop, fd, tls ? &conn_tls : &conn_plain, on_check_io, 1) < 0) {
        close(fd);
        check_done(c, 0, "cannot watch the socket");
        return;
    }
    c->fresh_session = 0;
    if (tls && tls_client_attach(&c->conn, tls, c->be->conf, c->session, &session_sink) < 0) {
        check_done(c, 0, "out of memory for TLS");
        return;
    }
    c->phase = CHECK_CONNECTING;
    loop_timer_set(loop, &c->timer, c->h->cfg->health_timeout_ms);
}

struct health *health_start(struct loop *loop, struct pool *p)
{
    const struct pool_conf *cfg = p->cfg;
    if (cfg->health_interval_ms == 0) return NULL;
    struct health *h = calloc(1, sizeof(*h) + p->n * sizeof(struct check));
    if (!h) return NULL;
    h->loop = loop;
    h->pool = p;
    h->cfg = cfg;
    h->seed = (unsigned)getpid() ^ (unsigned)loop->now;
    for (uint32_t i = 0; i < p->n; i++) {
        struct check *c = &h->checks[i];
        c->h = h;
        c->be = &p->backends[i];
        c->conn.io.fd = -1;
        c->timer.cb = on_check_timer;
        /* the first round is spread over a quarter interval: early, not all at once;
         * a backend DNS just gave is checked at once: it waits for it */
        check_schedule(c, atomic_load(&c->be->unchecked)
                              ? 0
                              : (uint32_t)rand_r(&h->seed) % (cfg->health_interval_ms / 4 + 1));
    }
    return h;
}

static void health_free(struct loop_defer *d)
{
    free((struct health *)((char *)d - offsetof(struct health, defer)));
}

void health_stop(struct health *h)
{
    if (!h) return;
    for (uint32_t i = 0; i < h->pool->n; i++) {
        struct check *c = &h->checks[i];
        check_close(c);
        loop_timer_stop(h->loop, &c->timer);
        if (c->session) tls_session_free(c->session);
        c->session = NULL;
    }
    /* an event of a check socket may still be in this iteration's batch (a
     * reload or an API change stops the checks from another callback): the
     * loop drops it as the socket is closed, but reads its io until the end */
    h->defer.fn = health_free;
    loop_defer(h->loop, &h->defer);
}
