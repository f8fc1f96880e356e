/* cli: quick-mode command line (see usher --help and docs/CONFIG.md). */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance/balance.h"
#include "config/settings.h"
#include "version.h"

void config_free(struct config *c)
{
    for (uint32_t i = 0; i < c->npools; i++) free(c->pools[i].backends);
    for (uint32_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].routes);
        free(c->listeners[i].certs);
    }
    free(c->pools);
    free(c->listeners);
    c->pools = NULL;
    c->listeners = NULL;
    c->npools = c->nlisteners = 0;
}

static void *dup_array(const void *a, size_t n, size_t size, int *failed)
{
    if (!a || !n) return NULL;
    void *d = malloc(n * size);
    if (!d)
        *failed = 1;
    else
        memcpy(d, a, n * size);
    return d;
}

int config_copy(struct config *dst, const struct config *src)
{
    int failed = 0;
    *dst = *src;
    dst->pools = dup_array(src->pools, src->npools, sizeof(*src->pools), &failed);
    dst->listeners = dup_array(src->listeners, src->nlisteners, sizeof(*src->listeners), &failed);
    if (failed) {
        free(dst->pools);
        free(dst->listeners);
        memset(dst, 0, sizeof(*dst));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < dst->npools; i++) {
        struct pool_conf *p = &dst->pools[i];
        p->backends = dup_array(p->backends, p->nbackends, sizeof(*p->backends), &failed);
    }
    for (uint32_t i = 0; i < dst->nlisteners; i++) {
        struct listener_conf *l = &dst->listeners[i];
        l->routes = dup_array(l->routes, l->nroutes, sizeof(*l->routes), &failed);
        l->certs = dup_array(l->certs, l->ncerts, sizeof(*l->certs), &failed);
    }
    if (failed) {
        config_free(dst);
        return -ENOMEM;
    }
    return 0;
}

int config_parse_listen(const char *s, struct listener_conf *l, const char **why)
{
    const char *hp = s;
    l->tls = 0;
    if (!strncmp(s, "https://", 8)) {
        hp = s + 8;
        l->tls = 1;
    } else if (!strncmp(s, "http://", 7)) {
        hp = s + 7;
    } else if (strstr(s, "://")) {
        *why = "expected http:// or https:// before HOST:PORT";
        return -EINVAL;
    }
    if (strlen(s) >= sizeof(l->bind)) {
        *why = "too long";
        return -EINVAL;
    }
    if (sock_parse_addr(hp, &l->addr, why) < 0) return -EINVAL;
    snprintf(l->bind, sizeof(l->bind), "%s", s);
    return 0;
}

int config_parse_backend(const char *s, struct backend_conf *b, char *why, size_t why_cap)
{
    memset(b, 0, sizeof(*b));
    settings_defaults(SETTING_BACKEND, b);
    const char *comma = strchr(s, ',');
    size_t urllen = comma ? (size_t)(comma - s) : strlen(s);
    if (urllen >= sizeof(b->url)) {
        snprintf(why, why_cap, "URL too long");
        return -EINVAL;
    }
    memcpy(b->url, s, urllen);
    b->url[urllen] = 0;
    for (const char *opt = comma; opt; opt = strchr(opt + 1, ',')) {
        if (!strncmp(opt + 1, "drain", 5) && (opt[6] == 0 || opt[6] == ',')) {
            b->drain = 1;
            continue;
        }
        if (strncmp(opt + 1, "weight=", 7)) {
            snprintf(why, why_cap, "unknown option after the URL (expected ,weight=N or ,drain)");
            return -EINVAL;
        }
        /* the same check as a file's "weight: N" */
        char val[32], vwhy[160];
        snprintf(val, sizeof(val), "%.*s", (int)strcspn(opt + 8, ","), opt + 8);
        if (settings_parse(settings_find(SETTING_BACKEND, "weight"), val, b, vwhy, sizeof(vwhy)) <
            0) {
            snprintf(why, why_cap, "weight: %s", vwhy);
            return -EINVAL;
        }
    }
    if (!strncmp(b->url, "https://", 8)) {
        b->tls = 1;
    } else if (strncmp(b->url, "http://", 7)) {
        snprintf(why, why_cap, "URL must start with http:// or https://");
        return -EINVAL;
    }
    const char *auth = b->url + (b->tls ? 8 : 7);
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
    /* Add the default port when none is given ("http://10.0.0.1" or "https://[::1]"). */
    const char *rb = strrchr(hostport, ']');
    const char *colon = strrchr(hostport, ':');
    if (!colon || (rb && colon < rb) || (!rb && hostport[0] == '['))
        strcat(hostport, b->tls ? ":443" : ":80");
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
    snprintf(b->name, sizeof(b->name), "%.63s", hostport); /* numeric: at most 47 */
    return 0;
}

int config_pool_tls(const struct pool_conf *p)
{
    if (p->discover.dns[0] && p->discover.scheme == DISC_HTTPS) return 1;
    for (uint32_t i = 0; i < p->nbackends; i++)
        if (p->backends[i].tls) return 1;
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
            "usher is an HTTP/1.1 and TLS load balancer. In quick mode the command line\n"
            "says everything: where to listen and which backends to spread requests over.\n"
            "\n"
            "  --listen [https://]HOST:PORT\n"
            "                            address to accept clients on (default 0.0.0.0:8000;\n"
            "                            repeatable: plain and TLS side by side); HOST is\n"
            "                            numeric IPv4, [IPv6] or localhost; https:// serves\n"
            "                            TLS with the --cert certificates\n"
            "  --cert FILE [--key FILE]  a certificate for the https:// listeners: a PEM\n"
            "                            chain, with the key in it or in the --key FILE\n"
            "                            that follows (repeatable: SNI picks by name; an\n"
            "                            ECDSA and an RSA one may share names)\n"
            "  --tls-min-version V       1.2 (default) or 1.3\n"
            "  --tls-ciphers LIST        TLS 1.2 suites, OpenSSL syntax (default: ECDHE\n"
            "                            with AES-GCM or ChaCha20; weak suites never pass)\n"
            "  --tls-ciphersuites LIST   TLS 1.3 suites (default: all three AEAD ones)\n"
            "  --tls-session-tickets B   true (default) or false\n"
            "  --tls-session-cache N     TLS 1.2 sessions kept for resumption (20000; 0 off)\n"
            "  --tls-ticket-rotation DUR a new ticket key this often; the previous one\n"
            "                            still decrypts (default 1h, at least 1s)\n"
            "  --client-ca FILE          ask TLS clients for a certificate from these CAs\n"
            "  --client-verify MODE      required (default) or optional\n"
            "  --client-verify-header H  pass the verification result to the backend in\n"
            "                            header H (off by default; H sent by a client is\n"
            "                            always removed)\n"
            "  --client-subject-header H the same for the client certificate's subject\n"
            "  --tls-record-layer L      usher (default: usher runs the TLS 1.3 record\n"
            "                            layer after OpenSSL's handshake) or openssl\n"
            "  --hsts-max-age SECONDS    TLS listeners send Strict-Transport-Security\n"
            "                            (default 0: not sent)\n"
            "  --hsts-include-subdomains B  add includeSubDomains (default false)\n"
            "  --protocols P             what the listeners speak: auto (HTTP/1.1, and\n"
            "                            HTTP/2 by ALPN or by its preface; the default),\n"
            "                            http1, or h2 (HTTP/2 only, as HAProxy's proto h2)\n"
            "  --redirect-https B        plain listeners answer 308 to https://, same host\n"
            "                            and target (default false)\n"
            "  --https-port N            the port that redirect names (default 443)\n"
            "  --backend URL[,weight=N][,drain]\n"
            "                            a backend, e.g. http://127.0.0.1:8001 or\n"
            "                            https://10.0.0.1 (repeatable, at least one);\n"
            "                            weight 1..1000 (default 1); drain: it takes no\n"
            "                            new requests\n"
            "  --backend dns+http://NAME:PORT\n"
            "                            backends from DNS: the A and AAAA records of NAME,\n"
            "                            on PORT, followed as they change (docs/DISCOVERY.md)\n"
            "  --backend srv+http://_service._proto.NAME\n"
            "                            backends from DNS SRV records: their targets,\n"
            "                            ports, weights and priorities\n"
            "  --backend dns+https://NAME:PORT, srv+https://_service._proto.NAME\n"
            "                            the same over TLS (the backend TLS flags below):\n"
            "                            the certificate is checked for NAME, or the SRV\n"
            "                            target's name, not for the address\n"
            "  --resolver HOST:PORT      the DNS server to ask (repeatable, at most 8;\n"
            "                            default: those of /etc/resolv.conf)\n"
            "  --dns-min-ttl DUR         ask again no sooner than this (default 1s)\n"
            "  --dns-max-ttl DUR         ask again at least this often (default 300s)\n"
            "  --dns-hold DUR            while the DNS fails, the last set stays this long\n"
            "                            (default 5m)\n"
            "  --dns-timeout DUR         one question, two tries (default 2s)\n"
            "  --backend-tls-verify B    check https:// backends' certificates (default\n"
            "                            true)\n"
            "  --backend-tls-ca FILE     CAs for that check (default: the system store)\n"
            "  --backend-tls-server-name NAME\n"
            "                            SNI and the name checked (default: the URL's host;\n"
            "                            from DNS: the name asked, or the SRV target)\n"
            "  --backend-tls-cert FILE   a client certificate for the backends\n"
            "  --backend-tls-key FILE    its key, unless it is in the certificate file\n"
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
            "  --health-interval DUR     time between checks (default 2s, at least 10ms);\n"
            "                            0 or off turns active checks off\n"
            "  --health-timeout DUR      a check that takes longer fails (default 1s, at\n"
            "                            least 1ms)\n"
            "  --health-rise N           passed checks in a row that bring a backend up (2)\n"
            "  --health-fall N           failed checks in a row that take it down (3)\n"
            "  --health-status LO-HI     statuses that pass an HTTP check (default 200-399)\n"
            "  --max-fails N             failures in a row on live traffic (refused, reset,\n"
            "                            timed out, invalid answer) that take a backend\n"
            "                            down at once (default 3; 0 turns this off)\n"
            "  --retries N               further attempts for a request on other backends\n"
            "                            when it is safe (default 2, at most 7)\n"
            "  --connect-timeout DUR     a backend connect that takes longer fails and the\n"
            "                            request goes elsewhere (default 2s, at least 1ms)\n"
            "  --response-timeout DUR    a backend silent this long while a response is\n"
            "                            awaited gets 504 (default 60s, at least 1ms)\n"
            "  --slow-start DUR          a backend that comes back UP gets its share of\n"
            "                            requests ramped up over DUR (default 0: at once;\n"
            "                            off is 0 too)\n"
            "  --admin HOST:PORT         the admin API, /metrics and the dashboard on\n"
            "                            HOST:PORT (loopback unless a token is set)\n"
            "  --threads N               worker threads, 1..256 (default: one per CPU)\n"
            "  --access-log PATH         one line per request to PATH ('-' for stdout);\n"
            "                            off by default; SIGUSR1 reopens the file\n"
            "  --access-log-format F     combined (default) or json\n"
            "  --log-level L             the main log (stderr): error, warn, info\n"
            "                            (default) or debug; lines below L are dropped\n"
            "  --log-format F            text (default) or json: one JSON object a line\n"
            "  --user NAME               started as root: open the listeners and files,\n"
            "                            then run as NAME (default: stay root, warned)\n"
            "  --group NAME              with --user: this group (default: NAME's own)\n"
            "  -c FILE                   read a YAML configuration file (docs/CONFIG.md);\n"
            "                            only --threads, --admin, --log-level,\n"
            "                            --log-format, --user, --group and -t may be\n"
            "                            added (they win over the file)\n"
            "  -t                        check the configuration, print 'configuration ok'\n"
            "                            or the errors; exit 0, or 1 for errors in a file\n"
            "  --version                 print the version and exit\n"
            "  -h, --help                print this help and exit\n"
            "\n"
            "Durations are written 500ms, 2s, 1m or 1h. Flags take their value as the next\n"
            "argument or after '=' (--threads=2). Every flag is described in docs/CONFIG.md.\n",
            names);
}

/* The flags of SETTING_WITH_FILE given (argv outlives the process's configs). */
static struct {
    const struct setting *set;
    const char *val;
} overrides[8];
static size_t noverrides;

int config_apply_overrides(struct config *c)
{
    char why[512];
    for (size_t i = 0; i < noverrides; i++)
        if (settings_parse(overrides[i].set, overrides[i].val, c, why, sizeof(why)) < 0) return -1;
    return 0;
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
    noverrides = 0;
    /* quick mode: one listener, one pool */
    c->pools = calloc(1, sizeof(*c->pools));
    if (!c->pools) return fail("out of memory%s%s", "", "");
    c->npools = 1;
    struct pool_conf *p = &c->pools[0];
    config_pool_defaults(p);
    snprintf(p->name, sizeof(p->name), "default");
    /* what every --listen gets: the listener flags and the certificates */
    struct listener_conf tmpl;
    config_listener_defaults(&tmpl);
    tmpl.pool = 0;
    struct listener_conf *binds = NULL; /* the --listen addresses, in order */
    uint32_t nbinds = 0;
    const char *file = NULL;
    int quick_flags = 0, threads_given = 0;
    const struct setting *only[8]; /* flags given that one algorithm only uses */
    size_t nonly = 0;
    const char *backend_tls_flag = NULL; /* a --backend-tls-* flag given */
    const char *dns_flag = NULL;         /* a --dns-* flag given */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        free(binds);                                                                               \
        free(tmpl.certs);                                                                          \
        return fail(__VA_ARGS__);                                                                  \
    } while (0)
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *val = NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            free(binds);
            free(tmpl.certs);
            return -1;
        }
        if (!strcmp(arg, "--version")) {
            printf("usher %s\n", USHER_VERSION);
            free(binds);
            free(tmpl.certs);
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
        const struct setting *set = settings_find_flag(name);
        if (!set && strcmp(name, "-c") && strcmp(name, "--listen") && strcmp(name, "--backend") &&
            strcmp(name, "--cert") && strcmp(name, "--key") && strcmp(name, "--resolver"))
            FAIL("unknown option '%s'%s", arg, "");
        if (!val) {
            if (i + 1 >= argc) FAIL("%s needs a value%s", name, "");
            val = argv[++i];
        }
        if (strcmp(name, "-c") && strcmp(name, "--threads") && strcmp(name, "--admin") &&
            !(set && (set->flags & SETTING_WITH_FILE)))
            quick_flags = 1;

        if (set) {
            /* the table's check, as for the file's key; the message names the flag */
            char why[512];
            void *base = set->scope == SETTING_TOP        ? (void *)c
                         : set->scope == SETTING_LISTENER ? (void *)&tmpl
                                                          : (void *)p;
            if (settings_parse(set, val, base, why, sizeof(why)) < 0) FAIL("%s: %s", name, why);
            if (set->only_balance && nonly < sizeof(only) / sizeof(only[0])) only[nonly++] = set;
            if (set->scope == SETTING_POOL && !strncmp(set->key, "tls.", 4))
                backend_tls_flag = set->flag;
            if (set->scope == SETTING_POOL && !strncmp(set->key, "discover.", 9))
                dns_flag = set->flag;
            if (!strcmp(name, "--threads")) threads_given = 1;
            if ((set->flags & SETTING_WITH_FILE) &&
                noverrides < sizeof(overrides) / sizeof(overrides[0])) {
                overrides[noverrides].set = set;
                overrides[noverrides++].val = val;
            }
        } else if (!strcmp(name, "-c")) {
            file = val;
        } else if (!strcmp(name, "--listen")) {
            const char *why;
            struct listener_conf *grown = realloc(binds, (nbinds + 1) * sizeof(*binds));
            if (!grown) FAIL("out of memory%s%s", "", "");
            binds = grown;
            if (config_parse_listen(val, &binds[nbinds], &why) < 0)
                FAIL("--listen '%s': %s", val, why);
            for (uint32_t k = 0; k < nbinds; k++)
                if (binds[k].addr.len == binds[nbinds].addr.len &&
                    !memcmp(&binds[k].addr, &binds[nbinds].addr, binds[k].addr.len))
                    FAIL("--listen '%s': the address is given twice%s", val, "");
            nbinds++;
        } else if (!strcmp(name, "--cert") || !strcmp(name, "--key")) {
            int is_key = name[2] == 'k';
            if (is_key && (!tmpl.ncerts || tmpl.certs[tmpl.ncerts - 1].key[0]))
                FAIL("--key '%s' must follow the --cert it belongs to%s", val, "");
            if (strlen(val) >= sizeof(tmpl.certs[0].cert) ||
                (!is_key && tmpl.ncerts >= CONFIG_MAX_CERTS))
                FAIL("%s '%s': too long, or too many certificates", name, val);
            if (!is_key) {
                struct cert_conf *grown =
                    realloc(tmpl.certs, (tmpl.ncerts + 1) * sizeof(*tmpl.certs));
                if (!grown) FAIL("out of memory%s%s", "", "");
                tmpl.certs = grown;
                memset(&tmpl.certs[tmpl.ncerts], 0, sizeof(*tmpl.certs));
                snprintf(tmpl.certs[tmpl.ncerts++].cert, sizeof(tmpl.certs[0].cert), "%s", val);
            } else {
                snprintf(tmpl.certs[tmpl.ncerts - 1].key, sizeof(tmpl.certs[0].key), "%s", val);
            }
        } else if (!strcmp(name, "--resolver")) {
            char why[256];
            struct discover_conf *d = &p->discover;
            if (d->nresolvers >= CONFIG_MAX_RESOLVERS)
                FAIL("--resolver: at most %s resolvers%s", "8", "");
            if (config_parse_resolver(val, d->resolvers[d->nresolvers], sizeof(d->resolvers[0]),
                                      why, sizeof(why)) < 0)
                FAIL("--resolver: %s%s", why, "");
            d->nresolvers++;
        } else if (!strcmp(name, "--backend")) {
            char why[256];
            struct discover_conf dc = p->discover;
            int disc = config_parse_discover_url(val, &dc, why, sizeof(why));
            if (disc < 0) FAIL("--backend '%s': %s", val, why);
            if (disc > 0 && p->discover.dns[0])
                FAIL("--backend '%s': only one dns+http(s):// or srv+http(s):// backend (the "
                     "pool already discovers %s)",
                     val, p->discover.dns);
            if (disc > 0) {
                p->discover = dc;
                continue;
            }
            if (p->nbackends >= CONFIG_MAX_BACKENDS) FAIL("too many backends%s%s", "", "");
            struct backend_conf *grown =
                realloc(p->backends, (p->nbackends + 1) * sizeof(*p->backends));
            if (!grown) FAIL("out of memory%s%s", "", "");
            p->backends = grown;
            if (config_parse_backend(val, &p->backends[p->nbackends], why, sizeof(why)) < 0)
                FAIL("--backend '%s': %s", val, why);
            p->nbackends++;
        }
    }
#undef FAIL
    /* every --listen gets the listener flags and, when https://, the certificates */
    int quick_err = 0, any_tls = 0;
    if (!nbinds) {
        const char *why;
        binds = calloc(1, sizeof(*binds));
        if (binds) config_parse_listen("0.0.0.0:8000", &binds[0], &why);
        nbinds = binds ? 1 : 0;
    }
    c->listeners = calloc(nbinds ? nbinds : 1, sizeof(*c->listeners));
    if (!c->listeners) quick_err = fail("out of memory%s%s", "", "");
    for (uint32_t k = 0; c->listeners && k < nbinds; k++) {
        struct listener_conf *l = &c->listeners[k];
        *l = tmpl;
        snprintf(l->bind, sizeof(l->bind), "%s", binds[k].bind);
        l->addr = binds[k].addr;
        l->tls = binds[k].tls;
        l->certs = NULL;
        l->ncerts = 0;
        c->nlisteners++;
        if (!l->tls) continue;
        any_tls = 1;
        l->certs = calloc(tmpl.ncerts ? tmpl.ncerts : 1, sizeof(*l->certs));
        if (!l->certs) {
            quick_err = fail("out of memory%s%s", "", "");
            break;
        }
        if (tmpl.certs) memcpy(l->certs, tmpl.certs, tmpl.ncerts * sizeof(*l->certs));
        l->ncerts = tmpl.ncerts;
    }
    free(binds);
    free(tmpl.certs);
    if (quick_err) return quick_err;
    if (file && quick_flags)
        return fail("-c %s cannot be mixed with quick-mode flags (only --threads, --admin, "
                    "--log-level, --log-format, --user and --group)%s",
                    file, "");
    if (!file && any_tls && !tmpl.ncerts)
        return fail("--listen https://... needs a certificate: add --cert FILE [--key FILE]%s%s",
                    "", "");
    if (!file && !any_tls && tmpl.ncerts)
        return fail("--cert is given but no --listen https://HOST:PORT uses it%s%s", "", "");
    if (file) {
        uint32_t threads = c->threads;
        char admin[sizeof(c->admin_bind)];
        snprintf(admin, sizeof(admin), "%s", c->admin_bind);
        config_free(c);
        config_defaults(c);
        snprintf(c->file, sizeof(c->file), "%s", file);
        int errors = config_load_file(c, file, stderr);
        if (threads_given) c->threads = threads; /* --threads overrides the file */
        config_apply_overrides(c);               /* and so do --log-level, --user... */
        if (!errors && c->group[0] && !c->user[0])
            return fail("--group needs --user (or user: in %s)%s", file, "");
        if (admin[0]) { /* --admin overrides the file's admin.bind */
            char why[256];
            snprintf(c->admin_bind, sizeof(c->admin_bind), "%s", admin);
            if (!errors && config_check_admin(c, why, sizeof(why)) < 0) {
                fprintf(stderr, "usher: --admin: %s\n", why);
                errors++;
            }
        }
        if (errors) {
            fprintf(stderr, "usher: %s: %d error%s; %s\n", file, errors, errors == 1 ? "" : "s",
                    *check_only ? "configuration not ok" : "not started");
            return 1;
        }
        return 0;
    }
    if (c->group[0] && !c->user[0])
        return fail("--group needs --user (usher changes its group only along with its user)%s%s",
                    "", "");
    char awhy[256];
    if (config_check_admin(c, awhy, sizeof(awhy)) < 0) return fail("--admin: %s%s", awhy, "");
    if (p->nbackends == 0 && !p->discover.dns[0])
        return fail("no backend given: add --backend http://HOST:PORT (at least one), or "
                    "dns+http://NAME:PORT or srv+http://_service._proto.NAME%s%s",
                    "", "");
    if (!p->discover.dns[0] && (dns_flag || p->discover.nresolvers))
        return fail("%s is given but no --backend dns+http:// or srv+http:// uses it%s",
                    dns_flag ? dns_flag : "--resolver", "");
    if (p->discover.dns[0]) {
        char dwhy[300];
        const char *key;
        if (config_check_discover(&p->discover, dwhy, sizeof(dwhy), &key) < 0)
            return fail("%s: %s",
                        !strcmp(key, "max_ttl") ? (dns_flag ? dns_flag : "--dns-max-ttl")
                                                : "--backend",
                        dwhy);
    }
    if (backend_tls_flag && !config_pool_tls(p))
        return fail("%s is given but no --backend https://HOST:PORT uses it (nor a "
                    "dns+https:// or srv+https:// one)%s",
                    backend_tls_flag, "");
    for (size_t k = 0; k < nonly; k++) {
        if (!strcmp(p->balance, only[k]->only_balance)) continue;
        char msg[256];
        snprintf(msg, sizeof(msg), "%s is used by --balance %s only (the balance is %s)",
                 only[k]->flag, only[k]->only_balance, p->balance);
        return fail("%s%s", msg, "");
    }
    return 0;
}
