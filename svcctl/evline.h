/* evline.h: one line of svcctl watch for one registry change event: its
 * time (UTC), type, service name, instance id (the key, for kv) and what
 * changed (the health it has, a check's move, maintenance on or off, the
 * kv operation). Pure: no I/O. */
#ifndef SVCCTL_EVLINE_H
#define SVCCTL_EVLINE_H

#include <time.h>

#include <jansson.h>

/* The line (no '\n') for the SSE event named sse_event ("register", ...,
 * or "reset") whose data is ev (borrowed: the event object of
 * GET /v1/events, or {oldest_index, index} for a reset). now stands in
 * for the time of an event without a timestamp. Missing members read "-".
 * Returns a new string the caller frees, or NULL when out of memory. */
char *evl_line(const char *sse_event, const json_t *ev, time_t now)
    __attribute__((warn_unused_result));

#endif
