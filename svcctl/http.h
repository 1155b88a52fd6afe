/* http.h: svcctl's HTTP calls, blocking libcurl easy transfers (svcctl is
 * a command-line client, not a server: nothing here runs on an event
 * loop). One call answers the whole body, capped at LIM_CLI_BODY_MAX; a
 * stream hands the body to a callback as it comes (svcctl watch). Both
 * tell a transport failure (no HTTP answer: refused, timed out, reset)
 * from an HTTP answer of any status, which the caller judges. */
#ifndef SVCCTL_HTTP_H
#define SVCCTL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* How calls are made; the strings are borrowed for the call. */
struct sch_opts {
    const char *token; /* sent as X-Registry-Token; NULL or "": none */
    long timeout_ms;   /* a whole call; for a stream only its connect */
};

/* One answer. body is NUL-terminated (not counted in len), owned by the
 * answer: sch_resp_clear frees it. */
struct sch_resp {
    long status; /* the HTTP status */
    char *body;
    size_t len;
};

/* Make one request of method to the absolute url, with body (len bytes,
 * borrowed; NULL: none) sent as content type ctype (NULL: none) and an
 * Accept of accept (NULL: none). Returns 0 with *out filled (caller clears
 * it) when an HTTP answer came, of any status; -1 with err filled (and
 * *out empty) when none did. */
int sch_call(const struct sch_opts *o, const char *method, const char *url, const char *body,
             size_t len, const char *ctype, const char *accept, struct sch_resp *out, char *err,
             size_t errlen) __attribute__((warn_unused_result));

/* Free what an answer holds and empty it; NULL-safe. */
void sch_resp_clear(struct sch_resp *r);

/* A piece of a stream's body (borrowed for the call); nonzero stops it. */
typedef int (*sch_chunk_fn)(const char *data, size_t len, void *arg);
/* Asked about once a second and while data flows: true stops the stream. */
typedef bool (*sch_stop_fn)(void *arg);

/* GET url with Accept: accept and hand a 200 answer's body to on_chunk as
 * it arrives, until the server ends it, on_chunk or should_stop asks to
 * stop, or nothing (not even a heartbeat) came for LIM_CLI_WATCH_IDLE_S.
 * Any other status: its body (capped at 64 KiB) is kept in *out instead.
 * Returns 0 when the server ended the stream or answered another status
 * (out->status says which), 1 when stopped by a callback, -1 with err
 * filled on a transport failure (the idle limit included). The caller
 * clears *out in every case. */
int sch_stream(const struct sch_opts *o, const char *url, const char *accept, sch_chunk_fn on_chunk,
               sch_stop_fn should_stop, void *arg, struct sch_resp *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* s percent-encoded for a URL path or query value; with keep_slash the
 * '/' stay as they are (a KV key's segments). Returns a new string the
 * caller frees, or NULL when out of memory. */
char *sch_escape(const char *s, bool keep_slash) __attribute__((warn_unused_result));

#endif
