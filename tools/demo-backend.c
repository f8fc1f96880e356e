/*
 * demo-backend: a small HTTP/1.1 origin server for `make run` and the
 * integration tests of usher.
 *
 * Single-threaded, non-blocking, level-triggered epoll. Requests are parsed
 * with llhttp (strict mode). Request bodies are never buffered: they are
 * streamed through a CRC32. Response bodies that may be large (/bytes) are
 * generated on the fly as the socket accepts them.
 *
 * Per connection, at most one request is "in flight": llhttp is paused in
 * on_message_complete, the response is produced (possibly over time: /slow,
 * /bytes), and only then is the parser resumed on the bytes that followed
 * (pipelining, answered in order). Small responses are queued back to back
 * while the output buffer stays under OUT_LOW bytes.
 *
 *   demo-backend --port N --name NAME [--host ADDR]
 *
 * Endpoints: see usage() below.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>

#include "llhttp.h"

#define RBUF_SIZE (64 * 1024)   /* one read() */
#define OUT_LOW (64 * 1024)     /* stop producing output above this */
#define BYTES_CHUNK (16 * 1024) /* chunk size of /bytes?chunked=1 */
#define MAX_URL (16 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADERS 256
#define MAX_SLOW_MS (24u * 3600u * 1000u)
#define MAX_BYTES_N (UINT64_C(1) << 40)
#define LINGER_MS 2000
#define MTOK_MAX 32 /* longest method token accepted (incl. NUL) */
#define MAX_METHODS 64

/* ------------------------------------------------------------------------ */
/* small utilities                                                          */

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "demo-backend: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "demo-backend: out of memory\n");
        abort();
    }
    return q;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) return;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + extra) nc *= 2;
    b->p = xrealloc(b->p, nc);
    b->cap = nc;
}

static void buf_append(struct buf *b, const void *d, size_t n)
{
    if (n == 0) return;
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void buf_putc(struct buf *b, char ch)
{
    buf_reserve(b, 1);
    b->p[b->len++] = ch;
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    buf_reserve(b, 128);
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Length of a valid UTF-8 multi-byte sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
    return len;
}

/* Appends s as a JSON string. Valid UTF-8 passes through; control characters
 * and bytes that are not valid UTF-8 become \u00XX (i.e. read as Latin-1). */
static void json_str(struct buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = u[i];
        size_t k;
        if (ch == '"' || ch == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)ch);
            i++;
        } else if (ch >= 0x20 && ch < 0x7f) {
            buf_putc(b, (char)ch);
            i++;
        } else if (ch >= 0x80 && (k = utf8_seq(u + i, n - i)) > 0) {
            buf_append(b, s + i, k);
            i += k;
        } else {
            buf_printf(b, "\\u%04x", ch);
            i++;
        }
    }
    buf_putc(b, '"');
}

/* ------------------------------------------------------------------------ */
/* CRC32 (IEEE 802.3, reflected, as zlib.crc32): slice-by-8, plus combine    */

static uint32_t crc_tab[8][256];
static uint32_t crc_x2n[32]; /* x^(2^k) mod P */

#define CRC_POLY 0xedb88320u

static uint32_t crc_multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = UINT32_C(1) << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ CRC_POLY : b >> 1;
    }
    return p;
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    uint32_t p = UINT32_C(1) << 30; /* x^1 */
    crc_x2n[0] = p;
    for (int k = 1; k < 32; k++) crc_x2n[k] = p = crc_multmodp(p, p);
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^ crc_tab[5][(a >> 16) & 0xff] ^
              crc_tab[4][a >> 24] ^ crc_tab[3][b & 0xff] ^ crc_tab[2][(b >> 8) & 0xff] ^
              crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* CRC of A||B from crc(A), crc(B) and len(B) (zlib's crc32_combine). */
static uint32_t crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
    uint32_t p = UINT32_C(1) << 31; /* x^0 */
    unsigned k = 3;                 /* len2 bytes = 8 * len2 bits = 2^3 * len2 */
    for (uint64_t n = len2; n; n >>= 1, k++)
        if (n & 1) p = crc_multmodp(crc_x2n[k & 31], p);
    return crc_multmodp(p, crc1) ^ crc2;
}

/* /bytes content: byte i = 'a' + i % 26. g_pat holds enough of it that any
 * slice of up to RBUF_SIZE bytes starting at any phase is contiguous. */
static char g_pat[RBUF_SIZE + 26];

static uint32_t pattern_crc(uint64_t n)
{
    uint32_t res = 0, blk = crc32_update(0, g_pat, 26);
    uint64_t blen = 26;
    for (uint64_t m = n / 26; m; m >>= 1) {
        if (m & 1) res = crc32_combine(res, blk, blen);
        blk = crc32_combine(blk, blk, blen);
        blen *= 2;
    }
    uint64_t tail = n % 26;
    return crc32_combine(res, crc32_update(0, g_pat, tail), tail);
}

/* ------------------------------------------------------------------------ */
/* SHA-1 and base64 (for Sec-WebSocket-Accept)                              */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *blk)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const void *data, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const unsigned char *p = data;
    unsigned char blk[64];
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64) sha1_block(h, p);
    memset(blk, 0, sizeof blk);
    memcpy(blk, p, left);
    blk[left] = 0x80;
    if (left >= 56) {
        sha1_block(h, blk);
        memset(blk, 0, sizeof blk);
    }
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) blk[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, blk);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------ */
/* global state                                                             */

static const char *g_name;
static struct buf g_name_json; /* g_name as a JSON string, quotes included */
static int g_epfd = -1;
static int g_listen_fd = -1;
static int g_sig_fd = -1;
static int g_spare_fd = -1; /* released to accept-and-close on EMFILE */
static char g_rbuf[RBUF_SIZE];
static struct buf g_body; /* scratch for JSON bodies */
static llhttp_settings_t g_settings;
static char g_listen_tag, g_sig_tag; /* epoll data.ptr markers */

static uint64_t g_requests;
static struct {
    char name[MTOK_MAX];
    uint64_t count;
} g_methods[MAX_METHODS];
static size_t g_nmethods;

static void stats_count(const char *method)
{
    g_requests++;
    size_t i;
    for (i = 0; i < g_nmethods; i++)
        if (strcmp(g_methods[i].name, method) == 0) break;
    if (i == g_nmethods) {
        if (g_nmethods == MAX_METHODS)
            i = MAX_METHODS - 1; /* lump the rest together */
        else {
            snprintf(g_methods[i].name, sizeof g_methods[i].name, "%s", method);
            g_methods[i].count = 0;
            g_nmethods++;
        }
    }
    g_methods[i].count++;
}

/* ------------------------------------------------------------------------ */
/* connections                                                              */

enum route {
    R_NOT_FOUND,
    R_ROOT,
    R_HEALTH,
    R_ECHO,
    R_SLOW,
    R_BYTES,
    R_STATUS,
    R_CLOSE,
    R_EARLY_HINTS,
    R_WS,
    R_STATS,
    R_STATS_RESET,
};

enum timer_kind { T_NONE, T_SLOW, T_LINGER };

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

    /* timers */
    long timer_idx;
    enum timer_kind timer_kind;
    uint64_t deadline;

    /* WebSocket */
    bool ws;
    unsigned char ws_hdr[14];
    size_t ws_hlen;
    unsigned char ws_mask[4];
    uint64_t ws_left, ws_pos;
    int ws_op;
    bool ws_echo;
};

static struct conn *g_conns;

/* --- timer heap ---------------------------------------------------------- */

static struct conn **g_heap;
static size_t g_heap_n, g_heap_cap;

static void heap_set(size_t i, struct conn *c)
{
    g_heap[i] = c;
    c->timer_idx = (long)i;
}

static void heap_up(size_t i)
{
    struct conn *c = g_heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (g_heap[p]->deadline <= c->deadline) break;
        heap_set(i, g_heap[p]);
        i = p;
    }
    heap_set(i, c);
}

static void heap_down(size_t i)
{
    struct conn *c = g_heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = c->deadline;
        if (l < g_heap_n && g_heap[l]->deadline < best) {
            m = l;
            best = g_heap[l]->deadline;
        }
        if (l + 1 < g_heap_n && g_heap[l + 1]->deadline < best) m = l + 1;
        if (m == i) break;
        heap_set(i, g_heap[m]);
        i = m;
    }
    heap_set(i, c);
}

static void timer_cancel(struct conn *c)
{
    if (c->timer_idx < 0) return;
    size_t i = (size_t)c->timer_idx, last = --g_heap_n;
    c->timer_idx = -1;
    c->timer_kind = T_NONE;
    if (i != last) {
        struct conn *m = g_heap[last];
        heap_set(i, m);
        heap_down(i);
        heap_up((size_t)m->timer_idx);
    }
}

static void timer_arm(struct conn *c, uint64_t ms, enum timer_kind kind)
{
    timer_cancel(c);
    if (g_heap_n == g_heap_cap) {
        g_heap_cap = g_heap_cap ? 2 * g_heap_cap : 64;
        g_heap = xrealloc(g_heap, g_heap_cap * sizeof *g_heap);
    }
    c->deadline = now_ms() + ms;
    c->timer_kind = kind;
    heap_set(g_heap_n++, c);
    heap_up(g_heap_n - 1);
}

/* --- output -------------------------------------------------------------- */

static size_t out_pending(const struct conn *c)
{
    return c->out.len - c->out_off;
}

static void out_reserve(struct conn *c, size_t n)
{
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    } else if (c->out_off > 0 && c->out.len + n > c->out.cap) {
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    buf_reserve(&c->out, n);
}

static void out_append(struct conn *c, const void *d, size_t n)
{
    out_reserve(c, n);
    buf_append(&c->out, d, n);
}

static void out_puts(struct conn *c, const char *s)
{
    out_append(c, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct conn *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        out_append(c, tmp, (size_t)n);
        return;
    }
    out_reserve(c, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(c->out.p + c->out.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->out.len += (size_t)n;
}

/* Returns -1 on a fatal socket error, 0 otherwise. */
static int conn_flush(struct conn *c)
{
    while (out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    c->out.len = c->out_off = 0;
    if (c->out.cap > 16 * 1024 && !c->gen_active) buf_free(&c->out);
    return 0;
}

/* --- responses ----------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Status line and headers. clen < 0: no Content-Length. */
static void resp_head(struct conn *c, int status, const char *ctype, int64_t clen, bool chunked,
                      const char *extra)
{
    out_printf(c, "HTTP/1.1 %d %s\r\nX-Backend: %s\r\n", status, reason(status), g_name);
    if (ctype) out_printf(c, "Content-Type: %s\r\n", ctype);
    if (chunked)
        out_puts(c, "Transfer-Encoding: chunked\r\n");
    else if (clen >= 0)
        out_printf(c, "Content-Length: %" PRId64 "\r\n", clen);
    if (extra) out_puts(c, extra);
    if (!c->ka)
        out_puts(c, "Connection: close\r\n");
    else if (c->minor == 0)
        out_puts(c, "Connection: keep-alive\r\n");
    out_puts(c, "\r\n");
}

static void resp_full(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                      const char *extra)
{
    resp_head(c, status, ctype, (int64_t)len, false, extra);
    if (!c->is_head) out_append(c, body, len);
}

static void resp_json(struct conn *c, int status, const struct buf *b)
{
    resp_full(c, status, "application/json", b->p, b->len, NULL);
}

static void resp_error(struct conn *c, int status, const char *msg)
{
    g_body.len = 0;
    buf_puts(&g_body, "{\"error\":");
    json_str(&g_body, msg, strlen(msg));
    buf_putc(&g_body, '}');
    resp_json(c, status, &g_body);
}

static void hello(struct conn *c)
{
    g_body.len = 0;
    buf_puts(&g_body, "{\"message\":\"Hello from ");
    /* the name's JSON string without its opening quote */
    buf_append(&g_body, g_name_json.p + 1, g_name_json.len - 1);
    buf_putc(&g_body, '}');
    resp_json(c, 200, &g_body);
}

/* --- request helpers ----------------------------------------------------- */

static const char *req_method(struct conn *c)
{
    if (c->custom_method[0]) return c->custom_method;
    return llhttp_method_name((llhttp_method_t)c->parser.method);
}

/* Value of the first header named name (case-insensitive), OWS-trimmed. */
static bool req_header(struct conn *c, const char *name, const char **val, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct hdr *h = &c->hdrs[i];
        if (h->name_len != nl || strncasecmp(c->hbuf.p + h->name_off, name, nl) != 0) continue;
        const char *v = c->hbuf.p + h->val_off;
        size_t vl = h->val_len;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        *val = v;
        *len = vl;
        return true;
    }
    return false;
}

/* Does any header `name` hold `token` in its comma-separated list? */
static bool req_header_has_token(struct conn *c, const char *name, const char *token)
{
    size_t nl = strlen(name), tl = strlen(token);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct hdr *h = &c->hdrs[i];
        if (h->name_len != nl || strncasecmp(c->hbuf.p + h->name_off, name, nl) != 0) continue;
        const char *v = c->hbuf.p + h->val_off, *end = v + h->val_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
            const char *s = v;
            while (v < end && *v != ',') v++;
            const char *e = v;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return true;
        }
    }
    return false;
}

static bool path_is(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return c->path_len == n && memcmp(c->url.p + c->path_off, s, n) == 0;
}

static bool path_has_prefix(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return c->path_len >= n && memcmp(c->url.p + c->path_off, s, n) == 0;
}

/* Splits the request target into path and query. */
static void split_url(struct conn *c)
{
    const char *u = c->url.p ? c->url.p : "";
    size_t n = c->url.len, start = 0;
    if (n > 0 && u[0] != '/') {
        /* absolute-form: skip scheme://authority */
        const char *sep = memmem(u, n, "://", 3);
        if (sep) {
            size_t a = (size_t)(sep - u) + 3;
            while (a < n && u[a] != '/' && u[a] != '?') a++;
            start = a;
        }
    }
    const char *q = memchr(u + start, '?', n - start);
    size_t pend = q ? (size_t)(q - u) : n;
    c->path_off = start;
    c->path_len = pend - start;
    c->query_off = q ? pend + 1 : n;
    c->query_len = q ? n - pend - 1 : 0;
}

static enum route route_of(struct conn *c)
{
    if (path_is(c, "/")) return R_ROOT;
    if (path_is(c, "/health")) return R_HEALTH;
    if (path_is(c, "/echo") || path_has_prefix(c, "/echo/")) return R_ECHO;
    if (path_is(c, "/slow")) return R_SLOW;
    if (path_is(c, "/bytes")) return R_BYTES;
    if (path_has_prefix(c, "/status/")) return R_STATUS;
    if (path_is(c, "/close")) return R_CLOSE;
    if (path_is(c, "/early-hints")) return R_EARLY_HINTS;
    if (path_is(c, "/ws")) return R_WS;
    if (path_is(c, "/stats")) return R_STATS;
    if (path_is(c, "/stats/reset")) return R_STATS_RESET;
    return R_NOT_FOUND;
}

/* Finds query parameter `name`; returns false if absent. */
static bool query_param(struct conn *c, const char *name, const char **val, size_t *len)
{
    const char *q = c->url.p + c->query_off, *end = q + c->query_len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(e - q));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - q) == nl && memcmp(q, name, nl) == 0) {
            *val = eq ? eq + 1 : e;
            *len = (size_t)(e - *val);
            return true;
        }
        q = amp ? amp + 1 : end;
    }
    return false;
}

/* Parses an unsigned decimal no larger than max. */
static bool parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool query_u64(struct conn *c, const char *name, uint64_t max, uint64_t *out)
{
    const char *v;
    size_t n;
    return query_param(c, name, &v, &n) && parse_u64(v, n, max, out);
}

/* --- llhttp callbacks ---------------------------------------------------- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->url.len = c->hbuf.len = 0;
    if (c->url.cap > MAX_URL) buf_free(&c->url);
    if (c->hbuf.cap > MAX_HEADER_BYTES) buf_free(&c->hbuf);
    c->nhdrs = 0;
    c->hdr_open = c->in_trailers = false;
    c->req_ready = c->keep_alive = c->chunked_req = c->is_head = c->ws_ok = false;
    c->minor = 1;
    c->err_status = 0;
    c->route = R_NOT_FOUND;
    c->path_off = c->path_len = c->query_off = c->query_len = 0;
    c->body_len = 0;
    c->body_crc = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->url.len + len > MAX_URL) {
        c->err_status = 414;
        return -1;
    }
    buf_append(&c->url, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->in_trailers) return 0;
    if (c->hbuf.len + len > MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    if (!c->hdr_open) {
        if (c->nhdrs == MAX_HEADERS) {
            c->err_status = 431;
            return -1;
        }
        if (c->nhdrs == c->hdrs_cap) {
            c->hdrs_cap = c->hdrs_cap ? 2 * c->hdrs_cap : 16;
            c->hdrs = xrealloc(c->hdrs, c->hdrs_cap * sizeof *c->hdrs);
        }
        struct hdr *h = &c->hdrs[c->nhdrs++];
        h->name_off = (uint32_t)c->hbuf.len;
        h->name_len = h->val_off = h->val_len = 0;
        c->hdr_open = true;
    }
    buf_append(&c->hbuf, at, len);
    c->hdrs[c->nhdrs - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->in_trailers && c->nhdrs > 0) c->hdrs[c->nhdrs - 1].val_off = (uint32_t)c->hbuf.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->in_trailers) return 0;
    if (c->hbuf.len + len > MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    buf_append(&c->hbuf, at, len);
    if (c->nhdrs > 0) c->hdrs[c->nhdrs - 1].val_len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->hdr_open = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->in_trailers = true; /* ignore trailer fields of chunked bodies */
    c->hdr_open = false;
    if (p->http_major != 1) {
        c->err_status = 505;
        return -1;
    }
    c->minor = p->http_minor;
    c->chunked_req = (p->flags & F_CHUNKED) != 0;
    c->is_head = !c->custom_method[0] && p->method == HTTP_HEAD;
    split_url(c);
    c->route = route_of(c);

    const char *v;
    size_t vl;
    if (c->route == R_WS && !c->custom_method[0] && p->method == HTTP_GET && p->upgrade &&
        req_header_has_token(c, "Upgrade", "websocket") &&
        req_header(c, "Sec-WebSocket-Key", &v, &vl) && vl > 0 && vl <= 128)
        c->ws_ok = true;
    /* Anything else, including CONNECT, stays plain HTTP: the upgrade is
     * declined and the parser carries on with the next request. */
    if (!c->ws_ok) p->upgrade = 0;

    bool body_expected = c->chunked_req || p->content_length > 0;
    if (body_expected && c->minor >= 1 && req_header(c, "Expect", &v, &vl) &&
        vl == strlen("100-continue") && strncasecmp(v, "100-continue", vl) == 0)
        out_puts(c, "HTTP/1.1 100 Continue\r\n\r\n");
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    c->body_len += len;
    c->body_crc = crc32_update(c->body_crc, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->req_ready = true;
    return HPE_PAUSED;
}

/* --- connection lifecycle ------------------------------------------------ */

static void conn_close(struct conn *c)
{
    timer_cancel(c);
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

static void conn_drop_pend(struct conn *c)
{
    free(c->pend);
    c->pend = NULL;
    c->pend_off = c->pend_len = 0;
}

/* The current response has been fully queued. */
static void finish_response(struct conn *c)
{
    if (!c->ka) {
        c->close_after_flush = true;
        conn_drop_pend(c);
        return;
    }
    llhttp_resume(&c->parser);
    c->at_start = true;
}

/* Unparseable request: 400 (or a more precise 4xx/5xx) and close. */
static void bad_request(struct conn *c)
{
    int status = c->err_status ? c->err_status : 400;
    c->ka = false;
    c->is_head = false;
    const char *msg = status == 414   ? "uri too long"
                      : status == 431 ? "request header fields too large"
                      : status == 505 ? "http version not supported"
                                      : "bad request";
    resp_error(c, status, msg);
    c->close_after_flush = true;
    conn_drop_pend(c);
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool known_method(const char *tok, size_t n)
{
#define XX(num, name, string)                                                                      \
    if (n == sizeof #string - 1 && memcmp(tok, #string, n) == 0) return true;
    HTTP_METHOD_MAP(XX)
#undef XX
    return n == 3 && memcmp(tok, "PRI", 3) == 0;
}

/*
 * Feeds request bytes to llhttp; returns how many were consumed (fewer than
 * len only when the parser paused at the end of a request).
 *
 * llhttp only knows a fixed list of methods. To accept any method token,
 * the token at the start of each request is collected here first: a known
 * method is passed on unchanged, an unknown one is remembered and llhttp is
 * shown "POST" instead (for a request, the method does not change framing).
 */
static size_t http_feed(struct conn *c, const char *data, size_t len)
{
    size_t used = 0;
    while (used < len && !c->req_ready && !c->close_after_flush) {
        if (c->at_start) {
            while (used < len) {
                unsigned char ch = (unsigned char)data[used];
                if (is_tchar(ch) && c->mtok_len < MTOK_MAX - 1)
                    c->mtok[c->mtok_len++] = (char)ch;
                else if (c->mtok_len > 0 || (ch != '\r' && ch != '\n'))
                    break;
                used++;
            }
            if (used == len) break; /* the token may go on */
            c->at_start = false;
            bool custom =
                c->mtok_len > 0 && data[used] == ' ' && !known_method(c->mtok, c->mtok_len);
            const char *tok = custom ? "POST" : c->mtok;
            size_t tlen = custom ? 4 : c->mtok_len;
            llhttp_errno_t err = tlen ? llhttp_execute(&c->parser, tok, tlen) : HPE_OK;
            /* on_message_begin has run by now: it must not clear this */
            if (custom) memcpy(c->custom_method, c->mtok, c->mtok_len);
            c->custom_method[custom ? c->mtok_len : 0] = '\0';
            c->mtok_len = 0;
            if (err != HPE_OK) {
                bad_request(c);
                return len;
            }
            continue;
        }
        llhttp_errno_t err = llhttp_execute(&c->parser, data + used, len - used);
        if (err == HPE_OK) return len;
        if (err == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
            break;
        }
        bad_request(c);
        return len;
    }
    return used;
}

static void pend_save(struct conn *c, const char *d, size_t n)
{
    conn_drop_pend(c);
    c->pend = xrealloc(NULL, n);
    memcpy(c->pend, d, n);
    c->pend_len = n;
}

/* --- WebSocket ----------------------------------------------------------- */

static size_t ws_hdr_need(const unsigned char *h, size_t have)
{
    if (have < 2) return 2;
    size_t need = 2 + ((h[1] & 0x80) ? 4 : 0);
    if ((h[1] & 0x7f) == 126)
        need += 2;
    else if ((h[1] & 0x7f) == 127)
        need += 8;
    return need;
}

static void ws_frame_head(struct conn *c, bool fin, int op, uint64_t len)
{
    unsigned char h[10];
    size_t n = 0;
    h[n++] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        h[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[n++] = 126;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--) h[n++] = (unsigned char)(len >> (8 * i));
    }
    out_append(c, h, n);
}

static void ws_fail(struct conn *c, unsigned code)
{
    unsigned char f[4] = {0x88, 2, (unsigned char)(code >> 8), (unsigned char)code};
    out_append(c, f, sizeof f);
    c->close_after_flush = true;
}

static void ws_end_frame(struct conn *c)
{
    if (c->ws_op == 0x8) c->close_after_flush = true;
}

static void ws_begin_frame(struct conn *c)
{
    const unsigned char *h = c->ws_hdr;
    bool fin = h[0] & 0x80;
    int op = h[0] & 0x0f;
    size_t i = 2;
    uint64_t len = h[1] & 0x7f;
    c->ws_hlen = 0;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        i = 4;
    } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; k++) len = len << 8 | h[2 + k];
        i = 10;
    }
    if ((h[0] & 0x70) || !(h[1] & 0x80) || (len >> 63)) {
        ws_fail(c, 1002);
        return;
    }
    bool control = op & 0x8;
    if ((op > 0x2 && op < 0x8) || op > 0xa || (control && (!fin || len > 125))) {
        ws_fail(c, 1002);
        return;
    }
    memcpy(c->ws_mask, h + i, 4);
    c->ws_op = op;
    c->ws_left = len;
    c->ws_pos = 0;
    c->ws_echo = true;
    if (op == 0xa) {
        c->ws_echo = false; /* unsolicited pong: ignore */
    } else if (op == 0x9) {
        ws_frame_head(c, true, 0xa, len);
    } else if (op == 0x8 && len == 1) {
        ws_fail(c, 1002);
        return;
    } else {
        ws_frame_head(c, fin, op, len); /* data, continuation, close: echoed */
    }
    if (len == 0) ws_end_frame(c);
}

static void ws_feed(struct conn *c, const unsigned char *d, size_t n)
{
    while (n > 0 && !c->close_after_flush) {
        if (c->ws_left == 0) {
            size_t need = ws_hdr_need(c->ws_hdr, c->ws_hlen);
            while (c->ws_hlen < need && n > 0) {
                c->ws_hdr[c->ws_hlen++] = *d++;
                n--;
                need = ws_hdr_need(c->ws_hdr, c->ws_hlen);
            }
            if (c->ws_hlen < need) return;
            ws_begin_frame(c);
            continue;
        }
        size_t k = n < c->ws_left ? n : (size_t)c->ws_left;
        if (c->ws_echo) {
            out_reserve(c, k);
            unsigned char *o = (unsigned char *)c->out.p + c->out.len;
            for (size_t j = 0; j < k; j++) o[j] = d[j] ^ c->ws_mask[(c->ws_pos + j) & 3];
            c->out.len += k;
        }
        c->ws_pos += k;
        c->ws_left -= k;
        d += k;
        n -= k;
        if (c->ws_left == 0) ws_end_frame(c);
    }
}

/* --- dispatch ------------------------------------------------------------ */

static void respond_echo(struct conn *c)
{
    struct buf *b = &g_body;
    b->len = 0;
    buf_puts(b, "{\"backend\":");
    buf_append(b, g_name_json.p, g_name_json.len);
    buf_puts(b, ",\"method\":");
    const char *m = req_method(c);
    json_str(b, m, strlen(m));
    buf_puts(b, ",\"path\":");
    json_str(b, c->url.p + c->path_off, c->path_len);
    buf_puts(b, ",\"query\":");
    json_str(b, c->url.p + c->query_off, c->query_len);
    buf_printf(b, ",\"version\":\"1.%d\",\"headers\":[", c->minor);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct hdr *h = &c->hdrs[i];
        buf_puts(b, i ? ",[" : "[");
        json_str(b, c->hbuf.p + h->name_off, h->name_len);
        buf_putc(b, ',');
        json_str(b, c->hbuf.p + h->val_off, h->val_len);
        buf_putc(b, ']');
    }
    buf_printf(b, "],\"body_length\":%" PRIu64 ",\"body_crc32\":\"%08" PRIx32 "\",\"chunked\":%s}",
               c->body_len, c->body_crc, c->chunked_req ? "true" : "false");
    resp_json(c, 200, b);
}

static void respond_stats(struct conn *c)
{
    struct buf *b = &g_body;
    b->len = 0;
    buf_puts(b, "{\"backend\":");
    buf_append(b, g_name_json.p, g_name_json.len);
    buf_printf(b, ",\"requests\":%" PRIu64 ",\"by_method\":{", g_requests);
    for (size_t i = 0; i < g_nmethods; i++) {
        if (i) buf_putc(b, ',');
        json_str(b, g_methods[i].name, strlen(g_methods[i].name));
        buf_printf(b, ":%" PRIu64, g_methods[i].count);
    }
    buf_puts(b, "}}");
    resp_json(c, 200, b);
}

static void respond_slow(struct conn *c)
{
    g_body.len = 0;
    buf_puts(&g_body, "{\"backend\":");
    buf_append(&g_body, g_name_json.p, g_name_json.len);
    buf_printf(&g_body, ",\"slept_ms\":%" PRIu64 "}", c->slow_ms);
    resp_json(c, 200, &g_body);
}

/* Produces more /bytes body into the output buffer. */
static void gen_fill(struct conn *c)
{
    while (c->gen_active && out_pending(c) < OUT_LOW) {
        uint64_t left = c->gen_total - c->gen_pos;
        size_t k = c->gen_chunked ? BYTES_CHUNK : RBUF_SIZE;
        if (left < k) k = (size_t)left;
        const char *src = g_pat + c->gen_pos % 26;
        if (c->gen_chunked) {
            out_printf(c, "%zx\r\n", k);
            out_append(c, src, k);
            out_puts(c, "\r\n");
        } else {
            out_append(c, src, k);
        }
        c->gen_pos += k;
        if (c->gen_pos == c->gen_total) {
            if (c->gen_chunked) out_puts(c, "0\r\n\r\n");
            c->gen_active = false;
            finish_response(c);
        }
    }
}

static void respond_bytes(struct conn *c)
{
    uint64_t n;
    if (!query_u64(c, "n", MAX_BYTES_N, &n)) {
        resp_error(c, 400, "bad or missing n");
        finish_response(c);
        return;
    }
    const char *v;
    size_t vl;
    bool chunked = query_param(c, "chunked", &v, &vl) && !(vl == 1 && v[0] == '0') &&
                   !(vl == 5 && memcmp(v, "false", 5) == 0);
    if (c->minor == 0) chunked = false; /* HTTP/1.0 has no chunked coding */
    char extra[64];
    snprintf(extra, sizeof extra, "X-Body-CRC32: %08" PRIx32 "\r\n", pattern_crc(n));
    resp_head(c, 200, "application/octet-stream", (int64_t)n, chunked, extra);
    if (c->is_head || n == 0) {
        if (chunked && !c->is_head) out_puts(c, "0\r\n\r\n");
        finish_response(c);
        return;
    }
    c->gen_active = true;
    c->gen_chunked = chunked;
    c->gen_pos = 0;
    c->gen_total = n;
}

static void respond_status(struct conn *c)
{
    uint64_t st;
    const char *s = c->url.p + c->path_off + strlen("/status/");
    size_t sl = c->path_len - strlen("/status/");
    if (!parse_u64(s, sl, 999, &st) || st < 200 || st > 599) {
        resp_error(c, 400, "status must be 200..599");
        return;
    }
    if (st == 204 || st == 304) {
        resp_head(c, (int)st, NULL, -1, false, NULL);
    } else if (st == 205) {
        resp_head(c, (int)st, NULL, 0, false, NULL); /* 205 must not have content */
    } else {
        g_body.len = 0;
        buf_printf(&g_body, "{\"status\":%d}", (int)st);
        resp_json(c, (int)st, &g_body);
    }
}

static void respond_ws(struct conn *c)
{
    const char *key;
    size_t kl;
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[128 + sizeof guid];
    unsigned char dig[20];
    char acc[32];
    req_header(c, "Sec-WebSocket-Key", &key, &kl);
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    sha1(cat, kl + sizeof guid - 1, dig);
    base64(dig, sizeof dig, acc);
    out_printf(c,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n",
               acc, g_name);
    c->ws = true;
    c->ws_hlen = 0;
    c->ws_left = 0;
}

static void dispatch(struct conn *c)
{
    c->req_ready = false;
    c->ka = c->keep_alive;
    enum route r = c->route;
    if (r != R_HEALTH && r != R_STATS && r != R_STATS_RESET) stats_count(req_method(c));

    switch (r) {
    case R_ROOT: hello(c); break;
    case R_HEALTH:
        g_body.len = 0;
        buf_puts(&g_body, "{\"status\":\"ok\"}");
        resp_json(c, 200, &g_body);
        break;
    case R_ECHO: respond_echo(c); break;
    case R_SLOW:
        if (!query_u64(c, "ms", MAX_SLOW_MS, &c->slow_ms)) {
            resp_error(c, 400, "bad or missing ms");
            break;
        }
        timer_arm(c, c->slow_ms, T_SLOW);
        return; /* answered by the timer */
    case R_BYTES: respond_bytes(c); return;
    case R_STATUS: respond_status(c); break;
    case R_CLOSE: {
        char body[256];
        int n = snprintf(body, sizeof body, "close-delimited body from %s\n", g_name);
        c->ka = false;
        resp_head(c, 200, "text/plain", -1, false, NULL);
        if (!c->is_head) out_append(c, body, (size_t)n);
        break;
    }
    case R_EARLY_HINTS:
        if (c->minor >= 1)
            out_puts(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
        hello(c);
        break;
    case R_WS:
        if (!c->ws_ok) {
            resp_error(c, 400, "websocket upgrade required");
            break;
        }
        respond_ws(c);
        return; /* the parser stays paused for good */
    case R_STATS: respond_stats(c); break;
    case R_STATS_RESET:
        if (c->custom_method[0] || c->parser.method != HTTP_POST) {
            g_body.len = 0;
            buf_puts(&g_body, "{\"error\":\"method not allowed\"}");
            resp_full(c, 405, "application/json", g_body.p, g_body.len, "Allow: POST\r\n");
            break;
        }
        g_requests = 0;
        g_nmethods = 0;
        g_body.len = 0;
        buf_puts(&g_body, "{\"backend\":");
        buf_append(&g_body, g_name_json.p, g_name_json.len);
        buf_puts(&g_body, ",\"reset\":true}");
        resp_json(c, 200, &g_body);
        break;
    case R_NOT_FOUND: resp_error(c, 404, "not found"); break;
    }
    finish_response(c);
}

/* --- the per-connection state machine ------------------------------------ */

static void update_interest(struct conn *c)
{
    size_t pend = out_pending(c);
    uint32_t want = 0;
    if (pend > 0 || c->gen_active || c->runnable) want |= EPOLLOUT;
    bool waiting = c->gen_active || pend >= OUT_LOW || c->timer_kind == T_SLOW || c->req_ready ||
                   (c->pend && !c->ws) || (c->close_after_flush && pend > 0);
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

/* Does whatever can be done now without blocking; closes c when done. */
static void conn_run(struct conn *c)
{
    c->runnable = false;
    for (int budget = 64;; budget--) {
        if (budget == 0) {
            c->runnable = true;
            break;
        }
        if (c->gen_active && out_pending(c) < OUT_LOW) gen_fill(c);
        if (out_pending(c) > 0 && conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        size_t pend = out_pending(c);
        if (c->gen_active) {
            if (pend > 0) break; /* socket full */
            continue;
        }
        if (pend >= OUT_LOW || c->timer_kind == T_SLOW) break;

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
                timer_arm(c, LINGER_MS, T_LINGER);
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
                dispatch(c);
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

static void timer_fire(struct conn *c)
{
    enum timer_kind k = c->timer_kind;
    timer_cancel(c);
    if (k == T_LINGER) {
        conn_close(c);
        return;
    }
    respond_slow(c);
    finish_response(c);
    conn_run(c);
}

static void conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->timer_idx = -1;
    c->at_start = true;
    c->ka = true;
    c->minor = 1;
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
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

static void accept_all(void)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && g_spare_fd >= 0) {
            /* Out of descriptors: accept and drop one, so the listen
             * queue does not keep the loop spinning. */
            close(g_spare_fd);
            fd = accept(g_listen_fd, NULL, NULL);
            if (fd >= 0) close(fd);
            g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        return; /* EAGAIN or a transient error */
    }
}

/* ------------------------------------------------------------------------ */
/* startup                                                                  */

static void usage(FILE *f)
{
    fprintf(f, "usage: demo-backend --port N --name NAME [--host ADDR]\n"
               "\n"
               "A demo HTTP/1.1 backend. Listens on ADDR:N (default ADDR 127.0.0.1;\n"
               "port 0 picks a free one) and answers:\n"
               "  GET /               {\"message\":\"Hello from NAME\"}\n"
               "  GET /health         {\"status\":\"ok\"}\n"
               "  ANY /echo[/...]     the request as JSON (headers, body length and CRC32)\n"
               "  /slow?ms=N          answers after N ms\n"
               "  /bytes?n=N[&chunked=1]  N bytes 'a'+i%%26, X-Body-CRC32 header\n"
               "  /status/N           status N (200..599)\n"
               "  /close              body delimited by connection close\n"
               "  /early-hints        103 Early Hints, then 200\n"
               "  /ws                 WebSocket echo\n"
               "  /stats              request counters; POST /stats/reset clears them\n"
               "Every response carries X-Backend: NAME. SIGTERM/SIGINT stop it.\n");
}

__attribute__((noreturn)) static void bad_args(const char *msg, const char *arg)
{
    fprintf(stderr,
            "demo-backend: %s%s%s\n"
            "usage: demo-backend --port N --name NAME [--host ADDR] (--help for more)\n",
            msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static int listen_on(const char *host, unsigned port, char *shown, size_t shown_len)
{
    struct addrinfo hints = {0}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "demo-backend: cannot resolve %s: %s\n", host, gai_strerror(rc));
        exit(2);
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr, "demo-backend: cannot listen on %s port %u: %s\n", host, port,
                strerror(errno));
        exit(1);
    }
    freeaddrinfo(res);
    if (listen(fd, 4096) < 0) die("listen");

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned actual = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
            actual = ntohs(s6->sin6_port);
            snprintf(shown, shown_len, "[%s]:%u", addr, actual);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
            actual = ntohs(s4->sin_port);
            snprintf(shown, shown_len, "%s:%u", addr, actual);
        }
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *name = NULL, *port_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char *opts[] = {"--port", "--name", "--host"};
        const char **dst[] = {&port_s, &name, &host};
        size_t k;
        for (k = 0; k < 3; k++) {
            size_t ol = strlen(opts[k]);
            if (strcmp(a, opts[k]) == 0) {
                if (i + 1 >= argc) bad_args("missing value for", a);
                val = argv[++i];
                break;
            }
            if (strncmp(a, opts[k], ol) == 0 && a[ol] == '=') {
                val = a + ol + 1;
                break;
            }
        }
        if (k == 3) bad_args("unknown argument", a);
        *dst[k] = val;
    }
    if (!port_s) bad_args("--port is required", NULL);
    if (!name) bad_args("--name is required", NULL);
    uint64_t port;
    if (!parse_u64(port_s, strlen(port_s), 65535, &port)) bad_args("bad port", port_s);
    if (!*name || strlen(name) > 64) bad_args("bad name (1..64 printable characters)", name);
    for (const char *s = name; *s; s++)
        if (*s < 0x21 || *s > 0x7e) bad_args("bad name (1..64 printable characters)", name);
    if (!*host) bad_args("bad host", host);
    g_name = name;
    json_str(&g_name_json, name, strlen(name));

    crc_init();
    for (size_t i = 0; i < sizeof g_pat; i++) g_pat[i] = (char)('a' + i % 26);

    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_header_field = on_header_field;
    g_settings.on_header_field_complete = on_header_field_complete;
    g_settings.on_header_value = on_header_value;
    g_settings.on_header_value_complete = on_header_value_complete;
    g_settings.on_headers_complete = on_headers_complete;
    g_settings.on_body = on_body;
    g_settings.on_message_complete = on_message_complete;

    /* Thousands of connections need thousands of descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    g_sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g_sig_fd < 0) die("signalfd");

    char shown[INET6_ADDRSTRLEN + 16] = "";
    g_listen_fd = listen_on(host, (unsigned)port, shown, sizeof shown);
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g_listen_tag};
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_listen_fd, &ev) < 0) die("epoll_ctl");
    ev.data.ptr = &g_sig_tag;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_sig_fd, &ev) < 0) die("epoll_ctl");

    fprintf(stderr, "demo-backend %s listening on %s\n", g_name, shown);

    bool stop = false;
    struct epoll_event evs[256];
    while (!stop) {
        int timeout = -1;
        if (g_heap_n > 0) {
            uint64_t now = now_ms(), dl = g_heap[0]->deadline;
            timeout = dl <= now ? 0 : (dl - now > INT_MAX ? INT_MAX : (int)(dl - now));
        }
        int n = epoll_wait(g_epfd, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &g_listen_tag) {
                accept_all();
            } else if (p == &g_sig_tag) {
                struct signalfd_siginfo si;
                while (read(g_sig_fd, &si, sizeof si) == (ssize_t)sizeof si) stop = true;
            } else {
                struct conn *c = p;
                if (evs[i].events & (EPOLLERR | EPOLLHUP))
                    conn_close(c);
                else
                    conn_run(c);
            }
        }
        uint64_t now = now_ms();
        while (g_heap_n > 0 && g_heap[0]->deadline <= now) timer_fire(g_heap[0]);
    }

    while (g_conns) conn_close(g_conns);
    close(g_listen_fd);
    close(g_sig_fd);
    close(g_epfd);
    if (g_spare_fd >= 0) close(g_spare_fd);
    free(g_heap);
    buf_free(&g_body);
    buf_free(&g_name_json);
    fprintf(stderr, "demo-backend %s stopped\n", g_name);
    return 0;
}
