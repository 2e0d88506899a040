/*
 * buf.c - overflowable FIFO byte buffers (see buf.h).
 *
 * DESIGN
 *   A buffer is in one of two modes.  In memory mode the live bytes are
 *   mem[head, tail) of one heap block; readers advance head, writers
 *   advance tail.  The block is allocated on the first append with room
 *   for WD_STRBUF_LIMIT bytes, so a small body costs one allocation, and
 *   grows geometrically.  The consumed prefix is reclaimed lazily: only
 *   when the block is full and the dead prefix is at least as large as
 *   the live data (so each byte moved is paid for by a byte consumed) or
 *   when the block is reallocated anyway.  That keeps appends amortised
 *   O(1) whatever the read pattern.
 *
 *   In file mode the live bytes are [fhead, ftail) of an unlinked
 *   temporary file, written with pwrite and read with pread, so no file
 *   offset is shared state.  When a file buffer empties it is truncated
 *   to reuse its blocks.
 *
 *   Spilling follows waitress's OverflowableBuffer: bytes below
 *   WD_STRBUF_LIMIT always stay in memory; once the buffer has held that
 *   many, it moves to a file as soon as it holds `overflow` bytes.
 *
 *   Every operation that can fail does its fallible work first and
 *   commits the new state last, so a failed call leaves the buffer as it
 *   was.
 */
#include "autoconfig.h" /* _GNU_SOURCE for mkostemp */

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wd.h"

struct wd_buf {
    uint64_t overflow; /* 0: never spill */
    int grown;         /* has held WD_STRBUF_LIMIT bytes at least once */
    /* memory mode */
    char *mem;
    size_t cap;
    size_t head;
    size_t tail;
    /* file mode (fd >= 0) */
    int fd;
    uint64_t fhead;
    uint64_t ftail;
};

struct wd_buf *
wd_buf_new(uint64_t overflow)
{
    struct wd_buf *b;

    if ((b = calloc(1, sizeof *b)) == NULL)
        return NULL;
    b->overflow = overflow;
    b->fd = -1;
    return b;
}

void
wd_buf_free(struct wd_buf *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0)
        close(b->fd);
    free(b->mem);
    free(b);
}

uint64_t
wd_buf_len(const struct wd_buf *b)
{
    if (b->fd >= 0)
        return b->ftail - b->fhead;
    return b->tail - b->head;
}

int
wd_buf_is_file(const struct wd_buf *b)
{
    return b->fd >= 0;
}

int
wd_buf_file(const struct wd_buf *b, uint64_t *head, uint64_t *tail)
{
    if (b->fd >= 0) {
        *head = b->fhead;
        *tail = b->ftail;
    }
    return b->fd;
}

/* Write all of DATA at OFF; 0 or -1 (errno).  Short writes are retried. */
static int
pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Read up to LEN bytes at OFF, retrying short reads; count or -1. */
static ssize_t
pread_all(int fd, void *dst, size_t len, uint64_t off)
{
    char *p = dst;
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* An unlinked temp file in $TMPDIR (or /tmp), close-on-exec.  fd or -1. */
static int
open_temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    int fd, saved;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    if (snprintf(path, sizeof path, "%s/waitressd-buf-XXXXXX", dir) >=
        (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
        return -1;
    if (unlink(path) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/*
 * Move the memory content plus DATA into a new temp file.  On failure
 * nothing changes.
 */
static int
spill(struct wd_buf *b, const void *data, size_t len)
{
    size_t used = b->tail - b->head;
    int fd, saved;

    if ((fd = open_temp_file()) < 0)
        return -1;
    if (pwrite_all(fd, b->mem + b->head, used, 0) < 0 ||
        pwrite_all(fd, data, len, used) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    b->fd = fd;
    b->fhead = 0;
    b->ftail = (uint64_t)used + len;
    WD_FREE(b->mem);
    b->cap = b->head = b->tail = 0;
    return 0;
}

/* Make room for LEN more bytes at the tail of the memory block. */
static int
reserve(struct wd_buf *b, size_t len)
{
    size_t used = b->tail - b->head;
    size_t need, ncap;
    char *nmem;

    if (b->cap - b->tail >= len)
        return 0;
    if (len > SIZE_MAX - used) {
        errno = ENOMEM;
        return -1;
    }
    need = used + len;
    /* Compact in place when the dead prefix pays for the move. */
    if (need <= b->cap && b->head >= used) {
        memmove(b->mem, b->mem + b->head, used);
        b->head = 0;
        b->tail = used;
        return 0;
    }
    ncap = b->cap ? b->cap : WD_STRBUF_LIMIT;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    /* No point in memory beyond the spill point. */
    if (b->overflow > 0 && ncap > b->overflow && need <= b->overflow)
        ncap = (size_t)b->overflow;
    if (ncap < WD_STRBUF_LIMIT && need <= WD_STRBUF_LIMIT)
        ncap = WD_STRBUF_LIMIT;
    if (b->head > 0) {
        if ((nmem = malloc(ncap)) == NULL)
            return -1;
        memcpy(nmem, b->mem + b->head, used);
        free(b->mem);
    } else if ((nmem = realloc(b->mem, ncap)) == NULL) {
        return -1;
    }
    b->mem = nmem;
    b->cap = ncap;
    b->head = 0;
    b->tail = used;
    return 0;
}

void
wd_buf_expect(struct wd_buf *b, uint64_t total)
{
    /* best effort: only an empty memory buffer, only what would stay in
       memory, and never more than WD_BUF_EXPECT_MAX up front */
    if (b->fd >= 0 || b->mem != NULL || total <= WD_STRBUF_LIMIT ||
        total > WD_BUF_EXPECT_MAX ||
        (b->overflow > 0 && total >= b->overflow))
        return;
    if ((b->mem = malloc((size_t)total)) != NULL)
        b->cap = (size_t)total;
}

/* Would TOTAL live bytes move the buffer to a file (SPEC.md 15)? */
static int
spills_at(const struct wd_buf *b, uint64_t total)
{
    return b->overflow > 0 && total >= b->overflow &&
           (b->grown || total >= WD_STRBUF_LIMIT);
}

void *
wd_buf_room(struct wd_buf *b, size_t len)
{
    if (b->fd >= 0 || len == 0 ||
        spills_at(b, (uint64_t)(b->tail - b->head) + len) ||
        reserve(b, len) < 0)
        return NULL;
    return b->mem + b->tail;
}

void
wd_buf_commit(struct wd_buf *b, size_t n)
{
    b->tail += n;
    if (b->tail - b->head >= WD_STRBUF_LIMIT)
        b->grown = 1;
}

int
wd_buf_append(struct wd_buf *b, const void *data, size_t len)
{
    uint64_t total;

    if (len == 0)
        return 0;
    if (b->fd >= 0) {
        if (pwrite_all(b->fd, data, len, b->ftail) < 0)
            return -1;
        b->ftail += len;
        return 0;
    }
    total = (uint64_t)(b->tail - b->head) + len;
    if (spills_at(b, total)) {
        if (spill(b, data, len) < 0)
            return -1;
        b->grown = 1;
        return 0;
    }
    if (reserve(b, len) < 0)
        return -1;
    memcpy(b->mem + b->tail, data, len);
    b->tail += len;
    if (total >= WD_STRBUF_LIMIT)
        b->grown = 1;
    return 0;
}

/* Advance the head by N (<= length); empty buffers restart at zero. */
static void
consume(struct wd_buf *b, uint64_t n)
{
    if (b->fd >= 0) {
        b->fhead += n;
        if (b->fhead == b->ftail) {
            /* Give the blocks back; a failure only costs disk space. */
            if (ftruncate(b->fd, 0) == 0)
                b->fhead = b->ftail = 0;
        }
        return;
    }
    b->head += (size_t)n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

ssize_t
wd_buf_pread(struct wd_buf *b, void *dst, size_t len, uint64_t pos)
{
    uint64_t avail = wd_buf_len(b);

    if (pos >= avail || len == 0)
        return 0;
    if (len > avail - pos)
        len = (size_t)(avail - pos);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    if (b->fd >= 0)
        return pread_all(b->fd, dst, len, b->fhead + pos);
    memcpy(dst, b->mem + b->head + pos, len);
    return (ssize_t)len;
}

ssize_t
wd_buf_read(struct wd_buf *b, void *dst, size_t len)
{
    ssize_t n = wd_buf_pread(b, dst, len, 0);

    if (n > 0)
        consume(b, (uint64_t)n);
    return n;
}

int
wd_buf_skip(struct wd_buf *b, uint64_t len)
{
    if (len > wd_buf_len(b)) {
        errno = EINVAL;
        return -1;
    }
    if (len > 0)
        consume(b, len);
    return 0;
}

ssize_t
wd_buf_peek(struct wd_buf *b, const void **ptr, int *fd, off_t *off)
{
    if (b->fd >= 0) {
        if (ptr != NULL)
            *ptr = NULL;
        if (fd != NULL)
            *fd = b->fd;
        if (off != NULL)
            *off = (off_t)b->fhead;
        return 0;
    }
    if (ptr != NULL)
        *ptr = b->mem != NULL ? b->mem + b->head : NULL;
    if (fd != NULL)
        *fd = -1;
    if (off != NULL)
        *off = 0;
    return (ssize_t)(b->tail - b->head);
}

ssize_t
wd_buf_line_len(struct wd_buf *b, uint64_t pos, size_t limit)
{
    uint64_t avail = wd_buf_len(b);
    size_t want, done;
    char chunk[8192];
    const char *nl;

    if (pos >= avail)
        return 0;
    want = avail - pos < limit ? (size_t)(avail - pos) : limit;
    if (want > SSIZE_MAX)
        want = SSIZE_MAX;
    if (b->fd < 0) {
        nl = memchr(b->mem + b->head + pos, '\n', want);
        return nl ? nl - (b->mem + b->head + pos) + 1 : (ssize_t)want;
    }
    for (done = 0; done < want;) {
        size_t n = want - done < sizeof chunk ? want - done : sizeof chunk;
        ssize_t got = pread_all(b->fd, chunk, n, b->fhead + pos + done);

        if (got < 0)
            return -1;
        if (got == 0)
            break; /* file shorter than recorded: report what exists */
        if ((nl = memchr(chunk, '\n', (size_t)got)) != NULL)
            return (ssize_t)(done + (size_t)(nl - chunk) + 1);
        done += (size_t)got;
    }
    return (ssize_t)done;
}

void
wd_buf_clear(struct wd_buf *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
        b->fhead = b->ftail = 0;
    }
    /* Keep a small block for reuse; give a grown one back. */
    if (b->cap > WD_STRBUF_LIMIT) {
        WD_FREE(b->mem);
        b->cap = 0;
    }
    b->head = b->tail = 0;
    b->grown = 0;
}
