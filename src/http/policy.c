/* policy: request acceptance and the response plan. See policy.h. */
#include "http/policy.h"

#include <stdio.h>
#include <string.h>

static int refuse(struct h1_refusal *r, int status, const char *msg)
{
    r->status = status;
    r->msg = msg;
    return status;
}

int h1_request_size_check(const char *p, size_t len, size_t head_len, int eof,
                          const struct h1_limits *l, struct h1_refusal *r)
{
    if (!head_len) {
        if (len >= l->max_request_line && !memchr(p, '\n', l->max_request_line))
            return refuse(r, 414, "Request line too long");
        if (len >= l->max_header_bytes || len >= l->buf_size)
            return refuse(r, 431, "Request header fields too large");
        if (eof)
            return refuse(r, 400, "Bad request: the connection closed inside the request head");
        return 0;
    }
    if (head_len > l->max_header_bytes) return refuse(r, 431, "Request header fields too large");
    const char *lf = memchr(p, '\n', head_len);
    if (lf && (size_t)(lf - p) > l->max_request_line)
        return refuse(r, 414, "Request line too long");
    return 0;
}

int h1_accept_request(const struct h1_head *h, const char *p, size_t head_len,
                      const struct h1_limits *l, struct h1_refusal *r)
{
    if (h->too_many)
        return refuse(r, 431, "Request header fields too large: too many header lines");
    if (h->bad_value || h->bad_name)
        return refuse(r, 400, "Bad request: invalid header name, character or line folding");
    const char *why = NULL;
    int status = h1_check_request(h, p, head_len, &why);
    if (status) {
        snprintf(r->buf, sizeof(r->buf), "%s: %s",
                 status == 505 ? "HTTP version not supported" : "Bad request", why);
        return refuse(r, status, r->buf);
    }
    if (h->method_id == HTTP_CONNECT && h->method.len == 7)
        return refuse(r, 405, "Method not allowed: usher is not a forward proxy");
    if (l->max_body_size && !h->complete && !h->chunked && h->content_length > l->max_body_size)
        return refuse(r, 413, "Payload too large: the request body is larger than the limit");
    return 0;
}

void h1_plan_response(struct h1_head *h, const char *p, size_t head_len, int parse_err,
                      const char *parse_why, int is_head, int upgrade_req,
                      struct h1_response_plan *plan)
{
    *plan = (struct h1_response_plan){.kind = H1_RES_INVALID, .backend_fault = 1};
    if (parse_err) {
        plan->why = parse_why ? parse_why : "?";
        return;
    }
    if (h->too_many || h->bad_value || h->bad_name) {
        plan->why = h->too_many ? "too many headers" : "bad header value";
        return;
    }
    if (h1_check_response(h, p, head_len, &plan->why)) return;
    if (h->status == 101) {
        if (!upgrade_req) {
            plan->why = "101 Switching Protocols without an upgrade request";
            plan->backend_fault = 0;
            return;
        }
        plan->kind = H1_RES_UPGRADE;
        return;
    }
    if (h->status < 200) {
        plan->kind = H1_RES_INTERIM;
        return;
    }
    plan->kind = H1_RES_FINAL;
    /* RFC 9110 6.4.1: no content after HEAD, 204 or 304, whatever the head says
     * (and never forward the bytes that follow, nor reuse that connection) */
    if (is_head || h->status == 204 || h->status == 304) h->complete = 1;
    int close_delimited = !h->complete && !h->chunked && !h->has_cl;
    plan->body = h->complete  ? BODY_NONE
                 : h->chunked ? BODY_CHUNKED
                 : h->has_cl  ? BODY_LENGTH
                              : BODY_CLOSE;
    plan->backend_keepalive =
        !close_delimited && !h->conn_close && !(h->minor == 0 && !h->conn_keep_alive);
}

void h1_plan_client(const struct h1_head *h, const struct h1_response_plan *rp, int http10,
                    int keep_alive, int must_close, struct h1_client_plan *cp)
{
    cp->dechunk = rp->body == BODY_CHUNKED && http10;
    /* a body ended by close, or de-chunked, can only end with the connection;
     * an answer before the request body ended would leave the rest of that
     * body to be read as the next request (RFC 9112 9.6) */
    cp->keep_alive = keep_alive && !must_close && rp->body != BODY_CLOSE && !cp->dechunk;
    cp->conn = !cp->keep_alive ? H1_CONN_CLOSE : http10 ? H1_CONN_KEEP_ALIVE : H1_CONN_NONE;
}
