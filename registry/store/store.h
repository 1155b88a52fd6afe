/* store.h: where the registry keeps its registrations so they survive a
 * restart. A store is a key/value map of instance id -> JSON document (the
 * registration, without health or heartbeat, which live in memory only).
 * The registry core speaks only this interface, so a backend (SQLite, memory,
 * later etcd) is swapped without touching the API code.
 *
 * Writes may be buffered: put and del take effect for load() at once but
 * reach durable storage at the latest on store_flush(), which the registry
 * calls at the end of every event-loop turn that wrote (group commit). */
#ifndef REG_STORE_STORE_H
#define REG_STORE_STORE_H

#include <stddef.h>

/* Most writes a buffering backend (SQLite) holds before store_flush. A put or
 * del that would queue one more flushes synchronously first, so memory stays
 * bounded even if the loop never gets to its end-of-turn flush (e.g. a burst
 * of registrations within one turn). Writes to an id already queued replace
 * the queued one and do not count twice. */
#define STORE_PENDING_MAX 8192

struct store;

/* Called once per stored record by store_load: id and doc are borrowed for
 * the duration of the call (doc is also NUL-terminated at doc_len). Return 0
 * to go on, -1 to stop loading; store_load then returns -1 too. fn must not
 * call put, del, flush or load on the same store (they fail with -1). */
typedef int (*store_load_fn)(const char *id, const char *doc, size_t doc_len, void *arg);

struct store_ops {
    const char *name; /* "sqlite", "memory" */
    int (*put)(struct store *st, const char *id, const char *doc, size_t doc_len, char *err,
               size_t errlen);
    int (*del)(struct store *st, const char *id, char *err, size_t errlen);
    int (*load)(struct store *st, store_load_fn fn, void *arg, char *err, size_t errlen);
    int (*flush)(struct store *st, char *err, size_t errlen);
    size_t (*pending)(const struct store *st);
    void (*close)(struct store *st);
};

/* Every backend's handle starts with this header. */
struct store {
    const struct store_ops *ops;
};

/* Open the SQLite backend on path (created if missing; WAL journal).
 * Returns NULL with err filled on failure. Caller closes with store_close. */
struct store *store_sqlite_open(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Open the in-memory backend (nothing survives the process). */
struct store *store_memory_open(void) __attribute__((warn_unused_result));

/* Insert or replace the document for id (both copied; the caller keeps
 * its buffers). May flush first when STORE_PENDING_MAX writes are buffered.
 * 0, or -1 with err and nothing changed. */
static inline int store_put(struct store *st, const char *id, const char *doc, size_t doc_len,
                            char *err, size_t errlen)
{
    return st->ops->put(st, id, doc, doc_len, err, errlen);
}

/* Delete id; deleting an unknown id is not an error. May flush first like
 * store_put. 0, or -1 with err and nothing changed. */
static inline int store_del(struct store *st, const char *id, char *err, size_t errlen)
{
    return st->ops->del(st, id, err, errlen);
}

/* Call fn for every record, in no particular order; buffered writes are
 * included (the SQLite backend flushes them first). 0, or -1 with err if the
 * store failed or fn asked to stop. */
static inline int store_load(struct store *st, store_load_fn fn, void *arg, char *err,
                             size_t errlen)
{
    return st->ops->load(st, fn, arg, err, errlen);
}

/* Make every buffered write durable (commit). 0 or -1 with err; on failure
 * the buffered writes stay pending and the next flush retries them. */
static inline int store_flush(struct store *st, char *err, size_t errlen)
{
    return st->ops->flush(st, err, errlen);
}

/* Number of writes buffered and not yet flushed. */
static inline size_t store_pending(const struct store *st) { return st->ops->pending(st); }

/* Flush what is pending (best effort: writes that fail to commit here are
 * lost, so call store_flush first to learn of errors) and free the store.
 * Accepts NULL. */
static inline void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

#endif
