/* bytes: the /bytes?n=N[&chunked=1] endpoint. The body (byte i = 'a' + i % 26)
 * is produced as the socket accepts it, never held whole, and its CRC32 is
 * computed up front for the X-Body-CRC32 header without generating it. */
#ifndef DEMO_BYTES_H
#define DEMO_BYTES_H

#include "conn.h"

/* Fills the pattern; must run once before bytes_respond (which also needs crc32_init). */
void bytes_init(void);
/* Answers a /bytes request: queues the head and starts the body (c->gen_active). */
void bytes_respond(struct conn *c);
/* Queues more body while the output holds less than OUT_LOW; calls
 * conn_response_done after the last byte. */
void bytes_fill(struct conn *c);

#endif
