/* sock: addresses and non-blocking sockets. Errors are -errno. */
#ifndef USHER_CORE_SOCK_H
#define USHER_CORE_SOCK_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

struct sock_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    };
    socklen_t len;
};

/* Parses "HOST:PORT", "[V6]:PORT" or "*:PORT" where HOST is a numeric IPv4/IPv6
 * address or "localhost". Returns 0, or -EINVAL with *why set to a phrase. */
int sock_parse_addr(const char *s, struct sock_addr *out, const char **why);
/* Writes "ip:port" (IPv6 in brackets) into out. */
void sock_addr_str(const struct sock_addr *a, char *out, size_t cap);
/* Writes just the IP of a into out. */
void sock_ip_str(const struct sockaddr *a, char *out, size_t cap);

/* A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT. */
int sock_listen(const struct sock_addr *a, int backlog);
/* Starts a non-blocking connect. Returns the fd (connected or in progress) or -errno. */
int sock_connect(const struct sock_addr *a);
/* Pending error of a socket (SO_ERROR), as -errno, or 0. */
int sock_error(int fd);
void sock_nodelay(int fd);

#endif
