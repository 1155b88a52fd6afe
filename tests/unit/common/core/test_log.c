/* test_log.c: unit tests for common/log through the public header. stderr
 * is redirected into a temporary file around each log call (and restored
 * before any assertion, so cmocka's own messages stay visible); the lines
 * are checked with a regex: format, levels, filtering, one event per line,
 * truncation, errno, and no interleaving between concurrent processes. */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/limits.h"
#include "core/log.h"

#define SERVICE "testsvc"
/* The line cap (PIPE_BUF); lines never exceed it. */
#define LINE_MAX_BYTES LIM_LOG_LINE_MAX
#define LINE_RE                                                                                    \
    "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\\.[0-9]{3}Z "                        \
    "(DEBUG|INFO|WARN|ERROR) " SERVICE " ([^\n]*)\n$"

static int g_saved_fd = -1; /* the real stderr while capturing */
static FILE *g_capture;     /* where stderr goes while capturing */

/* Send stderr to a fresh temporary file until end_capture. */
static void begin_capture(void)
{
    fflush(stderr);
    g_capture = tmpfile();
    assert_non_null(g_capture);
    g_saved_fd = dup(STDERR_FILENO);
    assert_true(g_saved_fd >= 0);
    assert_true(dup2(fileno(g_capture), STDERR_FILENO) >= 0);
}

/* Restore stderr and return what was written to it (caller frees). */
static char *end_capture(size_t *len_out)
{
    char *buf = NULL;
    long len;

    assert_true(dup2(g_saved_fd, STDERR_FILENO) >= 0);
    close(g_saved_fd);
    g_saved_fd = -1;
    assert_int_equal(fseek(g_capture, 0, SEEK_END), 0);
    len = ftell(g_capture);
    assert_true(len >= 0);
    rewind(g_capture);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, g_capture), (size_t)len);
    buf[len] = '\0';
    fclose(g_capture);
    g_capture = NULL;
    if (len_out != NULL)
        *len_out = (size_t)len;
    return buf;
}

/* Assert that line is one well-formed log line at level with message msg
 * and a timestamp within a minute of now. */
static void check_line(const char *line, const char *level, const char *msg)
{
    regex_t re;
    regmatch_t m[4];
    struct tm tm;
    char stamp[32];
    time_t t;
    int rc;

    assert_int_equal(regcomp(&re, LINE_RE, REG_EXTENDED), 0);
    rc = regexec(&re, line, 4, m, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("not a log line: '%s'", line);
    assert_true(m[1].rm_eo - m[1].rm_so < (regoff_t)sizeof stamp);
    memcpy(stamp, line + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
    stamp[m[1].rm_eo - m[1].rm_so] = '\0';
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm));
    t = timegm(&tm);
    assert_true(labs((long)(t - time(NULL))) < 60); /* UTC, not local time */
    assert_int_equal(m[2].rm_eo - m[2].rm_so, strlen(level));
    assert_memory_equal(line + m[2].rm_so, level, strlen(level));
    if (msg != NULL) {
        assert_int_equal(m[3].rm_eo - m[3].rm_so, strlen(msg));
        assert_memory_equal(line + m[3].rm_so, msg, strlen(msg));
    }
}

/* Name the service and restore the default level before each test. */
static int setup(void **state)
{
    (void)state;
    log_init(SERVICE);
    log_set_level(LOGL_INFO);
    return 0;
}

/* Runs first, before any setup has touched the level. */
static void test_default_level(void **state)
{
    (void)state;
    assert_int_equal(log_get_level(), LOGL_INFO);
}

static void test_format(void **state)
{
    char *out;

    (void)state;
    begin_capture();
    log_info("hello %d %s", 42, "world");
    out = end_capture(NULL);
    check_line(out, "INFO", "hello 42 world");
    free(out);
}

/* A trace set around some work ends those lines only; restoring the
 * previous one (none) takes it off again. A cut line keeps it whole. */
static void test_trace(void **state)
{
    char prev[LOG_TRACE_MAX + 1] = "x", inner[LOG_TRACE_MAX + 1];
    char *out;

    (void)state;
    begin_capture();
    log_trace_set("4bf92f3577b34da6a3ce929d0e0e4736", prev);
    log_info("with");
    log_trace_set("0af7651916cd43dd8448eb211c80319c", inner);
    log_info("nested");
    log_trace_set(inner, NULL);
    log_info("outer again");
    log_trace_set(prev, NULL);
    log_info("without");
    out = end_capture(NULL);
    assert_string_equal(prev, "");
    assert_string_equal(inner, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_non_null(strstr(out, " INFO " SERVICE " with trace=4bf92f3577b34da6a3ce929d0e0e4736\n"));
    assert_non_null(
        strstr(out, " INFO " SERVICE " nested trace=0af7651916cd43dd8448eb211c80319c\n"));
    assert_non_null(
        strstr(out, " INFO " SERVICE " outer again trace=4bf92f3577b34da6a3ce929d0e0e4736\n"));
    assert_non_null(strstr(out, " INFO " SERVICE " without\n"));
    free(out);

    /* a message longer than a line: cut with "...", the trace still whole */
    {
        static char big[2 * LINE_MAX_BYTES];
        size_t len;

        memset(big, 'x', sizeof(big) - 1);
        begin_capture();
        log_trace_set("4bf92f3577b34da6a3ce929d0e0e4736", prev);
        log_info("%s", big);
        log_trace_set(prev, NULL);
        out = end_capture(&len);
        assert_int_equal(len, LINE_MAX_BYTES);
        assert_non_null(strstr(out, "x... trace=4bf92f3577b34da6a3ce929d0e0e4736\n"));
        free(out);
    }
}

static void test_all_levels(void **state)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char *out;
    char *line;
    char *save = NULL;
    int i = 0;

    (void)state;
    log_set_level(LOGL_DEBUG);
    begin_capture();
    log_debug("m%d", 0);
    log_info("m%d", 1);
    log_warn("m%d", 2);
    log_error("m%d", 3);
    out = end_capture(NULL);
    /* strtok_r drops the '\n'; put it back for the regex */
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char buf[256];
        char msg[16];

        assert_true(i < 4);
        snprintf(buf, sizeof buf, "%s\n", line);
        snprintf(msg, sizeof msg, "m%d", i);
        check_line(buf, names[i], msg);
        i++;
    }
    assert_int_equal(i, 4);
    free(out);
}

static void test_filtering(void **state)
{
    char *out;

    (void)state;
    log_set_level(LOGL_WARN);
    begin_capture();
    log_debug("no");
    log_info("no");
    log_warn("yes");
    out = end_capture(NULL);
    check_line(out, "WARN", "yes");
    free(out);

    log_set_level(LOGL_ERROR);
    begin_capture();
    log_warn("no");
    log_error("yes");
    out = end_capture(NULL);
    check_line(out, "ERROR", "yes");
    free(out);

    log_set_level(LOGL_INFO);
    begin_capture();
    log_debug("no");
    out = end_capture(NULL);
    assert_string_equal(out, "");
    free(out);
}

static void test_level_names(void **state)
{
    static const struct {
        const char *name;
        int rc;
        enum log_level level;
    } cases[] = {
        {"debug", 0, LOGL_DEBUG}, {"DEBUG", 0, LOGL_DEBUG},  {"Info", 0, LOGL_INFO},
        {"warn", 0, LOGL_WARN},   {"WARNING", 0, LOGL_WARN}, {"warning", 0, LOGL_WARN},
        {"eRRoR", 0, LOGL_ERROR}, {"", -1, LOGL_INFO},       {"verbose", -1, LOGL_INFO},
        {"warn ", -1, LOGL_INFO}, {"err", -1, LOGL_INFO},    {"fatal", -1, LOGL_INFO},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        log_set_level(LOGL_INFO);
        if (log_set_level_name(cases[i].name) != cases[i].rc)
            fail_msg("'%s': want rc %d", cases[i].name, cases[i].rc);
        if (log_get_level() != cases[i].level)
            fail_msg("'%s': level %d, want %d", cases[i].name, (int)log_get_level(),
                     (int)cases[i].level);
    }
    log_set_level(LOGL_ERROR);
    assert_int_equal(log_set_level_name(NULL), -1);
    assert_int_equal(log_get_level(), LOGL_ERROR);
}

static void test_newlines_stripped(void **state)
{
    char *out;

    (void)state;
    begin_capture();
    log_warn("a\nb\r\nc%s", "\nd\n");
    out = end_capture(NULL);
    check_line(out, "WARN", "a b  c d ");
    free(out);
}

static void test_truncation(void **state)
{
    char *big = malloc(10000);
    char *out;
    size_t len;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    begin_capture();
    log_error("%s", big);
    out = end_capture(&len);
    free(big);
    assert_true(len <= LINE_MAX_BYTES);
    assert_true(len > LINE_MAX_BYTES - 100);                       /* cut at the cap, not earlier */
    assert_int_equal(strchr(out, '\n') - out, (ptrdiff_t)len - 1); /* one line */
    assert_memory_equal(out + len - 4, "...\n", 4);
    check_line(out, "ERROR", NULL);
    free(out);
}

static void test_truncation_utf8(void **state)
{
    /* 3000 two-byte characters: the cut must not split one */
    char *big = malloc(6001);
    char *out;
    const char *msg;
    size_t len;
    size_t i;

    (void)state;
    assert_non_null(big);
    for (i = 0; i < 3000; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[6000] = '\0';
    begin_capture();
    log_error("%s", big);
    out = end_capture(&len);
    free(big);
    check_line(out, "ERROR", NULL);
    msg = strstr(out, " " SERVICE " ");
    assert_non_null(msg);
    msg += strlen(" " SERVICE " ");
    /* the kept part, without "...\n", is whole characters */
    assert_int_equal((size_t)(out + len - 4 - msg) % 2, 0);
    free(out);
}

static void test_errno_preserved(void **state)
{
    char *out;
    int after_write;
    int after_filtered;

    (void)state;
    begin_capture();
    errno = EAGAIN;
    log_info("x");
    after_write = errno;
    errno = 0;
    log_debug("filtered");
    after_filtered = errno;
    out = end_capture(NULL);
    assert_int_equal(after_write, EAGAIN);
    assert_int_equal(after_filtered, 0);
    check_line(out, "INFO", "x");
    free(out);
}

/* Several processes logging long lines to one pipe: every line arrives
 * whole, because each is a single write of at most PIPE_BUF bytes. */
static void test_no_interleaving(void **state)
{
    enum { CHILDREN = 4, LINES = 200 };
    char msg[3000];
    char *all = NULL;
    size_t len = 0;
    size_t cap = 0;
    int fds[2];
    int saved;
    int i;
    int lines = 0;
    char *p;

    (void)state;
    memset(msg, 'y', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    assert_int_equal(pipe(fds), 0);
    for (i = 0; i < CHILDREN; i++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            int k;

            dup2(fds[1], STDERR_FILENO);
            close(fds[0]);
            close(fds[1]);
            msg[0] = (char)('a' + i);
            for (k = 0; k < LINES; k++)
                log_info("%s", msg);
            _exit(0);
        }
    }
    close(fds[1]);
    saved = fds[0];
    for (;;) {
        ssize_t n;

        if (cap - len < 65536) {
            char *bigger = realloc(all, cap + 1048576);

            assert_non_null(bigger);
            all = bigger;
            cap += 1048576;
        }
        n = read(saved, all + len, cap - len - 1);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(saved);
    all[len] = '\0';
    for (i = 0; i < CHILDREN; i++) {
        int status = 0;

        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (p = all; *p != '\0'; lines++) {
        char *nl = strchr(p, '\n');
        char save;

        assert_non_null(nl);
        save = nl[1];
        nl[1] = '\0';
        check_line(p, "INFO", NULL);
        /* the message is one child's, whole */
        assert_int_equal(strlen(strstr(p, " " SERVICE " ") + strlen(SERVICE) + 2),
                         sizeof msg - 1 + 1);
        nl[1] = save;
        p = nl + 1;
    }
    assert_int_equal(lines, CHILDREN * LINES);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_level),
        cmocka_unit_test_setup(test_format, setup),
        cmocka_unit_test_setup(test_all_levels, setup),
        cmocka_unit_test_setup(test_filtering, setup),
        cmocka_unit_test_setup(test_level_names, setup),
        cmocka_unit_test_setup(test_newlines_stripped, setup),
        cmocka_unit_test_setup(test_trace, setup),
        cmocka_unit_test_setup(test_truncation, setup),
        cmocka_unit_test_setup(test_truncation_utf8, setup),
        cmocka_unit_test_setup(test_errno_preserved, setup),
        cmocka_unit_test_setup(test_no_interleaving, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
