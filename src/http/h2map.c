/* h2map: HTTP/2 fields to and from HTTP/1 heads. See h2map.h. */
#include "http/h2map.h"

#include <string.h>
#include <strings.h>

/* A stored field: 2 bytes of name length, 2 of value length, the name, the value. */
#define REC_HDR 4

static int fail(struct h2map *m, int err, const char *why)
{
    if (!m->err) {
        m->err = err;
        m->why = why;
    }
    return m->err;
}

static int lit(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n == k && !memcmp(p, s, k);
}

void h2map_init(struct h2map *m, char *area, uint32_t cap, uint32_t max_fields, int trailers)
{
    memset(m, 0, sizeof(*m));
    m->area = area;
    m->cap = cap;
    /* room for what h2map_finish and the caller add: Host, TE or Upgrade, a key */
    m->max_fields = max_fields > H1_MAX_HEADERS - 3 ? H1_MAX_HEADERS - 3 : max_fields;
    m->trailers = (uint8_t)trailers;
}

/* RFC 9110 5.6.2 token characters, lower case only (RFC 9113 8.2.1). */
static int name_ok(const char *p, size_t n)
{
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
        if (c && strchr("!#$%&'*+-.^_`|~", c)) continue;
        return 0;
    }
    return 1;
}

/* RFC 9113 8.2.1: no NUL, CR or LF; no leading or trailing whitespace. */
static int value_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || p[i] == '\r' || p[i] == '\n') return 0;
    if (n && (p[0] == ' ' || p[0] == '\t' || p[n - 1] == ' ' || p[n - 1] == '\t')) return 0;
    return 1;
}

static const char *store(struct h2map *m, const char *p, size_t n)
{
    char *at = m->area + m->used;
    memcpy(at, p, n);
    m->used += (uint32_t)n;
    return at;
}

static int pseudo(struct h2map *m, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (m->trailers) return fail(m, H2MAP_MALFORMED, "pseudo-header in trailers");
    if (m->regular) return fail(m, H2MAP_MALFORMED, "pseudo-header after a regular field");
    struct span *slot = lit(name, nlen, ":method")      ? &m->method
                        : lit(name, nlen, ":scheme")    ? &m->scheme
                        : lit(name, nlen, ":authority") ? &m->authority
                        : lit(name, nlen, ":path")      ? &m->path
                        : lit(name, nlen, ":protocol")  ? &m->protocol
                                                        : NULL;
    if (!slot) return fail(m, H2MAP_MALFORMED, "unknown pseudo-header");
    if (slot->p) return fail(m, H2MAP_MALFORMED, "duplicate pseudo-header");
    if (memchr(value, 0, vlen) || memchr(value, '\r', vlen) || memchr(value, '\n', vlen))
        return fail(m, H2MAP_MALFORMED, "invalid pseudo-header value");
    if (m->used + vlen + 1 > m->cap) return fail(m, H2MAP_TOO_LARGE, "fields too large");
    /* +1: an empty value still gets a non-NULL span */
    slot->p = store(m, value, vlen);
    slot->len = (uint32_t)vlen;
    m->area[m->used++] = 0;
    return 0;
}

int h2map_field(struct h2map *m, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (m->err) return m->err;
    if (nlen && name[0] == ':') return pseudo(m, name, nlen, value, vlen);
    m->regular = 1;
    if (!name_ok(name, nlen)) return fail(m, H2MAP_MALFORMED, "invalid field name");
    if (!value_ok(value, vlen)) return fail(m, H2MAP_MALFORMED, "invalid field value");
    /* RFC 9113 8.2.2: connection-specific fields are malformed; TE only as "trailers" */
    if (lit(name, nlen, "connection") || lit(name, nlen, "keep-alive") ||
        lit(name, nlen, "proxy-connection") || lit(name, nlen, "transfer-encoding") ||
        lit(name, nlen, "upgrade"))
        return fail(m, H2MAP_MALFORMED, "connection-specific field");
    if (lit(name, nlen, "te") && !lit(value, vlen, "trailers"))
        return fail(m, H2MAP_MALFORMED, "TE other than trailers");
    if (m->nfields >= m->max_fields) return fail(m, H2MAP_TOO_LARGE, "too many fields");
    if (nlen > 0xffff || vlen > 0xffff || m->used + REC_HDR + nlen + vlen > m->cap)
        return fail(m, H2MAP_TOO_LARGE, "fields too large");
    uint16_t l[2] = {(uint16_t)nlen, (uint16_t)vlen};
    store(m, (const char *)l, REC_HDR);
    store(m, name, nlen);
    store(m, value, vlen);
    m->nfields++;
    if (lit(name, nlen, "cookie")) {
        m->ncookies++;
        m->cookie_bytes += (uint32_t)vlen;
    }
    return 0;
}

/* The stored field after *off (which advances): 1, or 0 at the end. */
static int next_rec(const struct h2map *m, uint32_t end, uint32_t *off, struct span *name,
                    struct span *value)
{
    while (*off < end) {
        uint32_t at = *off;
        /* pseudo-header values (NUL-ended, NUL-free) sit between the records */
        if (m->method.p == m->area + at || m->scheme.p == m->area + at ||
            m->authority.p == m->area + at || m->path.p == m->area + at ||
            m->protocol.p == m->area + at) {
            *off += (uint32_t)strlen(m->area + at) + 1;
            continue;
        }
        uint16_t l[2];
        memcpy(l, m->area + at, REC_HDR);
        *name = (struct span){m->area + at + REC_HDR, l[0]};
        *value = (struct span){m->area + at + REC_HDR + l[0], l[1]};
        *off += REC_HDR + l[0] + l[1];
        return 1;
    }
    return 0;
}

int h2map_get(const struct h2map *m, uint32_t i, struct span *name, struct span *value)
{
    uint32_t off = 0;
    while (next_rec(m, m->used, &off, name, value))
        if (i-- == 0) return 1;
    return 0;
}

/* RFC 3986 3.2.2-3 as h1_check_request has it: host [":" port]. */
static int authority_ok(struct span a)
{
    if (!a.len) return 0;
    uint32_t i = 0;
    if (a.p[0] == '[') {
        for (i = 1; i < a.len && a.p[i] != ']'; i++)
            if (!strchr("0123456789abcdefABCDEF:.", a.p[i])) return 0;
        if (i == a.len) return 0;
        i++;
    } else {
        for (; i < a.len && a.p[i] != ':'; i++) {
            unsigned char c = (unsigned char)a.p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("-._~%!$&'()*+;=", c))))
                return 0;
        }
    }
    if (i == a.len) return 1;
    if (a.p[i] != ':' || i + 1 == a.len) return 0;
    for (i++; i < a.len; i++)
        if (a.p[i] < '0' || a.p[i] > '9') return 0;
    return 1;
}

static int target_ok(struct span t)
{
    for (uint32_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') return 0;
    }
    return 1;
}

static uint8_t method_id(struct span m)
{
    if (lit(m.p, m.len, "GET")) return HTTP_GET;
    if (lit(m.p, m.len, "HEAD")) return HTTP_HEAD;
    if (lit(m.p, m.len, "POST")) return HTTP_POST;
    if (lit(m.p, m.len, "CONNECT")) return HTTP_CONNECT;
    if (lit(m.p, m.len, "OPTIONS")) return HTTP_OPTIONS;
    if (lit(m.p, m.len, "DELETE")) return HTTP_DELETE;
    return HTTP_PUT; /* as h1_parse_head does for methods without framing rules */
}

/* Content-Length: digits only, every field the same (RFC 9110 8.6). */
static int content_length(struct span v, uint64_t *out)
{
    if (!v.len || v.len > 19) return -1;
    uint64_t n = 0;
    for (uint32_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return -1;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = n;
    return 0;
}

int h2map_finish(struct h2map *m, int end_stream, struct h1_head *h)
{
    if (m->err) return m->err;
    uint32_t max = h->max_headers;
    memset(h, 0, offsetof(struct h1_head, h));
    h->max_headers = max;
    h->host_i = h->upgrade_i = -1;
    h->major = h->minor = 1;
    /* RFC 9113 8.3.1 and 8.5 */
    if (!m->method.p) return fail(m, H2MAP_MALFORMED, "no :method");
    int connect = lit(m->method.p, m->method.len, "CONNECT");
    int extended = connect && m->protocol.p && m->extended_connect;
    if (m->protocol.p && !extended)
        return fail(m, H2MAP_MALFORMED, ":protocol without extended CONNECT");
    if (extended) {
        /* RFC 8441 4: :scheme, :path and :authority as for any request */
        if (!m->scheme.p || !m->path.p || !m->authority.p || !m->protocol.len ||
            m->path.p[0] != '/')
            return fail(m, H2MAP_MALFORMED, "extended CONNECT needs :scheme, :path, :authority");
        connect = 0;
    } else if (connect) {
        if (m->scheme.p || m->path.p || !m->authority.p)
            return fail(m, H2MAP_MALFORMED, "CONNECT needs :authority only");
    } else {
        if (!m->scheme.p || !m->path.p || !m->path.len)
            return fail(m, H2MAP_MALFORMED, "no :scheme or :path");
        int star = m->path.len == 1 && m->path.p[0] == '*';
        if (star ? !lit(m->method.p, m->method.len, "OPTIONS") : m->path.p[0] != '/')
            return fail(m, H2MAP_MALFORMED, "invalid :path");
    }
    for (uint32_t i = 0; i < m->method.len; i++) {
        /* a method is a token (RFC 9110 9.1), upper case allowed */
        char c = m->method.p[i];
        if (!(c >= 'A' && c <= 'Z') && !name_ok(&c, 1))
            return fail(m, H2MAP_MALFORMED, "invalid :method");
    }
    if (!m->method.len) return fail(m, H2MAP_MALFORMED, "invalid :method");
    if (m->path.p && !target_ok(m->path)) return fail(m, H2MAP_MALFORMED, "invalid :path");
    if (m->authority.p && !authority_ok(m->authority))
        return fail(m, H2MAP_MALFORMED, "invalid :authority");
    h->method = extended ? (struct span){"GET", 3} : m->method;
    h->method_id = method_id(h->method);
    h->target = connect ? m->authority : m->path;
    uint32_t n = 0;
    int cookie_done = 0;
    struct span name, value;
    uint32_t off = 0, end = m->used; /* the joined cookie goes after the records */
    while (next_rec(m, end, &off, &name, &value)) {
        struct h1_header *hd = &h->h[n];
        *hd = (struct h1_header){name, value, 0};
        if (lit(name.p, name.len, "host")) {
            /* RFC 9113 8.3.1: :authority wins; a different Host is malformed */
            if (m->authority.p) {
                if (value.len != m->authority.len ||
                    strncasecmp(value.p, m->authority.p, value.len))
                    return fail(m, H2MAP_MALFORMED, "Host differs from :authority");
                continue;
            }
            if (h->host_i >= 0) return fail(m, H2MAP_MALFORMED, "more than one Host");
            if (!authority_ok(value)) return fail(m, H2MAP_MALFORMED, "invalid Host");
            h->host_i = (int32_t)n;
            h->nhost = 1;
        } else if (lit(name.p, name.len, "content-length")) {
            uint64_t cl;
            if (content_length(value, &cl) || (h->has_cl && cl != h->content_length))
                return fail(m, H2MAP_MALFORMED, "invalid content-length");
            h->has_cl = 1;
            h->content_length = cl;
        } else if (lit(name.p, name.len, "te")) {
            hd->drop = 1; /* hop-by-hop in HTTP/1 as well */
        } else if (lit(name.p, name.len, "expect")) {
            if (value.len == 12 && !strncasecmp(value.p, "100-continue", 12))
                h->expect_continue = 1;
        } else if (lit(name.p, name.len, "cookie") && m->ncookies > 1) {
            /* RFC 9113 8.2.3: one field for HTTP/1, the crumbs joined by "; " */
            if (cookie_done) continue;
            uint32_t need = m->cookie_bytes + 2 * (m->ncookies - 1);
            if (m->used + need > m->cap) return fail(m, H2MAP_TOO_LARGE, "fields too large");
            char *at = m->area + m->used, *o = at;
            struct span cn, cv;
            int first = 1;
            uint32_t k = 0;
            while (next_rec(m, end, &k, &cn, &cv)) {
                if (!lit(cn.p, cn.len, "cookie")) continue;
                if (!first) *o++ = ';', *o++ = ' ';
                memcpy(o, cv.p, cv.len);
                o += cv.len;
                first = 0;
            }
            m->used += need;
            hd->value = (struct span){at, (uint32_t)(o - at)};
            cookie_done = 1;
        }
        n++;
    }
    if (m->authority.p) {
        h->h[n] = (struct h1_header){{"Host", 4}, m->authority, 0};
        h->host_i = (int32_t)n++;
        h->nhost = 1;
    }
    h->complete = end_stream != 0;
    if (extended) {
        /* the HTTP/1.1 upgrade it stands for (h1_write_request re-adds it) */
        if (!name_ok(m->protocol.p, m->protocol.len) && m->protocol.len)
            for (uint32_t i = 0; i < m->protocol.len; i++)
                if (m->protocol.p[i] <= ' ' || m->protocol.p[i] >= 0x7f)
                    return fail(m, H2MAP_MALFORMED, "invalid :protocol");
        h->h[n] = (struct h1_header){{"Upgrade", 7}, m->protocol, 1};
        h->upgrade_i = (int32_t)n++;
        h->conn_upgrade = 1;
        h->complete = 1; /* what follows is the tunnel's, not a body */
        h->nheaders = n;
        return 0;
    }
    if (!end_stream && !h->has_cl) {
        /* the body's end is DATA with END_STREAM; HTTP/1.1 needs framing */
        h->h[n++] = (struct h1_header){{"Transfer-Encoding", 17}, {"chunked", 7}, 0};
        h->chunked = h->has_te = 1;
    }
    if (end_stream && h->has_cl && h->content_length)
        return fail(m, H2MAP_MALFORMED, "content-length without DATA");
    h->nheaders = n;
    return 0;
}

int h2map_response_field_ok(struct span n)
{
    static const char *const no[] = {"connection",        "keep-alive", "proxy-connection",
                                     "transfer-encoding", "upgrade",    "te"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (n.len == strlen(no[i]) && !strncasecmp(n.p, no[i], n.len)) return 0;
    return 1;
}

void h2map_lower(char *out, struct span name)
{
    for (uint32_t i = 0; i < name.len; i++) {
        char c = name.p[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
}
