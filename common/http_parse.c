/*
 * http_parse.c - incremental HTTP/1.x request parser (see http_parse.h).
 *
 * Callers: the worker loop (channel), one request object per request; the
 * fuzzers and unit tests.  Pure C, no I/O apart from the body wd_buf; any
 * thread, one request per thread at a time.
 *
 * DESIGN
 *   Header block.  Bytes are searched for CRLF CRLF where they arrive: a
 *   request whose block comes in one read is parsed straight from the
 *   caller's bytes; otherwise the block is gathered in priv->blk and only
 *   the new bytes (plus the three before them) are searched, so a slow
 *   client never causes a rescan.  The size limit is checked against the
 *   bytes of this request so far, so blk never grows past it.
 *
 *   Parsing the block runs in waitress's order, because the first
 *   failure decides the status and text (SPEC.md 6.5 "order of checks"):
 *     1. request line up to the first CRLF, bare CR/LF in it;
 *     2. pass 1 over the physical header lines: bare CR/LF, misplaced
 *        continuation lines (waitress splits all lines before it looks
 *        at any of them, so these win over syntax errors further up);
 *     3. pass 2 over logical lines: syntax, underscore drop, duplicates;
 *     4. request-line syntax and method case; 5. target; 6. framing.
 *   Everything the request keeps is copied into one arena allocated
 *   after pass 1, when the number of logical lines is known: the header
 *   array, a small hash table (so thousands of repeated headers stay
 *   linear), and every string.  Repeated headers are joined in pass 3,
 *   after pass 2 has summed their lengths, so joining is linear too.
 *
 *   Body.  A Content-Length body is appended to a wd_buf; a chunked one
 *   goes through the streaming decoder of chunked.c, capped so that the
 *   raw chunked bytes never pass the body limit (SPEC.md 7 quirk).
 *
 *   Every decision is taken at a fixed byte of the stream, never at a read
 *   boundary, so any split of the input gives the same result -- except
 *   the waitress quirk of error_read_tail (a chunk error followed, in the
 *   same read, by enough bytes to pass the body limit is a 413).
 *
 *   Speed: the loops over every header byte (finding CR/LF, checking
 *   values, normalising names) go 8 bytes at a time; a 600-byte browser
 *   GET costs two allocations (request, arena) and about 0.5 us
 *   (scripts/bench-parser).
 */
#include "http_parse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chunked.h"
#include "uri.h"
#include "wd.h"

/* Byte classes. */
#define C_TCHAR 0x01
#define C_VBAD 0x02 /* not allowed in a header value: CTL but HT, DEL */
#define C_UPPER 0x04
#define C_LOWER 0x08
#define C_LSTRIP 0x10 /* SP HT LF VT FF CR: stripped around the block */
#define C_USCORE 0x20 /* '_': such headers are dropped */

static const unsigned char cls[256] = {
    [0x00 ... 0x08] = C_VBAD,
    ['\t'] = C_LSTRIP,
    ['\n'] = C_VBAD | C_LSTRIP,
    [0x0b ... 0x0c] = C_VBAD | C_LSTRIP,
    ['\r'] = C_VBAD | C_LSTRIP,
    [0x0e ... 0x1f] = C_VBAD,
    [' '] = C_LSTRIP,
    ['!'] = C_TCHAR,
    ['#'] = C_TCHAR,
    ['$'] = C_TCHAR,
    ['%'] = C_TCHAR,
    ['&'] = C_TCHAR,
    ['\''] = C_TCHAR,
    ['*'] = C_TCHAR,
    ['+'] = C_TCHAR,
    ['-'] = C_TCHAR,
    ['.'] = C_TCHAR,
    ['0' ... '9'] = C_TCHAR,
    ['A' ... 'Z'] = C_TCHAR | C_UPPER,
    ['^'] = C_TCHAR,
    ['_'] = C_TCHAR | C_USCORE,
    ['`'] = C_TCHAR,
    ['a' ... 'z'] = C_TCHAR | C_LOWER,
    ['|'] = C_TCHAR,
    ['~'] = C_TCHAR,
    [0x7f] = C_VBAD,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

/* One logical header line kept by pass 2. */
struct line_rec {
    const char *value; /* trimmed value (block or fold scratch) */
    size_t value_len;
    uint32_t header; /* index into r->headers */
};

struct wd_http_parser_priv {
    char *blk; /* header bytes so far, when the block is split */
    size_t blk_len;
    size_t blk_cap;
    char *arena; /* everything the parsed request points to */
    char *cl_name;  /* room for "CONTENT_LENGTH" (chunked) */
    char *cl_value; /* room for its decimal value */
    size_t hdr_cap; /* slots in r->headers */
    uint64_t remain; /* Content-Length bytes still to read */
    uint64_t raw;    /* raw chunked bytes consumed */
    int chunked_started;
    struct wd_chunked ch;
    /* the request line while the block is being parsed, so an error can
     * keep a copy of it for the access log (SPEC.md 16.3) */
    const char *rl;
    size_t rl_len;
    char *rl_copy;
};

/* The request and its private part in one allocation. */
struct request_box {
    struct wd_http_request r;
    struct wd_http_parser_priv p;
};

int
wd_http_is_tchar(unsigned char c)
{
    return IS(c, C_TCHAR) != 0;
}

struct wd_http_request *
wd_http_request_new(void)
{
    struct request_box *b = calloc(1, sizeof *b);

    if (b == NULL)
        return NULL;
    b->r.priv = &b->p;
    b->r.version_major = -1;
    b->r.version_minor = -1;
    return &b->r;
}

void
wd_http_request_free(struct wd_http_request *r)
{
    if (r == NULL)
        return;
    free(r->priv->blk);
    free(r->priv->arena);
    free(r->priv->rl_copy);
    free(r->error_detail);
    wd_buf_free(r->body);
    free((struct request_box *)r);
}

/* --- errors ------------------------------------------------------------ */

/* Finish R with an error.  DETAIL is DLEN bytes of UTF-8.  0 or -1. */
static int
fail(struct wd_http_request *r, int status, const char *detail, size_t dlen,
     int http11)
{
    struct wd_http_parser_priv *pv = r->priv;
    char *d = malloc(dlen + 1);

    if (d == NULL)
        return -1;
    memcpy(d, detail, dlen);
    d[dlen] = '\0';
    if (r->request_line == NULL && pv->rl != NULL &&
        (pv->rl_copy = malloc(pv->rl_len + 1)) != NULL) {
        memcpy(pv->rl_copy, pv->rl, pv->rl_len);
        pv->rl_copy[pv->rl_len] = '\0';
        r->request_line = pv->rl_copy;
        r->request_line_len = pv->rl_len;
    }
    free(r->error_detail);
    r->error_detail = d;
    r->error_detail_len = dlen;
    r->error_status = status;
    r->error_http11 = http11;
    r->state = WD_REQ_DONE;
    return 0;
}

static int
fail_str(struct wd_http_request *r, int status, const char *detail,
         int http11)
{
    return fail(r, status, detail, strlen(detail), http11);
}

/*
 * PREFIX + TEXT + SUFFIX, TEXT being latin-1 bytes from the wire, so its
 * bytes >= 0x80 become two UTF-8 bytes (the body of the error page is
 * UTF-8, as waitress encodes it).
 */
static int
fail_text(struct wd_http_request *r, int status, int http11,
          const char *prefix, const char *text, size_t len,
          const char *suffix)
{
    size_t plen = strlen(prefix), slen = strlen(suffix), n = plen;
    char *d = malloc(plen + 2 * len + slen + 1);
    int rc;

    if (d == NULL)
        return -1;
    memcpy(d, prefix, plen);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c < 0x80) {
            d[n++] = (char)c;
        } else {
            d[n++] = (char)(0xc0 | c >> 6);
            d[n++] = (char)(0x80 | (c & 0x3f));
        }
    }
    memcpy(d + n, suffix, slen);
    n += slen;
    rc = fail(r, status, d, n, http11);
    free(d);
    return rc;
}

static int
fail_limit(struct wd_http_request *r, int status, const char *what,
           int64_t limit, int http11)
{
    char d[64];
    int n = snprintf(d, sizeof d, "exceeds %s of %" PRId64, what, limit);

    return fail(r, status, d, (size_t)n, http11);
}

/* --- small helpers ----------------------------------------------------- */

/* A limit as the sizes compared with it (>=): negative ones refuse all. */
static uint64_t
limit_of(int64_t v)
{
    return v < 0 ? 0 : (uint64_t)v;
}

/*
 * Word-at-a-time scanning (8 bytes per step) for the loops that run over
 * every header byte.  haszero() is exact about the lowest matching byte,
 * which is all these scans use; the byte order must be little-endian for
 * that, so other machines take the plain loops.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WD_SWAR 1
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t
load64(const char *p)
{
    uint64_t x;

    memcpy(&x, p, 8);
    return x;
}

/* High bit set in each byte of X that is zero (exact for the lowest). */
static inline uint64_t
haszero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

/* High bit set for bytes < N (N <= 128; exact for the lowest). */
static inline uint64_t
hasless(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}
#endif

/* First CR or LF in [P, END), or END. */
static inline const char *
find_crlf_byte(const char *p, const char *end)
{
#ifdef WD_SWAR
    while (end - p >= 8) {
        uint64_t x = load64(p);
        uint64_t m = haszero(x ^ (ONES * '\r')) | haszero(x ^ (ONES * '\n'));

        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p != '\r' && *p != '\n')
        p++;
    return p;
}

/*
 * The CRLF that ends the line starting at P (END if none).  *BARE is set
 * when a lone CR or LF comes before it.
 */
static inline const char *
line_end(const char *p, const char *end, int *bare)
{
    *bare = 0;
    for (;;) {
        p = find_crlf_byte(p, end);
        if (p == end || (p[0] == '\r' && p + 1 < end && p[1] == '\n'))
            return p;
        *bare = 1;
        p++;
    }
}

/* Offset just past the first CRLF CRLF in P[0, LEN), or 0. */
static size_t
find_terminator(const char *p, size_t len)
{
    size_t i = 1; /* the LF of a CRLF CRLF: at 1, checked at i-1 .. i+2 */

#ifdef WD_SWAR
    while (i + 2 < len) {
        size_t j;

        if (len - i >= 8) {
            uint64_t m = haszero(load64(p + i) ^ (ONES * '\n'));

            if (m == 0) {
                i += 8;
                continue;
            }
            j = i + (__builtin_ctzll(m) >> 3);
        } else if ((j = i) < len && p[j] != '\n') {
            i++;
            continue;
        }
        if (j + 2 < len && p[j - 1] == '\r' && p[j + 1] == '\r' &&
            p[j + 2] == '\n')
            return j + 3;
        i = j + 1;
    }
#else
    for (; i + 2 < len; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i + 1] == '\r' &&
            p[i + 2] == '\n')
            return i + 3;
#endif
    return 0;
}

/* One step of the seeded hash of header names (8 name bytes in W). */
static inline uint64_t
hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static int
is_singleton(const char *n, size_t len)
{
    return (len == 4 && memcmp(n, "HOST", 4) == 0) ||
           (len == 14 && memcmp(n, "CONTENT_LENGTH", 14) == 0) ||
           (len == 12 && memcmp(n, "CONTENT_TYPE", 12) == 0);
}

static inline void
strip_ws(const char **v, size_t *len)
{
    const char *s = *v;
    size_t n = *len;

    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *v = s;
    *len = n;
}

/* No CTL but HT, no DEL (SPEC.md 6.2 field-vchar / SP / HT). */
static int
value_bytes_valid(const char *s, size_t len)
{
    size_t i = 0;

#ifdef WD_SWAR
    for (; i + 8 <= len; i += 8) {
        uint64_t x = load64(s + i);

        if ((hasless(x, 0x20) | haszero(x ^ (ONES * 0x7f))) != 0)
            for (size_t k = i; k < i + 8; k++)
                if (IS(s[k], C_VBAD))
                    return 0;
    }
#endif
    for (; i < len; i++)
        if (IS(s[i], C_VBAD))
            return 0;
    return 1;
}

int
wd_http_header_line_valid(const char *line, size_t len, size_t *name_len,
                          size_t *value_off, size_t *value_len)
{
    const char *colon = memchr(line, ':', len);
    const char *v;
    size_t n, vlen;

    if (colon == NULL || colon == line)
        return 0;
    n = (size_t)(colon - line);
    for (size_t i = 0; i < n; i++)
        if (!IS(line[i], C_TCHAR))
            return 0;
    v = colon + 1;
    vlen = len - n - 1;
    if (!value_bytes_valid(v, vlen))
        return 0;
    strip_ws(&v, &vlen);
    if (name_len != NULL)
        *name_len = n;
    if (value_off != NULL)
        *value_off = (size_t)(v - line);
    if (value_len != NULL)
        *value_len = vlen;
    return 1;
}

int
wd_http_crack_first_line(const char *line, size_t len,
                         struct wd_http_first_line *out)
{
    size_t m = 0, u, ulen;
    const char *sp;

    memset(out, 0, sizeof *out);
    out->method = out->uri = out->version = line;
    while (m < len && IS(line[m], C_TCHAR))
        m++;
    if (m == 0 || m >= len || line[m] != ' ')
        return WD_FL_NOMATCH;
    u = m + 1;
    sp = memchr(line + u, ' ', len - u);
    ulen = sp ? (size_t)(sp - (line + u)) : len - u;
    if (ulen == 0)
        return WD_FL_NOMATCH;
    if (sp != NULL) {
        const char *v = sp + 1;
        size_t vlen = len - (size_t)(v - line);

        if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' ||
            v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
            return WD_FL_NOMATCH;
        out->version = v + 5;
        out->version_len = 3;
    }
    out->method_len = m;
    out->uri = line + u;
    out->uri_len = ulen;
    for (size_t i = 0; i < m; i++)
        if (IS(line[i], C_LOWER))
            return WD_FL_BAD_METHOD;
    return WD_FL_OK;
}

/* --- the header block -------------------------------------------------- */

struct arena {
    char *p;
};

static char *
arena_copy(struct arena *a, const char *s, size_t len)
{
    char *d = a->p;

    memcpy(d, s, len);
    d[len] = '\0';
    a->p += len + 1;
    return d;
}

static void
remove_header(struct wd_http_request *r, struct wd_header *h)
{
    size_t i = (size_t)(h - r->headers);

    memmove(h, h + 1, (r->nheaders - i - 1) * sizeof *h);
    r->nheaders--;
}

/*
 * Transfer-Encoding of an HTTP/1.1 request: 0 = not chunked, 1 = chunked,
 * -1 = not supported, -2 = chunked more than once.
 */
static int
parse_te(const char *v, size_t len)
{
    size_t i = 0, items = 0, chunked = 0;
    int last_chunked = 0;

    while (i <= len) {
        const char *comma = memchr(v + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - v) : len;
        const char *item = v + i;
        size_t ilen = end - i;

        if (ilen > 0) { /* empty before trimming: skipped */
            strip_ws(&item, &ilen);
            items++;
            last_chunked = ilen == 7 && strncasecmp(item, "chunked", 7) == 0;
            if (!last_chunked)
                return -1;
            chunked++;
        }
        i = end + 1;
    }
    if (items == 0 || !last_chunked)
        return 0;
    return chunked == 1 ? 1 : -2;
}

/* 1*DIGIT, saturating.  0 when invalid. */
static int
parse_cl(const char *v, size_t len, uint64_t *out)
{
    uint64_t n = 0;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)v[i] - '0';

        if (d > 9)
            return 0;
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    *out = n;
    return 1;
}

/*
 * Write the normalised form of the header name P[0, N) to OUT (ASCII
 * uppercase, '-' -> '_'; P holds only tchars) and return its hash.  Eight
 * bytes at a time: OUT needs 7 bytes of slack, and P may be read up to
 * END.
 */
static uint64_t
normalise_name(const char *p, size_t n, const char *end, char *out,
               uint64_t seed)
{
    uint64_t h = seed ^ n;
    size_t i = 0;

#ifdef WD_SWAR
    for (; i < n; i += 8) {
        uint64_t x, lower, y, dash;
        size_t left = n - i;

        if ((size_t)(end - (p + i)) >= 8) {
            x = load64(p + i);
        } else {
            x = 0;
            memcpy(&x, p + i, left < 8 ? left : 8);
        }
        /* a..z: >= 0x61 and not >= 0x7b (tchars are all < 0x80) */
        lower = (x + ONES * (0x80 - 0x61)) & ~(x + ONES * (0x80 - 0x7b)) &
                HIGHS;
        x ^= lower >> 2;
        y = x ^ (ONES * '-'); /* exact zero-byte test */
        dash = ~(((y & ~HIGHS) + ~HIGHS) | y) & HIGHS;
        x ^= (dash >> 7) * ('-' ^ '_');
        memcpy(out + i, &x, 8);
        if (left < 8)
            x &= (1ULL << (8 * left)) - 1;
        h = hash_mix(h, x);
    }
#else
    (void)end;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        out[i] = (char)(IS(c, C_LOWER) ? c - 'a' + 'A' : c == '-' ? '_' : c);
        h = hash_mix(h, (unsigned char)out[i]);
    }
#endif
    return h;
}

/* A physical header line, relative to the start of the header lines. */
struct span {
    size_t off;
    size_t len;
};

#define SMALL_LINES 64

/* Normalised-name lookup; inserts when absent.  Returns the index. */
static size_t
lookup_header(struct wd_http_request *r, uint32_t *table, size_t mask,
              const char *name, size_t len, uint64_t h, int *found)
{
    size_t i;

    for (i = (size_t)h & mask; table[i] != 0; i = (i + 1) & mask) {
        struct wd_header *hd = &r->headers[table[i] - 1];

        if (hd->name_len == len && memcmp(hd->name, name, len) == 0) {
            *found = 1;
            return table[i] - 1;
        }
    }
    *found = 0;
    table[i] = (uint32_t)(r->nheaders + 1);
    return r->nheaders++;
}

/* Index of the headers the framing rules look at, or -1. */
struct special {
    long te, cl, expect, conn;
};

static void
note_special(struct special *sp, const char *n, size_t len, long idx)
{
    switch (len) {
    case 17:
        if (memcmp(n, "TRANSFER_ENCODING", 17) == 0)
            sp->te = idx;
        break;
    case 14:
        if (memcmp(n, "CONTENT_LENGTH", 14) == 0)
            sp->cl = idx;
        break;
    case 6:
        if (memcmp(n, "EXPECT", 6) == 0)
            sp->expect = idx;
        break;
    case 10:
        if (memcmp(n, "CONNECTION", 10) == 0)
            sp->conn = idx;
        break;
    }
}

/*
 * Pass 1 over the physical header lines H[0, HLEN): bare CR/LF and
 * misplaced continuation lines, in line order.  Fills *LINES (growing it
 * past SMALL_LINES on the heap) and counts logical lines and folded bytes.
 * 0 when fine, 1 when R was finished with an error, -1 on allocation
 * failure.
 */
static int
scan_lines(struct wd_http_request *r, const char *h, size_t hlen,
           struct span **lines, size_t *nlines, size_t *nlog, size_t *folded)
{
    const char *p = h, *end = h + hlen;
    size_t cap = SMALL_LINES, base_len = 0;
    int base_folded = 0;

    *nlines = *nlog = *folded = 0;
    while (p < end) {
        int bare;
        const char *q = line_end(p, end, &bare);
        size_t l = (size_t)(q - p);

        if (l > 0) {
            if (bare)
                return fail_text(r, 400, 0,
                                 "Bare CR or LF found in header line \"", p,
                                 l, "\"") ? -1 : 1;
            if (p[0] == ' ' || p[0] == '\t') {
                if (*nlog == 0)
                    return fail_text(r, 400, 0, "Malformed header line \"",
                                     p, l, "\"") ? -1 : 1;
                if (!base_folded) /* its first line is copied too */
                    *folded += base_len;
                base_folded = 1;
                *folded += l;
            } else {
                (*nlog)++;
                base_len = l;
                base_folded = 0;
            }
            if (*nlines == cap) {
                struct span *nl;

                cap *= 2;
                if (cap == 2 * SMALL_LINES) {
                    if ((nl = malloc(cap * sizeof *nl)) != NULL)
                        memcpy(nl, *lines, SMALL_LINES * sizeof *nl);
                } else {
                    nl = realloc(*lines, cap * sizeof *nl);
                }
                if (nl == NULL)
                    return -1;
                *lines = nl;
            }
            (*lines)[*nlines].off = (size_t)(p - h);
            (*lines)[*nlines].len = l;
            (*nlines)++;
        }
        p = q + 2;
    }
    return 0;
}

/*
 * The body of parse_block; *LINES is the caller's (it frees a heap one).
 */
static int
parse_lines(struct wd_http_request *r, const char *blk, size_t n,
            const struct wd_http_limits *lim, struct span **lines)
{
    struct wd_http_parser_priv *pv = r->priv;
    int bare, rc, http11, chunked = 0, found;
    const char *rl_e = line_end(blk, blk + n, &bare);
    size_t rl_len = (size_t)(rl_e - blk);
    const char *h0 = rl_e + 2, *hend = blk + n;
    size_t hlen, nlines, nlog, folded, tsize, nrec = 0, i, arena_size;
    struct line_rec *recs;
    uint32_t *table;
    char *fold;
    uint64_t seed, clen = 0;
    struct arena a;
    struct wd_http_first_line fl;
    struct wd_uri_parts up;
    struct special sp = {-1, -1, -1, -1};
    struct wd_header *te = NULL, *cl = NULL;

    if (rl_e + 2 > hend) /* unreachable: the block ends with CRLF CRLF */
        return fail_str(r, 400, "HTTP message header invalid", 0);
    hlen = (size_t)(hend - h0);
    while (rl_len > 0 && IS(blk[rl_len - 1], C_LSTRIP))
        rl_len--;
    pv->rl = blk;
    pv->rl_len = rl_len;
    if (bare && (memchr(blk, '\r', rl_len) || memchr(blk, '\n', rl_len)))
        return fail_str(r, 400, "Bare CR or LF found in HTTP message", 0);

    /* pass 1: physical lines */
    rc = scan_lines(r, h0, hlen, lines, &nlines, &nlog, &folded);
    if (rc != 0)
        return rc < 0 ? -1 : 0;

    /* the arena: arrays first (aligned), then strings */
    for (tsize = 8; tsize < 2 * nlog; tsize <<= 1)
        ;
    pv->hdr_cap = nlog + 1;
    arena_size = pv->hdr_cap * sizeof(struct wd_header) +
                 nlog * sizeof(struct line_rec) + tsize * sizeof(uint32_t) +
                 5 * rl_len + 6 + hlen + 2 * nlog + folded + 64;
    if ((pv->arena = malloc(arena_size)) == NULL)
        return -1;
    r->headers = (struct wd_header *)pv->arena;
    recs = (struct line_rec *)(r->headers + pv->hdr_cap);
    table = (uint32_t *)(recs + nlog);
    memset(table, 0, tsize * sizeof *table);
    fold = (char *)(table + tsize); /* folded values, FOLDED bytes */
    a.p = fold + folded;
    /* the arena's address varies with ASLR: colliding names are hard to
     * craft from outside */
    seed = (uint64_t)(uintptr_t)pv->arena * 0xff51afd7ed558ccdULL;

    /* pass 2: logical lines */
    for (i = 0; i < nlines;) {
        const char *p = h0 + (*lines)[i].off, *v;
        size_t l = (*lines)[i].len, nlen = 0, vlen, idx;
        int dropped;
        char *name;
        struct wd_header *hd;
        uint64_t h;

        /* the name: up to the first ':', every byte a tchar */
        {
            const char *colon = memchr(p, ':', l);
            unsigned char all = 0xff, any = 0;

            if (colon == NULL || colon == p)
                goto invalid;
            nlen = (size_t)(colon - p);
            for (size_t k = 0; k < nlen; k++) {
                unsigned char c = cls[(unsigned char)p[k]];

                all &= c;
                any |= c;
            }
            if (!(all & C_TCHAR))
                goto invalid;
            dropped = (any & C_USCORE) != 0;
        }
        v = p + nlen + 1;
        vlen = l - nlen - 1;
        i++;
        if (i < nlines && (h0[(*lines)[i].off] == ' ' ||
                           h0[(*lines)[i].off] == '\t')) {
            /* folded: this value, then each continuation line whole */
            char *s2 = fold;

            memcpy(s2, v, vlen);
            while (i < nlines && (h0[(*lines)[i].off] == ' ' ||
                                  h0[(*lines)[i].off] == '\t')) {
                memcpy(s2 + vlen, h0 + (*lines)[i].off, (*lines)[i].len);
                vlen += (*lines)[i].len;
                i++;
            }
            v = s2;
            fold += vlen; /* kept: the record points into it */
        }
        if (!value_bytes_valid(v, vlen))
            goto invalid;
        strip_ws(&v, &vlen);
        if (dropped)
            continue; /* dropped, after validation (SPEC.md 19 item 11) */
        name = a.p;
        h = normalise_name(p, nlen, hend, name, seed);
        idx = lookup_header(r, table, tsize - 1, name, nlen, h, &found);
        hd = &r->headers[idx];
        if (found) {
            if (is_singleton(name, nlen)) {
                r->nheaders = 0; /* values are not built yet */
                return fail_text(r, 400, 0, "Duplicate header: ", p, nlen,
                                 "");
            }
            hd->value_len += 2 + vlen; /* total, for pass 3 */
        } else {
            name[nlen] = '\0';
            a.p += nlen + 1;
            hd->name = name;
            hd->name_len = nlen;
            hd->value = NULL;
            hd->value_len = vlen;
            note_special(&sp, name, nlen, (long)idx);
        }
        recs[nrec].value = v;
        recs[nrec].value_len = vlen;
        recs[nrec].header = (uint32_t)idx;
        nrec++;
    }

    /* pass 3: header values, repeated ones joined with ", " */
    for (i = 0; i < r->nheaders; i++) {
        struct wd_header *hd = &r->headers[i];

        hd->value = a.p;
        a.p += hd->value_len + 1;
        hd->value[hd->value_len] = '\0';
        hd->value_len = SIZE_MAX; /* nothing written yet */
    }
    for (i = 0; i < nrec; i++) {
        struct wd_header *hd = &r->headers[recs[i].header];

        if (hd->value_len == SIZE_MAX) {
            hd->value_len = 0;
        } else {
            hd->value[hd->value_len++] = ',';
            hd->value[hd->value_len++] = ' ';
        }
        memcpy(hd->value + hd->value_len, recs[i].value, recs[i].value_len);
        hd->value_len += recs[i].value_len;
    }
    r->request_line = arena_copy(&a, blk, rl_len); /* for the access log */
    r->request_line_len = rl_len;

    /* request line (SPEC.md 6.3) */
    rc = wd_http_crack_first_line(blk, rl_len, &fl);
    if (rc == WD_FL_NOMATCH)
        return fail_str(r, 400, "Start line is invalid", 0);
    if (rc == WD_FL_BAD_METHOD)
        return fail_text(r, 400, 0, "Malformed HTTP method \"", fl.method,
                         fl.method_len, "\"");
    r->method = arena_copy(&a, fl.method, fl.method_len);
    r->target = arena_copy(&a, fl.uri, fl.uri_len);
    r->target_len = fl.uri_len;
    if (fl.version_len == 3) {
        r->version_major = fl.version[0] - '0';
        r->version_minor = fl.version[2] - '0';
    }
    http11 = r->version_major == 1 && r->version_minor == 1;
    r->http11 = http11;

    /* target (SPEC.md 6.4) */
    {
        char *scratch = a.p;

        a.p += fl.uri_len + 1;
        rc = wd_http_split_uri(fl.uri, fl.uri_len, scratch, &up);
        if (rc == WD_URI_BAD)
            return fail_str(r, 400, "Bad URI", http11);
        if (rc == WD_URI_INVALID) {
            r->drop_connection = 1;
            return fail_str(r, 400, "Invalid IPv6 URL", http11);
        }
        r->path = a.p;
        r->path_len = wd_http_unquote(up.path, up.path_len, r->path);
        r->path[r->path_len] = '\0';
        a.p += r->path_len + 1;
        r->query = arena_copy(&a, up.query, up.query_len);
        r->query_len = up.query_len;
    }

    /* framing (SPEC.md 6.5) */
    if (sp.conn >= 0)
        r->connection = r->headers[sp.conn].value;
    if (sp.te >= 0)
        te = &r->headers[sp.te];
    if (sp.cl >= 0)
        cl = &r->headers[sp.cl];
    pv->cl_name = a.p;
    pv->cl_value = a.p + 16;
    a.p += 16 + 24;

    if (http11) {
        if (te != NULL) {
            chunked = parse_te(te->value, te->value_len);
            if (chunked == -1)
                return fail_str(r, 501,
                                "Transfer-Encoding requested is not "
                                "supported.",
                                1);
            if (chunked == -2)
                return fail_str(r, 501,
                                "Transfer-Encoding is invalid. Multiple "
                                "chunked encodings requested.",
                                1);
        }
        if (sp.expect >= 0 && r->headers[sp.expect].value_len == 12 &&
            strncasecmp(r->headers[sp.expect].value, "100-continue", 12) == 0)
            r->expect_continue = 1;
        /* removals last: they move the header structs */
        if (chunked && cl != NULL) {
            r->close_after = 1;
            if (te != NULL && te > cl)
                te--;
            remove_header(r, cl);
            cl = NULL;
        }
        if (te != NULL) {
            if (cl != NULL && cl > te)
                cl--; /* it moves down over the removed TE */
            remove_header(r, te);
        }
    } else if (te != NULL) {
        return fail_str(r, 400,
                        "Transfer-Encoding is not allowed in HTTP/1.0 "
                        "requests",
                        0);
    }

    if (chunked) {
        r->chunked = 1;
        r->body_expected = 1;
        if ((r->body = wd_buf_new(lim->inbuf_overflow)) == NULL)
            return -1;
        wd_chunked_init(&pv->ch);
        r->state = WD_REQ_BODY;
        return 0;
    }
    if (cl != NULL && !parse_cl(cl->value, cl->value_len, &clen))
        return fail_str(r, 400, "Content-Length is invalid", http11);
    r->content_length = clen;
    if (clen > 0) {
        if (clen >= limit_of(lim->max_body))
            return fail_limit(r, 413, "max_body", lim->max_body, http11);
        r->body_expected = 1;
        if ((r->body = wd_buf_new(lim->inbuf_overflow)) == NULL)
            return -1;
        wd_buf_expect(r->body, clen);
        pv->remain = clen;
        r->state = WD_REQ_BODY;
        return 0;
    }
    r->state = WD_REQ_DONE;
    return 0;

invalid:
    r->nheaders = 0; /* values are not built yet */
    return fail_str(r, 400, "Invalid header", 0);
}

/*
 * Parse the header block BLK[0, N) (leading whitespace already stripped,
 * ends with CRLF CRLF).  Finishes R with an error, or leaves it ready for
 * its body.  0, or -1 on allocation failure.
 */
static int
parse_block(struct wd_http_request *r, const char *blk, size_t n,
            const struct wd_http_limits *lim)
{
    struct span small[SMALL_LINES], *lines = small;
    int rc = parse_lines(r, blk, n, lim, &lines);

    r->priv->rl = NULL; /* BLK is the caller's, and goes away */
    if (lines != small)
        free(lines);
    return rc;
}

/* --- feeding ----------------------------------------------------------- */

/* A block of only whitespace, or the request parsed. 0 or -1. */
static int
finish_block(struct wd_http_request *r, const char *blk, size_t n,
             const struct wd_http_limits *lim)
{
    size_t skip = 0;

    while (skip < n && IS(blk[skip], C_LSTRIP))
        skip++;
    if (skip == n) {
        r->empty = 1;
        r->state = WD_REQ_DONE;
        return 0;
    }
    return parse_block(r, blk + skip, n - skip, lim);
}

static int
append_blk(struct wd_http_parser_priv *pv, const char *data, size_t len)
{
    if (pv->blk_len + len > pv->blk_cap) {
        size_t cap = pv->blk_cap ? pv->blk_cap : 1024;
        char *nb;

        while (cap < pv->blk_len + len)
            cap *= 2;
        if ((nb = realloc(pv->blk, cap)) == NULL)
            return -1;
        pv->blk = nb;
        pv->blk_cap = cap;
    }
    memcpy(pv->blk + pv->blk_len, data, len);
    pv->blk_len += len;
    return 0;
}

/*
 * Where the terminator ends when it straddles the old bytes and DATA:
 * offset into DATA just past it, or 0.
 */
static size_t
straddling_terminator(const char *old, size_t olen, const char *data,
                      size_t len)
{
    static const char pat[] = "\r\n\r\n";

    /* the earliest start first: 3 pattern bytes in OLD, then 2, then 1 */
    for (size_t k = 3; k >= 1; k--) {
        if (olen < k || len < 4 - k)
            continue;
        if (memcmp(old + olen - k, pat, k) == 0 &&
            memcmp(data, pat + k, 4 - k) == 0)
            return 4 - k;
    }
    return 0;
}

static ssize_t
feed_head(struct wd_http_request *r, const char *data, size_t len,
          const struct wd_http_limits *lim)
{
    struct wd_http_parser_priv *pv = r->priv;
    size_t prev = pv->blk_len, end; /* END: offset in DATA past CRLFCRLF */
    const char *blk;
    uint64_t total;
    int rc;

    end = straddling_terminator(pv->blk, prev, data, len);
    if (end == 0)
        end = find_terminator(data, len);
    total = end ? (uint64_t)prev + end : (uint64_t)prev + len;
    if (total >= limit_of(lim->max_header)) {
        /* 431: the request line is not parsed; answered with HTTP/1.0 */
        static const char fake[] = "GET / HTTP/1.0\r\n\r\n";
        uint64_t max = limit_of(lim->max_header);
        size_t used = max > prev ? (size_t)(max - prev) : 1;

        WD_FREE(pv->blk);
        pv->blk_len = pv->blk_cap = 0;
        if (parse_block(r, fake, sizeof fake - 1, lim) != 0 ||
            fail_limit(r, 431, "max_header", lim->max_header, 0) != 0)
            return -1;
        r->request_line = NULL; /* not read: "-" in the access log */
        r->request_line_len = 0;
        return (ssize_t)(used < len ? used : len);
    }
    if (end == 0) {
        if (append_blk(pv, data, len) != 0)
            return -1;
        return (ssize_t)len;
    }
    if (prev == 0) {
        blk = data; /* the whole block in this read: no copy */
    } else {
        if (append_blk(pv, data, end) != 0)
            return -1;
        blk = pv->blk;
    }
    rc = finish_block(r, blk, (size_t)total, lim);
    WD_FREE(pv->blk);
    pv->blk_len = pv->blk_cap = 0;
    return rc != 0 ? -1 : (ssize_t)end;
}

/* Set CONTENT_LENGTH to the decoded length of a chunked body. */
static void
set_decoded_length(struct wd_http_request *r)
{
    struct wd_http_parser_priv *pv = r->priv;
    struct wd_header *hd = &r->headers[r->nheaders++];
    int n;

    memcpy(pv->cl_name, "CONTENT_LENGTH", 15);
    n = snprintf(pv->cl_value, 24, "%" PRIu64, pv->ch.decoded);
    hd->name = pv->cl_name;
    hd->name_len = 14;
    hd->value = pv->cl_value;
    hd->value_len = (size_t)n;
    r->content_length = pv->ch.decoded;
}

/*
 * waitress's decoder, on an error, still counts the rest of that read as
 * consumed body bytes, and they go into the 413 check, which comes first
 * (SPEC.md 7: the total "after a read").  After a bad size line that is
 * the whole rest; after a bad chunk end, its loop goes on into the trailer
 * branch with the two bad bytes in front and stops after the first CRLF
 * CRLF.  This is the one outcome that depends on how the bytes were split:
 * an error detected in one read can become a 413 when the same read holds
 * enough further bytes.  Returns how many of REST[0, LEN) to count.
 */
static size_t
error_read_tail(const struct wd_chunked *c, const char *rest, size_t len)
{
    char head[2];
    size_t end;

    if (c->error != wd_chunked_err_crlf)
        return len;
    /* a terminator may begin within the two bad bytes */
    head[0] = (char)c->crlf0;
    head[1] = (char)c->crlf1;
    end = straddling_terminator(head, 2, rest, len);
    if (end == 0)
        end = find_terminator(rest, len);
    return end ? end : len;
}

static ssize_t
feed_body(struct wd_http_request *r, const char *data, size_t len,
          const struct wd_http_limits *lim)
{
    struct wd_http_parser_priv *pv = r->priv;
    ssize_t m;
    size_t cap;

    if (len == 0)
        return 0;
    if (!r->chunked) {
        size_t n = (uint64_t)len > pv->remain ? (size_t)pv->remain : len;

        if (wd_buf_append(r->body, data, n) != 0)
            return -1;
        pv->remain -= n;
        if (pv->remain == 0)
            r->state = WD_REQ_DONE;
        return (ssize_t)n;
    }

    /* raw chunked bytes >= max_body is a 413, whatever they were */
    cap = len;
    if ((uint64_t)cap > limit_of(lim->max_body) - pv->raw)
        cap = (size_t)(limit_of(lim->max_body) - pv->raw);
    m = wd_chunked_feed(&pv->ch, data, cap, r->body);
    if (m < 0)
        return -1;
    if (pv->ch.state == WD_CHUNKED_ERROR)
        m += (ssize_t)error_read_tail(&pv->ch, data + m, len - (size_t)m);
    pv->raw += (uint64_t)m;
    if (pv->raw >= limit_of(lim->max_body)) {
        if (fail_limit(r, 413, "max_body", lim->max_body, r->http11) != 0)
            return -1;
    } else if (pv->ch.state == WD_CHUNKED_ERROR) {
        if (fail_str(r, 400, pv->ch.error, r->http11) != 0)
            return -1;
    } else if (pv->ch.state == WD_CHUNKED_DONE) {
        set_decoded_length(r);
        r->state = WD_REQ_DONE;
    }
    return m;
}

ssize_t
wd_http_request_feed(struct wd_http_request *r, const char *data, size_t len,
                     const struct wd_http_limits *lim)
{
    ssize_t used = 0, m;

    if (r->state == WD_REQ_HEAD && len > 0) {
        if ((used = feed_head(r, data, len, lim)) < 0)
            return -1;
    }
    if (r->state == WD_REQ_BODY && (size_t)used < len) {
        if ((m = feed_body(r, data + used, len - (size_t)used, lim)) < 0)
            return -1;
        used += m;
    }
    return used;
}

char *
wd_http_request_body_room(struct wd_http_request *r, size_t len)
{
    const struct wd_http_parser_priv *pv = r->priv;

    if (r->state != WD_REQ_BODY || r->chunked || r->body == NULL ||
        pv->remain < (uint64_t)len)
        return NULL;
    return wd_buf_room(r->body, len);
}

void
wd_http_request_body_commit(struct wd_http_request *r, size_t n)
{
    struct wd_http_parser_priv *pv = r->priv;

    wd_buf_commit(r->body, n);
    pv->remain -= n;
    if (pv->remain == 0)
        r->state = WD_REQ_DONE;
}

const char *
wd_http_request_header(const struct wd_http_request *r, const char *name,
                       size_t *len)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->nheaders; i++) {
        const struct wd_header *h = &r->headers[i];

        if (h->name_len == n && memcmp(h->name, name, n) == 0) {
            if (len != NULL)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

int
wd_http_request_wants_continue(const struct wd_http_request *r)
{
    /* body_expected is only set once the head passed every check: an
       error found later, in the body, still owes the 100 */
    return r->expect_continue && r->body_expected && r->state != WD_REQ_HEAD;
}
