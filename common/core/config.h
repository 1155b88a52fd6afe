/* config.h: options from command-line flags and environment variables of
 * the same meaning (flag wins over variable, variable over default), with
 * --help and --version. Each service lists its options in a table; the
 * options every service shares come from CFG_COMMON_OPTIONS. */
#ifndef SVC_CORE_CONFIG_H
#define SVC_CORE_CONFIG_H

#include "core/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_kind {
    CFG_STRING,   /* target: const char ** (borrowed from argv/environ);
                     a variable set to "" counts as set */
    CFG_INT,      /* target: long *, checked against [min, max] */
    CFG_DURATION, /* target: int64_t * milliseconds; "500ms", "10s", "1m", "2h";
                     a bare number means seconds; checked against [min, max] ms */
    CFG_FLAG,     /* target: int *, set to 1 by the flag (which takes no value);
                     from env, any case: 1/true/yes/on or 0/false/no/off */
};

struct cfg_option {
    const char *name; /* long flag without "--" */
    const char *env;  /* environment variable, or NULL */
    enum cfg_kind kind;
    void *target;        /* see enum cfg_kind; holds the default on entry */
    int64_t min, max;    /* range for CFG_INT and CFG_DURATION (ms) */
    const char *metavar; /* shown in --help, e.g. "PORT" */
    const char *help;    /* one line for --help */
};

/* The options every service shares. */
struct cfg_common {
    long port;             /* --port / PORT; 0 binds an ephemeral port */
    const char *bind;      /* --bind / BIND, default 127.0.0.1 */
    const char *registry;  /* --registry / REGISTRY_URL */
    const char *advertise; /* --advertise / ADVERTISE_HOST */
    const char *log_level; /* --log-level / LOG_LEVEL */
    int64_t ttl_ms;        /* --ttl / TTL, registration lease (peers only) */
    long max_conns;        /* --max-connections / MAX_CONNECTIONS; 0: the server's
                              default (LIM_CONNECTIONS_MAX, fewer under a low
                              RLIMIT_NOFILE); see hs_set_max_conns */

    /* The registry's access token (peers only): --token / TOKEN, or the
     * first line of the file --token-file / TOKEN_FILE. */
    const char *token;
    const char *token_file;

    /* Health checks and drain (peers only). A zeroed struct means: check
     * NULL (the default, http), interval 0 (the default, 10 s), no drain
     * delay; peer_main sets the option defaults. */
    const char *check;         /* --check / CHECK: http, ttl or none */
    int64_t check_interval_ms; /* --check-interval / CHECK_INTERVAL (http checks) */
    int64_t drain_delay_ms;    /* --drain-delay / DRAIN_DELAY; 0: none */
};

/* clang-format off */
/* Options of every listening service: --port, --bind, --log-level,
 * --max-connections. */
#define CFG_SERVER_OPTIONS(c)                                                         \
    {"port", "PORT", CFG_INT, &(c)->port, 0, 65535, "PORT",                            \
     "TCP port to listen on (0: ephemeral)"},                                          \
    {"bind", "BIND", CFG_STRING, &(c)->bind, 0, 0, "ADDR",                             \
     "address to bind (containers use 0.0.0.0)"},                                      \
    {"log-level", "LOG_LEVEL", CFG_STRING, &(c)->log_level, 0, 0, "LEVEL",             \
     "debug, info, warn or error"},                                                    \
    {"max-connections", "MAX_CONNECTIONS", CFG_INT, &(c)->max_conns, 0,                \
     LIM_CONN_OPTION_MAX, "N",                                                     \
     "open connections; beyond, 503 and close (0: 4096, fewer under RLIMIT_NOFILE)"}

/* Options of the services that register with the registry: --registry,
 * --advertise, --ttl (the registry keeps whole seconds: a ttl that is not
 * one is rounded up, so 1500ms registers a lease of 2 s), --token or
 * --token-file (the registry's access token, sent on every call to it),
 * --check (how the registry checks us: http = the lease plus an HTTP check
 * of our /health, ttl = the lease only, none = no check and no renewals),
 * --check-interval (the HTTP check's period; its timeout is min(2 s, it)),
 * --drain-delay (on SIGTERM: enter maintenance, serve this long, then
 * stop; 0: stop at once). */
#define CFG_PEER_OPTIONS(c)                                                           \
    {"registry", "REGISTRY_URL", CFG_STRING, &(c)->registry, 0, 0, "URL[,URL]",        \
     "registry base URL(s)"},                                                          \
    {"advertise", "ADVERTISE_HOST", CFG_STRING, &(c)->advertise, 0, 0, "HOST",         \
     "host other services use to reach this one"},                                     \
    {"ttl", "TTL", CFG_DURATION, &(c)->ttl_ms, 1000, 86400 * 1000LL, "DUR",            \
     "registration lease (whole seconds, rounded up), renewed every ttl/3"},           \
    {"token", "TOKEN", CFG_STRING, &(c)->token, 0, 0, "TOKEN",                         \
     "access token sent to the registry (X-Registry-Token)"},                          \
    {"token-file", "TOKEN_FILE", CFG_STRING, &(c)->token_file, 0, 0, "PATH",           \
     "file whose first line is the token (instead of --token)"},                       \
    {"check", "CHECK", CFG_STRING, &(c)->check, 0, 0, "http|ttl|none",                 \
     "registry health check: lease + GET /health, lease only, or none"},               \
    {"check-interval", "CHECK_INTERVAL", CFG_DURATION, &(c)->check_interval_ms,        \
     LIM_CHECK_INTERVAL_MIN_MS, LIM_CHECK_INTERVAL_MAX_MS, "DUR",                      \
     "period of the HTTP check (timeout: min(2s, period))"},                           \
    {"drain-delay", "DRAIN_DELAY", CFG_DURATION, &(c)->drain_delay_ms, 0,              \
     LIM_DRAIN_DELAY_MAX_MS, "DUR",                                                    \
     "on SIGTERM: maintenance, keep serving this long, then stop (0: none)"}
/* clang-format on */

/* Both sets. */
#define CFG_COMMON_OPTIONS(c) CFG_SERVER_OPTIONS(c), CFG_PEER_OPTIONS(c)

enum cfg_result {
    CFG_OK = 0,    /* options parsed; run */
    CFG_EXIT = 1,  /* --help or --version printed to out; exit 0 */
    CFG_ERROR = -1 /* err says what was wrong; exit non-zero */
};

/* Parse env then argv into the targets of opts[0..n). --help (-h) and
 * --version (-V) are added and print to out (stdout when NULL); they win
 * over everything else, and --help shows the defaults the targets hold on
 * entry. Positional arguments are an error. On CFG_ERROR, err (may be NULL)
 * names the flag or variable at fault, and some targets may already have
 * been set. Borrows everything; string targets point into argv/environ.
 * Resets getopt state, so it may be called more than once (tests). */
enum cfg_result cfg_parse(const char *prog, const char *summary, const struct cfg_option *opts,
                          size_t n, int argc, char **argv, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether the last cfg_parse set the option whose target is target
 * (borrowed, only compared) from its flag or its environment variable,
 * rather than leaving its default: a setting from elsewhere (the registry's
 * KV store) may then take the default's place but not the given value's. */
bool cfg_given(const void *target);

/* Parse a duration ("250ms", "10s", "1m", "2h", bare number = seconds,
 * whole numbers only) into milliseconds. Returns 0 or -1 on malformed or
 * overflowing input. */
int cfg_parse_duration_ms(const char *s, int64_t *out_ms) __attribute__((warn_unused_result));

#endif
