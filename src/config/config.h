/* config: what usher was asked to do, built from the command line (quick mode)
 * or from a YAML file (yaml.c). Plain data; validated before anyone uses it. */
#ifndef USHER_CONFIG_CONFIG_H
#define USHER_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/sock.h"

#define CONFIG_MAX_BACKENDS 1024

struct backend_conf {
    char url[256];       /* as the user wrote it, without ",weight=..." */
    char authority[128]; /* "host:port" for a Host header when the client sent none */
    struct sock_addr addr;
    uint32_t weight;   /* 1..1000, default 1 */
    uint8_t drain;     /* 1: takes no new requests (in-flight ones finish) */
    uint8_t tls;       /* https:// (the pool's tls settings say how) */
    char name[64];     /* its name: the file's name:, else the URL's HOST:PORT */
    uint8_t maint;     /* the admin API's maintenance: out of rotation, health checks paused */
    uint8_t api;       /* added through the admin API, not by the file */
    uint8_t dns;       /* enum backend_source_dns: discovered from DNS (app/discovery.c) */
    uint16_t priority; /* SRV priority (dns == BACKEND_DNS_SRV): the lowest up one serves */
    /* a discovered https:// backend: the DNS name its certificate must carry
     * and the SNI (the name asked, or the SRV target); "": the URL's host */
    char tls_name[256];
};

/* backend_conf.dns */
enum backend_source_dns { BACKEND_STATIC = 0, BACKEND_DNS_ADDR = 1, BACKEND_DNS_SRV = 2 };

#define CONFIG_MAX_RESOLVERS 8
/* discover.type (settings.c's choices, in this order) */
enum discover_conf_type { DISC_A, DISC_AAAA, DISC_SRV, DISC_A_AAAA };
/* discover.scheme (settings.c's choices, in this order): what the backends speak */
enum discover_conf_scheme { DISC_HTTP, DISC_HTTPS };

/* A pool's backends from DNS (docs/DISCOVERY.md): off while dns is "". */
struct discover_conf {
    char dns[254];                            /* the name asked */
    uint8_t type;                             /* enum discover_conf_type */
    uint8_t scheme;                           /* enum discover_conf_scheme */
    uint32_t port;                            /* A and AAAA: the backends' port; 0 for SRV */
    char resolvers[CONFIG_MAX_RESOLVERS][64]; /* "HOST:PORT"; none: /etc/resolv.conf */
    uint32_t nresolvers;
    uint32_t min_ttl_ms, max_ttl_ms, hold_ms, timeout_ms;
    uint32_t line, column; /* where the file gives it (0 on the command line) */
};

/* One pool: a set of backends and how to spread requests over them. */
struct pool_conf {
    char name[64];
    uint32_t line;                 /* where the file defines it (0 in quick mode) */
    struct backend_conf *backends; /* heap array, owned by the config */
    uint32_t nbackends;
    char balance[32];             /* name of a balancer in balance.c's table */
    char hash_key[128];           /* maglev: client_ip, uri, header:N, cookie:N, query:N */
    uint32_t hash_balance_factor; /* maglev bounded load, percent; 0 = off */
    char sticky_cookie[64];       /* sticky: cookie name */
    char sticky_secret[128];      /* sticky: key of the cookie values */
    char health_path[256];        /* "" = TCP connect checks */
    uint32_t health_interval_ms;  /* 0 = no active checks */
    uint32_t health_timeout_ms;
    uint32_t health_rise, health_fall;
    uint16_t health_status_min, health_status_max; /* expected status range */
    uint32_t max_fails;     /* passive: failures in a row on live traffic; 0 = off */
    uint32_t retries;       /* further attempts for one request, on other backends */
    uint32_t connect_ms;    /* backend connect */
    uint32_t response_ms;   /* backend idle while a response is awaited or streamed: 504 */
    uint32_t slow_start_ms; /* a backend back UP ramps to its full share over this; 0 = off */
    /* TLS to the https:// backends of the pool */
    uint8_t tls_verify;            /* check the backend's certificate (default true) */
    char tls_ca[256];              /* CA file; "" = the system store */
    char tls_server_name[256];     /* SNI and the name checked; "" = the URL's host */
    char tls_cert[256];            /* client certificate (PEM chain, may hold the key); "" = none */
    char tls_key[256];             /* its key; "" = in tls_cert */
    struct discover_conf discover; /* backends from DNS; off while discover.dns is "" */
};

/* A request whose Host (without port) and target match goes to pool; an
 * empty host or path_prefix matches anything. First match wins. */
struct route_conf {
    char host[256];
    char path_prefix[256];
    int32_t pool; /* index in config.pools */
};

#define CONFIG_MAX_CERTS 64

/* A certificate of a TLS listener. */
struct cert_conf {
    char cert[256];        /* PEM: the certificate, then its chain; may hold the key too */
    char key[256];         /* PEM key; "" = it is in cert */
    uint32_t line, column; /* where it was given (0 on the command line) */
};

enum tls_client_verify { TLS_CLIENT_REQUIRED, TLS_CLIENT_OPTIONAL };
enum tls_version { TLS_V12, TLS_V13 };
/* what a listener speaks (its protocols key) */
enum listener_protocols { PROTO_AUTO, PROTO_HTTP1, PROTO_H2 };
/* who runs the TLS 1.3 record layer after the handshake (src/tls/conn_tls13.c) */
enum tls_record_layer { TLS_RECORD_USHER, TLS_RECORD_OPENSSL };

struct listener_conf {
    char bind[80];
    struct sock_addr addr;
    int32_t pool; /* index in config.pools: requests no route takes */
    struct route_conf *routes;
    uint32_t nroutes;
    uint32_t line, column; /* where its bind is (0 in quick mode) */

    /* TLS: a listener with certificates terminates TLS */
    uint8_t tls;
    struct cert_conf *certs; /* heap array, owned by the config */
    uint32_t ncerts;
    uint8_t tls_min_version;       /* enum tls_version */
    uint8_t tls_tickets;           /* session tickets (default true) */
    uint32_t tls_session_cache;    /* sessions kept for resumption by id; 0 = none */
    char tls_ciphers[512];         /* TLS 1.2 suites, OpenSSL syntax; "" = the default */
    char tls_ciphersuites[256];    /* TLS 1.3 suites; "" = the default */
    char client_ca[256];           /* "" = no client certificate is asked for */
    uint8_t client_verify;         /* enum tls_client_verify */
    char client_verify_header[64]; /* "" = the result is not passed on */
    char client_subject_header[64];
    uint8_t tls_record_layer; /* enum tls_record_layer */

    uint8_t protocols; /* enum listener_protocols */

    /* HTTP around TLS */
    uint8_t redirect_https; /* a plain listener answers 308 to https:// */
    uint32_t https_port;    /* the port the redirect names (443: none written) */
    uint32_t hsts_max_age;  /* a TLS listener sends Strict-Transport-Security; 0 = off */
    uint8_t hsts_subdomains;
};

struct config {
    char file[256]; /* the file it came from; "" for the command line */
    struct listener_conf *listeners;
    uint32_t nlisteners;
    struct pool_conf *pools;
    uint32_t npools;
    uint32_t threads; /* worker threads; 0 = one per CPU */

    /* timeouts, ms */
    uint32_t client_header_ms; /* whole request head must arrive within this: 408 */
    uint32_t client_idle_ms;   /* keep-alive idle between requests */
    uint32_t client_body_ms;   /* client silent this long while usher waits for its body: 408 */
    uint32_t upstream_idle_ms; /* idle pooled backend connection is closed after this */
    uint32_t tunnel_idle_ms;   /* an upgraded (WebSocket) tunnel with no traffic is closed */
    uint32_t grace_ms;         /* SIGTERM/SIGINT: how long in-flight requests may take */

    /* limits */
    uint32_t max_header_bytes; /* request head size: 431 beyond (at most the buffer size) */
    uint32_t max_headers;      /* header lines in a request head: 431 beyond */
    uint32_t max_request_line; /* bytes: 414 beyond */
    uint32_t max_conns;        /* client connections per worker */
    uint64_t max_body_size;    /* request body bytes: 413 beyond; 0 = no limit */

    /* TLS */
    uint32_t tls_ticket_rotation_ms; /* a new session ticket key this often */

    /* HTTP/2 from clients (src/proxy/h2_client.c) */
    uint32_t h2_max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t h2_max_header_list_size;   /* decoded header block bytes (RFC 9113 6.5.2) */
    uint32_t h2_max_header_frames;      /* HEADERS + CONTINUATION frames of one block */
    uint32_t h2_max_total_streams;      /* per connection, then GOAWAY; 0 = no limit */
    uint32_t h2_initial_window_size;    /* per stream, bytes */
    uint32_t h2_glitches_threshold;     /* suspicious events before ENHANCE_YOUR_CALM; 0 = off */

    /* access log */
    char access_log[256];      /* "" = off, "-" or "stdout", or a file path */
    uint8_t access_log_format; /* enum accesslog_format */

    /* the main log (stderr) */
    uint8_t log_level;  /* enum log_level: lines below are dropped */
    uint8_t log_format; /* enum log_format: text or json */

    /* started as root: whom to run as once listeners and files are open */
    char user[64];  /* "" = stay who usher was started as */
    char group[64]; /* "" = the user's own group */

    /* admin listener (src/admin/): "" = off */
    char admin_bind[80];
    char admin_token[128]; /* "" = changes need no token (loopback only) */
};

/* Fills c with the documented defaults, from settings.c's table (no listener, no pool). */
void config_defaults(struct config *c);
/* Fills p with the documented pool defaults, from settings.c's table (no backend). */
void config_pool_defaults(struct pool_conf *p);
/* Fills l with the documented listener defaults (no address, no pool). */
void config_listener_defaults(struct listener_conf *l);
/* Frees what c's arrays hold. */
void config_free(struct config *c);
/* A deep copy of src into dst (for a reload that re-reads only certificates).
 * Returns 0 or -ENOMEM (dst is then empty). */
int config_copy(struct config *dst, const struct config *src);
/* Parses a listen address: "HOST:PORT", "http://HOST:PORT" or
 * "https://HOST:PORT" into l->addr, l->bind and l->tls. Returns 0, or
 * -EINVAL with *why set. */
int config_parse_listen(const char *s, struct listener_conf *l, const char **why);

/* Reads a YAML file into c (which holds the defaults). Every error is written
 * to errors as "FILE:LINE:COLUMN: what was expected". Returns the number of
 * errors: 0 means c is ready to use. */
int config_load_file(struct config *c, const char *path, FILE *errors);

/* Parses "500ms", "2s", "1m", "1h" (or a bare number of seconds) into *ms.
 * Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint32_t *ms);

/* Parses "http://HOST[:PORT][/][,weight=N][,drain]" (port 80 by default) or
 * "https://..." (TLS, port 443 by default) into b. Returns 0, or -EINVAL with
 * an explanation written into why. */
int config_parse_backend(const char *s, struct backend_conf *b, char *why, size_t why_cap);

/* Whether p may speak TLS to a backend: it has a static https:// one, or it
 * discovers with scheme https (its tls settings apply, its tls_client is built). */
int config_pool_tls(const struct pool_conf *p);

/* Checks a pool's discover settings together (the port for A and AAAA only, an
 * SRV name's shape, min_ttl <= max_ttl): 0, or -EINVAL with why written and
 * *key set to the key at fault ("port", "dns", "max_ttl"). */
int config_check_discover(const struct discover_conf *d, char *why, size_t why_cap,
                          const char **key);
/* Checks a resolver "HOST:PORT" (numeric IPv4 or [IPv6]) and copies it into
 * out in the form c-ares takes: 0, or -EINVAL with why written. */
int config_parse_resolver(const char *s, char *out, size_t cap, char *why, size_t why_cap);
/* Parses a quick-mode "dns+http://NAME:PORT" or "srv+http://_svc._proto.NAME"
 * (or dns+https://, srv+https://: TLS to the backends) into d (type, scheme,
 * name, port): 1 when s is one of them, 0 when it is not (a plain URL),
 * -EINVAL with why written when it is one but wrong. */
int config_parse_discover_url(const char *s, struct discover_conf *d, char *why, size_t why_cap);

/* Checks the admin listener's settings (after USHER_ADMIN_TOKEN fills an
 * empty token): the address parses, and one that is not loopback has a
 * token. 0, or -EINVAL with why written. Nothing to check when it is off. */
int config_check_admin(struct config *c, char *why, size_t why_cap);

/* Parses argv: quick-mode flags build one listener and one pool named
 * "default"; -c FILE reads the file instead. Returns 0 to run, -1 when it
 * printed --help or --version (exit 0), or the exit status after printing
 * what was wrong (2 for the command line, 1 for a configuration file).
 * *check_only is set for -t. */
int config_from_args(struct config *c, int argc, char **argv, int *check_only);
/* Stores into c the flags of the last config_from_args that win over a file
 * (--log-level, --user...: SETTING_WITH_FILE), for a reload. Returns 0. */
int config_apply_overrides(struct config *c);

#endif
