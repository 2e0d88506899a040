/*
 * config.h - the one configuration of waitressd.
 *
 * Every option of SPEC.md section 2 is one row of the option table in
 * config.c (name, type, default, help).  From that table come the long
 * command-line flags, the libconfig keys, the defaults, --help and the
 * validation.  Precedence: command line > file > default (address group
 * excepted, SPEC.md section 1).
 *
 * Used by the master (parse, validate, reload) and by workers (read only,
 * after fork).  No threads, no Python here.
 */
#ifndef WD_COMMON_CONFIG_H
#define WD_COMMON_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A list of strings (listen, pythonpath, trusted_proxy_headers...). */
struct wd_strlist {
    char **items;
    size_t len;
};

/* One resolved listening address (SPEC.md 3.1). */
struct wd_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int family; /* AF_INET, AF_INET6 */
};

/* trusted_proxy_headers, as bits. */
#define WD_PROXY_X_FORWARDED_FOR 0x01
#define WD_PROXY_X_FORWARDED_HOST 0x02
#define WD_PROXY_X_FORWARDED_PROTO 0x04
#define WD_PROXY_X_FORWARDED_PORT 0x08
#define WD_PROXY_X_FORWARDED_BY 0x10
#define WD_PROXY_FORWARDED 0x20

enum {
    WD_UTF8_SERVER_NAME = 1u,
    WD_UTF8_URL_SCHEME = 2u,
    WD_UTF8_URL_PREFIX = 4u,
};

struct wd_config {
    /* address group */
    char *host;
    int64_t port; /* a Python int: only the address checks its range */
    struct wd_strlist listen;
    int ipv4;
    int ipv6;
    char *unix_socket;          /* NULL: none */
    unsigned unix_socket_perms; /* mode bits */
    int *sockets;               /* inherited fds */
    size_t nsockets;
    /* resolved from listen/host/port by wd_config_validate */
    struct wd_addr *addrs;
    size_t naddrs;

    /* waitress options */
    char *server_name;
    int threads;
    char *trusted_proxy; /* NULL: none */
    int trusted_proxy_count;
    int trusted_proxy_count_set;
    unsigned trusted_proxy_headers; /* WD_PROXY_* bits */
    int log_untrusted_proxy_headers;
    int clear_untrusted_proxy_headers;
    char *url_scheme;
    char *url_prefix; /* "" when none */
    char *ident;      /* NULL when empty */
    /* server_name, url_scheme and url_prefix are latin-1 bytes, as they
       meet the wire, unless their text goes beyond latin-1: then they
       stay as given (UTF-8) and their WD_UTF8_* bit is set */
    unsigned utf8_text;
    int backlog;
    int recv_bytes;
    int send_bytes;
    int64_t outbuf_overflow;
    int64_t outbuf_high_watermark;
    int64_t inbuf_overflow;
    int connection_limit;
    int cleanup_interval;
    int channel_timeout;
    int log_socket_errors;
    int64_t max_request_header_size;
    int64_t max_request_body_size;
    int expose_tracebacks;
    int asyncore_loop_timeout;
    int asyncore_use_poll;
    int channel_request_lookahead;

    /* waitressd options (NEW) */
    char *app; /* NULL: none given */
    int call;
    struct wd_strlist pythonpath;
    int workers;
    int graceful_timeout;
    int worker_timeout;
    int max_requests;
    int max_requests_jitter;
    char *pidfile;
    int daemon;
    char *user;
    char *group;
    int umask; /* -1: unset */
    char *access_log;
    char *error_log;
    int log_level; /* enum wd_log_level */
    char *stats;

    /* user/group resolved by validation; (uid_t)-1 / (gid_t)-1: unset.
       gid is the user's primary group unless group is given. */
    uid_t uid;
    gid_t gid;

    /* where the configuration came from, for messages */
    char *config_file; /* NULL: none */
    /* one flag per option-table row, nonzero when given explicitly (file
       or command line, after the address-group rule); see
       wd_config_given() */
    unsigned char *given;
    /* after a failed wd_config_from_argv: WD_USAGE_* or 0 */
    int usage_error;
};

/*
 * Kinds of usage error (cfg->usage_error).  For these, waitressd prints
 * "Error: " + the message (SPEC.md section 1), then for the second kind
 * the usage text, all on stderr.  Every other failure is printed as
 * "waitressd: " + the message.
 */
#define WD_USAGE_ERROR 1      /* e.g. "option --x requires argument" */
#define WD_USAGE_ERROR_HELP 2 /* "option --x not recognized", no app */

/* Initialise CFG with the built-in defaults.  0 or -1 (ENOMEM). */
int wd_config_init(struct wd_config *cfg);
void wd_config_cleanup(struct wd_config *cfg);

/*
 * What the command line asked for besides options.
 */
enum wd_cli_action {
    WD_CLI_RUN,     /* serve */
    WD_CLI_CHECK,   /* -t */
    WD_CLI_HELP,    /* --help: usage printed to stdout */
    WD_CLI_VERSION, /* --version: printed to stdout */
};

/*
 * Build the whole configuration from ARGV (and the -c file it names) into
 * CFG, fresh from wd_config_init: defaults, then file, then command line,
 * then the validation of SPEC.md 2.2 in its order, including address
 * resolution.  On failure the message (one line, no "waitressd: " or
 * "Error: " prefix, no newline) is in ERR, CFG->usage_error tells whether
 * it is a usage error (see WD_USAGE_*), and -1 is returned.  *ACTION is
 * always set.  Nothing is printed except the --help text and the
 * --version line (stdout, return 0), and nothing exits, so the master can
 * call it again on SIGHUP with the saved argv.  Warnings (send_bytes,
 * implicit trusted proxy header) are logged through wd_log.
 *
 * Listening: CFG->addrs holds the resolved listen/host/port addresses,
 * and is empty when unix_socket or sockets is used instead.  With no
 * address-group key given and systemd's LISTEN_PID equal to getpid(),
 * the LISTEN_FDS descriptors (3...) become CFG->sockets (SPEC.md 3.3).
 * Under -t (WD_CLI_CHECK) an application is optional.
 */
int wd_config_from_argv(struct wd_config *cfg, int argc, char **argv,
                        enum wd_cli_action *action, char *err, size_t errlen);

/* The usage text (every option).  */
void wd_config_usage(FILE *out);

/*
 * Resolve CFG->listen (with CFG->port as the default port and the
 * ipv4/ipv6 switches) into CFG->addrs (SPEC.md 3.1), replacing what was
 * there.  0, or -1 with "Invalid host/port specified." in ERR.
 */
int wd_config_resolve(struct wd_config *cfg, char *err, size_t errlen);

/* Nonzero when option KEY (config spelling) was given explicitly. */
int wd_config_given(const struct wd_config *cfg, const char *key);

#endif
