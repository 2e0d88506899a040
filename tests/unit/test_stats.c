/*
 * test_stats.c - the stats endpoint's renderers (master/stats.c,
 * SPEC.md 17): every JSON key, null listen queues, escaping, and the
 * Prometheus text format with worker labels.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static const char *names[] = {"127.0.0.1:8080", "unix:/run/a\"b.sock"};
static long queues[] = {3, -1};
static struct wd_stats_worker workers[] = {
    {.id = 1, .pid = 1240, .generation = 2, .status = "idle",
     .started_at = 1732400001, .requests = 400, .connections = 3,
     .threads = 4, .bytes_sent = 123456, .last_heartbeat = 1732403600.2},
    {.id = 2, .pid = 1241, .generation = 2, .status = "busy",
     .started_at = 1732400002, .requests = 5, .active_requests = 1,
     .busy_threads = 1, .threads = 4, .respawns = 2},
};

static struct wd_stats_snap
snap(void)
{
    struct wd_stats_snap s = {
        .version = "1.0.0", .pid = 1234, .start_time = 1732400000,
        .uptime = 3600.5, .reloads = 1, .generation = 2,
        .workers_target = 2, .listen = names, .listen_queue = queues,
        .nlisten = 2, .workers_spawned = 4, .workers_timed_out = 1,
        .requests = 1532, .workers = workers, .nworkers = 2,
    };
    return s;
}

Test(stats, json_has_every_top_level_key)
{
    struct wd_stats_snap s = snap();
    size_t len = 0;
    char *j = wd_stats_json(&s, &len);
    static const char *keys[] = {
        "\"version\": \"1.0.0\"", "\"pid\": 1234",
        "\"start_time\": 1732400000", "\"uptime\": 3600.5",
        "\"reloads\": 1", "\"generation\": 2", "\"workers_target\": 2",
        "\"workers_spawned\": 4", "\"workers_timed_out\": 1",
        "\"requests\": 1532",
    };

    cr_assert_not_null(j);
    cr_assert_eq(strlen(j), len);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_not_null(strstr(j, keys[i]), "missing %s in %s", keys[i], j);
    free(j);
}

Test(stats, json_listen_queue_null_when_not_exposed)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *j = wd_stats_json(&s, &len);

    cr_assert_not_null(strstr(j, "\"listen_queue\": [3, null]"), "%s", j);
    free(j);
}

Test(stats, json_escapes_listen_names)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *j = wd_stats_json(&s, &len);

    cr_assert_not_null(
        strstr(j, "\"listen\": [\"127.0.0.1:8080\", \"unix:/run/a\\\"b.sock\"]"),
        "%s", j);
    free(j);
}

Test(stats, json_worker_objects)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *j = wd_stats_json(&s, &len);

    cr_assert_not_null(strstr(
        j, "{\"id\": 1, \"pid\": 1240, \"generation\": 2, \"status\": \"idle\", "
           "\"started_at\": 1732400001, \"requests\": 400, "
           "\"active_requests\": 0, \"queued_requests\": 0, \"connections\": 3, "
           "\"threads\": 4, \"busy_threads\": 0, \"bytes_sent\": 123456, "
           "\"exceptions\": 0, \"last_heartbeat\": 1732403600.2, "
           "\"respawns\": 0}"), "%s", j);
    cr_assert_not_null(strstr(j, "\"status\": \"busy\""));
    free(j);
}

Test(stats, json_without_workers_or_listeners)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *j;

    s.nworkers = 0;
    s.nlisten = 0;
    j = wd_stats_json(&s, &len);
    cr_assert_not_null(strstr(j, "\"listen\": [], \"listen_queue\": []"), "%s", j);
    cr_assert_not_null(strstr(j, "\"workers\": []}"), "%s", j);
    free(j);
}

Test(stats, metrics_prefix_and_worker_labels)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *m = wd_stats_metrics(&s, &len);

    cr_assert_not_null(m);
    cr_assert_not_null(strstr(m, "\nwaitressd_requests_total 1532\n"), "%s", m);
    cr_assert_not_null(strstr(m, "# TYPE waitressd_requests_total counter\n"));
    cr_assert_not_null(
        strstr(m, "waitressd_worker_requests_total{worker=\"1\"} 400\n"));
    cr_assert_not_null(
        strstr(m, "waitressd_worker_busy_threads{worker=\"2\"} 1\n"));
    cr_assert_not_null(
        strstr(m, "waitressd_worker_respawns_total{worker=\"2\"} 2\n"));
    free(m);
}

Test(stats, metrics_every_sample_line_is_prefixed)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *m = wd_stats_metrics(&s, &len);
    char *save = NULL;

    for (char *line = strtok_r(m, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            cr_assert(strncmp(line, "# HELP waitressd_", 17) == 0 ||
                          strncmp(line, "# TYPE waitressd_", 17) == 0,
                      "%s", line);
        else
            cr_assert(strncmp(line, "waitressd_", 10) == 0, "%s", line);
    }
    free(m);
}

Test(stats, metrics_listen_queue_skips_null_and_escapes_label)
{
    struct wd_stats_snap s = snap();
    size_t len;
    char *m = wd_stats_metrics(&s, &len);

    cr_assert_not_null(
        strstr(m, "waitressd_listen_queue{listen=\"127.0.0.1:8080\"} 3\n"));
    cr_assert_null(strstr(m, "a\\\"b.sock"), "%s", m);
    free(m);
}
