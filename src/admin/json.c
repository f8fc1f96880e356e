/* json: writer and strict flat-object reader. See json.h. */
#include "admin/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(struct jbuf *b, size_t more)
{
    if (b->oom) return -1;
    if (b->len + more + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void jb_free(struct jbuf *b)
{
    free(b->p);
    *b = (struct jbuf){0};
}

void jb_putn(struct jbuf *b, const char *s, size_t n)
{
    if (grow(b, n) < 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void jb_puts(struct jbuf *b, const char *s)
{
    jb_putn(b, s, strlen(s));
}

void jb_printf(struct jbuf *b, const char *fmt, ...)
{
    if (grow(b, 256) < 0) return; /* most fit at once: one vsnprintf */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->p[b->len] = 0;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (grow(b, (size_t)n) < 0) {
            b->p[b->len] = 0;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void jb_str(struct jbuf *b, const char *s)
{
    jb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            jb_putn(b, e, 2);
        } else if (*p < 0x20) {
            jb_printf(b, "\\u%04x", *p);
        } else {
            jb_putn(b, (const char *)p, 1);
        }
    }
    jb_putn(b, "\"", 1);
}

void jb_num(struct jbuf *b, double v)
{
    if (isnan(v) || isinf(v))
        jb_puts(b, "null");
    else if (v == (double)(int64_t)v && fabs(v) < 1e15)
        jb_printf(b, "%lld", (long long)v);
    else
        jb_printf(b, "%.6g", v);
}

char *jb_u64_at(char *o, uint64_t v)
{
    /* two digits at a time, from a table */
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                   "25262728293031323334353637383940414243444546474849"
                                   "50515253545556575859606162636465666768697071727374"
                                   "75767778798081828384858687888990919293949596979899";
    if (v < 10) {
        *o = (char)('0' + v);
        return o + 1;
    }
    char tmp[20];
    int i = (int)sizeof(tmp);
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        tmp[--i] = pairs[2 * r + 1];
        tmp[--i] = pairs[2 * r];
    }
    if (v >= 10) {
        tmp[--i] = pairs[2 * v + 1];
        tmp[--i] = pairs[2 * v];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    size_t n = sizeof(tmp) - (size_t)i;
    memcpy(o, tmp + i, n);
    return o + n;
}

void jb_u64(struct jbuf *b, uint64_t v)
{
    char *o = jb_reserve(b, 20);
    if (o) jb_commit(b, jb_u64_at(o, v));
}

char *jb_reserve(struct jbuf *b, size_t n)
{
    return grow(b, n) < 0 ? NULL : b->p + b->len;
}

void jb_commit(struct jbuf *b, char *end)
{
    b->len = (size_t)(end - b->p);
    b->p[b->len] = 0;
}

void jb_fixed(struct jbuf *b, double v, unsigned decimals)
{
    static const uint64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (decimals > 6) decimals = 6;
    if (v != v || v > 1e15 || v < -1e15) {
        jb_putn(b, "null", 4);
        return;
    }
    if (v < 0) {
        jb_putn(b, "-", 1);
        v = -v;
    }
    uint64_t n = (uint64_t)(v * (double)scale[decimals] + 0.5);
    jb_u64(b, n / scale[decimals]);
    uint64_t frac = n % scale[decimals];
    if (!frac) return;
    char d[8];
    unsigned k = decimals;
    while (frac % 10 == 0) frac /= 10, k--; /* no trailing zeros */
    for (unsigned i = k; i > 0; i--) d[i - 1] = (char)('0' + frac % 10), frac /= 10;
    jb_putn(b, ".", 1);
    jb_putn(b, d, k);
}

/* ---- reader ---------------------------------------------------------------------- */

struct rd {
    const char *p, *start, *end;
    char *why;
    size_t cap;
};

static int fail(struct rd *r, const char *what)
{
    snprintf(r->why, r->cap, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return -1;
}

static void ws(struct rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* A string at r->p (the opening quote) into out[cap], decoded. */
static int read_string(struct rd *r, char *out, size_t cap)
{
    size_t n = 0;
    r->p++;
    for (;;) {
        if (r->p >= r->end) return fail(r, "unterminated string");
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            out[n] = 0;
            return 0;
        }
        if (c < 0x20) return fail(r, "control character in a string");
        char enc[4];
        size_t k = 1;
        if (c != '\\') {
            enc[0] = (char)c;
            r->p++;
        } else {
            if (r->end - r->p < 2) return fail(r, "unterminated escape");
            char e = r->p[1];
            r->p += 2;
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                enc[0] = map[simple - "\"\\/bfnrt"];
            } else if (e == 'u') {
                unsigned v;
                if (r->end - r->p < 4 || hex4(r->p, &v) < 0) return fail(r, "bad \\u escape");
                r->p += 4;
                if (v >= 0xd800 && v <= 0xdbff) { /* a surrogate pair */
                    unsigned lo;
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                        hex4(r->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                        return fail(r, "unpaired surrogate in a \\u escape");
                    r->p += 6;
                    v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                } else if (v >= 0xdc00 && v <= 0xdfff) {
                    return fail(r, "unpaired surrogate in a \\u escape");
                }
                if (v == 0) return fail(r, "NUL in a string");
                if (v < 0x80) {
                    enc[0] = (char)v;
                } else if (v < 0x800) {
                    enc[0] = (char)(0xc0 | v >> 6), enc[1] = (char)(0x80 | (v & 0x3f)), k = 2;
                } else if (v < 0x10000) {
                    enc[0] = (char)(0xe0 | v >> 12), enc[1] = (char)(0x80 | ((v >> 6) & 0x3f));
                    enc[2] = (char)(0x80 | (v & 0x3f)), k = 3;
                } else {
                    enc[0] = (char)(0xf0 | v >> 18), enc[1] = (char)(0x80 | ((v >> 12) & 0x3f));
                    enc[2] = (char)(0x80 | ((v >> 6) & 0x3f)), enc[3] = (char)(0x80 | (v & 0x3f));
                    k = 4;
                }
            } else {
                r->p -= 2;
                return fail(r, "unknown escape in a string");
            }
        }
        if (n + k >= cap) return fail(r, "string too long");
        memcpy(out + n, enc, k);
        n += k;
    }
}

/* RFC 8259 6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int read_number(struct rd *r, double *v)
{
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-') r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, "bad number");
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, "bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, "bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    char tmp[64];
    if ((size_t)(r->p - s) >= sizeof(tmp)) return fail(r, "number too long");
    memcpy(tmp, s, (size_t)(r->p - s));
    tmp[r->p - s] = 0;
    *v = strtod(tmp, NULL);
    return 0;
}

static int word(struct rd *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n)) return 0;
    r->p += n;
    return 1;
}

int json_parse_object(const char *text, size_t len, struct json_object *o, char *why,
                      size_t why_cap)
{
    struct rd r = {text, text, text + len, why, why_cap};
    o->n = 0;
    ws(&r);
    if (r.p >= r.end || *r.p != '{') return fail(&r, "expected a JSON object '{'");
    r.p++;
    ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
        goto end;
    }
    for (;;) {
        ws(&r);
        if (r.p >= r.end || *r.p != '"') return fail(&r, "expected a key in quotes");
        if (o->n >= JSON_MAX_FIELDS) return fail(&r, "too many fields");
        struct json_field *f = &o->f[o->n];
        if (read_string(&r, f->key, sizeof(f->key)) < 0) return -1;
        for (uint32_t i = 0; i < o->n; i++)
            if (!strcmp(o->f[i].key, f->key)) return fail(&r, "key given twice");
        ws(&r);
        if (r.p >= r.end || *r.p != ':') return fail(&r, "expected ':' after a key");
        r.p++;
        ws(&r);
        if (r.p >= r.end) return fail(&r, "expected a value");
        char c = *r.p;
        f->str[0] = 0;
        f->num = 0;
        if (c == '"') {
            f->type = JSON_STRING;
            if (read_string(&r, f->str, sizeof(f->str)) < 0) return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            f->type = JSON_NUMBER;
            if (read_number(&r, &f->num) < 0) return -1;
        } else if (word(&r, "true")) {
            f->type = JSON_BOOL, f->num = 1;
        } else if (word(&r, "false")) {
            f->type = JSON_BOOL;
        } else if (word(&r, "null")) {
            f->type = JSON_NULL;
        } else if (c == '{' || c == '[') {
            return fail(&r, "nested objects and arrays are not accepted");
        } else {
            return fail(&r, "expected a value (string, number, true, false or null)");
        }
        o->n++;
        ws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            continue;
        }
        if (r.p < r.end && *r.p == '}') {
            r.p++;
            break;
        }
        return fail(&r, "expected ',' or '}'");
    }
end:
    ws(&r);
    if (r.p != r.end) return fail(&r, "unexpected text after the object");
    return 0;
}

const struct json_field *json_get(const struct json_object *o, const char *key)
{
    for (uint32_t i = 0; i < o->n; i++)
        if (!strcmp(o->f[i].key, key)) return &o->f[i];
    return NULL;
}
