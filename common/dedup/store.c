/* dedup/store.c: uuid -> message in a uthash table, insertion order in a
 * growable array of the same entries (see dedup/store.h). One allocation per
 * message holds its key, timestamp and text. */
#include "dedup/store.h"

#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash becomes a clean -1 from ds_put
 * instead of exit(): HASH_ADD then leaves the table as it was and flags the
 * entry it could not add (uthash >= 2.1). */
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(obj) ((obj)->oom = true)
#include <uthash.h>

#define DS_ORDER_MIN 64 /* first capacity of the order array */

struct ds_entry {
    UT_hash_handle hh;
    char uuid[DS_KEY_MAX + 1]; /* the hash key, NUL-terminated */
    bool oom;                  /* set by uthash when adding it failed */
    int64_t ts;
    size_t len; /* bytes of msg, without the NUL */
    char msg[]; /* NUL-terminated copy */
};

struct ds_store {
    struct ds_entry *table;  /* uthash head */
    struct ds_entry **order; /* owned array, first stored first; owns entries */
    size_t count;
    size_t cap;
};

static void ds_fill(const struct ds_entry *e, struct ds_view *out)
{
    out->uuid = e->uuid;
    out->msg = e->msg;
    out->len = e->len;
    out->ts = e->ts;
}

struct ds_store *ds_new(void) { return calloc(1, sizeof(struct ds_store)); }

void ds_free(struct ds_store *s)
{
    if (!s)
        return;
    ds_truncate(s, 0);
    free(s->order);
    free(s);
}

/* Make room for one more entry in the order array. 0, or -1 out of memory. */
static int ds_reserve(struct ds_store *s)
{
    struct ds_entry **grown = NULL;
    size_t cap = 0;

    if (s->count < s->cap)
        return 0;
    cap = s->cap ? s->cap * 2 : DS_ORDER_MIN;
    if (cap > SIZE_MAX / sizeof(*grown))
        return -1;
    grown = realloc(s->order, cap * sizeof(*grown));
    if (!grown)
        return -1;
    s->order = grown;
    s->cap = cap;
    return 0;
}

int ds_put(struct ds_store *s, const char *uuid, const char *msg, size_t len, int64_t ts,
           enum ds_outcome *outcome)
{
    struct ds_entry *e = NULL;
    size_t klen = strlen(uuid);
    unsigned hashv = 0;

    if (klen == 0 || klen > DS_KEY_MAX)
        return -1;
    /* hashed once for the lookup and the insertion */
    HASH_VALUE(uuid, klen, hashv);
    HASH_FIND_BYHASHVALUE(hh, s->table, uuid, klen, hashv, e);
    if (e) {
        *outcome = (e->len == len && memcmp(e->msg, msg, len) == 0) ? DS_DUPLICATE : DS_CONFLICT;
        return 0;
    }
    if (len > SIZE_MAX - sizeof(*e) - 1 || ds_reserve(s) != 0)
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
    *outcome = DS_STORED;
    return 0;
}

bool ds_get(const struct ds_store *s, const char *uuid, struct ds_view *out)
{
    struct ds_entry *e = NULL;
    size_t klen = strlen(uuid);

    if (klen == 0 || klen > DS_KEY_MAX)
        return false;
    HASH_FIND(hh, s->table, uuid, klen, e);
    if (!e)
        return false;
    if (out)
        ds_fill(e, out);
    return true;
}

size_t ds_count(const struct ds_store *s) { return s->count; }

bool ds_at(const struct ds_store *s, size_t i, struct ds_view *out)
{
    if (i >= s->count)
        return false;
    ds_fill(s->order[i], out);
    return true;
}

void ds_truncate(struct ds_store *s, size_t n)
{
    while (s->count > n) {
        struct ds_entry *e = s->order[--s->count];

        HASH_DELETE(hh, s->table, e);
        free(e);
    }
}
