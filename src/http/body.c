/* body: message body framing. See body.h.
 *
 * The chunked grammar (RFC 9112 7.1, with 5.5 for trailer field values):
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size   = 1*HEXDIG
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   trailer-section = *( field-line CRLF )
 *
 * Extensions are checked for their characters (no CTL but HTAB, a CR only
 * before LF) and their size, not parsed further: they are forwarded as they
 * are, and a recipient that does not know one ignores it. */
#include "http/body.h"

#include <string.h>

#include "http/tchar.h"

#define MAX_SIZE_DIGITS 15 /* 2^60 bytes: far beyond anything real, far from overflow */
#define MAX_EXT_BYTES 4096 /* per chunk line */
#define MAX_TRAILER_BYTES 16384

enum {
    CK_SIZE_FIRST, /* first hex digit of a chunk size */
    CK_SIZE,       /* more hex digits */
    CK_SIZE_BWS,   /* whitespace after the size: only ";" may follow */
    CK_EXT,        /* inside chunk extensions */
    CK_SIZE_LF,    /* CR seen after the size line */
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER_START, /* start of a trailer line, or of the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* a byte allowed inside an extension or a field value: VCHAR, SP, HTAB, obs-text */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

void body_init(struct body *b, enum body_kind kind, uint64_t length)
{
    memset(b, 0, sizeof(*b));
    b->kind = (uint8_t)kind;
    b->n = kind == BODY_LENGTH ? length : 0;
    b->allowed = UINT64_MAX;
    b->state = CK_SIZE_FIRST;
}

void body_limit(struct body *b, uint64_t max)
{
    b->allowed = max;
}

int body_done(const struct body *b)
{
    switch (b->kind) {
    case BODY_NONE: return 1;
    case BODY_LENGTH: return b->n == 0;
    case BODY_CHUNKED: return b->state == CK_DONE;
    default: return 0;
    }
}

static long chunked(struct body *b, char *p, size_t len, int *done, char **out)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)p[i];
        switch (b->state) {
        case CK_SIZE_FIRST:
            if (hexval(c) < 0) return -1;
            b->n = (uint64_t)hexval(c);
            b->ext_len = 1;
            b->state = CK_SIZE;
            break;
        case CK_SIZE:
            if (hexval(c) >= 0) {
                if (++b->ext_len > MAX_SIZE_DIGITS) return -1;
                b->n = b->n * 16 + (uint64_t)hexval(c);
            } else if (c == '\r') {
                b->state = CK_SIZE_LF;
            } else if (c == ';') {
                b->ext_len = 0;
                b->state = CK_EXT;
            } else if (c == ' ' || c == '\t') {
                b->state = CK_SIZE_BWS;
            } else {
                return -1;
            }
            break;
        case CK_SIZE_BWS:
            if (c == ';') {
                b->ext_len = 0;
                b->state = CK_EXT;
            } else if (c != ' ' && c != '\t') {
                return -1;
            }
            break;
        case CK_EXT:
            if (c == '\r') {
                b->state = CK_SIZE_LF;
            } else if (!is_text(c) || ++b->ext_len > MAX_EXT_BYTES) {
                return -1;
            }
            break;
        case CK_SIZE_LF:
            if (c != '\n') return -1;
            /* once per chunk: the size is known before any of its data */
            if (b->n > b->allowed) return BODY_ERR_TOO_LARGE;
            b->allowed -= b->n;
            b->state = b->n ? CK_DATA : CK_TRAILER_START;
            break;
        case CK_DATA: {
            size_t take = len - i < b->n ? len - i : (size_t)b->n;
            if (out) {
                if (*out != p + i) memmove(*out, p + i, take);
                *out += take;
            }
            b->n -= take;
            i += take;
            if (b->n == 0) b->state = CK_DATA_CR;
            continue;
        }
        case CK_DATA_CR:
            if (c != '\r') return -1; /* data longer than its size, or a bare LF */
            b->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n') return -1;
            b->state = CK_SIZE_FIRST;
            break;
        case CK_TRAILER_START:
            if (c == '\r') {
                b->state = CK_END_LF;
            } else if (http_is_tchar(c)) {
                b->state = CK_TRAILER_NAME; /* a line starting with whitespace: obs-fold, refused */
            } else {
                return -1;
            }
            break;
        case CK_TRAILER_NAME:
            if (c == ':')
                b->state = CK_TRAILER_VALUE;
            else if (!http_is_tchar(c))
                return -1;
            break;
        case CK_TRAILER_VALUE:
            if (c == '\r')
                b->state = CK_TRAILER_LF;
            else if (!is_text(c))
                return -1;
            break;
        case CK_TRAILER_LF:
            if (c != '\n') return -1;
            b->state = CK_TRAILER_START;
            break;
        case CK_END_LF:
            if (c != '\n') return -1;
            b->state = CK_DONE;
            *done = 1;
            return (long)(i + 1);
        default: return -1;
        }
        if (b->state >= CK_TRAILER_START && ++b->trailer_len > MAX_TRAILER_BYTES) return -1;
        i++;
    }
    return (long)len;
}

long body_parse(struct body *b, char *p, size_t len, int *done, char **out)
{
    *done = 0;
    switch (b->kind) {
    case BODY_NONE: *done = 1; return 0;
    case BODY_LENGTH: {
        size_t take = len < b->n ? len : (size_t)b->n;
        b->n -= take;
        *done = b->n == 0;
        return (long)take;
    }
    case BODY_CHUNKED:
        if (b->state == CK_DONE) {
            *done = 1;
            return 0;
        }
        return chunked(b, p, len, done, out);
    case BODY_CLOSE: return (long)len;
    default: return -1;
    }
}
