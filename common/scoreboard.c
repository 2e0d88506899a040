/*
 * scoreboard.c - shared-memory worker slots (see scoreboard.h).
 *
 * One anonymous MAP_SHARED mapping: a small header, then 64-byte aligned
 * slots so two workers never write the same cache line.  The master
 * claims and releases slots (single-threaded, but claim still uses a CAS
 * on pid so a stray second claimer cannot take the same slot); workers
 * only touch their own slot.  Claim resets the fields before publishing
 * the reservation with a release store, and readers load pid with
 * acquire first, so they never see a new pid with the old worker's
 * counters.
 */
#include "scoreboard.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>

_Static_assert(sizeof(struct wd_sb_slot) % 64 == 0, "slot per cache line");
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "shm atomics (long)");

#define RELAXED memory_order_relaxed

static size_t
map_size(uint32_t nslots)
{
    return sizeof(struct wd_sb) + (size_t)nslots * sizeof(struct wd_sb_slot);
}

struct wd_sb *
wd_sb_new(uint32_t nslots)
{
    struct wd_sb *sb;

    if (nslots == 0 || nslots > 65536) {
        errno = EINVAL;
        return NULL;
    }
    sb = mmap(NULL, map_size(nslots), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb == MAP_FAILED)
        return NULL;
    /* Anonymous mappings are zero-filled: every slot is FREE already. */
    sb->magic = WD_SB_MAGIC;
    sb->version = WD_SB_VERSION;
    sb->nslots = nslots;
    return sb;
}

void
wd_sb_free(struct wd_sb *sb)
{
    if (sb != NULL)
        munmap(sb, map_size(sb->nslots));
}

static struct wd_sb *attached;

void
wd_sb_attach(struct wd_sb *sb)
{
    attached = sb;
}

struct wd_sb *
wd_sb_attached(void)
{
    return attached;
}

uint32_t
wd_sb_used(struct wd_sb *sb)
{
    uint32_t n = atomic_load_explicit(&sb->used, memory_order_acquire);

    return n < sb->nslots ? n : sb->nslots;
}

struct wd_sb_slot *
wd_sb_slot(struct wd_sb *sb, int i)
{
    if (sb == NULL || i < 0 || (uint32_t)i >= sb->nslots)
        return NULL;
    return &sb->slot[i];
}

int64_t
wd_sb_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Zero a slot's worker-written fields (the slot is reserved by us). */
static void
reset_slot(struct wd_sb_slot *s, uint32_t generation)
{
    atomic_store_explicit(&s->generation, generation, RELAXED);
    atomic_store_explicit(&s->state, WD_SB_BOOTING, RELAXED);
    atomic_store_explicit(&s->threads, 0, RELAXED);
    atomic_store_explicit(&s->queue_depth, 0, RELAXED);
    atomic_store_explicit(&s->busy_threads, 0, RELAXED);
    atomic_store_explicit(&s->connections, 0, RELAXED);
    atomic_store_explicit(&s->accept_state, WD_SB_ACCEPT_OFF, RELAXED);
    atomic_store_explicit(&s->retiring, 0, RELAXED);
    atomic_store_explicit(&s->kick_tid, 0, RELAXED);
    atomic_store_explicit(&s->full_since_ms, 0, RELAXED);
    atomic_store_explicit(&s->active_ms, 0, RELAXED);
    atomic_store_explicit(&s->heartbeat_ms, wd_sb_now_ms(), RELAXED);
    atomic_store_explicit(&s->started_at, (int64_t)time(NULL), RELAXED);
    atomic_store_explicit(&s->requests, 0, RELAXED);
    atomic_store_explicit(&s->bytes_in, 0, RELAXED);
    atomic_store_explicit(&s->bytes_out, 0, RELAXED);
    atomic_store_explicit(&s->exceptions, 0, RELAXED);
}

int
wd_sb_claim(struct wd_sb *sb, uint32_t generation)
{
    for (uint32_t i = 0; i < sb->nslots; i++) {
        struct wd_sb_slot *s = &sb->slot[i];
        int32_t expect = WD_SB_PID_FREE;

        /* Take it with a CAS; publish the reset fields below. */
        if (!atomic_compare_exchange_strong_explicit(
                &s->pid, &expect, WD_SB_PID_RESERVED, memory_order_acquire,
                RELAXED))
            continue;
        reset_slot(s, generation);
        /* before the pid: whoever sees the pid scans this far.  A raise
           only, by CAS like the claim, so that a second claimer could
           not lower it under a live slot */
        uint32_t used = atomic_load_explicit(&sb->used, RELAXED);

        while (used < i + 1 &&
               !atomic_compare_exchange_weak_explicit(
                   &sb->used, &used, i + 1, memory_order_release, RELAXED))
            ;
        atomic_store_explicit(&s->pid, WD_SB_PID_RESERVED,
                              memory_order_release);
        return (int)i;
    }
    errno = ENOSPC;
    return -1;
}

void
wd_sb_set_pid(struct wd_sb *sb, int slot, pid_t pid)
{
    struct wd_sb_slot *s = wd_sb_slot(sb, slot);

    if (s != NULL)
        atomic_store_explicit(&s->pid, (int32_t)pid, memory_order_release);
}

void
wd_sb_release(struct wd_sb *sb, int slot)
{
    struct wd_sb_slot *s = wd_sb_slot(sb, slot);

    if (s == NULL)
        return;
    atomic_store_explicit(&s->state, WD_SB_FREE, RELAXED);
    atomic_store_explicit(&s->pid, WD_SB_PID_FREE, memory_order_release);
}

void
wd_sb_set_state(struct wd_sb_slot *s, enum wd_sb_state state)
{
    atomic_store_explicit(&s->state, (uint32_t)state, RELAXED);
}

void
wd_sb_set_retiring(struct wd_sb_slot *s)
{
    atomic_store_explicit(&s->retiring, 1, RELAXED);
}

void
wd_sb_set_threads(struct wd_sb_slot *s, uint32_t n)
{
    atomic_store_explicit(&s->threads, n, RELAXED);
}

void
wd_sb_set_kick_tid(struct wd_sb_slot *s, int32_t tid)
{
    atomic_store_explicit(&s->kick_tid, tid, RELAXED);
}

void
wd_sb_set_queue_depth(struct wd_sb_slot *s, uint32_t n)
{
    atomic_store_explicit(&s->queue_depth, n, RELAXED);
}

void
wd_sb_set_connections(struct wd_sb_slot *s, uint32_t n)
{
    atomic_store_explicit(&s->connections, n, RELAXED);
}

void
wd_sb_set_accept(struct wd_sb_slot *s, enum wd_sb_accept state)
{
    atomic_store_explicit(&s->accept_state, (uint32_t)state, RELAXED);
}

void
wd_sb_set_full_since(struct wd_sb_slot *s, int64_t ms)
{
    atomic_store_explicit(&s->full_since_ms, ms, RELAXED);
}

void
wd_sb_set_active(struct wd_sb_slot *s, int64_t ms)
{
    atomic_store_explicit(&s->active_ms, ms, RELAXED);
}

void
wd_sb_heartbeat(struct wd_sb_slot *s)
{
    atomic_store_explicit(&s->heartbeat_ms, wd_sb_now_ms(), RELAXED);
}

void
wd_sb_busy_add(struct wd_sb_slot *s, int delta)
{
    /* Unsigned wrap-around makes a negative delta a subtraction. */
    atomic_fetch_add_explicit(&s->busy_threads, (uint32_t)delta, RELAXED);
}

void
wd_sb_add_request(struct wd_sb_slot *s)
{
    atomic_fetch_add_explicit(&s->requests, 1, RELAXED);
}

void
wd_sb_add_bytes(struct wd_sb_slot *s, uint64_t in, uint64_t out)
{
    if (in > 0)
        atomic_fetch_add_explicit(&s->bytes_in, in, RELAXED);
    if (out > 0)
        atomic_fetch_add_explicit(&s->bytes_out, out, RELAXED);
}

void
wd_sb_add_exception(struct wd_sb_slot *s)
{
    atomic_fetch_add_explicit(&s->exceptions, 1, RELAXED);
}

void
wd_sb_read(const struct wd_sb_slot *s, struct wd_sb_info *out)
{
    /* C11 atomic loads take non-const pointers; reading does not write. */
    struct wd_sb_slot *m = (struct wd_sb_slot *)s;

    out->pid = atomic_load_explicit(&m->pid, memory_order_acquire);
    out->generation = atomic_load_explicit(&m->generation, RELAXED);
    out->state = atomic_load_explicit(&m->state, RELAXED);
    out->threads = atomic_load_explicit(&m->threads, RELAXED);
    out->queue_depth = atomic_load_explicit(&m->queue_depth, RELAXED);
    out->busy_threads = atomic_load_explicit(&m->busy_threads, RELAXED);
    out->connections = atomic_load_explicit(&m->connections, RELAXED);
    out->accept_state = atomic_load_explicit(&m->accept_state, RELAXED);
    out->retiring = atomic_load_explicit(&m->retiring, RELAXED);
    out->kick_tid = atomic_load_explicit(&m->kick_tid, RELAXED);
    out->heartbeat_ms = atomic_load_explicit(&m->heartbeat_ms, RELAXED);
    out->full_since_ms = atomic_load_explicit(&m->full_since_ms, RELAXED);
    out->started_at = atomic_load_explicit(&m->started_at, RELAXED);
    out->requests = atomic_load_explicit(&m->requests, RELAXED);
    out->bytes_in = atomic_load_explicit(&m->bytes_in, RELAXED);
    out->bytes_out = atomic_load_explicit(&m->bytes_out, RELAXED);
    out->exceptions = atomic_load_explicit(&m->exceptions, RELAXED);
}

static uint64_t
load_of(uint32_t connections, int64_t full_since, int64_t now_ms,
        int64_t full_ms)
{
    int full = full_since > 0 && now_ms - full_since >= full_ms;

    return (uint64_t)connections + (full ? WD_SB_FULL_WEIGHT : 0);
}

/* S is another started worker that listens (*ACCEPT: how) and is alive:
 * a stopped or hung worker keeps its last state, so its heartbeat must
 * be at most STALE_MS old at NOW_MS. */
static int
listening_sibling(struct wd_sb_slot *s, int64_t now_ms, int64_t stale_ms,
                  uint32_t *accept)
{
    uint32_t state;

    if (atomic_load_explicit(&s->pid, RELAXED) <= 0)
        return 0;
    state = atomic_load_explicit(&s->state, RELAXED);
    *accept = atomic_load_explicit(&s->accept_state, RELAXED);
    if ((state != WD_SB_IDLE && state != WD_SB_BUSY) ||
        *accept == WD_SB_ACCEPT_OFF)
        return 0;
    return now_ms - atomic_load_explicit(&s->heartbeat_ms, RELAXED) <=
           stale_ms;
}

int
wd_sb_active_within(const struct wd_sb_slot *s, int64_t now_ms,
                    int64_t within_ms)
{
    int64_t at = atomic_load_explicit(&((struct wd_sb_slot *)s)->active_ms,
                                      RELAXED);

    return at > 0 && now_ms - at < within_ms;
}

int
wd_sb_sibling_accepts(struct wd_sb *sb, const struct wd_sb_slot *self,
                      int64_t now_ms, int64_t stale_ms)
{
    const uint32_t used = wd_sb_used(sb);

    for (uint32_t i = 0; i < used; i++) {
        struct wd_sb_slot *s = &sb->slot[i];
        uint32_t accept;

        if (s != self && listening_sibling(s, now_ms, stale_ms, &accept) &&
            accept != WD_SB_ACCEPT_QUEUED)
            return 1;
    }
    return 0;
}

int
wd_sb_better_sibling(struct wd_sb *sb, const struct wd_sb_slot *self,
                     const struct wd_sb_load *own, uint32_t slack,
                     int64_t now_ms, int64_t stale_ms, int64_t full_ms,
                     int *woken)
{
    const uint32_t used = wd_sb_used(sb);
    uint64_t mine, best_load = 0;
    int best = -1, any_woken = 0;

    mine = load_of(own->connections, own->full_since_ms, now_ms, full_ms);
    for (uint32_t i = 0; i < used; i++) {
        struct wd_sb_slot *s = &sb->slot[i];
        uint32_t accept;
        uint64_t load;

        /* a sibling paused by its deep queue is no home for now: it
           would take the connection only once its queue drains */
        if (s == self || !listening_sibling(s, now_ms, stale_ms, &accept) ||
            accept == WD_SB_ACCEPT_QUEUED)
            continue;
        load = load_of(atomic_load_explicit(&s->connections, RELAXED),
                       atomic_load_explicit(&s->full_since_ms, RELAXED),
                       now_ms, full_ms);
        /* a quarter more of slack per connection: a busy server's counts
         * move a lot, and each hand-over costs epoll_ctl calls; while
         * they are few (fewer than 4 here) none, as one connection more
         * on a worker is then a request waiting for a thread */
        if (load + slack + load / 4 >= mine)
            continue;
        if (accept == WD_SB_ACCEPT_ARMED)
            any_woken = 1;
        if (best < 0 || load < best_load) {
            best = (int)i;
            best_load = load;
        }
    }
    if (woken != NULL)
        *woken = any_woken;
    return best;
}

const char *
wd_sb_state_name(uint32_t state)
{
    switch (state) {
    case WD_SB_BOOTING:
        return "booting";
    case WD_SB_IDLE:
        return "idle";
    case WD_SB_BUSY:
        return "busy";
    case WD_SB_STOPPING:
        return "stopping";
    default:
        return "free";
    }
}
