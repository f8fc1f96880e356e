/* fuzz_response_head: bytes from a backend, as src/proxy/h1_backend.c reads them.
 *
 * Input: one flags byte, then what the backend sends.
 *   bit 0: the request was HEAD          bit 1: the client asked to upgrade
 *   bit 2: the client speaks HTTP/1.0     bit 3: the client wants keep-alive
 *   bit 4: the client came over TLS with HSTS on, and a balancer adds Set-Cookie
 *
 * Each head is parsed with a fresh parser and checked with h1_check_response
 * as response_head does; interim (1xx) heads are forwarded to 1.1 clients,
 * then the next head is read. For the final head usher would forward:
 *   - it was valid by the strict reader (bare LF line ends and Content-Length
 *     with chunked excepted: that one must be framed by chunked);
 *   - h1_write_response stays within its buffer; what it wrote is a strict,
 *     CRLF-only head with the same status that frames the body the way usher
 *     reads it: never Content-Length with chunked, no Transfer-Encoding or
 *     Content-Length when de-chunking, "Connection: close" when the body ends
 *     by close; no header named in Connection survives; with bit 4, the
 *     balancer's line is there and exactly one Strict-Transport-Security
 *     (usher's) unless the backend's own is forwarded (then only that);
 *   - the body is read (body_parse, de-chunking in place for a 1.0 client)
 *     to exactly where the strict reader ends it. */
#include <errno.h>

#include "fuzz_common.h"
#include "http/body.h"
#include "http/policy.h"

#define OUT_BUF 16384

static struct h1_head head, again;

static char name_buf[64];
static const char *nm(const char *prefix, const char *name)
{
    snprintf(name_buf, sizeof(name_buf), "%s%s", prefix, name ? name : "?");
    return name_buf;
}

static int out_connection_is(const char *out, size_t olen, const char *value)
{
    const char *e = out + olen;
    const char *l = memchr(out, '\n', olen);
    int found = 0, ok = 1;
    while (l && l + 1 < e) {
        const char *s = l + 1;
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (!nl) break;
        if (nl - s > 11 && !strncasecmp(s, "connection:", 11)) {
            found++;
            const char *a = s + 11, *b = nl;
            if (b > a && b[-1] == '\r') b--;
            while (a < b && *a == ' ') a++;
            ok &= value && fz_ieq(a, (size_t)(b - a), value);
        }
        l = nl;
    }
    return value ? found == 1 && ok : found == 0;
}

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
            if (n && n < 60 && t == n && !fz_ieq(a, n, "close") && !fz_ieq(a, n, "connection") &&
                !fz_ieq(a, n, "keep-alive") && !fz_ieq(a, n, "upgrade") &&
                !fz_ieq(a, n, "content-length") && !fz_ieq(a, n, "transfer-encoding") &&
                !fz_ieq(a, n, "host") && !fz_ieq(a, n, "x-forwarded-for") &&
                !fz_ieq(a, n, "x-forwarded-proto") && !fz_ieq(a, n, "x-forwarded-host")) {
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

/* Writes the head as append_out does; checks the writer's bounds. */
static long write_head(const struct h1_response_rewrite *rw, char **outp)
{
    char *out = malloc(OUT_BUF);
    long n = h1_write_response(&head, rw, out, OUT_BUF);
    if (n == -ENOSPC) {
        free(out);
        return -1; /* 502 */
    }
    FZ_CHECK("write-bounds", n > 0 && n <= OUT_BUF, "h1_write_response returned %ld", n);
    char *exact = malloc((size_t)n);
    FZ_CHECK("write-bounds",
             h1_write_response(&head, rw, exact, (size_t)n) == n && !memcmp(exact, out, (size_t)n),
             "not the same head in a buffer of exactly its size");
    free(exact);
    char *small = malloc((size_t)n - 1);
    FZ_CHECK("write-bounds", h1_write_response(&head, rw, small, (size_t)n - 1) == -ENOSPC,
             "no -ENOSPC one byte short");
    free(small);
    *outp = out;
    return n;
}

static void check_out(const char *out, size_t olen, const struct h1_response_rewrite *rw,
                      int skip_body, int close_delimited)
{
    struct ref_head r;
    ref_response_head((const unsigned char *)out, olen, 1, &r);
    FZ_CHECK(nm("out-", r.bad), !r.bad, "usher forwards a head a strict reader rejects: %s", r.why);
    size_t scanned = 0;
    FZ_CHECK("out-head-end", h1_find_head_end(out, olen, &scanned) == olen,
             "the rewritten head does not end where it should");
    llhttp_t p2;
    h1_parser_init(&p2, 0);
    again.max_headers = H1_MAX_HEADERS;
    again.skip_body = (uint32_t)skip_body;
    const char *why = NULL;
    int err = h1_parse_head(&p2, &again, out, olen, &why);
    FZ_CHECK("out-reparse", !err && !again.bad_value && !again.bad_name,
             "the rewritten head does not parse again (%s)", why ? why : "flags");
    /* usher adds a Connection line: a head at usher's own table size no longer
     * fits in a table; the strict reader above has checked it whole */
    int full = !again.too_many;
    FZ_CHECK("out-reparse", !full || again.status == head.status, "status %u became %u",
             head.status, again.status);
    /* llhttp does not know that 204 and 304 have no content (h1_plan_response decides) */
    if (full && !skip_body && head.status != 204 && head.status != 304)
        FZ_CHECK("out-reparse", again.complete == head.complete, "body/no body changed");
    if (rw->dechunk) {
        FZ_CHECK("out-dechunk-framing", !r.n_te && !r.n_cl,
                 "a de-chunked body is announced with %s",
                 r.n_te ? "Transfer-Encoding" : "Content-Length");
        FZ_CHECK("out-dechunk-framing", rw->conn == H1_CONN_CLOSE, "de-chunked without close");
    } else if (!head.complete) {
        FZ_CHECK("out-framing", !full || again.chunked == head.chunked, "chunked changed");
        if (head.chunked)
            FZ_CHECK("out-framing", r.chunked && !r.n_cl,
                     "a chunked body forwarded with Content-Length or without chunked last");
        else if (head.has_cl)
            FZ_CHECK("out-framing", r.n_cl && r.cl == head.content_length && !r.n_te,
                     "Content-Length %llu forwarded as %llu",
                     (unsigned long long)head.content_length, (unsigned long long)r.cl);
    }
    if (close_delimited)
        FZ_CHECK("out-close-delimited", rw->conn == H1_CONN_CLOSE && (!full || again.conn_close),
                 "a body ended by close is forwarded without Connection: close");
    const char *want = rw->conn == H1_CONN_CLOSE        ? "close"
                       : rw->conn == H1_CONN_KEEP_ALIVE ? "keep-alive"
                       : rw->conn == H1_CONN_UPGRADE    ? "Upgrade"
                                                        : NULL;
    FZ_CHECK("out-connection", out_connection_is(out, olen, want),
             "the forwarded Connection header is not exactly %s", want ? want : "(none)");
    if (rw->conn != H1_CONN_UPGRADE)
        FZ_CHECK("out-hop-by-hop",
                 !fz_out_has(out, olen, "upgrade") && !fz_out_has(out, olen, "keep-alive") &&
                     !fz_out_has(out, olen, "proxy-connection"),
                 "hop-by-hop header forwarded");
    check_connection_named(out, olen);
}

static void check_body(const char *p, size_t len, int dechunk)
{
    static const size_t piece[] = {1, 5, 300, 2, 4000};
    struct body b;
    body_init(&b,
              head.chunked  ? BODY_CHUNKED
              : head.has_cl ? BODY_LENGTH
                            : BODY_CLOSE,
              head.content_length);
    char *buf = malloc(len + 1);
    size_t fed = 0, fwd = 0, dec_end = 0;
    int done = 0, failed = 0;
    for (int k = 0; fed < len && !done; k++) {
        size_t n = piece[k % 5];
        if (n > len - fed) n = len - fed;
        int d = 0;
        /* bytes arrive after what was decoded so far (h1_backend.c response_body) */
        memcpy(buf + dec_end, p + fed, n);
        char *out = buf + dec_end;
        long r = body_parse(&b, buf + dec_end, n, &d, dechunk ? &out : NULL);
        if (r < 0) {
            failed = 1;
            break;
        }
        if (dechunk) {
            FZ_CHECK("dechunk-bounds", out >= buf + dec_end && out <= buf + dec_end + r,
                     "decoded %td of %ld", out - (buf + dec_end), r);
            dec_end += (size_t)(out - (buf + dec_end));
        } else {
            dec_end += (size_t)r;
        }
        FZ_CHECK("body-bounds", (size_t)r <= n && (d || (size_t)r == n),
                 "took %ld of %zu (done=%d)", r, n, d);
        fwd += (size_t)r;
        fed += n;
        done = d;
    }
    free(buf);
    if (head.chunked) {
        struct ref_chunked rc;
        ref_chunked_parse((const unsigned char *)p, len, &rc);
        if (rc.result == REF_ERROR)
            FZ_CHECK(!strcmp(rc.name, "chunked-diff") ? "res-chunked-diff" : rc.name, fwd <= rc.pos,
                     "usher forwards %zu bytes of a chunked response invalid at byte %zu (%s)", fwd,
                     rc.pos, rc.why);
        if (done)
            FZ_CHECK(rc.result == REF_ERROR && strcmp(rc.name, "chunked-diff") ? rc.name
                                                                               : "res-chunked-diff",
                     rc.result == REF_DONE && rc.pos == fwd,
                     "usher ends the chunked response at %zu; the strict reader: %d at %zu", fwd,
                     rc.result, rc.pos);
        else if (!failed)
            FZ_CHECK("res-chunked-diff", rc.result != REF_DONE,
                     "the strict reader ends the response at %zu, usher reads on", rc.pos);
        if (dechunk && !failed && rc.result != REF_ERROR)
            FZ_CHECK("dechunk-data", dec_end <= rc.decoded, "decoded more than the data");
    } else if (head.has_cl) {
        size_t want = head.content_length < len ? (size_t)head.content_length : len;
        FZ_CHECK("cl-body", !failed && fwd == want && done == (head.content_length <= len),
                 "Content-Length %llu: took %zu of %zu, done=%d",
                 (unsigned long long)head.content_length, fwd, len, done);
    } else {
        FZ_CHECK("close-body", !failed && !done && fwd == len, "a body ended by close ended early");
    }
}

/* Header lines of that name in out. */
static int out_count(const char *out, size_t olen, const char *name)
{
    int k = 0;
    size_t n = strlen(name);
    for (const char *l = memchr(out, '\n', olen); l && l + 1 < out + olen;
         l = memchr(l + 1, '\n', (size_t)(out + olen - l - 1)))
        if ((size_t)(out + olen - l - 1) > n && l[1 + n] == ':' && !strncasecmp(l + 1, name, n))
            k++;
    return k;
}

#define HSTS_LINE "Strict-Transport-Security: max-age=31536000; includeSubDomains"
#define COOKIE_LINE "Set-Cookie: usher_backend=0123456789abcdef; Path=/; HttpOnly"

static void check_extras(const char *out, size_t olen)
{
    int theirs = 0;
    for (uint32_t i = 0; i < head.nheaders; i++)
        if (!head.h[i].drop &&
            fz_ieq(head.h[i].name.p, head.h[i].name.len, "strict-transport-security"))
            theirs++;
    int got = out_count(out, olen, "strict-transport-security");
    FZ_CHECK("out-hsts", got == (theirs ? theirs : 1),
             "%d Strict-Transport-Security lines out, the backend forwarded %d", got, theirs);
    FZ_CHECK("out-hsts", theirs || memmem(out, olen, HSTS_LINE "\r\n", sizeof(HSTS_LINE) + 1),
             "usher's Strict-Transport-Security is not there");
    FZ_CHECK("out-extra", memmem(out, olen, COOKIE_LINE "\r\n", sizeof(COOKIE_LINE) + 1),
             "the balancer's line is not there");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int is_head = data[0] & 1, upgrade_req = (data[0] >> 1) & 1, http10 = (data[0] >> 2) & 1;
    int client_ka = (data[0] >> 3) & 1, tls = (data[0] >> 4) & 1;
    const char *in = (const char *)data + 1;
    size_t pos = 0, total = size - 1;
    llhttp_t parser;
    for (int heads = 0; heads < 8 && pos < total; heads++) {
        const char *p = in + pos;
        size_t len = total - pos;
        if (len > OUT_BUF) len = OUT_BUF;
        size_t scanned = 0;
        size_t head_len = h1_find_head_end(p, len, &scanned);
        size_t inc = 0, s2 = 0;
        for (size_t k = 1; k <= len && !inc; k++) inc = h1_find_head_end(p, k, &s2);
        FZ_CHECK("find-head-end", inc == head_len, "one-shot %zu, incremental %zu", head_len, inc);
        if (!head_len) return 0;
        head.max_headers = H1_MAX_HEADERS;
        head.skip_body = (uint32_t)is_head;
        const char *why = NULL;
        h1_parser_init(&parser, 0); /* a fresh parser for every head */
        int err = h1_parse_head(&parser, &head, p, head_len, &why);
        /* the plan the backend side makes (src/http/policy.c) */
        struct h1_response_plan plan;
        h1_plan_response(&head, p, head_len, err, why, is_head, upgrade_req, &plan);
        if (plan.kind == H1_RES_INVALID) return 0; /* 502 */

        size_t lend = fz_llhttp_head_end(p, head_len, 0);
        FZ_CHECK("head-end-agree", lend == head_len,
                 "usher takes %zu bytes as the head, llhttp ends it at %zu", head_len, lend);
        struct ref_head r;
        ref_response_head((const unsigned char *)p, head_len, 0, &r);
        if (r.bad && strcmp(r.bad, "obs-fold") && strcmp(r.bad, "cl-te")) {
            fz_dump("accepted response head", p, head_len);
            FZ_CHECK(nm("rin-", r.bad), 0,
                     "usher accepts a response head a strict reader rejects: %s", r.why);
        }

        if (plan.kind != H1_RES_FINAL) {
            struct h1_response_rewrite rw = {
                .dechunk = 0, .conn = head.status == 101 ? H1_CONN_UPGRADE : H1_CONN_NONE};
            char *out = NULL;
            long n = write_head(&rw, &out);
            if (n < 0) return 0;
            check_out(out, (size_t)n, &rw, is_head, 0);
            free(out);
            if (head.status == 101) return 0; /* a tunnel from here */
            pos += head_len;
            continue;
        }
        /* RFC 9110 6.4.1: no content after HEAD, 204 or 304: the plan set
         * head.complete; the client side's plan as h1_client.c makes it */
        FZ_CHECK("plan-no-content",
                 !(is_head || head.status == 204 || head.status == 304) || head.complete,
                 "a response to HEAD, or a 204/304, planned with a body");
        int close_delimited = plan.body == BODY_CLOSE;
        FZ_CHECK("plan-close-delimited",
                 close_delimited == (!head.complete && !head.chunked && !head.has_cl),
                 "the plan's framing disagrees with the head");
        struct h1_client_plan cp;
        h1_plan_client(&head, &plan, http10, client_ka, upgrade_req, &cp);
        int dechunk = cp.dechunk;
        struct h1_response_rewrite rw = {.dechunk = dechunk, .conn = cp.conn};
        if (tls) {
            /* as h1_response.c does: the balancer's line, then HSTS if absent */
            rw.extra[rw.nextra++] = (struct h1_extra){{COOKIE_LINE, sizeof(COOKIE_LINE) - 1}, 0};
            rw.extra[rw.nextra++] = (struct h1_extra){{HSTS_LINE, sizeof(HSTS_LINE) - 1}, 1};
        }
        char *out = NULL;
        long n = write_head(&rw, &out);
        if (n < 0) return 0;
        check_out(out, (size_t)n, &rw, is_head, close_delimited);
        if (tls) check_extras(out, (size_t)n);
        free(out);
        pos += head_len;
        if (!head.complete) check_body(in + pos, total - pos, dechunk);
        return 0;
    }
    return 0;
}
