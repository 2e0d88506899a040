/*
 * loop.h - the worker's event loop: listeners, accepting, the channel
 * list, idle sweeps and the graceful stop (SPEC.md 3.4, 4.4, 5.5, 5.6).
 *
 * Everything here runs on the thread that runs the loop, which owns every
 * channel and socket: the home thread, or the relief thread while the
 * home thread runs a request with the GIL (worker/inline.c).  The loop is
 * set up (wd_loop_init) on the worker's main thread, before it runs.
 */
#ifndef WD_WORKER_LOOP_H
#define WD_WORKER_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http_parse.h"

struct event;
struct event_base;
struct wd_config;
struct wd_channel;
struct wd_mailbox;
struct wd_pool;
struct wd_sb_slot;

enum {
    NODELAY_UNKNOWN,   /* no connection yet */
    NODELAY_INHERITED, /* from the listening socket */
    NODELAY_EACH,      /* set on each connection */
};

struct wd_loop_listener {
    int fd;
    int unix_sock;        /* AF_UNIX: peer is "localhost" */
    char server_port[256]; /* SERVER_PORT: port, or the socket path */
    int sndbuf;            /* SO_SNDBUF of its sockets, 0 until known */
    int nodelay;           /* NODELAY_*: how its sockets get TCP_NODELAY */
    struct event *ev;
    struct wd_loop *loop; /* borrowed */
};

struct wd_loop {
    const struct wd_config *cfg; /* borrowed */
    struct event_base *base;
    struct wd_mailbox *mailbox;
    struct wd_pool *pool; /* borrowed; set before the loop runs */
    struct wd_inline *inl; /* borrowed; NULL: every task goes to the pool */
    struct wd_http_limits limits;

    struct wd_loop_listener *listeners;
    size_t nlisteners;
    int accepting;      /* listener events are added */
    int draining;       /* stopping: taking what the accept queue holds */
    int limit_reached;  /* connection_limit warning logged */
    int paused;         /* EMFILE back-off running */
    int fair_wait;      /* fair accept: left new connections to a sibling */
    int fair_pending;   /* fair_wait: ticks in a row that found the accept
                           queue non-empty */
    int64_t full_since; /* every thread taken since (ms), or 0 */
    struct event *accept_pause_ev; /* EMFILE back-off */
    struct event *fair_ev;         /* fair accept: re-check timer */
    struct event *kick_ev;         /* fair accept: a sibling's SIGURG */
    struct event *kick_later_ev;   /* fair accept: the delayed kick */
    struct event *sweep_ev;        /* cleanup_interval */
    struct event *stop_ev;         /* graceful stop poll */

    struct wd_channel *channels; /* every channel not yet freed */
    size_t nchannels;            /* same count */
    size_t nopen;                /* channels with an open socket */
    size_t ntasks;               /* tasks in flight (posted, not done) */
    uint64_t requests;           /* requests completed */

    char *rbuf; /* recv buffer, recv_bytes long */
    size_t rbuf_len;

    int stopping;       /* TERM received */
    double stop_started; /* monotonic time of the TERM */

    /* scoreboard (SPEC.md 4.6, 17) and self-retirement (4.4) */
    struct wd_sb_slot *sb;  /* own slot, or NULL */
    struct event *hb_ev;    /* heartbeat / counters timer */
    uint64_t max_requests;  /* jittered max_requests; 0: never */
    int queue_full;         /* fair accept: paused while the pool is behind */
};

/* Monotonic seconds (activity and idle timing). */
double wd_loop_now(void);

/*
 * Set up the loop on BASE for the listening FDS (copies the array, takes
 * ownership of the fds).  0 or -1 (logged).
 */
int wd_loop_init(struct wd_loop *l, struct event_base *base,
                 const struct wd_config *cfg, const int *fds, size_t nfds);
/* Free everything still owned; closes channels and listeners. */
void wd_loop_cleanup(struct wd_loop *l);

/* Start the graceful stop of SPEC.md 4.4 (TERM).  */
void wd_loop_stop(struct wd_loop *l);

/*
 * Scoreboard hooks.  wd_loop_start_heartbeat arms the timer that stores
 * the heartbeat and the gauges at least every max(1, worker_timeout/2)
 * seconds (call once the worker is ready).  wd_loop_request_done is
 * called by channel.c for every finished request: counts it, publishes
 * the gauges, resumes a paused accept and retires the worker after
 * max_requests.  wd_loop_task_posted checks the fair-accept rule.
 */
void wd_loop_start_heartbeat(struct wd_loop *l);
void wd_loop_request_done(struct wd_loop *l);
void wd_loop_task_posted(struct wd_loop *l);
void wd_loop_add_bytes(struct wd_loop *l, uint64_t in, uint64_t out);
void wd_loop_add_exception(struct wd_loop *l);

/* Channel bookkeeping, called by channel.c. */
void wd_loop_channel_closed(struct wd_loop *l); /* a socket was closed */
void wd_loop_channel_freed(struct wd_loop *l);  /* a channel was freed */

#endif
