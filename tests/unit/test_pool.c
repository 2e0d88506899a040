/*
 * test_pool.c - worker/pool.c (FIFO task queue, threads, queue-depth
 * warning, stop) and worker/mailbox.c (pool -> loop wake-ups).
 */
#include "autoconfig.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mailbox.h"
#include "pool.h"
#include "task.h"

/* ---- pool ------------------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int order[64];
static int nrun, ndone, ndiscard, gate_open, sigterm_blocked;

static void
reset(void)
{
    nrun = ndone = ndiscard = sigterm_blocked = 0;
    gate_open = 1;
    wd_log_set_level(WD_LOG_ERROR); /* quiet, unless a test logs to a file */
}

static void
run_cb(struct wd_task *t)
{
    sigset_t cur;

    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    pthread_mutex_lock(&mu);
    while (!gate_open)
        pthread_cond_wait(&cv, &mu);
    order[nrun++] = t->status;
    if (sigismember(&cur, SIGTERM))
        sigterm_blocked++;
    pthread_mutex_unlock(&mu);
}

static void
done_cb(struct wd_task *t)
{
    pthread_mutex_lock(&mu);
    ndone++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    free(t);
}

static void
discard_cb(struct wd_task *t)
{
    ndiscard++;
    free(t);
}

static const struct wd_pool_ops ops = {
    .run = run_cb, .done = done_cb, .discard = discard_cb,
};

static struct wd_task *
task_with_id(int id)
{
    struct wd_task *t = calloc(1, sizeof *t);

    cr_assert_not_null(t);
    t->status = id;
    return t;
}

static void
wait_done(int n)
{
    pthread_mutex_lock(&mu);
    while (ndone < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* N tasks with ids 0..N-1 ran, each exactly once (in any order). */
static void
assert_each_ran_once(int n)
{
    int seen[64] = {0};

    cr_assert_leq(n, 64);
    cr_assert_eq(nrun, n);
    for (int i = 0; i < n; i++)
        seen[order[i]]++;
    for (int i = 0; i < n; i++)
        cr_assert_eq(seen[i], 1, "task %d ran %d times", i, seen[i]);
}

static char logpath[64];

static void
log_to_temp(void)
{
    int fd;

    snprintf(logpath, sizeof logpath, "/tmp/test_pool.XXXXXX");
    fd = mkstemp(logpath);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(wd_log_open(logpath, NULL), 0);
    wd_log_set_level(WD_LOG_INFO);
}

static char *
read_log(void)
{
    static char text[8192];
    FILE *f = fopen(logpath, "r");
    size_t n;

    cr_assert_not_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(logpath);
    return text;
}

Test(pool, one_thread_runs_tasks_in_fifo_order)
{
    struct wd_pool *p;

    reset();
    p = wd_pool_new(1, &ops);
    cr_assert_not_null(p);
    cr_assert_eq(wd_pool_start(p), 0);
    for (int i = 0; i < 20; i++)
        wd_pool_post(p, task_with_id(i));
    wait_done(20);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(order[i], i);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    wd_pool_free(p);
}

Test(pool, every_task_runs_once_with_many_threads)
{
    struct wd_pool *p;

    reset();
    p = wd_pool_new(4, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    for (int i = 0; i < 50; i++)
        wd_pool_post(p, task_with_id(i));
    wait_done(50);
    assert_each_ran_once(50);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    wd_pool_free(p);
}

/* The worker clears its mask before it starts the pool, and a process an
   app thread starts inherits that thread's mask: the pool must not block
   signals of its own (they were, and Popen.terminate() did nothing). */
Test(pool, threads_keep_the_starters_signal_mask)
{
    struct wd_pool *p;
    sigset_t term, old;

    reset();
    p = wd_pool_new(2, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    for (int i = 0; i < 4; i++)
        wd_pool_post(p, task_with_id(i));
    wait_done(4);
    cr_assert_eq(sigterm_blocked, 0);
    wd_pool_stop(p, 5);
    wd_pool_free(p);

    /* and a blocked starter's threads do block it */
    reset();
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &old);
    p = wd_pool_new(2, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < 4; i++)
        wd_pool_post(p, task_with_id(i + 4));
    wait_done(4);
    cr_assert_eq(sigterm_blocked, 4);
    wd_pool_stop(p, 5);
    wd_pool_free(p);
}

Test(pool, queue_deeper_than_idle_threads_is_logged)
{
    struct wd_pool *p;
    char *log;

    reset();
    log_to_temp();
    p = wd_pool_new(1, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    pthread_mutex_lock(&mu);
    gate_open = 0;
    pthread_mutex_unlock(&mu);
    wd_pool_post(p, task_with_id(0));
    while (wd_pool_busy(p) == 0) /* the only thread holds task 0 */
        usleep(1000);
    wd_pool_post(p, task_with_id(1));
    wd_pool_post(p, task_with_id(2));
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    wait_done(3);
    wd_pool_stop(p, 5);
    wd_pool_free(p);
    log = read_log();
    cr_assert_not_null(strstr(log, "[WARNING] [waitressd.queue] Task queue depth is 1"));
    cr_assert_not_null(strstr(log, "[WARNING] [waitressd.queue] Task queue depth is 2"));
}

Test(pool, stop_discards_queued_tasks)
{
    struct wd_pool *p;
    char *log;

    reset();
    log_to_temp();
    p = wd_pool_new(1, &ops);
    /* not started: nothing can take the tasks */
    for (int i = 0; i < 3; i++)
        wd_pool_post(p, task_with_id(i));
    cr_assert_eq(wd_pool_queued(p), 3);
    cr_assert_eq(wd_pool_stop(p, 1), 0);
    cr_assert_eq(ndiscard, 3);
    cr_assert_eq(nrun, 0);
    wd_pool_free(p);
    log = read_log();
    cr_assert_not_null(strstr(log, "Canceling 3 pending task(s)"));
}

/* ---- the GIL baton: enter/leave simulated with a mutex ---------------- */

static pthread_mutex_t fake_gil = PTHREAD_MUTEX_INITIALIZER;
static int nenter, gil_held;
static int blocker_id = -1; /* this task "does I/O": waits with the GIL free */

static void
enter_cb(void)
{
    pthread_mutex_lock(&fake_gil);
    pthread_mutex_lock(&mu);
    nenter++;
    gil_held = 1;
    pthread_mutex_unlock(&mu);
}

static void
leave_cb(void)
{
    pthread_mutex_lock(&mu);
    gil_held = 0;
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&fake_gil);
}

static void
baton_run_cb(struct wd_task *t)
{
    pthread_mutex_lock(&mu);
    cr_assert(gil_held, "a task ran without the GIL");
    order[nrun++] = t->status;
    if (t->status == blocker_id) {
        /* like time.sleep(): release the GIL while blocked */
        gil_held = 0;
        pthread_mutex_unlock(&fake_gil);
        while (!gate_open)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        pthread_mutex_lock(&fake_gil);
        pthread_mutex_lock(&mu);
        gil_held = 1;
    } else {
        while (!gate_open && blocker_id < 0)
            pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
}

static const struct wd_pool_ops baton_ops = {
    .enter = enter_cb, .leave = leave_cb,
    .run = baton_run_cb, .done = done_cb, .discard = discard_cb,
};

static void
open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void
baton_reset(int gate, int blocker)
{
    reset();
    nenter = gil_held = 0;
    gate_open = gate;
    blocker_id = blocker;
}

Test(pool, a_runner_serves_queued_tasks_under_one_gil_hold)
{
    struct wd_pool *p;

    baton_reset(0, -1);
    p = wd_pool_new(1, &baton_ops);
    cr_assert_eq(wd_pool_start(p), 0);
    wd_pool_post(p, task_with_id(0));
    while (wd_pool_busy(p) == 0) /* the thread runs task 0, gate closed */
        usleep(1000);
    for (int i = 1; i < 10; i++)
        wd_pool_post(p, task_with_id(i));
    open_gate();
    wait_done(10);
    wd_pool_stop(p, 5);
    wd_pool_free(p);
    /* the GIL was taken once for all ten, in FIFO order */
    cr_assert_eq(nenter, 1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(order[i], i);
}

Test(pool, a_task_blocked_without_the_gil_does_not_hold_the_queue)
{
    struct wd_pool *p;

    baton_reset(0, 0);
    p = wd_pool_new(2, &baton_ops);
    cr_assert_eq(wd_pool_start(p), 0);
    wd_pool_post(p, task_with_id(0)); /* blocks, GIL released */
    while (wd_pool_busy(p) == 0)
        usleep(1000);
    for (int i = 1; i < 5; i++)
        wd_pool_post(p, task_with_id(i));
    /* the standby thread takes the GIL and serves 1..4 while 0 waits */
    wait_done(4);
    pthread_mutex_lock(&mu);
    cr_assert_eq(ndone, 4);
    for (int i = 1; i < 5; i++)
        cr_assert_eq(order[i], i);
    pthread_mutex_unlock(&mu);
    open_gate();
    wait_done(5);
    wd_pool_stop(p, 5);
    wd_pool_free(p);
}

Test(pool, every_task_runs_with_baton_and_many_threads)
{
    struct wd_pool *p;

    baton_reset(1, -1);
    p = wd_pool_new(4, &baton_ops);
    cr_assert_eq(wd_pool_start(p), 0);
    for (int i = 0; i < 64; i++) {
        wd_pool_post(p, task_with_id(i));
        if (i % 7 == 0)
            usleep(200); /* let the queue run dry now and then */
    }
    wait_done(64);
    assert_each_ran_once(64);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    cr_assert_eq(gil_held, 0);
    wd_pool_free(p);
}

/* Poll (bounded) until the pool shows BUSY running and QUEUED waiting. */
static void
wait_counts(struct wd_pool *p, size_t busy, size_t queued)
{
    for (int i = 0; i < 5000; i++) {
        if (wd_pool_busy(p) == busy && wd_pool_queued(p) == queued)
            return;
        usleep(1000);
    }
    cr_assert_fail("busy %zu queued %zu, wanted %zu and %zu",
                   wd_pool_busy(p), wd_pool_queued(p), busy, queued);
}

static void
close_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 0;
    pthread_mutex_unlock(&mu);
}

Test(pool, a_place_is_borrowed_only_from_an_idle_pool)
{
    struct wd_pool *p;

    reset();
    p = wd_pool_new(2, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    cr_assert_eq(wd_pool_borrow(p), 1);
    cr_assert_eq(wd_pool_busy(p), 1, "the borrowed place counts as busy");
    cr_assert_eq(wd_pool_borrow(p), 0, "one place at a time");
    wd_pool_give_back(p);
    cr_assert_eq(wd_pool_busy(p), 0);

    close_gate();
    wd_pool_post(p, task_with_id(0));
    wait_counts(p, 1, 0);
    cr_assert_eq(wd_pool_borrow(p), 0, "refused while a task runs");
    open_gate();
    wait_done(1);
    wait_counts(p, 0, 0);
    cr_assert_eq(wd_pool_borrow(p), 1);
    wd_pool_give_back(p);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    wd_pool_free(p);
}

Test(pool, a_borrowed_place_is_one_of_the_threads)
{
    struct wd_pool *p;

    reset();
    p = wd_pool_new(2, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    cr_assert_eq(wd_pool_borrow(p), 1);
    close_gate();
    wd_pool_post(p, task_with_id(0));
    wd_pool_post(p, task_with_id(1));
    wait_counts(p, 2, 1); /* the place + task 0; task 1 waits */
    usleep(50000);
    cr_assert_eq(wd_pool_queued(p), 1, "a third task ran with 2 threads");
    wd_pool_give_back(p);
    wait_counts(p, 2, 0); /* task 1 took the place */
    open_gate();
    wait_done(2);
    assert_each_ran_once(2);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    wd_pool_free(p);
}

Test(pool, one_thread_waits_for_the_borrowed_place)
{
    struct wd_pool *p;

    reset();
    p = wd_pool_new(1, &ops);
    cr_assert_eq(wd_pool_start(p), 0);
    cr_assert_eq(wd_pool_borrow(p), 1);
    for (int i = 0; i < 3; i++)
        wd_pool_post(p, task_with_id(i));
    usleep(50000);
    cr_assert_eq(nrun, 0, "a task ran beside the borrowed place");
    wd_pool_give_back(p);
    wait_done(3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(order[i], i);
    cr_assert_eq(wd_pool_stop(p, 5), 0);
    wd_pool_free(p);
}

Test(pool, zero_threads_is_refused)
{
    cr_assert_null(wd_pool_new(0, &ops));
}

/* ---- mailbox --------------------------------------------------------- */

struct probe {
    struct wd_mb_node node; /* first: the callback casts back */
    int calls;
    unsigned flags;
};

static void
mb_cb(struct wd_mb_node *node, unsigned flags, void *arg)
{
    struct probe *pr = (struct probe *)node;
    struct event_base *base = arg;

    pr->calls++;
    pr->flags |= flags;
    event_base_loopbreak(base);
}

struct poster {
    struct wd_mailbox *mb;
    struct probe *pr;
};

static void *
post_from_thread(void *arg)
{
    struct poster *ps = arg;

    wd_mailbox_post(ps->mb, &ps->pr->node, WD_MB_OUTPUT);
    wd_mailbox_post(ps->mb, &ps->pr->node, WD_MB_OUTPUT);
    wd_mailbox_post(ps->mb, &ps->pr->node, WD_MB_DONE);
    return NULL;
}

Test(mailbox, posts_merge_into_one_callback)
{
    struct event_base *base = event_base_new();
    struct probe pr = {0};
    struct poster ps;
    struct wd_mailbox *mb;
    pthread_t tid;

    mb = wd_mailbox_new(base, mb_cb, base);
    cr_assert_not_null(mb);
    ps.mb = mb;
    ps.pr = &pr;
    pthread_create(&tid, NULL, post_from_thread, &ps);
    pthread_join(tid, NULL);
    event_base_dispatch(base);
    cr_assert_eq(pr.calls, 1);
    cr_assert_eq(pr.flags, WD_MB_OUTPUT | WD_MB_DONE);
    wd_mailbox_free(mb);
    event_base_free(base);
}

Test(mailbox, every_node_is_called_and_can_be_posted_again)
{
    struct event_base *base = event_base_new();
    struct probe a = {0}, b = {0};
    struct wd_mailbox *mb = wd_mailbox_new(base, mb_cb, base);

    wd_mailbox_post(mb, &a.node, WD_MB_OUTPUT);
    wd_mailbox_post(mb, &b.node, WD_MB_DONE);
    event_base_dispatch(base);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(a.flags, WD_MB_OUTPUT);
    cr_assert_eq(b.flags, WD_MB_DONE);

    wd_mailbox_post(mb, &a.node, WD_MB_DONE);
    event_base_dispatch(base);
    cr_assert_eq(a.calls, 2);
    cr_assert_eq(a.flags, WD_MB_OUTPUT | WD_MB_DONE);
    cr_assert_eq(b.calls, 1);
    wd_mailbox_free(mb);
    event_base_free(base);
}
