/*
 * fuzz_parser.c - libFuzzer target for the request parser (http_parse.c).
 *
 * Input layout: byte 0 picks the limits, byte 1 where to cut, the rest is
 * what a client sends on one connection.  The bytes are run through a
 * small model of the channel (pipelined requests, one parser object per
 * request, stop after an error) four ways: in one read, in two reads cut
 * at the chosen offset, in reads of a fixed size that go straight into
 * the body's buffer whenever the parser offers room for a whole read (the
 * channel's read_once; the size comes from byte 0's top bits), and (for
 * short inputs) one byte per read.  Every run must produce the same
 * sequence of requests.  Each read is its own exact-size heap copy, so
 * AddressSanitizer sees any over-read.
 *
 * The one split-dependent outcome allowed (see error_read_tail in
 * http_parse.c): a chunk error found in one read becomes a 413 when the
 * same read holds enough further bytes.  A run that reports that 413 where
 * another reports the chunk error ends the comparison there.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct text {
    char *s;
    size_t len, cap;
    /* per request (NREQ of them, room for RCAP): where its record starts,
       its status, whether it is a chunk error.  No cap: with one, the
       last tracked record ran to the end of the text, and an allowed
       divergence in a later request read as a mismatch. */
    size_t nreq, rcap;
    size_t *start;
    int *status;
    int *chunk_error;
};

static void
add(struct text *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->s = realloc(t->s, t->cap);
        if (t->s == NULL)
            abort();
    }
    memcpy(t->s + t->len, p, n);
    t->len += n;
}

static void
add_field(struct text *t, const char *p, size_t n)
{
    uint64_t len = n;

    add(t, &len, sizeof len);
    if (n > 0)
        add(t, p, n);
}

static void
add_num(struct text *t, uint64_t v)
{
    add(t, &v, sizeof v);
}

/* Append one finished (or unfinished, LAST) request's observable state. */
static void
record(struct text *t, struct wd_http_request *r, size_t consumed)
{
    if (t->nreq == t->rcap) {
        t->rcap = t->rcap * 2 + 16;
        t->start = realloc(t->start, t->rcap * sizeof *t->start);
        t->status = realloc(t->status, t->rcap * sizeof *t->status);
        t->chunk_error = realloc(t->chunk_error,
                                 t->rcap * sizeof *t->chunk_error);
        if (t->start == NULL || t->status == NULL || t->chunk_error == NULL)
            abort();
    }
    t->start[t->nreq] = t->len;
    t->status[t->nreq] = r->error_status;
    t->chunk_error[t->nreq] =
        r->error_detail != NULL &&
        (strstr(r->error_detail, "chunk") != NULL ||
         strstr(r->error_detail, "Chunk") != NULL);
    t->nreq++;
    add_num(t, 0xfeedu);
    add_num(t, (uint64_t)r->state);
    add_num(t, (uint64_t)r->error_status);
    add_field(t, r->error_detail, r->error_detail_len);
    add_num(t, (uint64_t)r->error_http11);
    add_num(t, (uint64_t)r->drop_connection);
    add_num(t, (uint64_t)r->empty);
    if (r->error_status == 0)
        add_num(t, consumed);
    if (r->state == WD_REQ_HEAD || r->method == NULL)
        return;
    add_field(t, r->method, strlen(r->method));
    add_field(t, r->target, r->target_len);
    add_field(t, r->path, r->path_len);
    add_field(t, r->query, r->query_len);
    add_num(t, (uint64_t)(r->http11 | r->chunked << 1 | r->close_after << 2 |
                          r->expect_continue << 3 | r->body_expected << 4));
    add_num(t, r->content_length);
    for (size_t i = 0; i < r->nheaders; i++) {
        add_field(t, r->headers[i].name, r->headers[i].name_len);
        add_field(t, r->headers[i].value, r->headers[i].value_len);
        if (r->headers[i].name[r->headers[i].name_len] != '\0' ||
            r->headers[i].value[r->headers[i].value_len] != '\0')
            abort();
    }
    if (r->body != NULL && r->state == WD_REQ_DONE) {
        uint64_t n = wd_buf_len(r->body);
        char buf[4096];

        add_num(t, n);
        for (uint64_t pos = 0; pos < n;) {
            ssize_t k = wd_buf_pread(r->body, buf, sizeof buf, pos);

            if (k <= 0)
                abort();
            add(t, buf, (size_t)k);
            pos += (uint64_t)k;
        }
    }
}

/*
 * R is done: record it and, unless it failed (the channel then closes),
 * start the next request.  1 when nothing more is parsed.
 */
static int
finish(struct text *t, struct wd_http_request **r, size_t *consumed,
       const struct wd_http_limits *lim)
{
    if (wd_http_request_feed(*r, "x", 1, lim) != 0)
        abort();
    record(t, *r, *consumed);
    if ((*r)->error_status != 0)
        return 1;
    wd_http_request_free(*r);
    if ((*r = wd_http_request_new()) == NULL)
        abort();
    *consumed = 0;
    return 0;
}

/*
 * Feed IN as reads cut at CUT (0: one read; SIZE_MAX: one byte each), or,
 * with RSIZE > 0, as reads of RSIZE bytes, received straight into the
 * body wherever the parser offers room for RSIZE.  Returns the record of
 * every request, in order.
 */
static struct text
run(const uint8_t *in, size_t n, size_t cut, size_t rsize,
    const struct wd_http_limits *lim)
{
    struct text t = {0};
    struct wd_http_request *r = wd_http_request_new();
    size_t pos = 0, consumed = 0;
    int stop = 0;

    if (r == NULL)
        abort();
    while (pos < n && !stop) {
        size_t end = rsize > 0 ? (n - pos < rsize ? n : pos + rsize)
                     : cut == SIZE_MAX ? pos + 1
                                       : (cut > pos && cut < n ? cut : n);
        size_t len = end - pos;
        char *room = rsize > 0 ? wd_http_request_body_room(r, rsize) : NULL;
        char *rd;
        size_t off = 0;

        if (room != NULL) {
            memcpy(room, in + pos, len); /* what recv would have put there */
            wd_http_request_body_commit(r, len);
            consumed += len;
            pos = end;
            if (r->state == WD_REQ_DONE)
                stop = finish(&t, &r, &consumed, lim);
            continue;
        }
        if ((rd = malloc(len)) == NULL) /* exact size: over-reads caught */
            abort();
        memcpy(rd, in + pos, len);
        while (off < len) {
            ssize_t k = wd_http_request_feed(r, rd + off, len - off, lim);

            if (k < 0 || (size_t)k > len - off)
                abort();
            if ((size_t)k < len - off && r->state != WD_REQ_DONE)
                abort();
            off += (size_t)k;
            consumed += (size_t)k;
            if (r->state == WD_REQ_DONE) {
                if ((stop = finish(&t, &r, &consumed, lim)) != 0)
                    break;
            } else if (k == 0) {
                abort(); /* no progress on a request still open */
            }
        }
        free(rd);
        pos = end;
    }
    if (!stop)
        record(&t, r, consumed);
    wd_http_request_free(r);
    return t;
}

static void
text_free(struct text *t)
{
    free(t->s);
    free(t->start);
    free(t->status);
    free(t->chunk_error);
}

static size_t
rec_end(const struct text *t, size_t i)
{
    return i + 1 < t->nreq ? t->start[i + 1] : t->len;
}

/* Same records, request by request, up to the allowed divergence. */
static void
compare(const struct text *a, const struct text *b)
{
    size_t n = a->nreq < b->nreq ? a->nreq : b->nreq;

    if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t la = rec_end(a, i) - a->start[i];
        size_t lb = rec_end(b, i) - b->start[i];

        if (la == lb && memcmp(a->s + a->start[i], b->s + b->start[i], la) == 0)
            continue;
        if ((a->status[i] == 413 && b->status[i] == 400 && b->chunk_error[i]) ||
            (b->status[i] == 413 && a->status[i] == 400 && a->chunk_error[i]))
            return; /* error_read_tail: the rest is closed anyway */
        fprintf(stderr, "request %zu differs (status %d vs %d)\n", i,
                a->status[i], b->status[i]);
        abort();
    }
    fprintf(stderr, "different request counts %zu vs %zu\n", a->nreq,
            b->nreq);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t headers[] = {40, 200, 1000, 262144};
    static const int64_t bodies[] = {12, 100, 4096, 1073741824};
    struct wd_http_limits lim;
    struct text whole, split, reads, bytes;
    size_t n, cut, rsize;

    if (size < 2)
        return 0;
    lim.max_header = headers[data[0] & 3];
    lim.max_body = bodies[(data[0] >> 2) & 3];
    lim.inbuf_overflow = (data[0] & 0x10) ? 256 : 1 << 20;
    n = size - 2;
    cut = n > 0 ? (size_t)data[1] * n / 255 : 0;
    data += 2;

    rsize = ((size_t)(data[-2] >> 5) + 1) * 5; /* 5..40 */
    whole = run(data, n, 0, 0, &lim);
    split = run(data, n, cut, 0, &lim);
    compare(&whole, &split);
    reads = run(data, n, 0, rsize, &lim);
    compare(&whole, &reads);
    if (n <= 512) {
        bytes = run(data, n, SIZE_MAX, 0, &lim);
        compare(&whole, &bytes);
        text_free(&bytes);
    }
    text_free(&whole);
    text_free(&split);
    text_free(&reads);
    return 0;
}
