/*
 * http_parse.h - incremental HTTP/1.x request parser (SPEC.md 6, 7, 9).
 *
 * Pure C: no sockets, no threads, no Python.  The channel (worker loop)
 * feeds it the bytes it receives, in any split; feeding one byte at a time
 * gives the same result as feeding everything at once.
 *
 * A request ends in one of three ways (state WD_REQ_DONE):
 *   - complete: error_status == 0, empty == 0;
 *   - empty:    only whitespace was received; drop it, send nothing;
 *   - error:    error_status is 400/413/431/500/501 and error_detail the
 *               exact detail text of SPEC.md 14; the connection answers it
 *               (error_http11 picks the version) and then closes.
 *
 * Ownership: everything a request points to belongs to it and is released
 * by wd_http_request_free.  The body (if any) is a wd_buf holding the
 * decoded bytes; it spills to a temp file past limits->inbuf_overflow.
 */
#ifndef WD_COMMON_HTTP_PARSE_H
#define WD_COMMON_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct wd_http_limits {
    /* sizes >= these are an error; as in waitress a negative one refuses
       every head (every body), and the answer names it as it was set */
    int64_t max_header;      /* max_request_header_size */
    int64_t max_body;        /* max_request_body_size */
    uint64_t inbuf_overflow; /* body buffer spill threshold */
};

/*
 * One request header as it reaches the environ: NAME is normalised
 * (ASCII-uppercased, '-' -> '_', e.g. "CONTENT_TYPE"), VALUE is the
 * SP/HT-trimmed value as raw bytes (latin-1 on the Python side), repeated
 * headers already joined with ", ".  Both are NUL-terminated as well.
 */
struct wd_header {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
};

enum wd_req_state {
    WD_REQ_HEAD = 0, /* waiting for the end of the header block */
    WD_REQ_BODY,     /* header block parsed, body being received */
    WD_REQ_DONE,     /* complete, empty or error: see above */
};

struct wd_http_request {
    enum wd_req_state state;
    int empty;

    /* error */
    int error_status;   /* 0 when none */
    char *error_detail; /* exact SPEC.md detail text (UTF-8) */
    size_t error_detail_len; /* it may hold a NUL copied from a header */
    int error_http11;   /* answer the error with HTTP/1.1 */
    /*
     * Close the connection at once, sending nothing: the target's
     * authority has brackets Python's urlsplit rejects (waitress lets
     * that ValueError escape and drops the connection).  error_status is
     * also set (400) so a caller that ignores this flag still fails safe.
     */
    int drop_connection;

    /* request line (valid once state >= WD_REQ_BODY) */
    char *request_line; /* raw, for the access log */
    size_t request_line_len;
    char *method;
    char *target; /* raw request target, REQUEST_URI */
    size_t target_len;
    char *path; /* percent-decoded path bytes (may hold NUL) */
    size_t path_len;
    char *query; /* raw query, "" when none */
    size_t query_len;
    int version_major; /* -1 when the request line had no version */
    int version_minor;
    int http11; /* response version: 1 for HTTP/1.1, else 1.0 */

    /* headers, in first-appearance order; Transfer-Encoding removed */
    struct wd_header *headers;
    size_t nheaders;
    const char *connection; /* CONNECTION value or NULL (borrowed) */

    int expect_continue; /* HTTP/1.1 and Expect: 100-continue */
    int body_expected;   /* CL > 0 or chunked: 100 Continue may be sent */
    int chunked;
    int close_after; /* Transfer-Encoding with Content-Length: close */
    uint64_t content_length; /* declared (CL) or decoded (chunked) */
    struct wd_buf *body;     /* NULL when there is no body */

    /* parser internals; not for callers */
    struct wd_http_parser_priv *priv;
};

struct wd_http_request *wd_http_request_new(void);
void wd_http_request_free(struct wd_http_request *r); /* NULL is fine */

/*
 * Feed LEN bytes (one read: SPEC.md 5.1 feeds everything a recv returned
 * at once).  Returns how many were consumed (the rest belongs to the next
 * request), or -1 on allocation failure (or a body temp-file error).  When
 * the return is less than LEN the request is in state WD_REQ_DONE.  Once
 * DONE, further calls consume nothing.  The header block and the body are
 * parsed in the same call, so a request may go from HEAD to DONE at once.
 *
 * After an error the count is only informative (the connection closes and
 * the rest is discarded).  One outcome depends on how the bytes were cut
 * into reads, as in waitress: when a chunked-body error is found, the rest
 * of that same read still counts towards the raw-byte limit, which may
 * turn the error into a 413 (SPEC.md 7).  Everything else is the same for
 * any split of the input.
 *
 * LIM is borrowed for the call.  Loop thread.
 */
ssize_t wd_http_request_feed(struct wd_http_request *r, const char *data,
                             size_t len, const struct wd_http_limits *lim);

/*
 * Where the next LEN bytes received can go straight into R's body, saving
 * the copy out of the caller's receive buffer: only while a Content-Length
 * body still wants at least LEN bytes, so that whatever one recv(LEN)
 * returns is body and nothing else, and only while the body stays in
 * memory.  NULL otherwise: receive into your own buffer and feed it.
 * wd_http_request_body_commit then counts the N bytes received there
 * exactly as wd_http_request_feed would have.  Loop thread.
 */
char *wd_http_request_body_room(struct wd_http_request *r, size_t len);
void wd_http_request_body_commit(struct wd_http_request *r, size_t n);

/* Header value by normalised NAME, or NULL.  *LEN gets its length. */
const char *wd_http_request_header(const struct wd_http_request *r,
                                   const char *name, size_t *len);

/*
 * SPEC.md 9: nonzero when the header block is parsed, the request is
 * HTTP/1.1 with "Expect: 100-continue", a body is expected and the head
 * had no error.  The channel then sends "HTTP/1.1 100 Continue\r\n\r\n"
 * (at most once, and only when no earlier request is pending).  This may
 * already hold when the body arrived in the same read (state DONE), even
 * when the body failed (400/413): waitress sends the 100 then too.
 */
int wd_http_request_wants_continue(const struct wd_http_request *r);

/* --- SPEC.md 18 helpers (pure, any thread) ----------------------------- */

/* The request line split as waitress's crack_first_line does. */
struct wd_http_first_line {
    const char *method; /* all three point into the line */
    size_t method_len;
    const char *uri;
    size_t uri_len;
    const char *version; /* "d.d", or empty when the line had none */
    size_t version_len;
};

#define WD_FL_OK 0
#define WD_FL_NOMATCH (-1)    /* "Start line is invalid"; OUT all empty */
#define WD_FL_BAD_METHOD (-3) /* a lowercase letter: "Malformed HTTP method" */

/*
 * LINE must fully match METHOD SP TARGET [SP "HTTP/" DIGIT "." DIGIT]
 * (METHOD = 1*tchar, TARGET = 1*(any byte but SP)).  Returns WD_FL_OK,
 * WD_FL_NOMATCH (OUT is the empty triple) or WD_FL_BAD_METHOD (OUT filled).
 */
int wd_http_crack_first_line(const char *line, size_t len,
                             struct wd_http_first_line *out);

/*
 * SPEC.md 6.2 header-line syntax, in linear time: 1*tchar ":" then only
 * SP, HT, VCHAR or obs-text.  On success returns 1, stores the name length
 * and the SP/HT-trimmed value span (offset into LINE, length).  0 when the
 * line is invalid ("Invalid header").
 */
int wd_http_header_line_valid(const char *line, size_t len, size_t *name_len,
                              size_t *value_off, size_t *value_len);

/* tchar of RFC 9110 (table lookup). */
int wd_http_is_tchar(unsigned char c);

#endif
