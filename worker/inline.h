/*
 * inline.h - the loop thread serves requests itself while the pool is idle.
 *
 * Handing a request to a pool thread costs a wake-up, a GIL hand-off and
 * a mailbox wake-up back (perf: ~0.7 futex calls and ~0.6 context
 * switches per hello request).  When no pool thread is busy, the loop
 * thread instead takes the tasks of an iteration and, between iterations,
 * runs them itself: takes the GIL once, calls the app, finishes each task
 * on the spot.  It holds one of the pool's places meanwhile
 * (wd_pool_borrow), so --threads still bounds the requests run at once.
 *
 * An app that blocks must not stall the loop.  A relief thread watches:
 * when one task has run for a millisecond, or the task waits for the loop
 * (a full output buffer), it takes the loop over -- runs the event loop
 * itself and hands the tasks not yet started to the pool -- and gives it
 * back once the loop thread's task is done.  libevent is never used by
 * two threads at once: the hand-over is one compare-and-swap on the state
 * below, and the home thread touches the loop only in state HOME.
 */
#ifndef WD_WORKER_INLINE_H
#define WD_WORKER_INLINE_H

struct event_base;
struct wd_pool;
struct wd_task;

struct wd_inline_ops {
    void (*enter)(void);               /* home: take the GIL */
    void (*leave)(void);               /* home: give it back */
    void (*run)(struct wd_task *t);    /* home: serve T (GIL held) */
    void (*finish)(struct wd_task *t); /* loop owner: T is done */
    void (*done)(struct wd_task *t);   /* home, loop taken: T is done,
                                          tell the loop (mailbox) */
    void (*post)(struct wd_task *t);   /* loop owner: give T to the pool */
    int (*chores_due)(void);           /* any thread: work for the GIL? */
    void (*chores)(void);              /* home, GIL held: do it */
    void (*relief_started)(void);      /* relief: runs (may be NULL) */
};

struct wd_inline;

/* home (the loop thread): NULL on error. */
struct wd_inline *wd_inline_new(struct event_base *base, struct wd_pool *pool,
                                const struct wd_inline_ops *ops);
/* home: start the relief thread.  0, or -1. */
int wd_inline_start(struct wd_inline *in);

/*
 * loop owner, inside an iteration: keep T to run after it.  1 if kept;
 * 0 when T must go to the pool (another thread runs the loop, or the
 * pool is busy).
 */
int wd_inline_take(struct wd_inline *in, struct wd_task *t);
/* home: tasks kept and not yet run (the next iteration must not block) */
int wd_inline_pending(const struct wd_inline *in);

/*
 * home, between iterations: run the tasks kept so far, and the chores
 * that need the GIL if any are due (they wait like a task would, the loop
 * handed over meanwhile).  Returns 1 when the event loop ended (exit or
 * break) while the relief thread ran it.
 */
int wd_inline_run(struct wd_inline *in);

/*
 * any thread, about to wait for the loop (wd_task_wait_writable): on the
 * home thread in the middle of a task, have the relief take the loop now.
 */
void wd_inline_blocking(void);

/* home: stop and join the relief thread; NULL is fine.  No task kept. */
void wd_inline_free(struct wd_inline *in);

#endif
