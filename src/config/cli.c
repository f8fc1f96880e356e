/* cli: quick-mode command line (see usher --help and docs/CONFIG.md). */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance/balance.h"
#include "balance/common.h"
#include "version.h"

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->threads = 0;
    c->client_header_ms = 10000;
    c->client_idle_ms = 60000;
    c->client_body_ms = 60000;
    c->upstream_idle_ms = 30000;
    c->tunnel_idle_ms = 300000;
    c->grace_ms = 30000;
    c->max_header_bytes = 16384;
    c->max_headers = 100;
    c->max_request_line = 8192;
    c->max_conns = 100000;
}

void config_pool_defaults(struct pool_conf *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->balance, sizeof(p->balance), "round-robin");
    snprintf(p->hash_key, sizeof(p->hash_key), "client_ip");
    p->hash_balance_factor = 0;
    snprintf(p->sticky_cookie, sizeof(p->sticky_cookie), "usher_backend");
    snprintf(p->sticky_secret, sizeof(p->sticky_secret), "usher");
    p->health_path[0] = 0; /* TCP checks unless a path is given */
    p->health_interval_ms = 2000;
    p->health_timeout_ms = 1000;
    p->health_rise = 2;
    p->health_fall = 3;
    p->health_status_min = 200;
    p->health_status_max = 399;
    p->max_fails = 3;
    p->retries = 2;
    p->connect_ms = 2000;
    p->response_ms = 60000;
}

void config_free(struct config *c)
{
    for (uint32_t i = 0; i < c->npools; i++) free(c->pools[i].backends);
    for (uint32_t i = 0; i < c->nlisteners; i++) free(c->listeners[i].routes);
    free(c->pools);
    free(c->listeners);
    c->pools = NULL;
    c->listeners = NULL;
    c->npools = c->nlisteners = 0;
}

int config_parse_duration(const char *s, uint32_t *ms)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -EINVAL;
    unsigned long long mult;
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

int config_parse_backend(const char *s, struct backend_conf *b, char *why, size_t why_cap)
{
    memset(b, 0, sizeof(*b));
    b->weight = 1;
    const char *comma = strchr(s, ',');
    size_t urllen = comma ? (size_t)(comma - s) : strlen(s);
    if (urllen >= sizeof(b->url)) {
        snprintf(why, why_cap, "URL too long");
        return -EINVAL;
    }
    memcpy(b->url, s, urllen);
    b->url[urllen] = 0;
    for (const char *opt = comma; opt; opt = strchr(opt + 1, ',')) {
        char *end;
        if (!strncmp(opt + 1, "drain", 5) && (opt[6] == 0 || opt[6] == ',')) {
            b->drain = 1;
            continue;
        }
        if (strncmp(opt + 1, "weight=", 7)) {
            snprintf(why, why_cap, "unknown option after the URL (expected ,weight=N or ,drain)");
            return -EINVAL;
        }
        errno = 0;
        long w = strtol(opt + 8, &end, 10);
        if (opt[8] == 0 || (*end && *end != ',') || errno || w < 1 || w > 1000) {
            snprintf(why, why_cap, "weight must be a number from 1 to 1000");
            return -EINVAL;
        }
        b->weight = (uint32_t)w;
    }
    if (strncmp(b->url, "http://", 7)) {
        snprintf(why, why_cap, "URL must start with http://");
        return -EINVAL;
    }
    const char *auth = b->url + 7;
    size_t alen = strcspn(auth, "/");
    if (auth[alen] == '/' && auth[alen + 1] != 0) {
        snprintf(why, why_cap, "URL may not have a path (requests keep their own)");
        return -EINVAL;
    }
    if (alen == 0 || alen >= sizeof(b->authority) - 6) {
        snprintf(why, why_cap, "URL needs a host");
        return -EINVAL;
    }
    char hostport[sizeof(b->authority)];
    memcpy(hostport, auth, alen);
    hostport[alen] = 0;
    if (hostport[0] == ':' || !strncmp(hostport, "[]", 2)) {
        snprintf(why, why_cap, "URL needs a host");
        return -EINVAL;
    }
    /* Add the default port when none is given ("http://10.0.0.1" or "http://[::1]"). */
    const char *rb = strrchr(hostport, ']');
    const char *colon = strrchr(hostport, ':');
    if (!colon || (rb && colon < rb) || (!rb && hostport[0] == '[')) strcat(hostport, ":80");
    const char *perr;
    if (sock_parse_addr(hostport, &b->addr, &perr) < 0) {
        snprintf(why, why_cap, "%s", perr);
        return -EINVAL;
    }
    if (b->addr.sa.sa_family == AF_INET6 && b->addr.in6.sin6_port == 0) {
        snprintf(why, why_cap, "bad port");
        return -EINVAL;
    }
    snprintf(b->authority, sizeof(b->authority), "%.*s", (int)alen, auth);
    return 0;
}

/* balance_names() folded into lines of the help's second column. */
static void names_folded(char *out, size_t cap)
{
    const char *names = balance_names();
    size_t len = 0, col = 0;
    out[0] = 0;
    while (*names && len + 64 < cap) {
        size_t w = strcspn(names, " ");
        if (col && col + w > 50) {
            len += (size_t)snprintf(out + len, cap - len, "\n%28s", "");
            col = 0;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%.*s", col ? " " : "", (int)w, names);
        col += w + 1;
        names += w;
        while (*names == ' ') names++;
    }
}

static void usage(FILE *f)
{
    char names[512];
    names_folded(names, sizeof(names));
    fprintf(f,
            "usage: usher [options]\n"
            "       usher -c FILE [-t] [--threads N]\n"
            "\n"
            "usher is an HTTP/1.1 load balancer. In quick mode the command line says\n"
            "everything: where to listen and which backends to spread requests over.\n"
            "\n"
            "  --listen HOST:PORT        address to accept clients on (default 0.0.0.0:8000);\n"
            "                            HOST is numeric IPv4, [IPv6] or localhost\n"
            "  --backend URL[,weight=N][,drain]\n"
            "                            a backend, e.g. http://127.0.0.1:8001 (repeatable,\n"
            "                            at least one); weight 1..1000 (default 1); drain:\n"
            "                            it takes no new requests\n"
            "  --balance NAME            how to pick a backend (default round-robin):\n"
            "                            %s\n"
            "  --hash-key KEY            maglev: what to hash: client_ip (default), uri,\n"
            "                            header:NAME, cookie:NAME or query:NAME\n"
            "  --hash-balance-factor P   maglev: a backend with more than P%% of the mean\n"
            "                            load passes the key on (0 = off, default; else\n"
            "                            100..10000, e.g. 150)\n"
            "  --sticky-cookie NAME      sticky: the cookie naming the backend\n"
            "                            (default usher_backend)\n"
            "  --sticky-secret S         sticky: key of the cookie values (default 'usher';\n"
            "                            ushers with the same secret agree)\n"
            "  --health-path PATH        check each backend with GET PATH (e.g. /health);\n"
            "                            without it the check is a TCP connect\n"
            "  --health-interval DUR     time between checks (default 2s); 0 or off turns\n"
            "                            active checks off\n"
            "  --health-timeout DUR      a check that takes longer fails (default 1s)\n"
            "  --health-rise N           passed checks in a row that bring a backend up (2)\n"
            "  --health-fall N           failed checks in a row that take it down (3)\n"
            "  --health-status LO-HI     statuses that pass an HTTP check (default 200-399)\n"
            "  --max-fails N             failures in a row on live traffic (refused, reset,\n"
            "                            timed out, invalid answer) that take a backend\n"
            "                            down at once (default 3; 0 turns this off)\n"
            "  --retries N               further attempts for a request on other backends\n"
            "                            when it is safe (default 2, at most 7)\n"
            "  --connect-timeout DUR     a backend connect that takes longer fails and the\n"
            "                            request goes elsewhere (default 2s)\n"
            "  --response-timeout DUR    a backend silent this long while a response is\n"
            "                            awaited gets 504 (default 60s)\n"
            "  --slow-start DUR          a backend that comes back UP gets its share of\n"
            "                            requests ramped up over DUR (default 0: at once)\n"
            "  --threads N               worker threads, 1..256 (default: one per CPU)\n"
            "  --access-log PATH         one line per request to PATH ('-' for stdout);\n"
            "                            off by default; SIGUSR1 reopens the file\n"
            "  --access-log-format F     combined (default) or json\n"
            "  -c FILE                   read a YAML configuration file (docs/CONFIG.md);\n"
            "                            only --threads and -t may be added\n"
            "  -t                        check the configuration, print 'configuration ok'\n"
            "                            or the errors; exit 0, or 1 for errors in a file\n"
            "  --version                 print the version and exit\n"
            "  -h, --help                print this help and exit\n"
            "\n"
            "Durations are written 500ms, 2s, 1m or 1h. Flags take their value as the next\n"
            "argument or after '=' (--threads=2). Every flag is described in docs/CONFIG.md.\n",
            names);
}

static int fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "usher: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nusher: try 'usher --help'\n");
    return 2;
}

int config_from_args(struct config *c, int argc, char **argv, int *check_only)
{
    config_defaults(c);
    *check_only = 0;
    /* quick mode: one listener, one pool */
    c->pools = calloc(1, sizeof(*c->pools));
    c->listeners = calloc(1, sizeof(*c->listeners));
    if (!c->pools || !c->listeners) return fail("out of memory%s%s", "", "");
    c->npools = c->nlisteners = 1;
    struct pool_conf *p = &c->pools[0];
    struct listener_conf *l = &c->listeners[0];
    config_pool_defaults(p);
    snprintf(p->name, sizeof(p->name), "default");
    const char *defwhy;
    snprintf(l->bind, sizeof(l->bind), "0.0.0.0:8000");
    sock_parse_addr(l->bind, &l->addr, &defwhy);
    l->pool = 0;
    const char *file = NULL;
    int quick_flags = 0, threads_given = 0;
    const char *hash_flag = NULL, *sticky_flag = NULL; /* given: only for their algorithm */
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *val = NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(arg, "--version")) {
            printf("usher %s\n", USHER_VERSION);
            return -1;
        }
        if (!strcmp(arg, "-t")) {
            *check_only = 1;
            continue;
        }
        const char *eq = strncmp(arg, "--", 2) ? NULL : strchr(arg, '=');
        if (eq) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
        }
        static const char *const with_value[] = {"-c",
                                                 "--listen",
                                                 "--backend",
                                                 "--balance",
                                                 "--hash-key",
                                                 "--hash-balance-factor",
                                                 "--sticky-cookie",
                                                 "--sticky-secret",
                                                 "--threads",
                                                 "--health-path",
                                                 "--health-interval",
                                                 "--health-timeout",
                                                 "--health-rise",
                                                 "--health-fall",
                                                 "--health-status",
                                                 "--max-fails",
                                                 "--retries",
                                                 "--connect-timeout",
                                                 "--response-timeout",
                                                 "--slow-start",
                                                 "--access-log",
                                                 "--access-log-format"};
        int known = 0;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            if (!strcmp(name, with_value[k])) known = 1;
        if (!known) return fail("unknown option '%s'%s", arg, "");
        if (!val) {
            if (i + 1 >= argc) return fail("%s needs a value%s", name, "");
            val = argv[++i];
        }
        if (strcmp(name, "-c") && strcmp(name, "--threads")) quick_flags = 1;

        if (!strcmp(name, "-c")) {
            file = val;
        } else if (!strcmp(name, "--listen")) {
            const char *why;
            if (sock_parse_addr(val, &l->addr, &why) < 0)
                return fail("--listen '%s': %s", val, why);
            snprintf(l->bind, sizeof(l->bind), "%s", val);
        } else if (!strcmp(name, "--backend")) {
            char why[128];
            if (p->nbackends >= CONFIG_MAX_BACKENDS) return fail("too many backends%s%s", "", "");
            struct backend_conf *grown =
                realloc(p->backends, (p->nbackends + 1) * sizeof(*p->backends));
            if (!grown) return fail("out of memory%s%s", "", "");
            p->backends = grown;
            if (config_parse_backend(val, &p->backends[p->nbackends], why, sizeof(why)) < 0)
                return fail("--backend '%s': %s", val, why);
            p->nbackends++;
        } else if (!strcmp(name, "--balance")) {
            if (!balance_find(val)) {
                char msg[512];
                snprintf(msg, sizeof(msg),
                         "--balance '%s': unknown algorithm (expected one of: %s)", val,
                         balance_names());
                return fail("%s%s", msg, "");
            }
            snprintf(p->balance, sizeof(p->balance), "%s", val);
        } else if (!strcmp(name, "--hash-key")) {
            char why[160];
            struct balance_key k;
            if (strlen(val) >= sizeof(p->hash_key) ||
                balance_key_parse(val, &k, why, sizeof(why)) < 0)
                return fail("--hash-key '%s': %s", val,
                            strlen(val) >= sizeof(p->hash_key) ? "too long" : why);
            snprintf(p->hash_key, sizeof(p->hash_key), "%s", val);
            hash_flag = "--hash-key";
        } else if (!strcmp(name, "--hash-balance-factor")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (!*val || *end || errno || n < 0 || (n > 0 && n < 100) || n > 10000)
                return fail("--hash-balance-factor '%s': %s", val,
                            "expected 0 (off) or a percentage from 100 to 10000, such as 150");
            p->hash_balance_factor = (uint32_t)n;
            hash_flag = "--hash-balance-factor";
        } else if (!strcmp(name, "--sticky-cookie")) {
            char why[160];
            char spec[sizeof(p->sticky_cookie) + 8];
            struct balance_key k;
            snprintf(spec, sizeof(spec), "cookie:%s", val);
            if (!*val || strlen(val) >= sizeof(p->sticky_cookie) ||
                balance_key_parse(spec, &k, why, sizeof(why)) < 0)
                return fail("--sticky-cookie '%s': %s", val,
                            "expected a cookie name of 1 to 63 letters, digits or "
                            "!#$%&'*+-.^_`|~");
            snprintf(p->sticky_cookie, sizeof(p->sticky_cookie), "%s", val);
            sticky_flag = "--sticky-cookie";
        } else if (!strcmp(name, "--sticky-secret")) {
            if (!*val || strlen(val) >= sizeof(p->sticky_secret))
                return fail("--sticky-secret: %s%s", "expected 1 to 127 characters", "");
            snprintf(p->sticky_secret, sizeof(p->sticky_secret), "%s", val);
            sticky_flag = "--sticky-secret";
        } else if (!strcmp(name, "--health-path")) {
            if (val[0] != '/' || strlen(val) >= sizeof(p->health_path) || strpbrk(val, " \r\n\t"))
                return fail("--health-path '%s': %s", val, "expected a path starting with /");
            snprintf(p->health_path, sizeof(p->health_path), "%s", val);
        } else if (!strcmp(name, "--health-interval")) {
            if (!strcmp(val, "off") || !strcmp(val, "0"))
                p->health_interval_ms = 0;
            else if (config_parse_duration(val, &p->health_interval_ms) < 0 ||
                     p->health_interval_ms < 10)
                return fail("--health-interval '%s': %s", val,
                            "expected a duration of at least 10ms such as 500ms, 2s or 1m, or off");
        } else if (!strcmp(name, "--health-timeout")) {
            if (config_parse_duration(val, &p->health_timeout_ms) < 0 || p->health_timeout_ms < 1)
                return fail("--health-timeout '%s': %s", val,
                            "expected a duration such as 500ms or 2s");
        } else if (!strcmp(name, "--connect-timeout") || !strcmp(name, "--response-timeout")) {
            uint32_t *dst = !strcmp(name, "--connect-timeout") ? &p->connect_ms : &p->response_ms;
            if (config_parse_duration(val, dst) < 0 || *dst < 1)
                return fail("%s: expected a duration such as 500ms, 2s or 1m, not '%s'", name, val);
        } else if (!strcmp(name, "--slow-start")) {
            if (config_parse_duration(val, &p->slow_start_ms) < 0)
                return fail("--slow-start '%s': %s", val,
                            "expected a duration such as 30s or 2m (0 turns it off)");
        } else if (!strcmp(name, "--access-log")) {
            if (!*val || strlen(val) >= sizeof(c->access_log))
                return fail("--access-log '%s': %s", val, "expected a file path or - for stdout");
            snprintf(c->access_log, sizeof(c->access_log), "%s", val);
        } else if (!strcmp(name, "--access-log-format")) {
            if (!strcmp(val, "combined"))
                c->access_log_format = 0;
            else if (!strcmp(val, "json"))
                c->access_log_format = 1;
            else
                return fail("--access-log-format '%s': %s", val, "expected combined or json");
        } else if (!strcmp(name, "--retries")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (!*val || *end || errno || n < 0 || n > 7)
                return fail("--retries '%s': %s", val, "expected a number from 0 to 7");
            p->retries = (uint32_t)n;
        } else if (!strcmp(name, "--health-rise") || !strcmp(name, "--health-fall") ||
                   !strcmp(name, "--max-fails")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            long min = strcmp(name, "--max-fails") ? 1 : 0;
            if (!*val || *end || errno || n < min || n > 1000)
                return fail("%s: expected a whole number from %s to 1000", name, min ? "1" : "0");
            uint32_t *dst = !strcmp(name, "--health-rise")   ? &p->health_rise
                            : !strcmp(name, "--health-fall") ? &p->health_fall
                                                             : &p->max_fails;
            *dst = (uint32_t)n;
        } else if (!strcmp(name, "--health-status")) {
            unsigned lo, hi;
            char extra;
            int k = sscanf(val, "%u-%u%c", &lo, &hi, &extra);
            if (k == 1) hi = lo;
            if ((k != 1 && k != 2) || lo < 100 || hi > 599 || lo > hi)
                return fail("--health-status '%s': %s", val,
                            "expected a status or a range such as 200-399");
            p->health_status_min = (uint16_t)lo;
            p->health_status_max = (uint16_t)hi;
        } else if (!strcmp(name, "--threads")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (!strcmp(val, "auto"))
                n = 0;
            else if (!*val || *end || errno || n < 1 || n > 256)
                return fail("--threads '%s': %s", val, "expected a number from 1 to 256 or auto");
            c->threads = (uint32_t)n;
            threads_given = 1;
        }
    }
    if (file && quick_flags)
        return fail("-c %s cannot be mixed with quick-mode flags (only --threads)%s", file, "");
    if (file) {
        uint32_t threads = c->threads;
        config_free(c);
        config_defaults(c);
        snprintf(c->file, sizeof(c->file), "%s", file);
        int errors = config_load_file(c, file, stderr);
        if (threads_given) c->threads = threads; /* --threads overrides the file */
        if (errors) {
            fprintf(stderr, "usher: %s: %d error%s; %s\n", file, errors, errors == 1 ? "" : "s",
                    *check_only ? "configuration not ok" : "not started");
            return 1;
        }
        return 0;
    }
    if (p->nbackends == 0)
        return fail("no backend given: add --backend http://HOST:PORT (at least one)%s%s", "", "");
    if (hash_flag && strcmp(p->balance, "maglev"))
        return fail("%s is used by --balance maglev only (the balance is %s)", hash_flag,
                    p->balance);
    if (sticky_flag && strcmp(p->balance, "sticky"))
        return fail("%s is used by --balance sticky only (the balance is %s)", sticky_flag,
                    p->balance);
    return 0;
}
