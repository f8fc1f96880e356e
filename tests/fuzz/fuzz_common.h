/* fuzz_common: what the libFuzzer targets share.
 *
 * - FZ_CHECK(name, cond, fmt...): an invariant. A violation prints its name
 *   and aborts (libFuzzer saves the input), unless the name is listed in the
 *   environment variable USHER_FUZZ_TOLERATE (comma separated), which lets a
 *   long run look past a known bug to find others. `make fuzz` never sets it.
 *   "chunk-ext-grammar" (an extension that is not token[=token/quoted-string])
 *   is tolerated unless USHER_FUZZ_STRICT_EXT is set: see body.c.
 * - A strict RFC 9112 reader (ref_*) used as the reference: whatever usher
 *   accepts and forwards must be read the same way by it. It is written from
 *   the grammar, independently of llhttp, on purpose.
 * The targets decide what usher accepts and how it frames a response by
 * calling usher's own functions (src/http/policy.c), the same ones the
 * proxy calls, so nothing here has to be kept in step by hand. */
#ifndef USHER_FUZZ_COMMON_H
#define USHER_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h1.h"

/* ---- invariants ------------------------------------------------------------ */

static const char *fz_tolerate_list(void)
{
    static int init;
    static const char *v;
    if (!init) {
        v = getenv("USHER_FUZZ_TOLERATE");
        init = 1;
    }
    return v;
}

static int fz_tolerated(const char *name)
{
    const char *l = fz_tolerate_list();
    size_t n = strlen(name);
    /* body.c checks chunk extensions for their bytes only (no CTL, no bare CR
     * or LF, bounded size), not for the token/quoted-string grammar: a design
     * choice documented there. USHER_FUZZ_STRICT_EXT=1 checks the grammar. */
    if (!strcmp(name, "chunk-ext-grammar") && !getenv("USHER_FUZZ_STRICT_EXT")) return 1;
    while (l && *l) {
        const char *c = strchr(l, ',');
        size_t k = c ? (size_t)(c - l) : strlen(l);
        if ((k == n && !memcmp(l, name, n)) || (k == 3 && !memcmp(l, "all", 3))) return 1;
        l = c ? c + 1 : NULL;
    }
    return 0;
}

static void fz_dump(const char *what, const void *p, size_t len)
{
    const unsigned char *s = p;
    fprintf(stderr, "%s (%zu bytes): \"", what, len);
    for (size_t i = 0; i < len && i < 600; i++) {
        if (s[i] == '\r')
            fputs("\\r", stderr);
        else if (s[i] == '\n')
            fputs("\\n", stderr);
        else if (s[i] < 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
            fprintf(stderr, "\\x%02x", s[i]);
        else
            fputc(s[i], stderr);
    }
    fputs(len > 600 ? "\"...\n" : "\"\n", stderr);
}

#define FZ_CHECK(name, cond, ...)                                                                  \
    do {                                                                                           \
        if (!(cond) && !fz_tolerated(name)) {                                                      \
            fprintf(stderr, "\n==== usher fuzz invariant \"%s\" violated: ", name);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- character classes (RFC 9110 5.6, RFC 3986) ----------------------------------- */

static int fz_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int fz_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int fz_hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* field-vchar / SP / HTAB: what a field value may hold (obs-text included) */
static int fz_value_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}

static int fz_ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && strncasecmp(a, lit, n) == 0;
}

/* ---- strict chunked body (RFC 9112 7.1) ---------------------------------------- */

enum { REF_INCOMPLETE = 0, REF_DONE = 1, REF_ERROR = 2 };

struct ref_chunked {
    int result;
    size_t pos;        /* REF_DONE: bytes of the body; REF_ERROR: offset of the first bad byte */
    const char *why;   /* REF_ERROR: what was wrong */
    const char *name;  /* REF_ERROR: the invariant it breaks ("chunked-diff", or
                          "chunk-ext-grammar" inside an extension) */
    size_t decoded;    /* data bytes seen */
    uint64_t data_sum; /* a cheap checksum of the data bytes: sum of (byte * (index + 1)) */
};

/* Parses p[0..len) as a chunked body from its first byte, strictly:
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 * with field lines in the trailer section as in a head (no obs-fold). The
 * data bytes are copied to dec (room for len bytes) unless it is NULL. */
static void ref_chunked_parse_out(const unsigned char *p, size_t len, struct ref_chunked *r,
                                  unsigned char *dec)
{
    size_t i = 0;
    memset(r, 0, sizeof(*r));
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (i + (k) > len) {                                                                       \
            r->result = REF_INCOMPLETE;                                                            \
            r->pos = len;                                                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define FAIL(w)                                                                                    \
    do {                                                                                           \
        r->result = REF_ERROR;                                                                     \
        r->pos = i;                                                                                \
        r->why = w;                                                                                \
        r->name = in_ext ? "chunk-ext-grammar" : "chunked-diff";                                   \
        return;                                                                                    \
    } while (0)
    int in_ext = 0;
    for (;;) {
        /* chunk-size */
        uint64_t size = 0;
        size_t digits = 0;
        for (;;) {
            NEED(1);
            if (!fz_hex(p[i])) break;
            if (size > (UINT64_MAX >> 4)) FAIL("chunk size overflows 64 bits");
            size = (size << 4) | (uint64_t)fz_hexval(p[i]);
            digits++;
            i++;
        }
        if (!digits) FAIL("chunk size is not 1*HEXDIG");
        /* chunk-ext */
        in_ext = 1;
        for (;;) {
            size_t j = i;
            while (j < len && (p[j] == ' ' || p[j] == '\t')) j++;
            if (j >= len) {
                i = j;
                NEED(1);
            }
            if (p[j] != ';') {
                if (j != i) {
                    i = j;
                    FAIL("whitespace not followed by ';' in a chunk line");
                }
                break;
            }
            i = j + 1;
            while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
            NEED(1);
            if (!fz_tchar(p[i])) FAIL("chunk extension name is not a token");
            while (i < len && fz_tchar(p[i])) i++;
            j = i;
            while (j < len && (p[j] == ' ' || p[j] == '\t')) j++;
            if (j >= len) {
                i = j;
                NEED(1);
            }
            if (p[j] != '=') continue; /* BWS then ';' or CRLF, looked at again */
            i = j + 1;
            while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
            NEED(1);
            if (p[i] == '"') {
                i++;
                for (;;) {
                    NEED(1);
                    unsigned char c = p[i];
                    if (c == '"') {
                        i++;
                        break;
                    }
                    if (c == '\\') {
                        i++;
                        NEED(1);
                        if (!fz_value_char(p[i])) FAIL("bad quoted-pair in a chunk extension");
                        i++;
                        continue;
                    }
                    if (!fz_value_char(c)) FAIL("control byte in a chunk extension");
                    i++;
                }
            } else {
                if (!fz_tchar(p[i])) FAIL("chunk extension value is not a token or quoted-string");
                while (i < len && fz_tchar(p[i])) i++;
            }
        }
        NEED(1);
        if (p[i] != '\r') FAIL("chunk line does not end with CRLF");
        in_ext = 0;
        i++;
        NEED(1);
        if (p[i] != '\n') FAIL("bare CR in a chunk line");
        i++;
        if (size == 0) break;
        /* chunk-data CRLF */
        size_t avail = len - i;
        size_t take = size < avail ? (size_t)size : avail;
        for (size_t k = 0; k < take; k++) {
            if (dec) dec[r->decoded] = p[i + k];
            r->decoded++;
            r->data_sum += (uint64_t)p[i + k] * r->decoded;
        }
        i += take;
        NEED(1); /* all of it was not there */
        NEED(1);
        if (p[i] != '\r') FAIL("chunk data not followed by CRLF");
        i++;
        NEED(1);
        if (p[i] != '\n') FAIL("chunk data not followed by CRLF (bare CR)");
        i++;
    }
    /* trailer-section CRLF */
    for (;;) {
        NEED(1);
        if (p[i] == '\r') {
            i++;
            NEED(1);
            if (p[i] != '\n') FAIL("bare CR at the end of the trailer section");
            i++;
            r->result = REF_DONE;
            r->pos = i;
            return;
        }
        if (!fz_tchar(p[i])) FAIL("trailer field name is not a token (or obs-fold)");
        while (i < len && fz_tchar(p[i])) i++;
        NEED(1);
        if (p[i] != ':') FAIL("trailer field name not followed by ':'");
        i++;
        for (;;) {
            NEED(1);
            if (p[i] == '\r') break;
            if (!fz_value_char(p[i])) FAIL("control byte in a trailer field value");
            i++;
        }
        i++;
        NEED(1);
        if (p[i] != '\n') FAIL("bare CR in a trailer field");
        i++;
    }
#undef NEED
#undef FAIL
}

static void ref_chunked_parse(const unsigned char *p, size_t len, struct ref_chunked *r)
{
    ref_chunked_parse_out(p, len, r, NULL);
}

/* ---- strict head reader (RFC 9112 2-5, RFC 9110 5) -------------------------------- */

#define REF_MAX_LINES 200

struct ref_line {
    const unsigned char *p;
    size_t len;
};

struct ref_head {
    const char *bad; /* first violation found, as the name of an invariant, or NULL */
    const char *why;
    struct ref_line line[REF_MAX_LINES];
    size_t nlines;
    /* framing as a strict reader sees it */
    int n_cl, n_te, n_host, chunked, te_ok;
    uint64_t cl;
    int cl_ok;
};

static void ref_bad(struct ref_head *r, const char *name, const char *why)
{
    if (!r->bad) {
        r->bad = name;
        r->why = why;
    }
}

/* Splits p[0..len) (a whole head, ending with its empty line) into lines.
 * crlf_only: every line must end with CRLF (what usher writes); otherwise a
 * bare LF ending is allowed (RFC 9112 2.2 lets a recipient accept it). A CR
 * anywhere else is a violation either way. */
static void ref_split(const unsigned char *p, size_t len, int crlf_only, struct ref_head *r)
{
    size_t i = 0;
    r->nlines = 0;
    while (i < len) {
        const unsigned char *lf = memchr(p + i, '\n', len - i);
        if (!lf) {
            ref_bad(r, "head-end", "head does not end with a line end");
            return;
        }
        size_t end = (size_t)(lf - p);
        size_t l = end - i;
        if (l && p[end - 1] == '\r')
            l--;
        else if (crlf_only)
            ref_bad(r, "bare-lf", "a line ends with a bare LF");
        if (memchr(p + i, '\r', l)) ref_bad(r, "bare-cr", "a bare CR inside a line");
        if (l == 0) {
            if (end + 1 != len) ref_bad(r, "head-end", "empty line before the end of the head");
            return;
        }
        if (r->nlines < REF_MAX_LINES) r->line[r->nlines++] = (struct ref_line){p + i, l};
        i = end + 1;
    }
    ref_bad(r, "head-end", "no empty line at the end of the head");
}

static int ref_coding_known(const unsigned char *s, size_t n)
{
    static const char *const known[] = {"chunked",  "gzip",   "deflate",
                                        "compress", "x-gzip", "x-compress"};
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
        if (fz_ieq((const char *)s, n, known[k])) return 1;
    return 0;
}

/* Checks the field lines r->line[1..] and derives framing. */
static void ref_fields(struct ref_head *r, int is_request, int minor)
{
    uint64_t cl_first = 0;
    int seen_chunked = 0, last_chunked = 0;
    r->cl_ok = 1;
    r->te_ok = 1;
    for (size_t k = 1; k < r->nlines; k++) {
        const unsigned char *s = r->line[k].p;
        size_t n = r->line[k].len, i = 0;
        if (s[0] == ' ' || s[0] == '\t') {
            ref_bad(r, "obs-fold", "a field line starts with whitespace (obs-fold)");
            continue;
        }
        while (i < n && fz_tchar(s[i])) i++;
        if (i == n || s[i] != ':') {
            ref_bad(r, i < n && (s[i] == ' ' || s[i] == '\t') ? "ws-before-colon" : "name-token",
                    "field name not a token or not followed by ':'");
            continue;
        }
        if (i == 0) ref_bad(r, "name-token", "empty field name");
        const unsigned char *name = s;
        size_t nlen = i;
        i++;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        size_t vend = n;
        while (vend > i && (s[vend - 1] == ' ' || s[vend - 1] == '\t')) vend--;
        const unsigned char *v = s + i;
        size_t vlen = vend - i;
        for (size_t j = 0; j < vlen; j++)
            if (!fz_value_char(v[j])) ref_bad(r, "value-ctl", "control byte in a field value");
        if (fz_ieq((const char *)name, nlen, "content-length")) {
            /* 1#DIGITS, all equal ("5, 5" may be collapsed: RFC 9110 8.6) */
            r->n_cl++;
            size_t j = 0;
            int any = 0;
            while (j <= vlen) {
                size_t a = j;
                while (j < vlen && v[j] != ',') j++;
                size_t b = j;
                while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
                uint64_t val = 0;
                if (a == b) r->cl_ok = 0;
                for (size_t q = a; q < b; q++) {
                    /* 1*DIGIT, exact up to UINT64_MAX (llhttp's limit too) */
                    if (v[q] < '0' || v[q] > '9' ||
                        val > (UINT64_MAX - (uint64_t)(v[q] - '0')) / 10) {
                        r->cl_ok = 0;
                        break;
                    }
                    val = val * 10 + (uint64_t)(v[q] - '0');
                }
                if (any || r->n_cl > 1) {
                    if (val != cl_first) r->cl_ok = 0;
                } else {
                    cl_first = val;
                }
                any = 1;
                j++;
            }
            r->cl = cl_first;
        } else if (fz_ieq((const char *)name, nlen, "transfer-encoding")) {
            r->n_te++;
            size_t j = 0;
            while (j <= vlen) {
                size_t a = j;
                while (j < vlen && v[j] != ',') j++;
                size_t b = j;
                while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
                j++;
                if (a == b) {
                    r->te_ok = 0; /* empty element or empty value */
                    continue;
                }
                int chunked = fz_ieq((const char *)v + a, b - a, "chunked");
                if (seen_chunked) r->te_ok = 0; /* anything after chunked, or chunked twice */
                if (!ref_coding_known(v + a, b - a)) r->te_ok = 0;
                seen_chunked |= chunked;
                last_chunked = chunked;
            }
        } else if (is_request && fz_ieq((const char *)name, nlen, "host")) {
            r->n_host++;
            /* uri-host [ ":" port ]; uri-host = IP-literal / IPv4address / reg-name */
            size_t j = 0;
            if (vlen && v[0] == '[') {
                while (j < vlen && v[j] != ']') j++;
                if (j == vlen) ref_bad(r, "host-value", "unterminated IP literal in Host");
                j++;
            } else {
                while (j < vlen && v[j] != ':') {
                    unsigned char c = v[j];
                    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || (c && strchr("-._~!$&'()*+,;=%", c));
                    if (!ok) ref_bad(r, "host-value", "Host is not uri-host [\":\" port]");
                    j++;
                }
            }
            if (j < vlen) {
                if (v[j] != ':') ref_bad(r, "host-value", "Host is not uri-host [\":\" port]");
                for (j++; j < vlen; j++)
                    if (v[j] < '0' || v[j] > '9') ref_bad(r, "host-value", "Host port not digits");
            }
        }
    }
    r->chunked = r->n_te && last_chunked;
    if (r->n_te && !last_chunked && is_request) r->te_ok = 0;
    if (r->n_cl && !r->cl_ok) ref_bad(r, "cl-invalid", "invalid Content-Length");
    if (r->n_te && r->n_cl) ref_bad(r, "cl-te", "both Content-Length and Transfer-Encoding");
    /* several lines are one list (RFC 9110 5.3), but a request must not use that */
    if (r->n_te > 1 && is_request) ref_bad(r, "te-lines", "several Transfer-Encoding lines");
    if (r->n_te && !r->te_ok) ref_bad(r, "te-coding", "Transfer-Encoding not a valid coding list");
    if (r->n_te && is_request && minor == 0) ref_bad(r, "te-http10", "Transfer-Encoding in 1.0");
}

/* A request head, strictly. crlf_only for what usher writes. */
static void ref_request_head(const unsigned char *p, size_t len, int crlf_only, struct ref_head *r)
{
    memset(r, 0, sizeof(*r));
    ref_split(p, len, crlf_only, r);
    if (!r->nlines) {
        ref_bad(r, "request-line", "no request line");
        return;
    }
    const unsigned char *s = r->line[0].p;
    size_t n = r->line[0].len, i = 0;
    while (i < n && fz_tchar(s[i])) i++;
    size_t mlen = i;
    if (!mlen || i == n || s[i] != ' ') {
        ref_bad(r, "request-line", "method is not a token followed by SP");
        return;
    }
    /* several SP between the parts: allowed on input only, because usher
     * writes its own request line with single SPs (RFC 9112 3) */
    while (++i < n && s[i] == ' ' && !crlf_only) continue;
    size_t t0 = i;
    while (i < n && s[i] != ' ') i++;
    size_t t1 = i;
    if (t1 == t0 || i == n) {
        ref_bad(r, "request-line", "no request target or no version (HTTP/0.9?)");
        return;
    }
    while (++i < n && s[i] == ' ' && !crlf_only) continue;
    if (n - i != 8 || memcmp(s + i, "HTTP/1.", 7) || (s[i + 7] != '0' && s[i + 7] != '1')) {
        ref_bad(r, "version", "version is not HTTP/1.0 or HTTP/1.1");
        return;
    }
    int minor = s[i + 7] - '0';
    const unsigned char *t = s + t0;
    size_t tlen = t1 - t0;
    for (size_t k = 0; k < tlen; k++) {
        if (t[k] <= 0x20 || t[k] >= 0x7f)
            ref_bad(r, "target-chars", "byte not allowed in a target");
        if (t[k] == '#') ref_bad(r, "fragment", "fragment in a request target");
    }
    int is_options = mlen == 7 && !memcmp(s, "OPTIONS", 7);
    int is_connect = mlen == 7 && !memcmp(s, "CONNECT", 7);
    if (tlen == 1 && t[0] == '*') {
        if (!is_options) ref_bad(r, "asterisk", "'*' target with a method other than OPTIONS");
    } else if (t[0] != '/' && !is_connect) {
        /* absolute-form: scheme "://" authority ... (RFC 9112 3.2.2) */
        size_t k = 0;
        while (k < tlen && t[k] != ':') k++;
        if (k + 3 > tlen || memcmp(t + k, "://", 3)) ref_bad(r, "target-form", "target form");
    }
    ref_fields(r, 1, minor);
    if (minor == 1 && r->n_host != 1) ref_bad(r, "host-count", "HTTP/1.1 without exactly one Host");
    if (minor == 0 && r->n_host > 1) ref_bad(r, "host-count", "several Host headers");
}

/* A response head, strictly. */
static void ref_response_head(const unsigned char *p, size_t len, int crlf_only, struct ref_head *r)
{
    memset(r, 0, sizeof(*r));
    ref_split(p, len, crlf_only, r);
    if (!r->nlines) {
        ref_bad(r, "status-line", "no status line");
        return;
    }
    const unsigned char *s = r->line[0].p;
    size_t n = r->line[0].len;
    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
    if (n < 12 || memcmp(s, "HTTP/1.", 7) || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
        s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9') {
        ref_bad(r, "status-line", "not HTTP/1.x SP 3DIGIT");
        return;
    }
    if (n > 12 && s[12] != ' ') ref_bad(r, "status-line", "status code not followed by SP");
    for (size_t k = 13; k < n; k++)
        if (!fz_value_char(s[k])) ref_bad(r, "status-line", "control byte in the reason phrase");
    ref_fields(r, 0, s[7] - '0');
}

/* ---- heads as usher sees them ------------------------------------------------------ */

/* Whether the header table holds a header named name (case-insensitive),
 * counting only those not dropped. */
static int fz_head_has(const struct h1_head *h, const char *name)
{
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (!h->h[i].drop && fz_ieq(h->h[i].name.p, h->h[i].name.len, name)) return 1;
    return 0;
}

/* Whether a rewritten head p[0..len) has a field line named name. */
static int fz_out_has(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *e = p + len;
    const char *l = memchr(p, '\n', len);
    while (l && l + 1 < e) {
        const char *s = l + 1;
        if ((size_t)(e - s) > n && s[n] == ':' && strncasecmp(s, name, n) == 0) return 1;
        l = memchr(s, '\n', (size_t)(e - s));
    }
    return 0;
}

/* Runs llhttp (with our own callbacks) over a head to find where llhttp
 * itself ends it. Returns that offset, or 0 if llhttp did not reach the end
 * of the head within p[0..len) (or failed). Unknown methods get the same
 * stand-in as in h1_parse_head. */
static int fz_on_hc(llhttp_t *p)
{
    return HPE_PAUSED;
}

static size_t fz_llhttp_head_end(const char *p, size_t len, int is_request)
{
    llhttp_settings_t st;
    llhttp_t ps;
    llhttp_settings_init(&st);
    st.on_headers_complete = fz_on_hc;
    llhttp_init(&ps, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &st);
    size_t shift = 0;
    llhttp_t saved = ps;
    int err = llhttp_execute(&ps, p, len);
    if (err == HPE_INVALID_METHOD && is_request) {
        size_t m = 0;
        while (m < len && fz_tchar((unsigned char)p[m])) m++;
        if (m > 0 && m < len && p[m] == ' ') {
            ps = saved;
            if (llhttp_execute(&ps, "PUT", 3) != HPE_OK) return 0;
            err = llhttp_execute(&ps, p + m, len - m);
            shift = m;
            p += m;
        }
    }
    if (err != HPE_PAUSED) return 0;
    return (size_t)(llhttp_get_error_pos(&ps) - p) + shift;
}

#endif
