/* tls_int: what the files of src/tls/ share. Internal. */
#ifndef USHER_TLS_TLS_INT_H
#define USHER_TLS_TLS_INT_H

#include <openssl/ssl.h>

#include "net/conn.h"
#include "tls/tls.h"

/* conn_tls.c: makes ssl's BIO the socket of c, and c->tls ssl. 0 or -ENOMEM. */
int tls_conn_bind(struct conn *c, SSL *ssl);

/* server.c: a handshake of ssl failed for reason (counted per listener). */
void tls_note_failure(SSL *ssl, const char *reason);
/* server.c: the handshake was refused for OpenSSL error err: a plain HTTP
 * request gets a plain 400 before the close. */
void tls_handshake_refused(struct conn *c, SSL *ssl, unsigned long err);

/* cert.c: the reason of OpenSSL's last error, in its words ("unknown error"
 * when there is none); a certificate date as "2027-03-01 12:00 UTC". */
const char *tls_ssl_reason(void);
void tls_time_words(const ASN1_TIME *t, char *out, size_t cap);

/* cert.c: a certificate, the rest of its chain and its private key. */
struct tls_cert {
    X509 *x;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    char until[40]; /* the end of validity, in words */
    int days_left;
};
/* Reads the PEM chain in file cert and the private key in file key (NULL or
 * "": in cert too); an encrypted key is refused, never asked for. Checks the
 * key matches and the certificate has not expired. key_setting names the key
 * option for the message ("key:", "--key"). 0, or -1 with why written (the
 * caller names cert) and c empty. */
int tls_cert_load(const char *cert, const char *key, const char *key_setting, struct tls_cert *c,
                  char *why, size_t cap);
void tls_cert_free(struct tls_cert *c);

/* tickets.c: the session ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb). */
int tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
                  EVP_MAC_CTX *hctx, int enc);

/* conn_tls13.c: the TLS 1.3 record layer usher runs after the handshake. */
extern const struct conn_ops conn_tls13;
/* The keylog callback of every server SSL_CTX whose listener hands off
 * (SSL_CTX_set_keylog_callback): it keeps the traffic secrets. */
void tls13_keylog(const SSL *ssl, const char *line);
/* Makes the server SSL ssl a candidate for the handoff: the secrets and
 * record counts are kept while its handshake runs, read-ahead is off. 0 or
 * -ENOMEM (ssl then stays on OpenSSL). */
int tls13_hs_begin(SSL *ssl);
/* After a read of c (conn_tls, server side): when the handshake is over and
 * OpenSSL holds nothing, frees the SSL and makes c a conn_tls13 connection
 * (1); else 0 (c stays on OpenSSL for now, or for good). */
int tls13_try_handoff(struct conn *c);
/* Makes c (its socket open, c->tls free) a conn_tls13 connection: the
 * client's traffic secret rsec, ours wsec (len bytes each, the suite's hash
 * length), the sequence numbers of the next records. 0 or -ENOMEM. For the
 * handoff, the tests and the fuzzer. */
int tls13_conn_start(struct conn *c, int suite, const uint8_t *rsec, const uint8_t *wsec,
                     size_t len, uint64_t rseq, uint64_t wseq);
/* Whether c's SSL is still a handoff candidate. */
int tls13_candidate(const SSL *ssl);
/* What tls_conn_peer and tls_conn_alpn_h2 answer for a conn_tls13 connection. */
enum tls_peer tls13_conn_peer(const struct conn *c, char *text, size_t cap);
int tls13_conn_alpn_h2(const struct conn *c);
/* How many connections were handed off since the start (all threads). */
uint64_t tls13_handoffs(void);

#endif
