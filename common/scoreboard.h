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
#define WD_SB_VERSION 1u

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
    _Atomic int64_t heartbeat_ms;    /* worker loop, CLOCK_MONOTONIC */
    _Atomic int64_t started_at;      /* master, at claim; epoch seconds */
    _Atomic uint64_t requests;       /* finished requests */
    _Atomic uint64_t bytes_in;       /* bytes read from clients */
    _Atomic uint64_t bytes_out;      /* bytes written to clients */
    _Atomic uint64_t exceptions;     /* application exceptions (SPEC 13) */
};

struct wd_sb {
    uint32_t magic, version, nslots; /* written once, before any fork */
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

/* Slot I, or NULL when I is out of range. */
struct wd_sb_slot *wd_sb_slot(struct wd_sb *sb, int i);

/* CLOCK_MONOTONIC in milliseconds (the heartbeat's clock). */
int64_t wd_sb_now_ms(void);

/* Worker setters: relaxed stores / adds on its own slot. */
void wd_sb_set_state(struct wd_sb_slot *s, enum wd_sb_state state);
void wd_sb_set_threads(struct wd_sb_slot *s, uint32_t n);
void wd_sb_set_queue_depth(struct wd_sb_slot *s, uint32_t n);
void wd_sb_set_connections(struct wd_sb_slot *s, uint32_t n);
void wd_sb_heartbeat(struct wd_sb_slot *s); /* heartbeat_ms := now */
void wd_sb_busy_add(struct wd_sb_slot *s, int delta); /* pool threads */
void wd_sb_add_request(struct wd_sb_slot *s);
void wd_sb_add_bytes(struct wd_sb_slot *s, uint64_t in, uint64_t out);
void wd_sb_add_exception(struct wd_sb_slot *s);

/* A plain copy of one slot, for the master's checks and the stats. */
struct wd_sb_info {
    int32_t pid;
    uint32_t generation, state, threads, queue_depth, busy_threads;
    uint32_t connections;
    int64_t heartbeat_ms, started_at;
    uint64_t requests, bytes_in, bytes_out, exceptions;
};

/* Read every field of S (relaxed; pid with acquire, first). */
void wd_sb_read(const struct wd_sb_slot *s, struct wd_sb_info *out);

/* "booting", "idle", "busy", "stopping" (SPEC.md 17), "free". */
const char *wd_sb_state_name(uint32_t state);

#endif
