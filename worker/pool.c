/*
 * pool.c - FIFO task queue and application threads (see pool.h).
 *
 * The queue is a growable ring of task pointers under one mutex; idle
 * threads wait on a condition variable.  Threads never touch libevent or
 * a channel other than through ops->run / ops->done.
 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
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
    unsigned started;  /* threads created */
    unsigned active;   /* threads running a task */
    unsigned exited;   /* threads that left their loop */
    int stop;
    pthread_t *tids;
};

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
    p->len++;
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
    p->len--;
    return t;
}

static void *
thread_main(void *arg)
{
    struct wd_pool *p = arg;
    struct wd_task *t;
    sigset_t all;

    /* signals belong to the loop thread (evsignal) */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    if (p->ops.thread_start != NULL)
        p->ops.thread_start();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->len == 0)
            pthread_cond_wait(&p->ready, &p->lock);
        if (p->stop)
            break;
        t = ring_pop(p);
        p->active++;
        pthread_mutex_unlock(&p->lock);

        p->ops.run(t);
        p->ops.done(t); /* T may be freed by the loop from here on */

        pthread_mutex_lock(&p->lock);
        p->active--;
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
    int rc;

    pthread_mutex_lock(&p->lock);
    rc = ring_push(p, t);
    if (rc == 0)
        pthread_cond_signal(&p->ready);
    queued = p->len;
    idle = p->started - p->exited - p->active;
    pthread_mutex_unlock(&p->lock);

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

size_t
wd_pool_queued(struct wd_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->len;
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t
wd_pool_busy(struct wd_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->active;
    pthread_mutex_unlock(&p->lock);
    return n;
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
