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
struct rmb_members;

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

/* Who hears a replica's records: the catalog (required), the KV store and
 * the member set (either NULL: their records are skipped). The caller owns
 * it; for rpl_follow_routes it must outlive every loop turn and drain of
 * the store. */
struct rpl_routes {
    struct reg_registry *reg;
    struct kv_store *kv;         /* made over reg */
    struct rmb_members *members; /* registry/core/members.h: RMB_RECORD_PREFIX ids */
};

/* rpl_load and rpl_follow with the member records routed too (to
 * rmb_load_record and rmb_apply_change; a reset to all three). */
long rpl_load_routes(struct store *st, const struct rpl_routes *rt, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int rpl_follow_routes(struct store *st, struct rpl_routes *rt, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
