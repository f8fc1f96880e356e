/* Tests src/config/settings.c: the one table of settings and its validator, and
 * that the command line (config_from_args) and the file (config_load_file)
 * accept, refuse and explain every value of every flag the same way. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/settings.h"

static char why[1024];

static const struct setting *top(const char *key)
{
    const struct setting *s = settings_find(SETTING_TOP, key);
    assert_non_null(s);
    return s;
}

static const struct setting *pool(const char *key)
{
    const struct setting *s = settings_find(SETTING_POOL, key);
    assert_non_null(s);
    return s;
}

/* settings_parse into a pool; returns its result. */
static int pool_parse(const char *key, const char *text, struct pool_conf *p)
{
    why[0] = 0;
    return settings_parse(pool(key), text, p, why, sizeof(why));
}

static int top_parse(const char *key, const char *text, struct config *c)
{
    why[0] = 0;
    return settings_parse(top(key), text, c, why, sizeof(why));
}

static void durations(void **state)
{
    struct pool_conf p;
    config_pool_defaults(&p);
    static const struct {
        const char *text;
        uint32_t ms;
    } good[] = {{"500ms", 500},
                {"2s", 2000},
                {"1m", 60000},
                {"1h", 3600000},
                {"3", 3000},
                {"1ms", 1},
                {"4294967ms", 4294967},
                {"4294967295ms", UINT32_MAX},
                {"71582m", 71582 * 60000u}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(pool_parse("timeouts.connect", good[i].text, &p), 0);
        assert_int_equal(p.connect_ms, good[i].ms);
    }
    static const char *const bad[] = {"2x",   "",         "-1",  "+1s", " 1s",
                                      "1.5s", "4294968s", "2 s", "s",   "off"};
    p.connect_ms = 1234;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pool_parse("timeouts.connect", bad[i], &p), -EINVAL);
        assert_non_null(strstr(why, "expected a duration"));
    }
    assert_int_equal(p.connect_ms, 1234); /* a refused value is not stored */
    assert_int_equal(pool_parse("timeouts.connect", "2x", &p), -EINVAL);
    assert_string_equal(
        why, "expected a duration of at least 1ms such as 500ms, 2s, 1m or 1h, not '2x'");
    /* a duration that may be 0: top-level idle timeouts and grace */
    struct config c;
    config_defaults(&c);
    assert_int_equal(top_parse("timeouts.grace", "0", &c), 0);
    assert_int_equal(c.grace_ms, 0);
    assert_int_equal(top_parse("timeouts.grace", "soon", &c), -EINVAL);
    assert_string_equal(why, "expected a duration such as 500ms, 2s, 1m or 1h, not 'soon'");
}

/* The 0 s question: a connect, response or health check timeout of 0 would fail
 * everything at once, so it is refused; health.interval and slow_start 0 (or off)
 * turn the feature off. */
static void zero_durations(void **state)
{
    struct pool_conf p;
    config_pool_defaults(&p);
    static const char *const must_wait[] = {"timeouts.connect", "timeouts.response",
                                            "health.timeout"};
    static const char *const zeros[] = {"0", "0s", "0ms", "0m", "0h"};
    for (size_t i = 0; i < 3; i++)
        for (size_t z = 0; z < 5; z++) {
            assert_int_equal(pool_parse(must_wait[i], zeros[z], &p), -EINVAL);
            assert_non_null(strstr(why, "at least 1ms"));
        }
    assert_int_equal(pool_parse("health.timeout", "1ms", &p), 0);
    assert_int_equal(p.health_timeout_ms, 1);

    static const char *const offs[] = {"0", "0s", "0ms", "off"};
    for (size_t z = 0; z < 4; z++) {
        p.health_interval_ms = 2000;
        assert_int_equal(pool_parse("health.interval", offs[z], &p), 0);
        assert_int_equal(p.health_interval_ms, 0);
        p.slow_start_ms = 2000;
        assert_int_equal(pool_parse("slow_start", offs[z], &p), 0);
        assert_int_equal(p.slow_start_ms, 0);
    }
    /* between off and 10ms a check would spin */
    assert_int_equal(pool_parse("health.interval", "9ms", &p), -EINVAL);
    assert_string_equal(why, "expected a duration of at least 10ms such as 500ms, 2s, 1m or 1h, "
                             "or 0 or off, not '9ms'");
    assert_int_equal(pool_parse("health.interval", "10ms", &p), 0);
    assert_int_equal(p.health_interval_ms, 10);
    assert_int_equal(pool_parse("slow_start", "1ms", &p), 0);
    assert_int_equal(p.slow_start_ms, 1);
    /* the body timeout was already at least 1ms */
    struct config c;
    config_defaults(&c);
    assert_int_equal(top_parse("timeouts.client_body", "0s", &c), -EINVAL);
    assert_non_null(strstr(why, "at least 1ms"));
}

static void numbers(void **state)
{
    struct pool_conf p;
    config_pool_defaults(&p);
    assert_int_equal(pool_parse("retries", "0", &p), 0);
    assert_int_equal(p.retries, 0);
    assert_int_equal(pool_parse("retries", "7", &p), 0);
    assert_int_equal(p.retries, 7);
    static const char *const bad[] = {
        "8", "-1", "+2", " 2", "2 ", "", "x", "0x3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pool_parse("retries", bad[i], &p), -EINVAL);
        assert_non_null(strstr(why, "expected a number from 0 to 7, not '"));
    }
    assert_int_equal(p.retries, 7);
    assert_int_equal(pool_parse("retries", "9", &p), -EINVAL);
    assert_string_equal(why, "expected a number from 0 to 7, not '9'");

    assert_int_equal(pool_parse("health.rise", "0", &p), -EINVAL);
    assert_int_equal(pool_parse("health.rise", "1000", &p), 0);
    assert_int_equal(pool_parse("health.fall", "1001", &p), -EINVAL);
    assert_int_equal(pool_parse("max_fails", "0", &p), 0);
    assert_int_equal(p.max_fails, 0);

    /* 0 (off), or 100..10000 */
    static const struct {
        const char *text;
        int ok;
    } factor[] = {{"0", 1},   {"1", 0},     {"99", 0},    {"100", 1},
                  {"150", 1}, {"10000", 1}, {"10001", 0}, {"off", 0}};
    for (size_t i = 0; i < sizeof(factor) / sizeof(factor[0]); i++)
        assert_int_equal(pool_parse("hash_balance_factor", factor[i].text, &p),
                         factor[i].ok ? 0 : -EINVAL);
    assert_int_equal(p.hash_balance_factor, 10000);
    assert_int_equal(pool_parse("hash_balance_factor", "50", &p), -EINVAL);
    assert_string_equal(why, "expected 0 (off) or a percentage from 100 to 10000, such as 150, "
                             "not '50'");

    struct config c;
    config_defaults(&c);
    assert_int_equal(top_parse("threads", "256", &c), 0);
    assert_int_equal(c.threads, 256);
    assert_int_equal(top_parse("threads", "auto", &c), 0);
    assert_int_equal(c.threads, 0);
    assert_int_equal(top_parse("threads", "0", &c), -EINVAL); /* auto is spelled auto */
    assert_int_equal(top_parse("threads", "257", &c), -EINVAL);
    assert_string_equal(why, "expected a number from 1 to 256 or auto, not '257'");
    assert_int_equal(top_parse("limits.max_header_bytes", "1023", &c), -EINVAL);
    assert_int_equal(top_parse("limits.max_header_bytes", "1024", &c), 0);
    assert_int_equal(top_parse("limits.max_header_bytes", "16385", &c), -EINVAL);
    assert_int_equal(top_parse("limits.max_headers", "128", &c), 0);
    assert_int_equal(top_parse("limits.max_headers", "129", &c), -EINVAL);
    assert_int_equal(top_parse("limits.max_request_line", "63", &c), -EINVAL);
    assert_int_equal(top_parse("limits.max_connections", "10000000", &c), 0);
    assert_int_equal(c.max_conns, 10000000);
    assert_int_equal(top_parse("limits.max_connections", "10000001", &c), -EINVAL);
}

static void sizes(void **state)
{
    struct config c;
    config_defaults(&c);
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0},          {"1048576", 1048576},  {"512K", 512 << 10},          {"10m", 10 << 20},
        {"10M", 10 << 20}, {"1024g", 1ULL << 40}, {"1099511627776", 1ULL << 40}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(top_parse("limits.max_body_size", good[i].text, &c), 0);
        assert_true(c.max_body_size == good[i].bytes);
    }
    static const char *const bad[] = {"-1", "10x", "10mb", "1025g", "1099511627777",
                                      "",   "k",   "1 k"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(top_parse("limits.max_body_size", bad[i], &c), -EINVAL);
        assert_non_null(strstr(why, "expected a size in bytes up to 1099511627776 (1 TiB)"));
    }
    assert_true(c.max_body_size == 1ULL << 40);
}

static void strings(void **state)
{
    struct pool_conf p;
    config_pool_defaults(&p);
    char long_text[300];
    memset(long_text, 'a', sizeof(long_text));
    long_text[127] = 0;
    assert_int_equal(pool_parse("sticky_secret", long_text, &p), 0);
    assert_string_equal(p.sticky_secret, long_text);
    long_text[127] = 'a';
    long_text[128] = 0;
    assert_int_equal(pool_parse("sticky_secret", long_text, &p), -EINVAL);
    /* the secret itself is not repeated in the message */
    assert_string_equal(why, "expected 1 to 127 characters, found 128");
    assert_int_equal(pool_parse("sticky_secret", "", &p), -EINVAL);
    assert_string_equal(why, "expected 1 to 127 characters, found 0");

    struct config c;
    config_defaults(&c);
    assert_int_equal(top_parse("access_log.path", "", &c), 0); /* "" is off, the default */
    long_text[128] = 'a';
    long_text[255] = 0;
    assert_int_equal(top_parse("access_log.path", long_text, &c), 0);
    assert_int_equal(strlen(c.access_log), 255);
    long_text[255] = 'a';
    long_text[256] = 0;
    assert_int_equal(top_parse("access_log.path", long_text, &c), -EINVAL);
    assert_string_equal(why,
                        "expected a file path or - for stdout (at most 255 characters), found 256");

    assert_int_equal(pool_parse("health.path", "/health?x=1", &p), 0);
    assert_string_equal(p.health_path, "/health?x=1");
    assert_int_equal(pool_parse("health.path", "health", &p), -EINVAL);
    assert_string_equal(why, "expected a path starting with / (no spaces), not 'health'");
    assert_int_equal(pool_parse("health.path", "/a b", &p), -EINVAL);
    assert_int_equal(pool_parse("health.path", "", &p), -EINVAL);

    assert_int_equal(pool_parse("sticky_cookie", "srv", &p), 0);
    assert_string_equal(p.sticky_cookie, "srv");
    static const char *const bad_cookies[] = {"a;b", "", "a b", "a=b"};
    for (size_t i = 0; i < sizeof(bad_cookies) / sizeof(bad_cookies[0]); i++) {
        assert_int_equal(pool_parse("sticky_cookie", bad_cookies[i], &p), -EINVAL);
        assert_non_null(strstr(why, "expected a cookie name of 1 to 63 letters"));
    }
    memset(long_text, 'c', 64);
    long_text[64] = 0;
    assert_int_equal(pool_parse("sticky_cookie", long_text, &p), -EINVAL);
    assert_string_equal(why, "too long (at most 63 characters)");
    assert_string_equal(p.sticky_cookie, "srv");

    assert_int_equal(pool_parse("hash_key", "header:X-User", &p), 0);
    assert_string_equal(p.hash_key, "header:X-User");
    assert_int_equal(pool_parse("hash_key", "ip", &p), -EINVAL);
    assert_string_equal(why, "expected client_ip, uri, header:NAME, cookie:NAME or query:NAME, "
                             "not 'ip'");
    assert_int_equal(pool_parse("hash_key", "cookie:", &p), -EINVAL);
    assert_non_null(strstr(why, "needs a name"));

    assert_int_equal(pool_parse("balance", "p2c", &p), 0);
    assert_string_equal(p.balance, "p2c");
    assert_int_equal(pool_parse("balance", "nope", &p), -EINVAL);
    assert_non_null(strstr(why, "unknown algorithm 'nope' (expected one of: round-robin, "));
    assert_string_equal(p.balance, "p2c");
}

static void bools_enums_statuses(void **state)
{
    struct backend_conf b;
    memset(&b, 0, sizeof(b));
    const struct setting *drain = settings_find(SETTING_BACKEND, "drain");
    assert_non_null(drain);
    assert_int_equal(settings_parse(drain, "true", &b, why, sizeof(why)), 0);
    assert_int_equal(b.drain, 1);
    assert_int_equal(settings_parse(drain, "false", &b, why, sizeof(why)), 0);
    assert_int_equal(b.drain, 0);
    assert_int_equal(settings_parse(drain, "yes", &b, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "expected true or false, not 'yes'");

    struct config c;
    config_defaults(&c);
    assert_int_equal(top_parse("access_log.format", "json", &c), 1); /* the index */
    assert_int_equal(c.access_log_format, 1);
    assert_int_equal(top_parse("access_log.format", "combined", &c), 0);
    assert_int_equal(c.access_log_format, 0);
    assert_int_equal(top_parse("access_log.format", "xml", &c), -EINVAL);
    assert_string_equal(why, "expected combined or json, not 'xml'");
    /* health.type lands nowhere: the reader uses the index */
    struct pool_conf p;
    config_pool_defaults(&p);
    assert_int_equal(pool_parse("health.type", "off", &p), 2);
    assert_int_equal(pool_parse("health.type", "htp", &p), -EINVAL);
    assert_string_equal(why, "expected http, tcp or off, not 'htp'");

    static const struct {
        const char *text;
        int ok;
        uint16_t lo, hi;
    } st[] = {{"200", 1, 200, 200},
              {"200-399", 1, 200, 399},
              {"100-599", 1, 100, 599},
              {"99", 0, 0, 0},
              {"600", 0, 0, 0},
              {"400-200", 0, 0, 0},
              {"200-", 0, 0, 0},
              {"200x", 0, 0, 0},
              {"-200", 0, 0, 0},
              {"200-600", 0, 0, 0},
              {"", 0, 0, 0},
              {"2xx", 0, 0, 0}};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        p.health_status_min = p.health_status_max = 1;
        assert_int_equal(pool_parse("health.expect_status", st[i].text, &p),
                         st[i].ok ? 0 : -EINVAL);
        if (st[i].ok) {
            assert_int_equal(p.health_status_min, st[i].lo);
            assert_int_equal(p.health_status_max, st[i].hi);
        } else {
            assert_int_equal(p.health_status_min, 1);
            assert_non_null(strstr(why, "expected a status or a range such as 200-399, not '"));
        }
    }
}

/* The documented defaults (docs/CONFIG.md), as the code had them before the table. */
static void defaults(void **state)
{
    struct config c;
    memset(&c, 0x5a, sizeof(c));
    config_defaults(&c);
    assert_int_equal(c.threads, 0);
    assert_int_equal(c.client_header_ms, 10000);
    assert_int_equal(c.client_idle_ms, 60000);
    assert_int_equal(c.client_body_ms, 60000);
    assert_int_equal(c.upstream_idle_ms, 30000);
    assert_int_equal(c.tunnel_idle_ms, 300000);
    assert_int_equal(c.grace_ms, 30000);
    assert_int_equal(c.max_header_bytes, 16384);
    assert_int_equal(c.max_headers, 100);
    assert_int_equal(c.max_request_line, 8192);
    assert_int_equal(c.max_conns, 100000);
    assert_true(c.max_body_size == 0);
    assert_string_equal(c.access_log, "");
    assert_int_equal(c.access_log_format, 0);
    assert_null(c.pools);
    assert_int_equal(c.npools, 0);

    struct pool_conf p;
    memset(&p, 0x5a, sizeof(p));
    config_pool_defaults(&p);
    assert_string_equal(p.balance, "round-robin");
    assert_string_equal(p.hash_key, "client_ip");
    assert_int_equal(p.hash_balance_factor, 0);
    assert_string_equal(p.sticky_cookie, "usher_backend");
    assert_string_equal(p.sticky_secret, "usher");
    assert_string_equal(p.health_path, "");
    assert_int_equal(p.health_interval_ms, 2000);
    assert_int_equal(p.health_timeout_ms, 1000);
    assert_int_equal(p.health_rise, 2);
    assert_int_equal(p.health_fall, 3);
    assert_int_equal(p.health_status_min, 200);
    assert_int_equal(p.health_status_max, 399);
    assert_int_equal(p.max_fails, 3);
    assert_int_equal(p.retries, 2);
    assert_int_equal(p.connect_ms, 2000);
    assert_int_equal(p.response_ms, 60000);
    assert_int_equal(p.slow_start_ms, 0);
    assert_null(p.backends);

    struct backend_conf b;
    char bwhy[128];
    assert_int_equal(config_parse_backend("http://127.0.0.1:9", &b, bwhy, sizeof(bwhy)), 0);
    assert_int_equal(b.weight, 1);
    assert_int_equal(b.drain, 0);
}

/* Every entry is consistent: its default passes its own check, its field has the
 * size its type stores, names and flags are unique. */
static void table_is_consistent(void **state)
{
    size_t n = 0;
    for (const struct setting *s = settings_table; s->key; s++, n++) {
        char buf[256];
        if (s->def) {
            if (settings_parse(s, s->def, NULL, buf, sizeof(buf)) < 0)
                fail_msg("default '%s' of %s is refused: %s", s->def, s->key, buf);
        }
        if (s->off != SETTING_NOWHERE) {
            size_t want = s->type == SETTING_DURATION || s->type == SETTING_UINT ? 4
                          : s->type == SETTING_SIZE                              ? 8
                          : s->type == SETTING_BOOL || s->type == SETTING_ENUM   ? 1
                          : s->type == SETTING_STATUS                            ? 2
                                                                                 : s->size;
            if (s->size != want) fail_msg("%s: field of %zu bytes for its type", s->key, s->size);
        }
        if (s->type == SETTING_STRING && s->max > s->size - 1)
            fail_msg("%s: max past field", s->key);
        assert_ptr_equal(settings_find(s->scope, s->key), s);
        if (s->flag) assert_ptr_equal(settings_find_flag(s->flag), s);
        settings_expected(s, buf, sizeof(buf));
        assert_true(strlen(buf) > 4);
    }
    assert_true(n >= 30);
}

static void unknown_names(void **state)
{
    assert_null(settings_find(SETTING_POOL, "timeouts.conect"));
    assert_null(settings_find(SETTING_POOL, "timeouts"));
    assert_null(settings_find(SETTING_TOP, "retries")); /* a pool's, not the top level's */
    assert_null(settings_find(SETTING_POOL, "threads"));
    assert_null(settings_find_flag("--retry"));
    assert_null(settings_find_flag("retries"));
    assert_true(settings_is_section(SETTING_POOL, "health"));
    assert_true(settings_is_section(SETTING_TOP, "timeouts"));
    assert_false(settings_is_section(SETTING_TOP, "health"));
    assert_false(settings_is_section(SETTING_POOL, "heal"));
}

/* ---- both entry points ------------------------------------------------------------ */

/* Runs config_from_args with what it writes to fd (1 or 2) kept in out. */
static int run_args(struct config *c, int argc, char **argv, int fd, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd);
    dup2(fileno(tmp), fd);
    int check_only;
    int rc = config_from_args(c, argc, argv, &check_only);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = 0;
    fclose(tmp);
    return rc;
}

struct side {
    int rc;          /* config_from_args: 0 or 2; config_load_file: errors */
    char why[1024];  /* the message after the flag or the key; "" when accepted */
    struct config c; /* as read (freed by the caller) */
};

/* The command line: -t --backend URL [--balance B] FLAG=VALUE. */
static void cli_side(const struct setting *s, const char *value, const char *balance,
                     struct side *out)
{
    char arg[512], err[2048];
    snprintf(arg, sizeof(arg), "%s=%s", s->flag, value);
    /* a pool's tls settings are for https:// backends */
    int https = s->scope == SETTING_POOL && !strncmp(s->key, "tls.", 4);
    /* a pool's discover settings are for a dns+http:// backend */
    int disc = s->scope == SETTING_POOL && !strncmp(s->key, "discover.", 9);
    char *argv[8] = {"usher", "-t", "--backend",
                     disc    ? "dns+http://web.test:18101"
                     : https ? "https://127.0.0.1:18101"
                             : "http://127.0.0.1:18101"};
    int argc = 4;
    if (balance) argv[argc++] = "--balance", argv[argc++] = (char *)balance;
    argv[argc++] = arg;
    out->rc = run_args(&out->c, argc, argv, 2, err, sizeof(err));
    out->why[0] = 0;
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "usher: %s: ", s->flag);
    char *m = strstr(err, prefix);
    if (m) {
        m += strlen(prefix);
        snprintf(out->why, sizeof(out->why), "%.*s", (int)strcspn(m, "\n"), m);
    }
}

/* The file: the same setting as its key, "a: { b: VALUE }" in the pool or at the top. */
static void yaml_side(const struct setting *s, const char *value, const char *balance,
                      struct side *out)
{
    char setting[512], path[] = "/tmp/test_settings_XXXXXX";
    const char *dot = strchr(s->key, '.');
    const char *indent = s->scope == SETTING_TOP ? "" : "    ";
    /* a listener's tls section needs certificates (not read here: the files are
     * the TLS layer's business) */
    int tls = s->scope == SETTING_LISTENER && !strncmp(s->key, "tls.", 4);
    int disc = s->scope == SETTING_POOL && !strncmp(s->key, "discover.", 9);
    if (dot)
        snprintf(setting, sizeof(setting), "%s%.*s: { %s: \"%s\"%s }\n", indent,
                 (int)(dot - s->key), s->key, dot + 1, value,
                 tls    ? ", certificates: [ { cert: /nonexistent.pem } ]"
                 : disc ? ", dns: web.test, port: 18101"
                        : "");
    else
        snprintf(setting, sizeof(setting), "%s%s: \"%s\"\n", indent, s->key, value);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "listeners:\n  - bind: 127.0.0.1:18001\n    pool: web\n");
    if (s->scope == SETTING_LISTENER) fputs(setting, f);
    fprintf(f, "pools:\n  web:\n    backends: [ \"%s://127.0.0.1:18101\" ]\n",
            s->scope == SETTING_POOL && !strncmp(s->key, "tls.", 4) ? "https" : "http");
    if (balance) fprintf(f, "    balance: %s\n", balance);
    /* a top-level key after the pools: at column 1, out of the pool */
    if (s->scope != SETTING_LISTENER) fputs(setting, f);
    fclose(f);
    char *err = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&err, &len);
    config_defaults(&out->c);
    out->rc = config_load_file(&out->c, path, errs);
    fclose(errs);
    unlink(path);
    out->why[0] = 0;
    char prefix[96];
    snprintf(prefix, sizeof(prefix), ": %s: ", s->key);
    char *m = strstr(err, prefix);
    if (m) {
        m += strlen(prefix);
        snprintf(out->why, sizeof(out->why), "%.*s", (int)strcspn(m, "\n"), m);
    }
    if (out->rc && !m) fail_msg("file refused %s='%s' without naming it: %s", s->key, value, err);
    free(err);
}

/* Both sides read value for s: both accept it and store the same bytes, or both
 * refuse it with the same words. Returns whether it was accepted. */
static int same_both_ways(const struct setting *s, const char *value)
{
    const char *balance = s->only_balance;
    struct side *cli = calloc(1, sizeof(*cli)), *file = calloc(1, sizeof(*file));
    cli_side(s, value, balance, cli);
    yaml_side(s, value, balance, file);
    int accepted = cli->rc == 0;
    if (accepted != (file->rc == 0))
        fail_msg("%s '%s': command line %s (%s), file %s (%s)", s->flag, value,
                 accepted ? "accepts" : "refuses", cli->why, file->rc ? "refuses" : "accepts",
                 file->why);
    if (accepted) {
        const char *a = (const char *)(s->scope == SETTING_POOL       ? (void *)cli->c.pools
                                       : s->scope == SETTING_LISTENER ? (void *)cli->c.listeners
                                                                      : &cli->c);
        const char *b = (const char *)(s->scope == SETTING_POOL       ? (void *)file->c.pools
                                       : s->scope == SETTING_LISTENER ? (void *)file->c.listeners
                                                                      : &file->c);
        if (memcmp(a + s->off, b + s->off, s->size) ||
            (s->type == SETTING_STATUS && memcmp(a + s->off2, b + s->off2, s->size)))
            fail_msg("%s '%s': the two sides stored different values", s->flag, value);
    } else {
        assert_int_equal(cli->rc, 2);
        assert_int_equal(file->rc, 1);
        if (!cli->why[0] || strcmp(cli->why, file->why))
            fail_msg("%s '%s': command line says '%s', file says '%s'", s->flag, value, cli->why,
                     file->why);
    }
    config_free(&cli->c);
    config_free(&file->c);
    free(cli);
    free(file);
    return accepted;
}

/* Backend URLs: http:// (port 80 by default) and https:// (TLS, port 443). */
static void backend_urls(void **state)
{
    static const struct {
        const char *url, *authority;
        int tls, family, port;
    } ok[] = {
        {"http://127.0.0.1", "127.0.0.1", 0, AF_INET, 80},
        {"http://127.0.0.1:8080/", "127.0.0.1:8080", 0, AF_INET, 8080},
        {"https://127.0.0.1", "127.0.0.1", 1, AF_INET, 443},
        {"https://127.0.0.1:9443", "127.0.0.1:9443", 1, AF_INET, 9443},
        {"https://[::1]", "[::1]", 1, AF_INET6, 443},
        {"https://localhost:8443,weight=3", "localhost:8443", 1, AF_INET, 8443},
    };
    char msg[160];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct backend_conf b;
        if (config_parse_backend(ok[i].url, &b, msg, sizeof(msg)) < 0)
            fail_msg("%s refused: %s", ok[i].url, msg);
        assert_string_equal(b.authority, ok[i].authority);
        assert_int_equal(b.tls, ok[i].tls);
        assert_int_equal(b.addr.sa.sa_family, ok[i].family);
        int port =
            ntohs(b.addr.sa.sa_family == AF_INET ? b.addr.in.sin_port : b.addr.in6.sin6_port);
        assert_int_equal(port, ok[i].port);
    }
    struct backend_conf b;
    assert_int_equal(config_parse_backend("ftp://127.0.0.1", &b, msg, sizeof(msg)), -EINVAL);
    assert_string_equal(msg, "URL must start with http:// or https://");
    assert_int_equal(config_parse_backend("https://", &b, msg, sizeof(msg)), -EINVAL);
    assert_string_equal(msg, "URL needs a host");
    assert_int_equal(config_parse_backend("https://127.0.0.1/app", &b, msg, sizeof(msg)), -EINVAL);
}

/* A pool's tls settings with no https:// backend to use them are refused, on
 * the command line and in the file. */
static void backend_tls_without_https(void **state)
{
    struct config c;
    char out[2048];
    char *argv[] = {"usher",  "-t", "--backend", "http://127.0.0.1:9", "--backend-tls-ca",
                    "/ca.pem"};
    assert_int_equal(run_args(&c, 6, argv, 2, out, sizeof(out)), 2);
    assert_non_null(
        strstr(out, "--backend-tls-ca is given but no --backend https://HOST:PORT uses it"));
    config_free(&c);
    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "listeners:\n  - bind: 127.0.0.1:18001\n    pool: web\n"
               "pools:\n  web:\n    backends: [ \"http://127.0.0.1:18101\" ]\n"
               "    tls: { ca: /ca.pem }\n");
    fclose(f);
    char *err = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&err, &len);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, errs), 1);
    fclose(errs);
    unlink(path);
    assert_non_null(strstr(err, ":7:10: pool 'web': tls: no backend of the pool is https://"));
    free(err);
    config_free(&c);
}

/* Reads text as a file: the number of errors, their words into err (freed by the caller). */
static int load_text(struct config *c, const char *text, char **err)
{
    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    size_t len = 0;
    FILE *errs = open_memstream(err, &len);
    config_defaults(c);
    int n = config_load_file(c, path, errs);
    fclose(errs);
    unlink(path);
    return n;
}

/* A pool that discovers with scheme https may have a tls section without any
 * static https:// backend; with scheme http (the default) it may not. */
static void discover_scheme_and_tls(void **state)
{
    struct config c;
    char *err = NULL;
    static const char head[] = "listeners:\n  - bind: 127.0.0.1:18001\n    pool: web\n"
                               "pools:\n  web:\n";
    char text[1024];
    snprintf(text, sizeof(text),
             "%s    discover: { dns: web.test, port: 8443, scheme: https }\n"
             "    tls: { ca: /ca.pem, server_name: web.test }\n",
             head);
    assert_int_equal(load_text(&c, text, &err), 0);
    assert_int_equal(c.pools[0].discover.scheme, DISC_HTTPS);
    assert_true(config_pool_tls(&c.pools[0]));
    assert_string_equal(c.pools[0].tls_ca, "/ca.pem");
    free(err);
    config_free(&c);
    /* beside a static http:// backend: the tls section is the discovered ones' */
    snprintf(text, sizeof(text),
             "%s    backends: [ \"http://127.0.0.1:18101\" ]\n"
             "    discover: { dns: _h._tcp.web.test, type: srv, scheme: https }\n"
             "    tls: { verify: true }\n",
             head);
    assert_int_equal(load_text(&c, text, &err), 0);
    free(err);
    config_free(&c);
    snprintf(text, sizeof(text),
             "%s    discover: { dns: web.test, port: 8080 }\n    tls: { ca: /ca.pem }\n", head);
    assert_int_equal(load_text(&c, text, &err), 1);
    assert_int_equal(c.pools[0].discover.scheme, DISC_HTTP);
    assert_non_null(strstr(err, ":7:10: pool 'web': tls: no backend of the pool is https://"));
    assert_non_null(strstr(err, "discover.scheme: https"));
    free(err);
    config_free(&c);
    snprintf(text, sizeof(text), "%s    discover: { dns: web.test, port: 8080, scheme: tls }\n",
             head);
    assert_int_equal(load_text(&c, text, &err), 1);
    assert_non_null(strstr(err, ":6:52: discover.scheme: expected http or https, not 'tls'"));
    free(err);
    config_free(&c);
}

/* --log-level, --log-format, --user and --group may come with -c FILE and win over
 * the file, at start and (config_apply_overrides) at every reload; other flags may not. */
static void flags_that_win_over_the_file(void **state)
{
    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "log: { level: warn, format: text }\n"
               "listeners:\n  - bind: 127.0.0.1:18001\n    pool: web\n"
               "pools:\n  web:\n    backends: [ \"http://127.0.0.1:18101\" ]\n");
    fclose(f);
    struct config c;
    char out[2048];
    char *plain[] = {"usher", "-t", "-c", path};
    assert_int_equal(run_args(&c, 4, plain, 2, out, sizeof(out)), 0);
    assert_int_equal(c.log_level, 2); /* warn, from the file */
    assert_int_equal(c.log_format, 0);
    config_free(&c);

    char *argv[] = {"usher", "-t", "-c", path, "--log-level", "debug", "--log-format=json"};
    assert_int_equal(run_args(&c, 7, argv, 2, out, sizeof(out)), 0);
    assert_int_equal(c.log_level, 0); /* debug: the flag wins */
    assert_int_equal(c.log_format, 1);
    config_free(&c);
    /* a reload reads the file again: the flags still win */
    struct config next;
    config_defaults(&next);
    FILE *errs = tmpfile();
    assert_int_equal(config_load_file(&next, path, errs), 0);
    fclose(errs);
    assert_int_equal(next.log_level, 2);
    assert_int_equal(config_apply_overrides(&next), 0);
    assert_int_equal(next.log_level, 0);
    assert_int_equal(next.log_format, 1);
    config_free(&next);

    char *mixed[] = {"usher", "-t", "-c", path, "--retries", "1"};
    assert_int_equal(run_args(&c, 6, mixed, 2, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "cannot be mixed with quick-mode flags (only --threads, "
                                "--admin, --log-level, --log-format, --user and --group)"));
    config_free(&c);
    /* a later run without the flags leaves nothing behind for the next reload */
    assert_int_equal(run_args(&c, 4, plain, 2, out, sizeof(out)), 0);
    config_free(&c);
    config_defaults(&next);
    assert_int_equal(config_apply_overrides(&next), 0);
    assert_int_equal(next.log_level, 1); /* info: the default, untouched */
    unlink(path);
}

/* The case: --connect-timeout 0 was refused while timeouts: {connect: 0s} passed. */
static void zero_timeouts_refused_from_both_sides(void **state)
{
    static const char *const flags[] = {"--connect-timeout", "--health-timeout",
                                        "--response-timeout"};
    static const char *const zeros[] = {"0", "0s", "0ms"};
    for (size_t i = 0; i < 3; i++)
        for (size_t z = 0; z < 3; z++)
            assert_false(same_both_ways(settings_find_flag(flags[i]), zeros[z]));
    for (size_t z = 0; z < 3; z++) {
        assert_true(same_both_ways(settings_find_flag("--health-interval"), zeros[z]));
        assert_true(same_both_ways(settings_find_flag("--slow-start"), zeros[z]));
    }
    assert_true(same_both_ways(settings_find_flag("--health-interval"), "off"));
    assert_true(same_both_ways(settings_find_flag("--connect-timeout"), "1ms"));
}

/* Every flag, a spread of values: each accepted or refused the same way from both sides. */
static void every_flag_agrees_on_every_value(void **state)
{
    static const char *const values[] = {"0",
                                         "0s",
                                         "1",
                                         "7",
                                         "8",
                                         "9ms",
                                         "10ms",
                                         "2s",
                                         "off",
                                         "auto",
                                         "257",
                                         "99",
                                         "100",
                                         "10001",
                                         "abc",
                                         "",
                                         "-1",
                                         "+2",
                                         "200-399",
                                         "399-200",
                                         "/health",
                                         "/a b",
                                         "json",
                                         "combined",
                                         "maglev",
                                         "p2c",
                                         "nope",
                                         "client_ip",
                                         "header:",
                                         "cookie:sid",
                                         "usher_cookie",
                                         "a;b",
                                         "true",
                                         "1h",
                                         "4294968s",
                                         "1000",
                                         "1001",
                                         "-"};
    int refused = 0, accepted = 0;
    for (const struct setting *s = settings_table; s->key; s++) {
        if (!s->flag) continue;
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            if (same_both_ways(s, values[i]))
                accepted++;
            else
                refused++;
        }
    }
    /* the spread reaches both outcomes often */
    assert_true(accepted > 150);
    assert_true(refused > 400);
}

/* An unknown flag and an unknown key are refused, the key with a suggestion. */
static void unknown_flag_and_key(void **state)
{
    struct config c;
    char out[2048];
    char *argv[] = {"usher", "--backend", "http://127.0.0.1:9", "--connect-timout", "1s"};
    assert_int_equal(run_args(&c, 5, argv, 2, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "usher: unknown option '--connect-timout'"));
    config_free(&c);

    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "listeners:\n  - bind: 127.0.0.1:18001\n    pool: web\npools:\n  web:\n"
               "    timeouts: { conect: 1s }\n    backends: [ \"http://127.0.0.1:18101\" ]\n");
    fclose(f);
    char *err = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&err, &len);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, errs), 1);
    fclose(errs);
    unlink(path);
    assert_non_null(strstr(err, ":6:17: pool 'web' timeouts: unknown key 'conect' (did you mean "
                                "'connect'? expected one of: connect, response)"));
    free(err);
    config_free(&c);
}

/* --help names every flag of the table (the flags the table does not hold are
 * structural: --listen, --backend, -c, -t). */
static void help_names_every_flag(void **state)
{
    struct config c;
    static char out[16384];
    char *argv[] = {"usher", "--help"};
    assert_int_equal(run_args(&c, 2, argv, 1, out, sizeof(out)), -1);
    config_free(&c);
    for (const struct setting *s = settings_table; s->key; s++) {
        if (!s->flag) continue;
        char line[80];
        snprintf(line, sizeof(line), "\n  %s ", s->flag);
        if (!strstr(out, line)) fail_msg("--help has no line for %s", s->flag);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),
        cmocka_unit_test(zero_durations),
        cmocka_unit_test(numbers),
        cmocka_unit_test(sizes),
        cmocka_unit_test(strings),
        cmocka_unit_test(bools_enums_statuses),
        cmocka_unit_test(defaults),
        cmocka_unit_test(table_is_consistent),
        cmocka_unit_test(unknown_names),
        cmocka_unit_test(zero_timeouts_refused_from_both_sides),
        cmocka_unit_test(every_flag_agrees_on_every_value),
        cmocka_unit_test(backend_urls),
        cmocka_unit_test(backend_tls_without_https),
        cmocka_unit_test(discover_scheme_and_tls),
        cmocka_unit_test(unknown_flag_and_key),
        cmocka_unit_test(help_names_every_flag),
        cmocka_unit_test(flags_that_win_over_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
