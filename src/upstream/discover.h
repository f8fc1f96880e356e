/* discover: a pool's backends from DNS (A, AAAA, SRV), resolved with c-ares
 * on the control thread's loop. A worker never waits on DNS: each new set
 * is handed to the owner (app/discovery.c), which applies it the way the
 * admin API applies a runtime change.
 *
 * One struct discover per discovered name. It asks, reads the answer
 * (dnsmsg.c), and for SRV asks the addresses of the targets the answer did
 * not carry in its additional section. The next question follows the
 * answer's smallest TTL, kept within [min_ttl_ms, max_ttl_ms]. A failure
 * (timeout, SERVFAIL, NXDOMAIN, an empty answer) keeps the last set for
 * hold_ms, is logged once per run of failures, and is retried every
 * min_ttl_ms; past the hold time the set is empty.
 *
 * Backends are identified by address and port: a target that stays across
 * answers is the same backend (the generation keeps its state, counters and
 * pooled connections), even when the SRV target name it is found under
 * changes (that is a change of the set too: the name is what TLS checks). */
#ifndef USHER_UPSTREAM_DISCOVER_H
#define USHER_UPSTREAM_DISCOVER_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/loop.h"
#include "upstream/dnsmsg.h"

#define DISCOVER_MAX_TARGETS 256 /* backends one name can give */
#define DISCOVER_MAX_RESOLVERS 8

/* the order of config.h's enum discover_conf_type; A_AAAA asks both and joins them */
enum discover_type { DISCOVER_A, DISCOVER_AAAA, DISCOVER_SRV, DISCOVER_A_AAAA };

struct discover_spec {
    char pool[64]; /* for the log lines */
    char name[DNS_NAME_MAX + 1];
    enum discover_type type;
    uint16_t port;                              /* A and AAAA: the backends' port */
    char resolvers[DISCOVER_MAX_RESOLVERS][64]; /* "HOST:PORT"; none: /etc/resolv.conf */
    uint32_t nresolvers;
    uint32_t min_ttl_ms, max_ttl_ms, hold_ms;
    uint32_t timeout_ms; /* one question, all its tries */
};

struct discover_target {
    struct sockaddr_storage addr; /* with the port */
    socklen_t addrlen;
    uint16_t weight;   /* SRV weight (RFC 2782; 0 is a weight too), else 1 */
    uint16_t priority; /* SRV priority (lowest first), else 0 */
    /* SRV: the target's name (lower case, no final dot), what an https://
     * backend's certificate is checked against; "" for A and AAAA (the name
     * asked is the backends' name) */
    char name[DNS_NAME_MAX + 1];
};

struct discover_set {
    struct discover_target t[DISCOVER_MAX_TARGETS];
    uint32_t n;
    uint32_t ttl_s; /* the smallest TTL of the records it came from */
};

struct discover;

/* A new set for d's name (sorted by address and port; n may be 0 when the
 * hold time of a failure passed). changes: the change in words for the log
 * ("+10.0.0.4:8080 (weight 10), -10.0.0.2:8080"). */
typedef void (*discover_cb)(struct discover *d, void *arg, const struct discover_set *set,
                            const char *changes);

/* Starts asking at once. NULL with why written (c-ares could not start, a
 * resolver address it does not take). */
struct discover *discover_start(struct loop *loop, const struct discover_spec *spec, discover_cb cb,
                                void *arg, char *why, size_t cap);
/* Stops asking; the object is freed at the end of the loop iteration. */
void discover_stop(struct discover *d);
const struct discover_spec *discover_spec_of(const struct discover *d);
/* Counters (usher_discovery_queries_total{result}): answers with records,
 * failures of any kind. */
void discover_counts(const struct discover *d, uint64_t *ok, uint64_t *failed);
/* Adds to d's counters (a discoverer restarted with a new spec keeps the pool's counts). */
void discover_add_counts(struct discover *d, uint64_t ok, uint64_t failed);
/* The set in use (the last one handed over). */
const struct discover_set *discover_current(const struct discover *d);

/* The discoverers running now (control thread), for the metrics: i from 0
 * while it returns one. */
const struct discover *discover_running(uint32_t i);

/* ---- the pure parts, for the tests ---- */

/* An address of an SRV target, from the answer to a question asked for it:
 * target is the index in the SRV answer's records of a record naming it. */
struct discover_addr {
    uint16_t target;
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t a[16];
    uint32_t ttl;
};

/* The set an answer gives. For SRV, the addresses of each target come from
 * the answer's additional section or from addrs (the answers to the A and
 * AAAA questions asked for the targets); a target with no address is left
 * out. 0, or -1 when nothing usable is left (why says). */
int discover_build_set(const struct discover_spec *spec, const struct dns_answer *answer,
                       const struct discover_addr *addrs, uint32_t naddrs, struct discover_set *out,
                       const char **why);
/* The set of A_AAAA: the addresses of both answers (target unused), on
 * spec->port. 0, or -1 when there is none. */
int discover_build_addrs(const struct discover_spec *spec, const struct discover_addr *addrs,
                         uint32_t naddrs, struct discover_set *out, const char **why);
/* Sorts set by address and port and drops duplicates (the same address and
 * port under two SRV target names: the name first in byte order stays). */
void discover_sort(struct discover_set *set);
/* Writes the difference from a to b in words into out; 0 when they hold the
 * same targets with the same weights, priorities and SRV target names. */
int discover_diff(const struct discover_set *a, const struct discover_set *b, char *out,
                  size_t cap);
/* The delay before the next question after an answer of ttl_s seconds. */
uint32_t discover_next_ms(const struct discover_spec *spec, uint32_t ttl_s);
/* "10.0.0.4:8080", "[::1]:8080" */
void discover_target_text(const struct discover_target *t, char *out, size_t cap);

#endif
