/*
 * master.h - the supervising process: listeners, workers, signals.
 * No Python here, ever.
 */
#ifndef WD_MASTER_MASTER_H
#define WD_MASTER_MASTER_H

#include <stddef.h>

struct wd_config;
struct wd_listener;

/*
 * A worker's entry point, called in the child right after fork with the
 * listening sockets (non-blocking, already listening) and the worker's
 * scoreboard slot.  READY_FD is a pipe the worker writes one byte to once
 * it serves.  Returns the worker's exit status (WD_EXIT_*); the child then
 * _exit()s with it.
 */
typedef int (*wd_worker_fn)(const struct wd_config *cfg, const int *fds,
                            size_t nfds, int slot, int ready_fd);

/*
 * Run the master until it stops.  CFG is the validated configuration
 * (ownership stays with the caller); ARGV is kept to rebuild the
 * configuration on SIGHUP.  Returns the process exit status.
 */
int wd_master_run(struct wd_config *cfg, int argc, char **argv,
                  wd_worker_fn worker);

/*
 * For -t: what master start-up would refuse whoever starts it, found
 * without creating anything: a unix socket path too long or taken by a
 * file, an empty log or pidfile path, a directory where a file goes
 * ("cannot open error_log PATH: WHY", as start says).  A missing
 * directory or a permission is not refused: a service manager may make
 * the directory at start, and the master (root) may write where the user
 * running -t cannot.  A live pidfile is no failure here.  0, or -1 with
 * one line in ERR.
 */
int wd_master_check(const struct wd_config *cfg, char *err, size_t errlen);

#endif
