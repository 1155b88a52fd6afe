/* runner.h: the registry's active health-check runner (prefix crun_). It
 * runs probes (an HTTP GET or a TCP connect) on a schedule, each on its own
 * libevent timer, and reports every probe's raw result (pass, warn, fail and
 * a short text) to one callback. It knows no registry type, only strings and
 * numbers: thresholds and check state machines belong to the registry core.
 *
 * Scheduling: a probe's first run comes at a uniformly random point in
 * [0, interval) after crun_add, so probes added together spread over their
 * interval; then one run every interval, measured from the start of the
 * previous run (a slow run does not shift the phase). A run still in flight
 * when the next is due makes that next run be skipped, never overlapped.
 * Each run costs at most its own timeout; nothing here blocks the loop. */
#ifndef REGISTRY_CHECKS_RUNNER_H
#define REGISTRY_CHECKS_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct event_base;
struct crun;

enum crun_kind {
    CRUN_HTTP = 0, /* GET target (an http:// or https:// URL) */
    CRUN_TCP = 1,  /* connect to target "HOST:PORT" and close at once */
};

enum crun_result {
    CRUN_PASS = 0, /* HTTP 2xx, TCP connected */
    CRUN_WARN = 1, /* HTTP 429 */
    CRUN_FAIL = 2, /* any other status, or a transport error */
};

/* Counters for /metrics, since crun_new. run counts runs started; a run
 * cancelled (crun_remove_instance, a replacing crun_add, crun_free) is in
 * run but in none of the results. */
struct crun_stats {
    uint64_t run;     /* runs started */
    uint64_t passed;  /* reports with CRUN_PASS */
    uint64_t warned;  /* reports with CRUN_WARN */
    uint64_t failed;  /* reports with CRUN_FAIL */
    uint64_t skipped; /* runs not started: the previous one was in flight */
};

/* One probe finished. instance_id, check_id and output are borrowed for the
 * call (they stay valid until it returns, even when it removes or replaces
 * that probe). output is short NUL-terminated printable ASCII of at most
 * LIM_CHECK_OUTPUT_MAX bytes before its NUL, e.g.
 * "HTTP GET http://10.0.0.5:5001/health: 200 OK". Called from the event
 * loop only, never from inside crun_add or crun_remove_instance. It may
 * call crun_add and crun_remove_instance (also for its own probe or
 * instance), but not crun_free. */
typedef void (*crun_report_fn)(void *arg, const char *instance_id, const char *check_id,
                               enum crun_result res, const char *output);

/* Create a runner on base (borrowed; must outlive the runner). report
 * (required) gets arg with every result. seed drives the first-run
 * spreading; 0 takes one from the time and the process id. The runner owns
 * its own HTTP client (common/http/client.h), made with the first HTTP
 * probe (so a registry without HTTP checks never initialises libcurl), and,
 * once a TCP target names a host, its own evdns resolver, both on base. Returns NULL on failure;
 * caller frees with crun_free. */
struct crun *crun_new(struct event_base *base, crun_report_fn report, void *arg, unsigned int seed)
    __attribute__((warn_unused_result));

/* Add a probe keyed by (instance_id, check_id) (both copied, non-empty),
 * or replace the probe of that key: its run in flight is cancelled (its
 * report never comes) and its schedule restarts. target (copied) is an
 * http(s) URL for CRUN_HTTP, "HOST:PORT" for CRUN_TCP (HOST an IPv4
 * literal, a [IPv6] literal or a host name of at most LIM_HOST_MAX bytes).
 * interval_ms and timeout_ms are in 1..CRUN_MS_MAX; timeout_ms bounds a
 * whole run (resolve, connect, answer). Returns 0, or -1 on bad arguments
 * or out of memory (then nothing changed, also no replaced probe). */
int crun_add(struct crun *c, const char *instance_id, const char *check_id, enum crun_kind kind,
             const char *target, int64_t interval_ms, int64_t timeout_ms)
    __attribute__((warn_unused_result));

/* A sanity bound on the arguments (about 24.8 days), not a product limit:
 * the registry's own limits on intervals and timeouts are far below it. */
#define CRUN_MS_MAX INT32_MAX

/* Stop and forget every probe of instance_id (borrowed), cancelling its
 * runs in flight: their reports never come. Unknown ids are a no-op. Costs
 * the number of that instance's probes, not of all probes. */
void crun_remove_instance(struct crun *c, const char *instance_id);

/* Probes known. */
size_t crun_count(const struct crun *c);

/* Runs in flight. */
size_t crun_inflight(const struct crun *c);

/* Copy the counters into *out. */
void crun_get_stats(const struct crun *c, struct crun_stats *out);

/* Cancel every run (no report comes) and free the runner. Accepts NULL.
 * Not from inside a report. */
void crun_free(struct crun *c);

#endif
