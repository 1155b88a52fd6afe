/* sse.h: a Server-Sent Events parser for svcctl watch: bytes in as they
 * come off the wire (split anywhere), whole events out. Knows the fields
 * the registry writes (id, event, data; several data lines are joined
 * with '\n'), skips comments (": keep-alive") and unknown fields, takes
 * "\n" or "\r\n" line ends. Pure: no I/O. */
#ifndef SVCCTL_SSE_H
#define SVCCTL_SSE_H

#include <stddef.h>

struct sse_parser;

/* One event: every string borrowed for the call ("" when the field was
 * not given). Returns nonzero to stop the parser. */
typedef int (*sse_event_fn)(const char *id, const char *event, const char *data, void *arg);

/* A parser whose events may hold at most max bytes (their lines while
 * they are read). NULL when out of memory; sse_free frees it. */
struct sse_parser *sse_new(size_t max) __attribute__((warn_unused_result));

/* Feed len bytes (borrowed); on_event is called for each event they end.
 * Returns 0, 1 when on_event asked to stop, -1 when an event passed the
 * cap or memory ran out (the parser is then of no more use). */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn on_event, void *arg)
    __attribute__((warn_unused_result));

/* NULL-safe. */
void sse_free(struct sse_parser *p);

#endif
