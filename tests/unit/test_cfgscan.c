/*
 * Unit tests for common/cfgscan.c: the look over a configuration file
 * that keeps libconfig 1.5 from wrapping big ints and from exit()ing on a
 * directory (SPEC.md 2.4, 4.3).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autoconfig.h"
#include "cfgscan.h"

static char err[512];

static int
scan(const char *text)
{
    err[0] = '\0';
    return wd_cfgscan_text(text, strlen(text), "w.conf", NULL, 0, err,
                           sizeof err);
}

Test(cfgscan, ints_in_range_pass)
{
    cr_assert_eq(scan("threads = 4;\nport = 65535;\n"
                      "max_request_body_size = 2147483647;\n"
                      "x = -2147483648;\ny = +12;\nz = 0x7fffffff;\n"),
                 0, "%s", err);
}

Test(cfgscan, int_past_32_bits_is_refused_with_its_setting_and_line)
{
    cr_assert_eq(scan("threads = 4;\n\nthreads = 4294967297;\n"), -1);
    cr_assert_str_eq(err, "w.conf:3: threads = 4294967297 does not fit in "
                          "32 bits; write it with the L suffix "
                          "(4294967297L) or as a string");
    cr_assert_eq(scan("max_request_body_size = 2147483648;"), -1);
    cr_assert_eq(scan("a = -2147483649;"), -1);
    cr_assert_eq(scan("a = 0x100000000;"), -1);
    cr_assert_eq(scan("a = 0x80000000;"), -1);
    /* longer than any int64: still refused, shown shortened */
    cr_assert_eq(scan("a = 123456789012345678901234567890123456789012345;"),
                 -1);
    cr_assert(strstr(err, "a = 1234") != NULL, "%s", err);
}

Test(cfgscan, the_l_suffix_floats_strings_and_comments_pass)
{
    cr_assert_eq(scan("a = 4294967297L;\nb = 0x100000000L;\nc = 1e20;\n"
                      "d = 4294967297.0;\ne = .4294967297;\nf = 4294967297e2;\n"
                      "g = \"4294967297\";\nh = \"a \\\" 4294967297\";\n"
                      "# i = 4294967297;\n// j = 4294967297;\n"
                      "/* k = 4294967297;\n l = 4294967297; */\n"),
                 0, "%s", err);
}

/* libconfig clamps an L number past 64 bits to INT64_MAX or INT64_MIN,
 * silently, for every key alike; it is refused as a literal no int64 can
 * hold.  (As a string, or on the command line, the digits are read as
 * Python's int() reads them: a 64-bit option saturates, an int one says
 * its range.) */
Test(cfgscan, an_l_number_past_64_bits_is_refused)
{
    cr_assert_eq(scan("x = 1;\nmax_request_body_size = 99999999999999999999L;"),
                 -1);
    cr_assert_str_eq(err, "w.conf:2: max_request_body_size = "
                          "99999999999999999999L does not fit in 64 bits");
    cr_assert_eq(scan("a = -9223372036854775809L;"), -1);
    cr_assert_eq(scan("a = 0x10000000000000000L;"), -1);
    cr_assert_eq(scan("a = 9223372036854775807L;\nb = -9223372036854775808L;\n"
                      "c = 0x7fffffffffffffffL;\n"),
                 0, "%s", err);
    /* leading zeros add no magnitude, however many (libconfig, int()) */
    cr_assert_eq(scan("a = 00000000000000000000000000000000000000001L;\n"
                      "b = -00000000000000000000000000000000000000000002;\n"
                      "c = 0x000000000000000000000000000000000000000003L;\n"),
                 0, "%s", err);
    cr_assert_eq(scan("a = 000000000000000000000000000000000000004294967296;"),
                 -1);
}

Test(cfgscan, float_exponents_are_not_ints)
{
    cr_assert_eq(scan("x = 1.5e+3000000000;\ny = [1.5e3, 2.e9, .5E-9];\n"),
                 0, "%s", err);
    /* the setting named is the one the number belongs to */
    cr_assert_eq(scan("x = [1.5e3, 5000000000];"), -1);
    cr_assert(strstr(err, ": x = 5000000000 ") != NULL, "%s", err);
}

Test(cfgscan, a_nul_byte_is_refused_with_its_line)
{
    static const char text[] = "threads = 4;\n\0threads = 9;\n";

    cr_assert_eq(wd_cfgscan_text(text, sizeof text - 1, "w.conf", NULL, 0,
                                 err, sizeof err),
                 -1);
    cr_assert_str_eq(err, "w.conf:2: a NUL byte: the file is not text");
}

Test(cfgscan, digits_inside_a_name_are_not_a_number)
{
    cr_assert_eq(scan("ab4294967297 = 1;\nx-4294967297 = 2;\n"), 0, "%s",
                 err);
}

Test(cfgscan, lines_count_through_strings_and_comments)
{
    cr_assert_eq(scan("a = \"x\ny\";\n/* \n\n */ b = 1;\nc = 9999999999;"),
                 -1);
    cr_assert(strncmp(err, "w.conf:6: c = 9999999999 ", 25) == 0, "%s", err);
}

static char dir[] = "/tmp/wd-cfgscan-XXXXXX";

static void
make_dir(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void
remove_dir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void
write_file(const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_not_null(fp = fopen(path, "w"));
    fputs(text, fp);
    fclose(fp);
}

Test(cfgscan, an_included_directory_is_refused, .init = make_dir,
     .fini = remove_dir)
{
    char sub[256], want[512];

    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    err[0] = '\0';
    cr_assert_eq(wd_cfgscan_text("a = 1;\n  @include \"sub\"\n", 24,
                                 "w.conf", dir, 0, err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "w.conf:2: cannot read include file %s: Is a directory", sub);
    cr_assert_str_eq(err, want);
}

Test(cfgscan, included_files_are_looked_over_too, .init = make_dir,
     .fini = remove_dir)
{
    const char *text = "@include \"one.conf\"\n";

    write_file("one.conf", "a = 1;\n@include \"two.conf\"\n");
    write_file("two.conf", "b = 2;\nthreads = 4294967297;\n");
    cr_assert_eq(wd_cfgscan_text(text, strlen(text), "w.conf", dir, 0, err,
                                 sizeof err),
                 -1);
    cr_assert(strstr(err, "/two.conf:2: threads = 4294967297 ") != NULL,
              "%s", err);
    /* a missing include is libconfig's to report */
    text = "@include \"none.conf\"\n";
    cr_assert_eq(wd_cfgscan_text(text, strlen(text), "w.conf", dir, 0, err,
                                 sizeof err),
                 0);
}

Test(cfgscan, includes_are_looked_over_as_deep_as_libconfig_reads,
     .init = make_dir, .fini = remove_dir)
{
    /* w.conf includes l1 ... l10 (libconfig's last level); l10 wraps */
    const char *text = "@include \"l1.conf\"\n";
    char name[16], body[64];

    for (int i = 1; i < 10; i++) {
        snprintf(name, sizeof name, "l%d.conf", i);
        snprintf(body, sizeof body, "@include \"l%d.conf\"\n", i + 1);
        write_file(name, body);
    }
    write_file("l10.conf", "threads = 4294967297;\n");
    cr_assert_eq(wd_cfgscan_text(text, strlen(text), "w.conf", dir, 0, err,
                                 sizeof err),
                 -1);
    cr_assert(strstr(err, "/l10.conf:1: threads = ") != NULL, "%s", err);
}

Test(cfgscan, an_absolute_include_is_under_the_include_dir_too,
     .init = make_dir, .fini = remove_dir)
{
    /* libconfig 1.5 puts include_dir in front of every path */
    char sub[256];
    const char *text = "@include \"/sub\"\n";

    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(wd_cfgscan_text(text, strlen(text), "w.conf", dir, 0, err,
                                 sizeof err),
                 -1);
    cr_assert(strstr(err, "cannot read include file ") != NULL, "%s", err);
}

Test(cfgscan, an_include_loop_stops_at_libconfig_depth, .init = make_dir,
     .fini = remove_dir)
{
    const char *text = "@include \"self.conf\"\n";

    write_file("self.conf", "@include \"self.conf\"\n");
    cr_assert_eq(wd_cfgscan_text(text, strlen(text), "w.conf", dir, 0, err,
                                 sizeof err),
                 0);
}

Test(cfgscan, read_refuses_a_directory_and_reads_a_file, .init = make_dir,
     .fini = remove_dir)
{
    char path[256], want[512], *text;
    size_t len;

    cr_assert_eq(wd_cfgscan_read(dir, &text, &len, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "cannot read configuration file %s: Is a directory", dir);
    cr_assert_str_eq(err, want);
    write_file("w.conf", "threads = 2;\n");
    snprintf(path, sizeof path, "%s/w.conf", dir);
    cr_assert_eq(wd_cfgscan_read(path, &text, &len, err, sizeof err), 0);
    cr_assert_eq(len, 13);
    cr_assert_str_eq(text, "threads = 2;\n");
    free(text);
    snprintf(path, sizeof path, "%s/none.conf", dir);
    cr_assert_eq(wd_cfgscan_read(path, &text, &len, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot open configuration file ") == err, "%s",
              err);
}
