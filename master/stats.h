/*
 * stats.h - the master's stats endpoint (SPEC.md 17).
 *
 * A listening socket on the master's own event loop, never on the
 * application's listeners.  Each connection's request head is read (at
 * most 8 KiB or 2 s), then one HTTP/1.0 response is written and the
 * connection closed: the JSON document for any path, the Prometheus
 * text format for /metrics.
 *
 * The figures come from a snapshot the master fills on demand; the
 * renderers are pure functions (unit-tested).
 */
#ifndef WD_MASTER_STATS_H
#define WD_MASTER_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;

struct wd_stats_worker {
    int id;
    long pid;
    unsigned generation;
    const char *status; /* booting idle busy stopping */
    int64_t started_at; /* epoch seconds */
    uint64_t requests;
    uint32_t active_requests, queued_requests, connections;
    uint32_t threads, busy_threads;
    uint64_t bytes_sent, exceptions;
    double last_heartbeat; /* epoch seconds */
    unsigned respawns;
};

struct wd_stats_snap {
    const char *version;
    long pid;
    int64_t start_time;
    double uptime;
    unsigned reloads, generation;
    int workers_target;
    const char **listen; /* "127.0.0.1:8080", "unix:/path" */
    long *listen_queue;  /* -1: null (not exposed) */
    size_t nlisten;
    uint64_t workers_spawned, workers_timed_out, requests;
    struct wd_stats_worker *workers;
    size_t nworkers;
};

/* Render S; malloc'd, NUL-terminated, length in *LEN.  NULL: no memory. */
char *wd_stats_json(const struct wd_stats_snap *s, size_t *len);
char *wd_stats_metrics(const struct wd_stats_snap *s, size_t *len);

/*
 * Fill SNAP for one response.  The arrays listen, listen_queue and
 * workers must be malloc'd (the endpoint frees them); strings are only
 * read during the call.
 */
typedef void (*wd_stats_fill_fn)(void *arg, struct wd_stats_snap *snap);

struct wd_stats;

/*
 * Listen on ADDR ("host:port", "[v6]:port", "unix:/path" or "/path") on
 * BASE.  NULL with one line in ERR on failure.
 */
struct wd_stats *wd_stats_open(struct event_base *base, const char *addr,
                               wd_stats_fill_fn fill, void *arg, char *err,
                               size_t errlen);
/* Close the listener and every connection; unlink a Unix path. NULL ok. */
void wd_stats_close(struct wd_stats *st);
/* In a forked child: close the descriptors only (the loop is gone). */
void wd_stats_close_fds(struct wd_stats *st);
/* The address it was opened with. */
const char *wd_stats_addr(const struct wd_stats *st);

#endif
