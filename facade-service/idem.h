/* idem.h: the Idempotency-Keys this facade has taken, each with a digest
 * of its message. A keyed POST is checked against the merged view (what
 * the logging instances it could read hold) and against this table (what
 * this facade itself has handed to the replicator), so a resend with
 * another text is refused (409) even when every instance holding the
 * first text is down or frozen at that moment, and two keyed POSTs of one
 * key racing each other cannot both be stored. Bounded: past
 * IDM_KEYS_MAX keys the oldest is forgotten (first in, first out); a key
 * forgotten here is still checked against the merged view. */
#ifndef FC_IDEM_H
#define FC_IDEM_H

#include <stddef.h>
#include <stdint.h>

#define IDM_KEYS_MAX 100000 /* keys remembered; about 100 bytes each */

struct idm_table;

enum idm_result {
    IDM_UNKNOWN = 0, /* never taken (or forgotten) */
    IDM_SAME = 1,    /* taken with this message */
    IDM_OTHER = 2,   /* taken with another message */
};

/* An empty table keeping at most max keys (0: IDM_KEYS_MAX). NULL when out
 * of memory; caller frees with idm_free. */
struct idm_table *idm_new(size_t max) __attribute__((warn_unused_result));

/* Free. Accepts NULL. */
void idm_free(struct idm_table *t);

/* What the table knows of uuid (canonical, 36 characters) and msg. */
enum idm_result idm_check(const struct idm_table *t, const char *uuid, const char *msg, size_t len);

/* Remember uuid as taken with msg (a key already there keeps its first
 * message). 0, or -1 when out of memory or uuid is not canonical. */
int idm_take(struct idm_table *t, const char *uuid, const char *msg, size_t len)
    __attribute__((warn_unused_result));

/* Keys remembered now. */
size_t idm_count(const struct idm_table *t);

#endif
