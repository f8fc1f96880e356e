/* rec13: the TLS 1.3 record protection. See rec13.h. */
#include "tls/rec13.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

#include "tls/aesgcm.h"

static EVP_KDF *hkdf;
static const EVP_CIPHER *ciphers[3];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int fast = 1; /* AES-GCM by aesgcm.c where the CPU allows (rec13_set_fast) */

static void fetch(void)
{
    /* fetched once: an implicit fetch per key would look the provider up each time */
    hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    ciphers[REC13_AES_128_GCM] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    ciphers[REC13_AES_256_GCM] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    ciphers[REC13_CHACHA20_POLY1305] = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

int rec13_suite_of(uint32_t openssl_id)
{
    switch (openssl_id) {
    case 0x03001301: return REC13_AES_128_GCM;
    case 0x03001302: return REC13_AES_256_GCM;
    case 0x03001303: return REC13_CHACHA20_POLY1305;
    default: return -1;
    }
}

size_t rec13_hash_len(int suite)
{
    return suite == REC13_AES_256_GCM ? 48 : 32;
}

const char *rec13_suite_name(int suite)
{
    static const char *const names[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                        "TLS_CHACHA20_POLY1305_SHA256"};
    return suite >= 0 && suite <= 2 ? names[suite] : "?";
}

static size_t key_len(int suite)
{
    return suite == REC13_AES_128_GCM ? 16 : 32;
}

int rec13_expand_label(int suite, const uint8_t *secret, size_t secret_len, const char *label,
                       const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len)
{
    pthread_once(&once, fetch);
    /* struct HkdfLabel (RFC 8446 7.1): uint16 length, opaque label<7..255>
     * ("tls13 " + label), opaque context<0..255> */
    uint8_t info[2 + 1 + 255 + 1 + 255];
    size_t ll = strlen(label);
    if (!hkdf || 6 + ll > 255 || context_len > 255 || out_len > 0xffff) return -1;
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    memcpy(info + n + 6, label, ll);
    n += 6 + ll;
    info[n++] = (uint8_t)context_len;
    if (context_len) memcpy(info + n, context, context_len);
    n += context_len;
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(hkdf);
    if (!kc) return -1;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[5];
    params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_KDF_PARAM_DIGEST, (char *)(suite == REC13_AES_256_GCM ? "SHA384" : "SHA256"), 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
    params[4] = OSSL_PARAM_construct_end();
    int ok = EVP_KDF_derive(kc, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kc);
    OPENSSL_cleanse(info, sizeof(info));
    return ok ? 0 : -1;
}

/* key and iv from k->secret; the context keyed (RFC 8446 7.3) */
static int derive(struct rec13_key *k)
{
    uint8_t key[32];
    size_t kl = key_len(k->suite);
    int ok = rec13_expand_label(k->suite, k->secret, k->secret_len, "key", NULL, 0, key, kl) == 0 &&
             rec13_expand_label(k->suite, k->secret, k->secret_len, "iv", NULL, 0, k->iv, 12) == 0;
    if (ok) {
        aesgcm_free(k->gcm);
        k->gcm = NULL;
        if (fast && k->suite != REC13_CHACHA20_POLY1305) k->gcm = aesgcm_new(key, kl);
        if (!k->gcm) {
            if (!k->ctx) k->ctx = EVP_CIPHER_CTX_new();
            /* the key once; each record sets only its nonce */
            ok = k->ctx &&
                 EVP_CipherInit_ex(k->ctx, ciphers[k->suite], NULL, key, NULL, k->enc) == 1;
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    return ok ? 0 : -1;
}

int rec13_key_init(struct rec13_key *k, int suite, int enc, const uint8_t *secret,
                   size_t secret_len, uint64_t seq)
{
    memset(k, 0, sizeof(*k));
    pthread_once(&once, fetch);
    if (suite < 0 || suite > 2 || !ciphers[suite] || secret_len != rec13_hash_len(suite)) return -1;
    memcpy(k->secret, secret, secret_len);
    k->secret_len = (uint8_t)secret_len;
    k->suite = (uint8_t)suite;
    k->enc = enc ? 1 : 0;
    k->seq = seq;
    if (derive(k) < 0) {
        rec13_key_free(k);
        return -1;
    }
    return 0;
}

int rec13_key_update(struct rec13_key *k)
{
    uint8_t next[REC13_SECRET_MAX];
    /* application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
     */
    if (rec13_expand_label(k->suite, k->secret, k->secret_len, "traffic upd", NULL, 0, next,
                           k->secret_len) < 0)
        return -1;
    memcpy(k->secret, next, k->secret_len);
    OPENSSL_cleanse(next, sizeof(next));
    k->seq = 0;
    return derive(k);
}

int rec13_set_fast(int on)
{
    fast = on && aesgcm_supported();
    return fast;
}

void rec13_key_free(struct rec13_key *k)
{
    aesgcm_free(k->gcm);
    EVP_CIPHER_CTX_free(k->ctx);
    OPENSSL_cleanse(k, sizeof(*k));
}

/* the per-record nonce: iv XOR the sequence number, left-padded (RFC 8446 5.3) */
static void nonce_of(const struct rec13_key *k, uint8_t nonce[12])
{
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
}

/* The AEAD through EVP (ChaCha20-Poly1305, or no AES-NI): buf, len bytes,
 * in place, the record header as AAD. 0 or -1. */
static int evp_open(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *hdr, uint8_t *buf,
                    size_t len, uint8_t *tag)
{
    int outl = 0;
    if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, 0) != 1 ||
        EVP_CipherUpdate(c, NULL, &outl, hdr, REC13_HDR) != 1 ||
        EVP_CipherUpdate(c, buf, &outl, buf, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, REC13_TAG, tag) != 1 ||
        EVP_CipherFinal_ex(c, buf + outl, &outl) != 1)
        return -1;
    return 0;
}

static int evp_seal(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *hdr, uint8_t *buf,
                    size_t len, uint8_t *tag)
{
    int outl = 0, fin = 0;
    if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, 1) != 1 ||
        EVP_CipherUpdate(c, NULL, &outl, hdr, REC13_HDR) != 1 ||
        EVP_CipherUpdate(c, buf, &outl, buf, (int)len) != 1 ||
        EVP_CipherFinal_ex(c, buf + outl, &fin) != 1 || (size_t)outl + (size_t)fin != len ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, REC13_TAG, tag) != 1)
        return -1;
    return 0;
}

long rec13_header(const uint8_t *h, size_t have)
{
    if (have < REC13_HDR) return 0;
    /* legacy_record_version is ignored (RFC 8446 5.1); a change_cipher_spec is
     * dropped only before the peer's Finished, which OpenSSL read (RFC 8446 5) */
    if (h[0] != REC13_APPDATA) return -REC13_AL_UNEXPECTED_MESSAGE;
    size_t len = (size_t)h[3] << 8 | h[4];
    if (len > REC13_MAX_BODY) return -REC13_AL_RECORD_OVERFLOW;
    if (len < 1 + REC13_TAG) return -REC13_AL_BAD_RECORD_MAC;
    return (long)(REC13_HDR + len);
}

int rec13_open(struct rec13_key *k, uint8_t *rec, size_t rec_len, uint8_t *type, size_t *plain_len)
{
    long want = rec13_header(rec, rec_len);
    if (want < 0) return (int)want;
    if (want == 0 || (size_t)want != rec_len) return -REC13_AL_INTERNAL_ERROR;
    if (k->seq == UINT64_MAX) return -REC13_AL_INTERNAL_ERROR; /* 5.3: never wraps */
    uint8_t nonce[12];
    nonce_of(k, nonce);
    size_t clen = rec_len - REC13_HDR - REC13_TAG;
    uint8_t *body = rec + REC13_HDR;
    /* AAD: the header (5.2) */
    if ((k->gcm ? aesgcm_open(k->gcm, nonce, rec, REC13_HDR, body, clen, body + clen)
                : evp_open(k->ctx, nonce, rec, body, clen, body + clen)) < 0)
        return -REC13_AL_BAD_RECORD_MAC;
    k->seq++;
    /* TLSInnerPlaintext: content, the type (non-zero), zeros (5.4) */
    if (clen > REC13_MAX_PLAIN + 1) return -REC13_AL_RECORD_OVERFLOW;
    size_t n = clen;
    while (n > 0 && body[n - 1] == 0) n--;
    if (n == 0) return -REC13_AL_UNEXPECTED_MESSAGE;
    *type = body[n - 1];
    *plain_len = n - 1;
    if (*type != REC13_APPDATA && *type != REC13_ALERT && *type != REC13_HANDSHAKE)
        return -REC13_AL_UNEXPECTED_MESSAGE;
    if (*type != REC13_APPDATA && *plain_len == 0) return -REC13_AL_UNEXPECTED_MESSAGE; /* 5.1 */
    return 0;
}

long rec13_seal(struct rec13_key *k, uint8_t type, const struct iovec *iov, int n, uint8_t *out)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    if (total > REC13_MAX_PLAIN || k->seq == UINT64_MAX) return -1;
    size_t body = total + 1 + REC13_TAG;
    out[0] = REC13_APPDATA; /* the outer type (5.2) */
    out[1] = 0x03;
    out[2] = 0x03;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    /* The plaintext and its type are gathered in out first, then encrypted
     * in place in one pass: each EVP update costs more than copying a
     * record's worth, and a short one goes through GCM's byte-wise path. */
    uint8_t *plain = out + REC13_HDR;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(plain + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    plain[at++] = type;
    uint8_t nonce[12];
    nonce_of(k, nonce);
    if ((k->gcm ? aesgcm_seal(k->gcm, nonce, out, REC13_HDR, plain, at, plain + at)
                : evp_seal(k->ctx, nonce, out, plain, at, plain + at)) < 0)
        return -1;
    at += REC13_HDR;
    k->seq++;
    return (long)(at + REC13_TAG);
}
