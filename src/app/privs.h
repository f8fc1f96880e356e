/* privs: started as root, usher opens what needs root (listeners on ports
 * below 1024, log files, certificates and keys), then runs as the user: of
 * its configuration for good. Main thread only, before the workers start. */
#ifndef USHER_APP_PRIVS_H
#define USHER_APP_PRIVS_H

#include "config/config.h"

/* At start, before anything is opened: warns once when usher runs as root
 * without user:, or when user: is set but usher is not root (it cannot
 * change user then: ignored, as nginx does). */
void privs_check_start(const struct config *c);

/* Files opened as root that the user must be able to open again later (the
 * access log, reopened on SIGUSR1): given to the user and group of c. Call
 * before privs_drop. */
void privs_give_files(const struct config *c);

/* Becomes c->user and c->group (the user's own group by default) with the
 * user's supplementary groups, for good: checks that every id changed and
 * that setuid(0) fails afterwards. Nothing to do without user: or when not
 * root. Returns 0, or -1 after logging why (usher must not start then). */
int privs_drop(const struct config *c);

/* Whether privs_drop changed the user. */
int privs_dropped(void);

/* " (usher runs as user 'nobody' since it started: ...)" after a failure
 * that may come from the drop (a file it may not read, a port it may not
 * bind), or "" when it did not drop. */
const char *privs_hint(void);

/* For a reload after the drop: writes why l cannot be bound into why and
 * returns -1 (a port below net.ipv4.ip_unprivileged_port_start), else 0. */
int privs_check_listener(const struct listener_conf *l, char *why, size_t cap);

#endif
