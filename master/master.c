/*
 * master.c - the supervising process (SPEC.md 4.1, 4.2, 4.5).
 *
 * Binds the listeners, forks the workers and watches them from its own
 * libevent loop, where every signal is handled as ordinary code
 * (evsignal).  Workers report readiness with one byte on a pipe.  At the
 * initial start the first worker boots alone, so that an application that
 * cannot be imported prints its error once; the others follow as soon as
 * it is ready.
 *
 * Not here yet (their own issues): HUP reload, TTIN/TTOU, the scoreboard,
 * heartbeats, pidfile, daemon, privileges, stats.  The slot array and the
 * phase field are where they plug in.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "wd.h"

#define FAST_STOP_SECONDS 2
#define SHORT_LIFE_SECONDS 5.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 10.0

enum phase {
    PHASE_RUN,
    PHASE_GRACEFUL, /* TERM: workers drain */
    PHASE_FAST,     /* INT/QUIT, or a failed start */
};

struct slot {
    struct master *m; /* borrowed */
    int id;
    pid_t pid; /* 0: no worker */
    int ready;
    int ready_fd; /* read end of the ready pipe, -1 */
    struct event *ready_ev;
    struct event *respawn_ev;
    double started;   /* monotonic */
    int short_deaths; /* consecutive deaths younger than 5 s */
};

struct master {
    struct wd_config *cfg; /* borrowed */
    wd_worker_fn worker_fn;
    struct event_base *base;
    struct wd_listener *ls;
    size_t nls;
    int *fds;
    struct slot *slots;
    size_t nslots;
    struct event *sigev[16];
    size_t nsigev;
    struct event *stop_ev;
    enum phase phase;
    int booting; /* initial start: not every worker was ready yet */
    int exit_code;
};

static const struct {
    int sig;
    const char *name;
} master_signals[] = {
    {SIGTERM, "term"}, {SIGINT, "int"},   {SIGQUIT, "quit"},
    {SIGCHLD, "chld"}, {SIGHUP, "hup"},   {SIGUSR1, "usr1"},
    {SIGUSR2, "usr2"}, {SIGTTIN, "ttin"}, {SIGTTOU, "ttou"},
    {SIGWINCH, "winch"},
};

static double
now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
alive(const struct master *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nslots; i++)
        n += m->slots[i].pid > 0;
    return n;
}

static void
signal_workers(struct master *m, int sig)
{
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, sig);
}

static void
close_ready(struct slot *s)
{
    if (s->ready_ev != NULL)
        event_free(s->ready_ev);
    s->ready_ev = NULL;
    if (s->ready_fd >= 0)
        close(s->ready_fd);
    s->ready_fd = -1;
}

/* ------------------------------------------------------------------ */
/* spawning                                                            */

/* Child side of the fork: leave the master's loop, become a worker. */
static void __attribute__((noreturn))
run_child(struct master *m, struct slot *s, int ready_w, sigset_t *old)
{
    int rc;

    /* an inherited base shares the master's epoll set: re-init, then drop
     * it; freeing its signal events gives the old dispositions back */
    event_reinit(m->base);
    event_base_free(m->base);
    for (size_t i = 0; i < WD_ARRAY_LEN(master_signals); i++)
        signal(master_signals[i].sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].ready_fd >= 0)
            close(m->slots[i].ready_fd);
    /* the app's stderr goes to the error log */
    if (wd_log_error_fd() >= 0 && wd_log_error_fd() != STDERR_FILENO)
        dup2(wd_log_error_fd(), STDERR_FILENO);
    (void)old; /* the worker unblocks signals once its handlers exist */
    rc = m->worker_fn(m->cfg, m->fds, m->nls, s->id, ready_w);
    _exit(rc);
}

static void
ready_cb(evutil_socket_t fd, short what, void *arg);

static int
spawn(struct master *m, struct slot *s)
{
    sigset_t all, old;
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "pipe: %s", strerror(errno));
        return -1;
    }
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        run_child(m, s, p[1], &old);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "fork: %s", strerror(errno));
        close(p[0]);
        return -1;
    }
    s->pid = pid;
    s->ready = 0;
    s->started = now_mono();
    s->ready_fd = p[0];
    s->ready_ev = event_new(m->base, p[0], EV_READ, ready_cb, s);
    if (s->ready_ev != NULL)
        event_add(s->ready_ev, NULL);
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Booting worker with pid: %ld",
           (long)pid);
    return 0;
}

static void
respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;

    if (s->m->phase == PHASE_RUN && s->pid == 0)
        spawn(s->m, s);
}

static void
schedule_respawn(struct master *m, struct slot *s, double lived)
{
    struct timeval tv = {0, 0};
    double delay = 0;

    if (lived < SHORT_LIFE_SECONDS) {
        s->short_deaths++;
        delay = BACKOFF_FIRST;
        for (int i = 1; i < s->short_deaths && delay < BACKOFF_MAX; i++)
            delay *= 2;
        if (delay > BACKOFF_MAX)
            delay = BACKOFF_MAX;
    } else {
        s->short_deaths = 0;
    }
    tv.tv_sec = (time_t)delay;
    tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
    if (s->respawn_ev == NULL)
        s->respawn_ev = evtimer_new(m->base, respawn_cb, s);
    if (s->respawn_ev == NULL || evtimer_add(s->respawn_ev, &tv) != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "cannot schedule a respawn");
}

/* ------------------------------------------------------------------ */
/* stopping                                                            */

static void
finish_if_done(struct master *m)
{
    if (m->phase != PHASE_RUN && alive(m) == 0)
        event_base_loopexit(m->base, NULL);
}

static void
stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;

    signal_workers(m, SIGKILL);
}

static void
begin_stop(struct master *m, enum phase phase)
{
    struct timeval tv = {0, 0};

    if (m->phase == PHASE_FAST || m->phase == phase)
        return;
    m->phase = phase;
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].respawn_ev != NULL)
            evtimer_del(m->slots[i].respawn_ev);
    if (phase == PHASE_GRACEFUL) {
        signal_workers(m, SIGTERM);
        tv.tv_sec = m->cfg->graceful_timeout;
    } else {
        signal_workers(m, SIGQUIT);
        tv.tv_sec = FAST_STOP_SECONDS;
    }
    /* workers have been told: the master stops listening too */
    for (size_t i = 0; i < m->nls; i++) {
        if (m->ls[i].fd >= 0)
            close(m->ls[i].fd);
        m->ls[i].fd = -1;
    }
    if (m->stop_ev == NULL)
        m->stop_ev = evtimer_new(m->base, stop_timeout_cb, m);
    if (m->stop_ev != NULL)
        evtimer_add(m->stop_ev, &tv);
    finish_if_done(m);
}

/* ------------------------------------------------------------------ */
/* worker events                                                       */

static void
ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    struct master *m = s->m;
    char c;
    ssize_t n = read(fd, &c, 1);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        event_add(s->ready_ev, NULL);
        return;
    }
    close_ready(s);
    if (n != 1)
        return; /* died before it was ready: SIGCHLD tells the rest */
    s->ready = 1;
    if (!m->booting || m->phase != PHASE_RUN)
        return;
    /* the first worker imported the app: boot the others */
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].pid == 0)
            spawn(m, &m->slots[i]);
    for (size_t i = 0; i < m->nslots; i++)
        if (!m->slots[i].ready)
            return;
    m->booting = 0;
}

static const char *
signame(int sig, char *buf, size_t len)
{
    const char *abbr = sigabbrev_np(sig);

    if (abbr != NULL)
        snprintf(buf, len, "SIG%s", abbr);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

static void
reaped(struct master *m, struct slot *s, int status)
{
    double lived = now_mono() - s->started;
    int was_ready = s->ready;
    pid_t pid = s->pid;
    char name[32];
    int code;

    close_ready(s);
    s->pid = 0;
    s->ready = 0;
    if (m->phase != PHASE_RUN) {
        wd_log(WD_LOG_DEBUG, WD_CAT_MASTER, "Worker (pid:%ld) stopped",
               (long)pid);
        finish_if_done(m);
        return;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);

        if (sig == SIGKILL)
            wd_log(WD_LOG_ERROR, WD_CAT_MASTER,
                   "Worker (pid:%ld) was sent %s! Perhaps out of memory?",
                   (long)pid, signame(sig, name, sizeof name));
        else
            wd_log(WD_LOG_WARNING, WD_CAT_MASTER,
                   "Worker (pid:%ld) was sent %s!", (long)pid,
                   signame(sig, name, sizeof name));
        code = -1;
    } else {
        code = WEXITSTATUS(status);
        wd_log(code != 0 ? WD_LOG_ERROR : WD_LOG_INFO, WD_CAT_MASTER,
               "Worker (pid:%ld) exited with code %d", (long)pid, code);
    }
    if (m->booting && !was_ready &&
        (code == WD_EXIT_BOOT || code == WD_EXIT_APP)) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "%s",
               code == WD_EXIT_APP ? "App failed to load."
                                   : "Worker failed to boot.");
        m->exit_code = 1;
        begin_stop(m, PHASE_FAST);
        return;
    }
    schedule_respawn(m, s, lived);
}

static void
reap_children(struct master *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < m->nslots; i++) {
            if (m->slots[i].pid == pid) {
                reaped(m, &m->slots[i], status);
                break;
            }
        }
    }
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;
    const char *name = "?";

    for (size_t i = 0; i < WD_ARRAY_LEN(master_signals); i++)
        if (master_signals[i].sig == sig)
            name = master_signals[i].name;
    wd_log(sig == SIGCHLD ? WD_LOG_DEBUG : WD_LOG_INFO, WD_CAT_MASTER,
           "Handling signal: %s", name);

    switch (sig) {
    case SIGCHLD:
        reap_children(m);
        break;
    case SIGTERM:
        begin_stop(m, PHASE_GRACEFUL);
        break;
    case SIGINT:
    case SIGQUIT:
        begin_stop(m, PHASE_FAST);
        break;
    case SIGUSR1:
        if (wd_log_reopen() != 0)
            wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "cannot reopen logs: %s",
                   strerror(errno));
        signal_workers(m, SIGUSR1);
        break;
    case SIGUSR2:
        wd_log(WD_LOG_WARNING, WD_CAT_MASTER, "USR2 not supported, ignored");
        break;
    default:
        /* HUP, TTIN, TTOU, WINCH: supervision features not built yet */
        wd_log(WD_LOG_WARNING, WD_CAT_MASTER,
               "signal %s is not supported yet, ignored", name);
        break;
    }
}

static void
libevent_log_cb(int severity, const char *msg)
{
    wd_log(severity >= EVENT_LOG_ERR ? WD_LOG_ERROR : WD_LOG_DEBUG,
           WD_CAT_MASTER, "libevent: %s", msg);
}

/* ------------------------------------------------------------------ */

static void
master_cleanup(struct master *m)
{
    for (size_t i = 0; i < m->nslots; i++) {
        close_ready(&m->slots[i]);
        if (m->slots[i].respawn_ev != NULL)
            event_free(m->slots[i].respawn_ev);
    }
    for (size_t i = 0; i < m->nsigev; i++)
        event_free(m->sigev[i]);
    if (m->stop_ev != NULL)
        event_free(m->stop_ev);
    if (m->base != NULL)
        event_base_free(m->base);
    wd_listen_close_all(m->ls, m->nls, 1);
    free(m->fds);
    free(m->slots);
}

int
wd_master_run(struct wd_config *cfg, int argc, char **argv,
              wd_worker_fn worker)
{
    struct master m;
    char err[512];

    (void)argc;
    (void)argv; /* kept for the HUP reload */
    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.worker_fn = worker;
    m.exit_code = 0;

    signal(SIGPIPE, SIG_IGN);
    if (cfg->umask >= 0)
        umask((mode_t)cfg->umask);
    if (wd_log_open(cfg->error_log, cfg->access_log) != 0) {
        fprintf(stderr, "waitressd: cannot open log: %s\n", strerror(errno));
        return 1;
    }
    wd_log_set_level((enum wd_log_level)cfg->log_level);
    event_set_log_callback(libevent_log_cb);
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Starting waitressd %s",
           PACKAGE_VERSION);

    if (wd_listen_open_all(cfg, &m.ls, &m.nls, err, sizeof err) != 0) {
        fprintf(stderr, "waitressd: %s\n", err);
        return 1;
    }
    wd_listen_log(m.ls, m.nls);

    m.nslots = cfg->workers > 0 ? (size_t)cfg->workers : 1;
    m.slots = calloc(m.nslots, sizeof *m.slots);
    m.fds = calloc(m.nls, sizeof *m.fds);
    m.base = event_base_new();
    if (m.slots == NULL || m.fds == NULL || m.base == NULL) {
        fprintf(stderr, "waitressd: master set-up failed\n");
        m.exit_code = 1;
        goto out;
    }
    for (size_t i = 0; i < m.nls; i++)
        m.fds[i] = m.ls[i].fd;
    for (size_t i = 0; i < m.nslots; i++) {
        m.slots[i].m = &m;
        m.slots[i].id = (int)i;
        m.slots[i].ready_fd = -1;
    }
    for (size_t i = 0; i < WD_ARRAY_LEN(master_signals); i++) {
        struct event *ev =
            evsignal_new(m.base, master_signals[i].sig, signal_cb, &m);

        if (ev == NULL || event_add(ev, NULL) != 0) {
            fprintf(stderr, "waitressd: cannot watch signals\n");
            m.exit_code = 1;
            goto out;
        }
        m.sigev[m.nsigev++] = ev;
    }

    m.booting = 1;
    if (spawn(&m, &m.slots[0]) != 0) {
        m.exit_code = 1;
        goto out;
    }
    event_base_dispatch(m.base);
    /* workers that exited between the last CHLD and the exit */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Shutting down: Master");

out:
    master_cleanup(&m);
    return m.exit_code;
}
