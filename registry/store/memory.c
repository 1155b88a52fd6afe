/* memory.c: the in-memory store backend, a uthash map of id -> document.
 * Nothing survives the process; it serves tests and a registry run without
 * persistence. A write applies to the map at once and cannot fail after it
 * was accepted; its completion is queued and called from the event loop
 * (an event made active on the first write of a turn), never from inside
 * the write call, so callers see the same contract as with SQLite. */
#include "core/errbuf.h"
#include "store.h"

#include <event2/event.h>
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

/* A completion waiting for the loop. */
struct mem_done {
    struct mem_done *next;
    store_done_fn done;
    void *arg;
};

struct mem_store {
    struct store base; /* must stay first: struct store * casts to this */
    struct mem_entry *entries;
    int loading;                         /* inside load(): calls back into the store are refused */
    struct event *kick;                  /* owned: runs the queued completions */
    struct mem_done *dones, **dones_end; /* FIFO of completions to call */
    size_t pending;                      /* completions queued, not yet called */
};

/* Queue the completion of a write that was applied, and make sure the loop
 * calls it. 0, or -1 when out of memory (the caller undoes the write). */
static int mem_store_queue_done(struct mem_store *st, store_done_fn done, void *arg)
{
    struct mem_done *d = NULL;

    if (st->pending >= STORE_PENDING_MAX)
        return -1;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->done = done;
    d->arg = arg;
    *st->dones_end = d;
    st->dones_end = &d->next;
    st->pending++;
    if (st->kick && !event_pending(st->kick, EV_TIMEOUT, NULL))
        event_active(st->kick, EV_TIMEOUT, 0);
    return 0;
}

/* Call every queued completion in order. Completions may queue new writes:
 * those land in a fresh list and wait for the next run. */
static void mem_store_run_dones(struct mem_store *st)
{
    struct mem_done *d = st->dones;
    struct mem_done *next = NULL;

    st->dones = NULL;
    st->dones_end = &st->dones;
    for (; d; d = next) {
        next = d->next;
        st->pending--;
        if (d->done)
            d->done(d->arg, 0, NULL);
        free(d);
    }
}

/* The kick event: the loop's turn to call the completions. */
static void mem_store_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mem_store_run_dones(arg);
}

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

/* Take back the completion queued last (a write that failed after
 * queueing it). */
static void mem_store_unqueue_last(struct mem_store *st)
{
    struct mem_done **pp = &st->dones;

    while (*pp && (*pp)->next)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    free(*pp);
    *pp = NULL;
    st->dones_end = pp;
    st->pending--;
}

/* Insert or replace id -> doc; both borrowed and copied; done(arg) is
 * queued for the loop. On failure the previous document, if any, stays and
 * done is not called. */
static int mem_store_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                         store_done_fn done, void *arg, char *err, size_t errlen)
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
    /* Queued first: it is the step that may fail, and the map is not
     * changed yet. The completion runs on a later loop turn anyway. */
    if (mem_store_queue_done(st, done, arg) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory or too many writes waiting");
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
    /* The completion was queued: take it back (it is the last one). */
    mem_store_unqueue_last(st);
    errbuf_set(err, errlen, "memory store: out of memory");
cleanup:
    mem_entry_free(fresh);
    free(copy);
    return rc;
}

/* Remove id if present (borrowed); an unknown id is not an error. done(arg)
 * is queued for the loop. */
static int mem_store_del(struct store *base, const char *id, store_done_fn done, void *arg,
                         char *err, size_t errlen)
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
    if (mem_store_queue_done(st, done, arg) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory or too many writes waiting");
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
    if (st->pending > 0) {
        errbuf_set(err, errlen, "memory store: load called with writes queued");
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

/* Completions queued, not yet called. */
static size_t mem_store_pending(const struct store *base)
{
    return ((const struct mem_store *)base)->pending;
}

/* Call every queued completion now, on the caller's thread. */
static void mem_store_drain(struct store *base) { mem_store_run_dones((struct mem_store *)base); }

/* Call the queued completions, then free every entry and the store. */
static void mem_store_close(struct store *base)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;

    mem_store_run_dones(st);
    HASH_ITER (hh, st->entries, e, tmp) {
        HASH_DEL(st->entries, e);
        mem_entry_free(e);
    }
    if (st->kick)
        event_free(st->kick);
    free(st);
}

static const struct store_ops mem_store_ops = {
    .name = "memory",
    .put = mem_store_put,
    .del = mem_store_del,
    .load = mem_store_load,
    .pending = mem_store_pending,
    .drain = mem_store_drain,
    .close = mem_store_close,
};

/* New empty memory store whose completions run on base (borrowed); NULL
 * only if out of memory. Caller closes it with store_close. */
struct store *store_memory_open(struct event_base *base)
{
    struct mem_store *st = NULL;

    if (!base)
        return NULL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->base.ops = &mem_store_ops;
    st->dones_end = &st->dones;
    st->kick = event_new(base, -1, 0, mem_store_kick_cb, st);
    if (!st->kick) {
        free(st);
        return NULL;
    }
    return &st->base;
}
