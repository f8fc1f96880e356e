/* discover: a pool's backends from DNS (see discover.h). */
#include "upstream/discover.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/log.h"

#define MAX_SOCKS 16      /* sockets c-ares keeps open for one channel */
#define MAX_LOOKUPS 64    /* A and AAAA questions for SRV targets, per round */
#define RETRY_MIN_MS 1000 /* a failure is asked again no sooner than this */

/* ---- the pure parts ---------------------------------------------------------------- */

/* name: the SRV target, or NULL (A, AAAA) */
static void put_target(struct discover_set *out, int family, const uint8_t *a, uint16_t port,
                       uint16_t weight, uint16_t priority, const char *name)
{
    if (out->n >= DISCOVER_MAX_TARGETS) return;
    struct discover_target *t = &out->t[out->n++];
    memset(t, 0, sizeof(*t));
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&t->addr;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        memcpy(&s->sin_addr, a, 4);
        t->addrlen = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&t->addr;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        memcpy(&s->sin6_addr, a, 16);
        t->addrlen = sizeof(*s);
    }
    t->weight = weight;
    t->priority = priority;
    if (name) snprintf(t->name, sizeof(t->name), "%s", name);
}

static void min_ttl(struct discover_set *out, uint32_t ttl)
{
    if (ttl < out->ttl_s) out->ttl_s = ttl;
}

int discover_build_set(const struct discover_spec *spec, const struct dns_answer *answer,
                       const struct discover_addr *addrs, uint32_t naddrs, struct discover_set *out,
                       const char **why)
{
    out->n = 0;
    out->ttl_s = UINT32_MAX;
    if (spec->type != DISCOVER_SRV) {
        uint16_t want = spec->type == DISCOVER_A ? DNS_T_A : DNS_T_AAAA;
        for (uint32_t i = 0; i < answer->nrecords; i++) {
            const struct dns_record *r = &answer->records[i];
            if (!r->answer || r->type != want) continue;
            put_target(out, want == DNS_T_A ? AF_INET : AF_INET6,
                       want == DNS_T_A ? r->u.a : r->u.aaaa, spec->port, 1, 0, NULL);
            min_ttl(out, r->ttl);
        }
    } else {
        for (uint32_t i = 0; i < answer->nrecords; i++) {
            const struct dns_record *s = &answer->records[i];
            if (!s->answer || s->type != DNS_T_SRV) continue;
            /* RFC 2782: a target of "." means the service is not offered there */
            if (!s->u.srv.target[0] || !s->u.srv.port) continue;
            uint32_t before = out->n;
            for (uint32_t k = 0; k < answer->nrecords; k++) {
                const struct dns_record *a = &answer->records[k];
                if (a->answer || (a->type != DNS_T_A && a->type != DNS_T_AAAA) ||
                    strcmp(a->owner, s->u.srv.target))
                    continue;
                put_target(out, a->type == DNS_T_A ? AF_INET : AF_INET6,
                           a->type == DNS_T_A ? a->u.a : a->u.aaaa, s->u.srv.port, s->u.srv.weight,
                           s->u.srv.priority, s->u.srv.target);
                min_ttl(out, a->ttl);
            }
            for (uint32_t k = 0; k < naddrs; k++) {
                const struct discover_addr *a = &addrs[k];
                if (a->target >= answer->nrecords ||
                    strcmp(answer->records[a->target].u.srv.target, s->u.srv.target))
                    continue;
                put_target(out, a->family, a->a, s->u.srv.port, s->u.srv.weight, s->u.srv.priority,
                           s->u.srv.target);
                min_ttl(out, a->ttl);
            }
            if (out->n > before) min_ttl(out, s->ttl);
        }
    }
    discover_sort(out);
    if (!out->n) {
        *why = spec->type == DISCOVER_SRV ? "the answer names no target with an address"
                                          : "the answer has no address";
        out->ttl_s = 0;
        return -1;
    }
    return 0;
}

int discover_build_addrs(const struct discover_spec *spec, const struct discover_addr *addrs,
                         uint32_t naddrs, struct discover_set *out, const char **why)
{
    out->n = 0;
    out->ttl_s = UINT32_MAX;
    for (uint32_t i = 0; i < naddrs; i++) {
        put_target(out, addrs[i].family, addrs[i].a, spec->port, 1, 0, NULL);
        min_ttl(out, addrs[i].ttl);
    }
    discover_sort(out);
    if (!out->n) {
        *why = "the answers have no address (A or AAAA)";
        out->ttl_s = 0;
        return -1;
    }
    return 0;
}

static int cmp_target(const void *pa, const void *pb)
{
    const struct discover_target *a = pa, *b = pb;
    if (a->addr.ss_family != b->addr.ss_family)
        return a->addr.ss_family < b->addr.ss_family ? -1 : 1;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->addr, *y = (const void *)&b->addr;
        int c = memcmp(&x->sin_addr, &y->sin_addr, 4);
        if (c) return c;
        return (int)ntohs(x->sin_port) - (int)ntohs(y->sin_port);
    }
    const struct sockaddr_in6 *x = (const void *)&a->addr, *y = (const void *)&b->addr;
    int c = memcmp(&x->sin6_addr, &y->sin6_addr, 16);
    if (c) return c;
    return (int)ntohs(x->sin6_port) - (int)ntohs(y->sin6_port);
}

/* The order of a set: by address and port, then by name, so that of one
 * address under two SRV target names every usher keeps the same one. */
static int cmp_sorted(const void *pa, const void *pb)
{
    const struct discover_target *a = pa, *b = pb;
    int c = cmp_target(a, b);
    return c ? c : strcmp(a->name, b->name);
}

void discover_sort(struct discover_set *set)
{
    qsort(set->t, set->n, sizeof(set->t[0]), cmp_sorted);
    uint32_t w = 0;
    for (uint32_t i = 0; i < set->n; i++) {
        /* the same address and port twice (two SRV records, or A and an
         * additional record): one backend, the first name's record */
        if (w && !cmp_target(&set->t[w - 1], &set->t[i])) continue;
        set->t[w++] = set->t[i];
    }
    set->n = w;
}

void discover_target_text(const struct discover_target *t, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (t->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)&t->addr;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(s->sin_port));
    } else {
        const struct sockaddr_in6 *s = (const void *)&t->addr;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(s->sin6_port));
    }
}

/* Appends one change ("+10.0.0.4:8080 (weight 10)") to out, kept a string;
 * with_name: its SRV target name too ("~10.0.0.4:8080 (weight 10, target b.test)"). */
static void say(char *out, size_t cap, size_t *off, const char *sign,
                const struct discover_target *t, int with_weight, int with_name)
{
    char addr[64], prio[24] = "", name[DNS_NAME_MAX + 12] = "", extra[DNS_NAME_MAX + 64] = "";
    discover_target_text(t, addr, sizeof(addr));
    if (t->priority) snprintf(prio, sizeof(prio), ", priority %u", t->priority);
    if (with_name) snprintf(name, sizeof(name), ", target %s", t->name[0] ? t->name : ".");
    if (with_weight) snprintf(extra, sizeof(extra), " (weight %u%s%s)", t->weight, prio, name);
    if (*off + 1 >= cap) return;
    int n = snprintf(out + *off, cap - *off, "%s%s%s%s", *off ? ", " : "", sign, addr, extra);
    if (n < 0) return;
    *off += (size_t)n;
    if (*off >= cap) *off = cap - 1;
}

int discover_diff(const struct discover_set *a, const struct discover_set *b, char *out, size_t cap)
{
    size_t off = 0;
    int changed = 0;
    if (cap) out[0] = 0;
    uint32_t i = 0, k = 0;
    while (i < a->n || k < b->n) {
        int c = i >= a->n ? 1 : k >= b->n ? -1 : cmp_target(&a->t[i], &b->t[k]);
        if (c < 0) {
            say(out, cap, &off, "-", &a->t[i++], 0, 0);
            changed = 1;
        } else if (c > 0) {
            say(out, cap, &off, "+", &b->t[k++], 1, 0);
            changed = 1;
        } else {
            /* the same backend; another SRV target name for it is a change
             * too: its https:// connections check that name from now on */
            int renamed = strcmp(a->t[i].name, b->t[k].name) != 0;
            if (a->t[i].weight != b->t[k].weight || a->t[i].priority != b->t[k].priority ||
                renamed) {
                say(out, cap, &off, "~", &b->t[k], 1, renamed);
                changed = 1;
            }
            i++, k++;
        }
    }
    return changed;
}

uint32_t discover_next_ms(const struct discover_spec *spec, uint32_t ttl_s)
{
    uint64_t ms = (uint64_t)ttl_s * 1000;
    if (ms < spec->min_ttl_ms) ms = spec->min_ttl_ms;
    if (ms > spec->max_ttl_ms) ms = spec->max_ttl_ms;
    return (uint32_t)ms;
}

/* ---- asking, with c-ares on the loop ------------------------------------------------- */

struct sock_watch {
    struct loop_io io; /* first: the loop's io is the watch */
    struct discover *d;
};

struct discover {
    struct discover_spec spec;
    struct loop *loop;
    discover_cb cb;
    void *arg;
    ares_channel channel;
    struct sock_watch socks[MAX_SOCKS];
    struct loop_timer ares_timer; /* c-ares' own timeouts and retries */
    struct loop_timer next;       /* the next question */
    struct loop_defer defer;
    int stopped;
    uint32_t round;             /* questions of an older round are ignored */
    uint32_t pending;           /* answers awaited in this round */
    struct dns_answer *answer;  /* this round's main answer (SRV: waits for lookups) */
    struct dns_answer *scratch; /* a lookup's answer, read */
    struct discover_addr addrs[MAX_LOOKUPS * 4];
    uint32_t naddrs;
    struct discover_set *current; /* in use (the last one handed over) */
    struct discover_set *fresh;   /* being built */
    uint64_t last_ok;             /* loop ms of the last good answer; 0: never */
    int failing;                  /* said once per run of failures */
    uint64_t ok_count, failed_count;
    int addr_status; /* A_AAAA: the worst status of this round's two questions */
    struct discover *next_running, **prev_running; /* the list of running ones */
};

static struct discover *running; /* control thread only */

const struct discover *discover_running(uint32_t i)
{
    struct discover *d = running;
    while (d && i--) d = d->next_running;
    return d;
}

struct lookup {
    struct discover *d;
    uint32_t round;
    uint16_t target; /* index in d->answer of the SRV record it is for */
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_ready;

static void init_ares(void)
{
    ares_ready = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS;
}

static const char *type_name(enum discover_type t)
{
    return t == DISCOVER_A      ? "A"
           : t == DISCOVER_AAAA ? "AAAA"
           : t == DISCOVER_SRV  ? "SRV"
                                : "A/AAAA";
}

/* Arms the c-ares timer from what c-ares waits for now. */
static void rearm(struct discover *d)
{
    struct timeval tv, *tvp = ares_timeout(d->channel, NULL, &tv);
    if (!tvp) {
        loop_timer_stop(d->loop, &d->ares_timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
    loop_timer_set(d->loop, &d->ares_timer, ms);
}

static void on_sock(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct sock_watch *w = (struct sock_watch *)io;
    struct discover *d = w->d;
    ares_socket_t fd = io->fd;
    ares_process_fd(d->channel, (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD,
                    (events & EPOLLOUT) ? fd : ARES_SOCKET_BAD);
    if (!d->stopped) rearm(d);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct discover *d = data;
    struct sock_watch *w = NULL, *free_slot = NULL;
    for (uint32_t i = 0; i < MAX_SOCKS; i++) {
        if (d->socks[i].io.fd == fd)
            w = &d->socks[i];
        else if (d->socks[i].io.fd < 0 && !free_slot)
            free_slot = &d->socks[i];
    }
    uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    if (!ev) {
        if (w) loop_forget(d->loop, &w->io); /* c-ares closes it */
        return;
    }
    if (w) {
        loop_mod(d->loop, &w->io, ev);
        return;
    }
    if (!free_slot) {
        log_warn("pool '%s': DNS: more than %d sockets open for %s; some answers may be late",
                 d->spec.pool, MAX_SOCKS, d->spec.name);
        return;
    }
    free_slot->io.fd = fd;
    if (loop_add(d->loop, &free_slot->io, ev) < 0) free_slot->io.fd = -1;
}

static void on_ares_timer(struct loop *loop, struct loop_timer *t)
{
    struct discover *d = (struct discover *)((char *)t - offsetof(struct discover, ares_timer));
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    if (!d->stopped) rearm(d);
}

static const char *status_words(int status)
{
    switch (status) {
    case ARES_ENOTFOUND: return "NXDOMAIN: the name does not exist";
    case ARES_ENODATA: return "the name has no records of this type";
    case ARES_ETIMEOUT: return "no answer (timed out)";
    case ARES_ESERVFAIL: return "SERVFAIL: the DNS server could not answer";
    case ARES_EREFUSED: return "REFUSED by the DNS server";
    case ARES_ECONNREFUSED: return "the DNS server refused the connection";
    default: return ares_strerror(status);
    }
}

static void hand_over(struct discover *d)
{
    char changes[2048];
    if (!discover_diff(d->current, d->fresh, changes, sizeof(changes))) return;
    struct discover_set *t = d->current;
    d->current = d->fresh;
    d->fresh = t;
    log_info("pool '%s': %s now gives %u backend%s: %s", d->spec.pool, d->spec.name, d->current->n,
             d->current->n == 1 ? "" : "s", changes);
    d->cb(d, d->arg, d->current, changes);
}

static void ask(struct discover *d);

static void schedule(struct discover *d, uint32_t ms)
{
    loop_timer_set(d->loop, &d->next, ms);
}

static void round_failed(struct discover *d, const char *why)
{
    d->failed_count++;
    uint64_t now = d->loop->now;
    int expired = !d->last_ok || now - d->last_ok >= d->spec.hold_ms;
    if (!d->failing) {
        d->failing = 1;
        if (d->current->n && !expired)
            log_warn("pool '%s': DNS %s %s: %s; keeping the last %u backend%s for up to %u s",
                     d->spec.pool, type_name(d->spec.type), d->spec.name, why, d->current->n,
                     d->current->n == 1 ? "" : "s", d->spec.hold_ms / 1000);
        else
            log_warn("pool '%s': DNS %s %s: %s", d->spec.pool, type_name(d->spec.type),
                     d->spec.name, why);
    }
    if (expired && d->current->n) {
        log_warn("pool '%s': DNS %s %s has not answered for %u s (the hold time): its %u "
                 "backend%s are removed",
                 d->spec.pool, type_name(d->spec.type), d->spec.name, d->spec.hold_ms / 1000,
                 d->current->n, d->current->n == 1 ? "" : "s");
        d->fresh->n = 0;
        hand_over(d);
    }
    uint32_t retry = d->spec.min_ttl_ms > RETRY_MIN_MS ? d->spec.min_ttl_ms : RETRY_MIN_MS;
    schedule(d, retry);
}

/* Every answer of the round is in: the set. */
static void round_done(struct discover *d)
{
    const char *why = NULL;
    if (d->spec.type == DISCOVER_A_AAAA) {
        if (discover_build_addrs(&d->spec, d->addrs, d->naddrs, d->fresh, &why) < 0) {
            /* both failed, or one failed and the other had nothing: say the failure */
            round_failed(d, d->addr_status != ARES_SUCCESS && d->addr_status != ARES_ENODATA
                                ? status_words(d->addr_status)
                                : why);
            return;
        }
    } else if (discover_build_set(&d->spec, d->answer, d->addrs, d->naddrs, d->fresh, &why) < 0) {
        round_failed(d, why);
        return;
    }
    d->ok_count++;
    d->last_ok = d->loop->now;
    if (d->failing) {
        d->failing = 0;
        log_info("pool '%s': DNS %s %s answers again", d->spec.pool, type_name(d->spec.type),
                 d->spec.name);
    }
    uint32_t ttl = d->fresh->ttl_s;
    hand_over(d);
    schedule(d, discover_next_ms(&d->spec, ttl));
}

static void on_lookup(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct lookup *l = arg;
    struct discover *d = l->d;
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || d->stopped || l->round != d->round) {
        free(l);
        return;
    }
    if (d->spec.type == DISCOVER_A_AAAA) {
        int st = status;
        if (st == ARES_SUCCESS &&
            (!abuf || dns_parse_answer(abuf, (size_t)alen, d->scratch, NULL) < 0))
            st = ARES_EBADRESP;
        else if (st == ARES_SUCCESS && d->scratch->rcode == DNS_RCODE_NXDOMAIN)
            st = ARES_ENOTFOUND;
        else if (st == ARES_SUCCESS && d->scratch->rcode != DNS_RCODE_NOERROR)
            st = ARES_ESERVFAIL;
        /* NXDOMAIN or a timeout says more than "no records of this type" */
        if (st != ARES_SUCCESS &&
            (d->addr_status == ARES_SUCCESS || d->addr_status == ARES_ENODATA))
            d->addr_status = st;
        if (st != ARES_SUCCESS) {
            free(l);
            if (--d->pending == 0) round_done(d);
            return;
        }
    }
    if (status == ARES_SUCCESS && abuf &&
        dns_parse_answer(abuf, (size_t)alen, d->scratch, NULL) == 0) {
        for (uint32_t i = 0; i < d->scratch->nrecords; i++) {
            const struct dns_record *r = &d->scratch->records[i];
            if (!r->answer || (r->type != DNS_T_A && r->type != DNS_T_AAAA)) continue;
            if (d->naddrs >= sizeof(d->addrs) / sizeof(d->addrs[0])) break;
            struct discover_addr *a = &d->addrs[d->naddrs++];
            a->target = l->target;
            a->family = r->type == DNS_T_A ? AF_INET : AF_INET6;
            memcpy(a->a, r->type == DNS_T_A ? r->u.a : r->u.aaaa, r->type == DNS_T_A ? 4 : 16);
            a->ttl = r->ttl;
        }
    }
    free(l);
    if (--d->pending == 0) round_done(d);
}

/* Whether SRV record i's target has an address in the additional section. */
static int has_additional(const struct dns_answer *a, uint32_t i)
{
    for (uint32_t k = 0; k < a->nrecords; k++)
        if (!a->records[k].answer &&
            (a->records[k].type == DNS_T_A || a->records[k].type == DNS_T_AAAA) &&
            !strcmp(a->records[k].owner, a->records[i].u.srv.target))
            return 1;
    return 0;
}

static void look_up(struct discover *d, uint16_t target, int type)
{
    struct lookup *l = malloc(sizeof(*l));
    if (!l) return;
    *l = (struct lookup){d, d->round, target};
    d->pending++;
    ares_query(d->channel, d->answer->records[target].u.srv.target, 1 /* IN */, type, on_lookup, l);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct discover *d = arg;
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || d->stopped) return;
    if (status != ARES_SUCCESS) {
        round_failed(d, status_words(status));
        return;
    }
    const char *why = NULL;
    if (!abuf || dns_parse_answer(abuf, (size_t)alen, d->answer, &why) < 0) {
        round_failed(d, why ? why : "an answer that cannot be read");
        return;
    }
    if (d->answer->rcode != DNS_RCODE_NOERROR) {
        round_failed(d, d->answer->rcode == DNS_RCODE_NXDOMAIN ? status_words(ARES_ENOTFOUND)
                                                               : status_words(ARES_ESERVFAIL));
        return;
    }
    d->naddrs = 0;
    d->pending = 1; /* this function's own, released below */
    if (d->spec.type == DISCOVER_SRV) {
        uint32_t asked = 0;
        for (uint32_t i = 0; i < d->answer->nrecords && asked < MAX_LOOKUPS; i++) {
            const struct dns_record *r = &d->answer->records[i];
            if (!r->answer || r->type != DNS_T_SRV || !r->u.srv.target[0] ||
                has_additional(d->answer, i))
                continue;
            int seen = 0; /* the same target in an earlier record: asked already */
            for (uint32_t k = 0; k < i && !seen; k++)
                seen = d->answer->records[k].answer && d->answer->records[k].type == DNS_T_SRV &&
                       !strcmp(d->answer->records[k].u.srv.target, r->u.srv.target);
            if (seen) continue;
            look_up(d, (uint16_t)i, DNS_T_A);
            look_up(d, (uint16_t)i, DNS_T_AAAA);
            asked++;
        }
    }
    if (--d->pending == 0) round_done(d);
}

static void ask_addrs(struct discover *d, int type)
{
    struct lookup *l = malloc(sizeof(*l));
    if (!l) return;
    *l = (struct lookup){d, d->round, 0};
    d->pending++;
    ares_query(d->channel, d->spec.name, 1 /* IN */, type, on_lookup, l);
}

static void ask(struct discover *d)
{
    d->round++;
    d->pending = 0;
    if (d->spec.type == DISCOVER_A_AAAA) {
        d->naddrs = 0;
        d->addr_status = ARES_SUCCESS;
        d->pending = 1; /* this function's own: an answer from the cache comes at once */
        ask_addrs(d, DNS_T_A);
        ask_addrs(d, DNS_T_AAAA);
        if (--d->pending == 0) {
            round_done(d);
            return;
        }
        if (!d->stopped) rearm(d);
        return;
    }
    int type = d->spec.type == DISCOVER_A      ? DNS_T_A
               : d->spec.type == DISCOVER_AAAA ? DNS_T_AAAA
                                               : DNS_T_SRV;
    ares_query(d->channel, d->spec.name, 1 /* IN */, type, on_answer, d);
    if (!d->stopped) rearm(d);
}

static void on_next(struct loop *loop, struct loop_timer *t)
{
    struct discover *d = (struct discover *)((char *)t - offsetof(struct discover, next));
    (void)loop;
    ask(d);
}

static void discover_free(struct discover *d)
{
    if (!d) return;
    free(d->answer);
    free(d->scratch);
    free(d->current);
    free(d->fresh);
    free(d);
}

static void on_defer(struct loop_defer *df)
{
    discover_free((struct discover *)((char *)df - offsetof(struct discover, defer)));
}

struct discover *discover_start(struct loop *loop, const struct discover_spec *spec, discover_cb cb,
                                void *arg, char *why, size_t cap)
{
    pthread_once(&ares_once, init_ares);
    if (!ares_ready) {
        snprintf(why, cap, "c-ares could not start");
        return NULL;
    }
    struct discover *d = calloc(1, sizeof(*d));
    if (d) {
        d->answer = malloc(sizeof(*d->answer));
        d->scratch = malloc(sizeof(*d->scratch));
        d->current = calloc(1, sizeof(*d->current));
        d->fresh = calloc(1, sizeof(*d->fresh));
    }
    if (!d || !d->answer || !d->scratch || !d->current || !d->fresh) {
        discover_free(d);
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    d->spec = *spec;
    d->loop = loop;
    d->cb = cb;
    d->arg = arg;
    for (uint32_t i = 0; i < MAX_SOCKS; i++) d->socks[i] = (struct sock_watch){{-1, on_sock}, d};
    d->ares_timer.cb = on_ares_timer;
    d->next.cb = on_next;
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = d;
    o.timeout = (int)(spec->timeout_ms / 2 ? spec->timeout_ms / 2 : 1); /* two tries */
    o.tries = 2;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int st = ares_init_options(&d->channel, &o, mask);
    if (st != ARES_SUCCESS) {
        snprintf(why, cap, "c-ares: %s", ares_strerror(st));
        discover_free(d);
        return NULL;
    }
    if (spec->nresolvers) {
        char csv[DISCOVER_MAX_RESOLVERS * 66] = "";
        size_t off = 0;
        for (uint32_t i = 0; i < spec->nresolvers; i++)
            off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%s%s", i ? "," : "",
                                    spec->resolvers[i]);
        st = ares_set_servers_ports_csv(d->channel, csv);
        if (st != ARES_SUCCESS) {
            snprintf(why, cap, "resolvers %s: %s", csv, ares_strerror(st));
            ares_destroy(d->channel);
            discover_free(d);
            return NULL;
        }
    }
    d->next_running = running;
    d->prev_running = &running;
    if (running) running->prev_running = &d->next_running;
    running = d;
    ask(d);
    return d;
}

void discover_stop(struct discover *d)
{
    if (!d) return;
    *d->prev_running = d->next_running;
    if (d->next_running) d->next_running->prev_running = d->prev_running;
    d->stopped = 1;
    loop_timer_stop(d->loop, &d->ares_timer);
    loop_timer_stop(d->loop, &d->next);
    ares_destroy(d->channel); /* the callbacks see ARES_EDESTRUCTION */
    for (uint32_t i = 0; i < MAX_SOCKS; i++)
        if (d->socks[i].io.fd >= 0) loop_forget(d->loop, &d->socks[i].io);
    d->defer.fn = on_defer;
    loop_defer(d->loop, &d->defer);
}

const struct discover_spec *discover_spec_of(const struct discover *d)
{
    return &d->spec;
}

void discover_counts(const struct discover *d, uint64_t *ok, uint64_t *failed)
{
    *ok = d->ok_count;
    *failed = d->failed_count;
}

void discover_add_counts(struct discover *d, uint64_t ok, uint64_t failed)
{
    d->ok_count += ok;
    d->failed_count += failed;
}

const struct discover_set *discover_current(const struct discover *d)
{
    return d->current;
}
