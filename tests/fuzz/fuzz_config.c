/* fuzz_config.c: libFuzzer harness for the option parser (core/config.c):
 * the fuzz data, split at NUL bytes, is an argv (at most 32 arguments)
 * given to cfg_parse with a table holding options of every kind (the
 * shared server options, a string, a bounded integer, a duration and a
 * flag); each argument is also given to cfg_parse_duration_ms and checked
 * against a reference computed in 128 bits. Besides crashes and leaks it
 * checks the contracts: on CFG_OK every target is within its range (or
 * still its default), and a duration parses exactly when the reference
 * says it is well formed and fits. The variables of the table are unset,
 * so only argv varies. */
#include "core/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGS_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference of cfg_parse_duration_ms: digits then "", "ms", "s", "m"
 * or "h". 0 with *ms set, or -1. */
static int ref_duration(const char *s, int64_t *ms)
{
    __int128 v = 0, mult;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > INT64_MAX)
            return -1;
    }
    if (!*p || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (v * mult > INT64_MAX)
        return -1;
    *ms = (int64_t)(v * mult);
    return 0;
}

static void check_duration(const char *s)
{
    int64_t got = -1, want = -1;
    int rc = cfg_parse_duration_ms(s, &got), ref = ref_duration(s, &want);

    if (rc != ref || (rc == 0 && got != want))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    struct cfg_common c = {.port = 8080, .bind = "127.0.0.1", .log_level = "info"};
    const char *name = "default";
    long count = 7;
    int64_t wait_ms = 1500;
    int verbose = 0;
    const struct cfg_option opts[] = {
        CFG_SERVER_OPTIONS(&c),
        {"name", "FUZZ_CFG_NAME", CFG_STRING, &name, 0, 0, "NAME", "a string"},
        {"count", "FUZZ_CFG_COUNT", CFG_INT, &count, -5, 100, "N", "an integer"},
        {"wait", "FUZZ_CFG_WAIT", CFG_DURATION, &wait_ms, 10, 86400 * 1000LL, "DUR", "a duration"},
        {"verbose", "FUZZ_CFG_VERBOSE", CFG_FLAG, &verbose, 0, 0, NULL, "a flag"},
        {"ttl", NULL, CFG_DURATION, &c.ttl_ms, 0, INT64_MAX, "DUR", "unbounded duration"},
    };
    char *copy, *argv[ARGS_MAX + 2], err[256];
    size_t i, start = 0;
    int argc = 0;

    if (!sink)
        sink = fopen("/dev/null", "w");
    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[argc++] = "fuzz";
    for (i = 0; i <= size && argc <= ARGS_MAX; i++) {
        if (copy[i] == '\0') {
            argv[argc++] = copy + start;
            check_duration(copy + start);
            start = i + 1;
        }
    }
    argv[argc] = NULL;
    switch (cfg_parse("fuzz", "a fuzzed table", opts, sizeof(opts) / sizeof(opts[0]), argc, argv,
                      sink, err, sizeof(err))) {
    case CFG_OK:
        if (c.port < 0 || c.port > 65535 || c.max_conns < 0 || c.max_conns > 1000000 ||
            count < -5 || count > 100 || wait_ms < 10 || wait_ms > 86400 * 1000LL ||
            (verbose != 0 && verbose != 1) || c.ttl_ms < 0 || !name || !c.bind || !c.log_level)
            abort();
        break;
    case CFG_ERROR:
        if (!err[0] || !memchr(err, '\0', sizeof(err)))
            abort();
        break;
    case CFG_EXIT:
        break;
    }
    free(copy);
    return 0;
}
