/*
 * demo-backend: a small HTTP/1.1 origin server for `make run` and the
 * integration tests of usher.
 *
 *   demo-backend --port N --name NAME [--host ADDR]
 *
 * This file reads the command line and starts the server; the endpoints are
 * listed in usage() below. How the pieces fit:
 *
 *   server.c   listening socket, epoll loop, signals
 *   conn.c     per-connection state machine (read, parse, dispatch, flush, close)
 *   http.c     llhttp callbacks into a conn; request.c answers questions about it
 *   routes.c   the endpoints; bytes.c (/bytes) and ws.c (/ws) on their own
 *   response.c status line and headers; out.c the output buffer
 *   timer.c    deadlines of /slow and of lingering closes
 *   buf.c json.c crc32.c sha1.c base64.c util.c   self-contained helpers
 *
 * It shares no code with src/: the server usher is tested against must not
 * share usher's bugs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32.h"
#include "http.h"
#include "response.h"
#include "server.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: demo-backend --port N --name NAME [--host ADDR]\n"
               "\n"
               "A demo HTTP/1.1 backend. Listens on ADDR:N (default ADDR 127.0.0.1;\n"
               "port 0 picks a free one) and answers:\n"
               "  GET /               {\"message\":\"Hello from NAME\"}\n"
               "  GET /health         {\"status\":\"ok\"}\n"
               "  ANY /echo[/...]     the request as JSON (headers, body length and CRC32)\n"
               "  /slow?ms=N          answers after N ms\n"
               "  /bytes?n=N[&chunked=1]  N bytes 'a'+i%%26, X-Body-CRC32 header\n"
               "  /status/N           status N (200..599)\n"
               "  /close              body delimited by connection close\n"
               "  /early-hints        103 Early Hints, then 200\n"
               "  /ws                 WebSocket echo\n"
               "  /stats              request counters; POST /stats/reset clears them\n"
               "Every response carries X-Backend: NAME. SIGTERM/SIGINT stop it.\n");
}

__attribute__((noreturn)) static void bad_args(const char *msg, const char *arg)
{
    fprintf(stderr,
            "demo-backend: %s%s%s\n"
            "usage: demo-backend --port N --name NAME [--host ADDR] (--help for more)\n",
            msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *name = NULL, *port_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char *opts[] = {"--port", "--name", "--host"};
        const char **dst[] = {&port_s, &name, &host};
        size_t k;
        for (k = 0; k < 3; k++) {
            size_t ol = strlen(opts[k]);
            if (strcmp(a, opts[k]) == 0) {
                if (i + 1 >= argc) bad_args("missing value for", a);
                val = argv[++i];
                break;
            }
            if (strncmp(a, opts[k], ol) == 0 && a[ol] == '=') {
                val = a + ol + 1;
                break;
            }
        }
        if (k == 3) bad_args("unknown argument", a);
        *dst[k] = val;
    }
    if (!port_s) bad_args("--port is required", NULL);
    if (!name) bad_args("--name is required", NULL);
    uint64_t port;
    if (!util_parse_u64(port_s, strlen(port_s), 65535, &port)) bad_args("bad port", port_s);
    /* the name goes into a header (X-Backend) as is: printable, no spaces */
    if (!*name || strlen(name) > 64) bad_args("bad name (1..64 printable characters)", name);
    for (const char *s = name; *s; s++)
        if (*s < 0x21 || *s > 0x7e) bad_args("bad name (1..64 printable characters)", name);
    if (!*host) bad_args("bad host", host);

    resp_set_name(name);
    crc32_init();
    bytes_init();
    http_init();
    int rc = server_run(host, (unsigned)port);
    resp_free();
    return rc;
}
