/* client: TLS to a pool's https:// backends (see tls.h).
 *
 * One SSL_CTX per pool, shared read-only by every worker and by the health
 * checks: TLS 1.2 or 1.3, ALPN http/1.1, the backend's certificate checked
 * (by default) against the system store or the pool's CA file, an optional
 * client certificate. The name is per connection: the pool's server_name,
 * else the DNS name of a backend found through DNS (backend_conf.tls_name),
 * else the backend URL's host, is sent as SNI (not for an address: RFC 6066
 * section 3 forbids literal IPs there) and is the name (or the address) the
 * certificate must carry.
 *
 * OpenSSL keeps no client session cache of its own here
 * (SSL_SESS_CACHE_NO_INTERNAL_STORE): each new session goes to the sink
 * the connection was attached with, on the connection's thread, so a worker
 * keeps one session per backend without a lock and the health checks keep
 * theirs. In TLS 1.3 a session comes with the backend's ticket, after the
 * handshake, while the first response is read, and resumes once: each
 * connection brings the ticket for the next.
 *
 * An alert the backend sends is remembered on the connection, so that a
 * failure that shows only at the first read (a TLS 1.3 backend refusing our
 * client certificate after our side of the handshake finished) can be said
 * in words. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

#define EXPIRY_WARN_DAYS 30 /* usher -t and the load warn about a client certificate this close */

struct tls_client {
    SSL_CTX *ctx;
    char server_name[256]; /* "" = each backend's URL host */
    uint8_t verify;
};

/* ex_data of an SSL of ours: its conn, its sink, the last fatal alert it got (+1) */
static int conn_index = -1, sink_index = -1, alert_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void make_indexes(void)
{
    conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    sink_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    alert_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- callbacks --------------------------------------------------------------------- */

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    const struct tls_session_sink *sink = SSL_get_ex_data(ssl, sink_index);
    if (!c || !sink || !SSL_SESSION_is_resumable(sess)) return 0;
    /* shared with the connection: OpenSSL marks it not resumable once a
     * TLS 1.3 handshake resumed it (a ticket is used once) or a fatal alert
     * ended the connection; the next connect then makes a new one */
    sink->store(c, sess);
    return 1; /* the sink owns this reference */
}

static void on_info(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL)
        SSL_set_ex_data((SSL *)ssl, alert_index, (void *)(intptr_t)((ret & 0xff) + 1));
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* ---- building ---------------------------------------------------------------------- */

/* Whether path can be opened for reading; else why, in words. */
static int readable_file(const char *path, char *why, size_t cap)
{
    BIO *b = BIO_new_file(path, "r");
    if (b) {
        BIO_free(b);
        return 1;
    }
    snprintf(why, cap, "cannot read it: %s", strerror(errno ? errno : ENOENT));
    ERR_clear_error();
    return 0;
}

/* The client certificate and key of p into ctx; 0, or -1 with the message
 * (naming the file) written to errs. */
static int load_client_cert(SSL_CTX *ctx, const struct config *cfg, const struct pool_conf *p,
                            const char *where, FILE *errs, FILE *warns, char *until, size_t ucap)
{
    const char *ckey = cfg->file[0] ? "tls.cert" : "--backend-tls-cert";
    const char *kkey = cfg->file[0] ? "tls.key" : "--backend-tls-key";
    char why[600];
    struct tls_cert c;
    if (tls_cert_load(p->tls_cert, p->tls_key, kkey, &c, why, sizeof(why)) < 0) {
        fprintf(errs, "%s%s %s: %s\n", where, ckey, p->tls_cert, why);
        return -1;
    }
    if (SSL_CTX_use_cert_and_key(ctx, c.x, c.key, c.chain, 1) != 1) {
        fprintf(errs, "%s%s %s: OpenSSL refused it: %s\n", where, ckey, p->tls_cert,
                tls_ssl_reason());
        tls_cert_free(&c);
        return -1;
    }
    snprintf(until, ucap, "%s", c.until);
    if (c.days_left < EXPIRY_WARN_DAYS)
        fprintf(warns, "%s%s %s: expires in %d day%s (on %s)\n", where, ckey, p->tls_cert,
                c.days_left, c.days_left == 1 ? "" : "s", c.until);
    tls_cert_free(&c);
    return 0;
}

void tls_client_free(struct tls_client *cl)
{
    if (!cl) return;
    SSL_CTX_free(cl->ctx);
    free(cl);
}

struct tls_client *tls_client_new(const struct config *cfg, const struct pool_conf *p, FILE *errs,
                                  FILE *warns, int log_loaded)
{
    pthread_once(&index_once, make_indexes);
    char where[400];
    if (cfg->file[0])
        snprintf(where, sizeof(where), "%s:%u: pool '%s': ", cfg->file, p->line, p->name);
    else
        where[0] = 0;
    struct tls_client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        fprintf(errs, "%sTLS to backends: out of memory\n", where);
        return NULL;
    }
    snprintf(cl->server_name, sizeof(cl->server_name), "%s", p->tls_server_name);
    cl->verify = p->tls_verify;
    ERR_clear_error();
    SSL_CTX *ctx = cl->ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(errs, "%sTLS to backends: cannot make a TLS context: %s\n", where,
                tls_ssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* the transport's writes: a retry may offer more, from another address */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_info_callback(ctx, on_info);
    SSL_CTX_set_verify(ctx, p->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    const char *cakey = cfg->file[0] ? "tls.ca" : "--backend-tls-ca";
    char why[300];
    if (p->tls_ca[0]) {
        if (!readable_file(p->tls_ca, why, sizeof(why))) {
            fprintf(errs, "%s%s %s: %s\n", where, cakey, p->tls_ca, why);
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(ctx, p->tls_ca, NULL) != 1) {
            fprintf(errs,
                    "%s%s %s: no CA certificate could be read from it (expected PEM "
                    "certificates, -----BEGIN CERTIFICATE-----)\n",
                    where, cakey, p->tls_ca);
            goto fail;
        }
    } else if (p->tls_verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        fprintf(errs, "%sTLS to backends: cannot read the system's CA certificates: %s\n", where,
                tls_ssl_reason());
        goto fail;
    }
    char until[40] = "";
    if (p->tls_key[0] && !p->tls_cert[0]) {
        fprintf(errs, "%s%s %s is given without %s (the certificate the key belongs to)\n", where,
                cfg->file[0] ? "tls.key" : "--backend-tls-key", p->tls_key,
                cfg->file[0] ? "tls.cert" : "--backend-tls-cert");
        goto fail;
    }
    if (p->tls_cert[0] && load_client_cert(ctx, cfg, p, where, errs, warns, until, sizeof(until)))
        goto fail;
    ERR_clear_error();
    if (log_loaded) {
        char cert[400] = "";
        if (p->tls_cert[0])
            snprintf(cert, sizeof(cert), "; client certificate %s, valid until %s", p->tls_cert,
                     until);
        if (p->tls_verify)
            log_info("pool '%s': TLS to backends: certificates checked against %s for %s%s",
                     p->name, p->tls_ca[0] ? p->tls_ca : "the system's CAs",
                     p->tls_server_name[0] ? p->tls_server_name
                     : p->discover.dns[0] && p->discover.scheme == DISC_HTTPS
                         ? "each URL's host (a backend from DNS: its DNS name)"
                         : "each URL's host",
                     cert);
        else
            log_warn("pool '%s': TLS to backends WITHOUT certificate checks (tls verify is "
                     "false): whoever can reach the path to a backend can read and change the "
                     "traffic%s",
                     p->name, cert);
    }
    return cl;
fail:
    ERR_clear_error();
    tls_client_free(cl);
    return NULL;
}

/* ---- connections ------------------------------------------------------------------- */

/* The name for backend b: cl's server_name, else the DNS name a discovered
 * backend was found under (its URL holds only an address), else the host of
 * b's authority ("10.0.0.1:8443", "[::1]", "localhost"), without brackets. */
static void name_of(const struct tls_client *cl, const struct backend_conf *b, char *out,
                    size_t cap)
{
    const char *name = cl->server_name[0] ? cl->server_name : b->tls_name;
    if (name[0]) {
        snprintf(out, cap, "%s", name);
        return;
    }
    const char *s = b->authority;
    if (s[0] == '[') {
        snprintf(out, cap, "%.*s", (int)strcspn(s + 1, "]"), s + 1);
        return;
    }
    snprintf(out, cap, "%.*s", (int)strcspn(s, ":"), s);
}

int tls_client_attach(struct conn *c, struct tls_client *cl, const struct backend_conf *b,
                      struct ssl_session_st *resume, const struct tls_session_sink *sink)
{
    SSL *ssl = SSL_new(cl->ctx);
    if (!ssl) {
        ERR_clear_error();
        return -ENOMEM;
    }
    char name[256];
    unsigned char addr[16];
    name_of(cl, b, name, sizeof(name));
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    int ok = 1;
    if (!is_ip) ok = SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && cl->verify) {
        if (is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, name) == 1;
        }
    }
    if (ok && resume) ok = SSL_set_session(ssl, resume) == 1;
    if (ok && sink)
        ok = SSL_set_ex_data(ssl, conn_index, c) == 1 &&
             SSL_set_ex_data(ssl, sink_index, (void *)sink) == 1;
    if (!ok || tls_conn_bind(c, ssl) < 0) {
        ERR_clear_error();
        SSL_free(ssl);
        return -ENOMEM;
    }
    SSL_set_connect_state(ssl);
    return 0;
}

/* The alert the backend sent, in words, or NULL. */
static const char *alert_of(SSL *ssl)
{
    intptr_t a = alert_index >= 0 ? (intptr_t)SSL_get_ex_data(ssl, alert_index) : 0;
    if (!a) return NULL;
    switch (a - 1) {
    /* TLS 1.3's (RFC 8446 6.2), which OpenSSL 3.0 calls "unknown" */
    case 116: return "certificate required (the backend wants a client certificate)";
    case 109: return "missing extension";
    case 115: return "unknown PSK identity";
    case 120: return "no application protocol";
    /* what a backend says of a client certificate it does not take */
    case SSL3_AD_BAD_CERTIFICATE:
        return "bad certificate (the backend refused our client certificate)";
    case TLS1_AD_UNKNOWN_CA:
        return "unknown CA (the backend does not trust the issuer of our client certificate)";
    default: return SSL_alert_desc_string_long((int)(a - 1));
    }
}

int tls_client_handshake(struct conn *c, char *why, size_t cap)
{
    SSL *ssl = c->tls;
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    int sys = errno;
    if (r == 1) return 0;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        /* either readiness brings us back (conn_events) */
        c->readable = c->writable = 0;
        c->write_needs_in = 1;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->readable = c->writable = 0;
        c->read_needs_out = 1;
        conn_want_write(c);
        return -EAGAIN;
    }
    unsigned long err = ERR_peek_last_error();
    int reason = ERR_GET_LIB(err) == ERR_LIB_SSL ? ERR_GET_REASON(err) : 0;
    long v = SSL_get_verify_result(ssl);
    const char *alert = alert_of(ssl);
    int rc = -EPROTO;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
        snprintf(why, cap, "TLS: certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (alert)
        snprintf(why, cap, "TLS: the backend refused the handshake (alert: %s)", alert);
    else if (e == SSL_ERROR_SYSCALL && sys) {
        snprintf(why, cap, "TLS handshake: %s", strerror(sys));
        rc = -sys;
    } else if (e == SSL_ERROR_SYSCALL || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        snprintf(why, cap, "TLS: the backend closed the connection during the handshake");
    else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
             reason == SSL_R_RECORD_LENGTH_MISMATCH)
        snprintf(why, cap, "TLS: the backend does not answer in TLS (is it plain HTTP?)");
    else
        snprintf(why, cap, "TLS: %s", tls_ssl_reason());
    ERR_clear_error();
    c->readable = c->writable = 0;
    return rc;
}

int tls_conn_pending(struct conn *c)
{
    return c->tls && SSL_has_pending(c->tls);
}

int tls_conn_tls13(struct conn *c)
{
    return c->tls && SSL_version(c->tls) == TLS1_3_VERSION;
}

int tls_conn_alert(struct conn *c, char *why, size_t cap)
{
    const char *alert = c->tls ? alert_of(c->tls) : NULL;
    if (!alert) return 0;
    snprintf(why, cap, "TLS: the backend sent an alert: %s", alert);
    return 1;
}

void tls_session_free(struct ssl_session_st *s)
{
    SSL_SESSION_free(s);
}
