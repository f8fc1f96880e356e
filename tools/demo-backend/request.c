/* request: see request.h. */
#include "request.h"

#include <string.h>
#include <strings.h>

#include "util.h"

const char *req_method(struct conn *c)
{
    if (c->custom_method[0]) return c->custom_method;
    return llhttp_method_name((llhttp_method_t)c->parser.method);
}

bool req_header(struct conn *c, const char *name, const char **val, size_t *len)
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

bool req_header_has_token(struct conn *c, const char *name, const char *token)
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

bool req_path_is(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return c->path_len == n && memcmp(c->url.p + c->path_off, s, n) == 0;
}

bool req_path_has_prefix(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return c->path_len >= n && memcmp(c->url.p + c->path_off, s, n) == 0;
}

void req_split_url(struct conn *c)
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

bool req_query_param(struct conn *c, const char *name, const char **val, size_t *len)
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

bool req_query_u64(struct conn *c, const char *name, uint64_t max, uint64_t *out)
{
    const char *v;
    size_t n;
    return req_query_param(c, name, &v, &n) && util_parse_u64(v, n, max, out);
}
