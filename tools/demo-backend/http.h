/* http: request parsing with llhttp (strict mode) into a conn.
 *
 * Request bodies are never buffered: they are streamed through a CRC32
 * (conn.body_len, conn.body_crc). A request that cannot be parsed is answered
 * here with 400 (or 414, 431, 505) and the connection is closed after it. */
#ifndef DEMO_HTTP_H
#define DEMO_HTTP_H

#include <stddef.h>

#include "conn.h"

/* Sets up the llhttp callbacks; must run once before http_parser_init. */
void http_init(void);
/* Initialises c->parser for requests, with c as its data. */
void http_parser_init(struct conn *c);
/* Feeds request bytes to llhttp; returns how many were consumed (fewer than
 * len only when the parser paused at the end of a request: c->req_ready). */
size_t http_feed(struct conn *c, const char *data, size_t len);

#endif
