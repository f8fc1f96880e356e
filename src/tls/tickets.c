/* tickets: session ticket keys (RFC 5077 style, as OpenSSL's callback wants
 * them), made by usher rather than by each SSL_CTX, so that every worker and
 * every generation (a reload makes new contexts) encrypts and decrypts with
 * the same keys. tls_tickets_rotate() (the control thread, on a timer) makes
 * a new key; the previous one still decrypts, and a ticket it decrypted is
 * renewed (as every TLS 1.3 ticket is). Keys never leave the process. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#include "core/log.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

static struct {
    pthread_rwlock_t lock;
    struct ticket_key cur, prev;
    int have_prev;
    EVP_CIPHER *cipher; /* fetched once: an implicit fetch per handshake costs */
} tk = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static int make_key(struct ticket_key *k)
{
    return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
           RAND_bytes(k->hmac, sizeof(k->hmac)) == 1;
}

int tls_init(void)
{
    if (tk.cipher) return 0;
    tk.cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (!tk.cipher || !make_key(&tk.cur)) {
        log_err("TLS: cannot make a session ticket key (no AES-256-CBC or no randomness)");
        return -1;
    }
    return 0;
}

void tls_tickets_rotate(void)
{
    struct ticket_key k;
    if (!make_key(&k)) {
        log_warn("TLS: cannot make a new session ticket key: keeping the current one");
        return;
    }
    pthread_rwlock_wrlock(&tk.lock);
    tk.prev = tk.cur;
    tk.have_prev = 1;
    tk.cur = k;
    pthread_rwlock_unlock(&tk.lock);
    OPENSSL_cleanse(&k, sizeof(k));
}

static int set_mac(EVP_MAC_CTX *hctx, unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

int tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
                  EVP_MAC_CTX *hctx, int enc)
{
    int rc = 0;
    pthread_rwlock_rdlock(&tk.lock);
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tk.cipher)) == 1 &&
            EVP_EncryptInit_ex2(ctx, tk.cipher, tk.cur.aes, iv, NULL) == 1 &&
            set_mac(hctx, tk.cur.hmac) == 1) {
            memcpy(key_name, tk.cur.name, 16);
            rc = 1;
        } else {
            rc = -1;
        }
    } else {
        struct ticket_key *k = !memcmp(key_name, tk.cur.name, 16)                    ? &tk.cur
                               : tk.have_prev && !memcmp(key_name, tk.prev.name, 16) ? &tk.prev
                                                                                     : NULL;
        if (!k)
            rc = 0; /* not ours, or too old: a full handshake */
        else if (EVP_DecryptInit_ex2(ctx, tk.cipher, k->aes, iv, NULL) == 1 &&
                 set_mac(hctx, k->hmac) == 1)
            /* 2: valid, send a new one. Always in TLS 1.3, where a client uses
             * each ticket once (RFC 8446 C.4): without a new ticket its next
             * connection would be a full handshake */
            rc = k == &tk.cur && SSL_version(s) != TLS1_3_VERSION ? 1 : 2;
        else
            rc = -1;
    }
    pthread_rwlock_unlock(&tk.lock);
    return rc;
}
