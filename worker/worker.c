/*
 * worker.c - one worker process (SPEC.md 4.1, 4.4).
 *
 * Called by the master right after fork with every signal blocked.  The
 * process's main thread sets the signal handlers, clears the mask for
 * good (take_signals), boots Python and the application, then starts the
 * home thread and waits for it, running only the Python signal handlers
 * and pending calls that are the main thread's (wd_wsgi_main_wait).  The
 * home thread builds the loop, starts the pool threads and the relief
 * thread, tells the master it is ready and runs the loop until a graceful
 * stop has drained it.
 *
 * Between two iterations of the loop, the home thread runs the requests
 * the loop kept for it while the pool was idle, taking the GIL for them
 * (worker/inline.c); the relief thread runs the loop meanwhile if one of
 * them blocks.  Otherwise the loop thread does not hold the GIL.
 *
 * The scoreboard slot the master claimed for us gets the thread count,
 * the busy-thread gauge (around every task) and, from the loop, the
 * heartbeat and counters.  SIGABRT (heartbeat timeout, SPEC.md 4.4) has a
 * plain handler, not an evsignal: the loop it would run on may be stuck.
 * So do INT and QUIT while the app is being imported, so that they exit
 * at once then too; after that they are the loop's, as TERM and USR1.
 */
#include "autoconfig.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "channel.h"
#include "config.h"
#include "inline.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "scoreboard.h"
#include "wd.h"
#include "worker.h"
#include "wsgi.h"

#define POOL_STOP_SECONDS 5.0

/* SPEC.md 4.4's ignored signals.  TTIN, TTOU and PIPE by SIG_IGN; the
   others by a handler that does nothing, because SIG_IGN outlives exec:
   a process the app starts would ignore HUP, WINCH and USR2 for good.
   (A handler for TTIN/TTOU would turn a background read or write of the
   terminal into a loop of restarts; ignored, the kernel lets it go.) */
static const int ignored_signals[] = {SIGTTIN, SIGTTOU, SIGPIPE};
static const int idle_signals[] = {SIGHUP, SIGWINCH, SIGUSR2};
static const int handled_signals[] = {SIGTERM, SIGUSR1, SIGINT, SIGQUIT};
/* the last two: by quit_handler until the app is imported (quit_by_loop) */
#define QUIT_FIRST 2

/* The worker's own handlers, as installed (take_signals): told from the
   app's in a forked child; the first OWN_KEPT are put back after the
   app's import (the ignored ones the app may take: it is not stopped). */
static const int own_signals[] = {SIGTERM, SIGINT,  SIGQUIT, SIGUSR1,
                                  SIGABRT, SIGHUP,  SIGWINCH, SIGUSR2};
#define OWN_KEPT 5
static struct sigaction own_actions[WD_ARRAY_LEN(own_signals)];

static struct wd_sb_slot *own_slot;
static struct stat our_stderr; /* what fd 2 was when we last set it */
static pid_t master_pid; /* our parent; orphaned once getppid() differs */

/* The pool's run op: the bridge, counted as a busy thread. */
static void
run_task(struct wd_task *t)
{
    if (own_slot != NULL)
        wd_sb_busy_add(own_slot, 1);
    wd_wsgi_run(t);
    if (own_slot != NULL)
        wd_sb_busy_add(own_slot, -1);
}

/* SIGABRT (SPEC.md 4.4): the master's heartbeat timeout, or an abort()
   in the process (a failed assertion in an extension, say).  Say which
   with async-signal-safe calls only, show where the Python threads are,
   then go. */
static void
abort_handler(int sig, siginfo_t *si, void *uc)
{
    static const char timeout_msg[] =
        "waitressd worker: SIGABRT (heartbeat timeout), exiting\n";
    static const char other_msg[] =
        "waitressd worker: SIGABRT (not from the master: abort() or "
        "kill), exiting\n";
    int timeout = si != NULL && si->si_code == SI_USER &&
                  si->si_pid == master_pid;
    ssize_t rc;

    /* the loop's deferred records first: the lines just before a hang */
    wd_log_flush_signal();
    if (timeout)
        rc = write(STDERR_FILENO, timeout_msg, sizeof timeout_msg - 1);
    else
        rc = write(STDERR_FILENO, other_msg, sizeof other_msg - 1);
    wd_wsgi_dump_stacks(STDERR_FILENO);
    (void)rc;
    (void)sig;
    (void)uc;
    _exit(1);
}

/* max_requests + uniform(0..jitter), chosen once per worker. */
static uint64_t
request_limit(const struct wd_config *cfg)
{
    uint64_t limit = (uint64_t)cfg->max_requests;

    if (limit == 0)
        return 0;
    if (cfg->max_requests_jitter > 0) {
        unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);

        limit += (uint64_t)rand_r(&seed) %
                 ((uint64_t)cfg->max_requests_jitter + 1);
    }
    return limit;
}

static void
note_stderr(void)
{
    if (fstat(STDERR_FILENO, &our_stderr) != 0)
        memset(&our_stderr, 0, sizeof our_stderr);
}

static int
stderr_is_ours(void)
{
    struct stat st;

    return fstat(STDERR_FILENO, &st) == 0 && our_stderr.st_ino != 0 &&
           st.st_dev == our_stderr.st_dev && st.st_ino == our_stderr.st_ino;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct wd_loop *l = arg;

    switch (sig) {
    case SIGTERM:
        /* orphaned (the master died): nobody enforces the deadline, so
         * SIGALRM's default action does it */
        if (getppid() != master_pid)
            alarm(l->cfg->graceful_timeout > 0
                      ? (unsigned)l->cfg->graceful_timeout
                      : 1);
        wd_loop_stop(l);
        break;
    case SIGINT:
    case SIGQUIT:
        /* fast stop: in-flight requests are abandoned, but the records
           this loop iteration has deferred are written (SPEC.md 4.4) */
        wd_log_flush();
        _exit(WD_EXIT_OK);
    case SIGUSR1:
        if (wd_log_reopen() != 0)
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot reopen logs: %s",
                   strerror(errno));
        /* the app's stderr (wsgi.errors, print, logging) follows, as at
           spawn: dup2 swaps fd 2 at once under any thread writing it.
           Not when fd 2 is no longer the file we left there: the app
           closed or redirected it, and the number may be a client's. */
        else if (wd_log_error_fd() != STDERR_FILENO && stderr_is_ours() &&
                 dup2(wd_log_error_fd(), STDERR_FILENO) >= 0)
            note_stderr();
        break;
    }
}

/* The relief thread never runs the app: a sibling's kick goes there. */
static void
relief_started(void)
{
    if (own_slot != NULL)
        wd_sb_set_kick_tid(own_slot, (int32_t)gettid());
}

static void
idle_handler(int sig)
{
    (void)sig;
}

/* INT and QUIT (SPEC.md 4.4) while the app is being imported, and once
 * the loop has let them go at the worker's end: a fast stop, at once.
 * The loop takes them only once it can run (quit_by_loop): from a plain
 * handler, they would end the process before the loop thread wrote the
 * records of the iteration it is in.  Async-signal-safe. */
static void
quit_handler(int sig)
{
    (void)sig;
    wd_log_flush_signal();
    _exit(WD_EXIT_OK);
}

/* In a child the app forks without exec (os.fork, multiprocessing's
 * default): every signal the worker set goes back to its default action.
 * libevent's handler would write to a socket pair the child shares with
 * the worker, so the child's TERM (Process.terminate) or INT stopped the
 * worker and left the child running.  (exec resets the handlers anyway;
 * PIPE stays ignored, as Python leaves it.) */
static void
forked_child(void)
{
    struct sigaction cur;

    /* the app's own handlers stay, as they stay in a child of waitress */
    for (size_t i = 0; i < WD_ARRAY_LEN(own_signals); i++)
        if (sigaction(own_signals[i], NULL, &cur) == 0 &&
            cur.sa_handler == own_actions[i].sa_handler)
            signal(own_signals[i], SIG_DFL);
    /* the fair-accept kick (loop.c) has libevent's handler, as TERM */
    if (sigaction(SIGURG, NULL, &cur) == 0 &&
        cur.sa_handler == own_actions[0].sa_handler)
        signal(SIGURG, SIG_DFL);
    signal(SIGTTIN, SIG_DFL);
    signal(SIGTTOU, SIG_DFL);
}

/*
 * After the app's import: a handler the app (or a library, or
 * PYTHONFAULTHANDLER) set for one of the worker's signals is replaced by
 * the worker's again, or graceful stops, reloads, log reopening and the
 * heartbeat's ABRT would be the app's (SPEC.md 4.4).  Said in the log.
 */
static void
retake_signals(void)
{
    struct sigaction prev;

    for (size_t i = 0; i < OWN_KEPT; i++) {
        if (sigaction(own_signals[i], &own_actions[i], &prev) != 0 ||
            prev.sa_handler == own_actions[i].sa_handler)
            continue;
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "A handler for SIG%s was set while the application was "
               "imported; the worker keeps its own (SPEC.md 4.4)",
               sigabbrev_np(own_signals[i]));
    }
}

/* handled_signals[FROM, TO) to the loop's signal_cb.  0 or -1. */
static int
watch_signals(struct event_base *base, struct event **sigev, size_t from,
              size_t to, void *loop)
{
    for (size_t i = from; i < to; i++) {
        sigev[i] = evsignal_new(base, handled_signals[i], signal_cb, loop);
        if (sigev[i] == NULL || event_add(sigev[i], NULL) != 0) {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot watch signal %d",
                   handled_signals[i]);
            return -1;
        }
    }
    return 0;
}

/* Every signal of SPEC.md 4.4 gets its disposition, and then the mask the
 * fork left (all blocked, master.c) is cleared for good.  Every thread
 * the worker or the app starts inherits that empty mask, and so does
 * every process an app thread starts (subprocess keeps its caller's
 * mask): blocked there, Popen.terminate() or `timeout` could not stop
 * it.  Done before Python starts, so the app's import-time threads get
 * it too.  A TERM or USR1 during the boot waits in libevent's socketpair
 * until the loop runs, as it waited in the mask before; INT and QUIT
 * exit at once (quit_handler, until quit_by_loop).  Where the signals
 * land: wd_worker_main. */
static int
take_signals(struct event_base *base, struct event **sigev, void *loop)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < WD_ARRAY_LEN(ignored_signals); i++)
        sigaction(ignored_signals[i], &sa, NULL);
    sa.sa_handler = idle_handler;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < WD_ARRAY_LEN(idle_signals); i++)
        sigaction(idle_signals[i], &sa, NULL);
    /* before libevent takes TERM and USR1: it puts back what it found
     * when its events are freed at the worker's very end, and a USR1
     * (logrotate) or TERM arriving then must not kill a worker that is
     * exiting 0 (the master would take it for a crash, SPEC.md 4.5).  A
     * handler, not SIG_IGN, which would drop a TERM pending since the
     * fork. */
    for (size_t i = 0; i < QUIT_FIRST; i++)
        sigaction(handled_signals[i], &sa, NULL);
    sa.sa_handler = quit_handler;
    sa.sa_flags = 0;
    for (size_t i = QUIT_FIRST; i < WD_ARRAY_LEN(handled_signals); i++)
        sigaction(handled_signals[i], &sa, NULL);
    sa.sa_sigaction = abort_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGABRT, &sa, NULL);
    if (watch_signals(base, sigev, 0, QUIT_FIRST, loop) != 0)
        return -1;
    for (size_t i = 0; i < WD_ARRAY_LEN(own_signals); i++)
        sigaction(own_signals[i], NULL, &own_actions[i]);
    if (pthread_atfork(NULL, NULL, forked_child) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "pthread_atfork failed");
        return -1;
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return 0;
}

/* After the app's import: the loop takes INT and QUIT from quit_handler,
 * which it puts back when its events are freed.  own_actions follows,
 * for a child the app forks later (forked_child).  0 or -1. */
static int
quit_by_loop(struct event_base *base, struct event **sigev, void *loop)
{
    if (watch_signals(base, sigev, QUIT_FIRST, WD_ARRAY_LEN(handled_signals),
                      loop) != 0)
        return -1;
    for (size_t i = 0; i < WD_ARRAY_LEN(own_signals); i++) {
        if (own_signals[i] == SIGINT || own_signals[i] == SIGQUIT)
            sigaction(own_signals[i], NULL, &own_actions[i]);
    }
    return 0;
}

static void
free_signals(struct event **sigev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sigev[i] != NULL)
            event_free(sigev[i]);
}

static void
libevent_log_cb(int severity, const char *msg)
{
    wd_log(severity >= EVENT_LOG_ERR ? WD_LOG_ERROR : WD_LOG_DEBUG,
           WD_CAT_SERVER, "libevent: %s", msg);
}

static void
close_fds(const int *fds, size_t nfds)
{
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
}

/* What the home thread needs, from the boot on the main thread. */
struct home {
    const struct wd_config *cfg;
    struct event_base *base;
    struct event **sigev;
    size_t nsigev;
    struct wd_loop *loop;
    int ready_fd;
    int done_fd; /* eventfd: the home thread has finished */
    int rc;
};

/*
 * The home thread: the event loop, the requests it runs itself
 * (inline.c), the pool and the relief thread.  Not the process's main
 * thread, which is Python's (see wd_worker_main).
 */
static void *
home_main(void *arg)
{
    static const struct wd_pool_ops ops = {
        .thread_start = wd_wsgi_thread_start,
        .thread_stop = wd_wsgi_thread_stop,
        .enter = wd_wsgi_enter,
        .leave = wd_wsgi_leave,
        .run = run_task,
        .done = wd_task_done,
        .discard = wd_task_discard,
    };
    static const struct wd_inline_ops inline_ops = {
        .enter = wd_wsgi_enter,
        .leave = wd_wsgi_leave,
        .run = run_task,
        .finish = wd_task_finish,
        .done = wd_task_done,
        .post = wd_task_post,
        .chores_due = wd_wsgi_released_pending,
        .chores = wd_wsgi_drop_released,
        .relief_started = relief_started,
    };
    struct home *h = arg;
    const struct wd_config *cfg = h->cfg;
    struct event_base *base = h->base;
    struct wd_loop *loop = h->loop;
    struct wd_pool *pool = NULL;
    struct wd_inline *inl = NULL;
    uint64_t one = 1;
    unsigned left;
    int rc;

    wd_wsgi_thread_start(); /* a thread state of its own */
    loop->sb = own_slot;
    loop->max_requests = request_limit(cfg);
    pool = wd_pool_new((unsigned)cfg->threads, &ops);
    if (pool == NULL || wd_pool_start(pool) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot start the thread pool");
        rc = WD_EXIT_BOOT;
        goto cleanup;
    }
    loop->pool = pool;
    inl = wd_inline_new(base, pool, &inline_ops);
    if (inl == NULL || wd_inline_start(inl) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot start the relief thread");
        rc = WD_EXIT_BOOT;
        goto cleanup;
    }
    loop->inl = inl;
    if (own_slot != NULL)
        wd_sb_set_threads(own_slot, (uint32_t)cfg->threads);
    wd_loop_start_heartbeat(loop);

    if (h->ready_fd >= 0) {
        if (write(h->ready_fd, "R", 1) != 1)
            wd_log(WD_LOG_WARNING, WD_CAT_SERVER, "ready pipe: %s",
                   strerror(errno));
        close(h->ready_fd);
    }

    /* one iteration at a time, so that the loop's log records of the
       iteration go out in one write (wd_log_defer), and the requests it
       kept run between iterations (worker/inline.c) */
    wd_log_defer();
    for (;;) {
        int flags = EVLOOP_ONCE;

        if (wd_inline_pending(inl))
            flags |= EVLOOP_NONBLOCK; /* kept requests are waiting */
        if (event_base_loop(base, flags) != 0 || event_base_got_exit(base) ||
            event_base_got_break(base))
            break;
        wd_log_flush();
        if (wd_inline_run(inl))
            break; /* the loop ended while the relief thread ran it */
        wd_log_flush();
    }
    wd_log_undefer();
    wd_inline_free(inl);
    inl = NULL;
    loop->inl = NULL;
    left = wd_pool_stop(pool, POOL_STOP_SECONDS);
    if (left > 0) {
        /* threads still run the app and use channels: leave it all */
        wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Worker exiting (pid: %ld)",
               (long)getpid());
        h->rc = WD_EXIT_OK;
        goto done;
    }
    wd_pool_free(pool);
    pool = NULL;
    rc = WD_EXIT_OK;
    wd_wsgi_shutdown();
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Worker exiting (pid: %ld)",
           (long)getpid());

cleanup:
    wd_inline_free(inl);
    if (pool != NULL) {
        wd_pool_stop(pool, POOL_STOP_SECONDS);
        wd_pool_free(pool);
    }
    wd_loop_cleanup(loop);
    free_signals(h->sigev, h->nsigev);
    event_base_free(base);
    h->rc = rc;
done:
    if (write(h->done_fd, &one, sizeof one) != sizeof one)
        _exit(h->rc); /* nobody would hear of the end */
    return NULL;
}

int
wd_worker_main(const struct wd_config *cfg, const int *fds, size_t nfds,
               int slot, int ready_fd)
{
    struct event *sigev[WD_ARRAY_LEN(handled_signals)] = {0};
    struct event_base *base = NULL;
    struct wd_loop loop;
    struct home h;
    pthread_t home;
    int rc;

    /* the master's death stops us gracefully: the port is released at
     * once and no orphan keeps serving (issue 7).  (The master may be
     * pid 1 in a container, so an early death cannot be told by ppid 1;
     * the window since the fork is a few instructions.) */
    master_pid = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        close_fds(fds, nfds);
        return WD_EXIT_BOOT;
    }
    own_slot = wd_sb_slot(wd_sb_attached(), slot);
    note_stderr(); /* the master made it the error log (or left it) */
    /* systemd's socket-activation variables are the master's (it reads
       them again on reload); the app does not get them, as
       sd_listen_fds(1) would leave it (SPEC.md 3.3) */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    /* glibc hands the heap top back once 128 KiB are free and maps
     * blocks past a moving threshold: a 64 KiB body or response then
     * faults its pages in again for every request (perf: 11% of the
     * worker's CPU on post-64k in page faults under memmove).  Keep up to
     * 4 MiB free per arena; map only blocks of 1 MiB and more. */
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    event_set_log_callback(libevent_log_cb);
    if ((base = event_base_new()) == NULL) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "event_base_new failed");
        close_fds(fds, nfds);
        return WD_EXIT_BOOT;
    }
    /* This thread, the process's main one, starts Python, imports the
     * app and then only waits, as waitress's main thread runs only its
     * loop: every request runs on another thread.  signal.signal() in a
     * request then raises ValueError, as there, and cannot take the
     * worker's TERM; threading.main_thread() is never a request's thread.
     * The kernel hands a process-directed signal to the main thread
     * first, so the worker's signals land here and do not cut short a
     * C call of the app (poll(2) fails with EINTR even under SA_RESTART),
     * and the Python handlers the app set run here (wd_wsgi_main_wait). */
    if (take_signals(base, sigev, &loop) != 0)
        rc = WD_EXIT_BOOT;
    else if ((rc = wd_wsgi_init(cfg, cfg->workers)) == 0) {
        retake_signals();
        if (quit_by_loop(base, sigev, &loop) != 0)
            rc = WD_EXIT_BOOT;
    }
    if (rc == 0 && wd_loop_init(&loop, base, cfg, fds, nfds) != 0)
        rc = WD_EXIT_BOOT; /* it closed the fds */
    else if (rc != 0)
        close_fds(fds, nfds);
    memset(&h, 0, sizeof h);
    h.done_fd = -1;
    if (rc == 0 && (h.done_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "eventfd: %s", strerror(errno));
        wd_loop_cleanup(&loop);
        rc = WD_EXIT_BOOT;
    }
    if (rc != 0) {
        free_signals(sigev, WD_ARRAY_LEN(sigev));
        event_base_free(base);
        return rc;
    }
    h.cfg = cfg;
    h.base = base;
    h.sigev = sigev;
    h.nsigev = WD_ARRAY_LEN(sigev);
    h.loop = &loop;
    h.ready_fd = ready_fd;
    if ((rc = pthread_create(&home, NULL, home_main, &h)) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "cannot start the home thread: %s",
               strerror(rc));
        wd_loop_cleanup(&loop);
        free_signals(sigev, WD_ARRAY_LEN(sigev));
        event_base_free(base);
        close(h.done_fd);
        return WD_EXIT_BOOT;
    }
    wd_wsgi_main_wait(h.done_fd);
    pthread_join(home, NULL);
    close(h.done_fd);
    return h.rc;
}
