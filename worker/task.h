/*
 * task.h - the contract between the worker's loop side (channel.c,
 * pool.c) and the WSGI bridge (wsgi*.c).
 *
 * The loop makes one task per complete request and posts it to the pool.
 * A pool thread -- or the loop thread itself, between two iterations,
 * while the pool is idle (inline.c) -- calls wd_wsgi_run(task) with the
 * GIL held; the bridge builds the environ from the task, calls the app
 * and sends the response through the wd_task_* output functions below.
 * When wd_wsgi_run returns, the task goes back to the loop (wd_task_done
 * or wd_task_finish), which frees it and goes on with the next pipelined
 * request or closes.
 *
 * Threads: the output functions are called from the thread that runs
 * the task, never from inside a loop callback.  None of them needs the
 * GIL, and only
 * wd_task_wait_writable blocks, so the bridge releases the GIL around that
 * one call only.
 */
#ifndef WD_WORKER_TASK_H
#define WD_WORKER_TASK_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct wd_channel;
struct wd_http_request;
struct wd_config;

struct wd_task {
    struct wd_channel *ch;       /* borrowed; valid until wd_task_done */
    struct wd_http_request *req; /* owned by the task */
    const struct wd_config *cfg; /* borrowed, read only */

    /* connection facts for the environ, NUL-terminated; they point into
       the channel, which outlives its task (read only) */
    char *remote_addr; /* numeric peer address, or "localhost" */
    char *remote_port; /* decimal, or "None" for a Unix socket */
    char *server_port; /* listening port, or the Unix socket path */

    time_t start;      /* wall-clock time the task started (Date header) */
    int stopping;      /* stopping, last response: Connection: close */

    /* filled in by the bridge, read by the loop after the task */
    int close_after;      /* close the connection once the output is sent */
    int status;           /* 3-digit status sent (access log), 0 if none */
    uint64_t body_bytes;  /* response body bytes written (access log) */
    char *remote_user;    /* REMOTE_USER after the app, or NULL (owned) */
    size_t remote_user_len; /* its bytes (it may hold a NUL) */
    char *log_remote_addr; /* REMOTE_ADDR after proxy headers, or NULL (owned) */
    int app_exception;    /* the app raised (counted in the scoreboard) */
    int wrote;            /* output functions: something was written */
    struct wd_task *inline_next; /* worker/inline.c: kept tasks */
};

/*
 * Append LEN bytes to the connection's output.  Returns 0; WD_AGAIN when
 * the pending output is above outbuf_high_watermark (nothing appended:
 * release the GIL, call wd_task_wait_writable, then retry); or -1 when
 * the client is gone (raise ClientDisconnected) or on a buffer error.
 */
int wd_task_write(struct wd_task *t, const void *data, size_t len);

/*
 * The same for the IOVCNT pieces of IOV, in order, as one write.  When
 * nothing else is pending and this is the task's first write (typically
 * the head with the whole body) or a large one, the bytes go straight to
 * the socket with one sendmsg(2) from the calling thread (SPEC.md 5.3),
 * and only what the socket did not take is copied to the output buffer;
 * small later writes (a generator's chunks) are buffered and the loop
 * sends them in batches.  Needs no GIL; the caller keeps the memory
 * alive until it returns.
 */
struct iovec;
int wd_task_writev(struct wd_task *t, const struct iovec *iov, int iovcnt);

/*
 * The same, but what the socket does not take of piece KEEP (16 KiB or
 * more, and with it at most outbuf_overflow bytes pending) is not copied:
 * the channel keeps a pointer to it and sets *KEPT.
 * It then calls RELEASE(ARG) exactly once, from any thread and without
 * the GIL, when it no longer needs the bytes (sent, or the connection
 * closed); the caller keeps them alive and unchanged until then.  With
 * *KEPT left 0, RELEASE is never called.
 */
int wd_task_writev_borrow(struct wd_task *t, const struct iovec *iov,
                          int iovcnt, int keep, void (*release)(void *),
                          void *arg, int *kept);

/*
 * Queue LEN bytes of the open file FD from offset OFF, to be sent with
 * sendfile(2) by the loop.  The function dup()s FD, so the caller may
 * close its own.  Same returns as wd_task_write.
 */
int wd_task_write_file(struct wd_task *t, int fd, off_t off, uint64_t len);

/*
 * Block until the pending output is at or below outbuf_high_watermark
 * or the connection is gone.  0, or -1 when the client is gone.
 * Call WITHOUT the GIL.
 */
int wd_task_wait_writable(struct wd_task *t);

/* Nonzero once the worker has seen EOF or an error on the connection. */
int wd_task_client_disconnected(struct wd_task *t);

/*
 * Whether the connection has closed, for a waitress.client_disconnected
 * the app keeps past its request (waitress answers "not connected" then).
 * Shared by the channel and each holder; `gone` is read and set
 * atomically.
 */
struct wd_conn_gone {
    int refs;
    int gone;
};

/* A new reference to T's connection flag, or NULL without memory. */
struct wd_conn_gone *wd_task_conn_gone(struct wd_task *t);
void wd_conn_gone_release(struct wd_conn_gone *g);

/*
 * Nonzero once the worker is stopping gracefully (SPEC.md 4.4) and this
 * task's response is the connection's last: no complete request waits
 * behind it.  It can turn on while the app runs (TERM), so the bridge
 * asks just before it writes the response headers and adds Connection:
 * close if so.  The field t->stopping holds the same flag (set at task
 * start, and updated atomically); this function is the race-free way to
 * read it.
 */
int wd_task_stopping(struct wd_task *t);

#endif
