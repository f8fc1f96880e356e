/* conn_tls13: the TLS 1.3 record layer run by usher after OpenSSL's
 * handshake, on client-facing connections (what kTLS does in the kernel,
 * which this kernel lacks). See docs/ARCHITECTURE.md "TLS 1.3 record layer".
 *
 * While the handshake runs (conn_tls, OpenSSL), a small struct tls13_hs
 * hangs off the SSL: the keylog callback puts the application traffic
 * secrets in it, and the message callback counts the records of each
 * direction since that direction's Finished, which are the sequence numbers
 * of the next records (RFC 8446 5.3). Read-ahead is off meanwhile, so that
 * OpenSSL never holds bytes past the record it is working on. At a point
 * where OpenSSL holds nothing (tls13_try_handoff says which), the keys are
 * made from the secrets, what the session asks later (ALPN, the client
 * certificate's result and subject) is copied, the SSL is freed and the
 * connection's ops become conn_tls13. Anything unusual (TLS 1.2, another
 * suite, a KeyUpdate or any handshake message after the Finished, a record
 * half read, a write pending) keeps the connection on OpenSSL.
 *
 * After the handoff a connection holds two keyed AEAD contexts and this
 * state; buffers only while they hold something: the ciphertext of a record
 * not whole yet or plaintext the caller had no room for, and ciphertext the
 * socket did not take. Reads go through a per-thread scratch buffer. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "tls/rec13.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

#define HANDOFF_TRIES 16    /* reads after the handshake that may still find OpenSSL busy */
#define WRITE_RECORDS 4     /* records sealed per send() */
#define READ_RECORDS 4      /* records the read scratch holds */
#define OUT_MAX (64 * 1024) /* ciphertext kept unsent beyond one batch (KeyUpdates, alerts) */
#define BARREN_MAX 32       /* records in a row without data (as OpenSSL's MAX_EMPTY_RECORDS) */

/* ---- during the handshake ----------------------------------------------------------- */

struct tls13_hs {
    uint8_t csec[REC13_SECRET_MAX], ssec[REC13_SECRET_MAX];
    uint8_t clen, slen;
    uint8_t rstarted, wstarted; /* the client's / our Finished went by */
    uint8_t bad;                /* something that only OpenSSL can follow */
    uint8_t tries;
    uint32_t rd_open; /* record headers read whose record was not opened yet */
    uint64_t rseq, wseq;
};

static int hs_index = -1;
static pthread_once_t hs_once = PTHREAD_ONCE_INIT;

static void hs_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr) OPENSSL_clear_free(ptr, sizeof(struct tls13_hs));
}

static void hs_make_index(void)
{
    hs_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, hs_free);
}

static struct tls13_hs *hs_of(const SSL *ssl)
{
    return hs_index < 0 ? NULL : SSL_get_ex_data(ssl, hs_index);
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n % 2 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = s[i + k];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        out[i / 2] = (uint8_t)v;
    }
    return (int)(n / 2);
}

void tls13_keylog(const SSL *ssl, const char *line)
{
    struct tls13_hs *h = hs_of(ssl);
    if (!h) return;
    /* "LABEL <client random, hex> <secret, hex>" (SSL_CTX_set_keylog_callback(3)) */
    static const char ct[] = "CLIENT_TRAFFIC_SECRET_0 ", st[] = "SERVER_TRAFFIC_SECRET_0 ";
    int client = !strncmp(line, ct, sizeof(ct) - 1);
    if (!client && strncmp(line, st, sizeof(st) - 1)) return;
    const char *sec = strchr(line + sizeof(ct) - 1, ' ');
    if (!sec) return;
    sec++;
    int n = unhex(sec, strlen(sec), client ? h->csec : h->ssec, REC13_SECRET_MAX);
    if (n <= 0) {
        h->bad = 1;
        return;
    }
    if (client)
        h->clen = (uint8_t)n;
    else
        h->slen = (uint8_t)n;
}

/* Counts records (SSL_CTX_set_msg_callback(3)): a record header goes by for
 * every record read or written, then, for a record read, its inner content
 * type once it is opened; handshake messages go by after their records. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version, (void)ssl;
    struct tls13_hs *h = arg;
    const uint8_t *b = buf;
    if (!h) return;
    if (content_type == SSL3_RT_HEADER) {
        if (write_p && h->wstarted) h->wseq++;
        if (!write_p && h->rstarted) h->rseq++, h->rd_open++;
        return;
    }
    if (content_type == SSL3_RT_INNER_CONTENT_TYPE) {
        if (!write_p && h->rstarted && h->rd_open) h->rd_open--;
        return;
    }
    if (content_type != SSL3_RT_HANDSHAKE || len < 1) return;
    if (b[0] == SSL3_MT_KEY_UPDATE) h->bad = 1;
    if (!write_p) {
        if (h->rstarted) /* a handshake message after the client's Finished */
            h->bad = 1;
        else if (b[0] == SSL3_MT_FINISHED)
            h->rstarted = 1, h->rseq = 0, h->rd_open = 0;
    } else {
        if (h->wstarted && b[0] != SSL3_MT_NEWSESSION_TICKET)
            h->bad = 1;
        else if (!h->wstarted && b[0] == SSL3_MT_FINISHED)
            h->wstarted = 1, h->wseq = 0;
    }
}

int tls13_hs_begin(SSL *ssl)
{
    pthread_once(&hs_once, hs_make_index);
    struct tls13_hs *h = hs_index < 0 ? NULL : OPENSSL_zalloc(sizeof(*h));
    if (!h) return -ENOMEM;
    if (!SSL_set_ex_data(ssl, hs_index, h)) {
        OPENSSL_free(h);
        return -ENOMEM;
    }
    SSL_set_msg_callback(ssl, on_msg);
    SSL_set_msg_callback_arg(ssl, h);
    /* OpenSSL reads only the record it works on: nothing past the handshake */
    SSL_set_read_ahead(ssl, 0);
    return 0;
}

int tls13_candidate(const SSL *ssl)
{
    return hs_of(ssl) != NULL;
}

/* The connection stays on OpenSSL: back to read-ahead, no more counting. */
static void hs_end(SSL *ssl)
{
    SSL_set_msg_callback(ssl, NULL);
    SSL_set_msg_callback_arg(ssl, NULL);
    SSL_set_ex_data(ssl, hs_index, NULL); /* does not call the free callback */
    SSL_set_read_ahead(ssl, 1);
}

/* ---- after the handoff: the state --------------------------------------------------- */

struct tls13_conn {
    struct rec13_key rd, wr;
    uint8_t *in; /* ciphertext read and not opened yet (malloc, only while non-empty) */
    uint32_t in_len;
    uint32_t pt_off, pt_len; /* plaintext opened that the caller had no room for */
    uint8_t *pt;
    uint8_t *out; /* ciphertext the socket did not take */
    uint32_t out_off, out_len;
    size_t out_plain; /* the plaintext of out's records, not yet reported as taken */
    uint8_t failed;   /* a fatal alert was sent or read */
    uint8_t eof;      /* close_notify read (or the peer's FIN) */
    uint8_t closed;   /* our close_notify was sent */
    uint8_t alpn_h2;
    uint8_t peer; /* enum tls_peer */
    uint8_t suite;
    uint8_t barren;  /* records in a row that carried no data: empty, KeyUpdate, user_canceled */
    char *peer_text; /* the subject or the reason of the client certificate check */
};

#define RSCRATCH (READ_RECORDS * (REC13_HDR + REC13_MAX_BODY))
#define WSCRATCH (WRITE_RECORDS * (REC13_MAX_PLAIN + REC13_OVERHEAD))
/* per thread, not per connection (pages touched only by threads that use them) */
static __thread uint8_t rscratch[RSCRATCH], wscratch[WSCRATCH];

static _Atomic uint64_t handoffs;

uint64_t tls13_handoffs(void)
{
    return handoffs;
}

static void t13_free(struct tls13_conn *t)
{
    rec13_key_free(&t->rd);
    rec13_key_free(&t->wr);
    free(t->in);
    if (t->pt) OPENSSL_clear_free(t->pt, t->pt_off + t->pt_len);
    free(t->out);
    free(t->peer_text);
    free(t);
}

/* The state of a connection whose client writes under rsec (next record
 * rseq) and we under wsec (wseq). NULL when out of memory. */
static struct tls13_conn *make(int suite, const uint8_t *rsec, const uint8_t *wsec, size_t len,
                               uint64_t rseq, uint64_t wseq)
{
    struct tls13_conn *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    if (rec13_key_init(&t->rd, suite, 0, rsec, len, rseq) < 0 ||
        rec13_key_init(&t->wr, suite, 1, wsec, len, wseq) < 0) {
        t13_free(t);
        return NULL;
    }
    t->suite = (uint8_t)suite;
    return t;
}

int tls13_conn_start(struct conn *c, int suite, const uint8_t *rsec, const uint8_t *wsec,
                     size_t len, uint64_t rseq, uint64_t wseq)
{
    struct tls13_conn *t = make(suite, rsec, wsec, len, rseq, wseq);
    if (!t) return -ENOMEM;
    c->tls = t;
    c->ops = &conn_tls13;
    c->tls_wpend = 0;
    return 0;
}

int tls13_try_handoff(struct conn *c)
{
    SSL *ssl = c->tls;
    struct tls13_hs *h = hs_of(ssl);
    if (!h || !SSL_is_init_finished(ssl)) return 0;
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    int suite = ci ? rec13_suite_of(SSL_CIPHER_get_id(ci)) : -1;
    /* what only OpenSSL can carry on: the connection stays with it */
    if (SSL_version(ssl) != TLS1_3_VERSION || suite < 0 || h->bad || !h->rstarted || !h->wstarted ||
        h->clen != rec13_hash_len(suite) || h->slen != rec13_hash_len(suite) ||
        SSL_get_shutdown(ssl)) {
        hs_end(ssl);
        OPENSSL_clear_free(h, sizeof(*h));
        return 0;
    }
    /* OpenSSL holds bytes (a record half read, plaintext not taken, a write
     * refused): try again after a later read */
    if (h->rd_open || SSL_has_pending(ssl) || c->tls_wpend || SSL_want_write(ssl)) {
        if (++h->tries >= HANDOFF_TRIES) {
            hs_end(ssl);
            OPENSSL_clear_free(h, sizeof(*h));
        }
        return 0;
    }
    struct tls13_conn *t = make(suite, h->csec, h->ssec, h->clen, h->rseq, h->wseq);
    char text[1024];
    if (t) {
        t->alpn_h2 = tls_conn_alpn_h2(c) ? 1 : 0;
        t->peer = (uint8_t)tls_conn_peer(c, text, sizeof(text));
    }
    if (!t || (t->peer != TLS_PEER_NONE && !(t->peer_text = strdup(text)))) {
        if (t) t13_free(t);
        ERR_clear_error();
        hs_end(ssl);
        OPENSSL_clear_free(h, sizeof(*h));
        return 0;
    }
    log_debug("TLS 1.3 record layer taken over from OpenSSL on fd %d (%s, records read %llu, "
              "written %llu)",
              c->io.fd, rec13_suite_name(suite), (unsigned long long)h->rseq,
              (unsigned long long)h->wseq);
    /* the session stays resumable: a shutdown recorded is not a "bad" one
     * (else SSL_free drops it from the cache); nothing is sent */
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl); /* frees h through the ex data callback */
    ERR_clear_error();
    c->tls = t;
    c->ops = &conn_tls13;
    c->tls_wpend = 0;
    handoffs++;
    return 1;
}

enum tls_peer tls13_conn_peer(const struct conn *c, char *text, size_t cap)
{
    const struct tls13_conn *t = c->tls;
    snprintf(text, cap, "%s", t->peer_text ? t->peer_text : "");
    return (enum tls_peer)t->peer;
}

int tls13_conn_alpn_h2(const struct conn *c)
{
    const struct tls13_conn *t = c->tls;
    return t->alpn_h2;
}

/* ---- sending ------------------------------------------------------------------------- */

/* Sends what out holds: 0 when it is empty, -EAGAIN, or -errno. */
static int flush_out(struct conn *c, struct tls13_conn *t)
{
    while (t->out_len) {
        ssize_t n = send(c->io.fd, t->out + t->out_off, t->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        t->out_off += (uint32_t)n;
        t->out_len -= (uint32_t)n;
    }
    free(t->out);
    t->out = NULL;
    t->out_off = 0;
    return 0;
}

/* Keeps b[0..n) after what out holds. 0 or -ENOMEM. */
static int keep_out(struct tls13_conn *t, const uint8_t *b, size_t n)
{
    if (!n) return 0;
    if (t->out_len + n > WSCRATCH + OUT_MAX) return -ENOMEM;
    uint8_t *o = malloc(t->out_len + n);
    if (!o) return -ENOMEM;
    if (t->out_len) memcpy(o, t->out + t->out_off, t->out_len);
    memcpy(o + t->out_len, b, n);
    free(t->out);
    t->out = o;
    t->out_off = 0;
    t->out_len += (uint32_t)n;
    return 0;
}

/* Seals one small record (an alert, a KeyUpdate) and sends it after what is
 * pending; what the socket does not take waits in out. 0 or -errno. */
static int send_small(struct conn *c, struct tls13_conn *t, uint8_t type, const uint8_t *p,
                      size_t n)
{
    uint8_t rec[64];
    struct iovec iov = {(void *)p, n};
    long len = rec13_seal(&t->wr, type, &iov, 1, rec);
    if (len < 0) return -EPROTO;
    size_t sent = 0;
    if (!t->out_len) {
        ssize_t w = send(c->io.fd, rec, (size_t)len, MSG_NOSIGNAL);
        if (w > 0) sent = (size_t)w;
    }
    if (sent < (size_t)len) {
        if (keep_out(t, rec + sent, (size_t)len - sent) < 0) return -ENOMEM;
        conn_want_write(c);
    }
    return 0;
}

/* A fatal alert (best effort), then the connection is done: -EPROTO. */
static ssize_t fail(struct conn *c, struct tls13_conn *t, int alert)
{
    if (!t->failed) {
        uint8_t a[2] = {2, (uint8_t)alert}; /* fatal */
        send_small(c, t, REC13_ALERT, a, 2);
        flush_out(c, t);
        log_debug("TLS 1.3 record layer on fd %d: alert %d sent, closing", c->io.fd, alert);
    }
    t->failed = 1;
    c->readable = 0;
    return -EPROTO;
}

static ssize_t t13_writev(struct conn *c, const struct iovec *iov, int n)
{
    struct tls13_conn *t = c->tls;
    if (t->failed) return -EPROTO;
    if (t->closed) return -EPIPE;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    size_t taken = 0;
    if (t->out_len) {
        int e = flush_out(c, t);
        if (e == -EAGAIN) {
            c->writable = 0;
            conn_want_write(c);
            return -EAGAIN;
        }
        if (e < 0) return e;
        /* the retry of a refused write offers the same bytes first (as
         * for OpenSSL): those records went now */
        taken = t->out_plain;
        t->out_plain = 0;
        if (taken > total) {
            log_err("TLS 1.3 record layer on fd %d: a write retry offered %zu bytes, %zu "
                    "were sealed",
                    c->io.fd, total, taken);
            t->failed = 1;
            return -EIO;
        }
    }
    int i = 0;
    size_t off = 0, skip = taken;
    while (i < n && skip) { /* past what was taken */
        size_t k = iov[i].iov_len - off < skip ? iov[i].iov_len - off : skip;
        off += k, skip -= k;
        if (off == iov[i].iov_len) i++, off = 0;
    }
    while (taken < total) {
        /* up to WRITE_RECORDS records of up to 2^14 bytes each, gathered from the iovecs */
        size_t wlen = 0, plain = 0, ends[WRITE_RECORDS], plains[WRITE_RECORDS];
        int nrec = 0;
        while (nrec < WRITE_RECORDS && taken + plain < total) {
            struct iovec part[16];
            int np = 0;
            size_t rl = 0;
            while (i < n && np < 16 && rl < REC13_MAX_PLAIN) {
                size_t k = iov[i].iov_len - off;
                if (k > REC13_MAX_PLAIN - rl) k = REC13_MAX_PLAIN - rl;
                if (k) part[np++] = (struct iovec){(char *)iov[i].iov_base + off, k};
                rl += k, off += k;
                if (off == iov[i].iov_len) i++, off = 0;
            }
            long len = rec13_seal(&t->wr, REC13_APPDATA, part, np, wscratch + wlen);
            if (len < 0) {
                t->failed = 1;
                return taken ? (ssize_t)taken : -EPROTO;
            }
            wlen += (size_t)len;
            plain += rl;
            ends[nrec] = wlen;
            plains[nrec++] = plain;
        }
        size_t sent = 0;
        while (sent < wlen) {
            ssize_t w = send(c->io.fd, wscratch + sent, wlen - sent, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno != EAGAIN) {
                t->failed = 1; /* sealed records were lost: the stream is broken */
                return taken ? (ssize_t)taken : -errno;
            }
            if (w <= 0) break;
            sent += (size_t)w;
        }
        size_t done = 0;
        for (int k = 0; k < nrec && ends[k] <= sent; k++) done = plains[k];
        taken += done;
        if (sent < wlen) {
            /* the rest waits; its plaintext counts once it went (the retry offers it again) */
            if (keep_out(t, wscratch + sent, wlen - sent) < 0) {
                t->failed = 1;
                return taken ? (ssize_t)taken : -ENOMEM;
            }
            t->out_plain = plain - done;
            c->writable = 0;
            conn_want_write(c);
            c->tls_wpend = 1;
            return taken ? (ssize_t)taken : -EAGAIN;
        }
    }
    c->tls_wpend = 0;
    return (ssize_t)taken;
}

/* ---- receiving ----------------------------------------------------------------------- */

/* A handshake record after the handshake: only KeyUpdate (RFC 8446 4.6.3).
 * 0, or -alert. */
static int on_handshake(struct conn *c, struct tls13_conn *t, const uint8_t *p, size_t n)
{
    if (n < 1 || p[0] != SSL3_MT_KEY_UPDATE) return -REC13_AL_UNEXPECTED_MESSAGE;
    /* a KeyUpdate comes before a key change: it ends its record (RFC 8446 5.1) */
    if (n != 5 || p[1] || p[2] || p[3] != 1) return -REC13_AL_DECODE_ERROR;
    if (p[4] > 1) return -47; /* illegal_parameter */
    if (rec13_key_update(&t->rd) < 0) return -REC13_AL_INTERNAL_ERROR;
    if (p[4] == 1) {
        /* update_requested: ours (update_not_requested) under the old key, then the new one */
        static const uint8_t ku[5] = {SSL3_MT_KEY_UPDATE, 0, 0, 1, 0};
        if (send_small(c, t, REC13_HANDSHAKE, ku, sizeof(ku)) < 0 || rec13_key_update(&t->wr) < 0)
            return -REC13_AL_INTERNAL_ERROR;
    }
    log_debug("TLS 1.3 record layer on fd %d: KeyUpdate%s", c->io.fd,
              p[4] ? " (update requested: answered)" : "");
    return 0;
}

/* Keeps b[0..n) as the ciphertext not opened yet. 0 or -ENOMEM. */
static int keep_in(struct tls13_conn *t, const uint8_t *b, size_t n)
{
    if (!n) return 0;
    if (!(t->in = malloc(n))) return -ENOMEM;
    memcpy(t->in, b, n);
    t->in_len = (uint32_t)n;
    return 0;
}

static ssize_t t13_read(struct conn *c, void *buf, size_t len)
{
    struct tls13_conn *t = c->tls;
    uint8_t *p = buf;
    if (t->failed) {
        c->readable = 0;
        return -EPROTO;
    }
    if (t->out_len && flush_out(c, t) == -EAGAIN) {
        c->read_needs_out = 1; /* the next write readiness reads again, which flushes */
        conn_want_write(c);
    }
    if (!len) return 0;
    if (t->pt_len) {
        size_t k = t->pt_len < len ? t->pt_len : len;
        memcpy(p, t->pt + t->pt_off, k);
        t->pt_off += (uint32_t)k;
        t->pt_len -= (uint32_t)k;
        if (!t->pt_len) {
            OPENSSL_clear_free(t->pt, t->pt_off);
            t->pt = NULL;
            t->pt_off = 0;
        }
        return (ssize_t)k; /* readable stays: more may wait */
    }
    if (t->eof) {
        c->readable = 0;
        return 0;
    }
    uint8_t *s = rscratch;
    size_t have = 0, at = 0, got = 0;
    int drained = 0;
    if (t->in_len) {
        memcpy(s, t->in, t->in_len);
        have = t->in_len;
        free(t->in);
        t->in = NULL;
        t->in_len = 0;
    }
    for (;;) {
        long rl = rec13_header(s + at, have - at);
        if (rl < 0) return fail(c, t, (int)-rl);
        if (rl == 0 || (size_t)rl > have - at) {
            /* no whole record: give what was opened, else read */
            if (got) break;
            if (drained && !c->rdhup) {
                c->readable = 0;
                if (keep_in(t, s + at, have - at) < 0) return fail(c, t, REC13_AL_INTERNAL_ERROR);
                return -EAGAIN;
            }
            memmove(s, s + at, have - at);
            have -= at, at = 0;
            /* about what the caller can take (a record's overhead each 2^14
             * bytes), at least the rest of this record: little left over */
            size_t need = rl > 0 ? (size_t)rl - have : REC13_HDR - have;
            size_t want = len + (len / REC13_MAX_PLAIN + 1) * REC13_OVERHEAD + REC13_HDR;
            want = want > have ? want - have : 0;
            if (want < need) want = need;
            if (want > RSCRATCH - have) want = RSCRATCH - have;
            ssize_t r = read(c->io.fd, s + have, want);
            if (r > 0) {
                c->in_drained = drained = (size_t)r < want;
                have += (size_t)r;
                continue;
            }
            if (r == 0) { /* the FIN, without close_notify (as SSL_OP_IGNORE_UNEXPECTED_EOF) */
                c->readable = 0;
                t->eof = 1;
                return have ? -ECONNRESET : 0; /* a record cut short: not an end */
            }
            if (errno == EINTR) {
                if (keep_in(t, s, have) < 0) return fail(c, t, REC13_AL_INTERNAL_ERROR);
                return -EINTR;
            }
            int e = errno;
            c->readable = 0;
            c->in_drained = 1;
            if (e != EAGAIN) return -e;
            if (keep_in(t, s, have) < 0) return fail(c, t, REC13_AL_INTERNAL_ERROR);
            return -EAGAIN;
        }
        uint8_t type;
        size_t pl;
        int e = rec13_open(&t->rd, s + at, (size_t)rl, &type, &pl);
        if (e < 0) return fail(c, t, -e);
        uint8_t *pp = s + at + REC13_HDR;
        at += (size_t)rl;
        /* a stream of records without data would keep this call (and the
         * worker) busy: refused, as OpenSSL refuses more than 32 empty ones */
        if (type == REC13_APPDATA && pl)
            t->barren = 0;
        else if (!(type == REC13_ALERT && pl == 2 && !pp[1]) && ++t->barren > BARREN_MAX)
            return fail(c, t, REC13_AL_UNEXPECTED_MESSAGE);
        if (type == REC13_APPDATA) {
            size_t k = pl < len - got ? pl : len - got;
            memcpy(p + got, pp, k);
            got += k;
            if (k < pl) {
                if (!(t->pt = malloc(pl - k))) return fail(c, t, REC13_AL_INTERNAL_ERROR);
                memcpy(t->pt, pp + k, pl - k);
                t->pt_len = (uint32_t)(pl - k);
                t->pt_off = 0;
            }
            if (got == len) break;
        } else if (type == REC13_ALERT) {
            if (pl != 2) return fail(c, t, REC13_AL_DECODE_ERROR);
            /* the level is implicit in the description (RFC 8446 6); user_canceled
             * is followed by close_notify (6.1) and ignored, as OpenSSL does */
            if (pp[1] == 90) continue;
            if (pp[1] != REC13_AL_CLOSE_NOTIFY) {
                log_debug("TLS 1.3 record layer on fd %d: the client sent alert %u", c->io.fd,
                          pp[1]);
                t->failed = 1;
                c->readable = 0;
                return -EPROTO;
            }
            t->eof = 1;
            break; /* data before it first; then 0 */
        } else {
            e = on_handshake(c, t, pp, pl);
            if (e < 0) return fail(c, t, -e);
        }
    }
    if (have > at && keep_in(t, s + at, have - at) < 0) return fail(c, t, REC13_AL_INTERNAL_ERROR);
    if (!got) {
        c->readable = 0; /* close_notify */
        return 0;
    }
    /* drained and nothing whole left here: wait for the next edge */
    long next = t->in_len ? rec13_header(t->in, t->in_len) : 0;
    int whole = next < 0 || (next > 0 && (size_t)next <= t->in_len);
    if (drained && !c->rdhup && !t->pt_len && !whole && !t->eof) c->readable = 0;
    return (ssize_t)got;
}

/* ---- the end ------------------------------------------------------------------------- */

static void send_close_notify(struct conn *c, struct tls13_conn *t)
{
    static const uint8_t a[2] = {1, REC13_AL_CLOSE_NOTIFY}; /* RFC 8446 6.1 */
    if (t->failed || t->closed) return;
    t->closed = 1;
    if (flush_out(c, t) < 0) return; /* a full socket loses only the alert */
    send_small(c, t, REC13_ALERT, a, 2);
    flush_out(c, t);
}

static int t13_shutdown(struct conn *c)
{
    send_close_notify(c, c->tls);
    return shutdown(c->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

static void t13_close(struct conn *c)
{
    struct tls13_conn *t = c->tls;
    /* close_notify before the close, unless the peer has ended already (as tls_close) */
    if (!c->rdhup && !t->eof) send_close_notify(c, t);
    t13_free(t);
    c->tls = NULL;
}

const struct conn_ops conn_tls13 = {
    .read = t13_read,
    .writev = t13_writev,
    .shutdown = t13_shutdown,
    .close = t13_close,
};
