/* aesgcm: AES-GCM with AES-NI rounds and OpenSSL's GCM mode. See aesgcm.h. */
#include "tls/aesgcm.h"

#include <openssl/crypto.h>
#include <openssl/modes.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define AES_TARGET __attribute__((target("aes,sse2,ssse3")))

struct aes_key {
    __m128i rk[15]; /* round keys 0..rounds */
    int rounds;     /* 10 (AES-128) or 14 (AES-256) */
};

struct aesgcm {
    struct aes_key key; /* first: the gcm context points at it */
    GCM128_CONTEXT *gcm;
};

int aesgcm_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("ssse3");
}

/* FIPS 197 5.2, one step: w[i..i+3] from w[i-4..i-1] (in k) and the
 * SubWord/RotWord/Rcon word that aeskeygenassist put in lane 3 (sel 0xff) or,
 * for AES-256's odd steps, the SubWord alone in lane 2 (sel 0xaa). */
AES_TARGET static __m128i key_step(__m128i k, __m128i assist)
{
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, assist);
}

#define STEP(t, src, rcon)                                                                         \
    key_step(t, _mm_shuffle_epi32(_mm_aeskeygenassist_si128(src, rcon), 0xff))
#define STEP_ODD(t, src) key_step(t, _mm_shuffle_epi32(_mm_aeskeygenassist_si128(src, 0), 0xaa))

AES_TARGET static void expand_128(struct aes_key *k, const uint8_t *key)
{
    __m128i t = _mm_loadu_si128((const __m128i *)key);
    k->rounds = 10;
    k->rk[0] = t;
    k->rk[1] = t = STEP(t, t, 0x01);
    k->rk[2] = t = STEP(t, t, 0x02);
    k->rk[3] = t = STEP(t, t, 0x04);
    k->rk[4] = t = STEP(t, t, 0x08);
    k->rk[5] = t = STEP(t, t, 0x10);
    k->rk[6] = t = STEP(t, t, 0x20);
    k->rk[7] = t = STEP(t, t, 0x40);
    k->rk[8] = t = STEP(t, t, 0x80);
    k->rk[9] = t = STEP(t, t, 0x1b);
    k->rk[10] = STEP(t, t, 0x36);
}

AES_TARGET static void expand_256(struct aes_key *k, const uint8_t *key)
{
    __m128i a = _mm_loadu_si128((const __m128i *)key);
    __m128i b = _mm_loadu_si128((const __m128i *)(key + 16));
    k->rounds = 14;
    k->rk[0] = a;
    k->rk[1] = b;
    k->rk[2] = a = STEP(a, b, 0x01);
    k->rk[3] = b = STEP_ODD(b, a);
    k->rk[4] = a = STEP(a, b, 0x02);
    k->rk[5] = b = STEP_ODD(b, a);
    k->rk[6] = a = STEP(a, b, 0x04);
    k->rk[7] = b = STEP_ODD(b, a);
    k->rk[8] = a = STEP(a, b, 0x08);
    k->rk[9] = b = STEP_ODD(b, a);
    k->rk[10] = a = STEP(a, b, 0x10);
    k->rk[11] = b = STEP_ODD(b, a);
    k->rk[12] = a = STEP(a, b, 0x20);
    k->rk[13] = b = STEP_ODD(b, a);
    k->rk[14] = STEP(a, b, 0x40);
}

AES_TARGET static __m128i encrypt(const struct aes_key *k, __m128i x)
{
    x = _mm_xor_si128(x, k->rk[0]);
    for (int r = 1; r < k->rounds; r++) x = _mm_aesenc_si128(x, k->rk[r]);
    return _mm_aesenclast_si128(x, k->rk[k->rounds]);
}

/* block128_f: one block (GCM's H and the tag mask) */
AES_TARGET static void block(const unsigned char in[16], unsigned char out[16], const void *key)
{
    _mm_storeu_si128((__m128i *)out, encrypt(key, _mm_loadu_si128((const __m128i *)in)));
}

/* ctr128_f of CRYPTO_gcm128_*_ctr32: blocks counter blocks from ivec, the
 * last 32 bits a big-endian counter that wraps alone (ivec is not updated:
 * the caller moves it on), XORed into in. Four blocks at a time so the AES
 * units overlap. */
AES_TARGET static void ctr32(const unsigned char *in, unsigned char *out, size_t blocks,
                             const void *key, const unsigned char ivec[16])
{
    const struct aes_key *k = key;
    const __m128i swap = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m128i one = _mm_setr_epi32(1, 0, 0, 0);
    /* byte-reversed, the counter is lane 0: a 32-bit add wraps it alone */
    __m128i ctr = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)ivec), swap);
    const __m128i *src = (const __m128i *)in;
    __m128i *dst = (__m128i *)out;
    for (; blocks >= 4; blocks -= 4, src += 4, dst += 4) {
        __m128i x[4];
        for (int j = 0; j < 4; j++) {
            x[j] = _mm_xor_si128(_mm_shuffle_epi8(ctr, swap), k->rk[0]);
            ctr = _mm_add_epi32(ctr, one);
        }
        for (int r = 1; r < k->rounds; r++)
            for (int j = 0; j < 4; j++) x[j] = _mm_aesenc_si128(x[j], k->rk[r]);
        for (int j = 0; j < 4; j++) {
            x[j] = _mm_aesenclast_si128(x[j], k->rk[k->rounds]);
            _mm_storeu_si128(dst + j, _mm_xor_si128(x[j], _mm_loadu_si128(src + j)));
        }
    }
    for (; blocks; blocks--, src++, dst++) {
        __m128i x = encrypt(k, _mm_shuffle_epi8(ctr, swap));
        ctr = _mm_add_epi32(ctr, one);
        _mm_storeu_si128(dst, _mm_xor_si128(x, _mm_loadu_si128(src)));
    }
}

struct aesgcm *aesgcm_new(const uint8_t *key, size_t key_len)
{
    if ((key_len != 16 && key_len != 32) || !aesgcm_supported()) return NULL;
    struct aesgcm *g = aligned_alloc(16, sizeof(*g));
    if (!g) return NULL;
    if (key_len == 16)
        expand_128(&g->key, key);
    else
        expand_256(&g->key, key);
    g->gcm = CRYPTO_gcm128_new(&g->key, block); /* computes H = AES(0) with block */
    if (!g->gcm) {
        OPENSSL_cleanse(g, sizeof(*g));
        free(g);
        return NULL;
    }
    return g;
}

void aesgcm_free(struct aesgcm *g)
{
    if (!g) return;
    CRYPTO_gcm128_release(g->gcm); /* wipes H and its table */
    OPENSSL_cleanse(&g->key, sizeof(g->key));
    free(g);
}

int aesgcm_seal(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, uint8_t tag[16])
{
    CRYPTO_gcm128_setiv(g->gcm, nonce, 12);
    if ((aad_len && CRYPTO_gcm128_aad(g->gcm, aad, aad_len)) ||
        CRYPTO_gcm128_encrypt_ctr32(g->gcm, buf, buf, len, ctr32))
        return -1;
    CRYPTO_gcm128_tag(g->gcm, tag, 16);
    return 0;
}

int aesgcm_open(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, const uint8_t tag[16])
{
    CRYPTO_gcm128_setiv(g->gcm, nonce, 12);
    if ((aad_len && CRYPTO_gcm128_aad(g->gcm, aad, aad_len)) ||
        CRYPTO_gcm128_decrypt_ctr32(g->gcm, buf, buf, len, ctr32))
        return -1;
    return CRYPTO_gcm128_finish(g->gcm, tag, 16) == 0 ? 0 : -1; /* CRYPTO_memcmp */
}

#else /* not x86-64: EVP everywhere */

int aesgcm_supported(void)
{
    return 0;
}

struct aesgcm *aesgcm_new(const uint8_t *key, size_t key_len)
{
    (void)key;
    (void)key_len;
    return NULL;
}

void aesgcm_free(struct aesgcm *g)
{
    (void)g;
}

int aesgcm_seal(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, uint8_t tag[16])
{
    return -1;
}

int aesgcm_open(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, const uint8_t tag[16])
{
    return -1;
}

#endif
