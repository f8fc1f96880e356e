/* server: see server.h. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "response.h"
#include "timer.h"
#include "util.h"

static int g_epfd = -1;
static int g_listen_fd = -1;
static int g_sig_fd = -1;
static int g_spare_fd = -1;          /* released to accept-and-close on EMFILE */
static char g_listen_tag, g_sig_tag; /* epoll data.ptr markers */

/* Binds and listens; exits with a message on failure. shown gets the bound "addr:port". */
static int listen_on(const char *host, unsigned port, char *shown, size_t shown_len)
{
    struct addrinfo hints = {0}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "demo-backend: cannot resolve %s: %s\n", host, gai_strerror(rc));
        exit(2);
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) util_die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr, "demo-backend: cannot listen on %s port %u: %s\n", host, port,
                strerror(errno));
        exit(1);
    }
    freeaddrinfo(res);
    if (listen(fd, 4096) < 0) util_die("listen");

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned actual = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
            actual = ntohs(s6->sin6_port);
            snprintf(shown, shown_len, "[%s]:%u", addr, actual);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
            actual = ntohs(s4->sin_port);
            snprintf(shown, shown_len, "%s:%u", addr, actual);
        }
    }
    return fd;
}

static void accept_all(void)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && g_spare_fd >= 0) {
            /* Out of descriptors: accept and drop one, so the listen
             * queue does not keep the loop spinning. */
            close(g_spare_fd);
            fd = accept(g_listen_fd, NULL, NULL);
            if (fd >= 0) close(fd);
            g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        return; /* EAGAIN or a transient error */
    }
}

int server_run(const char *host, unsigned port)
{
    /* Thousands of connections need thousands of descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) util_die("sigprocmask");
    g_sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g_sig_fd < 0) util_die("signalfd");

    char shown[INET6_ADDRSTRLEN + 16] = "";
    g_listen_fd = listen_on(host, port, shown, sizeof shown);
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) util_die("epoll_create1");
    conn_set_epoll(g_epfd);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g_listen_tag};
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_listen_fd, &ev) < 0) util_die("epoll_ctl");
    ev.data.ptr = &g_sig_tag;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_sig_fd, &ev) < 0) util_die("epoll_ctl");

    fprintf(stderr, "demo-backend %s listening on %s\n", resp_name, shown);

    bool stop = false;
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(g_epfd, evs, (int)(sizeof evs / sizeof evs[0]), timer_wait_ms());
        if (n < 0) {
            if (errno == EINTR) continue;
            util_die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &g_listen_tag) {
                accept_all();
            } else if (p == &g_sig_tag) {
                struct signalfd_siginfo si;
                while (read(g_sig_fd, &si, sizeof si) == (ssize_t)sizeof si) stop = true;
            } else {
                struct conn *c = p;
                if (evs[i].events & (EPOLLERR | EPOLLHUP))
                    conn_close(c);
                else
                    conn_run(c);
            }
        }
        uint64_t now = util_now_ms();
        struct timer *t;
        while ((t = timer_due(now)) != NULL) conn_timer_fire(CONTAINER_OF(t, struct conn, timer));
    }

    conn_close_all();
    close(g_listen_fd);
    close(g_sig_fd);
    close(g_epfd);
    if (g_spare_fd >= 0) close(g_spare_fd);
    timer_free();
    fprintf(stderr, "demo-backend %s stopped\n", resp_name);
    return 0;
}
