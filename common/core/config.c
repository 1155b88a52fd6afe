/* config.c: options from environment variables and command-line flags
 * (see config.h). cfg_parse works in three steps so that --help shows the
 * built-in defaults and works even when the environment is malformed:
 *   1. scan argv with getopt_long, collecting (option, value) pairs and
 *      stopping at --help / --version or at the first syntax error;
 *   2. apply every set environment variable to its target;
 *   3. apply the collected flags in order (flags override the environment).
 * Values are only checked in steps 2 and 3, so an error names the flag or
 * the variable it came from. */
#include "core/config.h"
#include "core/errbuf.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef SVC_VERSION
#define SVC_VERSION "0.0.0"
#endif

/* getopt_long "val" of opts[i] is CFG_VAL_BASE + i, clear of any short
 * option character. */
#define CFG_VAL_BASE 256
/* Sanity bound on the size of an option table (a compile-time table, not
 * user input), so that CFG_VAL_BASE + i and the allocation cannot overflow. */
#define CFG_OPTIONS_MAX 1024
/* Room for a formatted number or duration ("-9223372036854775808ms"). */
#define CFG_NUMBER_TEXT_MAX 32

/* The targets the last cfg_parse set from a flag or a variable (for
 * cfg_given): process-wide, as the options are. */
static const void *cfg_given_targets[CFG_OPTIONS_MAX];
static size_t cfg_ngiven;

/* Record that target was given explicitly. */
static void cfg_mark_given(const void *target)
{
    size_t i;

    for (i = 0; i < cfg_ngiven; i++)
        if (cfg_given_targets[i] == target)
            return;
    if (cfg_ngiven < CFG_OPTIONS_MAX)
        cfg_given_targets[cfg_ngiven++] = target;
}

bool cfg_given(const void *target)
{
    size_t i;

    for (i = 0; i < cfg_ngiven; i++)
        if (cfg_given_targets[i] == target)
            return true;
    return false;
}

/* One flag found on the command line, applied after the environment. */
struct cfg_seen {
    size_t opt;      /* index into the option table */
    const char *arg; /* borrowed from argv; NULL for CFG_FLAG */
};

/* Write a printf-style message into err (may be NULL or errlen 0).
 * Always returns CFG_ERROR so callers can "return cfg_fail(...)". */
static enum cfg_result cfg_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cfg_result cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    errbuf_vset(err, errlen, fmt, ap);
    va_end(ap);
    return CFG_ERROR;
}

/* Format a millisecond count in the largest unit that divides it exactly
 * ("2h", "1m", "10s", "500ms"; 0 is "0s") into buf (borrowed). */
static void cfg_format_duration(int64_t ms, char *buf, size_t len)
{
    if (ms == 0)
        snprintf(buf, len, "0s");
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

/* Parse a duration into *out_ms (see config.h). Borrows s; *out_ms is only
 * written on success. Units are lower case; no sign, no spaces. */
int cfg_parse_duration_ms(const char *s, int64_t *out_ms)
{
    int64_t value = 0;
    int64_t mult;
    const char *p = s;

    if (s == NULL || out_ms == NULL)
        return -1;
    if (*p < '0' || *p > '9')
        return -1; /* empty, signed, spaced or unit-only */
    while (*p >= '0' && *p <= '9') {
        int digit = *p - '0';

        if (value > (INT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
        p++;
    }
    if (*p == '\0' || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (value > INT64_MAX / mult)
        return -1;
    *out_ms = value * mult;
    return 0;
}

/* Parse a whole decimal integer (optional sign, no spaces, no trailing
 * text). Returns 0, -1 when s is not a number, -2 when it does not fit. */
static int cfg_parse_integer(const char *s, long long *out)
{
    char *end = NULL;
    long long v;

    if (*s != '-' && *s != '+' && (*s < '0' || *s > '9'))
        return -1; /* also rejects "" and the leading spaces strtoll skips */
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

/* Parse a boolean environment value (any case): 1/true/yes/on or
 * 0/false/no/off. Returns 1, 0, or -1 for anything else. */
static int cfg_parse_bool(const char *s)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    size_t i;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Parse value (borrowed; it becomes the target of a CFG_STRING) into the
 * target of opt. dashes + source ("--" + name, or "" + variable) names the
 * origin in the error message. value is NULL for a flag given in argv. */
static enum cfg_result cfg_apply(const struct cfg_option *opt, const char *dashes,
                                 const char *source, const char *value, char *err, size_t errlen)
{
    long long n = 0;
    int64_t ms = 0;
    int rc;

    switch (opt->kind) {
    case CFG_STRING:
        *(const char **)opt->target = value;
        return CFG_OK;
    case CFG_INT:
        rc = cfg_parse_integer(value, &n);
        if (rc == -1)
            return cfg_fail(err, errlen, "%s%s: '%s' is not a number", dashes, source, value);
        /* (long)n != n catches platforms where long is narrower than int64 */
        if (rc == -2 || n < opt->min || n > opt->max || (long)n != n)
            return cfg_fail(err, errlen, "%s%s: '%s' is out of range %lld..%lld", dashes, source,
                            value, (long long)opt->min, (long long)opt->max);
        *(long *)opt->target = (long)n;
        return CFG_OK;
    case CFG_DURATION:
        if (cfg_parse_duration_ms(value, &ms) != 0)
            return cfg_fail(err, errlen, "%s%s: '%s' is not a duration (e.g. 500ms, 10s, 1m)",
                            dashes, source, value);
        if (ms < opt->min || ms > opt->max) {
            char lo[CFG_NUMBER_TEXT_MAX];
            char hi[CFG_NUMBER_TEXT_MAX];

            cfg_format_duration(opt->min, lo, sizeof lo);
            cfg_format_duration(opt->max, hi, sizeof hi);
            return cfg_fail(err, errlen, "%s%s: '%s' is out of range %s..%s", dashes, source, value,
                            lo, hi);
        }
        *(int64_t *)opt->target = ms;
        return CFG_OK;
    case CFG_FLAG:
        if (value == NULL) { /* given on the command line */
            *(int *)opt->target = 1;
            return CFG_OK;
        }
        rc = cfg_parse_bool(value);
        if (rc < 0)
            return cfg_fail(err, errlen,
                            "%s%s: '%s' is not a boolean (1/true/yes/on or 0/false/no/off)", dashes,
                            source, value);
        *(int *)opt->target = rc;
        return CFG_OK;
    }
    return cfg_fail(err, errlen, "%s%s: unknown option kind %d", dashes, source, (int)opt->kind);
}

/* Print " (env X, default V)" for opt to out, or the parts that exist. The
 * default is the value its target holds: --help runs before anything is
 * applied. A NULL string has no default; an empty one shows as ''. */
static void cfg_print_default(const struct cfg_option *opt, FILE *out)
{
    char num[CFG_NUMBER_TEXT_MAX];
    const char *def = NULL; /* borrowed from num, a literal or the target */
    const char *s;

    switch (opt->kind) {
    case CFG_STRING:
        s = *(const char *const *)opt->target;
        if (s != NULL)
            def = s[0] != '\0' ? s : "''";
        break;
    case CFG_INT:
        snprintf(num, sizeof num, "%ld", *(const long *)opt->target);
        def = num;
        break;
    case CFG_DURATION:
        cfg_format_duration(*(const int64_t *)opt->target, num, sizeof num);
        def = num;
        break;
    case CFG_FLAG:
        def = *(const int *)opt->target ? "on" : "off";
        break;
    }
    if (opt->env != NULL && def != NULL)
        fprintf(out, " (env %s, default %s)", opt->env, def);
    else if (opt->env != NULL)
        fprintf(out, " (env %s)", opt->env);
    else if (def != NULL)
        fprintf(out, " (default %s)", def);
}

/* Width of the "--name METAVAR" column for opt. */
static int cfg_usage_width(const struct cfg_option *opt)
{
    size_t w = 2 + strlen(opt->name);

    if (opt->kind != CFG_FLAG)
        w += 1 + strlen(opt->metavar != NULL ? opt->metavar : "VALUE");
    return (int)w;
}

/* Print --help to out (borrowed): a usage line, the summary, then one
 * aligned line per option with its variable and current default. */
static void cfg_print_help(const char *prog, const char *summary, const struct cfg_option *opts,
                           size_t n, FILE *out)
{
    int width = (int)strlen("-V, --version");
    size_t i;

    for (i = 0; i < n; i++) {
        int w = cfg_usage_width(&opts[i]);

        if (w > width)
            width = w;
    }
    fprintf(out, "Usage: %s [OPTION]...\n", prog);
    if (summary != NULL && summary[0] != '\0')
        fprintf(out, "%s\n", summary);
    fprintf(out, "\nOptions:\n");
    for (i = 0; i < n; i++) {
        const struct cfg_option *o = &opts[i];
        int w = cfg_usage_width(o);

        if (o->kind == CFG_FLAG)
            fprintf(out, "  --%s", o->name);
        else
            fprintf(out, "  --%s %s", o->name, o->metavar != NULL ? o->metavar : "VALUE");
        fprintf(out, "%*s  %s", width - w, "", o->help != NULL ? o->help : "");
        cfg_print_default(o, out);
        fputc('\n', out);
    }
    fprintf(out, "  %-*s  %s\n", width, "-h, --help", "show this help and exit");
    fprintf(out, "  %-*s  %s\n", width, "-V, --version", "show the version and exit");
}

/* Report the option getopt_long rejected with '?': unknown, ambiguous, or a
 * value given to an option that takes none. arg (borrowed, may be NULL) is
 * the argv element getopt_long consumed last; optopt says which it was. */
static enum cfg_result cfg_fail_unknown(const struct cfg_option *opts, size_t n, const char *arg,
                                        char *err, size_t errlen)
{
    size_t len;
    size_t i;
    size_t matches = 0;
    const char *name;

    if (optopt >= CFG_VAL_BASE && (size_t)(optopt - CFG_VAL_BASE) < n)
        return cfg_fail(err, errlen, "--%s does not take a value",
                        opts[optopt - CFG_VAL_BASE].name);
    if (optopt == 'h')
        return cfg_fail(err, errlen, "--help does not take a value");
    if (optopt == 'V')
        return cfg_fail(err, errlen, "--version does not take a value");
    if (optopt != 0)
        return cfg_fail(err, errlen, "unknown option '-%c'", optopt);
    /* an unknown or ambiguous long option: arg is "--name[=value]" */
    if (arg == NULL || strncmp(arg, "--", 2) != 0)
        return cfg_fail(err, errlen, "unknown option");
    name = arg + 2;
    len = strcspn(name, "=");
    for (i = 0; i < n; i++)
        if (strncmp(opts[i].name, name, len) == 0)
            matches++;
    if (strncmp("help", name, len) == 0)
        matches++;
    if (strncmp("version", name, len) == 0)
        matches++;
    if (matches > 1 && len > 0)
        return cfg_fail(err, errlen, "ambiguous option '--%.*s'", (int)len, name);
    return cfg_fail(err, errlen, "unknown option '--%.*s'", (int)len, name);
}

/* Parse env then argv into the targets (see config.h). Borrows everything;
 * string targets end up pointing into argv or environ. */
enum cfg_result cfg_parse(const char *prog, const char *summary, const struct cfg_option *opts,
                          size_t n, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    /* '+': stop at the first positional argument (reported as unexpected)
     * instead of permuting argv; ':': return ':' for a missing value. */
    static const char optstring[] = "+:hV";
    struct option *longopts = NULL;
    struct cfg_seen *seen = NULL;
    size_t nseen = 0;
    size_t i;
    enum cfg_result rc = CFG_ERROR;
    int c;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    cfg_ngiven = 0;
    if (out == NULL)
        out = stdout;
    if (prog == NULL)
        prog = argc > 0 && argv[0] != NULL ? argv[0] : "";
    if (n > CFG_OPTIONS_MAX || (n > 0 && opts == NULL))
        return cfg_fail(err, errlen, "option table: bad size %zu", n);
    for (i = 0; i < n; i++)
        if (opts[i].name == NULL || opts[i].target == NULL)
            return cfg_fail(err, errlen, "option table: entry %zu has no name or target", i);

    longopts = calloc(n + 3, sizeof *longopts);
    seen = calloc(argc > 0 ? (size_t)argc : 1, sizeof *seen);
    if (longopts == NULL || seen == NULL) {
        cfg_fail(err, errlen, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = opts[i].kind == CFG_FLAG ? no_argument : required_argument;
        longopts[i].val = CFG_VAL_BASE + (int)i;
    }
    longopts[n].name = "help";
    longopts[n].val = 'h';
    longopts[n + 1].name = "version";
    longopts[n + 1].val = 'V';

    /* Step 1: syntax only. optind = 0 makes glibc reinitialise fully. */
    opterr = 0;
    optind = 0;
    while (argc > 0) {
        c = getopt_long(argc, argv, optstring, longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            cfg_print_help(prog, summary, opts, n, out);
            rc = CFG_EXIT;
            goto cleanup;
        }
        if (c == 'V') {
            fprintf(out, "%s %s\n", prog, SVC_VERSION);
            rc = CFG_EXIT;
            goto cleanup;
        }
        if (c == ':') {
            if (optopt >= CFG_VAL_BASE && (size_t)(optopt - CFG_VAL_BASE) < n)
                cfg_fail(err, errlen, "--%s requires a value", opts[optopt - CFG_VAL_BASE].name);
            else
                cfg_fail(err, errlen, "option requires a value");
            goto cleanup;
        }
        if (c == '?' || c < CFG_VAL_BASE || (size_t)(c - CFG_VAL_BASE) >= n) {
            cfg_fail_unknown(opts, n, optind > 0 && optind <= argc ? argv[optind - 1] : NULL, err,
                             errlen);
            goto cleanup;
        }
        seen[nseen].opt = (size_t)(c - CFG_VAL_BASE);
        seen[nseen].arg = opts[c - CFG_VAL_BASE].kind == CFG_FLAG ? NULL : optarg;
        nseen++;
    }
    if (argc > 0 && optind < argc) {
        cfg_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
        goto cleanup;
    }

    /* Step 2: the environment. Set-but-empty counts as set. */
    for (i = 0; i < n; i++) {
        const char *value = opts[i].env != NULL ? getenv(opts[i].env) : NULL;

        if (value == NULL)
            continue;
        if (cfg_apply(&opts[i], "", opts[i].env, value, err, errlen) != CFG_OK)
            goto cleanup;
        cfg_mark_given(opts[i].target);
    }

    /* Step 3: the flags, in command-line order. */
    for (i = 0; i < nseen; i++) {
        const struct cfg_option *o = &opts[seen[i].opt];

        if (cfg_apply(o, "--", o->name, seen[i].arg, err, errlen) != CFG_OK)
            goto cleanup;
        cfg_mark_given(o->target);
    }
    rc = CFG_OK;

cleanup:
    free(seen);
    free(longopts);
    return rc;
}
