/* Unit tests for common/buf.c: memory/file modes, FIFO and cursor reads. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "wd.h"

/* Byte I of the test pattern: not periodic at any power of two. */
static unsigned char
pat(uint64_t i)
{
    return (unsigned char)((i * 7919u + (i >> 9)) & 0xff);
}

static void
fill(unsigned char *p, size_t len, uint64_t start)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pat(start + i);
}

/* Append LEN pattern bytes starting at pattern index START, in PIECE steps. */
static void
append_pattern(struct wd_buf *b, uint64_t start, size_t len, size_t piece)
{
    unsigned char tmp[65536];

    cr_assert(piece <= sizeof tmp);
    while (len > 0) {
        size_t n = len < piece ? len : piece;

        fill(tmp, n, start);
        cr_assert_eq(wd_buf_append(b, tmp, n), 0);
        start += n;
        len -= n;
    }
}

/* Consume everything and check it is the pattern from START on. */
static void
drain_and_check(struct wd_buf *b, uint64_t start, uint64_t len)
{
    unsigned char tmp[5000];
    uint64_t got = 0;
    ssize_t n;

    while ((n = wd_buf_read(b, tmp, sizeof tmp)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(tmp[i], pat(start + got + (uint64_t)i),
                         "byte %llu differs",
                         (unsigned long long)(got + (uint64_t)i));
        got += (uint64_t)n;
    }
    cr_assert_eq(n, 0);
    cr_assert_eq(got, len);
    cr_assert_eq(wd_buf_len(b), 0);
}

Test(buf, new_buffer_is_empty_memory)
{
    struct wd_buf *b = wd_buf_new(100);
    char c;

    cr_assert_not_null(b);
    cr_assert_eq(wd_buf_len(b), 0);
    cr_assert_eq(wd_buf_is_file(b), 0);
    cr_assert_eq(wd_buf_read(b, &c, 1), 0);
    wd_buf_free(b);
}

Test(buf, free_null_is_noop)
{
    wd_buf_free(NULL);
}

Test(buf, below_strbuf_limit_never_spills)
{
    struct wd_buf *b = wd_buf_new(16);

    append_pattern(b, 0, WD_STRBUF_LIMIT - 1, 100);
    cr_assert_eq(wd_buf_is_file(b), 0);
    cr_assert_eq(wd_buf_len(b), WD_STRBUF_LIMIT - 1);
    append_pattern(b, WD_STRBUF_LIMIT - 1, 1, 1);
    cr_assert_eq(wd_buf_is_file(b), 1, "8192 bytes >= overflow 16 spill");
    drain_and_check(b, 0, WD_STRBUF_LIMIT);
    wd_buf_free(b);
}

Test(buf, spills_when_reaching_overflow)
{
    struct wd_buf *b = wd_buf_new(20000);

    append_pattern(b, 0, 19999, 1000);
    cr_assert_eq(wd_buf_is_file(b), 0);
    append_pattern(b, 19999, 1, 1);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(wd_buf_len(b), 20000);
    wd_buf_free(b);
}

Test(buf, overflow_zero_never_spills)
{
    struct wd_buf *b = wd_buf_new(0);

    append_pattern(b, 0, 300000, 4096);
    cr_assert_eq(wd_buf_is_file(b), 0);
    drain_and_check(b, 0, 300000);
    wd_buf_free(b);
}

Test(buf, content_exact_across_spill_boundary)
{
    struct wd_buf *b = wd_buf_new(10000);

    append_pattern(b, 0, 9000, 999);
    cr_assert_eq(wd_buf_is_file(b), 0);
    append_pattern(b, 9000, 41000, 3333);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(wd_buf_len(b), 50000);
    drain_and_check(b, 0, 50000);
    wd_buf_free(b);
}

Test(buf, partial_reads_before_spill_are_not_replayed)
{
    struct wd_buf *b = wd_buf_new(10000);
    unsigned char tmp[3000];

    append_pattern(b, 0, 9000, 9000);
    cr_assert_eq(wd_buf_read(b, tmp, sizeof tmp), 3000);
    for (size_t i = 0; i < sizeof tmp; i++)
        cr_assert_eq(tmp[i], pat(i));
    /* 6000 live + 4000 = 10000: the live bytes move to the file. */
    append_pattern(b, 9000, 4000, 4000);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(wd_buf_len(b), 10000);
    drain_and_check(b, 3000, 10000);
    wd_buf_free(b);
}

/* Interleave appends and reads of odd sizes; compare with the pattern. */
static void
interleave(uint64_t overflow)
{
    struct wd_buf *b = wd_buf_new(overflow);
    unsigned char tmp[7000];
    uint64_t written = 0, readpos = 0;

    for (int round = 0; round < 400; round++) {
        size_t w = (size_t)(round * 37 % 5000) + 1;
        size_t r = (size_t)(round * 53 % 6000) + 1;
        ssize_t n;

        append_pattern(b, written, w, w);
        written += w;
        n = wd_buf_read(b, tmp, r);
        cr_assert_geq(n, 0);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(tmp[i], pat(readpos + (uint64_t)i));
        readpos += (uint64_t)n;
        cr_assert_eq(wd_buf_len(b), written - readpos);
    }
    drain_and_check(b, readpos, written - readpos);
    wd_buf_free(b);
}

Test(buf, interleaved_fifo_in_memory)
{
    interleave(0);
}

Test(buf, interleaved_fifo_through_file)
{
    interleave(9000);
}

Test(buf, skip_drops_head_bytes)
{
    struct wd_buf *b = wd_buf_new(0);

    append_pattern(b, 0, 1000, 1000);
    cr_assert_eq(wd_buf_skip(b, 300), 0);
    cr_assert_eq(wd_buf_len(b), 700);
    drain_and_check(b, 300, 700);
    wd_buf_free(b);
}

Test(buf, skip_past_end_fails_and_keeps_content)
{
    struct wd_buf *b = wd_buf_new(0);

    append_pattern(b, 0, 10, 10);
    errno = 0;
    cr_assert_eq(wd_buf_skip(b, 11), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(wd_buf_len(b), 10);
    drain_and_check(b, 0, 10);
    wd_buf_free(b);
}

Test(buf, skip_in_file_mode)
{
    struct wd_buf *b = wd_buf_new(9000);

    append_pattern(b, 0, 30000, 10000);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(wd_buf_skip(b, 12345), 0);
    drain_and_check(b, 12345, 30000 - 12345);
    wd_buf_free(b);
}

static void
check_pread(struct wd_buf *b, uint64_t len)
{
    unsigned char tmp[4000];
    uint64_t offs[] = {0, 1, 4095, 8191, 8192, 12000, len - 10};

    for (size_t k = 0; k < WD_ARRAY_LEN(offs); k++) {
        uint64_t want = len - offs[k] < sizeof tmp ? len - offs[k]
                                                   : sizeof tmp;
        ssize_t n = wd_buf_pread(b, tmp, sizeof tmp, offs[k]);

        cr_assert_eq(n, (ssize_t)want, "offset %llu",
                     (unsigned long long)offs[k]);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(tmp[i], pat(offs[k] + (uint64_t)i));
    }
    cr_assert_eq(wd_buf_pread(b, tmp, sizeof tmp, len), 0);
    cr_assert_eq(wd_buf_pread(b, tmp, sizeof tmp, len + 100), 0);
    cr_assert_eq(wd_buf_len(b), len, "pread does not consume");
}

Test(buf, pread_at_offsets_memory)
{
    struct wd_buf *b = wd_buf_new(0);

    append_pattern(b, 0, 20000, 20000);
    check_pread(b, 20000);
    wd_buf_free(b);
}

Test(buf, pread_at_offsets_file)
{
    struct wd_buf *b = wd_buf_new(9000);

    append_pattern(b, 0, 20000, 20000);
    cr_assert_eq(wd_buf_is_file(b), 1);
    check_pread(b, 20000);
    wd_buf_free(b);
}

Test(buf, pread_is_relative_to_head)
{
    struct wd_buf *b = wd_buf_new(0);
    unsigned char c;

    append_pattern(b, 0, 100, 100);
    cr_assert_eq(wd_buf_skip(b, 40), 0);
    cr_assert_eq(wd_buf_pread(b, &c, 1, 0), 1);
    cr_assert_eq(c, pat(40));
    cr_assert_eq(wd_buf_pread(b, &c, 1, 59), 1);
    cr_assert_eq(c, pat(99));
    cr_assert_eq(wd_buf_pread(b, &c, 1, 60), 0);
    wd_buf_free(b);
}

static struct wd_buf *
lines_buffer(int to_file)
{
    struct wd_buf *b = wd_buf_new(to_file ? 1 : 0);
    char pad[WD_STRBUF_LIMIT];

    cr_assert_eq(wd_buf_append(b, "ab\ncdef\n\nxyz", 12), 0);
    if (to_file) {
        /* Push it over the strbuf limit, then drop the padding again. */
        memset(pad, 'p', sizeof pad);
        cr_assert_eq(wd_buf_append(b, pad, sizeof pad), 0);
        cr_assert_eq(wd_buf_is_file(b), 1);
    }
    return b;
}

static void
check_lines(int to_file)
{
    struct wd_buf *b = lines_buffer(to_file);
    uint64_t total = wd_buf_len(b);

    cr_assert_eq(wd_buf_line_len(b, 0, SIZE_MAX), 3);
    cr_assert_eq(wd_buf_line_len(b, 3, SIZE_MAX), 5);
    cr_assert_eq(wd_buf_line_len(b, 8, SIZE_MAX), 1);
    /* No newline: everything left. */
    cr_assert_eq(wd_buf_line_len(b, 9, SIZE_MAX), (ssize_t)(total - 9));
    /* Limits cut the line short, or include the newline exactly. */
    cr_assert_eq(wd_buf_line_len(b, 3, 2), 2);
    cr_assert_eq(wd_buf_line_len(b, 3, 5), 5);
    cr_assert_eq(wd_buf_line_len(b, 3, 4), 4);
    cr_assert_eq(wd_buf_line_len(b, 9, 2), 2);
    cr_assert_eq(wd_buf_line_len(b, 0, 0), 0);
    /* At or past the end. */
    cr_assert_eq(wd_buf_line_len(b, total, SIZE_MAX), 0);
    cr_assert_eq(wd_buf_line_len(b, total + 5, SIZE_MAX), 0);
    cr_assert_eq(wd_buf_len(b), total, "line_len does not consume");
    wd_buf_free(b);
}

Test(buf, line_len_memory)
{
    check_lines(0);
}

Test(buf, line_len_file)
{
    check_lines(1);
}

Test(buf, line_len_finds_newline_far_into_file)
{
    struct wd_buf *b = wd_buf_new(1);
    size_t n = 100000;
    char *big = malloc(n);

    memset(big, 'x', n);
    big[70000] = '\n';
    cr_assert_eq(wd_buf_append(b, big, n), 0);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(wd_buf_line_len(b, 0, SIZE_MAX), 70001);
    cr_assert_eq(wd_buf_line_len(b, 5, SIZE_MAX), 69996);
    cr_assert_eq(wd_buf_line_len(b, 0, 50000), 50000);
    cr_assert_eq(wd_buf_line_len(b, 70001, SIZE_MAX), 29999);
    free(big);
    wd_buf_free(b);
}

Test(buf, peek_memory_points_at_head)
{
    struct wd_buf *b = wd_buf_new(0);
    const void *p = NULL;
    int fd = 99;
    off_t off = 99;

    cr_assert_eq(wd_buf_append(b, "hello world", 11), 0);
    cr_assert_eq(wd_buf_skip(b, 6), 0);
    cr_assert_eq(wd_buf_peek(b, &p, &fd, &off), 5);
    cr_assert_eq(memcmp(p, "world", 5), 0);
    cr_assert_eq(fd, -1);
    cr_assert_eq(wd_buf_len(b), 5, "peek does not consume");
    wd_buf_free(b);
}

Test(buf, expected_total_keeps_content_in_memory)
{
    struct wd_buf *b = wd_buf_new(524288);

    /* the allocation count is checked in test_allocfail.c */
    wd_buf_expect(b, 65536);
    append_pattern(b, 0, 65536, 8192);
    cr_assert_eq(wd_buf_is_file(b), 0);
    cr_assert_eq(wd_buf_len(b), 65536);
    drain_and_check(b, 0, 65536);
    wd_buf_free(b);
}

Test(buf, expected_total_does_not_change_the_spill)
{
    struct wd_buf *b = wd_buf_new(20000);

    wd_buf_expect(b, 20000); /* reaches overflow: goes to a file anyway */
    append_pattern(b, 0, 19999, 1000);
    cr_assert_eq(wd_buf_is_file(b), 0);
    append_pattern(b, 19999, 1, 1);
    cr_assert_eq(wd_buf_is_file(b), 1);
    drain_and_check(b, 0, 20000);
    wd_buf_free(b);
}

/* Fill LEN pattern bytes from START in place through wd_buf_room, asking
   ASK bytes of room each time and writing at most that many. */
static void
room_pattern(struct wd_buf *b, uint64_t start, size_t len, size_t ask)
{
    while (len > 0) {
        size_t n = len < ask ? len : ask;
        unsigned char *p = wd_buf_room(b, ask);

        cr_assert_not_null(p);
        fill(p, n, start);
        wd_buf_commit(b, n);
        start += n;
        len -= n;
    }
}

Test(buf, room_filled_in_place_reads_back_between_appends)
{
    struct wd_buf *b = wd_buf_new(0);

    append_pattern(b, 0, 100, 100);
    room_pattern(b, 100, 50000, 8192); /* grows the block as needed */
    append_pattern(b, 50100, 7, 7);
    room_pattern(b, 50107, 3, 8192); /* a short fill counts only 3 */
    cr_assert_eq(wd_buf_len(b), 50110);
    drain_and_check(b, 0, 50110);
    wd_buf_free(b);
}

Test(buf, room_is_refused_where_an_append_would_spill)
{
    struct wd_buf *b = wd_buf_new(20000);

    room_pattern(b, 0, 11808, 8192);
    cr_assert_eq(wd_buf_is_file(b), 0);
    /* 11808 + 8192 = 20000 reaches overflow: only an append may move it */
    cr_assert_null(wd_buf_room(b, 8192));
    cr_assert_eq(wd_buf_len(b), 11808, "a refused room changes nothing");
    cr_assert_not_null(wd_buf_room(b, 8191));
    append_pattern(b, 11808, 8192, 8192);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_null(wd_buf_room(b, 1), "a file buffer has no room in memory");
    drain_and_check(b, 0, 20000);
    wd_buf_free(b);
}

Test(buf, peek_file_gives_fd_and_offset)
{
    struct wd_buf *b = wd_buf_new(9000);
    const void *p = (const void *)1;
    int fd = -1;
    off_t off = -1;
    unsigned char tmp[100];
    struct stat st;

    append_pattern(b, 0, 20000, 20000);
    cr_assert_eq(wd_buf_skip(b, 1234), 0);
    cr_assert_eq(wd_buf_peek(b, &p, &fd, &off), 0);
    cr_assert_null(p);
    cr_assert_geq(fd, 0);
    cr_assert_eq(off, 1234);
    cr_assert_eq(pread(fd, tmp, sizeof tmp, off), (ssize_t)sizeof tmp);
    for (size_t i = 0; i < sizeof tmp; i++)
        cr_assert_eq(tmp[i], pat(1234 + i));
    /* The temp file is anonymous and not inherited by exec. */
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_nlink, 0);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    wd_buf_free(b);
}

Test(buf, emptied_file_is_truncated_and_reused)
{
    struct wd_buf *b = wd_buf_new(9000);
    int fd;
    off_t off;
    struct stat st;

    append_pattern(b, 0, 20000, 20000);
    cr_assert_eq(wd_buf_skip(b, 20000), 0);
    cr_assert_eq(wd_buf_peek(b, NULL, &fd, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 0);
    append_pattern(b, 7, 500, 500);
    cr_assert_eq(wd_buf_is_file(b), 1);
    drain_and_check(b, 7, 500);
    wd_buf_free(b);
}

Test(buf, clear_returns_to_memory)
{
    struct wd_buf *b = wd_buf_new(9000);

    append_pattern(b, 0, 20000, 20000);
    cr_assert_eq(wd_buf_is_file(b), 1);
    wd_buf_clear(b);
    cr_assert_eq(wd_buf_len(b), 0);
    cr_assert_eq(wd_buf_is_file(b), 0);
    append_pattern(b, 3, 100, 100);
    cr_assert_eq(wd_buf_is_file(b), 0);
    drain_and_check(b, 3, 100);
    wd_buf_free(b);
}

/* Spill attempts into TMPDIR fail; the buffer keeps its memory content. */
static void
check_spill_failure(const char *tmpdir, int expect_errno)
{
    struct wd_buf *b = wd_buf_new(9000);
    unsigned char tmp[2000];

    cr_assert_eq(setenv("TMPDIR", tmpdir, 1), 0);
    append_pattern(b, 0, 8000, 8000);
    fill(tmp, sizeof tmp, 8000);
    errno = 0;
    cr_assert_eq(wd_buf_append(b, tmp, sizeof tmp), -1);
    cr_assert_eq(errno, expect_errno, "errno %d", errno);
    cr_assert_eq(wd_buf_is_file(b), 0);
    cr_assert_eq(wd_buf_len(b), 8000);
    drain_and_check(b, 0, 8000);
    wd_buf_free(b);
}

Test(buf, spill_to_unwritable_tmpdir_fails_intact)
{
    char dir[] = "/tmp/wd-test-buf-XXXXXX";
    int was_root = geteuid() == 0;

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chmod(dir, 0555), 0);
    /* root ignores permissions: act as nobody for the check. */
    if (was_root)
        cr_assert_eq(seteuid(65534), 0);
    check_spill_failure(dir, EACCES);
    if (was_root)
        cr_assert_eq(seteuid(0), 0);
    cr_assert_eq(rmdir(dir), 0);
}

Test(buf, spill_to_missing_tmpdir_fails_intact)
{
    check_spill_failure("/nonexistent/wd-test-dir", ENOENT);
}

Test(buf, file_append_failure_keeps_content)
{
    struct wd_buf *b = wd_buf_new(9000);
    struct rlimit rl = {.rlim_cur = 40000, .rlim_max = RLIM_INFINITY};
    unsigned char tmp[30000];

    signal(SIGXFSZ, SIG_IGN);
    append_pattern(b, 0, 20000, 20000);
    cr_assert_eq(wd_buf_is_file(b), 1);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    fill(tmp, sizeof tmp, 20000);
    errno = 0;
    cr_assert_eq(wd_buf_append(b, tmp, sizeof tmp), -1);
    cr_assert_eq(errno, EFBIG);
    cr_assert_eq(wd_buf_len(b), 20000);
    /* A later append that fits continues right after the good bytes. */
    cr_assert_eq(wd_buf_append(b, tmp, 100), 0);
    drain_and_check(b, 0, 20100);
    wd_buf_free(b);
}

Test(buf, many_tiny_appends_and_reads)
{
    struct wd_buf *b = wd_buf_new(0);
    uint64_t written = 0, readpos = 0;
    unsigned char c;

    /* Keeps ~64 KiB live while cycling 2 MB through: exercises compaction. */
    append_pattern(b, 0, 65536, 4096);
    written = 65536;
    for (int i = 0; i < 2000000; i++) {
        c = pat(written++);
        cr_assert_eq(wd_buf_append(b, &c, 1), 0);
        cr_assert_eq(wd_buf_read(b, &c, 1), 1);
        if (c != pat(readpos))
            cr_assert_fail("byte %llu differs", (unsigned long long)readpos);
        readpos++;
    }
    drain_and_check(b, readpos, written - readpos);
    wd_buf_free(b);
}
