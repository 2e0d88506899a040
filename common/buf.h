/*
 * buf.h - overflowable byte buffers (waitress buffers.py, SPEC.md 8, 15).
 *
 * A wd_buf keeps its bytes in memory until it holds `overflow` bytes, then
 * moves them to an unlinked temporary file ($TMPDIR or /tmp) and appends
 * there.  It is a FIFO: writers append at the tail, readers consume from
 * the head (wd_buf_read / wd_buf_skip) or read with a cursor that does not
 * consume (wd_buf_pread, for wsgi.input's seek/tell).
 *
 * Not thread safe: the owner serialises access (the channel lock for
 * output buffers; request bodies are written by the loop and read by one
 * pool thread only after the request is complete).
 *
 * Errors from the temp file (ENOSPC, EMFILE...) are returned as -1 with
 * errno set; the buffer then stays as it was before the failed call.
 */
#ifndef WD_COMMON_BUF_H
#define WD_COMMON_BUF_H

#include <stdint.h>
#include <sys/types.h>

struct wd_buf;

/*
 * New empty buffer spilling to a file at OVERFLOW bytes (0: never).  As in
 * waitress (SPEC.md 8, 15), content below WD_STRBUF_LIMIT bytes never
 * spills: the move happens once the buffer has held WD_STRBUF_LIMIT bytes
 * and holds OVERFLOW or more.  A file buffer stays a file until cleared.
 */
struct wd_buf *wd_buf_new(uint64_t overflow);

/* An inbuf_overflow / outbuf_overflow setting as OVERFLOW above: one at
 * or below 0 is reached at once, so such a buffer moves to its file as
 * soon as it may (at WD_STRBUF_LIMIT), as in waitress.  Never 0. */
static inline uint64_t
wd_buf_overflow_of(int64_t setting)
{
    return setting > 0 ? (uint64_t)setting : 1;
}
void wd_buf_free(struct wd_buf *b); /* NULL is fine */

/* Append LEN bytes.  0 or -1 (errno). */
int wd_buf_append(struct wd_buf *b, const void *data, size_t len);

/*
 * Hint: TOTAL bytes are coming (a request's Content-Length).  An empty
 * buffer that will keep them in memory allocates them at once instead of
 * growing 8, 16, 32... KiB with a copy each time.  Capped at
 * WD_BUF_EXPECT_MAX; the pages are only touched as bytes arrive.
 */
#define WD_BUF_EXPECT_MAX (1u << 20)
void wd_buf_expect(struct wd_buf *b, uint64_t total);

/*
 * Room for LEN bytes at the tail, to be filled in place (a recv straight
 * into a request body) and then counted with wd_buf_commit.  NULL when the
 * buffer is a file, when LEN more bytes would move it to one, or when the
 * block cannot grow: wd_buf_append then does what is needed.  The pointer
 * is valid until the next call that modifies B.
 */
void *wd_buf_room(struct wd_buf *b, size_t len);
/* Count N bytes written at wd_buf_room (N <= the LEN asked there). */
void wd_buf_commit(struct wd_buf *b, size_t n);

/* Bytes not yet consumed. */
uint64_t wd_buf_len(const struct wd_buf *b);
/* Nonzero when the data lives in a temp file. */
int wd_buf_is_file(const struct wd_buf *b);
/* The temp file's descriptor (the data is at offsets [*HEAD, *TAIL)), or
 * -1 for a buffer in memory.  Still the buffer's: not to be closed. */
int wd_buf_file(const struct wd_buf *b, uint64_t *head, uint64_t *tail);

/*
 * Consume up to LEN bytes from the head into DST.  Returns the count
 * (0 at end), or -1 (errno).
 */
ssize_t wd_buf_read(struct wd_buf *b, void *dst, size_t len);
/* Drop LEN bytes from the head (after a successful send).  0, or -1
 * (EINVAL) when LEN exceeds wd_buf_len and nothing is dropped. */
int wd_buf_skip(struct wd_buf *b, uint64_t len);

/*
 * Zero-copy access to the head for the writer: sets *PTR to contiguous
 * in-memory bytes and returns their count, or, for a file-backed buffer,
 * returns 0 and sets *FD / *OFF so the caller can sendfile(2) from it
 * (up to wd_buf_len bytes); *FD is -1 in memory mode.  The pointer is
 * valid until the next call that modifies B.  Any out pointer may be
 * NULL.  -1 on error.
 */
ssize_t wd_buf_peek(struct wd_buf *b, const void **ptr, int *fd, off_t *off);

/*
 * Read without consuming, at offset POS from the current head (for
 * wsgi.input, whose body buffer is never consumed).  Count, 0 at end, -1.
 */
ssize_t wd_buf_pread(struct wd_buf *b, void *dst, size_t len, uint64_t pos);

/*
 * Find the first '\n' at or after POS, looking at no more than LIMIT
 * bytes.  Returns the count of bytes up to and including it, or, when
 * there is none within LIMIT / before the end, the bytes available
 * (min(LIMIT, len - pos)).  -1 on error.  For readline().
 */
ssize_t wd_buf_line_len(struct wd_buf *b, uint64_t pos, size_t limit);

/* Forget the content, keep the buffer (a file is closed).  */
void wd_buf_clear(struct wd_buf *b);

#endif
