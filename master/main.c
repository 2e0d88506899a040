/*
 * main.c - waitressd's entry point: build the configuration from the
 * command line and the -c file, then check it (-t) or run the master.
 *
 * The only file that knows both master/ and worker/: it hands the
 * worker's entry point to the master, which forks and calls it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "worker.h"
#include "wsgi.h"

static const char *
config_name(const struct wd_config *cfg)
{
    return cfg->config_file != NULL ? cfg->config_file : "(command line)";
}

int
main(int argc, char **argv)
{
    struct wd_config cfg;
    enum wd_cli_action action;
    char err[1024];
    int rc;

    if (wd_config_init(&cfg) != 0) {
        fprintf(stderr, "waitressd: out of memory\n");
        return 1;
    }
    wd_log_open(NULL, NULL);
    /* the configuration's warnings wait for its error_log and log_level */
    wd_log_hold();

    rc = wd_config_from_argv(&cfg, argc, argv, &action, err, sizeof err);
    if (action != WD_CLI_RUN || rc != 0) {
        /* no log of its own: to stderr, at the level given if it was
           read before any failure (SPEC.md 16.2), else info */
        wd_log_set_level((enum wd_log_level)cfg.log_level);
        wd_log_release();
    }
    if (action == WD_CLI_HELP || action == WD_CLI_VERSION) {
        wd_config_cleanup(&cfg);
        return 0;
    }
    if (action == WD_CLI_CHECK) {
        if (rc == 0)
            rc = wd_master_check(&cfg, err, sizeof err);
        if (rc == 0 && cfg.app != NULL)
            rc = wd_wsgi_check_app(&cfg, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "waitressd: %s\n", err);
            fprintf(stderr, "waitressd: configuration file %s test failed\n",
                    config_name(&cfg));
        } else {
            fprintf(stderr,
                    "waitressd: the configuration file %s syntax is ok\n",
                    config_name(&cfg));
            fprintf(stderr,
                    "waitressd: configuration file %s test is successful\n",
                    config_name(&cfg));
        }
        wd_config_cleanup(&cfg);
        return rc == 0 ? 0 : 1;
    }
    if (rc != 0) {
        /* Usage errors keep waitress-serve's "Error: " form (SPEC.md 1). */
        if (cfg.usage_error != 0)
            fprintf(stderr, "Error: %s\n", err);
        else
            fprintf(stderr, "waitressd: %s\n", err);
        if (cfg.usage_error == WD_USAGE_ERROR_HELP)
            wd_config_usage(stderr);
        wd_config_cleanup(&cfg);
        return 1;
    }

    rc = wd_master_run(&cfg, argc, argv, wd_worker_main);
    wd_log_release(); /* if the master stopped before opening its log */
    wd_config_cleanup(&cfg);
    return rc;
}
