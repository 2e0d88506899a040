/*
 * fuzz_proxy.c - libFuzzer target for the proxy-header code (proxy.c,
 * SPEC.md 11).
 *
 * Input: three option bytes, then NUL-separated strings.
 *   byte 0: bits 0-1 trusted_proxy (none, "*", the peer's address, an
 *           address that is not the peer's); bit 2
 *           clear_untrusted_proxy_headers; bit 3 log_untrusted_proxy_headers
 *   byte 1: trusted_proxy_count (0..7; 0 is the keep-everything quirk)
 *   byte 2: trusted_proxy_headers bits (WD_PROXY_*)
 *   strings: remote_addr, remote_port, server_name, server_port,
 *            url_scheme, http_host, then the six headers in wd_proxy_hdr
 *            order; a missing string is absent (NULL) for http_host and
 *            the headers, a default for the rest.
 * Every result must be one of the documented ones, every string of the
 * result NUL-terminated, a malformed header named, and a second run on a
 * fresh copy must give the same environ (the function is pure).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NSTR (6 + WD_PH_COUNT)

static const char *const defaults[6] = {
    "192.0.2.7", "54321", "localhost", "8080", "http", NULL,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* warnings (unknown token, removed headers) are expected: drop them */
    if (wd_log_open("/dev/null", NULL) != 0)
        abort();
    return 0;
}

static char **
fields_of(struct wd_proxy_env *env, char **f)
{
    f[0] = env->remote_addr;
    f[1] = env->remote_port;
    f[2] = env->server_name;
    f[3] = env->server_port;
    f[4] = env->url_scheme;
    f[5] = env->http_host;
    for (int h = 0; h < WD_PH_COUNT; h++)
        f[6 + h] = env->hdr[h];
    return f;
}

/* Run once on fresh copies of STR; the outcome as one malloc'ed string. */
static char *
run(const struct wd_config *cfg, char *const *str, int *result)
{
    struct wd_proxy_env env;
    const char *bad = NULL;
    char *f[NSTR + 1];
    char *desc;
    size_t len = 64;

    memset(&env, 0, sizeof env);
    env.remote_addr = str[0];
    env.remote_port = str[1];
    env.server_name = str[2];
    env.server_port = str[3];
    env.url_scheme = str[4];
    env.http_host = str[5];
    env.remote_host = str[0];
    for (int h = 0; h < WD_PH_COUNT; h++)
        env.hdr[h] = str[6 + h];

    *result = wd_proxy_apply(cfg, &env, &bad);
    if (*result != WD_PROXY_OK && *result != WD_PROXY_MALFORMED &&
        *result != WD_PROXY_CRASH)
        abort();
    if ((*result == WD_PROXY_MALFORMED) != (bad != NULL))
        abort();
    if (bad != NULL) {
        char body[512];

        if (wd_proxy_error_body(bad, body, sizeof body) < 0)
            abort();
    }
    fields_of(&env, f);
    f[NSTR] = env.remote_host;
    for (int i = 0; i <= NSTR; i++)
        len += f[i] != NULL ? strlen(f[i]) + 2 : 2;
    if ((desc = malloc(len)) == NULL)
        abort();
    desc[0] = '\0';
    for (int i = 0; i <= NSTR; i++) {
        strcat(desc, f[i] != NULL ? f[i] : "~");
        strcat(desc, "\x01");
    }
    if (bad != NULL)
        strcat(desc, bad);
    wd_proxy_env_cleanup(&env);
    return desc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_config cfg;
    char *str[NSTR];
    char *copy, *p, *end;
    char *d1, *d2;
    int r1, r2;

    if (size < 3)
        return 0;
    memset(&cfg, 0, sizeof cfg);
    switch (data[0] & 3) {
    case 0:
        cfg.trusted_proxy = NULL;
        break;
    case 1:
        cfg.trusted_proxy = "*";
        break;
    case 2:
        cfg.trusted_proxy = NULL; /* set to the peer below */
        break;
    default:
        cfg.trusted_proxy = "203.0.113.99";
        break;
    }
    cfg.clear_untrusted_proxy_headers = (data[0] >> 2) & 1;
    cfg.log_untrusted_proxy_headers = (data[0] >> 3) & 1;
    cfg.trusted_proxy_count = data[1] & 7;
    cfg.trusted_proxy_count_set = 1;
    cfg.trusted_proxy_headers = data[2] & 0x3f;

    /* exact-size copy so reads past a string's end are caught */
    if ((copy = malloc(size - 3 + 1)) == NULL)
        abort();
    memcpy(copy, data + 3, size - 3);
    copy[size - 3] = '\0';
    end = copy + (size - 3);
    p = copy;
    for (int i = 0; i < NSTR; i++) {
        if (p <= end && (p < end || i == 0)) {
            str[i] = p;
            p += strlen(p) + 1;
        } else {
            str[i] = i < 6 ? (char *)defaults[i] : NULL;
        }
    }
    if ((data[0] & 3) == 2)
        cfg.trusted_proxy = str[0];

    d1 = run(&cfg, str, &r1);
    d2 = run(&cfg, str, &r2);
    if (r1 != r2 || strcmp(d1, d2) != 0)
        abort();
    free(d1);
    free(d2);
    free(copy);
    return 0;
}
