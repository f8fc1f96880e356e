/* TLS handshake load client for bench/tls_handshakes.sh.
 *
 *   hs_client -p PORT [-m new|resumed] [-u] [-d SECONDS] [-c PROCESSES] [-v 1.2|1.3] [-n SNI]
 *
 * Each of PROCESSES forked processes opens one connection after another to
 * 127.0.0.1:PORT, does the TLS handshake (SNI, ALPN http/1.1, no certificate
 * check: the certificate is self-signed), sends
 * "GET / HTTP/1.1\r\nHost: SNI\r\nConnection: close\r\n\r\n", reads the answer
 * up to the end of its Content-Length body, sends close_notify and closes.
 * mode new:     no session is offered: every handshake is a full one.
 * mode resumed: the session of the previous connection (in TLS 1.3 the last
 *               ticket the server sent) is offered, as browsers and curl do;
 *               the session is taken once the answer is read, so resumption
 *               does not depend on how the server closes. A TLS 1.3 ticket is
 *               used once (RFC 8446 C.4, as OpenSSL's client cache and browsers
 *               do): a server that sends no new ticket on a resumed handshake
 *               gets a full handshake next. -u offers such a ticket again
 *               instead (a copy of it), to measure resumption all the same.
 * The first connection of each process is a warm-up outside the timing.
 * A connection counts as an error if it fails to connect, to handshake, or
 * its answer is not a complete 200. It prints one line with the totals:
 *   handshakes=N resumed=N full=N errors=N seconds=S tickets=N
 * (only handshakes whose exchange succeeded are counted in handshakes; tickets
 * is how many sessions the server handed out, TLS 1.3 tickets or 1.2 sessions).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct counts {
    long hs, resumed, full, errors, tickets;
    double seconds;
};

static const char *sni = "localhost";
static int port, resume, reuse, version = TLS1_3_VERSION;
static double duration = 5;
static char first_err[256];
static long tickets; /* sessions (tickets in TLS 1.3) the servers handed this process */

static int new_session(SSL *ssl, SSL_SESSION *s)
{
    (void)ssl;
    (void)s;
    tickets++;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void note(const char *what)
{
    if (!first_err[0]) {
        unsigned long e = ERR_peek_last_error();
        snprintf(first_err, sizeof first_err, "%s%s%s (errno %d)", what, e ? ": " : "",
                 e ? ERR_reason_error_string(e) : "", errno);
    }
    ERR_clear_error();
}

/* One connection. Returns 0 on success (a complete 200 answer), -1 on error;
 * *reused tells whether the handshake resumed the offered session. */
static int one(SSL_CTX *ctx, SSL_SESSION **sess, int *reused)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1, one_ = 1;
    SSL *ssl = NULL;
    if (fd < 0) {
        note("socket");
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        note("connect");
        goto out;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, sni);
    if (resume && *sess) {
        if (reuse) { /* a copy: the original stays usable after this use */
            SSL_SESSION *d = SSL_SESSION_dup(*sess);
            SSL_set_session(ssl, d);
            SSL_SESSION_free(d);
        } else {
            SSL_set_session(ssl, *sess);
        }
    }
    long tickets_before = tickets;
    if (SSL_connect(ssl) != 1) {
        note("handshake");
        goto out;
    }
    *reused = SSL_session_reused(ssl);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni);
    if (SSL_write(ssl, req, n) != n) {
        note("write");
        goto out;
    }
    char buf[16384];
    size_t got = 0;
    long need = -1; /* total bytes of head + body, once the head is in */
    for (;;) {
        int r = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (r <= 0) {
            if (need < 0 || (long)got < need)
                note("short answer");
            else
                rc = 0;
            break;
        }
        got += r;
        buf[got] = 0;
        if (need < 0) {
            char *end = strstr(buf, "\r\n\r\n");
            if (end) {
                if (strncmp(buf, "HTTP/1.1 200", 12) && strncmp(buf, "HTTP/1.0 200", 12)) {
                    if (!first_err[0]) snprintf(first_err, sizeof first_err, "status: %.40s", buf);
                    goto out;
                }
                char *cl = strcasestr(buf, "\r\ncontent-length:");
                if (!cl || cl > end) {
                    note("no content-length");
                    goto out;
                }
                need = (end + 4 - buf) + atol(cl + 17);
            }
        }
        if (need >= 0 && (long)got >= need) {
            rc = 0;
            break;
        }
        if (got >= sizeof buf - 1) {
            note("answer too big");
            goto out;
        }
    }
    if (resume && (!reuse || tickets > tickets_before)) { /* the newest session, for the next one */
        SSL_SESSION *s = SSL_get1_session(ssl);
        SSL_SESSION_free(*sess);
        *sess = s && SSL_SESSION_is_resumable(s) ? s : NULL;
        if (!*sess) SSL_SESSION_free(s);
    }
    SSL_shutdown(ssl); /* our close_notify; the server's is not waited for */
out:
    if (ssl) SSL_free(ssl);
    close(fd);
    return rc;
}

static void worker(int out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    SSL_SESSION *sess = NULL;
    struct counts c = {0};
    int reused = 0;
    for (int i = 0; i < 3 && one(ctx, &sess, &reused) != 0; i++) usleep(100000); /* warm-up */
    double t0 = now(), end = t0 + duration;
    tickets = 0;
    while (now() < end) {
        reused = 0;
        if (one(ctx, &sess, &reused) == 0) {
            c.hs++;
            if (reused)
                c.resumed++;
            else
                c.full++;
        } else {
            c.errors++;
            usleep(1000);
        }
    }
    c.seconds = now() - t0;
    c.tickets = tickets;
    if (first_err[0]) fprintf(stderr, "hs_client: first error: %s\n", first_err);
    if (write(out, &c, sizeof c) != sizeof c) _exit(1);
    _exit(0);
}

int main(int argc, char **argv)
{
    int procs = 1, o;
    while ((o = getopt(argc, argv, "p:m:ud:c:v:n:")) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'm':
            resume = !strcmp(optarg, "resumed");
            if (!resume && strcmp(optarg, "new")) goto usage;
            break;
        case 'u': reuse = 1; break;
        case 'd': duration = atof(optarg); break;
        case 'c': procs = atoi(optarg); break;
        case 'v': version = !strcmp(optarg, "1.2") ? TLS1_2_VERSION : TLS1_3_VERSION; break;
        case 'n': sni = optarg; break;
        default: goto usage;
        }
    }
    if (port <= 0 || procs <= 0 || duration <= 0) goto usage;
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    if (pipe(fds) < 0) {
        perror("pipe");
        return 1;
    }
    for (int i = 0; i < procs; i++) {
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 1;
        }
        if (p == 0) {
            close(fds[0]);
            worker(fds[1]);
        }
    }
    close(fds[1]);
    struct counts t = {0}, c;
    int got = 0;
    while (read(fds[0], &c, sizeof c) == sizeof c) {
        t.hs += c.hs;
        t.resumed += c.resumed;
        t.full += c.full;
        t.errors += c.errors;
        t.tickets += c.tickets;
        if (c.seconds > t.seconds) t.seconds = c.seconds;
        got++;
    }
    while (wait(NULL) > 0) {
    }
    if (got != procs) t.errors += procs - got;
    printf("handshakes=%ld resumed=%ld full=%ld errors=%ld seconds=%.3f tickets=%ld\n", t.hs,
           t.resumed, t.full, t.errors, t.seconds, t.tickets);
    return 0;
usage:
    fprintf(stderr, "usage: hs_client -p PORT [-m new|resumed] [-u] [-d SECONDS] [-c PROCESSES] "
                    "[-v 1.2|1.3] [-n SNI]\n");
    return 2;
}
