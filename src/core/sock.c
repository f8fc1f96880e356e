/* sock: addresses and non-blocking sockets. See sock.h. */
#include "core/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sock_parse_addr(const char *s, struct sock_addr *out, const char **why)
{
    char host[64];
    const char *colon;
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            *why = "expected [IPV6]:PORT";
            return -EINVAL;
        }
        size_t n = (size_t)(close - s - 1);
        if (n >= sizeof(host)) {
            *why = "address too long";
            return -EINVAL;
        }
        memcpy(host, s + 1, n);
        host[n] = 0;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "expected HOST:PORT";
            return -EINVAL;
        }
        size_t n = (size_t)(colon - s);
        if (n >= sizeof(host)) {
            *why = "address too long";
            return -EINVAL;
        }
        memcpy(host, s, n);
        host[n] = 0;
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end || errno || port < 1 || port > 65535) {
        *why = "port must be a number from 1 to 65535";
        return -EINVAL;
    }
    if (host[0] == 0 || !strcmp(host, "*")) strcpy(host, "0.0.0.0");
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &out->in.sin_addr) == 1) {
        out->in.sin_family = AF_INET;
        out->in.sin_port = htons((uint16_t)port);
        out->len = sizeof(out->in);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons((uint16_t)port);
        out->len = sizeof(out->in6);
        return 0;
    }
    *why = "host must be a numeric IPv4 or IPv6 address (or localhost)";
    return -EINVAL;
}

void sock_ip_str(const struct sockaddr *a, char *out, size_t cap)
{
    if (a->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, out, (socklen_t)cap);
    else if (a->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "unknown");
}

void sock_addr_str(const struct sock_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    sock_ip_str(&a->sa, ip, sizeof(ip));
    if (a->sa.sa_family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
    else
        snprintf(out, cap, "%s:%u", ip, ntohs(a->in.sin_port));
}

int sock_listen(const struct sock_addr *a, int backlog)
{
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, &a->sa, a->len) < 0 || listen(fd, backlog) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int sock_connect(const struct sock_addr *a)
{
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sock_nodelay(fd);
    if (connect(fd, &a->sa, a->len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    return -err;
}

void sock_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
