/*
 * worker.h - one worker process: Python, the thread pool and the libevent
 * loop that owns every client connection.
 */
#ifndef WD_WORKER_WORKER_H
#define WD_WORKER_WORKER_H

#include <stddef.h>

struct wd_config;

/* Entry point after fork; see wd_worker_fn in master/master.h. */
int wd_worker_main(const struct wd_config *cfg, const int *fds, size_t nfds,
                   int slot, int ready_fd);

#endif
