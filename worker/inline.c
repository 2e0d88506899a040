/*
 * inline.c - requests run on the loop thread (see inline.h).
 *
 * States of the loop (in->state):
 *   HOME   the home thread owns the loop: it runs an iteration, or
 *          finishes a task, or is between the two;
 *   APP    the home thread runs an app; the loop is idle and the relief
 *          thread may claim it (APP -> TAKEN, one compare-and-swap);
 *   TAKEN  the relief thread runs the loop; it stores HOME once the home
 *          thread asks for it back (want_back) or the loop has ended.
 * The home thread leaves APP by the compare-and-swap APP -> HOME; when it
 * fails, the loop was taken and the task is handed back through the
 * mailbox like a pool thread's.
 *
 * The relief thread sleeps until the home thread arms it for a batch,
 * then looks every RELIEF_TICK_NS; it takes over when it sees the same
 * task in APP twice in a row (it has run at least one tick) or at once
 * when asked (wd_inline_blocking) -- but not while the home thread spent
 * the tick waiting for a CPU (preempted, from /proc schedstat), up to
 * PREEMPTED_TICKS: with the load generator on the same machine that
 * sent 1 in 40 hello requests through the pool's costlier hand-off.
 * A look that finds no task running waits RELIEF_QUIET_TICK_NS for the
 * next one: each look costs a wake-up and two context switches (some 30
 * us of CPU on this virtual machine, 800 a second per worker under load,
 * a twentieth of the worker's CPU), and a task that starts meanwhile is
 * still taken over within RELIEF_QUIET_TICK_NS + RELIEF_TICK_NS.  After
 * RELIEF_IDLE_TICKS looks without a task it goes back to sleep, so an
 * idle worker has no timer running.
 * A take-over costs the other connections up to two ticks of waiting, and
 * requests that block run better side by side on the pool, so after a
 * batch that blocked the loop keeps nothing for a while (COOLDOWN_*): an
 * app that blocks on every request is served by the pool, as without
 * this file.
 *
 * Whether a batch blocked is sampled, not counted: at each tick that
 * finds a task running, the relief reads the home thread's scheduler
 * state from /proc (sleeping or not).  Counting the home thread's
 * voluntary switches around every batch (getrusage) cost two system calls
 * per batch, a third of a call per request under load; the sample costs
 * one read per tick, and only while a task is running at the tick.  An
 * app that blocks for a good part of its time is seen within a tick or
 * two, which is all the cool-down needs.
 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include <event2/event.h>

#include "inline.h"
#include "log.h"
#include "pool.h"
#include "task.h"

#define RELIEF_TICK_NS 1000000L       /* 1 ms: after a look that saw a task */
#define RELIEF_QUIET_TICK_NS 4000000L /* 4 ms: after one that saw none */
#define RELIEF_IDLE_TICKS 25          /* quiet looks (100 ms) before sleeping */
#define PREEMPTED_TICKS 10 /* take over even so after this many ticks */
/* requests go to the pool for a while after a batch that blocked (this
   thread gave up the CPU: sleep, I/O, the GIL) and was taken over or
   lasted BLOCKED_MIN_NS: the pool's threads would have run its requests
   side by side, and a take-over costs the other connections a tick or
   two.  The pause doubles while it keeps happening.  Being preempted is
   not blocking: on a busy machine it is common and says nothing about
   the app. */
#define COOLDOWN_MIN_MS 100
#define COOLDOWN_MAX_MS 2000
#define BLOCKED_MIN_NS 200000L

enum { HOME, APP, TAKEN };

struct wd_inline {
    struct event_base *base;
    struct wd_pool *pool;
    struct wd_inline_ops ops;
    pthread_t home;

    /* kept tasks: touched by the loop's owner only */
    struct wd_task *head, *tail;
    int count;
    int holding; /* home: holds a pool place (wd_pool_borrow) */
    int64_t cooldown_ms; /* home: the last pause after a take-over */
    int64_t resume_at;   /* home: no keeping before (ms), 0: none */

    int state;     /* atomic: HOME, APP, TAKEN */
    unsigned seq;  /* atomic: bumped as each task starts */
    unsigned slept_seq; /* atomic: the task (seq) the home thread was last
                           seen blocked in */
    int stat_fd;   /* the home thread's /proc stat, -1: cannot sample */
    int sched_fd;  /* its /proc schedstat, -1: cannot tell preemption */
    int want_back; /* atomic: home waits for the loop */
    int ended;     /* under lock: the loop ended while TAKEN */

    pthread_mutex_t lock;
    pthread_cond_t wake; /* relief waits */
    pthread_cond_t back; /* home waits for HOME */
    int armed;           /* atomic, set under lock: relief is watching */
    int urgent;          /* under lock: take over now */
    int stop;            /* under lock */
    int started;
    pthread_t relief;
};

/* the home thread, while it runs a task */
static _Thread_local struct wd_inline *running_here;

static int64_t
clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* relief: the /proc file FD read anew into BUF (SIZE bytes, terminated);
   0 when it cannot be read */
static int
read_proc(int fd, char *buf, size_t size)
{
    ssize_t n = fd >= 0 ? pread(fd, buf, size - 1, 0) : -1;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return 1;
}

/* relief: the home thread is asleep (waits for I/O, a lock, a timer);
   running or waiting for a CPU is not.  Without /proc: "asleep". */
static int
home_asleep(const struct wd_inline *in)
{
    char buf[512];
    const char *p;

    /* "tid (comm) S ...": the name may hold spaces and parentheses */
    if (!read_proc(in->stat_fd, buf, sizeof buf) ||
        (p = strrchr(buf, ')')) == NULL || p[1] != ' ')
        return 1;
    return p[2] == 'S' || p[2] == 'D';
}

/*
 * relief: nanoseconds the home thread has waited for a CPU while
 * runnable, 0 when unknown.  (schedstat: "time on a CPU, time waiting
 * for one, time slices".)
 */
static uint64_t
home_wait_ns(const struct wd_inline *in)
{
    char buf[128], *p;

    if (!read_proc(in->sched_fd, buf, sizeof buf))
        return 0;
    strtoull(buf, &p, 10);
    return strtoull(p, NULL, 10);
}

/* relief: note a blocked home thread if it still runs task SEQ.  The
   note names the task, so one that lands late counts for no other. */
static void
sample_home(struct wd_inline *in, unsigned seq)
{
    if (!home_asleep(in))
        return;
    /* asleep in the same task as when the tick looked: not already back
       in the loop's own wait (each task and each chore bumps seq) */
    if (__atomic_load_n(&in->state, __ATOMIC_ACQUIRE) == APP &&
        __atomic_load_n(&in->seq, __ATOMIC_RELAXED) == seq)
        __atomic_store_n(&in->slept_seq, seq, __ATOMIC_RELAXED);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct wd_task *
pop(struct wd_inline *in)
{
    struct wd_task *t = in->head;

    if (t != NULL) {
        in->head = t->inline_next;
        if (in->head == NULL)
            in->tail = NULL;
        t->inline_next = NULL;
        in->count--;
    }
    return t;
}

/* relief: run the loop until the home thread wants it back. */
static void
take_over(struct wd_inline *in)
{
    struct wd_task *t;
    int ended = 0;

    /* the tasks the home thread has not started would wait behind the
       blocked one: the pool runs them */
    while ((t = pop(in)) != NULL)
        in->ops.post(t);
    while (!__atomic_load_n(&in->want_back, __ATOMIC_ACQUIRE)) {
        if (event_base_loop(in->base, EVLOOP_ONCE) != 0 ||
            event_base_got_exit(in->base) || event_base_got_break(in->base)) {
            ended = 1;
            break;
        }
    }
    pthread_mutex_lock(&in->lock);
    in->ended = ended;
    in->urgent = 0; /* asked during this take-over: answered */
    __atomic_store_n(&in->state, HOME, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&in->back);
    pthread_mutex_unlock(&in->lock);
}

static void
tick_deadline(struct timespec *ts, long ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += ns;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/*
 * relief: the home thread, in one task since the last tick, spent most
 * of that time waiting for a CPU rather than running or sleeping: it was
 * preempted (common with the load generator on the same machine).
 * Taking the loop over then would only move the next requests to the
 * pool, whose hand-off costs more.  Updates the last sample.
 */
static int
preempted(const struct wd_inline *in, uint64_t *last_wait, int64_t *last_at)
{
    uint64_t wait = home_wait_ns(in);
    int64_t at = clock_ns();
    int most;

    most = wait != 0 && *last_wait != 0 &&
           wait - *last_wait >= (uint64_t)(at - *last_at) / 2;
    *last_wait = wait;
    *last_at = at;
    return most;
}

static void *
relief_main(void *arg)
{
    struct wd_inline *in = arg;
    struct timespec ts;
    unsigned last_seq = 0;
    int seen = 0, idle = 0, waited = 0, quick = 0;
    uint64_t last_wait = 0;
    int64_t last_at = 0;

    if (in->ops.relief_started != NULL)
        in->ops.relief_started();
    pthread_mutex_lock(&in->lock);
    while (!in->stop) {
        int state;
        unsigned seq;

        if (!__atomic_load_n(&in->armed, __ATOMIC_SEQ_CST) && !in->urgent) {
            seen = 0;
            pthread_cond_wait(&in->wake, &in->lock);
            quick = 1; /* armed for a batch that runs now */
            continue;
        }
        if (!in->urgent) {
            tick_deadline(&ts, seen || quick ? RELIEF_TICK_NS
                                             : RELIEF_QUIET_TICK_NS);
            quick = 0;
            pthread_cond_timedwait(&in->wake, &in->lock, &ts);
            if (in->stop)
                break;
        }
        state = __atomic_load_n(&in->state, __ATOMIC_ACQUIRE);
        seq = __atomic_load_n(&in->seq, __ATOMIC_RELAXED);
        if (state == APP && !in->urgent) {
            /* (a slow read: the home thread may want the lock meanwhile) */
            pthread_mutex_unlock(&in->lock);
            sample_home(in, seq);
            pthread_mutex_lock(&in->lock);
            /* the task may have ended during the read: judge the one
               running now */
            state = __atomic_load_n(&in->state, __ATOMIC_ACQUIRE);
            seq = __atomic_load_n(&in->seq, __ATOMIC_RELAXED);
        }
        if (state == APP && !in->urgent && seen && seq == last_seq &&
            __atomic_load_n(&in->slept_seq, __ATOMIC_RELAXED) != seq &&
            preempted(in, &last_wait, &last_at) && ++waited < PREEMPTED_TICKS)
            continue; /* not the app's doing: it gets its CPU back soon */
        if (state == APP && (in->urgent || (seen && seq == last_seq))) {
            int expected = APP;

            in->urgent = 0;
            seen = 0;
            pthread_mutex_unlock(&in->lock);
            if (__atomic_compare_exchange_n(&in->state, &expected, TAKEN, 0,
                                            __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                take_over(in);
            pthread_mutex_lock(&in->lock);
            continue;
        }
        in->urgent = 0;
        if (state == APP) {
            seen = 1;
            last_seq = seq;
            idle = 0;
            waited = 0;
            last_wait = home_wait_ns(in);
            last_at = clock_ns();
        } else {
            seen = 0;
            if (++idle >= RELIEF_IDLE_TICKS) {
                /* against enter_app: it stores APP, then loads armed;
                   this stores armed, then loads the state.  One of the
                   two sees the other, so no task runs unwatched */
                __atomic_store_n(&in->armed, 0, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&in->state, __ATOMIC_SEQ_CST) == APP)
                    __atomic_store_n(&in->armed, 1, __ATOMIC_SEQ_CST);
                idle = 0;
            }
        }
    }
    pthread_mutex_unlock(&in->lock);
    return NULL;
}

/* the calling thread's /proc file NAME, kept open: each pread reads it
   anew */
static int
open_home_file(const char *name)
{
    char path[64];

    snprintf(path, sizeof path, "/proc/self/task/%ld/%s",
             (long)syscall(SYS_gettid), name);
    return open(path, O_RDONLY | O_CLOEXEC);
}

struct wd_inline *
wd_inline_new(struct event_base *base, struct wd_pool *pool,
              const struct wd_inline_ops *ops)
{
    struct wd_inline *in = calloc(1, sizeof *in);
    pthread_condattr_t ca;

    if (in == NULL)
        return NULL;
    if (pthread_condattr_init(&ca) != 0)
        goto free_in;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&in->lock, NULL) != 0)
        goto destroy_attr;
    if (pthread_cond_init(&in->wake, &ca) != 0)
        goto destroy_lock;
    if (pthread_cond_init(&in->back, NULL) != 0)
        goto destroy_wake;
    pthread_condattr_destroy(&ca);
    in->base = base;
    in->pool = pool;
    in->ops = *ops;
    in->home = pthread_self();
    in->stat_fd = open_home_file("stat");
    in->sched_fd = open_home_file("schedstat");
    return in;

destroy_wake:
    pthread_cond_destroy(&in->wake);
destroy_lock:
    pthread_mutex_destroy(&in->lock);
destroy_attr:
    pthread_condattr_destroy(&ca);
free_in:
    free(in);
    return NULL;
}

int
wd_inline_start(struct wd_inline *in)
{
    int rc;

    rc = pthread_create(&in->relief, NULL, relief_main, in);
    if (rc != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot start the relief thread: %s",
               strerror(rc));
        return -1;
    }
    in->started = 1;
    return 0;
}

int
wd_inline_take(struct wd_inline *in, struct wd_task *t)
{
    if (!pthread_equal(pthread_self(), in->home))
        return 0; /* the relief runs the loop: the home thread is busy */
    if (!in->holding) {
        if (in->resume_at != 0) {
            if (now_ms() < in->resume_at)
                return 0; /* cooling down after a take-over */
            in->resume_at = 0;
        }
        if (!wd_pool_borrow(in->pool))
            return 0;
        in->holding = 1;
    }
    t->inline_next = NULL;
    if (in->tail != NULL)
        in->tail->inline_next = t;
    else
        in->head = t;
    in->tail = t;
    in->count++;
    return 1;
}

int
wd_inline_pending(const struct wd_inline *in)
{
    return in != NULL && in->count > 0;
}

/* home: the loop is idle while an app (or a chore) runs: the relief may
   take it.  While batches keep coming the relief stays armed, and this
   costs no lock and no wake-up. */
static void
enter_app(struct wd_inline *in)
{
    __atomic_add_fetch(&in->seq, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&in->state, APP, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&in->armed, __ATOMIC_SEQ_CST))
        return;
    pthread_mutex_lock(&in->lock);
    if (!in->armed) {
        __atomic_store_n(&in->armed, 1, __ATOMIC_SEQ_CST);
        pthread_cond_signal(&in->wake);
    }
    pthread_mutex_unlock(&in->lock);
}

static void
give_back_place(struct wd_inline *in)
{
    if (in->holding) {
        in->holding = 0;
        wd_pool_give_back(in->pool);
    }
}

/* home: keep nothing for a while (longer while it keeps happening) */
static void
cool_down(struct wd_inline *in)
{
    in->cooldown_ms = in->cooldown_ms == 0 ? COOLDOWN_MIN_MS
                      : in->cooldown_ms * 2 > COOLDOWN_MAX_MS
                          ? COOLDOWN_MAX_MS
                          : in->cooldown_ms * 2;
    in->resume_at = now_ms() + in->cooldown_ms;
}

int
wd_inline_run(struct wd_inline *in)
{
    struct wd_task *t = NULL;
    int n, taken = 0, ended, blocked, chores, ran;
    int64_t wall;
    unsigned first, slept;

    if (in == NULL)
        return 0;
    chores = in->ops.chores_due != NULL && in->ops.chores_due();
    if (in->count == 0 && !chores)
        return 0;
    wall = clock_ns();
    /* this batch's tasks and chores: first .. seq at its end */
    first = __atomic_load_n(&in->seq, __ATOMIC_RELAXED) + 1;
    if (chores) {
        int expected = APP;

        /* in APP: waiting for the GIL must not freeze the loop */
        enter_app(in);
        in->ops.enter();
        in->ops.chores();
        taken = !__atomic_compare_exchange_n(&in->state, &expected, HOME, 0,
                                             __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE);
    }
    /* the tasks kept so far: pipelined ones that their finishing adds
       wait for the next iteration, after the other connections */
    n = in->count;
    ran = n > 0 && !taken;
    while (!taken && n-- > 0 && (t = pop(in)) != NULL) {
        int expected = APP;

        enter_app(in);
        running_here = in;
        wd_log_defer_pause(1); /* the app's records may outlive the loop */
        /* in APP already: a thread holding the GIL for long (a C call)
           must not freeze the loop while this one waits for it */
        in->ops.enter();
        in->ops.run(t);
        wd_log_defer_pause(0);
        running_here = NULL;
        if (!__atomic_compare_exchange_n(&in->state, &expected, HOME, 0,
                                         __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            taken = 1;
            break;
        }
        in->ops.finish(t);
        t = NULL;
    }
    in->ops.leave();
    slept = __atomic_load_n(&in->slept_seq, __ATOMIC_RELAXED) - first;
    blocked = slept <= __atomic_load_n(&in->seq, __ATOMIC_RELAXED) - first &&
              (taken || clock_ns() - wall >= BLOCKED_MIN_NS);
    if (blocked)
        cool_down(in);
    else if (ran)
        in->cooldown_ms = 0; /* (chores alone say nothing of the app) */
    if (!taken) {
        if (in->count == 0)
            give_back_place(in);
        return 0;
    }

    /* the relief has the loop (and gave the rest to the pool): finish T
       the pool's way (if the take-over came during a task, not the
       chores), then wait for the loop to come back */
    __atomic_store_n(&in->want_back, 1, __ATOMIC_RELEASE);
    give_back_place(in);
    if (t != NULL)
        in->ops.done(t); /* its mailbox post wakes the relief's loop */
    /* (after the chores alone, the relief's next event -- at the latest
       the heartbeat -- ends its turn; it serves the loop meanwhile) */
    pthread_mutex_lock(&in->lock);
    while (__atomic_load_n(&in->state, __ATOMIC_ACQUIRE) != HOME)
        pthread_cond_wait(&in->back, &in->lock);
    __atomic_store_n(&in->want_back, 0, __ATOMIC_RELAXED);
    ended = in->ended;
    in->ended = 0;
    pthread_mutex_unlock(&in->lock);
    return ended;
}

void
wd_inline_blocking(void)
{
    struct wd_inline *in = running_here;

    if (in == NULL || __atomic_load_n(&in->state, __ATOMIC_ACQUIRE) != APP)
        return; /* not running an app, or the loop is taken already */
    /* it is about to wait for the socket: that is blocking */
    __atomic_store_n(&in->slept_seq, __atomic_load_n(&in->seq, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    pthread_mutex_lock(&in->lock);
    in->urgent = 1;
    pthread_cond_signal(&in->wake);
    pthread_mutex_unlock(&in->lock);
}

void
wd_inline_free(struct wd_inline *in)
{
    if (in == NULL)
        return;
    if (in->started) {
        pthread_mutex_lock(&in->lock);
        in->stop = 1;
        pthread_cond_signal(&in->wake);
        pthread_mutex_unlock(&in->lock);
        pthread_join(in->relief, NULL);
    }
    give_back_place(in);
    if (in->stat_fd >= 0)
        close(in->stat_fd);
    if (in->sched_fd >= 0)
        close(in->sched_fd);
    pthread_cond_destroy(&in->back);
    pthread_cond_destroy(&in->wake);
    pthread_mutex_destroy(&in->lock);
    free(in);
}
