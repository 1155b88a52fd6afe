/* dedup/store.h: a deduplicating message store in memory: a hash table from
 * uuid to message (O(1) insert and lookup) and the order in which they were
 * first stored, with the deduplication rule: the same uuid with the same
 * msg is a duplicate (kept once), the same uuid with another msg a conflict
 * (nothing changes). Pure data structure: no I/O, no logging, no clock. */
#ifndef SVC_DEDUP_STORE_H
#define SVC_DEDUP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_KEY_MAX 36 /* longest uuid key, bytes (a canonical UUID) */

struct ds_store;

/* What ds_put did with a message. */
enum ds_outcome {
    DS_STORED = 0, /* new uuid: stored, appended to the order */
    DS_DUPLICATE,  /* uuid known with the same msg: nothing changed */
    DS_CONFLICT,   /* uuid known with another msg: nothing changed */
};

/* A read-only view of a stored message. The pointers are borrowed from the
 * store and stay valid until that message is removed (ds_truncate) or the
 * store freed. msg is NUL-terminated; len excludes the NUL. */
struct ds_view {
    const char *uuid;
    const char *msg;
    size_t len;
    int64_t ts; /* milliseconds since the epoch, as given to ds_put */
};

/* A new empty store (caller frees with ds_free), or NULL when out of memory. */
struct ds_store *ds_new(void) __attribute__((warn_unused_result));

/* Free the store and every message in it. Accepts NULL. */
void ds_free(struct ds_store *s);

/* Store msg (len bytes, copied; may hold any bytes) under uuid (copied;
 * 1..DS_KEY_MAX bytes, compared byte for byte: callers normalise case)
 * with timestamp ts, unless uuid is known. *outcome says which it was.
 * Returns 0, or -1 (nothing changed) when uuid is empty or too long or
 * memory runs out. */
int ds_put(struct ds_store *s, const char *uuid, const char *msg, size_t len, int64_t ts,
           enum ds_outcome *outcome) __attribute__((warn_unused_result));

/* Look uuid up. Fills *out (may be NULL) and returns true when it is known. */
bool ds_get(const struct ds_store *s, const char *uuid, struct ds_view *out);

/* Number of messages stored. */
size_t ds_count(const struct ds_store *s);

/* The i-th message in the order first stored (0 is the oldest). Fills *out
 * and returns true, or returns false when i >= ds_count(s). */
bool ds_at(const struct ds_store *s, size_t i, struct ds_view *out);

/* Forget the newest messages until only the first n remain (n >= count:
 * nothing happens). Undoes ds_put calls whose write to the journal failed,
 * so memory and disk agree. */
void ds_truncate(struct ds_store *s, size_t n);

#endif
