/* store.h: where the registry keeps its registrations so they survive a
 * restart. A store is a key/value map of instance id -> document (the
 * registration, with its health when critical; heartbeats live in memory
 * only; the store does not look inside a document). The registry core speaks only this
 * interface, so a backend (SQLite, memory, later etcd) is swapped without
 * touching the API code.
 *
 * Writes are asynchronous, shaped for a backend whose commit is a round trip
 * (a worker thread for SQLite, a network transaction for etcd):
 *   - store_put / store_del queue a write and return at once; its completion
 *     runs later on the event loop, never from inside the call, with rc 0
 *     once the write is durable, or -1 and the error when it was not
 *     acknowledged: it may still have been applied (an etcd txn that timed
 *     out after etcd committed it); a follower then hears it through its
 *     follow function, as another writer's commit, if it was;
 *   - the writes queued during one event-loop turn form a batch committed in
 *     one transaction (group commit); the writes of one id are committed,
 *     and their completions called, in the order they were queued. Writes
 *     of different ids may complete in another order when the backend has
 *     several transactions in flight (etcd: they then write disjoint ids);
 *     SQLite and memory keep one order for all;
 *   - store_load is synchronous and meant for start-up, before the loop
 *     runs and before any write;
 *   - store_close (or store_drain) waits for every queued write and calls its
 *     completion, so nothing is lost or leaked at shutdown.
 *
 * A shared backend (etcd) is one store under several registries. Besides
 * the above it can follow: after store_load, every commit anyone makes
 * under the store reaches each follower in commit order, with the
 * backend's revision of it (see store_follow).
 *
 * A shared backend also has leases (store_lease_grant, store_put_leased,
 * store_lease_keepalive): a record put bound to a lease disappears when
 * the lease lapses, decided once by the backend for every follower. */
#ifndef REG_STORE_STORE_H
#define REG_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct event_base;

/* Most writes queued and not yet completed. One more is refused with -1 at
 * once (the registry answers 503), so memory stays bounded when the disk is
 * slower than the requests. */
#define STORE_PENDING_MAX 8192

struct store;

/* Completion of a put or del, on the event loop: rc 0 when the write is
 * durable, -1 with err (borrowed for the call) when it failed and changed
 * nothing. arg is the one given to the write. */
typedef void (*store_done_fn)(void *arg, int rc, const char *err);

/* Called once per stored record by store_load: id and doc are borrowed for
 * the duration of the call (doc is also NUL-terminated at doc_len). Return 0
 * to go on, -1 to stop loading; store_load then returns -1 too. fn must not
 * call put, del or load on the same store (they fail with -1). */
typedef int (*store_load_fn)(const char *id, const char *doc, size_t doc_len, void *arg);

/* Completion of a lease grant or keepalive, on the event loop (never from
 * inside the call): rc 0 with the lease id and its TTL in whole seconds
 * (keepalive: the TTL left; 0 means the lease is gone, lapsed or never
 * granted), or rc -1 with err (borrowed for the call; lease and ttl_s 0)
 * when the backend did not answer. arg is the one given. */
typedef void (*store_lease_fn)(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err);

/* What a following store reports (see store_follow). */
enum store_change {
    STORE_CH_PUT = 0, /* id now holds doc */
    STORE_CH_DEL = 1, /* id was deleted (doc NULL, doc_len 0) */
    /* the history since the follower's revision is gone (compacted): the
     * whole state follows as STORE_CH_PUTs at one revision, then RESET_END */
    STORE_CH_RESET = 2,
    STORE_CH_RESET_END = 3 /* every id not put since STORE_CH_RESET is gone */
};

/* A commit another writer made, on the event loop: id and doc borrowed for
 * the call (NULL for RESET and RESET_END; doc NULL for DEL). */
typedef void (*store_change_fn)(void *arg, enum store_change kind, const char *id, const char *doc,
                                size_t doc_len);

struct store_ops {
    const char *name; /* "sqlite", "memory", "etcd" */
    int (*put)(struct store *st, const char *id, const char *doc, size_t doc_len,
               store_done_fn done, void *arg, char *err, size_t errlen);
    int (*del)(struct store *st, const char *id, store_done_fn done, void *arg, char *err,
               size_t errlen);
    int (*load)(struct store *st, store_load_fn fn, void *arg, char *err, size_t errlen);
    size_t (*pending)(const struct store *st);
    void (*drain)(struct store *st);
    void (*close)(struct store *st);
    /* Shared backends only; NULL for the others (see the inline wrappers). */
    int (*follow)(struct store *st, store_change_fn fn, void *arg, char *err, size_t errlen);
    uint64_t (*revision)(const struct store *st);
    bool (*writable)(const struct store *st);
    int (*lease_grant)(struct store *st, int64_t ttl_ms, store_lease_fn done, void *arg, char *err,
                       size_t errlen);
    int (*put_leased)(struct store *st, const char *id, const char *doc, size_t doc_len,
                      int64_t lease, store_done_fn done, void *arg, char *err, size_t errlen);
    int (*lease_keepalive)(struct store *st, int64_t lease, store_lease_fn done, void *arg,
                           char *err, size_t errlen);
};

/* Every backend's handle starts with this header. */
struct store {
    const struct store_ops *ops;
};

/* Open the SQLite backend on path (created if missing; WAL journal), its
 * commits made by a worker thread whose results come back on base (borrowed,
 * must outlive the store). Returns NULL with err filled on failure. Caller
 * closes with store_close. */
struct store *store_sqlite_open(const char *path, struct event_base *base, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Open the in-memory backend (nothing survives the process); completions run
 * on base (borrowed, must outlive the store). NULL if out of memory. */
struct store *store_memory_open(struct event_base *base) __attribute__((warn_unused_result));

/* A group of shared memory stores (for the tests of several registries on
 * one state, as on etcd): one map and one revision counter. Caller frees
 * with store_memory_group_free, after closing every store of it. NULL if
 * out of memory. */
struct store_memory_group;
struct store_memory_group *store_memory_group_new(void) __attribute__((warn_unused_result));
void store_memory_group_free(struct store_memory_group *g);

/* Open a memory store on group g (borrowed, must outlive it) whose
 * completions and changes run on base (borrowed): a shared backend (it
 * follows; store_revision counts the group's commits from 1). The writes
 * one store queues in a turn commit together at the next revision; each
 * store of the group hears the others' commits through store_follow in
 * commit order. NULL if out of memory. */
struct store *store_memory_open_shared(struct event_base *base, struct store_memory_group *g)
    __attribute__((warn_unused_result));

/* Run the group's lease timers through t (borrowed, must outlive the
 * group; NULL: the real clock), so that a test lapses leases on virtual
 * time. Set it before the first lease is granted. */
struct clk_timers;
void store_memory_group_set_timers(struct store_memory_group *g, const struct clk_timers *t);

/* Options of the etcd backend. */
struct store_etcd_options {
    const char *endpoints; /* "http://host:port[,http://host:port...]" (copied) */
    const char *prefix;    /* every key under it; NULL: "/svcmesh/" (copied) */
    long timeout_ms;       /* one request to etcd; <= 0: 2000 */
};

/* Open the etcd backend (etcd's v3 JSON gateway over the asynchronous HTTP
 * client on base, borrowed, must outlive the store), failing over between
 * the endpoints. It is shared: several registries on the same prefix may
 * follow it. NULL with err on bad options or out of memory (no etcd call is
 * made here; store_load is the first). */
struct store *store_etcd_open(const struct store_etcd_options *opt, struct event_base *base,
                              char *err, size_t errlen) __attribute__((warn_unused_result));

/* Queue the write of id -> doc (both copied; the caller keeps its buffers).
 * Returns 0 and done(arg, ...) is called later on the loop; or -1 with err,
 * done is never called and nothing changed (bad arguments, out of memory,
 * STORE_PENDING_MAX writes waiting, called during load). done may be NULL. */
static inline int store_put(struct store *st, const char *id, const char *doc, size_t doc_len,
                            store_done_fn done, void *arg, char *err, size_t errlen)
{
    return st->ops->put(st, id, doc, doc_len, done, arg, err, errlen);
}

/* Queue the deletion of id; deleting an unknown id is not an error. Same
 * contract as store_put. */
static inline int store_del(struct store *st, const char *id, store_done_fn done, void *arg,
                            char *err, size_t errlen)
{
    return st->ops->del(st, id, done, arg, err, errlen);
}

/* Call fn for every committed record, in no particular order. Synchronous:
 * for start-up, with no write queued (then -1). 0, or -1 with err if the
 * store failed or fn asked to stop. On a shared backend, during each call
 * of fn store_revision(st) is that record's last-modified revision, and
 * after the load the revision the whole state was read at (where
 * store_follow starts); a document's own copy of an index is then not to
 * be trusted (the registry writes 0 where it cannot know it before the
 * commit, see registry/core/kv.c). */
static inline int store_load(struct store *st, store_load_fn fn, void *arg, char *err,
                             size_t errlen)
{
    return st->ops->load(st, fn, arg, err, errlen);
}

/* Number of writes queued whose completion has not run yet. */
static inline size_t store_pending(const struct store *st) { return st->ops->pending(st); }

/* Block until every queued write is committed (or failed) and its
 * completion has run, on the calling thread. For shutdown and tests, never
 * on a running loop. */
static inline void store_drain(struct store *st) { st->ops->drain(st); }

/* Follow the shared store from the revision store_load read (call it once,
 * after store_load, before any write). From then on every commit under the
 * store reaches the caller in commit order, whoever made it: another
 * writer's as fn(arg, ...), one per id it changed; each of the caller's own
 * writes through that write's completion instead (fn never hears them).
 * During either call store_revision is the revision of that commit. When
 * the backend cannot follow (the history was compacted past the revision
 * last delivered), it re-reads the whole state and reports it as
 * STORE_CH_RESET, PUTs, STORE_CH_RESET_END. 0, or -1 with err: the backend
 * is not shared (no follow op) or could not start. */
static inline int store_follow(struct store *st, store_change_fn fn, void *arg, char *err,
                               size_t errlen)
{
    if (!st->ops->follow) {
        if (err && errlen)
            snprintf(err, errlen, "the %s store is not shared", st->ops->name);
        return -1;
    }
    return st->ops->follow(st, fn, arg, err, errlen);
}

/* The backend's revision: of the commit whose completion or change call is
 * running, else of the last one delivered (or loaded). 0 for a backend that
 * has none (sqlite, memory). Revisions only grow. */
static inline uint64_t store_revision(const struct store *st)
{
    return st->ops->revision ? st->ops->revision(st) : 0;
}

/* false while the backend, as last seen, cannot commit (no endpoint
 * answers, or the cluster has no quorum): what a follower holds may then
 * be stale. Always true for a local backend. */
static inline bool store_writable(const struct store *st)
{
    return st->ops->writable ? st->ops->writable(st) : true;
}

/* The error of a lease op on a backend without leases. */
static inline int store_no_leases(const struct store *st, char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "the %s store has no leases", st->ops->name);
    return -1;
}

/* Shared backends: grant a lease of ttl_ms > 0 milliseconds, rounded up to
 * whole seconds (etcd's unit; etcd may raise it further to its minimum, a
 * little over its election timeout: the TTL granted is what done gets).
 * 0 and done(arg, ...) is called later on the loop; or -1 with err at once
 * (no lease op, bad ttl, out of memory), done never called. A lease nobody
 * keeps alive lapses after its TTL: every record bound to it is deleted,
 * and each follower, the writer included, hears STORE_CH_DEL through its
 * follow function at the revision the backend deleted it (a lapse is
 * nobody's write). close calls the completions still waiting (rc -1 if
 * their answer never came). */
static inline int store_lease_grant(struct store *st, int64_t ttl_ms, store_lease_fn done,
                                    void *arg, char *err, size_t errlen)
{
    if (!st->ops->lease_grant)
        return store_no_leases(st, err, errlen);
    return st->ops->lease_grant(st, ttl_ms, done, arg, err, errlen);
}

/* Shared backends: store_put, the record bound to lease (granted, > 0): it
 * disappears when the lease lapses. A later put without a lease, or bound
 * to another, unbinds it. Same contract as store_put otherwise (one batch
 * with the turn's other writes). */
static inline int store_put_leased(struct store *st, const char *id, const char *doc,
                                   size_t doc_len, int64_t lease, store_done_fn done, void *arg,
                                   char *err, size_t errlen)
{
    if (!st->ops->put_leased)
        return store_no_leases(st, err, errlen);
    return st->ops->put_leased(st, id, doc, doc_len, lease, done, arg, err, errlen);
}

/* Shared backends: keep lease alive (its TTL starts again). 0 and done is
 * called later on the loop with the TTL left (0: the lease is gone), or -1
 * with err at once, done never called. Keepalives of one lease asked while
 * one is on its way may share its answer. */
static inline int store_lease_keepalive(struct store *st, int64_t lease, store_lease_fn done,
                                        void *arg, char *err, size_t errlen)
{
    if (!st->ops->lease_keepalive)
        return store_no_leases(st, err, errlen);
    return st->ops->lease_keepalive(st, lease, done, arg, err, errlen);
}

/* Drain, then free the store. Accepts NULL. */
static inline void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

#endif
