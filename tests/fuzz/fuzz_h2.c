/* fuzz_h2: the HTTP/2 input path, frames fed into a whole connection.
 *
 * Built as fuzz_session.c is (public APIs only): one worker driven by this
 * target with loop_run_once, a backend that is this target itself (a
 * listening socket on 127.0.0.1), and per input one client connection, a
 * socketpair whose one end is handed to proxy_accept() on a plain listener.
 * The target writes the client connection preface itself, so every input
 * starts past it (prior knowledge); the input is then a script:
 *
 *   op & 7 == 0: the client sends the next ((op >> 3) + 1) * 8 bytes as they are
 *             1: the client sends one frame the target frames itself: type
 *                op >> 3 (0..31: unknown types too), then from the input a
 *                flags byte, a stream byte (0 -> 0; 1..127 -> 2s-1, odd;
 *                128..255 -> s-128, any), a length byte, and that many bytes
 *                of payload (so lengths always match)
 *             2: the backend (its newest connection) sends the next
 *                ((op >> 3) + 1) * 8 bytes
 *             3: the backend closes its newest connection
 *             4: the clock moves on by 100 ms << (op >> 3) (up to ~55 min)
 *             5: the client half-closes
 *             6: the client sends the next (op >> 3) + 1 bytes one at a time
 *             7: a HEADERS frame with a well-formed request block, variant
 *                (op >> 3) & 3 (GET /, POST /echo with content-length 5,
 *                GET with two cookies and te: trailers, GET with a
 *                connection header: malformed), END_STREAM if op & 0x20,
 *                on the stream of the next byte (as for op 1)
 *
 * After every operation the loop runs until nothing moves. At the end both
 * sides close and the session must go away (ASan's leak check at exit, and
 * w.px.nsessions back to 0).
 *
 * Invariants on what usher wrote:
 *   - upstream, on every connection: strict HTTP/1.1 requests (the reader
 *     of fuzz_common.h), never more than the client sent HEADERS frames;
 *   - downstream: HTTP/2 frames, the first a SETTINGS; every frame no larger
 *     than the client's SETTINGS_MAX_FRAME_SIZE (16384 unless it raised it);
 *     connection frames (SETTINGS, PING, GOAWAY) on stream 0, stream frames
 *     (HEADERS, DATA, RST_STREAM) on a stream the client could open (odd),
 *     no PUSH_PROMISE, fixed sizes right (SETTINGS a multiple of 6, PING 8,
 *     RST_STREAM and WINDOW_UPDATE 4, GOAWAY at least 8);
 *   - every response header block decodes (HPACK, nghttp2's inflater),
 *     starts with a 3-digit :status, has no other pseudo-header, only
 *     lowercase names, and no connection-specific field (connection,
 *     keep-alive, proxy-connection, transfer-encoding, upgrade: RFC 9113
 *     8.2.2), whatever the backend sent. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/sock.h"
#include "app/worker.h"
#include "proxy/proxy.h"
#include "upstream/backend.h"
#include "upstream/generation.h"

#include "fuzz_common.h"
#include "fuzz_worker.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct stream client; /* client -> usher */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_worker_init("fuzz_h2");
    return 0;
}

static void client_write(int cfd, const void *p, size_t n)
{
    /* the socketpair's buffer is large; what it does not take is dropped
     * (and not recorded: the invariants count what usher could read) */
    ssize_t wr = write(cfd, p, n);
    if (wr > 0) stream_add(&client, p, (size_t)wr);
}

static uint32_t stream_of(uint8_t s)
{
    if (s == 0) return 0;
    if (s < 128) return 2u * s - 1;
    return s - 128u;
}

static size_t put_frame(uint8_t *f, uint8_t type, uint8_t flags, uint32_t sid, const uint8_t *p,
                        size_t n)
{
    f[0] = (uint8_t)(n >> 16);
    f[1] = (uint8_t)(n >> 8);
    f[2] = (uint8_t)n;
    f[3] = type;
    f[4] = flags;
    f[5] = (uint8_t)(sid >> 24 & 0x7f);
    f[6] = (uint8_t)(sid >> 16);
    f[7] = (uint8_t)(sid >> 8);
    f[8] = (uint8_t)sid;
    if (n) memcpy(f + 9, p, n);
    return 9 + n;
}

/* Request header blocks (HPACK: static table and literals without indexing). */
static const uint8_t BLOCK_GET[] = {0x82, 0x86, 0x84, 0x01, 0x01, 'a'};
static const uint8_t BLOCK_POST[] = {0x83, 0x86, 0x04, 0x05, '/',  'e',  'c',  'h',
                                     'o',  0x01, 0x01, 'a',  0x0f, 0x0d, 0x01, '5'};
static const uint8_t BLOCK_COOKIES[] = {
    0x82, 0x86, 0x84, 0x01, 0x01, 'a', 0x0f, 0x11, 0x03, 'a', '=', '1', 0x0f, 0x11, 0x03, 'b',
    '=',  '2',  0x00, 0x02, 't',  'e', 0x08, 't',  'r',  'a', 'i', 'l', 'e',  'r',  's'};
static const uint8_t BLOCK_CONNECTION[] = {0x82, 0x86, 0x84, 0x01, 0x01, 'a', 0x00, 0x0a,
                                           'c',  'o',  'n',  'n',  'e',  'c', 't',  'i',
                                           'o',  'n',  0x05, 'c',  'l',  'o', 's',  'e'};

/* ---- what usher sent back: frames and header blocks ------------------------------ */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Counts the client's HEADERS frames and the largest SETTINGS_MAX_FRAME_SIZE
 * it asked for, walking its bytes as frames after the preface (as far as
 * they frame). */
static void client_frames(size_t *nheaders, uint32_t *max_frame)
{
    size_t pos = sizeof(PREFACE) - 1;
    *nheaders = 0;
    *max_frame = 16384;
    const uint8_t *p = (const uint8_t *)client.p;
    while (pos + 9 <= client.len) {
        size_t n = (size_t)p[pos] << 16 | (size_t)p[pos + 1] << 8 | p[pos + 2];
        uint8_t type = p[pos + 3];
        if (pos + 9 + n > client.len) break;
        if (type == 1) (*nheaders)++;
        if (type == 4 && !(p[pos + 4] & 1) && n % 6 == 0)
            for (size_t k = 0; k < n; k += 6) {
                const uint8_t *s = p + pos + 9 + k;
                uint32_t v = be32(s + 2);
                if ((s[0] << 8 | s[1]) == 5 && v >= 16384 && v <= 16777215 && v > *max_frame)
                    *max_frame = v;
            }
        pos += 9 + n;
    }
}

static int connection_specific(const uint8_t *name, size_t len)
{
    static const char *const bad[] = {"connection", "keep-alive", "proxy-connection",
                                      "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (strlen(bad[i]) == len && !memcmp(bad[i], name, len)) return 1;
    return 0;
}

/* Decodes one response header block and checks its fields; returns its
 * status (0 for trailers). */
static int check_block(nghttp2_hd_inflater *inf, const uint8_t *blk, size_t len, int trailers)
{
    size_t nfields = 0;
    int status = 0;
    int final = 1;
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, blk, len, final);
        FZ_CHECK("h2-hpack", rv >= 0, "usher sent a header block nghttp2 cannot decode: %s",
                 nghttp2_strerror((int)rv));
        blk += rv;
        len -= (size_t)rv;
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
            if (nfields == 0 && !trailers) {
                FZ_CHECK("h2-status",
                         nv.namelen == 7 && !memcmp(nv.name, ":status", 7) && nv.valuelen == 3 &&
                             nv.value[0] >= '1' && nv.value[0] <= '5',
                         "a response header block does not start with :status (%.*s: %.*s)",
                         (int)nv.namelen, nv.name, (int)nv.valuelen, nv.value);
                if (nv.valuelen == 3)
                    status =
                        (nv.value[0] - '0') * 100 + (nv.value[1] - '0') * 10 + (nv.value[2] - '0');
            } else {
                FZ_CHECK("h2-pseudo", nv.namelen && nv.name[0] != ':',
                         "a pseudo-header after the first field: %.*s", (int)nv.namelen, nv.name);
            }
            for (size_t k = 0; k < nv.namelen; k++)
                FZ_CHECK("h2-lowercase", !(nv.name[k] >= 'A' && nv.name[k] <= 'Z'),
                         "an uppercase field name: %.*s", (int)nv.namelen, nv.name);
            FZ_CHECK("h2-connection-specific", !connection_specific(nv.name, nv.namelen),
                     "a connection-specific field went to the client: %.*s: %.*s", (int)nv.namelen,
                     nv.name, (int)nv.valuelen, nv.value);
            nfields++;
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            break;
        }
        if (len == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) break;
    }
    FZ_CHECK("h2-empty-block", trailers || nfields > 0, "an empty response header block");
    return status;
}

static void check_downstream(uint32_t max_frame)
{
    const uint8_t *p = (const uint8_t *)down.p;
    size_t len = down.len, pos = 0;
    nghttp2_hd_inflater *inf = NULL;
    if (nghttp2_hd_inflate_new(&inf) != 0) abort();
    uint8_t *blk = malloc(CAP);
    size_t blen = 0;
    uint32_t bsid = 0;
    int in_block = 0, nframes = 0;
    uint8_t seen_headers[256] = {0}; /* streams (< 256) that had their final response head */
    while (pos + 9 <= len) {
        size_t n = (size_t)p[pos] << 16 | (size_t)p[pos + 1] << 8 | p[pos + 2];
        uint8_t type = p[pos + 3], flags = p[pos + 4];
        uint32_t sid = be32(p + pos + 5) & 0x7fffffff;
        if (nframes++ == 0) {
            if (type != 4) fz_dump("usher's answer to the preface", p, len);
            FZ_CHECK("h2-first-settings", type == 4 && !(flags & 1) && sid == 0 && n % 6 == 0,
                     "usher's first frame is type %u flags %u on stream %u, not SETTINGS", type,
                     flags, sid);
        }
        if (pos + 9 + n > len) break; /* cut short at the end: fine */
        const uint8_t *pl = p + pos + 9;
        FZ_CHECK("h2-frame-size", n <= max_frame,
                 "usher sent a %zu-byte frame (type %u), past the client's maximum %u", n, type,
                 max_frame);
        FZ_CHECK("h2-continuation", !in_block || (type == 9 && sid == bsid),
                 "a frame of type %u inside a header block on stream %u", type, bsid);
        switch (type) {
        case 0: /* DATA */
        case 1: /* HEADERS */
        case 3: /* RST_STREAM */
            FZ_CHECK("h2-stream-id", sid != 0 && (sid & 1),
                     "frame type %u on stream %u (not a client stream)", type, sid);
            break;
        case 4: /* SETTINGS */
        case 6: /* PING */
        case 7: /* GOAWAY */
            FZ_CHECK("h2-stream-id", sid == 0, "frame type %u on stream %u", type, sid);
            break;
        case 5: FZ_CHECK("h2-push", 0, "usher sent PUSH_PROMISE"); break;
        }
        if (type == 4)
            FZ_CHECK("h2-settings-size", n % 6 == 0 && (!(flags & 1) || n == 0),
                     "SETTINGS of %zu bytes", n);
        if (type == 6) FZ_CHECK("h2-ping-size", n == 8, "PING of %zu bytes", n);
        if (type == 3) FZ_CHECK("h2-rst-size", n == 4, "RST_STREAM of %zu bytes", n);
        if (type == 7) FZ_CHECK("h2-goaway-size", n >= 8, "GOAWAY of %zu bytes", n);
        if (type == 8)
            FZ_CHECK("h2-window-update", n == 4 && (be32(pl) & 0x7fffffff) != 0,
                     "WINDOW_UPDATE of %zu bytes or of 0", n);
        if (type == 1 || type == 9) {
            size_t off = 0, end = n;
            if (type == 1) {
                FZ_CHECK("h2-continuation", !in_block, "HEADERS inside a header block");
                if (flags & 0x8) { /* PADDED */
                    FZ_CHECK("h2-padding", n >= 1 && p[pos + 9] < n, "bad padding");
                    off = 1;
                    end = n - pl[0];
                }
                if (flags & 0x20) off += 5; /* PRIORITY */
                FZ_CHECK("h2-headers-size", off <= end, "HEADERS too short for its flags");
                in_block = 1;
                bsid = sid;
                blen = 0;
            }
            if (end > off && blen + (end - off) <= CAP) {
                memcpy(blk + blen, pl + off, end - off);
                blen += end - off;
            }
            if (flags & 0x4) { /* END_HEADERS */
                /* a 1xx head is followed by another head, a final one by trailers */
                int trailers = sid < 256 && seen_headers[sid];
                int status = check_block(inf, blk, blen, trailers);
                if (sid < 256 && status >= 200) seen_headers[sid] = 1;
                in_block = 0;
            }
        }
        pos += 9 + n;
    }
    free(blk);
    nghttp2_hd_inflate_del(inf);
}

/* What usher sent on one backend connection: strict requests, in a row. */
static size_t check_upstream(const struct stream *s)
{
    size_t pos = 0, nreq = 0;
    while (pos < s->len) {
        const char *p = s->p + pos;
        size_t len = s->len - pos;
        const char *e = memmem(p, len, "\r\n\r\n", 4);
        if (!e) return nreq;
        size_t hl = (size_t)(e - p) + 4;
        struct ref_head r;
        ref_request_head((const unsigned char *)p, hl, 1, &r);
        if (r.bad) fz_dump("forwarded request head", p, hl);
        FZ_CHECK(r.bad ? r.bad : "ok", !r.bad,
                 "usher sent the backend a head a strict reader rejects: %s", r.why);
        nreq++;
        pos += hl;
        if (fz_out_has(p, hl, "upgrade")) return nreq;
        if (r.chunked) {
            struct ref_chunked rc;
            ref_chunked_parse((const unsigned char *)s->p + pos, s->len - pos, &rc);
            FZ_CHECK(rc.result == REF_ERROR && strcmp(rc.name, "chunked-diff") ? rc.name
                                                                               : "h2-chunked",
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) abort();
    int big = 4 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(0xC0000207);
    down.len = client.len = 0;
    for (int i = 0; i < MAX_UP; i++) up[i].len = 0, up_fd[i] = -1;
    nup = 0;
    loop_update_time(&w.loop);
    proxy_accept(&w.px, sv[0], (struct sockaddr *)&peer, 0);
    int cfd = sv[1];
    client_write(cfd, PREFACE, sizeof(PREFACE) - 1);
    pump(cfd);

    uint8_t f[9 + 256];
    size_t i = 0;
    for (int ops = 0; i < size && ops < 512; ops++) {
        uint8_t op = data[i++];
        size_t n;
        switch (op & 7) {
        case 0:
        case 6:
            n = (op & 7) == 0 ? ((size_t)(op >> 3) + 1) * 8 : (size_t)(op >> 3) + 1;
            if (n > size - i) n = size - i;
            if ((op & 7) == 0) {
                client_write(cfd, data + i, n);
            } else {
                for (size_t k = 0; k < n; k++) {
                    client_write(cfd, data + i + k, 1);
                    pump(cfd);
                }
            }
            i += n;
            break;
        case 1: {
            if (size - i < 3) {
                i = size;
                break;
            }
            uint8_t flags = data[i], sb = data[i + 1];
            n = data[i + 2];
            i += 3;
            if (n > size - i) n = size - i;
            client_write(cfd, f,
                         put_frame(f, (uint8_t)(op >> 3), flags, stream_of(sb), data + i, n));
            i += n;
            break;
        }
        case 2:
            n = ((size_t)(op >> 3) + 1) * 8;
            if (n > size - i) n = size - i;
            if (nup && up_fd[nup - 1] >= 0) {
                ssize_t wr = write(up_fd[nup - 1], data + i, n);
                (void)wr;
            }
            i += n;
            break;
        case 3:
            if (nup && up_fd[nup - 1] >= 0) {
                close(up_fd[nup - 1]);
                up_fd[nup - 1] = -1;
            }
            break;
        case 4: clock_ahead += UINT64_C(100) << ((op >> 3) > 25 ? 25 : (op >> 3)); break;
        case 5: shutdown(cfd, SHUT_WR); break;
        case 7: {
            static const struct {
                const uint8_t *p;
                size_t n;
            } blocks[] = {{BLOCK_GET, sizeof(BLOCK_GET)},
                          {BLOCK_POST, sizeof(BLOCK_POST)},
                          {BLOCK_COOKIES, sizeof(BLOCK_COOKIES)},
                          {BLOCK_CONNECTION, sizeof(BLOCK_CONNECTION)}};
            int v = (op >> 3) & 3;
            uint8_t sb = i < size ? data[i++] : 1;
            client_write(cfd, f,
                         put_frame(f, 1, (uint8_t)(0x4 | ((op & 0x20) ? 1 : 0)), stream_of(sb),
                                   blocks[v].p, blocks[v].n));
            break;
        }
        }
        pump(cfd);
    }

    if (getenv("USHER_FUZZ_VERBOSE")) {
        fz_dump("client sent", client.p, client.len);
        for (int k = 0; k < nup; k++) fz_dump("backend connection got", up[k].p, up[k].len);
        fz_dump("client got", down.p, down.len);
    }
    size_t nheaders;
    uint32_t max_frame;
    client_frames(&nheaders, &max_frame);
    for (int k = 0; k < nup; k++) {
        size_t nreq = check_upstream(&up[k]);
        FZ_CHECK("h2-count", nreq <= nheaders,
                 "backend connection %d got %zu requests; the client sent %zu HEADERS", k, nreq,
                 nheaders);
    }
    check_downstream(max_frame);

    close(cfd);
    struct linger lg = {1, 0};
    for (int k = 0; k < nup; k++)
        if (up_fd[k] >= 0) {
            setsockopt(up_fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(up_fd[k]);
            up_fd[k] = -1;
        }
    for (int round = 0; round < 64 && w.px.nsessions; round++) loop_run_once(&w.loop, 1);
    FZ_CHECK("h2-session-close", w.px.nsessions == 0,
             "the session did not end after both sides closed");
    upconn_close_all_idle(&w.px.ups);
    loop_run_once(&w.loop, 0);
    return 0;
}
