/*
 * Unit tests for common/log.c: the error-log record format and level
 * filter (SPEC.md 16.2), reopening, and the access-log line with its
 * escaping (16.3).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static char dir[64];
static char epath[128], apath[128];

static void
setup(void)
{
    strcpy(dir, "/tmp/wd-test-log-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(epath, sizeof epath, "%s/error.log", dir);
    snprintf(apath, sizeof apath, "%s/access.log", dir);
    wd_log_set_level(WD_LOG_INFO);
}

static void
teardown(void)
{
    char cmd[128];

    wd_log_close();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(log, .init = setup, .fini = teardown);

static char *
slurp(const char *path)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
assert_matches(const char *text, const char *pattern)
{
    regex_t re;

    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    cr_assert_eq(regexec(&re, text, 0, NULL, 0), 0, "'%s' !~ /%s/", text,
                 pattern);
    regfree(&re);
}

Test(log, wire_text_is_utf8_with_controls_escaped)
{
    static const char in[] = "a\xe9\t\x7f\xff\r\nz\"";
    char *t = wd_log_text(in, sizeof in - 1);

    cr_assert_not_null(t);
    cr_assert_str_eq(t, "a\xc3\xa9\\x09\\x7f\xc3\xbf\\x0d\\x0az\"");
    free(t);
    t = wd_log_text(NULL, 0);
    cr_assert_str_eq(t, "");
    free(t);
}

Test(log, record_format)
{
    char pattern[256];

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "Serving on http://%s:%d", "1.2.3.4",
           80);
    snprintf(pattern, sizeof pattern,
             "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} "
             "[+-][0-9]{4}\\] \\[%ld\\] \\[INFO\\] \\[waitressd\\] Serving on "
             "http://1\\.2\\.3\\.4:80\n$",
             (long)getpid());
    assert_matches(slurp(epath), pattern);
}

Test(log, forked_child_logs_its_own_pid)
{
    char pattern[256];
    pid_t child;
    int status;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    /* the parent's prefix (pid, second) is now cached */
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "parent");
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        wd_log(WD_LOG_INFO, WD_CAT_SERVER, "child");
        _exit(0);
    }
    cr_assert_eq(waitpid(child, &status, 0), child);
    wd_log(WD_LOG_INFO, WD_CAT_MASTER, "parent again");
    snprintf(pattern, sizeof pattern,
             "^\\[[^]]*\\] \\[%ld\\] \\[INFO\\] \\[waitressd.master\\] parent\n"
             "\\[[^]]*\\] \\[%ld\\] \\[INFO\\] \\[waitressd\\] child\n"
             "\\[[^]]*\\] \\[%ld\\] \\[INFO\\] \\[waitressd.master\\] parent again\n$",
             (long)getpid(), (long)child, (long)getpid());
    assert_matches(slurp(epath), pattern);
}

Test(log, deferred_records_wait_for_flush_and_keep_their_order)
{
    static char big[70000];
    const char *text;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_defer();
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %d", 1);
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %d", 2);
    cr_assert_str_eq(slurp(epath), "", "nothing written before the flush");
    wd_log_flush();
    text = slurp(epath);
    cr_assert_not_null(strstr(text, "Task queue depth is 1\n"));
    cr_assert_not_null(strstr(text, "Task queue depth is 2\n"));
    cr_assert(strstr(text, "is 1\n") < strstr(text, "is 2\n"));

    /* a record larger than the buffer goes out at once, after the ones
       still waiting */
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %d", 3);
    memset(big, 'x', sizeof big - 1);
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "%s", big);
    text = slurp(epath);
    cr_assert_not_null(strstr(text, "is 3\n"));
    cr_assert(strstr(text, "is 3\n") < strstr(text, "xxxx"));
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %d", 4);
    wd_log_undefer(); /* flushes */
    cr_assert_not_null(strstr(slurp(epath), "is 4\n"));
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "Task queue depth is %d", 5);
    cr_assert_not_null(strstr(slurp(epath), "is 5\n"), "written at once again");
}

Test(log, a_paused_deferral_writes_at_once_and_in_order)
{
    const char *text;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_defer();
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "waiting %d", 1);
    wd_log_defer_pause(1); /* writes "waiting 1" first */
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "app says %d", 2);
    text = slurp(epath);
    cr_assert_not_null(strstr(text, "waiting 1\n"));
    cr_assert_not_null(strstr(text, "app says 2\n"), "written while paused");
    cr_assert(strstr(text, "waiting 1") < strstr(text, "app says 2"));
    wd_log_defer_pause(0);
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "waiting %d", 3);
    cr_assert_null(strstr(slurp(epath), "waiting 3"), "deferred again");
    wd_log_undefer();
    cr_assert_not_null(strstr(slurp(epath), "waiting 3\n"));
}

Test(log, record_uses_local_time_zone)
{
    setenv("TZ", "EST5", 1);
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log(WD_LOG_ERROR, WD_CAT_MASTER, "x");
    assert_matches(slurp(epath), "^\\[[^]]* -0500\\] \\[[0-9]+\\] \\[ERROR\\] "
                                 "\\[waitressd.master\\] x\n$");
}

Test(log, level_names_in_records)
{
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_set_level(WD_LOG_DEBUG);
    wd_log(WD_LOG_DEBUG, WD_CAT_QUEUE, "a");
    wd_log(WD_LOG_WARNING, WD_CAT_QUEUE, "b");
    wd_log(WD_LOG_CRITICAL, WD_CAT_QUEUE, "c");
    const char *t = slurp(epath);
    cr_assert_not_null(strstr(t, "[DEBUG] [waitressd.queue] a\n"));
    cr_assert_not_null(strstr(t, "[WARNING] [waitressd.queue] b\n"));
    cr_assert_not_null(strstr(t, "[CRITICAL] [waitressd.queue] c\n"));
}

Test(log, level_filter_drops_lower_records)
{
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_set_level(WD_LOG_WARNING);
    cr_assert_eq(wd_log_get_level(), WD_LOG_WARNING);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "dropped");
    wd_log(WD_LOG_DEBUG, WD_CAT_SERVER, "dropped too");
    wd_log(WD_LOG_WARNING, WD_CAT_SERVER, "kept");
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "kept too");
    const char *t = slurp(epath);
    cr_assert_null(strstr(t, "dropped"));
    cr_assert_not_null(strstr(t, "] kept\n"));
    cr_assert_not_null(strstr(t, "] kept too\n"));
}

Test(log, level_parse_and_names)
{
    cr_assert_eq(wd_log_level_parse("debug"), WD_LOG_DEBUG);
    cr_assert_eq(wd_log_level_parse("Info"), WD_LOG_INFO);
    cr_assert_eq(wd_log_level_parse("WARNING"), WD_LOG_WARNING);
    cr_assert_eq(wd_log_level_parse("error"), WD_LOG_ERROR);
    cr_assert_eq(wd_log_level_parse("critical"), WD_LOG_CRITICAL);
    cr_assert_eq(wd_log_level_parse("warn"), -1);
    cr_assert_eq(wd_log_level_parse(""), -1);
    cr_assert_eq(wd_log_level_parse(NULL), -1);
    cr_assert_str_eq(wd_log_level_name(WD_LOG_WARNING), "WARNING");
    cr_assert_str_eq(wd_log_level_name(WD_LOG_CRITICAL), "CRITICAL");
}

Test(log, multiline_message_is_one_record)
{
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "Exception while serving /\n%s",
           "Traceback (most recent call last):\n  boom");
    assert_matches(slurp(epath),
                   "\\] Exception while serving /\nTraceback \\(most recent "
                   "call last\\):\n  boom\n$");
}

Test(log, long_message_written_whole)
{
    static char big[100000];

    memset(big, 'x', sizeof big - 1);
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "%s|end", big);
    const char *t = slurp(epath);
    cr_assert_not_null(strstr(t, "xxxx|end\n"));
    cr_assert_gt(strlen(t), sizeof big);
}

static size_t
slurp_len(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    cr_assert_not_null(f);
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

Test(log, bytes_record_keeps_nul_bytes_short_and_long)
{
    static char big[5000], buf[16384];
    static const char tail[] = "ValueError: before\0after";
    size_t n, head;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_bytes(WD_LOG_ERROR, WD_CAT_SERVER, tail, sizeof tail - 1);
    n = slurp_len(epath, buf, sizeof buf);
    cr_assert_geq(n, sizeof tail);
    head = n - sizeof tail; /* the record's prefix before the message */
    cr_assert_eq(memcmp(buf + head, tail, sizeof tail - 1), 0);
    cr_assert_eq(buf[n - 1], '\n');
    cr_assert_not_null(strstr(buf, "[ERROR] [waitressd] ValueError: before"));

    /* past the stack buffer: written whole from the heap */
    memset(big, 'x', sizeof big);
    big[100] = '\0';
    cr_assert_eq(truncate(epath, 0), 0);
    wd_log_bytes(WD_LOG_ERROR, WD_CAT_SERVER, big, sizeof big);
    n = slurp_len(epath, buf, sizeof buf);
    cr_assert_eq(n, head + sizeof big + 1);
    cr_assert_eq(memcmp(buf + head, big, sizeof big), 0);
    cr_assert_eq(buf[n - 1], '\n');
}

Test(log, bytes_record_obeys_the_level)
{
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log_set_level(WD_LOG_WARNING);
    wd_log_bytes(WD_LOG_INFO, WD_CAT_SERVER, "dropped", 7);
    cr_assert_str_empty(slurp(epath));
}

Test(log, appends_to_existing_file)
{
    FILE *f = fopen(epath, "w");

    fputs("old line\n", f);
    fclose(f);
    cr_assert_eq(wd_log_open(epath, NULL), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "new");
    const char *t = slurp(epath);
    cr_assert(strncmp(t, "old line\n[", 10) == 0, "%s", t);
}

Test(log, open_failure_keeps_current_target)
{
    char bad[160];

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    snprintf(bad, sizeof bad, "%s/missing/dir/error.log", dir);
    cr_assert_eq(wd_log_open(bad, NULL), -1);
    cr_assert_eq(errno, ENOENT);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "still here");
    cr_assert_not_null(strstr(slurp(epath), "still here"));
}

Test(log, reopen_after_rotation)
{
    char rotated[160];

    cr_assert_eq(wd_log_open(epath, apath), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "before");
    snprintf(rotated, sizeof rotated, "%s.1", epath);
    cr_assert_eq(rename(epath, rotated), 0);
    cr_assert_eq(wd_log_reopen(), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "after");
    cr_assert_not_null(strstr(slurp(rotated), "before"));
    cr_assert_null(strstr(slurp(rotated), "after"));
    cr_assert_not_null(strstr(slurp(epath), "after"));
}

/* A relative path names a file in the directory it was opened from: the
   app may chdir() before the next USR1 (the reopen went there). */
Test(log, reopen_of_a_relative_path_ignores_a_later_chdir)
{
    char start[4096], rotated[160], stray[160];

    cr_assert_not_null(getcwd(start, sizeof start));
    cr_assert_eq(chdir(dir), 0);
    cr_assert_eq(wd_log_open("error.log", NULL), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "before");
    cr_assert_eq(mkdir("sub", 0700), 0);
    cr_assert_eq(chdir("sub"), 0);
    snprintf(rotated, sizeof rotated, "%s.1", epath);
    cr_assert_eq(rename(epath, rotated), 0);
    cr_assert_eq(wd_log_reopen(), 0);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "after");
    cr_assert_eq(chdir(start), 0);
    snprintf(stray, sizeof stray, "%s/sub/error.log", dir);
    cr_assert_eq(access(stray, F_OK), -1);
    cr_assert_not_null(strstr(slurp(epath), "after"));
    cr_assert_null(strstr(slurp(rotated), "after"));
}

/* "-" is stderr as it was at the open: a reopen must not copy whatever
   fd 2 has become since (the app closed it and a client socket took
   the number, in a worker). */
Test(log, reopen_keeps_stderr_as_it_was)
{
    struct stat before, after;
    int saved = dup(STDERR_FILENO), other = open(epath, O_WRONLY | O_CREAT, 0600);

    cr_assert(saved >= 0 && other >= 0);
    cr_assert_eq(wd_log_open("-", NULL), 0);
    cr_assert_eq(fstat(wd_log_error_fd(), &before), 0);
    cr_assert_eq(dup2(other, STDERR_FILENO), STDERR_FILENO);
    cr_assert_eq(wd_log_reopen(), 0);
    cr_assert_eq(fstat(wd_log_error_fd(), &after), 0);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(other);
    cr_assert_eq(after.st_ino, before.st_ino);
    cr_assert_eq(after.st_dev, before.st_dev);
}

Test(log, switch_files_keeps_fd_number)
{
    char other[160];
    int fd;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    fd = wd_log_error_fd();
    cr_assert_neq(fd, 2);
    snprintf(other, sizeof other, "%s/other.log", dir);
    cr_assert_eq(wd_log_open(other, NULL), 0);
    cr_assert_eq(wd_log_error_fd(), fd);
    wd_log(WD_LOG_INFO, WD_CAT_SERVER, "to other");
    cr_assert_not_null(strstr(slurp(other), "to other"));
    cr_assert_null(strstr(slurp(epath), "to other"));
}

Test(log, stderr_before_open)
{
    wd_log_close();
    cr_assert_eq(wd_log_error_fd(), 2);
    cr_assert_eq(wd_log_access_enabled(), 0);
}

static void *
writer(void *arg)
{
    long id = (long)arg;

    for (int i = 0; i < 500; i++)
        wd_log(WD_LOG_INFO, WD_CAT_SERVER, "thread %ld line %d %s", id, i,
               "padding-padding-padding-padding-padding-padding");
    return NULL;
}

Test(log, concurrent_records_do_not_interleave)
{
    pthread_t t[8];
    char *text, *line, *save = NULL;
    int n = 0;

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    text = slurp(epath);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        assert_matches(line, "^\\[[^]]+\\] \\[[0-9]+\\] \\[INFO\\] "
                             "\\[waitressd\\] thread [0-7] line [0-9]+ "
                             "(padding-){5}padding$");
        n++;
    }
    cr_assert_eq(n, 8 * 500);
}

/* ---------------------------------------------------------------- */
/* access log                                                         */

static const char *
access_line(const struct wd_access_rec *rec)
{
    setenv("TZ", "UTC", 1);
    cr_assert_eq(wd_log_open(epath, apath), 0);
    cr_assert_eq(wd_log_access_enabled(), 1);
    wd_log_access(rec);
    return slurp(apath);
}

Test(log, access_combined_format)
{
    struct wd_access_rec rec = {
        .remote_addr = "192.0.2.1",
        .remote_user = "bob",
        .request_line = "GET /a?b=1 HTTP/1.1",
        .request_line_len = 19,
        .status = 200,
        .bytes = 1234,
        .referer = "http://example.com/",
        .referer_len = 19,
        .user_agent = "curl/8.0",
        .user_agent_len = 8,
        .when = 784111777,
    };

    cr_assert_str_eq(access_line(&rec),
                     "192.0.2.1 - bob [06/Nov/1994:08:49:37 +0000] "
                     "\"GET /a?b=1 HTTP/1.1\" 200 1234 "
                     "\"http://example.com/\" \"curl/8.0\"\n");
}

Test(log, access_absent_fields_are_dashes)
{
    struct wd_access_rec rec = {
        .remote_addr = "10.0.0.1",
        .status = 431,
        .when = 0,
    };

    cr_assert_str_eq(access_line(&rec),
                     "10.0.0.1 - - [01/Jan/1970:00:00:00 +0000] \"-\" 431 - "
                     "\"-\" \"-\"\n");
}

Test(log, access_escapes_quoted_fields)
{
    const char req[] = "GET /\"q\\\x01\x7f\xff HTTP/1.1";
    const char ua[] = "a\"b\tc";
    struct wd_access_rec rec = {
        .remote_addr = "::1",
        .request_line = req,
        .request_line_len = sizeof req - 1,
        .status = 400,
        .bytes = 0,
        .user_agent = ua,
        .user_agent_len = sizeof ua - 1,
        .when = 784111777,
    };

    cr_assert_str_eq(access_line(&rec),
                     "::1 - - [06/Nov/1994:08:49:37 +0000] "
                     "\"GET /\\\"q\\\\\\x01\\x7f\\xff HTTP/1.1\" 400 - \"-\" "
                     "\"a\\\"b\\x09c\"\n");
}

Test(log, access_request_line_with_nul_byte)
{
    const char req[] = "GET /\0x HTTP/1.0";
    struct wd_access_rec rec = {
        .remote_addr = "1.1.1.1",
        .request_line = req,
        .request_line_len = sizeof req - 1,
        .status = 400,
        .when = 784111777,
    };

    cr_assert_not_null(strstr(access_line(&rec), "\"GET /\\x00x HTTP/1.0\""));
}

Test(log, access_log_to_own_file_only)
{
    struct wd_access_rec rec = {.remote_addr = "1.1.1.1", .status = 200};

    access_line(&rec);
    cr_assert_null(strstr(slurp(epath), "1.1.1.1"));
}

Test(log, access_disabled_without_path)
{
    struct wd_access_rec rec = {.remote_addr = "1.1.1.1", .status = 200};

    cr_assert_eq(wd_log_open(epath, NULL), 0);
    cr_assert_eq(wd_log_access_enabled(), 0);
    wd_log_access(&rec);
    cr_assert_str_eq(slurp(epath), "");
}
