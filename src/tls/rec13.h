/* rec13: the TLS 1.3 record protection (RFC 8446 section 5), a pure codec.
 *
 * No socket here: bytes in, bytes out, for conn_tls13.c (which runs it on a
 * connection after OpenSSL's handshake, see there) and for the unit tests and
 * the fuzzer. One struct rec13_key per direction: its AEAD context keyed
 * once, the static IV, the record sequence number and the traffic secret
 * (kept for a KeyUpdate, RFC 8446 4.6.3 and 7.2). Suites: the three of
 * RFC 8446 B.4 that OpenSSL offers by default (no CCM). */
#ifndef USHER_TLS_REC13_H
#define USHER_TLS_REC13_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define REC13_HDR 5                                /* type, legacy version, length */
#define REC13_TAG 16                               /* every suite here has a 16-byte tag */
#define REC13_MAX_PLAIN 16384                      /* 2^14 (RFC 8446 5.1) */
#define REC13_MAX_BODY (16384 + 256)               /* the ciphertext limit (RFC 8446 5.2) */
#define REC13_OVERHEAD (REC13_HDR + 1 + REC13_TAG) /* what a record adds (no padding) */
#define REC13_SECRET_MAX 48

/* record content types (RFC 8446 B.1) */
enum { REC13_CCS = 20, REC13_ALERT = 21, REC13_HANDSHAKE = 22, REC13_APPDATA = 23 };

/* the alerts this codec answers with (RFC 8446 6) */
enum {
    REC13_AL_CLOSE_NOTIFY = 0,
    REC13_AL_UNEXPECTED_MESSAGE = 10,
    REC13_AL_BAD_RECORD_MAC = 20,
    REC13_AL_RECORD_OVERFLOW = 22,
    REC13_AL_DECODE_ERROR = 50,
    REC13_AL_INTERNAL_ERROR = 80,
};

enum rec13_suite { REC13_AES_128_GCM, REC13_AES_256_GCM, REC13_CHACHA20_POLY1305 };

struct aesgcm;

struct rec13_key {
    struct aesgcm *gcm;  /* AES-GCM without EVP (aesgcm.h), where the CPU allows; else: */
    EVP_CIPHER_CTX *ctx; /* keyed once per traffic secret; per record only the nonce is set */
    uint64_t seq;        /* of the next record (RFC 8446 5.3) */
    uint8_t iv[12];
    uint8_t secret[REC13_SECRET_MAX];
    uint8_t secret_len;
    uint8_t suite; /* enum rec13_suite */
    uint8_t enc;   /* 1: this key seals, 0: it opens */
};

/* The suite of an OpenSSL cipher id (SSL_CIPHER_get_id: 0x03001301..3), or -1. */
int rec13_suite_of(uint32_t openssl_id);
/* The hash length of a suite's HKDF (32 or 48). */
size_t rec13_hash_len(int suite);
/* The suite's name ("TLS_AES_128_GCM_SHA256"...). */
const char *rec13_suite_name(int suite);

/* HKDF-Expand-Label(secret, label, context, out_len) of RFC 8446 7.1 with
 * the suite's hash ("tls13 " is prefixed here). 0 or -1. */
int rec13_expand_label(int suite, const uint8_t *secret, size_t secret_len, const char *label,
                       const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len);

/* Keys k from a traffic secret (RFC 8446 7.3), sequence number seq. enc: 1
 * to seal, 0 to open. 0, or -1 (k is then empty: rec13_key_free is safe). */
int rec13_key_init(struct rec13_key *k, int suite, int enc, const uint8_t *secret,
                   size_t secret_len, uint64_t seq);
/* The next generation of k (RFC 8446 7.2: "traffic upd"), sequence number 0. 0 or -1. */
int rec13_key_update(struct rec13_key *k);
/* Whether AES-GCM keys made from now on use aesgcm.c (on by default where
 * the CPU has AES-NI and PCLMULQDQ) or EVP: returns the setting in force.
 * For the tests, which run both. */
int rec13_set_fast(int on);
/* Frees the context and wipes the secret. */
void rec13_key_free(struct rec13_key *k);

/* What the 5-byte header at h (have bytes of it or more) says: > 0 the
 * length of the whole record, 0 when fewer than 5 bytes are there, or
 * -alert: an outer type other than application_data (RFC 8446 5: after the
 * handshake, unexpected_message), a body over 2^14+256 (record_overflow), or
 * one too short to hold a tag and a type (bad_record_mac). */
long rec13_header(const uint8_t *h, size_t have);

/* Opens the whole record rec (rec_len bytes, rec13_header said so) in place
 * with k: the plaintext is at rec + REC13_HDR, *plain_len bytes, its content
 * type in *type. 0, or -alert: a bad tag (bad_record_mac), an inner plaintext
 * over 2^14 + 1 (record_overflow), no type byte (all padding) or a
 * zero-length alert/handshake, a type that is not alert, handshake or
 * application data (unexpected_message), a sequence number exhausted
 * (internal_error). k's sequence number moves on only on success. */
int rec13_open(struct rec13_key *k, uint8_t *rec, size_t rec_len, uint8_t *type, size_t *plain_len);

/* Seals one record of content type type from the plaintext in iov[0..n)
 * (at most REC13_MAX_PLAIN bytes in all) into out, which has room for
 * total + REC13_OVERHEAD bytes. Returns the record's length, or -1 (a
 * cipher failure, the sequence number exhausted). */
long rec13_seal(struct rec13_key *k, uint8_t type, const struct iovec *iov, int n, uint8_t *out);

#endif
