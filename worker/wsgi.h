/*
 * wsgi.h - the embedded CPython and the WSGI bridge.
 *
 * The only part of waitressd that includes Python.h (wsgi*.c).  Python is
 * initialised in the worker after fork, never in the master.
 */
#ifndef WD_WORKER_WSGI_H
#define WD_WORKER_WSGI_H

struct wd_config;
struct wd_task;

/*
 * Main thread of a worker, before the loop and pool start: initialise
 * CPython (no signal handlers), set sys.path (pythonpath prepended, the
 * start directory appended), import the app (calling it when cfg->call),
 * run logging.basicConfig(), then release the GIL.  Returns 0, or a worker
 * exit status (WD_EXIT_BOOT, WD_EXIT_APP) after printing the reason
 * ("Error: Cannot import WSGI application 'NAME': REASON") to stderr.
 */
int wd_wsgi_init(const struct wd_config *cfg, int nworkers);

/* Pool thread start / end: register / drop its Python thread state.
 * Called without the GIL; return without it. */
void wd_wsgi_thread_start(void);
void wd_wsgi_thread_stop(void);

/* Pool or home thread, between thread_start and thread_stop: take / give
 * back the GIL around a run of tasks (the pool's enter / leave, and the
 * home thread's around the tasks it runs itself, worker/inline.c). */
void wd_wsgi_enter(void);
void wd_wsgi_leave(void);

/* The main thread, after wd_wsgi_init: wait, GIL released, until DONE_FD
 * is readable, running the Python signal handlers and pending calls that
 * only the main thread may run. */
void wd_wsgi_main_wait(int done_fd);

/* Any thread: bodies the loop has finished sending wait to be dropped.
 * The GIL held: drop them (the loop thread's chores, inline.c). */
int wd_wsgi_released_pending(void);
void wd_wsgi_drop_released(void);

/* Pool thread: run one task end to end.  Inside enter/leave the GIL is
 * already held; otherwise the call takes and releases it itself. */
void wd_wsgi_run(struct wd_task *t);

/* Worker exit: finalize nothing that could hang; flush sys.stderr. */
void wd_wsgi_shutdown(void);

/* Signal handler (async-signal-safe): write every Python thread's stack
 * to FD, as faulthandler does; nothing before Python is up. */
void wd_wsgi_dump_stacks(int fd);

/*
 * Check mode (waitressd -t): resolve the app in a throw-away interpreter.
 * 0, or -1 with the message in ERR.
 */
int wd_wsgi_check_app(const struct wd_config *cfg, char *err, size_t errlen);

#endif
