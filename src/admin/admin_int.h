/* admin_int: what admin.c (connections, routing) and api.c (the JSON API)
 * share. Internal to src/admin/. */
#ifndef USHER_ADMIN_ADMIN_INT_H
#define USHER_ADMIN_ADMIN_INT_H

#include "admin/admin.h"
#include "admin/json.h"
#include "admin/metrics.h"

/* One request, as the router hands it to a handler. */
struct admin_req {
    const char *method; /* "GET", ... */
    const char *path;   /* without the query */
    const char *query;  /* after '?', or "" */
    const char *body;
    size_t body_len;
    const char *peer; /* the caller's address, for the log */
};

/* A handler's answer. */
struct admin_res {
    int status;
    const char *type;  /* Content-Type; NULL: application/json */
    const char *allow; /* 405: the Allow header */
    struct jbuf body;
};

extern struct admin_host admin_host;
extern struct metrics_ctl admin_metrics;

/* api.c: the /api/v1/ paths, /healthz, /readyz; changes (mutating) are
 * only called once the token was checked. */
void api_handle(const struct admin_req *rq, struct admin_res *rs);
/* Whether rq changes something (needs the token). */
int api_is_change(const struct admin_req *rq);
/* Once a second: samples, drains that finished. */
void api_tick(void);
/* An error answer {"error": msg}. */
void api_error(struct admin_res *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_free(void);

#endif
