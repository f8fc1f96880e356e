/* settings: the one table of settings and the one validator (see settings.h).
 * A setting added here is known to the file reader at once; the command line
 * knows it when it has a flag (and --help and docs/CONFIG.md should say so). */
#include "config/settings.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance/balance.h"
#include "balance/common.h"
#include "config/config.h"
#include "core/sock.h"

#define TOP(f)                                                                                     \
    .scope = SETTING_TOP, .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define POOL(f)                                                                                    \
    .scope = SETTING_POOL, .off = offsetof(struct pool_conf, f),                                   \
    .size = sizeof(((struct pool_conf *)0)->f)
#define BACKEND(f)                                                                                 \
    .scope = SETTING_BACKEND, .off = offsetof(struct backend_conf, f),                             \
    .size = sizeof(((struct backend_conf *)0)->f)

#define LISTENER(f)                                                                                \
    .scope = SETTING_LISTENER, .off = offsetof(struct listener_conf, f),                           \
    .size = sizeof(((struct listener_conf *)0)->f)

#define MAX_SIZE_BYTES (1ULL << 40) /* 1 TiB: sizes above are surely a mistake */

static const char *const access_log_formats[] = {"combined", "json", NULL}; /* accesslog.h order */
static const char *const health_types[] = {"http", "tcp", "off", NULL};
static const char *const tls_versions[] = {"1.2", "1.3", NULL};            /* enum tls_version */
static const char *const client_verify[] = {"required", "optional", NULL}; /* config.h order */
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL}; /* log.h order */
static const char *const log_formats[] = {"text", "json", NULL};                  /* log.h order */
static const char *const listener_protocols[] = {"auto", "http1", "h2", NULL}; /* config.h order */
static const char *const record_layers[] = {"usher", "openssl", NULL}; /* enum tls_record_layer */
/* enum discover_conf_type order; a+aaaa asks both (quick mode's dns+http://) */
static const char *const discover_types[] = {"a", "aaaa", "srv", "a+aaaa", NULL};
/* enum discover_conf_scheme order; https: the pool's tls settings apply (quick mode's dns+https://)
 */
static const char *const discover_schemes[] = {"http", "https", NULL};

/* clang-format off */
const struct setting settings_table[] = {
    /* top level: struct config */
    {.key = "threads", .flag = "--threads", .type = SETTING_UINT, .flags = SETTING_AUTO,
     .min = 1, .max = 256, TOP(threads), .def = "auto"},
    {.key = "timeouts.client_header", .type = SETTING_DURATION, .max = UINT32_MAX,
     TOP(client_header_ms), .def = "10s"},
    {.key = "timeouts.client_idle", .type = SETTING_DURATION, .max = UINT32_MAX,
     TOP(client_idle_ms), .def = "60s"},
    /* 0 would answer 408 to every body before its first byte could arrive */
    {.key = "timeouts.client_body", .type = SETTING_DURATION, .min = 1, .max = UINT32_MAX,
     TOP(client_body_ms), .def = "60s"},
    {.key = "timeouts.upstream_idle", .type = SETTING_DURATION, .max = UINT32_MAX,
     TOP(upstream_idle_ms), .def = "30s"},
    {.key = "timeouts.tunnel_idle", .type = SETTING_DURATION, .max = UINT32_MAX,
     TOP(tunnel_idle_ms), .def = "300s"},
    {.key = "timeouts.grace", .type = SETTING_DURATION, .max = UINT32_MAX, TOP(grace_ms),
     .def = "30s"},
    /* at most the size of a session's head buffer */
    {.key = "limits.max_header_bytes", .type = SETTING_UINT, .min = 1024, .max = 16384,
     TOP(max_header_bytes), .def = "16384"},
    {.key = "limits.max_headers", .type = SETTING_UINT, .min = 1, .max = 128, TOP(max_headers),
     .def = "100"},
    {.key = "limits.max_request_line", .type = SETTING_UINT, .min = 64, .max = 16384,
     TOP(max_request_line), .def = "8192"},
    {.key = "limits.max_connections", .type = SETTING_UINT, .min = 1, .max = 10000000,
     TOP(max_conns), .def = "100000"},
    {.key = "limits.max_body_size", .type = SETTING_SIZE, .max = MAX_SIZE_BYTES,
     TOP(max_body_size), .def = "0"},
    /* "" is the default: no access log */
    {.key = "access_log.path", .flag = "--access-log", .type = SETTING_STRING, .min = 0,
     .max = 255, TOP(access_log), .expect = "a file path or - for stdout"},
    {.key = "access_log.format", .flag = "--access-log-format", .type = SETTING_ENUM,
     TOP(access_log_format), .choices = access_log_formats, .def = "combined"},
    /* the previous key still decrypts, so a ticket lives one to two periods */
    {.key = "tls.ticket_rotation", .flag = "--tls-ticket-rotation", .type = SETTING_DURATION,
     .min = 1000, .max = 7 * 24 * 3600 * 1000U, TOP(tls_ticket_rotation_ms), .def = "1h"},
    /* the main log (stderr); the flags may be added to -c FILE */
    {.key = "log.level", .flag = "--log-level", .type = SETTING_ENUM, .flags = SETTING_WITH_FILE,
     TOP(log_level), .choices = log_levels, .def = "info"},
    {.key = "log.format", .flag = "--log-format", .type = SETTING_ENUM, .flags = SETTING_WITH_FILE,
     TOP(log_format), .choices = log_formats, .def = "text"},
    /* "" is the default for both: no change of user (app/privs.c) */
    {.key = "user", .flag = "--user", .type = SETTING_USER, .flags = SETTING_WITH_FILE, TOP(user)},
    {.key = "group", .flag = "--group", .type = SETTING_GROUP, .flags = SETTING_WITH_FILE,
     TOP(group)},
    /* HTTP/2 (docs/CONFIG.md): a stream's request body is held in at most
     * initial_window_size / 16 KiB + 2 buffers, hence its bound */
    {.key = "h2.max_concurrent_streams", .type = SETTING_UINT, .min = 1, .max = 1000,
     TOP(h2_max_concurrent_streams), .def = "100"},
    {.key = "h2.max_header_list_size", .type = SETTING_UINT, .min = 1024, .max = 1048576,
     TOP(h2_max_header_list_size), .def = "65536"},
    {.key = "h2.max_header_frames", .type = SETTING_UINT, .min = 1, .max = 1000,
     TOP(h2_max_header_frames), .def = "16"},
    {.key = "h2.max_total_streams", .type = SETTING_UINT, .flags = SETTING_OFF, .min = 1,
     .max = UINT32_MAX, TOP(h2_max_total_streams), .def = "0"},
    {.key = "h2.initial_window_size", .type = SETTING_UINT, .min = 1024, .max = 1048576,
     TOP(h2_initial_window_size), .def = "65535"},
    {.key = "h2.glitches_threshold", .type = SETTING_UINT, .flags = SETTING_OFF, .min = 1,
     .max = UINT32_MAX, TOP(h2_glitches_threshold), .def = "1000"},
    /* "" is the default: no admin listener; checked by config_check_admin */
    {.key = "admin.bind", .flag = "--admin", .type = SETTING_STRING, .min = 0, .max = 79,
     TOP(admin_bind), .expect = "HOST:PORT, such as 127.0.0.1:9000"},
    /* the value is never echoed in a message: it is a secret */
    {.key = "admin.token", .type = SETTING_STRING, .min = 0, .max = 127, TOP(admin_token),
     .expect = "a bearer token for the admin API's changes"},

    /* a listener: struct listener_conf (bind, pool, routes and certificates apart);
     * in quick mode a flag applies to every --listen */
    {.key = "tls.min_version", .flag = "--tls-min-version", .type = SETTING_ENUM,
     LISTENER(tls_min_version), .choices = tls_versions, .def = "1.2"},
    {.key = "tls.ciphers", .flag = "--tls-ciphers", .type = SETTING_STRING, .min = 1, .max = 511,
     LISTENER(tls_ciphers), .expect = "an OpenSSL cipher list for TLS 1.2",
     .def = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"},
    {.key = "tls.ciphersuites", .flag = "--tls-ciphersuites", .type = SETTING_STRING, .min = 1,
     .max = 255, LISTENER(tls_ciphersuites), .expect = "a list of TLS 1.3 suites",
     .def = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"},
    {.key = "tls.session_tickets", .flag = "--tls-session-tickets", .type = SETTING_BOOL,
     LISTENER(tls_tickets), .def = "true"},
    {.key = "tls.session_cache", .flag = "--tls-session-cache", .type = SETTING_UINT,
     .min = 0, .max = 10000000, LISTENER(tls_session_cache), .def = "20000"},
    /* "" is the default: no client certificate is asked for */
    {.key = "tls.client_ca", .flag = "--client-ca", .type = SETTING_STRING, .min = 0,
     .max = 255, LISTENER(client_ca), .expect = "a PEM file of CA certificates"},
    {.key = "tls.client_verify", .flag = "--client-verify", .type = SETTING_ENUM,
     LISTENER(client_verify), .choices = client_verify, .def = "required"},
    {.key = "tls.client_verify_header", .flag = "--client-verify-header", .type = SETTING_COOKIE,
     LISTENER(client_verify_header), .expect = "a header name such as X-Client-Verify"},
    {.key = "tls.client_subject_header", .flag = "--client-subject-header",
     .type = SETTING_COOKIE, LISTENER(client_subject_header),
     .expect = "a header name such as X-Client-Subject"},
    {.key = "tls.record_layer", .flag = "--tls-record-layer", .type = SETTING_ENUM,
     LISTENER(tls_record_layer), .choices = record_layers, .def = "usher"},
    /* auto: HTTP/1.1, and HTTP/2 by ALPN or by its preface; http1; h2 (HAProxy's proto h2) */
    {.key = "protocols", .flag = "--protocols", .type = SETTING_ENUM, LISTENER(protocols),
     .choices = listener_protocols, .def = "auto"},
    {.key = "redirect_https", .flag = "--redirect-https", .type = SETTING_BOOL,
     LISTENER(redirect_https), .def = "false"},
    {.key = "https_port", .flag = "--https-port", .type = SETTING_UINT, .min = 1, .max = 65535,
     LISTENER(https_port), .def = "443"},
    /* seconds, as the header writes it: a year is 31536000 */
    {.key = "hsts.max_age", .flag = "--hsts-max-age", .type = SETTING_UINT, .min = 0,
     .max = 1000000000, LISTENER(hsts_max_age), .def = "0"},
    {.key = "hsts.include_subdomains", .flag = "--hsts-include-subdomains", .type = SETTING_BOOL,
     LISTENER(hsts_subdomains), .def = "false"},

    /* a pool: struct pool_conf */
    {.key = "balance", .flag = "--balance", .type = SETTING_BALANCE, POOL(balance),
     .def = "round-robin"},
    {.key = "hash_key", .flag = "--hash-key", .type = SETTING_KEY, POOL(hash_key),
     .def = "client_ip", .only_balance = "maglev"},
    {.key = "hash_balance_factor", .flag = "--hash-balance-factor", .type = SETTING_UINT,
     .flags = SETTING_OFF, .min = 100, .max = 10000, POOL(hash_balance_factor), .def = "0",
     .expect = "0 (off) or a percentage from 100 to 10000, such as 150",
     .only_balance = "maglev"},
    {.key = "sticky_cookie", .flag = "--sticky-cookie", .type = SETTING_COOKIE,
     POOL(sticky_cookie), .def = "usher_backend", .only_balance = "sticky"},
    /* an empty key would make the cookie values predictable */
    {.key = "sticky_secret", .flag = "--sticky-secret", .type = SETTING_STRING, .min = 1,
     .max = 127, POOL(sticky_secret), .def = "usher", .only_balance = "sticky"},
    /* read by yaml.c itself: it decides between health.path and health.interval */
    {.key = "health.type", .type = SETTING_ENUM, .scope = SETTING_POOL, .off = SETTING_NOWHERE,
     .choices = health_types},
    /* "" is the default: TCP connect checks */
    {.key = "health.path", .flag = "--health-path", .type = SETTING_PATH, POOL(health_path)},
    /* 0 or off: no active checks; below 10ms a check would be busy-looping */
    {.key = "health.interval", .flag = "--health-interval", .type = SETTING_DURATION,
     .flags = SETTING_OFF, .min = 10, .max = UINT32_MAX, POOL(health_interval_ms), .def = "2s"},
    /* 0 would fail every check before it could connect */
    {.key = "health.timeout", .flag = "--health-timeout", .type = SETTING_DURATION, .min = 1,
     .max = UINT32_MAX, POOL(health_timeout_ms), .def = "1s"},
    {.key = "health.rise", .flag = "--health-rise", .type = SETTING_UINT, .min = 1, .max = 1000,
     POOL(health_rise), .def = "2"},
    {.key = "health.fall", .flag = "--health-fall", .type = SETTING_UINT, .min = 1, .max = 1000,
     POOL(health_fall), .def = "3"},
    {.key = "health.expect_status", .flag = "--health-status", .type = SETTING_STATUS,
     .min = 100, .max = 599, POOL(health_status_min),
     .off2 = offsetof(struct pool_conf, health_status_max), .def = "200-399"},
    {.key = "max_fails", .flag = "--max-fails", .type = SETTING_UINT, .min = 0, .max = 1000,
     POOL(max_fails), .def = "3"},
    /* a request tries at most BALANCE_MAX_TRIES (8) backends: the first and 7 more */
    {.key = "retries", .flag = "--retries", .type = SETTING_UINT, .min = 0, .max = 7,
     POOL(retries), .def = "2"},
    /* 0 would fail every connect (and time out every response) at once; it is refused
     * rather than read as "no timeout", which a balancer should not have either */
    {.key = "timeouts.connect", .flag = "--connect-timeout", .type = SETTING_DURATION, .min = 1,
     .max = UINT32_MAX, POOL(connect_ms), .def = "2s"},
    {.key = "timeouts.response", .flag = "--response-timeout", .type = SETTING_DURATION,
     .min = 1, .max = UINT32_MAX, POOL(response_ms), .def = "60s"},
    {.key = "slow_start", .flag = "--slow-start", .type = SETTING_DURATION,
     .flags = SETTING_OFF, .min = 1, .max = UINT32_MAX, POOL(slow_start_ms), .def = "0"},
    {.key = "tls.verify", .flag = "--backend-tls-verify", .type = SETTING_BOOL, POOL(tls_verify),
     .def = "true"},
    /* "" is the default for the four below: the system store, the URL's host, no
     * client certificate */
    {.key = "tls.ca", .flag = "--backend-tls-ca", .type = SETTING_STRING, .min = 0, .max = 255,
     POOL(tls_ca), .expect = "a PEM file of CA certificates"},
    {.key = "tls.server_name", .flag = "--backend-tls-server-name", .type = SETTING_STRING,
     .min = 0, .max = 255, POOL(tls_server_name), .expect = "a host name"},
    {.key = "tls.cert", .flag = "--backend-tls-cert", .type = SETTING_STRING, .min = 0,
     .max = 255, POOL(tls_cert), .expect = "a PEM file: certificate, chain, maybe the key"},
    {.key = "tls.key", .flag = "--backend-tls-key", .type = SETTING_STRING, .min = 0, .max = 255,
     POOL(tls_key), .expect = "a PEM key file"},
    /* backends from DNS (docs/DISCOVERY.md): the block is checked as a whole by
     * config_check_discover; resolvers (a list) by config_parse_resolver */
    {.key = "discover.dns", .type = SETTING_DNSNAME, POOL(discover.dns),
     .expect = "a DNS name such as web.service.consul or _http._tcp.web.service.consul"},
    {.key = "discover.type", .type = SETTING_ENUM, POOL(discover.type), .choices = discover_types,
     .def = "a+aaaa"},
    {.key = "discover.port", .type = SETTING_UINT, .min = 1, .max = 65535, POOL(discover.port)},
    /* what the discovered backends speak: https:// URLs, the pool's tls settings */
    {.key = "discover.scheme", .type = SETTING_ENUM, POOL(discover.scheme),
     .choices = discover_schemes, .def = "http"},
    /* a TTL below min_ttl is asked again after min_ttl, above max_ttl after max_ttl */
    {.key = "discover.min_ttl", .flag = "--dns-min-ttl", .type = SETTING_DURATION, .min = 100,
     .max = 24 * 3600 * 1000U, POOL(discover.min_ttl_ms), .def = "1s"},
    {.key = "discover.max_ttl", .flag = "--dns-max-ttl", .type = SETTING_DURATION, .min = 100,
     .max = 24 * 3600 * 1000U, POOL(discover.max_ttl_ms), .def = "300s"},
    /* how long the last set stays while the DNS fails (then the pool has no
     * discovered backend); 0: none stays */
    {.key = "discover.hold", .flag = "--dns-hold", .type = SETTING_DURATION,
     .max = 7 * 24 * 3600 * 1000U, POOL(discover.hold_ms), .def = "5m"},
    /* one question, both of its tries */
    {.key = "discover.timeout", .flag = "--dns-timeout", .type = SETTING_DURATION, .min = 10,
     .max = 60000, POOL(discover.timeout_ms), .def = "2s"},

    /* a backend of a pool's list: struct backend_conf (the URL is parsed apart) */
    {.key = "weight", .type = SETTING_UINT, .min = 1, .max = 1000, BACKEND(weight), .def = "1"},
    {.key = "drain", .type = SETTING_BOOL, BACKEND(drain), .def = "false"},
    /* "" is the default: the URL's HOST:PORT */
    {.key = "name", .type = SETTING_STRING, .min = 0, .max = 63, BACKEND(name),
     .expect = "a backend name for metrics and the admin API"},
    {.key = NULL},
};
/* clang-format on */

const struct setting *settings_find(enum setting_scope scope, const char *key)
{
    for (const struct setting *s = settings_table; s->key; s++)
        if (s->scope == scope && !strcmp(s->key, key)) return s;
    return NULL;
}

const struct setting *settings_find_flag(const char *flag)
{
    for (const struct setting *s = settings_table; s->key; s++)
        if (s->flag && !strcmp(s->flag, flag)) return s;
    return NULL;
}

int settings_is_section(enum setting_scope scope, const char *section)
{
    size_t n = strlen(section);
    for (const struct setting *s = settings_table; s->key; s++)
        if (s->scope == scope && !strncmp(s->key, section, n) && s->key[n] == '.') return 1;
    return 0;
}

static void choices_text(const char *const *choices, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; choices[i] && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                                i == 0           ? ""
                                : choices[i + 1] ? ", "
                                                 : " or ",
                                choices[i]);
}

void settings_expected(const struct setting *s, char *buf, size_t cap)
{
    static const char examples[] = "such as 500ms, 2s, 1m or 1h";
    if (s->type == SETTING_STRING) {
        if (s->min)
            snprintf(buf, cap, "%s%s%llu to %llu characters%s", s->expect ? s->expect : "",
                     s->expect ? " (" : "", (unsigned long long)s->min, (unsigned long long)s->max,
                     s->expect ? ")" : "");
        else
            snprintf(buf, cap, "%s%sat most %llu characters%s", s->expect ? s->expect : "",
                     s->expect ? " (" : "", (unsigned long long)s->max, s->expect ? ")" : "");
        return;
    }
    if (s->expect) {
        snprintf(buf, cap, "%s", s->expect);
        return;
    }
    switch (s->type) {
    case SETTING_DURATION:
        /* "expected a duration" first: the words a reader looks for */
        if (s->min > 1 || (s->min && !(s->flags & SETTING_OFF)))
            snprintf(buf, cap, "a duration of at least %llums %s%s", (unsigned long long)s->min,
                     examples, s->flags & SETTING_OFF ? ", or 0 or off" : "");
        else
            snprintf(buf, cap, "a duration %s%s", examples,
                     s->flags & SETTING_OFF ? ", or 0 or off" : "");
        return;
    case SETTING_UINT:
        snprintf(buf, cap, "%sa number from %llu to %llu%s",
                 s->flags & SETTING_OFF ? "0 (off) or " : "", (unsigned long long)s->min,
                 (unsigned long long)s->max, s->flags & SETTING_AUTO ? " or auto" : "");
        return;
    case SETTING_SIZE:
        snprintf(buf, cap,
                 "a size in bytes up to %llu (1 TiB), optionally with k, m or g (KiB, MiB, "
                 "GiB), such as 1048576 or 10m",
                 (unsigned long long)s->max);
        return;
    case SETTING_STRING: break; /* above */
    case SETTING_BOOL: snprintf(buf, cap, "true or false"); return;
    case SETTING_ENUM: choices_text(s->choices, buf, cap); return;
    case SETTING_STATUS: snprintf(buf, cap, "a status or a range such as 200-399"); return;
    case SETTING_BALANCE: snprintf(buf, cap, "one of: %s", balance_names()); return;
    case SETTING_KEY:
        snprintf(buf, cap, "client_ip, uri, header:NAME, cookie:NAME or query:NAME");
        return;
    case SETTING_COOKIE:
        snprintf(buf, cap, "a cookie name of 1 to %zu letters, digits or !#$%%&'*+-.^_`|~",
                 s->size - 1);
        return;
    case SETTING_PATH: snprintf(buf, cap, "a path starting with / (no spaces)"); return;
    case SETTING_DNSNAME: snprintf(buf, cap, "a DNS name"); return;
    case SETTING_USER: snprintf(buf, cap, "the name of a user of this system"); return;
    case SETTING_GROUP: snprintf(buf, cap, "the name of a group of this system"); return;
    }
    buf[0] = 0;
}

/* Digits only (no sign, no spaces: strtoul would take both). */
static int parse_number(const char *text, unsigned long long *v, char **end)
{
    if (!isdigit((unsigned char)text[0])) return -EINVAL;
    errno = 0;
    *v = strtoull(text, end, 10);
    return errno ? -EINVAL : 0;
}

int config_parse_duration(const char *s, uint32_t *ms)
{
    char *end;
    unsigned long long v, mult;
    if (parse_number(s, &v, &end) < 0) return -EINVAL;
    if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "s") || !*end)
        mult = 1000;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (!strcmp(end, "h"))
        mult = 3600000;
    else
        return -EINVAL;
    if (v > UINT32_MAX / mult) return -EINVAL;
    *ms = (uint32_t)(v * mult);
    return 0;
}

/* A size in bytes: a number, optionally followed by k, m or g (KiB, MiB, GiB). */
static int parse_size(const char *text, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v, mult = 1;
    if (parse_number(text, &v, &end) < 0) return -EINVAL;
    if (*end) {
        static const char units[] = "kKmMgG";
        const char *u = strchr(units, *end);
        if (!u || end[1]) return -EINVAL;
        mult = 1ULL << (10 * (1 + (u - units) / 2));
    }
    if (v > max / mult) return -EINVAL;
    *out = v * mult;
    return 0;
}

/* "200" or "200-399", each from min to max, the first not above the second. */
static int parse_status(const struct setting *s, const char *text, uint16_t *lo, uint16_t *hi)
{
    char *end;
    unsigned long long a, b;
    if (parse_number(text, &a, &end) < 0) return -EINVAL;
    b = a;
    if (*end == '-' && parse_number(end + 1, &b, &end) < 0) return -EINVAL;
    if (*end || a < s->min || b > s->max || a > b) return -EINVAL;
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return 0;
}

static void store_string(void *base, const struct setting *s, const char *text)
{
    if (base) snprintf((char *)base + s->off, s->size, "%s", text);
}

/* Whether name looks like a DNS name (RFC 1035 2.3.4: labels of 1 to 63
 * characters, 253 in all; letters, digits, '-' and '_' (SRV's _service._proto,
 * RFC 2782), no '-' at a label's ends). A final '.' is allowed. */
static int dns_name_ok(const char *name, char *why, size_t cap)
{
    size_t len = strlen(name), label = 0;
    if (!len || (len == 1 && name[0] == '.')) {
        snprintf(why, cap, "empty");
        return 0;
    }
    if (len > 253 + (name[len - 1] == '.')) {
        snprintf(why, cap, "longer than 253 characters");
        return 0;
    }
    for (size_t i = 0; i <= len; i++) {
        char ch = name[i];
        if (ch == '.' || ch == 0) {
            if (!label && !(ch == 0 && i == len && i > 0 && name[i - 1] == '.')) {
                snprintf(why, cap, "an empty label (two dots, or a dot first)");
                return 0;
            }
            if (label && name[i - 1] == '-') {
                snprintf(why, cap, "a label ends with '-'");
                return 0;
            }
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_') {
            snprintf(why, cap, "the character '%c' is not allowed (letters, digits, - and _)",
                     isprint((unsigned char)ch) ? ch : '?');
            return 0;
        }
        if (!label && ch == '-') {
            snprintf(why, cap, "a label starts with '-'");
            return 0;
        }
        if (++label > 63) {
            snprintf(why, cap, "a label longer than 63 characters");
            return 0;
        }
    }
    return 1;
}

/* Checks a string-typed value; 0, or -EINVAL with why written. */
static int check_string(const struct setting *s, const char *text, char *why, size_t why_cap)
{
    size_t len = strlen(text), max = s->max && s->max < s->size ? s->max : s->size - 1;
    struct balance_key k;
    char spec[200];
    if (s->type == SETTING_STRING) {
        /* the value itself is left out: it may be a secret */
        if (len < s->min || len > max) {
            char e[160];
            settings_expected(s, e, sizeof(e));
            snprintf(why, why_cap, "expected %s, found %zu", e, len);
            return -EINVAL;
        }
        return 0;
    }
    if (len > max) {
        snprintf(why, why_cap, "too long (at most %zu characters)", max);
        return -EINVAL;
    }
    switch (s->type) {
    case SETTING_BALANCE:
        if (balance_find(text)) return 0;
        snprintf(why, why_cap, "unknown algorithm '%s' (expected one of: %s)", text,
                 balance_names());
        return -EINVAL;
    case SETTING_KEY:
        if (balance_key_parse(text, &k, spec, sizeof(spec)) == 0) return 0;
        snprintf(why, why_cap, "%s, not '%s'", spec, text);
        return -EINVAL;
    case SETTING_COOKIE:
        snprintf(spec, sizeof(spec), "cookie:%s", text);
        if (*text && balance_key_parse(spec, &k, why, why_cap) == 0) return 0;
        break;
    case SETTING_PATH:
        if (text[0] == '/' && !strpbrk(text, " \t\r\n")) return 0;
        break;
    case SETTING_DNSNAME:
        if (dns_name_ok(text, spec, sizeof(spec))) return 0;
        snprintf(why, why_cap, "'%s' is not a DNS name: %s (expected %s)", text, spec,
                 s->expect ? s->expect : "a DNS name");
        return -EINVAL;
    case SETTING_USER:
    case SETTING_GROUP: {
        /* looked up here so that -t and a reload say it, with the file's line */
        char pwbuf[4096];
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;
        int err = s->type == SETTING_USER ? getpwnam_r(text, &pw, pwbuf, sizeof(pwbuf), &pwp)
                                          : getgrnam_r(text, &gr, pwbuf, sizeof(pwbuf), &grp);
        if (*text && (pwp || grp)) return 0;
        if (err && err != ENOENT && err != ESRCH)
            snprintf(why, why_cap, "cannot look up %s '%s': %s",
                     s->type == SETTING_USER ? "user" : "group", text, strerror(err));
        else
            snprintf(why, why_cap, "no %s named '%s' on this system (expected %s)",
                     s->type == SETTING_USER ? "user" : "group", text,
                     s->type == SETTING_USER ? "a user of /etc/passwd or NSS, such as nobody"
                                             : "a group of /etc/group or NSS, such as nogroup");
        return -EINVAL;
    }
    default: break;
    }
    char e[160];
    settings_expected(s, e, sizeof(e));
    snprintf(why, why_cap, "expected %s, not '%s'", e, text);
    return -EINVAL;
}

int settings_parse(const struct setting *s, const char *text, void *base, char *why, size_t why_cap)
{
    char *p = base && s->off != SETTING_NOWHERE ? (char *)base + s->off : NULL;
    int off = (s->flags & SETTING_OFF) && !strcmp(text, "off");
    int automatic = (s->flags & SETTING_AUTO) && !strcmp(text, "auto");
    uint32_t ms = 0;
    unsigned long long v = 0;
    uint64_t size;
    uint16_t lo, hi;
    char *end;
    switch (s->type) {
    case SETTING_DURATION:
        if (!off && config_parse_duration(text, &ms) < 0) break;
        if ((ms < s->min && !(ms == 0 && (s->flags & SETTING_OFF))) || ms > s->max) break;
        if (p) memcpy(p, &ms, sizeof(ms));
        return 0;
    case SETTING_UINT:
        if (!automatic && (parse_number(text, &v, &end) < 0 || *end)) break;
        if (!automatic && (v < s->min || v > s->max) && !(v == 0 && (s->flags & SETTING_OFF)))
            break;
        ms = (uint32_t)v;
        if (p) memcpy(p, &ms, sizeof(ms));
        return 0;
    case SETTING_SIZE:
        if (parse_size(text, s->max, &size) < 0 || size < s->min) break;
        if (p) memcpy(p, &size, sizeof(size));
        return 0;
    case SETTING_BOOL:
        if (strcmp(text, "true") && strcmp(text, "false")) break;
        if (p) *(uint8_t *)p = text[0] == 't';
        return 0;
    case SETTING_ENUM:
        for (int i = 0; s->choices[i]; i++) {
            if (strcmp(text, s->choices[i])) continue;
            if (p) *(uint8_t *)p = (uint8_t)i;
            return i;
        }
        break;
    case SETTING_STATUS:
        if (parse_status(s, text, &lo, &hi) < 0) break;
        if (base) {
            memcpy((char *)base + s->off, &lo, sizeof(lo));
            memcpy((char *)base + s->off2, &hi, sizeof(hi));
        }
        return 0;
    case SETTING_STRING:
    case SETTING_BALANCE:
    case SETTING_KEY:
    case SETTING_COOKIE:
    case SETTING_PATH:
    case SETTING_DNSNAME:
    case SETTING_USER:
    case SETTING_GROUP:
        if (check_string(s, text, why, why_cap) < 0) return -EINVAL;
        if (p) store_string(base, s, text);
        return 0;
    }
    char e[256];
    settings_expected(s, e, sizeof(e));
    snprintf(why, why_cap, "expected %s, not '%s'", e, text);
    return -EINVAL;
}

void settings_defaults(enum setting_scope scope, void *base)
{
    char why[256];
    for (const struct setting *s = settings_table; s->key; s++) {
        if (s->scope != scope || !s->def || s->off == SETTING_NOWHERE) continue;
        /* a default the validator refuses is a bug in the table: test_settings checks
         * every one, so here it is only left unset */
        settings_parse(s, s->def, base, why, sizeof(why));
    }
}

/* Loopback: 127.0.0.0/8, ::1, or IPv4-mapped 127.x. */
static int loopback(const struct sock_addr *a)
{
    if (a->sa.sa_family == AF_INET) return (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
    if (a->sa.sa_family != AF_INET6) return 0;
    const uint8_t *b = a->in6.sin6_addr.s6_addr;
    static const uint8_t one[16] = {[15] = 1};
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    return !memcmp(b, one, 16) || (!memcmp(b, mapped, 12) && b[12] == 127);
}

int config_check_admin(struct config *c, char *why, size_t why_cap)
{
    if (!c->admin_bind[0]) return 0;
    const char *env = getenv("USHER_ADMIN_TOKEN");
    if (!c->admin_token[0] && env && *env) {
        if (strlen(env) >= sizeof(c->admin_token)) {
            snprintf(why, why_cap, "USHER_ADMIN_TOKEN: at most %zu characters",
                     sizeof(c->admin_token) - 1);
            return -EINVAL;
        }
        snprintf(c->admin_token, sizeof(c->admin_token), "%s", env);
    }
    struct sock_addr a;
    const char *perr;
    if (sock_parse_addr(c->admin_bind, &a, &perr) < 0) {
        snprintf(why, why_cap, "'%s': %s (expected HOST:PORT, such as 127.0.0.1:9000)",
                 c->admin_bind, perr);
        return -EINVAL;
    }
    if (!loopback(&a) && !c->admin_token[0]) {
        snprintf(why, why_cap,
                 "'%s' is not a loopback address: the admin API there needs a token "
                 "(admin.token, or USHER_ADMIN_TOKEN), or bind it to 127.0.0.1",
                 c->admin_bind);
        return -EINVAL;
    }
    return 0;
}

int config_check_discover(const struct discover_conf *d, char *why, size_t why_cap,
                          const char **key)
{
    if (!d->dns[0]) {
        *key = "dns";
        snprintf(why, why_cap, "'dns' is required (the name to ask, such as web.service.consul)");
        return -EINVAL;
    }
    if (d->type == DISC_SRV) {
        /* RFC 2782: _Service._Proto.Name */
        const char *dot = strchr(d->dns, '.');
        const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
        if (d->dns[0] != '_' || !dot || dot[1] != '_' || !dot2 || !dot2[1]) {
            *key = "dns";
            snprintf(why, why_cap,
                     "an SRV name is _service._proto.name, such as _http._tcp.web.service.consul "
                     "(not '%s')",
                     d->dns);
            return -EINVAL;
        }
        if (d->port) {
            *key = "port";
            snprintf(why, why_cap, "'port' is for type a or aaaa: an SRV record gives the port");
            return -EINVAL;
        }
    } else if (!d->port) {
        *key = "port";
        snprintf(why, why_cap, "'port' is required for type %s (the backends' port, 1 to 65535)%s",
                 discover_types[d->type], d->dns[0] == '_' ? "; for an SRV name: type: srv" : "");
        return -EINVAL;
    }
    if (d->min_ttl_ms > d->max_ttl_ms) {
        *key = "max_ttl";
        snprintf(why, why_cap, "max_ttl (%u ms) is below min_ttl (%u ms)", d->max_ttl_ms,
                 d->min_ttl_ms);
        return -EINVAL;
    }
    return 0;
}

int config_parse_resolver(const char *s, char *out, size_t cap, char *why, size_t why_cap)
{
    char text[80];
    const char *rb = strrchr(s, ']'), *colon = strrchr(s, ':');
    /* no port: 53; [IPv6] must be bracketed to carry one */
    int has_port = colon && (!rb || colon > rb) && !(s[0] != '[' && strchr(s, ':') != colon);
    if (strlen(s) > 70) {
        snprintf(why, why_cap, "too long (expected HOST:PORT such as 127.0.0.1:8600)");
        return -EINVAL;
    }
    snprintf(text, sizeof(text), "%s%s", s, has_port ? "" : ":53");
    struct sock_addr a;
    const char *perr;
    if (sock_parse_addr(text, &a, &perr) < 0) {
        snprintf(why, why_cap,
                 "'%s': %s (expected HOST:PORT with a numeric IPv4 or [IPv6] host, "
                 "such as 127.0.0.1:8600)",
                 s, perr);
        return -EINVAL;
    }
    char ip[INET6_ADDRSTRLEN];
    if (a.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a.in.sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(a.in.sin_port));
    } else {
        inet_ntop(AF_INET6, &a.in6.sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a.in6.sin6_port));
    }
    return 0;
}

int config_parse_discover_url(const char *s, struct discover_conf *d, char *why, size_t why_cap)
{
    int srv = !strncmp(s, "srv+", 4);
    if (!srv && strncmp(s, "dns+", 4)) return 0;
    int https = !strncmp(s + 4, "https://", 8);
    if (!https && strncmp(s + 4, "http://", 7)) {
        snprintf(why, why_cap,
                 "expected dns+http://NAME:PORT or srv+http://_service._proto.NAME "
                 "(dns+https://, srv+https:// for TLS to the backends)");
        return -EINVAL;
    }
    const char *name = s + 4 + (https ? 8 : 7);
    int plen = (int)(name - s); /* "dns+https://": said in the messages as given */
    char host[256];
    size_t n = strcspn(name, ":/,");
    if (n >= sizeof(host) || n == 0) {
        snprintf(why, why_cap, "expected a DNS name after %.*s", plen, s);
        return -EINVAL;
    }
    memcpy(host, name, n);
    host[n] = 0;
    const char *rest = name + n;
    d->type = srv ? DISC_SRV : DISC_A_AAAA;
    d->scheme = https ? DISC_HTTPS : DISC_HTTP;
    d->port = 0;
    if (*rest == ':') {
        char *end;
        unsigned long long port;
        if (parse_number(rest + 1, &port, &end) < 0 || port < 1 || port > 65535) {
            snprintf(why, why_cap, "expected a port from 1 to 65535 after the name");
            return -EINVAL;
        }
        d->port = (uint32_t)port;
        rest = end;
    }
    if (*rest == '/' && !rest[1]) rest++;
    if (*rest) {
        snprintf(why, why_cap, "%s",
                 *rest == ',' ? "a discovered backend takes no ,weight= or ,drain "
                                "(SRV records give the weights)"
                              : "the URL may not have a path");
        return -EINVAL;
    }
    const struct setting *ns = settings_find(SETTING_POOL, "discover.dns");
    if (check_string(ns, host, why, why_cap) < 0) return -EINVAL;
    snprintf(d->dns, sizeof(d->dns), "%.253s", host);
    const char *key;
    char cwhy[256];
    if (config_check_discover(d, cwhy, sizeof(cwhy), &key) < 0) {
        if (!strcmp(key, "port") && srv)
            snprintf(why, why_cap, "%.*s takes no port: the SRV records give it", plen, s);
        else if (!strcmp(key, "port"))
            snprintf(why, why_cap, "%.*sNAME:PORT needs the backends' port", plen, s);
        else
            snprintf(why, why_cap, "%s", cwhy);
        return -EINVAL;
    }
    return 1;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    settings_defaults(SETTING_TOP, c);
}

void config_pool_defaults(struct pool_conf *p)
{
    memset(p, 0, sizeof(*p));
    settings_defaults(SETTING_POOL, p);
}

void config_listener_defaults(struct listener_conf *l)
{
    memset(l, 0, sizeof(*l));
    settings_defaults(SETTING_LISTENER, l);
    l->pool = -1;
}
