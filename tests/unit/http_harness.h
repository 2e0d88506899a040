/*
 * http_harness.h - shared helpers for the parser unit tests
 * (test_http_parse.c, test_chunked.c, test_smuggling.c).
 *
 * Every sample goes through wd_http_request_feed in three ways: all at
 * once, one byte at a time, and (for inputs up to HARNESS_SPLIT_MAX bytes)
 * split in two at every offset.  All runs must describe the same outcome.
 * Input bytes always sit at the very end of a read-only mapping followed
 * by a PROT_NONE page (STYLE.md 10), so reading one byte too far, or
 * writing into the caller's bytes, crashes the test.
 */
#ifndef WD_TESTS_HTTP_HARNESS_H
#define WD_TESTS_HTTP_HARNESS_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "http_parse.h"

#define HARNESS_SPLIT_MAX 400

/* waitress's defaults */
static const struct wd_http_limits default_limits = {
    .max_header = 262144,
    .max_body = 1073741824,
    .inbuf_overflow = 524288,
};

struct outcome {
    struct wd_http_request *r; /* from the all-at-once run */
    size_t consumed;
    char *desc; /* everything observable, as text */
    char *body;
    size_t body_len;
};

struct guard {
    char *base;
    size_t size;
    const char *p; /* the bytes, ending where the PROT_NONE page starts */
};

/* A copy of S at the end of read-only pages followed by a PROT_NONE page. */
static inline struct guard
guarded(const char *s, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = n == 0 ? pg : (n + pg - 1) / pg * pg;
    struct guard g;

    g.base = mmap(NULL, span + pg, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* plain checks: criterion reports every passing cr_assert, too slow
     * for a byte-at-a-time loop */
    if (g.base == MAP_FAILED)
        cr_assert_fail("mmap");
    g.size = span + pg;
    if (mprotect(g.base + span, pg, PROT_NONE) != 0)
        cr_assert_fail("mprotect");
    memcpy(g.base + span - n, s, n);
    if (mprotect(g.base, span, PROT_READ) != 0)
        cr_assert_fail("mprotect");
    g.p = g.base + span - n;
    return g;
}

static inline void
guard_free(struct guard g)
{
    munmap(g.base, g.size);
}

struct strbuf {
    char *s;
    size_t len, cap;
};

static inline void
sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (b->s == NULL)
            cr_assert_fail("realloc");
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static inline void
sb_str(struct strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Printable rendering of N raw bytes. */
static inline void
sb_esc(struct strbuf *b, const char *s, size_t n)
{
    if (s == NULL) {
        sb_str(b, "(null)");
        return;
    }
    sb_str(b, "[");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char t[8];

        if (c >= 0x20 && c < 0x7f && c != '\\') {
            sb_add(b, (const char *)&c, 1);
        } else {
            snprintf(t, sizeof t, "\\x%02x", c);
            sb_str(b, t);
        }
    }
    sb_str(b, "]");
}

static inline void
sb_fmt(struct strbuf *b, const char *name, long long v)
{
    char t[64];

    snprintf(t, sizeof t, " %s=%lld", name, v);
    sb_str(b, t);
}

static inline char *
read_body(struct wd_http_request *r, size_t *len)
{
    size_t n;
    char *out;

    if (r->body == NULL) {
        *len = 0;
        return calloc(1, 1);
    }
    n = (size_t)wd_buf_len(r->body);
    out = malloc(n + 1);
    if (out == NULL || wd_buf_pread(r->body, out, n, 0) != (ssize_t)n)
        cr_assert_fail("reading the body back");
    out[n] = '\0';
    *len = n;
    return out;
}

static inline char *
describe(struct wd_http_request *r, size_t consumed)
{
    struct strbuf b = {0};
    char *body;
    size_t blen;

    sb_fmt(&b, "state", r->state);
    /* after an error the rest is discarded; how much of it the parser
     * swallowed may depend on the split (see error_read_tail) */
    if (r->error_status == 0)
        sb_fmt(&b, "consumed", (long long)consumed);
    sb_fmt(&b, "empty", r->empty);
    sb_fmt(&b, "status", r->error_status);
    sb_str(&b, " detail=");
    sb_esc(&b, r->error_detail, r->error_detail_len);
    sb_fmt(&b, "err11", r->error_http11);
    sb_fmt(&b, "drop", r->drop_connection);
    if (r->state == WD_REQ_HEAD)
        return b.s;
    sb_str(&b, " rl=");
    sb_esc(&b, r->request_line, r->request_line_len);
    sb_str(&b, " method=");
    sb_esc(&b, r->method, r->method ? strlen(r->method) : 0);
    sb_str(&b, " target=");
    sb_esc(&b, r->target, r->target_len);
    sb_str(&b, " path=");
    sb_esc(&b, r->path, r->path_len);
    sb_str(&b, " query=");
    sb_esc(&b, r->query, r->query_len);
    sb_fmt(&b, "vmaj", r->version_major);
    sb_fmt(&b, "vmin", r->version_minor);
    sb_fmt(&b, "http11", r->http11);
    sb_fmt(&b, "chunked", r->chunked);
    sb_fmt(&b, "close", r->close_after);
    sb_fmt(&b, "expect", r->expect_continue);
    sb_fmt(&b, "bexp", r->body_expected);
    sb_fmt(&b, "cl", (long long)r->content_length);
    sb_str(&b, " headers={");
    for (size_t i = 0; i < r->nheaders; i++) {
        sb_esc(&b, r->headers[i].name, r->headers[i].name_len);
        sb_str(&b, ":");
        sb_esc(&b, r->headers[i].value, r->headers[i].value_len);
        if (r->headers[i].name[r->headers[i].name_len] != '\0' ||
            r->headers[i].value[r->headers[i].value_len] != '\0')
            cr_assert_fail("header strings must be NUL-terminated");
    }
    sb_str(&b, "}");
    sb_str(&b, " conn=");
    sb_esc(&b, r->connection, r->connection ? strlen(r->connection) : 0);
    body = read_body(r, &blen);
    sb_str(&b, " body=");
    sb_esc(&b, body, blen);
    free(body);
    return b.s;
}

/*
 * Feed IN[0, N) in pieces: SPLIT 0 = all at once, SPLIT_BYTES = one byte
 * at a time, otherwise two pieces cut at SPLIT.  Each piece is copied to
 * its own guarded page end.  Stops when the request is done.
 */
#define SPLIT_BYTES ((size_t)-1)

static inline struct wd_http_request *
feed_split(const char *in, size_t n, const struct wd_http_limits *lim,
           size_t split, size_t *consumed)
{
    struct wd_http_request *r = wd_http_request_new();
    size_t used = 0;
    /* long inputs fed byte by byte: one guarded copy, not a map per byte */
    int one_map = split == SPLIT_BYTES && n > 4096;
    struct guard whole = one_map ? guarded(in, n) : (struct guard){0};

    if (r == NULL)
        cr_assert_fail("wd_http_request_new");
    while (used < n && r->state != WD_REQ_DONE) {
        size_t piece;
        struct guard g;
        ssize_t k;

        if (split == SPLIT_BYTES)
            piece = 1;
        else if (split > used && split < n)
            piece = split - used;
        else
            piece = n - used;
        if (one_map) {
            k = wd_http_request_feed(r, whole.p + used, piece, lim);
        } else {
            g = guarded(in + used, piece);
            k = wd_http_request_feed(r, g.p, piece, lim);
            guard_free(g);
        }
        if (k < 0)
            cr_assert_fail("feed failed");
        if ((size_t)k > piece)
            cr_assert_fail("consumed more than given");
        if ((size_t)k < piece && r->state != WD_REQ_DONE)
            cr_assert_fail("a short consume must finish the request");
        used += (size_t)k;
        if (k == 0 && r->state != WD_REQ_DONE)
            cr_assert_fail("no progress");
    }
    if (one_map)
        guard_free(whole);
    /* a finished request takes nothing more */
    if (r->state == WD_REQ_DONE && wd_http_request_feed(r, "x", 1, lim) != 0)
        cr_assert_fail("a finished request consumed bytes");
    *consumed = used;
    return r;
}

/*
 * Outcomes live until the test process ends (each criterion test is its
 * own process).  Keeping them reachable from a global tells
 * LeakSanitizer they are not leaks.
 */
static void **harness_keep;
static size_t harness_nkeep, harness_capkeep;

static inline void
keep(void *p)
{
    if (harness_nkeep == harness_capkeep) {
        harness_capkeep = harness_capkeep ? 2 * harness_capkeep : 64;
        harness_keep = realloc(harness_keep,
                               harness_capkeep * sizeof *harness_keep);
        if (harness_keep == NULL)
            cr_assert_fail("realloc");
    }
    harness_keep[harness_nkeep++] = p;
}

static inline struct outcome
kept(struct outcome o)
{
    keep(o.r);
    keep(o.desc);
    keep(o.body);
    return o;
}

/* Run every split; they must agree.  Returns the all-at-once outcome. */
static inline struct outcome
parse_lim(const char *in, size_t n, const struct wd_http_limits *lim)
{
    struct outcome o;
    size_t c;
    struct wd_http_request *r;
    char *d;

    o.r = feed_split(in, n, lim, 0, &o.consumed);
    o.desc = describe(o.r, o.consumed);
    o.body = read_body(o.r, &o.body_len);

    r = feed_split(in, n, lim, SPLIT_BYTES, &c);
    d = describe(r, c);
    if (strcmp(d, o.desc) != 0)
        cr_assert_fail("byte-at-a-time differs:\n%s\nvs whole:\n%s", d,
                       o.desc);
    free(d);
    wd_http_request_free(r);

    if (n <= HARNESS_SPLIT_MAX) {
        for (size_t s = 1; s < n; s++) {
            r = feed_split(in, n, lim, s, &c);
            d = describe(r, c);
            if (strcmp(d, o.desc) != 0)
                cr_assert_fail("split at %zu differs:\n%s\nvs:\n%s", s, d,
                               o.desc);
            free(d);
            wd_http_request_free(r);
        }
    }
    return kept(o);
}

/* All at once only: for the one split-dependent quirk (413 after a chunk
 * error found in the same read). */
static inline struct outcome
parse_whole(const char *in, size_t n, const struct wd_http_limits *lim)
{
    struct outcome o;

    o.r = feed_split(in, n, lim, 0, &o.consumed);
    o.desc = describe(o.r, o.consumed);
    o.body = read_body(o.r, &o.body_len);
    return kept(o);
}

static inline struct outcome
parse_n(const char *in, size_t n)
{
    return parse_lim(in, n, &default_limits);
}

#define PARSE(lit) parse_n((lit), sizeof(lit) - 1)
#define PARSE_LIM(lit, lim) parse_lim((lit), sizeof(lit) - 1, (lim))

static inline const char *
hdr(const struct outcome *o, const char *name)
{
    return wd_http_request_header(o->r, name, NULL);
}

/* Assert an error outcome with its exact detail. */
static inline void
expect_error(struct outcome o, int status, const char *detail, int http11)
{
    cr_assert_eq(o.r->state, WD_REQ_DONE, "%s", o.desc);
    cr_assert_eq(o.r->error_status, status, "%s", o.desc);
    cr_assert_eq(o.r->error_detail_len, strlen(detail), "%s", o.desc);
    cr_assert_str_eq(o.r->error_detail, detail);
    cr_assert_eq(o.r->error_http11, http11, "%s", o.desc);
    cr_assert_eq(o.r->drop_connection, 0);
}

static inline void
expect_ok(struct outcome o)
{
    cr_assert_eq(o.r->state, WD_REQ_DONE, "%s", o.desc);
    cr_assert_eq(o.r->error_status, 0, "%s", o.desc);
    cr_assert_eq(o.r->empty, 0, "%s", o.desc);
}

#endif
