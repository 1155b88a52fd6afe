/* test_check.c: health checks in the registry core, on an injected clock:
 * the state machine's thresholds (check.c), an instance's health as the
 * worst of its checks, discovery and the ?health= filters following it,
 * health events naming the check, removal after deregister_critical_after,
 * and maintenance as a committed write that survives a reload. The probes
 * themselves are the runner's (test_runner.c); here results are fed in. */
#include "registry/api/codec.h"
#include "registry/core/catalog.h"
#include "registry/core/check.h"
#include "registry/store/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "regfix.h"

/* The events the core reported, the last ones kept. */
struct record {
    int n;
    enum reg_event_type type[64];
    char check[64][LIM_CHECK_ID_MAX + 1];
    enum reg_health prev[64], status[64];
    uint64_t index[64];
};

static void record_cb(void *arg, const struct reg_event *ev)
{
    struct record *r = arg;
    int i = r->n < 64 ? r->n : 63;

    r->type[i] = ev->type;
    r->prev[i] = ev->previous;
    r->status[i] = ev->status;
    r->index[i] = ev->index;
    snprintf(r->check[i], sizeof(r->check[i]), "%s", ev->check_id ? ev->check_id : "");
    r->n++;
}

static void test_thresholds(void **state)
{
    struct chk_state st;
    struct chk_policy p = {3, 2};
    int64_t t = 1000;

    (void)state;
    chk_init(&st, REG_PASSING, t);
    /* failures that are not 3 in a row never leave passing */
    assert_false(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_false(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_false(chk_apply(&st, &p, REG_PASSING, ++t));
    assert_false(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_false(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_int_equal(st.status, REG_PASSING);
    assert_true(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_int_equal(st.status, REG_CRITICAL);
    assert_int_equal(st.last_change_ms, t);
    /* two passes in a row to come back */
    assert_false(chk_apply(&st, &p, REG_PASSING, ++t));
    assert_false(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_false(chk_apply(&st, &p, REG_PASSING, ++t));
    assert_true(chk_apply(&st, &p, REG_PASSING, ++t));
    assert_int_equal(st.status, REG_PASSING);
    /* a warning counts as a failure for a passing check... */
    assert_false(chk_apply(&st, &p, REG_WARNING, ++t));
    assert_false(chk_apply(&st, &p, REG_WARNING, ++t));
    assert_true(chk_apply(&st, &p, REG_WARNING, ++t));
    assert_int_equal(st.status, REG_WARNING);
    /* ...and moves a critical one to warning at once */
    chk_init(&st, REG_CRITICAL, t);
    assert_true(chk_apply(&st, &p, REG_WARNING, ++t));
    assert_int_equal(st.status, REG_WARNING);
    /* defaults of 0 mean 1 */
    p.failures_before_critical = p.successes_before_passing = 0;
    assert_true(chk_apply(&st, &p, REG_CRITICAL, ++t));
    assert_true(chk_apply(&st, &p, REG_PASSING, ++t));
}

#define WEB_CHECKS                                                                                 \
    "{\"name\":\"web\",\"host\":\"h\",\"port\":1,\"ttl\":10,\"checks\":[{\"http\":"                \
    "\"http://h:1/health\",\"interval\":\"1s\",\"id\":\"web-http\"},{\"tcp\":\"h:1\","             \
    "\"interval\":\"1s\",\"deregister_critical_after\":\"30s\"}]}"

static void test_worst_check_decides(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    struct reg_filter warn_or_better = {"web", NULL, NULL, REG_WARNING, true};
    struct reg_check_view c;
    const struct reg_instance *in = NULL;
    char id[LIM_ID_MAX + 1], tcp_id[LIM_CHECK_ID_MAX + 1];
    size_t n = 0;
    const struct reg_instance *page[4];
    bool more = false;

    (void)state;
    assert_non_null(f);
    regfix_register(f, WEB_CHECKS, id);
    in = reg_get(f->reg, id);
    assert_int_equal(reg_instance_check_count(in), 3);
    reg_instance_check(in, 0, &c);
    assert_int_equal(c.kind, REG_CHECK_TTL);
    assert_false(c.given);
    reg_instance_check(in, 1, &c);
    assert_string_equal(c.id, "web-http");
    assert_int_equal(c.kind, REG_CHECK_HTTP);
    reg_instance_check(in, 2, &c);
    snprintf(tcp_id, sizeof(tcp_id), "%s:2", id);
    assert_string_equal(c.id, tcp_id);
    assert_int_equal(reg_instance_health(in), REG_PASSING);

    /* one check critical: the instance is, and leaves discovery */
    rec.n = 0;
    assert_int_equal(reg_check_result(f->reg, id, "web-http", REG_CRITICAL, "HTTP 500"), 0);
    in = reg_get(f->reg, id);
    assert_int_equal(reg_instance_health(in), REG_CRITICAL);
    assert_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.type[0], REG_EV_HEALTH);
    assert_string_equal(rec.check[0], "web-http");
    assert_int_equal(rec.prev[0], REG_PASSING);
    assert_int_equal(rec.status[0], REG_CRITICAL);
    reg_instance_check(in, 1, &c);
    assert_string_equal(c.output, "HTTP 500");
    /* the same result again is no change */
    assert_int_equal(reg_check_result(f->reg, id, "web-http", REG_CRITICAL, "HTTP 500"), 0);
    assert_int_equal(rec.n, 1);

    /* busy (429): warning, still out of discovery, in ?health=warning */
    assert_int_equal(reg_check_result(f->reg, id, "web-http", REG_WARNING, "HTTP 429"), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_WARNING);
    assert_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));
    n = reg_page(f->reg, &warn_or_better, NULL, 3, page, &more);
    assert_int_equal(n, 1);
    /* the other check critical now: critical wins over warning */
    assert_int_equal(reg_check_result(f->reg, id, tcp_id, REG_CRITICAL, "refused"), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_CRITICAL);
    assert_int_equal(reg_page(f->reg, &warn_or_better, NULL, 3, page, &more), 0);
    /* both back: passing and discoverable */
    assert_int_equal(reg_check_result(f->reg, id, "web-http", REG_PASSING, "HTTP 200"), 0);
    assert_int_equal(reg_check_result(f->reg, id, tcp_id, REG_PASSING, "ok"), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_PASSING);
    assert_non_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));

    /* unknown instance, unknown check, a TTL check fed a result */
    assert_int_equal(reg_check_result(f->reg, "web-nope", "web-http", REG_PASSING, ""), 1);
    assert_int_equal(reg_check_result(f->reg, id, "nope", REG_PASSING, ""), 1);
    reg_instance_check(reg_get(f->reg, id), 0, &c);
    assert_int_equal(reg_check_result(f->reg, id, c.id, REG_CRITICAL, ""), 1);
    regfix_free(f);
}

static void test_deregister_critical_after(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    char id[LIM_ID_MAX + 1], tcp_id[LIM_CHECK_ID_MAX + 1];

    (void)state;
    assert_non_null(f);
    regfix_register(f, WEB_CHECKS, id);
    snprintf(tcp_id, sizeof(tcp_id), "%s:2", id);
    assert_int_equal(reg_check_result(f->reg, id, tcp_id, REG_CRITICAL, "refused"), 0);
    /* renewals keep the TTL check passing: only the tcp check's rule acts */
    f->now_ms += 29999;
    assert_int_equal(reg_renew(f->reg, id), 0);
    assert_int_equal(reg_tick(f->reg), 0);
    regfix_settle(f);
    assert_non_null(reg_get(f->reg, id));
    f->now_ms += 1;
    assert_int_equal(reg_renew(f->reg, id), 0);
    rec.n = 0;
    assert_int_equal(reg_tick(f->reg), 1);
    regfix_settle(f);
    assert_null(reg_get(f->reg, id));
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.type[0], REG_EV_EXPIRE);
    regfix_free(f);
}

/* reg_wake_fn recording what it is told. */
struct wakes {
    int n;
    int64_t at;
};

static void wake_cb(void *arg, int64_t at_ms)
{
    struct wakes *w = arg;

    w->n++;
    w->at = at_ms;
}

/* A millisecond TTL: the core tells its deadline (and only earlier ones),
 * and a tick at that time, not a whole second later, turns it critical. */
static void test_ttl_deadline_wake(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    struct wakes w = {0, 0};
    char slow[LIM_ID_MAX + 1], fast[LIM_ID_MAX + 1];
    int64_t t0;

    (void)state;
    assert_non_null(f);
    reg_set_wake(f->reg, wake_cb, &w);
    assert_int_equal(w.n, 0); /* nothing with a ttl yet */
    t0 = f->now_ms;
    regfix_register(f, "{\"name\":\"s\",\"host\":\"h\",\"port\":1,\"ttl\":10}", slow);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.at, t0 + 10000);
    regfix_register(f, "{\"name\":\"f\",\"host\":\"h\",\"port\":1,\"check\":{\"ttl\":\"150ms\"}}",
                    fast);
    assert_int_equal(reg_instance_ttl_ms(reg_get(f->reg, fast)), 150);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.at, t0 + 150);
    /* a renewal only moves a deadline later: nothing to tell */
    f->now_ms += 100;
    assert_int_equal(reg_renew(f->reg, slow), 0);
    assert_int_equal(w.n, 2);
    /* the tick at the deadline: critical, and the next deadline told */
    f->now_ms = t0 + 149;
    assert_int_equal(reg_tick(f->reg), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, fast)), REG_PASSING);
    assert_int_equal(w.at, t0 + 150);
    f->now_ms = t0 + 150;
    assert_int_equal(reg_tick(f->reg), 1);
    assert_int_equal(reg_instance_health(reg_get(f->reg, fast)), REG_CRITICAL);
    assert_int_equal(w.at, t0 + 100 + 10000);
    /* a revival comes before the others again */
    f->now_ms = t0 + 1000;
    assert_int_equal(reg_renew(f->reg, fast), 0);
    assert_int_equal(w.at, t0 + 1150);
    regfix_settle(f);
    regfix_free(f);
}

static void test_ttl_check_given_and_none(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    char a[LIM_ID_MAX + 1], b[LIM_ID_MAX + 1];

    (void)state;
    assert_non_null(f);
    /* a ttl check given with an id and its own removal delay */
    regfix_register(f,
                    "{\"name\":\"t\",\"host\":\"h\",\"port\":1,\"check\":{\"ttl\":\"2s\","
                    "\"id\":\"beat\",\"deregister_critical_after\":\"5s\"}}",
                    a);
    assert_int_equal(reg_instance_ttl_ms(reg_get(f->reg, a)), 2000);
    /* no ttl and checks: []: no check at all, never expires, renew refused */
    regfix_register(f, "{\"name\":\"n\",\"host\":\"h\",\"port\":1,\"checks\":[]}", b);
    assert_int_equal(reg_instance_check_count(reg_get(f->reg, b)), 0);
    assert_int_equal(reg_renew(f->reg, b), 2);
    rec.n = 0;
    f->now_ms += 2000;
    assert_int_equal(reg_tick(f->reg), 1);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.type[0], REG_EV_HEALTH);
    assert_string_equal(rec.check[0], "beat");
    assert_int_equal(reg_instance_health(reg_get(f->reg, a)), REG_CRITICAL);
    /* removed 5 s after it lapsed, not 3 x ttl */
    f->now_ms += 4999;
    assert_int_equal(reg_tick(f->reg), 0);
    f->now_ms += 1;
    assert_int_equal(reg_tick(f->reg), 1);
    regfix_settle(f);
    assert_null(reg_get(f->reg, a));
    f->now_ms += 86400 * 1000LL;
    (void)reg_tick(f->reg);
    regfix_settle(f);
    assert_non_null(reg_get(f->reg, b));
    assert_int_equal(reg_instance_health(reg_get(f->reg, b)), REG_PASSING);
    regfix_free(f);
}

/* Turn maintenance of id on or off and wait for the commit. */
static void maint(struct regfix *f, const char *id, bool on, const char *reason)
{
    struct regfix_outcome o = {0};
    char err[256];

    assert_int_equal(
        reg_maintenance(f->reg, id, on, reason, regfix_outcome_cb, &o, err, sizeof(err)), 0);
    /* invisible until committed */
    assert_int_equal(reg_instance_maintenance(reg_get(f->reg, id), NULL, NULL), !on);
    regfix_settle(f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
}

static void test_maintenance_survives_reload(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    struct reg_registry *again = NULL;
    struct reg_options opt;
    const char *reason = NULL;
    int64_t since = 0;
    char id[LIM_ID_MAX + 1], err[256];
    struct regfix_outcome o = {0};

    (void)state;
    assert_non_null(f);
    regfix_register(f, WEB_CHECKS, id);
    rec.n = 0;
    maint(f, id, true, "deploy 42");
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.type[0], REG_EV_MAINTENANCE);
    assert_true(reg_instance_maintenance(reg_get(f->reg, id), &reason, &since));
    assert_string_equal(reason, "deploy 42");
    assert_int_equal(since, f->now_ms);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_CRITICAL);
    assert_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));
    /* renewals do not end it */
    assert_int_equal(reg_renew(f->reg, id), 0);
    assert_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));
    /* a write in flight for the id: try again */
    assert_int_equal(
        reg_maintenance(f->reg, id, false, "", regfix_outcome_cb, &o, err, sizeof(err)), 0);
    assert_int_equal(
        reg_maintenance(f->reg, id, false, "", regfix_outcome_cb, &o, err, sizeof(err)), 2);
    /* the store holds it: a registry loading the same store has it on...
     * once the write above (off) is undone by one turning it on again */
    regfix_settle(f);
    maint(f, id, true, "deploy 43");
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    again = reg_new(f->store, &opt);
    assert_non_null(again);
    assert_int_equal(reg_load(again, err, sizeof(err)), 1);
    assert_true(reg_instance_maintenance(reg_get(again, id), &reason, NULL));
    assert_string_equal(reason, "deploy 43");
    assert_int_equal(reg_instance_health(reg_get(again, id)), REG_CRITICAL);
    assert_int_equal(reg_instance_check_count(reg_get(again, id)), 3);
    reg_free(again);
    /* off: back to what its checks say */
    rec.n = 0;
    maint(f, id, false, NULL);
    assert_int_equal(rec.n, 1);
    assert_false(reg_instance_maintenance(reg_get(f->reg, id), NULL, NULL));
    assert_non_null(reg_discover(f->reg, "web", NULL, REG_RANDOM));
    assert_int_equal(
        reg_maintenance(f->reg, "web-none", true, "", regfix_outcome_cb, &o, err, sizeof(err)), 1);
    regfix_free(f);
}

static void test_ttl_updates(void **state)
{
    struct record rec = {0};
    struct regfix *f = regfix_new(record_cb, &rec);
    struct reg_check_view c;
    char id[LIM_ID_MAX + 1], cold[LIM_ID_MAX + 1];

    (void)state;
    assert_non_null(f);
    regfix_register(f, "{\"name\":\"t\",\"host\":\"h\",\"port\":1,\"ttl\":10}", id);
    /* warn: a new window, status warning, the note as output, one event */
    rec.n = 0;
    assert_int_equal(reg_ttl_update(f->reg, id, REG_WARNING, "disk 91% full"), 0);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_WARNING);
    assert_null(reg_discover(f->reg, "t", NULL, REG_RANDOM));
    reg_instance_check(reg_get(f->reg, id), 0, &c);
    assert_int_equal(c.status, REG_WARNING);
    assert_string_equal(c.output, "disk 91% full");
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.prev[0], REG_PASSING);
    assert_int_equal(rec.status[0], REG_WARNING);
    /* fail, then the ttl lapses: no second event (it was critical) */
    f->now_ms += 5000;
    assert_int_equal(reg_ttl_update(f->reg, id, REG_CRITICAL, NULL), 0);
    assert_int_equal(rec.n, 2);
    reg_instance_check(reg_get(f->reg, id), 0, &c);
    assert_string_equal(c.output, "");
    f->now_ms += 10000;
    assert_int_equal(reg_tick(f->reg), 1);
    assert_int_equal(rec.n, 2);
    reg_instance_check(reg_get(f->reg, id), 0, &c);
    assert_string_equal(c.output, "no renewal within the ttl");
    /* pass brings it back, within a new window */
    assert_int_equal(reg_ttl_update(f->reg, id, REG_PASSING, "ok"), 0);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.prev[2], REG_CRITICAL);
    assert_int_equal(reg_instance_health(reg_get(f->reg, id)), REG_PASSING);
    assert_non_null(reg_discover(f->reg, "t", NULL, REG_RANDOM));
    assert_int_equal(reg_ttl_update(f->reg, "t-none", REG_PASSING, NULL), 1);
    /* a ttl check that starts critical (Consul's service TTL check) until
     * its first pass */
    regfix_register(f,
                    "{\"name\":\"c\",\"host\":\"h\",\"port\":1,\"check\":{\"ttl\":\"5s\","
                    "\"status\":\"critical\"}}",
                    cold);
    assert_int_equal(reg_instance_health(reg_get(f->reg, cold)), REG_CRITICAL);
    assert_null(reg_discover(f->reg, "c", NULL, REG_RANDOM));
    assert_int_equal(reg_renew(f->reg, cold), 0);
    assert_non_null(reg_discover(f->reg, "c", NULL, REG_RANDOM));
    regfix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_worst_check_decides),
        cmocka_unit_test(test_deregister_critical_after),
        cmocka_unit_test(test_ttl_deadline_wake),
        cmocka_unit_test(test_ttl_check_given_and_none),
        cmocka_unit_test(test_maintenance_survives_reload),
        cmocka_unit_test(test_ttl_updates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
