/* Unit tests for common/util.c (SPEC.md 18). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

/* --- wd_is_tchar ------------------------------------------------------ */

Test(util, tchar_accepts_token_characters)
{
    const char *ok = "!#$%&'*+-.^_`|~0123456789"
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    for (const char *p = ok; *p; p++)
        cr_assert(wd_is_tchar((unsigned char)*p), "'%c'", *p);
}

Test(util, tchar_rejects_everything_else)
{
    int count = 0;

    for (int c = 0; c < 256; c++)
        count += wd_is_tchar((unsigned char)c) != 0;
    cr_assert_eq(count, 15 + 10 + 52);
    cr_assert_not(wd_is_tchar('\0'));
    cr_assert_not(wd_is_tchar(' '));
    cr_assert_not(wd_is_tchar(':'));
    cr_assert_not(wd_is_tchar('"'));
    cr_assert_not(wd_is_tchar('('));
    cr_assert_not(wd_is_tchar(0x7f));
    cr_assert_not(wd_is_tchar(0xe9));
}

/* --- wd_find_double_newline ------------------------------------------- */

#define FDN(s) wd_find_double_newline(s, sizeof(s) - 1)

Test(util, double_newline_waitress_cases)
{
    cr_assert_eq(FDN(""), -1);
    cr_assert_eq(FDN("\n"), -1);
    cr_assert_eq(FDN("\n\n"), -1);
    cr_assert_eq(FDN("\r\n"), -1);
    cr_assert_eq(FDN("\r\n\r\n"), 4);
    cr_assert_eq(FDN("\n\n00\r\n\r\n"), 8);
}

Test(util, double_newline_first_one_wins)
{
    cr_assert_eq(FDN("GET / HTTP/1.1\r\nA: b\r\n\r\nbody\r\n\r\n"), 24);
    cr_assert_eq(FDN("\r\r\n\r\n"), 5);
    cr_assert_eq(FDN("\r\n\r\r\n\r\n"), 7);
}

Test(util, double_newline_respects_len)
{
    cr_assert_eq(wd_find_double_newline("ab\r\n\r\n", 5), -1);
    cr_assert_eq(wd_find_double_newline("ab\r\n\r\n", 6), 6);
    cr_assert_eq(wd_find_double_newline(NULL, 0), -1);
}

/* --- wd_undquote ------------------------------------------------------ */

static void
undq_ok(const char *in, const char *want)
{
    char out[256];
    size_t n = 999;

    cr_assert_eq(wd_undquote(in, strlen(in), out, &n), 0, "in %s", in);
    cr_assert_str_eq(out, want);
    cr_assert_eq(n, strlen(want));
}

static void
undq_bad(const char *in)
{
    char out[256];
    size_t n;

    cr_assert_eq(wd_undquote(in, strlen(in), out, &n), -1, "in %s", in);
}

Test(util, undquote_spec_examples)
{
    undq_ok("\"a\\\"b\"", "a\"b");
    undq_bad("\"");
    undq_bad("\"abc");
    undq_ok("\"\"", "");
}

Test(util, undquote_unquoted_is_unchanged)
{
    undq_ok("", "");
    undq_ok("test", "test");
    undq_ok("a\\b", "a\\b");
    undq_ok("in\"side", "in\"side");
}

Test(util, undquote_waitress_cases)
{
    undq_ok("\"test\"", "test");
    undq_ok("\"\\\"\"", "\"");
    undq_ok("\"\t\"", "\t");
    undq_ok("\"\\\t\"", "\t");
    undq_bad("\"\\\"");
    undq_bad("\"test");
}

Test(util, undquote_quote_at_end_only_is_error)
{
    undq_bad("abc\"");
}

Test(util, undquote_must_be_one_quoted_string)
{
    undq_bad("\"a\"b\"");
    undq_bad("\"a\" \"b\"");
}

Test(util, undquote_rejects_controls_inside)
{
    undq_bad("\"a\x01" "b\"");
    undq_bad("\"a\x7f" "b\"");
    undq_bad("\"a\\\x01" "b\"");
}

Test(util, undquote_keeps_obs_text_and_backslash_pairs)
{
    undq_ok("\"caf\xe9\"", "caf\xe9");
    undq_ok("\"\\\\\"", "\\");
    undq_ok("\"\\a\\b\"", "ab");
    undq_ok("\"x\\\xe9\"", "x\xe9");
}

Test(util, undquote_uses_length_not_nul)
{
    char out[8];
    size_t n;

    cr_assert_eq(wd_undquote("\"ab\"zz", 4, out, &n), 0);
    cr_assert_str_eq(out, "ab");
    cr_assert_eq(wd_undquote("\"ab\"zz", 3, out, &n), -1);
}

/* --- wd_cleanup_unix_socket ------------------------------------------- */

static char tmpdir[PATH_MAX];

static void
make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/wd-test-util-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void
path_in_tmp(char *out, size_t size, const char *name)
{
    cr_assert_lt(snprintf(out, size, "%s/%s", tmpdir, name), (int)size);
}

/* An empty file NAME in the test's directory; its path into OUT. */
static void
make_file(char *out, size_t size, const char *name)
{
    int fd;

    path_in_tmp(out, size, name);
    fd = open(out, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
}

Test(util, cleanup_removes_socket)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    make_tmpdir();
    path_in_tmp(sun.sun_path, sizeof sun.sun_path, "s.sock");
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(stat(sun.sun_path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));

    cr_assert_eq(wd_cleanup_unix_socket(sun.sun_path), 0);
    cr_assert_eq(stat(sun.sun_path, &st), -1);
    cr_assert_eq(errno, ENOENT);
    close(fd);
    rmdir(tmpdir);
}

Test(util, cleanup_leaves_regular_file)
{
    char path[PATH_MAX];
    struct stat st;

    make_tmpdir();
    make_file(path, sizeof path, "plain");
    cr_assert_eq(wd_cleanup_unix_socket(path), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    unlink(path);
    rmdir(tmpdir);
}

Test(util, cleanup_leaves_directory)
{
    make_tmpdir();
    cr_assert_eq(wd_cleanup_unix_socket(tmpdir), 0);
    cr_assert_eq(access(tmpdir, F_OK), 0);
    rmdir(tmpdir);
}

Test(util, cleanup_missing_path_is_fine)
{
    char path[PATH_MAX];

    make_tmpdir();
    path_in_tmp(path, sizeof path, "nothing-here");
    cr_assert_eq(wd_cleanup_unix_socket(path), 0);
    rmdir(tmpdir);
}

Test(util, cleanup_reports_other_stat_errors)
{
    char path[PATH_MAX];

    /* A path through a regular file: ENOTDIR, not ENOENT. */
    make_tmpdir();
    make_file(path, sizeof path, "file");
    strcat(path, "/sock");
    errno = 0;
    cr_assert_eq(wd_cleanup_unix_socket(path), -1);
    cr_assert_eq(errno, ENOTDIR);
    path[strlen(path) - 5] = '\0';
    unlink(path);
    rmdir(tmpdir);
}

/* --- wd_path_writable ------------------------------------------------- */

/* What wd_path_writable says of PATH is what open(O_CREAT) then meets,
 * and it creates nothing on the way. */
static void
writable_as_open(const char *path)
{
    int rc, err, fd, existed = access(path, F_OK) == 0;

    errno = 0;
    rc = wd_path_writable(path, WD_PATH_OPEN);
    err = errno;
    cr_assert_eq(access(path, F_OK) == 0, existed, "created %s", path);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        if (!existed)
            unlink(path);
        cr_assert_eq(rc, 0, "%s: open worked, check said %s", path,
                     strerror(err));
    } else {
        cr_assert_eq(rc, -1, "%s: open failed (%s), check said yes", path,
                     strerror(errno));
        cr_assert_eq(err, errno, "%s: check %s, open %s", path,
                     strerror(err), strerror(errno));
    }
}

Test(util, path_writable_says_what_open_meets)
{
    char path[PATH_MAX], cwd[PATH_MAX];

    make_tmpdir();
    make_file(path, sizeof path, "file");
    writable_as_open(path);                      /* existing file */
    strcat(path, "/below");
    writable_as_open(path);                      /* through a file */
    writable_as_open(tmpdir);                    /* a directory */
    path_in_tmp(path, sizeof path, "new.log");
    writable_as_open(path);                      /* missing, dir there */
    path_in_tmp(path, sizeof path, "no-dir/new.log");
    writable_as_open(path);                      /* missing dir */
    writable_as_open("");
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tmpdir), 0);
    writable_as_open("relative.log");            /* in the current dir */
    writable_as_open("file");
    cr_assert_eq(chdir(cwd), 0);
    path_in_tmp(path, sizeof path, "file");
    unlink(path);
    cr_assert_eq(rmdir(tmpdir), 0, "left something in %s", tmpdir);
}

/* A pidfile is a new file renamed over PATH: what is at PATH matters
 * only if it is a directory; its own mode does not. */
Test(util, path_writable_by_rename_looks_at_the_directory)
{
    char path[PATH_MAX];

    make_tmpdir();
    make_file(path, sizeof path, "old.pid");
    cr_assert_eq(chmod(path, 0444), 0);
    cr_assert_eq(wd_path_writable(path, WD_PATH_RENAME), 0);
    errno = 0;
    cr_assert_eq(wd_path_writable(tmpdir, WD_PATH_RENAME), -1);
    cr_assert_eq(errno, EISDIR);
    unlink(path);
    path_in_tmp(path, sizeof path, "no-dir/w.pid");
    errno = 0;
    cr_assert_eq(wd_path_writable(path, WD_PATH_RENAME), -1);
    cr_assert_eq(errno, ENOENT);
    path_in_tmp(path, sizeof path, "new.pid");
    cr_assert_eq(wd_path_writable(path, WD_PATH_RENAME), 0);
    cr_assert_eq(access(path, F_OK), -1, "created %s", path);
    cr_assert_eq(rmdir(tmpdir), 0);
}

/* --- wd_strip_brackets ------------------------------------------------ */

static void
strip(const char *in, const char *want)
{
    char buf[64];

    strcpy(buf, in);
    wd_strip_brackets(buf);
    cr_assert_str_eq(buf, want, "in %s", in);
}

Test(util, copy_str_cuts_to_fit_like_snprintf)
{
    static const char *const src[] = {"", "a", "localhost", "127.0.0.1",
                                      "exactly-9"};

    for (size_t size = 1; size <= 12; size++) {
        for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
            char got[16], want[16];

            memset(got, 'X', sizeof got);
            memset(want, 'X', sizeof want);
            wd_copy_str(got, size, src[i]);
            snprintf(want, size, "%s", src[i]);
            /* the same bytes, and nothing written past SIZE */
            cr_assert_eq(memcmp(got, want, sizeof got), 0,
                         "size %zu, \"%s\"", size, src[i]);
        }
    }
}

Test(util, strip_brackets_both_ends)
{
    strip("[2001:db8::1]", "2001:db8::1");
    strip("[]", "");
    strip("[[x]]", "[x]");
}

Test(util, strip_brackets_needs_both)
{
    strip("[2001:db8::1", "[2001:db8::1");
    strip("2001:db8::1]", "2001:db8::1]");
    strip("[", "[");
    strip("]", "]");
    strip("", "");
    strip("1.2.3.4", "1.2.3.4");
}

/* --- wd_ipv6_available ------------------------------------------------ */

Test(util, ipv6_available_matches_kernel)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    int expect = fd >= 0;

    if (fd >= 0)
        close(fd);
    cr_assert_eq(wd_ipv6_available() != 0, expect);
}

/* --- wd_format_peer --------------------------------------------------- */

/* wd_format_peer against inet_ntop and "%u" for one IPv4 address. */
static void
check_ipv4_peer(uint32_t host_order, uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    char addr[64], want_addr[64], pbuf[16], want_port[16];

    sin.sin_addr.s_addr = htonl(host_order);
    sin.sin_port = htons(port);
    memset(addr, 'X', sizeof addr);
    memset(pbuf, 'X', sizeof pbuf);
    cr_assert_eq(wd_format_peer((struct sockaddr *)&sin, addr, sizeof addr,
                                pbuf, sizeof pbuf),
                 0);
    cr_assert_not_null(
        inet_ntop(AF_INET, &sin.sin_addr, want_addr, sizeof want_addr));
    snprintf(want_port, sizeof want_port, "%u", (unsigned)port);
    cr_assert_str_eq(addr, want_addr);
    cr_assert_str_eq(pbuf, want_port);
}

Test(util, format_peer_ipv4_matches_inet_ntop)
{
    static const uint32_t fixed[] = {0x00000000, 0x7f000001, 0x0a0000ff,
                                     0x01020304, 0x64c8fa09, 0xc0a80a0a,
                                     0x09630a00, 0xffffffff};
    static const uint16_t ports[] = {0, 1, 9, 10, 99, 100, 8080, 65535};
    uint32_t x = 2463534242u; /* xorshift32: the same numbers every run */

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_ipv4_peer(fixed[i], ports[i]);
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        check_ipv4_peer(x, (uint16_t)(x >> 7));
    }
}

Test(util, format_peer_ipv6_matches_inet_ntop)
{
    static const char *const addrs[] = {"::1", "::", "::ffff:10.1.2.3",
                                        "2001:db8::8a2e:370:7334",
                                        "fe80::1:2:3:4"};

    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                                    .sin6_port = htons(443)};
        char addr[64], want[64], port[8];

        cr_assert_eq(inet_pton(AF_INET6, addrs[i], &sin6.sin6_addr), 1);
        cr_assert_eq(wd_format_peer((struct sockaddr *)&sin6, addr,
                                    sizeof addr, port, sizeof port),
                     0);
        inet_ntop(AF_INET6, &sin6.sin6_addr, want, sizeof want);
        cr_assert_str_eq(addr, want);
        cr_assert_str_eq(port, "443");
    }
}

Test(util, format_peer_refuses_other_families_and_short_buffers)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(65535)};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char addr[INET_ADDRSTRLEN], port[6];

    sin.sin_addr.s_addr = htonl(0xffffffff);
    errno = 0;
    cr_assert_eq(wd_format_peer((struct sockaddr *)&sun, addr, sizeof addr,
                                port, sizeof port),
                 -1);
    cr_assert_eq(errno, EAFNOSUPPORT);
    errno = 0;
    cr_assert_eq(wd_format_peer((struct sockaddr *)&sin, addr,
                                sizeof addr - 1, port, sizeof port),
                 -1);
    cr_assert_eq(errno, ENOSPC);
    errno = 0;
    cr_assert_eq(wd_format_peer((struct sockaddr *)&sin, addr, sizeof addr,
                                port, sizeof port - 1),
                 -1);
    cr_assert_eq(errno, ENOSPC);
    /* exactly big enough: the longest of each fits */
    cr_assert_eq(wd_format_peer((struct sockaddr *)&sin, addr, sizeof addr,
                                port, sizeof port),
                 0);
    cr_assert_str_eq(addr, "255.255.255.255");
    cr_assert_str_eq(port, "65535");
}
