/* stats: see stats.h. */
#include "stats.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "json.h"

#define MAX_METHODS 64

static uint64_t g_requests;
static struct {
    char name[MTOK_MAX];
    uint64_t count;
} g_methods[MAX_METHODS];
static size_t g_nmethods;

void stats_count(const char *method)
{
    g_requests++;
    size_t i;
    for (i = 0; i < g_nmethods; i++)
        if (strcmp(g_methods[i].name, method) == 0) break;
    if (i == g_nmethods) {
        if (g_nmethods == MAX_METHODS)
            i = MAX_METHODS - 1; /* lump the rest together */
        else {
            snprintf(g_methods[i].name, sizeof g_methods[i].name, "%s", method);
            g_methods[i].count = 0;
            g_nmethods++;
        }
    }
    g_methods[i].count++;
}

void stats_reset(void)
{
    g_requests = 0;
    g_nmethods = 0;
}

void stats_append_json(struct buf *b)
{
    buf_printf(b, "\"requests\":%" PRIu64 ",\"by_method\":{", g_requests);
    for (size_t i = 0; i < g_nmethods; i++) {
        if (i) buf_putc(b, ',');
        json_str(b, g_methods[i].name, strlen(g_methods[i].name));
        buf_printf(b, ":%" PRIu64, g_methods[i].count);
    }
    buf_putc(b, '}');
}
