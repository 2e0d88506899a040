/*
 * daemon.h - the master's daemon duties (SPEC.md 2.3): the pidfile,
 * detaching, and the workers' privilege drop.
 *
 * Functions that can fail write one line (no prefix, no newline) into
 * ERR and return -1; the caller decides between "exit 1" (start) and
 * "reload failed" (HUP).
 */
#ifndef WD_MASTER_DAEMON_H
#define WD_MASTER_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

struct wd_config;

/*
 * Refuse PATH when it names a live process other than us:
 * "Already running on PID N (or pid file 'PATH' is stale)".  A missing,
 * unreadable-as-a-number or stale file is fine.  0 or -1.
 */
int wd_pidfile_check(const char *path, char *err, size_t errlen);
/*
 * Refuse PATH when the write below could not put it there (its
 * directory missing or not writable, a directory in its place): "cannot
 * write pidfile PATH: WHY".  A read-only old file is no obstacle (the
 * write renames a new one over it).
 * Writes nothing; NULL is fine.  0 or -1.
 */
int wd_pidfile_writable(const char *path, char *err, size_t errlen);
/* Write our PID + "\n" to PATH (through a temporary file and rename). */
int wd_pidfile_write(const char *path, char *err, size_t errlen);
/* Remove PATH if it still holds our PID.  NULL is fine. */
void wd_pidfile_remove(const char *path);

/*
 * Detach (fork, setsid, fork).  stdin and stdout go to /dev/null, and
 * stderr too unless a log target of CFG is "-".  The working directory
 * stays.  Returns 0 in the daemon.  The original process waits for the
 * daemon's wd_daemon_report and exits with that status (1 if the daemon
 * dies first), so `waitressd --daemon` still says whether startup worked.
 */
int wd_daemonize(const struct wd_config *cfg, char *err, size_t errlen);
/* Daemon: tell the waiting original process how startup ended (once). */
void wd_daemon_report(int status);
/* In a forked worker: drop the daemon's end of that pipe. */
void wd_daemon_forget(void);

/*
 * In a freshly forked worker: setgid, initgroups/setgroups, setuid to
 * cfg->uid / cfg->gid when set.  0 or -1 (ERR).
 */
int wd_drop_privileges(const struct wd_config *cfg, char *err,
                       size_t errlen);

/* chown the log files of CFG to its user/group (when set); best effort. */
void wd_chown_logs(const struct wd_config *cfg);

#endif
