/* Unit tests for common/scoreboard.c (STYLE.md 7). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scoreboard.h"

Test(scoreboard, new_has_header_and_free_slots)
{
    struct wd_sb *sb = wd_sb_new(4);
    struct wd_sb_info info;

    cr_assert_not_null(sb);
    cr_assert_eq(sb->magic, WD_SB_MAGIC);
    cr_assert_eq(sb->version, WD_SB_VERSION);
    cr_assert_eq(sb->nslots, 4);
    for (int i = 0; i < 4; i++) {
        wd_sb_read(wd_sb_slot(sb, i), &info);
        cr_assert_eq(info.pid, WD_SB_PID_FREE);
        cr_assert_eq(info.state, WD_SB_FREE);
    }
    wd_sb_free(sb);
}

Test(scoreboard, zero_slots_is_einval)
{
    errno = 0;
    cr_assert_null(wd_sb_new(0));
    cr_assert_eq(errno, EINVAL);
}

Test(scoreboard, free_null_is_noop)
{
    wd_sb_free(NULL);
}

Test(scoreboard, slots_are_cache_line_aligned)
{
    struct wd_sb *sb = wd_sb_new(3);

    for (int i = 0; i < 3; i++)
        cr_assert_eq((uintptr_t)wd_sb_slot(sb, i) % 64, 0);
    cr_assert_geq((char *)wd_sb_slot(sb, 1) - (char *)wd_sb_slot(sb, 0), 64);
    wd_sb_free(sb);
}

Test(scoreboard, slot_index_out_of_range)
{
    struct wd_sb *sb = wd_sb_new(2);

    cr_assert_null(wd_sb_slot(sb, -1));
    cr_assert_null(wd_sb_slot(sb, 2));
    cr_assert_not_null(wd_sb_slot(sb, 1));
    wd_sb_free(sb);
}

Test(scoreboard, claim_resets_and_marks_booting)
{
    struct wd_sb *sb = wd_sb_new(2);
    struct wd_sb_info info;
    int64_t before = wd_sb_now_ms();
    int i = wd_sb_claim(sb, 7);

    cr_assert_eq(i, 0);
    wd_sb_read(wd_sb_slot(sb, i), &info);
    cr_assert_eq(info.pid, WD_SB_PID_RESERVED);
    cr_assert_eq(info.generation, 7);
    cr_assert_eq(info.state, WD_SB_BOOTING);
    cr_assert_geq(info.heartbeat_ms, before);
    cr_assert_leq(llabs(info.started_at - (int64_t)time(NULL)), 2);
    wd_sb_set_pid(sb, i, 4242);
    wd_sb_read(wd_sb_slot(sb, i), &info);
    cr_assert_eq(info.pid, 4242);
    wd_sb_free(sb);
}

Test(scoreboard, claim_until_full_then_enospc)
{
    struct wd_sb *sb = wd_sb_new(2);

    cr_assert_eq(wd_sb_claim(sb, 1), 0);
    cr_assert_eq(wd_sb_claim(sb, 1), 1);
    errno = 0;
    cr_assert_eq(wd_sb_claim(sb, 1), -1);
    cr_assert_eq(errno, ENOSPC);
    wd_sb_free(sb);
}

Test(scoreboard, release_then_reclaim_clears_old_counters)
{
    struct wd_sb *sb = wd_sb_new(1);
    struct wd_sb_slot *s;
    struct wd_sb_info info;

    cr_assert_eq(wd_sb_claim(sb, 1), 0);
    s = wd_sb_slot(sb, 0);
    wd_sb_add_request(s);
    wd_sb_add_bytes(s, 10, 20);
    wd_sb_set_connections(s, 5);
    wd_sb_set_retiring(s);
    wd_sb_set_kick_tid(s, 4242);
    wd_sb_read(s, &info);
    cr_assert_eq(info.retiring, 1);
    cr_assert_eq(info.kick_tid, 4242);
    wd_sb_release(sb, 0);
    wd_sb_read(s, &info);
    cr_assert_eq(info.pid, WD_SB_PID_FREE);
    cr_assert_eq(info.state, WD_SB_FREE);

    cr_assert_eq(wd_sb_claim(sb, 2), 0);
    wd_sb_read(s, &info);
    cr_assert_eq(info.generation, 2);
    cr_assert_eq(info.requests, 0);
    cr_assert_eq(info.bytes_in, 0);
    cr_assert_eq(info.bytes_out, 0);
    cr_assert_eq(info.connections, 0);
    cr_assert_eq(info.retiring, 0); /* the next worker is not retiring */
    cr_assert_eq(info.kick_tid, 0); /* nor kicked at the old one's thread */
    wd_sb_free(sb);
}

Test(scoreboard, setters_and_counters)
{
    struct wd_sb *sb = wd_sb_new(1);
    struct wd_sb_slot *s;
    struct wd_sb_info info;

    wd_sb_claim(sb, 1);
    s = wd_sb_slot(sb, 0);
    wd_sb_set_state(s, WD_SB_BUSY);
    wd_sb_set_threads(s, 4);
    wd_sb_set_queue_depth(s, 3);
    wd_sb_set_connections(s, 9);
    wd_sb_busy_add(s, 2);
    wd_sb_busy_add(s, -1);
    wd_sb_add_request(s);
    wd_sb_add_request(s);
    wd_sb_add_bytes(s, 100, 0);
    wd_sb_add_bytes(s, 0, 250);
    wd_sb_add_exception(s);
    wd_sb_read(s, &info);
    cr_assert_eq(info.state, WD_SB_BUSY);
    cr_assert_eq(info.threads, 4);
    cr_assert_eq(info.queue_depth, 3);
    cr_assert_eq(info.connections, 9);
    cr_assert_eq(info.busy_threads, 1);
    cr_assert_eq(info.requests, 2);
    cr_assert_eq(info.bytes_in, 100);
    cr_assert_eq(info.bytes_out, 250);
    cr_assert_eq(info.exceptions, 1);
    wd_sb_free(sb);
}

Test(scoreboard, forked_child_writes_parent_reads)
{
    struct wd_sb *sb = wd_sb_new(2);
    int slot = wd_sb_claim(sb, 3);
    int status;
    pid_t pid;
    struct wd_sb_info info;
    int64_t before;

    cr_assert_geq(slot, 0);
    before = wd_sb_now_ms();
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct wd_sb_slot *s = wd_sb_slot(sb, slot);

        wd_sb_set_state(s, WD_SB_IDLE);
        wd_sb_set_threads(s, 8);
        wd_sb_heartbeat(s);
        for (int i = 0; i < 1000; i++)
            wd_sb_add_request(s);
        wd_sb_add_bytes(s, 12345, 67890);
        _exit(0);
    }
    wd_sb_set_pid(sb, slot, pid);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    wd_sb_read(wd_sb_slot(sb, slot), &info);
    cr_assert_eq(info.pid, pid);
    cr_assert_eq(info.generation, 3);
    cr_assert_eq(info.state, WD_SB_IDLE);
    cr_assert_eq(info.threads, 8);
    cr_assert_eq(info.requests, 1000);
    cr_assert_eq(info.bytes_in, 12345);
    cr_assert_eq(info.bytes_out, 67890);
    cr_assert_geq(info.heartbeat_ms, before);
    /* The neighbour slot saw nothing. */
    wd_sb_read(wd_sb_slot(sb, 1 - slot), &info);
    cr_assert_eq(info.pid, WD_SB_PID_FREE);
    cr_assert_eq(info.requests, 0);
    wd_sb_free(sb);
}

Test(scoreboard, concurrent_adds_from_processes_are_not_lost)
{
    struct wd_sb *sb = wd_sb_new(1);
    struct wd_sb_slot *s;
    struct wd_sb_info info;
    pid_t kids[4];

    wd_sb_claim(sb, 1);
    s = wd_sb_slot(sb, 0);
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            for (int i = 0; i < 100000; i++) {
                wd_sb_busy_add(s, 1);
                wd_sb_add_exception(s);
                wd_sb_busy_add(s, -1);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < 4; k++) {
        int status;

        cr_assert_eq(waitpid(kids[k], &status, 0), kids[k]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    wd_sb_read(s, &info);
    cr_assert_eq(info.exceptions, 400000);
    cr_assert_eq(info.busy_threads, 0);
    wd_sb_free(sb);
}

Test(scoreboard, state_names)
{
    cr_assert_str_eq(wd_sb_state_name(WD_SB_BOOTING), "booting");
    cr_assert_str_eq(wd_sb_state_name(WD_SB_IDLE), "idle");
    cr_assert_str_eq(wd_sb_state_name(WD_SB_BUSY), "busy");
    cr_assert_str_eq(wd_sb_state_name(WD_SB_STOPPING), "stopping");
    cr_assert_str_eq(wd_sb_state_name(WD_SB_FREE), "free");
    cr_assert_str_eq(wd_sb_state_name(99), "free");
}

Test(scoreboard, now_ms_is_monotonic)
{
    int64_t a = wd_sb_now_ms();
    struct timespec ts = {0, 20 * 1000000};
    int64_t b;

    nanosleep(&ts, NULL);
    b = wd_sb_now_ms();
    cr_assert_geq(b - a, 19);
}

/* A started, listening worker in slot I of SB for the fair-accept rule. */
static struct wd_sb_slot *
sibling(struct wd_sb *sb, int i, uint32_t connections)
{
    struct wd_sb_slot *s;

    cr_assert_eq(wd_sb_claim(sb, 1), i);
    wd_sb_set_pid(sb, i, 1000 + i);
    s = wd_sb_slot(sb, i);
    wd_sb_set_state(s, WD_SB_IDLE);
    wd_sb_set_threads(s, 4);
    wd_sb_set_connections(s, connections);
    wd_sb_set_accept(s, WD_SB_ACCEPT_ARMED);
    wd_sb_heartbeat(s);
    return s;
}

/* wd_sb_better_sibling with slack 1, 3 s staleness, 50 ms fullness. */
static int
better(struct wd_sb *sb, const struct wd_sb_slot *self, uint32_t conns,
       int64_t full_since, int64_t now, int *woken)
{
    struct wd_sb_load own = {.connections = conns,
                             .full_since_ms = full_since};

    return wd_sb_better_sibling(sb, self, &own, 1, now, 3000, 50, woken);
}

Test(scoreboard, fair_accept_alone_always_accepts)
{
    struct wd_sb *sb = wd_sb_new(2);
    struct wd_sb_slot *self = sibling(sb, 0, 50);
    int64_t now = wd_sb_now_ms();
    int woken = -1;

    cr_assert_eq(better(sb, self, 50, now - 1000, now, &woken), -1);
    cr_assert_eq(woken, 0);
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_leaves_to_fewer_connections_past_slack)
{
    struct wd_sb *sb = wd_sb_new(3);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    int64_t now = wd_sb_now_ms();
    int woken = 0;

    sibling(sb, 1, 5);
    sibling(sb, 2, 3);
    /* 3 + 1 < 6: slot 2; slot 1 is within the slack */
    cr_assert_eq(better(sb, self, 6, 0, now, &woken), 2);
    cr_assert_eq(woken, 1);
    /* 3 + 1 == 4: not better */
    cr_assert_eq(better(sb, self, 4, 0, now, NULL), -1);
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_is_exact_while_counts_are_small)
{
    struct wd_sb *sb = wd_sb_new(2);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    int64_t now = wd_sb_now_ms();
    struct wd_sb_load own = {.connections = 4};

    /* the loop's slack is 0: 4 against 3 is one too many (a request
       waiting for a thread while the sibling has one free) */
    sibling(sb, 1, 3);
    cr_assert_eq(wd_sb_better_sibling(sb, self, &own, 0, now, 3000, 50, NULL),
                 1);
    own.connections = 3;
    cr_assert_eq(wd_sb_better_sibling(sb, self, &own, 0, now, 3000, 50, NULL),
                 -1);
    /* many: a quarter of the sibling's count is slack (25 + 6) */
    wd_sb_set_connections(wd_sb_slot(sb, 1), 25);
    own.connections = 31;
    cr_assert_eq(wd_sb_better_sibling(sb, self, &own, 0, now, 3000, 50, NULL),
                 -1);
    own.connections = 32;
    cr_assert_eq(wd_sb_better_sibling(sb, self, &own, 0, now, 3000, 50, NULL),
                 1);
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_waiting_sibling_needs_a_kick)
{
    struct wd_sb *sb = wd_sb_new(3);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    struct wd_sb_slot *a = sibling(sb, 1, 0);
    int64_t now = wd_sb_now_ms();
    int woken = -1;

    wd_sb_set_accept(a, WD_SB_ACCEPT_WAITING);
    cr_assert_eq(better(sb, self, 10, 0, now, &woken), 1);
    cr_assert_eq(woken, 0);
    /* a sibling paused by its deep queue is no home: leaving it the
       connection would keep it waiting until that queue drains */
    wd_sb_set_accept(a, WD_SB_ACCEPT_QUEUED);
    cr_assert_eq(better(sb, self, 10, 0, now, &woken), -1);
    cr_assert_eq(woken, 0);
    wd_sb_free(sb);
}

Test(scoreboard, active_within_tells_a_recently_active_sibling)
{
    struct wd_sb *sb = wd_sb_new(2);
    struct wd_sb_slot *a;

    sibling(sb, 0, 0);
    a = sibling(sb, 1, 0);
    /* a new worker in a reused slot has not been active yet: nothing
       brings it back but a kick */
    wd_sb_set_active(a, 5000);
    wd_sb_release(sb, 1);
    a = sibling(sb, 1, 0);
    cr_assert_not(wd_sb_active_within(a, 5000, 2));
    wd_sb_set_active(a, 5000);
    cr_assert(wd_sb_active_within(a, 5000, 2));
    cr_assert(wd_sb_active_within(a, 5001, 2));
    cr_assert_not(wd_sb_active_within(a, 5002, 2));
    cr_assert_not(wd_sb_active_within(a, 9000, 2));
    /* a clock read before the store (another process): still recent */
    cr_assert(wd_sb_active_within(a, 4999, 2));
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_ignores_siblings_that_cannot_take_one)
{
    struct wd_sb *sb = wd_sb_new(6);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    int64_t now = wd_sb_now_ms();

    wd_sb_set_accept(sibling(sb, 1, 0), WD_SB_ACCEPT_OFF);
    wd_sb_set_state(sibling(sb, 2, 0), WD_SB_STOPPING);
    wd_sb_set_state(sibling(sb, 3, 0), WD_SB_BOOTING);
    sibling(sb, 4, 0);
    sibling(sb, 5, 0);
    wd_sb_release(sb, 4); /* reaped */
    /* slot 5's heartbeat is older than 3 s at now + 3001 ms */
    cr_assert_eq(better(sb, self, 20, 0, now + 3001, NULL), -1);
    cr_assert_eq(better(sb, self, 20, 0, now, NULL), 5);
    wd_sb_free(sb);
}

Test(scoreboard, a_deep_queue_pauses_only_beside_a_listening_sibling)
{
    struct wd_sb *sb = wd_sb_new(4);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    struct wd_sb_slot *a, *b;
    int64_t now = wd_sb_now_ms();

    /* alone (workers=1): nobody else would take a connection */
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 0);
    a = sibling(sb, 1, 40);
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 1);
    wd_sb_set_accept(a, WD_SB_ACCEPT_WAITING); /* kicked or rescues */
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 1);
    wd_sb_set_accept(a, WD_SB_ACCEPT_QUEUED); /* paused itself */
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 0);
    b = sibling(sb, 2, 0);
    wd_sb_set_state(b, WD_SB_STOPPING);
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 0);
    wd_sb_set_state(b, WD_SB_BUSY);
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 1);
    /* hung: its heartbeat is older than 3 s */
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now + 3001, 3000), 0);
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_prefers_a_free_thread_to_a_stuck_worker)
{
    struct wd_sb *sb = wd_sb_new(2);
    struct wd_sb_slot *self = sibling(sb, 0, 0);
    struct wd_sb_slot *a = sibling(sb, 1, 2);
    int64_t now = wd_sb_now_ms();

    /* our threads are all taken for 1 s: 2 + 1 < 1 + WD_SB_FULL_WEIGHT */
    cr_assert_eq(better(sb, self, 1, now - 1000, now, NULL), 1);
    /* for 10 ms only: a moment's fullness does not count */
    cr_assert_eq(better(sb, self, 1, now - 10, now, NULL), -1);
    /* the sibling is stuck as long as we are */
    wd_sb_set_full_since(a, now - 2000);
    cr_assert_eq(better(sb, self, 1, now - 1000, now, NULL), -1);
    wd_sb_free(sb);
}

Test(scoreboard, used_counts_up_to_the_highest_slot_ever_claimed)
{
    struct wd_sb *sb = wd_sb_new(8);

    cr_assert_eq(wd_sb_used(sb), 0);
    cr_assert_eq(wd_sb_claim(sb, 1), 0);
    cr_assert_eq(wd_sb_claim(sb, 1), 1);
    cr_assert_eq(wd_sb_claim(sb, 1), 2);
    cr_assert_eq(wd_sb_used(sb), 3);
    /* a release leaves the mark: the slot above may still be live */
    wd_sb_release(sb, 1);
    wd_sb_release(sb, 2);
    cr_assert_eq(wd_sb_used(sb), 3);
    /* reclaiming below it does not move it */
    cr_assert_eq(wd_sb_claim(sb, 2), 1);
    cr_assert_eq(wd_sb_used(sb), 3);
    cr_assert_eq(wd_sb_claim(sb, 2), 2);
    cr_assert_eq(wd_sb_claim(sb, 2), 3);
    cr_assert_eq(wd_sb_used(sb), 4);
    wd_sb_free(sb);
}

Test(scoreboard, fair_accept_sees_a_sibling_in_the_last_claimed_slot)
{
    struct wd_sb *sb = wd_sb_new(70);
    struct wd_sb_slot *self;
    int64_t now = wd_sb_now_ms();

    for (int i = 0; i < 5; i++)
        sibling(sb, i, 0);
    /* only the first and the last claimed stay */
    for (int i = 1; i < 4; i++)
        wd_sb_release(sb, i);
    self = wd_sb_slot(sb, 0);
    wd_sb_set_connections(self, 9);
    cr_assert_eq(better(sb, self, 9, 0, now, NULL), 4);
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 1);
    wd_sb_release(sb, 4);
    cr_assert_eq(better(sb, self, 9, 0, now, NULL), -1);
    cr_assert_eq(wd_sb_sibling_accepts(sb, self, now, 3000), 0);
    wd_sb_free(sb);
}
