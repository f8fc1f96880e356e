/* span: a run of bytes inside a buffer someone else owns (a parsed head). */
#ifndef USHER_CORE_SPAN_H
#define USHER_CORE_SPAN_H

#include <stdint.h>

struct span {
    const char *p;
    uint32_t len;
};

#endif
