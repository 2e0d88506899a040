/*
 * fuzz_config.c - libFuzzer target for the configuration loader
 * (config.c: wd_config_from_argv on a libconfig file, SPEC.md 2).
 *
 * Byte 0 picks the command line around the file (plain, with an app, -t,
 * with options that override the file); the rest is the file, handed over
 * as a memfd (/proc/self/fd/N).  Each run must return 0 or -1 with a
 * message, and wd_config_cleanup must free everything (leaks
 * fail the run under libFuzzer's LeakSanitizer).
 *
 * Name resolution is kept off the network: getaddrinfo is interposed and
 * answers numeric hosts only.  Files with @include are skipped: libconfig
 * would read whatever path they name (/dev/zero...), which says nothing
 * about our code.  Leaks inside libconfig itself are suppressed (below).
 */
#include "autoconfig.h" /* _GNU_SOURCE: memfd_create, RTLD_NEXT */

#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.7's scanner leaks its string buffer on a string left open
 * at the end of the file (strbuf_append); that is libconfig's, not ours.
 */
const char *
__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);

/* Interposes libc's: numeric hosts only, so no DNS query ever leaves. */
int
getaddrinfo(const char *node, const char *service,
            const struct addrinfo *hints, struct addrinfo **res)
{
    static gai_fn real;
    struct addrinfo h;

    if (real == NULL && (real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
        abort();
    if (hints != NULL)
        h = *hints;
    else
        memset(&h, 0, sizeof h);
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

static int memfd = -1;
static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (wd_log_open("/dev/null", NULL) != 0)
        abort();
    if ((memfd = memfd_create("fuzz-config", 0)) < 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    /* a stray LISTEN_FDS would make the loader adopt descriptors */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *argvs[][8] = {
        {"waitressd", "-c", path, NULL},
        {"waitressd", "-c", path, "app:application", NULL},
        {"waitressd", "-t", "-c", path, NULL},
        {"waitressd", "-c", path, "--port=8081", "--threads=3",
         "--no-ipv6", "app:x", NULL},
    };
    struct wd_config cfg;
    enum wd_cli_action action;
    char err[512];
    char **argv;
    int argc, rc;

    if (size < 1)
        return 0;
    if (memmem(data, size, "@include", 8) != NULL)
        return 0;
    argv = argvs[data[0] % (sizeof argvs / sizeof argvs[0])];
    for (argc = 0; argv[argc] != NULL; argc++)
        ;
    if (ftruncate(memfd, 0) != 0 ||
        pwrite(memfd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
        abort();

    if (wd_config_init(&cfg) != 0)
        abort();
    err[0] = '\0';
    rc = wd_config_from_argv(&cfg, argc, argv, &action, err, sizeof err);
    if (rc != 0 && rc != -1)
        abort();
    /* a failure always says why (a value echoed in the message may hold
     * a newline of its own, so one line is not checked) */
    if (rc == -1 && err[0] == '\0')
        abort();
    if (rc == 0 && cfg.naddrs > 0 && cfg.addrs == NULL)
        abort();
    wd_config_cleanup(&cfg);
    return 0;
}
