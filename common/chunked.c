/*
 * chunked.c - incremental chunked-body decoder (see chunked.h).
 *
 * DESIGN
 *   waitress gathers each size line up to CRLF and checks it with two
 *   regular expressions.  Here the same languages are recognised by two
 *   small automata fed one byte at a time (hex part, then extension part
 *   from the first ';'), so the size line is never buffered: its length
 *   is bounded only by the raw-byte body limit the caller enforces, as in
 *   waitress, but it costs no memory.  The verdict is given when the
 *   CRLF arrives, extension errors first, as waitress checks them first.
 *
 *   A CR is held back until the next byte shows whether it starts the
 *   line's CRLF; a lone CR is an ordinary (invalid) line byte.
 */
#include "chunked.h"

#include <string.h>

enum { HX_START, HX_DIG, HX_NL, HX_BAD };
enum { E_SEMI, E_NAME, E_EQ, E_VTOK, E_QS, E_QP, E_QEND, E_NL, E_BAD };

const char wd_chunked_err_ext[] = "Invalid chunk extension";
const char wd_chunked_err_size[] = "Invalid chunk size";
const char wd_chunked_err_crlf[] = "Chunk not properly terminated";

static int
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static int
is_qpair(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static unsigned char
hex_step(unsigned char st, unsigned char c, uint64_t *size)
{
    int v;

    switch (st) {
    case HX_START:
    case HX_DIG:
        if ((v = hexval(c)) >= 0) {
            *size = *size > (UINT64_MAX >> 4) ? UINT64_MAX
                                              : (*size << 4) | (uint64_t)v;
            return HX_DIG;
        }
        /* one final LF passes: Python's '$' matches before it */
        return st == HX_DIG && c == '\n' ? HX_NL : HX_BAD;
    default:
        return HX_BAD;
    }
}

static unsigned char
ext_step(unsigned char st, unsigned char c)
{
    switch (st) {
    case E_SEMI:
        return is_tchar(c) ? E_NAME : E_BAD;
    case E_NAME:
    case E_VTOK:
        if (is_tchar(c))
            return st;
        if (c == ';')
            return E_SEMI;
        if (c == '=' && st == E_NAME)
            return E_EQ;
        return c == '\n' ? E_NL : E_BAD;
    case E_EQ:
        if (is_tchar(c))
            return E_VTOK;
        return c == '"' ? E_QS : E_BAD;
    case E_QS:
        if (c == '"')
            return E_QEND;
        if (c == '\\')
            return E_QP;
        return is_qdtext(c) ? E_QS : E_BAD;
    case E_QP:
        return is_qpair(c) ? E_QS : E_BAD;
    case E_QEND:
        if (c == ';')
            return E_SEMI;
        return c == '\n' ? E_NL : E_BAD;
    default:
        return E_BAD;
    }
}

static int
ext_accepting(unsigned char st)
{
    return st == E_NAME || st == E_VTOK || st == E_QEND || st == E_NL;
}

static int
hex_accepting(unsigned char st)
{
    return st == HX_DIG || st == HX_NL;
}

static void
line_reset(struct wd_chunked *c)
{
    c->size = 0;
    c->line_len = 0;
    c->hex = HX_START;
    c->ext = E_SEMI;
    c->in_ext = 0;
    c->cr = 0;
}

void
wd_chunked_init(struct wd_chunked *c)
{
    memset(c, 0, sizeof *c);
    c->state = WD_CHUNKED_SIZE;
    line_reset(c);
}

/* One byte of a size line (not part of its CRLF). */
static void
line_byte(struct wd_chunked *c, unsigned char b)
{
    c->line_len++;
    if (c->in_ext)
        c->ext = ext_step(c->ext, b);
    else if (b == ';')
        c->in_ext = 1;
    else
        c->hex = hex_step(c->hex, b, &c->size);
}

/* The CRLF of a size line arrived: judge the line. */
static void
line_end(struct wd_chunked *c)
{
    if (c->line_len == 0) {
        line_reset(c); /* blank lines between chunks are skipped */
        return;
    }
    if (c->in_ext && !ext_accepting(c->ext)) {
        c->state = WD_CHUNKED_ERROR;
        c->error = wd_chunked_err_ext;
    } else if (!hex_accepting(c->hex)) {
        c->state = WD_CHUNKED_ERROR;
        c->error = wd_chunked_err_size;
    } else if (c->size == 0) {
        c->state = WD_CHUNKED_TRAILER;
        c->tmatch = 0;
        c->trailer_len = 0;
    } else {
        c->state = WD_CHUNKED_DATA;
        c->remain = c->size;
    }
}

/*
 * Decoded data on its way to the body buffer.  Pieces are gathered and
 * appended together: a body already in its temp file takes one pwrite
 * per append, so a client sending 1-byte chunks would cost a system call
 * per byte.  Larger pieces go straight through.
 */
struct stage {
    struct wd_buf *out;
    size_t len;
    char buf[4096];
};

static int
stage_flush(struct stage *s)
{
    int rc = 0;

    if (s->len > 0 && s->out != NULL)
        rc = wd_buf_append(s->out, s->buf, s->len);
    s->len = 0;
    return rc;
}

static int
stage_put(struct stage *s, const unsigned char *p, size_t n)
{
    if (s->out == NULL)
        return 0;
    if (n > sizeof s->buf - s->len) {
        if (stage_flush(s) != 0)
            return -1;
        if (n >= sizeof s->buf)
            return wd_buf_append(s->out, p, n);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

ssize_t
wd_chunked_feed(struct wd_chunked *c, const char *data, size_t len,
                struct wd_buf *out)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    struct stage st;

    st.out = out;
    st.len = 0;
    while (i < len) {
        unsigned char b;

        switch (c->state) {
        case WD_CHUNKED_SIZE:
            b = p[i++];
            if (c->cr) {
                c->cr = 0;
                if (b == '\n') {
                    line_end(c);
                    break;
                }
                line_byte(c, '\r');
            }
            if (b == '\r')
                c->cr = 1;
            else
                line_byte(c, b);
            break;

        case WD_CHUNKED_DATA: {
            size_t n = len - i;

            if ((uint64_t)n > c->remain)
                n = (size_t)c->remain;
            if (stage_put(&st, p + i, n) != 0)
                return -1;
            i += n;
            c->remain -= n;
            c->decoded += n;
            if (c->remain == 0) {
                c->state = WD_CHUNKED_DATA_CRLF;
                c->crlf_n = 0;
            }
            break;
        }

        case WD_CHUNKED_DATA_CRLF:
            b = p[i++];
            if (c->crlf_n == 0) {
                c->crlf0 = b;
                c->crlf_n = 1;
            } else if ((c->crlf1 = b) == '\n' && c->crlf0 == '\r') {
                c->state = WD_CHUNKED_SIZE;
                line_reset(c);
            } else {
                c->state = WD_CHUNKED_ERROR;
                c->error = wd_chunked_err_crlf;
            }
            break;

        case WD_CHUNKED_TRAILER:
            b = p[i++];
            c->trailer_len++;
            if (b == "\r\n\r\n"[c->tmatch])
                c->tmatch++;
            else
                c->tmatch = b == '\r';
            /* "\r\n" right away: no trailer; else up to CRLF CRLF */
            if (c->tmatch == 4 || (c->tmatch == 2 && c->trailer_len == 2))
                c->state = WD_CHUNKED_DONE;
            break;

        case WD_CHUNKED_DONE:
        case WD_CHUNKED_ERROR:
            len = i; /* stop here */
            break;
        }
    }
    return stage_flush(&st) != 0 ? -1 : (ssize_t)i;
}

int
wd_chunk_size_valid(const char *s, size_t len, uint64_t *size)
{
    unsigned char st = HX_START;
    uint64_t v = 0;

    for (size_t i = 0; i < len; i++)
        st = hex_step(st, (unsigned char)s[i], &v);
    if (!hex_accepting(st))
        return 0;
    if (size != NULL)
        *size = v;
    return 1;
}

int
wd_chunk_ext_valid(const char *s, size_t len)
{
    unsigned char st = E_SEMI;

    if (len == 0 || s[0] != ';')
        return 0;
    for (size_t i = 1; i < len; i++)
        st = ext_step(st, (unsigned char)s[i]);
    return ext_accepting(st);
}
