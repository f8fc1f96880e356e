/* pick_bench: nanoseconds per pick() for every balancing algorithm, with 10
 * and 1000 backends.
 *
 *   make bench-pick            one thread (prints a Markdown table)
 *   build/bench/pick_bench 2   two threads picking from the same pool at once:
 *                              the shared counters of round robin, weighted
 *                              round robin and least-conn are then written
 *                              from two cores (meaningful only when two
 *                              cores are free)
 *
 * Each figure is the median of 5 runs of a timed loop of picks; the request
 * context is what the session would pass: client address and request head,
 * with the key hash computed afresh for every pick (maglev hashes the
 * client address, sticky parses its cookie). Backends are all up; in-flight
 * counts are 1..4 (so least-conn, p2c, ewma and bounded maglev compare real
 * numbers); ewma has a latency for every backend. Nothing is asserted: the
 * figures go to docs/benchmarks.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balance/balance.h"
#include "balance/common.h"
#include "config/config.h"
#include "http/h1.h"

#define RUNS 5

static struct pool_conf cfg;
static struct backend_conf cfg_backends[CONFIG_MAX_BACKENDS];
static struct h1_head head;
static char request[512];
static const char *ips[16];

struct variant {
    const char *label;
    const char *balance;
    uint32_t factor; /* maglev's --hash-balance-factor */
};

static const struct variant variants[] = {
    {"round-robin", "round-robin", 0},
    {"weighted-round-robin", "weighted-round-robin", 0},
    {"least-conn", "least-conn", 0},
    {"random", "random", 0},
    {"p2c", "p2c", 0},
    {"ewma", "ewma", 0},
    {"maglev (client_ip)", "maglev", 0},
    {"maglev, bounded load 150%", "maglev", 150},
    {"sticky (cookie)", "sticky", 0},
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void make_pool(struct pool *p, const struct variant *v, uint32_t n)
{
    config_pool_defaults(&cfg);
    cfg.backends = cfg_backends;
    snprintf(cfg.balance, sizeof(cfg.balance), "%s", v->balance);
    cfg.hash_balance_factor = v->factor;
    char why[128];
    for (uint32_t i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://10.0.%u.%u:8080", i / 256, i % 256);
        if (config_parse_backend(url, &cfg.backends[i], why, sizeof(why)) < 0) abort();
        cfg.backends[i].weight = 1 + i % 3; /* weights 1, 2, 3 */
    }
    cfg.nbackends = n;
    if (pool_init(p, &cfg, 0) < 0) abort();
    for (uint32_t i = 0; i < n; i++) atomic_store(&p->backends[i].inflight, 1 + i % 4);
    if (p->ops->on_request_done)
        for (uint32_t i = 0; i < n; i++)
            p->ops->on_request_done(p->balancer, &p->backends[i], BALANCE_OK, 500 + 37 * (i % 11));
}

/* The request the sticky balancer sees: its cookie names backend 7 % n. */
static void make_request(struct pool *p)
{
    char line[256] = "";
    if (p->ops->response_header) {
        size_t len = p->ops->response_header(p->balancer, &p->backends[7 % p->n], line, 255);
        line[len] = 0;
    }
    const char *eq = strchr(line, '=');
    snprintf(request, sizeof(request),
             "GET /api/items?id=42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\n"
             "Cookie: theme=dark; usher_backend=%.16s\r\n\r\n",
             eq ? eq + 1 : "none");
    static llhttp_t parser;
    h1_parser_init(&parser, 1);
    head.max_headers = 100;
    size_t scanned = 0, len = h1_find_head_end(request, strlen(request), &scanned);
    const char *why;
    if (!len || h1_parse_head(&parser, &head, request, len, &why)) abort();
}

struct job {
    struct pool *p;
    uint64_t picks;
    uint64_t ns;
};

static void *run(void *arg)
{
    struct job *j = arg;
    const struct balance_tried none = {0};
    uint64_t sink = 0;
    uint64_t t0 = now_ns();
    const struct balance_request req = {.target = head.target, .field = h1_field, .msg = &head};
    for (uint64_t i = 0; i < j->picks; i++) {
        uint64_t hash = 0;
        struct balance_ctx ctx = {.client_ip = ips[i & 15], .req = &req, .hash = &hash};
        struct backend *b = j->p->ops->pick(j->p->balancer, j->p, &ctx, &none);
        sink += b->index;
    }
    j->ns = now_ns() - t0;
    if (sink == UINT64_MAX) puts(""); /* keep the loop */
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ns per pick over RUNS runs with `threads` threads picking at once. */
static double measure(struct pool *p, int threads)
{
    /* aim at ~50 ms per run */
    struct job probe = {p, 20000, 0};
    run(&probe);
    double per = (double)probe.ns / probe.picks;
    uint64_t picks = (uint64_t)(50e6 / (per > 1 ? per : 1));
    if (picks < 10000) picks = 10000;
    double r[RUNS];
    for (int k = 0; k < RUNS; k++) {
        struct job jobs[2] = {{p, picks, 0}, {p, picks, 0}};
        pthread_t th[2];
        for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, run, &jobs[t]);
        uint64_t ns = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            ns += jobs[t].ns;
        }
        r[k] = (double)ns / ((double)picks * threads); /* per pick, per thread */
    }
    qsort(r, RUNS, sizeof(r[0]), by_value);
    return r[RUNS / 2];
}

int main(int argc, char **argv)
{
    int threads = argc > 1 && !strcmp(argv[1], "2") ? 2 : 1;
    static char ipbuf[16][32];
    for (int i = 0; i < 16; i++) {
        snprintf(ipbuf[i], sizeof(ipbuf[i]), "192.0.2.%d", 10 + i * 13);
        ips[i] = ipbuf[i];
    }
    static const uint32_t sizes[] = {10, 1000};
    printf("| algorithm | 10 backends | 1000 backends |\n");
    printf("| --- | ---: | ---: |\n");
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        printf("| %s ", variants[v].label);
        for (size_t s = 0; s < 2; s++) {
            struct pool p;
            make_pool(&p, &variants[v], sizes[s]);
            make_request(&p);
            printf("| %.1f ", measure(&p, threads));
            fflush(stdout);
            pool_destroy(&p);
        }
        printf("|\n");
    }
    printf(
        "\nns per pick (per thread; %d thread%s), median of %d runs; weights 1-3, in flight 1-4.\n",
        threads, threads > 1 ? "s picking at once" : "", RUNS);
    return 0;
}
