/* replica.c: one load and one follow of a shared store for the catalog and
 * the KV store (see replica.h). The two modules keep their own record
 * formats; this file only decides whose a record is, by its id. */
#include "replica.h"

#include "../store/store.h"
#include "catalog.h"
#include "core/errbuf.h"
#include "kv.h"
#include "members.h"

#include <stdbool.h>
#include <string.h>

/* Who hears the records: all borrowed. */
struct rpl_target {
    struct reg_registry *reg;
    struct kv_store *kv;         /* NULL: KV records are skipped */
    struct rmb_members *members; /* NULL: member records are skipped */
    long loaded;
};

/* Whether the record id is a replica's member record. */
static int rpl_is_member(const char *id)
{
    return id && strncmp(id, RMB_RECORD_PREFIX, sizeof(RMB_RECORD_PREFIX) - 1) == 0;
}

/* Whether the record id is a KV key's. */
static int rpl_is_kv(const char *id)
{
    return id && strncmp(id, KV_RECORD_PREFIX, sizeof(KV_RECORD_PREFIX) - 1) == 0;
}

/* store_load callback: the record to its owner. -1 (stop) when out of
 * memory. */
static int rpl_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct rpl_target *t = arg;
    int rc = 0;

    if (rpl_is_member(id)) /* not counted: no registration, no key */
        return t->members ? rmb_load_record(t->members, id, doc, doc_len) : 0;
    if (rpl_is_kv(id)) {
        if (t->kv)
            rc = kv_load_record(t->kv, id, doc, doc_len);
    } else {
        rc = reg_load_record(t->reg, id, doc, doc_len);
    }
    if (rc == 0)
        t->loaded++;
    return rc;
}

long rpl_load(struct store *st, struct reg_registry *reg, struct kv_store *kv, char *err,
              size_t errlen)
{
    struct rpl_target t = {reg, kv, NULL, 0};

    if (store_load(st, rpl_load_one, &t, err, errlen) != 0)
        return -1;
    reg_load_finish(reg);
    if (kv)
        kv_load_finish(kv);
    return t.loaded;
}

/* store_follow callback without a KV store (arg: the registry). */
static void rpl_change_reg(void *arg, enum store_change kind, const char *id, const char *doc,
                           size_t doc_len)
{
    if (!rpl_is_kv(id) && !rpl_is_member(id))
        reg_apply_change(arg, kind, id, doc, doc_len);
}

/* store_follow callback (arg: the KV store, which knows its registry):
 * another replica's commit to its owner; a reset to both. */
static void rpl_change(void *arg, enum store_change kind, const char *id, const char *doc,
                       size_t doc_len)
{
    struct kv_store *kv = arg;

    if (kind == STORE_CH_RESET || kind == STORE_CH_RESET_END) {
        reg_apply_change(kv_registry(kv), kind, id, doc, doc_len);
        kv_apply_change(kv, kind, id, doc, doc_len);
    } else if (rpl_is_kv(id)) {
        kv_apply_change(kv, kind, id, doc, doc_len);
    } else if (!rpl_is_member(id)) {
        reg_apply_change(kv_registry(kv), kind, id, doc, doc_len);
    }
}

int rpl_follow(struct store *st, struct reg_registry *reg, struct kv_store *kv, char *err,
               size_t errlen)
{
    /* no state of its own: the KV store leads to its registry */
    if (kv) {
        if (kv_registry(kv) != reg) {
            errbuf_set(err, errlen, "the KV store is not over this registry");
            return -1;
        }
        return store_follow(st, rpl_change, kv, err, errlen);
    }
    return store_follow(st, rpl_change_reg, reg, err, errlen);
}

long rpl_load_routes(struct store *st, const struct rpl_routes *rt, char *err, size_t errlen)
{
    struct rpl_target t = {rt->reg, rt->kv, rt->members, 0};

    if (store_load(st, rpl_load_one, &t, err, errlen) != 0)
        return -1;
    reg_load_finish(rt->reg);
    if (rt->kv)
        kv_load_finish(rt->kv);
    return t.loaded;
}

/* store_follow callback of rpl_follow_routes (arg: the routes). */
static void rpl_change_routes(void *arg, enum store_change kind, const char *id, const char *doc,
                              size_t doc_len)
{
    struct rpl_routes *rt = arg;
    bool reset = kind == STORE_CH_RESET || kind == STORE_CH_RESET_END;

    if (reset || rpl_is_member(id)) {
        if (rt->members)
            rmb_apply_change(rt->members, kind, id, doc, doc_len);
        if (!reset)
            return;
    }
    if (reset || !rpl_is_kv(id))
        reg_apply_change(rt->reg, kind, id, doc, doc_len);
    if (rt->kv && (reset || rpl_is_kv(id)))
        kv_apply_change(rt->kv, kind, id, doc, doc_len);
}

int rpl_follow_routes(struct store *st, struct rpl_routes *rt, char *err, size_t errlen)
{
    if (rt->kv && kv_registry(rt->kv) != rt->reg) {
        errbuf_set(err, errlen, "the KV store is not over this registry");
        return -1;
    }
    return store_follow(st, rpl_change_routes, rt, err, errlen);
}
