/* notify: sd_notify's datagram protocol, for Type=notify services. See notify.h. */
#include "app/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "upstream/backend.h"

#define STATUS_EVERY_MS 1000 /* health changes show within a second */

static struct {
    int fd; /* -1: NOTIFY_SOCKET unset or unusable, every call is a no-op */
    struct sockaddr_un addr;
    socklen_t len;
    int warned; /* one failure logged; the rest would repeat it */
    int stopping;
    struct loop_timer timer;
    struct generation *const *gen;
    const struct worker *workers;
    uint32_t nworkers;
    char last[256]; /* the STATUS= line last sent */
} nt = {.fd = -1};

int notify_address(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
    size_t n = name ? strlen(name) : 0;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (n == 0) return -EINVAL;
    if (name[0] != '/' && name[0] != '@') {
        /* systemd 254 also knows "vsock:CID:PORT"; usher speaks only AF_UNIX */
        return strchr(name, ':') ? -EAFNOSUPPORT : -EINVAL;
    }
    if (name[0] == '@') {
        /* abstract namespace: a leading NUL, and the length says where the name ends */
        if (n < 2 || n > sizeof(addr->sun_path)) return -EINVAL;
        memcpy(addr->sun_path + 1, name + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof(addr->sun_path)) return -EINVAL;
    memcpy(addr->sun_path, name, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static int send_flags(const char *msg, int flags)
{
    if (nt.fd < 0) return 0;
    ssize_t r;
    do
        r = sendto(nt.fd, msg, strlen(msg), MSG_NOSIGNAL | flags, (struct sockaddr *)&nt.addr,
                   nt.len);
    while (r < 0 && errno == EINTR);
    if (r >= 0) return 0;
    int err = errno;
    if (!nt.warned) {
        nt.warned = 1;
        log_warn("cannot notify the service manager (NOTIFY_SOCKET): %s", strerror(err));
    }
    return -err;
}

int notify_send(const char *msg)
{
    return send_flags(msg, 0);
}

void notify_status_line(char *buf, size_t cap, const struct generation *g,
                        const struct worker *workers, uint32_t nworkers, int stopping)
{
    uint32_t total = 0, up = 0, draining = 0;
    for (uint32_t p = 0; g && p < g->cfg->npools; p++) {
        const struct pool *pool = &g->pools[p];
        for (uint32_t b = 0; b < pool->n; b++) {
            total++;
            up += backend_state(&pool->backends[b]) == BACKEND_UP;
            draining += backend_draining(&pool->backends[b]) != 0;
        }
    }
    /* each worker writes its own count; a torn or stale value only blurs a status line */
    unsigned long long conns = 0;
    for (uint32_t i = 0; i < nworkers; i++)
        conns += __atomic_load_n(&workers[i].px.nsessions, __ATOMIC_RELAXED);
    const char *s = conns == 1 ? "" : "s";
    if (stopping) {
        snprintf(buf, cap, "stopping: %llu connection%s still open", conns, s);
        return;
    }
    char drain[32] = "";
    if (draining) snprintf(drain, sizeof(drain), " (%u draining)", draining);
    snprintf(buf, cap, "%u of %u backend%s up%s, %llu connection%s", up, total,
             total == 1 ? "" : "s", drain, conns, s);
}

static void current_status(char *buf, size_t cap)
{
    notify_status_line(buf, cap, *nt.gen, nt.workers, nt.nworkers, nt.stopping);
}

/* Sends what first says (READY=1, STOPPING=1), then STATUS=. */
static void send_with_status(const char *first)
{
    char msg[sizeof(nt.last) + 32];
    current_status(nt.last, sizeof(nt.last));
    snprintf(msg, sizeof(msg), "%s\nSTATUS=%s", first, nt.last);
    send_flags(msg, 0);
}

static void on_status(struct loop *loop, struct loop_timer *t)
{
    char line[sizeof(nt.last)], msg[sizeof(nt.last) + 8];
    current_status(line, sizeof(line));
    if (strcmp(line, nt.last)) {
        memcpy(nt.last, line, sizeof(nt.last));
        snprintf(msg, sizeof(msg), "STATUS=%s", line);
        /* a status the manager has no room for now is not worth stalling the control loop */
        send_flags(msg, MSG_DONTWAIT);
    }
    loop_timer_set(loop, t, STATUS_EVERY_MS);
}

void notify_start(struct loop *loop, struct generation *const *gen, const struct worker *workers,
                  uint32_t nworkers)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !name[0] || nt.fd >= 0) return;
    int err = notify_address(name, &nt.addr, &nt.len);
    if (err < 0) {
        log_warn("NOTIFY_SOCKET=%s: %s (expected an absolute path or @name); not notifying", name,
                 err == -EAFNOSUPPORT ? "not an AF_UNIX socket" : "not a socket name");
        return;
    }
    nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (nt.fd < 0) {
        log_warn("NOTIFY_SOCKET: cannot make a socket: %s; not notifying", strerror(errno));
        return;
    }
    nt.gen = gen;
    nt.workers = workers;
    nt.nworkers = nworkers;
    send_with_status("READY=1");
    nt.timer.cb = on_status;
    loop_timer_set(loop, &nt.timer, STATUS_EVERY_MS);
}

void notify_reloading(void)
{
    if (nt.fd < 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[64];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    send_flags(msg, 0);
}

void notify_ready(void)
{
    if (nt.fd >= 0) send_with_status("READY=1");
}

void notify_stopping(void)
{
    if (nt.fd < 0 || nt.stopping) return;
    nt.stopping = 1;
    send_with_status("STOPPING=1");
}

void notify_stop(struct loop *loop)
{
    if (nt.fd < 0) return;
    loop_timer_stop(loop, &nt.timer);
    close(nt.fd);
    nt.fd = -1;
}
