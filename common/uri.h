/*
 * uri.h - request-target splitting and percent decoding (SPEC.md 6.4).
 *
 * Reproduces waitress's split_uri(): a target starting with "//" is cut at
 * '#' and '?' only; any other target goes through the rules of Python's
 * urllib.parse.urlsplit (CPython 3.11 with the bracketed-host checks),
 * which waitress calls.  Pure functions, any thread, no allocation.
 */
#ifndef WD_COMMON_URI_H
#define WD_COMMON_URI_H

#include <stddef.h>

/* Results of wd_http_split_uri. */
#define WD_URI_OK 0
#define WD_URI_BAD (-1)     /* a byte >= 0x80: 400 "Bad URI" */
#define WD_URI_INVALID (-3) /* urlsplit raised ValueError: close silently */

/* Spans of the split target; each points into the caller's SCRATCH. */
struct wd_uri_parts {
    const char *scheme; /* lowercased; "" when none */
    size_t scheme_len;
    const char *netloc;
    size_t netloc_len;
    const char *path; /* still percent-encoded */
    size_t path_len;
    const char *query;
    size_t query_len;
    const char *fragment;
    size_t fragment_len;
};

/*
 * Split URI (LEN bytes, any content) into OUT.  SCRATCH must hold LEN
 * bytes; the parts point into it.  Returns WD_URI_OK, WD_URI_BAD or
 * WD_URI_INVALID (an authority with unbalanced or malformed brackets).
 */
int wd_http_split_uri(const char *uri, size_t len, char *scratch,
                      struct wd_uri_parts *out);

/*
 * Percent-decode IN into OUT (which holds LEN bytes and may be IN itself):
 * "%XX" with two hex digits becomes that byte, anything else (a lone '%',
 * "%ZZ") is copied as is; '+' stays '+'.  Returns the output length.
 */
size_t wd_http_unquote(const char *in, size_t len, char *out);

/*
 * Python's urlsplit bracket check of an authority that holds both '[' and
 * ']' (ipaddress rules: an IPv6 address, optional "%scope", or IPvFuture
 * "vHEX.x").  1 when valid, 0 when urlsplit would raise.
 */
int wd_http_bracketed_netloc_valid(const char *netloc, size_t len);

#endif
