/* cert: reading a certificate chain and its private key from PEM files, the
 * one reader for the listener side (server.c) and the backend side
 * (client.c), so that both say the same thing about the same bad file. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tls/tls_int.h"

const char *tls_ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

void tls_time_words(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        snprintf(out, cap, "(unreadable date)");
        return;
    }
    strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* OpenSSL would otherwise ask for a passphrase on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

void tls_cert_free(struct tls_cert *c)
{
    X509_free(c->x);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    memset(c, 0, sizeof(*c));
}

/* Whether the PEM file holds an encrypted key (PKCS#8 "ENCRYPTED PRIVATE
 * KEY", or a traditional key with "Proc-Type: 4,ENCRYPTED"): OpenSSL says
 * only "bad decrypt" when it tried the empty password. */
static int key_encrypted(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[256];
    int enc = 0;
    while (!enc && fgets(line, sizeof(line), f))
        enc = !strncmp(line, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) ||
              !strncmp(line, "Proc-Type: 4,ENCRYPTED", 22);
    fclose(f);
    return enc;
}

int tls_cert_load(const char *cert, const char *key, const char *key_setting, struct tls_cert *c,
                  char *why, size_t cap)
{
    memset(c, 0, sizeof(*c));
    ERR_clear_error();
    int ret = -1;
    BIO *b = BIO_new_file(cert, "r");
    if (!b) {
        snprintf(why, cap, "cannot read it: %s", strerror(errno ? errno : ENOENT));
        goto out;
    }
    c->x = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL);
    if (!c->x) {
        snprintf(why, cap, "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
        goto out;
    }
    c->chain = sk_X509_new_null();
    X509 *ca;
    while (c->chain && (ca = PEM_read_bio_X509(b, NULL, no_password, NULL)))
        if (!sk_X509_push(c->chain, ca)) X509_free(ca);
    ERR_clear_error(); /* the end of the file */
    const char *kfile = key && key[0] ? key : cert;
    if (kfile != cert) {
        BIO_free(b);
        b = BIO_new_file(kfile, "r");
        if (!b) {
            snprintf(why, cap, "cannot read the key %s: %s", kfile,
                     strerror(errno ? errno : ENOENT));
            goto out;
        }
    } else {
        BIO_reset(b);
    }
    c->key = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    if (!c->key) {
        if (key_encrypted(kfile))
            snprintf(why, cap,
                     "the key in %s is encrypted, and usher asks for no password (write it "
                     "unencrypted: openssl pkey -in %s -out NEW.key)",
                     kfile, kfile);
        else if (kfile != cert)
            snprintf(why, cap, "no PEM private key in %s", kfile);
        else
            snprintf(why, cap,
                     "no private key in it (add it to the file, or name its file with %s)",
                     key_setting);
        goto out;
    }
    if (X509_check_private_key(c->x, c->key) != 1) {
        snprintf(why, cap, "the key in %s does not match the certificate", kfile);
        goto out;
    }
    const ASN1_TIME *end = X509_get0_notAfter(c->x);
    tls_time_words(end, c->until, sizeof(c->until));
    if (X509_cmp_current_time(end) <= 0) {
        snprintf(why, cap, "expired on %s", c->until);
        goto out;
    }
    int days = 0, secs = 0;
    ASN1_TIME_diff(&days, &secs, NULL, end);
    c->days_left = days;
    ret = 0;
out:
    BIO_free(b);
    ERR_clear_error();
    if (ret < 0) tls_cert_free(c);
    return ret;
}
