/*
 * listen.h - the master's listening sockets (SPEC.md 3.1 - 3.3).
 *
 * Opened once before the first fork and inherited by every worker.  Each
 * socket is non-blocking and close-on-exec; TCP ones have SO_REUSEADDR
 * (and IPV6_V6ONLY for AF_INET6).  Master only.
 */
#ifndef WD_MASTER_LISTEN_H
#define WD_MASTER_LISTEN_H

#include <stddef.h>

struct sockaddr;
struct wd_config;

struct wd_listener {
    int fd;
    int inherited;   /* from `sockets`: never unlinked */
    char *unix_path; /* bound Unix socket path (owned), or NULL */
    char name[300];  /* "http://127.0.0.1:8080", "http://[::1]:80",
                        "http://unix:/path" */
    char asked[300]; /* TCP: the configured address ("...:0" for port 0),
                        which a reload compares; else "" */
};

/*
 * "http://HOST:PORT" for a TCP address SA (HOST numeric; IPv6 bracketed,
 * with its %zone when it has one, as getnameinfo writes it), or
 * "http://unix:PATH".  Into OUT of OUTLEN bytes, cut to fit.
 */
void wd_listen_format_name(const struct sockaddr *sa, char *out,
                           size_t outlen);

/*
 * Bind and listen on every address of CFG (cfg->addrs, or unix_socket,
 * or the inherited cfg->sockets).  On success *OUT holds *N listeners
 * (free with wd_listen_close_all) and 0 is returned; on failure nothing
 * stays open and ERR holds one line naming the address and the reason.
 * Nothing is logged: the caller announces them with wd_listen_log once
 * it is the process that serves (a daemon forks after binding, and its
 * records must carry its own PID).
 */
int wd_listen_open_all(const struct wd_config *cfg, struct wd_listener **out,
                       size_t *n, char *err, size_t errlen);

/* Log "Serving on NAME" for each listener (INFO, waitressd). */
void wd_listen_log(const struct wd_listener *ls, size_t n);

/*
 * Close every listener (inherited ones too: final shutdown or a failed
 * start); with UNLINK_UNIX, also remove the Unix socket
 * files we bound (final shutdown, not reload).  Frees LS.
 */
void wd_listen_close_all(struct wd_listener *ls, size_t n, int unlink_unix);

/*
 * Reload (SPEC.md 4.3 step 3): listeners for CFG, taking over each entry
 * of OLD whose address is unchanged (same fd, shared with OLD: same
 * resolved address and port, same Unix path, same inherited fd) and
 * binding the others.  OLD is not modified.  On failure nothing new stays
 * open, ERR holds the line and -1 is returned.
 */
int wd_listen_reload(const struct wd_config *cfg,
                     const struct wd_listener *old, size_t nold,
                     struct wd_listener **out, size_t *n, char *err,
                     size_t errlen);

/*
 * Reload commit: every listener of LS takes CFG's backlog, and a Unix
 * socket its permissions and owner.  New sockets got them when bound;
 * this is for the kept ones, left untouched until the reload succeeds.
 */
void wd_listen_settle(const struct wd_config *cfg,
                      const struct wd_listener *ls, size_t n);

/*
 * Free DROP, closing the listeners whose fd KEEP does not share and
 * unlinking Unix paths KEEP does not bind.  Inherited fds stay open.
 * Used to retire the old set after a reload, or the new set after an
 * aborted one.
 */
void wd_listen_release(struct wd_listener *drop, size_t ndrop,
                       const struct wd_listener *keep, size_t nkeep);

#endif
