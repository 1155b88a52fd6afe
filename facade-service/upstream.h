/* upstream.h: what the facade knows about each upstream instance it calls
 * (keyed by "host:port"): its circuit breaker and its counters, shown by
 * GET /stats. Records are created on first use and live until exit. */
#ifndef FC_UPSTREAM_H
#define FC_UPSTREAM_H

#include "resilience/breaker.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct up_table;

struct up_instance {
    char key[300];    /* "host:port" */
    char service[64]; /* e.g. "logging-service" */
    struct brk_breaker breaker;
    uint64_t total, ok, failed, retries;
    double latency_ms_sum; /* over total */
    void *user;            /* the owner's per-instance state (borrowed) */
};

/* clock: monotonic ms, NULL for the real one. Caller frees. */
struct up_table *up_new(int64_t (*clock)(void)) __attribute__((warn_unused_result));
void up_free(struct up_table *t);

/* Find or create the record of service at host:port. NULL on OOM. */
struct up_instance *up_get(struct up_table *t, const char *service, const char *host, int port);

/* Whether a call may go to u now (see brk_allow). */
bool up_allow(struct up_table *t, struct up_instance *u);
/* Record an admitted call's outcome and latency. */
void up_record(struct up_table *t, struct up_instance *u, bool ok, double latency_ms);
/* Whether u's breaker is open right now (no probe due). */
bool up_is_open(struct up_table *t, const struct up_instance *u);

/* {"upstreams": [...]} for GET /stats; new reference. */
json_t *up_stats_json(struct up_table *t);

/* Append facade_breaker_state{service,upstream} (a gauge per record: 0
 * closed, 1 half-open, 2 open, now) in Prometheus text format to out. */
void up_metrics(struct up_table *t, struct evbuffer *out);

/* Visit every record (for freeing the users' state). */
void up_foreach(struct up_table *t, void (*fn)(struct up_instance *u, void *arg), void *arg);

#endif
