/*
 * mailbox.h - pool threads -> loop thread notifications (STYLE.md 5).
 *
 * A pool thread that produced output or finished a task posts the
 * channel's node with a flag.  Posting appends the node to a locked list
 * (once: flags are merged while it waits) and writes the eventfd only when
 * the list was empty, so a burst of writes costs one wake-up.  The loop
 * drains the list and calls back once per node with the flags it
 * collected.
 *
 * Lifetime: a node must stay valid while it is queued.  The channel
 * guarantees this because the last post of a task is WD_MB_DONE and the
 * channel is freed only after the loop has handled that flag.
 */
#ifndef WD_WORKER_MAILBOX_H
#define WD_WORKER_MAILBOX_H

struct event_base;

#define WD_MB_OUTPUT 0x01 /* new output to send */
#define WD_MB_DONE 0x02   /* the task in flight has finished */

/* Embedded in the object being notified; fields private to mailbox.c. */
struct wd_mb_node {
    struct wd_mb_node *next;
    unsigned flags;
    int queued;
};

struct wd_mailbox;

/* Called on the loop thread for every drained node.  */
typedef void (*wd_mailbox_fn)(struct wd_mb_node *node, unsigned flags,
                              void *arg);

/* loop: new mailbox on BASE calling FN(node, flags, ARG).  NULL on error. */
struct wd_mailbox *wd_mailbox_new(struct event_base *base, wd_mailbox_fn fn,
                                  void *arg);
/* loop: NULL is fine.  Queued nodes are forgotten, not called. */
void wd_mailbox_free(struct wd_mailbox *mb);

/* any thread: merge FLAGS into NODE and queue it; never blocks long. */
void wd_mailbox_post(struct wd_mailbox *mb, struct wd_mb_node *node,
                     unsigned flags);

/*
 * any thread: when NODE is queued, merge FLAGS into it and return 1 (the
 * loop's callback will see them); else 0 and nothing changes.
 */
int wd_mailbox_merge(struct wd_mailbox *mb, struct wd_mb_node *node,
                     unsigned flags);

#endif
