/*
 * stats.c - the stats endpoint (see stats.h).
 *
 * Connections are few and small: each one reads into a fixed 8 KiB
 * buffer until the head is complete, the buffer is full, the peer shuts
 * its side or 2 s pass, then writes the whole answer and closes.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "stats.h"
#include "uri.h"
#include "util.h"

#define HEAD_MAX 8192
#define READ_SECONDS 2
#define WRITE_SECONDS 10
/* Connections served at once; the rest wait in the listen queue.  A
 * flood of silent clients must not take the descriptors the master
 * needs to respawn workers. */
#define MAX_CONNS 32
#define ACCEPT_PAUSE_MS 100 /* after accept() failed for want of fds */

/* ------------------------------------------------------------------ */
/* a growing string                                                    */

struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 1024;

        while (ncap - b->len <= (size_t)n)
            ncap *= 2;
        char *np = realloc(b->p, ncap);

        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* S as a JSON string (quotes included). */
static void
sb_json_str(struct sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c < 0x20)
            sb_printf(b, "\\u%04x", c);
        else
            sb_printf(b, "%c", c);
    }
    sb_printf(b, "\"");
}

/* S as a Prometheus label value (quotes included). */
static void
sb_label(struct sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\"");
}

static char *
sb_finish(struct sbuf *b, size_t *len)
{
    if (b->failed || b->p == NULL) {
        free(b->p);
        return NULL;
    }
    *len = b->len;
    return b->p;
}

/* ------------------------------------------------------------------ */
/* renderers                                                           */

char *
wd_stats_json(const struct wd_stats_snap *s, size_t *len)
{
    struct sbuf b = {0};

    sb_printf(&b, "{\"version\": ");
    sb_json_str(&b, s->version != NULL ? s->version : "");
    sb_printf(&b,
              ", \"pid\": %ld, \"start_time\": %lld, \"uptime\": %.1f, "
              "\"reloads\": %u, \"generation\": %u, "
              "\"workers_target\": %d, \"listen\": [",
              s->pid, (long long)s->start_time, s->uptime, s->reloads,
              s->generation, s->workers_target);
    for (size_t i = 0; i < s->nlisten; i++) {
        if (i > 0)
            sb_printf(&b, ", ");
        sb_json_str(&b, s->listen[i]);
    }
    sb_printf(&b, "], \"listen_queue\": [");
    for (size_t i = 0; i < s->nlisten; i++) {
        if (i > 0)
            sb_printf(&b, ", ");
        if (s->listen_queue == NULL || s->listen_queue[i] < 0)
            sb_printf(&b, "null");
        else
            sb_printf(&b, "%ld", s->listen_queue[i]);
    }
    sb_printf(&b,
              "], \"workers_spawned\": %llu, \"workers_timed_out\": %llu, "
              "\"requests\": %llu, \"workers\": [",
              (unsigned long long)s->workers_spawned,
              (unsigned long long)s->workers_timed_out,
              (unsigned long long)s->requests);
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct wd_stats_worker *w = &s->workers[i];

        sb_printf(&b, "%s{\"id\": %d, \"pid\": %ld, \"generation\": %u, "
                      "\"status\": ",
                  i > 0 ? ", " : "", w->id, w->pid, w->generation);
        sb_json_str(&b, w->status != NULL ? w->status : "booting");
        sb_printf(&b,
                  ", \"started_at\": %lld, \"requests\": %llu, "
                  "\"active_requests\": %u, \"queued_requests\": %u, "
                  "\"connections\": %u, \"threads\": %u, "
                  "\"busy_threads\": %u, \"bytes_sent\": %llu, "
                  "\"exceptions\": %llu, \"last_heartbeat\": %.1f, "
                  "\"respawns\": %u}",
                  (long long)w->started_at, (unsigned long long)w->requests,
                  w->active_requests, w->queued_requests, w->connections,
                  w->threads, w->busy_threads,
                  (unsigned long long)w->bytes_sent,
                  (unsigned long long)w->exceptions, w->last_heartbeat,
                  w->respawns);
    }
    sb_printf(&b, "]}\n");
    return sb_finish(&b, len);
}

static void
metric_head(struct sbuf *b, const char *name, const char *type,
            const char *help)
{
    sb_printf(b, "# HELP waitressd_%s %s\n# TYPE waitressd_%s %s\n", name,
              help, name, type);
}

/* One per-worker metric: a series per worker, FIELD picked by OFF. */
#define WORKER_METRIC(b, s, name, type, help, fmt, expr)                     \
    do {                                                                   \
        metric_head(b, name, type, help);                                  \
        for (size_t i_ = 0; i_ < (s)->nworkers; i_++) {                    \
            const struct wd_stats_worker *w = &(s)->workers[i_];           \
            sb_printf(b, "waitressd_" name "{worker=\"%d\"} " fmt "\n",    \
                      w->id, expr);                                        \
        }                                                                  \
    } while (0)

char *
wd_stats_metrics(const struct wd_stats_snap *s, size_t *len)
{
    struct sbuf b = {0};

    metric_head(&b, "start_time_seconds", "gauge",
                "Start time of the master, Unix epoch seconds.");
    sb_printf(&b, "waitressd_start_time_seconds %lld\n",
              (long long)s->start_time);
    metric_head(&b, "uptime_seconds", "gauge", "Seconds since the start.");
    sb_printf(&b, "waitressd_uptime_seconds %.1f\n", s->uptime);
    metric_head(&b, "reloads_total", "counter", "Successful reloads.");
    sb_printf(&b, "waitressd_reloads_total %u\n", s->reloads);
    metric_head(&b, "generation", "gauge", "Current worker generation.");
    sb_printf(&b, "waitressd_generation %u\n", s->generation);
    metric_head(&b, "workers_target", "gauge", "Configured worker count.");
    sb_printf(&b, "waitressd_workers_target %d\n", s->workers_target);
    metric_head(&b, "workers", "gauge", "Worker processes alive.");
    sb_printf(&b, "waitressd_workers %zu\n", s->nworkers);
    metric_head(&b, "workers_spawned_total", "counter", "Workers forked.");
    sb_printf(&b, "waitressd_workers_spawned_total %llu\n",
              (unsigned long long)s->workers_spawned);
    metric_head(&b, "workers_timed_out_total", "counter",
                "Workers killed for a stale heartbeat.");
    sb_printf(&b, "waitressd_workers_timed_out_total %llu\n",
              (unsigned long long)s->workers_timed_out);
    metric_head(&b, "requests_total", "counter",
                "Requests served by every worker ever spawned.");
    sb_printf(&b, "waitressd_requests_total %llu\n",
              (unsigned long long)s->requests);
    metric_head(&b, "listen_queue", "gauge",
                "Connections waiting in a listener's accept queue.");
    for (size_t i = 0; i < s->nlisten; i++) {
        if (s->listen_queue == NULL || s->listen_queue[i] < 0)
            continue;
        sb_printf(&b, "waitressd_listen_queue{listen=");
        sb_label(&b, s->listen[i]);
        sb_printf(&b, "} %ld\n", s->listen_queue[i]);
    }
    metric_head(&b, "worker_info", "gauge",
                "One series per worker, labelled with its facts.");
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct wd_stats_worker *w = &s->workers[i];

        sb_printf(&b,
                  "waitressd_worker_info{worker=\"%d\",pid=\"%ld\","
                  "generation=\"%u\",status=",
                  w->id, w->pid, w->generation);
        sb_label(&b, w->status != NULL ? w->status : "booting");
        sb_printf(&b, "} 1\n");
    }
    WORKER_METRIC(&b, s, "worker_requests_total", "counter",
                  "Requests finished by the worker.", "%llu",
                  (unsigned long long)w->requests);
    WORKER_METRIC(&b, s, "worker_active_requests", "gauge",
                  "Requests running in the application.", "%u",
                  w->active_requests);
    WORKER_METRIC(&b, s, "worker_queued_requests", "gauge",
                  "Requests waiting for a thread.", "%u", w->queued_requests);
    WORKER_METRIC(&b, s, "worker_connections", "gauge",
                  "Open client connections.", "%u", w->connections);
    WORKER_METRIC(&b, s, "worker_threads", "gauge", "Application threads.",
                  "%u", w->threads);
    WORKER_METRIC(&b, s, "worker_busy_threads", "gauge",
                  "Threads running a request.", "%u", w->busy_threads);
    WORKER_METRIC(&b, s, "worker_bytes_sent_total", "counter",
                  "Bytes written to clients.", "%llu",
                  (unsigned long long)w->bytes_sent);
    WORKER_METRIC(&b, s, "worker_exceptions_total", "counter",
                  "Application exceptions.", "%llu",
                  (unsigned long long)w->exceptions);
    WORKER_METRIC(&b, s, "worker_started_at_seconds", "gauge",
                  "Start time of the worker, Unix epoch seconds.", "%lld",
                  (long long)w->started_at);
    WORKER_METRIC(&b, s, "worker_last_heartbeat_seconds", "gauge",
                  "Last heartbeat, Unix epoch seconds.", "%.1f",
                  w->last_heartbeat);
    WORKER_METRIC(&b, s, "worker_respawns_total", "counter",
                  "Respawns of the worker's position.", "%u", w->respawns);
    return sb_finish(&b, len);
}

/* ------------------------------------------------------------------ */
/* the endpoint                                                        */

struct conn {
    struct wd_stats *st;
    struct conn *next, *prev;
    int fd;
    struct event *ev;
    struct event *timer;
    char in[HEAD_MAX];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
};

struct wd_stats {
    struct event_base *base;
    int fd;
    struct event *ev;
    char *addr;
    char *unix_path; /* bound path to unlink, or NULL */
    wd_stats_fill_fn fill;
    void *arg;
    struct conn *conns;
    size_t nconns;
    struct event *pause_ev; /* re-arms the listener after a failure */
    int listening;          /* ev is added */
};

/* Watch the listener or not (ON); no-op when it already is so. */
static void
set_listening(struct wd_stats *st, int on)
{
    if (on == st->listening || st->ev == NULL)
        return;
    if (on ? event_add(st->ev, NULL) : event_del(st->ev))
        return;
    st->listening = on;
}

static void
conn_free(struct conn *c)
{
    struct wd_stats *st = c->st;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        st->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->timer != NULL)
        event_free(c->timer);
    close(c->fd);
    free(c->out);
    free(c);
    if (--st->nconns < MAX_CONNS && st->pause_ev != NULL &&
        !evtimer_pending(st->pause_ev, NULL))
        set_listening(st, 1);
}

/* Is the request's path /metrics?  The target is split and its path
 * decoded as for any request (SPEC.md 6.4): the query, the fragment and
 * an absolute-form's authority are no part of it. */
static int
wants_metrics(const char *head, size_t len)
{
    const char *sp = memchr(head, ' ', len), *end;
    char scratch[HEAD_MAX];
    struct wd_uri_parts u;
    size_t n;

    if (sp == NULL)
        return 0;
    sp++;
    end = sp;
    while ((size_t)(end - head) < len && *end != ' ' && *end != '\r' &&
           *end != '\n')
        end++;
    n = (size_t)(end - sp);
    if (n > sizeof scratch ||
        wd_http_split_uri(sp, n, scratch, &u) != WD_URI_OK)
        return 0;
    n = wd_http_unquote(u.path, u.path_len, scratch + (u.path - scratch));
    return n == 8 && memcmp(u.path, "/metrics", 8) == 0;
}

static char *
build_response(struct wd_stats *st, int metrics, size_t *outlen)
{
    struct wd_stats_snap snap;
    struct sbuf b = {0};
    char *body;
    size_t blen = 0;

    memset(&snap, 0, sizeof snap);
    st->fill(st->arg, &snap);
    body = metrics ? wd_stats_metrics(&snap, &blen)
                   : wd_stats_json(&snap, &blen);
    free(snap.listen);
    free(snap.listen_queue);
    free(snap.workers);
    if (body == NULL)
        return NULL;
    sb_printf(&b,
              "HTTP/1.0 200 OK\r\nContent-Type: %s\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              metrics ? "text/plain; version=0.0.4" : "application/json",
              blen);
    if (!b.failed && b.cap - b.len < blen + 1) {
        char *np = realloc(b.p, b.len + blen + 1);

        if (np == NULL)
            b.failed = 1;
        else {
            b.p = np;
            b.cap = b.len + blen + 1;
        }
    }
    if (!b.failed) {
        memcpy(b.p + b.len, body, blen);
        b.len += blen;
    }
    free(body);
    return sb_finish(&b, outlen);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

static void
conn_respond(struct conn *c)
{
    struct timeval tv = {WRITE_SECONDS, 0};

    event_free(c->ev);
    c->ev = NULL;
    c->out = build_response(c->st, wants_metrics(c->in, c->inlen),
                            &c->outlen);
    if (c->out == NULL) {
        conn_free(c);
        return;
    }
    c->ev = event_new(c->st->base, c->fd, EV_WRITE | EV_PERSIST,
                      conn_write_cb, c);
    if (c->ev == NULL || event_add(c->ev, NULL) != 0 ||
        evtimer_add(c->timer, &tv) != 0)
        conn_free(c);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    while (c->outoff < c->outlen) {
        ssize_t n = send(fd, c->out + c->outoff, c->outlen - c->outoff,
                         MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        c->outoff += (size_t)n;
    }
    conn_free(c);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    ssize_t n;

    n = recv(fd, c->in + c->inlen, sizeof c->in - c->inlen - 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_free(c);
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    /* bytes, not a string: a NUL in the head must not hide its end */
    if (n == 0 || c->inlen >= sizeof c->in - 1 ||
        memmem(c->in, c->inlen, "\r\n\r\n", 4) != NULL ||
        memmem(c->in, c->inlen, "\n\n", 2) != NULL)
        conn_respond(c);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->out == NULL)
        conn_respond(c); /* 2 s of silence: answer anyway */
    else
        conn_free(c); /* the write did not finish in time */
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct wd_stats *st = arg;
    struct timeval tv = {READ_SECONDS, 0};

    for (int i = 0; i < 16 && st->nconns < MAX_CONNS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};

            if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS &&
                errno != ENOMEM)
                return; /* EAGAIN, or a connection that went away */
            /* out of descriptors or memory: the connection stays queued
               and the listener readable; watching it now would spin */
            wd_log(WD_LOG_WARNING, WD_CAT_MASTER,
                   "stats: accept: %s; pausing for %d ms", strerror(errno),
                   ACCEPT_PAUSE_MS);
            set_listening(st, 0);
            evtimer_add(st->pause_ev, &pause);
            return;
        }
        if ((c = calloc(1, sizeof *c)) == NULL) {
            close(fd);
            continue;
        }
        c->st = st;
        c->fd = fd;
        c->next = st->conns;
        if (st->conns != NULL)
            st->conns->prev = c;
        st->conns = c;
        st->nconns++;
        c->ev = event_new(st->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
        c->timer = evtimer_new(st->base, conn_timer_cb, c);
        if (c->ev == NULL || c->timer == NULL || event_add(c->ev, NULL) != 0 ||
            evtimer_add(c->timer, &tv) != 0)
            conn_free(c);
    }
    if (st->nconns >= MAX_CONNS)
        set_listening(st, 0);
}

static void
pause_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_stats *st = arg;

    if (st->nconns < MAX_CONNS)
        set_listening(st, 1);
}

static int
bind_unix(struct wd_stats *st, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    /* "" would bind an abstract name of NULs (validation refuses it) */
    if (path[0] == '\0' || strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "stats: '%s': %s", path,
                 path[0] == '\0' ? "empty path" : "path too long");
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (wd_cleanup_unix_socket(path) != 0)
        goto fail;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
        listen(fd, 64) != 0) {
        close(fd);
        goto fail;
    }
    st->fd = fd;
    st->unix_path = strdup(path);
    return 0;

fail:
    snprintf(err, errlen, "stats: cannot listen on unix:%s: %s", path,
             strerror(errno));
    return -1;
}

static int
bind_tcp(struct wd_stats *st, const char *addr, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    char why[256];
    int one = 1, fd = -1;

    if (wd_stats_addr_resolve(addr, &res, why, sizeof why) != 0) {
        snprintf(err, errlen, "stats: %s", why);
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "stats: cannot listen on %s: %s", addr,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    st->fd = fd;
    return 0;
}

struct wd_stats *
wd_stats_open(struct event_base *base, const char *addr,
              wd_stats_fill_fn fill, void *arg, char *err, size_t errlen)
{
    struct wd_stats *st = calloc(1, sizeof *st);
    const char *path;
    int rc;

    if (st == NULL || (st->addr = strdup(addr)) == NULL) {
        free(st);
        snprintf(err, errlen, "stats: out of memory");
        return NULL;
    }
    st->base = base;
    st->fd = -1;
    st->fill = fill;
    st->arg = arg;
    if ((path = wd_stats_unix_path(addr)) != NULL)
        rc = bind_unix(st, path, err, errlen);
    else
        rc = bind_tcp(st, addr, err, errlen);
    if (rc == 0) {
        st->ev = event_new(base, st->fd, EV_READ | EV_PERSIST, accept_cb, st);
        st->pause_ev = evtimer_new(base, pause_end_cb, st);
        if (st->ev != NULL && st->pause_ev != NULL)
            set_listening(st, 1);
        if (!st->listening) {
            snprintf(err, errlen, "stats: cannot watch the listener");
            rc = -1;
        }
    }
    if (rc != 0) {
        wd_stats_close(st);
        return NULL;
    }
    return st;
}

void
wd_stats_close(struct wd_stats *st)
{
    if (st == NULL)
        return;
    if (st->ev != NULL)
        event_free(st->ev);
    st->ev = NULL; /* conn_free would watch it again */
    while (st->conns != NULL)
        conn_free(st->conns);
    if (st->pause_ev != NULL)
        event_free(st->pause_ev);
    if (st->fd >= 0)
        close(st->fd);
    if (st->unix_path != NULL)
        unlink(st->unix_path);
    free(st->unix_path);
    free(st->addr);
    free(st);
}

void
wd_stats_close_fds(struct wd_stats *st)
{
    if (st == NULL)
        return;
    for (struct conn *c = st->conns; c != NULL; c = c->next)
        close(c->fd);
    if (st->fd >= 0)
        close(st->fd);
}

const char *
wd_stats_addr(const struct wd_stats *st)
{
    return st->addr;
}
