/*
 * master.c - the supervising process (SPEC.md 4.1 - 4.6, 2.3, 17).
 *
 * Binds the listeners, maps the scoreboard, forks the workers and watches
 * them from its own libevent loop, where every signal is handled as
 * ordinary code (evsignal: the C handler only writes to libevent's
 * internal pipe, so nothing here runs in signal context).  Workers report
 * readiness with one byte on a pipe.
 *
 * A worker *position* (struct proc) outlives the processes that fill it:
 * a crashed worker is respawned into the same position with back-off.
 * Positions belong to a generation; HUP builds generation g+1 next to g
 * (same listening fds where the address did not change) and retires g
 * one worker per new ready worker.  The reload is a transaction: until
 * every new worker is ready, the old configuration, listeners and stats
 * endpoint stay the committed ones, and a failure puts them back.
 *
 * At the initial start the first worker boots alone, so that an
 * application that cannot be imported prints its error once; the others
 * follow as soon as it is ready.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include <event2/event.h>

#include "config.h"
#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "scoreboard.h"
#include "stats.h"
#include "util.h"
#include "wd.h"

#define FAST_STOP_SECONDS 2
#define SHORT_LIFE_SECONDS 5.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 10.0
#define TICK_MS 250
#define HEARTBEAT_CHECK_SECONDS 1.0
#define SPARE_SLOTS 64

enum phase {
    PHASE_RUN,
    PHASE_GRACEFUL, /* TERM: workers drain */
    PHASE_FAST,     /* INT/QUIT, or a failed start */
};

struct proc {
    struct master *m; /* borrowed */
    int used;         /* a position: a worker runs or will be respawned */
    int id;           /* 1-based, for titles and stats */
    unsigned gen;
    pid_t pid; /* 0: no process */
    int sb;    /* scoreboard slot, -1 */
    int ready;
    int ready_fd; /* read end of the ready pipe, -1 */
    struct event *ready_ev;
    struct event *respawn_ev;
    double started;   /* monotonic */
    int short_deaths; /* consecutive deaths younger than 5 s */
    unsigned respawns;
    int stopping;         /* the master told it to stop: expected exit */
    double stop_deadline; /* monotonic; SIGKILL after; 0: none */
    int abort_sent;       /* heartbeat timeout: SIGABRT sent */
};

/* A reload waiting for its new generation to be ready. */
struct reload {
    int active;
    unsigned gen;
    struct wd_config *cfg; /* owned */
    struct wd_listener *ls;
    size_t nls;
    int *fds;
    struct wd_stats *stats; /* a new endpoint, or NULL */
    int keep_stats;         /* same stats address: the old one stays */
    int pending;            /* another HUP arrived meanwhile */
    int umask_set;          /* the new umask is in force ... */
    mode_t old_umask;       /* ... and this one comes back on failure */
    int new_pidfile;        /* cfg->pidfile written (a new path) */
};

struct master {
    struct wd_config *cfg; /* committed configuration */
    int cfg_owned;         /* ours to free (after a reload) */
    wd_worker_fn worker_fn;
    int argc;
    char **argv; /* deep copy, for the reload */
    struct event_base *base;
    struct wd_listener *ls;
    size_t nls;
    int *fds;
    struct wd_sb *sb;
    struct proc *procs;
    size_t nprocs;
    struct wd_stats *stats;
    char *pidfile; /* path we wrote, or NULL */
    struct event *sigev[16];
    size_t nsigev;
    struct event *tick_ev;
    struct event *rehup_ev;
    struct reload rl;
    enum phase phase;
    int booting; /* initial start: not every worker was ready yet */
    int exit_code;
    unsigned gen;     /* committed generation */
    unsigned reloads; /* successful reloads */
    int target;       /* workers wanted (TTIN/TTOU) */
    uint64_t spawned, timed_out, dead_requests;
    time_t start_time;
    double last_hb_check;
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

static double
now_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
alive(const struct master *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nprocs; i++)
        n += m->procs[i].pid > 0;
    return n;
}

static void
close_ready(struct proc *p)
{
    if (p->ready_ev != NULL)
        event_free(p->ready_ev);
    p->ready_ev = NULL;
    if (p->ready_fd >= 0)
        close(p->ready_fd);
    p->ready_fd = -1;
}

/* A free position for generation GEN, or NULL. */
static struct proc *
proc_new(struct master *m, unsigned gen)
{
    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];

        if (p->used || p->pid > 0)
            continue;
        if (p->respawn_ev != NULL)
            evtimer_del(p->respawn_ev);
        close_ready(p);
        p->used = 1;
        p->gen = gen;
        p->sb = -1;
        p->ready = 0;
        p->short_deaths = 0;
        p->respawns = 0;
        p->stopping = 0;
        p->stop_deadline = 0;
        p->abort_sent = 0;
        return p;
    }
    wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "no free worker slot (%zu in use)",
           m->nprocs);
    return NULL;
}

/* The configuration and listening fds a worker of P's generation gets. */
static const struct wd_config *
proc_config(const struct master *m, const struct proc *p, const int **fds,
            size_t *nfds)
{
    if (m->rl.active && p->gen == m->rl.gen) {
        *fds = m->rl.fds;
        *nfds = m->rl.nls;
        return m->rl.cfg;
    }
    *fds = m->fds;
    *nfds = m->nls;
    return m->cfg;
}

/* Ask P to stop with SIG; the tick SIGKILLs it after GRACE seconds. */
static void
proc_stop(struct proc *p, int sig, double grace)
{
    if (p->respawn_ev != NULL)
        evtimer_del(p->respawn_ev);
    if (p->pid <= 0) {
        p->used = 0; /* waiting for a respawn: just forget it */
        return;
    }
    kill(p->pid, sig);
    if (!p->stopping || now_mono() + grace < p->stop_deadline)
        p->stop_deadline = now_mono() + grace;
    p->stopping = 1;
}

/* ------------------------------------------------------------------ */
/* spawning                                                            */

static pid_t master_pid;

static void
close_in_child(const struct wd_listener *ls, size_t n, const int *keep,
               size_t nkeep)
{
    for (size_t i = 0; i < n; i++) {
        int kept = 0;

        for (size_t j = 0; j < nkeep; j++)
            kept |= ls[i].fd == keep[j];
        if (!kept && ls[i].fd >= 0)
            close(ls[i].fd);
    }
}

/* Child side of the fork: leave the master's loop, become a worker. */
static void __attribute__((noreturn))
run_child(struct master *m, struct proc *p, int ready_w)
{
    const struct wd_config *cfg;
    const int *fds;
    size_t nfds;
    char err[256];
    int rc;

    cfg = proc_config(m, p, &fds, &nfds);
    /* an inherited base shares the master's epoll set: re-init, then drop
     * it; freeing its signal events gives the old dispositions back */
    event_reinit(m->base);
    event_base_free(m->base);
    for (size_t i = 0; i < WD_ARRAY_LEN(master_signals); i++)
        signal(master_signals[i].sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    /* nothing of the master's but our own listeners stays open */
    for (size_t i = 0; i < m->nprocs; i++)
        if (m->procs[i].ready_fd >= 0)
            close(m->procs[i].ready_fd);
    close_in_child(m->ls, m->nls, fds, nfds);
    if (m->rl.active)
        close_in_child(m->rl.ls, m->rl.nls, fds, nfds);
    wd_stats_close_fds(m->stats);
    wd_stats_close_fds(m->rl.stats);
    wd_proctitle_set("waitressd: worker %d (gen %u)", p->id, p->gen);
    /* the app's stderr goes to the error log */
    if (wd_log_error_fd() >= 0 && wd_log_error_fd() != STDERR_FILENO)
        dup2(wd_log_error_fd(), STDERR_FILENO);
    /* right after the fork, before Python (SPEC.md 2.3) */
    if (wd_drop_privileges(cfg, err, sizeof err) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "worker: %s", err);
        _exit(WD_EXIT_BOOT);
    }
    /* a master killed outright takes its workers along (graceful stop);
       set after the credential change, which clears it; the master may
       already be gone by now */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() != master_pid)
        _exit(WD_EXIT_OK);
    rc = m->worker_fn(cfg, fds, nfds, p->sb, ready_w);
#ifdef __SANITIZE_ADDRESS__
    /* _exit() skips LeakSanitizer's own check at exit: a worker's leaks
       (a reference or a buffer lost per request) would go unseen */
    __lsan_do_recoverable_leak_check();
#endif
    _exit(rc);
}

static void ready_cb(evutil_socket_t fd, short what, void *arg);

static int
spawn(struct master *m, struct proc *p)
{
    sigset_t all, old;
    int fds[2];
    pid_t pid;

    p->sb = wd_sb_claim(m->sb, p->gen);
    if (p->sb < 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "no free scoreboard slot");
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "pipe: %s", strerror(errno));
        wd_sb_release(m->sb, p->sb);
        p->sb = -1;
        return -1;
    }
    p->ready_fd = fds[0];
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        wd_daemon_forget();
        p->ready_fd = -1;
        run_child(m, p, fds[1]); /* with every signal blocked */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (pid < 0) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "fork: %s", strerror(errno));
        close(fds[0]);
        p->ready_fd = -1;
        wd_sb_release(m->sb, p->sb);
        p->sb = -1;
        return -1;
    }
    wd_sb_set_pid(m->sb, p->sb, pid);
    m->spawned++;
    p->pid = pid;
    p->ready = 0;
    p->stopping = 0;
    p->stop_deadline = 0;
    p->abort_sent = 0;
    p->started = now_mono();
    p->ready_ev = event_new(m->base, fds[0], EV_READ, ready_cb, p);
    if (p->ready_ev != NULL)
        event_add(p->ready_ev, NULL);
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Booting worker with pid: %ld",
           (long)pid);
    return 0;
}

static void schedule_respawn(struct master *m, struct proc *p, double delay);

static void
respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proc *p = arg;

    if (p->m->phase != PHASE_RUN || !p->used || p->pid != 0 || p->stopping)
        return;
    p->respawns++;
    if (spawn(p->m, p) != 0)
        schedule_respawn(p->m, p, 1.0);
}

static void
schedule_respawn(struct master *m, struct proc *p, double delay)
{
    struct timeval tv;

    tv.tv_sec = (time_t)delay;
    tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
    if (p->respawn_ev == NULL)
        p->respawn_ev = evtimer_new(m->base, respawn_cb, p);
    if (p->respawn_ev == NULL || evtimer_add(p->respawn_ev, &tv) != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "cannot schedule a respawn");
}

/* SPEC.md 4.5: min(0.1 * 2^(k-1), 10) s after k short lives in a row. */
static double
backoff(struct proc *p, double lived)
{
    double delay = BACKOFF_FIRST;

    if (lived >= SHORT_LIFE_SECONDS) {
        p->short_deaths = 0;
        return 0;
    }
    p->short_deaths++;
    for (int i = 1; i < p->short_deaths && delay < BACKOFF_MAX; i++)
        delay *= 2;
    return delay > BACKOFF_MAX ? BACKOFF_MAX : delay;
}

/* Positions of the committed generation, not stopping. */
static size_t
current_positions(const struct master *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nprocs; i++) {
        const struct proc *p = &m->procs[i];

        n += p->used && p->gen == m->gen && !p->stopping;
    }
    return n;
}

/* Bring the committed generation back to m->target positions. */
static void
fill_positions(struct master *m)
{
    for (size_t n = current_positions(m); n < (size_t)m->target; n++) {
        struct proc *p = proc_new(m, m->gen);

        if (p == NULL)
            return;
        if (spawn(m, p) != 0)
            schedule_respawn(m, p, 1.0);
    }
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
begin_stop(struct master *m, enum phase phase)
{
    int sig = phase == PHASE_GRACEFUL ? SIGTERM : SIGQUIT;
    double grace = phase == PHASE_GRACEFUL ? m->cfg->graceful_timeout
                                           : FAST_STOP_SECONDS;

    if (m->phase == PHASE_FAST || m->phase == phase)
        return;
    m->phase = phase;
    for (size_t i = 0; i < m->nprocs; i++)
        if (m->procs[i].used || m->procs[i].pid > 0)
            proc_stop(&m->procs[i], sig, grace);
    /* workers have been told: the master stops listening too */
    for (size_t i = 0; i < m->nls; i++) {
        if (m->ls[i].fd >= 0 && !m->ls[i].inherited)
            close(m->ls[i].fd);
        m->ls[i].fd = -1;
    }
    finish_if_done(m);
}

/* ------------------------------------------------------------------ */
/* reload (SPEC.md 4.3)                                                */

static void stats_fill(void *arg, struct wd_stats_snap *s);

/* Undo a reload that did not commit: what it opened is closed. */
static void
reload_free(struct master *m)
{
    struct reload *rl = &m->rl;
    int pending = rl->pending;

    wd_listen_release(rl->ls, rl->nls, m->ls, m->nls);
    wd_stats_close(rl->stats);
    if (rl->umask_set)
        umask(rl->old_umask);
    if (rl->new_pidfile)
        wd_pidfile_remove(rl->cfg->pidfile);
    if (rl->cfg != NULL) {
        wd_config_cleanup(rl->cfg);
        free(rl->cfg);
    }
    free(rl->fds);
    memset(rl, 0, sizeof *rl);
    rl->pending = pending;
}

static void
reload_rehup_later(struct master *m)
{
    struct timeval now = {0, 0};

    if (m->rl.pending && m->rehup_ev != NULL)
        evtimer_add(m->rehup_ev, &now);
}

/* Whether CFG names another pidfile than the one the master wrote (the
   same file under another spelling is the same pidfile). */
static int
pidfile_moves(const struct master *m, const struct wd_config *cfg)
{
    struct stat a, b;

    if (cfg->pidfile == NULL || m->pidfile == NULL)
        return cfg->pidfile != m->pidfile;
    if (strcmp(m->pidfile, cfg->pidfile) == 0)
        return 0;
    return stat(m->pidfile, &a) != 0 || stat(cfg->pidfile, &b) != 0 ||
           a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

static void
reload_commit(struct master *m)
{
    struct reload *rl = &m->rl;
    int pending = rl->pending;

    /* the old generation goes, oldest first (it all gets TERM now) */
    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];

        if (p->gen != rl->gen && (p->used || p->pid > 0) && !p->stopping)
            proc_stop(p, SIGTERM, m->cfg->graceful_timeout);
    }
    /* sockets of removed addresses: our copies close now, the old
       workers' copies when they exit */
    wd_listen_release(m->ls, m->nls, rl->ls, rl->nls);
    m->ls = rl->ls;
    m->nls = rl->nls;
    free(m->fds);
    m->fds = rl->fds;
    rl->fds = NULL;
    if (!rl->keep_stats) {
        wd_stats_close(m->stats);
        m->stats = rl->stats;
    }
    /* a new pidfile path (written at the start): the old one goes */
    if (pidfile_moves(m, rl->cfg)) {
        wd_pidfile_remove(m->pidfile);
        WD_FREE(m->pidfile);
        if (rl->new_pidfile && (m->pidfile = strdup(rl->cfg->pidfile)) == NULL)
            wd_log(WD_LOG_ERROR, WD_CAT_MASTER,
                   "out of memory: pidfile %s will not be removed at exit",
                   rl->cfg->pidfile);
    }
    /* kept sockets take the new backlog and permissions only now */
    wd_listen_settle(rl->cfg, m->ls, m->nls);
    if (m->cfg_owned) {
        wd_config_cleanup(m->cfg);
        free(m->cfg);
    }
    m->cfg = rl->cfg;
    m->cfg_owned = 1;
    m->gen = rl->gen;
    m->target = m->cfg->workers;
    m->reloads++;
    memset(rl, 0, sizeof *rl);
    rl->pending = pending;
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Reload complete: generation %u",
           m->gen);
    reload_rehup_later(m);
}

/* Called when a new-generation worker became ready. */
static void
reload_progress(struct master *m)
{
    struct reload *rl = &m->rl;
    struct proc *oldest = NULL;
    size_t ready = 0;

    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];

        if (p->gen == rl->gen && p->pid > 0 && p->ready && !p->stopping)
            ready++;
        if (p->gen != rl->gen && p->pid > 0 && !p->stopping &&
            (oldest == NULL || p->started < oldest->started))
            oldest = p;
    }
    if (ready >= (size_t)rl->cfg->workers) {
        reload_commit(m);
        return;
    }
    if (oldest != NULL)
        proc_stop(oldest, SIGTERM, m->cfg->graceful_timeout);
}

/* Back to the committed configuration's logs after a failed reload. */
static void
logs_back(struct master *m)
{
    if (wd_log_open(m->cfg->error_log, m->cfg->access_log) != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "cannot reopen logs: %s",
               strerror(errno));
    wd_log_set_level((enum wd_log_level)m->cfg->log_level);
}

static void
reload_abort(struct master *m, int status)
{
    struct reload *rl = &m->rl;
    int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                   : WEXITSTATUS(status);

    wd_log(WD_LOG_ERROR, WD_CAT_MASTER,
           "reload failed: worker failed to boot (exit status %d); keeping "
           "previous configuration",
           code);
    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];

        if (p->gen == rl->gen && (p->used || p->pid > 0))
            proc_stop(p, SIGTERM, m->cfg->graceful_timeout);
    }
    logs_back(m);
    reload_free(m);
    /* old workers already told to go are replaced */
    fill_positions(m);
}

/* ERR gets what wd_log_open's RC (and errno) say: which log, its path. */
static void
log_open_failed(const struct wd_config *cfg, int rc, char *err, size_t len)
{
    int access = rc == -2;

    snprintf(err, len, "cannot open %s %s: %s",
             access ? "access_log" : "error_log",
             access ? cfg->access_log
                    : (cfg->error_log != NULL ? cfg->error_log : "-"),
             strerror(errno));
}

/*
 * -t refuses a path no start could use whoever runs it: an empty one, a
 * directory where a file goes, a file where a directory goes.  A missing
 * directory is not refused (the service manager may make it at start:
 * LogsDirectory=, RuntimeDirectory=), nor a permission (the master opens
 * these as root, and -t is run as the service's user to check the app).
 * 0 when PATH passes; else -1 with errno.
 */
static int
usable_path(const char *path, int how)
{
    if (path[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    if (wd_path_writable(path, how) == 0 || errno == ENOENT ||
        errno == EACCES || errno == EPERM)
        return 0;
    return -1;
}

/* The unix socket start would bind: a path that fits; a socket already
   at the path (ours, before a reload) is replaced, anything else stays
   and the bind would fail. */
static int
unix_socket_usable(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        snprintf(err, errlen, "cannot listen on unix:%s: path too long",
                 path);
        return -1;
    }
    if (stat(path, &st) == 0) {
        if (S_ISSOCK(st.st_mode))
            return 0;
        errno = EADDRINUSE;
    } else if (usable_path(path, WD_PATH_OPEN) == 0) {
        return 0;
    }
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path,
             strerror(errno));
    return -1;
}

int
wd_master_check(const struct wd_config *cfg, char *err, size_t errlen)
{
    const char *elog = cfg->error_log != NULL ? cfg->error_log : "-";

    if (cfg->unix_socket != NULL &&
        unix_socket_usable(cfg->unix_socket, err, errlen) != 0)
        return -1;
    if (strcmp(elog, "-") != 0 && usable_path(elog, WD_PATH_OPEN) != 0) {
        log_open_failed(cfg, -1, err, errlen);
        return -1;
    }
    if (cfg->access_log != NULL && strcmp(cfg->access_log, "-") != 0 &&
        usable_path(cfg->access_log, WD_PATH_OPEN) != 0) {
        log_open_failed(cfg, -2, err, errlen);
        return -1;
    }
    if (cfg->pidfile != NULL &&
        usable_path(cfg->pidfile, WD_PATH_RENAME) != 0) {
        snprintf(err, errlen, "cannot write pidfile %s: %s", cfg->pidfile,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static void
reload_failed(const char *msg)
{
    wd_log(WD_LOG_ERROR, WD_CAT_MASTER,
           "reload failed: %s; keeping previous configuration", msg);
}

static void
reload_start(struct master *m)
{
    struct reload *rl = &m->rl;
    enum wd_cli_action action;
    struct wd_config *ncfg;
    char err[1024];
    int rc;

    if (m->phase != PHASE_RUN)
        return;
    if (rl->active || m->booting) {
        wd_log(WD_LOG_INFO, WD_CAT_MASTER,
               "reload in progress; another one follows");
        rl->pending = 1;
        return;
    }
    rl->pending = 0;
    if ((ncfg = calloc(1, sizeof *ncfg)) == NULL ||
        wd_config_init(ncfg) != 0) {
        free(ncfg);
        reload_failed("out of memory");
        return;
    }
    /* 1: file + original command line, fully validated */
    if (wd_config_from_argv(ncfg, m->argc, m->argv, &action, err,
                            sizeof err) != 0) {
        wd_config_cleanup(ncfg);
        free(ncfg);
        reload_failed(err);
        return;
    }
    if (ncfg->daemon != m->cfg->daemon) {
        wd_log(WD_LOG_WARNING, WD_CAT_MASTER,
               "daemon cannot be changed by a reload, ignored");
        ncfg->daemon = m->cfg->daemon;
    }
    rl->cfg = ncfg;
    if (ncfg->umask >= 0) {
        rl->old_umask = umask((mode_t)ncfg->umask);
        rl->umask_set = 1;
    }
    /* 3: same addresses keep their fds, new ones are bound */
    if (wd_listen_reload(ncfg, m->ls, m->nls, &rl->ls, &rl->nls, err,
                         sizeof err) != 0)
        goto fail;
    if ((rl->fds = calloc(rl->nls, sizeof *rl->fds)) == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rl->nls; i++)
        rl->fds[i] = rl->ls[i].fd;
    if (ncfg->stats != NULL && m->stats != NULL &&
        strcmp(ncfg->stats, wd_stats_addr(m->stats)) == 0) {
        rl->keep_stats = 1;
    } else if (ncfg->stats != NULL) {
        rl->stats = wd_stats_open(m->base, ncfg->stats, stats_fill, m, err,
                                  sizeof err);
        if (rl->stats == NULL)
            goto fail;
    }
    /* 2: logs, paths may have changed */
    if ((rc = wd_log_open(ncfg->error_log, ncfg->access_log)) != 0) {
        log_open_failed(ncfg, rc, err, sizeof err);
        goto fail;
    }
    /* 4: a new pidfile is checked as at start-up and written now; the old
       one goes when the reload commits */
    if (ncfg->pidfile != NULL && pidfile_moves(m, ncfg)) {
        if (wd_pidfile_check(ncfg->pidfile, err, sizeof err) != 0 ||
            wd_pidfile_write(ncfg->pidfile, err, sizeof err) != 0)
            goto fail_logs;
        rl->new_pidfile = 1;
    }
    wd_log_set_level((enum wd_log_level)ncfg->log_level);
    wd_chown_logs(ncfg);

    /* 5: the new generation, next to the old one */
    rl->active = 1;
    rl->gen = m->gen + 1;
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Reloading: starting generation %u",
           rl->gen);
    for (int i = 0; i < ncfg->workers; i++) {
        struct proc *p = proc_new(m, rl->gen);

        if (p == NULL || spawn(m, p) != 0) {
            if (p != NULL)
                p->used = 0;
            reload_abort(m, 0);
            return;
        }
    }
    return;

fail_logs:
    logs_back(m); /* the failure is reported where the old config logs */
fail:
    reload_free(m);
    reload_failed(err);
}

static void
rehup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;

    if (m->rl.pending)
        reload_start(m);
}

/* ------------------------------------------------------------------ */
/* worker events                                                       */

static void
ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proc *p = arg;
    struct master *m = p->m;
    char c;
    ssize_t n = read(fd, &c, 1);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        event_add(p->ready_ev, NULL);
        return;
    }
    close_ready(p);
    if (n != 1)
        return; /* died before it was ready: SIGCHLD tells the rest */
    p->ready = 1;
    if (m->phase != PHASE_RUN)
        return;
    if (m->rl.active && p->gen == m->rl.gen) {
        reload_progress(m);
        return;
    }
    if (!m->booting)
        return;
    /* the first worker imported the app: boot the others */
    for (size_t i = 0; i < m->nprocs; i++)
        if (m->procs[i].used && m->procs[i].pid == 0 &&
            spawn(m, &m->procs[i]) != 0)
            schedule_respawn(m, &m->procs[i], 1.0);
    for (size_t i = 0; i < m->nprocs; i++)
        if (m->procs[i].used && !m->procs[i].ready)
            return;
    m->booting = 0;
    wd_daemon_report(0); /* every first worker serves */
    reload_rehup_later(m);
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
log_exit(pid_t pid, int status)
{
    char name[32];

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
    } else {
        int code = WEXITSTATUS(status);

        wd_log(code != 0 ? WD_LOG_ERROR : WD_LOG_INFO, WD_CAT_MASTER,
               "Worker (pid:%ld) exited with code %d", (long)pid, code);
    }
}

static void
reaped(struct master *m, struct proc *p, int status)
{
    double lived = now_mono() - p->started;
    int was_ready = p->ready, retired = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    struct wd_sb_info info;
    pid_t pid = p->pid;

    /* the dead worker's requests still count (SPEC.md 17) */
    if (p->sb >= 0) {
        wd_sb_read(wd_sb_slot(m->sb, p->sb), &info);
        m->dead_requests += info.requests;
        /* a TERM from outside also ends in a graceful stop and exit 0,
           but only max_requests marks the slot (SPEC.md 4.5) */
        retired = info.retiring && code == 0;
        wd_sb_release(m->sb, p->sb);
    }
    p->sb = -1;
    close_ready(p);
    p->pid = 0;
    p->ready = 0;

    if (m->phase != PHASE_RUN || p->stopping) {
        /* asked to stop: stop, TTOU, reload */
        wd_log(WD_LOG_DEBUG, WD_CAT_MASTER, "Worker (pid:%ld) stopped",
               (long)pid);
        p->used = 0;
        p->stopping = 0;
        finish_if_done(m);
        return;
    }
    /* a max_requests retirement is expected: no "exited" report (4.5) */
    if (!(retired && !p->abort_sent))
        log_exit(pid, status);
    if (m->booting && !was_ready &&
        (code == WD_EXIT_BOOT || code == WD_EXIT_APP)) {
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "%s",
               code == WD_EXIT_APP ? "App failed to load."
                                   : "Worker failed to boot.");
        m->exit_code = 1;
        begin_stop(m, PHASE_FAST);
        return;
    }
    if (m->rl.active && p->gen == m->rl.gen && !was_ready) {
        p->used = 0;
        reload_abort(m, status);
        return;
    }
    if (p->gen != m->gen && !(m->rl.active && p->gen == m->rl.gen)) {
        p->used = 0; /* a generation on its way out */
        return;
    }
    /* max_requests retirement: expected, immediate (SPEC.md 4.4) */
    if (retired && !p->abort_sent) {
        p->short_deaths = 0;
        schedule_respawn(m, p, 0);
        return;
    }
    schedule_respawn(m, p, backoff(p, lived));
}

static void
reap_children(struct master *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < m->nprocs; i++) {
            if (m->procs[i].pid == pid) {
                reaped(m, &m->procs[i], status);
                break;
            }
        }
    }
}

/* Every TICK_MS: stop deadlines; every second: heartbeats (SPEC.md 4.6). */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    double now = now_mono();
    int check_hb = now - m->last_hb_check >= HEARTBEAT_CHECK_SECONDS;
    int64_t now_ms = wd_sb_now_ms();

    if (check_hb)
        m->last_hb_check = now;
    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];
        const struct wd_config *cfg;
        const int *fds;
        size_t nfds;
        struct wd_sb_info info;

        if (p->pid <= 0)
            continue;
        if (p->stopping) {
            if (p->stop_deadline > 0 && now >= p->stop_deadline) {
                kill(p->pid, SIGKILL);
                p->stop_deadline = 0;
            }
            continue;
        }
        if (!check_hb || !p->ready || p->sb < 0)
            continue;
        cfg = proc_config(m, p, &fds, &nfds);
        if (cfg->worker_timeout <= 0)
            continue;
        wd_sb_read(wd_sb_slot(m->sb, p->sb), &info);
        if (now_ms - info.heartbeat_ms <= (int64_t)cfg->worker_timeout * 1000)
            continue;
        if (!p->abort_sent) {
            wd_log(WD_LOG_CRITICAL, WD_CAT_MASTER, "WORKER TIMEOUT (pid:%ld)",
                   (long)p->pid);
            kill(p->pid, SIGABRT);
            p->abort_sent = 1;
            m->timed_out++;
        } else {
            kill(p->pid, SIGKILL);
        }
    }
}

static void
on_ttou(struct master *m)
{
    struct proc *oldest = NULL;

    if (m->target <= 1)
        return;
    m->target--;
    for (size_t i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];

        if (!p->used || p->gen != m->gen || p->stopping)
            continue;
        /* a position waiting for its respawn goes first */
        if (p->pid == 0) {
            oldest = p;
            break;
        }
        if (oldest == NULL || p->started < oldest->started)
            oldest = p;
    }
    if (oldest != NULL)
        proc_stop(oldest, SIGTERM, m->cfg->graceful_timeout);
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
    case SIGHUP:
        reload_start(m);
        break;
    case SIGUSR1:
        if (wd_log_reopen() != 0)
            wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "cannot reopen logs: %s",
                   strerror(errno));
        wd_chown_logs(m->cfg);
        for (size_t i = 0; i < m->nprocs; i++)
            if (m->procs[i].pid > 0)
                kill(m->procs[i].pid, SIGUSR1);
        break;
    case SIGTTIN:
        if (m->phase == PHASE_RUN) {
            m->target++;
            fill_positions(m);
        }
        break;
    case SIGTTOU:
        if (m->phase == PHASE_RUN)
            on_ttou(m);
        break;
    case SIGWINCH:
        if (!m->cfg->daemon) {
            wd_log(WD_LOG_DEBUG, WD_CAT_MASTER,
                   "SIGWINCH ignored: not daemonized");
            break;
        }
        m->target = 0;
        for (size_t i = 0; i < m->nprocs; i++)
            if (m->procs[i].used && m->procs[i].gen == m->gen)
                proc_stop(&m->procs[i], SIGTERM, m->cfg->graceful_timeout);
        break;
    case SIGUSR2:
        wd_log(WD_LOG_WARNING, WD_CAT_MASTER, "USR2 not supported, ignored");
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
/* stats (SPEC.md 17)                                                  */

/* Connections waiting in FD's accept queue; -1 when not exposed. */
static long
listen_queue(int fd)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;
    struct tcp_info ti;
    socklen_t tlen = sizeof ti;

    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &slen) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return -1;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) != 0)
        return -1;
    return (long)ti.tcpi_unacked; /* on a listener: the accept queue */
}

static void
stats_fill(void *arg, struct wd_stats_snap *s)
{
    struct master *m = arg;
    int64_t now_ms = wd_sb_now_ms();
    double wall = now_wall();
    size_t nw = 0;

    s->version = PACKAGE_VERSION;
    s->pid = (long)getpid();
    s->start_time = (int64_t)m->start_time;
    s->uptime = wall - (double)m->start_time;
    s->reloads = m->reloads;
    s->generation = m->gen;
    s->workers_target = m->target;
    s->workers_spawned = m->spawned;
    s->workers_timed_out = m->timed_out;
    s->requests = m->dead_requests;
    s->listen = calloc(m->nls ? m->nls : 1, sizeof *s->listen);
    s->listen_queue = calloc(m->nls ? m->nls : 1, sizeof *s->listen_queue);
    if (s->listen != NULL && s->listen_queue != NULL) {
        for (size_t i = 0; i < m->nls; i++) {
            const char *name = m->ls[i].name;

            if (strncmp(name, "http://", 7) == 0)
                name += 7;
            s->listen[i] = name;
            s->listen_queue[i] = listen_queue(m->ls[i].fd);
        }
        s->nlisten = m->nls;
    }
    s->workers = calloc(m->nprocs ? m->nprocs : 1, sizeof *s->workers);
    for (size_t i = 0; i < m->nprocs; i++) {
        const struct proc *p = &m->procs[i];
        struct wd_stats_worker *w;
        struct wd_sb_info info;

        if (p->pid <= 0 || p->sb < 0)
            continue;
        wd_sb_read(wd_sb_slot(m->sb, p->sb), &info);
        s->requests += info.requests;
        if (s->workers == NULL)
            continue;
        w = &s->workers[nw++];
        w->id = p->id;
        w->pid = (long)p->pid;
        w->generation = p->gen;
        if (p->stopping || info.state == WD_SB_STOPPING)
            w->status = "stopping";
        else if (!p->ready)
            w->status = "booting";
        else if (info.busy_threads > 0)
            w->status = "busy";
        else
            w->status = "idle";
        w->started_at = info.started_at;
        w->requests = info.requests;
        w->active_requests = info.busy_threads;
        w->queued_requests = info.queue_depth;
        w->connections = info.connections;
        w->threads = info.threads;
        w->busy_threads = info.busy_threads;
        w->bytes_sent = info.bytes_out;
        w->exceptions = info.exceptions;
        w->last_heartbeat = wall - (double)(now_ms - info.heartbeat_ms) / 1e3;
        w->respawns = p->respawns;
    }
    s->nworkers = nw;
}

/* ------------------------------------------------------------------ */

static char **
copy_argv(int argc, char **argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof *copy);

    if (copy == NULL)
        return NULL;
    for (int i = 0; i < argc; i++)
        if ((copy[i] = strdup(argv[i])) == NULL)
            return NULL; /* the partial copy is dropped at exit */
    return copy;
}

static void
master_cleanup(struct master *m)
{
    for (size_t i = 0; i < m->nprocs; i++) {
        close_ready(&m->procs[i]);
        if (m->procs[i].respawn_ev != NULL)
            event_free(m->procs[i].respawn_ev);
    }
    for (size_t i = 0; i < m->nsigev; i++)
        event_free(m->sigev[i]);
    if (m->tick_ev != NULL)
        event_free(m->tick_ev);
    if (m->rehup_ev != NULL)
        event_free(m->rehup_ev);
    if (m->rl.active)
        reload_free(m);
    wd_stats_close(m->stats);
    if (m->base != NULL)
        event_base_free(m->base);
    wd_listen_close_all(m->ls, m->nls, 1);
    wd_pidfile_remove(m->pidfile);
    free(m->pidfile);
    free(m->fds);
    free(m->procs);
    wd_sb_free(m->sb);
    if (m->cfg_owned) {
        wd_config_cleanup(m->cfg);
        free(m->cfg);
    }
    if (m->argv != NULL)
        for (int i = 0; i < m->argc; i++)
            free(m->argv[i]);
    free(m->argv);
}

/* Start-up failure: one line on stderr (and in the log), exit 1. */
static int
fail_start(struct master *m, const char *msg)
{
    const char *elog = m->cfg->error_log;

    fprintf(stderr, "waitressd: %s\n", msg);
    if (elog != NULL && strcmp(elog, "-") != 0)
        wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "%s", msg);
    m->exit_code = 1;
    return 1;
}

static int
master_setup(struct master *m, int argc, char **argv)
{
    struct wd_config *cfg = m->cfg;
    struct timeval tick = {0, TICK_MS * 1000};
    uint32_t nslots;
    char err[512];
    int rc;

    if (cfg->umask >= 0)
        umask((mode_t)cfg->umask);
    /* a second instance started by mistake stops here, before it opens,
       writes to or chowns the running one's logs: one line, stderr only */
    if (wd_pidfile_check(cfg->pidfile, err, sizeof err) != 0) {
        fprintf(stderr, "waitressd: %s\n", err);
        m->exit_code = 1;
        return 1;
    }
    if ((rc = wd_log_open(cfg->error_log, cfg->access_log)) != 0) {
        /* no log of ours is open yet: the one line goes to stderr only */
        log_open_failed(cfg, rc, err, sizeof err);
        fprintf(stderr, "waitressd: %s\n", err);
        m->exit_code = 1;
        return 1;
    }
    wd_log_set_level((enum wd_log_level)cfg->log_level);
    wd_log_release(); /* the configuration's warnings, now filtered */
    wd_chown_logs(cfg);
    /* after the logs: a refusal is one line on stderr and in error_log */
    if (wd_pidfile_writable(cfg->pidfile, err, sizeof err) != 0)
        return fail_start(m, err);
    event_set_log_callback(libevent_log_cb);

    /* bound before detaching, so that a bind error reaches the terminal;
       announced after, so that every record carries the daemon's PID */
    if (wd_listen_open_all(cfg, &m->ls, &m->nls, err, sizeof err) != 0)
        return fail_start(m, err);
    if (cfg->daemon && wd_daemonize(cfg, err, sizeof err) != 0)
        return fail_start(m, err);
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Starting waitressd %s",
           PACKAGE_VERSION);
    wd_listen_log(m->ls, m->nls);
    m->start_time = time(NULL);
    if (cfg->pidfile != NULL) {
        if (wd_pidfile_write(cfg->pidfile, err, sizeof err) != 0)
            return fail_start(m, err);
        m->pidfile = strdup(cfg->pidfile);
    }
    wd_proctitle_init(argc, argv);
    wd_proctitle_set("waitressd: master");

    m->target = cfg->workers > 0 ? cfg->workers : 1;
    nslots = (uint32_t)m->target * 2 + SPARE_SLOTS;
    m->sb = wd_sb_new(nslots);
    m->nprocs = nslots;
    m->procs = calloc(m->nprocs, sizeof *m->procs);
    m->fds = calloc(m->nls, sizeof *m->fds);
    m->base = event_base_new();
    if (m->sb == NULL || m->procs == NULL || m->fds == NULL ||
        m->base == NULL)
        return fail_start(m, "master set-up failed");
    wd_sb_attach(m->sb);
    master_pid = getpid(); /* after the daemon's forks */
    for (size_t i = 0; i < m->nls; i++)
        m->fds[i] = m->ls[i].fd;
    for (size_t i = 0; i < m->nprocs; i++) {
        m->procs[i].m = m;
        m->procs[i].id = (int)i + 1;
        m->procs[i].ready_fd = -1;
        m->procs[i].sb = -1;
    }
    for (size_t i = 0; i < WD_ARRAY_LEN(master_signals); i++) {
        struct event *ev =
            evsignal_new(m->base, master_signals[i].sig, signal_cb, m);

        if (ev == NULL || event_add(ev, NULL) != 0)
            return fail_start(m, "cannot watch signals");
        m->sigev[m->nsigev++] = ev;
    }
    m->tick_ev = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    m->rehup_ev = evtimer_new(m->base, rehup_cb, m);
    if (m->tick_ev == NULL || m->rehup_ev == NULL ||
        event_add(m->tick_ev, &tick) != 0)
        return fail_start(m, "master set-up failed");
    if (cfg->stats != NULL) {
        m->stats = wd_stats_open(m->base, cfg->stats, stats_fill, m, err,
                                 sizeof err);
        if (m->stats == NULL)
            return fail_start(m, err);
        wd_log(WD_LOG_INFO, WD_CAT_MASTER, "Stats on %s", cfg->stats);
    }
    return 0;
}

int
wd_master_run(struct wd_config *cfg, int argc, char **argv,
              wd_worker_fn worker)
{
    struct master m;

    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.worker_fn = worker;
    m.gen = 1;
    m.argc = argc;
    signal(SIGPIPE, SIG_IGN);
    if ((m.argv = copy_argv(argc, argv)) == NULL) {
        fprintf(stderr, "waitressd: out of memory\n");
        return 1;
    }
    if (master_setup(&m, argc, argv) != 0)
        goto out;

    m.booting = 1;
    for (int i = 0; i < m.target; i++)
        if (proc_new(&m, m.gen) == NULL)
            break;
    if (spawn(&m, &m.procs[0]) != 0) {
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
    wd_daemon_report(m.exit_code); /* stopped before all were ready */
    return m.exit_code;
}
