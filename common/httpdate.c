/*
 * httpdate.c - build and parse HTTP dates (SPEC.md 18).
 *
 * Building always gives the RFC 1123 form in UTC.  Parsing accepts the
 * three forms of RFC 9110 section 5.6.7 (waitress itself only parses the
 * first two; SPEC.md asks for all three), ASCII case-insensitively, with
 * nothing before or after.  Field values are not range-checked: they roll
 * over arithmetically like timegm(3), so "31 Feb" is 3 March.  The weekday
 * name must be a real one but is not compared with the date.
 *
 * Pure functions, no locale, no static state: any thread.
 */
#include "httpdate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const wkday_short[7] = {"Sun", "Mon", "Tue", "Wed",
                                           "Thu", "Fri", "Sat"};
/* Lowercase tables for parsing (the input is compared lowercased). */
static const char *const wkday_low[7] = {"sun", "mon", "tue", "wed",
                                         "thu", "fri", "sat"};
static const char *const month_low[12] = {"jan", "feb", "mar", "apr",
                                          "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"};
static const char *const wkday_long[7] = {"sunday",   "monday", "tuesday",
                                          "wednesday", "thursday", "friday",
                                          "saturday"};
static const char *const month_short[12] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};

/* Python's calendar.timegm goes through datetime, which stops at 9999. */
#define MAX_YEAR 9999

void
wd_http_date_build(time_t t, char out[WD_HTTP_DATE_LEN + 1])
{
    struct tm tm;
    char tmp[64];

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > MAX_YEAR ||
        tm.tm_year + 1900 < 0) {
        /* Not representable in 29 bytes: say the epoch, not garbage. */
        t = 0;
        gmtime_r(&t, &tm);
    }
    /* Via a roomier buffer: gcc cannot see that the fields are bounded. */
    snprintf(tmp, sizeof tmp, "%s, %02d %s %4d %02d:%02d:%02d GMT",
             wkday_short[tm.tm_wday], tm.tm_mday, month_short[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, WD_HTTP_DATE_LEN);
    out[WD_HTTP_DATE_LEN] = '\0';
}

/* A cursor over the lowercased input; every matcher advances on success. */
struct scan {
    const char *p;
};

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Match the literal WORD (lowercase) case-insensitively. */
static int
match_word(struct scan *s, const char *word)
{
    size_t i;

    for (i = 0; word[i] != '\0'; i++)
        if (lower((unsigned char)s->p[i]) != word[i])
            return 0;
    s->p += i;
    return 1;
}

/* One of the lowercase NAMES; index or -1. */
static int
match_name(struct scan *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (match_word(s, names[i]))
            return i;
    return -1;
}

/* Between MIN and MAX digits; value in *V (saturating), count or 0. */
static int
match_digits(struct scan *s, int min, int max, int64_t *v)
{
    int n = 0;

    *v = 0;
    while (n < max && is_digit(s->p[n])) {
        if (*v < INT64_MAX / 100)
            *v = *v * 10 + (s->p[n] - '0');
        n++;
    }
    if (n < min)
        return 0;
    s->p += n;
    return n;
}

/* "HH:MM:SS", two digits each. */
static int
match_hms(struct scan *s, int64_t hms[3])
{
    for (int i = 0; i < 3; i++) {
        if (i > 0 && !match_word(s, ":"))
            return 0;
        if (!match_digits(s, 2, 2, &hms[i]))
            return 0;
    }
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* timegm with rollover of day/time fields; -1 when out of range. */
static int
to_time(int64_t year, int mon, int64_t day, const int64_t hms[3], time_t *t)
{
    int64_t secs;

    if (year < 1 || year > MAX_YEAR)
        return -1;
    /* day <= 99 and the clock fields <= 99: no overflow possible here. */
    secs = (days_from_civil(year, mon, 1) + day - 1) * 86400 +
           hms[0] * 3600 + hms[1] * 60 + hms[2];
    if ((int64_t)(time_t)secs != secs)
        return -1;
    *t = (time_t)secs;
    return 0;
}

/* "sun, 06 nov 1994 08:49:37 gmt" */
static int
parse_rfc1123(const char *str, time_t *t)
{
    struct scan s = {str};
    int64_t day, year, hms[3];
    int mon;

    if (match_name(&s, wkday_low, 7) < 0 || !match_word(&s, ", ") ||
        !match_digits(&s, 1, 2, &day) || !match_word(&s, " ") ||
        (mon = match_name(&s, month_low, 12)) < 0 ||
        !match_word(&s, " ") || !match_digits(&s, 1, 64, &year) ||
        !match_word(&s, " ") || !match_hms(&s, hms) ||
        !match_word(&s, " gmt") || *s.p != '\0')
        return -1;
    return to_time(year, mon + 1, day, hms, t);
}

/* "sunday, 06-nov-94 08:49:37 gmt"; a two-digit year is 19YY. */
static int
parse_rfc850(const char *str, time_t *t)
{
    struct scan s = {str};
    int64_t day, year, hms[3];
    int mon, ydigits;

    if (match_name(&s, wkday_long, 7) < 0 || !match_word(&s, ", ") ||
        !match_digits(&s, 1, 2, &day) || !match_word(&s, "-") ||
        (mon = match_name(&s, month_low, 12)) < 0 ||
        !match_word(&s, "-") ||
        (ydigits = match_digits(&s, 1, 64, &year)) == 0 ||
        !match_word(&s, " ") || !match_hms(&s, hms) ||
        !match_word(&s, " gmt") || *s.p != '\0')
        return -1;
    if (ydigits == 2)
        year += 1900;
    return to_time(year, mon + 1, day, hms, t);
}

/* "sun nov  6 08:49:37 1994": day is " D" or "DD" (RFC 9110 date3). */
static int
parse_asctime(const char *str, time_t *t)
{
    struct scan s = {str};
    int64_t day, year, hms[3];
    int mon;

    if (match_name(&s, wkday_low, 7) < 0 || !match_word(&s, " ") ||
        (mon = match_name(&s, month_low, 12)) < 0 ||
        !match_word(&s, " "))
        return -1;
    if (*s.p == ' ') {
        s.p++;
        if (!match_digits(&s, 1, 1, &day))
            return -1;
    } else if (!match_digits(&s, 2, 2, &day)) {
        return -1;
    }
    if (!match_word(&s, " ") || !match_hms(&s, hms) || !match_word(&s, " ") ||
        !match_digits(&s, 4, 4, &year) || *s.p != '\0')
        return -1;
    return to_time(year, mon + 1, day, hms, t);
}

int
wd_http_date_parse(const char *s, time_t *t)
{
    *t = 0;
    if (s == NULL)
        return -1;
    if (parse_rfc850(s, t) == 0 || parse_rfc1123(s, t) == 0 ||
        parse_asctime(s, t) == 0)
        return 0;
    *t = 0;
    return -1;
}
