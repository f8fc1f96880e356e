/* session: one client connection and the exchanges it carries.
 *
 * A session reads a request head, picks a backend, leases an upstream
 * connection, streams the request body up and the response down, then either
 * waits for the next request (keep-alive) or closes. Both directions run at
 * once (a backend may answer 100 Continue, or early). A WebSocket upgrade turns
 * the session into a byte tunnel. All of it runs on the worker that accepted
 * the connection. */
#ifndef USHER_HTTP_SESSION_H
#define USHER_HTTP_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct session;
struct upconn;

/* Takes ownership of the socket fd accepted on config listener `listener`. */
void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                    uint32_t listener);
/* Called by upconn when the leased connection u has events. */
void session_on_upstream(struct session *s, struct upconn *u, uint32_t events);
/* Closes the sessions of w that wait for a next request (graceful shutdown). */
void session_close_idle(struct worker *w);
/* Closes every session of w at once (shutdown). */
void session_close_all(struct worker *w);
/* Frees w's cached session objects. */
void session_free_cache(struct worker *w);

#endif
