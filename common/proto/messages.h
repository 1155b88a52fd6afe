/* proto/messages.h: the wire contract between logging-service and its
 * clients (the facade), in one place for both sides: the service name and
 * path, the message record {"uuid","msg","ts","trace"?} (a batch item
 * and a listed message alike; "trace" is optional: the W3C trace id of
 * the request that posted it, 32 lower-case hex digits), the batch answer
 * {"success":true,"results":[{"uuid","status","duplicate","error"?}...]},
 * the full list {"success":true,"messages":[...]} and the page answer
 *   {"success":true,"epoch":"<store id>","messages":[...],"next":N,"more":B}
 * with encoders (used by logging) and decoders (used by the facade).
 *
 * Large answers are written through a pm_out: bytes gathered in off-heap
 * pieces of LIM_CHUNK_BYTES (mmap) handed to an evbuffer by reference, so a
 * 100 MB answer goes back to the system the moment it is sent instead of
 * staying in the heap. */
#ifndef SVC_PROTO_MESSAGES_H
#define SVC_PROTO_MESSAGES_H

#include "core/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define PM_SERVICE   "logging-service" /* the name logging registers under */
#define PM_PATH      "/logging"        /* its one resource */
#define PM_EPOCH_MAX 64                /* bytes of an epoch (a UUID: 36) */
#define PM_RESULT_MAX                                                                              \
    96 /* bytes of the longest result pm_result_put writes: a comma, a                          \
          36-character uuid, a three-digit status and "false" */

#define PM_F_TRACE       "trace" /* the optional trace member of a record */
#define PM_TRACE_LEN     32      /* its length: a W3C trace id in hex */
#define PM_TRACE_PUT_MAX 48 /* bytes pm_trace_put writes: ,"trace":"<32 hex>"} (44) with room */

/* One stored message; strings borrowed. msg holds len bytes of UTF-8. */
struct pm_record {
    const char *uuid; /* NUL-terminated canonical UUID */
    const char *msg;
    size_t len;
    int64_t ts;        /* milliseconds since the epoch */
    const char *trace; /* PM_TRACE_LEN hex digits (not NUL-terminated
                          when decoded: at least that long), or NULL */
};

/* What a page answer says besides its records. */
struct pm_page {
    char epoch[PM_EPOCH_MAX + 1]; /* the store incarnation the positions belong to */
    uint64_t next;                /* position to ask for next (after=) */
    bool more;                    /* more records follow next */
    size_t count;                 /* records in this page */
};

/* ---- output in off-heap pieces ---- */

struct pm_out {
    struct evbuffer *dst; /* borrowed: the pieces go there */
    char *chunk;          /* owned: the piece being filled (mmap), or NULL */
    size_t len, cap;
    bool failed; /* a piece could not be made: the output is incomplete */
};

/* Start writing into dst (borrowed; must outlive the pm_out's use). */
void pm_out_init(struct pm_out *o, struct evbuffer *dst);
/* Append n bytes (copied). 0, or -1 when out of memory (then o->failed). */
int pm_out_add(struct pm_out *o, const void *data, size_t n) __attribute__((warn_unused_result));
/* Room for n contiguous bytes in the current piece, or NULL (o->failed);
 * say how many were written with pm_out_commit. */
char *pm_out_reserve(struct pm_out *o, size_t n) __attribute__((warn_unused_result));
void pm_out_commit(struct pm_out *o, size_t n);
/* Hand the last piece to dst. Returns 0, or -1 when any step failed (dst
 * then holds an incomplete text the caller drains). */
int pm_out_finish(struct pm_out *o) __attribute__((warn_unused_result));
/* Bytes written so far that are not yet in dst (the current piece). */
size_t pm_out_pending(const struct pm_out *o);

/* ---- encoders (logging) ---- */

/* {"success":true,"messages":[ -- the full list's head; 0 or -1. */
int pm_list_begin(struct pm_out *o) __attribute__((warn_unused_result));
/* ]} -- the full list's tail; 0 or -1. */
int pm_list_end(struct pm_out *o) __attribute__((warn_unused_result));
/* {"success":true,"epoch":"<epoch>","messages":[ ; epoch borrowed, JSON-safe
 * (a UUID). 0 or -1. */
int pm_page_begin(struct pm_out *o, const char *epoch) __attribute__((warn_unused_result));
/* ],"next":<next>,"more":<more>} ; 0 or -1. */
int pm_page_end(struct pm_out *o, uint64_t next, bool more) __attribute__((warn_unused_result));
/* One record {"uuid","msg","ts"} (byte for byte jansson's compact text),
 * plus its "trace" when r->trace is not NULL, after a comma when comma. Returns the bytes written, or 0 when out of
 * memory. */
size_t pm_record_put(struct pm_out *o, const struct pm_record *r, bool comma)
    __attribute__((warn_unused_result));
/* Write the member ,"trace":"<trace>"} at dst (PM_TRACE_PUT_MAX bytes):
 * put over the closing brace of a record to add its trace; trace
 * (borrowed) is PM_TRACE_LEN valid hex digits. Returns the bytes written. */
size_t pm_trace_put(char *dst, const char *trace);

/* Write the result of a batch item {"uuid","status","duplicate"} (no
 * error) at dst (PM_RESULT_MAX bytes), after a comma when comma; returns its
 * length. uuid is a canonical UUID of 36 characters; duplicate is status 200. */
size_t pm_result_put(char *dst, bool comma, const char *uuid, int status);

/* ---- decoders (facade) ---- */

/* Called for each record of a page in order; index counts from 0 within
 * the page. rec and its strings are borrowed for the call. Return 0 to go
 * on, -1 to stop the decoding (pm_page_decode then fails). */
typedef int (*pm_record_fn)(const struct pm_record *rec, size_t index, void *arg);

/* Read a page answer (body: len bytes, borrowed) and call fn for each
 * record with a string uuid and msg (others are skipped). Fills *page.
 * Returns 0, or -1 with err filled when the body is not a page answer. */
int pm_page_decode(const char *body, size_t len, pm_record_fn fn, void *arg, struct pm_page *page,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* One item of a batch answer; strings borrowed for the callback. */
struct pm_result {
    const char *uuid;  /* NULL when the item had none */
    int status;        /* 201 stored, 200 duplicate, 409 conflict, 400 */
    bool duplicate;    /* status 200 */
    const char *error; /* NULL unless 400 or 409 */
};
/* Called for each result in order; index counts from 0. Return 0 to go
 * on, -1 to stop the decoding (pm_results_decode then fails). */
typedef int (*pm_result_fn)(const struct pm_result *res, size_t index, void *arg);

/* What reading batch answers on the hot path needs: room for the tokens of
 * the largest answer (LIM_BATCH_MAX results), made once and reused, so a
 * batch answer costs no allocation. Opaque; one per caller, not shared
 * between answers decoded at the same time. */
struct pm_reader;

/* A reader (caller frees with pm_reader_free), or NULL out of memory. */
struct pm_reader *pm_reader_new(void) __attribute__((warn_unused_result));
/* Free rd (NULL: nothing). */
void pm_reader_free(struct pm_reader *rd);

/* Read a batch answer (body: len bytes, borrowed) and call fn for each
 * result in order. The common shape (codec/jsonflat's subset: no escapes,
 * integers) is read through rd (borrowed) without allocation; any other
 * body, or rd NULL, is read by jansson; both give the same results.
 * expect >= 0 is the number of results the caller sent items for: an answer
 * with another number is refused before fn is called. Returns the number
 * of results, or -1 with err filled (not a batch answer, a "success"
 * member that is not true, another number of results than expect, or fn
 * stopped it); fn is not called for a refused answer. A result is the
 * item's only when its uuid is the item's: that check is the caller's. */
long pm_results_decode(struct pm_reader *rd, const char *body, size_t len, long expect,
                       pm_result_fn fn, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Copy the "error" text of an error answer {"success":false,"error":"..."}
 * (body: len bytes, borrowed) into out (cap bytes, the caller's; cut to
 * fit). Returns 0, or -1 with out "" when the body holds no error text. */
int pm_error_decode(const char *body, size_t len, char *out, size_t cap)
    __attribute__((warn_unused_result));

#endif
