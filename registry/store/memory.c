/* memory.c: the in-memory store backend, a uthash map of id -> JSON
 * document. Nothing survives the process; it serves tests and a registry run
 * without persistence. Writes apply at once, so flush has nothing to do. */
#include "core/errbuf.h"
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed allocation inside HASH_ADD leaves the element out (hh.tbl NULL)
 * instead of calling exit(): library code never decides to exit. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

struct mem_entry {
    char *id;  /* owned, NUL-terminated; the hash key */
    char *doc; /* owned, NUL-terminated at doc_len */
    size_t doc_len;
    UT_hash_handle hh;
};

struct mem_store {
    struct store base; /* must stay first: struct store * casts to this */
    struct mem_entry *entries;
    int loading; /* inside load(): calls back into the store are refused */
};

/* Free one entry (already out of the hash). Accepts NULL. */
static void mem_entry_free(struct mem_entry *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->doc);
    free(e);
}

/* Copy doc_len bytes of doc into a new NUL-terminated buffer; caller frees.
 * NULL on allocation failure. */
static char *mem_store_dup(const char *doc, size_t doc_len)
{
    char *copy = NULL;

    if (doc_len == (size_t)-1)
        return NULL;
    copy = malloc(doc_len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, doc, doc_len);
    copy[doc_len] = '\0';
    return copy;
}

/* Insert or replace id -> doc; both borrowed and copied. On failure the
 * previous document, if any, stays. */
static int mem_store_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                         char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *fresh = NULL;
    char *copy = NULL;
    int rc = -1;

    if (!id || !doc) {
        errbuf_set(err, errlen, "memory store: put: NULL id or doc");
        goto cleanup;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: put called during load");
        goto cleanup;
    }
    copy = mem_store_dup(doc, doc_len);
    if (!copy) {
        errbuf_set(err, errlen, "memory store: out of memory");
        goto cleanup;
    }

    HASH_FIND_STR(st->entries, id, e);
    if (e) {
        free(e->doc);
        e->doc = copy;
        e->doc_len = doc_len;
        copy = NULL;
        rc = 0;
        goto cleanup;
    }

    fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        goto oom;
    fresh->id = strdup(id);
    if (!fresh->id)
        goto oom;
    fresh->doc = copy;
    fresh->doc_len = doc_len;
    copy = NULL;
    HASH_ADD_KEYPTR(hh, st->entries, fresh->id, strlen(fresh->id), fresh);
    if (!fresh->hh.tbl)
        goto oom;
    fresh = NULL;
    rc = 0;
    goto cleanup;

oom:
    errbuf_set(err, errlen, "memory store: out of memory");
cleanup:
    mem_entry_free(fresh);
    free(copy);
    return rc;
}

/* Remove id if present (borrowed); an unknown id is not an error. */
static int mem_store_del(struct store *base, const char *id, char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;

    if (!id) {
        errbuf_set(err, errlen, "memory store: del: NULL id");
        return -1;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: del called during load");
        return -1;
    }
    HASH_FIND_STR(st->entries, id, e);
    if (e) {
        HASH_DEL(st->entries, e);
        mem_entry_free(e);
    }
    return 0;
}

/* Call fn on every entry in insertion order; id and doc are lent to fn for
 * the call only. -1 if fn asks to stop. */
static int mem_store_load(struct store *base, store_load_fn fn, void *arg, char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;
    int rc = 0;

    if (!fn) {
        errbuf_set(err, errlen, "memory store: load: NULL callback");
        return -1;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: load called during load");
        return -1;
    }
    st->loading = 1;
    HASH_ITER (hh, st->entries, e, tmp) {
        if (fn(e->id, e->doc, e->doc_len, arg) != 0) {
            errbuf_set(err, errlen, "memory store: load stopped by callback at id %s", e->id);
            rc = -1;
            break;
        }
    }
    st->loading = 0;
    return rc;
}

/* Nothing is buffered: always 0 (but refused from inside load, like the
 * other backends, so callers see one contract). */
static int mem_store_flush(struct store *base, char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;

    if (st->loading) {
        errbuf_set(err, errlen, "memory store: flush called during load");
        return -1;
    }
    return 0;
}

/* Nothing is ever buffered. */
static size_t mem_store_pending(const struct store *base)
{
    (void)base;
    return 0;
}

/* Free every entry and the store itself. */
static void mem_store_close(struct store *base)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;

    HASH_ITER (hh, st->entries, e, tmp) {
        HASH_DEL(st->entries, e);
        mem_entry_free(e);
    }
    free(st);
}

static const struct store_ops mem_store_ops = {
    .name = "memory",
    .put = mem_store_put,
    .del = mem_store_del,
    .load = mem_store_load,
    .flush = mem_store_flush,
    .pending = mem_store_pending,
    .close = mem_store_close,
};

/* New empty memory store; NULL only if out of memory. Caller closes it with
 * store_close. */
struct store *store_memory_open(void)
{
    struct mem_store *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    st->base.ops = &mem_store_ops;
    return &st->base;
}
