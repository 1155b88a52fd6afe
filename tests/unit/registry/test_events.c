/* test_events.c: the registry index and its change events, with an
 * injected clock over the memory store: one observer call per index value,
 * in order, for register, re-register, deregister, health (tick and
 * renewal) and expiry; a renewal of a passing instance changes nothing and
 * writes nothing; the index lease costs one row in many and a reload never
 * goes back. Then the event history of registry/api/events.c: encoding,
 * caps by count and bytes, oldest dropped first. */
#include "registry/api/codec.h"
#include "registry/api/events.h"
#include "registry/api/spec_json.h"
#include "registry/core/catalog.h"
#include "registry/store/store.h"

#include <event2/event.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SEEN_MAX 64

/* What the observer was told. */
struct seen {
    enum reg_event_type type;
    uint64_t index;
    int64_t time_ms;
    char id[LIM_ID_MAX + 1];
    enum reg_health previous, status;
    bool present; /* reg_get found the instance during the call */
};

struct fixture {
    struct event_base *base;
    struct store *store;
    struct reg_registry *reg;
    struct rev_hub *hub; /* fed too, when set */
    int64_t now_ms;
    struct seen seen[SEEN_MAX];
    size_t nseen;
};

static int64_t fake_clock(void *arg) { return ((struct fixture *)arg)->now_ms; }

static void observer(void *arg, const struct reg_event *ev)
{
    struct fixture *f = arg;
    struct seen *s = NULL;

    /* called after the change: the index is already the event's */
    assert_int_equal(reg_index(f->reg), ev->index);
    if (ev->type == REG_EV_HEALTH) {
        char want[LIM_ID_MAX + 8];

        snprintf(want, sizeof(want), "%s:ttl", reg_instance_id(ev->in));
        assert_string_equal(ev->check_id, want);
    } else {
        assert_null(ev->check_id);
    }
    if (f->hub)
        rev_observe(f->hub, ev);
    if (f->nseen++ >= SEEN_MAX)
        return; /* counted, not kept */
    s = &f->seen[f->nseen - 1];
    s->type = ev->type;
    s->index = ev->index;
    s->time_ms = ev->time_ms;
    snprintf(s->id, sizeof(s->id), "%s", reg_instance_id(ev->in));
    s->previous = ev->previous;
    s->status = ev->status;
    s->present = reg_get(f->reg, s->id) != NULL;
}

static struct reg_registry *make_registry(struct fixture *f)
{
    struct reg_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = fake_clock;
    opt.clock_arg = f;
    opt.seed = 1;
    opt.observer = observer;
    opt.observer_arg = f;
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
    f->reg = f->store ? make_registry(f) : NULL;
    if (!f->reg)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    reg_free(f->reg);
    rev_hub_free(f->hub);
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

static void done_ok(void *arg, int rc, const char *err)
{
    (void)err;
    assert_int_equal(rc, 0);
    (*(int *)arg)++;
}

/* Register name (fixed id when id_in is non-NULL) with ttl; the id into
 * id. Returns the store writes the call queued. */
static size_t do_register(struct fixture *f, const char *name, const char *id_in, int ttl, char *id)
{
    char body[512], err[256];
    struct reg_spec spec;
    bool created = false;
    int calls = 0;
    size_t queued;

    if (id_in)
        snprintf(body, sizeof(body),
                 "{\"id\":\"%s\",\"name\":\"%s\",\"host\":\"10.0.0.1\",\"port\":80,\"ttl\":%d}",
                 id_in, name, ttl);
    else
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"host\":\"10.0.0.1\",\"port\":80,\"ttl\":%d}", name, ttl);
    assert_int_equal(reg_spec_parse_text(body, strlen(body), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(f->reg, &spec, done_ok, &calls, id, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    queued = store_pending(f->store);
    settle(f);
    assert_int_equal(calls, 1);
    return queued;
}

static void do_deregister(struct fixture *f, const char *id)
{
    char err[256];
    int calls = 0;

    assert_int_equal(reg_deregister(f->reg, id, done_ok, &calls, err, sizeof(err)), 0);
    settle(f);
    assert_int_equal(calls, 1);
}

static void test_every_change_one_index_in_order(void **state)
{
    struct fixture *f = *state;
    char a[LIM_ID_MAX + 1], b[LIM_ID_MAX + 1], again[LIM_ID_MAX + 1];
    size_t i;

    assert_int_equal(reg_index(f->reg), 0);
    (void)do_register(f, "web", NULL, 10, a);
    (void)do_register(f, "web", a, 10, again); /* a re-registration is a change */
    assert_string_equal(a, again);
    (void)do_register(f, "db", NULL, 10, b);
    f->now_ms += 10 * 1000; /* both lapse */
    (void)reg_tick(f->reg);
    settle(f);
    assert_int_equal(reg_renew(f->reg, a), 0); /* critical -> passing */
    do_deregister(f, a);
    f->now_ms += 30 * 1000; /* b critical for 3 x ttl: removed */
    (void)reg_tick(f->reg);
    settle(f);
    assert_null(reg_get(f->reg, b));

    assert_int_equal(f->nseen, 8);
    for (i = 0; i < f->nseen; i++)
        assert_int_equal(f->seen[i].index, i + 1);
    assert_int_equal(reg_index(f->reg), 8);
    assert_int_equal(f->seen[0].type, REG_EV_REGISTER);
    assert_int_equal(f->seen[1].type, REG_EV_REGISTER);
    assert_int_equal(f->seen[2].type, REG_EV_REGISTER);
    assert_string_equal(f->seen[2].id, b);
    /* the tick turned both critical: two health events */
    assert_int_equal(f->seen[3].type, REG_EV_HEALTH);
    assert_int_equal(f->seen[4].type, REG_EV_HEALTH);
    assert_int_equal(f->seen[3].previous, REG_PASSING);
    assert_int_equal(f->seen[3].status, REG_CRITICAL);
    assert_int_equal(f->seen[3].time_ms, 1700000000000LL + 10 * 1000);
    /* the renewal revived a */
    assert_int_equal(f->seen[5].type, REG_EV_HEALTH);
    assert_string_equal(f->seen[5].id, a);
    assert_int_equal(f->seen[5].previous, REG_CRITICAL);
    assert_int_equal(f->seen[5].status, REG_PASSING);
    /* deregister and expire: told with the instance as it was, out of
     * memory already */
    assert_int_equal(f->seen[6].type, REG_EV_DEREGISTER);
    assert_false(f->seen[6].present);
    assert_int_equal(f->seen[7].type, REG_EV_EXPIRE);
    assert_string_equal(f->seen[7].id, b);
}

static void test_expire_is_reported(void **state)
{
    struct fixture *f = *state;
    char a[LIM_ID_MAX + 1];

    (void)do_register(f, "web", NULL, 1, a);
    f->now_ms += 1000;
    (void)reg_tick(f->reg);
    f->now_ms += 3000;
    (void)reg_tick(f->reg);
    settle(f);
    assert_null(reg_get(f->reg, a));
    assert_int_equal(f->nseen, 3);
    assert_int_equal(f->seen[1].type, REG_EV_HEALTH);
    assert_int_equal(f->seen[2].type, REG_EV_EXPIRE);
    assert_int_equal(f->seen[2].index, 3);
    assert_string_equal(f->seen[2].id, a);
    assert_false(f->seen[2].present);
}

static void test_renew_of_passing_changes_nothing(void **state)
{
    struct fixture *f = *state;
    char a[LIM_ID_MAX + 1];
    int i;

    (void)do_register(f, "web", NULL, 10, a);
    for (i = 0; i < 100; i++) {
        f->now_ms += 1000;
        assert_int_equal(reg_renew(f->reg, a), 0);
        assert_int_equal(store_pending(f->store), 0);
        (void)reg_tick(f->reg);
        assert_int_equal(store_pending(f->store), 0);
    }
    assert_int_equal(reg_index(f->reg), 1);
    assert_int_equal(f->nseen, 1);
}

/* store_load callback: remember the index record. */
static int find_lease(const char *id, const char *doc, size_t len, void *arg)
{
    (void)len;
    if (strcmp(id, REG_META_INDEX_ID) == 0)
        *(unsigned long long *)arg = strtoull(doc, NULL, 10);
    return 0;
}

static void test_lease_is_rare_and_reload_never_goes_back(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1], last[LIM_ID_MAX + 1];
    size_t writes = 0;
    unsigned long long lease = 0;
    uint64_t before;
    int i;
    char err[256];

    for (i = 0; i < 200; i++)
        writes += do_register(f, "web", NULL, 30, id);
    /* one row per registration, plus the lease once */
    assert_int_equal(writes, 201);
    assert_int_equal(store_load(f->store, find_lease, &lease, err, sizeof(err)), 0);
    assert_true(lease >= reg_index(f->reg));
    (void)do_register(f, "top", NULL, 30, last);
    do_deregister(f, last); /* the highest index leaves */
    before = reg_index(f->reg);
    assert_int_equal(before, 202);

    reg_free(f->reg);
    f->nseen = 0;
    f->reg = make_registry(f);
    assert_non_null(f->reg);
    assert_int_equal(reg_load(f->reg, err, sizeof(err)), 200);
    assert_true(reg_index(f->reg) >= before);
    before = reg_index(f->reg);
    (void)do_register(f, "next", NULL, 30, id);
    assert_int_equal(reg_index(f->reg), before + 1);
    assert_int_equal(f->seen[0].index, before + 1);
}

static void test_lease_covers_mass_health_changes(void **state)
{
    struct fixture *f = *state;
    char id[LIM_ID_MAX + 1];
    unsigned long long lease = 0;
    char err[256];
    int i;

    for (i = 0; i < 50; i++)
        (void)do_register(f, "web", NULL, 1, id);
    (void)reg_tick(f->reg); /* the tick checks the lease first */
    settle(f);
    f->now_ms += 1000;
    (void)reg_tick(f->reg); /* 50 health changes, no write needed for the index */
    settle(f);
    assert_int_equal(reg_index(f->reg), 100);
    assert_int_equal(store_load(f->store, find_lease, &lease, err, sizeof(err)), 0);
    /* what a crash now would resume from covers every index handed out, and
     * the next interval's */
    assert_true(lease >= reg_index(f->reg) + 2 * 50);
}

/* ---- the history ------------------------------------------------------ */

static void test_history_encodes_and_caps_by_count(void **state)
{
    struct fixture *f = *state;
    struct rev_options opt = {.history_max = 3};
    char id[LIM_ID_MAX + 1];
    uint64_t oldest = 0;
    int i;

    f->hub = rev_hub_new(NULL, &opt);
    assert_non_null(f->hub);
    for (i = 0; i < 5; i++)
        (void)do_register(f, "web", NULL, 30, id);
    assert_int_equal(rev_hub_index(f->hub), 5);
    assert_int_equal(rev_hub_held(f->hub, &oldest), 3);
    assert_int_equal(oldest, 3);
}

static void test_history_caps_by_bytes(void **state)
{
    struct fixture *f = *state;
    struct rev_options opt = {.history_max = 100, .history_bytes = 4096};
    char data[1024];
    uint64_t oldest = 0;
    size_t held;
    int i;

    memset(data, 'x', sizeof(data));
    data[0] = '{';
    data[1] = '"';
    data[sizeof(data) - 3] = '"';
    data[sizeof(data) - 2] = ':';
    data[sizeof(data) - 1] = '}'; /* not JSON that parses; the history does not care */
    f->hub = rev_hub_new(NULL, &opt);
    assert_non_null(f->hub);
    for (i = 1; i <= 10; i++)
        assert_int_equal(rev_publish(f->hub, "kv", (uint64_t)i, 0, NULL, data, sizeof(data)), 0);
    held = rev_hub_held(f->hub, &oldest);
    /* about 1.1 KB each: three fit in 4 KiB, the newest ones */
    assert_int_equal(held, 3);
    assert_int_equal(oldest, 8);
    assert_int_equal(rev_hub_index(f->hub), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_change_one_index_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_of_passing_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_is_rare_and_reload_never_goes_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_covers_mass_health_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_encodes_and_caps_by_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_caps_by_bytes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
