/* test_members.c: the replicas' member set and leader (registry/core
 * members.c) and the check records the leader writes (catalog.c's shared
 * check path), over a group of shared memory stores whose leases and
 * member keepalives run on one virtual clock: the first replica started
 * leads on every replica; when its store closes its lease lapses and the
 * next oldest leads, at the lapse's revision; when it leaves gracefully,
 * at once; a check result the leader
 * reports is applied on every replica at the record's revision; a
 * non-leader's report writes nothing; a deregistration deletes the record;
 * a store that is not shared has one member, the leader. */
#include "registry/core/catalog.h"
#include "registry/core/members.h"
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
#define EVENTS_MAX 32

struct node {
    struct store *store;
    struct reg_registry *reg;
    struct rmb_members *mb;
    struct rpl_routes routes;
    char name[8];
    int gained, lost;  /* leadership changes heard */
    uint64_t lead_rev; /* the store revision of the last change */
    size_t nev;
    struct {
        int type;
        uint64_t index;
        char check[LIM_CHECK_ID_MAX + 1];
        int status;
    } ev[EVENTS_MAX];
};

/* The replicas over the world (whose clock also runs the member
 * keepalives). */
struct world {
    struct rw_world *rw; /* owned */
    size_t n;
    struct node nodes[NODES_MAX];
};

static void observe(void *arg, const struct reg_event *ev)
{
    struct node *nd = arg;

    assert_true(nd->nev < EVENTS_MAX);
    nd->ev[nd->nev].type = (int)ev->type;
    nd->ev[nd->nev].index = ev->index;
    snprintf(nd->ev[nd->nev].check, sizeof(nd->ev[0].check), "%s",
             ev->check_id ? ev->check_id : "");
    nd->ev[nd->nev].status = (int)ev->status;
    nd->nev++;
}

static void on_change(void *arg, bool leading)
{
    struct node *nd = arg;

    if (leading)
        nd->gained++;
    else
        nd->lost++;
    nd->lead_rev = store_revision(nd->store);
    reg_set_leader(nd->reg, leading);
}

static void on_commit(void *arg)
{
    struct node *nd = arg;

    (void)reg_change_remote(nd->reg);
}

/* One more replica on the group: store, registry, members, loaded and
 * following, started. */
static struct node *world_add(struct world *w)
{
    struct node *nd = &w->nodes[w->n];
    struct rmb_options mopt;
    char err[256];

    snprintf(nd->name, sizeof(nd->name), "n%zu", ++w->n);
    nd->store = rw_store_open(w->rw);
    nd->reg = rw_registry_new(w->rw, nd->store, observe, nd);
    memset(&mopt, 0, sizeof(mopt));
    mopt.self_id = nd->name;
    mopt.url = "http://127.0.0.1:1";
    mopt.timers = &w->rw->vc.hook;
    mopt.clock = rw_clock;
    mopt.clock_arg = w->rw;
    mopt.on_change = on_change;
    mopt.change_arg = nd;
    mopt.on_commit = on_commit;
    mopt.commit_arg = nd;
    nd->mb = rmb_new(nd->store, w->rw->base, &mopt);
    assert_non_null(nd->mb);
    assert_true(rmb_through_store(nd->mb));
    nd->routes.reg = nd->reg;
    nd->routes.members = nd->mb;
    assert_true(rpl_load_routes(nd->store, &nd->routes, err, sizeof(err)) >= 0);
    assert_int_equal(rpl_follow_routes(nd->store, &nd->routes, err, sizeof(err)), 0);
    assert_int_equal(rmb_start(nd->mb, err, sizeof(err)), 0);
    rw_settle(w->rw);
    return nd;
}

/* Stop nd as a crash would: nothing deleted, its lease left to lapse. */
static void node_kill(struct world *w, struct node *nd)
{
    rmb_free(nd->mb);
    nd->routes.members = NULL;
    nd->mb = NULL;
    reg_free(nd->reg);
    nd->reg = NULL;
    rw_store_close(w->rw, nd->store);
    nd->store = NULL;
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
    for (i = 0; i < w->n; i++)
        if (w->nodes[i].store)
            node_kill(w, &w->nodes[i]);
    rw_free(w->rw);
    free(w);
    return 0;
}

/* store_load callback: count the check records, keep the last one's doc. */
struct recs {
    int n;
    char doc[512];
};

static int count_checkrecs(const char *id, const char *doc, size_t len, void *arg)
{
    struct recs *r = arg;

    if (strncmp(id, REG_CHECK_PREFIX, sizeof(REG_CHECK_PREFIX) - 1) == 0) {
        r->n++;
        snprintf(r->doc, sizeof(r->doc), "%.*s", (int)len, doc);
    }
    return 0;
}

/* The check records the group holds now (a fresh store of it reads them). */
static struct recs checkrecs(struct world *w)
{
    struct recs r;

    memset(&r, 0, sizeof(r));
    rw_load(w->rw, count_checkrecs, &r, NULL);
    return r;
}

/* The status of instance id's check i on nd. */
static enum reg_health check_status(const struct node *nd, const char *id, size_t i,
                                    struct reg_check_view *out)
{
    const struct reg_instance *in = reg_get(nd->reg, id);

    assert_non_null(in);
    assert_true(i < reg_instance_check_count(in));
    reg_instance_check(in, i, out);
    return out->status;
}

static const char *const SVC_WEB =
    "{\"name\":\"web\",\"host\":\"10.0.0.1\",\"port\":80,\"checks\":[{\"id\":\"web-http\","
    "\"http\":\"http://10.0.0.1:80/health\",\"interval\":\"10s\"}]}";

/* The first replica started leads, on every replica; the others know all
 * three members in the same order. */
static void test_first_started_leads(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w), *c = world_add(w);

    assert_true(rmb_is_leader(a->mb));
    assert_false(rmb_is_leader(b->mb));
    assert_false(rmb_is_leader(c->mb));
    assert_int_equal(a->gained, 1);
    assert_int_equal(b->gained + c->gained, 0);
    assert_string_equal(rmb_leader_id(a->mb), "n1");
    assert_string_equal(rmb_leader_id(b->mb), "n1");
    assert_string_equal(rmb_leader_id(c->mb), "n1");
    assert_int_equal(rmb_count(a->mb), 3);
    assert_int_equal(rmb_count(b->mb), 3);
    assert_int_equal(rmb_count(c->mb), 3);
    assert_string_equal(rmb_self_id(b->mb), "n2");
    /* the member commits move every replica's index alike */
    assert_int_equal(reg_index(a->reg), store_revision(a->store));
    assert_int_equal(reg_index(b->reg), reg_index(a->reg));
    assert_int_equal(reg_index(c->reg), reg_index(a->reg));

    /* the keepalives hold it well past several TTLs */
    rw_advance(w->rw, 4 * LIM_MEMBER_TTL_MS);
    assert_string_equal(rmb_leader_id(c->mb), "n1");
    assert_int_equal(rmb_count(c->mb), 3);
    assert_int_equal(a->lost, 0);
}

/* The leader's store closes (a crash): its lease lapses after its TTL and
 * the next oldest replica leads, on both remaining replicas at once, at
 * the revision of the lapse. */
static void test_leader_lease_lapses(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w), *c = world_add(w);
    uint64_t before;

    assert_true(rmb_is_leader(a->mb));
    node_kill(w, a);
    before = store_revision(b->store);
    rw_advance(w->rw, LIM_MEMBER_TTL_MS / 2);
    assert_string_equal(rmb_leader_id(b->mb), "n1"); /* not lapsed yet */
    assert_false(rmb_is_leader(b->mb));
    rw_advance(w->rw, LIM_MEMBER_TTL_MS);
    assert_true(rmb_is_leader(b->mb));
    assert_false(rmb_is_leader(c->mb));
    assert_string_equal(rmb_leader_id(b->mb), "n2");
    assert_string_equal(rmb_leader_id(c->mb), "n2");
    assert_int_equal(rmb_count(b->mb), 2);
    assert_int_equal(rmb_count(c->mb), 2);
    assert_int_equal(b->gained, 1);
    /* gained at the lapse's commit, which is the one revision since */
    assert_int_equal(b->lead_rev, before + 1);
    assert_int_equal(store_revision(c->store), store_revision(b->store));
    assert_int_equal(reg_index(b->reg), before + 1);
    assert_int_equal(reg_index(c->reg), before + 1);
}

/* The leader stops gracefully (rmb_leave): its record's deletion is one
 * commit, and the next oldest leads at that commit on both remaining
 * replicas, long before the lease's TTL; the one that left neither keeps
 * its lease alive nor joins again. */
static void test_leader_leaves(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w), *c = world_add(w);
    uint64_t before = store_revision(b->store);

    rmb_leave(a->mb);
    rw_settle(w->rw);
    assert_true(rmb_is_leader(b->mb));
    assert_string_equal(rmb_leader_id(c->mb), "n2");
    assert_int_equal(rmb_count(b->mb), 2);
    assert_int_equal(rmb_count(c->mb), 2);
    assert_int_equal(b->lead_rev, before + 1);
    assert_false(rmb_is_leader(a->mb));
    /* a stays out through several TTLs: no keepalive, no new record */
    rw_advance(w->rw, 3 * LIM_MEMBER_TTL_MS);
    assert_int_equal(rmb_count(b->mb), 2);
    assert_string_equal(rmb_leader_id(c->mb), "n2");
    rmb_leave(a->mb); /* once only: nothing more */
    rw_settle(w->rw);
    assert_int_equal(rmb_count(c->mb), 2);
}

/* A check result reported on the leader is put as its record and applied
 * on both replicas at that record's revision, with a health event there;
 * a report on the non-leader changes and writes nothing; a
 * deregistration deletes the record in its batch. */
static void test_check_result_shared(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct reg_check_view va, vb;
    char id[LIM_ID_MAX + 1], err[256];
    struct recs r;
    uint64_t rev;
    int outcome = 0;

    rw_register(w->rw, b->reg, SVC_WEB, id);
    assert_int_equal(check_status(a, id, 0, &va), REG_PASSING);
    a->nev = b->nev = 0;

    /* the non-leader's report: nothing */
    assert_int_equal(reg_check_result(b->reg, id, "web-http", REG_CRITICAL, "down"), 0);
    rw_settle(w->rw);
    assert_int_equal(checkrecs(w).n, 0);
    assert_int_equal(check_status(b, id, 0, &vb), REG_PASSING);
    assert_int_equal(b->nev, 0);

    /* the leader's: one record, critical on both at its revision */
    assert_int_equal(reg_check_result(a->reg, id, "web-http", REG_CRITICAL, "connection refused"),
                     0);
    assert_int_equal(check_status(a, id, 0, &va), REG_PASSING); /* not before its commit */
    rw_settle(w->rw);
    rev = store_revision(a->store);
    r = checkrecs(w);
    assert_int_equal(r.n, 1);
    assert_true(r.doc[0] == '2');
    assert_non_null(strstr(r.doc, "connection refused"));
    assert_int_equal(check_status(a, id, 0, &va), REG_CRITICAL);
    assert_int_equal(check_status(b, id, 0, &vb), REG_CRITICAL);
    assert_string_equal(vb.output, "connection refused");
    assert_int_equal(va.last_change_ms, vb.last_change_ms);
    assert_int_equal(reg_instance_health(reg_get(b->reg, id)), REG_CRITICAL);
    assert_int_equal(a->nev, 1);
    assert_int_equal(b->nev, 1);
    assert_int_equal(a->ev[0].type, REG_EV_HEALTH);
    assert_int_equal(b->ev[0].type, REG_EV_HEALTH);
    assert_int_equal(a->ev[0].index, rev);
    assert_int_equal(b->ev[0].index, rev);
    assert_string_equal(b->ev[0].check, "web-http");
    assert_int_equal(reg_index(b->reg), rev);

    /* the same status again writes nothing new */
    assert_int_equal(reg_check_result(a->reg, id, "web-http", REG_CRITICAL, "still refused"), 0);
    rw_settle(w->rw);
    assert_int_equal(store_revision(a->store), rev);
    assert_int_equal(b->nev, 1);

    /* a replica started now reads the status from the record */
    {
        struct node *c = world_add(w);

        assert_int_equal(check_status(c, id, 0, &vb), REG_CRITICAL);
        assert_int_equal(reg_instance_health(reg_get(c->reg, id)), REG_CRITICAL);
    }

    /* deregistration (on the non-leader) deletes the record */
    assert_int_equal(reg_deregister(b->reg, id, rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_int_equal(checkrecs(w).n, 0);
    assert_null(reg_get(a->reg, id));
}

/* A re-registration starts its checks again: the check records of the
 * old registration go in its batch, and every replica shows the initial
 * status; a check removed through reg_check_remove takes its record too. */
static void test_reregistration_drops_records(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    struct reg_check_view v;
    char id[LIM_ID_MAX + 1], again[LIM_ID_MAX + 1], json[512], err[256];
    int outcome = 0;

    rw_register(w->rw, b->reg, SVC_WEB, id);
    assert_int_equal(reg_check_result(a->reg, id, "web-http", REG_CRITICAL, "refused"), 0);
    rw_settle(w->rw);
    assert_int_equal(checkrecs(w).n, 1);
    assert_int_equal(check_status(b, id, 0, &v), REG_CRITICAL);

    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"name\":\"web\",\"host\":\"10.0.0.1\",\"port\":80,"
             "\"checks\":[{\"id\":\"web-http\",\"http\":\"http://10.0.0.1:80/health\","
             "\"interval\":\"10s\"}]}",
             id);
    rw_register(w->rw, b->reg, json, again);
    assert_string_equal(again, id);
    assert_int_equal(checkrecs(w).n, 0);
    assert_int_equal(check_status(a, id, 0, &v), REG_PASSING);
    assert_int_equal(check_status(b, id, 0, &v), REG_PASSING);

    assert_int_equal(reg_check_result(a->reg, id, "web-http", REG_CRITICAL, "refused"), 0);
    rw_settle(w->rw);
    assert_int_equal(checkrecs(w).n, 1);
    assert_int_equal(
        reg_check_remove(b->reg, id, "web-http", rw_done_cb, &outcome, err, sizeof(err)), 0);
    rw_settle(w->rw);
    assert_int_equal(outcome, 1);
    assert_int_equal(checkrecs(w).n, 0);
}

/* The leader removes an instance whose TTL check stayed critical past
 * its deregister-after; the others hear the deletion and never remove on
 * their own. */
static void test_removal_by_leader(void **state)
{
    struct world *w = *state;
    struct node *a = world_add(w), *b = world_add(w);
    char id[LIM_ID_MAX + 1];

    rw_register(w->rw, b->reg, "{\"name\":\"gamma\",\"host\":\"10.0.0.3\",\"port\":8082,\"ttl\":2}",
                id);
    /* no renewal: the lease lapses, critical on both; 3 x ttl later due */
    rw_advance(w->rw, 3000);
    assert_int_equal(reg_instance_ttl_health(reg_get(b->reg, id)), REG_CRITICAL);
    rw_advance(w->rw, 6500);
    (void)reg_tick(b->reg);
    rw_settle(w->rw);
    assert_non_null(reg_get(b->reg, id)); /* not the leader: keeps it */
    (void)reg_tick(a->reg);
    rw_settle(w->rw);
    assert_null(reg_get(a->reg, id));
    assert_null(reg_get(b->reg, id));
}

/* A store that is not shared: one member, this replica, the leader. */
static void test_local_store_single(void **state)
{
    struct world *w = *state;
    struct store *st = store_memory_open(w->rw->base);
    struct rmb_members *m = NULL;
    char err[256];

    assert_non_null(st);
    m = rmb_new(st, w->rw->base, NULL);
    assert_non_null(m);
    assert_false(rmb_through_store(m));
    assert_non_null(strstr(rmb_local_reason(m), "not shared"));
    assert_int_equal(rmb_start(m, err, sizeof(err)), 0);
    assert_true(rmb_is_leader(m));
    assert_int_equal(rmb_count(m), 1);
    assert_string_equal(rmb_leader_id(m), rmb_self_id(m));
    assert_int_equal(strlen(rmb_self_id(m)), 36);
    rmb_free(m);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_started_leads, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_leader_lease_lapses, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_leader_leaves, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_check_result_shared, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_reregistration_drops_records, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_removal_by_leader, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_local_store_single, world_setup, world_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
