/* accesslog: buffered access log lines. See accesslog.h. */
#include "core/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static int log_fd = -1;     /* the one descriptor number lines go to */
static _Atomic int enabled; /* read by workers per request */
static _Atomic int format;  /* enum accesslog_format */
static char log_path[512];  /* main thread only */

static int open_path(const char *path)
{
    if (!strcmp(path, "-") || !strcmp(path, "stdout")) return dup(STDOUT_FILENO);
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int accesslog_open(const char *path, enum accesslog_format fmt)
{
    if (!path[0]) {
        atomic_store(&enabled, 0);
        log_path[0] = 0;
        return 0;
    }
    int fd = open_path(path);
    if (fd < 0) return -errno;
    if (log_fd < 0) {
        log_fd = fd;
    } else {
        dup2(fd, log_fd); /* workers keep writing to the same number */
        close(fd);
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    atomic_store(&format, fmt);
    atomic_store(&enabled, 1);
    return 0;
}

int accesslog_chown(unsigned uid, unsigned gid)
{
    struct stat sb;
    if (log_fd < 0 || !log_path[0] || !strcmp(log_path, "-") || !strcmp(log_path, "stdout"))
        return 0;
    if (fstat(log_fd, &sb) < 0) return -errno;
    if (!S_ISREG(sb.st_mode)) return 0; /* a pipe or a device: not ours to give */
    return fchown(log_fd, (uid_t)uid, (gid_t)gid) < 0 ? -errno : 0;
}

int accesslog_reopen(void)
{
    if (!log_path[0] || !strcmp(log_path, "-") || !strcmp(log_path, "stdout")) return 0;
    /* a copy: accesslog_open writes log_path, and snprintf onto its own source
     * left it empty (every SIGUSR1 after the first reopened nothing) */
    char path[sizeof(log_path)];
    memcpy(path, log_path, sizeof(path));
    return accesslog_open(path, (enum accesslog_format)atomic_load(&format));
}

int accesslog_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_relaxed);
}

void accesslog_flush(struct accesslog_buf *b)
{
    size_t off = 0;
    while (off < b->len && log_fd >= 0) {
        ssize_t n = write(log_fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* a full disk must not stop the proxy: the lines are lost */
        off += (size_t)n;
    }
    b->len = 0;
}

/* Appends s as it may appear inside a quoted field: JSON-escaped, or with
 * quotes, backslashes and control bytes escaped for the combined format. */
static size_t quoted(char *out, size_t cap, const char *s, size_t n, int json)
{
    size_t o = 0;
    if (!s) s = "", n = 0;
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (json && c >= 0x80)) {
            o += (size_t)snprintf(out + o, cap - o, json ? "\\u%04x" : "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void accesslog_add(struct accesslog_buf *b, const struct accesslog_entry *e)
{
    if (!b->data) return;
    if (ACCESSLOG_BUF - b->len < 16384) accesslog_flush(b);
    char *out = b->data + b->len;
    size_t cap = ACCESSLOG_BUF - b->len, o = 0;
    time_t secs = (time_t)(e->start_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int json = atomic_load_explicit(&format, memory_order_relaxed) == ACCESSLOG_JSON;
    /* fields are capped so that a line always fits in what is left */
#define Q(p, n) (o += quoted(out + o, cap - o, (p), (n) > 2048 ? 2048 : (n), json))
    if (json) {
        char ts[40];
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        o += (size_t)snprintf(out + o, cap - o,
                              "{\"time\":\"%s.%03uZ\",\"client\":\"%s\",\"method\":\"", ts,
                              (unsigned)(e->start_ms % 1000), e->client_ip);
        Q(e->method, e->method_len);
        o += (size_t)snprintf(out + o, cap - o, "\",\"target\":\"");
        Q(e->target, e->target_len);
        o += (size_t)snprintf(out + o, cap - o,
                              "\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,"
                              "\"bytes\":%llu,\"duration_ms\":%.3f,\"host\":\"",
                              e->http10 ? 0 : 1, e->status, (unsigned long long)e->bytes,
                              (double)e->duration_us / 1000.0);
        Q(e->host, e->host_len);
        o += (size_t)snprintf(out + o, cap - o, "\",\"referer\":\"");
        Q(e->referer, e->referer_len);
        o += (size_t)snprintf(out + o, cap - o, "\",\"user_agent\":\"");
        Q(e->user_agent, e->user_agent_len);
        o += (size_t)snprintf(out + o, cap - o, "\",\"backend\":\"%s\"}\n",
                              e->backend ? e->backend : "");
    } else {
        char ts[40];
        strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        o += (size_t)snprintf(out + o, cap - o, "%s - - [%s] \"", e->client_ip, ts);
        Q(e->method, e->method_len);
        out[o++] = ' ';
        Q(e->target, e->target_len);
        o += (size_t)snprintf(out + o, cap - o, " HTTP/1.%d\" %d %llu \"", e->http10 ? 0 : 1,
                              e->status, (unsigned long long)e->bytes);
        if (e->referer_len)
            Q(e->referer, e->referer_len);
        else
            out[o++] = '-';
        o += (size_t)snprintf(out + o, cap - o, "\" \"");
        if (e->user_agent_len)
            Q(e->user_agent, e->user_agent_len);
        else
            out[o++] = '-';
        o += (size_t)snprintf(out + o, cap - o, "\"\n");
    }
#undef Q
    b->len += o < cap ? o : cap;
}
