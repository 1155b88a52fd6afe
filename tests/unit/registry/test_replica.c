/* test_replica.c: several registries on one shared state (registry/core
 * replica.c, the shared paths of catalog.c and kv.c) over a group of shared
 * memory stores (store_memory_open_shared): what one replica commits shows
 * on the others at the same index (the group's revision), in commit order;
 * a replica started later loads the same state; a reset drops what was not
 * put again. Every store runs on one test base; the helpers run it until
 * the group is quiet. */
#include "registry/api/codec.h"
#include "registry/api/spec_json.h"
#include "registry/core/catalog.h"
#include "registry/core/kv.h"
#include "registry/core/replica.h"
#include "registry/store/store.h"
#include "regworld.h"

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

#define NODES_MAX  3
#define EVENTS_MAX 64

/* What one replica's observers heard. */
struct heard {
    size_t n;
    struct {
        int type; /* enum reg_event_type, or 100 + enum kv_op */
        uint64_t index;
        char id[LIM_ID_MAX + 1];
    } ev[EVENTS_MAX];
};

struct node {
    struct store *store;
    struct reg_registry *reg;
    struct kv_store *kv;
    struct heard heard;
};

/* The replicas over the world (whose virtual clock runs the group's
 * leases and the registries' clock). */
struct world {
    struct rw_world *rw; /* owned */
    size_t n;
    struct node nodes[NODES_MAX];
};

static void heard_add(struct heard *h, int type, uint64_t index, const char *id)
{
    assert_true(h->n < EVENTS_MAX);
    h->ev[h->n].type = type;
    h->ev[h->n].index = index;
    snprintf(h->ev[h->n].id, sizeof(h->ev[h->n].id), "%s", id);
    h->n++;
}

static void observe_reg(void *arg, const struct reg_event *ev)
{
    heard_add(arg, (int)ev->type, ev->index, reg_instance_id(ev->in));
}

static void observe_kv(void *arg, const struct kv_change *ch)
{
    heard_add(arg, 100 + (int)ch->op, ch->index, ch->key);
}

/* Start one more replica on the group: its store, registry and KV store,
 * loaded (rpl_load) and following (rpl_follow). */
static struct node *world_add(struct world *w)
{
    struct node *nd = &w->nodes[w->n++];
    struct kv_options kopt;
    char err[256];

    nd->store = rw_store_open(w->rw);
    nd->reg = rw_registry_new(w->rw, nd->store, observe_reg, &nd->heard);
    assert_true(reg_shared(nd->reg));
    memset(&kopt, 0, sizeof(kopt));
    kopt.observer = observe_kv;
    kopt.observer_arg = &nd->heard;
    nd->kv = kv_new(nd->reg, nd->store, &kopt);
    assert_non_null(nd->kv);
    assert_true(rpl_load(nd->store, nd->reg, nd->kv, err, sizeof(err)) >= 0);
    assert_int_equal(rpl_follow(nd->store, nd->reg, nd->kv, err, sizeof(err)), 0);
    return nd;
}

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    if (!w)
        return -1;
    w->rw = rw_new();
    if (!w->rw)
        return -1;
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    size_t i;

    rw_settle(w->rw);
    for (i = 0; i < w->n; i++) {
        kv_free(w->nodes[i].kv);
        reg_free(w->nodes[i].reg);
    }
    rw_free(w->rw); /* closes the stores */
    free(w);
    return 0;
}

static const char *const SVC_A =
    "{\"name\":\"alpha\",\"host\":\"10.0.0.1\",\"port\":8080,\"checks\":[]}";
static const char *const SVC_B =
    "{\"name\":\"beta\",\"host\":\"10.0.0.2\",\"port\":8081,\"checks\":[]}";

/* The last event node heard. */
static void assert_last(const struct node *nd, int type, uint64_t index, const char *id)
{
    assert_true(nd->heard.n > 0);
    assert_int_equal(nd->heard.ev[nd->heard.n - 1].type, type);
    assert_int_equal(nd->heard.ev[nd->heard.n - 1].index, index);
    assert_string_equal(nd->heard.ev[nd->heard.n - 1].id, id);
}

/* A registration on A is on B at the same index, which is the revision;
 * B's observer heard it at that index. */
static void test_register_shows_on_other(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    const struct reg_instance *ia = NULL, *ib = NULL;
    char id[LIM_ID_MAX + 1];

    rw_register(w->rw, a->reg, SVC_A, id);
    ia = reg_get(a->reg, id);
    ib = reg_get(b->reg, id);
    assert_non_null(ia);
    assert_non_null(ib);
    assert_int_equal(reg_index(a->reg), 1);
    assert_int_equal(reg_index(b->reg), reg_index(a->reg));
    assert_int_equal(reg_index(a->reg), store_revision(a->store));
    assert_int_equal(reg_instance_modify_index(ib), reg_instance_modify_index(ia));
    assert_int_equal(reg_instance_create_index(ib), reg_instance_create_index(ia));
    assert_string_equal(reg_instance_host(ib), "10.0.0.1");
    assert_int_equal(reg_instance_health(ib), REG_PASSING);
    assert_last(b, REG_EV_REGISTER, 1, id);
    assert_last(a, REG_EV_REGISTER, 1, id);
    assert_ptr_equal(reg_discover(b->reg, "alpha", NULL, REG_RANDOM), ib);
}

/* A deregistration on B removes the instance on A; a re-registration
 * keeps its create index everywhere. */
static void test_deregister_on_other(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    char id[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1];
    char err[256];
    int outcome = 0;

    rw_register(w->rw, a->reg, SVC_A, id);
    rw_register(w->rw, a->reg, SVC_B, id2);
    assert_int_equal(reg_index(b->reg), 2);
    assert_int_equal(reg_deregister(b->reg, id, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_null(reg_get(a->reg, id));
    assert_null(reg_get(b->reg, id));
    assert_non_null(reg_get(a->reg, id2));
    assert_int_equal(reg_index(a->reg), 3);
    assert_int_equal(reg_index(b->reg), 3);
    assert_last(a, REG_EV_DEREGISTER, 3, id);
    assert_last(b, REG_EV_DEREGISTER, 3, id);
}

/* Maintenance turned on at A is a MAINTENANCE change on B, the instance
 * out of B's discovery; turned off again likewise. */
static void test_maintenance_on_other(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    char id[LIM_ID_MAX + 1], err[256];
    const char *reason = NULL;
    int outcome = 0;

    rw_register(w->rw, a->reg, SVC_A, id);
    assert_int_equal(
        reg_maintenance(a->reg, id, true, "upgrade", rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_true(reg_instance_maintenance(reg_get(b->reg, id), &reason, NULL));
    assert_string_equal(reason, "upgrade");
    assert_int_equal(reg_instance_health(reg_get(b->reg, id)), REG_CRITICAL);
    assert_null(reg_discover(b->reg, "alpha", NULL, REG_RANDOM));
    assert_last(b, REG_EV_MAINTENANCE, 2, id);
    assert_int_equal(reg_instance_create_index(reg_get(b->reg, id)), 1);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, id)), 2);
    outcome = 0;
    assert_int_equal(
        reg_maintenance(a->reg, id, false, NULL, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_false(reg_instance_maintenance(reg_get(b->reg, id), NULL, NULL));
    assert_int_equal(reg_instance_health(reg_get(b->reg, id)), REG_PASSING);
    assert_last(b, REG_EV_MAINTENANCE, 3, id);
    assert_last(a, REG_EV_MAINTENANCE, 3, id);
}

/* Writes on both replicas in one turn: every replica applies the same
 * commits in the same order, the changes of one batch share its index,
 * the indexes never decrease and end at the revision on both. */
static void test_interleaved_writes_one_order(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct reg_spec spec;
    char ida[LIM_ID_MAX + 1], ida2[LIM_ID_MAX + 1], idb[LIM_ID_MAX + 1], err[256];
    bool created = false;
    int oa = 0, oa2 = 0, ob = 0;
    size_t i, k;

    assert_int_equal(reg_spec_parse_text(SVC_A, strlen(SVC_A), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(a->reg, &spec, rw_done_cb, &oa, ida, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    /* a second write of A in the same turn: the same batch, one revision */
    assert_int_equal(reg_spec_parse_text(SVC_B, strlen(SVC_B), &spec, err, sizeof(err)), 0);
    assert_int_equal(
        reg_register(a->reg, &spec, rw_done_cb, &oa2, ida2, &created, err, sizeof(err)), 0);
    assert_int_equal(reg_register(b->reg, &spec, rw_done_cb, &ob, idb, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    rw_settle(w->rw);
    assert_int_equal(oa, 1);
    assert_int_equal(oa2, 1);
    assert_int_equal(ob, 1);
    assert_int_equal(reg_index(a->reg), 2);
    assert_int_equal(reg_index(b->reg), 2);
    assert_int_equal(a->heard.n, 3);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, ida)), 1);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, ida2)), 1);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, idb)), 2);
    assert_int_equal(a->heard.n, b->heard.n);
    for (k = 0; k < 2; k++) {
        const struct heard *h = k ? &b->heard : &a->heard;

        for (i = 0; i < h->n; i++) {
            assert_int_equal(h->ev[i].index, a->heard.ev[i].index);
            assert_string_equal(h->ev[i].id, a->heard.ev[i].id);
            if (i > 0)
                assert_true(h->ev[i].index >= h->ev[i - 1].index);
        }
    }
    assert_int_equal(reg_instance_modify_index(reg_get(a->reg, idb)),
                     reg_instance_modify_index(reg_get(b->reg, idb)));
}

/* The records of the group as a new store on it reads them. */
struct records {
    size_t n;
    bool has_index_lease;
    char kv_doc[256]; /* the document of "!kv:" KEY_ONE, if read */
    uint64_t kv_rev;  /* its revision during the load call */
    struct store *st;
};

#define KEY_ONE "config/app/one"

static int records_one(const char *id, const char *doc, size_t len, void *arg)
{
    struct records *rs = arg;

    (void)len;
    rs->n++;
    if (strcmp(id, REG_META_INDEX_ID) == 0)
        rs->has_index_lease = true;
    if (strcmp(id, KV_RECORD_PREFIX KEY_ONE) == 0) {
        snprintf(rs->kv_doc, sizeof(rs->kv_doc), "%s", doc);
        rs->kv_rev = store_revision(rs->st);
    }
    return 0;
}

static void read_records(struct world *w, struct records *rs)
{
    memset(rs, 0, sizeof(*rs));
    rw_load(w->rw, records_one, rs, &rs->st);
}

static void kv_set(struct world *w, struct node *nd, const char *key, const char *value)
{
    char err[256];
    int outcome = 0;

    assert_int_equal(kv_put(nd->kv, key, value, strlen(value), 0, false, 0, rw_done_cb, &outcome,
                            err, sizeof(err)),
                     0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
}

/* A KV set on A is on B with the same indexes; an update keeps its
 * create index on both; the stored document carries no index it could
 * not know (create 0 when new, modify 0), and no index lease is written. */
static void test_kv_set_shows_on_other(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    const struct kv_entry *ea = NULL, *eb = NULL;
    struct records rs;
    char id[LIM_ID_MAX + 1];
    size_t len = 0;

    rw_register(w->rw, a->reg, SVC_A, id);
    kv_set(w, a, KEY_ONE, "v1");
    read_records(w, &rs);
    assert_false(rs.has_index_lease);
    assert_string_equal(rs.kv_doc, "kv1 0 0 0 djE=");
    assert_int_equal(rs.kv_rev, 2);
    ea = kv_get(a->kv, KEY_ONE);
    eb = kv_get(b->kv, KEY_ONE);
    assert_non_null(ea);
    assert_non_null(eb);
    assert_int_equal(kv_entry_modify_index(ea), 2);
    assert_int_equal(kv_entry_modify_index(eb), 2);
    assert_int_equal(kv_entry_create_index(eb), 2);
    assert_memory_equal(kv_entry_value(eb, &len), "v1", 2);
    assert_int_equal(reg_index(b->reg), 2);
    assert_last(b, 100 + KV_OP_SET, 2, KEY_ONE);
    /* an update on B: the create index stays, A sees it */
    kv_set(w, b, KEY_ONE, "v2");
    read_records(w, &rs);
    assert_string_equal(rs.kv_doc, "kv1 0 2 0 djI=");
    ea = kv_get(a->kv, KEY_ONE);
    eb = kv_get(b->kv, KEY_ONE);
    assert_int_equal(kv_entry_modify_index(ea), 3);
    assert_int_equal(kv_entry_modify_index(eb), 3);
    assert_int_equal(kv_entry_create_index(ea), 2);
    assert_int_equal(kv_entry_create_index(eb), 2);
    assert_memory_equal(kv_entry_value(ea, &len), "v2", 2);
    assert_last(a, 100 + KV_OP_SET, 3, KEY_ONE);
    assert_int_equal(reg_index(a->reg), store_revision(a->store));
}

/* A KV delete on B leaves A too, at the same index (kv_last_delete). */
static void test_kv_delete_on_other(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    char err[256];
    int outcome = 0;

    kv_set(w, a, KEY_ONE, "v1");
    kv_set(w, a, "config/app/two", "v2");
    assert_int_equal(kv_count(b->kv), 2);
    assert_int_equal(
        kv_delete(b->kv, "config/app/", true, false, 0, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_int_equal(kv_count(a->kv), 0);
    assert_int_equal(kv_count(b->kv), 0);
    /* one batch: both deletions at one revision */
    assert_int_equal(kv_last_delete(a->kv), 3);
    assert_int_equal(kv_last_delete(b->kv), 3);
    assert_int_equal(reg_index(a->reg), 3);
    assert_last(a, 100 + KV_OP_DELETE, 3, "config/app/two");
}

/* A replica started later loads the same state, at the same index, with
 * the same indexes per instance and key, and follows from there. */
static void test_late_replica_same_state(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = NULL, *c = NULL;
    char id1[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1], err[256];
    int outcome = 0;

    rw_register(w->rw, a->reg, SVC_A, id1);
    rw_register(w->rw, a->reg, SVC_B, id2);
    kv_set(w, a, KEY_ONE, "v1");
    kv_set(w, a, KEY_ONE, "v2");
    assert_int_equal(reg_maintenance(a->reg, id2, true, "", rw_done_cb, &outcome, err, sizeof(err)),
                     0);
    rw_settle(w->rw);
    b = world_add(w);
    assert_int_equal(reg_index(b->reg), reg_index(a->reg));
    assert_int_equal(reg_index(b->reg), 5);
    assert_non_null(reg_get(b->reg, id1));
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, id1)), 1);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, id2)), 5);
    assert_true(reg_instance_maintenance(reg_get(b->reg, id2), NULL, NULL));
    assert_int_equal(kv_entry_create_index(kv_get(b->kv, KEY_ONE)), 3);
    assert_int_equal(kv_entry_modify_index(kv_get(b->kv, KEY_ONE)), 4);
    assert_int_equal(kv_entry_create_index(kv_get(a->kv, KEY_ONE)), 3);
    assert_int_equal(kv_last_delete(b->kv), 5);
    /* and it follows: a change on the newcomer reaches A, and one more */
    outcome = 0;
    assert_int_equal(reg_deregister(b->reg, id1, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_null(reg_get(a->reg, id1));
    c = world_add(w);
    assert_null(reg_get(c->reg, id1));
    assert_int_equal(reg_index(c->reg), 6);
    assert_int_equal(reg_index(a->reg), 6);
}

/* B deregisters an id while A re-registers it in the same turn: both
 * replicas apply the two commits in commit order and agree. */
static void test_local_write_in_flight(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct reg_spec spec;
    char id[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1], err[256], json[256];
    bool created = true;
    int oa = 0, ob = 0;

    rw_register(w->rw, a->reg, SVC_A, id);
    assert_int_equal(reg_deregister(b->reg, id, rw_done_cb, &ob, err, sizeof(err)), 0);
    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"name\":\"alpha\",\"host\":\"10.0.0.9\",\"port\":9,\"checks\":[]}",
             id);
    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(a->reg, &spec, rw_done_cb, &oa, id2, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    assert_false(created);
    rw_settle(w->rw);
    assert_int_equal(oa, 1);
    assert_int_equal(ob, 1);
    /* the deregistration committed first (rev 2), the registration after */
    assert_non_null(reg_get(a->reg, id));
    assert_non_null(reg_get(b->reg, id));
    assert_string_equal(reg_instance_host(reg_get(a->reg, id)), "10.0.0.9");
    assert_string_equal(reg_instance_host(reg_get(b->reg, id)), "10.0.0.9");
    assert_int_equal(reg_instance_modify_index(reg_get(a->reg, id)), 3);
    assert_int_equal(reg_instance_modify_index(reg_get(b->reg, id)), 3);
    assert_int_equal(reg_instance_create_index(reg_get(a->reg, id)),
                     reg_instance_create_index(reg_get(b->reg, id)));
}

/* RESET .. RESET_END (as a backend reports a re-read after compaction):
 * what is put again stays without an event, what is put changed takes
 * the change, and what is not put again is gone, instances and keys. */
static void test_reset_drops_what_was_not_put(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    char id1[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1];
    struct reg_spec spec;
    char err[256];
    char *doc = NULL;
    size_t len = 0, heard;

    rw_register(w->rw, a->reg, SVC_A, id1);
    rw_register(w->rw, a->reg, SVC_B, id2);
    kv_set(w, a, KEY_ONE, "v1");
    kv_set(w, a, "config/app/two", "v2");
    heard = b->heard.n;
    assert_int_equal(reg_spec_parse_text(SVC_A, strlen(SVC_A), &spec, err, sizeof(err)), 0);
    spec.has_id = true;
    snprintf(spec.id, sizeof(spec.id), "%s", id1);
    doc = regc_codec.encode(id1, &spec, &len);
    reg_spec_clear(&spec);
    assert_non_null(doc);
    /* what a backend's follow would report; the revision stays 4 here */
    reg_apply_change(b->reg, STORE_CH_RESET, NULL, NULL, 0);
    kv_apply_change(b->kv, STORE_CH_RESET, NULL, NULL, 0);
    reg_apply_change(b->reg, STORE_CH_PUT, id1, doc, len);
    kv_apply_change(b->kv, STORE_CH_PUT, KV_RECORD_PREFIX KEY_ONE, "kv1 0 3 0 djE=", 14);
    kv_apply_change(b->kv, STORE_CH_PUT, KV_RECORD_PREFIX "config/app/three", "kv1 0 0 0 djM=", 14);
    assert_int_equal(b->heard.n, heard + 1); /* only the new key */
    assert_non_null(reg_get(b->reg, id2));   /* not before the end */
    reg_apply_change(b->reg, STORE_CH_RESET_END, NULL, NULL, 0);
    kv_apply_change(b->kv, STORE_CH_RESET_END, NULL, NULL, 0);
    free(doc);
    assert_non_null(reg_get(b->reg, id1));
    assert_null(reg_get(b->reg, id2));
    assert_non_null(kv_get(b->kv, KEY_ONE));
    assert_int_equal(kv_entry_modify_index(kv_get(b->kv, KEY_ONE)), 3);
    assert_null(kv_get(b->kv, "config/app/two"));
    assert_non_null(kv_get(b->kv, "config/app/three"));
    assert_int_equal(kv_count(b->kv), 2);
    assert_int_equal(b->heard.n, heard + 3);
    assert_int_equal(b->heard.ev[heard + 1].type, REG_EV_DEREGISTER);
    assert_string_equal(b->heard.ev[heard + 1].id, id2);
    assert_int_equal(b->heard.ev[heard + 2].type, 100 + KV_OP_DELETE);
    assert_string_equal(b->heard.ev[heard + 2].id, "config/app/two");
    /* records not the core's or KV's are ignored */
    reg_apply_change(b->reg, STORE_CH_PUT, KV_RECORD_PREFIX KEY_ONE, "kv1 0 0 0 djE=", 14);
    reg_apply_change(b->reg, STORE_CH_DEL, REG_META_INDEX_ID, NULL, 0);
    kv_apply_change(b->kv, STORE_CH_DEL, id1, NULL, 0);
    assert_non_null(reg_get(b->reg, id1));
    assert_int_equal(b->heard.n, heard + 3);
}

/* A's maintenance of an id that B re-registers (changed) in the same
 * turn, B's first: the store ends with A's document (the old registration
 * in maintenance), and so do both replicas. */
static void test_maintenance_after_other_replaced(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct reg_spec spec;
    char id[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1], err[256], json[256];
    bool created = true;
    int oa = 0, ob = 0;
    size_t k;

    rw_register(w->rw, a->reg, SVC_A, id);
    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"name\":\"alpha\",\"host\":\"10.0.0.9\",\"port\":9,\"checks\":[]}",
             id);
    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(b->reg, &spec, rw_done_cb, &ob, id2, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    assert_int_equal(reg_maintenance(a->reg, id, true, "late", rw_done_cb, &oa, err, sizeof(err)),
                     0);
    rw_settle(w->rw);
    assert_int_equal(oa, 1);
    assert_int_equal(ob, 1);
    for (k = 0; k < 2; k++) {
        const struct reg_instance *in = reg_get(k ? b->reg : a->reg, id);
        const char *reason = NULL;

        assert_non_null(in);
        assert_string_equal(reg_instance_host(in), "10.0.0.1");
        assert_true(reg_instance_maintenance(in, &reason, NULL));
        assert_string_equal(reason, "late");
        assert_int_equal(reg_instance_modify_index(in), 3);
        assert_int_equal(reg_instance_create_index(in), 1);
    }
}

/* What a store of a group hears, for the store-level test. */
struct follow_log {
    size_t n;
    struct {
        enum store_change kind;
        char id[64];
        uint64_t rev;
    } ch[256];
    struct store *st;
};

static void follow_cb(void *arg, enum store_change kind, const char *id, const char *doc,
                      size_t len)
{
    struct follow_log *fl = arg;

    (void)doc;
    (void)len;
    assert_true(fl->n < 256);
    fl->ch[fl->n].kind = kind;
    snprintf(fl->ch[fl->n].id, sizeof(fl->ch[fl->n].id), "%s", id ? id : "");
    fl->ch[fl->n].rev = store_revision(fl->st);
    fl->n++;
}

struct own_done {
    struct store *st;
    uint64_t revs[256];
    size_t n;
};

static void own_done_cb(void *arg, int rc, const char *err)
{
    struct own_done *od = arg;

    (void)err;
    assert_int_equal(rc, 0);
    od->revs[od->n++] = store_revision(od->st);
}

/* The group itself: a turn's writes of one store commit at one revision,
 * the next store's at the next; each store hears the others' commits in
 * order (never its own), its own completions with their revision; a
 * store opened later loads each record with its revision, and the log
 * stays correct past its compaction. */
static void test_memory_group(void **state)
{
    struct world *w = *state;
    struct store *s1 = store_memory_open_shared(w->rw->base, w->rw->group);
    struct store *s2 = store_memory_open_shared(w->rw->base, w->rw->group);
    struct follow_log f1 = {0}, f2 = {0};
    struct own_done d1 = {0}, d2 = {0};
    struct records rs;
    char err[256], id[32];
    size_t i;

    assert_non_null(s1);
    assert_non_null(s2);
    assert_true(s1->ops->follow != NULL);
    assert_true(store_writable(s1));
    f1.st = d1.st = s1;
    f2.st = d2.st = s2;
    assert_int_equal(store_follow(s1, follow_cb, &f1, err, sizeof(err)), 0);
    assert_int_equal(store_follow(s2, follow_cb, &f2, err, sizeof(err)), 0);
    assert_int_equal(store_put(s1, "x", "1", 1, own_done_cb, &d1, err, sizeof(err)), 0);
    assert_int_equal(store_put(s1, "y", "1", 1, own_done_cb, &d1, err, sizeof(err)), 0);
    assert_int_equal(store_put(s2, "x", "2", 1, own_done_cb, &d2, err, sizeof(err)), 0);
    assert_int_equal(store_del(s1, "y", own_done_cb, &d1, err, sizeof(err)), 0);
    assert_int_equal(store_pending(s1), 3);
    for (i = 0; i < 8; i++)
        assert_int_not_equal(event_base_loop(w->rw->base, EVLOOP_NONBLOCK), -1);
    assert_int_equal(store_pending(s1), 0);
    assert_int_equal(d1.n, 3);
    assert_int_equal(d1.revs[0], 1);
    assert_int_equal(d1.revs[1], 1);
    assert_int_equal(d1.revs[2], 3); /* s2 committed in between */
    assert_int_equal(d2.n, 1);
    assert_int_equal(d2.revs[0], 2);
    assert_int_equal(f1.n, 1);
    assert_string_equal(f1.ch[0].id, "x");
    assert_int_equal(f1.ch[0].rev, 2);
    assert_int_equal(f2.n, 3);
    assert_int_equal(f2.ch[0].rev, 1);
    assert_int_equal(f2.ch[1].rev, 1);
    assert_int_equal(f2.ch[2].kind, STORE_CH_DEL);
    assert_string_equal(f2.ch[2].id, "y");
    assert_int_equal(f2.ch[2].rev, 3);
    assert_int_equal(store_revision(s2), 3);
    /* past the log's compaction: every commit still heard, in order */
    for (i = 0; i < 150; i++) {
        snprintf(id, sizeof(id), "k%zu", i);
        assert_int_equal(store_put(s1, id, "v", 1, NULL, NULL, err, sizeof(err)), 0);
        assert_int_not_equal(event_base_loop(w->rw->base, EVLOOP_NONBLOCK), -1);
    }
    for (i = 0; i < 8; i++)
        assert_int_not_equal(event_base_loop(w->rw->base, EVLOOP_NONBLOCK), -1);
    assert_int_equal(f2.n, 153);
    assert_string_equal(f2.ch[152].id, "k149");
    assert_int_equal(f2.ch[152].rev, 153);
    read_records(w, &rs);
    assert_int_equal(rs.n, 151); /* x and k0..k149 */
    store_close(s1);
    store_close(s2);
}

static void txn_done(void *arg, int rc, const char *err, const struct kv_txn_item *items, size_t n,
                     uint64_t index)
{
    uint64_t *out = arg;

    (void)err;
    (void)items;
    (void)n;
    assert_int_equal(rc, 0);
    *out = index;
}

/* A transaction's writes are one commit: on both replicas they share its
 * revision, which the transaction answers as its index. */
static void test_kv_txn_one_revision(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct kv_txn_op ops[2];
    char err[256];
    size_t failed = 0;
    uint64_t index = 0;

    kv_set(w, b, KEY_ONE, "v0");
    memset(ops, 0, sizeof(ops));
    ops[0].verb = KV_TXN_SET;
    ops[0].key = KEY_ONE;
    ops[0].value = "v1";
    ops[0].len = 2;
    ops[1].verb = KV_TXN_SET;
    ops[1].key = "config/app/two";
    ops[1].value = "v2";
    ops[1].len = 2;
    assert_int_equal(kv_txn(a->kv, ops, 2, txn_done, &index, &failed, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(index, 2);
    assert_int_equal(reg_index(b->reg), 2);
    assert_int_equal(kv_entry_modify_index(kv_get(b->kv, KEY_ONE)), 2);
    assert_int_equal(kv_entry_create_index(kv_get(b->kv, KEY_ONE)), 1);
    assert_int_equal(kv_entry_modify_index(kv_get(b->kv, "config/app/two")), 2);
    assert_int_equal(kv_entry_create_index(kv_get(b->kv, "config/app/two")), 2);
    assert_int_equal(kv_entry_modify_index(kv_get(a->kv, "config/app/two")), 2);
    assert_last(b, 100 + KV_OP_SET, 2, "config/app/two");
}

static int has_alive_one(const char *id, const char *doc, size_t len, void *arg)
{
    (void)doc;
    (void)len;
    if (strncmp(id, REG_ALIVE_PREFIX, sizeof(REG_ALIVE_PREFIX) - 1) == 0)
        (*(int *)arg)++;
    return 0;
}

/* The number of alive records in the group. */
static int alive_records(struct world *w)
{
    int n = 0;

    rw_load(w->rw, has_alive_one, &n, NULL);
    return n;
}

static void assert_ttl_health(const struct node *nd, const char *id, enum reg_health h)
{
    const struct reg_instance *in = reg_get(nd->reg, id);

    assert_non_null(in);
    assert_int_equal(reg_instance_ttl_health(in), h);
}

/* TTL checks on a shared store follow the group's leases: a registration
 * with a TTL on A makes the alive record; renewals on B only keep it
 * passing on both past several TTLs (local heartbeat lists lapse nothing);
 * no renewal: both critical at one index, by the same event; a renewal on
 * A: passing again on both at one index; a deregistration deletes the
 * alive record in the same commit. */
static void test_ttl_lease_shared(void **state)
{
    struct world *w = *state;
    struct node *a = NULL, *b = NULL;
    char id[LIM_ID_MAX + 1];
    uint64_t at;
    int outcome = 0, i;
    char err[256];

    a = world_add(w);
    b = world_add(w);
    rw_register(w->rw, a->reg, "{\"name\":\"gamma\",\"host\":\"10.0.0.3\",\"port\":8082,\"ttl\":2}",
                id);
    assert_int_equal(alive_records(w), 1);
    assert_true(reg_instance_lease(reg_get(a->reg, id)) > 0);
    assert_int_equal(reg_instance_lease(reg_get(a->reg, id)),
                     reg_instance_lease(reg_get(b->reg, id)));
    assert_ttl_health(a, id, REG_PASSING);
    assert_ttl_health(b, id, REG_PASSING);

    /* 6 s, three TTLs, of renewals through B only; ticks on A lapse nothing */
    for (i = 0; i < 4; i++) {
        rw_advance(w->rw, 1500);
        assert_int_equal(reg_renew(b->reg, id), 0);
        (void)reg_tick(a->reg);
        rw_settle(w->rw);
        assert_ttl_health(a, id, REG_PASSING);
        assert_ttl_health(b, id, REG_PASSING);
    }

    /* no renewal: the lease lapses, both critical at one index */
    rw_advance(w->rw, 2500);
    assert_ttl_health(a, id, REG_CRITICAL);
    assert_ttl_health(b, id, REG_CRITICAL);
    assert_int_equal(alive_records(w), 0);
    at = store_revision(a->store);
    assert_last(a, REG_EV_HEALTH, at, id);
    assert_last(b, REG_EV_HEALTH, at, id);
    assert_int_equal(reg_index(a->reg), reg_index(b->reg));

    /* a renewal on A: a new lease, passing again on both at one index */
    assert_int_equal(reg_renew(a->reg, id), 0);
    rw_settle(w->rw);
    assert_ttl_health(a, id, REG_PASSING);
    assert_ttl_health(b, id, REG_PASSING);
    assert_true(store_revision(a->store) > at);
    at = store_revision(a->store);
    assert_last(a, REG_EV_HEALTH, at, id);
    assert_last(b, REG_EV_HEALTH, at, id);
    assert_int_equal(alive_records(w), 1);

    /* deregistration: the alive record goes too */
    assert_int_equal(reg_deregister(a->reg, id, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_null(reg_get(b->reg, id));
    assert_int_equal(alive_records(w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_shows_on_other, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_deregister_on_other, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_on_other, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_writes_one_order, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_lease_shared, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_kv_set_shows_on_other, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_kv_delete_on_other, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_late_replica_same_state, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_local_write_in_flight, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_reset_drops_what_was_not_put, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_after_other_replaced, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_memory_group, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_kv_txn_one_revision, world_setup, world_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
