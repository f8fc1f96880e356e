/* notify: tells a service manager (systemd, Type=notify) how the process is
 * doing, by the datagram protocol of sd_notify(3), without libsystemd.
 *
 * NOTIFY_SOCKET names an AF_UNIX datagram socket: an absolute path, or
 * "@name" for a name in the abstract namespace. Each message is one datagram
 * of newline-separated KEY=VALUE assignments (READY=1, RELOADING=1,
 * MONOTONIC_USEC=..., STOPPING=1, STATUS=...). When NOTIFY_SOCKET is unset
 * every call below does nothing, so usher runs the same without systemd.
 * Main thread only. */
#ifndef USHER_APP_NOTIFY_H
#define USHER_APP_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "app/worker.h"
#include "core/loop.h"
#include "upstream/generation.h"

/* The address named by NOTIFY_SOCKET's value: *len is the length to pass to
 * sendto (an abstract name is not NUL-terminated). 0, or -EINVAL (empty,
 * relative or too long) or -EAFNOSUPPORT (another family, such as vsock:). */
int notify_address(const char *name, struct sockaddr_un *addr, socklen_t *len);

/* Sends msg as one datagram. 0 (also when NOTIFY_SOCKET is unset) or -errno;
 * the first failure is logged. */
int notify_send(const char *msg);

/* The one-line state for STATUS=: "3 of 4 backends up, 120 connections"
 * (connections: the sum of the workers' sessions, read without a lock). */
void notify_status_line(char *buf, size_t cap, const struct generation *g,
                        const struct worker *workers, uint32_t nworkers, int stopping);

/* Opens the socket named by NOTIFY_SOCKET, sends READY=1 with the first
 * STATUS=, and keeps STATUS= up to date from a timer on loop (a datagram only
 * when the line changed). *gen is read at each update: the caller's pointer
 * to the generation in force. Call once the listeners are open and the
 * workers run. */
void notify_start(struct loop *loop, struct generation *const *gen, const struct worker *workers,
                  uint32_t nworkers);
/* RELOADING=1 and MONOTONIC_USEC= (CLOCK_MONOTONIC in microseconds): before a reload. */
void notify_reloading(void);
/* READY=1 and STATUS=: after a reload, whether it succeeded or not. */
void notify_ready(void);
/* STOPPING=1: at the start of a graceful stop. */
void notify_stopping(void);
/* Stops the timer and closes the socket (before loop is destroyed). */
void notify_stop(struct loop *loop);

#endif
