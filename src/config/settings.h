/* settings: every scalar setting of usher declared once, with its name in the
 * file, its command-line flag, its type, range and default and where it lands.
 * The YAML reader (yaml.c) and the command line (cli.c) both feed values
 * through settings_parse, so a value is accepted or refused the same way,
 * with the same words, from either side. */
#ifndef USHER_CONFIG_SETTINGS_H
#define USHER_CONFIG_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

enum setting_type {
    SETTING_DURATION, /* uint32_t ms: 500ms, 2s, 1m, 1h or a bare number of seconds */
    SETTING_UINT,     /* uint32_t: digits only */
    SETTING_SIZE,     /* uint64_t bytes: a number, optionally with k, m or g */
    SETTING_STRING,   /* char[]: min..max characters */
    SETTING_BOOL,     /* uint8_t: true or false */
    SETTING_ENUM,     /* uint8_t: the index of one of choices[] */
    SETTING_STATUS,   /* two uint16_t (off, off2): a status or LO-HI, within min..max */
    SETTING_BALANCE,  /* char[]: a balancer name balance_find knows */
    SETTING_KEY,      /* char[]: what maglev hashes, as balance_key_parse reads it */
    SETTING_COOKIE,   /* char[]: a cookie name (a token) */
    SETTING_PATH,     /* char[]: starts with /, no spaces */
    SETTING_USER,     /* char[]: a user name this system knows (getpwnam) */
    SETTING_GROUP,    /* char[]: a group name this system knows (getgrnam) */
    SETTING_DNSNAME,  /* char[]: a DNS name (labels of letters, digits, - and _) */
};

/* Which struct a setting lands in. */
enum setting_scope {
    SETTING_TOP,      /* struct config */
    SETTING_POOL,     /* struct pool_conf */
    SETTING_BACKEND,  /* struct backend_conf (a backend of a pool's list) */
    SETTING_LISTENER, /* struct listener_conf */
};

#define SETTING_OFF 0x1  /* 0 or "off" means off; any other value must be >= min */
#define SETTING_AUTO 0x2 /* "auto" stores 0 */
/* the flag may be given with -c FILE too: it wins over the file, on reload as well */
#define SETTING_WITH_FILE 0x4

#define SETTING_NOWHERE SIZE_MAX /* off: checked only, the reader uses the result itself */

struct setting {
    const char *key;  /* name in the file within its scope: "timeouts.connect" */
    const char *flag; /* command-line flag, "--connect-timeout", or NULL */
    enum setting_type type;
    enum setting_scope scope;
    unsigned flags;             /* SETTING_OFF, SETTING_AUTO */
    uint64_t min, max;          /* ms, a number, bytes, characters or statuses */
    size_t off, off2;           /* where it lands (off2: the upper status of a range) */
    size_t size;                /* sizeof the field at off */
    const char *def;            /* the default, as text, read by settings_parse; NULL: zero */
    const char *const *choices; /* SETTING_ENUM, ended by NULL */
    const char *expect;         /* what is expected, where the type's words are not enough */
    const char *only_balance;   /* the flag is refused with another --balance */
};

/* The table, ended by an entry whose key is NULL. */
extern const struct setting settings_table[];

/* The setting named key ("timeouts.connect") in scope, or NULL. */
const struct setting *settings_find(enum setting_scope scope, const char *key);
/* The setting whose command-line flag is flag ("--retries"), or NULL. */
const struct setting *settings_find_flag(const char *flag);
/* Whether some setting of scope is named "section.something". */
int settings_is_section(enum setting_scope scope, const char *section);

/* Checks text as a value of s and, when base is not NULL, stores it in base
 * (the struct of s->scope). Returns 0 (for SETTING_ENUM the index of the
 * choice) or -EINVAL with why written: "expected ..., not '...'", without the
 * setting's name (each reader prefixes its own: the key or the flag). */
int settings_parse(const struct setting *s, const char *text, void *base, char *why,
                   size_t why_cap);
/* Writes what s accepts into buf: "a number from 0 to 7". */
void settings_expected(const struct setting *s, char *buf, size_t cap);
/* Stores the default of every setting of scope into base (the rest is left as is). */
void settings_defaults(enum setting_scope scope, void *base);

#endif
