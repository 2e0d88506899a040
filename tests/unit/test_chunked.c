/*
 * Unit tests for chunked request bodies: common/chunked.c on its own and
 * through the request parser (SPEC.md 7, 19 items 2, 6, 15).  Ported
 * cases from waitress's tests/test_receiver.py, test_parser.py and
 * test_functional.py say so.
 */
#include "http_harness.h"

#include <criterion/criterion.h>

#include "chunked.h"
#include "wd.h"

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"

static struct outcome
chunked_lim(const char *body, size_t n, const struct wd_http_limits *lim)
{
    size_t hl = sizeof CHUNKED_HEAD - 1;
    char *in = malloc(hl + n);
    struct outcome o;

    memcpy(in, CHUNKED_HEAD, hl);
    memcpy(in + hl, body, n);
    o = parse_lim(in, hl + n, lim);
    free(in);
    return o;
}

#define CHUNKED(lit) chunked_lim((lit), sizeof(lit) - 1, &default_limits)

static void
expect_body(struct outcome o, const char *body, size_t n)
{
    char cl[32];

    expect_ok(o);
    cr_assert_eq(o.body_len, n, "%s", o.desc);
    cr_assert_eq(memcmp(o.body, body, n), 0);
    cr_assert_eq(o.r->content_length, n);
    snprintf(cl, sizeof cl, "%zu", n);
    cr_assert_str_eq(hdr(&o, "CONTENT_LENGTH"), cl);
}

Test(chunked, simple_body_sets_content_length)
{
    /* waitress test_received_chunked_completed_sets_content_length */
    struct outcome o = PARSE("GET /foobar HTTP/1.1\r\nTransfer-Encoding: "
                             "chunked\r\nX-Foo: 1\r\n\r\n1d\r\nThis string "
                             "has 29 characters\r\n0\r\n\r\n");

    expect_body(o, "This string has 29 characters", 29);
    cr_assert_eq(o.r->chunked, 1);
}

Test(chunked, empty_body_content_length_zero)
{
    /* waitress test_chunking_request_without_content */
    expect_body(CHUNKED("0\r\n\r\n"), "", 0);
}

Test(chunked, multiple_chunks)
{
    /* waitress test_received_multiple_chunks */
    expect_body(CHUNKED("4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks."
                        "\r\n0\r\n\r\n"),
                "Wikipedia in\r\n\r\nchunks.", 23);
}

Test(chunked, twelve_chunks)
{
    /* waitress test_chunking_request_with_content */
    char body[2048], want[1024];
    size_t k = 0, w = 0;

    for (int i = 0; i < 12; i++) {
        k += (size_t)sprintf(body + k,
                             "20\r\nThis string has 32 characters.\r\n\r\n");
        w += (size_t)sprintf(want + w, "This string has 32 characters.\r\n");
    }
    k += (size_t)sprintf(body + k, "0\r\n\r\n");
    expect_body(chunked_lim(body, k, &default_limits), want, w);
}

Test(chunked, hex_case_and_leading_zeros)
{
    expect_body(CHUNKED("0000A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"),
                "0123456789abcdefghijk", 21);
}

Test(chunked, blank_lines_between_chunks_skipped)
{
    expect_body(CHUNKED("\r\n\r\n3\r\nabc\r\n\r\n\r\n2\r\nde\r\n\r\n0\r\n\r\n"),
                "abcde", 5);
}

Test(chunked, valid_extensions_ignored)
{
    expect_body(CHUNKED("4;test\r\ntest\r\n0\r\n\r\n"), "test", 4);
    expect_body(CHUNKED("4;valid=true\r\ntest\r\n0\r\n\r\n"), "test", 4);
    expect_body(CHUNKED("4;valid=true;other=true\r\ntest\r\n0;x\r\n\r\n"),
                "test", 4);
    expect_body(CHUNKED("4;name=\"quoted; value\"\r\ntest\r\n0\r\n\r\n"),
                "test", 4);
    expect_body(CHUNKED("4;a=\"\\\"\\\t\xe9\";b\r\ntest\r\n0\r\n\r\n"), "test",
                4);
    expect_body(CHUNKED("4;a=\"\"\r\ntest\r\n0\r\n\r\n"), "test", 4);
}

Test(chunked, invalid_extensions)
{
    /* waitress test_received_invalid_extensions and SPEC.md 7 examples */
    static const char *bad[] = {
        "4;\n\r\ntest\r\n",   "4;invalid=\r\ntest\r\n",
        "4;\r\r\ntest\r\n",   "4;invalid = true\r\ntest\r\n",
        "3; a=b\r\nabc\r\n",  "3;a=\r\nabc\r\n",
        "3;a = b\r\nabc\r\n", "3;\r\nabc\r\n",
        "3;a;\r\nabc\r\n",    "3;a=\"x\r\nabc\r\n",
        "3;a=\"x\"y\r\nabc\r\n", "3;a=b=c\r\nabc\r\n",
        "3;a=\"\x01\"\r\nabc\r\n", "3;a=\"\\\x01\"\r\nabc\r\n",
        "zz;a=\r\nabc\r\n", /* the extension is judged first */
        "20;invalid=\r\nThis string has 32 characters.\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(chunked_lim(bad[i], strlen(bad[i]), &default_limits),
                     400, "Invalid chunk extension", 1);
}

Test(chunked, invalid_sizes)
{
    /* CVE-2022-24761 and waitress test_received_invalid_size */
    static const char *bad[] = {
        "0x04", "+0x04", "x04", "+04", " 04", " 0x04", "+1", "0x20",
        "1 ",   " 1",    "-1",  "g",   "garbage", "1\t", "\n", "1\r",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[64];
        int n = snprintf(in, sizeof in, "%s\r\ntest\r\n", bad[i]);

        expect_error(chunked_lim(in, (size_t)n, &default_limits), 400,
                     "Invalid chunk size", 1);
    }
}

Test(chunked, garbage_after_chunk)
{
    /* waitress test_broken_chunked_encoding */
    expect_error(CHUNKED("20\r\nThis string has 32 characters.\r\n\r\n"
                         "garbage\r\n"),
                 400, "Invalid chunk size", 1);
}

Test(chunked, data_not_terminated_by_crlf)
{
    /* CVE-2019-16786: LF alone is not enough */
    expect_error(CHUNKED("4\r\nWiki\n0\r\n\r\n"), 400,
                 "Chunk not properly terminated", 1);
    expect_error(CHUNKED("4\r\nWikibadchunk\r\n"), 400,
                 "Chunk not properly terminated", 1);
    /* waitress test_broken_chunked_encoding_missing_chunk_end */
    expect_error(CHUNKED("20\r\nThis string has 32 characters.\r\ngarbage"),
                 400, "Chunk not properly terminated", 1);
    expect_error(CHUNKED("1\r\nx\r\r\n"), 400,
                 "Chunk not properly terminated", 1);
}

Test(chunked, crlf_after_data_waits_for_two_bytes)
{
    struct outcome o = CHUNKED("4\r\nWiki\r");

    cr_assert_eq(o.r->state, WD_REQ_BODY);
    o = CHUNKED("4\r\nWikix");
    cr_assert_eq(o.r->state, WD_REQ_BODY); /* one byte says nothing yet */
}

Test(chunked, trailer_discarded)
{
    struct outcome o = CHUNKED("3\r\nabc\r\n0\r\nFoo: bar\r\nBaz: q\r\n\r\n");

    expect_body(o, "abc", 3);
    cr_assert_eq(hdr(&o, "FOO"), NULL);
    cr_assert_eq(o.r->nheaders, 1);
}

Test(chunked, trailer_is_not_validated)
{
    expect_body(CHUNKED("0\r\n\x01\x02 bad : \xff\r\n\r\n"), "", 0);
    expect_body(CHUNKED("0\r\n\r\r\n\r\n"), "", 0);
}

Test(chunked, trailer_waits_for_crlfcrlf)
{
    struct outcome o = CHUNKED("0\r\nFoo: bar\r\n");

    cr_assert_eq(o.r->state, WD_REQ_BODY);
    o = CHUNKED("0\r\n\n");
    cr_assert_eq(o.r->state, WD_REQ_BODY);
}

Test(chunked, pipelined_request_after_chunked_body)
{
    static const char in[] = CHUNKED_HEAD "1\r\na\r\n0\r\n\r\nGET /2 HTTP/1.1"
                                          "\r\n\r\n";
    struct outcome o = PARSE(in);

    expect_body(o, "a", 1);
    cr_assert_eq(o.consumed, sizeof CHUNKED_HEAD - 1 + 11);
    o = parse_n(in + o.consumed, sizeof in - 1 - o.consumed);
    cr_assert_str_eq(o.r->path, "/2");
}

Test(chunked, raw_byte_limit_quirk)
{
    /* SPEC.md 7: limit 10, 11 raw bytes -> 413 though the body is 1 byte */
    struct wd_http_limits lim = default_limits;
    struct outcome o;

    lim.max_body = 10;
    o = chunked_lim("1\r\na\r\n0\r\n\r\n", 11, &lim);
    expect_error(o, 413, "exceeds max_body of 10", 1);
    lim.max_body = 11; /* completes at exactly 11: still >= limit */
    expect_error(chunked_lim("1\r\na\r\n0\r\n\r\n", 11, &lim), 413,
                 "exceeds max_body of 11", 1);
    lim.max_body = 12;
    expect_body(chunked_lim("1\r\na\r\n0\r\n\r\n", 11, &lim), "a", 1);
}

Test(chunked, raw_limit_counts_trailer_and_blank_lines)
{
    struct wd_http_limits lim = default_limits;

    lim.max_body = 20;
    expect_error(chunked_lim("0\r\nX-Trailer: 123456\r\n\r\n", 24, &lim), 413,
                 "exceeds max_body of 20", 1);
    expect_error(chunked_lim("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 20,
                             &lim),
                 413, "exceeds max_body of 20", 1);
}

Test(chunked, raw_limit_beats_chunk_errors)
{
    struct wd_http_limits lim = default_limits;

    lim.max_body = 6;
    /* the bad size line is complete at byte 6 = the limit */
    expect_error(chunked_lim("zzzz\r\n", 6, &lim), 413,
                 "exceeds max_body of 6", 1);
    lim.max_body = 7;
    expect_error(chunked_lim("zzzz\r\n", 6, &lim), 400, "Invalid chunk size",
                 1);
}

Test(chunked, functional_body_too_large)
{
    /* waitress test_request_body_too_large_chunked_encoding, toobig 1050:
     * the first line "20;" is an invalid extension, but waitress counts
     * the whole read after it, which passes the limit: 413 */
    struct wd_http_limits lim = default_limits;
    char in[4096];
    size_t k = (size_t)sprintf(in, CHUNKED_HEAD);
    struct outcome o;

    lim.max_body = 1000;
    lim.max_header = 1000;
    for (int i = 0; i < 1050 / 37 + 1; i++)
        k += (size_t)sprintf(in + k,
                             "20;\r\nThis string has 32 characters.\r\n");
    o = parse_whole(in, k, &lim);
    expect_error(o, 413, "exceeds max_body of 1000", 1);
    cr_assert_eq(o.consumed, k);
    wd_http_request_free(o.r);
    /* the same bytes one at a time: the error is seen first */
    o.r = feed_split(in, k, &lim, SPLIT_BYTES, &o.consumed);
    cr_assert_eq(o.r->error_status, 400);
    cr_assert_str_eq(o.r->error_detail, "Invalid chunk extension");
    wd_http_request_free(o.r);
}

Test(chunked, error_read_counts_until_limit)
{
    struct wd_http_limits lim = default_limits;
    struct wd_http_request *r;
    size_t used;
    static const char in[] = CHUNKED_HEAD "zz\r\n0123456789";

    lim.max_body = 10;
    r = feed_split(in, sizeof in - 1, &lim, 0, &used);
    cr_assert_eq(r->error_status, 413);
    wd_http_request_free(r);
    r = feed_split(in, sizeof in - 1, &lim, SPLIT_BYTES, &used);
    cr_assert_eq(r->error_status, 400);
    cr_assert_str_eq(r->error_detail, "Invalid chunk size");
    wd_http_request_free(r);
    lim.max_body = 20; /* 14 bytes in that read: under the limit */
    r = feed_split(in, sizeof in - 1, &lim, 0, &used);
    cr_assert_eq(r->error_status, 400);
    wd_http_request_free(r);
}

Test(chunked, bad_chunk_end_read_stops_at_crlfcrlf)
{
    /* after a bad chunk end waitress reads on as a trailer: bytes after
     * the first CRLF CRLF are not counted */
    struct wd_http_limits lim = default_limits;
    struct wd_http_request *r;
    size_t used;
    static const char in[] = CHUNKED_HEAD "1\r\naXY\r\n\r\n0123456789";

    lim.max_body = 12; /* 3 + 1 + 6 = 10 counted */
    r = feed_split(in, sizeof in - 1, &lim, 0, &used);
    cr_assert_eq(r->error_status, 400);
    cr_assert_str_eq(r->error_detail, "Chunk not properly terminated");
    cr_assert_eq(used, sizeof CHUNKED_HEAD - 1 + 10);
    wd_http_request_free(r);
    lim.max_body = 10;
    r = feed_split(in, sizeof in - 1, &lim, 0, &used);
    cr_assert_eq(r->error_status, 413);
    wd_http_request_free(r);
}

Test(chunked, huge_size_saturates_then_413)
{
    struct wd_http_limits lim = default_limits;
    char in[256];
    size_t k = (size_t)sprintf(in, "fffffffffffffffffffffffff\r\n");

    memset(in + k, 'd', 100);
    lim.max_body = 64;
    expect_error(chunked_lim(in, k + 100, &lim), 413, "exceeds max_body of 64",
                 1);
}

Test(chunked, body_received_waitress_small_limit)
{
    /* waitress test_received_body_too_large: limit 2 */
    struct wd_http_limits lim = default_limits;

    lim.max_body = 2;
    expect_error(PARSE_LIM("GET /foobar HTTP/1.1\r\nTransfer-Encoding: "
                           "chunked\r\nX-Foo: 1\r\n\r\n1d;\r\nThis string has "
                           "29 characters\r\n0\r\n\r\n",
                           &lim),
                 413, "exceeds max_body of 2", 1);
}

Test(chunked, bare_lf_before_crlf_tolerated_like_waitress)
{
    /* SPEC.md 7 MAY: Python's '$' accepts one LF before the end */
    expect_body(CHUNKED("3\n\r\nabc\r\n0\r\n\r\n"), "abc", 3);
    expect_body(CHUNKED("3;a\n\r\nabc\r\n0\r\n\r\n"), "abc", 3);
    expect_error(CHUNKED("3\n\n\r\nabc\r\n"), 400, "Invalid chunk size", 1);
}

/* --- the decoder and validators on their own --------------------------- */

Test(chunked, decoder_stops_after_last_byte)
{
    struct wd_chunked c;
    struct wd_buf *b = wd_buf_new(0);
    static const char in[] = "4\r\nWiki\r\n0\r\n\r\nNEXT";

    wd_chunked_init(&c);
    cr_assert_eq(wd_chunked_feed(&c, in, sizeof in - 1, b), 14);
    cr_assert_eq(c.state, WD_CHUNKED_DONE);
    cr_assert_eq(c.decoded, 4);
    cr_assert_eq(wd_chunked_feed(&c, "x", 1, b), 0);
    wd_buf_free(b);
}

/* write(2)-like system calls this process has made (/proc/self/io). */
static long
write_calls(void)
{
    char line[128];
    long n = -1;
    FILE *f = fopen("/proc/self/io", "r");

    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "syscw: %ld", &n) == 1)
            break;
    fclose(f);
    cr_assert_geq(n, 0);
    return n;
}

Test(chunked, tiny_chunks_reach_a_spilled_body_in_few_writes)
{
    /* Once a body has moved to its temp file, every append is a pwrite:
       1-byte chunks cost one system call per byte of body.  The decoder
       gathers the data of one feed first. */
    struct wd_chunked c;
    struct wd_buf *b = wd_buf_new(WD_STRBUF_LIMIT);
    static char in[6 * 1000 + 1], big[WD_STRBUF_LIMIT], got[1000];
    size_t n = 0;
    long before;

    memset(big, 'b', sizeof big);
    cr_assert_eq(wd_buf_append(b, big, sizeof big), 0);
    cr_assert(wd_buf_is_file(b));
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "1\r\n%c\r\n",
                              'a' + i % 26);
    wd_chunked_init(&c);
    before = write_calls();
    cr_assert_eq(wd_chunked_feed(&c, in, n, b), (ssize_t)n);
    cr_assert_leq(write_calls() - before, 2);
    cr_assert_eq(c.decoded, 1000);
    cr_assert_eq(wd_buf_len(b), sizeof big + 1000);
    cr_assert_eq(wd_buf_pread(b, got, sizeof got, sizeof big), 1000);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(got[i], 'a' + i % 26, "byte %d", i);
    wd_buf_free(b);
}

Test(chunked, decoder_error_stops_at_deciding_byte)
{
    struct wd_chunked c;

    /* waitress test_received_control_line_finished_garbage_in_input */
    wd_chunked_init(&c);
    cr_assert_eq(wd_chunked_feed(&c, "garbage\r\nmore", 13, NULL), 9);
    cr_assert_eq(c.state, WD_CHUNKED_ERROR);
    cr_assert_str_eq(c.error, "Invalid chunk size");
}

Test(chunked, decoder_trailer_states)
{
    struct wd_chunked c;

    /* waitress test_received_trailer_startswith_lf / _finished */
    wd_chunked_init(&c);
    cr_assert_eq(wd_chunked_feed(&c, "0;discard\r\n", 11, NULL), 11);
    cr_assert_eq(c.state, WD_CHUNKED_TRAILER);
    cr_assert_eq(wd_chunked_feed(&c, "\n", 1, NULL), 1);
    cr_assert_eq(c.state, WD_CHUNKED_TRAILER);
    wd_chunked_init(&c);
    wd_chunked_feed(&c, "0\r\n", 3, NULL);
    cr_assert_eq(wd_chunked_feed(&c, "abc\r\n\r\nX", 8, NULL), 7);
    cr_assert_eq(c.state, WD_CHUNKED_DONE);
}

Test(chunked, size_validator)
{
    uint64_t v;

    cr_assert_eq(wd_chunk_size_valid("1aF", 3, &v), 1);
    cr_assert_eq(v, 0x1af);
    cr_assert_eq(wd_chunk_size_valid("", 0, &v), 0);
    cr_assert_eq(wd_chunk_size_valid("0x1", 3, &v), 0);
    cr_assert_eq(wd_chunk_size_valid("12345678901234567890", 20, &v), 1);
    cr_assert_eq(v, UINT64_MAX);
}

Test(chunked, ext_validator)
{
    cr_assert_eq(wd_chunk_ext_valid(";a", 2), 1);
    cr_assert_eq(wd_chunk_ext_valid(";a=b;c=\"d e\"", 12), 1);
    cr_assert_eq(wd_chunk_ext_valid(";", 1), 0);
    cr_assert_eq(wd_chunk_ext_valid("a", 1), 0);
    cr_assert_eq(wd_chunk_ext_valid("; a", 3), 0);
}
