/* tls: TLS with OpenSSL 3, the second transport behind struct conn.
 *
 *   conn_tls.c  the transport: conn_tls ops over an SSL whose BIO is the
 *               connection's socket (read-ahead; one SSL_write per gather)
 *   server.c    one struct tls_server per TLS listener: its certificates
 *               grouped by names (one SSL_CTX per group: an ECDSA and an RSA
 *               certificate for the same names share one), SNI, ALPN,
 *               versions, ciphers, the session cache, mTLS
 *   tickets.c   session ticket keys, shared by every worker, rotated
 *   sni.c       what usher reads of the TLS input itself: the server_name
 *               extension, and DNS name matching (fuzzed)
 *
 * A tls_server is built from a listener's configuration when a generation
 * is made (start, SIGHUP) and shared by every worker thread, read-only; an
 * SSL holds a reference to its SSL_CTX, so connections accepted before a
 * reload keep their certificates. */
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

#endif
