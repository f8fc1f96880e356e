/* tls: TLS with OpenSSL 3, the second transport behind struct conn.
 *
 *   conn_tls.c  the transport: conn_tls ops over an SSL whose BIO is the
 *               connection's socket (read-ahead; one SSL_write per gather)
 *   conn_tls13.c  after a TLS 1.3 server handshake, the connection leaves
 *               OpenSSL: usher runs the record layer with rec13.c (the
 *               codec); tls.record_layer: openssl keeps it on OpenSSL
 *   aesgcm.c    AES-GCM for rec13.c without EVP: AES-NI rounds, OpenSSL's
 *               CRYPTO_gcm128 mode
 *   server.c    one struct tls_server per TLS listener: its certificates
 *               grouped by names (one SSL_CTX per group: an ECDSA and an RSA
 *               certificate for the same names share one), SNI, ALPN,
 *               versions, ciphers, the session cache, mTLS
 *   client.c    one struct tls_client per pool with https:// backends: its
 *               SSL_CTX (verification, CA, client certificate, ALPN), the
 *               name each connection sends and checks, the handshake, and the
 *               sessions handed to their owner for resumption
 *   tickets.c   session ticket keys, shared by every worker, rotated
 *   sni.c       what usher reads of the TLS input itself: the server_name
 *               extension, and DNS name matching (fuzzed)
 *
 * A tls_server is built from a listener's configuration when a generation
 * is made (start, SIGHUP) and shared by every worker thread, read-only; an
 * SSL holds a reference to its SSL_CTX, so connections accepted before a
 * reload keep their certificates. A tls_client is made the same way, per
 * pool, and shared the same way. */
#ifndef USHER_TLS_TLS_H
#define USHER_TLS_TLS_H

#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "net/conn.h"

struct tls_server;

/* The TLS transport. */
extern const struct conn_ops conn_tls;

/* Sets the process up for TLS (ticket keys). 0 or -1 (logged). */
int tls_init(void);
/* A new ticket key; the previous one still decrypts. */
void tls_tickets_rotate(void);

/* Builds the TLS side of listener l of cfg: reads and checks every
 * certificate and key. Errors are written to errs as "WHERE: certificate
 * FILE: what is wrong", one per line, warnings (expiry within 30 days) to
 * warns; when log_loaded, each certificate is logged with its names and its
 * end of validity. NULL when anything was wrong. */
struct tls_server *tls_server_new(const struct config *cfg, const struct listener_conf *l,
                                  FILE *errs, FILE *warns, int log_loaded);
void tls_server_free(struct tls_server *srv);

/* Makes c (opened with conn_tls) the server side of a TLS connection of srv.
 * 0, or -ENOMEM (c is then not usable: close it). */
int tls_server_attach(struct conn *c, struct tls_server *srv);

/* The handshake failures of srv since the last call (and the last reason). */
uint64_t tls_server_failures(struct tls_server *srv, char *last, size_t cap);

/* What the client certificate check of a finished handshake said. */
enum tls_peer { TLS_PEER_NONE, TLS_PEER_SUCCESS, TLS_PEER_FAILED };
/* The result for c; with TLS_PEER_FAILED the reason, with TLS_PEER_SUCCESS
 * the subject (RFC 2253), written to text. */
enum tls_peer tls_conn_peer(struct conn *c, char *text, size_t cap);
/* Whether ALPN chose h2 (RFC 7301) for the server connection c. */
int tls_conn_alpn_h2(const struct conn *c);

/* ---- the client side: TLS to backends (client.c) ---- */

struct tls_client;
struct ssl_session_st; /* OpenSSL's SSL_SESSION */

/* Builds the TLS side of pool p's https:// backends: reads the CA file and
 * the client certificate and key, when given. Errors are written to errs as
 * "WHERE: tls.ca FILE: what is wrong", one per line; warnings (a client
 * certificate that expires within 30 days) to warns; when log_loaded, what
 * is checked and presented is logged. NULL when anything was wrong. */
struct tls_client *tls_client_new(const struct config *cfg, const struct pool_conf *p, FILE *errs,
                                  FILE *warns, int log_loaded);
void tls_client_free(struct tls_client *cl);

/* Where the sessions of a client connection go: store(c, s) is called on
 * the connection's thread when the handshake (TLS 1.2) or a ticket from the
 * backend (TLS 1.3) makes a session that can resume; store owns s (it keeps
 * it for the next connect, or gives it to tls_session_free). */
struct tls_session_sink {
    void (*store)(struct conn *c, struct ssl_session_st *s);
};

/* Makes c (opened with conn_tls, connecting) the client side of a TLS
 * connection of cl to backend b: SNI and the name checked are cl's
 * server_name or b's host. resume: a session of an earlier connection to b
 * (or NULL), tried first; sink (or NULL) gets the new ones. 0, or -ENOMEM
 * (c is then not usable: close it). */
int tls_client_attach(struct conn *c, struct tls_client *cl, const struct backend_conf *b,
                      struct ssl_session_st *resume, const struct tls_session_sink *sink);
/* Drives the handshake of c once its TCP connect finished: 0 when it is
 * done, -EAGAIN while it waits for the socket (the readiness flags say
 * which way; either flag coming back calls for another try), else -EPROTO
 * or -errno with why written in words ("TLS: certificate verify failed:
 * self-signed certificate"). */
int tls_client_handshake(struct conn *c, char *why, size_t cap);
/* Whether OpenSSL holds bytes of c not read yet (a connection with bytes
 * after its last response cannot carry the next one). */
int tls_conn_pending(struct conn *c);
/* When the backend sent a fatal alert on c (a TLS 1.3 backend that refuses
 * our client certificate says so only after our side of the handshake
 * ended): 1 with it written in words, else 0. */
int tls_conn_alert(struct conn *c, char *why, size_t cap);
/* Whether c speaks TLS 1.3 (its sessions come after the handshake, in
 * tickets; OpenSSL resumes each one once, RFC 8446 appendix C.4). */
int tls_conn_tls13(struct conn *c);
void tls_session_free(struct ssl_session_st *s);

#endif
