/*
 * log.c - the error log and the access log (SPEC.md 16.2, 16.3).
 *
 * DESIGN
 * Each record is formatted into one buffer and handed to the kernel with a
 * single write(2) on an O_APPEND descriptor, so lines from the threads of a
 * worker, and from several processes sharing the file, never interleave.
 *
 * Writers never take a lock.  They load the descriptor number atomically
 * and write to it.  Switching files (open again, SIGUSR1 reopen) opens the
 * new file first and then dup3()s it over the descriptor the writers use:
 * the number stays valid throughout, so a writer racing with a reopen lands
 * in either the old or the new file, never in a closed or recycled fd.
 * Until wd_log_open is called, records go to fd 2 directly.
 *
 * "-" means stderr.  We write to a duplicate of fd 2, taken when the log is
 * opened, so that a later redirection of fd 2 (daemonizing, a worker
 * pointing its stderr at the error log) does not loop or lose records.
 *
 * Callers: everyone.  Thread affinity: any thread for wd_log, wd_vlog and
 * wd_log_access; open/reopen/close from the one thread handling signals.
 */
#include "autoconfig.h" /* _GNU_SOURCE for dup3 */

#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* One log destination: the path it was opened from and the fd we write. */
struct log_target {
    char *path;     /* NULL: not open (access log) or stderr (error log) */
    _Atomic int fd; /* -1: not open */
};

static struct log_target error_target = {NULL, -1};
static struct log_target access_target = {NULL, -1};
static _Atomic int log_level = WD_LOG_INFO;
/* Serialises open/reopen/close against each other (not against writers). */
static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const month_abbr[12] = {"Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec"};

/* Write all of BUF; a regular file takes it in one call. */
static void
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* A new fd for PATH: "-" duplicates stderr, anything else is opened. */
static int
open_path(const char *path)
{
    if (strcmp(path, "-") == 0)
        return fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/*
 * PATH as a reopen must see it: a relative path names a file in the
 * current directory of the open, which the app may change before the
 * next USR1 (os.chdir in a request).  NULL without memory.
 */
static char *
remembered(const char *path)
{
    char cwd[PATH_MAX];
    char *abs;

    if (path[0] == '/' || strcmp(path, "-") == 0 ||
        getcwd(cwd, sizeof cwd) == NULL)
        return strdup(path);
    if (strcmp(cwd, "/") == 0)
        cwd[0] = '\0';
    if ((abs = malloc(strlen(cwd) + strlen(path) + 2)) != NULL)
        sprintf(abs, "%s/%s", cwd, path);
    return abs;
}

/*
 * Point TARGET at NEWFD (taking it) remembering PATH (made absolute).
 * When the target already has an fd, NEWFD is dup3()ed over it, see
 * DESIGN.
 */
static int
install(struct log_target *t, int newfd, const char *path)
{
    char *copy = NULL;
    int cur = atomic_load(&t->fd);

    if (path != NULL && (copy = remembered(path)) == NULL) {
        close(newfd);
        errno = ENOMEM;
        return -1;
    }
    if (cur >= 0) {
        if (dup3(newfd, cur, O_CLOEXEC) < 0) {
            int saved = errno;

            close(newfd);
            free(copy);
            errno = saved;
            return -1;
        }
        close(newfd);
    } else {
        atomic_store(&t->fd, newfd);
    }
    free(t->path);
    t->path = copy;
    return 0;
}

/* Stop using TARGET's fd (the caller makes sure no writer races with it). */
static void
drop(struct log_target *t)
{
    int fd = atomic_exchange(&t->fd, -1);

    if (fd >= 0)
        close(fd);
    free(t->path);
    t->path = NULL;
}

int
wd_log_open(const char *error_log, const char *access_log)
{
    const char *epath = error_log != NULL ? error_log : "-";
    int efd, afd = -1;
    int rc = -1, saved;

    tzset();
    if ((efd = open_path(epath)) < 0)
        return -1;
    if (access_log != NULL && (afd = open_path(access_log)) < 0) {
        saved = errno;
        close(efd);
        errno = saved;
        return -2;
    }
    pthread_mutex_lock(&switch_lock);
    if (install(&error_target, efd, epath) < 0) {
        saved = errno;
        if (afd >= 0)
            close(afd);
        errno = saved;
        goto unlock;
    }
    if (afd >= 0) {
        if (install(&access_target, afd, access_log) < 0) {
            rc = -2;
            goto unlock;
        }
    } else {
        drop(&access_target);
    }
    rc = 0;
unlock:
    pthread_mutex_unlock(&switch_lock);
    return rc;
}

/* Reopen one target at its remembered path; nothing when it is closed. */
static int
reopen_target(struct log_target *t)
{
    char *path;
    int fd, rc;

    /* "-" is kept: stderr is not ours to rotate, and fd 2 may no longer
       be stderr (an app can close it; a socket then takes the number) */
    if (t->path == NULL || atomic_load(&t->fd) < 0 ||
        strcmp(t->path, "-") == 0)
        return 0;
    if ((fd = open_path(t->path)) < 0)
        return -1;
    /* install() frees t->path; hand it a copy of its own string. */
    if ((path = strdup(t->path)) == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    rc = install(t, fd, path);
    free(path);
    return rc;
}

int
wd_log_reopen(void)
{
    int rc = 0;

    pthread_mutex_lock(&switch_lock);
    if (reopen_target(&error_target) < 0)
        rc = -1;
    if (reopen_target(&access_target) < 0)
        rc = -1;
    pthread_mutex_unlock(&switch_lock);
    return rc;
}

void
wd_log_close(void)
{
    pthread_mutex_lock(&switch_lock);
    drop(&error_target);
    drop(&access_target);
    pthread_mutex_unlock(&switch_lock);
}

void
wd_log_set_level(enum wd_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum wd_log_level
wd_log_get_level(void)
{
    return (enum wd_log_level)atomic_load(&log_level);
}

static const struct {
    const char *name;
    const char *upper;
    enum wd_log_level level;
} level_names[] = {
    {"debug", "DEBUG", WD_LOG_DEBUG},
    {"info", "INFO", WD_LOG_INFO},
    {"warning", "WARNING", WD_LOG_WARNING},
    {"error", "ERROR", WD_LOG_ERROR},
    {"critical", "CRITICAL", WD_LOG_CRITICAL},
};

int
wd_log_level_parse(const char *name)
{
    size_t i;

    if (name == NULL)
        return -1;
    for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcasecmp(name, level_names[i].name) == 0)
            return (int)level_names[i].level;
    return -1;
}

const char *
wd_log_level_name(enum wd_log_level level)
{
    size_t i;

    for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (level_names[i].level == level)
            return level_names[i].upper;
    return "UNKNOWN";
}

int
wd_log_error_fd(void)
{
    int fd = atomic_load(&error_target.fd);

    return fd >= 0 ? fd : STDERR_FILENO;
}

void
wd_log(enum wd_log_level level, const char *category, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    wd_vlog(level, category, fmt, ap);
    va_end(ap);
}

/*
 * Records made before the configured log is open (the configuration's own
 * warnings) are held, then written or dropped by wd_log_release once the
 * error log and level are known.  Master only, before any thread exists.
 */
struct held {
    struct held *next;
    int level;
    size_t len;
    char line[];
};
static struct held *held_head, **held_tail = &held_head;
static int holding;

static void
hold_record(int level, const char *line, size_t len)
{
    struct held *h = malloc(sizeof *h + len);

    if (h == NULL)
        return;
    h->next = NULL;
    h->level = level;
    h->len = len;
    memcpy(h->line, line, len);
    *held_tail = h;
    held_tail = &h->next;
}

/*
 * The "[time] [pid] " prefix, formatted once per second per thread: a
 * worker under load logs "Task queue depth" for most requests, and
 * localtime_r + strftime + getpid(2) were most of a record's cost.  A
 * fork clears the cached pid (pthread_atfork), so a child never logs
 * with its parent's.
 */
static _Atomic long cached_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
forget_pid(void)
{
    atomic_store(&cached_pid, 0);
}

static void
register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_pid);
}

static size_t
record_prefix(char *out, size_t cap)
{
    static _Thread_local char prefix[96];
    static _Thread_local size_t prefix_len;
    static _Thread_local time_t prefix_time = -1;
    static _Thread_local long prefix_pid;
    time_t now = time(NULL);
    long pid = atomic_load(&cached_pid);

    if (pid == 0) {
        pthread_once(&atfork_once, register_atfork);
        pid = (long)getpid();
        atomic_store(&cached_pid, pid);
    }
    if (now != prefix_time || pid != prefix_pid) {
        char stamp[64];
        struct tm tm;
        int n;

        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S %z", &tm);
        n = snprintf(prefix, sizeof prefix, "[%s] [%ld] ", stamp, pid);
        if (n < 0 || (size_t)n >= sizeof prefix)
            return 0;
        prefix_len = (size_t)n;
        prefix_time = now;
        prefix_pid = pid;
    }
    if (prefix_len >= cap)
        return 0;
    memcpy(out, prefix, prefix_len);
    return prefix_len;
}

/*
 * Deferred records (wd_log_defer): a thread that runs an event loop
 * collects its records and writes them in one call per loop iteration.
 * Under load a worker's loop logs SPEC's "Task queue depth is N" for most
 * requests; one write(2) per record was a syscall per request.
 */
#define DEFER_CAP 65536
static _Thread_local char *defer_buf;
static _Thread_local size_t defer_len;
static _Thread_local int defer_paused;
/* the loop thread's, for a signal handler on whichever thread it runs */
static char **_Atomic signal_buf;
static size_t *_Atomic signal_len;

void
wd_log_defer(void)
{
    if (defer_buf == NULL)
        defer_buf = malloc(DEFER_CAP);
    signal_len = &defer_len;
    signal_buf = &defer_buf;
}

void
wd_log_flush(void)
{
    if (defer_len > 0) {
        write_all(wd_log_error_fd(), defer_buf, defer_len);
        defer_len = 0;
    }
}

void
wd_log_flush_signal(void)
{
    /* async-signal-safe: one write(2) of what is complete (defer_len is
       raised only after a record is copied in), no state changed.  The
       buffer is the deferring thread's, whichever thread the signal
       found (in a worker, mostly the main thread, which never defers). */
    char **buf = signal_buf;
    size_t *len = signal_len;

    if (buf != NULL && len != NULL && *buf != NULL && *len > 0)
        write_all(wd_log_error_fd(), *buf, *len);
}

void
wd_log_defer_pause(int paused)
{
    if (paused)
        wd_log_flush();
    defer_paused = paused;
}

void
wd_log_undefer(void)
{
    wd_log_flush();
    if (signal_buf == &defer_buf) {
        signal_buf = NULL;
        signal_len = NULL;
    }
    free(defer_buf);
    defer_buf = NULL;
}

/* 1 when the record went to this thread's deferred buffer. */
static int
defer_record(const char *line, size_t len)
{
    if (defer_buf == NULL || defer_paused)
        return 0;
    if (len > DEFER_CAP) {
        wd_log_flush(); /* the earlier records first */
        return 0;
    }
    if (defer_len + len > DEFER_CAP)
        wd_log_flush();
    memcpy(defer_buf + defer_len, line, len);
    defer_len += len;
    return 1;
}

/* "[time] [pid] [LEVEL] [category] " into OUT; its length, 0 if the
 * level is filtered out or it does not fit. */
static size_t
record_head(char *out, size_t cap, enum wd_log_level level,
            const char *category)
{
    size_t pre;
    int n;

    if (!holding && (int)level < atomic_load(&log_level))
        return 0;
    pre = record_prefix(out, cap);
    n = snprintf(out + pre, cap - pre, "[%s] [%s] ",
                 wd_log_level_name(level),
                 category != NULL ? category : WD_CAT_SERVER);

    if (n < 0 || (size_t)n >= cap - pre)
        return 0;
    return pre + (size_t)n;
}

/* BUF holds NEED bytes, the last one the newline's place. */
static void
emit_record(enum wd_log_level level, char *buf, size_t need)
{
    buf[need - 1] = '\n';
    if (holding)
        hold_record((int)level, buf, need);
    else if (!defer_record(buf, need))
        write_all(wd_log_error_fd(), buf, need);
}

void
wd_log_bytes(enum wd_log_level level, const char *category, const char *msg,
             size_t len)
{
    char stackbuf[2048];
    char *buf = stackbuf;
    size_t head, need;

    if ((head = record_head(stackbuf, sizeof stackbuf, level, category)) == 0)
        return;
    need = head + len + 1; /* + newline */
    if (need > sizeof stackbuf) {
        if ((buf = malloc(need)) == NULL) {
            buf = stackbuf;
            len = sizeof stackbuf - head - 1;
            need = sizeof stackbuf;
        } else {
            memcpy(buf, stackbuf, head);
        }
    }
    memcpy(buf + head, msg, len);
    emit_record(level, buf, need);
    if (buf != stackbuf)
        free(buf);
}

void
wd_vlog(enum wd_log_level level, const char *category, const char *fmt,
        va_list ap)
{
    char stackmsg[1024];
    char *msg = stackmsg;
    int len;
    va_list ap2;

    if (!holding && (int)level < atomic_load(&log_level))
        return; /* not even formatted */
    va_copy(ap2, ap);
    len = vsnprintf(stackmsg, sizeof stackmsg, fmt, ap2);
    va_end(ap2);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof stackmsg) {
        /* a traceback or a long value: format again into the heap */
        if ((msg = malloc((size_t)len + 1)) == NULL) {
            msg = stackmsg;
            len = (int)sizeof stackmsg - 1;
        } else {
            vsnprintf(msg, (size_t)len + 1, fmt, ap);
        }
    }
    wd_log_bytes(level, category, msg, (size_t)len);
    if (msg != stackmsg)
        free(msg);
}

void
wd_log_hold(void)
{
    holding = 1;
}

void
wd_log_release(void)
{
    struct held *h, *next;

    holding = 0;
    for (h = held_head; h != NULL; h = next) {
        next = h->next;
        if (h->level >= atomic_load(&log_level))
            write_all(wd_log_error_fd(), h->line, h->len);
        free(h);
    }
    held_head = NULL;
    held_tail = &held_head;
}

int
wd_log_access_enabled(void)
{
    return atomic_load(&access_target.fd) >= 0;
}

/* A growable output line. */
struct line {
    char *p;
    size_t len, cap;
    int failed;
};

static void
line_reserve(struct line *l, size_t more)
{
    char *np;
    size_t ncap;

    if (l->failed || l->len + more <= l->cap)
        return;
    ncap = l->cap * 2;
    while (ncap < l->len + more)
        ncap *= 2;
    if ((np = realloc(l->p, ncap)) == NULL) {
        l->failed = 1;
        return;
    }
    l->p = np;
    l->cap = ncap;
}

static void
line_add(struct line *l, const char *s, size_t n)
{
    line_reserve(l, n);
    if (l->failed)
        return;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void
line_adds(struct line *l, const char *s)
{
    line_add(l, s, strlen(s));
}

char *
wd_log_text(const char *s, size_t n)
{
    return wd_latin1_to_utf8(s, n, 1);
}

/*
 * Append S escaped as SPEC.md 16.3 asks: backslash before '"' and '\',
 * \xHH for control bytes and bytes 0x7F-0xFF, the rest as is.
 */
static void
line_add_escaped(struct line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    line_reserve(l, n * 4);
    if (l->failed)
        return;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            l->p[l->len++] = '\\';
            l->p[l->len++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            l->p[l->len++] = '\\';
            l->p[l->len++] = 'x';
            l->p[l->len++] = hex[c >> 4];
            l->p[l->len++] = hex[c & 15];
        } else {
            l->p[l->len++] = (char)c;
        }
    }
}

/* A quoted field: the escaped value, or "-" when the value is absent. */
static void
line_add_quoted(struct line *l, const char *s, size_t n)
{
    line_add(l, "\"", 1);
    if (s == NULL)
        line_add(l, "-", 1);
    else
        line_add_escaped(l, s, n);
    line_add(l, "\"", 1);
}

/* An unquoted field (address, user): escaped too, "-" when absent. */
static void
line_add_word(struct line *l, const char *s)
{
    if (s == NULL || *s == '\0')
        line_add(l, "-", 1);
    else
        line_add_escaped(l, s, strlen(s));
}

/* Format REC into a malloc'ed line ending in a newline; NULL on ENOMEM. */
static char *
format_access(const struct wd_access_rec *rec, size_t *lenp)
{
    struct line l = {NULL, 0, 256, 0};
    struct tm tm;
    char tmp[64];
    long off;

    if ((l.p = malloc(l.cap)) == NULL)
        return NULL;
    localtime_r(&rec->when, &tm);
    line_add_word(&l, rec->remote_addr);
    line_adds(&l, " - ");
    if (rec->remote_user != NULL && rec->remote_user_len > 0)
        line_add_escaped(&l, rec->remote_user, rec->remote_user_len);
    else
        line_add_word(&l, rec->remote_user);
    off = tm.tm_gmtoff / 60;
    snprintf(tmp, sizeof tmp, " [%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld] ",
             tm.tm_mday, month_abbr[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
             (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
    line_adds(&l, tmp);
    line_add_quoted(&l, rec->request_line, rec->request_line_len);
    if (rec->bytes == 0)
        snprintf(tmp, sizeof tmp, " %03d - ", rec->status);
    else
        snprintf(tmp, sizeof tmp, " %03d %llu ", rec->status,
                 (unsigned long long)rec->bytes);
    line_adds(&l, tmp);
    line_add_quoted(&l, rec->referer, rec->referer_len);
    line_add(&l, " ", 1);
    line_add_quoted(&l, rec->user_agent, rec->user_agent_len);
    line_add(&l, "\n", 1);
    if (l.failed) {
        free(l.p);
        return NULL;
    }
    *lenp = l.len;
    return l.p;
}

void
wd_log_access(const struct wd_access_rec *rec)
{
    char *line;
    size_t len;
    int fd = atomic_load(&access_target.fd);

    if (fd < 0)
        return;
    if ((line = format_access(rec, &len)) == NULL)
        return;
    write_all(fd, line, len);
    free(line);
}
