/*
 * Unit tests for common/proxy.c (SPEC.md 11).  The first group ports
 * waitress's tests/test_proxy_headers.py; the rest pin the quirks, each
 * checked against waitress's own proxy_headers_middleware.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proxy.h"

#define XFF WD_PH_X_FORWARDED_FOR
#define XFH WD_PH_X_FORWARDED_HOST
#define XFP WD_PH_X_FORWARDED_PROTO
#define XFPORT WD_PH_X_FORWARDED_PORT
#define XFB WD_PH_X_FORWARDED_BY
#define FWD WD_PH_FORWARDED

#define T_XFF WD_PROXY_X_FORWARDED_FOR
#define T_XFH WD_PROXY_X_FORWARDED_HOST
#define T_XFP WD_PROXY_X_FORWARDED_PROTO
#define T_XFPORT WD_PROXY_X_FORWARDED_PORT
#define T_XFB WD_PROXY_X_FORWARDED_BY
#define T_FWD WD_PROXY_FORWARDED

static struct wd_config cfg;
static struct wd_proxy_env env;
static char logpath[] = "/tmp/wd-test-proxy-log-XXXXXX";

/* waitress's DummyEnviron, plus an error log we can read back. */
static void
setup(void)
{
    int fd;

    memset(&cfg, 0, sizeof cfg);
    cfg.trusted_proxy_count = 1;
    cfg.clear_untrusted_proxy_headers = 1;
    memset(&env, 0, sizeof env);
    env.remote_addr = "127.0.0.1";
    env.remote_host = "127.0.0.1";
    env.remote_port = "8080";
    env.server_port = "8080";
    env.server_name = "localhost";
    env.url_scheme = "http";
    env.http_host = "192.168.1.1:80";
    fd = mkstemp(logpath);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(wd_log_open(logpath, NULL), 0);
}

static void
teardown(void)
{
    wd_proxy_env_cleanup(&env);
    wd_log_close();
    unlink(logpath);
}

TestSuite(proxy, .init = setup, .fini = teardown);

static void
trust(const char *proxy, unsigned headers)
{
    cfg.trusted_proxy = (char *)proxy;
    cfg.trusted_proxy_headers = headers;
}

static int
apply(const char **bad)
{
    const char *dummy;

    return wd_proxy_apply(&cfg, &env, bad ? bad : &dummy);
}

static void
apply_ok(void)
{
    const char *bad = "unset";

    cr_assert_eq(apply(&bad), WD_PROXY_OK);
    cr_assert_null(bad);
}

/* Expect a malformed header named HEADER. */
static void
apply_malformed(const char *header)
{
    const char *bad = NULL;

    cr_assert_eq(apply(&bad), WD_PROXY_MALFORMED);
    cr_assert_str_eq(bad, header);
}

/* The whole error log so far (malloc'ed). */
static char *
read_log(void)
{
    FILE *f = fopen(logpath, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    cr_assert_not_null(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int
log_lines(void)
{
    char *log = read_log();
    int n = 0;

    for (char *p = log; *p; p++)
        n += *p == '\n';
    free(log);
    return n;
}

static void
log_has(const char *text)
{
    char *log = read_log();

    cr_assert_not_null(strstr(log, text), "log lacks [%s]:\n%s", text, log);
    free(log);
}

/* ===== ported from waitress tests/test_proxy_headers.py ================ */

Test(proxy, scheme_override_untrusted)
{
    env.hdr[XFP] = "https";
    apply_ok();
    cr_assert_str_eq(env.url_scheme, "http");
    cr_assert_null(env.hdr[XFP]);
}

Test(proxy, scheme_override_trusted)
{
    trust("192.168.1.1", T_XFP);
    env.remote_addr = "192.168.1.1";
    env.hdr[XFP] = "https";
    apply_ok();
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_str_eq(env.server_name, "localhost");
    cr_assert_str_eq(env.remote_addr, "192.168.1.1");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, bogus_scheme_override)
{
    trust("192.168.1.1", T_XFP);
    env.remote_addr = "192.168.1.1";
    env.hdr[XFP] = "http://p02n3e.com?url=http";
    apply_malformed("X-Forwarded-Proto");
}

Test(proxy, warning_other_proxy_headers)
{
    trust("192.168.1.1", T_FWD);
    cfg.log_untrusted_proxy_headers = 1;
    env.remote_addr = "192.168.1.1";
    env.hdr[XFF] = "[2001:db8::1]";
    env.hdr[FWD] = "For=198.51.100.2;host=example.com:8080;proto=https";
    apply_ok();
    cr_assert_eq(log_lines(), 1);
    cr_assert_null(env.hdr[XFF]);
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, keeps_untrusted_headers_when_not_clearing)
{
    trust("192.168.1.1", T_XFB);
    cfg.clear_untrusted_proxy_headers = 0;
    env.remote_addr = "192.168.1.1";
    env.hdr[XFF] = "198.51.100.2";
    env.hdr[XFB] = "Waitress";
    env.hdr[XFP] = "https";
    env.hdr[XFH] = "example.org";
    apply_ok();
    cr_assert_str_eq(env.hdr[XFF], "198.51.100.2");
    cr_assert_str_eq(env.hdr[XFB], "Waitress");
    cr_assert_str_eq(env.hdr[XFP], "https");
    cr_assert_str_eq(env.hdr[XFH], "example.org");
    cr_assert_str_eq(env.url_scheme, "http");
}

Test(proxy, contains_only_trusted_headers)
{
    trust("192.168.1.1", T_XFB);
    env.remote_addr = "192.168.1.1";
    env.hdr[XFF] = "198.51.100.2";
    env.hdr[XFB] = "Waitress";
    env.hdr[XFP] = "https";
    env.hdr[XFH] = "example.org";
    apply_ok();
    cr_assert_str_eq(env.hdr[XFB], "Waitress");
    cr_assert_null(env.hdr[XFF]);
    cr_assert_null(env.hdr[XFP]);
    cr_assert_null(env.hdr[XFH]);
}

Test(proxy, clears_headers_if_untrusted_proxy)
{
    trust("192.168.1.1", T_XFB);
    env.remote_addr = "192.168.1.255";
    env.hdr[XFF] = "198.51.100.2";
    env.hdr[XFB] = "Waitress";
    env.hdr[XFP] = "https";
    env.hdr[XFH] = "example.org";
    apply_ok();
    for (int h = 0; h < WD_PH_COUNT; h++)
        cr_assert_null(env.hdr[h], "%s", wd_proxy_hdr_key(h));
    cr_assert_str_eq(env.remote_addr, "192.168.1.255");
}

Test(proxy, forwarded_for)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "192.0.2.1";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "192.0.2.1");
    cr_assert_str_eq(env.remote_host, "192.0.2.1");
}

Test(proxy, forwarded_for_v6_missing_brackets)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "2001:db8::0";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "2001:db8::0");
}

Test(proxy, forwarded_for_multiple)
{
    trust("*", T_XFF);
    cfg.trusted_proxy_count = 2;
    env.hdr[XFF] = "192.0.2.1, 198.51.100.2, 203.0.113.1";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.hdr[XFF], "198.51.100.2, 203.0.113.1");
}

Test(proxy, forwarded_multiple_proxies_trust_only_two)
{
    trust("*", T_FWD);
    cfg.trusted_proxy_count = 2;
    env.hdr[FWD] = "For=192.0.2.1;host=fake.com, "
                   "For=198.51.100.2;host=example.com:8080, "
                   "For=203.0.113.1";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.hdr[FWD],
                     "For=198.51.100.2;host=example.com:8080, "
                     "For=203.0.113.1");
}

Test(proxy, forwarded_multiple_proxies)
{
    trust("*", T_FWD);
    cfg.trusted_proxy_count = 2;
    env.hdr[FWD] =
        "for=\"[2001:db8::1]:3821\";host=\"example.com:8443\";"
        "proto=\"https\", for=192.0.2.1;host=\"example.internal:8080\"";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "2001:db8::1");
    cr_assert_str_eq(env.remote_port, "3821");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8443");
    cr_assert_str_eq(env.server_port, "8443");
    cr_assert_str_eq(env.url_scheme, "https");
    cr_assert_str_eq(
        env.hdr[FWD],
        "for=\"[2001:db8::1]:3821\";host=\"example.com:8443\";"
        "proto=\"https\", for=192.0.2.1;host=\"example.internal:8080\"");
}

Test(proxy, forwarded_multiple_proxies_minimal)
{
    trust("*", T_FWD);
    cfg.trusted_proxy_count = 2;
    env.hdr[FWD] = "for=\"[2001:db8::1]\";proto=\"https\", "
                   "for=192.0.2.1;host=\"example.org\"";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "2001:db8::1");
    cr_assert_str_eq(env.server_name, "example.org");
    cr_assert_str_eq(env.http_host, "example.org");
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_str_eq(env.url_scheme, "https");
}

static void
trust_x_all_but_by(int count)
{
    trust("*", T_XFF | T_XFP | T_XFH);
    cfg.trusted_proxy_count = count;
    env.hdr[XFF] = "192.0.2.1, 198.51.100.2, 203.0.113.1";
    env.hdr[XFP] = "http";
}

Test(proxy, forwarded_host_with_port)
{
    trust_x_all_but_by(2);
    env.hdr[XFH] = "example.com:8080";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.hdr[XFF], "198.51.100.2, 203.0.113.1");
}

Test(proxy, forwarded_host_without_port)
{
    trust_x_all_but_by(2);
    env.hdr[XFH] = "example.com";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com");
    cr_assert_str_eq(env.server_port, "80");
}

Test(proxy, forwarded_host_with_forwarded_port)
{
    trust_x_all_but_by(2);
    cfg.trusted_proxy_headers |= T_XFPORT;
    env.hdr[XFH] = "example.com";
    env.hdr[XFPORT] = "8080";
    apply_ok();
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
}

Test(proxy, forwarded_host_multiple_with_forwarded_port)
{
    trust_x_all_but_by(2);
    cfg.trusted_proxy_headers |= T_XFPORT;
    env.hdr[XFH] = "example.com, example.org";
    env.hdr[XFPORT] = "8080";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.hdr[XFF], "198.51.100.2, 203.0.113.1");
    cr_assert_str_eq(env.hdr[XFH], "example.com, example.org");
}

Test(proxy, forwarded_host_multiple_limit_one_trusted)
{
    trust_x_all_but_by(1);
    cfg.trusted_proxy_headers |= T_XFPORT;
    env.hdr[XFH] = "example.com, example.org";
    env.hdr[XFPORT] = "8080";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "203.0.113.1");
    cr_assert_str_eq(env.server_name, "example.org");
    cr_assert_str_eq(env.http_host, "example.org:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.hdr[XFF], "203.0.113.1");
    cr_assert_str_eq(env.hdr[XFH], "example.org");
}

Test(proxy, forwarded)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For=198.51.100.2:5858;host=example.com:8080;proto=https";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.remote_port, "5858");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, forwarded_empty_pair)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For=198.51.100.2;;proto=https;by=_unused";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
}

Test(proxy, forwarded_pair_token_whitespace)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For=198.51.100.2; proto =https";
    apply_malformed("Forwarded");
    log_has("Token may not be surrounded by whitespace");
}

Test(proxy, forwarded_pair_value_whitespace)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For= \"198.51.100.2\"; proto =https";
    apply_malformed("Forwarded");
    log_has("Value may not be surrounded by whitespace");
}

Test(proxy, forwarded_pair_no_equals)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For";
    apply_malformed("Forwarded");
    log_has("Invalid forwarded-pair missing \"=\"");
}

Test(proxy, forwarded_warning_unknown_token)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "For=198.51.100.2;host=example.com:8080;proto=https;"
                   "unknown=\"yolo\"";
    apply_ok();
    cr_assert_eq(log_lines(), 1);
    log_has("[WARNING] [waitressd] Unknown Forwarded token: unknown\n");
    cr_assert_str_eq(env.remote_addr, "198.51.100.2");
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:8080");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, no_valid_proxy_headers)
{
    trust("*", 0);
    env.hdr[XFF] = "198.51.100.2";
    env.hdr[FWD] = "For=198.51.100.2;host=example.com:8080;proto=https";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "127.0.0.1");
    cr_assert_str_eq(env.server_name, "localhost");
    cr_assert_str_eq(env.http_host, "192.168.1.1:80");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.url_scheme, "http");
    cr_assert_null(env.hdr[XFF]);
    cr_assert_null(env.hdr[FWD]);
}

Test(proxy, multiple_x_forwarded_proto)
{
    trust("*", T_XFP);
    env.hdr[XFP] = "http, https";
    apply_malformed("X-Forwarded-Proto");
    log_has("Malformed proxy header \"X-Forwarded-Proto\" from "
            "\"127.0.0.1\": Unspecified behavior for multiple values found "
            "in header value: http, https\n");
}

Test(proxy, multiple_x_forwarded_port)
{
    trust("*", T_XFPORT);
    env.hdr[XFPORT] = "443, 80";
    apply_malformed("X-Forwarded-Port");
}

Test(proxy, forwarded_port_wrong_proto_port_80)
{
    trust("*", T_XFPORT | T_XFH | T_XFP);
    env.hdr[XFPORT] = "80";
    env.hdr[XFP] = "https";
    env.hdr[XFH] = "example.com";
    apply_ok();
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:80");
    cr_assert_str_eq(env.server_port, "80");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, forwarded_port_wrong_proto_port_443)
{
    trust("*", T_XFPORT | T_XFH | T_XFP);
    env.hdr[XFPORT] = "443";
    env.hdr[XFP] = "http";
    env.hdr[XFH] = "example.com";
    apply_ok();
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:443");
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_str_eq(env.url_scheme, "http");
}

Test(proxy, forwarded_for_bad_quote)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "\"foo";
    apply_malformed("X-Forwarded-For");
    log_has("Malformed proxy header \"X-Forwarded-For\" from \"127.0.0.1\": "
            "Invalid quoting in value value: \"foo\n");
}

Test(proxy, forwarded_host_bad_quote)
{
    trust("*", T_XFH);
    env.hdr[XFH] = "\"foo";
    apply_malformed("X-Forwarded-Host");
}

/* ===== SPEC.md 11 rules and quirks ==================================== */

Test(proxy, inactive_without_trusted_proxy_and_clearing)
{
    cfg.clear_untrusted_proxy_headers = 0;
    env.hdr[XFF] = "1.2.3.4";
    env.hdr[FWD] = "for=5.6.7.8";
    apply_ok();
    cr_assert_str_eq(env.hdr[XFF], "1.2.3.4");
    cr_assert_str_eq(env.hdr[FWD], "for=5.6.7.8");
    cr_assert_str_eq(env.remote_addr, "127.0.0.1");
    cr_assert_eq(env.owned, 0);
}

Test(proxy, clears_all_six_without_trusted_proxy)
{
    for (int h = 0; h < WD_PH_COUNT; h++)
        env.hdr[h] = "x";
    apply_ok();
    for (int h = 0; h < WD_PH_COUNT; h++)
        cr_assert_null(env.hdr[h], "%s", wd_proxy_hdr_key(h));
    cr_assert_eq(log_lines(), 0, "no warning unless asked");
}

Test(proxy, removed_headers_warning_text)
{
    trust("10.0.0.2", T_XFF);
    cfg.log_untrusted_proxy_headers = 1;
    env.remote_addr = "10.0.0.1";
    env.hdr[XFF] = "1.2.3.4";
    env.hdr[FWD] = "for=x";
    apply_ok();
    cr_assert_eq(log_lines(), 1);
    log_has("[WARNING] [waitressd] Removed untrusted headers (Forwarded, "
            "X-Forwarded-For). Waitress recommends these be removed "
            "upstream.\n");
    cr_assert_str_eq(env.remote_addr, "10.0.0.1");
}

Test(proxy, nothing_removed_nothing_logged)
{
    cfg.log_untrusted_proxy_headers = 1;
    apply_ok();
    cr_assert_eq(log_lines(), 0);
}

Test(proxy, empty_header_value_is_still_removed)
{
    env.hdr[XFB] = "";
    apply_ok();
    cr_assert_null(env.hdr[XFB]);
}

Test(proxy, peer_must_match_exactly)
{
    trust("127.0.0.1", T_XFF);
    env.remote_addr = "127.0.0.10";
    env.hdr[XFF] = "1.2.3.4";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "127.0.0.10");
    cr_assert_null(env.hdr[XFF]);
}

Test(proxy, count_zero_keeps_all_entries)
{
    trust("*", T_XFF);
    cfg.trusted_proxy_count = 0;
    env.hdr[XFF] = "a, b, c";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "a");
    cr_assert_str_eq(env.hdr[XFF], "a, b, c");
}

Test(proxy, count_larger_than_list_keeps_all)
{
    trust("*", T_FWD);
    cfg.trusted_proxy_count = 5;
    env.hdr[FWD] = "For=1.2.3.4;Proto=HTTP, for=5.6.7.8;host=h:1;foo=bar";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "1.2.3.4");
    cr_assert_str_eq(env.url_scheme, "http");
    cr_assert_str_eq(env.server_name, "h");
    cr_assert_str_eq(env.http_host, "h:1");
    cr_assert_str_eq(env.server_port, "1");
    cr_assert_str_eq(env.hdr[FWD],
                     "For=1.2.3.4;Proto=HTTP, for=5.6.7.8;host=h:1;foo=bar");
    log_has("Unknown Forwarded token: foo");
}

Test(proxy, rewrite_keeps_raw_spacing)
{
    trust("*", T_XFF);
    cfg.trusted_proxy_count = 2;
    env.hdr[XFF] = "a,b,c";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "b");
    cr_assert_str_eq(env.hdr[XFF], "b,c");
}

Test(proxy, forwarded_rewrite_is_stripped)
{
    trust("*", T_FWD);
    env.hdr[FWD] = " for=1.2.3.4 ,  for=5.6.7.8  ";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "5.6.7.8");
    cr_assert_str_eq(env.hdr[FWD], "for=5.6.7.8");
}

Test(proxy, negative_count_drops_from_front)
{
    trust("*", T_XFF);
    cfg.trusted_proxy_count = -1;
    env.hdr[XFF] = "a, b, c";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "b");
    cr_assert_str_eq(env.hdr[XFF], "b, c");
}

Test(proxy, negative_count_past_end_is_malformed)
{
    trust("*", T_XFF);
    cfg.trusted_proxy_count = -2;
    env.hdr[XFF] = "a, b";
    apply_malformed("X-Forwarded-For");
    log_has("list index out of range value: a, b\n");
}

Test(proxy, negative_count_empties_forwarded)
{
    trust("*", T_FWD);
    cfg.trusted_proxy_count = -2;
    env.hdr[FWD] = "for=a, for=b";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "127.0.0.1");
    cr_assert_str_eq(env.hdr[FWD], "");
}

Test(proxy, xff_ipv4_with_port)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "1.2.3.4:5555";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "1.2.3.4");
    cr_assert_str_eq(env.remote_port, "5555");
    cr_assert_str_eq(env.remote_host, "1.2.3.4");
}

Test(proxy, xff_bracketed_v6_with_port_is_kept_whole)
{
    /* The IPv6 test wraps it in a second pair of brackets. */
    trust("*", T_XFF);
    env.hdr[XFF] = "[2001:db8::1]:3821";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "[2001:db8::1]:3821");
    cr_assert_str_eq(env.remote_port, "8080");
}

Test(proxy, xff_quoted_bracketed_v6_quirk)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "\"[2001:db8::1]:4444\"";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "[2001:db8::1]:4444");
    cr_assert_str_eq(env.hdr[XFF], "\"[2001:db8::1]:4444\"");
}

Test(proxy, strip_uses_python_whitespace)
{
    trust("*", T_XFF);
    env.hdr[XFF] = "\xa0 1.2.3.4 \x85";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "1.2.3.4");
    cr_assert_str_eq(env.hdr[XFF], "1.2.3.4");
}

Test(proxy, forwarded_lowercases_values_latin1)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "host=\xc9X.Org;proto=HTTPS";
    apply_ok();
    cr_assert_str_eq(env.server_name, "\xe9x.org");
    cr_assert_str_eq(env.http_host, "\xe9x.org");
    cr_assert_str_eq(env.url_scheme, "https");
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_str_eq(env.hdr[FWD], "host=\xc9X.Org;proto=HTTPS");
}

Test(proxy, forwarded_proto_malformed_names_forwarded_proto)
{
    const char *bad;
    char body[128];

    trust("*", T_FWD);
    env.hdr[FWD] = "proto=ftp";
    apply_malformed("Forwarded Proto=");
    log_has("Malformed proxy header \"Forwarded Proto=\" from "
            "\"127.0.0.1\": unsupported proto value value: ftp\n");
    bad = "Forwarded Proto=";
    cr_assert_eq(wd_proxy_error_body(bad, body, sizeof body), 76);
    cr_assert_str_eq(body, "Bad Request\r\n\r\nHeader \"Forwarded Proto=\" "
                           "malformed.\r\n\r\n(generated by server)");
}

Test(proxy, x_forwarded_proto_value_logged_lowercase)
{
    trust("*", T_XFP);
    env.hdr[XFP] = "FTP";
    apply_malformed("X-Forwarded-Proto");
    log_has("unsupported proto value value: ftp\n");
}

Test(proxy, x_forwarded_proto_is_lowercased_and_kept)
{
    trust("*", T_XFP);
    env.hdr[XFP] = "HtTpS";
    apply_ok();
    cr_assert_str_eq(env.url_scheme, "https");
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_str_eq(env.hdr[XFP], "HtTpS");
}

Test(proxy, x_forwarded_proto_is_undquoted)
{
    trust("*", T_XFP);
    env.hdr[XFP] = "\"https\"";
    apply_ok();
    cr_assert_str_eq(env.url_scheme, "https");
    cr_assert_str_eq(env.hdr[XFP], "\"https\"");
}

Test(proxy, x_forwarded_port_not_checked_numeric)
{
    trust("*", T_XFPORT | T_XFH);
    env.hdr[XFPORT] = "abc";
    env.hdr[XFH] = "h";
    apply_ok();
    cr_assert_str_eq(env.server_port, "abc");
    cr_assert_str_eq(env.server_name, "h");
    cr_assert_str_eq(env.http_host, "h:abc");
}

Test(proxy, host_port_beats_forwarded_port)
{
    trust("*", T_XFH | T_XFPORT | T_XFP);
    env.hdr[XFH] = "a:1";
    env.hdr[XFPORT] = "2";
    env.hdr[XFP] = "https";
    apply_ok();
    cr_assert_str_eq(env.server_port, "1");
    cr_assert_str_eq(env.server_name, "a");
    cr_assert_str_eq(env.http_host, "a:1");
    cr_assert_str_eq(env.url_scheme, "https");
}

Test(proxy, host_with_empty_port)
{
    trust("*", T_XFH);
    env.hdr[XFH] = "example.com:";
    apply_ok();
    cr_assert_str_eq(env.server_name, "example.com");
    cr_assert_str_eq(env.http_host, "example.com:");
    cr_assert_str_eq(env.server_port, "8080");
}

Test(proxy, host_bracketed_v6_has_no_port)
{
    trust("*", T_XFH | T_XFPORT);
    env.hdr[XFH] = "[::1]";
    env.hdr[XFPORT] = "81";
    apply_ok();
    cr_assert_str_eq(env.server_name, "[::1]");
    cr_assert_str_eq(env.http_host, "[::1]:81");
    cr_assert_str_eq(env.server_port, "81");
}

Test(proxy, forwarded_keeps_xff_client_as_fallback)
{
    trust("*", T_XFF | T_FWD);
    env.hdr[XFF] = "1.2.3.4";
    env.hdr[FWD] = "host=x";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "1.2.3.4");
    cr_assert_str_eq(env.server_name, "x");
    cr_assert_str_eq(env.http_host, "x");
    cr_assert_null(env.hdr[XFF], "trusting Forwarded distrusts X-*");
    cr_assert_str_eq(env.hdr[FWD], "host=x");
}

Test(proxy, forwarded_resets_x_forwarded_port_and_proto)
{
    trust("*", T_FWD | T_XFPORT | T_XFP);
    env.hdr[FWD] = "for=1.2.3.4";
    env.hdr[XFPORT] = "9000";
    env.hdr[XFP] = "https";
    apply_ok();
    cr_assert_str_eq(env.remote_addr, "1.2.3.4");
    cr_assert_str_eq(env.server_port, "8080");
    cr_assert_str_eq(env.url_scheme, "http");
    cr_assert_null(env.hdr[XFPORT]);
    cr_assert_null(env.hdr[XFP]);
}

Test(proxy, absent_forwarded_keeps_x_proto_but_removes_header)
{
    trust("*", T_FWD | T_XFP | T_XFB);
    cfg.log_untrusted_proxy_headers = 1;
    env.hdr[XFP] = "https";
    env.hdr[XFB] = "x";
    apply_ok();
    cr_assert_str_eq(env.url_scheme, "https");
    cr_assert_str_eq(env.server_port, "443");
    cr_assert_null(env.hdr[XFP]);
    cr_assert_null(env.hdr[XFB]);
    log_has("Removed untrusted headers (X-Forwarded-Proto, X-Forwarded-By)");
}

Test(proxy, empty_forwarded_is_ignored_and_kept)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "";
    apply_ok();
    cr_assert_str_eq(env.hdr[FWD], "");
    cr_assert_str_eq(env.remote_addr, "127.0.0.1");
}

Test(proxy, forwarded_by_is_validated)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "for=a;by=\"x";
    apply_malformed("Forwarded");
    log_has("Invalid quoting in value value: for=a;by=\"x\n");
}

Test(proxy, forwarded_value_trailing_space_is_malformed)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "for=1.2.3.4:99 ;host=a";
    apply_malformed("Forwarded");
}

Test(proxy, empty_client_address_crashes_like_waitress)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "for=\":80\"";
    cr_assert_eq(apply(NULL), WD_PROXY_CRASH);
}

Test(proxy, blank_client_address_crashes_like_waitress)
{
    trust("*", T_FWD);
    env.hdr[FWD] = "for=\" \"";
    cr_assert_eq(apply(NULL), WD_PROXY_CRASH);
}

Test(proxy, malformed_logs_original_peer_once)
{
    trust("*", T_XFF | T_XFP);
    env.remote_addr = "10.1.1.1";
    env.hdr[XFF] = "9.9.9.9";
    env.hdr[XFP] = "gopher";
    apply_malformed("X-Forwarded-Proto");
    cr_assert_eq(log_lines(), 1);
    log_has("from \"10.1.1.1\": unsupported proto value value: gopher\n");
}

Test(proxy, cleanup_frees_and_forgets_owned_strings)
{
    trust("*", T_XFF | T_XFH);
    env.hdr[XFF] = "1.2.3.4:1";
    env.hdr[XFH] = "h:2";
    apply_ok();
    cr_assert_neq(env.owned, 0);
    wd_proxy_env_cleanup(&env);
    cr_assert_eq(env.owned, 0);
    cr_assert_null(env.remote_addr);
    cr_assert_null(env.http_host);
    cr_assert_str_eq(env.url_scheme, "http", "borrowed strings untouched");
}

Test(proxy, header_keys_and_names)
{
    static const char *keys[] = {
        "HTTP_FORWARDED",        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY",
    };
    static const char *names[] = {
        "Forwarded",         "X-Forwarded-For",  "X-Forwarded-Host",
        "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-By",
    };

    for (int h = 0; h < WD_PH_COUNT; h++) {
        cr_assert_str_eq(wd_proxy_hdr_key(h), keys[h]);
        cr_assert_str_eq(wd_proxy_hdr_name(h), names[h]);
    }
    cr_assert_null(wd_proxy_hdr_key(WD_PH_COUNT));
}

Test(proxy, error_body_spec_bytes)
{
    char body[128];

    /* 0x4D = 77 bytes, the chunk size in SPEC.md 11's example. */
    cr_assert_eq(wd_proxy_error_body("X-Forwarded-Proto", body, sizeof body),
                 0x4d);
    cr_assert_str_eq(body, "Bad Request\r\n\r\nHeader \"X-Forwarded-Proto\" "
                           "malformed.\r\n\r\n(generated by server)");
}

Test(proxy, error_body_too_small)
{
    char body[20];

    cr_assert_eq(wd_proxy_error_body("Forwarded", body, sizeof body), -1);
}
