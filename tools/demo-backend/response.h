/* response: status lines, headers and small complete responses.
 *
 * Every response carries X-Backend: NAME, and Connection: close or (for
 * HTTP/1.0 keep-alive) Connection: keep-alive as c->ka says. */
#ifndef DEMO_RESPONSE_H
#define DEMO_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"

/* The backend's --name, and the same as a JSON string (quotes included). */
extern const char *resp_name;
extern struct buf resp_name_json;
/* Scratch for building JSON bodies; any endpoint may clear and reuse it. */
extern struct buf resp_body;

/* Sets resp_name (name must outlive the process) and resp_name_json. */
void resp_set_name(const char *name);
/* Frees resp_name_json and resp_body (at exit). */
void resp_free(void);
/* Queues the status line and headers. clen < 0: no Content-Length; extra: raw header lines. */
void resp_head(struct conn *c, int status, const char *ctype, int64_t clen, bool chunked,
               const char *extra);
/* Queues a whole response with body[0..len) (the body is left out for HEAD). */
void resp_full(struct conn *c, int status, const char *ctype, const char *body, size_t len,
               const char *extra);
/* Queues b as an application/json response. */
void resp_json(struct conn *c, int status, const struct buf *b);
/* Queues {"error":MSG} with the given status (uses resp_body). */
void resp_error(struct conn *c, int status, const char *msg);

#endif
