/* json: a small writer for the admin API's answers, and a strict reader
 * for the request bodies it accepts: one object of string, number, boolean
 * or null fields (RFC 8259 grammar; nested values, duplicate keys and
 * anything after the object are refused with a reason). */
#ifndef USHER_ADMIN_JSON_H
#define USHER_ADMIN_JSON_H

#include <stddef.h>
#include <stdint.h>

/* A growing output buffer; oom is set (and writes stop) when malloc fails. */
struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
};

void jb_free(struct jbuf *b);
void jb_putn(struct jbuf *b, const char *s, size_t n);
void jb_puts(struct jbuf *b, const char *s);
void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string: quotes and escapes (control characters as \u00XX). */
void jb_str(struct jbuf *b, const char *s);
/* A number, or null when v is NaN or infinite. */
void jb_num(struct jbuf *b, double v);
/* v rounded to at most decimals (<= 6) places, no trailing zeros, fast;
 * null for NaN or beyond 1e15. */
void jb_fixed(struct jbuf *b, double v, unsigned decimals);
/* An unsigned integer in decimal, fast (the metrics' counters). */
void jb_u64(struct jbuf *b, uint64_t v);
/* Room for n more bytes (and the final 0): where to write them, or NULL
 * (oom set). The caller writes at most n bytes there and then calls
 * jb_commit with the end of what it wrote: one check for many small writes. */
char *jb_reserve(struct jbuf *b, size_t n);
void jb_commit(struct jbuf *b, char *end);
/* v in decimal at o (at most 20 bytes); returns the end. */
char *jb_u64_at(char *o, uint64_t v);

enum json_type { JSON_STRING, JSON_NUMBER, JSON_BOOL, JSON_NULL };

#define JSON_MAX_FIELDS 16
#define JSON_MAX_STRING 512

struct json_field {
    char key[64];
    enum json_type type;
    char str[JSON_MAX_STRING]; /* JSON_STRING: the decoded UTF-8 */
    double num;                /* JSON_NUMBER; JSON_BOOL: 0 or 1 */
};

struct json_object {
    struct json_field f[JSON_MAX_FIELDS];
    uint32_t n;
};

/* Parses text[0..len) as one flat object into o. 0, or -1 with why written
 * ("expected ':' after a key at byte 12"). */
int json_parse_object(const char *text, size_t len, struct json_object *o, char *why,
                      size_t why_cap);
/* The field named key, or NULL. */
const struct json_field *json_get(const struct json_object *o, const char *key);

#endif
