/* sni: what usher reads of the TLS input itself. The server_name extension
 * of a ClientHello (RFC 6066 section 3) and DNS name matching against a
 * certificate's names (RFC 6125 6.4.3: a wildcard covers one whole label).
 * Pure functions, without OpenSSL, so that a fuzz target can call them. */
#ifndef USHER_TLS_SNI_H
#define USHER_TLS_SNI_H

#include <stddef.h>
#include <stdint.h>

#define TLS_NAME_MAX 253 /* a DNS name, without the final dot */

/* Reads the extension_data of a server_name extension: the host_name, lower
 * cased, into out (cap > TLS_NAME_MAX). Returns its length, 0 when the list
 * holds no host_name, -1 when the extension is malformed or the name is not
 * a DNS name (a trailing dot is dropped). */
int tls_sni_parse(const uint8_t *p, size_t len, char *out, size_t cap);

/* Whether pattern (a certificate's DNS name, lower case: "a.example.com" or
 * "*.example.com") covers name (lower case). A wildcard is only a whole
 * left-most label and covers exactly one label: "*.example.com" covers
 * "a.example.com", not "example.com" nor "a.b.example.com". */
int tls_name_match(const char *pattern, const char *name);

#endif
