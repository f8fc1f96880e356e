/* routes: see routes.h. */
#include "routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "json.h"
#include "out.h"
#include "request.h"
#include "response.h"
#include "stats.h"
#include "util.h"
#include "ws.h"

#define MAX_SLOW_MS (24u * 3600u * 1000u)

enum route routes_match(struct conn *c)
{
    if (req_path_is(c, "/")) return ROUTE_ROOT;
    if (req_path_is(c, "/health")) return ROUTE_HEALTH;
    if (req_path_is(c, "/echo") || req_path_has_prefix(c, "/echo/")) return ROUTE_ECHO;
    if (req_path_is(c, "/slow")) return ROUTE_SLOW;
    if (req_path_is(c, "/bytes")) return ROUTE_BYTES;
    if (req_path_has_prefix(c, "/status/")) return ROUTE_STATUS;
    if (req_path_is(c, "/close")) return ROUTE_CLOSE;
    if (req_path_is(c, "/early-hints")) return ROUTE_EARLY_HINTS;
    if (req_path_is(c, "/ws")) return ROUTE_WS;
    if (req_path_is(c, "/stats")) return ROUTE_STATS;
    if (req_path_is(c, "/stats/reset")) return ROUTE_STATS_RESET;
    return ROUTE_NOT_FOUND;
}

static void hello(struct conn *c)
{
    resp_body.len = 0;
    buf_puts(&resp_body, "{\"message\":\"Hello from ");
    /* the name's JSON string without its opening quote */
    buf_append(&resp_body, resp_name_json.p + 1, resp_name_json.len - 1);
    buf_putc(&resp_body, '}');
    resp_json(c, 200, &resp_body);
}

static void respond_echo(struct conn *c)
{
    struct buf *b = &resp_body;
    b->len = 0;
    buf_puts(b, "{\"backend\":");
    buf_append(b, resp_name_json.p, resp_name_json.len);
    buf_puts(b, ",\"method\":");
    const char *m = req_method(c);
    json_str(b, m, strlen(m));
    buf_puts(b, ",\"path\":");
    json_str(b, c->url.p + c->path_off, c->path_len);
    buf_puts(b, ",\"query\":");
    json_str(b, c->url.p + c->query_off, c->query_len);
    buf_printf(b, ",\"version\":\"1.%d\",\"headers\":[", c->minor);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct hdr *h = &c->hdrs[i];
        buf_puts(b, i ? ",[" : "[");
        json_str(b, c->hbuf.p + h->name_off, h->name_len);
        buf_putc(b, ',');
        json_str(b, c->hbuf.p + h->val_off, h->val_len);
        buf_putc(b, ']');
    }
    buf_printf(b, "],\"body_length\":%" PRIu64 ",\"body_crc32\":\"%08" PRIx32 "\",\"chunked\":%s}",
               c->body_len, c->body_crc, c->chunked_req ? "true" : "false");
    resp_json(c, 200, b);
}

static void respond_stats(struct conn *c)
{
    struct buf *b = &resp_body;
    b->len = 0;
    buf_puts(b, "{\"backend\":");
    buf_append(b, resp_name_json.p, resp_name_json.len);
    buf_putc(b, ',');
    stats_append_json(b);
    buf_putc(b, '}');
    resp_json(c, 200, b);
}

void routes_respond_slow(struct conn *c)
{
    resp_body.len = 0;
    buf_puts(&resp_body, "{\"backend\":");
    buf_append(&resp_body, resp_name_json.p, resp_name_json.len);
    buf_printf(&resp_body, ",\"slept_ms\":%" PRIu64 "}", c->slow_ms);
    resp_json(c, 200, &resp_body);
}

static void respond_status(struct conn *c)
{
    uint64_t st;
    const char *s = c->url.p + c->path_off + strlen("/status/");
    size_t sl = c->path_len - strlen("/status/");
    if (!util_parse_u64(s, sl, 999, &st) || st < 200 || st > 599) {
        resp_error(c, 400, "status must be 200..599");
        return;
    }
    if (st == 204 || st == 304) {
        resp_head(c, (int)st, NULL, -1, false, NULL);
    } else if (st == 205) {
        resp_head(c, (int)st, NULL, 0, false, NULL); /* 205 must not have content */
    } else {
        resp_body.len = 0;
        buf_printf(&resp_body, "{\"status\":%d}", (int)st);
        resp_json(c, (int)st, &resp_body);
    }
}

void routes_dispatch(struct conn *c)
{
    c->req_ready = false;
    c->ka = c->keep_alive;
    enum route r = c->route;
    if (r != ROUTE_HEALTH && r != ROUTE_STATS && r != ROUTE_STATS_RESET) stats_count(req_method(c));

    switch (r) {
    case ROUTE_ROOT: hello(c); break;
    case ROUTE_HEALTH:
        resp_body.len = 0;
        buf_puts(&resp_body, "{\"status\":\"ok\"}");
        resp_json(c, 200, &resp_body);
        break;
    case ROUTE_ECHO: respond_echo(c); break;
    case ROUTE_SLOW:
        if (!req_query_u64(c, "ms", MAX_SLOW_MS, &c->slow_ms)) {
            resp_error(c, 400, "bad or missing ms");
            break;
        }
        timer_arm(&c->timer, c->slow_ms, TIMER_SLOW);
        return; /* answered by the timer */
    case ROUTE_BYTES: bytes_respond(c); return;
    case ROUTE_STATUS: respond_status(c); break;
    case ROUTE_CLOSE: {
        char body[256];
        int n = snprintf(body, sizeof body, "close-delimited body from %s\n", resp_name);
        c->ka = false;
        resp_head(c, 200, "text/plain", -1, false, NULL);
        if (!c->is_head) out_append(c, body, (size_t)n);
        break;
    }
    case ROUTE_EARLY_HINTS:
        if (c->minor >= 1)
            out_puts(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
        hello(c);
        break;
    case ROUTE_WS:
        if (!c->ws_ok) {
            resp_error(c, 400, "websocket upgrade required");
            break;
        }
        ws_handshake(c);
        return; /* the parser stays paused for good */
    case ROUTE_STATS: respond_stats(c); break;
    case ROUTE_STATS_RESET:
        if (c->custom_method[0] || c->parser.method != HTTP_POST) {
            resp_body.len = 0;
            buf_puts(&resp_body, "{\"error\":\"method not allowed\"}");
            resp_full(c, 405, "application/json", resp_body.p, resp_body.len, "Allow: POST\r\n");
            break;
        }
        stats_reset();
        resp_body.len = 0;
        buf_puts(&resp_body, "{\"backend\":");
        buf_append(&resp_body, resp_name_json.p, resp_name_json.len);
        buf_puts(&resp_body, ",\"reset\":true}");
        resp_json(c, 200, &resp_body);
        break;
    case ROUTE_NOT_FOUND: resp_error(c, 404, "not found"); break;
    }
    conn_response_done(c);
}
