/*
 * util.c - small shared helpers of SPEC.md 18 (see util.h).
 *
 * Everything here is pure except wd_cleanup_unix_socket (one stat and
 * one unlink) and wd_ipv6_available (opens and closes a socket).  No
 * static state: any thread.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int
wd_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

ssize_t
wd_find_double_newline(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;

    while (end - p >= 4) {
        const char *cr = memchr(p, '\r', (size_t)(end - p) - 3);

        if (cr == NULL)
            return -1;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return cr + 4 - buf;
        p = cr + 1;
    }
    return -1;
}

/* qdtext of RFC 9110: HT, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text. */
static int
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* The character after a backslash in a quoted-pair. */
static int
is_quoted_pair_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

int
wd_undquote(const char *in, size_t in_len, char *out, size_t *out_len)
{
    int starts = in_len > 0 && in[0] == '"';
    int ends = in_len > 0 && in[in_len - 1] == '"';
    size_t i, n = 0;

    if (!starts && !ends) {
        memcpy(out, in, in_len);
        out[in_len] = '\0';
        *out_len = in_len;
        return 0;
    }
    if (!starts || !ends || in_len < 2)
        return -1;
    /*
     * The value must be exactly one quoted-string: the first unescaped
     * quote after the opening one has to be the last character.
     */
    for (i = 1; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '"') {
            if (i != in_len - 1)
                return -1;
            out[n] = '\0';
            *out_len = n;
            return 0;
        }
        if (c == '\\') {
            if (i + 1 >= in_len ||
                !is_quoted_pair_char((unsigned char)in[i + 1]))
                return -1;
            out[n++] = in[++i];
        } else if (is_qdtext(c)) {
            out[n++] = (char)c;
        } else {
            return -1;
        }
    }
    return -1; /* the closing quote was escaped */
}

int
wd_cleanup_unix_socket(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISSOCK(st.st_mode))
        (void)unlink(path); /* a concurrent remover may win: fine */
    return 0;
}

int
wd_path_writable(const char *path, int how)
{
    struct stat st;
    char *dir, *slash;
    int rc = -1;

    if (path[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    /* a rename replaces a symlink itself; an open follows it */
    if ((how == WD_PATH_RENAME ? lstat(path, &st) : stat(path, &st)) == 0) {
        if (S_ISDIR(st.st_mode)) {
            errno = EISDIR;
            return -1;
        }
        /* AT_EACCESS: the effective ids and capabilities the write will
           use, not access()'s real uid */
        if (how == WD_PATH_OPEN)
            return faccessat(AT_FDCWD, path, W_OK, AT_EACCESS);
    } else if (errno != ENOENT) {
        return -1;
    }
    /* missing, or to be replaced: its directory must take a new name */
    if ((dir = strdup(path)) == NULL)
        return -1;
    if ((slash = strrchr(dir, '/')) == NULL)
        strcpy(dir, ".");
    else
        slash[slash == dir ? 1 : 0] = '\0';
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            errno = ENOTDIR;
        else
            rc = faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS);
    }
    free(dir);
    return rc;
}

void
wd_copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

void
wd_strip_brackets(char *s)
{
    size_t len = strlen(s);

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        memmove(s, s + 1, len - 2);
        s[len - 2] = '\0';
    }
}

/* Decimal V (0-65535) at P, NUL-terminated; the length written. */
static size_t
put_u16(char *p, unsigned v)
{
    char tmp[5];
    size_t n = 0, len;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    len = n;
    while (n > 0)
        *p++ = tmp[--n];
    *p = '\0';
    return len;
}

int
wd_format_peer(const struct sockaddr *sa, char *addr, size_t addrlen,
               char *port, size_t portlen)
{
    unsigned pnum;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        const unsigned char *b = (const unsigned char *)&sin->sin_addr;
        char *p = addr;

        if (addrlen < INET_ADDRSTRLEN)
            goto nospace;
        for (int i = 0; i < 4; i++) {
            p += put_u16(p, b[i]);
            if (i < 3)
                *p++ = '.';
        }
        pnum = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
                      (socklen_t)addrlen) == NULL)
            return -1;
        pnum = ntohs(sin6->sin6_port);
    } else {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (portlen < sizeof "65535")
        goto nospace;
    put_u16(port, pnum);
    return 0;

nospace:
    errno = ENOSPC;
    return -1;
}

int
wd_ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

char *
wd_latin1_to_utf8(const char *s, size_t n, int escape_controls)
{
    size_t o = 0;
    char *out = malloc(n * 4 + 1); /* "\xHH" is the longest */

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (escape_controls && (c < 0x20 || c == 0x7f)) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        } else if (c >= 0x80) {
            out[o++] = (char)(0xc0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

int
wd_port_ok(const char *p)
{
    unsigned long v;
    char *end;

    errno = 0;
    v = strtoul(p, &end, 10);
    if (end == p || *end != '\0')
        return 1; /* not a number: getaddrinfo decides */
    return errno == 0 && v <= 65535;
}

/* The one line for a stats value of no known form; -1. */
static int
invalid_stats_addr(const char *addr, char *err, size_t errlen)
{
    snprintf(err, errlen, "invalid address '%s' (expected HOST:PORT, "
             "[V6]:PORT, unix:PATH or /PATH)", addr);
    return -1;
}

int
wd_stats_addr_resolve(const char *addr, struct addrinfo **res, char *err,
                      size_t errlen)
{
    struct addrinfo hints;
    char host[256];
    const char *colon = strrchr(addr, ':'), *h = addr;
    size_t hlen;
    int rc;

    if (colon == NULL || colon[1] == '\0')
        goto invalid;
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    /* no host is an error, as in a listen entry (SPEC.md 3.1); "*" is
       every address */
    if (hlen == 0 || hlen >= sizeof host)
        goto invalid;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (!wd_port_ok(colon + 1)) {
        snprintf(err, errlen,
                 "invalid address '%s' (port out of range 0-65535)", addr);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(strcmp(host, "*") != 0 ? host : NULL,
                     colon + 1, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "invalid address '%s': %s", addr,
                 gai_strerror(rc));
        return -1;
    }
    return 0;

invalid:
    return invalid_stats_addr(addr, err, errlen);
}

const char *
wd_stats_unix_path(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0)
        return addr + 5;
    return addr[0] == '/' ? addr : NULL;
}

int
wd_stats_addr_check(const char *addr, char *err, size_t errlen)
{
    const char *path = wd_stats_unix_path(addr);
    struct addrinfo *res;
    size_t max = sizeof ((struct sockaddr_un *)0)->sun_path - 1;

    if (path == NULL) {
        if (wd_stats_addr_resolve(addr, &res, err, errlen) != 0)
            return -1;
        freeaddrinfo(res);
        return 0;
    }
    if (path[0] == '\0')
        return invalid_stats_addr(addr, err, errlen);
    if (strlen(path) > max) {
        snprintf(err, errlen, "%s: path too long (at most %zu bytes)", addr,
                 max);
        return -1;
    }
    return 0;
}
