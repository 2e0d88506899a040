/*
 * listen.c - bind the listening sockets (see listen.h).
 *
 * Master only, before any fork.  Helpers report into ERR; the caller
 * prints the one line and exits 1.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "listen.h"
#include "log.h"
#include "util.h"

void
wd_listen_format_name(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[NI_MAXHOST] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(out, outlen, "http://%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        /* getnameinfo, not inet_ntop: it writes a link-local address's
           zone (fe80::1%eth0), which tells two such listeners apart */
        if (getnameinfo(sa, sizeof *sin6, host, sizeof host, NULL, 0,
                        NI_NUMERICHOST) != 0)
            inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "http://[%s]:%u", host,
                 ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, outlen, "http://unix:%s",
                 ((const struct sockaddr_un *)sa)->sun_path);
    } else {
        snprintf(out, outlen, "http://?");
    }
}

static int
name_from_fd(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;

    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) != 0)
        return -1;
    wd_listen_format_name((struct sockaddr *)&ss, out, outlen);
    return 0;
}

static int
open_tcp(const struct wd_config *cfg, const struct wd_addr *a,
         struct wd_listener *l, char *err, size_t errlen)
{
    char what[300];
    int one = 1;
    int fd;

    wd_listen_format_name((const struct sockaddr *)&a->ss, what, sizeof what);
    fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        goto fail;
    if (a->family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
        goto fail;
    if (listen(fd, cfg->backlog) != 0)
        goto fail;
    l->fd = fd;
    if (name_from_fd(fd, l->name, sizeof l->name) != 0)
        snprintf(l->name, sizeof l->name, "%s", what);
    snprintf(l->asked, sizeof l->asked, "%s", what);
    return 0;

fail:
    snprintf(err, errlen, "cannot listen on %s: %s",
             what + strlen("http://"), strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int
open_unix(const struct wd_config *cfg, struct wd_listener *l, char *err,
          size_t errlen)
{
    const char *path = cfg->unix_socket;
    struct sockaddr_un sun;
    int fd = -1;

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "cannot listen on unix:%s: path too long",
                 path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (wd_cleanup_unix_socket(path) != 0)
        goto fail;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
        goto fail;
    if ((l->unix_path = strdup(path)) == NULL)
        goto fail_unlink;
    if (chmod(path, cfg->unix_socket_perms) != 0)
        goto fail_unlink;
    if ((cfg->uid != (uid_t)-1 || cfg->gid != (gid_t)-1) &&
        chown(path, cfg->uid, cfg->gid) != 0)
        goto fail_unlink;
    if (listen(fd, cfg->backlog) != 0)
        goto fail_unlink;
    l->fd = fd;
    snprintf(l->name, sizeof l->name, "http://unix:%s", path);
    return 0;

fail_unlink:
    unlink(path);
fail:
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path,
             strerror(errno));
    free(l->unix_path);
    l->unix_path = NULL;
    if (fd >= 0)
        close(fd);
    return -1;
}

static int
adopt_fd(const struct wd_config *cfg, int fd, struct wd_listener *l,
         char *err, size_t errlen)
{
    int type = 0, flags;
    socklen_t tlen = sizeof type;

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
        type != SOCK_STREAM) {
        snprintf(err, errlen, "sockets: fd %d is not a stream socket", fd);
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || listen(fd, cfg->backlog) != 0) {
        snprintf(err, errlen, "sockets: fd %d: %s", fd, strerror(errno));
        return -1;
    }
    l->fd = fd;
    l->inherited = 1;
    if (name_from_fd(fd, l->name, sizeof l->name) != 0)
        snprintf(l->name, sizeof l->name, "fd:%d", fd);
    return 0;
}

void
wd_listen_log(const struct wd_listener *ls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wd_log(WD_LOG_INFO, WD_CAT_SERVER, "Serving on %s", ls[i].name);
}

void
wd_listen_close_all(struct wd_listener *ls, size_t n, int unlink_unix)
{
    if (ls == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (ls[i].fd >= 0)
            close(ls[i].fd);
        if (unlink_unix && ls[i].unix_path != NULL)
            unlink(ls[i].unix_path);
        free(ls[i].unix_path);
    }
    free(ls);
}

static unsigned
port_of(const struct wd_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

/* Whether a listener of NEW[0, N) already took over OLD's socket. */
static int
taken(const struct wd_listener *old, const struct wd_listener *new, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (new[k].fd == old->fd)
            return 1;
    return 0;
}

/*
 * An entry of OLD that serves entry I of CFG unchanged and that none of
 * NEW[0, I) took over, or NULL.  A TCP address is compared as configured,
 * so that a port-0 socket is kept too (its clients know the port it got);
 * several port-0 entries (never deduplicated) each keep one.
 */
static const struct wd_listener *
find_same(const struct wd_config *cfg, size_t i,
          const struct wd_listener *old, size_t nold,
          const struct wd_listener *new)
{
    char want[300];

    if (cfg->unix_socket == NULL && cfg->nsockets == 0)
        wd_listen_format_name((const struct sockaddr *)&cfg->addrs[i].ss,
                              want, sizeof want);
    for (size_t j = 0; j < nold; j++) {
        const struct wd_listener *l = &old[j];

        if (l->fd < 0 || taken(l, new, i))
            continue;
        if (cfg->unix_socket != NULL) {
            if (l->unix_path != NULL && !l->inherited &&
                strcmp(l->unix_path, cfg->unix_socket) == 0)
                return l;
        } else if (cfg->nsockets > 0) {
            if (l->inherited && l->fd == cfg->sockets[i])
                return l;
        } else if (!l->inherited && l->unix_path == NULL &&
                   (strcmp(l->asked, want) == 0 ||
                    /* the port a port-0 socket got, now written out */
                    (port_of(&cfg->addrs[i]) != 0 &&
                     strcmp(l->name, want) == 0))) {
            return l;
        }
    }
    return NULL;
}

/* Take over SAME for the new configuration, as it is. */
static int
reuse(const struct wd_listener *same, struct wd_listener *l, char *err,
      size_t errlen)
{
    *l = *same;
    l->unix_path = NULL;
    if (same->unix_path != NULL &&
        (l->unix_path = strdup(same->unix_path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        l->fd = -1;
        return -1;
    }
    /* the new backlog and permissions wait for wd_listen_settle: a
       reload that fails later must leave this socket as it was */
    return 0;
}

void
wd_listen_settle(const struct wd_config *cfg, const struct wd_listener *ls,
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct wd_listener *l = &ls[i];

        if (l->unix_path != NULL &&
            (chmod(l->unix_path, cfg->unix_socket_perms) != 0 ||
             ((cfg->uid != (uid_t)-1 || cfg->gid != (gid_t)-1) &&
              chown(l->unix_path, cfg->uid, cfg->gid) != 0)))
            wd_log(WD_LOG_WARNING, WD_CAT_MASTER, "%s: %s", l->unix_path,
                   strerror(errno));
        /* a new backlog takes effect on an existing listening socket */
        listen(l->fd, cfg->backlog);
    }
}

/* wd_listen_reload; ANNOUNCE: log "Serving on" for each new socket. */
static int
listen_set(const struct wd_config *cfg, const struct wd_listener *old,
           size_t nold, struct wd_listener **out, size_t *n, char *err,
           size_t errlen, int announce)
{
    struct wd_listener *ls;
    size_t count, done = 0;
    int rc = 0;

    if (cfg->unix_socket != NULL)
        count = 1;
    else if (cfg->nsockets > 0)
        count = cfg->nsockets;
    else
        count = cfg->naddrs;
    if (count == 0) {
        snprintf(err, errlen, "no address to listen on");
        return -1;
    }
    if ((ls = calloc(count, sizeof *ls)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        const struct wd_listener *same = find_same(cfg, i, old, nold, ls);

        ls[i].fd = -1;
        if (same != NULL)
            rc = reuse(same, &ls[i], err, errlen);
        else if (cfg->unix_socket != NULL)
            rc = open_unix(cfg, &ls[i], err, errlen);
        else if (cfg->nsockets > 0)
            rc = adopt_fd(cfg, cfg->sockets[i], &ls[i], err, errlen);
        else
            rc = open_tcp(cfg, &cfg->addrs[i], &ls[i], err, errlen);
        if (rc == 0)
            done++;
    }
    if (rc != 0) {
        wd_listen_release(ls, done, old, nold);
        return -1;
    }
    /* announce the new ones only once the whole set is bound */
    for (size_t i = 0; i < count && announce; i++)
        if (!taken(&ls[i], old, nold))
            wd_listen_log(&ls[i], 1);
    *out = ls;
    *n = count;
    return 0;
}

int
wd_listen_reload(const struct wd_config *cfg, const struct wd_listener *old,
                 size_t nold, struct wd_listener **out, size_t *n, char *err,
                 size_t errlen)
{
    return listen_set(cfg, old, nold, out, n, err, errlen, 1);
}

int
wd_listen_open_all(const struct wd_config *cfg, struct wd_listener **out,
                   size_t *n, char *err, size_t errlen)
{
    /* a reload from nothing; announced by the caller (wd_listen_log)
       once it is the process that serves: a daemon forks after binding */
    return listen_set(cfg, NULL, 0, out, n, err, errlen, 0);
}

void
wd_listen_release(struct wd_listener *drop, size_t ndrop,
                  const struct wd_listener *keep, size_t nkeep)
{
    if (drop == NULL)
        return;
    for (size_t i = 0; i < ndrop; i++) {
        int kept_fd = 0, kept_path = 0;

        for (size_t j = 0; j < nkeep; j++) {
            if (drop[i].fd >= 0 && keep[j].fd == drop[i].fd)
                kept_fd = 1;
            if (drop[i].unix_path != NULL && keep[j].unix_path != NULL &&
                strcmp(drop[i].unix_path, keep[j].unix_path) == 0)
                kept_path = 1;
        }
        if (!kept_fd && drop[i].fd >= 0 && !drop[i].inherited)
            close(drop[i].fd);
        if (!kept_fd && !kept_path && drop[i].unix_path != NULL &&
            !drop[i].inherited)
            unlink(drop[i].unix_path);
        free(drop[i].unix_path);
    }
    free(drop);
}
