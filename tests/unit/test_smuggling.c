/*
 * Regression tests for SPEC.md 19 (the waitress CVE/GHSA list: the items
 * that concern the parser, with their exact inputs) and for the classic
 * request-smuggling shapes (CL.TE, TE.CL, TE.TE, CL.CL).  Every sample
 * also goes through the whole / byte-at-a-time / every-split comparison
 * of http_harness.h.
 */
#include "http_harness.h"

#include <criterion/criterion.h>

static const char TE_UNSUPPORTED[] =
    "Transfer-Encoding requested is not supported.";

/* --- SPEC.md 19 -------------------------------------------------------- */

Test(spec19, item01_cve_2019_16785_bare_lf)
{
    struct outcome o;

    expect_error(PARSE("GET / HTTP/1.1\r\nContent-Length: 100\r\nX-Header: x"
                       "\nContent-Length: 0\r\n\r\n"),
                 400,
                 "Bare CR or LF found in header line \"X-Header: x\n"
                 "Content-Length: 0\"",
                 0);
    expect_error(PARSE("GET /\n HTTP/1.1\r\n\r\n"), 400,
                 "Bare CR or LF found in HTTP message", 0);
    o = PARSE("GET / HTTP/1.1\nHost: x\n\n");
    cr_assert_eq(o.r->state, WD_REQ_HEAD);
}

Test(spec19, item02_cve_2019_16786_te_codings)
{
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked"
                       "\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n"
                       "\r\n"),
                 501, TE_UNSUPPORTED, 1);
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    /* folded and multi-line values are one list */
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\r\n"
                       "\tchunked\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    /* chunk data must end with CRLF */
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4\r\nWiki\n0\r\n\r\n"),
                 400, "Chunk not properly terminated", 1);
}

Test(spec19, item03_cve_2019_16792_content_length)
{
    static const char abc[] = "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"
                              "GET /smuggled HTTP/1.1\r\n\r\n";
    struct outcome o;

    expect_error(PARSE("POST / HTTP/1.1\r\nContent-Length: 10\r\n"
                       "Content-Length: 20\r\n\r\n"),
                 400, "Duplicate header: Content-Length", 0);
    o = PARSE(abc);
    expect_error(o, 400, "Content-Length is invalid", 1);
    /* the request is over: nothing more is parsed as part of it */
    cr_assert_eq(wd_http_request_feed(o.r, abc + o.consumed, 5,
                                      &default_limits),
                 0);
}

Test(spec19, item04_cve_2019_16789_whitespace)
{
    struct outcome o;

    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: \x85" "chunked"
                       "\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding:\x85" "chunked"
                       "\r\n\r\n"),
                 501, TE_UNSUPPORTED, 1);
    expect_error(PARSE("GET / HTTP/1.1\r\nfoo: \x0b" "bar\r\n\r\n"), 400,
                 "Invalid header", 0);
    expect_error(PARSE("GET / HTTP/1.1\r\nfoo: bar\x0c\r\n\r\n"), 400,
                 "Invalid header", 0);
    o = PARSE("GET / HTTP/1.1\r\nfoo: \xa0something\x85\r\n\r\n");
    cr_assert_str_eq(hdr(&o, "FOO"), "\xa0something\x85");
    expect_error(PARSE("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400,
                 "Invalid header", 0);
}

Test(spec19, item05_cve_2020_5236_redos, .timeout = 60)
{
    size_t n = 50000, k;
    char *in = malloc(n + 64);

    k = (size_t)sprintf(in, "GET / HTTP/1.1\r\nfoo: ");
    memset(in + k, 'x', n);
    k += n;
    k += (size_t)sprintf(in + k, "\x10\r\n\r\n");
    expect_error(parse_n(in, k), 400, "Invalid header", 0);
    /* long runs of SP/HT between and after valid bytes, then a CTL */
    k = (size_t)sprintf(in, "GET / HTTP/1.1\r\nfoo: a");
    for (size_t i = 0; i < n; i++)
        in[k++] = i % 3 ? ' ' : '\t';
    k += (size_t)sprintf(in + k, "b\x7f\r\n\r\n");
    expect_error(parse_n(in, k), 400, "Invalid header", 0);
    free(in);
}

Test(spec19, item06_cve_2022_24761_lenient_integers)
{
    static const char *sizes[] = {"0x01", "+01", "+0x04", "x04", " 04"};
    static const char *exts[] = {"4;\n", "4;invalid=", "4;invalid = true",
                                 "4;\r"};

    expect_error(PARSE("POST / HTTP/1.1\r\nContent-Length: +10\r\n\r\n"), 400,
                 "Content-Length is invalid", 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char in[128];
        int n = snprintf(in, sizeof in,
                         "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                         "\r\n%s\r\ntest\r\n0\r\n\r\n",
                         sizes[i]);

        expect_error(parse_n(in, (size_t)n), 400, "Invalid chunk size", 1);
    }
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char in[128];
        int n = snprintf(in, sizeof in,
                         "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                         "\r\n%s\r\ntest\r\n0\r\n\r\n",
                         exts[i]);

        expect_error(parse_n(in, (size_t)n), 400, "Invalid chunk extension",
                     1);
    }
    expect_ok(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "4;test\r\ntest\r\n0\r\n\r\n"));
    expect_ok(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "4;valid=true;other=true\r\ntest\r\n0\r\n\r\n"));
}

Test(spec19, item08_ghsa_9298_nothing_parsed_after_error)
{
    /* request 1 is invalid; request 2 arrives later.  The failed request
     * takes no more bytes, so a channel that stops reading once closing
     * never builds request 2. */
    static const char r1[] = "POST / HTTP/1.1\r\nContent-length: -1\r\n\r\n";
    static const char r2[] = "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
    struct outcome o = PARSE(r1);

    expect_error(o, 400, "Content-Length is invalid", 1);
    cr_assert_eq(wd_http_request_feed(o.r, r2, sizeof r2 - 1,
                                      &default_limits),
                 0);
    cr_assert_eq(o.r->body, NULL);
}

Test(spec19, item11_underscore_spoofing)
{
    struct outcome o = PARSE("GET / HTTP/1.1\r\nX-Auth_User: bob\r\n"
                             "X-Auth-User: alice\r\nX-Auth_User: eve\r\n\r\n");

    expect_ok(o);
    cr_assert_str_eq(hdr(&o, "X_AUTH_USER"), "alice");
    cr_assert_eq(o.r->nheaders, 1);
}

Test(spec19, item13_unreleased_main)
{
    struct outcome o;

    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked"
                       "\r\n\r\n"),
                 501,
                 "Transfer-Encoding is invalid. Multiple chunked encodings "
                 "requested.",
                 1);
    expect_error(PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
                 501,
                 "Transfer-Encoding is invalid. Multiple chunked encodings "
                 "requested.",
                 1);
    o = PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
              "Content-Length: 4\r\n\r\n2\r\nab\r\n0\r\n\r\n");
    expect_ok(o);
    cr_assert_eq(o.r->close_after, 1);
    cr_assert_str_eq(o.body, "ab");
    expect_error(PARSE("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400,
                 "Duplicate header: Host", 0);
    expect_error(PARSE("GET / HTTP/1.0\r\nContent-Type: a\r\n"
                       "content-type: b\r\n\r\n"),
                 400, "Duplicate header: content-type", 0);
}

Test(spec19, item14_method_and_version)
{
    expect_error(PARSE("get / HTTP/1.1\r\n\r\n"), 400,
                 "Malformed HTTP method \"get\"", 0);
    expect_error(PARSE("GET / HTTP/1.x\r\n\r\n"), 400, "Start line is invalid",
                 0);
}

Test(spec19, item15_limits)
{
    struct wd_http_limits lim = default_limits;

    lim.max_header = 30;
    lim.max_body = 10;
    expect_error(PARSE_LIM("GET / HTTP/1.1\r\nX-Long: 0123456789\r\n\r\n",
                           &lim),
                 431, "exceeds max_header of 30", 0);
    lim.max_header = default_limits.max_header;
    expect_error(PARSE_LIM("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n",
                           &lim),
                 413, "exceeds max_body of 10", 1);
    expect_error(PARSE_LIM("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n1\r\na\r\n0\r\n\r\n",
                           &lim),
                 413, "exceeds max_body of 10", 1);
}

Test(spec19, checklist_body_then_431)
{
    /* SPEC.md 20: CL 5 then 1050 bytes; the rest is the next request */
    struct wd_http_limits lim = default_limits;
    char in[2048];
    size_t k = (size_t)sprintf(in, "GET / HTTP/1.1\r\nContent-Length: 5\r\n"
                                   "\r\n");
    struct outcome o;

    lim.max_header = 1000;
    lim.max_body = 1000;
    memset(in + k, 'a', 1050);
    k += 1050;
    o = parse_lim(in, k, &lim);
    expect_ok(o);
    cr_assert_str_eq(o.body, "aaaaa");
    o = parse_lim(in + o.consumed, k - o.consumed, &lim);
    expect_error(o, 431, "exceeds max_header of 1000", 0);
}

/* --- classic smuggling shapes ------------------------------------------ */

Test(smuggling, cl_te_chunked_wins_and_closes)
{
    static const char in[] = "POST / HTTP/1.1\r\nContent-Length: 13\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                             "SMUGGLED";
    struct outcome o = PARSE(in);

    expect_ok(o);
    cr_assert_eq(o.r->chunked, 1);
    cr_assert_eq(o.r->close_after, 1);
    cr_assert_eq(o.body_len, 0);
    cr_assert_eq(o.consumed, sizeof in - 1 - 8); /* SMUGGLED left over */
}

Test(smuggling, te_cl_chunked_wins_and_closes)
{
    static const char in[] = "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "8\r\nSMUGGLED\r\n0\r\n\r\n";
    struct outcome o = PARSE(in);

    expect_ok(o);
    cr_assert_eq(o.r->close_after, 1);
    cr_assert_str_eq(o.body, "SMUGGLED");
    cr_assert_eq(o.consumed, sizeof in - 1);
    cr_assert_str_eq(hdr(&o, "CONTENT_LENGTH"), "8");
}

Test(smuggling, te_te_obfuscations_refused)
{
    static const char *v501[] = {
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
        "Transfer-Encoding: chunk\r\n",
        "Transfer-Encoding: chunked\x85\r\n",
        "Transfer-Encoding: chunked\xa0\r\n",
        "Transfer-Encoding: ch\xfcnked\r\n",
    };
    static const char *v400[] = {
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding\r\n : chunked\r\n",
        "Transfer-Encoding: \x0b" "chunked\r\n",
        "Transfer-Encoding: chunked\x0c\r\n",
        " Transfer-Encoding: chunked\r\n",
        "X: y\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\r\n",
    };

    for (size_t i = 0; i < sizeof v501 / sizeof v501[0]; i++) {
        char in[256];
        int n = snprintf(in, sizeof in, "POST / HTTP/1.1\r\n%s"
                         "Content-Length: 4\r\n\r\n", v501[i]);

        expect_error(parse_n(in, (size_t)n), 501, TE_UNSUPPORTED, 1);
    }
    for (size_t i = 0; i < sizeof v400 / sizeof v400[0]; i++) {
        char in[256];
        int n = snprintf(in, sizeof in, "POST / HTTP/1.1\r\n%s"
                         "Content-Length: 4\r\n\r\n", v400[i]);
        struct outcome o = parse_n(in, (size_t)n);

        cr_assert_eq(o.r->error_status, 400, "%s", o.desc);
    }
}

Test(smuggling, te_tolerated_spellings_are_chunked)
{
    static const char *ok[] = {
        "Transfer-Encoding:chunked\r\n",
        "Transfer-Encoding:\tchunked\t\r\n",
        "transfer-encoding: CHUNKED\r\n",
        "Transfer-Encoding:\r\n chunked\r\n",
    };

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char in[256];
        int n = snprintf(in, sizeof in, "POST / HTTP/1.1\r\n%s\r\n"
                         "3\r\nabc\r\n0\r\n\r\n", ok[i]);
        struct outcome o = parse_n(in, (size_t)n);

        expect_ok(o);
        cr_assert_eq(o.r->chunked, 1, "%s", o.desc);
        cr_assert_str_eq(o.body, "abc");
        cr_assert_eq(o.consumed, (size_t)n);
    }
}

Test(smuggling, te_in_http10_refused)
{
    expect_error(PARSE("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 5\r\n\r\n0\r\n\r\n"),
                 400, "Transfer-Encoding is not allowed in HTTP/1.0 requests",
                 0);
}

Test(smuggling, cl_cl_refused)
{
    expect_error(PARSE("POST / HTTP/1.1\r\nContent-Length: 0\r\n"
                       "Content-Length: 5\r\n\r\nGPOST"),
                 400, "Duplicate header: Content-Length", 0);
    expect_error(PARSE("POST / HTTP/1.1\r\nContent-Length: 0, 5\r\n\r\n"), 400,
                 "Content-Length is invalid", 1);
}

Test(smuggling, bare_lf_request_split_refused)
{
    expect_error(PARSE("GET / HTTP/1.1\r\nX: a\n\nGET /admin HTTP/1.1\r\n\r\n"),
                 400,
                 "Bare CR or LF found in header line \"X: a\n\nGET /admin "
                 "HTTP/1.1\"",
                 0);
}

Test(smuggling, chunk_size_tricks_refused)
{
    static const char *bad[] = {
        "0x0\r\n\r\n", "-0\r\n\r\n", "0 \r\n\r\n", "1;\r\nX\r\n0\r\n\r\n",
        "\x30\x00\r\n\r\n", "1\rX\r\n",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[256];
        size_t hl = (size_t)sprintf(in, "POST / HTTP/1.1\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n");
        size_t bl = i == 4 ? 6 : strlen(bad[i]);
        struct outcome o;

        memcpy(in + hl, bad[i], bl);
        o = parse_n(in, hl + bl);
        cr_assert_eq(o.r->error_status, 400, "%s", o.desc);
    }
}

Test(smuggling, absolute_uri_host_never_used)
{
    struct outcome o = PARSE("GET http://evil.example/admin HTTP/1.1\r\n"
                             "Host: good.example\r\n\r\n");

    expect_ok(o);
    cr_assert_str_eq(o.r->path, "/admin");
    cr_assert_str_eq(hdr(&o, "HOST"), "good.example");
}
