/* idem.c: the facade's table of Idempotency-Keys taken (see idem.h).
 *
 * A key is its 16 bytes of uuid; the message is kept as its length and a
 * 64-bit FNV-1a digest, not as text, so an entry is small whatever the
 * message. Two texts with one digest would pass here as the same message:
 * the copies then go out with the second text, and an instance holding the
 * first refuses them (409) as it always does. Entries are in a uthash by
 * key and in a FIFO list (utlist) for eviction. */
#include "idem.h"

#include "codec/uid.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

struct idm_entry {
    UT_hash_handle hh;
    uint8_t key[16];
    uint64_t digest;
    size_t len;
    struct idm_entry *next; /* FIFO: oldest first */
};

struct idm_table {
    struct idm_entry *by_key; /* uthash */
    struct idm_entry *fifo;   /* utlist, singly linked; fifo_tail for appends */
    struct idm_entry *fifo_tail;
    size_t count, max;
};

static uint64_t idm_digest(const char *msg, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)msg[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct idm_table *idm_new(size_t max)
{
    struct idm_table *t = calloc(1, sizeof(*t));

    if (t)
        t->max = max ? max : IDM_KEYS_MAX;
    return t;
}

void idm_free(struct idm_table *t)
{
    struct idm_entry *e, *tmp;

    if (!t)
        return;
    HASH_ITER (hh, t->by_key, e, tmp) {
        HASH_DEL(t->by_key, e);
        free(e);
    }
    free(t);
}

enum idm_result idm_check(const struct idm_table *t, const char *uuid, const char *msg, size_t len)
{
    struct idm_entry *e = NULL;
    uint8_t key[16];

    if (uid_parse(uuid, key) != 0)
        return IDM_UNKNOWN;
    HASH_FIND(hh, t->by_key, key, sizeof(key), e);
    if (!e)
        return IDM_UNKNOWN;
    return e->len == len && e->digest == idm_digest(msg, len) ? IDM_SAME : IDM_OTHER;
}

int idm_take(struct idm_table *t, const char *uuid, const char *msg, size_t len)
{
    struct idm_entry *e = NULL;
    uint8_t key[16];

    if (uid_parse(uuid, key) != 0)
        return -1;
    HASH_FIND(hh, t->by_key, key, sizeof(key), e);
    if (e)
        return 0;
    if (t->count >= t->max) {
        struct idm_entry *old = t->fifo;

        t->fifo = old->next;
        if (!t->fifo)
            t->fifo_tail = NULL;
        HASH_DEL(t->by_key, old);
        free(old);
        t->count--;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    memcpy(e->key, key, sizeof(key));
    e->digest = idm_digest(msg, len);
    e->len = len;
    HASH_ADD(hh, t->by_key, key, sizeof(e->key), e);
    if (t->fifo_tail)
        t->fifo_tail->next = e;
    else
        t->fifo = e;
    t->fifo_tail = e;
    t->count++;
    return 0;
}

size_t idm_count(const struct idm_table *t) { return t->count; }
