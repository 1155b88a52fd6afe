/* msgstore.c: uuid -> message in a uthash table, insertion order in a
 * growable array of the same entries (see msgstore.h). One allocation per
 * message holds its key, timestamp and text. */
#include "msgstore.h"

#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash becomes a clean -1 from ms_put
 * instead of exit(): HASH_ADD then leaves the table as it was and flags the
 * entry it could not add (uthash >= 2.1). */
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(obj) ((obj)->oom = true)
#include <uthash.h>

#define MS_ORDER_MIN 64 /* first capacity of the order array */

struct ms_entry {
    UT_hash_handle hh;
    char uuid[MS_KEY_MAX + 1]; /* the hash key, NUL-terminated */
    bool oom;                  /* set by uthash when adding it failed */
    int64_t ts;
    size_t len; /* bytes of msg, without the NUL */
    char msg[]; /* NUL-terminated copy */
};

struct ms_store {
    struct ms_entry *table;  /* uthash head */
    struct ms_entry **order; /* owned array, first stored first; owns entries */
    size_t count;
    size_t cap;
};

static void ms_fill(const struct ms_entry *e, struct ms_view *out)
{
    out->uuid = e->uuid;
    out->msg = e->msg;
    out->len = e->len;
    out->ts = e->ts;
}

struct ms_store *ms_new(void) { return calloc(1, sizeof(struct ms_store)); }

void ms_free(struct ms_store *s)
{
    if (!s)
        return;
    ms_truncate(s, 0);
    free(s->order);
    free(s);
}

/* Make room for one more entry in the order array. 0, or -1 out of memory. */
static int ms_reserve(struct ms_store *s)
{
    struct ms_entry **grown = NULL;
    size_t cap = 0;

    if (s->count < s->cap)
        return 0;
    cap = s->cap ? s->cap * 2 : MS_ORDER_MIN;
    if (cap > SIZE_MAX / sizeof(*grown))
        return -1;
    grown = realloc(s->order, cap * sizeof(*grown));
    if (!grown)
        return -1;
    s->order = grown;
    s->cap = cap;
    return 0;
}

int ms_put(struct ms_store *s, const char *uuid, const char *msg, size_t len, int64_t ts,
           enum ms_outcome *outcome)
{
    struct ms_entry *e = NULL;
    size_t klen = strlen(uuid);
    unsigned hashv = 0;

    if (klen == 0 || klen > MS_KEY_MAX)
        return -1;
    /* hashed once for the lookup and the insertion */
    HASH_VALUE(uuid, klen, hashv);
    HASH_FIND_BYHASHVALUE(hh, s->table, uuid, klen, hashv, e);
    if (e) {
        *outcome = (e->len == len && memcmp(e->msg, msg, len) == 0) ? MS_DUPLICATE : MS_CONFLICT;
        return 0;
    }
    if (len > SIZE_MAX - sizeof(*e) - 1 || ms_reserve(s) != 0)
        return -1;
    e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -1;
    memset(e, 0, sizeof(*e));
    memcpy(e->uuid, uuid, klen + 1);
    e->ts = ts;
    e->len = len;
    memcpy(e->msg, msg, len);
    e->msg[len] = '\0';
    HASH_ADD_BYHASHVALUE(hh, s->table, uuid, klen, hashv, e);
    if (e->oom) {
        free(e);
        return -1;
    }
    s->order[s->count++] = e;
    *outcome = MS_STORED;
    return 0;
}

bool ms_get(const struct ms_store *s, const char *uuid, struct ms_view *out)
{
    struct ms_entry *e = NULL;
    size_t klen = strlen(uuid);

    if (klen == 0 || klen > MS_KEY_MAX)
        return false;
    HASH_FIND(hh, s->table, uuid, klen, e);
    if (!e)
        return false;
    if (out)
        ms_fill(e, out);
    return true;
}

size_t ms_count(const struct ms_store *s) { return s->count; }

bool ms_at(const struct ms_store *s, size_t i, struct ms_view *out)
{
    if (i >= s->count)
        return false;
    ms_fill(s->order[i], out);
    return true;
}

void ms_truncate(struct ms_store *s, size_t n)
{
    while (s->count > n) {
        struct ms_entry *e = s->order[--s->count];

        HASH_DELETE(hh, s->table, e);
        free(e);
    }
}
