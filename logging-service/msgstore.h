/* msgstore.h: the logging-service's messages in memory: a hash table from
 * uuid to message (O(1) insert and lookup) and the order in which they were
 * first stored, with the deduplication rule: the same uuid with the same
 * msg is a duplicate (kept once), the same uuid with another msg a conflict
 * (nothing changes). Pure data structure: no I/O, no logging, no clock. */
#ifndef LG_MSGSTORE_H
#define LG_MSGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MS_KEY_MAX 36 /* longest uuid key, bytes (a canonical UUID) */

struct ms_store;

/* What ms_put did with a message. */
enum ms_outcome {
    MS_STORED = 0, /* new uuid: stored, appended to the order */
    MS_DUPLICATE,  /* uuid known with the same msg: nothing changed */
    MS_CONFLICT,   /* uuid known with another msg: nothing changed */
};

/* A read-only view of a stored message. The pointers are borrowed from the
 * store and stay valid until that message is removed (ms_truncate) or the
 * store freed. msg is NUL-terminated; len excludes the NUL. */
struct ms_view {
    const char *uuid;
    const char *msg;
    size_t len;
    int64_t ts; /* milliseconds since the epoch, as given to ms_put */
};

/* A new empty store (caller frees with ms_free), or NULL when out of memory. */
struct ms_store *ms_new(void) __attribute__((warn_unused_result));

/* Free the store and every message in it. Accepts NULL. */
void ms_free(struct ms_store *s);

/* Store msg (len bytes, copied; may hold any bytes) under uuid (copied;
 * 1..MS_KEY_MAX bytes, compared byte for byte: callers normalise case)
 * with timestamp ts, unless uuid is known. *outcome says which it was.
 * Returns 0, or -1 (nothing changed) when uuid is empty or too long or
 * memory runs out. */
int ms_put(struct ms_store *s, const char *uuid, const char *msg, size_t len, int64_t ts,
           enum ms_outcome *outcome) __attribute__((warn_unused_result));

/* Look uuid up. Fills *out (may be NULL) and returns true when it is known. */
bool ms_get(const struct ms_store *s, const char *uuid, struct ms_view *out);

/* Number of messages stored. */
size_t ms_count(const struct ms_store *s);

/* The i-th message in the order first stored (0 is the oldest). Fills *out
 * and returns true, or returns false when i >= ms_count(s). */
bool ms_at(const struct ms_store *s, size_t i, struct ms_view *out);

/* Forget the newest messages until only the first n remain (n >= count:
 * nothing happens). Undoes ms_put calls whose write to the journal failed,
 * so memory and disk agree. */
void ms_truncate(struct ms_store *s, size_t n);

#endif
