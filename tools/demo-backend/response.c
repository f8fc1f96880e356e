/* response: see response.h. */
#include "response.h"

#include <inttypes.h>
#include <string.h>

#include "json.h"
#include "out.h"

const char *resp_name;
struct buf resp_name_json;
struct buf resp_body;

void resp_set_name(const char *name)
{
    resp_name = name;
    json_str(&resp_name_json, name, strlen(name));
}

void resp_free(void)
{
    buf_free(&resp_body);
    buf_free(&resp_name_json);
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void resp_head(struct conn *c, int status, const char *ctype, int64_t clen, bool chunked,
               const char *extra)
{
    out_printf(c, "HTTP/1.1 %d %s\r\nX-Backend: %s\r\n", status, reason(status), resp_name);
    if (ctype) out_printf(c, "Content-Type: %s\r\n", ctype);
    if (chunked)
        out_puts(c, "Transfer-Encoding: chunked\r\n");
    else if (clen >= 0)
        out_printf(c, "Content-Length: %" PRId64 "\r\n", clen);
    if (extra) out_puts(c, extra);
    if (!c->ka)
        out_puts(c, "Connection: close\r\n");
    else if (c->minor == 0)
        out_puts(c, "Connection: keep-alive\r\n");
    out_puts(c, "\r\n");
}

void resp_full(struct conn *c, int status, const char *ctype, const char *body, size_t len,
               const char *extra)
{
    resp_head(c, status, ctype, (int64_t)len, false, extra);
    if (!c->is_head) out_append(c, body, len);
}

void resp_json(struct conn *c, int status, const struct buf *b)
{
    resp_full(c, status, "application/json", b->p, b->len, NULL);
}

void resp_error(struct conn *c, int status, const char *msg)
{
    resp_body.len = 0;
    buf_puts(&resp_body, "{\"error\":");
    json_str(&resp_body, msg, strlen(msg));
    buf_putc(&resp_body, '}');
    resp_json(c, status, &resp_body);
}
