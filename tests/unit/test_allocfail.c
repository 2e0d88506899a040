/*
 * test_allocfail.c - allocation-failure injection for the request parser
 * and the buffers (issue 7).
 *
 * This program is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=free (tests/unit/include.am), so every allocation
 * made by libwdcommon.a code goes through the wrappers below.  A run
 * fails the Nth allocation; each scenario is replayed for N = 1, 2, ...
 * until a run completes without reaching N.  Every run must either report
 * the failure (NULL / -1) or produce exactly the reference result, must
 * not crash, and must give back every block it allocated (the wrappers
 * track live blocks, so leaks show without LeakSanitizer too).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_parse.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/* --- injection and tracking -------------------------------------------- */

static long fail_at;  /* fail the fail_at-th allocation; 0: never */
static long nallocs;  /* allocations seen since arm() */
static int injected;  /* the failure happened */

#define TRACK_SLOTS 65536 /* open addressing; far above any scenario */
static void *tracked[TRACK_SLOTS];
static long live;
static int track_overflow;

static size_t
slot_of(const void *p)
{
    return ((uintptr_t)p >> 4) * 2654435761u % TRACK_SLOTS;
}

static void
track(void *p)
{
    size_t i = slot_of(p);

    for (size_t k = 0; k < TRACK_SLOTS; k++, i = (i + 1) % TRACK_SLOTS) {
        if (tracked[i] == NULL || tracked[i] == (void *)1) {
            tracked[i] = p;
            live++;
            return;
        }
    }
    track_overflow = 1;
}

/* Forget P; 0 if it was not one of ours (libc's own blocks). */
static int
untrack(void *p)
{
    size_t i = slot_of(p);

    for (size_t k = 0; k < TRACK_SLOTS; k++, i = (i + 1) % TRACK_SLOTS) {
        if (tracked[i] == NULL)
            return 0;
        if (tracked[i] == p) {
            tracked[i] = (void *)1; /* tombstone */
            live--;
            return 1;
        }
    }
    return 0;
}

static int
should_fail(void)
{
    nallocs++;
    if (fail_at > 0 && nallocs == fail_at) {
        injected = 1;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *
__wrap_malloc(size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    if ((p = __real_malloc(n)) != NULL)
        track(p);
    return p;
}

void *
__wrap_calloc(size_t n, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    if ((p = __real_calloc(n, size)) != NULL)
        track(p);
    return p;
}

void *
__wrap_realloc(void *old, size_t n)
{
    void *p;

    if (should_fail())
        return NULL; /* OLD stays valid, as with a real failure */
    if ((p = __real_realloc(old, n)) != NULL || n == 0) {
        if (old != NULL)
            untrack(old);
        if (p != NULL)
            track(p);
    }
    return p;
}

void
__wrap_free(void *p)
{
    if (p != NULL)
        untrack(p);
    __real_free(p);
}

static void
arm(long n)
{
    fail_at = n;
    nallocs = 0;
    injected = 0;
}

static void
disarm(void)
{
    fail_at = 0;
}

/* --- the parser ----------------------------------------------------------- */

static const struct wd_http_limits limits = {
    .max_header = 262144,
    .max_body = 1073741824,
    .inbuf_overflow = 16384, /* small, so bodies spill to a temp file */
};

/* Everything observable about a finished parse, as text (unwrapped
 * memory: the caller's fixed buffer). */
static void
describe(const struct wd_http_request *r, size_t consumed, char *out,
         size_t outlen)
{
    int n = snprintf(out, outlen, "state=%d empty=%d status=%d consumed=%zu",
                     r->state, r->empty, r->error_status, consumed);

    if (r->error_status != 0 && r->error_detail != NULL)
        n += snprintf(out + n, outlen - (size_t)n, " detail=%s",
                      r->error_detail);
    if (r->state != WD_REQ_HEAD && r->error_status == 0) {
        n += snprintf(out + n, outlen - (size_t)n, " %s %.*s ?%.*s h=%zu",
                      r->method, (int)r->path_len, r->path,
                      (int)r->query_len, r->query, r->nheaders);
        for (size_t i = 0; i < r->nheaders && (size_t)n < outlen; i++)
            n += snprintf(out + n, outlen - (size_t)n, " %s=%s",
                          r->headers[i].name, r->headers[i].value);
    }
    if (r->body != NULL && (size_t)n < outlen) {
        uint64_t len = wd_buf_len(r->body);
        unsigned sum = 0;
        char blk[4096];
        uint64_t pos = 0;
        ssize_t got;

        while ((got = wd_buf_pread(r->body, blk, sizeof blk, pos)) > 0) {
            for (ssize_t i = 0; i < got; i++)
                sum = sum * 31 + (unsigned char)blk[i];
            pos += (uint64_t)got;
        }
        snprintf(out + n, outlen - (size_t)n, " body=%llu/%u",
                 (unsigned long long)len, sum);
    }
}

/*
 * Parse IN (fed in pieces of STEP bytes, 0: all at once) as one request.
 * Returns 0 with OUT describing it, or -1 when an allocation failure was
 * reported (NULL or -1).  Frees everything either way.
 */
static int
parse_once(const char *in, size_t len, size_t step, char *out, size_t outlen)
{
    struct wd_http_request *r = wd_http_request_new();
    size_t off = 0;

    if (r == NULL)
        return -1;
    while (off < len && r->state != WD_REQ_DONE) {
        size_t piece = step == 0 || len - off < step ? len - off : step;
        ssize_t n = wd_http_request_feed(r, in + off, piece, &limits);

        if (n < 0) {
            wd_http_request_free(r);
            return -1;
        }
        off += (size_t)n;
        if ((size_t)n < piece)
            break;
    }
    describe(r, off, out, outlen);
    wd_http_request_free(r);
    return 0;
}

/* Replay IN with the Nth allocation failing, for every N that is hit. */
static void
walk_parser(const char *in, size_t len, size_t step)
{
    static char ref[65536], got[65536];
    long n;

    cr_assert_eq(parse_once(in, len, step, ref, sizeof ref), 0);
    cr_assert_eq(live, 0, "the reference parse leaks %ld blocks", live);
    for (n = 1; n < 100000; n++) {
        int rc;

        arm(n);
        rc = parse_once(in, len, step, got, sizeof got);
        disarm();
        cr_assert_eq(live, 0, "failure at allocation %ld leaks %ld blocks",
                     n, live);
        cr_assert(!track_overflow);
        if (!injected) {
            cr_assert_eq(rc, 0);
            cr_assert_str_eq(got, ref);
            break;
        }
        /* a swallowed failure must not change the outcome */
        if (rc == 0)
            cr_assert_str_eq(got, ref, "allocation %ld failed silently", n);
    }
    cr_assert_gt(n, 1, "the parse allocates nothing?");
}

/*
 * A body whose length is known is stored in one block allocated with the
 * head (wd_buf_expect): no growing by doubling, with a copy each time,
 * while its 8 KiB reads arrive.
 */
Test(allocfail, known_length_body_allocates_nothing_while_it_arrives)
{
    static const struct wd_http_limits big = {
        .max_header = 262144,
        .max_body = 1073741824,
        .inbuf_overflow = 524288,
    };
    static char body[65536];
    static const char head[] = "POST /up HTTP/1.1\r\nContent-Length: 65536\r\n\r\n";
    struct wd_http_request *r = wd_http_request_new();
    long after_head;

    cr_assert_not_null(r);
    memset(body, 'b', sizeof body);
    arm(0);
    cr_assert_eq(wd_http_request_feed(r, head, sizeof head - 1, &big),
                 (ssize_t)(sizeof head - 1));
    cr_assert_eq(r->state, WD_REQ_BODY);
    after_head = nallocs;
    for (size_t off = 0; off < sizeof body; off += 8192)
        cr_assert_eq(wd_http_request_feed(r, body + off, 8192, &big), 8192);
    cr_assert_eq(r->state, WD_REQ_DONE);
    cr_assert_eq(nallocs, after_head, "%ld allocations for the body",
                 nallocs - after_head);
    wd_http_request_free(r);
    cr_assert_eq(live, 0);
}

#define WALK(s, step) walk_parser((s), sizeof(s) - 1, (step))

Test(allocfail, simple_get)
{
    WALK("GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\n"
         "User-Agent: t\r\nAccept: */*\r\n\r\n",
         0);
}

Test(allocfail, simple_get_byte_at_a_time)
{
    WALK("GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n"
         "X-A: 2\r\n\r\n",
         1);
}

Test(allocfail, folded_and_repeated_headers)
{
    WALK("GET http://h:8080/p HTTP/1.0\r\nConnection: keep-alive\r\n"
         "X-Long: a\r\n b\r\n\tc\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
         7);
}

Test(allocfail, content_length_body)
{
    WALK("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
         "hello world",
         0);
}

Test(allocfail, chunked_body)
{
    WALK("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
         0);
}

Test(allocfail, chunked_body_in_small_pieces)
{
    WALK("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
         3);
}

Test(allocfail, error_request)
{
    WALK("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
         0);
}

Test(allocfail, bad_chunk)
{
    WALK("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "+4\r\nabcd\r\n0\r\n\r\n",
         0);
}

Test(allocfail, empty_request)
{
    WALK("\r\n\r\n", 0);
}

/* A body larger than inbuf_overflow: the temp-file spill path. */
Test(allocfail, spilled_bodies)
{
    static char in[65536];
    int n = snprintf(in, sizeof in,
                     "POST / HTTP/1.1\r\nContent-Length: 40000\r\n\r\n");
    size_t len = (size_t)n + 40000;
    static char chunked[65536];
    size_t clen;

    memset(in + n, 'b', 40000);
    walk_parser(in, len, 0);
    walk_parser(in, len, 8192);

    clen = (size_t)snprintf(chunked, sizeof chunked,
                            "POST / HTTP/1.1\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        clen += (size_t)snprintf(chunked + clen, sizeof chunked - clen,
                                 "2000\r\n");
        memset(chunked + clen, 'a' + i, 0x2000);
        clen += 0x2000;
        memcpy(chunked + clen, "\r\n", 2);
        clen += 2;
    }
    memcpy(chunked + clen, "0\r\n\r\n", 5);
    clen += 5;
    walk_parser(chunked, clen, 0);
    walk_parser(chunked, clen, 5000);
}

/* --- the buffers ----------------------------------------------------------- */

/* A model of the content: what a correct buffer holds. */
struct model {
    char data[1 << 17];
    size_t len;
};

static int
same_content(struct wd_buf *b, const struct model *m)
{
    static char got[1 << 17];

    if (wd_buf_len(b) != m->len)
        return 0;
    if (wd_buf_pread(b, got, sizeof got, 0) != (ssize_t)m->len)
        return 0;
    return memcmp(got, m->data, m->len) == 0;
}

/*
 * A sequence of appends and reads across the spill point, with the Nth
 * allocation failing: a failed call returns -1 and leaves the content as
 * it was (buf.h); the sequence then goes on.  Returns 0, -1 when a call
 * reported a failure, or -2 when the content went wrong.  (No cr_assert
 * here: this runs with the injection armed.)
 */
static int
buffer_run(uint64_t overflow)
{
    static struct model m;
    static char src[1 << 16], sink[1 << 16];
    struct wd_buf *b = wd_buf_new(overflow);
    static const size_t sizes[] = {10, 5000, 3000, 9000, 1, 20000, 7, 30000};
    int failed = 0;

    if (b == NULL)
        return -1;
    m.len = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(src, 'A' + (int)i, sizes[i]);
        if (wd_buf_append(b, src, sizes[i]) == 0) {
            memcpy(m.data + m.len, src, sizes[i]);
            m.len += sizes[i];
        } else {
            failed = 1;
        }
        if (!same_content(b, &m))
            goto wrong;
        if (i % 3 == 2) {
            ssize_t n = wd_buf_read(b, sink, 4000);

            if (n < 0 || memcmp(sink, m.data, (size_t)n) != 0)
                goto wrong;
            memmove(m.data, m.data + n, m.len - (size_t)n);
            m.len -= (size_t)n;
        }
    }
    wd_buf_clear(b);
    if (wd_buf_len(b) != 0)
        goto wrong;
    if (wd_buf_append(b, "again", 5) != 0)
        failed = 1;
    wd_buf_free(b);
    return failed ? -1 : 0;

wrong:
    wd_buf_free(b);
    return -2;
}

static void
walk_buffer(uint64_t overflow)
{
    long n;

    cr_assert_eq(buffer_run(overflow), 0);
    cr_assert_eq(live, 0);
    for (n = 1; n < 10000; n++) {
        int rc;

        arm(n);
        rc = buffer_run(overflow);
        disarm();
        cr_assert_eq(live, 0, "failure at allocation %ld leaks %ld blocks",
                     n, live);
        if (!injected) {
            cr_assert_eq(rc, 0);
            break;
        }
        cr_assert_eq(rc, -1, "allocation %ld failed silently", n);
    }
    cr_assert_gt(n, 1);
}

Test(allocfail, buffer_in_memory)
{
    walk_buffer(0);
}

Test(allocfail, buffer_spilling_to_file)
{
    walk_buffer(16384);
}

/* The temp file cannot be created: the append fails, nothing changes. */
Test(allocfail, buffer_spill_without_temp_dir)
{
    static char src[40000];
    struct wd_buf *b;

    setenv("TMPDIR", "/nonexistent/waitressd-allocfail", 1);
    b = wd_buf_new(16384);
    cr_assert_not_null(b);
    memset(src, 's', sizeof src);
    cr_assert_eq(wd_buf_append(b, src, 10000), 0);
    cr_assert_eq(wd_buf_append(b, src, 30000), -1);
    cr_assert_eq(wd_buf_len(b), 10000);
    cr_assert_eq(wd_buf_is_file(b), 0);
    cr_assert_eq(wd_buf_append(b, src, 100), 0);
    cr_assert_eq(wd_buf_len(b), 10100);
    wd_buf_free(b);
    unsetenv("TMPDIR");
    cr_assert_eq(live, 0);
}
