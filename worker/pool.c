/*
 * pool.c - FIFO task queue and application threads (see pool.h).
 *
 * The queue is a growable ring of task pointers under one mutex; idle
 * threads wait on a condition variable.  Threads never touch libevent or
 * a channel other than through ops->run / ops->done.
 *
 * The GIL baton.  Only one thread runs Python at a time, so handing every
 * task to a different thread buys nothing but GIL hand-offs (two futex
 * calls and a context switch each).  A woken thread takes the GIL once
 * (ops->enter) and then runs queued tasks back to back -- a "runner" --
 * until the queue is empty, and only then gives the GIL back
 * (ops->leave).  While a runner works and tasks wait, one more thread is
 * woken as a standby: it blocks on the GIL, so the moment the runner's
 * app releases it (I/O, sleep, or CPython's 5 ms switch interval) the
 * standby takes over the queue and wakes the next standby.  An app that
 * blocks therefore never holds queued tasks hostage, and a CPU-bound one
 * pays one GIL hand-off per batch instead of one per request.
 *
 * Wake-ups are counted (tokens): a thread leaves its wait only with a
 * token, so spurious or merged wake-ups cannot make two standbys.
 *
 * Borrowing.  The loop thread may run tasks itself while the pool is
 * idle (worker/inline.c); it then holds one of the NTHREADS places, so
 * the pool's threads start a task only while fewer than NTHREADS run.
 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pool.h"

struct wd_pool {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct wd_pool_ops ops;

    struct wd_task **ring; /* under lock */
    size_t cap, head, len;
    unsigned nthreads;
    unsigned started;    /* threads created */
    unsigned active;     /* threads running a task (read without lock) */
    unsigned exited;     /* threads that left their loop */
    unsigned waiting;    /* threads waiting for a token */
    unsigned tokens;     /* wake-ups granted and not yet taken */
    unsigned candidates; /* woken, on their way to the GIL */
    int borrowed;        /* the loop thread runs tasks itself (counted
                            in active: at most nthreads run at once) */
    int stop;
    pthread_t *tids;
};

/* Under lock: a thread may start one more task. */
static int
has_room(const struct wd_pool *p)
{
    return p->active < p->nthreads;
}

static int
ring_push(struct wd_pool *p, struct wd_task *t)
{
    if (p->len == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        struct wd_task **n = malloc(ncap * sizeof *n);

        if (n == NULL)
            return -1;
        for (size_t i = 0; i < p->len; i++)
            n[i] = p->ring[(p->head + i) % p->cap];
        free(p->ring);
        p->ring = n;
        p->cap = ncap;
        p->head = 0;
    }
    p->ring[(p->head + p->len) % p->cap] = t;
    __atomic_store_n(&p->len, p->len + 1, __ATOMIC_RELAXED);
    return 0;
}

static struct wd_task *
ring_pop(struct wd_pool *p)
{
    struct wd_task *t;

    if (p->len == 0)
        return NULL;
    t = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    __atomic_store_n(&p->len, p->len - 1, __ATOMIC_RELAXED);
    return t;
}

/*
 * Under lock: make sure someone will take the GIL after the current
 * holder while tasks wait -- a thread already woken, or one more.  1 when
 * a token was granted: the caller signals READY once it has let go of
 * the lock, so that the woken thread does not wake only to wait for the
 * lock (a futex round trip more on every hand-off).
 */
static int
want_standby(struct wd_pool *p)
{
    if (p->len > 0 && has_room(p) && p->candidates + p->tokens == 0 &&
        p->waiting > p->tokens) {
        p->tokens++;
        return 1;
    }
    return 0;
}

static void
set_active(struct wd_pool *p, int delta)
{
    __atomic_store_n(&p->active, p->active + (unsigned)delta,
                     __ATOMIC_RELAXED);
}

static void *
thread_main(void *arg)
{
    struct wd_pool *p = arg;
    struct wd_task *t;

    /* the mask is the starter's: a process the app starts from this
       thread inherits it (worker.c, take_signals) */
    if (p->ops.thread_start != NULL)
        p->ops.thread_start();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        /* a token, or a task nobody is heading for (a post that found
           no thread waiting while this one was between tasks) */
        p->waiting++;
        while (!p->stop && p->tokens == 0 &&
               !(p->len > 0 && p->candidates == 0 && has_room(p)))
            pthread_cond_wait(&p->ready, &p->lock);
        p->waiting--;
        if (p->stop)
            break;
        if (p->tokens > 0)
            p->tokens--;
        p->candidates++;
        pthread_mutex_unlock(&p->lock);

        if (p->ops.enter != NULL)
            p->ops.enter(); /* may wait while another runner holds it */

        pthread_mutex_lock(&p->lock);
        p->candidates--;
        while (!p->stop && has_room(p) && (t = ring_pop(p)) != NULL) {
            int wake;

            set_active(p, 1);
            wake = want_standby(p);
            pthread_mutex_unlock(&p->lock);
            if (wake)
                pthread_cond_signal(&p->ready);

            p->ops.run(t);
            p->ops.done(t); /* T may be freed by the loop from here on */

            pthread_mutex_lock(&p->lock);
            set_active(p, -1);
        }
        pthread_mutex_unlock(&p->lock);
        if (p->ops.leave != NULL)
            p->ops.leave();
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    if (p->ops.thread_stop != NULL)
        p->ops.thread_stop();
    pthread_mutex_lock(&p->lock);
    p->exited++;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct wd_pool *
wd_pool_new(unsigned nthreads, const struct wd_pool_ops *ops)
{
    struct wd_pool *p;

    if (nthreads == 0 || (p = calloc(1, sizeof *p)) == NULL)
        return NULL;
    if ((p->tids = calloc(nthreads, sizeof *p->tids)) == NULL)
        goto free_pool;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto free_tids;
    if (pthread_cond_init(&p->ready, NULL) != 0)
        goto destroy_lock;
    p->ops = *ops;
    p->nthreads = nthreads;
    return p;

destroy_lock:
    pthread_mutex_destroy(&p->lock);
free_tids:
    free(p->tids);
free_pool:
    free(p);
    return NULL;
}

int
wd_pool_start(struct wd_pool *p)
{
    int rc;

    for (unsigned i = 0; i < p->nthreads; i++) {
        rc = pthread_create(&p->tids[i], NULL, thread_main, p);
        if (rc != 0) {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
                   "cannot start application thread: %s", strerror(rc));
            wd_pool_stop(p, 5);
            return -1;
        }
        p->started++;
    }
    return 0;
}

void
wd_pool_post(struct wd_pool *p, struct wd_task *t)
{
    size_t queued, idle;
    int rc, wake = 0;

    pthread_mutex_lock(&p->lock);
    rc = ring_push(p, t);
    if (rc == 0)
        wake = want_standby(p);
    queued = p->len;
    idle = p->started - p->exited - p->active;
    pthread_mutex_unlock(&p->lock);
    if (wake)
        pthread_cond_signal(&p->ready);

    if (rc != 0) {
        /* out of memory: run nothing, but never lose the task */
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "task queue: out of memory");
        p->ops.discard(t);
        return;
    }
    if (queued > idle)
        wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %zu",
               queued - idle);
}

int
wd_pool_borrow(struct wd_pool *p)
{
    int ok;

    pthread_mutex_lock(&p->lock);
    ok = !p->stop && !p->borrowed && p->len == 0 && p->active == 0;
    if (ok) {
        p->borrowed = 1;
        set_active(p, 1);
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

void
wd_pool_give_back(struct wd_pool *p)
{
    int wake = 0;

    pthread_mutex_lock(&p->lock);
    if (p->borrowed) {
        p->borrowed = 0;
        set_active(p, -1);
        wake = want_standby(p); /* tasks may have waited for the place */
    }
    pthread_mutex_unlock(&p->lock);
    if (wake)
        pthread_cond_signal(&p->ready);
}

size_t
wd_pool_queued(struct wd_pool *p)
{
    return __atomic_load_n(&p->len, __ATOMIC_RELAXED);
}

size_t
wd_pool_busy(struct wd_pool *p)
{
    return __atomic_load_n(&p->active, __ATOMIC_RELAXED);
}

unsigned
wd_pool_stop(struct wd_pool *p, double timeout)
{
    struct wd_task *t;
    size_t cancelled = 0;
    unsigned left = 0;
    struct timespec deadline;

    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    while ((t = ring_pop(p)) != NULL) {
        pthread_mutex_unlock(&p->lock);
        p->ops.discard(t);
        cancelled++;
        pthread_mutex_lock(&p->lock);
    }
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->lock);
    if (cancelled > 0)
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER, "Canceling %zu pending task(s)",
               cancelled);

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)timeout;
    deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (unsigned i = 0; i < p->started; i++) {
        if (p->tids[i] == 0)
            continue;
        if (pthread_timedjoin_np(p->tids[i], NULL, &deadline) == 0)
            p->tids[i] = 0;
        else
            left++;
    }
    if (left > 0)
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER, "%u thread(s) still running",
               left);
    return left;
}

void
wd_pool_free(struct wd_pool *p)
{
    if (p == NULL)
        return;
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->lock);
    free(p->ring);
    free(p->tids);
    free(p);
}
