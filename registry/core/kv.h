/* kv.h: the registry's KV config store (Consul's KV model): keys with a
 * value of any bytes, flags and two indexes (CreateIndex, ModifyIndex)
 * taken from the registry-wide index (catalog.h, reg_change_*), kept in
 * the registry's store under the record id KV_RECORD_PREFIX + key. No HTTP,
 * no JSON: the API (registry/api/kv_api.c) encodes.
 *
 * Acknowledged means durable, as for registrations: a set or delete is
 * queued to the store and applied to memory only in its completion, when
 * the commit succeeded (a failed commit changes nothing); until then reads
 * see the last committed state. What applying needs (the entry, a slot in
 * the sorted array) is allocated before the write is queued, so applying
 * cannot fail.
 *
 * Compare-and-set is decided when the write is queued, against the
 * committed state plus the writes already queued: cas=0 wins only when the
 * key is absent after them; cas=N only when the key's committed
 * ModifyIndex is N and no write of it is queued (a queued write will give
 * it a new index). So of two CAS writes of one key in one loop turn only
 * the first can win; a refused CAS answers false at once, writes nothing.
 *
 * Keys sit in one array sorted bytewise: a lookup and the start of a
 * prefix are binary searches (log n), a prefix's keys are contiguous, and
 * an insertion or removal moves the pointers after it (a memmove of up to
 * 8 bytes per key: 800 KB at 100,000 keys, well under a millisecond). */
#ifndef REG_CORE_KV_H
#define REG_CORE_KV_H

#include "../store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reg_registry;
struct kv_store;
struct kv_entry;

/* The store record of a key is this prefix + the key: '!' is outside the
 * instance id alphabet (spec.c: [A-Za-z0-9._-]), so no instance has it, and
 * it is not the index lease's "!meta:". */
#define KV_RECORD_PREFIX "!kv:"

/* Why a write was not queued (negative returns of kv_put / kv_delete). */
enum kv_refusal {
    KV_E_FAILED = -1,  /* out of memory, or the store could not queue it */
    KV_E_BAD_KEY = -2, /* the key breaks the key rules (kv_key_check) */
    KV_E_TOO_BIG = -3, /* the value is over max_value */
    KV_E_FULL = -4,    /* max_keys keys or max_bytes bytes, writes waiting counted */
};

enum kv_op { KV_OP_SET = 0, KV_OP_DELETE = 1 };

/* Completion of a write, on the event loop: rc 0 once it is durable and
 * applied, -1 with err (borrowed for the call) when the store failed and
 * nothing changed. */
typedef void (*kv_done_fn)(void *arg, int rc, const char *err);

/* One committed change, told after it is applied: e is the entry as it is
 * now (NULL for a delete), key borrowed for the call, index the registry
 * index the change took (a set's ModifyIndex; on a shared store the
 * commit's revision, shared by the changes of one commit). The changes of a
 * transaction are told after all of them are applied, in order (a set's e
 * is then the key's last state: another entry, or NULL when a later op of
 * it deleted the key), so the registry index may be past ch->index. */
struct kv_change {
    enum kv_op op;
    const char *key;
    uint64_t index;
    int64_t time_ms;
    const struct kv_entry *e;
};
typedef void (*kv_observer_fn)(void *arg, const struct kv_change *ch);

struct kv_options {
    size_t max_keys;  /* 0: LIM_KV_KEYS_MAX */
    size_t max_bytes; /* value bytes in all; 0: LIM_KV_BYTES_MAX */
    size_t max_value; /* bytes of one value; 0: LIM_KV_VALUE_MAX */
    kv_observer_fn observer;
    void *observer_arg;
};

/* A KV store over the registry r (its index) and store st (both borrowed,
 * must outlive it). opt may be NULL. Caller frees. NULL when out of
 * memory. */
struct kv_store *kv_new(struct reg_registry *r, struct store *st, const struct kv_options *opt)
    __attribute__((warn_unused_result));

/* The registry kv was made over (borrowed). */
struct reg_registry *kv_registry(const struct kv_store *kv);

/* Drain the store (the writes waiting complete), free. Accepts NULL. */
void kv_free(struct kv_store *kv);

/* Load the keys the store holds (after reg_load: indexes above the
 * registry's are lowered to it). Synchronous, at start-up. The number
 * loaded, or -1 with err. Bad records are skipped with a warning. */
long kv_load(struct kv_store *kv, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The two halves of kv_load, for a loader that reads the store once for
 * several modules (registry/core/replica.h): one record (borrowed; ids
 * not starting with KV_RECORD_PREFIX are skipped; on a shared store,
 * called inside store_load, the key's ModifyIndex is the record's
 * revision, and its CreateIndex too when the document has 0), 0 or -1
 * when out of memory (stop loading); then, after the last record and
 * after reg_load_finish, the finish. */
int kv_load_record(struct kv_store *kv, const char *id, const char *doc, size_t doc_len)
    __attribute__((warn_unused_result));
void kv_load_finish(struct kv_store *kv);

/* A commit of another replica on the shared store (store_follow's change,
 * id and doc borrowed for the call): a PUT or DEL of a KV_RECORD_PREFIX
 * record sets or deletes the key as a committed kv_put / kv_delete would,
 * at the index store_revision, the observer told alike; other records are
 * ignored. RESET starts a re-read; RESET_END deletes every key not put
 * since RESET. A document that does not parse, or out of memory, is
 * logged, and this replica's copy of the key lags until its next change. */
void kv_apply_change(struct kv_store *kv, enum store_change kind, const char *id, const char *doc,
                     size_t len);

/* Whether key (len bytes) is a key (prefix: a prefix of keys, which may
 * also be empty): 1..LIM_KV_KEY_MAX bytes of UTF-8 without NUL, not
 * starting with '/', without a ".." segment. 0, or -1 with err. */
int kv_key_check(const char *key, size_t len, bool prefix, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Queue key = value (len bytes; both copied) with flags. With has_cas, a
 * compare-and-set on cas (see above). Returns 0 (done will be called), 1
 * when the CAS is refused (false: nothing queued, done not called), or a
 * negative enum kv_refusal with err (done not called, nothing changed). */
int kv_put(struct kv_store *kv, const char *key, const void *value, size_t len, uint64_t flags,
           bool has_cas, uint64_t cas, kv_done_fn done, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Queue the deletion of key, or with recurse of every key under the
 * prefix key (as they will be after the writes queued: one deletion, and
 * one index, per key). has_cas (not with recurse): only when the key's
 * ModifyIndex is cas (cas=0 never deletes). Returns 0 (done is called once,
 * after the last deletion), 2 when there was nothing to delete (true at
 * once, done not called), 1 when the CAS is refused, or a negative enum
 * kv_refusal with err. */
int kv_delete(struct kv_store *kv, const char *key, bool recurse, bool has_cas, uint64_t cas,
              kv_done_fn done, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Transactions (Consul's /v1/txn, KV verbs): a list of ops applied all or
 * none. Every check is decided when kv_txn is called, in op order, against
 * the committed state plus the writes already queued plus the writes of
 * the ops before it (the CAS rules above: an index check needs the key's
 * committed ModifyIndex and no write of the key queued or earlier in the
 * transaction). If one fails nothing is queued. Otherwise every write is
 * queued in the one call, so they land in one store batch, which the
 * store commits in one transaction (store.h: one loop turn's writes), and
 * they are applied to memory together in the completion of the last, in
 * op order, or not at all when the commit failed. Each changed key takes
 * its own index, consecutive ones (the observer's events have one index
 * each; on a shared store the index is the store's revision, which the
 * changes of the one commit share); reads (get, get-tree) and check-index answer the state at that
 * point of the transaction. A transaction with no write is answered from
 * the committed state. */
enum kv_txn_verb {
    KV_TXN_SET,              /* key = value, flags */
    KV_TXN_CAS,              /* set if index is the key's ModifyIndex (0: the key is absent) */
    KV_TXN_GET,              /* the entry; fails when the key is absent */
    KV_TXN_GET_TREE,         /* every entry under the prefix key (none is not a failure) */
    KV_TXN_CHECK_INDEX,      /* fails unless the key's ModifyIndex is index */
    KV_TXN_CHECK_NOT_EXISTS, /* fails when the key exists */
    KV_TXN_DELETE,           /* the key, if it is there */
    KV_TXN_DELETE_TREE,      /* every key under the prefix key */
    KV_TXN_DELETE_CAS,       /* the key, if index is its ModifyIndex (0 never) */
};

/* One op of a transaction; everything borrowed for the kv_txn call. */
struct kv_txn_op {
    enum kv_txn_verb verb;
    const char *key;   /* a key; a prefix (may be "") for the *_TREE verbs */
    const void *value; /* set, cas: len bytes (NULL when len is 0) */
    size_t len;
    uint64_t flags; /* set, cas */
    uint64_t index; /* cas, check-index, delete-cas */
};

/* One result of a committed transaction: the entry an op answers, in op
 * order (get-tree: one per key; deletes and check-not-exists none). */
struct kv_txn_item {
    size_t op;                /* the op's position */
    const struct kv_entry *e; /* a copy as it was at that op; borrowed for the done call */
    bool with_value;          /* get, get-tree: the value counts; other verbs: Value null */
};

/* Completion of a transaction, on the event loop: rc 0 once its writes
 * are durable and applied, items (n, borrowed for the call; NULL with n 0
 * when out of memory after the commit: it is applied all the same, and
 * err says so) and the registry index after it; -1 with err (borrowed)
 * when the store failed and nothing changed. */
typedef void (*kv_txn_done_fn)(void *arg, int rc, const char *err, const struct kv_txn_item *items,
                               size_t n, uint64_t index);

/* Run the transaction ops[0..n). Returns 0: done is called once (after
 * the commit; from inside this call when no op writes); 1: a check failed,
 * *failed the op and err what failed (Consul's words), nothing queued,
 * done not called; a negative enum kv_refusal with *failed the op (or n
 * when no one op is to blame) and err, nothing queued, done not called.
 * Only if the store cannot queue a write after others of the transaction
 * were queued (out of memory: the room is checked before) could part of
 * it commit; done then gets -1 and the error says so, and memory follows
 * what the store committed. */
int kv_txn(struct kv_store *kv, const struct kv_txn_op *ops, size_t n, kv_txn_done_fn done,
           void *arg, size_t *failed, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The committed entry of key (borrowed, valid until the next change), or
 * NULL. */
const struct kv_entry *kv_get(const struct kv_store *kv, const char *key);

/* The committed keys under prefix (borrowed; "" for every key): their
 * count, and the position of the first in *first, for kv_at (key order). */
size_t kv_range(const struct kv_store *kv, const char *prefix, size_t *first);

/* The entry at position i (below kv_count), in key order. */
const struct kv_entry *kv_at(const struct kv_store *kv, size_t i);

size_t kv_count(const struct kv_store *kv);

/* The index of the last committed delete (after kv_load: the registry's
 * index then, since the deletions before are not known). There are no
 * tombstones: a blocking read of an absent key or of a prefix uses it so
 * that no deletion goes unseen. */
uint64_t kv_last_delete(const struct kv_store *kv);

/* Whether the store under kv can commit now (store_writable): false on a
 * shared store without quorum, when reads may lag the shared state. */
bool kv_writable(const struct kv_store *kv);
size_t kv_bytes(const struct kv_store *kv);

/* Accessors; strings and bytes borrowed from the entry. */
const char *kv_entry_key(const struct kv_entry *e);
const unsigned char *kv_entry_value(const struct kv_entry *e, size_t *len);
uint64_t kv_entry_flags(const struct kv_entry *e);
uint64_t kv_entry_create_index(const struct kv_entry *e);
uint64_t kv_entry_modify_index(const struct kv_entry *e);

#endif
