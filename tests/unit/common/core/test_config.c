/* test_config.c: unit tests for common/config (cfg_parse and
 * cfg_parse_duration_ms) through the public header only: defaults, flags,
 * environment, precedence, every error message, --help and --version.
 * The environment variables the tests touch are saved by the group setup,
 * cleared before each test and restored by the group teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"

#define ERR_MAX 256
#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1) /* argv ends in NULL */

/* The targets of the test option table; reset to defaults before each test. */
static struct cfg_common g_common;
static int64_t g_interval;
static int g_verbose;
static const char *g_data_dir;

static const struct cfg_option g_opts[] = {
    CFG_COMMON_OPTIONS(&g_common),
    {"cleanup-interval", "CLEANUP_INTERVAL", CFG_DURATION, &g_interval, 1000, 3600000, "DUR",
     "how often expired instances are swept"},
    {"verbose", "VERBOSE", CFG_FLAG, &g_verbose, 0, 0, NULL, "log more"},
    {"data-dir", "DATA_DIR", CFG_STRING, &g_data_dir, 0, 0, "DIR", "where data is kept"},
};
#define N_OPTS (sizeof g_opts / sizeof g_opts[0])

/* Every variable the table reads, with its value before the tests ran. */
static const char *const g_env_names[] = {
    "PORT",    "BIND",     "REGISTRY_URL", "ADVERTISE_HOST", "LOG_LEVEL", "CLEANUP_INTERVAL",
    "VERBOSE", "DATA_DIR", "TTL",
};
#define N_ENV (sizeof g_env_names / sizeof g_env_names[0])
static char *g_env_saved[N_ENV];

/* Save the variables the tests change (restored by group_teardown). */
static int group_setup(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_ENV; i++) {
        const char *v = getenv(g_env_names[i]);

        g_env_saved[i] = NULL;
        if (v != NULL) {
            g_env_saved[i] = strdup(v);
            if (g_env_saved[i] == NULL)
                return -1;
        }
    }
    return 0;
}

/* Put the environment back as it was before the tests. */
static int group_teardown(void **state)
{
    size_t i;
    int rc = 0;

    (void)state;
    for (i = 0; i < N_ENV; i++) {
        if (g_env_saved[i] != NULL) {
            if (setenv(g_env_names[i], g_env_saved[i], 1) != 0)
                rc = -1;
            free(g_env_saved[i]);
            g_env_saved[i] = NULL;
        } else if (unsetenv(g_env_names[i]) != 0) {
            rc = -1;
        }
    }
    return rc;
}

/* Clear the variables and reset every target to its default. */
static int setup(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_ENV; i++)
        if (unsetenv(g_env_names[i]) != 0)
            return -1;
    memset(&g_common, 0, sizeof g_common);
    g_common.port = 8500;
    g_common.bind = "127.0.0.1";
    g_common.log_level = "info";
    g_interval = 30000;
    g_verbose = 0;
    g_data_dir = "/var/lib/svc";
    return 0;
}

/* cfg_parse on the test table with output to out (may be NULL). */
static enum cfg_result parse(int argc, char **argv, FILE *out, char *err)
{
    return cfg_parse("registry", "Service registry.", g_opts, N_OPTS, argc, argv, out, err,
                     ERR_MAX);
}

static void test_defaults_kept(void **state)
{
    char *argv[] = {"registry", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_string_equal(err, "");
    assert_int_equal(g_common.port, 8500);
    assert_string_equal(g_common.bind, "127.0.0.1");
    assert_null(g_common.registry);
    assert_null(g_common.advertise);
    assert_string_equal(g_common.log_level, "info");
    assert_int_equal(g_interval, 30000);
    assert_int_equal(g_verbose, 0);
    assert_string_equal(g_data_dir, "/var/lib/svc");
}

static void test_flags_parse(void **state)
{
    char *argv[] = {"registry",
                    "--port",
                    "9000",
                    "--bind=0.0.0.0",
                    "--registry",
                    "http://a:1,http://b:2",
                    "--advertise",
                    "reg1",
                    "--log-level",
                    "debug",
                    "--cleanup-interval",
                    "500000ms",
                    "--verbose",
                    "--data-dir",
                    "/tmp/x",
                    NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 9000);
    assert_string_equal(g_common.bind, "0.0.0.0");
    assert_string_equal(g_common.registry, "http://a:1,http://b:2");
    assert_string_equal(g_common.advertise, "reg1");
    assert_string_equal(g_common.log_level, "debug");
    assert_int_equal(g_interval, 500000);
    assert_int_equal(g_verbose, 1);
    assert_string_equal(g_data_dir, "/tmp/x");
}

static void test_env_parse(void **state)
{
    char *argv[] = {"registry", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(setenv("PORT", "9001", 1), 0);
    assert_int_equal(setenv("BIND", "0.0.0.0", 1), 0);
    assert_int_equal(setenv("REGISTRY_URL", "http://r:8500", 1), 0);
    assert_int_equal(setenv("LOG_LEVEL", "warn", 1), 0);
    assert_int_equal(setenv("CLEANUP_INTERVAL", "2m", 1), 0);
    assert_int_equal(setenv("VERBOSE", "yes", 1), 0);
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 9001);
    assert_string_equal(g_common.bind, "0.0.0.0");
    assert_string_equal(g_common.registry, "http://r:8500");
    assert_null(g_common.advertise);
    assert_string_equal(g_common.log_level, "warn");
    assert_int_equal(g_interval, 120000);
    assert_int_equal(g_verbose, 1);
}

static void test_flag_overrides_env(void **state)
{
    char *argv[] = {"registry", "--port", "9002",     "--cleanup-interval",
                    "1m",       "--bind", "10.0.0.1", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(setenv("PORT", "9001", 1), 0);
    assert_int_equal(setenv("CLEANUP_INTERVAL", "10s", 1), 0);
    assert_int_equal(setenv("BIND", "0.0.0.0", 1), 0);
    assert_int_equal(setenv("ADVERTISE_HOST", "from-env", 1), 0);
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 9002);
    assert_int_equal(g_interval, 60000);
    assert_string_equal(g_common.bind, "10.0.0.1");
    assert_string_equal(g_common.advertise, "from-env"); /* no flag: env stays */
}

/* cfg_given: set by a flag or a variable, not by the default; the next
 * parse starts again. */
static void test_given(void **state)
{
    char *argv[] = {"registry", "--port", "9002", NULL};
    char *bare[] = {"registry", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(setenv("BIND", "0.0.0.0", 1), 0);
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_true(cfg_given(&g_common.port));
    assert_true(cfg_given(&g_common.bind));
    assert_false(cfg_given(&g_common.log_level));
    assert_false(cfg_given(&g_interval));
    assert_int_equal(unsetenv("BIND"), 0);
    assert_int_equal(parse(ARGC(bare), bare, NULL, err), CFG_OK);
    assert_false(cfg_given(&g_common.port));
    assert_false(cfg_given(&g_common.bind));
}

static void test_last_flag_wins(void **state)
{
    char *argv[] = {"registry", "--port", "1", "--port=2", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 2);
}

static void test_int_bounds(void **state)
{
    char *lo[] = {"registry", "--port", "0", NULL};
    char *hi[] = {"registry", "--port", "65535", NULL};
    char *plus[] = {"registry", "--port", "+80", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(lo), lo, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 0);
    assert_int_equal(parse(ARGC(hi), hi, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 65535);
    assert_int_equal(parse(ARGC(plus), plus, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 80);
}

static void test_empty_env_string(void **state)
{
    char *argv[] = {"registry", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(setenv("DATA_DIR", "", 1), 0);
    assert_int_equal(setenv("BIND", "", 1), 0);
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_non_null(g_data_dir);
    assert_string_equal(g_data_dir, "");
    assert_string_equal(g_common.bind, "");
}

static void test_empty_flag_string(void **state)
{
    char *argv[] = {"registry", "--data-dir", "", "--advertise=", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_string_equal(g_data_dir, "");
    assert_string_equal(g_common.advertise, "");
}

static void test_flag_options(void **state)
{
    static const struct {
        const char *env;
        int initial;
        int want;
    } cases[] = {
        {"1", 0, 1}, {"true", 0, 1},  {"YES", 0, 1}, {"On", 0, 1},
        {"0", 1, 0}, {"false", 1, 0}, {"No", 1, 0},  {"OFF", 1, 0},
    };
    char *none[] = {"registry", NULL};
    char *flag[] = {"registry", "--verbose", NULL};
    char err[ERR_MAX];
    size_t i;

    (void)state;
    assert_int_equal(parse(ARGC(none), none, NULL, err), CFG_OK);
    assert_int_equal(g_verbose, 0);
    assert_int_equal(parse(ARGC(flag), flag, NULL, err), CFG_OK);
    assert_int_equal(g_verbose, 1);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g_verbose = cases[i].initial;
        assert_int_equal(setenv("VERBOSE", cases[i].env, 1), 0);
        assert_int_equal(parse(ARGC(none), none, NULL, err), CFG_OK);
        assert_int_equal(g_verbose, cases[i].want);
    }
    /* the flag overrides VERBOSE=0 */
    assert_int_equal(setenv("VERBOSE", "0", 1), 0);
    assert_int_equal(parse(ARGC(flag), flag, NULL, err), CFG_OK);
    assert_int_equal(g_verbose, 1);
}

/* One failing invocation: an optional variable, argv, the expected text. */
struct err_case {
    const char *env;
    const char *value;
    const char *args[4]; /* after argv[0], NULL-terminated */
    const char *want;
};

static void test_errors(void **state)
{
    static const struct err_case cases[] = {
        {NULL, NULL, {"--port", "70000"}, "--port: '70000' is out of range 0..65535"},
        {NULL, NULL, {"--port", "-1"}, "--port: '-1' is out of range 0..65535"},
        {NULL,
         NULL,
         {"--port", "99999999999999999999"},
         "--port: '99999999999999999999' is out of range 0..65535"},
        {NULL, NULL, {"--port", "80x"}, "--port: '80x' is not a number"},
        {NULL, NULL, {"--port", " 80"}, "--port: ' 80' is not a number"},
        {NULL, NULL, {"--port="}, "--port: '' is not a number"},
        {"PORT", "abc", {NULL}, "PORT: 'abc' is not a number"},
        {"PORT", "", {NULL}, "PORT: '' is not a number"},
        {"PORT", "70000", {NULL}, "PORT: '70000' is out of range 0..65535"},
        {NULL,
         NULL,
         {"--cleanup-interval", "5x"},
         "--cleanup-interval: '5x' is not a duration (e.g. 500ms, 10s, 1m)"},
        {NULL,
         NULL,
         {"--cleanup-interval", "500ms"},
         "--cleanup-interval: '500ms' is out of range 1s..1h"},
        {NULL,
         NULL,
         {"--cleanup-interval", "2h"},
         "--cleanup-interval: '2h' is out of range 1s..1h"},
        {"CLEANUP_INTERVAL",
         "1.5s",
         {NULL},
         "CLEANUP_INTERVAL: '1.5s' is not a duration (e.g. 500ms, 10s, 1m)"},
        {"VERBOSE", "maybe", {NULL}, "VERBOSE: 'maybe' is not a boolean"},
        {"VERBOSE", "", {NULL}, "VERBOSE: '' is not a boolean"},
        {NULL, NULL, {"--bogus"}, "unknown option '--bogus'"},
        {NULL, NULL, {"--bogus=3"}, "unknown option '--bogus'"},
        {NULL, NULL, {"-x"}, "unknown option '-x'"},
        {NULL, NULL, {"--ver"}, "ambiguous option '--ver'"},
        {NULL, NULL, {"--port"}, "--port requires a value"},
        {NULL, NULL, {"--verbose", "--data-dir"}, "--data-dir requires a value"},
        {NULL, NULL, {"--verbose=1"}, "--verbose does not take a value"},
        {NULL, NULL, {"--help=1"}, "--help does not take a value"},
        {NULL, NULL, {"foo"}, "unexpected argument 'foo'"},
        {NULL, NULL, {"--port", "1", "foo"}, "unexpected argument 'foo'"},
        {NULL, NULL, {"--", "foo"}, "unexpected argument 'foo'"},
        /* a syntax error is reported before the environment is looked at */
        {"PORT", "abc", {"--bogus"}, "unknown option '--bogus'"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[6] = {"registry"};
        char err[ERR_MAX];
        int argc = 1;
        size_t j;

        for (j = 0; j < 4 && cases[i].args[j] != NULL; j++)
            argv[argc++] = (char *)cases[i].args[j];
        argv[argc] = NULL;
        assert_int_equal(setup(NULL), 0);
        if (cases[i].env != NULL)
            assert_int_equal(setenv(cases[i].env, cases[i].value, 1), 0);
        memset(err, 'x', sizeof err);
        if (parse(argc, argv, NULL, err) != CFG_ERROR)
            fail_msg("case %zu: expected an error '%s'", i, cases[i].want);
        if (strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
    }
}

static void test_error_buffer_optional(void **state)
{
    char *argv[] = {"registry", "--bogus", NULL};
    char small[8];

    (void)state;
    assert_int_equal(cfg_parse("registry", NULL, g_opts, N_OPTS, ARGC(argv), argv, NULL, NULL, 0),
                     CFG_ERROR);
    /* a short buffer is truncated, never overrun */
    assert_int_equal(
        cfg_parse("registry", NULL, g_opts, N_OPTS, ARGC(argv), argv, NULL, small, sizeof small),
        CFG_ERROR);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_repeated_calls(void **state)
{
    char *bad[] = {"registry", "--port", NULL};
    char *good[] = {"registry", "--port", "1234", NULL};
    char err[ERR_MAX];

    (void)state;
    assert_int_equal(parse(ARGC(bad), bad, NULL, err), CFG_ERROR);
    assert_int_equal(parse(ARGC(good), good, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 1234);
    assert_int_equal(parse(ARGC(good), good, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 1234);
}

static void test_abbreviation(void **state)
{
    char *argv[] = {"registry", "--po", "4321", NULL};
    char err[ERR_MAX];

    (void)state;
    /* getopt_long accepts unambiguous prefixes */
    assert_int_equal(parse(ARGC(argv), argv, NULL, err), CFG_OK);
    assert_int_equal(g_common.port, 4321);
}

/* Run cfg_parse with output captured; returns the output (caller frees). */
static char *parse_capture(int argc, char **argv, enum cfg_result *rc)
{
    char *buf = NULL;
    size_t len = 0;
    char err[ERR_MAX];
    FILE *out = open_memstream(&buf, &len);

    assert_non_null(out);
    *rc = parse(argc, argv, out, err);
    assert_int_equal(fclose(out), 0);
    assert_non_null(buf);
    return buf;
}

static void test_help(void **state)
{
    static const char *const want[] = {
        "Usage: registry",
        "Service registry.",
        "--port PORT",
        "TCP port to listen on (0: ephemeral) (env PORT, default 8500)",
        "--bind ADDR",
        "(env BIND, default 127.0.0.1)",
        "--registry URL[,URL]",
        "(env REGISTRY_URL)\n", /* NULL string: no default shown */
        "--advertise HOST",
        "--log-level LEVEL",
        "(env LOG_LEVEL, default info)",
        "--cleanup-interval DUR",
        "(env CLEANUP_INTERVAL, default 30s)",
        "--verbose ",
        "(env VERBOSE, default off)",
        "--data-dir DIR",
        "--help",
        "--version",
    };
    char *argv[] = {"registry", "--port", "1", "--help", "--bogus", NULL};
    enum cfg_result rc;
    char *text;
    size_t i;

    (void)state;
    /* --help shows the built-in defaults even with the env set or malformed */
    assert_int_equal(setenv("PORT", "abc", 1), 0);
    text = parse_capture(ARGC(argv), argv, &rc);
    assert_int_equal(rc, CFG_EXIT);
    for (i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(text, want[i]) == NULL)
            fail_msg("'%s' missing from --help output:\n%s", want[i], text);
    assert_int_equal(g_common.port, 8500); /* nothing applied */
    free(text);
}

static void test_help_short_and_durations(void **state)
{
    char *argv[] = {"registry", "-h", NULL};
    enum cfg_result rc;
    char *text;

    (void)state;
    g_interval = 500;
    g_data_dir = "";
    g_verbose = 1;
    text = parse_capture(ARGC(argv), argv, &rc);
    assert_int_equal(rc, CFG_EXIT);
    assert_non_null(strstr(text, "default 500ms)"));
    assert_non_null(strstr(text, "(env DATA_DIR, default '')"));
    assert_non_null(strstr(text, "(env VERBOSE, default on)"));
    free(text);

    g_interval = 120000;
    text = parse_capture(ARGC(argv), argv, &rc);
    assert_non_null(strstr(text, "default 2m)"));
    free(text);
}

static void test_version(void **state)
{
    char *lng[] = {"registry", "--version", NULL};
    char *shrt[] = {"registry", "-V", NULL};
    enum cfg_result rc;
    char *text;

    (void)state;
    text = parse_capture(ARGC(lng), lng, &rc);
    assert_int_equal(rc, CFG_EXIT);
#ifdef SVC_VERSION
    assert_string_equal(text, "registry " SVC_VERSION "\n");
#else
    assert_int_equal(strncmp(text, "registry ", 9), 0);
#endif
    free(text);
    text = parse_capture(ARGC(shrt), shrt, &rc);
    assert_int_equal(rc, CFG_EXIT);
    assert_int_equal(strncmp(text, "registry ", 9), 0);
    free(text);
}

static void test_duration_table(void **state)
{
    static const struct {
        const char *s;
        int ok;
        int64_t ms;
    } cases[] = {
        {"500ms", 1, 500},
        {"10s", 1, 10000},
        {"1m", 1, 60000},
        {"2h", 1, 7200000},
        {"7", 1, 7000},
        {"0", 1, 0},
        {"0ms", 1, 0},
        {"007s", 1, 7000},
        {"9223372036854775807ms", 1, INT64_MAX},
        {"", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {" 1s", 0, 0},
        {"1s ", 0, 0},
        {"5x", 0, 0},
        {"1.5s", 0, 0},
        {"ms", 0, 0},
        {"s", 0, 0},
        {"10S", 0, 0},
        {"10 s", 0, 0},
        {"1sms", 0, 0},
        {"99999999999999999999", 0, 0},
        {"9223372036854775808ms", 0, 0},
        {"9223372036854775807s", 0, 0},
        {"2562047788015216h", 0, 0}, /* fits as a number, overflows as ms */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -42;
        int rc = cfg_parse_duration_ms(cases[i].s, &ms);

        if (cases[i].ok) {
            if (rc != 0 || ms != cases[i].ms)
                fail_msg("'%s': rc %d ms %lld, want %lld", cases[i].s, rc, (long long)ms,
                         (long long)cases[i].ms);
        } else if (rc != -1 || ms != -42) {
            fail_msg("'%s': accepted (rc %d, ms %lld)", cases[i].s, rc, (long long)ms);
        }
    }
    assert_int_equal(cfg_parse_duration_ms(NULL, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_kept, setup),
        cmocka_unit_test_setup(test_flags_parse, setup),
        cmocka_unit_test_setup(test_env_parse, setup),
        cmocka_unit_test_setup(test_given, setup),
        cmocka_unit_test_setup(test_flag_overrides_env, setup),
        cmocka_unit_test_setup(test_last_flag_wins, setup),
        cmocka_unit_test_setup(test_int_bounds, setup),
        cmocka_unit_test_setup(test_empty_env_string, setup),
        cmocka_unit_test_setup(test_empty_flag_string, setup),
        cmocka_unit_test_setup(test_flag_options, setup),
        cmocka_unit_test_setup(test_errors, setup),
        cmocka_unit_test_setup(test_error_buffer_optional, setup),
        cmocka_unit_test_setup(test_repeated_calls, setup),
        cmocka_unit_test_setup(test_abbreviation, setup),
        cmocka_unit_test_setup(test_help, setup),
        cmocka_unit_test_setup(test_help_short_and_durations, setup),
        cmocka_unit_test_setup(test_version, setup),
        cmocka_unit_test_setup(test_duration_table, setup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
