/* replica.h: one registry replica on a shared store (several registries on
 * one state, as on etcd; store.h, store_follow). The state is read once
 * for the catalog and the KV store together, at one revision, and from
 * that revision every other replica's commit is handed to the module that
 * owns its record, in commit order. The non-shared path (reg_load,
 * kv_load) does not use this. */
#ifndef REG_CORE_REPLICA_H
#define REG_CORE_REPLICA_H

#include <stddef.h>

struct store;
struct reg_registry;
struct kv_store;

/* Load st (borrowed) into reg and kv (borrowed; kv may be NULL: KV records
 * are then skipped) with ONE store_load: each record goes to the KV store
 * (KV_RECORD_PREFIX ids) or the catalog, then both finish (sorting, the
 * index: the revision read at). Synchronous, at start-up, before any
 * write. The number of records loaded (instances and keys), or -1 with
 * err. */
long rpl_load(struct store *st, struct reg_registry *reg, struct kv_store *kv, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* Follow st from the revision rpl_load read: every other replica's commit
 * is applied by reg_apply_change or kv_apply_change (a reset by both).
 * reg and kv (may be NULL; else made over reg) are borrowed: they must
 * outlive every loop turn and drain of st after this (a change may come
 * in any of them). 0, or -1 with err (the store is not shared, or could
 * not start). */
int rpl_follow(struct store *st, struct reg_registry *reg, struct kv_store *kv, char *err,
               size_t errlen) __attribute__((warn_unused_result));

#endif
