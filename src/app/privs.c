/* privs: the drop from root to the configured user. See privs.h.
 *
 * The order is nginx's and HAProxy's: supplementary groups, then the group,
 * then the user (the user last: after it, the others cannot change). The
 * workers are not started yet, so one thread changes and the threads made
 * later inherit its ids; glibc's setresuid would change every thread anyway. */
#include "app/privs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/log.h"

static struct {
    int dropped;
    char user[64];
    char hint[256];
} st;

/* The ids of c->user and c->group; 0, or -1 after logging why. */
static int lookup(const struct config *c, uid_t *uid, gid_t *gid)
{
    char buf[4096];
    struct passwd pw, *pwp = NULL;
    int err = getpwnam_r(c->user, &pw, buf, sizeof(buf), &pwp);
    if (!pwp) {
        log_err("user '%s': %s", c->user, err ? strerror(err) : "no such user on this system");
        return -1;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    if (c->group[0]) {
        struct group gr, *grp = NULL;
        err = getgrnam_r(c->group, &gr, buf, sizeof(buf), &grp);
        if (!grp) {
            log_err("group '%s': %s", c->group,
                    err ? strerror(err) : "no such group on this system");
            return -1;
        }
        *gid = gr.gr_gid;
    }
    return 0;
}

void privs_check_start(const struct config *c)
{
    if (geteuid() == 0 && !c->user[0]) {
        log_warn("running as root: set user: in the config (or --user) to drop privileges once "
                 "the listeners and files are open");
        return;
    }
    if (geteuid() == 0 || !c->user[0]) return;
    uid_t uid;
    gid_t gid;
    if (lookup(c, &uid, &gid) < 0 || uid != geteuid())
        log_warn("user '%s' is ignored: usher was not started as root (it runs as uid %u), so "
                 "it cannot change its user",
                 c->user, (unsigned)geteuid());
}

void privs_give_files(const struct config *c)
{
    uid_t uid;
    gid_t gid;
    if (geteuid() != 0 || !c->user[0] || lookup(c, &uid, &gid) < 0) return;
    int err = accesslog_chown(uid, gid);
    if (err < 0)
        log_warn("cannot give the access log %s to user '%s': %s (SIGUSR1 may fail to reopen it)",
                 c->access_log, c->user, strerror(-err));
}

int privs_drop(const struct config *c)
{
    if (geteuid() != 0 || !c->user[0]) return 0;
    uid_t uid;
    gid_t gid;
    if (lookup(c, &uid, &gid) < 0) return -1;
    const char *step = "initgroups";
    if (initgroups(c->user, gid) < 0) goto failed;
    step = "setresgid";
    if (setresgid(gid, gid, gid) < 0) goto failed;
    step = "setresuid";
    if (setresuid(uid, uid, uid) < 0) goto failed;

    /* the drop took, and cannot be undone */
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || r != uid || e != uid ||
        s != uid || rg != gid || eg != gid || sg != gid) {
        log_err("changed to user '%s' but the ids are not all %u:%u; not started", c->user,
                (unsigned)uid, (unsigned)gid);
        return -1;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        log_err("changed to user '%s' but setuid(0) still works; not started", c->user);
        return -1;
    }
    st.dropped = uid != 0;
    snprintf(st.user, sizeof(st.user), "%s", c->user);
    snprintf(st.hint, sizeof(st.hint),
             " (usher runs as user '%s' since it started: files must be readable by it, ports "
             "below 1024 need a restart)",
             c->user);
    log_info("running as user '%s' (uid %u, gid %u): listeners and files are open", c->user,
             (unsigned)uid, (unsigned)gid);
    return 0;
failed:
    log_err("cannot change to user '%s': %s: %s; not started", c->user, step, strerror(errno));
    return -1;
}

int privs_dropped(void)
{
    return st.dropped;
}

const char *privs_hint(void)
{
    return st.dropped ? st.hint : "";
}

static unsigned unprivileged_port_start(void)
{
    unsigned v = 1024;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "r");
    if (f) {
        if (fscanf(f, "%u", &v) != 1) v = 1024;
        fclose(f);
    }
    return v;
}

int privs_check_listener(const struct listener_conf *l, char *why, size_t cap)
{
    if (!st.dropped) return 0;
    const struct sock_addr *a = &l->addr;
    unsigned port = a->sa.sa_family == AF_INET6 ? ntohs(a->in6.sin6_port) : ntohs(a->in.sin_port);
    unsigned start = unprivileged_port_start();
    if (port >= start) return 0;
    snprintf(why, cap,
             "cannot listen on %s: port %u is below %u, which needs root, and usher runs as "
             "user '%s' since it started (restart usher to add this listener)",
             l->bind, port, start, st.user);
    return -1;
}
