/* fuzz_request_head: bytes from a client, as src/proxy/h1_client.c reads them.
 *
 * For each request in the input (up to 4, as on one keep-alive connection):
 * find the end of the head (at once and byte by byte: same answer), parse it
 * with h1_parse_head and h1_check_request, apply the other checks of
 * src/http/policy.c (h1_request_size_check, h1_accept_request), and for a
 * head usher would forward:
 *   - the head was valid by the strict reader (fuzz_common.h), bare LF line
 *     ends and "5, 5" excepted; llhttp ended it where usher did;
 *   - h1_write_request stays within its buffer (exact-size heap buffers),
 *     reports -ENOSPC when one byte short, and what it wrote is a strict,
 *     CRLF-only head that parses again with the same method, target and
 *     framing; no hop-by-hop header or header named in Connection survives
 *     (except the protected ones); one X-Forwarded-For ending with the
 *     client; one Host, matching an absolute-form target;
 *   - every other request is written as if it came over TLS with the mTLS
 *     headers on (X-Client-Verify set to a sanitized copy of input bytes,
 *     X-Client-Subject removed): one X-Forwarded-Proto with the right
 *     value, exactly usher's X-Client-Verify, no X-Client-Subject;
 *   - h1_write_redirect stays within its buffer, and writes a strict
 *     response head whose Location is https:// and visible ASCII, or says
 *     -EINVAL only when there is no host to name;
 *   - the body (body_parse, fed in pieces) ends exactly where a strict
 *     reader ends it, never forwards a byte the strict reader rejects, and
 *     never more bytes than there are. */
#include <errno.h>

#include "fuzz_common.h"
#include "http/body.h"
#include "http/policy.h"

#define HEAD_BUF 16384 /* BUF_SIZE in src/core/buf.h */
#define MAX_HEADERS 100
#define MAX_REQUEST_LINE 8192
#define CLIENT_IP "192.0.2.7"
#define DEFAULT_HOST "10.0.0.1:8080"

static struct h1_head head, again;

static char name_buf[64];
static const char *nm(const char *prefix, const char *name)
{
    snprintf(name_buf, sizeof(name_buf), "%s%s", prefix, name ? name : "?");
    return name_buf;
}

/* usher's own acceptance of a request head (src/http/policy.c, as the
 * HTTP/1 client side calls it). 0: forwarded. */
static int usher_accepts(llhttp_t *parser, const char *p, size_t head_len)
{
    static const struct h1_limits lim = {
        .max_header_bytes = HEAD_BUF,
        .max_request_line = MAX_REQUEST_LINE,
        .max_headers = MAX_HEADERS,
        .buf_size = HEAD_BUF,
    };
    struct h1_refusal r;
    if (h1_request_size_check(p, head_len, head_len, 0, &lim, &r)) return r.status;
    head.max_headers = MAX_HEADERS;
    head.skip_body = 0;
    const char *why = NULL;
    h1_parser_init(parser, 1); /* a fresh parser for every head */
    if (h1_parse_head(parser, &head, p, head_len, &why)) return 400;
    return h1_accept_request(&head, p, head_len, &lim, &r);
}

static int tls_variant; /* this request is written as if it came over TLS, mTLS headers on */

static int protected_name(const char *p, size_t n)
{
    /* headers usher sets itself: present in what it writes whatever Connection says */
    if (tls_variant && (fz_ieq(p, n, "x-client-verify") || fz_ieq(p, n, "x-client-subject")))
        return 1;
    static const char *const prot[] = {"host",
                                       "content-length",
                                       "transfer-encoding",
                                       "x-forwarded-for",
                                       "x-forwarded-proto",
                                       "x-forwarded-host"};
    for (size_t i = 0; i < sizeof(prot) / sizeof(prot[0]); i++)
        if (fz_ieq(p, n, prot[i])) return 1;
    return 0;
}

/* Every header named in a Connection header must be gone from out. */
static void check_connection_named(const char *out, size_t olen)
{
    for (uint32_t i = 0; i < head.nheaders; i++) {
        const struct h1_header *hd = &head.h[i];
        if (!fz_ieq(hd->name.p, hd->name.len, "connection")) continue;
        const char *v = hd->value.p, *end = v + hd->value.len;
        while (v < end) {
            const char *c = memchr(v, ',', (size_t)(end - v));
            const char *a = v, *b = c ? c : end;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            size_t n = (size_t)(b - a), t = 0;
            while (t < n && fz_tchar((unsigned char)a[t])) t++;
            if (n && n < 60 && t == n && !protected_name(a, n) && !fz_ieq(a, n, "close") &&
                !fz_ieq(a, n, "connection") && !fz_ieq(a, n, "keep-alive") &&
                !fz_ieq(a, n, "upgrade")) {
                char name[64];
                memcpy(name, a, n);
                name[n] = 0;
                FZ_CHECK("out-conn-named", !fz_out_has(out, olen, name),
                         "header %s named in Connection was forwarded", name);
            }
            v = c ? c + 1 : end;
        }
    }
}

/* The value of the one header name in out, or NULL. */
static const char *out_value(const char *out, size_t olen, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *e = out + olen;
    const char *l = memchr(out, '\n', olen);
    while (l && l + 1 < e) {
        const char *s = l + 1;
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (!nl) break;
        if ((size_t)(nl - s) > n && s[n] == ':' && strncasecmp(s, name, n) == 0) {
            const char *a = s + n + 1, *b = nl;
            if (b > a && b[-1] == '\r') b--;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            *vlen = (size_t)(b - a);
            return a;
        }
        l = nl;
    }
    return NULL;
}

static void check_rewritten(const char *out, size_t olen)
{
    struct ref_head r;
    ref_request_head((const unsigned char *)out, olen, 1, &r);
    FZ_CHECK(nm("out-", r.bad), !r.bad, "usher forwards a head a strict reader rejects: %s", r.why);
    size_t scanned = 0;
    FZ_CHECK("out-head-end", h1_find_head_end(out, olen, &scanned) == olen,
             "the rewritten head does not end where it should");

    /* It parses again, the same way. */
    llhttp_t p2;
    h1_parser_init(&p2, 1);
    again.max_headers = H1_MAX_HEADERS;
    again.skip_body = 0;
    const char *why = NULL;
    int err = h1_parse_head(&p2, &again, out, olen, &why);
    FZ_CHECK("out-reparse", !err && !again.bad_value && !again.bad_name && !again.too_many,
             "the rewritten head does not parse again (%s)", why ? why : "flags");
    FZ_CHECK("out-reparse", again.major == 1 && again.minor == 1, "forwarded version");
    FZ_CHECK("out-reparse",
             again.method.len == head.method.len &&
                 (!head.method.len || !memcmp(again.method.p, head.method.p, head.method.len)),
             "method changed");
    FZ_CHECK("out-reparse",
             again.target.len == head.target.len &&
                 (!head.target.len || !memcmp(again.target.p, head.target.p, head.target.len)),
             "target changed");
    FZ_CHECK("out-framing",
             again.chunked == head.chunked && again.has_cl == head.has_cl &&
                 again.content_length == head.content_length && again.complete == head.complete,
             "framing differs: in chunked=%d cl=%d(%llu) complete=%d, out chunked=%d cl=%d(%llu) "
             "complete=%d",
             head.chunked, head.has_cl, (unsigned long long)head.content_length, head.complete,
             again.chunked, again.has_cl, (unsigned long long)again.content_length, again.complete);
    FZ_CHECK("out-framing", r.chunked == head.chunked, "strict reader: chunked=%d, usher: %d",
             r.chunked, head.chunked);
    if (!head.chunked)
        FZ_CHECK("out-framing", (r.n_cl ? r.cl : 0) == head.content_length,
                 "strict reader: length %llu, usher: %llu", (unsigned long long)r.cl,
                 (unsigned long long)head.content_length);

    /* hop-by-hop and Connection-named headers */
    int upgrading = head.upgrade_i >= 0 && head.conn_upgrade;
    FZ_CHECK("out-hop-by-hop",
             !fz_out_has(out, olen, "keep-alive") && !fz_out_has(out, olen, "proxy-connection") &&
                 !fz_out_has(out, olen, "te"),
             "hop-by-hop header forwarded");
    if (!upgrading)
        FZ_CHECK("out-hop-by-hop",
                 !fz_out_has(out, olen, "connection") && !fz_out_has(out, olen, "upgrade"),
                 "Connection/Upgrade forwarded without an upgrade");
    check_connection_named(out, olen);

    /* X-Forwarded-For: one line, ending with the client */
    int nxff = 0;
    for (uint32_t i = 0; i < again.nheaders; i++)
        if (fz_ieq(again.h[i].name.p, again.h[i].name.len, "x-forwarded-for")) {
            nxff++;
            const struct span v = again.h[i].value;
            size_t k = strlen(CLIENT_IP);
            FZ_CHECK("out-xff",
                     v.len >= k && !memcmp(v.p + v.len - k, CLIENT_IP, k) &&
                         (v.len == k || (v.len > k + 1 && v.p[v.len - k - 2] == ',')),
                     "X-Forwarded-For does not end with the client address");
        }
    FZ_CHECK("out-xff", nxff == 1, "%d X-Forwarded-For lines", nxff);

    /* absolute-form: the authority is the Host (RFC 9112 3.2.2) */
    if (head.target.len && head.target.p[0] != '/' && head.target.p[0] != '*') {
        const char *t = head.target.p, *e = t + head.target.len;
        const char *ss = memchr(t, ':', head.target.len);
        if (ss && e - ss > 3 && !memcmp(ss, "://", 3)) {
            const char *a = ss + 3, *b = a;
            while (b < e && *b != '/' && *b != '?' && *b != '#') b++;
            const char *at = memchr(a, '@', (size_t)(b - a));
            if (at) a = at + 1;
            size_t hl = 0;
            const char *hv = out_value(out, olen, "host", &hl);
            FZ_CHECK("out-absolute-host", hv && hl == (size_t)(b - a) && !strncasecmp(hv, a, hl),
                     "absolute-form target whose authority differs from the Host forwarded");
        }
    }
}

/* The header lines named name in the rewritten head (again): how many, and
 * the value of the last one. */
static int again_count(const char *name, struct span *last)
{
    int k = 0;
    for (uint32_t i = 0; i < again.nheaders; i++)
        if (fz_ieq(again.h[i].name.p, again.h[i].name.len, name)) k++, *last = again.h[i].value;
    return k;
}

/* What the rewrite said of the connection is exactly what went out. */
static void check_connection_facts(const char *verify)
{
    struct span v = {0};
    FZ_CHECK("out-xfp", again_count("x-forwarded-proto", &v) == 1, "not one X-Forwarded-Proto");
    FZ_CHECK("out-xfp", fz_ieq(v.p, v.len, tls_variant ? "https" : "http"),
             "X-Forwarded-Proto is %.*s", (int)v.len, v.p);
    if (!tls_variant) return;
    size_t a = 0, b = strlen(verify);
    while (a < b && (verify[a] == ' ' || verify[a] == '\t')) a++;
    while (b > a && (verify[b - 1] == ' ' || verify[b - 1] == '\t')) b--;
    FZ_CHECK("out-set-headers", again_count("x-client-verify", &v) == 1, "not one X-Client-Verify");
    FZ_CHECK("out-set-headers", v.len == b - a && !memcmp(v.p, verify + a, v.len),
             "X-Client-Verify is not usher's value");
    FZ_CHECK("out-set-headers", again_count("x-client-subject", &v) == 0,
             "a client's X-Client-Subject was forwarded");
}

/* The 308 a redirecting listener would answer h with. */
static void check_redirect(uint32_t port)
{
    char *out = malloc(HEAD_BUF);
    long n = h1_write_redirect(&head, port, H1_CONN_CLOSE, out, HEAD_BUF);
    if (n == -EINVAL) {
        /* only when there is no host to name */
        struct span host = head.host_i >= 0 ? head.h[head.host_i].value : (struct span){0};
        FZ_CHECK("redirect-host", head.host_i < 0 || host.len == 0 || host.p[0] == ':',
                 "no redirect for Host %.*s", (int)host.len, host.p);
        free(out);
        return;
    }
    if (n == -ENOSPC) {
        free(out);
        return; /* 414 */
    }
    FZ_CHECK("redirect-bounds", n > 0 && n <= HEAD_BUF, "h1_write_redirect returned %ld", n);
    char *exact = malloc((size_t)n);
    FZ_CHECK("redirect-bounds",
             h1_write_redirect(&head, port, H1_CONN_CLOSE, exact, (size_t)n) == n &&
                 !memcmp(exact, out, (size_t)n),
             "not the same answer in a buffer of exactly its size");
    free(exact);
    char *small = malloc((size_t)n - 1);
    FZ_CHECK("redirect-bounds",
             h1_write_redirect(&head, port, H1_CONN_CLOSE, small, (size_t)n - 1) == -ENOSPC,
             "no -ENOSPC one byte short");
    free(small);
    struct ref_head r;
    ref_response_head((const unsigned char *)out, (size_t)n, 1, &r);
    FZ_CHECK(nm("redirect-", r.bad), !r.bad, "the redirect is not a strict head: %s", r.why);
    size_t scanned = 0;
    FZ_CHECK("redirect-head-end", h1_find_head_end(out, (size_t)n, &scanned) == (size_t)n,
             "the redirect does not end where it should");
    size_t ll = 0;
    const char *loc = out_value(out, (size_t)n, "location", &ll);
    FZ_CHECK("redirect-location", loc && ll > 8 && !memcmp(loc, "https://", 8),
             "no https:// Location");
    for (size_t i = 0; i < ll; i++)
        FZ_CHECK("redirect-location", loc[i] > 0x20 && loc[i] < 0x7f, "byte 0x%02x in the Location",
                 (unsigned char)loc[i]);
    free(out);
}

/* Runs the body of the message through body_parse in pieces, as h1_client.c
 * request_body does, and compares with the strict reader. Returns how many
 * bytes the body took, or -1 when usher rejects it. */
static long check_body(const char *p, size_t len)
{
    static const size_t piece[] = {1, 7, 64, 3, 1000};
    struct body b;
    body_init(&b, head.chunked ? BODY_CHUNKED : BODY_LENGTH, head.content_length);
    char *copy = malloc(len + 1);
    memcpy(copy, p, len);
    size_t fed = 0, fwd = 0;
    int done = 0, failed = 0;
    for (int k = 0; fed < len && !done; k++) {
        size_t n = piece[k % 5];
        if (n > len - fed) n = len - fed;
        int d = 0;
        long r = body_parse(&b, copy + fed, n, &d, NULL);
        if (r < 0) {
            failed = 1;
            break;
        }
        FZ_CHECK("body-bounds", (size_t)r <= n, "body_parse took %ld of %zu bytes", r, n);
        FZ_CHECK("body-bounds", d || (size_t)r == n, "stopped early without an end");
        FZ_CHECK("body-bounds", !memcmp(copy + fed, p + fed, n), "body_parse wrote to its input");
        fwd += (size_t)r;
        fed += n;
        done = d;
    }
    free(copy);
    if (head.chunked) {
        struct ref_chunked rc;
        ref_chunked_parse((const unsigned char *)p, len, &rc);
        if (rc.result == REF_ERROR)
            FZ_CHECK(rc.name, fwd <= rc.pos,
                     "usher forwards %zu bytes of a chunked body that is invalid at byte %zu (%s)",
                     fwd, rc.pos, rc.why);
        if (done)
            FZ_CHECK(rc.result == REF_ERROR ? rc.name : "chunked-diff",
                     rc.result == REF_DONE && rc.pos == fwd,
                     "usher ends the chunked body at %zu, the strict reader %s at %zu", fwd,
                     rc.result == REF_DONE ? "ends it" : "does not (yet)", rc.pos);
        else if (!failed)
            FZ_CHECK("chunked-diff", rc.result != REF_DONE,
                     "the strict reader ends the chunked body at %zu, usher reads on", rc.pos);
    } else {
        FZ_CHECK("cl-body", !failed, "a Content-Length body failed to parse");
        size_t want = head.content_length < len ? (size_t)head.content_length : len;
        FZ_CHECK("cl-body", fwd == want && done == (head.content_length <= len),
                 "length %llu: took %zu of %zu, done=%d", (unsigned long long)head.content_length,
                 fwd, len, done);
    }
    if (failed) return -1;
    return done ? (long)fwd : (long)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t pos = 0;
    llhttp_t parser;
    for (int msg = 0; msg < 4 && pos < size; msg++) {
        /* RFC 9112 2.2: empty lines before a request line are ignored */
        while (pos < size && (in[pos] == '\r' || in[pos] == '\n')) pos++;
        const char *p = in + pos;
        size_t len = size - pos;
        if (len > HEAD_BUF) len = HEAD_BUF; /* what fits in usher's buffer */
        size_t scanned = 0;
        size_t head_len = h1_find_head_end(p, len, &scanned);
        /* byte by byte, the end is found at the same place */
        size_t inc = 0, s2 = 0;
        for (size_t k = 1; k <= len && !inc; k++) inc = h1_find_head_end(p, k, &s2);
        FZ_CHECK("find-head-end", inc == head_len, "one-shot %zu, incremental %zu", head_len, inc);
        if (!head_len) return 0;
        FZ_CHECK("find-head-end", head_len <= len && p[head_len - 1] == '\n', "bad head end");

        if (usher_accepts(&parser, p, head_len)) return 0;

        /* llhttp ends the head where usher's scan did */
        size_t lend = fz_llhttp_head_end(p, head_len, 1);
        FZ_CHECK("head-end-agree", lend == head_len,
                 "usher takes %zu bytes as the head, llhttp ends it at %zu", head_len, lend);

        /* the head as received was valid (bare LF line ends are allowed) */
        struct ref_head r;
        ref_request_head((const unsigned char *)p, head_len, 0, &r);
        if (r.bad && strcmp(r.bad, "obs-fold") != 0) {
            fz_dump("accepted head", p, head_len);
            FZ_CHECK(nm("in-", r.bad), 0, "usher accepts a head a strict reader rejects: %s",
                     r.why);
        }

        /* the rewritten head */
        tls_variant = msg & 1;
        struct h1_request_rewrite rw = {
            .client_ip = CLIENT_IP,
            .default_host = DEFAULT_HOST,
            .upgrade = head.upgrade_i >= 0 && head.conn_upgrade,
            .https = tls_variant,
        };
        /* a verify value from the input's own bytes, as a reason or subject could be */
        char verify[64] = "FAILED:";
        size_t vn = head_len < 40 ? head_len : 40;
        memcpy(verify + 7, p, vn);
        verify[7 + vn] = 0;
        h1_safe_value(verify + 7, strlen(verify + 7));
        if (tls_variant) {
            rw.nset = 2;
            rw.set[0] =
                (struct h1_set_header){{"X-Client-Verify", 15}, {verify, (uint32_t)strlen(verify)}};
            rw.set[1] = (struct h1_set_header){{"x-client-SUBJECT", 16}, {NULL, 0}};
        }
        char *out = malloc(HEAD_BUF);
        long n = h1_write_request(&head, &rw, out, HEAD_BUF);
        if (n == -ENOSPC) {
            free(out);
            return 0; /* 431 */
        }
        FZ_CHECK("write-bounds", n > 0 && n <= HEAD_BUF, "h1_write_request returned %ld", n);
        /* exactly n bytes fit, n - 1 do not; exact-size buffers so ASan sees overruns */
        char *exact = malloc((size_t)n);
        FZ_CHECK("write-bounds",
                 h1_write_request(&head, &rw, exact, (size_t)n) == n &&
                     !memcmp(exact, out, (size_t)n),
                 "not the same head in a buffer of exactly its size");
        free(exact);
        char *small = malloc((size_t)n - 1);
        FZ_CHECK("write-bounds", h1_write_request(&head, &rw, small, (size_t)n - 1) == -ENOSPC,
                 "no -ENOSPC one byte short");
        free(small);
        check_rewritten(out, (size_t)n);
        check_connection_facts(verify);
        free(out);
        check_redirect(tls_variant ? 443 : 8443);

        pos += head_len;
        if (head.complete) continue;
        FZ_CHECK("request-framing", head.chunked || head.has_cl,
                 "a request with a body but neither chunked nor Content-Length");
        long b = check_body(in + pos, size - pos);
        if (b < 0) return 0; /* 400 */
        pos += (size_t)b;
    }
    return 0;
}
