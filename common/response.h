/*
 * response.h - HTTP response framing for WSGI responses (SPEC.md 12.3-12.6).
 *
 * Pure C, no I/O, no Python: the WSGI bridge validates what the app gave
 * start_response, encodes the status and headers to latin-1 bytes, and
 * hands them here.  This module decides the framing (Content-Length,
 * chunked, Connection), assembles the sorted header block with Date,
 * Server and Via, and plans each body emission (Content-Length cut,
 * chunk framing, statuses without a body).  Callers log the warnings it
 * reports (helpers report, callers log).
 *
 * One struct wd_response per response; any thread, not shared.
 */
#ifndef WD_COMMON_RESPONSE_H
#define WD_COMMON_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One app header, latin-1 bytes (not NUL-terminated). */
struct wd_resp_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Warnings reported by wd_response_body (each at most once per response). */
#define WD_RESP_WARN_EXCESS 0x01 /* content exceeded Content-Length */
#define WD_RESP_WARN_NOBODY 0x02 /* content ignored: status has no body */

struct wd_response {
    /* inputs, set by wd_response_init */
    int http11;             /* response version 1.1 (else 1.0) */
    const char *connection; /* request Connection value (borrowed) or NULL */
    size_t connection_len;
    const char *ident; /* Server header value; NULL: none (borrowed) */
    time_t start;      /* Date header */

    /* remembered Content-Length (start_response, first item, file size) */
    int has_cl;
    int64_t cl;

    /* decided by wd_response_head */
    int wrote_header;
    int has_body; /* status allows a body */
    int chunked;  /* chunked framing */

    /* close the connection after this response */
    int close;
    int close_header; /* a "Connection: close" is (to be) in the head */

    uint64_t written;    /* bytes counted toward the Content-Length */
    uint64_t body_bytes; /* body bytes sent (access log) */
    unsigned warned;     /* WD_RESP_WARN_* already reported */
};

/* Start a response.  CONNECTION is the raw request header value or NULL. */
void wd_response_init(struct wd_response *r, int http11,
                      const char *connection, size_t connection_len,
                      const char *ident, time_t start);

/*
 * Nonzero when STATUS allows a body: it does not begin with "1", "204"
 * or "304" (a prefix test on the string, SPEC.md 12.6).
 */
int wd_response_status_has_body(const char *status, size_t len);

/* Nonzero when NAME (any case) is a hop-by-hop header (SPEC.md 12.1). */
int wd_response_is_hop_by_hop(const char *name, size_t len);

/* Nonzero when NAME equals LOWER (already lowercase) ignoring ASCII case. */
int wd_response_name_is(const char *name, size_t len, const char *lower);

/* wd_response_name_is against a string literal LIT: a name of another
 * length is not walked (every header an app sends is asked). */
#define WD_RESPONSE_NAME_IS(name, len, lit)                                   \
    ((len) == sizeof(lit) - 1 && wd_response_name_is((name), (len), (lit)))

/*
 * Header-name normalisation in place: every '-'-separated part gets its
 * first ASCII letter uppercased and the rest lowercased ("ETag" -> "Etag",
 * "x-lower" -> "X-Lower").  Bytes >= 0x80 are left alone: the caller
 * normalises non-ASCII names itself (Python str.capitalize semantics).
 */
void wd_response_capitalize(char *name, size_t len);

/*
 * Force a close after this response (too few bytes, stopping worker,
 * TE+CL request...).  Adds "Connection: close" to the head only if the
 * head is not written yet.
 */
void wd_response_set_close(struct wd_response *r);

/*
 * Build the header block (SPEC.md 12.4, 12.5) for STATUS and the app's
 * headers H[0..N): normalised names, app Content-Length dropped for
 * statuses without a body, computed Content-Length, Connection /
 * Transfer-Encoding, Server or Via, Date, all stably sorted by name.
 * Sets wrote_header, has_body, chunked and close.  Returns a malloc'ed
 * block (caller frees) and its length in *LEN, or NULL (ENOMEM).
 */
char *wd_response_head(struct wd_response *r, const char *status,
                       size_t status_len, const struct wd_resp_header *h,
                       size_t n, size_t *len);

/* Chunk-size line: uppercase hex + CRLF; at most 16 + 2 bytes + NUL. */
#define WD_RESP_PREFIX_MAX 24

/* How to send one emission of LEN body bytes (after the head). */
struct wd_body_plan {
    size_t send;                       /* data bytes to send (a prefix) */
    char prefix[WD_RESP_PREFIX_MAX];   /* chunk-size line, or "" */
    size_t prefix_len;
    int suffix;                        /* send "\r\n" after the data */
    unsigned warn;                     /* new WD_RESP_WARN_* to log */
};

/*
 * Plan an emission of LEN > 0 bytes (SPEC.md 12.3): dropped (and counted)
 * for a status without a body, one chunk when chunked, cut at the
 * Content-Length, or sent as is.  Updates the counters.  Call only after
 * wd_response_head.
 */
void wd_response_body(struct wd_response *r, size_t len,
                      struct wd_body_plan *p);

/*
 * End of the app's iterable (SPEC.md 12.2 step 3): when a Content-Length
 * was set, the counted bytes differ from it and the method is not HEAD,
 * force a close and return 1 (the caller logs the "too few bytes"
 * warning with r->written and r->cl).  Else 0.
 */
int wd_response_check_length(struct wd_response *r, int is_head);

/* Terminator to send once the body is done: "0\r\n\r\n" when chunked,
 * else "".  Its length goes to *LEN. */
const char *wd_response_trailer(const struct wd_response *r, size_t *len);

#endif
