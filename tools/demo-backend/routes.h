/* routes: which endpoint a request is for, and the answers of the endpoints
 * (usage() in main.c lists them). /bytes and /ws have their own files. */
#ifndef DEMO_ROUTES_H
#define DEMO_ROUTES_H

#include "conn.h"

/* The route of c's request path; called once the head has been parsed. */
enum route routes_match(struct conn *c);
/* Answers the complete request in c (c->req_ready). Counts it for /stats
 * unless it is for /health or /stats. Most answers are queued at once; /slow
 * arms c's timer, /bytes goes on in bytes_fill, /ws switches protocols. */
void routes_dispatch(struct conn *c);
/* Queues the /slow answer once its timer has fired; the caller ends the response. */
void routes_respond_slow(struct conn *c);

#endif
