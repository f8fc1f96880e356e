/* fuzz_rec13: usher's TLS 1.3 record layer (src/tls/rec13.c and the
 * conn_tls13 transport of src/tls/conn_tls13.c) on a socketpair.
 *
 * The input is a suite byte, then a script. The target plays the client: it
 * seals application data, KeyUpdates (any request byte), close_notify and
 * other alerts with its own keys, adds raw bytes or flips one in the last
 * record, and trickles the wire into the socket in pieces of any size while
 * usher reads with buffers of any size; usher writes too, and the target
 * opens everything usher sends with the matching keys.
 * Invariants: a read returns at most what was asked; what usher reads is
 * exactly what was sealed, in order, up to the first bad byte or alert (and
 * all of it when there was none, once the wire is in); a failed connection
 * stays failed; usher never fails a clean stream; every record usher sends
 * opens under the keys the client expects (its KeyUpdate answers included),
 * and its application data is what it was given. More than 32 records in a
 * row without data are refused (as OpenSSL does): that counts as bad input. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "tls/rec13.h"
#include "tls/tls_int.h"

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "usher fuzz invariant \"%s\" violated\n", name);                       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define WIRE_MAX (1 << 20)
#define SENT_MAX (1 << 20)

static void on_io(struct loop *l, struct loop_io *io, uint32_t events) {}

struct st {
    const uint8_t *in;
    size_t n, at;
    struct loop l;
    struct conn c;
    int peer;
    struct rec13_key cw, cr; /* the client's: it seals with cw, opens usher's records with cr */
    uint8_t *wire;           /* sealed, not yet in the socket */
    size_t wire_len, last_rec;
    uint8_t *sent;              /* the plaintext sealed, in order */
    size_t sent_len, clean_len; /* clean_len: what precedes the first bad byte or alert */
    int poisoned, ended;
    int barren;   /* records in a row without data: past 32 usher refuses them (poisoned) */
    uint8_t *got; /* what usher read */
    size_t got_len;
    int failed, eof;
    uint8_t *owed;                          /* what usher is given to write: owed[j] = j * 13 + 5 */
    size_t owed_len, owed_offer, owed_seen; /* taken, offered so far, seen by the client */
    uint8_t peerbuf[REC13_HDR + REC13_MAX_BODY + 64];
    size_t peer_len;
    int usher_alerted, usher_closed;
};

static unsigned next(struct st *s)
{
    return s->at < s->n ? s->in[s->at++] : 0;
}

static unsigned next16(struct st *s)
{
    unsigned a = next(s);
    return a << 8 | next(s);
}

static void add_wire(struct st *s, const uint8_t *p, size_t n)
{
    if (s->wire_len + n > WIRE_MAX) return;
    memcpy(s->wire + s->wire_len, p, n);
    s->wire_len += n;
}

static void seal(struct st *s, uint8_t type, const uint8_t *p, size_t n)
{
    if (type == REC13_APPDATA && n)
        s->barren = 0;
    else if (!(type == REC13_ALERT && p[1] == 0) && ++s->barren > 32)
        s->poisoned = 1;
    static uint8_t rec[REC13_MAX_PLAIN + REC13_OVERHEAD];
    struct iovec iov = {(void *)p, n};
    long len = rec13_seal(&s->cw, type, &iov, 1, rec);
    CHECK("client-seal", len > 0);
    if (s->wire_len + (size_t)len > WIRE_MAX) {
        s->poisoned = 1; /* a record lost: what follows no longer opens */
        return;
    }
    s->last_rec = s->wire_len;
    add_wire(s, rec, (size_t)len);
}

/* Opens what usher sent to the client. */
static void drain_peer(struct st *s)
{
    for (;;) {
        ssize_t r = read(s->peer, s->peerbuf + s->peer_len, sizeof(s->peerbuf) - s->peer_len);
        if (r <= 0) break;
        s->peer_len += (size_t)r;
        for (;;) {
            long rl = rec13_header(s->peerbuf, s->peer_len);
            CHECK("usher-record-header", rl >= 0);
            if (rl == 0 || (size_t)rl > s->peer_len) break;
            uint8_t type;
            size_t pl;
            CHECK("usher-record-opens", !s->usher_closed);
            CHECK("usher-record-opens",
                  rec13_open(&s->cr, s->peerbuf, (size_t)rl, &type, &pl) == 0);
            const uint8_t *p = s->peerbuf + REC13_HDR;
            if (type == REC13_APPDATA) {
                CHECK("usher-data-matches",
                      s->owed_seen + pl <= s->owed_offer && !memcmp(s->owed + s->owed_seen, p, pl));
                s->owed_seen += pl;
            } else if (type == REC13_HANDSHAKE) {
                /* only a KeyUpdate(update_not_requested), answering ours */
                CHECK("usher-key-update",
                      pl == 5 && p[0] == 24 && !p[1] && !p[2] && p[3] == 1 && p[4] == 0);
                CHECK("usher-key-update", rec13_key_update(&s->cr) == 0);
            } else {
                CHECK("usher-alert", type == REC13_ALERT && pl == 2);
                if (p[1] == 0) {
                    s->usher_closed = 1;
                } else {
                    CHECK("usher-alert-only-when-poisoned", s->poisoned);
                    s->usher_alerted = 1;
                    s->usher_closed = 1;
                }
            }
            memmove(s->peerbuf, s->peerbuf + rl, s->peer_len - (size_t)rl);
            s->peer_len -= (size_t)rl;
        }
        if (s->peer_len == sizeof(s->peerbuf)) break;
    }
}

static void usher_reads(struct st *s, size_t len)
{
    static uint8_t buf[70000];
    if (len > sizeof(buf)) len = sizeof(buf);
    for (int k = 0; k < 10000; k++) {
        s->c.readable = 1;
        ssize_t r = conn_read(&s->c, buf, len);
        if (r == -EAGAIN || r == -EINTR) break;
        if (s->failed) CHECK("stays-failed", r == -EPROTO);
        if (r < 0) {
            CHECK("clean-never-fails", s->poisoned);
            s->failed = 1;
            break;
        }
        if (r == 0) {
            CHECK("end-only-at-close-notify", s->ended || s->poisoned);
            s->eof = 1;
            break;
        }
        CHECK("read-within-len", (size_t)r <= len);
        CHECK("read-within-sent", s->got_len + (size_t)r <= s->clean_len || s->poisoned);
        CHECK("read-within-sent", s->got_len + (size_t)r <= s->sent_len);
        memcpy(s->got + s->got_len, buf, (size_t)r);
        CHECK("read-in-order", !memcmp(s->sent + s->got_len, buf, (size_t)r));
        s->got_len += (size_t)r;
    }
    drain_peer(s);
}

static void push(struct st *s, size_t k)
{
    if (k > s->wire_len) k = s->wire_len;
    if (!k) return;
    ssize_t w = write(s->peer, s->wire, k);
    if (w <= 0) return;
    memmove(s->wire, s->wire + w, s->wire_len - (size_t)w);
    s->wire_len -= (size_t)w;
    s->last_rec = s->last_rec > (size_t)w ? s->last_rec - (size_t)w : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct st s;
    static uint8_t wire[WIRE_MAX], sent[SENT_MAX], got[SENT_MAX], owed[SENT_MAX];
    memset(&s, 0, sizeof(s));
    s.in = data, s.n = size;
    s.wire = wire, s.sent = sent, s.got = got, s.owed = owed;
    int suite = (int)(next(&s) % 3);
    uint8_t csec[48], ssec[48];
    for (int i = 0; i < 48; i++) csec[i] = (uint8_t)(i * 3 + 1), ssec[i] = (uint8_t)(i * 5 + 2);
    size_t hl = rec13_hash_len(suite);
    uint64_t rseq = next(&s), wseq = next(&s);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) return 0;
    CHECK("setup", loop_init(&s.l) == 0);
    CHECK("setup", conn_open(&s.c, &s.l, sv[0], &conn_tls13, on_io, 0) == 0);
    CHECK("setup", tls13_conn_start(&s.c, suite, csec, ssec, hl, rseq, wseq) == 0);
    s.peer = sv[1];
    CHECK("setup", rec13_key_init(&s.cw, suite, 1, csec, hl, rseq) == 0);
    CHECK("setup", rec13_key_init(&s.cr, suite, 0, ssec, hl, wseq) == 0);
    static uint8_t buf[REC13_MAX_PLAIN + 1];
    for (int ops = 0; s.at < s.n && ops < 2000; ops++) {
        unsigned op = next(&s) % 8;
        if (op == 0 && !s.ended) { /* application data */
            size_t len = next16(&s) % (REC13_MAX_PLAIN + 1);
            if (s.sent_len + len > SENT_MAX) continue;
            for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(s.sent_len + i * 7);
            seal(&s, REC13_APPDATA, buf, len);
            memcpy(s.sent + s.sent_len, buf, len);
            s.sent_len += len;
            if (!s.poisoned) s.clean_len = s.sent_len;
        } else if (op == 1 && !s.ended) { /* KeyUpdate */
            unsigned req = next(&s);
            uint8_t ku[5] = {24, 0, 0, 1, (uint8_t)(req & 0x81)};
            seal(&s, REC13_HANDSHAKE, ku, 5);
            if (ku[4] > 1) s.poisoned = 1; /* illegal_parameter */
            CHECK("client-update", rec13_key_update(&s.cw) == 0);
        } else if (op == 2) { /* raw bytes */
            size_t len = next(&s);
            if (s.at + len > s.n) len = s.n - s.at;
            add_wire(&s, s.in + s.at, len);
            s.at += len;
            if (len) s.poisoned = 1;
        } else if (op == 3) { /* into the socket, then usher reads */
            size_t k = next16(&s) + 1, len = next16(&s) % 20000 + 1;
            push(&s, k);
            usher_reads(&s, len);
        } else if (op == 4 && !s.ended) { /* an alert: close_notify or another */
            unsigned d = next(&s);
            uint8_t a[2] = {(uint8_t)(d & 0x80 ? 2 : 1), (uint8_t)(d & 1 ? 0 : d & 0x7f)};
            seal(&s, REC13_ALERT, a, 2);
            if (a[1] == 0)
                s.ended = 1;
            else if (a[1] != 90) /* user_canceled is ignored */
                s.poisoned = 1;
        } else if (op == 5 && s.wire_len > s.last_rec) { /* flip a byte of the last record */
            size_t at = s.last_rec + next16(&s) % (s.wire_len - s.last_rec);
            unsigned bit = next(&s) % 8;
            s.wire[at] ^= (uint8_t)(1u << bit);
            /* the version bytes of a header are ignored by the header check but are
             * in the AAD: every flip fails */
            s.poisoned = 1;
        } else if (op == 6 && !s.usher_closed) { /* usher writes */
            size_t len = next16(&s) * 4 % 70000;
            if (s.owed_len + len > SENT_MAX) continue;
            for (size_t j = s.owed_len; j < s.owed_len + len; j++)
                s.owed[j] = (uint8_t)(j * 13 + 5);
            if (s.owed_len + len > s.owed_offer) s.owed_offer = s.owed_len + len;
            size_t done = 0;
            for (int k = 0; k < 1000 && done < len; k++) {
                struct iovec iov[2] = {
                    {s.owed + s.owed_len + done, (len - done) / 2},
                    {s.owed + s.owed_len + done + (len - done) / 2, len - done - (len - done) / 2}};
                ssize_t w = conn_writev(&s.c, iov, 2);
                if (w == -EAGAIN) {
                    drain_peer(&s);
                    continue;
                }
                if (w < 0) break;
                CHECK("write-within-len", (size_t)w <= len - done);
                done += (size_t)w;
            }
            s.owed_len += done;
            drain_peer(&s);
        } else if (op == 7) { /* the peer reads */
            drain_peer(&s);
        }
    }
    /* everything in, usher reads it all */
    for (int k = 0; k < 100 && s.wire_len; k++) {
        push(&s, s.wire_len);
        usher_reads(&s, 65536);
    }
    usher_reads(&s, 65536);
    drain_peer(&s);
    if (!s.poisoned && s.wire_len == 0) {
        CHECK("clean-all-read", s.got_len == s.sent_len);
        if (s.ended) CHECK("clean-end-seen", s.eof);
    }
    conn_close(&s.c);
    drain_peer(&s);
    close(s.peer);
    loop_destroy(&s.l);
    rec13_key_free(&s.cw);
    rec13_key_free(&s.cr);
    return 0;
}
