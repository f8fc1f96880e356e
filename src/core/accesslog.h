/* accesslog: one line per request, buffered per worker, written to a file or
 * stdout in "combined" (Apache/nginx) or JSON format.
 *
 * The file lives on one descriptor number for the life of the process:
 * reopening (SIGUSR1, for logrotate) or changing the path on reload dup2()s
 * the new file onto it, so workers never see a closed or reused descriptor. */
#ifndef USHER_CORE_ACCESSLOG_H
#define USHER_CORE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

enum accesslog_format { ACCESSLOG_COMBINED, ACCESSLOG_JSON };

#define ACCESSLOG_BUF 65536

/* What one request leaves in the log. Strings need not be NUL-terminated. */
struct accesslog_entry {
    const char *client_ip;
    uint64_t start_ms; /* wall clock, ms since the epoch */
    uint64_t duration_us;
    const char *method, *target, *referer, *user_agent, *host, *backend;
    uint32_t method_len, target_len, referer_len, user_agent_len, host_len;
    int http10;
    int status;
    uint64_t bytes; /* response body bytes sent to the client */
};

/* A worker's buffer of lines not written yet. */
struct accesslog_buf {
    char *data; /* ACCESSLOG_BUF bytes, or NULL when logging is off */
    size_t len;
};

/* Main thread, at start and on reload: path "" turns logging off, "-" or
 * "stdout" means standard output. Returns 0 or -errno (the old file stays). */
int accesslog_open(const char *path, enum accesslog_format format);
/* Main thread, before dropping root: makes the file (not stdout) uid's and
 * gid's, so that the user can open it again. Returns 0 or -errno. */
int accesslog_chown(unsigned uid, unsigned gid);
/* Main thread, SIGUSR1: opens the same path again (after logrotate moved it). */
int accesslog_reopen(void);
/* Whether lines are wanted at all (cheap: read per request). */
int accesslog_enabled(void);

/* Worker: appends the line for e, writing the buffer out when it is full. */
void accesslog_add(struct accesslog_buf *b, const struct accesslog_entry *e);
/* Worker: writes out what is buffered (every second, and at exit). */
void accesslog_flush(struct accesslog_buf *b);

#endif
