/* Unit tests for common/response.c: header block and body framing. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "response.h"

#define T0 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define DATE "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"

#define H(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static char *
head(struct wd_response *r, const char *status,
     const struct wd_resp_header *h, size_t n)
{
    size_t len;
    char *out = wd_response_head(r, status, strlen(status), h, n, &len);

    cr_assert_not_null(out);
    cr_assert_eq(strlen(out), len);
    return out;
}

static void
init(struct wd_response *r, int http11, const char *conn)
{
    wd_response_init(r, http11, conn, conn ? strlen(conn) : 0, "waitressd",
                     T0);
}

static void
capitalized(const char *in, const char *want)
{
    char buf[64];

    strcpy(buf, in);
    wd_response_capitalize(buf, strlen(buf));
    cr_assert_str_eq(buf, want);
}

Test(response, capitalize_each_dash_part)
{
    capitalized("content-type", "Content-Type");
    capitalized("ETag", "Etag");
    capitalized("WWW-Authenticate", "Www-Authenticate");
    capitalized("x-lower", "X-Lower");
    capitalized("a--b-", "A--B-");
    capitalized("X-1abc", "X-1abc");
}

Test(response, capitalize_leaves_non_ascii_bytes)
{
    capitalized("x-\xe9T\xe9", "X-\xe9t\xe9");
}

Test(response, status_without_body_is_a_prefix_test)
{
    cr_assert(wd_response_status_has_body("200 OK", 6));
    cr_assert(wd_response_status_has_body("2", 1));
    cr_assert(wd_response_status_has_body("20", 2));
    cr_assert_not(wd_response_status_has_body("100 Continue", 12));
    cr_assert_not(wd_response_status_has_body("1", 1));
    cr_assert_not(wd_response_status_has_body("204 No Content", 14));
    cr_assert_not(wd_response_status_has_body("2040 odd", 8));
    cr_assert_not(wd_response_status_has_body("304", 3));
    cr_assert(wd_response_status_has_body("305 Use Proxy", 13));
}

Test(response, hop_by_hop_names_any_case)
{
    cr_assert(wd_response_is_hop_by_hop("Connection", 10));
    cr_assert(wd_response_is_hop_by_hop("KEEP-ALIVE", 10));
    cr_assert(wd_response_is_hop_by_hop("te", 2));
    cr_assert(wd_response_is_hop_by_hop("Trailer", 7));
    cr_assert(wd_response_is_hop_by_hop("Upgrade", 7));
    cr_assert(wd_response_is_hop_by_hop("Proxy-Authorization", 19));
    cr_assert_not(wd_response_is_hop_by_hop("Trailers", 8));
    cr_assert_not(wd_response_is_hop_by_hop("t", 1));
    cr_assert_not(wd_response_is_hop_by_hop("Content-Length", 14));
}

/* SPEC.md 12.7, first example: a computed length keeps HTTP/1.1 open. */
Test(response, spec_example_computed_length)
{
    struct wd_response r;
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 2;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    cr_assert_not(r.close);
    cr_assert_not(r.chunked);
    free(out);
}

Test(response, spec_example_app_length_not_duplicated)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("content-length", "2")};
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 2;
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    free(out);
}

/* SPEC.md 12.7, second example: no length on 1.1 -> chunked and close. */
Test(response, spec_example_chunked)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("Content-Type", "text/plain")};
    char *out;

    init(&r, 1, NULL);
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          "Content-Type: text/plain\r\n" DATE
                          "Server: waitressd\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n");
    cr_assert(r.chunked);
    cr_assert(r.close);
    free(out);
}

Test(response, http10_keepalive_with_length_stays_open)
{
    struct wd_response r;
    char *out;

    init(&r, 0, "Keep-Alive");
    r.has_cl = 1;
    r.cl = 3;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
                          "Content-Length: 3\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    cr_assert_not(r.close);
    free(out);
}

Test(response, http10_keepalive_without_length_closes_unchunked)
{
    struct wd_response r;
    char *out;

    init(&r, 0, "keep-alive");
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.0 200 OK\r\nConnection: close\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    cr_assert(r.close);
    cr_assert_not(r.chunked);
    free(out);
}

Test(response, http10_plain_closes_even_with_length)
{
    struct wd_response r;
    char *out;

    init(&r, 0, NULL);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.0 200 OK\r\nConnection: close\r\n"
                          "Content-Length: 0\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    cr_assert(r.close);
    free(out);
}

Test(response, connection_value_compared_whole)
{
    struct wd_response r;
    char *out;

    init(&r, 0, "keep-alive, x");
    r.has_cl = 1;
    r.cl = 1;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert(r.close);
    free(out);

    init(&r, 1, "close, TE");
    r.has_cl = 1;
    r.cl = 1;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_not(r.close);
    cr_assert_null(strstr(out, "Connection"));
    free(out);
}

Test(response, http11_connection_close_with_length)
{
    struct wd_response r;
    char *out;

    init(&r, 1, "CLOSE");
    r.has_cl = 1;
    r.cl = 5;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          "Content-Length: 5\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    cr_assert(r.close);
    cr_assert_not(r.chunked);
    free(out);
}

Test(response, http11_connection_close_without_length_is_chunked)
{
    struct wd_response r;
    char *out;

    init(&r, 1, "close");
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n" DATE
                          "Server: waitressd\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n");
    free(out);
}

Test(response, status_204_drops_length_and_closes)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("Content-Length", "10")};
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 10;
    out = head(&r, "204 No Content", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 204 No Content\r\nConnection: close\r\n"
                     DATE "Server: waitressd\r\n\r\n");
    cr_assert(r.close);
    cr_assert_not(r.chunked);
    cr_assert_not(r.has_body);
    free(out);
}

Test(response, status_304_and_1xx_never_chunked)
{
    struct wd_response r;
    char *out;

    init(&r, 1, NULL);
    out = head(&r, "304 Not Modified", NULL, 0);
    cr_assert_null(strstr(out, "Transfer-Encoding"));
    cr_assert_null(strstr(out, "Content-Length"));
    cr_assert(r.close);
    free(out);

    init(&r, 1, NULL);
    out = head(&r, "103 Early Hints", NULL, 0);
    cr_assert_null(strstr(out, "Transfer-Encoding"));
    free(out);
}

Test(response, app_server_header_adds_via)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("server", "mine")};
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" DATE
                          "Server: mine\r\nVia: waitressd\r\n\r\n");
    free(out);
}

Test(response, no_ident_means_no_server_and_via_waitressd)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("Server", "mine")};
    char *out;

    wd_response_init(&r, 1, NULL, 0, NULL, T0);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" DATE
                          "\r\n");
    free(out);

    wd_response_init(&r, 1, NULL, 0, NULL, T0);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" DATE
                          "Server: mine\r\nVia: waitressd\r\n\r\n");
    free(out);
}

Test(response, empty_server_value_counts_as_absent)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("Server", "")};
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" DATE
                          "Server: \r\nServer: waitressd\r\n\r\n");
    free(out);
}

Test(response, app_date_is_kept)
{
    struct wd_response r;
    struct wd_resp_header h[] = {H("DATE", "yesterday")};
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200 OK", h, 1);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                          "Date: yesterday\r\nServer: waitressd\r\n\r\n");
    free(out);
}

/* SPEC.md 12.4 step 7: code-point order, stable for equal names. */
Test(response, headers_sorted_stably)
{
    struct wd_response r;
    struct wd_resp_header h[] = {
        H("x-lower", "x"),  H("WWW-Authenticate", "w"), H("ETag", "e"),
        H("A", "1"),        H("Content-Type", "t"),     H("server", "s"),
        H("a", "2"),
    };
    char *out;

    init(&r, 1, "close");
    out = head(&r, "200 OK", h, sizeof h / sizeof h[0]);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nA: 1\r\nA: 2\r\n"
                          "Connection: close\r\nContent-Type: t\r\n" DATE
                          "Etag: e\r\nServer: s\r\n"
                          "Transfer-Encoding: chunked\r\nVia: waitressd\r\n"
                          "Www-Authenticate: w\r\nX-Lower: x\r\n\r\n");
    free(out);
}

Test(response, status_sent_verbatim)
{
    struct wd_response r;
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 0;
    out = head(&r, "200OK", NULL, 0);
    cr_assert_eq(strncmp(out, "HTTP/1.1 200OK\r\n", 16), 0);
    free(out);
}

Test(response, close_decided_before_head_adds_one_header)
{
    struct wd_response r;
    char *out;

    init(&r, 1, "close");
    r.has_cl = 1;
    r.cl = 4;
    wd_response_set_close(&r); /* e.g. the worker is stopping */
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          "Content-Length: 4\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    free(out);
}

Test(response, close_before_head_and_http10_keepalive_both_go_out)
{
    struct wd_response r;
    char *out;

    /* waitress: set_close_on_finish appends close first, then the 1.0
       keep-alive row appends Keep-Alive; the stable sort keeps that */
    init(&r, 0, "keep-alive");
    r.has_cl = 1;
    r.cl = 4;
    wd_response_set_close(&r);
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_not_null(strstr(out, "\r\nConnection: close\r\n"
                                   "Connection: Keep-Alive\r\n"
                                   "Content-Length: 4\r\n"), "%s", out);
    cr_assert(r.close);
    free(out);
}

Test(response, close_before_head_on_http10_without_keepalive_is_one_header)
{
    struct wd_response r;
    char *out;

    init(&r, 0, NULL);
    r.has_cl = 1;
    r.cl = 4;
    wd_response_set_close(&r);
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_not_null(strstr(out, "\r\nConnection: close\r\nContent-Length"));
    cr_assert_null(strstr(out + 1, "Connection: close\r\nConnection"));
    free(out);
}

Test(response, set_close_after_head_adds_nothing)
{
    struct wd_response r;
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 4;
    out = head(&r, "200 OK", NULL, 0);
    free(out);
    wd_response_set_close(&r);
    cr_assert(r.close);
    cr_assert_not(r.close_header);
}

Test(response, chunk_prefix_uppercase_hex)
{
    struct wd_response r;
    struct wd_body_plan p;

    init(&r, 1, NULL);
    free(head(&r, "200 OK", NULL, 0));
    wd_response_body(&r, 26, &p);
    cr_assert_str_eq(p.prefix, "1A\r\n");
    cr_assert_eq(p.prefix_len, 4);
    cr_assert_eq(p.send, 26);
    cr_assert(p.suffix);
    wd_response_body(&r, 4096, &p);
    cr_assert_str_eq(p.prefix, "1000\r\n");
    cr_assert_eq(r.body_bytes, 26 + 4096);
    size_t n;
    cr_assert_str_eq(wd_response_trailer(&r, &n), "0\r\n\r\n");
    cr_assert_eq(n, 5);
}

Test(response, content_length_cut_warns_once_and_keeps_open)
{
    struct wd_response r;
    struct wd_body_plan p;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 5;
    free(head(&r, "200 OK", NULL, 0));
    wd_response_body(&r, 3, &p);
    cr_assert_eq(p.send, 3);
    cr_assert_eq(p.prefix_len, 0);
    cr_assert_not(p.suffix);
    cr_assert_eq(p.warn, 0);
    wd_response_body(&r, 4, &p);
    cr_assert_eq(p.send, 2);
    cr_assert_eq(p.warn, WD_RESP_WARN_EXCESS);
    wd_response_body(&r, 4, &p);
    cr_assert_eq(p.send, 0);
    cr_assert_eq(p.warn, 0);
    cr_assert_eq(wd_response_check_length(&r, 0), 0);
    cr_assert_not(r.close);
    size_t n;
    wd_response_trailer(&r, &n);
    cr_assert_eq(n, 0);
}

Test(response, no_body_status_drops_and_counts)
{
    struct wd_response r;
    struct wd_body_plan p;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 3;
    free(head(&r, "304 Not Modified", NULL, 0));
    wd_response_body(&r, 3, &p);
    cr_assert_eq(p.send, 0);
    cr_assert_eq(p.warn, WD_RESP_WARN_NOBODY);
    wd_response_body(&r, 3, &p);
    cr_assert_eq(p.warn, 0);
    cr_assert_eq(r.written, 6);
    cr_assert_eq(r.body_bytes, 0);
}

Test(response, too_few_bytes_closes_except_head)
{
    struct wd_response r;
    struct wd_body_plan p;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 10;
    free(head(&r, "200 OK", NULL, 0));
    wd_response_body(&r, 4, &p);
    cr_assert_eq(wd_response_check_length(&r, 1), 0);
    cr_assert_not(r.close);
    cr_assert_eq(wd_response_check_length(&r, 0), 1);
    cr_assert(r.close);
    cr_assert_not(r.close_header);
}

Test(response, too_few_bytes_before_head_adds_connection_close)
{
    struct wd_response r;
    char *out;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = 10;
    cr_assert_eq(wd_response_check_length(&r, 0), 1);
    out = head(&r, "200 OK", NULL, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          "Content-Length: 10\r\n" DATE
                          "Server: waitressd\r\n\r\n");
    free(out);
}

Test(response, no_length_means_no_length_check)
{
    struct wd_response r;

    init(&r, 1, NULL);
    cr_assert_eq(wd_response_check_length(&r, 0), 0);
}

Test(response, negative_length_slices_like_python)
{
    struct wd_response r;
    struct wd_body_plan p;

    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = -2;
    free(head(&r, "200 OK", NULL, 0));
    wd_response_body(&r, 5, &p); /* b"abcde"[:-2] */
    cr_assert_eq(p.send, 3);
    cr_assert_eq(p.warn, WD_RESP_WARN_EXCESS);
}

Test(response, most_negative_length_sends_nothing)
{
    struct wd_response r;
    struct wd_body_plan p;

    /* data[:-(2**63)] is empty; -room must not overflow (UBSan) */
    init(&r, 1, NULL);
    r.has_cl = 1;
    r.cl = INT64_MIN;
    free(head(&r, "200 OK", NULL, 0));
    wd_response_body(&r, 5, &p);
    cr_assert_eq(p.send, 0);
    cr_assert_eq(p.warn, WD_RESP_WARN_EXCESS);
}
