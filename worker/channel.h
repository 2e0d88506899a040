/*
 * channel.h - one client connection of a worker (SPEC.md 5, 9, 14, 15).
 *
 * The state machine READ_HEAD -> READ_BODY -> QUEUED -> RUNNING ->
 * WRITING -> (READ_HEAD | closed).  The loop thread owns the channel: it
 * reads, parses, queues requests, answers parse errors itself, posts one
 * task at a time to the pool, sends the output and closes the socket.
 * Pool threads only append output (wd_task_write*, under the channel
 * lock) and hand the task back (wd_task_done).
 *
 * Lifetime: a channel with a task in flight is never freed.  Closing
 * releases the socket at once; the memory goes when the task's completion
 * arrives through the mailbox.
 */
#ifndef WD_WORKER_CHANNEL_H
#define WD_WORKER_CHANNEL_H

#include "task.h"

struct wd_loop;
struct wd_loop_listener;
struct wd_mb_node;

enum wd_channel_state {
    WD_CH_READ_HEAD, /* waiting for (the rest of) a request head */
    WD_CH_READ_BODY, /* head parsed, body being received */
    WD_CH_QUEUED,    /* complete request waiting for a thread */
    WD_CH_RUNNING,   /* the application runs */
    WD_CH_WRITING,   /* output pending, nothing running */
    WD_CH_CLOSED,    /* socket closed, task still in flight */
};

struct wd_channel;

/*
 * loop: a channel for the accepted socket FD (ownership taken; closed on
 * failure) from listener LST, peer REMOTE_ADDR / REMOTE_PORT.  It is
 * linked into L's list; wd_channel_start starts it.  NULL on error.
 */
struct wd_channel *wd_channel_new(struct wd_loop *l, int fd,
                                  struct wd_loop_listener *lst,
                                  const char *remote_addr,
                                  const char *remote_port);

/* loop: read what the new channel CH already has, and wait for more.  CH
 * may be gone on return (the peer closed, or the answer closed it). */
void wd_channel_start(struct wd_channel *ch);

/* loop: close the socket now (nothing more is sent); frees the channel
 * unless a task is in flight.  CH may be gone on return. */
void wd_channel_close(struct wd_channel *ch);

/*
 * loop: close CH if it has no request queued or running and no activity
 * since IDLE_SINCE (monotonic seconds) -- and, with STOPPING (the
 * graceful stop's sweep of idle keep-alive connections), no response
 * output still pending and no request partly received.  Returns 1 if it
 * was closed (CH may be gone), else 0.
 */
int wd_channel_sweep(struct wd_channel *ch, double idle_since,
                     int stopping);

/* loop: the worker is stopping gracefully (SPEC.md 4.4). */
void wd_channel_stop(struct wd_channel *ch);

/* loop: next channel in the loop's list (iterate with the next saved). */
struct wd_channel *wd_channel_next(const struct wd_channel *ch);

enum wd_channel_state wd_channel_state(struct wd_channel *ch);

/* loop: mailbox callback; NODE is a channel's node. */
void wd_channel_mailbox_cb(struct wd_mb_node *node, unsigned flags,
                           void *arg);

/* loop owner: hand T to the pool (worker/inline.c gives back what it
 * kept but cannot run). */
void wd_task_post(struct wd_task *t);
/* loop owner: T, run on this thread, has finished; frees it and goes on
 * with the connection. */
void wd_task_finish(struct wd_task *t);
/* pool, GIL not needed: the task has finished; last access to T. */
void wd_task_done(struct wd_task *t);
/* loop: free a task that was never run (worker exit). */
void wd_task_discard(struct wd_task *t);

#endif
