/*
 * daemon.c - pidfile, detaching and privileges (see daemon.h).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "util.h"

/* The PID in PATH, 0 when there is none, -1 when PATH does not exist. */
static long
read_pid(const char *path)
{
    char buf[32];
    ssize_t n;
    long pid;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || pid <= 0)
        return 0;
    return pid;
}

int
wd_pidfile_check(const char *path, char *err, size_t errlen)
{
    long pid;

    if (path == NULL)
        return 0;
    pid = read_pid(path);
    if (pid <= 0 || pid == (long)getpid())
        return 0;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM) {
        snprintf(err, errlen,
                 "Already running on PID %ld (or pid file '%s' is stale)",
                 pid, path);
        return -1;
    }
    return 0;
}

int
wd_pidfile_writable(const char *path, char *err, size_t errlen)
{
    if (path == NULL || wd_path_writable(path, WD_PATH_RENAME) == 0)
        return 0;
    snprintf(err, errlen, "cannot write pidfile %s: %s", path,
             strerror(errno));
    return -1;
}

int
wd_pidfile_write(const char *path, char *err, size_t errlen)
{
    char tmp[4096], line[32];
    int fd, len;

    if (path == NULL)
        return 0;
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >=
        (int)sizeof tmp) {
        snprintf(err, errlen, "pidfile %s: path too long", path);
        return -1;
    }
    len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (write(fd, line, (size_t)len) != len) {
        close(fd);
        unlink(tmp);
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        goto fail;
    }
    return 0;

fail:
    snprintf(err, errlen, "cannot write pidfile %s: %s", path,
             strerror(errno));
    return -1;
}

/* The detached master's end of the pipe the original process waits on. */
static int boot_fd = -1;

void
wd_daemon_report(int status)
{
    unsigned char b = (unsigned char)status;

    if (boot_fd < 0)
        return;
    if (write(boot_fd, &b, 1) < 0) {
        /* the waiting parent is gone: nothing to tell */
    }
    close(boot_fd);
    boot_fd = -1;
}

void
wd_daemon_forget(void)
{
    if (boot_fd >= 0)
        close(boot_fd);
    boot_fd = -1;
}

void
wd_pidfile_remove(const char *path)
{
    if (path != NULL && read_pid(path) == (long)getpid())
        unlink(path);
}

static int
is_stderr(const char *target)
{
    return target != NULL && strcmp(target, "-") == 0;
}

/* The original process: exit with the status the daemon reports, 1 if it
 * dies before reporting. */
static void
wait_for_verdict(int fd)
{
    unsigned char status = 1;
    ssize_t n;

    do
        n = read(fd, &status, 1);
    while (n < 0 && errno == EINTR);
    _exit(n == 1 ? status : 1);
}

int
wd_daemonize(const struct wd_config *cfg, char *err, size_t errlen)
{
    pid_t pid;
    int null, verdict[2];

    if (pipe2(verdict, O_CLOEXEC) != 0)
        goto fail;
    if ((pid = fork()) < 0)
        goto fail;
    if (pid > 0) {
        close(verdict[1]);
        wait_for_verdict(verdict[0]);
    }
    close(verdict[0]);
    boot_fd = verdict[1];
    if (setsid() < 0)
        goto fail;
    if ((pid = fork()) < 0)
        goto fail;
    if (pid > 0)
        _exit(0);
    if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        goto fail;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    /* error_log defaults to "-": NULL means stderr too */
    if (!(cfg->error_log == NULL || is_stderr(cfg->error_log) ||
          is_stderr(cfg->access_log)))
        dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
    return 0;

fail:
    snprintf(err, errlen, "cannot daemonize: %s", strerror(errno));
    return -1;
}

int
wd_drop_privileges(const struct wd_config *cfg, char *err, size_t errlen)
{
    gid_t gid = cfg->gid;
    uid_t uid = cfg->uid;

    if (gid != (gid_t)-1) {
        if (setgid(gid) != 0) {
            snprintf(err, errlen, "setgid(%ld): %s", (long)gid,
                     strerror(errno));
            return -1;
        }
        if (uid == (uid_t)-1 && setgroups(1, &gid) != 0 && errno != EPERM) {
            snprintf(err, errlen, "setgroups: %s", strerror(errno));
            return -1;
        }
    }
    if (uid != (uid_t)-1) {
        struct passwd *pw = getpwuid(uid);

        if (pw != NULL &&
            initgroups(pw->pw_name, gid != (gid_t)-1 ? gid : pw->pw_gid) != 0) {
            snprintf(err, errlen, "initgroups(%s): %s", pw->pw_name,
                     strerror(errno));
            return -1;
        }
        if (pw == NULL && gid != (gid_t)-1 && setgroups(1, &gid) != 0) {
            snprintf(err, errlen, "setgroups: %s", strerror(errno));
            return -1;
        }
        if (setuid(uid) != 0) {
            snprintf(err, errlen, "setuid(%ld): %s", (long)uid,
                     strerror(errno));
            return -1;
        }
    }
    return 0;
}

void
wd_chown_logs(const struct wd_config *cfg)
{
    const char *paths[] = {cfg->error_log, cfg->access_log};

    if (cfg->uid == (uid_t)-1 && cfg->gid == (gid_t)-1)
        return;
    for (size_t i = 0; i < 2; i++) {
        /* best effort: a worker reports what it cannot open */
        if (paths[i] != NULL && !is_stderr(paths[i]) &&
            chown(paths[i], cfg->uid, cfg->gid) != 0)
            continue;
    }
}
