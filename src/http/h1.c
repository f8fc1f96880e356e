/* h1: HTTP/1.x heads. See h1.h. */
#include "http/h1.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/tchar.h"

/* ---- parsing --------------------------------------------------------------- */

static int span_add(struct span *s, const char *at, size_t len)
{
    if (!s->p) {
        s->p = at;
        s->len = (uint32_t)len;
    } else {
        s->len += (uint32_t)len; /* spans are contiguous: a head is parsed in one buffer */
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct h1_head *h = p->data;
    return span_add(&h->target, at, len);
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct h1_head *h = p->data;
    return span_add(&h->reason, at, len);
}

/* llhttp delivers a field name, then its value; a field name that starts a
 * new header arrives after the previous value, so "value set" marks the turn. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct h1_head *h = p->data;
    if (h->too_many) return 0;
    if (h->nheaders > 0 && h->h[h->nheaders - 1].value.p == NULL &&
        h->h[h->nheaders - 1].name.p + h->h[h->nheaders - 1].name.len == at)
        return span_add(&h->h[h->nheaders - 1].name, at, len);
    if (h->nheaders >= h->max_headers) {
        h->too_many = 1;
        return 0;
    }
    struct h1_header *hd = &h->h[h->nheaders++];
    memset(hd, 0, sizeof(*hd));
    return span_add(&hd->name, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct h1_head *h = p->data;
    if (h->too_many || h->nheaders == 0) return 0;
    struct h1_header *hd = &h->h[h->nheaders - 1];
    if (!hd->value.p) hd->value.p = at; /* empty values still get a non-NULL span */
    if (hd->value.p + hd->value.len != at) {
        /* llhttp continues a value after an obs-fold: the gap holds the fold */
        h->bad_value = 1;
        hd->value.len = (uint32_t)(at - hd->value.p);
    }
    hd->value.len += (uint32_t)len;
    /* RFC 9112 5.2: obs-fold is rejected (we cannot forward it); CR/LF/NUL inside
     * a value would let a client smuggle a header line into what we forward. */
    for (size_t i = 0; i < len; i++)
        if (at[i] == '\r' || at[i] == '\n' || at[i] == 0) h->bad_value = 1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct h1_head *h = p->data;
    h->chunked = (p->flags & F_CHUNKED) != 0;
    h->has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    h->content_length = h->has_cl ? p->content_length : 0;
    return h->skip_body ? 1 : 0;
}

static int on_message_complete_head(llhttp_t *p)
{
    struct h1_head *h = p->data;
    h->complete = 1;
    return HPE_PAUSED; /* stop at the end of this message: the next one waits its turn */
}

static int on_message_complete_after(llhttp_t *p)
{
    return HPE_PAUSED;
}

static llhttp_settings_t head_settings, after_settings;

static void settings_once(void)
{
    static int done;
    if (done) return;
    llhttp_settings_init(&head_settings);
    head_settings.on_url = on_url;
    head_settings.on_status = on_status;
    head_settings.on_header_field = on_header_field;
    head_settings.on_header_value = on_header_value;
    head_settings.on_headers_complete = on_headers_complete;
    head_settings.on_message_complete = on_message_complete_head;
    llhttp_settings_init(&after_settings);
    after_settings.on_message_complete = on_message_complete_after;
    done = 1;
}

static pthread_once_t settings_once_ctl = PTHREAD_ONCE_INIT;

void h1_parser_init(llhttp_t *p, int is_request)
{
    pthread_once(&settings_once_ctl, settings_once);
    llhttp_init(p, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &head_settings);
}

size_t h1_find_head_end(const char *p, size_t len, size_t *scanned)
{
    size_t i = *scanned;
    while (i < len) {
        const char *lf = memchr(p + i, '\n', len - i);
        if (!lf) {
            *scanned = len;
            return 0;
        }
        size_t at = (size_t)(lf - p);
        /* the empty line: LF followed by CRLF or by LF */
        if (at + 1 < len && p[at + 1] == '\n') return at + 2;
        if (at + 2 < len && p[at + 1] == '\r' && p[at + 2] == '\n') return at + 3;
        if (at + 2 >= len) {
            *scanned = at; /* not enough bytes yet to tell: look again from here */
            return 0;
        }
        i = at + 1;
    }
    *scanned = len;
    return 0;
}

static int span_ieq(struct span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

static int span_ieq_span(struct span a, struct span b)
{
    return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

/* Headers a client may not remove by naming them in Connection: the proxy's
 * own and the framing ones (RFC 9110 7.6.1 lets the proxy decide). */
static int protected_header(struct span name)
{
    return span_ieq(name, "host") || span_ieq(name, "content-length") ||
           span_ieq(name, "transfer-encoding") || span_ieq(name, "x-forwarded-for") ||
           span_ieq(name, "x-forwarded-proto") || span_ieq(name, "x-forwarded-host");
}

static void trim(struct span *s)
{
    while (s->len && (s->p[0] == ' ' || s->p[0] == '\t')) s->p++, s->len--;
    while (s->len && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\t')) s->len--;
}

static int te_ok(const struct h1_head *h);

static void derive(struct h1_head *h)
{
    h->host_i = h->upgrade_i = -1;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct h1_header *hd = &h->h[i];
        trim(&hd->value);
        struct span n = hd->name;
        /* RFC 9112 5.1: no whitespace between name and colon; names are tokens */
        if (n.len == 0) h->bad_name = 1;
        for (uint32_t k = 0; k < n.len; k++)
            if (!http_is_tchar((unsigned char)n.p[k])) h->bad_name = 1;
        if (span_ieq(n, "host")) {
            h->nhost++;
            h->host_i = (int32_t)i;
        } else if (span_ieq(n, "connection")) {
            hd->drop = 1;
            const char *v = hd->value.p, *end = v + hd->value.len;
            while (v < end) {
                const char *c = memchr(v, ',', (size_t)(end - v));
                struct span tok = {v, (uint32_t)((c ? c : end) - v)};
                trim(&tok);
                if (span_ieq(tok, "close"))
                    h->conn_close = 1;
                else if (span_ieq(tok, "keep-alive"))
                    h->conn_keep_alive = 1;
                else if (span_ieq(tok, "upgrade"))
                    h->conn_upgrade = 1;
                else if (tok.len && !protected_header(tok))
                    for (uint32_t j = 0; j < h->nheaders; j++)
                        if (span_ieq_span(h->h[j].name, tok)) h->h[j].drop = 1;
                v = c ? c + 1 : end;
            }
        } else if (span_ieq(n, "keep-alive") || span_ieq(n, "proxy-connection") ||
                   span_ieq(n, "te")) {
            hd->drop = 1; /* hop-by-hop (RFC 9110 7.6.1) */
        } else if (span_ieq(n, "upgrade")) {
            hd->drop = 1; /* re-added by the writer only when upgrading */
            h->upgrade_i = (int32_t)i;
        } else if (span_ieq(n, "transfer-encoding")) {
            h->has_te = 1;
        } else if (span_ieq(n, "expect")) {
            if (span_ieq(hd->value, "100-continue")) h->expect_continue = 1;
        }
    }
}

static int run(llhttp_t *parser, const char *p, size_t len)
{
    int err = llhttp_execute(parser, p, len);
    if (err == HPE_PAUSED) {
        /* paused by on_message_complete at the end of a body-less message */
        llhttp_resume(parser);
        return 0;
    }
    return err;
}

int h1_parse_head(llhttp_t *parser, struct h1_head *h, const char *p, size_t len,
                  const char **reason)
{
    uint32_t max = h->max_headers ? h->max_headers : H1_MAX_HEADERS;
    int skip = h->skip_body;
    memset(h, 0, offsetof(struct h1_head, h));
    h->max_headers = max > H1_MAX_HEADERS ? H1_MAX_HEADERS : max;
    h->skip_body = skip;
    parser->data = h;
    parser->settings = &head_settings;
    llhttp_t saved = *parser;
    int err = run(parser, p, len);
    if (err == HPE_INVALID_METHOD && parser->type == HTTP_REQUEST) {
        /* RFC 9110 9.1: a method is any token, and a proxy forwards methods it
         * does not know. llhttp only knows registered ones, so let it parse
         * the rest of the head behind a stand-in method with no special
         * framing rules, and keep the real one from the bytes. */
        size_t m = 0;
        while (m < len && http_is_tchar((unsigned char)p[m])) m++;
        if (m > 0 && m < len && p[m] == ' ') {
            *parser = saved;
            memset(h, 0, offsetof(struct h1_head, h));
            h->max_headers = max > H1_MAX_HEADERS ? H1_MAX_HEADERS : max;
            err = llhttp_execute(parser, "PUT", 3);
            if (err == HPE_OK) err = run(parser, p + m, len - m);
        }
    }
    if (err != HPE_OK) {
        *reason = llhttp_get_error_reason(parser);
        parser->data = NULL;
        return err;
    }
    if (parser->type == HTTP_REQUEST) {
        size_t m = 0;
        while (m < len && p[m] != ' ') m++;
        h->method.p = p;
        h->method.len = (uint32_t)m;
        h->method_id = (uint8_t)llhttp_get_method(parser);
    }
    h->major = llhttp_get_http_major(parser);
    h->minor = llhttp_get_http_minor(parser);
    h->status = (uint16_t)llhttp_get_status_code(parser);
    parser->data = NULL;
    parser->settings = &after_settings; /* the parser is done with: nothing points into h */
    derive(h);
    if (h->has_te) {
        /* Framing is decided once, from the header values as usher reads and
         * forwards them, not from what llhttp recognised ("chunked<TAB>" is
         * chunked for a recipient that trims OWS, so it is chunked here too). */
        int chunked = te_ok(h);
        if (chunked && !h->chunked && !h->skip_body) h->complete = 0;
        h->chunked = (uint32_t)chunked;
        /* RFC 9112 6.3(3): with chunked, Content-Length is ignored and not forwarded */
        if (chunked && h->has_cl)
            for (uint32_t i = 0; i < h->nheaders; i++)
                if (span_ieq(h->h[i].name, "content-length")) h->h[i].drop = 1;
    }
    return 0;
}

/* RFC 3986 3.2.2-3: authority = host [ ":" port ], host an IP literal in
 * brackets or a reg-name, port digits. A list (","), userinfo ("@"), a path,
 * whitespace or a second colon are not an authority. */
static int valid_authority(struct span a)
{
    uint32_t i = 0;
    if (a.len && a.p[0] == '[') {
        for (i = 1; i < a.len && a.p[i] != ']'; i++)
            if (!isxdigit((unsigned char)a.p[i]) && a.p[i] != ':' && a.p[i] != '.') return 0;
        if (i == a.len) return 0; /* no closing bracket */
        i++;
    } else {
        for (; i < a.len && a.p[i] != ':'; i++) {
            unsigned char c = (unsigned char)a.p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-._~%!$&'()*+;=", c)))
                return 0;
        }
    }
    if (i == a.len) return 1;
    if (a.p[i] != ':' || i + 1 == a.len) return 0;
    for (i++; i < a.len; i++)
        if (!isdigit((unsigned char)a.p[i])) return 0;
    return 1;
}

/* RFC 9112 2.2: a bare CR is not a line end; never guess what it meant. */
static int has_bare_cr(const char *p, size_t len)
{
    for (const char *c = memchr(p, '\r', len); c;
         c = memchr(c + 1, '\r', len - (size_t)(c + 1 - p)))
        if (c + 1 >= p + len || c[1] != '\n') return 1;
    return 0;
}

/* usher forwards only "Transfer-Encoding: chunked", once, in one header:
 * any other coding or list is ambiguous for someone down the line. */
static int te_ok(const struct h1_head *h)
{
    uint32_t n = 0;
    int ok = 1;
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (span_ieq(h->h[i].name, "transfer-encoding")) {
            n++;
            ok &= span_ieq(h->h[i].value, "chunked");
        }
    return n == 1 && ok;
}

int h1_check_response(const struct h1_head *h, const char *p, size_t len, const char **why)
{
    if (len < 13 || memcmp(p, "HTTP/", 5)) return *why = "no status line at the start", 502;
    if (has_bare_cr(p, len)) return *why = "bare CR in the response head", 502;
    if (h->major != 1) return *why = "not an HTTP/1.x response", 502;
    /* RFC 9112 4: status-code = 3DIGIT, then SP */
    if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]) || (p[12] != ' ' && p[12] != '\r') || h->status < 100 ||
        h->status > 599)
        return *why = "invalid status code", 502;
    for (uint32_t i = 0; i < h->reason.len; i++) {
        unsigned char c = (unsigned char)h->reason.p[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f)) return *why = "control byte in the reason", 502;
    }
    if (h->has_te && !te_ok(h)) return *why = "unsupported Transfer-Encoding (only chunked)", 502;
    return 0;
}

int h1_check_request(const struct h1_head *h, const char *p, size_t len, const char **why)
{
    if (has_bare_cr(p, len)) return *why = "bare CR in the request head", 400;
    if (h->major == 0) return *why = "HTTP/0.9 is not supported", 400;
    if (h->major != 1) return *why = "HTTP version not supported", 505;
    if (h->nhost > 1) return *why = "more than one Host header", 400;
    if (h->minor >= 1 && h->nhost != 1) return *why = "HTTP/1.1 needs a Host header", 400;
    if (h->host_i >= 0 && !valid_authority(h->h[h->host_i].value))
        return *why = "invalid Host header", 400;
    if (h->has_te) {
        /* RFC 9112 6.1: TE in 1.0 is a smuggling vector; usher forwards only
         * chunked, once, in one header (anything else is ambiguous) */
        if (h->minor == 0) return *why = "Transfer-Encoding in an HTTP/1.0 request", 400;
        if (h->has_cl) return *why = "both Content-Length and Transfer-Encoding", 400;
        if (!te_ok(h)) return *why = "unsupported Transfer-Encoding (only chunked)", 400;
    }
    /* RFC 9112 3.2: origin-form, absolute-form, or "*" for OPTIONS */
    struct span t = h->target;
    if (t.len == 0) return *why = "empty request target", 400;
    for (uint32_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') return *why = "invalid request target", 400;
    }
    if (t.len == 1 && t.p[0] == '*') {
        if (!(h->method.len == 7 && !memcmp(h->method.p, "OPTIONS", 7)))
            return *why = "'*' is a target for OPTIONS only", 400;
    } else if (t.p[0] != '/') {
        size_t skip = t.len > 7 && !strncasecmp(t.p, "http://", 7)    ? 7
                      : t.len > 8 && !strncasecmp(t.p, "https://", 8) ? 8
                                                                      : 0;
        if (!skip) return *why = "invalid request target", 400;
        struct span auth = {t.p + skip, 0};
        while (skip + auth.len < t.len && !strchr("/?", auth.p[auth.len])) auth.len++;
        /* RFC 9112 3.2.2: the authority of an absolute-form target wins over
         * Host; usher forwards Host, so the two must agree */
        if (h->host_i < 0 || !span_ieq_span(auth, h->h[h->host_i].value))
            return *why = "absolute-form target whose authority is not the Host", 400;
    }
    return 0;
}

int h1_method_idempotent(const struct h1_head *h)
{
    /* RFC 9110 9.2.2 */
    static const char *const m[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (h->method.len == strlen(m[i]) && !memcmp(h->method.p, m[i], h->method.len)) return 1;
    return 0;
}

/* ---- writing ---------------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0) return;
    if (o->len + n > o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_span(struct out *o, struct span s)
{
    put(o, s.p, s.len);
}

static void put_header(struct out *o, const struct h1_header *hd)
{
    put_span(o, hd->name);
    put(o, ": ", 2);
    put_span(o, hd->value);
    put(o, "\r\n", 2);
}

static long finish(struct out *o)
{
    return o->overflow ? -ENOSPC : (long)o->len;
}

/* Whether name is one of the headers usher sets itself (the client's are
 * never forwarded). Out of line, as put_set_headers: the plain path does
 * not need them, and h1_write_request stays small enough for the compiler
 * to inline its constant copies. */
static __attribute__((noinline)) int set_by_usher(const struct h1_request_rewrite *rw,
                                                  struct span name)
{
    for (uint32_t i = 0; i < rw->nset; i++)
        if (rw->set[i].name.len && span_ieq_span(name, rw->set[i].name)) return 1;
    return 0;
}

static __attribute__((noinline)) void put_set_headers(struct out *o,
                                                      const struct h1_request_rewrite *rw)
{
    for (uint32_t i = 0; i < rw->nset; i++) {
        const struct h1_set_header *sh = &rw->set[i];
        if (!sh->value.p) continue;
        put_span(o, sh->name);
        put(o, ": ", 2);
        put_span(o, sh->value);
        put(o, "\r\n", 2);
    }
}

long h1_write_request(const struct h1_head *h, const struct h1_request_rewrite *rw, char *out,
                      size_t cap)
{
    struct out o = {out, 0, cap, 0};
    put_span(&o, h->method);
    put(&o, " ", 1);
    put_span(&o, h->target);
    puts_(&o, " HTTP/1.1\r\n"); /* RFC 9110 6.2: we send our own version */
    int xff_first = 1;
    const uint32_t nset = rw->nset;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->h[i];
        if (hd->drop) continue;
        if (span_ieq(hd->name, "x-forwarded-for") || span_ieq(hd->name, "x-forwarded-proto") ||
            span_ieq(hd->name, "x-forwarded-host"))
            continue;
        if (nset && set_by_usher(rw, hd->name)) continue;
        put_header(&o, hd);
    }
    if (h->host_i < 0 && rw->default_host) {
        puts_(&o, "Host: ");
        puts_(&o, rw->default_host);
        puts_(&o, "\r\n");
    }
    if (rw->upgrade && h->upgrade_i >= 0) {
        put_header(&o, &h->h[h->upgrade_i]);
        puts_(&o, "Connection: Upgrade\r\n");
    }
    /* X-Forwarded-For: what earlier proxies said, then the address we saw. */
    puts_(&o, "X-Forwarded-For: ");
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->h[i];
        if (!span_ieq(hd->name, "x-forwarded-for") || hd->value.len == 0) continue;
        if (!xff_first) put(&o, ", ", 2);
        put_span(&o, hd->value);
        xff_first = 0;
    }
    if (!xff_first) put(&o, ", ", 2);
    puts_(&o, rw->client_ip);
    /* two constant strings, so that each copy is inlined */
    if (rw->https)
        puts_(&o, "\r\nX-Forwarded-Proto: https\r\n");
    else
        puts_(&o, "\r\nX-Forwarded-Proto: http\r\n");
    if (h->host_i >= 0) {
        puts_(&o, "X-Forwarded-Host: ");
        put_span(&o, h->h[h->host_i].value);
        puts_(&o, "\r\n");
    }
    if (nset) put_set_headers(&o, rw);
    put(&o, "\r\n", 2);
    return finish(&o);
}

/* Whether h forwards a header of the name that header line `line` has. */
static int has_header_of_line(const struct h1_head *h, struct span line)
{
    const char *colon = memchr(line.p, ':', line.len);
    struct span name = {line.p, colon ? (uint32_t)(colon - line.p) : line.len};
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (!h->h[i].drop && span_ieq_span(h->h[i].name, name)) return 1;
    return 0;
}

long h1_write_response(const struct h1_head *h, const struct h1_response_rewrite *rw, char *out,
                       size_t cap)
{
    struct out o = {out, 0, cap, 0};
    /* the status is three digits (h1_check_response); snprintf cost more
     * than the rest of this function */
    unsigned st = h->status;
    char status[13];
    memcpy(status, "HTTP/1.1 ", 9);
    status[9] = (char)('0' + st / 100 % 10);
    status[10] = (char)('0' + st / 10 % 10);
    status[11] = (char)('0' + st % 10);
    status[12] = ' ';
    put(&o, status, sizeof(status));
    put_span(&o, h->reason);
    put(&o, "\r\n", 2);
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->h[i];
        if (hd->drop) continue;
        if (rw->dechunk && span_ieq(hd->name, "transfer-encoding")) continue;
        put_header(&o, hd);
    }
    for (uint32_t i = 0; i < rw->nextra; i++) {
        const struct h1_extra *e = &rw->extra[i];
        if (!e->line.len || (e->if_absent && has_header_of_line(h, e->line))) continue;
        put_span(&o, e->line);
        put(&o, "\r\n", 2);
    }
    switch (rw->conn) {
    case H1_CONN_CLOSE: puts_(&o, "Connection: close\r\n"); break;
    case H1_CONN_KEEP_ALIVE: puts_(&o, "Connection: keep-alive\r\n"); break;
    case H1_CONN_UPGRADE:
        if (h->upgrade_i >= 0) put_header(&o, &h->h[h->upgrade_i]);
        puts_(&o, "Connection: Upgrade\r\n");
        break;
    case H1_CONN_NONE: break;
    }
    put(&o, "\r\n", 2);
    return finish(&o);
}

const char *h1_reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

long h1_write_error(int status, const char *msg, int close, const struct span *extra, char *out,
                    size_t cap)
{
    char body[256];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
    int elen = extra && extra->len ? (int)extra->len : 0;
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %d\r\n"
                     "Cache-Control: no-store\r\n"
                     "%.*s%s"
                     "%s"
                     "\r\n%s",
                     status, h1_reason(status), blen, elen, elen ? extra->p : "",
                     elen ? "\r\n" : "", close ? "Connection: close\r\n" : "", body);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

void h1_safe_value(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e) p[i] = '?';
    }
}

size_t h1_hsts_line(uint32_t max_age, int include_subdomains, char *out, size_t cap)
{
    int n = snprintf(out, cap, "Strict-Transport-Security: max-age=%u%s", max_age,
                     include_subdomains ? "; includeSubDomains" : "");
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* The host of authority a: without ":port"; "[v6]:port" keeps its brackets. */
static struct span host_of(struct span a)
{
    for (uint32_t k = a.len; k > 0; k--) {
        if (a.p[k - 1] == ']') break;
        if (a.p[k - 1] == ':') {
            a.len = k - 1;
            break;
        }
    }
    return a;
}

long h1_https_location(const struct h1_head *h, uint32_t port, char *out, size_t cap)
{
    if (h->host_i < 0) return -EINVAL; /* HTTP/1.0 without Host: nothing to name */
    struct span auth = h->h[h->host_i].value, path = h->target;
    if (path.len == 1 && path.p[0] == '*') {
        path.len = 0; /* OPTIONS *: the server as a whole, so its root */
    } else if (path.len && path.p[0] != '/') {
        /* absolute-form (RFC 9112 3.2.2): h1_check_request made sure it is
         * http:// or https:// and that its authority is the Host */
        uint32_t skip = path.len > 7 && !strncasecmp(path.p, "http://", 7)    ? 7
                        : path.len > 8 && !strncasecmp(path.p, "https://", 8) ? 8
                                                                              : 0;
        if (!skip) return -EINVAL;
        auth = (struct span){path.p + skip, 0};
        while (skip + auth.len < path.len && auth.p[auth.len] != '/' && auth.p[auth.len] != '?')
            auth.len++;
        path = (struct span){auth.p + auth.len, path.len - skip - auth.len};
    }
    struct span host = host_of(auth);
    if (host.len == 0) return -EINVAL;
    struct out o = {out, 0, cap, 0};
    puts_(&o, "https://");
    put_span(&o, host);
    if (port != 443) {
        char p[16];
        int n = snprintf(p, sizeof(p), ":%u", port);
        put(&o, p, (size_t)n);
    }
    if (path.len == 0 || path.p[0] != '/') put(&o, "/", 1); /* "http://a?q" is "/?q" */
    put_span(&o, path);
    return finish(&o);
}

long h1_write_redirect(const struct h1_head *h, uint32_t port, enum h1_conn_header conn, char *out,
                       size_t cap)
{
    static const char status[] = "HTTP/1.1 308 Permanent Redirect\r\nLocation: ";
    static const char rest[] = "\r\nContent-Length: 0\r\n";
    size_t at = sizeof(status) - 1;
    if (cap < at) return -ENOSPC;
    long n = h1_https_location(h, port, out + at, cap - at);
    if (n < 0) return n;
    memcpy(out, status, at);
    struct out o = {out, at + (size_t)n, cap, 0};
    put(&o, rest, sizeof(rest) - 1);
    if (conn == H1_CONN_CLOSE) puts_(&o, "Connection: close\r\n");
    if (conn == H1_CONN_KEEP_ALIVE) puts_(&o, "Connection: keep-alive\r\n");
    put(&o, "\r\n", 2);
    return finish(&o);
}

int h1_field(const void *head, uint32_t i, struct span *name, struct span *value)
{
    const struct h1_head *h = head;
    if (i >= h->nheaders) return 0;
    *name = h->h[i].name;
    *value = h->h[i].value;
    return 1;
}
