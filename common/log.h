/*
 * log.h - the error log and the access log.
 *
 * One process-wide error log (a file or stderr) written one record per
 * write(2), in the format of SPEC.md section 16.2:
 *   [YYYY-MM-DD HH:MM:SS +ZZZZ] [PID] [LEVEL] [CATEGORY] MESSAGE
 * Records below the configured level are dropped.  Safe to call from any
 * thread (each record is one write to an O_APPEND fd).  The files can be
 * reopened (SIGUSR1) at any time from the thread that owns signal handling.
 */
#ifndef WD_COMMON_LOG_H
#define WD_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum wd_log_level {
    WD_LOG_DEBUG = 10,
    WD_LOG_INFO = 20,
    WD_LOG_WARNING = 30,
    WD_LOG_ERROR = 40,
    WD_LOG_CRITICAL = 50,
};

/* Categories of SPEC.md 16.1. */
#define WD_CAT_SERVER "waitressd"
#define WD_CAT_QUEUE "waitressd.queue"
#define WD_CAT_MASTER "waitressd.master"
#define WD_CAT_ACCESS "waitressd.access"

/*
 * Open the error log at PATH ("-" or NULL: stderr) and the access log
 * (NULL: none, "-": stderr).  Returns 0, or with errno set and nothing
 * changed: -1 when the error log cannot be opened, -2 when the access log
 * cannot.  May be called again to switch files (reload).
 */
int wd_log_open(const char *error_log, const char *access_log);
/* Reopen the same paths (logrotate moved the files).  0 or -1. */
int wd_log_reopen(void);
void wd_log_close(void);
void wd_log_set_level(enum wd_log_level level);
enum wd_log_level wd_log_get_level(void);
/* "debug".."critical", case-insensitive; -1 when unknown. */
int wd_log_level_parse(const char *name);
const char *wd_log_level_name(enum wd_log_level level);
/* fd the error log writes to (for redirecting a worker's stderr). */
int wd_log_error_fd(void);

/*
 * Hold records in memory instead of writing them (startup, before the
 * configured error log and level are known); wd_log_release writes those
 * at or above the level then in force to the error log, and ends holding.
 * Master only, before any thread exists.
 */
void wd_log_hold(void);
void wd_log_release(void);

/*
 * The calling thread (an event loop) keeps its error-log records in a
 * buffer until wd_log_flush, which the loop calls once per iteration:
 * one write per batch instead of one per record.  wd_log_undefer
 * flushes and goes back to writing each record at once.  Without memory
 * for the buffer, records are written at once as before.
 */
void wd_log_defer(void);
void wd_log_flush(void);
void wd_log_undefer(void);
/* Nonzero: write at once for now (what waits is written first); 0: defer
 * again.  For app code run on the loop thread, which may outlive it. */
void wd_log_defer_pause(int paused);
/* From a signal handler on any thread: write what the (last) deferring
 * thread has waiting (async-signal-safe; for a handler that ends the
 * process, as that thread may be stuck mid-record). */
void wd_log_flush_signal(void);

/* One record.  MESSAGE may contain newlines (tracebacks follow it). */
void wd_log(enum wd_log_level level, const char *category, const char *fmt,
            ...) __attribute__((format(printf, 3, 4)));
void wd_vlog(enum wd_log_level level, const char *category, const char *fmt,
             va_list ap) __attribute__((format(printf, 3, 0)));

/* One record whose message is LEN bytes taken as they are: a NUL in it
 * is written too (an app's traceback may hold one). */
void wd_log_bytes(enum wd_log_level level, const char *category,
                  const char *msg, size_t len);

/* Text from the wire (latin-1 bytes S[0, N)) for an error-log line: as
 * UTF-8, the way waitress's log shows the str it decoded, with control
 * bytes written \xHH so that a value cannot forge a line.  malloc'ed;
 * NULL without memory. */
char *wd_log_text(const char *s, size_t n);

/* One finished request for the access log (SPEC.md 16.3). */
struct wd_access_rec {
    const char *remote_addr;  /* after proxy headers, or the peer */
    const char *remote_user;  /* NULL: "-" */
    size_t remote_user_len;   /* its length; 0: up to its NUL */
    const char *request_line; /* raw bytes; NULL: "-" (431) */
    size_t request_line_len;
    int status;
    uint64_t bytes; /* body bytes written; 0 is logged as "-" */
    const char *referer; /* raw header value or NULL */
    size_t referer_len;
    const char *user_agent; /* raw header value or NULL */
    size_t user_agent_len;
    time_t when; /* completion time */
};

/* Nonzero when an access log is open (skip building records if not). */
int wd_log_access_enabled(void);
/* Format REC in the combined format, escaped, and write it in one write. */
void wd_log_access(const struct wd_access_rec *rec);

#endif
