/*
 * config.c - the option table, the command line, the libconfig file and
 * the validation of SPEC.md sections 1, 2 and 3.1.
 *
 * DESIGN
 * `options[]` below is the only list of options.  The long flags, the file
 * keys, the defaults, --help and the type coercion are all driven by it.
 *
 * Building a configuration is done in stages, so that the errors come out
 * in the order SPEC.md 2.2 gives:
 *   1. the command line is scanned; each option's raw text is kept
 *      (list options accumulate), nothing is coerced yet;
 *   2. the -c file is read and its settings kept the same way; a command
 *      line value replaces a file value, and any address-group key on the
 *      command line drops every address-group key of the file;
 *   3. the merged result is checked: address conflicts, the send_bytes
 *      warning, type coercion of every given key (table order), address
 *      resolution, the proxy rules, inherited sockets, our own limits.
 * wd_config_init has already stored the defaults, coerced from the same
 * table, so step 3 only overwrites what was given.
 *
 * Nothing here exits or prints, except --help and --version (stdout, as
 * SPEC.md section 1 asks).  The master calls wd_config_from_argv again on
 * SIGHUP with a fresh struct and the saved argv.
 *
 * Thread affinity: the master's main thread only (getaddrinfo, getpwnam).
 */
#include "autoconfig.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfgscan.h"
#include "log.h"
#include "wd.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* How a value is coerced (SPEC.md 2.1) and where it is stored. */
enum opt_type {
    T_STR,         /* char *                                  */
    T_STR_OR_NONE, /* char *, empty string -> NULL            */
    T_PREFIX,      /* char *, slash_fixed_str                 */
    T_INT,         /* int                                     */
    T_INT64,       /* int64_t                                 */
    T_BOOL,        /* int 0/1                                 */
    T_OCTAL,       /* unsigned (unix_socket_perms)            */
    T_UMASK,       /* int, octal, -1 when unset               */
    T_LIST,        /* struct wd_strlist                       */
    T_SET,         /* trusted_proxy_headers: names, then bits */
    T_FDLIST,      /* sockets: int array + count              */
    T_LEVEL,       /* log_level: int, checked in step 16      */
};

#define OPT_ADDR 0x01  /* address group of SPEC.md section 1 */
#define OPT_ACCUM 0x02 /* repeated on the command line: accumulate */

struct opt {
    const char *name; /* config key; the flag is this with '_' -> '-' */
    enum opt_type type;
    size_t off; /* field in struct wd_config */
    unsigned flags;
    const char *def;  /* default, coerced like any input; NULL: none */
    const char *help; /* one line for --help */
};

#define F(field) offsetof(struct wd_config, field)

static const struct opt options[] = {
    /* address group */
    {"host", T_STR, F(host), OPT_ADDR, "0.0.0.0",
     "Bind address; replaces the default listen (not with --listen)."},
    {"port", T_INT64, F(port), OPT_ADDR, "8080",
     "Bind port; replaces the default listen (not with --listen)."},
    {"listen", T_LIST, F(listen), OPT_ADDR | OPT_ACCUM, "0.0.0.0:8080",
     "Addresses to listen on (HOST:PORT, [V6]:PORT, *:PORT); repeatable."},
    {"ipv4", T_BOOL, F(ipv4), 0, "true",
     "Use IPv4 results of address resolution."},
    {"ipv6", T_BOOL, F(ipv6), 0, "true",
     "Use IPv6 results of address resolution."},
    {"unix_socket", T_STR, F(unix_socket), OPT_ADDR, NULL,
     "Listen on this Unix socket path instead of TCP."},
    {"unix_socket_perms", T_OCTAL, F(unix_socket_perms), 0, "600",
     "Octal permissions of the Unix socket file."},
    {"sockets", T_FDLIST, F(sockets), OPT_ADDR | OPT_ACCUM, "",
     "Inherited listening file descriptors; repeatable."},
    /* waitress options */
    {"server_name", T_STR, F(server_name), 0, "waitress.invalid",
     "SERVER_NAME for every request (never from its Host header)."},
    {"threads", T_INT, F(threads), 0, "4",
     "Application threads per worker process."},
    {"trusted_proxy", T_STR_OR_NONE, F(trusted_proxy), 0, NULL,
     "Peer address allowed to send proxy headers ('*': every peer)."},
    {"trusted_proxy_count", T_INT, F(trusted_proxy_count), 0, "1",
     "How many proxies to trust in multi-valued proxy headers."},
    {"trusted_proxy_headers", T_SET, F(trusted_proxy_headers), 0, "",
     "Proxy headers to trust: x-forwarded-for x-forwarded-host "
     "x-forwarded-proto x-forwarded-port x-forwarded-by, or forwarded."},
    {"log_untrusted_proxy_headers", T_BOOL, F(log_untrusted_proxy_headers),
     0, "false", "Log a warning when untrusted proxy headers are removed."},
    {"clear_untrusted_proxy_headers", T_BOOL,
     F(clear_untrusted_proxy_headers), 0, "true",
     "Remove untrusted proxy headers from the environ."},
    {"url_scheme", T_STR, F(url_scheme), 0, "http",
     "Default wsgi.url_scheme."},
    {"url_prefix", T_PREFIX, F(url_prefix), 0, "",
     "SCRIPT_NAME, stripped from the front of PATH_INFO."},
    {"ident", T_STR_OR_NONE, F(ident), 0, "waitressd",
     "Server header and SERVER_SOFTWARE; empty: no Server header."},
    {"backlog", T_INT, F(backlog), 0, "1024", "listen() backlog."},
    {"recv_bytes", T_INT, F(recv_bytes), 0, "8192",
     "Maximum bytes per recv() on a client socket."},
    {"send_bytes", T_INT, F(send_bytes), 0, "1",
     "Deprecated: output flush threshold in bytes."},
    {"outbuf_overflow", T_INT64, F(outbuf_overflow), 0, "1048576",
     "Pending output above this many bytes goes to a temporary file."},
    {"outbuf_high_watermark", T_INT64, F(outbuf_high_watermark), 0,
     "16777216",
     "The application blocks while pending output exceeds this."},
    {"inbuf_overflow", T_INT64, F(inbuf_overflow), 0, "524288",
     "A request body above this many bytes goes to a temporary file."},
    {"connection_limit", T_INT, F(connection_limit), 0, "100",
     "Open connections per worker before accepting pauses."},
    {"cleanup_interval", T_INT, F(cleanup_interval), 0, "30",
     "Seconds between idle-connection sweeps."},
    {"channel_timeout", T_INT, F(channel_timeout), 0, "120",
     "Seconds of inactivity before an idle connection is closed."},
    {"log_socket_errors", T_BOOL, F(log_socket_errors), 0, "true",
     "Log unexpected socket errors."},
    {"max_request_header_size", T_INT64, F(max_request_header_size), 0,
     "262144", "Limit of the request header block in bytes (431)."},
    {"max_request_body_size", T_INT64, F(max_request_body_size), 0,
     "1073741824", "Limit of the request body in bytes (413)."},
    {"expose_tracebacks", T_BOOL, F(expose_tracebacks), 0, "false",
     "Show Python tracebacks in 500 responses."},
    {"asyncore_loop_timeout", T_INT, F(asyncore_loop_timeout), 0, "1",
     "Granularity in seconds of internal housekeeping timers."},
    {"asyncore_use_poll", T_BOOL, F(asyncore_use_poll), 0, "false",
     "Accepted for compatibility; no effect."},
    {"channel_request_lookahead", T_INT, F(channel_request_lookahead), 0,
     "0", "Further requests buffered while one is in progress."},
    /* waitressd options */
    {"app", T_STR, F(app), 0, NULL,
     "WSGI application MODULE:CALLABLE (or give it as the argument)."},
    {"call", T_BOOL, F(call), 0, "false",
     "Call the named object to get the application."},
    {"pythonpath", T_LIST, F(pythonpath), OPT_ACCUM, "",
     "Directories prepended to sys.path; repeatable."},
    {"workers", T_INT, F(workers), 0, NULL,
     "Worker processes (default: number of online CPUs)."},
    {"graceful_timeout", T_INT, F(graceful_timeout), 0, "30",
     "Seconds a stopping worker may finish its requests."},
    {"worker_timeout", T_INT, F(worker_timeout), 0, "30",
     "Seconds without heartbeat before a worker is killed; 0: never."},
    {"max_requests", T_INT, F(max_requests), 0, "0",
     "Requests after which a worker restarts; 0: never."},
    {"max_requests_jitter", T_INT, F(max_requests_jitter), 0, "0",
     "Random extra requests (0..N) added to max_requests per worker."},
    {"pidfile", T_STR, F(pidfile), 0, NULL,
     "Write the master's PID to this file."},
    {"daemon", T_BOOL, F(daemon), 0, "false",
     "Detach from the terminal."},
    {"user", T_STR, F(user), 0, NULL,
     "Run workers as this user (name or UID)."},
    {"group", T_STR, F(group), 0, NULL,
     "Run workers as this group (default: the user's group)."},
    {"umask", T_UMASK, F(umask), 0, NULL,
     "Octal umask applied by the master at startup (default: inherit)."},
    {"access_log", T_STR, F(access_log), 0, NULL,
     "Access log file in combined format ('-': stderr)."},
    {"error_log", T_STR, F(error_log), 0, "-",
     "Error log file ('-': stderr)."},
    {"log_level", T_LEVEL, F(log_level), 0, "info",
     "One of debug info warning error critical."},
    {"stats", T_STR, F(stats), 0, NULL,
     "Stats endpoint: HOST:PORT, [V6]:PORT, unix:/PATH or /PATH."},
};

#undef F

#define NOPTS (sizeof options / sizeof options[0])

static const char *const known_proxy_headers[] = {
    "x-forwarded-for",   "x-forwarded-host", "x-forwarded-proto",
    "x-forwarded-port",  "x-forwarded-by",   "forwarded",
};
static const unsigned known_proxy_bits[] = {
    WD_PROXY_X_FORWARDED_FOR,   WD_PROXY_X_FORWARDED_HOST,
    WD_PROXY_X_FORWARDED_PROTO, WD_PROXY_X_FORWARDED_PORT,
    WD_PROXY_X_FORWARDED_BY,    WD_PROXY_FORWARDED,
};

/* Where a raw value came from. */
enum { SRC_NONE, SRC_FILE, SRC_CLI };

/* One option's value before coercion. */
struct raw {
    int src;
    char *cli;                   /* command-line text (owned) */
    const config_setting_t *set; /* file setting (owned by build.lc) */
};

/* The state of one wd_config_from_argv call. */
struct build {
    struct wd_config *cfg;
    struct raw raw[NOPTS];
    config_t lc;
    int lc_used;
    struct wd_strlist proxy_headers; /* trusted_proxy_headers, lowercased */
    char *err;
    size_t errlen;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * S, valid UTF-8 whose characters all lie in latin-1, becomes those
 * latin-1 bytes (it can only get shorter): 0.  Anything else stays as it
 * is: -1.
 * waitress holds ident, server_name, url_scheme and url_prefix as text
 * and meets the wire with them as latin-1: the Server header's bytes,
 * the environ's latin-1 strs, the path the prefix is matched against.
 */
static int
latin1_in_place(char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char *o = s;

    if (s == NULL)
        return 0;
    for (; *p != '\0'; p++) {
        if (*p < 0x80)
            continue;
        if ((*p != 0xc2 && *p != 0xc3) || (p[1] & 0xc0) != 0x80)
            return -1; /* not latin-1 as UTF-8 (or not UTF-8 at all) */
        p++;
    }
    for (p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= 0x80) {
            *o++ = (char)(((p[0] & 0x03) << 6) | (p[1] & 0x3f));
            p++;
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return 0;
}

static int
find_option(const char *key)
{
    size_t i;

    for (i = 0; i < NOPTS; i++)
        if (strcmp(options[i].name, key) == 0)
            return (int)i;
    return -1;
}

/* KEY with every '-' turned into '_' (a new string), NULL on ENOMEM. */
static char *
key_normalize(const char *key, size_t len)
{
    char *k = strndup(key, len);
    char *p;

    if (k != NULL)
        for (p = k; *p != '\0'; p++)
            if (*p == '-')
                *p = '_';
    return k;
}

static int
is_space(int c)
{
    /* Python's str.split()/strip() whitespace, ASCII part. */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static void
strlist_clear(struct wd_strlist *l)
{
    size_t i;

    for (i = 0; i < l->len; i++)
        free(l->items[i]);
    WD_FREE(l->items);
    l->len = 0;
}

static int
strlist_add(struct wd_strlist *l, const char *s, size_t n)
{
    char **items;
    char *copy;

    if ((copy = strndup(s, n)) == NULL)
        return -1;
    if ((items = realloc(l->items, (l->len + 1) * sizeof *items)) == NULL) {
        free(copy);
        return -1;
    }
    l->items = items;
    l->items[l->len++] = copy;
    return 0;
}

/* Append the whitespace-separated words of S to L (SPEC.md 2.1 list). */
static int
strlist_split(struct wd_strlist *l, const char *s)
{
    while (*s != '\0') {
        const char *start;

        while (is_space((unsigned char)*s))
            s++;
        start = s;
        while (*s != '\0' && !is_space((unsigned char)*s))
            s++;
        if (s > start && strlist_add(l, start, (size_t)(s - start)) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* coercion of one value (SPEC.md 2.1)                                  */

/* Python int(s): surrounding whitespace, a sign, decimal digits.  -1 if
 * not that; -2 if past 64 bits, with *OUT saturated (LLONG_MAX/MIN). */
static int
parse_pyint(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0, over = 0;
    unsigned long long v = 0;
    int digits = 0;

    while (is_space((unsigned char)*p))
        p++;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        unsigned d = (unsigned)(*p - '0');

        if (over || v > ((unsigned long long)LLONG_MAX + 1 - d) / 10)
            over = 1; /* the rest is still read, to tell -1 from -2 */
        else
            v = v * 10 + d;
    }
    while (is_space((unsigned char)*p))
        p++;
    if (digits == 0 || *p != '\0')
        return -1;
    if (over || (!neg && v > (unsigned long long)LLONG_MAX)) {
        *out = neg ? LLONG_MIN : LLONG_MAX;
        return -2;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

static int
parse_pybool(const char *s)
{
    static const char *const truthy[] = {"t", "true", "y", "yes", "on", "1"};
    const char *end;
    size_t n, i;

    while (is_space((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && is_space((unsigned char)end[-1]))
        end--;
    n = (size_t)(end - s);
    for (i = 0; i < sizeof truthy / sizeof truthy[0]; i++)
        if (strlen(truthy[i]) == n && strncasecmp(s, truthy[i], n) == 0)
            return 1;
    return 0;
}

/* Python int(s, 8), without underscores: "600", "0o660", " 17 ". */
static int
parse_octal(const char *s, long long *out)
{
    const char *p = s;
    long long v = 0;
    int digits = 0;

    while (is_space((unsigned char)*p))
        p++;
    if (*p == '+')
        p++;
    if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        p += 2;
    for (; *p >= '0' && *p <= '7'; p++, digits++) {
        if (v > (LLONG_MAX >> 3))
            return -1;
        v = v * 8 + (*p - '0');
    }
    while (is_space((unsigned char)*p))
        p++;
    if (digits == 0 || *p != '\0')
        return -1;
    *out = v;
    return 0;
}

/* slash_fixed_str: trim; if not empty, "/" + s.lstrip("/").rstrip("/"). */
static char *
fix_prefix(const char *s)
{
    const char *end;
    char *out;

    while (is_space((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && is_space((unsigned char)end[-1]))
        end--;
    if (end == s)
        return strdup("");
    while (s < end && *s == '/')
        s++;
    while (end > s && end[-1] == '/')
        end--;
    if ((out = malloc((size_t)(end - s) + 2)) == NULL)
        return NULL;
    out[0] = '/';
    memcpy(out + 1, s, (size_t)(end - s));
    out[(end - s) + 1] = '\0';
    return out;
}

/*
 * A value to coerce: either text (command line, default, file string) or a
 * non-string libconfig setting.
 */
struct val {
    const char *text;            /* NULL: look at set */
    const config_setting_t *set; /* scalar or aggregate, not a string */
};

/* D as Python prints a float: the shortest text that reads back as D,
   with ".0" when it would look like an integer (3.0, not 3). */
static void
float_text(double d, char *out, size_t len)
{
    int prec, exp;
    char *e;

    /* the fewest digits that read back as D, in d.ddde+XX form */
    for (prec = 0; prec < 17; prec++) {
        snprintf(out, len, "%.*e", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if ((e = strchr(out, 'e')) == NULL)
        return; /* inf, nan */
    exp = atoi(e + 1);
    if (exp < -4 || exp >= 16)
        return; /* Python keeps the exponent form too */
    snprintf(out, len, "%.*f", prec > exp ? prec - exp : 0, d);
    if (strchr(out, '.') == NULL && strlen(out) + 2 < len)
        strcat(out, ".0");
}

/* "invalid value for KEY: 'TEXT'" or the setting's value, or no value. */
static int
bad_value(struct build *b, const struct opt *o, const struct val *v,
          const char *why)
{
    const char *sep = why != NULL ? " " : "";
    char num[32];

    why = why != NULL ? why : "";
    if (v->text != NULL) {
        seterr(b->err, b->errlen, "invalid value for %s: '%s'%s%s", o->name,
               v->text, sep, why);
        return -1;
    }
    switch (config_setting_type(v->set)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        seterr(b->err, b->errlen, "invalid value for %s: %lld%s%s", o->name,
               (long long)config_setting_get_int64(v->set), sep, why);
        break;
    case CONFIG_TYPE_FLOAT:
        float_text(config_setting_get_float(v->set), num, sizeof num);
        seterr(b->err, b->errlen, "invalid value for %s: %s%s%s", o->name,
               num, sep, why);
        break;
    case CONFIG_TYPE_BOOL:
        seterr(b->err, b->errlen, "invalid value for %s: %s%s%s", o->name,
               config_setting_get_bool(v->set) ? "true" : "false", sep, why);
        break;
    default:
        seterr(b->err, b->errlen, "invalid value for %s", o->name);
        break;
    }
    return -1;
}

static int
nomem(struct build *b)
{
    seterr(b->err, b->errlen, "out of memory");
    return -1;
}

/* An integer libconfig setting, as text for the string-based coercions. */
static int
int_setting_text(const config_setting_t *s, char *buf, size_t len)
{
    int t = config_setting_type(s);

    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return -1;
    snprintf(buf, len, "%lld", (long long)config_setting_get_int64(s));
    return 0;
}

static int
coerce_int(struct build *b, const struct opt *o, const struct val *v,
           long long *out)
{
    int rc, t;

    if (v->text != NULL) {
        rc = parse_pyint(v->text, out);
        /* past 64 bits: Python's int() has no bound, and a size or limit
           that large is as good as none; the int options say their range
           (below) */
        if (rc == -2 && o->type == T_INT64)
            return 0;
        return rc == -1 ? bad_value(b, o, v, NULL) : 0;
    }
    t = config_setting_type(v->set);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return bad_value(b, o, v, NULL);
    *out = config_setting_get_int64(v->set);
    return 0;
}

/* One list element of a file array: a string, or an int for sockets. */
static int
split_setting_elem(struct build *b, const struct opt *o,
                   const config_setting_t *e, struct wd_strlist *l)
{
    char num[32];
    const char *s;

    if (config_setting_type(e) == CONFIG_TYPE_STRING) {
        s = config_setting_get_string(e);
    } else if (o->type == T_FDLIST && int_setting_text(e, num, sizeof num) == 0) {
        s = num;
    } else {
        struct val ev = {NULL, e};

        return bad_value(b, o, &ev, NULL);
    }
    return strlist_split(l, s) < 0 ? nomem(b) : 0;
}

/* list / set / sockets: text or a libconfig array/list, split on spaces. */
static int
coerce_list(struct build *b, const struct opt *o, const struct val *v,
            struct wd_strlist *l)
{
    int t, i, n;

    if (v->text != NULL)
        return strlist_split(l, v->text) < 0 ? nomem(b) : 0;
    t = config_setting_type(v->set);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return bad_value(b, o, v, NULL);
    n = config_setting_length(v->set);
    for (i = 0; i < n; i++)
        if (split_setting_elem(b, o, config_setting_get_elem(v->set,
                                                             (unsigned)i),
                               l) < 0)
            return -1;
    return 0;
}

/* Store V into the field of option O.  0, or -1 with the message set. */
static int
coerce(struct build *b, const struct opt *o, const struct val *v)
{
    struct wd_config *cfg = b->cfg;
    void *field = (char *)cfg + o->off;
    struct val tv = *v;
    char num[32];
    long long n;
    char *s;

    /* Scalar text types also take a libconfig integer, as its digits. */
    if (tv.text == NULL && o->type != T_LIST && o->type != T_SET &&
        o->type != T_FDLIST && o->type != T_BOOL && o->type != T_INT &&
        o->type != T_INT64) {
        if (int_setting_text(tv.set, num, sizeof num) < 0)
            return bad_value(b, o, v, NULL);
        tv.text = num;
    }

    switch (o->type) {
    case T_STR:
    case T_STR_OR_NONE:
    case T_PREFIX:
        if (o->type == T_STR_OR_NONE && tv.text[0] == '\0')
            s = NULL;
        else if ((s = o->type == T_PREFIX ? fix_prefix(tv.text)
                                          : strdup(tv.text)) == NULL)
            return nomem(b);
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    case T_INT:
        if (coerce_int(b, o, &tv, &n) < 0)
            return -1;
        if (n < INT_MIN)
            return bad_value(b, o, &tv,
                             "(out of range: at least -2147483648)");
        if (n > INT_MAX)
            return bad_value(b, o, &tv, "(out of range: at most 2147483647)");
        *(int *)field = (int)n;
        return 0;
    case T_INT64:
        if (coerce_int(b, o, &tv, &n) < 0)
            return -1;
        *(int64_t *)field = n;
        return 0;
    case T_BOOL:
        if (tv.text != NULL) {
            *(int *)field = parse_pybool(tv.text);
            return 0;
        }
        switch (config_setting_type(tv.set)) {
        case CONFIG_TYPE_BOOL:
            *(int *)field = config_setting_get_bool(tv.set) != 0;
            return 0;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            *(int *)field = config_setting_get_int64(tv.set) != 0;
            return 0;
        default:
            return bad_value(b, o, v, NULL);
        }
    case T_OCTAL:
    case T_UMASK:
        if (parse_octal(tv.text, &n) < 0)
            return bad_value(b, o, &tv, "(expected octal digits)");
        if (n > 07777)
            return bad_value(b, o, &tv, "(at most 7777)");
        if (o->type == T_OCTAL)
            *(unsigned *)field = (unsigned)n;
        else
            *(int *)field = (int)n;
        return 0;
    case T_LEVEL:
        /* An unknown name is reported by step 16, in SPEC.md's order. */
        *(int *)field = wd_log_level_parse(tv.text);
        return 0;
    case T_LIST:
        strlist_clear(field);
        return coerce_list(b, o, &tv, field);
    case T_SET: {
        struct wd_strlist *l = &b->proxy_headers;
        size_t i;
        char *p;

        strlist_clear(l);
        if (coerce_list(b, o, &tv, l) < 0)
            return -1;
        for (i = 0; i < l->len; i++)
            for (p = l->items[i]; *p != '\0'; p++)
                *p = (char)tolower((unsigned char)*p);
        return 0;
    }
    case T_FDLIST: {
        struct wd_strlist l = {NULL, 0};
        size_t i;
        int *fds;

        if (coerce_list(b, o, &tv, &l) < 0) {
            strlist_clear(&l);
            return -1;
        }
        fds = calloc(l.len + 1, sizeof *fds);
        if (fds == NULL) {
            strlist_clear(&l);
            return nomem(b);
        }
        for (i = 0; i < l.len; i++) {
            struct val ev = {l.items[i], NULL};

            if (parse_pyint(l.items[i], &n) < 0 || n < 0 || n > INT_MAX) {
                bad_value(b, o, &ev, NULL);
                free(fds);
                strlist_clear(&l);
                return -1;
            }
            fds[i] = (int)n;
        }
        free(cfg->sockets);
        cfg->sockets = fds;
        cfg->nsockets = l.len;
        strlist_clear(&l);
        return 0;
    }
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* init / cleanup                                                        */

static int
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (n > INT_MAX ? INT_MAX : (int)n);
}

int
wd_config_init(struct wd_config *cfg)
{
    struct build b;
    char err[256];
    size_t i;

    memset(cfg, 0, sizeof *cfg);
    memset(&b, 0, sizeof b);
    b.cfg = cfg;
    b.err = err;
    b.errlen = sizeof err;
    cfg->umask = -1;
    cfg->uid = (uid_t)-1;
    cfg->gid = (gid_t)-1;
    cfg->workers = online_cpus();
    if ((cfg->given = calloc(NOPTS, 1)) == NULL)
        return -1;
    for (i = 0; i < NOPTS; i++) {
        struct val v = {options[i].def, NULL};

        if (options[i].def == NULL)
            continue;
        if (coerce(&b, &options[i], &v) < 0) {
            strlist_clear(&b.proxy_headers);
            wd_config_cleanup(cfg);
            return -1;
        }
    }
    strlist_clear(&b.proxy_headers);
    return 0;
}

void
wd_config_cleanup(struct wd_config *cfg)
{
    size_t i;

    for (i = 0; i < NOPTS; i++) {
        void *field = (char *)cfg + options[i].off;

        switch (options[i].type) {
        case T_STR:
        case T_STR_OR_NONE:
        case T_PREFIX:
            WD_FREE(*(char **)field);
            break;
        case T_LIST:
            strlist_clear(field);
            break;
        default:
            break;
        }
    }
    WD_FREE(cfg->sockets);
    cfg->nsockets = 0;
    WD_FREE(cfg->addrs);
    cfg->naddrs = 0;
    WD_FREE(cfg->config_file);
    WD_FREE(cfg->given);
}

int
wd_config_given(const struct wd_config *cfg, const char *key)
{
    int i = find_option(key);

    return i >= 0 && cfg->given != NULL && cfg->given[i];
}

/* ------------------------------------------------------------------ */
/* usage                                                                 */

static const char *
metavar(enum opt_type t)
{
    switch (t) {
    case T_INT:
    case T_INT64:
        return "N";
    case T_OCTAL:
    case T_UMASK:
        return "OCTAL";
    case T_LIST:
    case T_SET:
        return "LIST";
    case T_FDLIST:
        return "FDS";
    case T_LEVEL:
        return "LEVEL";
    default:
        return "STR";
    }
}

void
wd_config_usage(FILE *out)
{
    size_t i;

    fputs("Usage: waitressd [-c FILE] [-t] [--OPTION[=VALUE] ...] "
          "[MODULE:CALLABLE]\n"
          "       waitressd -h | --help\n"
          "       waitressd -V | --version\n"
          "\n"
          "  -c FILE, --config=FILE\n"
          "        Read settings from this libconfig file.\n"
          "  -t, --check-config\n"
          "        Check the configuration (and the application) and exit.\n"
          "  -h, --help\n"
          "        Show this text and exit.\n"
          "  -V, --version\n"
          "        Show the version and exit.\n"
          "\n"
          "Options (also file keys, with '_' for '-'; command line > file > "
          "default):\n",
          out);
    for (i = 0; i < NOPTS; i++) {
        const struct opt *o = &options[i];
        char flag[64];
        const char *p;
        size_t j;

        for (p = o->name, j = 0; *p != '\0' && j < sizeof flag - 1; p++)
            flag[j++] = *p == '_' ? '-' : *p;
        flag[j] = '\0';
        if (o->type == T_BOOL)
            fprintf(out, "  --%s, --no-%s\n", flag, flag);
        else
            fprintf(out, "  --%s=%s\n", flag, metavar(o->type));
        fprintf(out, "        %s", o->help);
        if (o->def == NULL)
            fputc('\n', out);
        else if (o->def[0] == '\0')
            fputs(" Default: empty.\n", out);
        else
            fprintf(out, " Default: %s.\n", o->def);
    }
}

/* ------------------------------------------------------------------ */
/* command line                                                          */

/* Record a usage error (first one wins). */
static void __attribute__((format(printf, 4, 5)))
usage_err(struct build *b, int *failed, int kind, const char *fmt, ...)
{
    va_list ap;

    if (*failed)
        return;
    *failed = 1;
    b->cfg->usage_error = kind;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
}

/* Set the command-line text of option I (accumulating list options). */
static int
set_cli(struct build *b, int i, const char *value)
{
    struct raw *r = &b->raw[i];
    char *s;

    if ((options[i].flags & OPT_ACCUM) && r->cli != NULL) {
        size_t a = strlen(r->cli), n = strlen(value);

        if ((s = malloc(a + n + 2)) == NULL)
            return -1;
        memcpy(s, r->cli, a);
        s[a] = '\n';
        memcpy(s + a + 1, value, n + 1);
    } else if ((s = strdup(value)) == NULL) {
        return -1;
    }
    free(r->cli);
    r->cli = s;
    r->src = SRC_CLI;
    return 0;
}

/*
 * Scan ARGV.  Fills raw[] (command-line values), *config_path, *app_count,
 * *help, *version, *check.  Usage errors are recorded, and scanning goes
 * on so that a later --help still wins.
 */
static int
scan_argv(struct build *b, int argc, char **argv, const char **config_path,
          int *help, int *version, int *check, int *failed)
{
    int app_index = find_option("app");
    int positionals = 0, app_flag = 0;
    int only_positional = 0;
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (positionals++ == 0 && !app_flag) {
                if (set_cli(b, app_index, arg) < 0)
                    return nomem(b);
            }
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
            const char *value = eq != NULL ? eq + 1 : NULL;
            char *key;
            int idx, negate = 0;

            if ((key = key_normalize(name, nlen)) == NULL)
                return nomem(b);
            if (memchr(name, '_', nlen) != NULL) {
                /* Flags are spelled with '-' only, as in waitress-serve. */
                idx = -1;
            } else if (strcmp(key, "help") == 0 ||
                       strcmp(key, "version") == 0 ||
                       strcmp(key, "check_config") == 0) {
                if (value != NULL)
                    usage_err(b, failed, WD_USAGE_ERROR,
                              "option --%.*s must not have an argument",
                              (int)nlen, name);
                else if (key[0] == 'h')
                    *help = 1;
                else if (key[0] == 'v')
                    *version = 1;
                else
                    *check = 1;
                free(key);
                continue;
            } else if (strcmp(key, "config") == 0) {
                if (value == NULL && i + 1 < argc)
                    value = argv[++i];
                if (value == NULL)
                    usage_err(b, failed, WD_USAGE_ERROR,
                              "option --config requires argument");
                else
                    *config_path = value;
                free(key);
                continue;
            } else if ((idx = find_option(key)) < 0 &&
                       strncmp(key, "no_", 3) == 0 &&
                       (idx = find_option(key + 3)) >= 0) {
                if (options[idx].type == T_BOOL)
                    negate = 1;
                else
                    idx = -1;
            }
            free(key);
            if (idx < 0) {
                usage_err(b, failed, WD_USAGE_ERROR_HELP,
                          "option --%.*s not recognized", (int)nlen, name);
                continue;
            }
            if (options[idx].type == T_BOOL) {
                if (value != NULL) {
                    usage_err(b, failed, WD_USAGE_ERROR,
                              "option --%.*s must not have an argument",
                              (int)nlen, name);
                    continue;
                }
                value = negate ? "false" : "true";
            } else {
                if (value == NULL && i + 1 < argc)
                    value = argv[++i];
                if (value == NULL) {
                    usage_err(b, failed, WD_USAGE_ERROR,
                              "option --%.*s requires argument", (int)nlen,
                              name);
                    continue;
                }
            }
            if (idx == app_index) {
                app_flag = 1; /* repeated: the last one wins */
                b->raw[idx].src = SRC_NONE; /* --app wins over a positional */
            }
            if (set_cli(b, idx, value) < 0)
                return nomem(b);
            continue;
        }
        /* A cluster of short options: -t, -h, -V, -c FILE / -cFILE. */
        for (const char *p = arg + 1; *p != '\0'; p++) {
            if (*p == 'h') {
                *help = 1;
            } else if (*p == 'V') {
                *version = 1;
            } else if (*p == 't') {
                *check = 1;
            } else if (*p == 'c') {
                if (p[1] != '\0')
                    *config_path = p + 1;
                else if (i + 1 < argc)
                    *config_path = argv[++i];
                else
                    usage_err(b, failed, WD_USAGE_ERROR,
                              "option -c requires argument");
                break;
            } else {
                /* reported; the rest of the cluster still counts, as
                   GNU getopt reads -xh */
                usage_err(b, failed, WD_USAGE_ERROR_HELP,
                          "option -%c not recognized", *p);
            }
        }
    }
    if (positionals + app_flag > 1)
        usage_err(b, failed, WD_USAGE_ERROR, "Provide only one WSGI app");
    return 0;
}

/* ------------------------------------------------------------------ */
/* configuration file                                                    */

/*
 * How to name a file libconfig read, for an error: NULL is the top file
 * (PATH); an @include names its file relative to the include directory,
 * which need not be the current one.
 */
static const char *
shown_file(const char *file, const char *path, const char *include_dir,
           char *buf, size_t len)
{
    size_t dlen = include_dir != NULL ? strlen(include_dir) : 0;

    if (file == NULL)
        return path;
    /* libconfig 1.5 keeps the name as written; 1.7 joins it itself */
    if (file[0] == '/' || include_dir == NULL ||
        (strncmp(file, include_dir, dlen) == 0 && file[dlen] == '/'))
        return file;
    snprintf(buf, len, "%s/%s",
             strcmp(include_dir, "/") == 0 ? "" : include_dir, file);
    return buf;
}

static int
load_file(struct build *b, const char *path)
{
    config_setting_t *root;
    char *dir, *slash, *text;
    const char *include_dir = NULL;
    size_t len;
    int i, n, rc;

    /* read here, and looked over first: see cfgscan.h */
    if (wd_cfgscan_read(path, &text, &len, b->err, b->errlen) < 0)
        return -1;
    config_init(&b->lc);
    b->lc_used = 1;
    /* @include paths are relative to the file's own directory. */
    if ((dir = strdup(path)) != NULL) {
        if ((slash = strrchr(dir, '/')) != NULL) {
            *slash = '\0';
            config_set_include_dir(&b->lc, dir[0] != '\0' ? dir : "/");
            include_dir = config_get_include_dir(&b->lc);
        }
        free(dir);
    }
    if (wd_cfgscan_text(text, len, path, include_dir, 0, b->err,
                        b->errlen) < 0) {
        free(text);
        return -1;
    }
    rc = config_read_string(&b->lc, text);
    free(text);
    if (rc != CONFIG_TRUE) {
        char name[PATH_MAX];

        seterr(b->err, b->errlen, "%s:%d: %s",
               shown_file(config_error_file(&b->lc), path, include_dir,
                          name, sizeof name),
               config_error_line(&b->lc), config_error_text(&b->lc));
        return -1;
    }

    root = config_root_setting(&b->lc);
    n = config_setting_length(root);
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root,
                                                            (unsigned)i);
        const char *name = config_setting_name(s);
        char *key;
        int idx;

        if ((key = key_normalize(name, strlen(name))) == NULL)
            return nomem(b);
        idx = find_option(key);
        free(key);
        if (idx < 0) {
            seterr(b->err, b->errlen, "Unknown adjustment '%s'", name);
            return -1;
        }
        if (b->raw[idx].set != NULL) {
            char fname[PATH_MAX];

            seterr(b->err, b->errlen,
                   "%s:%d: %s is set twice (as %s and %s); use one spelling",
                   shown_file(config_setting_source_file(s), path,
                              include_dir, fname, sizeof fname),
                   config_setting_source_line(s), options[idx].name,
                   config_setting_name(b->raw[idx].set), name);
            return -1;
        }
        b->raw[idx].set = s;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* address resolution (SPEC.md 3.1)                                      */

static int
add_addr(struct wd_config *cfg, const struct addrinfo *ai)
{
    char host[NI_MAXHOST], other[NI_MAXHOST];
    struct wd_addr *a;
    char *pct;
    int port, oport;
    size_t i;

    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
        return 0;
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST) != 0)
        return -1;
    if ((pct = strchr(host, '%')) != NULL)
        *pct = '\0';
    port = ai->ai_family == AF_INET
               ? ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port)
               : ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
    /* Drop a repeated (address, port) pair; port 0 is never a repeat. */
    for (i = 0; port != 0 && i < cfg->naddrs; i++) {
        a = &cfg->addrs[i];
        oport = a->family == AF_INET
                    ? ntohs(((struct sockaddr_in *)&a->ss)->sin_port)
                    : ntohs(((struct sockaddr_in6 *)&a->ss)->sin6_port);
        if (oport != port)
            continue;
        if (getnameinfo((struct sockaddr *)&a->ss, a->len, other,
                        sizeof other, NULL, 0, NI_NUMERICHOST) != 0)
            return -1;
        if ((pct = strchr(other, '%')) != NULL)
            *pct = '\0';
        if (strcmp(host, other) == 0)
            return 0;
    }
    a = realloc(cfg->addrs, (cfg->naddrs + 1) * sizeof *a);
    if (a == NULL)
        return -1;
    cfg->addrs = a;
    a = &cfg->addrs[cfg->naddrs++];
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
    a->len = ai->ai_addrlen;
    a->family = ai->ai_family;
    return 0;
}

static int
resolve_entry(struct wd_config *cfg, const char *entry, int family)
{
    struct addrinfo hints, *res = NULL, *ai;
    char defport[24];
    char *h, *p, *colon, *end;
    const char *host;
    int rc = -1;

    if ((h = strdup(entry)) == NULL)
        return -1;
    snprintf(defport, sizeof defport, "%" PRId64, cfg->port);
    p = defport;
    if ((colon = strrchr(h, ':')) != NULL && strchr(colon + 1, ']') == NULL) {
        *colon = '\0';
        p = colon + 1;
    }
    /* "[::1]" -> "::1": strip every leading '[' and trailing ']'. */
    host = h;
    if (strchr(h, '[') != NULL && strchr(h, ']') != NULL) {
        while (*host == '[')
            host++;
        end = (char *)host + strlen(host);
        while (end > host && end[-1] == ']')
            *--end = '\0';
    }
    if (*host == '\0' || !wd_port_ok(p))
        goto out;
    if (strcmp(host, "*") == 0)
        host = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, p, &hints, &res) != 0)
        goto out;
    for (ai = res; ai != NULL; ai = ai->ai_next)
        if (add_addr(cfg, ai) < 0)
            goto out;
    rc = 0;
out:
    if (res != NULL)
        freeaddrinfo(res);
    free(h);
    return rc;
}

static int
ipv6_supported(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int
wd_config_resolve(struct wd_config *cfg, char *err, size_t errlen)
{
    int family = AF_UNSPEC;
    size_t i;

    WD_FREE(cfg->addrs);
    cfg->naddrs = 0;
    if (!cfg->ipv4 && !ipv6_supported()) {
        seterr(err, errlen, "IPv4 is disabled but IPv6 is not available. "
                            "Cowardly refusing to start.");
        return -1;
    }
    /* ipv4 and ipv6 both false leaves AF_UNSPEC: waitress does the same. */
    if (cfg->ipv4 && !cfg->ipv6)
        family = AF_INET;
    else if (!cfg->ipv4 && cfg->ipv6)
        family = AF_INET6;
    for (i = 0; i < cfg->listen.len; i++) {
        if (resolve_entry(cfg, cfg->listen.items[i], family) < 0) {
            WD_FREE(cfg->addrs);
            cfg->naddrs = 0;
            seterr(err, errlen, "Invalid host/port specified.");
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* validation (SPEC.md 2.2, in its order)                                */

static int
given(const struct build *b, const char *key)
{
    return b->cfg->given[find_option(key)];
}

static int
check_conflicts(struct build *b)
{
    int listen = given(b, "listen"), sockets = given(b, "sockets");
    int hostport = given(b, "host") || given(b, "port");
    int unix_socket = given(b, "unix_socket");
    const char *msg = NULL;

    if (listen && hostport)
        msg = "host or port may not be set if listen is set.";
    else if (listen && sockets)
        msg = "socket may not be set if listen is set.";
    else if (sockets && hostport)
        msg = "host or port may not be set if sockets is set.";
    else if (sockets && unix_socket)
        msg = "unix_socket may not be set if sockets is set";
    else if (unix_socket && hostport)
        msg = "unix_socket may not be set if host or port is set";
    else if (unix_socket && listen)
        msg = "unix_socket may not be set if listen is set";
    if (msg != NULL) {
        seterr(b->err, b->errlen, "%s", msg);
        return -1;
    }
    return 0;
}

static int
check_proxy(struct build *b)
{
    struct wd_config *cfg = b->cfg;
    struct wd_strlist *l = &b->proxy_headers;
    char unknown[512] = "", known[256] = "";
    size_t i, j;

    cfg->trusted_proxy_count_set = given(b, "trusted_proxy_count");
    if (cfg->trusted_proxy_count_set && cfg->trusted_proxy == NULL) {
        seterr(b->err, b->errlen, "trusted_proxy_count has no meaning "
                                  "without setting trusted_proxy");
        return -1;
    }
    if (!cfg->trusted_proxy_count_set)
        cfg->trusted_proxy_count = 1;
    if (l->len > 0 && cfg->trusted_proxy == NULL) {
        seterr(b->err, b->errlen, "trusted_proxy_headers has no meaning "
                                  "without setting trusted_proxy");
        return -1;
    }
    cfg->trusted_proxy_headers = 0;
    for (i = 0; i < l->len; i++) {
        int found = 0, dup = 0;

        for (j = 0; j < WD_ARRAY_LEN(known_proxy_headers); j++)
            if (strcmp(l->items[i], known_proxy_headers[j]) == 0) {
                cfg->trusted_proxy_headers |= known_proxy_bits[j];
                found = 1;
            }
        for (j = 0; !found && j < i; j++)
            dup |= strcmp(l->items[i], l->items[j]) == 0;
        if (!found && !dup) {
            if (unknown[0] != '\0')
                strncat(unknown, ", ", sizeof unknown - strlen(unknown) - 1);
            strncat(unknown, l->items[i],
                    sizeof unknown - strlen(unknown) - 1);
        }
    }
    if (unknown[0] != '\0') {
        for (j = 0; j < WD_ARRAY_LEN(known_proxy_headers); j++) {
            if (j > 0)
                strcat(known, ", ");
            strcat(known, known_proxy_headers[j]);
        }
        seterr(b->err, b->errlen,
               "Received unknown trusted_proxy_headers value (%s) expected "
               "one of %s",
               unknown, known);
        return -1;
    }
    if ((cfg->trusted_proxy_headers & WD_PROXY_FORWARDED) &&
        (cfg->trusted_proxy_headers & ~(unsigned)WD_PROXY_FORWARDED)) {
        seterr(b->err, b->errlen,
               "The Forwarded proxy header and the "
               "X-Forwarded-{By,Host,Proto,Port,For} headers are mutually "
               "exclusive. Can't trust both!");
        return -1;
    }
    if (cfg->trusted_proxy != NULL && cfg->trusted_proxy_headers == 0) {
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "No proxy headers were marked as trusted, but trusted_proxy "
               "was set. Implicitly trusting X-Forwarded-Proto for backwards "
               "compatibility. This will be removed in future versions of "
               "waitress.");
        cfg->trusted_proxy_headers = WD_PROXY_X_FORWARDED_PROTO;
    }
    return 0;
}

/*
 * systemd socket activation (SPEC.md 3.3): with no address-group key
 * given, LISTEN_FDS fds starting at 3 become `sockets` when LISTEN_PID is
 * this process.
 */
static int
adopt_listen_fds(struct build *b)
{
    struct wd_config *cfg = b->cfg;
    const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
    long long p, n;
    int i;

    if (pid == NULL || nfds == NULL || parse_pyint(pid, &p) < 0 ||
        parse_pyint(nfds, &n) < 0 || p != (long long)getpid() || n < 1 ||
        n > 1024)
        return 0;
    free(cfg->sockets);
    if ((cfg->sockets = calloc((size_t)n, sizeof(int))) == NULL)
        return nomem(b);
    for (i = 0; i < n; i++)
        cfg->sockets[i] = 3 + i;
    cfg->nsockets = (size_t)n;
    return 0;
}

static int
check_sockets(struct build *b)
{
    struct wd_config *cfg = b->cfg;
    int has_inet = 0, has_unix = 0, unsupported = 0;
    size_t i;

    for (i = 0; i < cfg->nsockets; i++) {
        int domain, type;
        socklen_t len = sizeof domain;

        if (getsockopt(cfg->sockets[i], SOL_SOCKET, SO_DOMAIN, &domain,
                       &len) < 0) {
            unsupported = 1;
            continue;
        }
        len = sizeof type;
        if (getsockopt(cfg->sockets[i], SOL_SOCKET, SO_TYPE, &type, &len) <
            0) {
            unsupported = 1;
            continue;
        }
        if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM)
            has_inet = 1;
        else if (domain == AF_UNIX && type == SOCK_STREAM)
            has_unix = 1;
        else
            unsupported = 1;
    }
    if (has_inet && has_unix) {
        seterr(b->err, b->errlen,
               "Internet and UNIX sockets may not be mixed.");
        return -1;
    }
    if (unsupported) {
        seterr(b->err, b->errlen,
               "Only Internet or UNIX stream sockets may be used.");
        return -1;
    }
    return 0;
}

/* A numeric id of NAME: 1 (in *ID), 0 when NAME is not a number, -1 for
 * one past uid_t/gid_t's 32 bits (it names no one; it must not wrap). */
static int
numeric_id(const char *name, unsigned *id)
{
    long long n;

    if (parse_pyint(name, &n) != 0 || n < 0)
        return 0;
    if ((unsigned long long)n > UINT_MAX)
        return -1;
    *id = (unsigned)n;
    return 1;
}

/* A user or group given by name or number; -1 when it does not exist. */
static int
lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd *pw;
    unsigned id;
    int num = numeric_id(name, &id);

    if (num < 0)
        return -1;
    pw = num ? getpwuid((uid_t)id) : getpwnam(name);
    if (pw == NULL)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static int
lookup_group(const char *name, gid_t *gid)
{
    struct group *gr;
    unsigned id;
    int num = numeric_id(name, &id);

    if (num < 0)
        return -1;
    gr = num ? getgrgid((gid_t)id) : getgrnam(name);
    if (gr == NULL)
        return -1;
    *gid = gr->gr_gid;
    return 0;
}

static int
check_new_options(struct build *b)
{
    struct wd_config *cfg = b->cfg;
    static const struct {
        const char *key;
        size_t off;
        int min;
    } limits[] = {
        {"workers", offsetof(struct wd_config, workers), 1},
        {"threads", offsetof(struct wd_config, threads), 1},
        {"graceful_timeout", offsetof(struct wd_config, graceful_timeout), 0},
        {"worker_timeout", offsetof(struct wd_config, worker_timeout), 0},
        {"max_requests", offsetof(struct wd_config, max_requests), 0},
        {"max_requests_jitter",
         offsetof(struct wd_config, max_requests_jitter), 0},
    };
    size_t i;
    gid_t user_gid;

    for (i = 0; i < WD_ARRAY_LEN(limits); i++) {
        int v = *(int *)((char *)cfg + limits[i].off);

        if (v < limits[i].min) {
            seterr(b->err, b->errlen, "%s must be at least %d (got %d)",
                   limits[i].key, limits[i].min, v);
            /* SPEC.md gives this one verbatim. */
            if (strcmp(limits[i].key, "threads") == 0)
                seterr(b->err, b->errlen, "threads must be at least 1");
            return -1;
        }
    }
    if (cfg->log_level < 0) {
        int idx = find_option("log_level");
        char num[32];
        const char *shown = b->raw[idx].cli;

        if (shown == NULL && b->raw[idx].set != NULL) {
            shown = config_setting_get_string(b->raw[idx].set);
            if (shown == NULL &&
                int_setting_text(b->raw[idx].set, num, sizeof num) == 0)
                shown = num;
        }
        seterr(b->err, b->errlen,
               "invalid value for log_level: '%s' (expected one of debug, "
               "info, warning, error, critical)",
               shown != NULL ? shown : "");
        return -1;
    }
    if (cfg->user != NULL) {
        if (lookup_user(cfg->user, &cfg->uid, &user_gid) < 0) {
            seterr(b->err, b->errlen, "invalid value for user: '%s' (no such "
                   "user)", cfg->user);
            return -1;
        }
        cfg->gid = user_gid;
    }
    if (cfg->group != NULL && lookup_group(cfg->group, &cfg->gid) < 0) {
        seterr(b->err, b->errlen, "invalid value for group: '%s' (no such "
               "group)", cfg->group);
        return -1;
    }
    /* resolved now so that -t and a reload refuse what start would */
    if (cfg->stats != NULL) {
        char why[256];

        if (wd_stats_addr_check(cfg->stats, why, sizeof why) != 0) {
            seterr(b->err, b->errlen, "invalid value for stats: %s", why);
            return -1;
        }
    }
    return 0;
}

static int
validate(struct build *b)
{
    struct wd_config *cfg = b->cfg;
    size_t i;

    /* 1-6: address-group conflicts. */
    if (check_conflicts(b) < 0)
        return -1;
    /* 7 */
    if (given(b, "send_bytes"))
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "send_bytes will be removed in a future release");
    /* 8: coerce every given key, in table order. */
    for (i = 0; i < NOPTS; i++) {
        struct raw *r = &b->raw[i];
        struct val v = {NULL, NULL};

        if (r->src == SRC_CLI) {
            v.text = r->cli;
        } else if (r->src == SRC_FILE) {
            if (config_setting_type(r->set) == CONFIG_TYPE_STRING)
                v.text = config_setting_get_string(r->set);
            else
                v.set = r->set;
        } else {
            continue;
        }
        if (coerce(b, &options[i], &v) < 0)
            return -1;
    }
    /* An explicit host or port replaces listen by "{host}:{port}". */
    if (given(b, "host") || given(b, "port")) {
        char *entry;

        if (asprintf(&entry, "%s:%" PRId64, cfg->host, cfg->port) < 0)
            return nomem(b);
        strlist_clear(&cfg->listen);
        if (strlist_add(&cfg->listen, entry, strlen(entry)) < 0) {
            free(entry);
            return nomem(b);
        }
        free(entry);
    }
    /* 9 */
    if (wd_config_resolve(cfg, b->err, b->errlen) < 0)
        return -1;
    /* 10-14 */
    if (check_proxy(b) < 0)
        return -1;
    /* 15 */
    if (!given(b, "host") && !given(b, "port") && !given(b, "listen") &&
        !given(b, "unix_socket") && !given(b, "sockets") &&
        adopt_listen_fds(b) < 0)
        return -1;
    if (check_sockets(b) < 0)
        return -1;
    /* An empty unix_socket was given (the checks above) but serves TCP,
       as waitress's "if adj.unix_socket" does. */
    if (cfg->unix_socket != NULL && cfg->unix_socket[0] == '\0')
        WD_FREE(cfg->unix_socket);
    /* The master binds addrs only when neither alternative is in use. */
    if (cfg->unix_socket != NULL || cfg->nsockets > 0) {
        WD_FREE(cfg->addrs);
        cfg->naddrs = 0;
    } else if (cfg->naddrs == 0) {
        seterr(b->err, b->errlen, "no address to listen on");
        return -1;
    }
    /* 16 */
    if (check_new_options(b) < 0)
        return -1;
    /* waitress cannot send a Server header outside latin-1 at all */
    if (latin1_in_place(cfg->ident) < 0) {
        seterr(b->err, b->errlen,
               "invalid value for ident: '%s' (not latin-1 text, which the "
               "Server header needs)",
               cfg->ident);
        return -1;
    }
    cfg->utf8_text = 0;
    if (latin1_in_place(cfg->server_name) < 0)
        cfg->utf8_text |= WD_UTF8_SERVER_NAME;
    if (latin1_in_place(cfg->url_scheme) < 0)
        cfg->utf8_text |= WD_UTF8_URL_SCHEME;
    if (latin1_in_place(cfg->url_prefix) < 0)
        cfg->utf8_text |= WD_UTF8_URL_PREFIX;
    return 0;
}

/* ------------------------------------------------------------------ */
/* entry point                                                           */

int
wd_config_from_argv(struct wd_config *cfg, int argc, char **argv,
                    enum wd_cli_action *action, char *err, size_t errlen)
{
    struct build b;
    const char *config_path = NULL;
    int help = 0, version = 0, check = 0, failed = 0;
    int addr_on_cli = 0;
    int rc = -1;
    size_t i;

    memset(&b, 0, sizeof b);
    b.cfg = cfg;
    b.err = err;
    b.errlen = errlen;
    if (errlen > 0)
        err[0] = '\0';
    cfg->usage_error = 0;
    *action = WD_CLI_RUN;

    if (scan_argv(&b, argc, argv, &config_path, &help, &version, &check,
                  &failed) < 0)
        goto out;
    if (check)
        *action = WD_CLI_CHECK;
    if (help) {
        *action = WD_CLI_HELP;
        cfg->usage_error = 0;
        wd_config_usage(stdout);
        fflush(stdout);
        rc = 0;
        goto out;
    }
    if (version) {
        *action = WD_CLI_VERSION;
        cfg->usage_error = 0;
        printf("waitressd %s\n", PACKAGE_VERSION);
        fflush(stdout);
        rc = 0;
        goto out;
    }
    /* named by -t's verdict even when a usage error stops us here */
    if (config_path != NULL &&
        (cfg->config_file = strdup(config_path)) == NULL) {
        nomem(&b);
        goto out;
    }
    if (failed)
        goto out;

    if (config_path != NULL && load_file(&b, config_path) < 0)
        goto out;
    /* Merge: the command line wins per key; the address group as a whole. */
    for (i = 0; i < NOPTS; i++)
        if ((options[i].flags & OPT_ADDR) && b.raw[i].src == SRC_CLI)
            addr_on_cli = 1;
    for (i = 0; i < NOPTS; i++) {
        struct raw *r = &b.raw[i];

        if (r->src != SRC_CLI && r->set != NULL &&
            !(addr_on_cli && (options[i].flags & OPT_ADDR)))
            r->src = SRC_FILE;
        cfg->given[i] = r->src != SRC_NONE;
    }

    /* -t checks an application only when one is named. */
    if (*action == WD_CLI_RUN && b.raw[find_option("app")].src == SRC_NONE) {
        cfg->usage_error = WD_USAGE_ERROR_HELP;
        seterr(err, errlen, "Specify an application");
        goto out;
    }
    if (validate(&b) < 0)
        goto out;
    rc = 0;
out:
    for (i = 0; i < NOPTS; i++)
        free(b.raw[i].cli);
    strlist_clear(&b.proxy_headers);
    if (b.lc_used)
        config_destroy(&b.lc);
    return rc;
}
