/*
 * cfgscan.c - a look over a configuration file before libconfig reads it
 * (see cfgscan.h for why).
 *
 * The token rules followed are libconfig's: "..." strings with \" and \\
 * escapes; comments from # or // to the end of the line, and C-style
 * block ones; names [A-Za-z*][-A-Za-z0-9_*]*; numbers: [-+]?[0-9]+ is an int
 * unless an L (64-bit), a '.' or an exponent follows, 0x... is a hex int
 * unless an L follows; and @include "..." at the start of a line.  An
 * int or hex int outside the signed 32-bit range is refused, as libconfig
 * 1.5 would wrap it.
 */
#include "autoconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfgscan.h"

#define NAME_MAX_SHOWN 64   /* of the setting named in a message */
#define NUMBER_MAX_SHOWN 40 /* of the literal shown in a message */

struct scan {
    const char *p, *end;
    const char *name; /* the file, for messages */
    const char *include_dir;
    int depth;
    int line;
    char last_name[NAME_MAX_SHOWN]; /* the setting a number belongs to */
    char *err;
    size_t errlen;
};

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*';
}

static int
is_name_char(int c)
{
    return is_name_start(c) || is_digit(c) || c == '-' || c == '_';
}

static int
scan_file(const char *path, const char *include_dir, int depth, char *err,
          size_t errlen);

int
wd_cfgscan_read(const char *path, char **text, size_t *len, char *err,
                size_t errlen)
{
    struct stat st;
    FILE *fp;
    char *buf = NULL, *nbuf;
    size_t cap = 0, n = 0, got;

    *text = NULL;
    *len = 0;
    if ((fp = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "cannot open configuration file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    /* fopen takes a directory; reading it is what libconfig dies of */
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read configuration file %s: %s", path,
                 strerror(EISDIR));
        fclose(fp);
        return -1;
    }
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            if ((nbuf = realloc(buf, cap)) == NULL) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            buf = nbuf;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "cannot read configuration file %s: %s", path,
                 strerror(errno));
        goto fail;
    }
    fclose(fp);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;

fail:
    free(buf);
    fclose(fp);
    return -1;
}

/* An @include line from s->p (at the start of a line): check the file it
 * names.  1: it was one (s->p past it), 0: not one, -1: refused. */
static int
include_line(struct scan *s)
{
    const char *q = s->p;
    char path[PATH_MAX], full[PATH_MAX];
    size_t n = 0;
    struct stat st;
    int line = s->line, lines = 0, m;

    while (q < s->end && (*q == ' ' || *q == '\t'))
        q++;
    if ((size_t)(s->end - q) < 9 || memcmp(q, "@include", 8) != 0 ||
        (q[8] != ' ' && q[8] != '\t'))
        return 0;
    q += 8;
    while (q < s->end && (*q == ' ' || *q == '\t'))
        q++;
    if (q >= s->end || *q != '"')
        return 0;
    for (q++; q < s->end && *q != '"'; q++) {
        if (*q == '\\' && q + 1 < s->end && (q[1] == '\\' || q[1] == '"'))
            q++;
        else if (*q == '\n')
            lines++;
        if (n < sizeof path - 1)
            path[n++] = *q;
    }
    if (q >= s->end)
        return 0; /* unterminated: libconfig's error */
    path[n] = '\0';
    s->p = q + 1;
    s->line += lines;
    /* libconfig 1.5 puts the include directory in front of every path,
       an absolute one too */
    if (s->include_dir != NULL)
        m = snprintf(full, sizeof full, "%s/%s", s->include_dir, path);
    else
        m = snprintf(full, sizeof full, "%s", path);
    if (m < 0 || (size_t)m >= sizeof full || stat(full, &st) != 0)
        return 1; /* libconfig: "cannot open include file" */
    if (S_ISDIR(st.st_mode)) {
        snprintf(s->err, s->errlen, "%s:%d: cannot read include file %s: %s",
                 s->name, line, full, strerror(EISDIR));
        return -1;
    }
    /* not read twice: a pipe would be empty for libconfig */
    if (!S_ISREG(st.st_mode) || s->depth >= WD_CFGSCAN_MAX_DEPTH)
        return 1; /* deeper: libconfig's "include file nesting too deep" */
    return scan_file(full, s->include_dir, s->depth + 1, s->err, s->errlen) < 0
               ? -1
               : 1;
}

/* Past a float's exponent ([eE][-+]?[0-9]+) at P, or P if none. */
static const char *
exponent_end(const char *p, const char *end)
{
    const char *q = p;

    if (q >= end || (*q != 'e' && *q != 'E'))
        return p;
    q++;
    if (q < end && (*q == '-' || *q == '+'))
        q++;
    if (q >= end || !is_digit((unsigned char)*q))
        return p;
    while (q < end && is_digit((unsigned char)*q))
        q++;
    return q;
}

/* A number from s->p (a digit, or a sign before one): refuse an int that
 * libconfig would wrap (past 32 bits without the L suffix) or clamp (past
 * 64 bits with it).  0, or -1. */
static int
number(struct scan *s)
{
    const char *start = s->p, *q = s->p, *digits;
    char lit[NUMBER_MAX_SHOWN], num[NUMBER_MAX_SHOWN];
    int hex = 0, wide, over = 0;
    size_t n;
    long long v = 0;
    char *endp;

    if (*q == '-' || *q == '+')
        q++;
    if (q == start && q + 2 < s->end && q[0] == '0' &&
        (q[1] == 'x' || q[1] == 'X') && is_hex((unsigned char)q[2])) {
        hex = 1;
        for (q += 2; q < s->end && is_hex((unsigned char)*q); q++)
            ;
    } else {
        while (q < s->end && is_digit((unsigned char)*q))
            q++;
        if (q < s->end && *q == '.') { /* a float */
            for (q++; q < s->end && is_digit((unsigned char)*q); q++)
                ;
            s->p = exponent_end(q, s->end);
            return 0;
        }
        if (exponent_end(q, s->end) != q) { /* a float: 1e5 */
            s->p = exponent_end(q, s->end);
            return 0;
        }
    }
    s->p = q;
    wide = q < s->end && *q == 'L'; /* 64-bit: libconfig clamps, silently */
    n = (size_t)(q - start);
    if (n >= sizeof lit) { /* shown shortened */
        memcpy(lit, start, sizeof lit - 4);
        memcpy(lit + sizeof lit - 4, "...", 4);
    } else {
        memcpy(lit, start, n);
        lit[n] = '\0';
    }
    /* the value: sign, then the digits without their leading zeros */
    digits = start + (*start == '-' || *start == '+') + (hex ? 2 : 0);
    while (digits + 1 < q && *digits == '0')
        digits++;
    n = (size_t)(q - digits);
    if (n + 2 >= sizeof num) {
        over = 1; /* too many digits to be in range */
    } else {
        num[0] = *start == '-' ? '-' : '+';
        memcpy(num + 1, digits, n);
        num[n + 1] = '\0';
        errno = 0;
        v = strtoll(num, &endp, hex ? 16 : 10);
        over = errno == ERANGE;
    }
    if (wide) {
        if (!over)
            return 0;
        snprintf(s->err, s->errlen, "%s:%d: %s%s%sL does not fit in 64 bits",
                 s->name, s->line, s->last_name,
                 s->last_name[0] != '\0' ? " = " : "", lit);
        return -1;
    }
    if (!over && v >= INT_MIN && v <= INT_MAX)
        return 0;
    if (s->last_name[0] != '\0')
        snprintf(s->err, s->errlen,
                 "%s:%d: %s = %s does not fit in 32 bits; write it with the "
                 "L suffix (%sL) or as a string",
                 s->name, s->line, s->last_name, lit, lit);
    else
        snprintf(s->err, s->errlen,
                 "%s:%d: %s does not fit in 32 bits; write it with the L "
                 "suffix (%sL) or as a string",
                 s->name, s->line, lit, lit);
    return -1;
}

int
wd_cfgscan_text(const char *text, size_t len, const char *name,
                const char *include_dir, int depth, char *err, size_t errlen)
{
    struct scan s = {.p = text,
                     .end = text + len,
                     .name = name,
                     .include_dir = include_dir,
                     .depth = depth,
                     .line = 1,
                     .err = err,
                     .errlen = errlen};
    const char *nul = memchr(text, '\0', len);
    int bol = 1, r;

    /* libconfig would read a string only up to it, or fail on it */
    if (nul != NULL) {
        int line = 1;

        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%s:%d: a NUL byte: the file is not text", name,
                 line);
        return -1;
    }
    while (s.p < s.end) {
        unsigned char c = (unsigned char)*s.p;

        if (bol) {
            bol = 0;
            if ((r = include_line(&s)) < 0)
                return -1;
            if (r > 0)
                continue;
        }
        if (c == '\n') {
            s.line++;
            s.p++;
            bol = 1;
        } else if (c == '#' ||
                   (c == '/' && s.p + 1 < s.end && s.p[1] == '/')) {
            while (s.p < s.end && *s.p != '\n')
                s.p++;
        } else if (c == '/' && s.p + 1 < s.end && s.p[1] == '*') {
            for (s.p += 2; s.p < s.end; s.p++) {
                if (*s.p == '*' && s.p + 1 < s.end && s.p[1] == '/') {
                    s.p += 2;
                    break;
                }
                if (*s.p == '\n')
                    s.line++;
            }
        } else if (c == '"') {
            for (s.p++; s.p < s.end && *s.p != '"'; s.p++) {
                if (*s.p == '\\' && s.p + 1 < s.end &&
                    (s.p[1] == '\\' || s.p[1] == '"'))
                    s.p++;
                else if (*s.p == '\n')
                    s.line++;
            }
            if (s.p < s.end)
                s.p++;
        } else if (is_name_start(c)) {
            const char *start = s.p;
            size_t n;

            while (s.p < s.end && is_name_char((unsigned char)*s.p))
                s.p++;
            n = (size_t)(s.p - start);
            if (n >= sizeof s.last_name)
                n = sizeof s.last_name - 1;
            memcpy(s.last_name, start, n);
            s.last_name[n] = '\0';
        } else if (is_digit(c) ||
                   ((c == '-' || c == '+') && s.p + 1 < s.end &&
                    is_digit((unsigned char)s.p[1]))) {
            if (number(&s) < 0)
                return -1;
        } else if (c == '.' && s.p + 1 < s.end &&
                   is_digit((unsigned char)s.p[1])) {
            /* a float written .5: its digits are not an int */
            for (s.p++; s.p < s.end && is_digit((unsigned char)*s.p); s.p++)
                ;
            s.p = exponent_end(s.p, s.end);
        } else {
            s.p++;
        }
    }
    return 0;
}

/* Read and check an included file. */
static int
scan_file(const char *path, const char *include_dir, int depth, char *err,
          size_t errlen)
{
    char *text, unused[256];
    size_t len;
    int rc;

    /* unreadable: libconfig reports it when it gets there */
    if (wd_cfgscan_read(path, &text, &len, unused, sizeof unused) < 0)
        return 0;
    rc = wd_cfgscan_text(text, len, path, include_dir, depth, err, errlen);
    free(text);
    return rc;
}
