/* cli.h: what every svcctl command shares: the exit codes, the options a
 * command runs with, and the registry call that turns an answer (or its
 * absence) into an exit code and a one-line error. Commands print their
 * output on stdout; errors go back to main in err, as "<what>: <why>",
 * and main prints them. */
#ifndef SVCCTL_CLI_H
#define SVCCTL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "http.h"

/* The exit codes (README "Command line: svcctl", svcctl --help). */
enum sc_exit {
    SC_OK = 0,          /* done; every instance passing, for health */
    SC_FAIL = 1,        /* not found, unhealthy, or refused by the registry (4xx) */
    SC_USAGE = 2,       /* a bad command line */
    SC_UNREACHABLE = 3, /* no answer (connect failure, timeout) or a 5xx */
};

/* What a command runs with; strings borrowed from argv or the
 * environment for the whole run. */
struct sc_ctx {
    const char *registry; /* base URL, no trailing '/' */
    struct sch_opts reg;  /* calls to the registry: with the token */
    struct sch_opts peer; /* calls to a service (facade /stats): without */
    bool json;            /* --json: machine output */
    const char *type;     /* watch --type, NULL: none */
    const char *name;     /* watch --name, NULL: none */
    const char *reason;   /* maint --reason, NULL: none */
};

/* A command: args are what follows its name (args[0] the first operand).
 * Returns an enum sc_exit; on anything but SC_OK err says why (SC_FAIL
 * of health may leave it empty: the output said it). */
typedef int (*sc_cmd_fn)(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

/* Call the registry: method on path (already escaped, with its query),
 * body (len bytes, borrowed, NULL: none) sent as JSON when ctype is NULL.
 * *out gets the answer (caller clears it) whatever its status. Returns
 * SC_OK for a 2xx; SC_FAIL for a 4xx; SC_UNREACHABLE for a 5xx or no
 * answer; err then "<what>: <why>", the why the registry's "error" when
 * it gave one. */
int sc_registry(const struct sc_ctx *c, const char *what, const char *method, const char *path,
                const char *body, size_t len, const char *ctype, struct sch_resp *out, char *err,
                size_t errlen) __attribute__((warn_unused_result));

/* sc_registry for a JSON answer: *doc (caller decrefs) the parsed body of
 * a 2xx, and when raw is given the answer itself in *raw (caller clears).
 * A 2xx that is not JSON is SC_UNREACHABLE (not the registry we know). */
int sc_registry_json(const struct sc_ctx *c, const char *what, const char *method, const char *path,
                     const char *body, json_t **doc, struct sch_resp *raw, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Print body as svcctl --json prints an answer: as it is, ending in '\n'. */
void sc_print_raw(const char *body, size_t len);

/* The worst health of an instance's checks, in words; borrowed from the
 * instance, or "-". */
const char *sc_health(const json_t *inst);

#endif
