/*
 * scoreboard.h - per-worker slots in shared memory (STYLE.md 7,
 * ARCHITECTURE.md "Processes", SPEC.md 4.6 and 17).
 *
 * The master maps one anonymous shared region before forking any worker
 * (wd_sb_new); every worker inherits it.  A slot belongs to one worker
 * process at a time, indexed by the `slot` number the master passes to
 * wd_worker_main.  Make twice as many slots as workers so that a reload's
 * new generation can start while the old one drains.
 *
 * Concurrency: lock-free C11 atomics only (no mutex can live safely in
 * memory shared with a process that may be SIGKILLed).  Each field has
 * one writer role:
 *   master  pid, generation, started_at (wd_sb_claim / wd_sb_set_pid /
 *           wd_sb_release);
 *   worker  everything else, from its loop thread, except busy_threads and
 *           exceptions, which pool threads update with atomic adds.
 * Readers (the master: timeouts, stats) may see a slot mid-update; each
 * field is individually consistent, which is all the stats need.  Counters
 * use relaxed ordering; claim and release use release/acquire on `pid` so
 * a reader that sees a pid also sees the fields reset before it.
 *
 * No process or Python knowledge here: common/ module, any thread.
 */
#ifndef WD_COMMON_SCOREBOARD_H
#define WD_COMMON_SCOREBOARD_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/* Atomics shared between processes must not hide a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shm atomics (int)");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shm atomics (long long)");

#define WD_SB_MAGIC 0x77647362u /* "wdsb" */
#define WD_SB_VERSION 2u

/* pid values that are not processes. */
#define WD_SB_PID_FREE 0
#define WD_SB_PID_RESERVED (-1) /* claimed, fork not done yet */

/* Worker states (SPEC.md 17 "status"); FREE for an unused slot. */
enum wd_sb_state {
    WD_SB_FREE = 0,
    WD_SB_BOOTING = 1, /* set by wd_sb_claim */
    WD_SB_IDLE = 2,
    WD_SB_BUSY = 3, /* at least one request running */
    WD_SB_STOPPING = 4,
};

struct wd_sb_slot {
    alignas(64) _Atomic int32_t pid; /* master; WD_SB_PID_* or a pid */
    _Atomic uint32_t generation;     /* master, at claim */
    _Atomic uint32_t state;          /* enum wd_sb_state; worker */
    _Atomic uint32_t threads;        /* worker, pool size */
    _Atomic uint32_t queue_depth;    /* worker loop: tasks waiting */
    _Atomic uint32_t busy_threads;   /* pool threads running a request */
    _Atomic uint32_t connections;    /* worker loop: open channels */
    _Atomic uint32_t accept_state;   /* enum wd_sb_accept; worker loop */
    _Atomic uint32_t retiring;       /* worker: stopping for max_requests */
    _Atomic int32_t kick_tid;        /* worker: the thread a sibling's
                                        fair-accept kick goes to (one
                                        that never runs the app), or 0 */
    _Atomic int64_t heartbeat_ms;    /* worker loop, CLOCK_MONOTONIC */
    _Atomic int64_t full_since_ms;   /* worker loop: every thread taken
                                        since (heartbeat clock), or 0 */
    _Atomic int64_t active_ms;       /* worker loop: a request of its own
                                        last ended (heartbeat clock), or
                                        0 */
    _Atomic int64_t started_at;      /* master, at claim; epoch seconds */
    _Atomic uint64_t requests;       /* finished requests */
    _Atomic uint64_t bytes_in;       /* bytes read from clients */
    _Atomic uint64_t bytes_out;      /* bytes written to clients */
    _Atomic uint64_t exceptions;     /* application exceptions (SPEC 13) */
};

/*
 * Whether a worker takes new connections, for its siblings' fair-accept
 * rule (wd_sb_better_sibling).  OFF: not started, stopping, or paused by
 * connection_limit or EMFILE; ARMED: its listener events are in its loop,
 * so the kernel wakes it for a new connection; WAITING: willing, but it
 * left new connections to a better sibling and the kernel does not wake
 * it until it re-arms; QUEUED: paused while its task queue is deeper than
 * its threads, back by itself once the queue drains.
 */
enum wd_sb_accept {
    WD_SB_ACCEPT_OFF = 0,
    WD_SB_ACCEPT_ARMED = 1,
    WD_SB_ACCEPT_WAITING = 2,
    WD_SB_ACCEPT_QUEUED = 3,
};

struct wd_sb {
    uint32_t magic, version, nslots; /* written once, before any fork */
    /* one past the highest slot ever claimed (master, at claim; never
       lowered): the siblings' scans, once per accepted connection, stop
       here instead of walking every spare slot's cache line */
    _Atomic uint32_t used;
    struct wd_sb_slot slot[];
};

/*
 * Map a scoreboard of NSLOTS free slots (MAP_SHARED | MAP_ANONYMOUS), for
 * the master before it forks.  NULL with errno (EINVAL for 0 slots).
 */
struct wd_sb *wd_sb_new(uint32_t nslots);
/* Unmap (master at exit; a child may unmap its inherited copy). NULL ok. */
void wd_sb_free(struct wd_sb *sb);

/*
 * Master: reserve a free slot for a worker of GENERATION about to be
 * forked.  Its fields are reset, state is BOOTING, the heartbeat is now,
 * started_at is the wall clock, pid is WD_SB_PID_RESERVED.  Returns the
 * slot index, or -1 with errno ENOSPC when every slot is taken.
 */
int wd_sb_claim(struct wd_sb *sb, uint32_t generation);
/* Master, after fork: record the worker's PID in SLOT. */
void wd_sb_set_pid(struct wd_sb *sb, int slot, pid_t pid);
/* Master, after reaping the worker (read its counters first): free SLOT. */
void wd_sb_release(struct wd_sb *sb, int slot);

/*
 * The process's scoreboard: the master records the mapping here before it
 * forks, so a worker (which only gets its slot number) finds it again.
 */
void wd_sb_attach(struct wd_sb *sb);
struct wd_sb *wd_sb_attached(void); /* NULL when none */

/* How many slots from the first may hold a worker (see `used`). */
uint32_t wd_sb_used(struct wd_sb *sb);

/* Slot I, or NULL when I is out of range. */
struct wd_sb_slot *wd_sb_slot(struct wd_sb *sb, int i);

/* CLOCK_MONOTONIC in milliseconds (the heartbeat's clock). */
int64_t wd_sb_now_ms(void);

/* Worker setters: relaxed stores / adds on its own slot. */
void wd_sb_set_state(struct wd_sb_slot *s, enum wd_sb_state state);
void wd_sb_set_threads(struct wd_sb_slot *s, uint32_t n);
void wd_sb_set_kick_tid(struct wd_sb_slot *s, int32_t tid);
void wd_sb_set_queue_depth(struct wd_sb_slot *s, uint32_t n);
void wd_sb_set_connections(struct wd_sb_slot *s, uint32_t n);
void wd_sb_set_accept(struct wd_sb_slot *s, enum wd_sb_accept state);
void wd_sb_set_full_since(struct wd_sb_slot *s, int64_t ms);
void wd_sb_set_active(struct wd_sb_slot *s, int64_t ms);
void wd_sb_heartbeat(struct wd_sb_slot *s); /* heartbeat_ms := now */
void wd_sb_busy_add(struct wd_sb_slot *s, int delta); /* pool threads */
void wd_sb_add_request(struct wd_sb_slot *s);
void wd_sb_add_bytes(struct wd_sb_slot *s, uint64_t in, uint64_t out);
void wd_sb_add_exception(struct wd_sb_slot *s);
/* The worker stops because of max_requests: an expected exit (SPEC 4.4),
 * unlike a TERM from outside, which looks the same from the master. */
void wd_sb_set_retiring(struct wd_sb_slot *s);

/* A plain copy of one slot, for the master's checks and the stats. */
struct wd_sb_info {
    int32_t pid;
    uint32_t generation, state, threads, queue_depth, busy_threads;
    uint32_t connections, accept_state, retiring;
    int32_t kick_tid;
    int64_t heartbeat_ms, full_since_ms, started_at;
    uint64_t requests, bytes_in, bytes_out, exceptions;
};

/* Read every field of S (relaxed; pid with acquire, first). */
void wd_sb_read(const struct wd_sb_slot *s, struct wd_sb_info *out);

/*
 * Fair accept (SPEC.md 4.1).  A worker's load for the next connection is
 * its open connections, plus WD_SB_FULL_WEIGHT when every one of its
 * threads has been taken (running or queued requests) for a while: a
 * connection given to it would wait behind slow requests, so a worker
 * with a free thread is the better home even with a few more connections.
 * A moment's fullness does not count: under a fast load every worker is
 * full now and then, and the split by connections is what matters.
 */
#define WD_SB_FULL_WEIGHT 8u

struct wd_sb_load {
    uint32_t connections;
    int64_t full_since_ms; /* every thread taken since; 0: a thread free */
};

/*
 * Worker loop, before it accepts a connection: look at the siblings of
 * SELF in SB.  A sibling counts when it is a started worker (state idle or
 * busy), is neither OFF nor paused by its own deep queue (QUEUED), and
 * its heartbeat is at most STALE_MS old at NOW_MS.
 * A worker full for at least FULL_MS has the WD_SB_FULL_WEIGHT added.  A
 * sibling is better when its load, plus SLACK, plus a quarter of its load
 * is below OWN's.  Returns the index of the least loaded better sibling,
 * or -1 when there is none (the caller accepts).  *WOKEN (may be NULL)
 * is set to 1 when some better sibling takes the connection without help
 * (ARMED: the kernel wakes it), else 0 (they all wait: the caller wakes
 * the returned one).  Reads only, relaxed: a stale value
 * costs fairness, never a lost connection, as the caller re-checks on a
 * timer.
 */
int wd_sb_better_sibling(struct wd_sb *sb, const struct wd_sb_slot *self,
                         const struct wd_sb_load *own, uint32_t slack,
                         int64_t now_ms, int64_t stale_ms, int64_t full_ms,
                         int *woken);

/*
 * Worker loop, about to leave a connection to a WAITING sibling S: was S
 * active (wd_sb_set_active) within WITHIN_MS of NOW_MS?  Such a sibling
 * is likely to re-check by itself soon (as its next request ends), so a
 * kick can wait a little; an idle one comes back only when kicked (or on
 * its slow timer).
 */
int wd_sb_active_within(const struct wd_sb_slot *s, int64_t now_ms,
                        int64_t within_ms);

/*
 * Worker loop, its task queue deeper than its threads: may it stop
 * accepting?  Only if some sibling of SELF would take the connections
 * meanwhile: a started, live worker (as above) that is neither OFF nor
 * QUEUED itself.  Without one, pausing would only leave connections in
 * the kernel's queue, where they wait just as long, unseen.
 */
int wd_sb_sibling_accepts(struct wd_sb *sb, const struct wd_sb_slot *self,
                          int64_t now_ms, int64_t stale_ms);

/* "booting", "idle", "busy", "stopping" (SPEC.md 17), "free". */
const char *wd_sb_state_name(uint32_t state);

#endif
