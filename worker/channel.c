/*
 * channel.c - client connections: reading and parsing, request queue,
 * task hand-off, output buffers and back-pressure (see channel.h).
 *
 * Threads: everything static here runs on the loop thread, except the
 * wd_task_* output functions, which run on the pool thread serving the
 * channel's task.  The two meet only in the fields marked "under lock".
 * A pool thread sends on the socket itself when nothing is pending (one
 * sendmsg, no loop wake-up for a response that fits the socket buffer);
 * the loop flushes what is left.  Both send only under ch->lock, so bytes
 * stay in order, and the loop marks the channel disconnected under the
 * lock before it closes the socket.
 *
 * Invariants:
 *   - at most one task per channel (ch->task), and the queue holds the
 *     complete requests behind it, in arrival order;
 *   - the socket is read only while nothing is pending on output, the
 *     connection is not closing, and no more than channel_request_lookahead
 *     requests are queued or running (SPEC.md 5.1);
 *   - only the loop closes the socket; a channel whose task is in flight
 *     stays allocated until wd_task_done's notification arrives.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "channel.h"
#include "config.h"
#include "errors.h"
#include "http_parse.h"
#include "inline.h"
#include "response.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "pool.h"
#include "util.h"
#include "wd.h"

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Free a request pointer and forget it. */
#define WD_FREE_REQ(r) \
    do { \
        wd_http_request_free(r); \
        (r) = NULL; \
    } while (0)

/*
 * One entry of the output list: a buffer; a file range (sendfile); or
 * the caller's own memory, borrowed until sent (wd_task_writev_borrow).
 */
struct out_entry {
    struct out_entry *next;
    struct wd_buf *buf; /* NULL for a file range or borrowed memory */
    int fd;             /* file range: our dup, closed when sent */
    off_t off;
    uint64_t len;       /* file range, borrowed memory: bytes left */
    const char *ptr;    /* borrowed memory: the next byte to send */
    void (*release)(void *); /* borrowed memory: called once, when done */
    void *arg;
};

struct wd_channel {
    struct wd_channel *prev, *next; /* the loop's list */
    struct wd_loop *loop;           /* borrowed */
    const struct wd_loop_listener *lst; /* borrowed */
    int fd;                         /* -1 once closed */
    struct event *rev, *wev; /* wev: made on the first EAGAIN */
    int reading, writing; /* which events are added */
    int sndbuf;           /* send piece size (SO_SNDBUF) */
    char remote_addr[64];
    char remote_port[16];

    struct wd_http_request *req; /* being received, or NULL */
    struct wd_http_request **queue; /* complete, not yet dispatched */
    size_t qlen, qcap;
    struct wd_task *task; /* in flight, or NULL */
    int sent_continue;    /* 100 Continue sent for ch->req */
    int close_when_flushed;
    int linger;           /* input dropped, or seen and left unread:
                             drain before closing */
    int peek_unread;      /* a server-decided close: linger if bytes wait */
    int lingering;        /* half-closed, draining (see start_linger) */
    double linger_since;
    double last_activity;
    struct wd_mb_node mb;

    pthread_mutex_t lock;
    pthread_cond_t drained;     /* output at or below the watermark */
    struct out_entry *out_head; /* under lock */
    struct out_entry *out_tail; /* under lock */
    uint64_t total_out;         /* under lock: bytes pending */
    uint64_t current_count;     /* under lock: bytes into the tail buffer */
    struct wd_conn_gone *gone;  /* under lock; NULL until asked for */
    int connected;              /* under lock: 0 once closed */
    int sfd;                    /* the socket, for senders: valid while
                                   connected (the loop clears connected
                                   under lock before it closes) */
};

/* ------------------------------------------------------------------ */
/* output list (callers hold ch->lock)                                 */

static void
entry_free(struct out_entry *e)
{
    if (e->buf != NULL)
        wd_buf_free(e->buf);
    else if (e->fd >= 0)
        close(e->fd);
    else if (e->release != NULL)
        e->release(e->arg);
    free(e);
}

static void
out_clear(struct wd_channel *ch)
{
    struct out_entry *e, *n;

    for (e = ch->out_head; e != NULL; e = n) {
        n = e->next;
        entry_free(e);
    }
    ch->out_head = ch->out_tail = NULL;
    ch->total_out = 0;
    ch->current_count = 0;
}

static void
out_link(struct wd_channel *ch, struct out_entry *e)
{
    if (ch->out_tail != NULL)
        ch->out_tail->next = e;
    else
        ch->out_head = e;
    ch->out_tail = e;
}

/* Append a file range or borrowed memory (E->len bytes); later bytes go
 * to a fresh buffer after it. */
static void
out_push_range(struct wd_channel *ch, struct out_entry *e)
{
    out_link(ch, e);
    ch->total_out += e->len;
    ch->current_count = 0;
}

/*
 * A fresh buffer starts past outbuf_high_watermark bytes, after a file
 * range, and at each new request (current_count forced to the
 * watermark), so a long keep-alive connection releases its buffers.
 */
static int
out_append(struct wd_channel *ch, const void *data, size_t len)
{
    const struct wd_config *cfg = ch->loop->cfg;
    struct out_entry *e = ch->out_tail;

    if (e == NULL || e->buf == NULL ||
        ch->current_count >= (uint64_t)cfg->outbuf_high_watermark) {
        if ((e = calloc(1, sizeof *e)) == NULL)
            return -1;
        e->fd = -1;
        e->buf = wd_buf_new(wd_buf_overflow_of(cfg->outbuf_overflow));
        if (e->buf == NULL) {
            free(e);
            return -1;
        }
        out_link(ch, e);
        ch->current_count = 0;
    }
    if (wd_buf_append(e->buf, data, len) != 0)
        return -1;
    ch->current_count += len;
    ch->total_out += len;
    return 0;
}

static uint64_t
pending_output(struct wd_channel *ch)
{
    uint64_t n;

    pthread_mutex_lock(&ch->lock);
    n = ch->total_out;
    pthread_mutex_unlock(&ch->lock);
    return n;
}

/* ------------------------------------------------------------------ */
/* lifetime                                                            */

static void
free_request_queue(struct wd_channel *ch)
{
    for (size_t i = 0; i < ch->qlen; i++)
        wd_http_request_free(ch->queue[i]);
    ch->qlen = 0;
}

static void
free_task(struct wd_task *t)
{
    wd_http_request_free(t->req);
    free(t->remote_user);
    free(t->log_remote_addr);
    free(t);
}

static void
free_channel(struct wd_channel *ch)
{
    struct wd_loop *l = ch->loop;

    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        l->channels = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    free_request_queue(ch);
    free(ch->queue);
    wd_http_request_free(ch->req);
    pthread_mutex_lock(&ch->lock);
    out_clear(ch);
    pthread_mutex_unlock(&ch->lock);
    wd_conn_gone_release(ch->gone);
    pthread_cond_destroy(&ch->drained);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
    l->nchannels--;
    wd_loop_channel_freed(l);
}

void
wd_channel_close(struct wd_channel *ch)
{
    if (ch->fd >= 0) {
        /* first tell senders (a pool thread may send directly) and wake
           a thread waiting for room: both see connected == 0 */
        pthread_mutex_lock(&ch->lock);
        ch->connected = 0;
        if (ch->gone != NULL)
            __atomic_store_n(&ch->gone->gone, 1, __ATOMIC_RELAXED);
        out_clear(ch);
        pthread_cond_broadcast(&ch->drained);
        pthread_mutex_unlock(&ch->lock);

        event_free(ch->rev);
        if (ch->wev != NULL)
            event_free(ch->wev);
        ch->rev = ch->wev = NULL;
        ch->reading = ch->writing = 0;
        close(ch->fd);
        ch->fd = -1;

        free_request_queue(ch);
        WD_FREE_REQ(ch->req);
        wd_loop_channel_closed(ch->loop);
    }
    if (ch->task == NULL)
        free_channel(ch);
}

/* ------------------------------------------------------------------ */
/* events                                                              */

static int
readable(struct wd_channel *ch, uint64_t pending)
{
    size_t inflight = ch->qlen + (ch->task != NULL);

    return !ch->close_when_flushed && pending == 0 &&
           inflight <= (size_t)ch->loop->cfg->channel_request_lookahead;
}

/*
 * The lingering close.  A socket closed with received bytes unread makes
 * the kernel answer with RST and drop whatever of the response it has
 * not sent yet; bytes arriving after the close do the same.  So when the
 * client sent (or may be sending) more than it will get an answer to --
 * a pipelined request behind a closing response, a body an early error
 * did not read -- the response is ended with a FIN (shutdown SHUT_WR),
 * and what arrives is read and dropped until the client's EOF, a pause
 * of LINGER_IDLE or LINGER_MAX in all (nginx's lingering_close).
 */
enum { LINGER_IDLE_S = 2, LINGER_MAX_S = 30 };

/* After a close the client did not ask for: bytes received and not read,
   or response bytes the client has not acknowledged yet (its next request
   may still come and would reset them).  Two ioctls, only on such closes:
   a close-per-request client pays nothing. */
static int
may_be_cut(struct wd_channel *ch)
{
    int n = 0;

    if (ioctl(ch->fd, FIONREAD, &n) == 0 && n > 0)
        return 1;
    return ioctl(ch->fd, TIOCOUTQ, &n) == 0 && n > 0; /* SIOCOUTQ */
}

static void
start_linger(struct wd_channel *ch)
{
    struct timeval idle = {LINGER_IDLE_S, 0};

    shutdown(ch->fd, SHUT_WR);
    ch->lingering = 1;
    ch->linger_since = wd_loop_now();
    if (ch->writing) {
        event_del(ch->wev);
        ch->writing = 0;
    }
    /* read_cb drops what comes; the timeout ends a silent client */
    event_add(ch->rev, &idle);
    ch->reading = 1;
}

/* A lingering channel's read event: drop input; close on EOF, error,
   silence or the overall limit.  1 when CH was closed. */
static int
linger_read(struct wd_channel *ch, short what)
{
    struct wd_loop *l = ch->loop;

    if ((what & EV_TIMEOUT) ||
        wd_loop_now() - ch->linger_since > LINGER_MAX_S) {
        wd_channel_close(ch);
        return 1;
    }
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(ch->fd, l->rbuf, l->rbuf_len, 0);

        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                      errno == EINTR))
            return 0;
        wd_channel_close(ch); /* EOF or an error: done */
        return 1;
    }
    return 0;
}

/*
 * Bring the events in line with the state, and close the socket when a
 * closing response has been flushed.  Returns 1 when CH was closed (and
 * may be gone).
 *
 * The read event is removed lazily: it stays added while a task runs,
 * and only when it fires while the channel may not read (SPEC.md 5.1:
 * pipelined bytes or an EOF during a task) does read_cb remove it.  Most
 * requests thus cost no epoll_ctl at all instead of two.
 */
static int
update(struct wd_channel *ch)
{
    uint64_t pending;

    if (ch->fd < 0)
        return 0;
    if (ch->lingering)
        return 0;
    pending = pending_output(ch);
    if (pending == 0 && ch->close_when_flushed && ch->task == NULL) {
        if (ch->linger || (ch->peek_unread && may_be_cut(ch))) {
            start_linger(ch);
            return 0;
        }
        wd_channel_close(ch);
        return 1;
    }
    if (!ch->reading && readable(ch, pending)) {
        event_add(ch->rev, NULL);
        ch->reading = 1;
    }
    if (pending == 0 && ch->writing) {
        event_del(ch->wev);
        ch->writing = 0;
    }
    return 0;
}

static int
quiet_errno(int err)
{
    return err == ECONNRESET || err == ENOTCONN || err == ESHUTDOWN ||
           err == ECONNABORTED || err == EPIPE || err == EBADF;
}

static void write_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Send as much pending output as the socket takes.  Arms EV_WRITE only on
 * EAGAIN.  Returns 0, or -1 after a send error (the caller closes).
 */
static int
flush_output(struct wd_channel *ch)
{
    const struct wd_config *cfg = ch->loop->cfg;
    int sent_any = 0, blocked = 0, err = 0, internal = 0;
    uint64_t sent = 0;
    struct out_entry *e;
    ssize_t n;

    pthread_mutex_lock(&ch->lock);
    while ((e = ch->out_head) != NULL) {
        size_t piece;

        if (e->buf == NULL) {
            if (e->len == 0) {
                ch->out_head = e->next;
                if (ch->out_head == NULL)
                    ch->out_tail = NULL;
                entry_free(e);
                continue;
            }
            piece = e->len < (uint64_t)ch->sndbuf ? (size_t)e->len : (size_t)ch->sndbuf;
            if (e->fd < 0) {
                /* borrowed memory: straight from the caller's bytes */
                n = send(ch->fd, e->ptr, piece, MSG_NOSIGNAL);
                if (n > 0)
                    e->ptr += n;
            } else {
                n = sendfile(ch->fd, e->fd, &e->off, piece);
                if (n == 0) {
                    /* the file shrank: the promised length cannot be
                       sent */
                    internal = 1;
                    break;
                }
            }
            if (n > 0)
                e->len -= n;
        } else {
            uint64_t avail = wd_buf_len(e->buf);
            const void *ptr;
            int ffd;
            off_t off;
            ssize_t r;

            if (avail == 0) {
                if (e == ch->out_tail)
                    break;
                ch->out_head = e->next;
                entry_free(e);
                continue;
            }
            r = wd_buf_peek(e->buf, &ptr, &ffd, &off);
            if (r < 0) {
                internal = 1;
                break;
            }
            if (r > 0) {
                piece = (size_t)r < (size_t)ch->sndbuf ? (size_t)r
                                                       : (size_t)ch->sndbuf;
                n = send(ch->fd, ptr, piece, MSG_NOSIGNAL);
            } else {
                piece = avail < (uint64_t)ch->sndbuf ? (size_t)avail : (size_t)ch->sndbuf;
                n = sendfile(ch->fd, ffd, &off, piece);
                if (n == 0) {
                    internal = 1;
                    break;
                }
            }
            if (n > 0 && wd_buf_skip(e->buf, (uint64_t)n) != 0) {
                internal = 1;
                break;
            }
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                blocked = 1;
            else
                err = errno;
            break;
        }
        ch->total_out -= (uint64_t)n;
        sent += (uint64_t)n;
        sent_any = 1;
    }
    if (ch->total_out <= (uint64_t)cfg->outbuf_high_watermark)
        pthread_cond_broadcast(&ch->drained);
    pthread_mutex_unlock(&ch->lock);

    if (sent_any) {
        ch->last_activity = wd_loop_now();
        wd_loop_add_bytes(ch->loop, 0, sent);
    }
    if (internal) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
               "Unexpected exception when flushing: %s", strerror(errno));
        return -1;
    }
    if (err != 0) {
        if (!quiet_errno(err) && cfg->log_socket_errors)
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "Socket error: send: %s",
                   strerror(err));
        return -1;
    }
    if (blocked && !ch->writing) {
        /* most connections never fill the socket buffer: the write
           event is made the first time one does */
        if (ch->wev == NULL &&
            (ch->wev = event_new(ch->loop->base, ch->fd,
                                 EV_WRITE | EV_PERSIST, write_cb,
                                 ch)) == NULL) {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
                   "cannot wait for the socket: out of memory");
            return -1;
        }
        event_add(ch->wev, NULL);
        ch->writing = 1;
    }
    return 0;
}

/*
 * Flush, hand on a request that waited for the output to drain below the
 * watermark, then update the events.  1 when CH was closed (may be gone).
 */
static void dispatch(struct wd_channel *ch);

static int
flush_and_update(struct wd_channel *ch)
{
    if (ch->fd < 0)
        return 0;
    if (flush_output(ch) != 0) {
        wd_channel_close(ch);
        return 1;
    }
    if (ch->task == NULL && ch->qlen > 0 && !ch->close_when_flushed) {
        dispatch(ch);
        if (flush_output(ch) != 0) {
            wd_channel_close(ch);
            return 1;
        }
    }
    return update(ch);
}

/* ------------------------------------------------------------------ */
/* requests                                                            */

static const char *
header_or_null(const struct wd_http_request *r, const char *name,
               size_t *len)
{
    *len = 0;
    if (r == NULL || r->headers == NULL)
        return NULL;
    return wd_http_request_header(r, name, len);
}

static void
log_access(struct wd_channel *ch, const struct wd_http_request *r,
           const char *remote_addr, const char *remote_user,
           size_t remote_user_len, int status,
           uint64_t bytes)
{
    struct wd_access_rec rec;

    if (!wd_log_access_enabled())
        return;
    memset(&rec, 0, sizeof rec);
    rec.remote_addr = remote_addr != NULL ? remote_addr : ch->remote_addr;
    rec.remote_user = remote_user;
    rec.remote_user_len = remote_user_len;
    if (r != NULL && r->request_line != NULL) {
        rec.request_line = r->request_line;
        rec.request_line_len = r->request_line_len;
    }
    rec.status = status;
    rec.bytes = bytes;
    rec.referer = header_or_null(r, "REFERER", &rec.referer_len);
    rec.user_agent = header_or_null(r, "USER_AGENT", &rec.user_agent_len);
    rec.when = time(NULL);
    wd_log_access(&rec);
}

/* The client itself ends the connection after R: it asked for the close,
 * or spoke HTTP/1.0 without keep-alive.  It sends nothing more (RFC 9112
 * 9.6), so a close after R's response need not look for more input. */
static int
client_closes(const struct wd_http_request *r)
{
    const char *c = r != NULL ? r->connection : NULL;
    size_t n = c != NULL ? strlen(c) : 0;

    /* the comparison the response's own keep-alive decision uses */
    if (c != NULL && WD_RESPONSE_NAME_IS(c, n, "close"))
        return 1;
    return r != NULL && !r->http11 &&
           (c == NULL || !WD_RESPONSE_NAME_IS(c, n, "keep-alive"));
}

/* Forget everything queued behind a response that closes (SPEC.md 5.2). */
static void
close_after_flush(struct wd_channel *ch)
{
    ch->close_when_flushed = 1;
    /* the client sent more than will be answered: it may still be
       sending, and a close with input unread resets the connection */
    if (ch->qlen > 0 || ch->req != NULL)
        ch->linger = 1;
    free_request_queue(ch);
    WD_FREE_REQ(ch->req);
}

static void
start_new_output_buffer(struct wd_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    if (ch->current_count > 0)
        ch->current_count = (uint64_t)ch->loop->cfg->outbuf_high_watermark;
    pthread_mutex_unlock(&ch->lock);
}

/* The loop answers parse errors itself (SPEC.md 14); then the close. */
static void
answer_error(struct wd_channel *ch, struct wd_http_request *r)
{
    const struct wd_config *cfg = ch->loop->cfg;
    size_t len = 0, body_len = 0;
    char *resp;
    int rc = -1;

    resp = wd_error_response_n(r->error_status, r->error_detail,
                               r->error_detail_len, cfg->ident,
                               r->error_http11, time(NULL), &len, &body_len);
    start_new_output_buffer(ch);
    if (resp != NULL) {
        pthread_mutex_lock(&ch->lock);
        rc = out_append(ch, resp, len);
        pthread_mutex_unlock(&ch->lock);
        free(resp);
    }
    if (rc != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
               "cannot queue the %d error response: out of memory",
               r->error_status);
    log_access(ch, r, NULL, NULL, 0, r->error_status,
               rc == 0 ? body_len : 0);
    /* the client may still be sending the request's body (a 413 goes
       out before it is read) */
    ch->linger = 1;
    wd_loop_request_done(ch->loop);
    ch->last_activity = wd_loop_now();
    close_after_flush(ch);
    /* the records that explain the error are written before the client
       can read the answer, not at the end of the loop's iteration */
    wd_log_flush();
}

static struct wd_http_request *
queue_pop(struct wd_channel *ch)
{
    struct wd_http_request *r = ch->queue[0];

    ch->qlen--;
    memmove(ch->queue, ch->queue + 1, ch->qlen * sizeof *ch->queue);
    return r;
}

static int
queue_push(struct wd_channel *ch, struct wd_http_request *r)
{
    if (ch->qlen == ch->qcap) {
        size_t ncap = ch->qcap ? ch->qcap * 2 : 4;
        struct wd_http_request **q = realloc(ch->queue, ncap * sizeof *q);

        if (q == NULL)
            return -1;
        ch->queue = q;
        ch->qcap = ncap;
    }
    ch->queue[ch->qlen++] = r;
    return 0;
}

/* Queued requests that will still be answered: none from a request
   dropped for its authority on (it closes the connection at its turn). */
static size_t
answered_queued(const struct wd_channel *ch)
{
    size_t n = 0;

    while (n < ch->qlen && !ch->queue[n]->drop_connection)
        n++;
    return n;
}

static void
start_task(struct wd_channel *ch, struct wd_http_request *r)
{
    struct wd_loop *l = ch->loop;
    struct wd_task *t;

    if ((t = calloc(1, sizeof *t)) == NULL) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot create a task: %s",
               strerror(errno));
        wd_http_request_free(r);
        close_after_flush(ch);
        return;
    }
    t->ch = ch;
    t->req = r;
    t->cfg = l->cfg;
    t->remote_addr = ch->remote_addr;
    t->remote_port = ch->remote_port;
    t->server_port = (char *)ch->lst->server_port;
    t->start = time(NULL);
    t->stopping = l->stopping && answered_queued(ch) == 0;
    start_new_output_buffer(ch);
    ch->task = t;
    l->ntasks++;
    if (l->inl != NULL && wd_inline_take(l->inl, t))
        wd_loop_task_posted(l);
    else
        wd_task_post(t);
}

/*
 * Hand the next queued request on: errors are answered here, others go
 * to the pool.  Waits (returns) while the output is above the watermark.
 */
static void
dispatch(struct wd_channel *ch)
{
    const struct wd_config *cfg = ch->loop->cfg;

    while (ch->task == NULL && ch->qlen > 0 && !ch->close_when_flushed &&
           ch->fd >= 0) {
        struct wd_http_request *r;

        if (pending_output(ch) > (uint64_t)cfg->outbuf_high_watermark)
            return; /* retried after the next flush */
        r = queue_pop(ch);
        if (r->drop_connection) {
            /* waitress lets urlsplit's error escape: no response at all;
               at its turn, close once the answers before it are sent */
            wd_http_request_free(r);
            close_after_flush(ch);
            return;
        }
        if (r->error_status != 0) {
            answer_error(ch, r);
            wd_http_request_free(r);
            return;
        }
        start_task(ch, r);
    }
}

static void
send_continue(struct wd_channel *ch)
{
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = out_append(ch, continue_line, sizeof continue_line - 1);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        ch->sent_continue = 1;
}

/*
 * SPEC.md 9, with its DEVIATION: only a request that waits for a body and
 * has not failed (the parser decides), and only when nothing is pending
 * before it, so responses stay in order.
 */
static void
maybe_send_continue(struct wd_channel *ch)
{
    struct wd_http_request *r = ch->req;

    if (r != NULL && wd_http_request_wants_continue(r) &&
        !ch->sent_continue && ch->task == NULL && ch->qlen == 0 &&
        !ch->close_when_flushed)
        send_continue(ch);
}

/*
 * The parser could not store R (out of memory, or the body's temp file
 * cannot grow: ENOSPC, EFBIG).  R becomes a 500 answered in its turn,
 * after the responses before it, and the connection then closes; the
 * partial body is released at once (issue 7).  0, or -1 when even the
 * queue cannot grow (the caller drops the connection).
 */
static int
fail_unstored(struct wd_channel *ch, struct wd_http_request *r)
{
    static const char detail[] = "The request could not be stored.";

    ch->req = NULL;
    ch->sent_continue = 0;
    r->error_http11 = r->state != WD_REQ_HEAD && r->http11;
    r->state = WD_REQ_DONE;
    r->error_status = 500;
    free(r->error_detail);
    r->error_detail = strdup(detail); /* NULL: answered without detail */
    r->error_detail_len = r->error_detail != NULL ? sizeof detail - 1 : 0;
    wd_buf_free(r->body);
    r->body = NULL;
    if (queue_push(ch, r) != 0) {
        wd_http_request_free(r);
        return -1;
    }
    return 0;
}

/*
 * After bytes were fed to R (ch->req): answer Expect, and queue R once it
 * is complete.  0 to go on, 1 when nothing after it may be parsed (a
 * failed request, 19.8, a dropped one among them), -1 when the queue
 * cannot grow (R is freed).
 */
static int
settle(struct wd_channel *ch, struct wd_http_request *r)
{
    int failed = r->error_status != 0;

    maybe_send_continue(ch);
    if (r->state != WD_REQ_DONE)
        return 0;
    ch->req = NULL;
    ch->sent_continue = 0;
    if (r->empty && !failed) {
        wd_http_request_free(r);
        return 0;
    }
    if (queue_push(ch, r) != 0) {
        wd_http_request_free(r);
        return -1;
    }
    return failed;
}

static void
parser_oom(struct wd_channel *ch)
{
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "request parser: out of memory");
    close_after_flush(ch);
}

/* Feed received bytes to the parser, queueing what completes. */
static void
received(struct wd_channel *ch, const char *data, size_t len)
{
    const struct wd_loop *l = ch->loop;

    while (len > 0 && !ch->close_when_flushed) {
        struct wd_http_request *r;
        ssize_t n;
        int done, rc;

        if (ch->req == NULL && (ch->req = wd_http_request_new()) == NULL) {
            parser_oom(ch);
            break;
        }
        r = ch->req;
        n = wd_http_request_feed(r, data, len, &l->limits);
        if (n < 0) {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
                   "cannot store the request: %s", strerror(errno));
            if (fail_unstored(ch, r) != 0)
                parser_oom(ch);
            break;
        }
        done = r->state == WD_REQ_DONE;
        if ((rc = settle(ch, r)) != 0) {
            if (rc < 0)
                parser_oom(ch);
            break;
        }
        /* a request not done takes everything it is given */
        if ((size_t)n >= len || !done)
            break;
        data += n;
        len -= (size_t)n;
    }
}

/*
 * Read once and handle what came.  READ_AGAIN: nothing to read yet;
 * READ_GONE: the connection was closed (CH may be gone); READ_DONE: the
 * bytes were handled and the events brought in line (update).
 */
enum { READ_DONE, READ_AGAIN, READ_GONE };

static int
read_once(struct wd_channel *ch)
{
    struct wd_loop *l = ch->loop;
    char *body = NULL;
    ssize_t n;

    /* the middle of a long body is received straight into its buffer */
    if (ch->req != NULL && !ch->close_when_flushed)
        body = wd_http_request_body_room(ch->req, l->rbuf_len);
    n = recv(ch->fd, body != NULL ? body : l->rbuf, l->rbuf_len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return READ_AGAIN;
        if (!quiet_errno(errno) && l->cfg->log_socket_errors)
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "Socket error: recv: %s",
                   strerror(errno));
        wd_channel_close(ch);
        return READ_GONE;
    }
    if (n == 0) {
        /* EOF: close at once and drop pending output (SPEC.md 5.1) */
        wd_channel_close(ch);
        return READ_GONE;
    }
    ch->last_activity = wd_loop_now();
    ch->linger = 0; /* what the event saw waiting has been read */
    wd_loop_add_bytes(l, (uint64_t)n, 0);
    if (body != NULL) {
        wd_http_request_body_commit(ch->req, (size_t)n);
        if (settle(ch, ch->req) < 0)
            parser_oom(ch);
    } else {
        received(ch, l->rbuf, (size_t)n);
    }
    dispatch(ch);
    return flush_and_update(ch) ? READ_GONE : READ_DONE;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_channel *ch = arg;

    if (ch->lingering) {
        linger_read(ch, what);
        return;
    }
    if (!readable(ch, pending_output(ch))) {
        /* the lazy removal (see update); level-triggered, so the bytes
           are still there when update adds the event back.  Bytes (or an
           EOF) are waiting: a close now would have to linger. */
        event_del(ch->rev);
        ch->reading = 0;
        ch->linger = 1;
        return;
    }
    read_once(ch);
}

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
    flush_and_update(arg);
}

/* ------------------------------------------------------------------ */
/* task completion                                                     */

static void
task_finished(struct wd_channel *ch)
{
    struct wd_loop *l = ch->loop;
    struct wd_task *t = ch->task;
    int close_conn;

    ch->task = NULL;
    l->ntasks--;
    if (t->app_exception)
        wd_loop_add_exception(l);
    wd_loop_request_done(l);
    log_access(ch, t->req, t->log_remote_addr, t->remote_user,
               t->remote_user_len, t->status, t->body_bytes);
    /* a response that went out keep-alive keeps the connection even when
       a TERM came meanwhile: closing it would race with the client's next
       request (SPEC.md 4.4 b); the stop sweep closes it once idle */
    close_conn = t->close_after;
    if (close_conn && !client_closes(t->req))
        ch->peek_unread = 1;
    free_task(t);

    if (ch->fd < 0) {
        free_channel(ch);
        return;
    }
    ch->last_activity = wd_loop_now();
    if (close_conn) {
        close_after_flush(ch);
    } else {
        dispatch(ch);
        maybe_send_continue(ch);
    }
    flush_and_update(ch);
}

void
wd_channel_mailbox_cb(struct wd_mb_node *node, unsigned flags, void *arg)
{
    struct wd_channel *ch =
        (struct wd_channel *)((char *)node - offsetof(struct wd_channel, mb));

    if (flags & WD_MB_OUTPUT) {
        if (ch->fd >= 0 && flush_output(ch) != 0)
            wd_channel_close(ch); /* kept: a task is in flight */
        else if (ch->fd >= 0 && !(flags & WD_MB_DONE))
            update(ch);
    }
    if (flags & WD_MB_DONE)
        task_finished(ch);
}

void
wd_task_post(struct wd_task *t)
{
    struct wd_loop *l = t->ch->loop;

    wd_pool_post(l->pool, t);
    wd_loop_task_posted(l);
}

void
wd_task_finish(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;

    /* output the task posted is still queued: finishing here could free
       the channel under the queued node, so the loop's callback finishes
       it after the output, as for a pool thread's task */
    if (wd_mailbox_merge(ch->loop->mailbox, &ch->mb, WD_MB_DONE))
        return;
    task_finished(ch);
}

void
wd_task_done(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;

    wd_mailbox_post(ch->loop->mailbox, &ch->mb, WD_MB_DONE);
}

void
wd_task_discard(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;

    ch->task = NULL;
    ch->loop->ntasks--;
    free_task(t);
}

/* ------------------------------------------------------------------ */
/* the task.h output functions (pool thread)                          */

static void
notify_output(struct wd_channel *ch, uint64_t pending)
{
    /* send_bytes (deprecated): attempt output once this much is pending */
    if (pending >= (uint64_t)ch->loop->cfg->send_bytes)
        wd_mailbox_post(ch->loop->mailbox, &ch->mb, WD_MB_OUTPUT);
}

/*
 * A write after the task's first goes straight to the socket only from
 * this size on: a generator's small chunks, one sendmsg each, cost 35%
 * of gen-100x1k's throughput; buffered, the loop sends them in batches.
 */
#define WD_DIRECT_SEND_MIN 16384

/* Borrowed rather than copied from this size on (the entry costs a
 * malloc and the release a hand-back to a GIL holder). */
#define WD_BORROW_MIN 16384

int
wd_task_write(struct wd_task *t, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};

    return wd_task_writev(t, &iov, 1);
}

/* Under ch->lock: keep LEN bytes at PTR by reference (see task.h). */
static int
out_borrow(struct wd_channel *ch, const char *ptr, size_t len,
           void (*release)(void *), void *arg)
{
    struct out_entry *e = calloc(1, sizeof *e);

    if (e == NULL)
        return -1;
    e->fd = -1;
    e->ptr = ptr;
    e->len = len;
    e->release = release;
    e->arg = arg;
    out_push_range(ch, e);
    return 0;
}

int
wd_task_writev(struct wd_task *t, const struct iovec *iov, int iovcnt)
{
    return wd_task_writev_borrow(t, iov, iovcnt, -1, NULL, NULL, NULL);
}

int
wd_task_writev_borrow(struct wd_task *t, const struct iovec *iov,
                      int iovcnt, int keep, void (*release)(void *),
                      void *arg, int *kept)
{
    struct wd_channel *ch = t->ch;
    size_t total = 0, skip = 0, sent = 0;
    uint64_t pending;
    int rc = 0, direct;

    if (kept != NULL)
        *kept = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    pthread_mutex_lock(&ch->lock);
    if (!ch->connected) {
        pthread_mutex_unlock(&ch->lock);
        return -1;
    }
    if (ch->total_out > (uint64_t)t->cfg->outbuf_high_watermark) {
        pthread_mutex_unlock(&ch->lock);
        return WD_AGAIN;
    }
    direct = ch->total_out == 0 && total >= (size_t)t->cfg->send_bytes &&
             (!t->wrote || total >= WD_DIRECT_SEND_MIN);
    t->wrote = 1;
    if (direct) {
        /* nothing pending before these bytes (the loop keeps its
           drained last buffer for reuse, so the list need not be
           empty), and the loop's flush holds the lock while it sends:
           order is kept (SPEC.md 5.3) */
        struct msghdr mh = {.msg_iov = (struct iovec *)iov,
                            .msg_iovlen = (size_t)iovcnt};
        ssize_t n;

        do
            n = sendmsg(ch->sfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        /* EAGAIN, or an error the loop's own send will meet and handle
           (it closes; only the loop closes): queue everything */
        if (n > 0)
            sent = skip = (size_t)n;
    }
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        size_t len = iov[i].iov_len;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (i == keep && kept != NULL && len - skip >= WD_BORROW_MIN &&
            ch->total_out + len <=
                wd_buf_overflow_of(t->cfg->outbuf_overflow)) {
            /* within outbuf_overflow: past it SPEC.md 15 moves pending
               output to a temp file, which bounds what many slow
               readers hold in memory.  What a borrow holds is the whole
               object, the part already sent included. */
            rc = out_borrow(ch, (const char *)iov[i].iov_base + skip,
                            len - skip, release, arg);
            *kept = rc == 0;
        } else {
            rc = out_append(ch, (const char *)iov[i].iov_base + skip,
                            len - skip);
        }
        skip = 0;
    }
    pending = ch->total_out;
    pthread_mutex_unlock(&ch->lock);
    if (rc != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "output buffer: %s",
               strerror(errno));
        return -1;
    }
    if (sent > 0)
        wd_loop_add_bytes(ch->loop, 0, sent);
    if (pending > 0)
        notify_output(ch, pending);
    return 0;
}

int
wd_task_write_file(struct wd_task *t, int fd, off_t off, uint64_t len)
{
    struct wd_channel *ch = t->ch;
    struct out_entry *e;
    uint64_t pending;

    if (len == 0)
        return 0;
    if ((e = calloc(1, sizeof *e)) == NULL)
        return -1;
    if ((e->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(e);
        return -1;
    }
    e->off = off;
    e->len = len;
    pthread_mutex_lock(&ch->lock);
    if (!ch->connected ||
        ch->total_out > (uint64_t)t->cfg->outbuf_high_watermark) {
        int rc = ch->connected ? WD_AGAIN : -1;

        pthread_mutex_unlock(&ch->lock);
        entry_free(e);
        return rc;
    }
    out_push_range(ch, e);
    pending = ch->total_out;
    pthread_mutex_unlock(&ch->lock);
    notify_output(ch, pending);
    return 0;
}

int
wd_task_wait_writable(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;
    uint64_t hwm = (uint64_t)t->cfg->outbuf_high_watermark;
    int rc;

    pthread_mutex_lock(&ch->lock);
    if (ch->connected && ch->total_out > hwm) {
        /* make sure the loop is sending while we wait (a loop thread
           running this task inline hands the loop over first) */
        pthread_mutex_unlock(&ch->lock);
        wd_inline_blocking();
        wd_mailbox_post(ch->loop->mailbox, &ch->mb, WD_MB_OUTPUT);
        pthread_mutex_lock(&ch->lock);
    }
    while (ch->connected && ch->total_out > hwm)
        pthread_cond_wait(&ch->drained, &ch->lock);
    rc = ch->connected ? 0 : -1;
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

int
wd_task_client_disconnected(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;
    int gone;

    pthread_mutex_lock(&ch->lock);
    gone = !ch->connected;
    pthread_mutex_unlock(&ch->lock);
    return gone;
}

struct wd_conn_gone *
wd_task_conn_gone(struct wd_task *t)
{
    struct wd_channel *ch = t->ch;
    struct wd_conn_gone *g;

    pthread_mutex_lock(&ch->lock);
    if (ch->gone == NULL && (ch->gone = calloc(1, sizeof *ch->gone)) != NULL) {
        ch->gone->refs = 1; /* the channel's */
        ch->gone->gone = !ch->connected;
    }
    if ((g = ch->gone) != NULL)
        __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&ch->lock);
    return g;
}

void
wd_conn_gone_release(struct wd_conn_gone *g)
{
    if (g != NULL && __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(g);
}

int
wd_task_stopping(struct wd_task *t)
{
    return __atomic_load_n(&t->stopping, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* loop entry points                                                   */

struct wd_channel *
wd_channel_new(struct wd_loop *l, int fd, struct wd_loop_listener *lst,
               const char *remote_addr, const char *remote_port)
{
    struct wd_channel *ch;
    socklen_t slen;

    if ((ch = calloc(1, sizeof *ch)) == NULL)
        goto close_fd;
    if (pthread_mutex_init(&ch->lock, NULL) != 0)
        goto free_ch;
    if (pthread_cond_init(&ch->drained, NULL) != 0)
        goto destroy_lock;
    ch->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, read_cb, ch);
    if (ch->rev == NULL)
        goto free_events;
    /* an accepted socket starts with its listener's buffer size: asked
       once per listener, not once per connection */
    if (lst->sndbuf <= 0) {
        slen = sizeof lst->sndbuf;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &lst->sndbuf, &slen) != 0 ||
            lst->sndbuf <= 0)
            lst->sndbuf = 65536;
    }
    ch->sndbuf = lst->sndbuf;
    ch->loop = l;
    ch->lst = lst;
    ch->fd = fd;
    ch->sfd = fd;
    ch->connected = 1;
    wd_copy_str(ch->remote_addr, sizeof ch->remote_addr, remote_addr);
    wd_copy_str(ch->remote_port, sizeof ch->remote_port, remote_port);
    ch->last_activity = wd_loop_now();
    /* the read event is added by wd_channel_start */

    ch->next = l->channels;
    if (l->channels != NULL)
        l->channels->prev = ch;
    l->channels = ch;
    l->nchannels++;
    return ch;

free_events:
    if (ch->rev != NULL)
        event_free(ch->rev);
    if (ch->wev != NULL)
        event_free(ch->wev);
    pthread_cond_destroy(&ch->drained);
destroy_lock:
    pthread_mutex_destroy(&ch->lock);
free_ch:
    free(ch);
close_fd:
    close(fd);
    return NULL;
}

void
wd_channel_start(struct wd_channel *ch)
{
    /* A client usually sends its request right behind the handshake: by
       the time the loop accepts, it is mostly there.  Reading it at once
       saves the wait for the loop's next turn, and a connection served
       and closed within this turn never enters epoll (no EPOLL_CTL_ADD,
       no EPOLL_CTL_DEL before close) */
    if (read_once(ch) == READ_AGAIN)
        update(ch);
}

int
wd_channel_sweep(struct wd_channel *ch, double idle_since, int stopping)
{
    if (ch->fd < 0 || ch->task != NULL || ch->qlen > 0)
        return 0;
    if (stopping && pending_output(ch) > 0)
        return 0; /* a response still going out: closed after its flush */
    /* a request partly received may finish arriving (SPEC.md 4.4 d):
       only channel_timeout or the master's deadline ends it */
    if (stopping && ch->req != NULL)
        return 0;
    if (ch->last_activity >= idle_since)
        return 0;
    wd_channel_close(ch);
    return 1;
}

/*
 * A graceful stop began: the running task's response closes the
 * connection -- unless complete requests wait behind it, which are served
 * first (SPEC.md 4.4 c); the last of them closes it (start_task).
 */
void
wd_channel_stop(struct wd_channel *ch)
{
    if (ch->task != NULL && answered_queued(ch) == 0)
        __atomic_store_n(&ch->task->stopping, 1, __ATOMIC_RELAXED);
}

struct wd_channel *
wd_channel_next(const struct wd_channel *ch)
{
    return ch->next;
}

enum wd_channel_state
wd_channel_state(struct wd_channel *ch)
{
    if (ch->fd < 0)
        return WD_CH_CLOSED;
    if (ch->task != NULL)
        return WD_CH_RUNNING;
    if (ch->qlen > 0)
        return WD_CH_QUEUED;
    if (pending_output(ch) > 0)
        return WD_CH_WRITING;
    if (ch->req != NULL && ch->req->state == WD_REQ_BODY)
        return WD_CH_READ_BODY;
    return WD_CH_READ_HEAD;
}
