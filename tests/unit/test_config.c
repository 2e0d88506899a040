/*
 * Unit tests for common/config.c: every option type's coercion (SPEC.md
 * 2.1), the command line (section 1), the libconfig file (2.4),
 * precedence and the address-group rule, the cross-option validation of
 * 2.2 in order, and listen resolution (3.1).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "autoconfig.h"
#include "config.h"
#include "log.h"

static struct wd_config cfg;
static char err[1024];
static enum wd_cli_action action;

static void
setup(void)
{
    cr_assert_eq(wd_config_init(&cfg), 0);
    err[0] = '\0';
}

static void
teardown(void)
{
    wd_config_cleanup(&cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Run wd_config_from_argv on "waitressd" + the NULL-terminated args. */
static int
parse(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;

    argv[argc++] = "waitressd";
    va_start(ap, first);
    for (a = first; a != NULL; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return wd_config_from_argv(&cfg, argc, argv, &action, err, sizeof err);
}

/* Write TEXT to a fresh temporary file; returns its path (static). */
static const char *
conf_file(const char *text)
{
    static char path[64];
    int fd;

    strcpy(path, "/tmp/wd-test-config-XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int
parse_file(const char *text, const char *extra)
{
    const char *path = conf_file(text);
    int rc;

    if (extra != NULL)
        rc = parse("-c", path, extra, NULL);
    else
        rc = parse("-c", path, NULL);
    unlink(path);
    return rc;
}

/* The error log as a temporary file, to look at warnings. */
static char logpath[64];

static void
log_to_file(void)
{
    int fd;

    strcpy(logpath, "/tmp/wd-test-config-log-XXXXXX");
    fd = mkstemp(logpath);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(wd_log_open(logpath, NULL), 0);
}

static char *
log_text(void)
{
    static char buf[8192];
    FILE *f = fopen(logpath, "r");
    size_t n;

    cr_assert_not_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(logpath);
    return buf;
}

static int
addr_port(const struct wd_addr *a)
{
    if (a->family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static const char *
addr_host(const struct wd_addr *a)
{
    static char buf[INET6_ADDRSTRLEN];

    if (a->family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr,
                  buf, sizeof buf);
    else
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, buf,
                  sizeof buf);
    return buf;
}

/* ---------------------------------------------------------------- */
/* defaults                                                           */

Test(config, defaults_are_spec_values)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    cr_assert_str_eq(cfg.host, "0.0.0.0");
    cr_assert_eq(cfg.port, 8080);
    cr_assert_eq(cfg.listen.len, 1);
    cr_assert_str_eq(cfg.listen.items[0], "0.0.0.0:8080");
    cr_assert_eq(cfg.ipv4, 1);
    cr_assert_eq(cfg.ipv6, 1);
    cr_assert_null(cfg.unix_socket);
    cr_assert_eq(cfg.unix_socket_perms, 0600);
    cr_assert_eq(cfg.nsockets, 0);
    cr_assert_str_eq(cfg.server_name, "waitress.invalid");
    cr_assert_eq(cfg.threads, 4);
    cr_assert_null(cfg.trusted_proxy);
    cr_assert_eq(cfg.trusted_proxy_headers, 0);
    cr_assert_eq(cfg.log_untrusted_proxy_headers, 0);
    cr_assert_eq(cfg.clear_untrusted_proxy_headers, 1);
    cr_assert_str_eq(cfg.url_scheme, "http");
    cr_assert_str_eq(cfg.url_prefix, "");
    cr_assert_str_eq(cfg.ident, "waitressd");
    cr_assert_eq(cfg.backlog, 1024);
    cr_assert_eq(cfg.recv_bytes, 8192);
    cr_assert_eq(cfg.send_bytes, 1);
    cr_assert_eq(cfg.outbuf_overflow, 1048576);
    cr_assert_eq(cfg.outbuf_high_watermark, 16777216);
    cr_assert_eq(cfg.inbuf_overflow, 524288);
    cr_assert_eq(cfg.connection_limit, 100);
    cr_assert_eq(cfg.cleanup_interval, 30);
    cr_assert_eq(cfg.channel_timeout, 120);
    cr_assert_eq(cfg.log_socket_errors, 1);
    cr_assert_eq(cfg.max_request_header_size, 262144);
    cr_assert_eq(cfg.max_request_body_size, 1073741824);
    cr_assert_eq(cfg.expose_tracebacks, 0);
    cr_assert_eq(cfg.asyncore_loop_timeout, 1);
    cr_assert_eq(cfg.asyncore_use_poll, 0);
    cr_assert_eq(cfg.channel_request_lookahead, 0);
    cr_assert_null(cfg.app);
    cr_assert_eq(cfg.call, 0);
    cr_assert_eq(cfg.pythonpath.len, 0);
    cr_assert_eq(cfg.workers, cpus < 1 ? 1 : cpus);
    cr_assert_eq(cfg.graceful_timeout, 30);
    cr_assert_eq(cfg.worker_timeout, 30);
    cr_assert_eq(cfg.max_requests, 0);
    cr_assert_eq(cfg.max_requests_jitter, 0);
    cr_assert_null(cfg.pidfile);
    cr_assert_eq(cfg.daemon, 0);
    cr_assert_null(cfg.user);
    cr_assert_null(cfg.group);
    cr_assert_eq(cfg.umask, -1);
    cr_assert_null(cfg.access_log);
    cr_assert_str_eq(cfg.error_log, "-");
    cr_assert_eq(cfg.log_level, WD_LOG_INFO);
    cr_assert_null(cfg.stats);
}

Test(config, minimal_run_resolves_default_listen)
{
    cr_assert_eq(parse("x:app", NULL), 0, "%s", err);
    cr_assert_eq(action, WD_CLI_RUN);
    cr_assert_str_eq(cfg.app, "x:app");
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_str_eq(addr_host(&cfg.addrs[0]), "0.0.0.0");
    cr_assert_eq(addr_port(&cfg.addrs[0]), 8080);
    cr_assert_eq(cfg.trusted_proxy_count, 1);
    cr_assert_eq(cfg.trusted_proxy_count_set, 0);
    cr_assert_eq(wd_config_given(&cfg, "app"), 1);
    cr_assert_eq(wd_config_given(&cfg, "threads"), 0);
}

/* ---------------------------------------------------------------- */
/* int                                                                */

Test(config, int_accepts_whitespace_and_sign)
{
    cr_assert_eq(parse("--threads= +12 ", "--backlog=-3", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.threads, 12);
    cr_assert_eq(cfg.backlog, -3);
}

Test(config, int_rejects_letters_with_spec_message)
{
    cr_assert_eq(parse("--threads=abc", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for threads: 'abc'");
    cr_assert_eq(cfg.usage_error, 0);
}

Test(config, int_rejects_float_hex_underscore_and_empty)
{
    const char *bad[] = {"--threads=1.5", "--threads=0x10",
                         "--threads=1_000", "--threads=", "--threads=- 1"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wd_config_cleanup(&cfg);
        wd_config_init(&cfg);
        cr_assert_eq(parse(bad[i], "x:app", NULL), -1, "%s accepted",
                     bad[i]);
        cr_assert(strncmp(err, "invalid value for threads: '", 28) == 0,
                  "%s", err);
    }
}

Test(config, int_out_of_range_is_rejected_saying_what_fits)
{
    cr_assert_eq(parse("--threads=99999999999", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for threads: '99999999999' "
                          "(out of range: at most 2147483647)");
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse("--channel-timeout=-99999999999999999999", "x:app",
                       NULL), -1);
    cr_assert_str_eq(err, "invalid value for channel_timeout: "
                          "'-99999999999999999999' "
                          "(out of range: at least -2147483648)");
}

/* Python's int() has no bound, and waitress takes any size limit: past
 * 64 bits a size is as good as none, so it saturates (it was refused) */
Test(config, int64_option_past_64_bits_saturates)
{
    cr_assert_eq(parse("--max-request-body-size=99999999999999999999",
                       "--inbuf-overflow= +9223372036854775808 ",
                       "--outbuf-overflow=-99999999999999999999", "x:app",
                       NULL), 0, "%s", err);
    cr_assert_eq(cfg.max_request_body_size, INT64_MAX);
    cr_assert_eq(cfg.inbuf_overflow, INT64_MAX);
    cr_assert_eq(cfg.outbuf_overflow, INT64_MIN);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    /* and a port that large is an invalid port, as a smaller one is */
    cr_assert_eq(parse("--port=99999999999999999999", "x:app", NULL), -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

Test(config, int64_option_takes_large_values)
{
    cr_assert_eq(parse("--max-request-body-size=10000000000", "x:app", NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.max_request_body_size, 10000000000LL);
}

Test(config, valued_option_takes_next_argument)
{
    cr_assert_eq(parse("--max-request-body-size", "5", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.max_request_body_size, 5);
}

Test(config, repeated_option_last_wins)
{
    cr_assert_eq(parse("--threads=2", "--threads=3", "x:app", NULL), 0);
    cr_assert_eq(cfg.threads, 3);
}

/* ---------------------------------------------------------------- */
/* bool                                                               */

Test(config, bool_flags_set_and_clear)
{
    cr_assert_eq(parse("--expose-tracebacks", "--no-log-socket-errors",
                       "--call", "x:app", NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.expose_tracebacks, 1);
    cr_assert_eq(cfg.log_socket_errors, 0);
    cr_assert_eq(cfg.call, 1);
}

Test(config, bool_flag_with_value_is_usage_error)
{
    cr_assert_eq(parse("--ipv6=1", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option --ipv6 must not have an argument");
    cr_assert_eq(cfg.usage_error, WD_USAGE_ERROR);
}

Test(config, bool_strings_in_file)
{
    cr_assert_eq(parse_file("app = \"x:app\";\n"
                            "expose_tracebacks = \" YES \";\n"
                            "log_socket_errors = \"nope\";\n"
                            "daemon = \"on\";\n"
                            "call = \"0\";\n"
                            "asyncore_use_poll = \"t\";\n",
                            NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.expose_tracebacks, 1);
    cr_assert_eq(cfg.log_socket_errors, 0);
    cr_assert_eq(cfg.daemon, 1);
    cr_assert_eq(cfg.call, 0);
    cr_assert_eq(cfg.asyncore_use_poll, 1);
}

Test(config, bool_native_and_int_in_file)
{
    cr_assert_eq(parse_file("app = \"x:app\"; expose_tracebacks = true;\n"
                            "log_socket_errors = 0; daemon = 2;\n",
                            NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.expose_tracebacks, 1);
    cr_assert_eq(cfg.log_socket_errors, 0);
    cr_assert_eq(cfg.daemon, 1);
}

Test(config, no_prefix_on_non_bool_is_not_recognized)
{
    cr_assert_eq(parse("--no-threads", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option --no-threads not recognized");
    cr_assert_eq(cfg.usage_error, WD_USAGE_ERROR_HELP);
}

/* ---------------------------------------------------------------- */
/* octal                                                              */

Test(config, octal_string_int_and_0o_prefix)
{
    cr_assert_eq(parse("--unix-socket-perms=660", "--umask=022", "x:app",
                       NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.unix_socket_perms, 0660);
    cr_assert_eq(cfg.umask, 022);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse_file("app = \"x:app\"; unix_socket_perms = 600;\n"
                            "umask = \"0o27\";\n",
                            NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.unix_socket_perms, 0600);
    cr_assert_eq(cfg.umask, 027);
}

Test(config, octal_rejects_digit_8)
{
    cr_assert_eq(parse("--unix-socket-perms=680", "x:app", NULL), -1);
    cr_assert_str_eq(
        err, "invalid value for unix_socket_perms: '680' (expected octal digits)");
}

/* ---------------------------------------------------------------- */
/* list / set / str_or_none / prefix                                  */

Test(config, list_splits_on_whitespace_not_commas)
{
    cr_assert_eq(parse("--pythonpath=a,b  c\nd", "x:app", NULL), 0, "%s",
                 err);
    cr_assert_eq(cfg.pythonpath.len, 3);
    cr_assert_str_eq(cfg.pythonpath.items[0], "a,b");
    cr_assert_str_eq(cfg.pythonpath.items[1], "c");
    cr_assert_str_eq(cfg.pythonpath.items[2], "d");
}

Test(config, repeated_list_flags_accumulate)
{
    cr_assert_eq(parse("--pythonpath=a", "--pythonpath", "b c",
                       "--listen=127.0.0.1:9001",
                       "--listen=127.0.0.1:9002 127.0.0.1:9003", "x:app",
                       NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.pythonpath.len, 3);
    cr_assert_str_eq(cfg.pythonpath.items[2], "c");
    cr_assert_eq(cfg.listen.len, 3);
    cr_assert_eq(cfg.naddrs, 3);
    cr_assert_eq(addr_port(&cfg.addrs[2]), 9003);
}

Test(config, list_from_file_array_and_string)
{
    cr_assert_eq(parse_file("app = \"x:app\";\n"
                            "pythonpath = [\"a b\", \"c\"];\n"
                            "listen = \"127.0.0.1:9001\n127.0.0.1:9002\";\n",
                            NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.pythonpath.len, 3);
    cr_assert_str_eq(cfg.pythonpath.items[0], "a");
    cr_assert_str_eq(cfg.pythonpath.items[1], "b");
    cr_assert_eq(cfg.naddrs, 2);
}

Test(config, list_with_non_string_element_is_invalid)
{
    cr_assert_eq(parse_file("app = \"x:app\"; pythonpath = [1, 2];\n", NULL),
                 -1);
    cr_assert_str_eq(err, "invalid value for pythonpath: 1");
}

Test(config, str_or_none_empty_is_none)
{
    cr_assert_eq(parse("--ident=", "--trusted-proxy=", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_null(cfg.ident);
    cr_assert_null(cfg.trusted_proxy);
}

/* waitress holds these as text and writes them to the wire (and to the
 * environ, a latin-1 view of it) as latin-1: they are kept here as the
 * latin-1 bytes of the UTF-8 given, when every character has one */
Test(config, text_options_are_kept_as_latin1)
{
    cr_assert_eq(parse("--ident=w\xc3\xa9", "--server-name=s\xc3\xa9rv",
                       "--url-scheme=http\xc3\xa9", "--url-prefix=/app\xc3\xa9",
                       "x:app", NULL),
                 0, "%s", err);
    cr_assert_str_eq(cfg.ident, "w\xe9");
    cr_assert_str_eq(cfg.server_name, "s\xe9rv");
    cr_assert_str_eq(cfg.url_scheme, "http\xe9");
    cr_assert_str_eq(cfg.url_prefix, "/app\xe9");
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(cfg.utf8_text, 0);
    /* beyond latin-1, or not UTF-8: left as given, and marked as such */
    cr_assert_eq(parse("--server-name=a\xe9", "--url-scheme=\xe6\x97\xa5",
                       "--url-prefix=/\xe6\x97\xa5", "x:app", NULL),
                 0, "%s", err);
    cr_assert_str_eq(cfg.server_name, "a\xe9");
    cr_assert_str_eq(cfg.url_scheme, "\xe6\x97\xa5");
    cr_assert_eq(cfg.utf8_text, WD_UTF8_SERVER_NAME | WD_UTF8_URL_SCHEME |
                                    WD_UTF8_URL_PREFIX);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    /* but the Server header cannot carry such an ident */
    cr_assert_eq(parse("--ident=\xe6\x97\xa5", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for ident: '\xe6\x97\xa5' (not "
                          "latin-1 text, which the Server header needs)");
}

Test(config, prefix_examples_of_spec)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"///foo/", "/foo"}, {"/", "/"},        {"  ", ""},
        {"foo", "/foo"},     {" /a/b// ", "/a/b"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char arg[64];

        wd_config_cleanup(&cfg);
        wd_config_init(&cfg);
        snprintf(arg, sizeof arg, "--url-prefix=%s", cases[i].in);
        cr_assert_eq(parse(arg, "x:app", NULL), 0, "%s", err);
        cr_assert_str_eq(cfg.url_prefix, cases[i].out, "'%s'", cases[i].in);
    }
}

Test(config, string_options_are_stored)
{
    cr_assert_eq(parse("--server-name=example.org", "--url-scheme=https",
                       "--pidfile=/tmp/p", "--access-log=-",
                       "--error-log=/tmp/e", "--stats=127.0.0.1:9999",
                       "x:app", NULL),
                 0, "%s", err);
    cr_assert_str_eq(cfg.server_name, "example.org");
    cr_assert_str_eq(cfg.url_scheme, "https");
    cr_assert_str_eq(cfg.pidfile, "/tmp/p");
    cr_assert_str_eq(cfg.access_log, "-");
    cr_assert_str_eq(cfg.error_log, "/tmp/e");
    cr_assert_str_eq(cfg.stats, "127.0.0.1:9999");
}

Test(config, log_level_is_case_insensitive)
{
    cr_assert_eq(parse("--log-level=WARNING", "x:app", NULL), 0, "%s", err);
    cr_assert_eq(cfg.log_level, WD_LOG_WARNING);
}

/* ---------------------------------------------------------------- */
/* command line                                                       */

Test(config, unknown_flag_is_usage_error_with_help)
{
    cr_assert_eq(parse("--no-such-flag", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option --no-such-flag not recognized");
    cr_assert_eq(cfg.usage_error, WD_USAGE_ERROR_HELP);
}

Test(config, unknown_flag_with_value_names_only_the_flag)
{
    cr_assert_eq(parse("--bogus=3", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option --bogus not recognized");
}

Test(config, underscore_spelling_is_not_a_flag)
{
    cr_assert_eq(parse("--max_request_body_size=5", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option --max_request_body_size not recognized");
}

Test(config, unknown_short_flag)
{
    cr_assert_eq(parse("-x", "x:app", NULL), -1);
    cr_assert_str_eq(err, "option -x not recognized");
}

Test(config, missing_argument)
{
    cr_assert_eq(parse("x:app", "--threads", NULL), -1);
    cr_assert_str_eq(err, "option --threads requires argument");
    cr_assert_eq(cfg.usage_error, WD_USAGE_ERROR);
}

Test(config, no_application_is_usage_error)
{
    cr_assert_eq(parse("--threads=2", NULL), -1);
    cr_assert_str_eq(err, "Specify an application");
    cr_assert_eq(cfg.usage_error, WD_USAGE_ERROR_HELP);
}

Test(config, two_positionals_are_rejected)
{
    cr_assert_eq(parse("a:app", "b:app", NULL), -1);
    cr_assert_str_eq(err, "Provide only one WSGI app");
}

Test(config, app_flag_and_positional_are_rejected)
{
    cr_assert_eq(parse("--app=a:app", "b:app", NULL), -1);
    cr_assert_str_eq(err, "Provide only one WSGI app");
}

Test(config, app_flag_alone)
{
    cr_assert_eq(parse("--app", "a.b:c", NULL), 0, "%s", err);
    cr_assert_str_eq(cfg.app, "a.b:c");
}

Test(config, options_after_positional_and_double_dash)
{
    cr_assert_eq(parse("x:app", "--threads=7", NULL), 0, "%s", err);
    cr_assert_eq(cfg.threads, 7);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse("--threads=7", "--", "--odd:app", NULL), 0, "%s",
                 err);
    cr_assert_str_eq(cfg.app, "--odd:app");
}

Test(config, help_wins_over_everything, .init = cr_redirect_stdout)
{
    char buf[256];
    FILE *out;

    cr_assert_eq(parse("--bogus", "--threads=abc", "--help", NULL), 0);
    cr_assert_eq(action, WD_CLI_HELP);
    fflush(stdout);
    out = cr_get_redirected_stdout();
    cr_assert_not_null(fgets(buf, sizeof buf, out));
    cr_assert(strncmp(buf, "Usage: waitressd", 16) == 0, "%s", buf);
}

Test(config, help_lists_every_option, .init = cr_redirect_stdout)
{
    static const char *flags[] = {
        "--host=",
        "--port=",
        "--listen=",
        "--ipv4, --no-ipv4",
        "--ipv6, --no-ipv6",
        "--unix-socket=",
        "--unix-socket-perms=",
        "--sockets=",
        "--server-name=",
        "--threads=",
        "--trusted-proxy=",
        "--trusted-proxy-count=",
        "--trusted-proxy-headers=",
        "--log-untrusted-proxy-headers, --no-log-untrusted-proxy-headers",
        "--clear-untrusted-proxy-headers, --no-clear-untrusted-proxy-headers",
        "--url-scheme=",
        "--url-prefix=",
        "--ident=",
        "--backlog=",
        "--recv-bytes=",
        "--send-bytes=",
        "--outbuf-overflow=",
        "--outbuf-high-watermark=",
        "--inbuf-overflow=",
        "--connection-limit=",
        "--cleanup-interval=",
        "--channel-timeout=",
        "--log-socket-errors, --no-log-socket-errors",
        "--max-request-header-size=",
        "--max-request-body-size=",
        "--expose-tracebacks, --no-expose-tracebacks",
        "--asyncore-loop-timeout=",
        "--asyncore-use-poll, --no-asyncore-use-poll",
        "--channel-request-lookahead=",
        "--app=",
        "--call, --no-call",
        "--pythonpath=",
        "--workers=",
        "--graceful-timeout=",
        "--worker-timeout=",
        "--max-requests=",
        "--max-requests-jitter=",
        "--pidfile=",
        "--daemon, --no-daemon",
        "--user=",
        "--group=",
        "--umask=",
        "--access-log=",
        "--error-log=",
        "--log-level=",
        "--stats=",
    };
    static char text[32768];
    FILE *out;
    size_t n;

    cr_assert_eq(parse("-h", NULL), 0);
    fflush(stdout);
    out = cr_get_redirected_stdout();
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_assert_not_null(strstr(text, flags[i]), "%s missing", flags[i]);
}

Test(config, version_prints_package_version, .init = cr_redirect_stdout)
{
    cr_assert_eq(parse("-V", NULL), 0);
    cr_assert_eq(action, WD_CLI_VERSION);
    fflush(stdout);
    cr_assert_stdout_eq_str("waitressd " PACKAGE_VERSION "\n");
}

Test(config, check_mode_needs_no_app)
{
    cr_assert_eq(parse("-t", NULL), 0, "%s", err);
    cr_assert_eq(action, WD_CLI_CHECK);
    cr_assert_null(cfg.app);
}

Test(config, check_mode_long_flag_and_cluster)
{
    const char *path = conf_file("threads = 9;\n");

    cr_assert_eq(parse("-tc", path, NULL), 0, "%s", err);
    cr_assert_eq(action, WD_CLI_CHECK);
    cr_assert_eq(cfg.threads, 9);
    cr_assert_str_eq(cfg.config_file, path);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    char arg[128];
    snprintf(arg, sizeof arg, "--config=%s", path);
    cr_assert_eq(parse("--check-config", arg, NULL), 0, "%s", err);
    cr_assert_eq(cfg.threads, 9);
    unlink(path);
}

Test(config, usable_again_for_reload)
{
    char *argv[] = {"waitressd", "--threads=3", "--listen=127.0.0.1:9005",
                    "x:app", NULL};
    struct wd_config again;

    cr_assert_eq(wd_config_from_argv(&cfg, 4, argv, &action, err, sizeof err),
                 0);
    cr_assert_eq(wd_config_init(&again), 0);
    cr_assert_eq(
        wd_config_from_argv(&again, 4, argv, &action, err, sizeof err), 0);
    cr_assert_eq(again.threads, 3);
    cr_assert_eq(again.naddrs, 1);
    cr_assert_eq(addr_port(&again.addrs[0]), 9005);
    wd_config_cleanup(&again);
}

/* ---------------------------------------------------------------- */
/* file                                                               */

Test(config, file_values_used)
{
    cr_assert_eq(parse_file("app = \"m:a\"; threads = 8;\n"
                            "max_request_body_size = 10000000000L;\n"
                            "port = \"9010\"; host = \"127.0.0.1\";\n",
                            NULL),
                 0, "%s", err);
    cr_assert_str_eq(cfg.app, "m:a");
    cr_assert_eq(cfg.threads, 8);
    cr_assert_eq(cfg.max_request_body_size, 10000000000LL);
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 9010);
}

Test(config, file_dash_spelling)
{
    cr_assert_eq(parse_file("app = \"m:a\"; max-request-body-size = 5;\n",
                            NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.max_request_body_size, 5);
}

Test(config, file_both_spellings_is_error)
{
    cr_assert_eq(parse_file("app = \"m:a\";\nmax_request_body_size = 5;\n"
                            "max-request-body-size = 6;\n",
                            NULL),
                 -1);
    cr_assert_not_null(strstr(err, "max_request_body_size is set twice"),
                       "%s", err);
}

Test(config, file_unknown_key)
{
    cr_assert_eq(parse_file("app = \"m:a\";\nthread = 4;\n", NULL), -1);
    cr_assert_str_eq(err, "Unknown adjustment 'thread'");
}

Test(config, file_syntax_error_names_file_and_line)
{
    const char *path = conf_file("app = \"m:a\";\nthreads = ;\n");
    char want[256];

    cr_assert_eq(parse("-c", path, NULL), -1);
    snprintf(want, sizeof want, "%s:2: ", path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert_eq(cfg.usage_error, 0);
    unlink(path);
}

Test(config, file_missing)
{
    cr_assert_eq(parse("-c", "/nonexistent/waitressd.conf", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "cannot open configuration file "
                          "/nonexistent/waitressd.conf: No such file or "
                          "directory");
}

Test(config, file_group_where_scalar_expected)
{
    cr_assert_eq(parse_file("app = \"m:a\"; threads = { a = 1; };\n", NULL),
                 -1);
    cr_assert_str_eq(err, "invalid value for threads");
}

Test(config, file_list_where_scalar_expected)
{
    cr_assert_eq(parse_file("app = \"m:a\"; ident = ( \"a\" );\n", NULL),
                 -1);
    cr_assert_str_eq(err, "invalid value for ident");
}

Test(config, file_float_for_int)
{
    cr_assert_eq(parse_file("app = \"m:a\"; threads = 1.5;\n", NULL), -1);
    cr_assert_str_eq(err, "invalid value for threads: 1.5");
}

Test(config, file_int_for_string_option)
{
    cr_assert_eq(parse_file("app = \"m:a\"; server_name = 42;\n", NULL), 0,
                 "%s", err);
    cr_assert_str_eq(cfg.server_name, "42");
}

/* ---------------------------------------------------------------- */
/* precedence                                                          */

Test(config, command_line_beats_file)
{
    cr_assert_eq(parse_file("app = \"m:a\"; threads = 8; backlog = 5;\n",
                            "--threads=2"),
                 0, "%s", err);
    cr_assert_eq(cfg.threads, 2);
    cr_assert_eq(cfg.backlog, 5);
}

Test(config, command_line_app_beats_file_app)
{
    cr_assert_eq(parse_file("app = \"m:a\";\n", "other:app"), 0, "%s", err);
    cr_assert_str_eq(cfg.app, "other:app");
}

Test(config, command_line_list_replaces_file_list)
{
    cr_assert_eq(parse_file("app = \"m:a\"; pythonpath = [\"f1\", \"f2\"];\n",
                            "--pythonpath=c1"),
                 0, "%s", err);
    cr_assert_eq(cfg.pythonpath.len, 1);
    cr_assert_str_eq(cfg.pythonpath.items[0], "c1");
}

Test(config, address_group_on_cli_drops_file_address_keys)
{
    cr_assert_eq(parse_file("app = \"m:a\"; listen = \"127.0.0.1:9020\";\n"
                            "unix_socket = \"/tmp/x.sock\";\n",
                            "--port=9021"),
                 0, "%s", err);
    cr_assert_null(cfg.unix_socket);
    cr_assert_eq(cfg.listen.len, 1);
    cr_assert_str_eq(cfg.listen.items[0], "0.0.0.0:9021");
    cr_assert_eq(wd_config_given(&cfg, "listen"), 0);
    cr_assert_eq(wd_config_given(&cfg, "port"), 1);
}

Test(config, address_group_conflict_inside_file_is_reported)
{
    cr_assert_eq(parse_file("app = \"m:a\"; listen = \"127.0.0.1:9020\";\n"
                            "port = 9021;\n",
                            NULL),
                 -1);
    cr_assert_str_eq(err, "host or port may not be set if listen is set.");
}

Test(config, non_address_file_keys_survive_cli_address)
{
    cr_assert_eq(parse_file("app = \"m:a\"; ipv6 = false; threads = 6;\n",
                            "--listen=127.0.0.1:9022"),
                 0, "%s", err);
    cr_assert_eq(cfg.ipv6, 0);
    cr_assert_eq(cfg.threads, 6);
}

/* ---------------------------------------------------------------- */
/* cross validation, SPEC.md 2.2 in order                              */

Test(config, v1_listen_and_host)
{
    cr_assert_eq(parse("--listen=127.0.0.1:1", "--host=127.0.0.1", "x:app",
                       NULL),
                 -1);
    cr_assert_str_eq(err, "host or port may not be set if listen is set.");
}

Test(config, v2_listen_and_sockets)
{
    cr_assert_eq(parse("--listen=127.0.0.1:1", "--sockets=3", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "socket may not be set if listen is set.");
}

Test(config, v3_sockets_and_port)
{
    cr_assert_eq(parse("--sockets=3", "--port=1", "x:app", NULL), -1);
    cr_assert_str_eq(err, "host or port may not be set if sockets is set.");
}

Test(config, v4_sockets_and_unix_socket)
{
    cr_assert_eq(parse("--sockets=3", "--unix-socket=/tmp/s", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "unix_socket may not be set if sockets is set");
}

Test(config, v5_unix_socket_and_host)
{
    cr_assert_eq(parse("--unix-socket=/tmp/s", "--host=h", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "unix_socket may not be set if host or port is set");
}

Test(config, v6_unix_socket_and_listen)
{
    cr_assert_eq(parse("--unix-socket=/tmp/s", "--listen=h:1", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "unix_socket may not be set if listen is set");
}

Test(config, conflicts_come_before_coercion)
{
    cr_assert_eq(parse("--threads=abc", "--listen=x", "--port=1",
                       "--sockets=3", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "host or port may not be set if listen is set.");
}

Test(config, v7_send_bytes_warns)
{
    log_to_file();
    cr_assert_eq(parse("--send-bytes=9000", "x:app", NULL), 0, "%s", err);
    cr_assert_eq(cfg.send_bytes, 9000);
    cr_assert_not_null(strstr(log_text(),
                              "[WARNING] [waitressd] send_bytes will be "
                              "removed in a future release\n"));
}

Test(config, v9_bad_address)
{
    cr_assert_eq(parse("--listen=::1", "x:app", NULL), -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

Test(config, coercion_comes_before_resolution)
{
    cr_assert_eq(parse("--listen=::1", "--threads=x", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for threads: 'x'");
}

Test(config, v10_count_without_proxy)
{
    cr_assert_eq(parse("--trusted-proxy-count=1", "x:app", NULL), -1);
    cr_assert_str_eq(err, "trusted_proxy_count has no meaning without "
                          "setting trusted_proxy");
}

Test(config, v11_headers_without_proxy)
{
    cr_assert_eq(parse("--trusted-proxy-headers=x-forwarded-for", "x:app",
                       NULL),
                 -1);
    cr_assert_str_eq(err, "trusted_proxy_headers has no meaning without "
                          "setting trusted_proxy");
}

Test(config, v12_unknown_header)
{
    const char *known[] = {"x-forwarded-for",  "x-forwarded-host",
                           "x-forwarded-proto", "x-forwarded-port",
                           "x-forwarded-by",   "forwarded"};
    const char *want = "Received unknown trusted_proxy_headers value "
                       "(x-bogus) expected one of ";

    cr_assert_eq(parse("--trusted-proxy=127.0.0.1",
                       "--trusted-proxy-headers=X-Bogus x-forwarded-for",
                       "x:app", NULL),
                 -1);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    for (size_t i = 0; i < 6; i++)
        cr_assert_not_null(strstr(err + strlen(want), known[i]));
}

Test(config, v13_forwarded_with_x_forwarded)
{
    cr_assert_eq(parse("--trusted-proxy=127.0.0.1",
                       "--trusted-proxy-headers=forwarded x-forwarded-for",
                       "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "The Forwarded proxy header and the "
                          "X-Forwarded-{By,Host,Proto,Port,For} headers are "
                          "mutually exclusive. Can't trust both!");
}

Test(config, v14_implicit_proto_with_warning)
{
    log_to_file();
    cr_assert_eq(parse("--trusted-proxy=127.0.0.1", "x:app", NULL), 0, "%s",
                 err);
    cr_assert_eq(cfg.trusted_proxy_headers, WD_PROXY_X_FORWARDED_PROTO);
    cr_assert_not_null(strstr(
        log_text(),
        "[WARNING] [waitressd] No proxy headers were marked as trusted, but "
        "trusted_proxy was set. Implicitly trusting X-Forwarded-Proto for "
        "backwards compatibility. This will be removed in future versions "
        "of waitress.\n"));
}

Test(config, proxy_headers_lowercased_and_deduplicated)
{
    cr_assert_eq(parse("--trusted-proxy=*", "--trusted-proxy-count=2",
                       "--trusted-proxy-headers=X-Forwarded-For "
                       "x-forwarded-for X-FORWARDED-HOST",
                       "x:app", NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.trusted_proxy_headers,
                 WD_PROXY_X_FORWARDED_FOR | WD_PROXY_X_FORWARDED_HOST);
    cr_assert_eq(cfg.trusted_proxy_count, 2);
    cr_assert_eq(cfg.trusted_proxy_count_set, 1);
}

Test(config, v15_non_stream_socket)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char arg[32];

    snprintf(arg, sizeof arg, "--sockets=%d", fd);
    cr_assert_eq(parse(arg, "x:app", NULL), -1);
    cr_assert_str_eq(err, "Only Internet or UNIX stream sockets may be used.");
}

Test(config, v15_mixed_sockets)
{
    int a = socket(AF_INET, SOCK_STREAM, 0);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    char arg[64];

    snprintf(arg, sizeof arg, "--sockets=%d %d", a, u);
    cr_assert_eq(parse(arg, "x:app", NULL), -1);
    cr_assert_str_eq(err, "Internet and UNIX sockets may not be mixed.");
}

Test(config, v15_good_sockets_replace_addrs)
{
    int a = socket(AF_INET, SOCK_STREAM, 0);
    int b = socket(AF_INET6, SOCK_STREAM, 0);
    char arg[64];

    snprintf(arg, sizeof arg, "--sockets=%d", a);
    cr_assert_eq(parse(arg, "--sockets", "", "x:app", NULL), 0, "%s", err);
    cr_assert_eq(cfg.nsockets, 1);
    cr_assert_eq(cfg.sockets[0], a);
    cr_assert_eq(cfg.naddrs, 0);
    (void)b;
}

Test(config, sockets_must_be_integers)
{
    cr_assert_eq(parse("--sockets=3 x", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for sockets: 'x'");
}

Test(config, listen_fds_ignored_for_other_pid)
{
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "2", 1);
    cr_assert_eq(parse("x:app", NULL), 0, "%s", err);
    cr_assert_eq(cfg.nsockets, 0);
    cr_assert_eq(cfg.naddrs, 1);
}

Test(config, v16_workers)
{
    cr_assert_eq(parse("--workers=0", "x:app", NULL), -1);
    cr_assert_str_eq(err, "workers must be at least 1 (got 0)");
}

Test(config, v16_threads_exact_message)
{
    cr_assert_eq(parse("--threads=0", "x:app", NULL), -1);
    cr_assert_str_eq(err, "threads must be at least 1");
}

Test(config, v16_negative_timeouts_and_counts)
{
    const char *flags[] = {"--graceful-timeout=-1", "--worker-timeout=-1",
                           "--max-requests=-1", "--max-requests-jitter=-1"};
    const char *keys[] = {"graceful_timeout", "worker_timeout",
                          "max_requests", "max_requests_jitter"};

    for (size_t i = 0; i < 4; i++) {
        char want[128];

        wd_config_cleanup(&cfg);
        wd_config_init(&cfg);
        cr_assert_eq(parse(flags[i], "x:app", NULL), -1);
        snprintf(want, sizeof want, "%s must be at least 0 (got -1)",
                 keys[i]);
        cr_assert_str_eq(err, want);
    }
}

Test(config, v16_zero_timeouts_allowed)
{
    cr_assert_eq(parse("--worker-timeout=0", "--graceful-timeout=0", "x:app",
                       NULL),
                 0, "%s", err);
}

Test(config, v16_log_level)
{
    cr_assert_eq(parse("--log-level=loud", "x:app", NULL), -1);
    cr_assert_str_eq(err, "invalid value for log_level: 'loud' (expected one "
                          "of debug, info, warning, error, critical)");
}

Test(config, v16_unknown_user)
{
    cr_assert_eq(parse("--user=no-such-user-wd", "x:app", NULL), -1);
    cr_assert_str_eq(err,
                     "invalid value for user: 'no-such-user-wd' (no such user)");
}

Test(config, v16_unknown_group)
{
    cr_assert_eq(parse("--group=no-such-group-wd", "x:app", NULL), -1);
    cr_assert_str_eq(
        err, "invalid value for group: 'no-such-group-wd' (no such group)");
}

/* ids past uid_t's range name no one: 4294967296 must not wrap to root */
Test(config, v16_numeric_ids_past_32_bits_do_not_exist)
{
    cr_assert_eq(parse("--user=4294967296", "x:app", NULL), -1);
    cr_assert_str_eq(err,
                     "invalid value for user: '4294967296' (no such user)");
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse("--group=4294967296", "x:app", NULL), -1);
    cr_assert_str_eq(err,
                     "invalid value for group: '4294967296' (no such group)");
}

Test(config, v16_user_sets_uid_and_primary_group)
{
    cr_assert_eq(parse("--user=root", "x:app", NULL), 0, "%s", err);
    cr_assert_eq(cfg.uid, 0);
    cr_assert_eq(cfg.gid, 0);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse("--user=0", "--group=nogroup", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.uid, 0);
    cr_assert_neq(cfg.gid, 0);
}

/* ---------------------------------------------------------------- */
/* listen resolution, SPEC.md 3.1                                      */

static void
resolve_ok(const char *listen, size_t n)
{
    char arg[256];

    snprintf(arg, sizeof arg, "--listen=%s", listen);
    cr_assert_eq(parse(arg, "x:app", NULL), 0, "%s: %s", listen, err);
    cr_assert_eq(cfg.naddrs, n, "%s: %zu addresses", listen, cfg.naddrs);
}

static void
resolve_bad(const char *listen)
{
    char arg[256];

    snprintf(arg, sizeof arg, "--listen=%s", listen);
    cr_assert_eq(parse(arg, "x:app", NULL), -1, "%s accepted", listen);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

Test(config, listen_host_only_gets_port_8080)
{
    resolve_ok("127.0.0.1", 1);
    cr_assert_eq(cfg.addrs[0].family, AF_INET);
    cr_assert_str_eq(addr_host(&cfg.addrs[0]), "127.0.0.1");
    cr_assert_eq(addr_port(&cfg.addrs[0]), 8080);
}

Test(config, listen_bracketed_v6_without_port)
{
    resolve_ok("[::1]", 1);
    cr_assert_eq(cfg.addrs[0].family, AF_INET6);
    cr_assert_str_eq(addr_host(&cfg.addrs[0]), "::1");
    cr_assert_eq(addr_port(&cfg.addrs[0]), 8080);
}

Test(config, listen_bracketed_v6_with_port)
{
    resolve_ok("[::1]:9030", 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 9030);
}

Test(config, listen_bare_v6_fails)
{
    resolve_bad("::1");
}

Test(config, listen_empty_host_fails)
{
    resolve_bad(":8080");
}

Test(config, listen_port_above_65535_fails)
{
    resolve_bad("127.0.0.1:70000");
}

Test(config, listen_negative_port_fails)
{
    resolve_bad("127.0.0.1:-1");
}

Test(config, listen_service_name)
{
    resolve_ok("127.0.0.1:http", 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 80);
}

Test(config, listen_duplicates_dropped)
{
    resolve_ok("127.0.0.1:9031 127.0.0.1:9031 127.0.0.1:9032", 2);
}

Test(config, listen_port_zero_never_deduplicated)
{
    resolve_ok("127.0.0.1:0 127.0.0.1:0", 2);
}

Test(config, listen_wildcard_ipv4_only)
{
    cr_assert_eq(parse("--listen=*:9033", "--no-ipv6", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_str_eq(addr_host(&cfg.addrs[0]), "0.0.0.0");
    cr_assert_eq(addr_port(&cfg.addrs[0]), 9033);
}

Test(config, listen_wildcard_both_families)
{
    int v4 = 0, v6 = 0;

    resolve_ok("*:9034", 2);
    for (size_t i = 0; i < cfg.naddrs; i++) {
        v4 += cfg.addrs[i].family == AF_INET;
        v6 += cfg.addrs[i].family == AF_INET6;
    }
    cr_assert_eq(v4, 1);
    cr_assert_eq(v6, 1);
}

Test(config, listen_ipv6_only_rejects_ipv4_address)
{
    cr_assert_eq(parse("--listen=127.0.0.1:9035", "--no-ipv4", "x:app", NULL),
                 -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

Test(config, listen_both_families_off_allows_both)
{
    cr_assert_eq(parse("--listen=127.0.0.1:9036 [::1]:9036", "--no-ipv4",
                       "--no-ipv6", "x:app", NULL),
                 0, "%s", err);
    cr_assert_eq(cfg.naddrs, 2);
}

Test(config, host_and_port_replace_listen)
{
    cr_assert_eq(parse("--host=127.0.0.1", "--port=9037", "x:app", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.listen.len, 1);
    cr_assert_str_eq(cfg.listen.items[0], "127.0.0.1:9037");
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 9037);
}

Test(config, port_out_of_range_is_invalid_address)
{
    cr_assert_eq(parse("--port=65536", "x:app", NULL), -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

/* SPEC.md 3.1: the port goes to getaddrinfo as written, which reads a
 * number as strtoul does ("+80", "-0"; "" is 0); only a number
 * above 65535 is refused on top of what it refuses */
Test(config, listen_port_is_read_as_getaddrinfo_reads_it)
{
    resolve_ok("127.0.0.1:+9040", 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 9040);
    resolve_ok("127.0.0.1:-0", 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 0);
    resolve_ok("127.0.0.1:", 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 0);
    resolve_bad("127.0.0.1:-1");
    resolve_bad("127.0.0.1:9042x");
    resolve_bad("127.0.0.1:65536");
    resolve_bad("127.0.0.1:18446744073709551616");
}

/* port is a Python int with no range of its own: a huge one makes an
 * address getaddrinfo cannot take */
Test(config, huge_port_is_invalid_address)
{
    cr_assert_eq(parse("--port=2147483648", "x:app", NULL), -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
    cr_assert_eq(parse("--port=-1", "x:app", NULL), -1);
    cr_assert_str_eq(err, "Invalid host/port specified.");
}

/* waitress serves TCP when unix_socket is empty ("if adj.unix_socket"),
 * while its conflict checks still count the key as given */
Test(config, empty_unix_socket_is_unset_but_given)
{
    cr_assert_eq(parse("--unix-socket=", "x:app", NULL), 0, "%s", err);
    cr_assert_null(cfg.unix_socket);
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_eq(addr_port(&cfg.addrs[0]), 8080);
    wd_config_cleanup(&cfg);
    wd_config_init(&cfg);
    cr_assert_eq(parse("--unix-socket=", "--port=9050", "x:app", NULL), -1);
    cr_assert_str_eq(err, "unix_socket may not be set if host or port is set");
}

/* an empty listen resolves to nothing: refused where -t sees it too */
Test(config, empty_listen_is_refused)
{
    cr_assert_eq(parse("--listen=", "x:app", NULL), -1);
    cr_assert_str_eq(err, "no address to listen on");
}

Test(config, unix_socket_leaves_no_tcp_addresses)
{
    cr_assert_eq(parse("--unix-socket=/tmp/wd.sock", "x:app", NULL), 0, "%s",
                 err);
    cr_assert_str_eq(cfg.unix_socket, "/tmp/wd.sock");
    cr_assert_eq(cfg.naddrs, 0);
}

Test(config, resolve_directly_uses_defaults)
{
    cr_assert_eq(wd_config_resolve(&cfg, err, sizeof err), 0);
    cr_assert_eq(cfg.naddrs, 1);
    cr_assert_str_eq(addr_host(&cfg.addrs[0]), "0.0.0.0");
    cr_assert_eq(addr_port(&cfg.addrs[0]), 8080);
}
