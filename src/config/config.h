/* config: what usher was asked to do, built from the command line (quick mode)
 * and later from a YAML file. Plain data; validated before anyone uses it. */
#ifndef USHER_CONFIG_CONFIG_H
#define USHER_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/sock.h"

#define CONFIG_MAX_BACKENDS 1024

struct backend_conf {
    char url[256];       /* as the user wrote it, without ",weight=..." */
    char authority[128]; /* "host:port" for a Host header when the client sent none */
    struct sock_addr addr;
    uint32_t weight; /* 1..1000, default 1 */
};

struct config {
    struct sock_addr listen;
    char listen_str[80];
    struct backend_conf backends[CONFIG_MAX_BACKENDS];
    uint32_t nbackends;
    char balance[32];            /* name of a balancer in balance.c's table */
    char health_path[256];       /* "" = TCP connect checks */
    uint32_t health_interval_ms; /* 0 = no active checks */
    uint32_t health_timeout_ms;
    uint32_t health_rise, health_fall;
    uint16_t health_status_min, health_status_max; /* expected status range */
    uint32_t max_fails; /* passive: failures in a row on live traffic; 0 = off */
    uint32_t retries;   /* further attempts for one request, on other backends */
    uint32_t threads;   /* worker threads; 0 = one per CPU */

    /* timeouts, ms */
    uint32_t client_header_ms; /* whole request head must arrive within this: 408 */
    uint32_t client_idle_ms;   /* keep-alive idle between requests, and body idle */
    uint32_t connect_ms;       /* backend connect */
    uint32_t response_ms;      /* backend idle while a response is awaited or streamed: 504 */
    uint32_t upstream_idle_ms; /* idle pooled backend connection is closed after this */
    uint32_t tunnel_idle_ms;   /* an upgraded (WebSocket) tunnel with no traffic is closed */
    uint32_t grace_ms;         /* SIGTERM/SIGINT: how long in-flight requests may take */

    /* limits */
    uint32_t max_headers;      /* header lines in a request head: 431 beyond */
    uint32_t max_request_line; /* bytes: 414 beyond */
    uint32_t max_conns;        /* client connections per worker */
};

/* Fills c with the documented defaults. */
void config_defaults(struct config *c);

/* Parses "500ms", "2s", "1m", "1h" (or a bare number of seconds) into *ms.
 * Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint32_t *ms);

/* Parses "http://HOST[:PORT][/][,weight=N]" into b. Returns 0, or -EINVAL with
 * an explanation written into why. */
int config_parse_backend(const char *s, struct backend_conf *b, char *why, size_t why_cap);

/* Parses argv (quick mode). Returns 0 to run, 1 when it printed --help or
 * --version (exit 0), or 2 after printing what was wrong (exit 2).
 * *check_only is set for -t. */
int config_from_args(struct config *c, int argc, char **argv, int *check_only);

#endif
