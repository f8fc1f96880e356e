/* h1_backend: the HTTP/1 client of a backend, for one exchange. It writes
 * the rewritten request head and the body bytes the client side has ready,
 * reads the response into x->uin, parses its head (1xx are passed on and
 * parsing goes on; 101 hands over to the tunnel) and frames its body, so
 * that [uin->start, uin_parsed) is always exactly what may go down. */
#ifndef USHER_PROXY_H1_BACKEND_H
#define USHER_PROXY_H1_BACKEND_H

#include "proxy/exchange.h"

/* Finishes a connect, writes what is ready, reads what came. Returns
 * whether anything changed. May end the exchange (respond, abort). */
int h1_backend_io(struct exchange *x);
/* Parses the response head, or frames the body bytes that came. Returns
 * whether anything changed. May end the exchange. */
int h1_backend_response(struct exchange *x);
/* upconn callback: the leased connection of exchange owner has events. */
void h1_backend_on_event(void *owner, struct upconn *u);

#endif
