/* fuzz_session: a whole proxy session, driven through public APIs only.
 *
 * One worker (worker_init, never started as a thread: this target drives its
 * loop with loop_run_once) in front of one backend that is this target
 * itself: a listening socket on 127.0.0.1. Each input is one client
 * connection: a socketpair whose one end is handed to proxy_accept(), and
 * whatever backend connections usher opens. The input is a script of
 * operations:
 *
 *   op byte & 3 == 0: the client sends the next (op >> 2) + 1 bytes
 *                 1: the backend (its newest connection) sends the next
 *                    (op >> 2) + 1 bytes
 *                 2: (op >> 2) odd: the backend closes its newest connection;
 *                    else (op >> 3) odd: the clock moves on by
 *                    100 ms << (op >> 4) (0.1 s to 55 min: every timeout,
 *                    408, 504, lingering close, idle expiry, is reached);
 *                    else: the client half-closes
 *                 3: the client sends the next (op >> 2) + 1 bytes one byte
 *                    at a time
 *
 * After every operation the loop runs until nothing moves, and every byte
 * usher wrote (to the client, to each backend connection) is collected. At the
 * end, both sides close and the session must go away (no leak: ASan's leak
 * check at exit, and w.px.nsessions back to 0).
 *
 * Invariants on what usher wrote:
 *   - upstream, on every connection: a sequence of requests a strict reader
 *     (fuzz_common.h) accepts, complete or cut short at the end, never more
 *     than the client sent heads;
 *   - downstream: a sequence of strict response heads (usher's own errors
 *     included), never more final responses than the client sent heads.
 *
 * The worker's loop reads a clock of this target (loop_set_clock): the real
 * one plus however far the script moved it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/sock.h"
#include "app/worker.h"
#include "proxy/proxy.h"
#include "upstream/backend.h"
#include "upstream/generation.h"

#include "fuzz_common.h"
#include "fuzz_worker.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_worker_init("fuzz_session");
    return 0;
}

static size_t count_heads(const char *p, size_t len)
{
    size_t n = 0, pos = 0;
    while (pos < len) {
        size_t sc = 0;
        size_t h = h1_find_head_end(p + pos, len - pos, &sc);
        if (!h) break;
        n++;
        pos += h;
    }
    return n + 1; /* a head may also end in bytes usher has not been sent yet: never undercount */
}

/* The length of the head at p (up to and with its CRLFCRLF; usher writes
 * only CRLF line ends), or 0 when it is cut short. */
static size_t head_len(const char *p, size_t len)
{
    const char *e = memmem(p, len, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

/* What usher sent on one backend connection: strict requests, in a row. */
static size_t check_upstream(const struct stream *s)
{
    size_t pos = 0, nreq = 0;
    while (pos < s->len) {
        const char *p = s->p + pos;
        size_t len = s->len - pos;
        size_t hl = head_len(p, len);
        if (!hl) return nreq; /* cut short */
        struct ref_head r;
        ref_request_head((const unsigned char *)p, hl, 1, &r);
        if (r.bad) fz_dump("forwarded request head", p, hl);
        FZ_CHECK(r.bad ? r.bad : "ok", !r.bad,
                 "usher sent the backend a head a strict reader rejects: %s", r.why);
        nreq++;
        pos += hl;
        /* an upgrade may turn the connection into a tunnel: what follows is not HTTP */
        if (fz_out_has(p, hl, "upgrade")) return nreq;
        if (r.chunked) {
            struct ref_chunked rc;
            ref_chunked_parse((const unsigned char *)s->p + pos, s->len - pos, &rc);
            FZ_CHECK(rc.result == REF_ERROR && strcmp(rc.name, "chunked-diff") ? rc.name
                                                                               : "session-chunked",
                     rc.result != REF_ERROR, "usher sent the backend an invalid chunked body: %s",
                     rc.why);
            if (rc.result != REF_DONE) return nreq;
            pos += rc.pos;
        } else if (r.n_cl) {
            if (r.cl > s->len - pos) return nreq;
            pos += (size_t)r.cl;
        }
    }
    return nreq;
}

/* What usher sent the client: strict response heads. Bodies are skipped by
 * their framing; a response to HEAD cannot be told apart here, so the walk
 * stops at the first bodiless-by-request case it cannot frame. */
static size_t check_downstream(const struct stream *s, int saw_head_method)
{
    size_t pos = 0, nres = 0;
    while (pos < s->len) {
        const char *p = s->p + pos;
        size_t len = s->len - pos;
        size_t hl = head_len(p, len);
        if (!hl) return nres;
        struct ref_head r;
        ref_response_head((const unsigned char *)p, hl, 1, &r);
        /* what usher cannot repair it must not forward: only framing-relevant and
         * line-structure violations count here (the head fuzzer checks the rest) */
        if (r.bad) fz_dump("response head sent to the client", p, hl);
        FZ_CHECK(r.bad ? r.bad : "ok", !r.bad || !strcmp(r.bad, "te-coding"),
                 "usher sent the client a head a strict reader rejects: %s", r.why);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        pos += hl;
        if (status == 101) return nres; /* a tunnel from here */
        if (status >= 200) nres++;
        if (status < 200 || status == 204 || status == 304) continue;
        if (saw_head_method) return nres;
        if (r.chunked) {
            struct ref_chunked rc;
            ref_chunked_parse((const unsigned char *)s->p + pos, s->len - pos, &rc);
            FZ_CHECK(rc.result == REF_ERROR && strcmp(rc.name, "chunked-diff")
                         ? rc.name
                         : "session-res-chunked",
                     rc.result != REF_ERROR, "usher sent the client an invalid chunked body: %s",
                     rc.why);
            if (rc.result != REF_DONE) return nres;
            pos += rc.pos;
        } else if (r.n_cl) {
            if (r.cl > s->len - pos) return nres;
            pos += (size_t)r.cl;
        } else {
            return nres; /* ends by close */
        }
    }
    return nres;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) abort();
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(0xC0000207); /* 192.0.2.7 */
    down.len = 0;
    for (int i = 0; i < MAX_UP; i++) up[i].len = 0, up_fd[i] = -1;
    nup = 0;
    loop_update_time(&w.loop);
    proxy_accept(&w.px, sv[0], (struct sockaddr *)&peer, 0);
    int cfd = sv[1];
    char *client = malloc(size + 1); /* everything the client sent */
    size_t client_len = 0;
    pump(cfd);

    size_t i = 0;
    for (int ops = 0; i < size && ops < 256; ops++) {
        uint8_t op = data[i++];
        size_t n = (size_t)(op >> 2) + 1;
        switch (op & 3) {
        case 0:
        case 3: {
            if (n > size - i) n = size - i;
            size_t step = (op & 3) == 3 ? 1 : n;
            for (size_t k = 0; k < n; k += step) {
                size_t m = step < n - k ? step : n - k;
                ssize_t wr = write(cfd, data + i + k, m);
                if (wr > 0) {
                    memcpy(client + client_len, data + i + k, (size_t)wr);
                    client_len += (size_t)wr;
                }
                if ((op & 3) == 3) pump(cfd);
            }
            i += n;
            break;
        }
        case 1:
            if (n > size - i) n = size - i;
            if (nup && up_fd[nup - 1] >= 0) {
                ssize_t wr = write(up_fd[nup - 1], data + i, n);
                (void)wr;
            }
            i += n;
            break;
        case 2:
            if ((op >> 2) & 1) {
                if (nup && up_fd[nup - 1] >= 0) {
                    close(up_fd[nup - 1]);
                    up_fd[nup - 1] = -1;
                }
            } else if ((op >> 3) & 1) {
                clock_ahead += UINT64_C(100) << (op >> 4);
            } else {
                shutdown(cfd, SHUT_WR);
            }
            break;
        }
        pump(cfd);
    }

    if (getenv("USHER_FUZZ_VERBOSE")) {
        fz_dump("client sent", client, client_len);
        for (int k = 0; k < nup; k++) fz_dump("backend connection got", up[k].p, up[k].len);
        fz_dump("client got", down.p, down.len);
    }
    /* the invariants on what was written */
    size_t heads = count_heads(client, client_len);
    int saw_head = memmem(client, client_len, "HEAD", 4) != NULL;
    for (int k = 0; k < nup; k++) {
        size_t nreq = check_upstream(&up[k]);
        FZ_CHECK("session-count", nreq <= heads,
                 "backend connection %d got %zu requests; the client sent at most %zu heads", k,
                 nreq, heads);
    }
    size_t nres = check_downstream(&down, saw_head);
    FZ_CHECK("session-count", nres <= heads, "the client got %zu responses to at most %zu heads",
             nres, heads);

    /* both sides go away: the session must end and free everything */
    close(cfd);
    struct linger lg = {1, 0};
    for (int k = 0; k < nup; k++)
        if (up_fd[k] >= 0) {
            setsockopt(up_fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(up_fd[k]);
            up_fd[k] = -1;
        }
    for (int round = 0; round < 64 && w.px.nsessions; round++) loop_run_once(&w.loop, 1);
    FZ_CHECK("session-close", w.px.nsessions == 0,
             "the session did not end after both sides closed");
    upconn_close_all_idle(&w.px.ups);
    loop_run_once(&w.loop, 0);
    free(client);
    return 0;
}
