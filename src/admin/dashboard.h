/* The dashboard page served at the admin listener's /: one HTML document with
 * its script, style and Chart.js inlined, generated at build time from
 * web/dashboard by scripts/embed.py (build/gen/dashboard_page.c). */
#ifndef USHER_ADMIN_DASHBOARD_H
#define USHER_ADMIN_DASHBOARD_H

#include <stddef.h>

extern const unsigned char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
