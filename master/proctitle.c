/*
 * proctitle.c - overwrite argv for ps(1) (see proctitle.h).
 *
 * argv[0..argc-1] and the environment strings usually lie end to end in
 * one block at the top of the stack.  We copy the environment to the
 * heap (so getenv keeps working), then use the whole block for the title
 * and zero what is left, so /proc/PID/cmdline reads as the title alone.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "proctitle.h"

extern char **environ;

static char *area;      /* start of the argv block */
static size_t area_len; /* bytes we may write, NUL included */
/* the environment's new home; kept here too, for when setenv() (the
   app's os.environ) moves environ to an array of its own */
static char **volatile env_copy; /* volatile: stored, never read */

int
wd_proctitle_init(int argc, char **argv)
{
    char *end;
    size_t n = 0;
    char **env;

    if (argc < 1 || argv == NULL || argv[0] == NULL)
        return -1;
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++)
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    for (n = 0; environ != NULL && environ[n] != NULL; n++)
        ;
    /* the environment joins the block only when it follows it exactly */
    if (n > 0 && environ[0] == end) {
        if ((env = calloc(n + 1, sizeof *env)) == NULL)
            return -1;
        env_copy = env;
        for (size_t i = 0; i < n; i++) {
            if (environ[i] == end)
                end = environ[i] + strlen(environ[i]) + 1;
            if ((env[i] = strdup(environ[i])) == NULL)
                return -1; /* the partial copy is kept: harmless */
        }
        environ = env;
    }
    area = argv[0];
    area_len = (size_t)(end - argv[0]);
    for (int i = 1; i < argc; i++)
        argv[i] = NULL;
    return 0;
}

void
wd_proctitle_set(const char *fmt, ...)
{
    char title[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(title, sizeof title, fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
    if (area == NULL || area_len < 2)
        return;
    memset(area, 0, area_len);
    memcpy(area, title, strlen(title) < area_len - 1 ? strlen(title)
                                                      : area_len - 1);
}
