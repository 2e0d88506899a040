/*
 * chunked.h - incremental decoder for chunked request bodies (SPEC.md 7).
 *
 * A streaming state machine: the size line, its extensions, the CRLF
 * after each chunk and the trailer are validated byte by byte as they
 * arrive, so nothing but the chunk data is ever buffered and a split at
 * any byte gives the same result.  The decoded bytes are appended to a
 * wd_buf.  The raw-byte limit of SPEC.md 7 is the caller's business (it
 * caps LEN); this module only decodes.
 *
 * Pure apart from wd_buf_append; not thread safe (one decoder per request,
 * fed by the worker loop).
 */
#ifndef WD_COMMON_CHUNKED_H
#define WD_COMMON_CHUNKED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

enum wd_chunked_state {
    WD_CHUNKED_SIZE = 0, /* in a size line (or a skipped blank line) */
    WD_CHUNKED_DATA,     /* copying chunk data */
    WD_CHUNKED_DATA_CRLF, /* expecting the CRLF after the data */
    WD_CHUNKED_TRAILER,  /* after the last chunk, up to CRLF CRLF */
    WD_CHUNKED_DONE,     /* body complete */
    WD_CHUNKED_ERROR,    /* see `error` */
};

/* Detail texts (SPEC.md 14) of the three decoding errors. */
extern const char wd_chunked_err_ext[];  /* "Invalid chunk extension" */
extern const char wd_chunked_err_size[]; /* "Invalid chunk size" */
extern const char wd_chunked_err_crlf[]; /* "Chunk not properly terminated" */

struct wd_chunked {
    enum wd_chunked_state state;
    const char *error;   /* one of the wd_chunked_err_* when state is ERROR */
    uint64_t decoded;    /* data bytes appended so far */
    uint64_t remain;     /* data bytes left in the current chunk */
    /* size-line scanner */
    uint64_t size;       /* saturates at UINT64_MAX */
    size_t line_len;     /* bytes of the current line, CR LF excluded */
    unsigned char hex;   /* hex-part state */
    unsigned char ext;   /* extension-part state */
    unsigned char in_ext;
    unsigned char cr;    /* a CR is pending (maybe the line end) */
    /* data CRLF */
    unsigned char crlf_n;
    unsigned char crlf0, crlf1; /* the two bytes seen after the data */
    /* trailer */
    unsigned char tmatch; /* bytes of "\r\n\r\n" matched */
    uint64_t trailer_len;
};

/* Start a decoder (caller's storage; nothing to clean up). */
void wd_chunked_init(struct wd_chunked *c);

/*
 * Decode up to LEN bytes, appending chunk data to OUT.  Returns the bytes
 * consumed: all of LEN unless the decoder reached DONE or ERROR, in which
 * case it stops just after the byte that decided it.  -1 when
 * wd_buf_append fails (errno set); the decoder and OUT are then of no
 * further use (decoded data is gathered before it is appended, so its
 * counters may be ahead of OUT).  Feeding a finished decoder consumes 0.
 */
ssize_t wd_chunked_feed(struct wd_chunked *c, const char *data, size_t len,
                        struct wd_buf *out);

/*
 * SPEC.md 18 validators, on a whole value.  The size is 1*HEXDIG (an
 * overflow saturates at UINT64_MAX); the extension text starts at the
 * first ';' and must match *( ";" token [ "=" ( token / quoted-string ) ] )
 * with no whitespace outside quoted strings.  Like waitress's regexes (a
 * Python '$' also matches before a final newline), one trailing LF is
 * tolerated after either part.  1 when valid, 0 when not.
 */
int wd_chunk_size_valid(const char *s, size_t len, uint64_t *size);
int wd_chunk_ext_valid(const char *s, size_t len);

#endif
