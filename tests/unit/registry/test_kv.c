/* test_kv.c: the registry's KV store (registry/core/kv.c) over the memory
 * store: set, get, delete, the CAS rules (against committed state plus the
 * writes queued), prefixes in key order, the key rules and limits, the
 * index shared with the catalog, load back from the store (with the exact
 * indexes), a failed commit that changes nothing, and transactions
 * (kv_txn: all or nothing, checks against the writes before them). Writes
 * complete on the loop: the helpers run the test's base until the store
 * is idle. */
#include "registry/api/codec.h"
#include "registry/core/catalog.h"
#include "registry/core/kv.h"
#include "registry/store/store.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/limits.h"
#include "failstore.h"

struct fixture {
    struct event_base *base;
    struct store *store; /* a failing store (support/failstore.h) over the memory store */
    struct reg_registry *reg;
    struct kv_store *kv;
    int changes;         /* observer calls */
    struct kv_change ch; /* the last (key not kept) */
    char last_key[LIM_KV_KEY_MAX + 1];
    size_t counts[8]; /* kv_count when change i (the first 8) was told */
};

static void observer(void *arg, const struct kv_change *ch)
{
    struct fixture *f = arg;

    if (f->kv && f->changes < 8)
        f->counts[f->changes] = kv_count(f->kv);
    f->changes++;
    snprintf(f->last_key, sizeof(f->last_key), "%s", ch->key);
    /* told after the change is applied, with the index it took, in order
     * (a transaction's after all of them, so the index may be past it) */
    assert_true(ch->index <= reg_index(f->reg));
    assert_true(ch->index > f->ch.index);
    f->ch = *ch;
}

static struct kv_store *make_kv(struct fixture *f, size_t max_keys, size_t max_bytes)
{
    struct kv_options o;

    memset(&o, 0, sizeof(o));
    o.max_keys = max_keys;
    o.max_bytes = max_bytes;
    o.observer = observer;
    o.observer_arg = f;
    return kv_new(f->reg, f->store, &o);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct reg_options opt;

    if (!f)
        return -1;
    f->base = event_base_new();
    f->store = f->base ? fstore_new(f->base, store_memory_open(f->base)) : NULL;
    if (!f->store)
        return -1;
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    f->reg = reg_new(f->store, &opt);
    f->kv = f->reg ? make_kv(f, 0, 0) : NULL;
    if (!f->kv)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kv_free(f->kv);
    reg_free(f->reg);
    store_close(f->store);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void settle(struct fixture *f)
{
    int rounds = 0;

    while (store_pending(f->store) > 0) {
        assert_true(rounds++ < 1000);
        assert_int_not_equal(event_base_loop(f->base, EVLOOP_ONCE), -1);
    }
}

struct outcome {
    int calls, rc;
};

static void outcome_cb(void *arg, int rc, const char *err)
{
    struct outcome *o = arg;

    (void)err;
    o->calls++;
    o->rc = rc;
}

/* Put and wait: kv_put's return, with the completion's rc in *done_rc. */
static int put(struct fixture *f, const char *key, const char *value, uint64_t flags, int cas)
{
    struct outcome o = {0};
    char err[256];
    int rc = kv_put(f->kv, key, value, strlen(value), flags, cas >= 0,
                    (uint64_t)(cas < 0 ? 0 : cas), outcome_cb, &o, err, sizeof(err));

    assert_int_equal(o.calls, 0); /* never from inside the call */
    settle(f);
    if (rc == 0) {
        assert_int_equal(o.calls, 1);
        return o.rc;
    }
    assert_int_equal(o.calls, 0);
    return rc;
}

static int del(struct fixture *f, const char *key, bool recurse, int cas)
{
    struct outcome o = {0};
    char err[256];
    int rc = kv_delete(f->kv, key, recurse, cas >= 0, (uint64_t)(cas < 0 ? 0 : cas), outcome_cb, &o,
                       err, sizeof(err));

    settle(f);
    if (rc == 0) {
        assert_int_equal(o.calls, 1);
        return o.rc;
    }
    assert_int_equal(o.calls, 0);
    return rc;
}

static const char *value_of(struct fixture *f, const char *key, char *buf, size_t cap)
{
    const struct kv_entry *e = kv_get(f->kv, key);
    size_t len = 0;
    const unsigned char *v;

    if (!e)
        return NULL;
    v = kv_entry_value(e, &len);
    assert_true(len < cap);
    memcpy(buf, v ? (const char *)v : "", len);
    buf[len] = '\0';
    return buf;
}

static void test_put_get_delete(void **state)
{
    struct fixture *f = *state;
    const struct kv_entry *e;
    char buf[64];
    uint64_t first;

    assert_null(kv_get(f->kv, "config/a"));
    assert_int_equal(put(f, "config/a", "hello", 42, -1), 0);
    e = kv_get(f->kv, "config/a");
    assert_non_null(e);
    assert_string_equal(value_of(f, "config/a", buf, sizeof(buf)), "hello");
    assert_int_equal(kv_entry_flags(e), 42);
    first = kv_entry_modify_index(e);
    assert_int_equal(first, reg_index(f->reg));
    assert_int_equal(kv_entry_create_index(e), first);
    assert_int_equal(f->changes, 1);
    assert_int_equal(f->ch.op, KV_OP_SET);
    assert_string_equal(f->last_key, "config/a");

    /* a second set: a new ModifyIndex, the same CreateIndex */
    assert_int_equal(put(f, "config/a", "", 0, -1), 0);
    e = kv_get(f->kv, "config/a");
    assert_int_equal(kv_entry_modify_index(e), first + 1);
    assert_int_equal(kv_entry_create_index(e), first);
    assert_string_equal(value_of(f, "config/a", buf, sizeof(buf)), "");
    assert_int_equal(kv_bytes(f->kv), 0);

    assert_int_equal(del(f, "config/a", false, -1), 0);
    assert_null(kv_get(f->kv, "config/a"));
    assert_int_equal(f->ch.op, KV_OP_DELETE);
    assert_int_equal(f->ch.index, first + 2);
    /* deleting what is not there: true at once, no index */
    assert_int_equal(del(f, "config/a", false, -1), 2);
    assert_int_equal(reg_index(f->reg), first + 2);
    assert_int_equal(f->changes, 3);
}

static void test_cas_rules(void **state)
{
    struct fixture *f = *state;
    const struct kv_entry *e;
    uint64_t mi;

    assert_int_equal(put(f, "k", "v1", 0, 5), 1); /* cas=N on a missing key: false */
    assert_int_equal(put(f, "k", "v1", 0, 0), 0); /* cas=0: only if absent */
    assert_int_equal(put(f, "k", "v2", 0, 0), 1);
    mi = kv_entry_modify_index(kv_get(f->kv, "k"));
    assert_int_equal(put(f, "k", "v2", 0, (int)mi + 1), 1);
    assert_int_equal(put(f, "k", "v2", 0, (int)mi), 0);
    e = kv_get(f->kv, "k");
    assert_int_not_equal(kv_entry_modify_index(e), mi);
    /* the old index no longer wins */
    assert_int_equal(put(f, "k", "v3", 0, (int)mi), 1);
    /* delete with cas: 0 never deletes, a wrong index refuses */
    assert_int_equal(del(f, "k", false, 0), 1);
    assert_int_equal(del(f, "k", false, (int)mi), 1);
    assert_int_equal(del(f, "k", false, (int)kv_entry_modify_index(e)), 0);
    assert_null(kv_get(f->kv, "k"));
}

/* Two CAS writes of one key in one loop turn: only the first can win,
 * also for cas=0 and when the first is a delete. */
static void test_cas_against_queued_writes(void **state)
{
    struct fixture *f = *state;
    struct outcome a = {0}, b = {0};
    char err[256];
    uint64_t mi;

    assert_int_equal(kv_put(f->kv, "k", "a", 1, 0, true, 0, outcome_cb, &a, err, sizeof(err)), 0);
    assert_int_equal(kv_put(f->kv, "k", "b", 1, 0, true, 0, outcome_cb, &b, err, sizeof(err)), 1);
    settle(f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    mi = kv_entry_modify_index(kv_get(f->kv, "k"));
    memset(&a, 0, sizeof(a));
    assert_int_equal(kv_put(f->kv, "k", "c", 1, 0, true, mi, outcome_cb, &a, err, sizeof(err)), 0);
    assert_int_equal(kv_put(f->kv, "k", "d", 1, 0, true, mi, outcome_cb, &b, err, sizeof(err)), 1);
    /* queued: reads still see the committed value */
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "k")), mi);
    settle(f);
    /* a queued delete makes the key absent for a cas=0 after it */
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(kv_delete(f->kv, "k", false, false, 0, outcome_cb, &a, err, sizeof(err)), 0);
    assert_int_equal(kv_put(f->kv, "k", "e", 1, 0, true, 0, outcome_cb, &b, err, sizeof(err)), 0);
    settle(f);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_non_null(kv_get(f->kv, "k"));
}

static void test_prefixes_in_key_order(void **state)
{
    struct fixture *f = *state;
    static const char *const keys[] = {"b/2", "a/1", "b/1/x", "b", "c", "b/1"};
    size_t i, first = 0, n;

    for (i = 0; i < 6; i++)
        assert_int_equal(put(f, keys[i], "v", 0, -1), 0);
    n = kv_range(f->kv, "b/", &first);
    assert_int_equal(n, 3);
    assert_string_equal(kv_entry_key(kv_at(f->kv, first)), "b/1");
    assert_string_equal(kv_entry_key(kv_at(f->kv, first + 1)), "b/1/x");
    assert_string_equal(kv_entry_key(kv_at(f->kv, first + 2)), "b/2");
    assert_int_equal(kv_range(f->kv, "", &first), 6);
    assert_int_equal(first, 0);
    assert_string_equal(kv_entry_key(kv_at(f->kv, 0)), "a/1");
    assert_int_equal(kv_range(f->kv, "b", &first), 4);
    assert_int_equal(kv_range(f->kv, "zz", &first), 0);
    /* a recursive delete: each key its own change and index */
    i = (size_t)f->changes;
    assert_int_equal(del(f, "b/", true, -1), 0);
    assert_int_equal(f->changes, (int)i + 3);
    assert_int_equal(kv_count(f->kv), 3);
    assert_non_null(kv_get(f->kv, "b"));
    assert_int_equal(del(f, "b/", true, -1), 2);
}

static void test_key_rules_and_limits(void **state)
{
    struct fixture *f = *state;
    char err[256], key[LIM_KV_KEY_MAX + 2];
    char *big = NULL;
    struct outcome o = {0};

    assert_int_equal(kv_key_check("a/b", 3, false, err, sizeof(err)), 0);
    assert_int_equal(kv_key_check("a/..b/c.", 8, false, err, sizeof(err)), 0);
    assert_int_equal(kv_key_check("", 0, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("", 0, true, err, sizeof(err)), 0);
    assert_int_equal(kv_key_check("/a", 2, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("a/../b", 6, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("..", 2, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("a/..", 4, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("a\0b", 3, false, err, sizeof(err)), -1);
    assert_int_equal(kv_key_check("\xff", 1, false, err, sizeof(err)), -1);
    memset(key, 'k', sizeof(key));
    key[LIM_KV_KEY_MAX] = '\0';
    assert_int_equal(kv_key_check(key, LIM_KV_KEY_MAX, false, err, sizeof(err)), 0);
    assert_int_equal(kv_key_check(key, LIM_KV_KEY_MAX + 1, false, err, sizeof(err)), -1);
    assert_int_equal(put(f, "a/../b", "v", 0, -1), KV_E_BAD_KEY);

    big = malloc(LIM_KV_VALUE_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', LIM_KV_VALUE_MAX + 1);
    assert_int_equal(kv_put(f->kv, "big", big, LIM_KV_VALUE_MAX + 1, 0, false, 0, outcome_cb, &o,
                            err, sizeof(err)),
                     KV_E_TOO_BIG);
    assert_int_equal(
        kv_put(f->kv, "big", big, LIM_KV_VALUE_MAX, 0, false, 0, outcome_cb, &o, err, sizeof(err)),
        0);
    settle(f);
    assert_int_equal(o.rc, 0);
    free(big);
    assert_int_equal(kv_count(f->kv), 1);
    assert_int_equal(reg_index(f->reg), 1);
}

static void test_caps_count_queued_writes(void **state)
{
    struct fixture *f = *state;
    struct outcome o[3];
    char err[256];

    memset(o, 0, sizeof(o));
    kv_free(f->kv);
    f->kv = make_kv(f, 2, 10);
    assert_non_null(f->kv);
    assert_int_equal(
        kv_put(f->kv, "a", "12345", 5, 0, false, 0, outcome_cb, &o[0], err, sizeof(err)), 0);
    assert_int_equal(kv_put(f->kv, "b", "123", 3, 0, false, 0, outcome_cb, &o[1], err, sizeof(err)),
                     0);
    /* two keys queued: a third is refused before any commit */
    assert_int_equal(kv_put(f->kv, "c", "", 0, 0, false, 0, outcome_cb, &o[2], err, sizeof(err)),
                     KV_E_FULL);
    /* bytes: 5 + 3 queued, 3 more would pass 10 */
    assert_int_equal(kv_put(f->kv, "a", "123", 3, 0, false, 0, outcome_cb, &o[2], err, sizeof(err)),
                     KV_E_FULL);
    settle(f);
    assert_int_equal(put(f, "a", "12", 0, -1), 0); /* a replacement is no new key */
    assert_int_equal(put(f, "c", "", 0, -1), KV_E_FULL);
    assert_int_equal(kv_bytes(f->kv), 5);
}

static void test_failed_commit_changes_nothing(void **state)
{
    struct fixture *f = *state;
    char buf[16];
    uint64_t idx, mi;

    assert_int_equal(put(f, "k", "old", 7, -1), 0);
    idx = reg_index(f->reg);
    mi = kv_entry_modify_index(kv_get(f->kv, "k"));
    fstore_set_failing(f->store, true);
    assert_int_equal(put(f, "k", "new", 8, -1), -1);
    assert_int_equal(put(f, "other", "x", 0, -1), -1);
    assert_int_equal(del(f, "k", false, -1), -1);
    fstore_set_failing(f->store, false);
    assert_string_equal(value_of(f, "k", buf, sizeof(buf)), "old");
    assert_int_equal(kv_entry_flags(kv_get(f->kv, "k")), 7);
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "k")), mi);
    assert_null(kv_get(f->kv, "other"));
    assert_int_equal(kv_count(f->kv), 1);
    assert_int_equal(kv_bytes(f->kv), 3);
    assert_int_equal(reg_index(f->reg), idx);
    assert_int_equal(f->changes, 1);
    /* and the key works on: the failures left nothing queued behind */
    assert_int_equal(put(f, "k", "v", 0, (int)mi), 0);
}

/* What the store holds comes back with its indexes; the registry's
 * records and the KV records do not mix. */
static void test_load_back(void **state)
{
    struct fixture *f = *state;
    char buf[64], err[256];
    unsigned char bin[4] = {0, 1, 0xff, 0};
    struct outcome o = {0};
    uint64_t ci, mi, idx;
    const struct kv_entry *e;
    size_t len = 0;

    assert_int_equal(put(f, "config/x", "one", 0, -1), 0);
    assert_int_equal(put(f, "config/x", "two", 9, -1), 0);
    assert_int_equal(kv_put(f->kv, "bin", bin, 4, 0, false, 0, outcome_cb, &o, err, sizeof(err)),
                     0);
    settle(f);
    assert_int_equal(put(f, "gone", "x", 0, -1), 0);
    assert_int_equal(del(f, "gone", false, -1), 0);
    ci = kv_entry_create_index(kv_get(f->kv, "config/x"));
    mi = kv_entry_modify_index(kv_get(f->kv, "config/x"));
    idx = reg_index(f->reg);

    /* a fresh registry and KV store over the same store */
    kv_free(f->kv);
    reg_free(f->reg);
    {
        struct reg_options opt;

        memset(&opt, 0, sizeof(opt));
        opt.codec = &regc_codec;
        f->reg = reg_new(f->store, &opt);
    }
    assert_non_null(f->reg);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), 0); /* no KV record is an instance */
    assert_true(reg_index(f->reg) >= idx);
    f->kv = make_kv(f, 0, 0);
    assert_int_equal(kv_load(f->kv, err, sizeof(err)), 2);
    assert_string_equal(value_of(f, "config/x", buf, sizeof(buf)), "two");
    e = kv_get(f->kv, "config/x");
    assert_int_equal(kv_entry_flags(e), 9);
    assert_int_equal(kv_entry_create_index(e), ci);
    assert_int_equal(kv_entry_modify_index(e), mi);
    e = kv_get(f->kv, "bin");
    assert_non_null(e);
    assert_memory_equal(kv_entry_value(e, &len), bin, 4);
    assert_int_equal(len, 4);
    assert_null(kv_get(f->kv, "gone"));
    assert_int_equal(kv_bytes(f->kv), 7);
    /* the next write takes an index past every one before the restart */
    assert_int_equal(put(f, "config/x", "three", 0, -1), 0);
    assert_true(kv_entry_modify_index(kv_get(f->kv, "config/x")) > idx);
}

/* A write whose predicted index misses (a write queued before it failed,
 * so it takes one number less) still stores its exact index: the rewrite
 * after its commit. */
static void test_exact_index_after_a_miss(void **state)
{
    struct fixture *f = *state;
    struct outcome a = {0}, b = {0};
    char err[256];
    uint64_t mi;

    assert_int_equal(put(f, "x", "1", 0, -1), 0);
    fstore_set_failing(f->store, true);
    assert_int_equal(kv_put(f->kv, "z", "0", 1, 0, false, 0, outcome_cb, &a, err, sizeof(err)), 0);
    fstore_set_failing(f->store, false);
    assert_int_equal(kv_put(f->kv, "y", "2", 1, 0, false, 0, outcome_cb, &b, err, sizeof(err)), 0);
    settle(f);
    assert_int_equal(a.rc, -1);
    assert_int_equal(b.rc, 0);
    mi = kv_entry_modify_index(kv_get(f->kv, "y"));
    assert_int_equal(mi, 2);
    assert_int_equal(reg_index(f->reg), 2);
    /* later writes: the load's clamp to the index cannot hide a miss */
    assert_int_equal(put(f, "w", "3", 0, -1), 0);
    assert_int_equal(put(f, "w", "4", 0, -1), 0);
    kv_free(f->kv);
    f->kv = make_kv(f, 0, 0);
    assert_int_equal(kv_load(f->kv, err, sizeof(err)), 3);
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "y")), mi);
    assert_int_equal(kv_entry_create_index(kv_get(f->kv, "y")), mi);
}

/* ---------------------------------------------------------------------- */
/* transactions */

/* What a transaction's completion was given (keys and values copied). */
struct txn_outcome {
    int calls, rc;
    uint64_t index;
    size_t n;
    size_t op[16];
    char key[16][32];
    char value[16][32]; /* "-" when the item has no value */
    uint64_t modify[16];
};

static void txn_cb(void *arg, int rc, const char *err, const struct kv_txn_item *items, size_t n,
                   uint64_t index)
{
    struct txn_outcome *o = arg;
    size_t i, len = 0;

    (void)err;
    o->calls++;
    o->rc = rc;
    o->index = index;
    o->n = n;
    assert_true(n <= 16);
    for (i = 0; i < n; i++) {
        const unsigned char *v = kv_entry_value(items[i].e, &len);

        o->op[i] = items[i].op;
        snprintf(o->key[i], sizeof(o->key[i]), "%s", kv_entry_key(items[i].e));
        if (items[i].with_value)
            snprintf(o->value[i], sizeof(o->value[i]), "%.*s", (int)len, v ? (const char *)v : "");
        else
            snprintf(o->value[i], sizeof(o->value[i]), "-");
        o->modify[i] = kv_entry_modify_index(items[i].e);
    }
}

static struct kv_txn_op op_of(enum kv_txn_verb verb, const char *key, const char *value,
                              uint64_t index)
{
    struct kv_txn_op op;

    memset(&op, 0, sizeof(op));
    op.verb = verb;
    op.key = key;
    op.value = value;
    op.len = value ? strlen(value) : 0;
    op.index = index;
    return op;
}

/* Run ops and wait: kv_txn's return (failed op in *failed). */
static int txn(struct fixture *f, const struct kv_txn_op *ops, size_t n, struct txn_outcome *o,
               size_t *failed)
{
    char err[256];
    size_t dummy = 0;
    int rc = kv_txn(f->kv, ops, n, txn_cb, o, failed ? failed : &dummy, err, sizeof(err));

    settle(f);
    assert_int_equal(o->calls, rc == 0 ? 1 : 0);
    return rc;
}

/* Three sets commit together: none is seen before the commit, all after,
 * each with its own consecutive index, results in op order without values. */
static void test_txn_sets_commit_together(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[4];
    struct txn_outcome o = {0};
    char buf[16], err[256];
    size_t failed = 99;
    uint64_t idx = reg_index(f->reg);

    ops[0] = op_of(KV_TXN_SET, "app/a", "1", 0);
    ops[1] = op_of(KV_TXN_SET, "app/b", "2", 0);
    ops[1].flags = 5;
    ops[2] = op_of(KV_TXN_GET, "app/a", NULL, 0);
    ops[3] = op_of(KV_TXN_SET, "app/c", "3", 0);
    assert_int_equal(kv_txn(f->kv, ops, 4, txn_cb, &o, &failed, err, sizeof(err)), 0);
    assert_int_equal(o.calls, 0); /* not before the commit */
    assert_null(kv_get(f->kv, "app/a"));
    assert_int_equal(store_pending(f->store), 3 + 1); /* and the index lease */
    settle(f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    assert_string_equal(value_of(f, "app/a", buf, sizeof(buf)), "1");
    assert_string_equal(value_of(f, "app/b", buf, sizeof(buf)), "2");
    assert_string_equal(value_of(f, "app/c", buf, sizeof(buf)), "3");
    assert_int_equal(kv_entry_flags(kv_get(f->kv, "app/b")), 5);
    assert_int_equal(reg_index(f->reg), idx + 3);
    assert_int_equal(o.index, idx + 3);
    assert_int_equal(f->changes, 3);
    /* the observer hears them once all are applied: a woken reader sees all */
    assert_int_equal(f->counts[0], 3);
    assert_int_equal(o.n, 4);
    assert_int_equal(o.op[0], 0);
    assert_string_equal(o.key[0], "app/a");
    assert_string_equal(o.value[0], "-");
    assert_int_equal(o.modify[0], idx + 1);
    assert_int_equal(o.op[2], 2); /* the get: with its value */
    assert_string_equal(o.value[2], "1");
    assert_int_equal(o.op[3], 3);
    assert_int_equal(o.modify[3], idx + 3);
    assert_int_equal(kv_count(f->kv), 3);
    assert_int_equal(kv_bytes(f->kv), 3);
}

/* A failing check refuses the whole transaction at once: nothing queued,
 * nothing changed, the failing op named. */
static void test_txn_failed_check_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[3];
    struct txn_outcome o = {0};
    size_t failed = 99;
    uint64_t idx, mi;
    char buf[16];

    assert_int_equal(put(f, "k", "old", 0, -1), 0);
    mi = kv_entry_modify_index(kv_get(f->kv, "k"));
    idx = reg_index(f->reg);
    ops[0] = op_of(KV_TXN_SET, "a", "1", 0);
    ops[2] = op_of(KV_TXN_SET, "b", "2", 0);
    /* each failing op in the middle */
    ops[1] = op_of(KV_TXN_CAS, "k", "new", mi + 1);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    assert_int_equal(failed, 1);
    ops[1] = op_of(KV_TXN_CAS, "k", "new", 0); /* 0: only an absent key */
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_CHECK_INDEX, "k", NULL, mi + 1);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_CHECK_NOT_EXISTS, "k", NULL, 0);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_GET, "nope", NULL, 0);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_DELETE_CAS, "k", NULL, mi + 1);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_CHECK_INDEX, "nope", NULL, 0);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 1);
    assert_int_equal(failed, 1);
    assert_int_equal(store_pending(f->store), 0);
    assert_null(kv_get(f->kv, "a"));
    assert_null(kv_get(f->kv, "b"));
    assert_string_equal(value_of(f, "k", buf, sizeof(buf)), "old");
    assert_int_equal(reg_index(f->reg), idx);
    assert_int_equal(f->changes, 1);
    /* the checks that hold let it through */
    ops[1] = op_of(KV_TXN_CHECK_INDEX, "k", NULL, mi);
    assert_int_equal(txn(f, ops, 3, &o, &failed), 0);
    assert_int_equal(o.rc, 0);
    assert_non_null(kv_get(f->kv, "a"));
    assert_non_null(kv_get(f->kv, "b"));
}

/* A commit that fails changes nothing: no key, no index, no event, and
 * the keys work on afterwards. */
static void test_txn_failed_commit_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[3];
    struct txn_outcome o = {0}, o2 = {0};
    uint64_t idx, mi;
    char buf[16];

    assert_int_equal(put(f, "k", "old", 7, -1), 0);
    assert_int_equal(put(f, "gone", "x", 0, -1), 0);
    mi = kv_entry_modify_index(kv_get(f->kv, "k"));
    idx = reg_index(f->reg);
    ops[0] = op_of(KV_TXN_SET, "k", "new", 0);
    ops[1] = op_of(KV_TXN_DELETE, "gone", NULL, 0);
    ops[2] = op_of(KV_TXN_SET, "fresh", "y", 0);
    fstore_set_failing(f->store, true);
    assert_int_equal(txn(f, ops, 3, &o, NULL), 0);
    fstore_set_failing(f->store, false);
    assert_int_equal(o.rc, -1);
    assert_int_equal(o.n, 0);
    assert_string_equal(value_of(f, "k", buf, sizeof(buf)), "old");
    assert_int_equal(kv_entry_flags(kv_get(f->kv, "k")), 7);
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "k")), mi);
    assert_non_null(kv_get(f->kv, "gone"));
    assert_null(kv_get(f->kv, "fresh"));
    assert_int_equal(kv_count(f->kv), 2);
    assert_int_equal(kv_bytes(f->kv), 4);
    assert_int_equal(reg_index(f->reg), idx);
    assert_int_equal(f->changes, 2);
    /* nothing left queued behind: the same transaction goes through now,
     * and a CAS on the old index still holds */
    ops[0] = op_of(KV_TXN_CAS, "k", "new", mi);
    assert_int_equal(txn(f, ops, 3, &o2, NULL), 0);
    assert_int_equal(o2.rc, 0);
    assert_string_equal(value_of(f, "k", buf, sizeof(buf)), "new");
    assert_null(kv_get(f->kv, "gone"));
    assert_non_null(kv_get(f->kv, "fresh"));
    assert_int_equal(kv_bytes(f->kv), 4);
}

/* Checks see the transaction's own earlier writes and the writes queued
 * before it; reads answer the state at their point of the transaction. */
static void test_txn_checks_see_earlier_writes(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[4];
    struct txn_outcome o = {0};
    struct outcome q = {0};
    size_t failed = 99;
    char err[256];

    assert_int_equal(put(f, "p/x", "1", 0, -1), 0);
    assert_int_equal(put(f, "p/y", "2", 0, -1), 0);
    assert_int_equal(put(f, "q", "3", 0, -1), 0);
    /* a set earlier in the transaction: the key exists, its index is not known */
    ops[0] = op_of(KV_TXN_SET, "n", "v", 0);
    ops[1] = op_of(KV_TXN_CHECK_NOT_EXISTS, "n", NULL, 0);
    assert_int_equal(txn(f, ops, 2, &o, &failed), 1);
    assert_int_equal(failed, 1);
    ops[1] = op_of(KV_TXN_CHECK_INDEX, "q", NULL, kv_entry_modify_index(kv_get(f->kv, "q")));
    ops[0] = op_of(KV_TXN_SET, "q", "v", 0);
    assert_int_equal(txn(f, ops, 2, &o, &failed), 1);
    /* a delete-tree earlier: the keys under it are gone for what follows */
    ops[0] = op_of(KV_TXN_DELETE_TREE, "p/", NULL, 0);
    ops[1] = op_of(KV_TXN_GET, "p/x", NULL, 0);
    assert_int_equal(txn(f, ops, 2, &o, &failed), 1);
    ops[1] = op_of(KV_TXN_CHECK_NOT_EXISTS, "p/y", NULL, 0);
    ops[2] = op_of(KV_TXN_SET, "p/z", "new", 0);
    ops[3] = op_of(KV_TXN_GET_TREE, "p/", NULL, 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(txn(f, ops, 4, &o, &failed), 0);
    assert_int_equal(o.rc, 0);
    assert_null(kv_get(f->kv, "p/x"));
    assert_null(kv_get(f->kv, "p/y"));
    assert_non_null(kv_get(f->kv, "q"));
    /* results: the set (no value), then the tree as it is after it */
    assert_int_equal(o.n, 2);
    assert_string_equal(o.key[0], "p/z");
    assert_string_equal(o.value[0], "-");
    assert_int_equal(o.op[1], 3);
    assert_string_equal(o.key[1], "p/z");
    assert_string_equal(o.value[1], "new");
    /* a write queued before (not committed): cas=0 sees it, as kv_put does */
    assert_int_equal(kv_put(f->kv, "w", "1", 1, 0, false, 0, outcome_cb, &q, err, sizeof(err)), 0);
    ops[0] = op_of(KV_TXN_CAS, "w", "2", 0);
    assert_int_equal(kv_txn(f->kv, ops, 1, txn_cb, &o, &failed, err, sizeof(err)), 1);
    ops[0] = op_of(KV_TXN_DELETE, "w", NULL, 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(kv_txn(f->kv, ops, 1, txn_cb, &o, &failed, err, sizeof(err)), 0);
    settle(f);
    assert_int_equal(q.rc, 0);
    assert_int_equal(o.rc, 0);
    assert_null(kv_get(f->kv, "w")); /* the delete came after the set */
}

/* A read before a delete of the same key answers the value it had; a
 * transaction without writes is answered at once from committed state. */
static void test_txn_reads(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[3];
    struct txn_outcome o = {0};
    size_t failed = 99;
    char err[256];
    uint64_t idx;

    assert_int_equal(put(f, "cfg/a", "A", 0, -1), 0);
    assert_int_equal(put(f, "cfg/b", "B", 0, -1), 0);
    idx = reg_index(f->reg);
    ops[0] = op_of(KV_TXN_GET_TREE, "cfg/", NULL, 0);
    ops[1] = op_of(KV_TXN_GET, "cfg/b", NULL, 0);
    ops[2] = op_of(KV_TXN_GET_TREE, "none/", NULL, 0);
    assert_int_equal(kv_txn(f->kv, ops, 3, txn_cb, &o, &failed, err, sizeof(err)), 0);
    assert_int_equal(o.calls, 1); /* read-only: inside the call */
    assert_int_equal(store_pending(f->store), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.key[0], "cfg/a");
    assert_string_equal(o.value[0], "A");
    assert_string_equal(o.key[1], "cfg/b");
    assert_int_equal(o.op[2], 1);
    assert_string_equal(o.value[2], "B");
    assert_int_equal(o.index, idx);
    /* get, then delete the same key */
    ops[0] = op_of(KV_TXN_GET, "cfg/a", NULL, 0);
    ops[1] = op_of(KV_TXN_DELETE, "cfg/a", NULL, 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(txn(f, ops, 2, &o, &failed), 0);
    assert_int_equal(o.n, 1);
    assert_string_equal(o.value[0], "A");
    assert_null(kv_get(f->kv, "cfg/a"));
    assert_int_equal(reg_index(f->reg), idx + 1);
    assert_int_equal(kv_last_delete(f->kv), idx + 1);
    /* deleting what is not there writes nothing: answered at once */
    memset(&o, 0, sizeof(o));
    assert_int_equal(kv_txn(f->kv, ops + 1, 1, txn_cb, &o, &failed, err, sizeof(err)), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(store_pending(f->store), 0);
    assert_int_equal(o.n, 0);
    assert_int_equal(reg_index(f->reg), idx + 1);
}

/* Bad keys and values are refused before anything, naming the op. */
static void test_txn_refusals(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[2];
    struct txn_outcome o = {0};
    size_t failed = 99;
    char err[256];
    static char big[LIM_KV_VALUE_MAX + 2];

    ops[0] = op_of(KV_TXN_SET, "ok", "1", 0);
    ops[1] = op_of(KV_TXN_SET, "/bad", "1", 0);
    assert_int_equal(kv_txn(f->kv, ops, 2, txn_cb, &o, &failed, err, sizeof(err)), KV_E_BAD_KEY);
    assert_int_equal(failed, 1);
    ops[1] = op_of(KV_TXN_DELETE, "", NULL, 0); /* "" is only a prefix */
    assert_int_equal(kv_txn(f->kv, ops, 2, txn_cb, &o, &failed, err, sizeof(err)), KV_E_BAD_KEY);
    ops[1] = op_of(KV_TXN_DELETE_TREE, "", NULL, 0); /* ...which is fine for a tree */
    assert_int_equal(txn(f, ops, 2, &o, &failed), 0);
    assert_null(kv_get(f->kv, "ok")); /* set, then the whole tree deleted */
    memset(big, 'x', sizeof(big) - 1);
    ops[1] = op_of(KV_TXN_SET, "big", big, 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(kv_txn(f->kv, ops, 2, txn_cb, &o, &failed, err, sizeof(err)), KV_E_TOO_BIG);
    assert_int_equal(failed, 1);
    assert_int_equal(store_pending(f->store), 0);
    assert_int_equal(o.calls, 0);
}

/* Transaction writes store their exact indexes: they come back after a
 * restart. */
static void test_txn_load_back(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[3];
    struct txn_outcome o = {0};
    char err[256];
    uint64_t ma, mb;

    assert_int_equal(put(f, "a", "0", 0, -1), 0);
    ops[0] = op_of(KV_TXN_SET, "a", "1", 0);
    ops[1] = op_of(KV_TXN_SET, "b", "2", 0);
    ops[2] = op_of(KV_TXN_SET, "b", "3", 0); /* twice: the last wins */
    assert_int_equal(txn(f, ops, 3, &o, NULL), 0);
    assert_int_equal(o.rc, 0);
    ma = kv_entry_modify_index(kv_get(f->kv, "a"));
    mb = kv_entry_modify_index(kv_get(f->kv, "b"));
    assert_int_equal(mb, ma + 2);
    assert_int_equal(kv_entry_create_index(kv_get(f->kv, "a")), 1);
    kv_free(f->kv);
    f->kv = make_kv(f, 0, 0);
    assert_int_equal(kv_load(f->kv, err, sizeof(err)), 2);
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "a")), ma);
    assert_int_equal(kv_entry_create_index(kv_get(f->kv, "a")), 1);
    assert_int_equal(kv_entry_modify_index(kv_get(f->kv, "b")), mb);
    assert_int_equal(kv_bytes(f->kv), 2);
}

/* The store refusing a write at queue time: the first one leaves
 * nothing queued and nothing changed; a later one (the store took the
 * writes before it, which commit) fails the transaction, and memory
 * follows what the store committed, so a reload sees the same. */
static void test_txn_queue_refusal(void **state)
{
    struct fixture *f = *state;
    struct kv_txn_op ops[3];
    struct txn_outcome o = {0};
    size_t failed = 99;
    char err[256];
    uint64_t idx;

    assert_int_equal(put(f, "k", "old", 0, -1), 0); /* the index lease is queued here */
    idx = reg_index(f->reg);
    ops[0] = op_of(KV_TXN_SET, "a", "1", 0);
    ops[1] = op_of(KV_TXN_DELETE, "k", NULL, 0);
    ops[2] = op_of(KV_TXN_SET, "c", "3", 0);
    fstore_refuse_in(f->store, 1);
    assert_int_equal(kv_txn(f->kv, ops, 3, txn_cb, &o, &failed, err, sizeof(err)), KV_E_FAILED);
    assert_int_equal(failed, 3);
    assert_int_equal(store_pending(f->store), 0);
    settle(f);
    assert_int_equal(o.calls, 0);
    assert_null(kv_get(f->kv, "a"));
    assert_non_null(kv_get(f->kv, "k"));
    assert_int_equal(reg_index(f->reg), idx);
    /* a plain write goes through after it: nothing was left counted */
    assert_int_equal(put(f, "k", "v2", 0, -1), 0);
    assert_int_equal(reg_index(f->reg), idx + 1);
    idx = reg_index(f->reg);
    fstore_refuse_in(f->store, 3); /* the third write: "a" and the delete of "k" are queued */
    assert_int_equal(txn(f, ops, 3, &o, &failed), 0);
    assert_int_equal(o.rc, -1);
    assert_non_null(kv_get(f->kv, "a"));
    assert_null(kv_get(f->kv, "k"));
    assert_null(kv_get(f->kv, "c"));
    assert_int_equal(reg_index(f->reg), idx + 2);
    kv_free(f->kv);
    f->kv = make_kv(f, 0, 0);
    assert_int_equal(kv_load(f->kv, err, sizeof(err)), 1);
    assert_non_null(kv_get(f->kv, "a"));
    assert_null(kv_get(f->kv, "k"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas_against_queued_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixes_in_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rules_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps_count_queued_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_index_after_a_miss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_sets_commit_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_failed_check_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_failed_commit_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_checks_see_earlier_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_load_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_queue_refusal, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
