/*
 * util.h - small helpers of SPEC.md 18 shared by master and workers.
 * Pure unless stated; any thread.
 */
#ifndef WD_COMMON_UTIL_H
#define WD_COMMON_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* tchar of RFC 9110 (SPEC.md 6.2). */
int wd_is_tchar(unsigned char c);

/* Offset just past the first CRLFCRLF in BUF, or -1. */
ssize_t wd_find_double_newline(const char *buf, size_t len);

/*
 * undquote (SPEC.md 18): a value quoted at both ends must be a valid
 * quoted-string and is unquoted; quoted at one end only is an error;
 * otherwise it is copied unchanged.  Writes a NUL-terminated result of at
 * most IN_LEN bytes into OUT (which must hold IN_LEN + 1), stores its
 * length in *OUT_LEN and returns 0, or returns -1 ("Invalid quoting in
 * value").
 */
int wd_undquote(const char *in, size_t in_len, char *out, size_t *out_len);

/*
 * Remove PATH if it is a socket; nothing if it does not exist; leave any
 * other kind of file alone.  0, or -1 with errno from stat(2).
 */
int wd_cleanup_unix_socket(const char *path);

/*
 * Could this process create PATH, or replace what is there, as a log is
 * opened (WD_PATH_OPEN: open(O_WRONLY|O_CREAT) of PATH itself) or a
 * pidfile is written (WD_PATH_RENAME: a new file in PATH's directory,
 * renamed over PATH)?  Creates nothing.  0, or -1 with the errno the
 * write would meet as far as stat(2) and access(2) can tell: ENOENT (""
 * or a missing directory), ENOTDIR, EISDIR, EACCES, EROFS.
 */
enum { WD_PATH_OPEN, WD_PATH_RENAME };
int wd_path_writable(const char *path, int how);

/* SRC into DST of SIZE (> 0) bytes, cut to fit, NUL-terminated: what
 * snprintf(DST, SIZE, "%s", SRC) writes, at a fraction of its cost. */
void wd_copy_str(char *dst, size_t size, const char *src);

/* Remove one leading '[' and one trailing ']' when both are there, in place. */
void wd_strip_brackets(char *s);

struct addrinfo;

/*
 * Latin-1 bytes S[0, N) as UTF-8, malloc'ed and NUL-terminated (NULL
 * without memory): the bytes of the str waitress would hold.  With
 * ESCAPE_CONTROLS, control bytes (0x00-0x1F, 0x7F) are written \xHH.
 */
char *wd_latin1_to_utf8(const char *s, size_t n, int escape_controls);

/*
 * A port P to hand to getaddrinfo as written: what strtoul reads whole
 * is a number ("+80", "-0"; "" is port 0) and must be at most 65535,
 * since glibc would wrap a larger one; anything else is a service name
 * for getaddrinfo to judge.  1 if fine, 0 if not.
 */
int wd_port_ok(const char *p);

/*
 * Resolve the TCP form of the `stats` option ("HOST:PORT", "[V6]:PORT",
 * "*:PORT" for every address; no host is an error) for a passive stream socket.
 * 0 with *RES to freeaddrinfo, or -1 with the reason in ERR.  Unix forms
 * ("unix:PATH", "/PATH") are the caller's.
 */
int wd_stats_addr_resolve(const char *addr, struct addrinfo **res, char *err,
                          size_t errlen);

/* The path of a unix form of `stats` ("unix:PATH" or "/PATH"), else NULL. */
const char *wd_stats_unix_path(const char *addr);

/*
 * What start would refuse in a `stats` value, for validation: a TCP form
 * must resolve (above); a unix path must be non-empty (an empty one
 * would bind an abstract name no client can reach) and fit sun_path.
 * 0, or -1 with the reason in ERR.
 */
int wd_stats_addr_check(const char *addr, char *err, size_t errlen);

struct sockaddr;

/*
 * The numeric address and port of SA (AF_INET or AF_INET6) into ADDR and
 * PORT, as inet_ntop(3) and "%u" write them: an IPv4 address is written
 * here directly (glibc's inet_ntop goes through sprintf, a twentieth of a
 * closed connection's user-space instructions).  0, or -1 with errno
 * EAFNOSUPPORT (another family) or ENOSPC (ADDR or PORT too short).
 */
int wd_format_peer(const struct sockaddr *sa, char *addr, size_t addrlen,
                   char *port, size_t portlen);

/* Nonzero when the kernel can create AF_INET6 sockets. */
int wd_ipv6_available(void);

#endif
