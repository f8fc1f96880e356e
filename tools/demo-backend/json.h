/* json: the one JSON writing primitive demo-backend needs; the bodies
 * themselves are assembled with buf_puts/buf_printf by their endpoints. */
#ifndef DEMO_JSON_H
#define DEMO_JSON_H

#include <stddef.h>

#include "buf.h"

/* Appends s[0..n) to b as a JSON string, quotes included. Valid UTF-8 passes
 * through; control characters and bytes that are not valid UTF-8 become
 * \u00XX (i.e. read as Latin-1), so any request bytes can be echoed. */
void json_str(struct buf *b, const char *s, size_t n);

#endif
