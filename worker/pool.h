/*
 * pool.h - the worker's task queue and application threads.
 *
 * A FIFO of tasks served by NTHREADS threads.  The loop posts; a woken
 * thread calls ops->enter (the bridge takes the GIL), then for each task
 * it finds queued ops->run and ops->done (which hands the task back to
 * the loop), and ops->leave once the queue is empty (see pool.c).
 * The threads keep the signal mask of the thread that started them.  One
 * task per channel is
 * in flight at a time, so connection_limit already bounds the queue.
 */
#ifndef WD_WORKER_POOL_H
#define WD_WORKER_POOL_H

#include <stddef.h>

struct wd_task;

typedef void (*wd_task_fn)(struct wd_task *t);

struct wd_pool_ops {
    void (*thread_start)(void); /* pool thread, at start (may be NULL) */
    void (*thread_stop)(void);  /* pool thread, at exit (may be NULL) */
    void (*enter)(void);        /* pool thread: before a run of tasks
                                   (takes the GIL; may be NULL) */
    void (*leave)(void);        /* pool thread: after it (may be NULL) */
    wd_task_fn run;             /* pool thread: serve the task */
    wd_task_fn done;            /* pool thread: after run; last access */
    wd_task_fn discard;         /* loop, at stop: a task never run */
};

struct wd_pool;

/* loop: a pool of NTHREADS threads (not started).  NULL on error. */
struct wd_pool *wd_pool_new(unsigned nthreads, const struct wd_pool_ops *ops);
/* loop: start the threads.  0, or -1 (none left running). */
int wd_pool_start(struct wd_pool *p);

/*
 * loop: append T (ownership passes to the pool until ops->done).  Logs
 * "Task queue depth is N" on waitressd.queue when the queue is longer than
 * the number of idle threads.
 */
void wd_pool_post(struct wd_pool *p, struct wd_task *t);

/*
 * loop: take one of the NTHREADS places to run tasks on the loop thread
 * (worker/inline.c).  Granted only while no task runs or waits; until
 * wd_pool_give_back the pool runs at most NTHREADS - 1 tasks at once, and
 * the place counts in wd_pool_busy.  1 if granted, else 0.
 */
int wd_pool_borrow(struct wd_pool *p);
/* any thread: give the borrowed place back (nothing if none is). */
void wd_pool_give_back(struct wd_pool *p);

/* any thread: tasks waiting, and threads running a task. */
size_t wd_pool_queued(struct wd_pool *p);
size_t wd_pool_busy(struct wd_pool *p);

/*
 * loop, at worker exit: discard the queued tasks (logging "Canceling N
 * pending task(s)"), tell the threads to finish and wait up to TIMEOUT
 * seconds for them ("N thread(s) still running" if some are not done).
 * Returns the number of threads still running.
 */
unsigned wd_pool_stop(struct wd_pool *p, double timeout);

/* loop: NULL is fine.  Only after wd_pool_stop returned 0. */
void wd_pool_free(struct wd_pool *p);

#endif
