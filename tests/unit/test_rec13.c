/* Tests src/tls/rec13.c, the TLS 1.3 record protection: known answers from
 * RFC 8448 section 3 (the traffic secrets, the server's write key and IV,
 * the NewSessionTicket and both application data records), a KeyUpdate
 * generation against another implementation's value, round trips for the
 * three suites, and every refusal with its alert; all of it twice, with
 * AES-GCM by aesgcm.c (where the CPU has AES-NI) and by EVP, and aesgcm.c
 * against EVP on random keys, nonces and lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/rand.h>

#include "tls/aesgcm.h"
#include "tls/rec13.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\n') continue;
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        s++;
    }
    return n;
}

/* RFC 8448 3: {client} and {server} application traffic secrets */
static const char C_AP[] = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52"
                           "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
static const char S_AP[] = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32"
                           "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";

/* RFC 8448 3: {server} send a NewSessionTicket handshake message (seq 0) */
static const char NST_PLAIN[] =
    "04 00 00 c9 00 00 00 1e fa d6 aa c5 02 00 00 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00"
    "00 00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09"
    "a2 be 78 5a bc 55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61"
    "be 7f d6 1d 28 27 db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc"
    "d0 fc 67 d2 ae a7 05 29 51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14"
    "70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50 5e"
    "5b fb c3 88 e9 33 43 69 40 93 93 4a e4 d3 57 00 08 00 2a 00 04 00 00 04 00";
static const char NST_REC[] =
    "17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24 0e 6c ff ac 11 6e"
    "95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55 71 3e 06 1d c1 3e"
    "07 88 91 a3 8e fb cf 57 53 ad 8e f1 70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0"
    "d4 a3 d0 3f 75 e0 9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15"
    "13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77 f8 1b 5a b0 5b 94"
    "c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3 47 d1 43 f9 60 5d 64 f6 50 db 4d 02"
    "3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96"
    "12 9c 81 53 55 6b 3b 6c 67 79 b3 7b f1 59 85 68 4f";
/* RFC 8448 3: application data, 50 octets 00..31, client (seq 0) and server (seq 1) */
static const char C_APP_REC[] =
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc"
    "ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd"
    "1e 3d ea e6 3a ee bb 21 69 49 15 e4";
static const char S_APP_REC[] =
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa"
    "1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2"
    "ab f3 32 54 0d d0 32 e1 67 c2 95 5d";

static void key_of(struct rec13_key *k, int suite, int enc, const char *hex, uint64_t seq)
{
    uint8_t sec[48];
    size_t n = unhex(hex, sec, sizeof(sec));
    assert_int_equal(rec13_key_init(k, suite, enc, sec, n, seq), 0);
}

static void rfc8448_server_write_key_and_iv(void **state)
{
    uint8_t sec[32], key[16], want_key[16], want_iv[12];
    unhex(S_AP, sec, sizeof(sec));
    unhex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", want_key, sizeof(want_key));
    unhex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84", want_iv, sizeof(want_iv));
    assert_int_equal(rec13_expand_label(REC13_AES_128_GCM, sec, 32, "key", NULL, 0, key, 16), 0);
    assert_memory_equal(key, want_key, 16);
    struct rec13_key k;
    key_of(&k, REC13_AES_128_GCM, 1, S_AP, 0);
    assert_memory_equal(k.iv, want_iv, 12);
    rec13_key_free(&k);
}

static void rfc8448_server_records_are_sealed_byte_for_byte(void **state)
{
    uint8_t plain[256], want[512], out[512];
    size_t pn = unhex(NST_PLAIN, plain, sizeof(plain)), wn = unhex(NST_REC, want, sizeof(want));
    struct rec13_key k;
    key_of(&k, REC13_AES_128_GCM, 1, S_AP, 0);
    /* the ticket in two pieces: a record is gathered from several iovecs */
    struct iovec iov[2] = {{plain, 100}, {plain + 100, pn - 100}};
    long n = rec13_seal(&k, REC13_HANDSHAKE, iov, 2, out);
    assert_int_equal(n, (long)wn);
    assert_memory_equal(out, want, wn);
    assert_int_equal(k.seq, 1);
    uint8_t data[50];
    for (int i = 0; i < 50; i++) data[i] = (uint8_t)i;
    iov[0] = (struct iovec){data, 50};
    n = rec13_seal(&k, REC13_APPDATA, iov, 1, out);
    wn = unhex(S_APP_REC, want, sizeof(want));
    assert_int_equal(n, (long)wn);
    assert_memory_equal(out, want, wn);
    rec13_key_free(&k);
}

static void rfc8448_client_record_is_opened(void **state)
{
    uint8_t rec[128];
    size_t n = unhex(C_APP_REC, rec, sizeof(rec));
    struct rec13_key k;
    key_of(&k, REC13_AES_128_GCM, 0, C_AP, 0);
    assert_int_equal(rec13_header(rec, n), (long)n);
    assert_int_equal(rec13_header(rec, 4), 0);
    uint8_t type = 0;
    size_t pl = 0;
    assert_int_equal(rec13_open(&k, rec, n, &type, &pl), 0);
    assert_int_equal(type, REC13_APPDATA);
    assert_int_equal(pl, 50);
    for (int i = 0; i < 50; i++) assert_int_equal(rec[REC13_HDR + i], i);
    assert_int_equal(k.seq, 1);
    /* the same record again: sequence number 1 now, so its tag fails */
    n = unhex(C_APP_REC, rec, sizeof(rec));
    assert_int_equal(rec13_open(&k, rec, n, &type, &pl), -REC13_AL_BAD_RECORD_MAC);
    assert_int_equal(k.seq, 1);
    rec13_key_free(&k);
}

static void a_key_update_makes_the_next_secret(void **state)
{
    /* application_traffic_secret_1 of RFC 8448's client, as Botan's
     * src/tests/test_tls_cipher_state.cpp computes it (not in the RFC) */
    uint8_t want[32];
    unhex("fc df cc 72 72 5a ae e4 8b f6 4e 4f d8 b7 49 cd"
          "bd ba b3 9d 90 da 0b 26 e2 24 5c a6 ea 16 72 07",
          want, sizeof(want));
    struct rec13_key k;
    key_of(&k, REC13_AES_128_GCM, 0, C_AP, 5);
    assert_int_equal(rec13_key_update(&k), 0);
    assert_memory_equal(k.secret, want, 32);
    assert_int_equal(k.seq, 0);
    /* both sides updated agree; the old key no longer opens */
    struct rec13_key s;
    key_of(&s, REC13_AES_128_GCM, 1, C_AP, 0);
    assert_int_equal(rec13_key_update(&s), 0);
    uint8_t rec[64];
    struct iovec iov = {"hi", 2};
    long n = rec13_seal(&s, REC13_APPDATA, &iov, 1, rec);
    struct rec13_key old;
    key_of(&old, REC13_AES_128_GCM, 0, C_AP, 0);
    uint8_t copy[64], type;
    size_t pl;
    memcpy(copy, rec, (size_t)n);
    assert_int_equal(rec13_open(&old, copy, (size_t)n, &type, &pl), -REC13_AL_BAD_RECORD_MAC);
    assert_int_equal(rec13_open(&k, rec, (size_t)n, &type, &pl), 0);
    assert_int_equal(pl, 2);
    assert_memory_equal(rec + REC13_HDR, "hi", 2);
    rec13_key_free(&k), rec13_key_free(&s), rec13_key_free(&old);
}

static void every_suite_round_trips(void **state)
{
    static uint8_t plain[REC13_MAX_PLAIN], rec[REC13_MAX_PLAIN + REC13_OVERHEAD];
    for (size_t i = 0; i < sizeof(plain); i++) plain[i] = (uint8_t)(i * 7 + 3);
    for (int suite = 0; suite < 3; suite++) {
        uint8_t sec[48];
        for (int i = 0; i < 48; i++) sec[i] = (uint8_t)(i + suite);
        size_t hl = rec13_hash_len(suite);
        assert_int_equal(hl, suite == REC13_AES_256_GCM ? 48 : 32);
        struct rec13_key w, r;
        assert_int_equal(rec13_key_init(&w, suite, 1, sec, hl, 0), 0);
        assert_int_equal(rec13_key_init(&r, suite, 0, sec, hl, 0), 0);
        /* a wrong secret length is refused */
        struct rec13_key bad;
        assert_int_equal(rec13_key_init(&bad, suite, 0, sec, hl == 32 ? 48 : 32, 0), -1);
        rec13_key_free(&bad);
        size_t sizes[] = {0, 1, 17, 1000, REC13_MAX_PLAIN};
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            struct iovec iov = {plain, sizes[s]};
            long n = rec13_seal(&w, REC13_APPDATA, &iov, 1, rec);
            assert_int_equal(n, (long)(sizes[s] + REC13_OVERHEAD));
            assert_int_equal(rec13_header(rec, (size_t)n), n);
            uint8_t type;
            size_t pl;
            assert_int_equal(rec13_open(&r, rec, (size_t)n, &type, &pl), 0);
            assert_int_equal(type, REC13_APPDATA);
            assert_int_equal(pl, sizes[s]);
            assert_memory_equal(rec + REC13_HDR, plain, sizes[s]);
        }
        /* too much for one record */
        struct iovec big = {plain, REC13_MAX_PLAIN + 1};
        static uint8_t bigrec[REC13_MAX_PLAIN + 1 + REC13_OVERHEAD];
        (void)bigrec;
        assert_int_equal(rec13_seal(&w, REC13_APPDATA, &big, 1, bigrec), -1);
        rec13_key_free(&w), rec13_key_free(&r);
    }
}

/* seals content (its type byte and padding included by the caller) with type 0, so
 * that any inner plaintext can be made; returns the alert rec13_open answers */
static int open_inner(const uint8_t *inner, size_t n, uint8_t *type, size_t *pl, uint8_t *plain)
{
    uint8_t sec[32] = {1};
    struct rec13_key w, r;
    assert_int_equal(rec13_key_init(&w, REC13_CHACHA20_POLY1305, 1, sec, 32, 9), 0);
    assert_int_equal(rec13_key_init(&r, REC13_CHACHA20_POLY1305, 0, sec, 32, 9), 0);
    static uint8_t rec[REC13_MAX_BODY + REC13_HDR];
    /* rec13_seal appends the type byte: seal all but the last byte with it as the type */
    struct iovec iov = {(void *)inner, n - 1};
    long len = rec13_seal(&w, inner[n - 1], &iov, 1, rec);
    assert_true(len > 0);
    int e = rec13_open(&r, rec, (size_t)len, type, pl);
    if (!e && plain) memcpy(plain, rec + REC13_HDR, *pl);
    rec13_key_free(&w), rec13_key_free(&r);
    return e;
}

static void inner_plaintexts_are_checked(void **state)
{
    uint8_t type, plain[16];
    size_t pl;
    /* padding is stripped, the type read before it */
    static const uint8_t padded[] = {'o', 'k', REC13_APPDATA, 0, 0, 0, 0};
    assert_int_equal(open_inner(padded, sizeof(padded), &type, &pl, plain), 0);
    assert_int_equal(type, REC13_APPDATA);
    assert_int_equal(pl, 2);
    assert_memory_equal(plain, "ok", 2);
    /* all padding: no type */
    static const uint8_t zeros[] = {0, 0, 0};
    assert_int_equal(open_inner(zeros, sizeof(zeros), &type, &pl, NULL),
                     -REC13_AL_UNEXPECTED_MESSAGE);
    /* zero-length handshake and alert fragments (RFC 8446 5.1) */
    static const uint8_t hs0[] = {REC13_HANDSHAKE}, al0[] = {REC13_ALERT, 0};
    assert_int_equal(open_inner(hs0, 1, &type, &pl, NULL), -REC13_AL_UNEXPECTED_MESSAGE);
    assert_int_equal(open_inner(al0, 2, &type, &pl, NULL), -REC13_AL_UNEXPECTED_MESSAGE);
    /* an encrypted change_cipher_spec, an unknown type */
    static const uint8_t ccs[] = {1, REC13_CCS}, odd[] = {1, 99};
    assert_int_equal(open_inner(ccs, 2, &type, &pl, NULL), -REC13_AL_UNEXPECTED_MESSAGE);
    assert_int_equal(open_inner(odd, 2, &type, &pl, NULL), -REC13_AL_UNEXPECTED_MESSAGE);
    /* an empty application data record is fine (RFC 8446 5.4) */
    static const uint8_t empty[] = {REC13_APPDATA};
    assert_int_equal(open_inner(empty, 1, &type, &pl, NULL), 0);
    assert_int_equal(pl, 0);
    /* an inner plaintext of 2^14 + 2 bytes: content 2^14, the type, a padding
     * byte (rec13_seal never makes one: sealed here with the key's context) */
    static uint8_t rec[REC13_HDR + REC13_MAX_PLAIN + 2 + REC13_TAG];
    size_t inner = REC13_MAX_PLAIN + 2, body = inner + REC13_TAG;
    uint8_t sec[32] = {1};
    struct rec13_key w, r;
    int fast = rec13_set_fast(0); /* w with an EVP context, to seal by hand */
    assert_int_equal(rec13_key_init(&w, REC13_AES_128_GCM, 1, sec, 32, 0), 0);
    rec13_set_fast(fast);
    assert_int_equal(rec13_key_init(&r, REC13_AES_128_GCM, 0, sec, 32, 0), 0);
    uint8_t *b = rec + REC13_HDR;
    memset(b, 'x', REC13_MAX_PLAIN);
    b[REC13_MAX_PLAIN] = REC13_APPDATA;
    b[REC13_MAX_PLAIN + 1] = 0;
    rec[0] = REC13_APPDATA, rec[1] = 3, rec[2] = 3, rec[3] = (uint8_t)(body >> 8),
    rec[4] = (uint8_t)body;
    int outl;
    assert_int_equal(EVP_CipherInit_ex(w.ctx, NULL, NULL, NULL, w.iv, 1), 1); /* seq 0 */
    assert_int_equal(EVP_CipherUpdate(w.ctx, NULL, &outl, rec, REC13_HDR), 1);
    assert_int_equal(EVP_CipherUpdate(w.ctx, b, &outl, b, (int)inner), 1);
    assert_int_equal(EVP_CipherFinal_ex(w.ctx, b + outl, &outl), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(w.ctx, EVP_CTRL_AEAD_GET_TAG, REC13_TAG, b + inner), 1);
    assert_int_equal(rec13_open(&r, rec, sizeof(rec), &type, &pl), -REC13_AL_RECORD_OVERFLOW);
    rec13_key_free(&w), rec13_key_free(&r);
}

static void headers_are_checked(void **state)
{
    uint8_t h[5] = {REC13_APPDATA, 3, 3, 0, 17};
    assert_int_equal(rec13_header(h, 5), 22);
    h[0] = REC13_HANDSHAKE;
    assert_int_equal(rec13_header(h, 5), -REC13_AL_UNEXPECTED_MESSAGE);
    h[0] = REC13_ALERT; /* a plaintext alert after the handshake */
    assert_int_equal(rec13_header(h, 5), -REC13_AL_UNEXPECTED_MESSAGE);
    h[0] = REC13_CCS;
    assert_int_equal(rec13_header(h, 5), -REC13_AL_UNEXPECTED_MESSAGE);
    h[0] = REC13_APPDATA;
    h[3] = (REC13_MAX_BODY + 1) >> 8, h[4] = (REC13_MAX_BODY + 1) & 0xff;
    assert_int_equal(rec13_header(h, 5), -REC13_AL_RECORD_OVERFLOW);
    h[3] = REC13_MAX_BODY >> 8, h[4] = REC13_MAX_BODY & 0xff;
    assert_int_equal(rec13_header(h, 5), REC13_MAX_BODY + 5);
    h[3] = 0, h[4] = 16; /* no room for a tag and a type */
    assert_int_equal(rec13_header(h, 5), -REC13_AL_BAD_RECORD_MAC);
    /* the legacy version is ignored */
    h[1] = 9, h[2] = 9, h[4] = 40;
    assert_int_equal(rec13_header(h, 5), 45);
}

static void a_flipped_byte_anywhere_fails_the_tag(void **state)
{
    uint8_t sec[48] = {7}, rec[128], copy[128], type;
    size_t pl;
    struct rec13_key w, r;
    assert_int_equal(rec13_key_init(&w, REC13_AES_256_GCM, 1, sec, 48, 0), 0);
    struct iovec iov = {"GET / HTTP/1.1\r\n\r\n", 18};
    long n = rec13_seal(&w, REC13_APPDATA, &iov, 1, rec);
    for (long i = 0; i < n; i++) {
        assert_int_equal(rec13_key_init(&r, REC13_AES_256_GCM, 0, sec, 48, 0), 0);
        memcpy(copy, rec, (size_t)n);
        copy[i] ^= 0x40;
        long h = rec13_header(copy, (size_t)n);
        if (h == n) /* the version bytes are not checked but are in the AAD */
            assert_int_equal(rec13_open(&r, copy, (size_t)n, &type, &pl), -REC13_AL_BAD_RECORD_MAC);
        else
            assert_true(h < 0 || h != n);
        assert_int_equal(r.seq, 0);
        rec13_key_free(&r);
    }
    rec13_key_free(&w);
}

static void a_sequence_number_never_wraps(void **state)
{
    uint8_t sec[32] = {3}, rec[64];
    struct rec13_key w;
    assert_int_equal(rec13_key_init(&w, REC13_AES_128_GCM, 1, sec, 32, UINT64_MAX - 1), 0);
    struct iovec iov = {"x", 1};
    assert_true(rec13_seal(&w, REC13_APPDATA, &iov, 1, rec) > 0);
    assert_int_equal(rec13_seal(&w, REC13_APPDATA, &iov, 1, rec), -1);
    rec13_key_free(&w);
    assert_int_equal(rec13_suite_of(0x03001301), REC13_AES_128_GCM);
    assert_int_equal(rec13_suite_of(0x03001302), REC13_AES_256_GCM);
    assert_int_equal(rec13_suite_of(0x03001303), REC13_CHACHA20_POLY1305);
    assert_int_equal(rec13_suite_of(0x03001304), -1); /* CCM: stays on OpenSSL */
}

/* aesgcm.c against EVP: the same ciphertext and tag for random keys (both
 * sizes), nonces, AAD and lengths around the block and 4-block boundaries
 * up to a full record; it opens what it sealed, and refuses a flipped tag. */
static void aesgcm_agrees_with_evp(void **state)
{
    if (!aesgcm_supported()) skip();
    static uint8_t pt[REC13_MAX_PLAIN + 1], a[REC13_MAX_PLAIN + 1], b[REC13_MAX_PLAIN + 1];
    for (int round = 0; round < 400; round++) {
        size_t kl = round % 2 ? 32 : 16;
        size_t len = round < 200 ? (size_t)(round / 2) : (size_t)(rand() % (REC13_MAX_PLAIN + 2));
        size_t aad_len = (size_t)(round % 7);
        uint8_t key[32], nonce[12], aad[8], ta[16], tb[16];
        assert_int_equal(RAND_bytes(key, 32), 1);
        assert_int_equal(RAND_bytes(nonce, 12), 1);
        assert_int_equal(RAND_bytes(aad, 8), 1);
        if (len) assert_int_equal(RAND_bytes(pt, (int)len), 1);
        memcpy(a, pt, len);
        memcpy(b, pt, len);
        struct aesgcm *g = aesgcm_new(key, kl);
        assert_non_null(g);
        assert_int_equal(aesgcm_seal(g, nonce, aad, aad_len, a, len, ta), 0);
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int outl = 0, fin = 0;
        assert_int_equal(EVP_EncryptInit_ex(c, kl == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(),
                                            NULL, key, nonce),
                         1);
        assert_int_equal(EVP_EncryptUpdate(c, NULL, &outl, aad, (int)aad_len), 1);
        assert_int_equal(EVP_EncryptUpdate(c, b, &outl, b, (int)len), 1);
        assert_int_equal(EVP_EncryptFinal_ex(c, b + outl, &fin), 1);
        assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tb), 1);
        EVP_CIPHER_CTX_free(c);
        assert_memory_equal(a, b, len);
        assert_memory_equal(ta, tb, 16);
        assert_int_equal(aesgcm_open(g, nonce, aad, aad_len, a, len, ta), 0);
        assert_memory_equal(a, pt, len);
        ta[round % 16] ^= 1;
        assert_int_equal(aesgcm_open(g, nonce, aad, aad_len, b, len, ta), -1);
        aesgcm_free(g);
    }
    assert_null(aesgcm_new((const uint8_t *)"0123456789abcdef0123", 20)); /* AES-160: no */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc8448_server_write_key_and_iv),
        cmocka_unit_test(rfc8448_server_records_are_sealed_byte_for_byte),
        cmocka_unit_test(rfc8448_client_record_is_opened),
        cmocka_unit_test(a_key_update_makes_the_next_secret),
        cmocka_unit_test(every_suite_round_trips),
        cmocka_unit_test(inner_plaintexts_are_checked),
        cmocka_unit_test(headers_are_checked),
        cmocka_unit_test(a_flipped_byte_anywhere_fails_the_tag),
        cmocka_unit_test(a_sequence_number_never_wraps),
        cmocka_unit_test(aesgcm_agrees_with_evp),
    };
    int failed = 0;
    if (rec13_set_fast(1))
        failed += cmocka_run_group_tests_name("rec13, aesgcm.c", tests, NULL, NULL);
    rec13_set_fast(0);
    failed += cmocka_run_group_tests_name("rec13, EVP", tests, NULL, NULL);
    return failed;
}
