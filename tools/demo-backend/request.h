/* request: read-only questions about the request that http.c has collected in
 * a conn (method, header fields, path and query). Returned pointers point
 * into the conn's buffers and are valid until the next request begins. */
#ifndef DEMO_REQUEST_H
#define DEMO_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* The method token, including methods llhttp does not know. */
const char *req_method(struct conn *c);
/* Value of the first header named name (case-insensitive), OWS-trimmed. */
bool req_header(struct conn *c, const char *name, const char **val, size_t *len);
/* Does any header `name` hold `token` (case-insensitive) in its comma-separated list? */
bool req_header_has_token(struct conn *c, const char *name, const char *token);
/* Is the path exactly s? */
bool req_path_is(struct conn *c, const char *s);
/* Does the path start with s? */
bool req_path_has_prefix(struct conn *c, const char *s);
/* Splits the request target (origin- or absolute-form) into path and query. */
void req_split_url(struct conn *c);
/* Finds query parameter `name` (value undecoded); false if absent. */
bool req_query_param(struct conn *c, const char *name, const char **val, size_t *len);
/* Query parameter `name` as an unsigned decimal no larger than max; false if absent or bad. */
bool req_query_u64(struct conn *c, const char *name, uint64_t max, uint64_t *out);

#endif
