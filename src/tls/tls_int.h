/* tls_int: what the files of src/tls/ share. Internal. */
#ifndef USHER_TLS_TLS_INT_H
#define USHER_TLS_TLS_INT_H

#include <openssl/ssl.h>

#include "net/conn.h"

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

#endif
