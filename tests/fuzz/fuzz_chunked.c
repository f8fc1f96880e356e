/* fuzz_chunked: chunked bodies, as src/proxy/h1_client.c and h1_backend.c run them (body.c).
 *
 * The input is a chunked body (what follows a head). It goes through:
 *   1. body_parse in pieces of varying sizes, as request_body forwards a
 *      client's body: no byte that the strict reader of fuzz_common.h rejects
 *      is ever forwarded, the body ends exactly where the strict reader ends
 *      it, and never reads past it; a body that has ended takes no more bytes;
 *   2. the same in one piece: the same end, the same verdict (splitting never
 *      changes where a message ends or whether it is valid);
 *   3. de-chunking in place (body_parse with an out pointer), the bytes
 *      arriving in pieces as response_body sees them for an HTTP/1.0 client:
 *      the decoded bytes are exactly the chunk data, never more than came in,
 *      and the framing verdict is the same as without de-chunking. */
#include "fuzz_common.h"
#include "http/body.h"

/* Piece sizes from a hash of the input, so that the input stays a plain body. */
static size_t piece_size(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    uint32_t r = (*seed >> 16) & 0xff;
    if (r < 96) return 1 + (r & 3);
    if (r < 192) return 1 + (r & 31);
    return 1 + (r << 2);
}

struct run {
    size_t fwd; /* bytes taken by successful calls: what usher forwards */
    int done, failed;
};

static void run_body(const uint8_t *data, size_t size, uint32_t seed, int one_piece,
                     struct run *out)
{
    struct body b;
    body_init(&b, BODY_CHUNKED, 0);
    memset(out, 0, sizeof(*out));
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    size_t fed = 0;
    while (fed < size && !out->done) {
        size_t n = one_piece ? size : piece_size(&seed);
        if (n > size - fed) n = size - fed;
        int d = 0;
        long r = body_parse(&b, copy + fed, n, &d, NULL);
        if (r < 0) {
            out->failed = 1;
            break;
        }
        FZ_CHECK("body-bounds", (size_t)r <= n && (d || (size_t)r == n),
                 "body_parse took %ld of %zu (done=%d)", r, n, d);
        FZ_CHECK("body-bounds", !memcmp(copy + fed, data + fed, n),
                 "body_parse without out wrote to its input");
        out->fwd += (size_t)r;
        out->done = d;
        fed += n;
    }
    if (out->done) {
        FZ_CHECK("body-done", body_done(&b), "done reported, body_done() says no");
        /* what follows belongs to the next message: a finished body takes none of it */
        int d = 0;
        long r = body_parse(&b, copy, size, &d, NULL);
        FZ_CHECK("body-done", r == 0 && d, "a finished body took %ld more bytes", r);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = (uint32_t)size * 2654435761u;
    for (size_t i = 0; i < size && i < 64; i++) seed = seed * 31 + data[i];

    unsigned char *dec = malloc(size + 1);
    struct ref_chunked rc;
    ref_chunked_parse_out(data, size, &rc, dec);

    /* 1: in pieces */
    struct run a;
    run_body(data, size, seed, 0, &a);
    if (rc.result == REF_ERROR)
        FZ_CHECK(rc.name, a.fwd <= rc.pos,
                 "usher forwards %zu bytes of a chunked body that is invalid at byte %zu (%s)",
                 a.fwd, rc.pos, rc.why);
    if (a.done)
        FZ_CHECK(rc.result == REF_ERROR ? rc.name : "chunked-diff",
                 rc.result == REF_DONE && rc.pos == a.fwd,
                 "usher ends the body at %zu; the strict reader: result %d at %zu (%s)", a.fwd,
                 rc.result, rc.pos, rc.why ? rc.why : "");
    else if (!a.failed)
        FZ_CHECK("chunked-diff", rc.result != REF_DONE,
                 "the strict reader ends the body at %zu, usher reads on", rc.pos);

    /* 2: in one piece */
    struct run b;
    run_body(data, size, seed, 1, &b);
    FZ_CHECK("split-invariance", a.done == b.done && (!a.done || a.fwd == b.fwd),
             "pieces: done=%d at %zu; one piece: done=%d at %zu", a.done, a.fwd, b.done, b.fwd);
    FZ_CHECK("split-invariance", a.failed == b.failed, "pieces failed=%d, one piece failed=%d",
             a.failed, b.failed);

    /* 3: de-chunking in place, bytes arriving in pieces (appended after what
     * was decoded so far, as in h1_backend.c response_body) */
    struct body k;
    body_init(&k, BODY_CHUNKED, 0);
    char *buf = malloc(size + 1);
    size_t fed = 0, dec_end = 0, taken = 0;
    int done = 0, failed = 0;
    uint32_t s2 = seed ^ 0x5bd1e995u;
    while (fed < size && !done) {
        size_t n = piece_size(&s2);
        if (n > size - fed) n = size - fed;
        memcpy(buf + dec_end, data + fed, n);
        char *out = buf + dec_end;
        int d = 0;
        long r = body_parse(&k, buf + dec_end, n, &d, &out);
        if (r < 0) {
            failed = 1;
            break;
        }
        size_t o = (size_t)(out - (buf + dec_end));
        FZ_CHECK("dechunk-bounds", (size_t)r <= n && o <= (size_t)r && out >= buf + dec_end,
                 "took %ld of %zu, decoded %zu", r, n, o);
        dec_end += o;
        taken += (size_t)r;
        fed += n;
        done = d;
    }
    FZ_CHECK("dechunk-agree", done == a.done && failed == a.failed && (!done || taken == a.fwd),
             "de-chunking: done=%d failed=%d at %zu; forwarding: done=%d failed=%d at %zu", done,
             failed, taken, a.done, a.failed, a.fwd);
    if (!failed && rc.result != REF_ERROR) {
        FZ_CHECK("dechunk-data", dec_end <= rc.decoded, "decoded %zu bytes, the strict reader %zu",
                 dec_end, rc.decoded);
        FZ_CHECK("dechunk-data", !memcmp(buf, dec, dec_end < rc.decoded ? dec_end : rc.decoded),
                 "decoded bytes differ from the chunk data");
        if (done && rc.result == REF_DONE)
            FZ_CHECK("dechunk-data", dec_end == rc.decoded, "decoded length differs");
    }
    free(buf);
    free(dec);
    return 0;
}
