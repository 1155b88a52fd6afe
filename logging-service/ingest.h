/* ingest.h: the logging-service's own rule, apart from HTTP: what a posted
 * item must look like (uuid, msg, ts, the optional trace and the exact
 * error texts, one set for
 * both the jsonflat fast path and the jansson fallback), storing items in
 * the deduplicating store (common/dedup/store.h) with their journal lines
 * written in one append, taking them back out of the store when that write
 * fails (nothing kept), and replaying the journal into the store at start.
 * No I/O of its own but the journal's; its only output is log.h (one INFO
 * line per message stored, a WARN for a conflicting journal line). */
#ifndef LG_INGEST_H
#define LG_INGEST_H

#include "codec/uid.h"
#include "lg_limits.h"
#include "proto/messages.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ds_store;
struct jn_journal;
struct jf_tok;
struct ig_ingest;

/* How a field of a posted item was given. */
enum ig_kind { IG_ABSENT, IG_STR, IG_INT, IG_WRONG };

/* The fields of one posted item as read by jansson or by jsonflat, so that
 * both readers share one set of rules and error texts. */
struct ig_fields {
    bool is_object;
    enum ig_kind uuid_kind, msg_kind, ts_kind, trace_kind; /* uuid, msg, trace: IG_STR or not */
    const char *uuid; /* borrowed; uuid_len bytes, maybe not NUL-terminated */
    size_t uuid_len;
    const char *msg; /* borrowed; msg_len bytes of valid UTF-8 */
    size_t msg_len;
    int64_t ts;        /* when ts_kind is IG_INT */
    const char *trace; /* borrowed; trace_len bytes, when trace_kind is IG_STR */
    size_t trace_len;
};

/* One posted message on its way through validation and the store. */
struct ig_item {
    char uuid[UID_STR_LEN + 1]; /* lower case; "" when the item had no usable uuid */
    bool has_uuid;              /* the item carried a string uuid (echoed back) */
    const char *msg;            /* borrowed from the request's JSON */
    size_t len;
    int64_t ts;
    char trace[PM_TRACE_LEN + 1]; /* the W3C trace id it came with; "" none */
    int status;                   /* 0 until decided; then 201, 200, 409 or 400 */
    bool decided;                 /* status was set by ig_apply */
    char error[LG_ERROR_MAX];     /* for 400 and 409; "" otherwise */
};

/* Counters since ig_new. */
struct ig_stats {
    uint64_t stored;         /* items stored (201) by ig_apply, replay not counted */
    uint64_t duplicates;     /* items answered "duplicate" */
    uint64_t conflicts;      /* items refused with 409 */
    uint64_t write_failures; /* ig_apply calls that failed: nothing kept */
};

/* The fields of obj (borrowed; the strings point into it) into *f. obj may
 * be any JSON value, or NULL. */
void ig_fields_json(const json_t *obj, struct ig_fields *f);
/* The fields of the value at toks[obj] of a jf_parse result into *f (the
 * strings are borrowed from the parsed body). */
void ig_fields_flat(const struct jf_tok *toks, size_t obj, struct ig_fields *f);

/* Validate one posted item into *it (strings borrowed from f), with now as
 * its ts when it gives none. Returns 0 (it->status 0: ready for ig_apply),
 * or -1 with it->status 400 and it->error saying what is wrong. */
int ig_check_item(const struct ig_fields *f, int64_t now, struct ig_item *it)
    __attribute__((warn_unused_result));

/* A new ingest over store and journal (both borrowed; they must outlive
 * it). Caller frees with ig_free. NULL when out of memory. */
struct ig_ingest *ig_new(struct ds_store *store, struct jn_journal *journal)
    __attribute__((warn_unused_result));
/* Free. Accepts NULL. */
void ig_free(struct ig_ingest *ig);

/* Apply the items of items[0..n) whose status is 0 (the ones ig_check_item
 * accepted) to the store in order, then append the new messages to the
 * journal in one write. On success each of them has its status (201
 * stored, 200 duplicate of a stored message or of an earlier item, 409
 * conflict, with its error) and 0 is returned. On failure (journal write,
 * memory) the store is exactly as before the call, those items have status
 * 0 again, and -1 is returned with err filled. items stays the caller's.
 * Before and after the write, an fstat checks that the journal file still
 * has a name:
 * when it was deleted, a new one is created at its path holding every
 * stored message (this batch included) before the call succeeds; when that
 * fails, the call fails and the next one tries again. */
int ig_apply(struct ig_ingest *ig, struct ig_item *items, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Load every line of the journal into the store, as if posted again (by
 * ig_check_item's rules: a line no POST could have stored is a bad line,
 * see jn_replay): a uuid seen twice keeps its first message (a repeat with
 * another msg is logged). Call once, before the first ig_apply. Returns the number of
 * messages stored, or -1 with err filled (read error, out of memory). */
long ig_replay(struct ig_ingest *ig, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The trace id of the message at store position pos: PM_TRACE_LEN hex
 * digits borrowed from ig (not NUL-terminated; valid until the next
 * ig_apply or ig_replay), or NULL when it came without one. */
const char *ig_trace_at(const struct ig_ingest *ig, size_t pos);

/* The store and journal given to ig_new (borrowed). */
struct ds_store *ig_store(const struct ig_ingest *ig);
struct jn_journal *ig_journal(const struct ig_ingest *ig);
/* Copy the counters into *out. */
void ig_get_stats(const struct ig_ingest *ig, struct ig_stats *out);

#endif
