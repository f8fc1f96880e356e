/* http: see http.h. */
#include "http.h"

#include <string.h>
#include <strings.h>

#include "crc32.h"
#include "out.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "util.h"

#define MAX_URL (16 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADERS 256

static llhttp_settings_t g_settings;

/* --- llhttp callbacks ---------------------------------------------------- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->url.len = c->hbuf.len = 0;
    if (c->url.cap > MAX_URL) buf_free(&c->url);
    if (c->hbuf.cap > MAX_HEADER_BYTES) buf_free(&c->hbuf);
    c->nhdrs = 0;
    c->hdr_open = c->in_trailers = false;
    c->req_ready = c->keep_alive = c->chunked_req = c->is_head = c->ws_ok = false;
    c->minor = 1;
    c->err_status = 0;
    c->route = ROUTE_NOT_FOUND;
    c->path_off = c->path_len = c->query_off = c->query_len = 0;
    c->body_len = 0;
    c->body_crc = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->url.len + len > MAX_URL) {
        c->err_status = 414;
        return -1;
    }
    buf_append(&c->url, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->in_trailers) return 0;
    if (c->hbuf.len + len > MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    if (!c->hdr_open) {
        if (c->nhdrs == MAX_HEADERS) {
            c->err_status = 431;
            return -1;
        }
        if (c->nhdrs == c->hdrs_cap) {
            c->hdrs_cap = c->hdrs_cap ? 2 * c->hdrs_cap : 16;
            c->hdrs = util_xrealloc(c->hdrs, c->hdrs_cap * sizeof *c->hdrs);
        }
        struct hdr *h = &c->hdrs[c->nhdrs++];
        h->name_off = (uint32_t)c->hbuf.len;
        h->name_len = h->val_off = h->val_len = 0;
        c->hdr_open = true;
    }
    buf_append(&c->hbuf, at, len);
    c->hdrs[c->nhdrs - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->in_trailers && c->nhdrs > 0) c->hdrs[c->nhdrs - 1].val_off = (uint32_t)c->hbuf.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->in_trailers) return 0;
    if (c->hbuf.len + len > MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    buf_append(&c->hbuf, at, len);
    if (c->nhdrs > 0) c->hdrs[c->nhdrs - 1].val_len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->hdr_open = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->in_trailers = true; /* ignore trailer fields of chunked bodies */
    c->hdr_open = false;
    if (p->http_major != 1) {
        c->err_status = 505;
        return -1;
    }
    c->minor = p->http_minor;
    c->chunked_req = (p->flags & F_CHUNKED) != 0;
    c->is_head = !c->custom_method[0] && p->method == HTTP_HEAD;
    req_split_url(c);
    c->route = routes_match(c);

    const char *v;
    size_t vl;
    if (c->route == ROUTE_WS && !c->custom_method[0] && p->method == HTTP_GET && p->upgrade &&
        req_header_has_token(c, "Upgrade", "websocket") &&
        req_header(c, "Sec-WebSocket-Key", &v, &vl) && vl > 0 && vl <= 128)
        c->ws_ok = true;
    /* Anything else, including CONNECT, stays plain HTTP: the upgrade is
     * declined and the parser carries on with the next request. */
    if (!c->ws_ok) p->upgrade = 0;

    bool body_expected = c->chunked_req || p->content_length > 0;
    if (body_expected && c->minor >= 1 && req_header(c, "Expect", &v, &vl) &&
        vl == strlen("100-continue") && strncasecmp(v, "100-continue", vl) == 0)
        out_puts(c, "HTTP/1.1 100 Continue\r\n\r\n");
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    c->body_len += len;
    c->body_crc = crc32_update(c->body_crc, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->req_ready = true;
    return HPE_PAUSED;
}

void http_init(void)
{
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_header_field = on_header_field;
    g_settings.on_header_field_complete = on_header_field_complete;
    g_settings.on_header_value = on_header_value;
    g_settings.on_header_value_complete = on_header_value_complete;
    g_settings.on_headers_complete = on_headers_complete;
    g_settings.on_body = on_body;
    g_settings.on_message_complete = on_message_complete;
}

void http_parser_init(struct conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
}

/* --- feeding ------------------------------------------------------------- */

/* Unparseable request: 400 (or a more precise 4xx/5xx) and close. */
static void bad_request(struct conn *c)
{
    int status = c->err_status ? c->err_status : 400;
    c->ka = false;
    c->is_head = false;
    const char *msg = status == 414   ? "uri too long"
                      : status == 431 ? "request header fields too large"
                      : status == 505 ? "http version not supported"
                                      : "bad request";
    resp_error(c, status, msg);
    c->close_after_flush = true;
    conn_drop_pend(c);
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool known_method(const char *tok, size_t n)
{
#define XX(num, name, string)                                                                      \
    if (n == sizeof #string - 1 && memcmp(tok, #string, n) == 0) return true;
    HTTP_METHOD_MAP(XX)
#undef XX
    return n == 3 && memcmp(tok, "PRI", 3) == 0;
}

/*
 * llhttp only knows a fixed list of methods. To accept any method token,
 * the token at the start of each request is collected here first: a known
 * method is passed on unchanged, an unknown one is remembered and llhttp is
 * shown "POST" instead (for a request, the method does not change framing).
 */
size_t http_feed(struct conn *c, const char *data, size_t len)
{
    size_t used = 0;
    while (used < len && !c->req_ready && !c->close_after_flush) {
        if (c->at_start) {
            while (used < len) {
                unsigned char ch = (unsigned char)data[used];
                if (is_tchar(ch) && c->mtok_len < MTOK_MAX - 1)
                    c->mtok[c->mtok_len++] = (char)ch;
                else if (c->mtok_len > 0 || (ch != '\r' && ch != '\n'))
                    break;
                used++;
            }
            if (used == len) break; /* the token may go on */
            c->at_start = false;
            bool custom =
                c->mtok_len > 0 && data[used] == ' ' && !known_method(c->mtok, c->mtok_len);
            const char *tok = custom ? "POST" : c->mtok;
            size_t tlen = custom ? 4 : c->mtok_len;
            llhttp_errno_t err = tlen ? llhttp_execute(&c->parser, tok, tlen) : HPE_OK;
            /* on_message_begin has run by now: it must not clear this */
            if (custom) memcpy(c->custom_method, c->mtok, c->mtok_len);
            c->custom_method[custom ? c->mtok_len : 0] = '\0';
            c->mtok_len = 0;
            if (err != HPE_OK) {
                bad_request(c);
                return len;
            }
            continue;
        }
        llhttp_errno_t err = llhttp_execute(&c->parser, data + used, len - used);
        if (err == HPE_OK) return len;
        if (err == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
            break;
        }
        bad_request(c);
        return len;
    }
    return used;
}
