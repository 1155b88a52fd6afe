/* trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/) for the
 * services' requests: parse and check a `traceparent` header
 *   00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
 * make fresh random trace and span ids, and format a traceparent. Only
 * version 00 is understood; anything else that does not parse is treated
 * as absent (the caller starts a new trace, as the specification says).
 * Pure functions but for trc_random (the kernel's CSPRNG). */
#ifndef SVC_HTTP_TRACE_H
#define SVC_HTTP_TRACE_H

#include <stdbool.h>

#define TRC_HEADER       "traceparent"
#define TRC_TRACE_ID_LEN 32 /* hex digits of a trace id (16 bytes) */
#define TRC_SPAN_ID_LEN  16 /* hex digits of a parent (span) id (8 bytes) */
#define TRC_PARENT_LEN   55 /* "00-" trace "-" span "-" flags */
#define TRC_FLAG_SAMPLED 0x01

/* One request's place in a trace; ids are lower-case hex, NUL-terminated. */
struct trc_ctx {
    char trace_id[TRC_TRACE_ID_LEN + 1];
    char span_id[TRC_SPAN_ID_LEN + 1]; /* this service's span */
    unsigned flags;                    /* trace-flags byte */
};

/* Parse a traceparent value (borrowed; NULL: absent). On success fills
 * *trace_id (lower case) and *flags when they are not NULL and returns 0;
 * -1 for anything that is not a valid version-00 traceparent (wrong
 * length, upper-case or non-hex digits, version ff or another version,
 * an all-zero trace or parent id). A caller treats -1 as "no trace given". */
int trc_parse(const char *value, char trace_id[TRC_TRACE_ID_LEN + 1], unsigned *flags)
    __attribute__((warn_unused_result));

/* True when s (borrowed, may be NULL) is a 32-digit lower-case hex trace id
 * that is not all zeros (what a logging item's "trace" must be). */
bool trc_trace_id_valid(const char *s);

/* Fill hex (n hex digits + NUL, n even) with fresh random bytes, never all
 * zero. For the event-loop thread only (a process-wide pool). */
void trc_random_hex(char *hex, unsigned n);

/* Start ctx for a request whose traceparent header is value (borrowed, may
 * be NULL): its trace id and flags when value is valid, else a new trace
 * (sampled); a new span id either way. Returns true when value was taken. */
bool trc_begin(struct trc_ctx *ctx, const char *value);

/* A new span of ctx's trace (for an outgoing call) into child. */
void trc_child(const struct trc_ctx *ctx, struct trc_ctx *child);

/* Format ctx as a traceparent into out (TRC_PARENT_LEN + 1 bytes). */
void trc_format(const struct trc_ctx *ctx, char out[TRC_PARENT_LEN + 1]);

/* Format a traceparent for an outgoing call of trace trace_id (borrowed,
 * valid) with a fresh span id into out (TRC_PARENT_LEN + 1 bytes). */
void trc_format_child(const char *trace_id, char out[TRC_PARENT_LEN + 1]);

#endif
