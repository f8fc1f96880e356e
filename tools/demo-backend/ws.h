/* ws: the /ws WebSocket echo endpoint (RFC 6455).
 *
 * Data, continuation and close frames are echoed unmasked; a ping is
 * answered with a pong of the same payload; a pong is ignored. Protocol
 * errors send close 1002. A close frame (echoed or sent) ends the connection
 * once the output is flushed. Payloads are streamed, never buffered whole. */
#ifndef DEMO_WS_H
#define DEMO_WS_H

#include <stddef.h>

#include "conn.h"

/* Queues the 101 for a request that http.c marked c->ws_ok and switches c to frames. */
void ws_handshake(struct conn *c);
/* Processes n bytes of client frames; stops early once c->close_after_flush is set. */
void ws_feed(struct conn *c, const unsigned char *d, size_t n);

#endif
