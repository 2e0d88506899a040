/*
 * httpdate.h - HTTP dates (SPEC.md 18).  Pure; any thread.
 */
#ifndef WD_COMMON_HTTPDATE_H
#define WD_COMMON_HTTPDATE_H

#include <time.h>

#define WD_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Write the RFC 1123 form of T (UTC) into OUT, NUL-terminated. */
void wd_http_date_build(time_t t, char out[WD_HTTP_DATE_LEN + 1]);

/*
 * Parse S (RFC 1123, RFC 850 or asctime form, case-insensitive, nothing
 * around it).  Returns 0 and sets *T, or -1 (and *T = 0) when S matches
 * none of them.
 */
int wd_http_date_parse(const char *s, time_t *t);

#endif
