/* server: the TLS side of a listener (see tls.h).
 *
 * Certificates are grouped by the names they carry (their DNS subject
 * alternative names, or the common name when they have none): one SSL_CTX
 * per group, so that an ECDSA and an RSA certificate for the same names sit
 * in one context and OpenSSL gives each client the one its signature
 * algorithms allow. The ClientHello callback, before any session is looked
 * at, reads the server name (sni.c) and moves the connection to the group
 * that has it (exact names first, then wildcards; else the first group).
 *
 * Each group's session id context is a digest of the listener and of its
 * names, and OpenSSL resumes a session (from a ticket or from the cache)
 * only under the context it was made in: a session never crosses
 * certificates chosen by different names (the nginx CVE-2025-23419 class). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "tls/sni.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

#define MAX_NAMES 64 /* names of one certificate that are used for SNI */
#define EXPIRY_WARN_DAYS                                                                           \
    30 /* usher -t and the load warn about a certificate this close to its end */
#define NEVER_CIPHERS ":!aNULL:!eNULL:!EXPORT:!DES:!3DES:!RC4:!MD5:!PSK:!SRP:!IDEA:!SEED"

struct tls_group {
    SSL_CTX *ctx;
    char *names[MAX_NAMES]; /* lower case, sorted */
    uint32_t nnames;
    int key_types[4]; /* EVP_PKEY base ids loaded (one certificate per type) */
    const char *key_files[4];
    uint32_t nkeys;
};

struct tls_server {
    struct tls_group *groups;
    uint32_t ngroups;
    char bind[80];
    uint8_t protocols;    /* the listener's (enum listener_protocols): what ALPN offers */
    uint8_t record_layer; /* enum tls_record_layer: TLS_RECORD_USHER hands TLS 1.3 off */
    _Atomic uint64_t failures;
    pthread_mutex_t last_lock;
    char last[128];
};

static int srv_index = -1;  /* SSL_CTX ex data: its tls_server */
static int peer_index = -1; /* SSL ex data: the client certificate's subject, once read */
static pthread_once_t srv_once = PTHREAD_ONCE_INIT;

static void free_subject(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void make_index(void)
{
    srv_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_subject);
}

/* ---- reading certificates --------------------------------------------------------- */

struct loaded {
    struct tls_cert cert;
    char *names[MAX_NAMES];
    uint32_t nnames;
    char kind[80]; /* "ECDSA P-256", "RSA 2048" */
};

static void loaded_free(struct loaded *c)
{
    tls_cert_free(&c->cert);
    for (uint32_t i = 0; i < c->nnames; i++) free(c->names[i]);
    memset(c, 0, sizeof(*c));
}

static int add_name(struct loaded *c, const char *s, size_t n)
{
    if (n == 0 || n > TLS_NAME_MAX || c->nnames >= MAX_NAMES) return 0;
    char *d = malloc(n + 1);
    if (!d) return -1;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    d[n] = 0;
    for (uint32_t i = 0; i < c->nnames; i++)
        if (!strcmp(c->names[i], d)) {
            free(d);
            return 0;
        }
    c->names[c->nnames++] = d;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_names(struct loaded *c)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(c->cert.x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS) continue;
        add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                 (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (!c->nnames) { /* no DNS names: the common name, as clients once did */
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(c->cert.x), NID_commonName, cn,
                                          sizeof(cn));
        if (n > 0) add_name(c, cn, (size_t)n);
    }
    qsort(c->names, c->nnames, sizeof(c->names[0]), cmp_names);
}

static void describe_key(struct loaded *c)
{
    int id = EVP_PKEY_get_base_id(c->cert.key);
    if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t len = 0;
        EVP_PKEY_get_group_name(c->cert.key, group, sizeof(group), &len);
        const char *nice = !strcmp(group, "prime256v1")  ? "P-256"
                           : !strcmp(group, "secp384r1") ? "P-384"
                           : !strcmp(group, "secp521r1") ? "P-521"
                                                         : group;
        snprintf(c->kind, sizeof(c->kind), "ECDSA %s", nice);
    } else if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) {
        snprintf(c->kind, sizeof(c->kind), "RSA %d", EVP_PKEY_get_bits(c->cert.key));
    } else {
        snprintf(c->kind, sizeof(c->kind), "%s", OBJ_nid2sn(id));
    }
}

/* Reads cc into c. 0, or -1 with why written. */
static int load(const struct cert_conf *cc, struct loaded *c, char *why, size_t cap)
{
    memset(c, 0, sizeof(*c));
    if (tls_cert_load(cc->cert, cc->key, cc->line ? "key:" : "--key", &c->cert, why, cap) < 0)
        return -1;
    read_names(c);
    describe_key(c);
    return 0;
}

/* ---- callbacks --------------------------------------------------------------------- */

static struct tls_group *pick(struct tls_server *srv, const char *name)
{
    for (uint32_t g = 0; g < srv->ngroups; g++)
        for (uint32_t i = 0; i < srv->groups[g].nnames; i++)
            if (srv->groups[g].names[i][0] != '*' && !strcmp(srv->groups[g].names[i], name))
                return &srv->groups[g];
    for (uint32_t g = 0; g < srv->ngroups; g++)
        for (uint32_t i = 0; i < srv->groups[g].nnames; i++)
            if (srv->groups[g].names[i][0] == '*' && tls_name_match(srv->groups[g].names[i], name))
                return &srv->groups[g];
    return &srv->groups[0];
}

static int on_client_hello(SSL *ssl, int *alert, void *arg)
{
    struct tls_server *srv = arg;
    const unsigned char *ext;
    size_t len;
    char name[TLS_NAME_MAX + 1];
    struct tls_group *g = &srv->groups[0];
    if (srv->ngroups > 1 && SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) &&
        tls_sni_parse(ext, len, name, sizeof(name)) > 0)
        g = pick(srv, name);
    if (g->ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, g->ctx)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct tls_server *srv = arg;
    /* h2 first (RFC 9113 3.2), whatever the client's order; then http/1.1
     * (protocols: http1 offers only http/1.1, h2 only h2) */
    static const char *const ours[] = {"h2", "http/1.1"};
    int from = srv->protocols == PROTO_HTTP1 ? 1 : 0, to = srv->protocols == PROTO_H2 ? 1 : 2;
    for (int k = from; k < to; k++) {
        unsigned want = (unsigned)strlen(ours[k]);
        for (unsigned i = 0; i < inlen;) {
            unsigned n = in[i];
            if (i + 1 + n > inlen) break;
            if (n == want && !memcmp(in + i + 1, ours[k], n)) {
                *out = in + i + 1;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + n;
        }
    }
    return SSL_TLSEXT_ERR_NOACK; /* no protocol we speak was offered: HTTP/1.1 all the same */
}

/* client_verify optional: the handshake goes on whatever the check said; the
 * result is kept for tls_conn_peer */
static int verify_any(int ok, X509_STORE_CTX *x)
{
    (void)ok, (void)x;
    return 1;
}

void tls_note_failure(SSL *ssl, const char *reason)
{
    if (!SSL_is_server(ssl)) return;
    pthread_once(&srv_once, make_index);
    struct tls_server *srv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), srv_index);
    if (!srv) return;
    atomic_fetch_add_explicit(&srv->failures, 1, memory_order_relaxed);
    pthread_mutex_lock(&srv->last_lock);
    snprintf(srv->last, sizeof(srv->last), "%s", reason ? reason : "unknown");
    pthread_mutex_unlock(&srv->last_lock);
    log_debug("listener %s: TLS handshake failed: %s", srv->bind, reason ? reason : "unknown");
}

void tls_handshake_refused(struct conn *c, SSL *ssl, unsigned long err)
{
    static const char answer[] =
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 61\r\n"
        "Connection: close\r\n"
        "\r\n"
        "{\"error\":\"Plain HTTP request sent to a TLS port: use https\"}\n";
    if (!SSL_is_server(ssl) || ERR_GET_LIB(err) != ERR_LIB_SSL ||
        ERR_GET_REASON(err) != SSL_R_HTTP_REQUEST)
        return;
    ssize_t n = send(c->io.fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL);
    (void)n;
}

uint64_t tls_server_failures(struct tls_server *srv, char *last, size_t cap)
{
    uint64_t n = atomic_exchange(&srv->failures, 0);
    pthread_mutex_lock(&srv->last_lock);
    snprintf(last, cap, "%s", srv->last);
    pthread_mutex_unlock(&srv->last_lock);
    return n;
}

/* ---- contexts ---------------------------------------------------------------------- */

/* The session id context of group names on listener l: a digest, so that it
 * stays the same across reloads for the same names (tickets keep resuming). */
static void sid_of(const struct listener_conf *l, const struct tls_group *g, unsigned char out[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned int len = 32;
    memset(out, 0, 32);
    if (!m) return;
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    EVP_DigestUpdate(m, l->bind, strlen(l->bind) + 1);
    EVP_DigestUpdate(m, l->client_ca, strlen(l->client_ca) + 1);
    EVP_DigestUpdate(m, &l->client_verify, 1);
    for (uint32_t i = 0; i < g->nnames; i++)
        EVP_DigestUpdate(m, g->names[i], strlen(g->names[i]) + 1);
    EVP_DigestFinal_ex(m, out, &len);
    EVP_MD_CTX_free(m);
}

/* A context with the listener's settings (no certificate yet). NULL with why. */
static SSL_CTX *make_ctx(const struct config *cfg, const struct listener_conf *l,
                         struct tls_server *srv, char *why, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(why, cap, "cannot make a TLS context: %s", tls_ssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx,
                                  l->tls_min_version == TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* the server's order (all strong suites; ChaCha20 first for a client that prefers it) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (l->tls_tickets ? 0 : SSL_OP_NO_TICKET));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_read_ahead(ctx, 1);
    char list[sizeof(l->tls_ciphers) + sizeof(NEVER_CIPHERS)];
    snprintf(list, sizeof(list), "%s" NEVER_CIPHERS, l->tls_ciphers);
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        snprintf(why, cap,
                 "tls.ciphers: no usable TLS 1.2 cipher in '%s' (RC4, 3DES, DES, NULL, export, "
                 "anonymous, MD5 and PSK suites are never used)",
                 l->tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, l->tls_ciphersuites) != 1) {
        snprintf(why, cap, "tls.ciphersuites: no TLS 1.3 suite OpenSSL knows in '%s'",
                 l->tls_ciphersuites);
        goto fail;
    }
    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
    if (l->tls_session_cache) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, (long)l->tls_session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    /* a session outlives a ticket key by one period at most */
    SSL_CTX_set_timeout(ctx, (long)(cfg->tls_ticket_rotation_ms / 1000) * 2);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
    SSL_CTX_set_num_tickets(ctx, 1); /* one per handshake: each costs an encryption */
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, srv);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, srv);
    SSL_CTX_set_ex_data(ctx, srv_index, srv);
    /* the traffic secrets, for the handoff to usher's TLS 1.3 record layer (conn_tls13.c) */
    if (l->tls_record_layer == TLS_RECORD_USHER) SSL_CTX_set_keylog_callback(ctx, tls13_keylog);
    if (l->client_ca[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(l->client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, l->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(why, cap, "tls.client_ca %s: no CA certificate could be read from it (%s)",
                     l->client_ca, tls_ssl_reason());
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        if (l->client_verify == TLS_CLIENT_REQUIRED)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_any);
        SSL_CTX_set_verify_depth(ctx, 10);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int same_names(const struct tls_group *g, const struct loaded *c)
{
    if (g->nnames != c->nnames) return 0;
    for (uint32_t i = 0; i < c->nnames; i++)
        if (strcmp(g->names[i], c->names[i])) return 0;
    return 1;
}

void tls_server_free(struct tls_server *srv)
{
    if (!srv) return;
    for (uint32_t g = 0; g < srv->ngroups; g++) {
        SSL_CTX_free(srv->groups[g].ctx);
        for (uint32_t i = 0; i < srv->groups[g].nnames; i++) free(srv->groups[g].names[i]);
    }
    free(srv->groups);
    pthread_mutex_destroy(&srv->last_lock);
    free(srv);
}

struct tls_server *tls_server_new(const struct config *cfg, const struct listener_conf *l,
                                  FILE *errs, FILE *warns, int log_loaded)
{
    pthread_once(&srv_once, make_index);
    char where[400], why[768];
    if (cfg->file[0])
        snprintf(where, sizeof(where), "%s:%u:%u: listener %s", cfg->file, l->line, l->column,
                 l->bind);
    else
        snprintf(where, sizeof(where), "listener %s", l->bind);
    struct tls_server *srv = calloc(1, sizeof(*srv));
    if (!srv || !(srv->groups = calloc(l->ncerts ? l->ncerts : 1, sizeof(*srv->groups)))) {
        free(srv);
        fprintf(errs, "%s: out of memory\n", where);
        return NULL;
    }
    pthread_mutex_init(&srv->last_lock, NULL);
    snprintf(srv->bind, sizeof(srv->bind), "%s", l->bind);
    srv->protocols = l->protocols;
    srv->record_layer = l->tls_record_layer;
    int bad = 0;
    if (!l->ncerts) {
        fprintf(errs, "%s: a TLS listener needs at least one certificate\n", where);
        bad = 1;
    }
    for (uint32_t i = 0; i < l->ncerts; i++) {
        const struct cert_conf *cc = &l->certs[i];
        char cwhere[700];
        if (cfg->file[0])
            snprintf(cwhere, sizeof(cwhere), "%s:%u:%u: certificate %s", cfg->file, cc->line,
                     cc->column, cc->cert);
        else
            snprintf(cwhere, sizeof(cwhere), "--cert %s", cc->cert);
        struct loaded c;
        if (load(cc, &c, why, sizeof(why)) < 0) {
            fprintf(errs, "%s: %s\n", cwhere, why);
            loaded_free(&c);
            bad = 1;
            continue;
        }
        if (!c.nnames) {
            fprintf(errs,
                    "%s: it names no host (no DNS subject alternative name, no common name)\n",
                    cwhere);
            loaded_free(&c);
            bad = 1;
            continue;
        }
        struct tls_group *g = NULL;
        for (uint32_t k = 0; k < srv->ngroups && !g; k++)
            if (same_names(&srv->groups[k], &c)) g = &srv->groups[k];
        int type = EVP_PKEY_get_base_id(c.cert.key);
        if (g) {
            for (uint32_t k = 0; k < g->nkeys; k++)
                if (g->key_types[k] == type) {
                    fprintf(errs,
                            "%s: has the same names and key type (%s) as %s: one would "
                            "never be used\n",
                            cwhere, c.kind, g->key_files[k]);
                    bad = 1;
                }
            if (bad || g->nkeys >= 4) {
                loaded_free(&c);
                continue;
            }
        } else {
            g = &srv->groups[srv->ngroups];
            g->ctx = make_ctx(cfg, l, srv, why, sizeof(why));
            if (!g->ctx) {
                fprintf(errs, "%s: %s\n", where, why);
                loaded_free(&c);
                bad = 1;
                break;
            }
            srv->ngroups++;
            for (uint32_t k = 0; k < c.nnames; k++) g->names[k] = c.names[k];
            g->nnames = c.nnames;
            c.nnames = 0; /* the group has them now */
            unsigned char sid[32];
            sid_of(l, g, sid);
            SSL_CTX_set_session_id_context(g->ctx, sid, sizeof(sid));
        }
        if (SSL_CTX_use_cert_and_key(g->ctx, c.cert.x, c.cert.key, c.cert.chain, 1) != 1) {
            fprintf(errs, "%s: OpenSSL refused it: %s\n", cwhere, tls_ssl_reason());
            loaded_free(&c);
            bad = 1;
            continue;
        }
        g->key_types[g->nkeys] = type;
        g->key_files[g->nkeys++] = cc->cert;
        if (c.cert.days_left < EXPIRY_WARN_DAYS)
            fprintf(warns, "%s: expires in %d day%s (on %s)\n", cwhere, c.cert.days_left,
                    c.cert.days_left == 1 ? "" : "s", c.cert.until);
        if (log_loaded) {
            char names[1024];
            size_t off = 0;
            for (uint32_t k = 0; k < g->nnames && off < sizeof(names); k++)
                off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", k ? ", " : "",
                                        g->names[k]);
            log_info("listener %s: certificate %s (%s) for %s, valid until %s", l->bind, cc->cert,
                     c.kind, names, c.cert.until);
        }
        loaded_free(&c);
    }
    ERR_clear_error();
    if (bad) {
        tls_server_free(srv);
        return NULL;
    }
    return srv;
}

int tls_server_attach(struct conn *c, struct tls_server *srv)
{
    SSL *ssl = SSL_new(srv->groups[0].ctx);
    if (!ssl) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if (tls_conn_bind(c, ssl) < 0) {
        SSL_free(ssl);
        return -ENOMEM;
    }
    SSL_set_accept_state(ssl);
    /* no memory for the handoff's state: the connection stays on OpenSSL */
    if (srv->record_layer == TLS_RECORD_USHER) tls13_hs_begin(ssl);
    return 0;
}

enum tls_peer tls_conn_peer(struct conn *c, char *text, size_t cap)
{
    if (c->ops == &conn_tls13) return tls13_conn_peer(c, text, cap);
    SSL *ssl = c->tls;
    text[0] = 0;
    X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!peer) return TLS_PEER_NONE;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(text, cap, "%s", X509_verify_cert_error_string(v));
        return TLS_PEER_FAILED;
    }
    /* read once per connection, not per request */
    const char *subject = SSL_get_ex_data(ssl, peer_index);
    if (!subject) {
        char buf[1024];
        buf[0] = 0;
        BIO *b = BIO_new(BIO_s_mem());
        if (b) {
            X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            int n = BIO_read(b, buf, (int)sizeof(buf) - 1);
            buf[n > 0 ? n : 0] = 0;
            BIO_free(b);
        }
        char *copy = strdup(buf);
        if (copy && !SSL_set_ex_data(ssl, peer_index, copy)) free(copy);
        snprintf(text, cap, "%s", buf);
        return TLS_PEER_SUCCESS;
    }
    snprintf(text, cap, "%s", subject);
    return TLS_PEER_SUCCESS;
}

int tls_conn_alpn_h2(const struct conn *c)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    if (!c->tls) return 0;
    if (c->ops == &conn_tls13) return tls13_conn_alpn_h2(c);
    SSL_get0_alpn_selected(c->tls, &p, &n);
    return n == 2 && !memcmp(p, "h2", 2);
}
