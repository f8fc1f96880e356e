/* server: the listening socket and the event loop of demo-backend.
 *
 * Single-threaded, non-blocking, level-triggered epoll; timers (timer.h)
 * give epoll_wait its timeout. SIGTERM and SIGINT arrive through a signalfd
 * and stop the loop cleanly (every connection closed, exit status 0). */
#ifndef DEMO_SERVER_H
#define DEMO_SERVER_H

/* Serves on host:port (port 0: a free one) until SIGTERM/SIGINT; returns the
 * exit status. Logs "demo-backend NAME listening on ADDR:PORT" once ready and
 * "demo-backend NAME stopped" at the end; exits the process if it cannot
 * listen. resp_set_name, crc32_init, bytes_init and http_init must have run. */
int server_run(const char *host, unsigned port);

#endif
