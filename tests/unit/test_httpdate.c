/* Unit tests for common/httpdate.c (SPEC.md 18). */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "httpdate.h"

static void
check_build(time_t t, const char *want)
{
    char out[WD_HTTP_DATE_LEN + 1];

    memset(out, 'X', sizeof out);
    wd_http_date_build(t, out);
    cr_assert_str_eq(out, want);
    cr_assert_eq(strlen(out), WD_HTTP_DATE_LEN);
}

Test(httpdate, build_epoch)
{
    check_build(0, "Thu, 01 Jan 1970 00:00:00 GMT");
}

Test(httpdate, build_spec_example)
{
    check_build(784111777, "Sun, 06 Nov 1994 08:49:37 GMT");
}

Test(httpdate, build_pads_day_and_clock)
{
    check_build(1609459200 + 3600 * 5 + 61, "Fri, 01 Jan 2021 05:01:01 GMT");
}

Test(httpdate, build_is_utc_whatever_tz)
{
    setenv("TZ", "America/New_York", 1);
    tzset();
    check_build(784111777, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static time_t
parse_ok(const char *s)
{
    time_t t = 12345;

    cr_assert_eq(wd_http_date_parse(s, &t), 0, "parse \"%s\"", s);
    return t;
}

static void
parse_bad(const char *s)
{
    time_t t = 12345;

    cr_assert_eq(wd_http_date_parse(s, &t), -1, "parse \"%s\"", s);
    cr_assert_eq(t, 0, "failure leaves 0");
}

Test(httpdate, parse_rfc1123)
{
    cr_assert_eq(parse_ok("Fri, 01 Jan 2021 00:00:00 GMT"), 1609459200);
    cr_assert_eq(parse_ok("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
}

Test(httpdate, parse_waitress_examples)
{
    cr_assert_eq(parse_ok("Tuesday, 08-Feb-94 14:15:29 GMT"), 760716929);
    cr_assert_eq(parse_ok("Sun, 08 Feb 1994 14:15:29 GMT"), 760716929);
}

Test(httpdate, parse_rfc850_two_digit_year_is_19xx)
{
    cr_assert_eq(parse_ok("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    cr_assert_eq(parse_ok("Sunday, 06-Nov-1994 08:49:37 GMT"), 784111777);
}

Test(httpdate, parse_rfc850_other_year_lengths_are_literal)
{
    /* Only exactly two digits get 1900 added (waitress unpack_rfc850). */
    cr_assert_eq(parse_ok("Sunday, 06-Nov-4 08:49:37 GMT"), -62014173023LL);
    cr_assert_eq(parse_ok("Sunday, 06-Nov-194 08:49:37 GMT"),
                 -56018358623LL);
}

Test(httpdate, parse_rfc1123_short_year_is_literal)
{
    cr_assert_eq(parse_ok("Sun, 06 Nov 94 08:49:37 GMT"), -59174032223LL);
}

Test(httpdate, parse_asctime)
{
    cr_assert_eq(parse_ok("Sun Nov  6 08:49:37 1994"), 784111777);
    cr_assert_eq(parse_ok("Sun Nov 06 08:49:37 1994"), 784111777);
    cr_assert_eq(parse_ok("Wed Nov 16 08:49:37 1994"),
                 784111777 + 10 * 86400);
}

Test(httpdate, parse_asctime_rejects_loose_day)
{
    parse_bad("Sun Nov 6 08:49:37 1994");
    parse_bad("Sun Nov   6 08:49:37 1994");
    parse_bad("Sun Nov  6 08:49:37 94");
    parse_bad("Sun Nov  6 08:49:37 1994 GMT");
}

Test(httpdate, parse_is_case_insensitive)
{
    cr_assert_eq(parse_ok("sun, 6 nov 1994 08:49:37 gmt"), 784111777);
    cr_assert_eq(parse_ok("SUNDAY, 06-NOV-94 08:49:37 GMT"), 784111777);
    cr_assert_eq(parse_ok("sUN nOV  6 08:49:37 1994"), 784111777);
}

Test(httpdate, parse_single_digit_day)
{
    cr_assert_eq(parse_ok("Sun, 6 Nov 1994 08:49:37 GMT"), 784111777);
    cr_assert_eq(parse_ok("Sunday, 6-Nov-94 08:49:37 GMT"), 784111777);
}

Test(httpdate, parse_weekday_not_checked)
{
    cr_assert_eq(parse_ok("Mon, 06 Nov 1994 08:49:37 GMT"), 784111777);
}

Test(httpdate, parse_rolls_over_like_timegm)
{
    /* 31 Feb 1994 is 3 Mar 1994. */
    cr_assert_eq(parse_ok("Sun, 31 Feb 1994 08:49:37 GMT"), 762684577);
    cr_assert_eq(parse_ok("Thu, 03 Mar 1994 08:49:37 GMT"), 762684577);
    cr_assert_eq(parse_ok("Sat, 01 Jan 2000 99:99:99 GMT"), 947047239);
    cr_assert_eq(parse_ok("Sat, 00 Jan 2000 00:00:00 GMT"),
                 946684800 - 86400);
}

Test(httpdate, parse_epoch_is_success)
{
    cr_assert_eq(parse_ok("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
}

Test(httpdate, parse_garbage_fails)
{
    parse_bad("garbage");
    parse_bad("");
}

Test(httpdate, parse_null_fails)
{
    time_t t = 5;

    cr_assert_eq(wd_http_date_parse(NULL, &t), -1);
    cr_assert_eq(t, 0);
}

Test(httpdate, parse_requires_exact_match)
{
    parse_bad(" Sun, 06 Nov 1994 08:49:37 GMT");
    parse_bad("Sun, 06 Nov 1994 08:49:37 GMT ");
    parse_bad("Sun, 06 Nov 1994 08:49:37 GMTX");
    parse_bad("Sun,  06 Nov 1994 08:49:37 GMT");
    parse_bad("Sun, 06  Nov 1994 08:49:37 GMT");
    parse_bad("Sun 06 Nov 1994 08:49:37 GMT");
}

Test(httpdate, parse_rejects_malformed_fields)
{
    parse_bad("Sun, 006 Nov 1994 08:49:37 GMT");
    parse_bad("Sun, 06 Nov 1994 8:49:37 GMT");
    parse_bad("Sun, 06 Nov 1994 08:49 GMT");
    parse_bad("Sun, 06 Nov 1994 08:49:37 UTC");
    parse_bad("Sun, 06 November 1994 08:49:37 GMT");
    parse_bad("Sun, 06 Nox 1994 08:49:37 GMT");
    parse_bad("Sunday, 06 Nov 1994 08:49:37 GMT");
    parse_bad("Sun, 06-Nov-94 08:49:37 GMT");
    parse_bad("Sunday, 06-Nov- 08:49:37 GMT");
    parse_bad("Funday, 06-Nov-94 08:49:37 GMT");
    parse_bad("Sun, 06 Nov -1994 08:49:37 GMT");
    parse_bad("Sun, 06 Nov 1994 08:49:3a GMT");
}

Test(httpdate, parse_rejects_year_outside_python_range)
{
    parse_bad("Sun, 06 Nov 0 08:49:37 GMT");
    parse_bad("Sun, 06 Nov 10000 08:49:37 GMT");
    parse_bad("Sun, 06 Nov 99999999999999999999999999 08:49:37 GMT");
}

Test(httpdate, parse_prefixes_do_not_overread)
{
    static const char full[] = "Sunday, 06-Nov-94 08:49:37 GMT";
    long pagesz = sysconf(_SC_PAGESIZE);
    char *pages = mmap(NULL, (size_t)pagesz * 2, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    time_t t;

    cr_assert_neq(pages, MAP_FAILED);
    cr_assert_eq(mprotect(pages + pagesz, (size_t)pagesz, PROT_NONE), 0);
    /* Every prefix, NUL-terminated right before the guard page. */
    for (size_t n = 0; n < sizeof full - 1; n++) {
        char *s = pages + pagesz - n - 1;

        memcpy(s, full, n);
        s[n] = '\0';
        cr_assert_eq(wd_http_date_parse(s, &t), -1, "prefix %zu", n);
    }
}

Test(httpdate, roundtrip)
{
    time_t samples[] = {0, 1, 784111777, 951782400 /* 29 Feb 2000 */,
                        1700000000, 4102444799 /* 31 Dec 2099 */};

    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char out[WD_HTTP_DATE_LEN + 1];

        wd_http_date_build(samples[i], out);
        cr_assert_eq(parse_ok(out), samples[i], "%s", out);
    }
}
