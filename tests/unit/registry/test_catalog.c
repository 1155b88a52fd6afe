/* test_catalog.c: the registry core with an injected clock over the memory
 * store: registration, re-registration, expiry to critical, removal,
 * renewal, filters, discovery strategies and reload from a store. Writes
 * complete on the event loop: the helpers run the test's base until the
 * store has nothing pending. A failing store (support/failstore.h, whose
 * commits fail on demand) checks that a failed write changes nothing. */
#include "registry/api/codec.h"
#include "registry/api/spec_json.h"
#include "registry/core/catalog.h"
#include "registry/store/store.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "failstore.h"
#include "support.h"

struct fixture {
    struct event_base *base;
    struct store *store;
    struct reg_registry *reg;
    int64_t now_ms;
};

/* Run the loop until every queued store write has completed. */
static void settle(struct fixture *f)
{
    int rounds = 0;

    while (store_pending(f->store) > 0) {
        assert_true(rounds++ < 1000);
        assert_int_not_equal(event_base_loop(f->base, EVLOOP_ONCE), -1);
    }
}

/* What a completion reported. */
struct outcome {
    int calls;
    int rc;
    char err[256];
};

static void outcome_cb(void *arg, int rc, const char *err)
{
    struct outcome *o = arg;

    o->calls++;
    o->rc = rc;
    snprintf(o->err, sizeof(o->err), "%s", err ? err : "");
}

static int64_t fake_clock(void *arg) { return ((struct fixture *)arg)->now_ms; }

static struct reg_registry *make_registry(struct fixture *f, int64_t dereg_ms)
{
    struct reg_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = fake_clock;
    opt.clock_arg = f;
    opt.seed = 12345;
    opt.deregister_after_ms = dereg_ms;
    return reg_new(f->store, &opt);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    f->now_ms = 1700000000000LL;
    f->base = event_base_new();
    f->store = f->base ? store_memory_open(f->base) : NULL;
    f->reg = f->store ? make_registry(f, 0) : NULL;
    if (!f->reg)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    reg_free(f->reg);
    store_close(f->store);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Register from a JSON text; returns the new id in id (LIM_ID_MAX + 1). */
static bool do_register(struct fixture *f, const char *json, char *id)
{
    struct reg_spec spec;
    struct outcome o = {0};
    char err[256];
    bool created = false;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(f->reg, &spec, outcome_cb, &o, id, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    /* Never from inside the call. */
    assert_int_equal(o.calls, 0);
    settle(f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    return created;
}

/* Deregister id and wait for the commit: reg_deregister's return value. */
static int do_deregister(struct fixture *f, const char *id)
{
    struct outcome o = {0};
    char err[256];
    int rc = reg_deregister(f->reg, id, outcome_cb, &o, err, sizeof(err));

    assert_int_equal(o.calls, 0);
    settle(f);
    if (rc == 0) {
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.rc, 0);
    } else {
        assert_int_equal(o.calls, 0);
    }
    return rc;
}

/* Tick, then let the removals it queued commit. */
static size_t tick(struct fixture *f)
{
    size_t n = reg_tick(f->reg);

    settle(f);
    return n;
}

static void register_n(struct fixture *f, const char *name, const char *type, int n, int ttl,
                       char ids[][LIM_ID_MAX + 1])
{
    char body[512];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"host\":\"10.0.%d.%d\",\"port\":%d,\"type\":\"%s\","
                 "\"ttl\":%d,\"tags\":[\"t%d\",\"all\"]}",
                 name, i / 250, i % 250 + 1, 5000 + i, type, ttl, i);
        assert_true(do_register(f, body, ids[i]));
    }
}

/* reg_foreach callback: count, and check the instance is consistent. */
static int count_one(const struct reg_instance *in, void *arg)
{
    assert_non_null(reg_instance_id(in));
    (*(size_t *)arg)++;
    return 0;
}

/* Count the instances matching filter. */
static size_t count_listed(struct fixture *f, const struct reg_filter *flt)
{
    size_t n = 0;

    assert_int_equal(reg_foreach(f->reg, flt, count_one, &n), 0);
    return n;
}

static void test_register_get_deregister(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1];
    const struct reg_instance *in;
    struct reg_stats st;

    assert_true(
        do_register(f, "{\"name\":\"logging-service\",\"host\":\"127.0.0.1\",\"port\":5001}", id));
    assert_int_equal(strncmp(id, "logging-service-", 16), 0);
    assert_int_equal(strlen(id), 16 + 36);
    in = reg_get(f->reg, id);
    assert_non_null(in);
    assert_string_equal(reg_instance_name(in), "logging-service");
    assert_int_equal(reg_instance_port(in), 5001);
    assert_int_equal(reg_instance_health(in), REG_PASSING);
    assert_int_equal(reg_instance_heartbeat_ms(in), f->now_ms);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, 1);
    assert_int_equal(st.passing, 1);

    assert_int_equal(do_deregister(f, id), 0);
    assert_null(reg_get(f->reg, id));
    assert_int_equal(do_deregister(f, id), 1);
    assert_int_equal(reg_renew(f->reg, id), 1);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, 0);
    assert_int_equal(st.passing, 0);
    assert_null(reg_discover(f->reg, "logging-service", NULL, REG_RANDOM));
}

static void test_instance_json(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1];
    struct evbuffer *buf = evbuffer_new();
    json_t *obj;

    do_register(f,
                "{\"name\":\"a\",\"host\":\"h.example\",\"port\":1,\"type\":\"t\","
                "\"tags\":[\"x\"],\"metadata\":{\"k\":\"v\"},\"ttl\":7}",
                id);
    assert_int_equal(regc_write_instance(reg_get(f->reg, id), buf), 0);
    obj = json_loadb((const char *)evbuffer_pullup(buf, -1), evbuffer_get_length(buf), 0, NULL);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "id")), id);
    assert_string_equal(json_string_value(json_object_get(obj, "host")), "h.example");
    assert_string_equal(json_string_value(json_object_get(obj, "type")), "t");
    assert_string_equal(json_string_value(json_array_get(json_object_get(obj, "tags"), 0)), "x");
    assert_string_equal(json_string_value(json_object_get(json_object_get(obj, "metadata"), "k")),
                        "v");
    assert_int_equal(json_integer_value(json_object_get(obj, "ttl")), 7);
    assert_int_equal(json_integer_value(json_object_get(obj, "last_heartbeat")), f->now_ms / 1000);
    assert_string_equal(json_string_value(json_object_get(obj, "health")), "passing");
    json_decref(obj);
    evbuffer_free(buf);
}

/* The core keeps the registration typed: every field through accessors,
 * tags and metadata pairs in registration order. */
static void test_instance_typed(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1];
    const struct reg_instance *in;

    do_register(f,
                "{\"name\":\"a\",\"host\":\"h.example\",\"port\":1,\"type\":\"t\","
                "\"tags\":[\"x\",\"y z\"],\"metadata\":{\"k\":\"v\",\"e\":\"\"},\"ttl\":7}",
                id);
    in = reg_get(f->reg, id);
    assert_non_null(in);
    assert_string_equal(reg_instance_id(in), id);
    assert_string_equal(reg_instance_name(in), "a");
    assert_string_equal(reg_instance_host(in), "h.example");
    assert_string_equal(reg_instance_type(in), "t");
    assert_int_equal(reg_instance_port(in), 1);
    assert_int_equal(reg_instance_ttl_ms(in), 7000);
    assert_int_equal(reg_instance_tag_count(in), 2);
    assert_string_equal(reg_instance_tag(in, 0), "x");
    assert_string_equal(reg_instance_tag(in, 1), "y z");
    assert_int_equal(reg_instance_meta_count(in), 2);
    assert_string_equal(reg_instance_meta_key(in, 0), "k");
    assert_string_equal(reg_instance_meta_value(in, 0), "v");
    assert_string_equal(reg_instance_meta_key(in, 1), "e");
    assert_string_equal(reg_instance_meta_value(in, 1), "");
    assert_null(reg_instance_cache(in));

    /* No tags, no metadata. */
    do_register(f, "{\"name\":\"b\",\"host\":\"h\",\"port\":2}", id);
    in = reg_get(f->reg, id);
    assert_int_equal(reg_instance_tag_count(in), 0);
    assert_int_equal(reg_instance_meta_count(in), 0);
    assert_string_equal(reg_instance_type(in), "service");
}

/* A re-registration replaces the instance: the API's cache slot of the old
 * one is freed (the leak checker would see it otherwise) and the new one
 * starts empty. */
static void test_reregister_drops_cache(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1], body[512];
    struct evbuffer *buf = evbuffer_new();

    do_register(f, "{\"name\":\"svc\",\"host\":\"h\",\"port\":1}", id);
    assert_int_equal(regc_write_instance(reg_get(f->reg, id), buf), 0);
    assert_non_null(reg_instance_cache(reg_get(f->reg, id)));
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"svc\",\"host\":\"h\",\"port\":2}", id);
    do_register(f, body, id2);
    assert_null(reg_instance_cache(reg_get(f->reg, id)));
    evbuffer_drain(buf, evbuffer_get_length(buf));
    assert_int_equal(regc_write_instance(reg_get(f->reg, id), buf), 0);
    evbuffer_add(buf, "", 1);
    assert_non_null(strstr((const char *)evbuffer_pullup(buf, -1), "\"port\":2,"));
    evbuffer_free(buf);
}

/* reg_foreach stops when its callback says so. */
static int stop_at_two(const struct reg_instance *in, void *arg)
{
    (void)in;
    return ++*(int *)arg == 2 ? -1 : 0;
}

static void test_foreach_stops(void **state)
{
    struct fixture *f = *state;
    char ids[3][LIM_ID_MAX + 1];
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    int seen = 0;

    register_n(f, "svc", "t", 3, 30, ids);
    assert_int_equal(reg_foreach(f->reg, &all, stop_at_two, &seen), -1);
    assert_int_equal(seen, 2);
}

static void test_reregister_same_id(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1], id2[LIM_ID_MAX + 1], body[512];
    struct reg_stats st;

    do_register(f, "{\"name\":\"svc\",\"host\":\"127.0.0.1\",\"port\":5001,\"type\":\"a\"}", id);
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"name\":\"svc\",\"host\":\"127.0.0.1\",\"port\":6001,\"type\":\"b\"}",
             id);
    assert_false(do_register(f, body, id2));
    assert_string_equal(id, id2);
    assert_int_equal(reg_instance_port(reg_get(f->reg, id)), 6001);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, 1);
    assert_int_equal(st.passing, 1);
    /* The type index followed the change. */
    assert_null(reg_discover(f->reg, NULL, "a", REG_RANDOM));
    assert_non_null(reg_discover(f->reg, NULL, "b", REG_RANDOM));

    /* An unknown id of the right form is registered under that id. */
    snprintf(body, sizeof(body),
             "{\"id\":\"svc-00000000-0000-4000-8000-000000000001\",\"name\":\"svc\","
             "\"host\":\"127.0.0.1\",\"port\":7001}");
    assert_true(do_register(f, body, id2));
    assert_string_equal(id2, "svc-00000000-0000-4000-8000-000000000001");
}

static void test_expiry_critical_then_removed(void **state)
{
    struct fixture *f = *state;
    char ids[2][LIM_ID_MAX + 1];
    struct reg_stats st;
    struct reg_filter passing = {NULL, NULL, NULL, REG_PASSING, false};

    register_n(f, "svc", "t", 2, 10, ids);
    f->now_ms += 9999;
    assert_int_equal(tick(f), 0);
    assert_int_equal(reg_renew(f->reg, ids[1]), 0);
    f->now_ms += 1; /* ids[0] is now exactly ttl old */
    assert_int_equal(tick(f), 1);
    assert_int_equal(reg_instance_health(reg_get(f->reg, ids[0])), REG_CRITICAL);
    assert_int_equal(reg_instance_health(reg_get(f->reg, ids[1])), REG_PASSING);
    assert_int_equal(count_listed(f, &passing), 1);
    /* Discovery never hands out the critical one. */
    for (int i = 0; i < 50; i++)
        assert_string_equal(reg_instance_id(reg_discover(f->reg, "svc", NULL, REG_RANDOM)), ids[1]);

    /* Default removal delay is 3 x ttl after turning critical. */
    f->now_ms += 29999;
    tick(f);
    assert_non_null(reg_get(f->reg, ids[0]));
    f->now_ms += 1;
    tick(f);
    assert_null(reg_get(f->reg, ids[0]));
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.expired, 2); /* ids[1] expired meanwhile too */
    assert_int_equal(st.removed, 1);
    assert_int_equal(st.instances, 1);
}

static void test_renew_brings_back(void **state)
{
    struct fixture *f = *state;
    char ids[1][LIM_ID_MAX + 1];
    struct reg_stats st;

    register_n(f, "svc", "t", 1, 1, ids);
    f->now_ms += 1500;
    assert_int_equal(tick(f), 1);
    assert_null(reg_discover(f->reg, "svc", NULL, REG_RANDOM));
    assert_int_equal(reg_renew(f->reg, ids[0]), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, ids[0])), REG_PASSING);
    assert_int_equal(reg_instance_heartbeat_ms(reg_get(f->reg, ids[0])), f->now_ms);
    assert_non_null(reg_discover(f->reg, "svc", NULL, REG_RANDOM));
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.passing, 1);
    assert_int_equal(st.critical, 0);
    /* And it expires again one ttl after that renewal, not before. */
    f->now_ms += 999;
    assert_int_equal(tick(f), 0);
    f->now_ms += 1;
    assert_int_equal(tick(f), 1);
}

static void test_configured_deregister_delay(void **state)
{
    struct fixture *f = *state;
    char ids[1][LIM_ID_MAX + 1];

    reg_free(f->reg);
    f->reg = make_registry(f, 500);
    register_n(f, "svc", "t", 1, 2, ids);
    f->now_ms += 2000;
    tick(f);
    f->now_ms += 499;
    tick(f);
    assert_non_null(reg_get(f->reg, ids[0]));
    f->now_ms += 1;
    tick(f);
    assert_null(reg_get(f->reg, ids[0]));
}

static void test_mixed_ttls_expire_in_order(void **state)
{
    struct fixture *f = *state;
    char a[3][LIM_ID_MAX + 1], b[3][LIM_ID_MAX + 1];
    struct reg_stats st;

    register_n(f, "short", "t", 3, 1, a);
    register_n(f, "long", "t", 3, 100, b);
    f->now_ms += 1000;
    assert_int_equal(tick(f), 3);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.passing, 3);
    assert_int_equal(st.critical, 3);
    f->now_ms += 3000; /* the short ones are removed after 3 x 1 s */
    tick(f);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, 3);
    assert_non_null(reg_discover(f->reg, "long", NULL, REG_RANDOM));
}

static void test_filters(void **state)
{
    struct fixture *f = *state;
    char x[3][LIM_ID_MAX + 1], y[2][LIM_ID_MAX + 1];
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct reg_filter by_name = {"x", NULL, NULL, -1, false};
    struct reg_filter by_type = {NULL, "ty", NULL, -1, false};
    struct reg_filter by_tag = {NULL, NULL, "t1", -1, false};
    struct reg_filter combined = {"x", "tx", "all", REG_PASSING, false};
    struct reg_filter critical = {NULL, NULL, NULL, REG_CRITICAL, false};
    struct reg_filter none = {"nope", NULL, NULL, -1, false};

    register_n(f, "x", "tx", 3, 5, x);
    register_n(f, "y", "ty", 2, 50, y);
    assert_int_equal(count_listed(f, &all), 5);
    assert_int_equal(count_listed(f, &by_name), 3);
    assert_int_equal(count_listed(f, &by_type), 2);
    assert_int_equal(count_listed(f, &by_tag), 2); /* x[1] and y[1] */
    assert_int_equal(count_listed(f, &combined), 3);
    assert_int_equal(count_listed(f, &none), 0);
    f->now_ms += 5000;
    tick(f);
    assert_int_equal(count_listed(f, &combined), 0);
    assert_int_equal(count_listed(f, &critical), 3);
}

static void test_discover_random_distribution(void **state)
{
    struct fixture *f = *state;
    char ids[4][LIM_ID_MAX + 1];
    int hits[4] = {0}, i, j;

    register_n(f, "svc", "t", 4, 30, ids);
    for (i = 0; i < 4000; i++) {
        const char *got = reg_instance_id(reg_discover(f->reg, "svc", NULL, REG_RANDOM));

        for (j = 0; j < 4; j++)
            if (strcmp(got, ids[j]) == 0)
                hits[j]++;
    }
    /* Uniform: each near 1000; far outside 800..1200 would be a broken picker. */
    for (j = 0; j < 4; j++) {
        assert_true(hits[j] > 800);
        assert_true(hits[j] < 1200);
    }
}

static void test_discover_round_robin(void **state)
{
    struct fixture *f = *state;
    char ids[3][LIM_ID_MAX + 1];
    int hits[3] = {0}, i, j;
    const char *prev = NULL;

    register_n(f, "svc", "t", 3, 30, ids);
    for (i = 0; i < 30; i++) {
        const char *got = reg_instance_id(reg_discover(f->reg, "svc", NULL, REG_ROUND_ROBIN));

        assert_true(prev == NULL || strcmp(prev, got) != 0);
        prev = got;
        for (j = 0; j < 3; j++)
            if (strcmp(got, ids[j]) == 0)
                hits[j]++;
    }
    for (j = 0; j < 3; j++)
        assert_int_equal(hits[j], 10);
}

static void test_discover_by_type_and_both(void **state)
{
    struct fixture *f = *state;
    char a[2][LIM_ID_MAX + 1], b[2][LIM_ID_MAX + 1];
    const struct reg_instance *in;
    int i;

    register_n(f, "svc", "alpha", 2, 30, a);
    register_n(f, "svc", "beta", 2, 30, b);
    for (i = 0; i < 20; i++) {
        in = reg_discover(f->reg, "svc", "beta", REG_RANDOM);
        assert_non_null(in);
        assert_true(strcmp(reg_instance_id(in), b[0]) == 0 ||
                    strcmp(reg_instance_id(in), b[1]) == 0);
        in = reg_discover(f->reg, NULL, "alpha", REG_ROUND_ROBIN);
        assert_true(strcmp(reg_instance_id(in), a[0]) == 0 ||
                    strcmp(reg_instance_id(in), a[1]) == 0);
    }
    assert_null(reg_discover(f->reg, "svc", "gamma", REG_RANDOM));
    assert_null(reg_discover(f->reg, "other", NULL, REG_RANDOM));
}

/* Stored registrations come back with their ids and a fresh ttl window. */
static void test_reload_from_store(void **state)
{
    struct fixture *f = *state;
    char ids[3][LIM_ID_MAX + 1], err[128];
    const struct reg_instance *in;
    int i;

    register_n(f, "svc", "t", 3, 10, ids);
    assert_int_equal(do_deregister(f, ids[2]), 0);
    reg_free(f->reg);
    f->now_ms += 60000; /* far past every ttl */
    f->reg = make_registry(f, 0);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), 2);
    for (i = 0; i < 2; i++) {
        in = reg_get(f->reg, ids[i]);
        assert_non_null(in);
        assert_int_equal(reg_instance_health(in), REG_PASSING);
        assert_int_equal(reg_instance_heartbeat_ms(in), f->now_ms);
        assert_int_equal(reg_instance_port(in), 5000 + i);
    }
    assert_null(reg_get(f->reg, ids[2]));
    assert_int_equal(tick(f), 0);
}

/* Try to register json under caps; reg_register's return value (the
 * commit settled when it was queued). */
static int try_register(struct fixture *f, const char *json, char *id, char *err, size_t errlen)
{
    struct reg_spec spec;
    struct outcome o = {0};
    bool created = false;
    int rc;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, errlen), 0);
    rc = reg_register(f->reg, &spec, outcome_cb, &o, id, &created, err, errlen);
    reg_spec_clear(&spec);
    settle(f);
    assert_int_equal(o.calls, rc == 0 ? 1 : 0);
    return rc;
}

/* Finding "unbounded registrations" (harden issue): the instance caps in
 * all and per name count registrations still waiting for their commit,
 * never a re-registration of a known id, and free up on deregistration; a
 * document over doc_max is refused. Fails on a registry without caps. */
static void test_caps(void **state)
{
    struct fixture *f = *state;
    struct reg_options opt;
    char ids[4][LIM_ID_MAX + 1], id[LIM_ID_MAX + 1], err[256], body[512];
    struct reg_spec spec;
    struct outcome o[3] = {{0}};
    bool created = false;
    int i;

    reg_free(f->reg);
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = fake_clock;
    opt.clock_arg = f;
    opt.max_instances = 3;
    opt.max_per_name = 2;
    opt.doc_max = 300;
    f->reg = reg_new(f->store, &opt);
    assert_non_null(f->reg);

    assert_int_equal(
        try_register(f, "{\"name\":\"a\",\"host\":\"h\",\"port\":1}", ids[0], err, sizeof(err)), 0);
    assert_int_equal(
        try_register(f, "{\"name\":\"a\",\"host\":\"h\",\"port\":2}", ids[1], err, sizeof(err)), 0);
    /* a third of name a: over the per-name cap */
    assert_int_equal(
        try_register(f, "{\"name\":\"a\",\"host\":\"h\",\"port\":3}", id, err, sizeof(err)),
        REG_E_NAME_FULL);
    assert_non_null(strstr(err, "at most 2 per name"));
    /* re-registering a known id is not one more */
    snprintf(body, sizeof(body), "{\"name\":\"a\",\"host\":\"h2\",\"port\":1,\"id\":\"%s\"}",
             ids[0]);
    assert_int_equal(try_register(f, body, id, err, sizeof(err)), 0);
    assert_string_equal(reg_instance_host(reg_get(f->reg, ids[0])), "h2");
    /* the total cap counts writes waiting for their commit */
    for (i = 0; i < 2; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"b%d\",\"host\":\"h\",\"port\":1}", i);
        assert_int_equal(reg_spec_parse_text(body, strlen(body), &spec, err, sizeof(err)), 0);
        assert_int_equal(
            reg_register(f->reg, &spec, outcome_cb, &o[i], ids[2 + i], &created, err, sizeof(err)),
            i == 0 ? 0 : REG_E_FULL);
        reg_spec_clear(&spec);
    }
    assert_non_null(strstr(err, "maximum of 3"));
    settle(f);
    assert_int_equal(o[0].calls, 1);
    assert_int_equal(o[1].calls, 0);
    assert_int_equal(
        try_register(f, "{\"name\":\"c\",\"host\":\"h\",\"port\":1}", id, err, sizeof(err)),
        REG_E_FULL);
    /* a deregistration makes room again */
    assert_int_equal(do_deregister(f, ids[1]), 0);
    assert_int_equal(
        try_register(f, "{\"name\":\"c\",\"host\":\"h\",\"port\":1}", id, err, sizeof(err)), 0);
    /* a document over doc_max, even for a known id */
    assert_int_equal(do_deregister(f, id), 0);
    snprintf(body, sizeof(body),
             "{\"name\":\"c\",\"host\":\"h\",\"port\":1,\"tags\":[\"%0200d\",\"%0100d\"]}", 0, 0);
    assert_int_equal(try_register(f, body, id, err, sizeof(err)), REG_E_TOO_BIG);
    assert_non_null(strstr(err, "over the limit of 300 bytes"));
    assert_null(reg_get(f->reg, id));
    {
        struct reg_stats st;

        reg_get_stats(f->reg, &st);
        assert_int_equal(st.instances, 2);
    }
}

/* Finding "health across restarts" (harden issue): an instance critical
 * when the registry stops is critical after the restart, since the same
 * time, and is removed when it would have been; a passing one gets a fresh
 * window; a renewal of a passing instance writes nothing, a revival is
 * stored by the next tick. Fails where a restart made every instance
 * passing. */
static void test_health_survives_reload(void **state)
{
    struct fixture *f = *state;
    char ids[3][LIM_ID_MAX + 1], err[128];
    const struct reg_instance *in;
    int64_t t0 = f->now_ms;
    int i;

    register_n(f, "svc", "t", 3, 10, ids);
    f->now_ms = t0 + 5000;
    assert_int_equal(reg_renew(f->reg, ids[0]), 0);
    assert_int_equal(store_pending(f->store), 0); /* renewals never write */
    f->now_ms = t0 + 11000;
    assert_int_equal(tick(f), 2); /* ids[1], ids[2] critical since t0 + 10 s, stored */

    reg_free(f->reg);
    f->now_ms = t0 + 14000;
    f->reg = make_registry(f, 0);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), 3);
    in = reg_get(f->reg, ids[0]);
    assert_int_equal(reg_instance_health(in), REG_PASSING);
    assert_int_equal(reg_instance_heartbeat_ms(in), f->now_ms);
    for (i = 1; i < 3; i++) {
        in = reg_get(f->reg, ids[i]);
        assert_int_equal(reg_instance_health(in), REG_CRITICAL);
        assert_int_equal(reg_instance_heartbeat_ms(in), t0);
    }
    for (i = 0; i < 3; i++) /* only the passing one is discovered */
        assert_ptr_equal(reg_discover(f->reg, "svc", NULL, REG_ROUND_ROBIN),
                         reg_get(f->reg, ids[0]));

    /* a revival is stored by the next tick and survives a restart too */
    assert_int_equal(reg_renew(f->reg, ids[2]), 0);
    assert_int_equal(store_pending(f->store), 0);
    assert_int_equal(tick(f), 0);
    reg_free(f->reg);
    f->reg = make_registry(f, 0);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), 3);
    assert_int_equal(reg_instance_health(reg_get(f->reg, ids[2])), REG_PASSING);
    assert_int_equal(reg_instance_health(reg_get(f->reg, ids[1])), REG_CRITICAL);

    /* removal on time: critical since t0 + 10 s, removed 3 x ttl later */
    f->now_ms = t0 + 39999;
    (void)tick(f);
    assert_non_null(reg_get(f->reg, ids[1]));
    f->now_ms = t0 + 40000;
    (void)tick(f);
    assert_null(reg_get(f->reg, ids[1]));
    assert_non_null(reg_get(f->reg, ids[0]));
}

/* Finding "health across restarts", the cost: a mass expiry queues at most
 * LIM_HEALTH_WRITES_PER_TICK health writes per tick (the store never fills
 * with them), and later ticks store the rest, oldest first. */
static void test_mass_expiry_writes_in_bounded_batches(void **state)
{
    struct fixture *f = *state;
    enum { N = 2500 };
    char(*ids)[LIM_ID_MAX + 1] = calloc(N, LIM_ID_MAX + 1);
    char err[128];
    struct reg_stats st;
    int i, ticks = 0;

    assert_non_null(ids);
    register_n(f, "svc", "t", N, 10, ids);
    f->now_ms += 11000;
    assert_int_equal(reg_tick(f->reg), N);
    assert_int_equal(store_pending(f->store), LIM_HEALTH_WRITES_PER_TICK);
    settle(f);
    while (ticks++ < 10) {
        (void)reg_tick(f->reg);
        assert_true(store_pending(f->store) <= LIM_HEALTH_WRITES_PER_TICK);
        if (store_pending(f->store) == 0)
            break;
        settle(f);
    }
    assert_int_equal(ticks, (N + LIM_HEALTH_WRITES_PER_TICK - 1) / LIM_HEALTH_WRITES_PER_TICK);
    reg_free(f->reg);
    f->reg = make_registry(f, 0);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), N);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.critical, N);
    for (i = 0; i < N; i++)
        assert_int_equal(reg_instance_health(reg_get(f->reg, ids[i])), REG_CRITICAL);
    free(ids);
}

/* qsort comparator of C strings stored in place. */
static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

/* reg_step_fn for test_cursor_and_pages: record the port, pause every 2. */
struct steps {
    int ports[16];
    int n;
};

static int step_two(const struct reg_instance *in, void *arg)
{
    struct steps *st = arg;

    st->ports[st->n++] = reg_instance_port(in);
    return st->n % 2 == 0 ? 1 : 0;
}

/* Finding "unbounded registrations", the list: a cursor goes on in
 * registration order across changes (the instance it points at deleted:
 * the next one; one registered later: at the end), and reg_page pages in
 * id order with "more". */
static void test_cursor_and_pages(void **state)
{
    struct fixture *f = *state;
    char ids[6][LIM_ID_MAX + 1];
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct reg_cursor cur;
    struct steps st = {{0}, 0};
    const struct reg_instance *page[7];
    char sorted[6][LIM_ID_MAX + 1];
    bool more = false;
    size_t n, i, j;

    register_n(f, "svc", "t", 5, 10, ids);
    memset(&cur, 0, sizeof(cur));
    assert_int_equal(reg_foreach_from(f->reg, &all, &cur, step_two, &st), 1);
    assert_int_equal(st.n, 2);
    assert_int_equal(do_deregister(f, ids[1]), 0); /* the cursor's instance */
    assert_int_equal(reg_foreach_from(f->reg, &all, &cur, step_two, &st), 1);
    assert_int_equal(do_deregister(f, ids[4]), 0); /* not reached yet */
    (void)do_register(f, "{\"name\":\"svc\",\"host\":\"h\",\"port\":7000}", ids[5]);
    assert_int_equal(reg_foreach_from(f->reg, &all, &cur, step_two, &st), 0);
    assert_int_equal(st.n, 5);
    assert_int_equal(st.ports[0], 5000);
    assert_int_equal(st.ports[1], 5001);
    assert_int_equal(st.ports[2], 5002);
    assert_int_equal(st.ports[3], 5003);
    assert_int_equal(st.ports[4], 7000);

    /* pages: ids 0, 2, 3, 5 are left, in id order */
    n = 0;
    for (i = 0; i < 6; i++)
        if (reg_get(f->reg, ids[i]))
            memcpy(sorted[n++], ids[i], sizeof(sorted[0]));
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);
    n = reg_page(f->reg, &all, NULL, 3, page, &more);
    assert_int_equal(n, 3);
    assert_true(more);
    for (j = 0; j < 3; j++)
        assert_string_equal(reg_instance_id(page[j]), sorted[j]);
    n = reg_page(f->reg, &all, sorted[2], 3, page, &more);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(reg_instance_id(page[0]), sorted[3]);
    n = reg_page(f->reg, &all, sorted[1], 2, page, &more);
    assert_int_equal(n, 2);
    assert_false(more);
}

/* Many instances: the structure stays consistent through churn. */
static void test_many_instances_churn(void **state)
{
    struct fixture *f = *state;
    enum { N = 5000 };
    char(*ids)[LIM_ID_MAX + 1] = calloc(N, LIM_ID_MAX + 1);
    struct reg_stats st;
    int i;

    assert_non_null(ids);
    register_n(f, "svc", "t", N, 10, ids);
    f->now_ms += 5000;
    for (i = 0; i < N; i += 2)
        assert_int_equal(reg_renew(f->reg, ids[i]), 0);
    f->now_ms += 5000;
    assert_int_equal(tick(f), N / 2);
    for (i = 0; i < N; i += 4)
        assert_int_equal(do_deregister(f, ids[i]), 0);
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, N - N / 4);
    assert_int_equal(st.passing, N / 2 - N / 4);
    assert_int_equal(st.critical, N / 2);
    for (i = 0; i < 1000; i++)
        assert_int_equal(reg_instance_health(reg_discover(f->reg, "svc", NULL, REG_RANDOM)),
                         REG_PASSING);
    free(ids);
}

/* The fixture with a failing store (support/failstore.h) wrapping its
 * memory store. */
static int setup_failing(void **state)
{
    struct fixture *f = NULL;
    struct store *fs = NULL;

    if (setup(state) != 0)
        return -1;
    f = *state;
    reg_free(f->reg);
    f->reg = NULL;
    fs = fstore_new(f->base, f->store);
    if (!fs)
        return -1;
    f->store = fs;
    f->reg = make_registry(f, 0);
    return f->reg ? 0 : -1;
}

static void set_failing(struct fixture *f, bool on) { fstore_set_failing(f->store, on); }

/* Register and expect the commit to fail; returns the id it would have had. */
static void register_fails(struct fixture *f, const char *json)
{
    struct reg_spec spec;
    struct outcome o = {0};
    char err[256], id[LIM_ID_MAX + 1];
    bool created = false;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(f->reg, &spec, outcome_cb, &o, id, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    settle(f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, -1);
    assert_string_equal(o.err, "injected commit failure");
}

/* A write becomes visible only once its commit is done. */
static void test_register_invisible_until_committed(void **state)
{
    struct fixture *f = *state;
    struct reg_spec spec;
    struct outcome o = {0};
    struct reg_stats st;
    char err[256], id[LIM_ID_MAX + 1];
    const char *json = "{\"name\":\"svc\",\"host\":\"10.0.0.1\",\"port\":1}";
    bool created = false;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(f->reg, &spec, outcome_cb, &o, id, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    assert_true(created);
    assert_null(reg_get(f->reg, id));
    assert_null(reg_discover(f->reg, "svc", NULL, REG_RANDOM));
    reg_get_stats(f->reg, &st);
    assert_int_equal(st.instances, 0);
    settle(f);
    assert_int_equal(o.rc, 0);
    assert_non_null(reg_get(f->reg, id));
    assert_non_null(reg_discover(f->reg, "svc", NULL, REG_RANDOM));

    /* A deregistration too: the instance is there until the commit. */
    assert_int_equal(reg_deregister(f->reg, id, outcome_cb, &o, err, sizeof(err)), 0);
    assert_non_null(reg_get(f->reg, id));
    settle(f);
    assert_null(reg_get(f->reg, id));
}

/* Failed commits of a registration, a re-registration, a deregistration and
 * an expiry removal leave memory exactly as it was. */
static void test_failed_commits_change_nothing(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1], body[512], err[256];
    struct reg_stats before, after;
    struct outcome o = {0};
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    const struct reg_instance *in;

    do_register(f, "{\"name\":\"svc\",\"host\":\"10.0.0.1\",\"port\":5001,\"type\":\"a\"}", id);
    reg_get_stats(f->reg, &before);
    set_failing(f, true);

    /* A new instance: not there, no trace in the indexes. */
    register_fails(f, "{\"name\":\"other\",\"host\":\"10.0.0.2\",\"port\":5002,\"type\":\"b\"}");
    assert_null(reg_discover(f->reg, "other", NULL, REG_RANDOM));
    assert_null(reg_discover(f->reg, NULL, "b", REG_RANDOM));

    /* A re-registration: the old fields stay, indexes too. */
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"name\":\"svc\",\"host\":\"10.9.9.9\",\"port\":6001,\"type\":\"b\"}",
             id);
    register_fails(f, body);
    in = reg_get(f->reg, id);
    assert_non_null(in);
    assert_int_equal(reg_instance_port(in), 5001);
    assert_ptr_equal(reg_discover(f->reg, NULL, "a", REG_RANDOM), in);
    assert_null(reg_discover(f->reg, NULL, "b", REG_RANDOM));

    /* A deregistration: still there and passing. */
    assert_int_equal(reg_deregister(f->reg, id, outcome_cb, &o, err, sizeof(err)), 0);
    settle(f);
    assert_int_equal(o.rc, -1);
    assert_ptr_equal(reg_get(f->reg, id), in);
    assert_int_equal(reg_instance_health(in), REG_PASSING);
    reg_get_stats(f->reg, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(count_listed(f, &all), 1);

    /* An expiry removal that fails keeps the instance (critical) and is
     * tried again once the store works. */
    f->now_ms += 30000 + 90000; /* ttl 30 s, then 3 x ttl critical */
    tick(f);                    /* turns critical */
    tick(f);                    /* removal queued, commit fails */
    in = reg_get(f->reg, id);
    assert_non_null(in);
    assert_int_equal(reg_instance_health(in), REG_CRITICAL);
    reg_get_stats(f->reg, &after);
    assert_int_equal(after.removed, 0);
    set_failing(f, false);
    assert_int_equal(tick(f), 1);
    assert_null(reg_get(f->reg, id));
    reg_get_stats(f->reg, &after);
    assert_int_equal(after.removed, 1);
    assert_int_equal(after.instances, 0);
}

/* ---- a file written by the registry before the async store ---- */

/* Copy the fixture next to this source file into dir; returns 0 or -1. */
static int copy_fixture(const char *name, const char *dst)
{
    char src[1024];
    const char *slash = strrchr(__FILE__, '/');
    FILE *in = NULL, *out = NULL;
    char buf[4096];
    size_t n;
    int rc = -1;

    snprintf(src, sizeof(src), "%.*s/fixtures/%s", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".", name);
    in = fopen(src, "rb");
    out = fopen(dst, "wb");
    if (!in || !out)
        goto cleanup;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            goto cleanup;
    rc = 0;
cleanup:
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

/* tests/unit/registry/fixtures/registry-v0.db was written by the registry
 * of commit 126a5fa (documents without a version field): three instances
 * with tags and metadata. The current code loads all of them unchanged. */
static void test_loads_file_of_previous_version(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/test_catalog.XXXXXX";
    char path[256], err[256];
    struct store *st = NULL;
    struct reg_registry *reg = NULL;
    struct reg_options opt;
    const struct reg_instance *in;
    struct evbuffer *buf = evbuffer_new();
    json_t *obj = NULL;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/registry.db", dir);
    assert_int_equal(copy_fixture("registry-v0.db", path), 0);
    st = store_sqlite_open(path, f->base, err, sizeof(err));
    assert_non_null(st);
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = fake_clock;
    opt.clock_arg = f;
    reg = reg_new(st, &opt);
    assert_non_null(reg);
    assert_int_equal(reg_load(reg, err, sizeof(err)), 3);

    in = reg_get(reg, "logging-service-d61f923f-abf6-4004-bf18-954fab7584bb");
    assert_non_null(in);
    assert_int_equal(regc_write_instance(in, buf), 0);
    evbuffer_add(buf, "", 1);
    assert_string_equal((const char *)evbuffer_pullup(buf, -1),
                        "{\"id\":\"logging-service-d61f923f-abf6-4004-bf18-954fab7584bb\","
                        "\"name\":\"logging-service\",\"host\":\"127.0.0.1\",\"port\":5001,"
                        "\"type\":\"service\",\"tags\":[\"v1\",\"primary\"],"
                        "\"metadata\":{\"zone\":\"a\",\"version\":\"1.2.3\"},\"ttl\":10,"
                        "\"last_heartbeat\":1700000000,\"health\":\"passing\",\"checks\":[{"
                        "\"id\":\"logging-service-d61f923f-abf6-4004-bf18-954fab7584bb:ttl\","
                        "\"type\":\"ttl\",\"status\":\"passing\",\"output\":\"\","
                        "\"last_change\":1700000000.000}]}");
    evbuffer_drain(buf, evbuffer_get_length(buf));

    in = reg_get(reg, "logging-service-0b310e40-c4a0-44ab-8611-77ea36c2a346");
    assert_non_null(in);
    assert_int_equal(reg_instance_port(in), 5003);
    assert_int_equal(regc_write_instance(in, buf), 0);
    obj = json_loadb((const char *)evbuffer_pullup(buf, -1), evbuffer_get_length(buf), 0, NULL);
    assert_non_null(obj);
    assert_int_equal(json_integer_value(json_object_get(obj, "ttl")), 20);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "zone")), "b");
    json_decref(obj);
    evbuffer_drain(buf, evbuffer_get_length(buf));

    in = reg_get(reg, "messages-service-22ecfe3d-4676-4ca9-8577-a02df0ef2438");
    assert_non_null(in);
    assert_int_equal(regc_write_instance(in, buf), 0);
    evbuffer_add(buf, "", 1);
    assert_string_equal(
        (const char *)evbuffer_pullup(buf, -1),
        "{\"id\":\"messages-service-22ecfe3d-4676-4ca9-8577-a02df0ef2438\","
        "\"name\":\"messages-service\",\"host\":\"msg.local\",\"port\":5002,"
        "\"type\":\"worker\",\"tags\":[\"blue\",\"with \\\"quote\\\"\",\"\xc3\xa9\"],"
        "\"metadata\":{\"owner\":\"team-x\",\"note\":\"a\\\\nb\",\"empty\":\"\"},"
        "\"ttl\":45,\"last_heartbeat\":1700000000,\"health\":\"passing\",\"checks\":[{\"id\":"
        "\"messages-service-22ecfe3d-4676-4ca9-8577-a02df0ef2438:ttl\",\"type\":\"ttl\","
        "\"status\":\"passing\",\"output\":\"\",\"last_change\":1700000000.000}]}");
    assert_non_null(reg_discover(reg, NULL, "worker", REG_RANDOM));
    assert_int_equal(reg_instance_ttl_ms(in), 45000);
    assert_int_equal(reg_instance_tag_count(in), 3);
    assert_string_equal(reg_instance_tag(in, 1), "with \"quote\"");
    assert_int_equal(reg_instance_meta_count(in), 3);
    assert_string_equal(reg_instance_meta_key(in, 1), "note");
    assert_string_equal(reg_instance_meta_value(in, 1), "a\\nb");

    evbuffer_free(buf);
    reg_free(reg);
    store_close(st);
    ts_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_get_deregister, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_typed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reregister_drops_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reregister_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_critical_then_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_brings_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configured_deregister_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_ttls_expire_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_random_distribution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_by_type_and_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_from_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_instances_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_survives_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mass_expiry_writes_in_bounded_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_register_invisible_until_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loads_file_of_previous_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commits_change_nothing, setup_failing,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
