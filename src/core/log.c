/* log: one write(2) per line so that lines from several threads never interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_min_level = LOG_INFO;
static _Atomic int log_format = LOG_TEXT;
static int journal = -1; /* -1: JOURNAL_STREAM not read yet */

static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* syslog priorities, as sd-daemon(3) SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR write them */
static const char *const level_prefix[] = {"<7>", "<6>", "<4>", "<3>"};

#define LINE_MAX_MSG 1024   /* the message, formatted */
#define LINE_MAX_JSON 16384 /* the worst case: every message byte a \u00XX or \ufffd */

/* systemd.exec(5): JOURNAL_STREAM is "DEVICE:INODE" of the stream stdout or
 * stderr is connected to; it is inherited, so it counts only if stderr is
 * still that stream (not redirected to a file by a shell in between). */
static int stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    if (!v || !*v) return 0;
    char *end;
    unsigned long long dev = strtoull(v, &end, 10);
    if (end == v || *end != ':') return 0;
    const char *ino_text = end + 1;
    unsigned long long ino = strtoull(ino_text, &end, 10);
    if (end == ino_text || *end) return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0) return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_configure(enum log_level min, enum log_format format)
{
    if (journal < 0) journal = stderr_is_journal();
    atomic_store(&log_format, (int)format);
    atomic_store(&log_min_level, (int)min);
}

int log_to_journal(void)
{
    if (journal < 0) journal = stderr_is_journal();
    return journal;
}

/* The length of the valid UTF-8 character at s (n bytes left), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

size_t log_json_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    if (!cap) return 0;
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *piece = esc;
        size_t plen = 2, used = 1;
        unsigned char c = s[i];
        esc[0] = '\\';
        if (c == '"' || c == '\\')
            esc[1] = (char)c;
        else if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20 || c == 0x7f) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            plen = 6;
        } else if (c < 0x80) {
            piece = (const char *)s + i;
            plen = 1;
        } else if ((used = utf8_char(s + i, len - i)) > 0) {
            piece = (const char *)s + i;
            plen = used;
        } else {
            piece = "\\ufffd"; /* not UTF-8: JSON text must be (RFC 8259 8.1) */
            plen = 6;
            used = 1;
        }
        if (o + plen > cap - 1) break; /* the whole piece or nothing */
        memcpy(out + o, piece, plen);
        o += plen;
        i += used;
    }
    out[o] = 0;
    return o;
}

static size_t put(char *line, size_t n, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (n >= cap) return cap;
    if (len > cap - n) len = cap - n;
    memcpy(line + n, s, len);
    return n + len;
}

void log_emit(enum log_level level, const struct log_field *fields, size_t nfields, const char *fmt,
              ...)
{
    if ((unsigned)level > LOG_ERR) level = LOG_ERR;
    char msg[LINE_MAX_MSG];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;

    char stamp[40] = "";
    int json = atomic_load_explicit(&log_format, memory_order_relaxed) == LOG_JSON;
    int to_journal = log_to_journal();
    if (json || !to_journal) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + k, sizeof(stamp) - k, ".%03dZ", (int)(tv.tv_usec / 1000));
    }

    static __thread char line[LINE_MAX_JSON];
    const size_t cap = sizeof(line) - 1; /* room for the newline */
    size_t n = 0;
    if (to_journal) n = put(line, n, cap, level_prefix[level]);
    if (!json) {
        if (!to_journal) {
            n = put(line, n, cap, stamp);
            n = put(line, n, cap, " usher[");
            n = put(line, n, cap, level_names[level]);
            n = put(line, n, cap, "] ");
        }
        /* a message is one line: a newline in it (a peer's words) would make two */
        for (size_t i = 0; i < mlen && n < cap; i++)
            line[n++] = msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i];
    } else {
        n = put(line, n, cap, "{\"time\":\"");
        n = put(line, n, cap, stamp);
        n = put(line, n, cap, "\",\"level\":\"");
        n = put(line, n, cap, level_names[level]);
        n = put(line, n, cap, "\",\"msg\":\"");
        /* the fields keep 512 bytes each of room (the rest of the line is the message's) */
        size_t room = cap - n - 2 - nfields * 512;
        n += log_json_escape(line + n, room < cap - n ? room : 1, msg, mlen);
        n = put(line, n, cap, "\"");
        for (size_t f = 0; f < nfields; f++) {
            if (!fields[f].value || cap - n < 16) continue;
            n = put(line, n, cap, ",\"");
            n += log_json_escape(line + n, (cap - n) / 2, fields[f].key, strlen(fields[f].key));
            n = put(line, n, cap, "\":\"");
            n += log_json_escape(line + n, cap - n - 2, fields[f].value, strlen(fields[f].value));
            n = put(line, n, cap, "\"");
        }
        n = put(line, n, cap, "}");
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
