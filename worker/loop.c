/*
 * loop.c - the worker's listeners and housekeeping (see loop.h).
 *
 * Accepting (SPEC.md 3.4, 4.1): every worker polls the shared listening
 * sockets and accepts at most 64 connections per wake-up.  EMFILE and
 * friends pause accepting for a moment instead of spinning on a listener
 * that stays readable.  connection_limit (5.6) removes the listener
 * events while the worker is full.  A cleanup_interval timer closes idle
 * channels (5.5); after TERM a faster timer closes keep-alive connections
 * idle for a second and ends the loop once nothing is left (4.4).
 *
 * Fair accept: while more tasks wait in the pool's queue than it has
 * threads, the worker stops accepting, so the kernel hands new
 * connections to idle workers; it listens again once the queue is short.
 * A new connection wakes every armed worker, and the first one awake
 * would take a whole burst (wrk's 50 keep-alive connections, kept for the
 * whole run, on one worker of two).  So before each accept the worker
 * looks at its siblings in the scoreboard (wd_sb_better_sibling): when one
 * that accepts has fewer connections by more than FAIR_SLACK and a quarter
 * of its count (none while it has fewer than 4: 8 connections on two
 * workers of 4 threads split 4/4, never 5/3), or a free
 * thread while all of ours have been taken for FAIR_FULL_MS, it leaves
 * the connection to that one (which the kernel woke too) and takes its
 * listener events out (fair_wait).  It comes back when a connection of
 * its own closes, when a request ends, on a sibling's kick (SIGURG: a
 * sibling left connections to us while we wait) and on a FAIR_TICK_MS
 * timer.  A waiting sibling active lately (a request of its own ended:
 * wd_sb_active_within) is likely to come back by itself, so its kick
 * waits FAIR_KICK_DELAY_MS and is sent then only if this worker still
 * leaves connections and one waits in the accept queue; an idle one is
 * kicked at once.  A kick at once each time a
 * count tipped kept both workers armed under load, and so woken for
 * every new connection (hello with Connection: close on 2 workers, tree
 * CPU per request 63-73 us before, 45-48 us after: bench/README.md,
 * sixth pass).  When the FAIR_TICK_MS timer finds the accept queue non-empty
 * FAIR_RESCUE_TICKS times in a row it takes what waits there: a sibling
 * that is stopped, hung or starved holds no connection much longer than
 * 100 ms.  The connection
 * count is published at once on every accept and close.
 * EPOLLEXCLUSIVE (SPEC.md 4.1) is not used: libevent 2.1 has no flag for
 * it, and on a private epoll fd polled from libevent's it still wakes
 * every worker (measured), as the wake-up goes through the nested fd.
 * The scoreboard slot gets the heartbeat and the gauges from a timer and
 * after every request (SPEC.md 4.6, 17).
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "channel.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "pool.h"
#include "scoreboard.h"
#include "util.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100
#define FAIR_SLACK 0            /* connections ahead of a sibling we may be,
                                   besides a quarter of its count */
#define FAIR_TICK_MS 10         /* fair_wait re-check */
#define FAIR_RESCUE_TICKS 10    /* ticks a connection may wait for a sibling */
#define FAIR_STALE_MS 3000      /* sibling heartbeat older: not a home */
#define FAIR_FULL_MS 50         /* all threads taken this long: stuck */
#define FAIR_KICK_SIGNAL SIGURG /* ignored by default: safe to misfire */
#define FAIR_KICK_DELAY_MS 2    /* a waiting sibling's time to come back */
#define STOP_IDLE_SECONDS 1.0
#define STOP_TICK_MS 100

double
wd_loop_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The open connections have reached connection_limit (5.6).  Signed: a
   limit of 0 or less is reached before any client, as in waitress. */
static int
at_limit(const struct wd_loop *l)
{
    return (long long)l->nopen >= (long long)l->cfg->connection_limit;
}

/* Stop taking connections at the limit; the warning once per episode. */
static void
reach_limit(struct wd_loop *l)
{
    if (!l->limit_reached)
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "total open connections reached the connection limit, no "
               "longer accepting new connections");
    l->limit_reached = 1;
}

/* Neither paused nor stopping: the worker would take connections. */
static int
willing(const struct wd_loop *l)
{
    return !l->stopping && !l->limit_reached && !l->queue_full && !l->paused;
}

static enum wd_sb_accept
accept_state(const struct wd_loop *l)
{
    if (l->stopping || l->limit_reached || l->paused)
        return WD_SB_ACCEPT_OFF;
    return l->queue_full  ? WD_SB_ACCEPT_QUEUED
           : l->fair_wait ? WD_SB_ACCEPT_WAITING
                          : WD_SB_ACCEPT_ARMED;
}

/* leave_to_sibling: what to do when every better sibling waits */
enum kick { KICK_NONE, KICK_LATER, KICK_NOW };

static int leave_to_sibling(struct wd_loop *l, enum kick kick);
static int backlog_waiting(const struct wd_loop *l);

/*
 * Leave fair_wait.  A kick put off meanwhile (kick_later_ev) is dropped,
 * or, with HAND_ON (this worker stops accepting, so it will not take the
 * connection it left either), sent at once if a connection waits.
 */
static void
end_fair_wait(struct wd_loop *l, int hand_on)
{
    l->fair_wait = 0;
    if (l->fair_ev != NULL)
        event_del(l->fair_ev);
    if (l->kick_later_ev != NULL && evtimer_pending(l->kick_later_ev, NULL)) {
        event_del(l->kick_later_ev);
        if (hand_on && backlog_waiting(l))
            leave_to_sibling(l, KICK_NOW);
    }
}

/* Add or remove the listener events to match the flags; publish them. */
static void
update_listeners(struct wd_loop *l)
{
    int on = willing(l) && !l->fair_wait;

    if (!willing(l) && l->fair_wait)
        end_fair_wait(l, 1);
    if (on != l->accepting) {
        for (size_t i = 0; i < l->nlisteners; i++) {
            if (l->listeners[i].ev == NULL)
                continue;
            if (on)
                event_add(l->listeners[i].ev, NULL);
            else
                event_del(l->listeners[i].ev);
        }
        l->accepting = on;
    }
    if (l->sb != NULL)
        wd_sb_set_accept(l->sb, accept_state(l));
}

static void
accept_pause_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;

    l->paused = 0;
    update_listeners(l);
}

static void
pause_accepting(struct wd_loop *l)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

    l->paused = 1;
    update_listeners(l);
    event_add(l->accept_pause_ev, &tv);
}

/*
 * Fair accept: 1 when a sibling is the better home for the next
 * connection.  KICK: when every better sibling waits (its listener is out
 * of its loop, so the kernel will not wake it), wake the best one: now,
 * or (KICK_LATER, and it was active within FAIR_KICK_DELAY_MS, so it
 * likely re-checks by itself soon) FAIR_KICK_DELAY_MS later if a
 * connection still waits then.
 */
static int
leave_to_sibling(struct wd_loop *l, enum kick kick)
{
    struct wd_sb *sb = wd_sb_attached();
    struct wd_sb_load own;
    int64_t now = wd_sb_now_ms();
    int best, woken;

    if (l->sb == NULL || sb == NULL)
        return 0;
    own.connections = (uint32_t)l->nopen;
    own.full_since_ms = l->full_since;
    best = wd_sb_better_sibling(sb, l->sb, &own, FAIR_SLACK, now,
                                FAIR_STALE_MS, FAIR_FULL_MS, &woken);
    if (best < 0)
        return 0;
    if (kick == KICK_NONE || woken)
        return 1;
    if (kick == KICK_LATER && wd_sb_active_within(wd_sb_slot(sb, best), now,
                                                  FAIR_KICK_DELAY_MS)) {
        struct timeval tv = {0, FAIR_KICK_DELAY_MS * 1000};

        if (!evtimer_pending(l->kick_later_ev, NULL))
            evtimer_add(l->kick_later_ev, &tv);
    } else {
        struct wd_sb_info info;

        wd_sb_read(wd_sb_slot(sb, best), &info);
        /* at its relief thread, which wakes the loop and nothing else
           (a process-directed signal goes to the main thread, which
           then takes the GIL to run the app's Python handlers) */
        if (info.pid > 0 &&
            (info.kick_tid <= 0 ||
             tgkill(info.pid, info.kick_tid, FAIR_KICK_SIGNAL) != 0))
            kill(info.pid, FAIR_KICK_SIGNAL);
    }
    return 1;
}

static void fair_recheck(struct wd_loop *l, enum kick kick);

/* The delayed kick: still leaving connections, and one waits. */
static void
kick_later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;

    if (l->fair_wait && backlog_waiting(l))
        fair_recheck(l, KICK_NOW);
}

static void
start_fair_wait(struct wd_loop *l)
{
    struct timeval tv = {0, FAIR_TICK_MS * 1000};

    l->fair_wait = 1;
    l->fair_pending = 0;
    update_listeners(l);
    event_add(l->fair_ev, &tv);
}

/* fair_wait: re-arm when no sibling is a better home any more. */
static void
fair_recheck(struct wd_loop *l, enum kick kick)
{
    if (!l->fair_wait || leave_to_sibling(l, kick))
        return;
    end_fair_wait(l, 0); /* this worker takes what waits */
    update_listeners(l);
}

static void
accept_failed(const struct wd_loop *l, const char *what, int err)
{
    if (l->cfg->log_socket_errors)
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "server accept() threw an exception\n%s: %s", what,
               strerror(err));
}

/* Peer facts for the environ; -1 when the peer is already gone. */
static int
peer_of(int fd, int unix_sock, char *addr, size_t addrlen, char *port,
        size_t portlen)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;

    /* also the check that the peer is still there: accept hands out a
       connection reset in the queue, with its unread request (19.9) */
    if (getpeername(fd, (struct sockaddr *)&ss, &slen) != 0)
        return -1;
    if (unix_sock) {
        wd_copy_str(addr, addrlen, "localhost");
        wd_copy_str(port, portlen, "None");
        return 0;
    }
    return wd_format_peer((struct sockaddr *)&ss, addr, addrlen, port,
                          portlen);
}

/*
 * TCP_NODELAY for a new connection (SPEC.md 3.4).  Linux copies it from
 * the listening socket, where listener_init set it: the first connection
 * checks that it did, and only if not is it set on each one.  0, or -1
 * when setsockopt failed.
 */
static int
set_nodelay(struct wd_loop_listener *lst, int fd)
{
    int one = 1, on = 0;
    socklen_t len = sizeof on;

    if (lst->nodelay == NODELAY_UNKNOWN)
        lst->nodelay = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0
                               && on
                           ? NODELAY_INHERITED
                           : NODELAY_EACH;
    if (lst->nodelay == NODELAY_INHERITED)
        return 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/*
 * Accept up to ACCEPT_BATCH connections from LST, one at a time, each
 * only while no sibling is the better home for it; RESCUE: whatever the
 * siblings (they left the connections waiting).  Draining ignores the
 * pauses too.
 */
static void
accept_some(struct wd_loop *l, struct wd_loop_listener *lst, int rescue)
{
    char addr[64], port[16];
    int err;
    struct wd_channel *ch, *fresh[ACCEPT_BATCH];
    int nfresh = 0;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd;

        if (!l->draining) {
            if (!(rescue ? willing(l) : l->accepting))
                goto start;
            if (!rescue && leave_to_sibling(l, KICK_LATER)) {
                start_fair_wait(l);
                goto start;
            }
        }
        fd = accept4(lst->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK ||
                errno == ECONNABORTED)
                goto start;
            err = errno; /* the log line below may change errno */
            accept_failed(l, "accept", err);
            if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
                err == ENOMEM)
                pause_accepting(l);
            goto start;
        }
        /* a peer gone before set-up is closed at once (SPEC.md 19.9) */
        if (!lst->unix_sock && set_nodelay(lst, fd) != 0) {
            accept_failed(l, "setsockopt", errno);
            close(fd);
            continue;
        }
        if (peer_of(fd, lst->unix_sock, addr, sizeof addr, port,
                    sizeof port) != 0) {
            accept_failed(l, "getpeername", errno);
            close(fd);
            continue;
        }
        if ((ch = wd_channel_new(l, fd, lst, addr, port)) == NULL) {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
                   "cannot create a channel: out of memory");
            continue;
        }
        l->nopen++;
        /* at once: a sibling deciding about the next one reads it */
        if (l->sb != NULL)
            wd_sb_set_connections(l->sb, (uint32_t)l->nopen);
        if (at_limit(l)) {
            reach_limit(l);
            update_listeners(l);
        }
        fresh[nfresh++] = ch;
    }
start:
    /* the batch's requests had a little longer to arrive; started after
       the count, as starting may close a channel */
    for (int i = 0; i < nfresh; i++)
        wd_channel_start(fresh[i]);
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct wd_loop_listener *lst = arg;

    accept_some(lst->loop, lst, 0);
}

/* Some listener has a connection waiting in its accept queue. */
static int
backlog_waiting(const struct wd_loop *l)
{
    for (size_t i = 0; i < l->nlisteners; i++) {
        struct pollfd pfd = {.fd = l->listeners[i].fd, .events = POLLIN};

        if (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0)
            return 1;
    }
    return 0;
}

static void
fair_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;
    struct timeval tv = {0, FAIR_TICK_MS * 1000};

    if (!l->fair_wait)
        return;
    fair_recheck(l, KICK_LATER);
    if (!l->fair_wait)
        return;
    /* Still leaving connections to a sibling.  A queue seen non-empty at
     * FAIR_RESCUE_TICKS ticks in a row means that sibling is not taking
     * them (stopped, hung, or starved of CPU): take them, so none waits
     * much longer than that.  A few non-empty looks are not enough: a
     * healthy sibling may be a moment from accepting, and what we took
     * instead would stay unfairly with us (keep-alive) or wait for one of
     * our busy threads. */
    if (!backlog_waiting(l))
        l->fair_pending = 0;
    else if (++l->fair_pending >= FAIR_RESCUE_TICKS) {
        l->fair_pending = 0;
        for (size_t i = 0; i < l->nlisteners; i++)
            if (l->listeners[i].fd >= 0)
                accept_some(l, &l->listeners[i], 1);
    }
    if (l->fair_wait)
        event_add(l->fair_ev, &tv);
}

static void
kick_cb(evutil_socket_t sig, short what, void *arg)
{
    fair_recheck(arg, KICK_NONE);
}

void
wd_loop_channel_closed(struct wd_loop *l)
{
    l->nopen--;
    if (l->sb != NULL)
        wd_sb_set_connections(l->sb, (uint32_t)l->nopen);
    if (l->limit_reached && !at_limit(l)) {
        l->limit_reached = 0;
        if (!l->stopping) {
            wd_log(WD_LOG_INFO, WD_CAT_SERVER,
                   "total open connections dropped below the connection "
                   "limit, listening again");
            update_listeners(l);
        }
    }
    fair_recheck(l, KICK_NONE);
}

/* Gauges for the master: state, connections, queue depth. */
static void
publish(struct wd_loop *l)
{
    size_t busy;

    if (l->sb == NULL)
        return;
    busy = l->pool != NULL ? wd_pool_busy(l->pool) : 0;
    wd_sb_set_connections(l->sb, (uint32_t)l->nopen);
    wd_sb_set_accept(l->sb, accept_state(l));
    wd_sb_set_queue_depth(l->sb, l->pool != NULL
                                     ? (uint32_t)wd_pool_queued(l->pool)
                                     : 0);
    wd_sb_set_state(l->sb, l->stopping ? WD_SB_STOPPING
                           : busy > 0  ? WD_SB_BUSY
                                       : WD_SB_IDLE);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;

    if (l->sb == NULL)
        return;
    wd_sb_heartbeat(l->sb);
    publish(l);
}

void
wd_loop_start_heartbeat(struct wd_loop *l)
{
    struct timeval tv = {1, 0};

    /* at least every max(1, worker_timeout / 2) seconds (SPEC.md 4.6) */
    if (l->cfg->worker_timeout > 0 && l->cfg->worker_timeout < 2)
        tv = (struct timeval){0, 500000};
    if (l->sb == NULL || l->hb_ev != NULL)
        return;
    wd_sb_heartbeat(l->sb);
    publish(l);
    l->hb_ev = event_new(l->base, -1, EV_PERSIST, heartbeat_cb, l);
    if (l->hb_ev == NULL || event_add(l->hb_ev, &tv) != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot start the heartbeat");
}

static void
retire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;

    if (l->stopping)
        return;
    wd_log(WD_LOG_INFO, WD_CAT_SERVER,
           "Autorestarting worker after current request.");
    if (l->sb != NULL)
        wd_sb_set_retiring(l->sb); /* before the exit the master reaps */
    wd_loop_stop(l);
}

/* Track since when every thread is taken (tasks posted, not done). */
static void
note_full(struct wd_loop *l)
{
    int full = l->ntasks >= (size_t)l->cfg->threads;

    if (full == (l->full_since > 0))
        return;
    l->full_since = full ? wd_sb_now_ms() : 0;
    if (l->sb != NULL)
        wd_sb_set_full_since(l->sb, l->full_since);
}

void
wd_loop_task_posted(struct wd_loop *l)
{
    note_full(l);
    if (l->pool == NULL)
        return;
    /* issue 5: leave new connections to a sibling while the queue is
       deep; with none to take them, accept and queue them as waitress
       does (SPEC.md 5.2's queue depth, 5.6) */
    if (wd_pool_queued(l->pool) > (size_t)l->cfg->threads &&
        !l->queue_full && l->sb != NULL && wd_sb_attached() != NULL &&
        wd_sb_sibling_accepts(wd_sb_attached(), l->sb, wd_sb_now_ms(),
                              FAIR_STALE_MS)) {
        l->queue_full = 1;
        update_listeners(l);
    }
    if (l->sb != NULL)
        wd_sb_set_queue_depth(l->sb, (uint32_t)wd_pool_queued(l->pool));
}

void
wd_loop_request_done(struct wd_loop *l)
{
    struct timeval now = {0, 0};

    l->requests++;
    note_full(l);
    if (l->sb != NULL) {
        wd_sb_add_request(l->sb);
        wd_sb_set_active(l->sb, wd_sb_now_ms());
    }
    if (l->queue_full && l->pool != NULL &&
        wd_pool_queued(l->pool) < (size_t)l->cfg->threads) {
        l->queue_full = 0;
        update_listeners(l);
    }
    publish(l);
    fair_recheck(l, KICK_NONE); /* a thread may be free again */
    /* retire outside the caller's channel code (SPEC.md 4.4) */
    if (l->max_requests > 0 && l->requests == l->max_requests)
        event_base_once(l->base, -1, EV_TIMEOUT, retire_cb, l, &now);
}

void
wd_loop_add_bytes(struct wd_loop *l, uint64_t in, uint64_t out)
{
    if (l->sb != NULL)
        wd_sb_add_bytes(l->sb, in, out);
}

void
wd_loop_add_exception(struct wd_loop *l)
{
    if (l->sb != NULL)
        wd_sb_add_exception(l->sb);
}

void
wd_loop_channel_freed(struct wd_loop *l)
{
    /* not while wd_loop_stop drains the accept queues: a connection
       closed at once there (wd_channel_start) is not the last one, the
       next listener's queue is still to come; wd_loop_stop looks after */
    if (l->stopping && !l->draining && l->nchannels == 0 && l->ntasks == 0)
        event_base_loopexit(l->base, NULL);
}

/* Close every channel idle since IDLE_SINCE (STOPPING: except those
 * still sending a response or receiving a request). */
static void
sweep(struct wd_loop *l, double idle_since, int stopping)
{
    struct wd_channel *ch, *next;

    for (ch = l->channels; ch != NULL; ch = next) {
        next = wd_channel_next(ch);
        wd_channel_sweep(ch, idle_since, stopping);
    }
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;

    sweep(l, wd_loop_now() - l->cfg->channel_timeout, 0);
}

static void
stop_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_loop *l = arg;
    double since = wd_loop_now() - STOP_IDLE_SECONDS;

    /* idle a second, and every connection gets a second after the TERM */
    if (since > l->stop_started)
        sweep(l, since, 1); /* SPEC.md 4.4 (c): close after the flush */
    if (l->nchannels == 0 && l->ntasks == 0)
        event_base_loopexit(l->base, NULL);
}

void
wd_loop_stop(struct wd_loop *l)
{
    struct timeval tv = {0, STOP_TICK_MS * 1000};
    struct wd_channel *ch;

    if (l->stopping)
        return;
    l->stopping = 1;
    l->stop_started = wd_loop_now();
    /* The kernel has already completed the handshakes of the connections
     * waiting in the accept queue, and their clients may have sent a
     * request: take them now and serve them (with Connection: close), or
     * the last close of the listening socket would reset them. */
    l->draining = 1; /* at most ACCEPT_BATCH each, past connection_limit */
    for (size_t i = 0; i < l->nlisteners; i++)
        if (l->listeners[i].fd >= 0)
            accept_some(l, &l->listeners[i], 0);
    l->draining = 0;
    update_listeners(l);
    event_del(l->accept_pause_ev);
    for (size_t i = 0; i < l->nlisteners; i++) {
        if (l->listeners[i].ev != NULL)
            event_free(l->listeners[i].ev);
        l->listeners[i].ev = NULL;
        if (l->listeners[i].fd >= 0)
            close(l->listeners[i].fd);
        l->listeners[i].fd = -1;
    }
    for (ch = l->channels; ch != NULL; ch = wd_channel_next(ch))
        wd_channel_stop(ch);
    publish(l);
    event_add(l->stop_ev, &tv);
    if (l->nchannels == 0 && l->ntasks == 0)
        event_base_loopexit(l->base, NULL);
}

static int
listener_init(struct wd_loop *l, struct wd_loop_listener *lst, int fd)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;
    int one = 1;

    lst->fd = fd;
    lst->loop = l;
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "getsockname(%d): %s", fd,
               strerror(errno));
        return -1;
    }
    if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t n = slen > offsetof(struct sockaddr_un, sun_path)
                       ? slen - offsetof(struct sockaddr_un, sun_path)
                       : 0;

        lst->unix_sock = 1;
        if (n > sizeof lst->server_port - 1)
            n = sizeof lst->server_port - 1;
        memcpy(lst->server_port, sun->sun_path, n);
        lst->server_port[n] = '\0';
    } else {
        if (ss.ss_family == AF_INET)
            snprintf(lst->server_port, sizeof lst->server_port, "%u",
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        else
            snprintf(lst->server_port, sizeof lst->server_port, "%u",
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        /* its connections inherit it (set_nodelay checks) */
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            lst->nodelay = NODELAY_EACH;
    }
    lst->ev = event_new(l->base, fd, EV_READ | EV_PERSIST, accept_cb, lst);
    return lst->ev != NULL ? 0 : -1;
}

int
wd_loop_init(struct wd_loop *l, struct event_base *base,
             const struct wd_config *cfg, const int *fds, size_t nfds)
{
    struct timeval tv;
    double every;

    memset(l, 0, sizeof *l);
    l->cfg = cfg;
    l->base = base;
    l->limits.max_header = cfg->max_request_header_size;
    l->limits.max_body = cfg->max_request_body_size;
    l->limits.inbuf_overflow = wd_buf_overflow_of(cfg->inbuf_overflow);
    l->rbuf_len = cfg->recv_bytes > 0 ? (size_t)cfg->recv_bytes : 8192;
    if ((l->rbuf = malloc(l->rbuf_len)) == NULL)
        goto fail;
    l->listeners = calloc(nfds ? nfds : 1, sizeof *l->listeners);
    if (l->listeners == NULL)
        goto fail;
    for (size_t i = 0; i < nfds; i++)
        l->listeners[i].fd = -1;
    l->nlisteners = nfds;
    for (size_t i = 0; i < nfds; i++)
        if (listener_init(l, &l->listeners[i], fds[i]) != 0)
            goto fail;
    l->mailbox = wd_mailbox_new(base, wd_channel_mailbox_cb, l);
    l->accept_pause_ev = evtimer_new(base, accept_pause_cb, l);
    l->fair_ev = evtimer_new(base, fair_tick_cb, l);
    l->kick_ev = evsignal_new(base, FAIR_KICK_SIGNAL, kick_cb, l);
    l->kick_later_ev = evtimer_new(base, kick_later_cb, l);
    l->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, l);
    l->stop_ev = event_new(base, -1, EV_PERSIST, stop_tick_cb, l);
    if (l->mailbox == NULL || l->accept_pause_ev == NULL ||
        l->fair_ev == NULL || l->kick_ev == NULL ||
        l->kick_later_ev == NULL || l->sweep_ev == NULL ||
        l->stop_ev == NULL || event_add(l->kick_ev, NULL) != 0)
        goto fail;
    every = cfg->cleanup_interval > 0 ? cfg->cleanup_interval : 0.1;
    tv.tv_sec = (time_t)every;
    tv.tv_usec = (suseconds_t)((every - (double)tv.tv_sec) * 1e6);
    event_add(l->sweep_ev, &tv);
    if (at_limit(l))
        reach_limit(l);
    update_listeners(l);
    return 0;

fail:
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "worker loop set-up failed");
    wd_loop_cleanup(l);
    return -1;
}

void
wd_loop_cleanup(struct wd_loop *l)
{
    struct wd_channel *ch;

    /* channels whose task never came back are leaked on purpose */
    while ((ch = l->channels) != NULL) {
        struct wd_channel *next = wd_channel_next(ch);

        wd_channel_close(ch);
        if (l->channels == ch) /* task in flight: not freed */
            l->channels = next;
    }
    for (size_t i = 0; i < l->nlisteners; i++) {
        if (l->listeners[i].ev != NULL)
            event_free(l->listeners[i].ev);
        if (l->listeners[i].fd >= 0)
            close(l->listeners[i].fd);
    }
    free(l->listeners);
    l->listeners = NULL;
    l->nlisteners = 0;
    if (l->accept_pause_ev != NULL)
        event_free(l->accept_pause_ev);
    if (l->fair_ev != NULL)
        event_free(l->fair_ev);
    if (l->kick_ev != NULL)
        event_free(l->kick_ev);
    if (l->kick_later_ev != NULL)
        event_free(l->kick_later_ev);
    if (l->sweep_ev != NULL)
        event_free(l->sweep_ev);
    if (l->stop_ev != NULL)
        event_free(l->stop_ev);
    if (l->hb_ev != NULL)
        event_free(l->hb_ev);
    l->accept_pause_ev = l->sweep_ev = l->stop_ev = l->hb_ev = NULL;
    l->fair_ev = l->kick_ev = l->kick_later_ev = NULL;
    wd_mailbox_free(l->mailbox);
    l->mailbox = NULL;
    free(l->rbuf);
    l->rbuf = NULL;
}
