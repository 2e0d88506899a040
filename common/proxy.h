/*
 * proxy.h - trusted proxy headers (SPEC.md 11), on the environ's values.
 *
 * The WSGI bridge fills a wd_proxy_env from the request and the peer,
 * calls wd_proxy_apply, and builds the environ from the result.  Pure C;
 * any thread.  Strings in the struct are NUL-terminated raw header bytes
 * (the latin-1 encoding of the environ's str values); the function
 * replaces them with malloc'ed copies where it changes them and frees
 * those in wd_proxy_env_cleanup.
 */
#ifndef WD_COMMON_PROXY_H
#define WD_COMMON_PROXY_H

#include <stddef.h>

struct wd_config;

/* Indexes of the six proxy headers. */
enum wd_proxy_hdr {
    WD_PH_FORWARDED,         /* HTTP_FORWARDED */
    WD_PH_X_FORWARDED_FOR,   /* HTTP_X_FORWARDED_FOR */
    WD_PH_X_FORWARDED_HOST,  /* HTTP_X_FORWARDED_HOST */
    WD_PH_X_FORWARDED_PROTO, /* HTTP_X_FORWARDED_PROTO */
    WD_PH_X_FORWARDED_PORT,  /* HTTP_X_FORWARDED_PORT */
    WD_PH_X_FORWARDED_BY,    /* HTTP_X_FORWARDED_BY */
    WD_PH_COUNT
};

struct wd_proxy_env {
    /* in/out: NULL means the key is absent from the environ */
    char *remote_addr;
    char *remote_host;
    char *remote_port;
    char *server_name;
    char *server_port;
    char *url_scheme;
    char *http_host;
    char *hdr[WD_PH_COUNT]; /* set to NULL when removed */
    /* internal: which strings are owned copies */
    unsigned owned;
};

/* Environ key ("HTTP_FORWARDED"...) and display name ("Forwarded"...). */
const char *wd_proxy_hdr_key(enum wd_proxy_hdr h);
const char *wd_proxy_hdr_name(enum wd_proxy_hdr h);

enum wd_proxy_result {
    WD_PROXY_OK = 0,
    WD_PROXY_MALFORMED = 1, /* answer with the 400 of SPEC.md 11 */
    /*
     * waitress raises an uncaught IndexError here (a client address that
     * strips to nothing, e.g. Forwarded for=":80"): do not call the app,
     * answer as for an application exception (500, SPEC.md 13).
     */
    WD_PROXY_CRASH = 2,
};

/*
 * Apply SPEC.md 11 to ENV (a no-op when neither trusted_proxy nor
 * clear_untrusted_proxy_headers is set).  Returns a wd_proxy_result.  On
 * WD_PROXY_MALFORMED, *BAD_HEADER (static string) gets the header name for
 * the 400 body ("X-Forwarded-Proto", "Forwarded Proto=") and the warning
 * has been logged.  Warnings (removed untrusted headers,
 * unknown Forwarded token) are logged through wd_log.  Returns -1 on
 * allocation failure.
 */
int wd_proxy_apply(const struct wd_config *cfg, struct wd_proxy_env *env,
                   const char **bad_header);
void wd_proxy_env_cleanup(struct wd_proxy_env *env);

/*
 * Body of the malformed-proxy-header 400 for HEADER (SPEC.md 11), NUL-
 * terminated in OUT.  Its length, or -1 when OUTLEN is too small.
 */
int wd_proxy_error_body(const char *header, char *out, size_t outlen);

#endif
