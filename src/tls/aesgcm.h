/* aesgcm: AES-GCM for the TLS 1.3 record layer, without the EVP layer.
 *
 * OpenSSL 3's EVP interface costs about 2,000 instructions per record of a
 * few hundred bytes in parameter dispatch alone (the nonce set per record,
 * the tag got or set), more than the cipher itself. Here the AES rounds are
 * the CPU's AES instructions (AES-NI: constant time, no tables) and the GCM
 * mode (GHASH with PCLMULQDQ, counter, tag, the tag's constant-time check)
 * is OpenSSL's own CRYPTO_gcm128 of <openssl/modes.h>, so the one part
 * written here is the AES block function and its key schedule (FIPS 197),
 * checked against EVP by the unit tests. Used only where the CPU has AES-NI
 * and PCLMULQDQ; elsewhere, and for ChaCha20-Poly1305, rec13.c keeps EVP. */
#ifndef USHER_TLS_AESGCM_H
#define USHER_TLS_AESGCM_H

#include <stddef.h>
#include <stdint.h>

struct aesgcm;

/* 1 when the CPU can run this (x86-64 with AES-NI and PCLMULQDQ), else 0. */
int aesgcm_supported(void);

/* A key of 16 (AES-128) or 32 (AES-256) bytes, or NULL (unsupported CPU,
 * another length, no memory). */
struct aesgcm *aesgcm_new(const uint8_t *key, size_t key_len);
/* Wipes and frees g (NULL is fine). */
void aesgcm_free(struct aesgcm *g);

/* Encrypts buf (len bytes) in place with a 12-byte nonce and aad, and writes
 * the 16-byte tag. 0, or -1 (a length GCM refuses). */
int aesgcm_seal(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, uint8_t tag[16]);
/* Decrypts buf in place and checks tag (in constant time). 0, or -1 when
 * the tag does not match (buf then holds garbage: drop it). */
int aesgcm_open(struct aesgcm *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                uint8_t *buf, size_t len, const uint8_t tag[16]);

#endif
