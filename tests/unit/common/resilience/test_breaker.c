/* test_breaker.c: unit tests for common/breaker through the public header,
 * with injected times: the consecutive-failure and failure-rate triggers,
 * the cool-down, half-open probing (exactly `probes` admitted; all succeed
 * closes, one failure reopens with a fresh cool-down), the pure state view,
 * the names, and late results arriving while open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "resilience/breaker.h"

#define T0 1000000 /* an arbitrary start time, ms */

/* One admitted call at now with the given outcome. */
static void call(struct brk_breaker *b, bool success, int64_t now)
{
    assert_true(brk_allow(b, now));
    brk_record(b, success, now);
}

/* A config that isolates the consecutive trigger (rate disabled). */
static struct brk_config cfg_consecutive_only(void)
{
    struct brk_config c;

    brk_config_default(&c);
    c.rate_percent = 0;
    return c;
}

/* A config that isolates the rate trigger (consecutive disabled). */
static struct brk_config cfg_rate_only(void)
{
    struct brk_config c;

    brk_config_default(&c);
    c.consecutive = 0;
    return c;
}

/* Trip a default breaker at now with 5 consecutive failures. */
static void trip(struct brk_breaker *b, int64_t now)
{
    int i;

    for (i = 0; i < BRK_CONSECUTIVE_DEFAULT; i++)
        call(b, false, now);
    assert_int_equal(b->state, BRK_OPEN);
    assert_int_equal(b->opened_at_ms, now);
}

static void test_defaults(void **state)
{
    struct brk_config c;
    struct brk_breaker b;

    (void)state;
    brk_config_default(&c);
    assert_int_equal(c.consecutive, 5);
    assert_int_equal(c.window, 20);
    assert_int_equal(c.min_calls, 10);
    assert_int_equal(c.rate_percent, 50);
    assert_int_equal(c.open_ms, 5000);
    assert_int_equal(c.probes, 3);
    brk_init(&b, NULL);
    assert_int_equal(b.cfg.consecutive, c.consecutive);
    assert_int_equal(b.cfg.window, c.window);
    assert_int_equal(b.cfg.min_calls, c.min_calls);
    assert_int_equal(b.cfg.rate_percent, c.rate_percent);
    assert_int_equal(b.cfg.open_ms, c.open_ms);
    assert_int_equal(b.cfg.probes, c.probes);
    assert_int_equal(b.state, BRK_CLOSED);
    assert_int_equal(b.window_fill, 0);
    assert_true(brk_allow(&b, T0));
    brk_record(&b, true, T0);
}

static void test_opens_after_consecutive(void **state)
{
    struct brk_config c = cfg_consecutive_only();
    struct brk_breaker b;
    int i;

    (void)state;
    brk_init(&b, &c);
    for (i = 0; i < 4; i++) {
        call(&b, false, T0 + i);
        assert_int_equal(b.state, BRK_CLOSED);
    }
    assert_int_equal(b.consecutive_failures, 4);
    call(&b, false, T0 + 4);
    assert_int_equal(b.state, BRK_OPEN);
    assert_int_equal(b.opened_at_ms, T0 + 4);
    assert_false(brk_allow(&b, T0 + 5));
}

static void test_success_resets_consecutive(void **state)
{
    struct brk_config c = cfg_consecutive_only();
    struct brk_breaker b;
    int round;
    int i;

    (void)state;
    brk_init(&b, &c);
    for (round = 0; round < 10; round++) {
        for (i = 0; i < 4; i++)
            call(&b, false, T0);
        call(&b, true, T0);
        assert_int_equal(b.consecutive_failures, 0);
        assert_int_equal(b.state, BRK_CLOSED);
    }
}

static void test_rate_opens_at_min_calls(void **state)
{
    struct brk_config c = cfg_rate_only();
    struct brk_breaker b;
    int i;

    (void)state;
    brk_init(&b, &c);
    /* fail, success, fail, ...: 50% failures; the rate counts once
     * min_calls (10) outcomes are in. Call 9 is a failure with 5/9 failed,
     * but below min_calls; call 10 is a success that brings the window to
     * min_calls with 5/10 failed: at the threshold, so it opens. */
    for (i = 0; i < 9; i++) {
        call(&b, i % 2 != 0, T0 + i);
        assert_int_equal(b.state, BRK_CLOSED);
    }
    assert_int_equal(b.window_fill, 9);
    assert_int_equal(b.consecutive_failures, 1);
    call(&b, true, T0 + 9);
    assert_int_equal(b.state, BRK_OPEN);
    assert_int_equal(b.opened_at_ms, T0 + 9);
}

static void test_rate_below_min_calls(void **state)
{
    struct brk_config c = cfg_rate_only();
    struct brk_breaker b;
    int i;

    (void)state;
    c.min_calls = 15;
    brk_init(&b, &c);
    /* 14 calls at 4 failures to 1 success: 80% failures, still closed. */
    for (i = 0; i < 14; i++) {
        call(&b, i % 5 == 4, T0 + i);
        assert_int_equal(b.state, BRK_CLOSED);
    }
    call(&b, false, T0 + 14);
    assert_int_equal(b.state, BRK_OPEN);
}

static void test_rate_alternating_defaults(void **state)
{
    struct brk_breaker b;
    int i;
    int opened_at = -1;

    (void)state;
    /* Defaults, success first then alternating over 20 calls: the
     * consecutive trigger never fires, the rate one does once 10 are in. */
    brk_init(&b, NULL);
    for (i = 0; i < 20 && b.state == BRK_CLOSED; i++) {
        call(&b, i % 2 == 0, T0 + i);
        if (b.state == BRK_OPEN)
            opened_at = i;
    }
    assert_int_equal(b.state, BRK_OPEN);
    assert_true(opened_at + 1 >= BRK_MIN_CALLS_DEFAULT);
    assert_int_equal(opened_at, 9); /* the 10th call: 5 of 10 failed */
}

static void test_rate_window_slides(void **state)
{
    struct brk_config c = cfg_rate_only();
    struct brk_breaker b;
    int i;

    (void)state;
    c.window = 10;
    c.min_calls = 10;
    c.rate_percent = 50;
    brk_init(&b, &c);
    /* 4 failures then many successes: the old failures slide out. */
    for (i = 0; i < 4; i++)
        call(&b, false, T0);
    for (i = 0; i < 30; i++)
        call(&b, true, T0);
    assert_int_equal(b.window_fill, 10);
    assert_int_equal(b.window_bits, 0);
    /* 4 failures in the last 10: still closed; a 5th opens it. */
    for (i = 0; i < 4; i++) {
        call(&b, false, T0);
        call(&b, true, T0);
    }
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, false, T0);
    assert_int_equal(b.state, BRK_OPEN);
}

static void test_window_max(void **state)
{
    struct brk_config c = cfg_rate_only();
    struct brk_breaker b;
    int i;

    (void)state;
    c.window = 1000; /* clamped to BRK_WINDOW_MAX */
    c.min_calls = 1000;
    brk_init(&b, &c);
    assert_int_equal(b.cfg.window, BRK_WINDOW_MAX);
    assert_int_equal(b.cfg.min_calls, BRK_WINDOW_MAX);
    /* A third succeed (67% fail): opens exactly when the 64th call fills
     * the window to min_calls. */
    for (i = 0; i < BRK_WINDOW_MAX - 1; i++) {
        call(&b, i % 3 == 0, T0);
        assert_int_equal(b.state, BRK_CLOSED);
    }
    call(&b, false, T0);
    assert_int_equal(b.state, BRK_OPEN);
}

static void test_open_refuses_until_cooldown(void **state)
{
    struct brk_breaker b;

    (void)state;
    brk_init(&b, NULL);
    trip(&b, T0);
    assert_false(brk_allow(&b, T0));
    assert_false(brk_allow(&b, T0 + 1));
    assert_false(brk_allow(&b, T0 + BRK_OPEN_MS_DEFAULT - 1));
    assert_false(brk_allow(&b, T0 - 10)); /* a clock behind opened_at */
    assert_int_equal(b.state, BRK_OPEN);
    assert_true(brk_allow(&b, T0 + BRK_OPEN_MS_DEFAULT));
    assert_int_equal(b.state, BRK_HALF_OPEN);
}

static void test_half_open_admits_probes(void **state)
{
    struct brk_breaker b;
    int64_t t = T0 + BRK_OPEN_MS_DEFAULT;
    int i;

    (void)state;
    brk_init(&b, NULL);
    trip(&b, T0);
    for (i = 0; i < BRK_PROBES_DEFAULT; i++)
        assert_true(brk_allow(&b, t));
    assert_int_equal(b.probes_out, BRK_PROBES_DEFAULT);
    assert_false(brk_allow(&b, t));
    assert_false(brk_allow(&b, t + 100000));
    /* A success frees no extra slot: exactly `probes` per trial. */
    brk_record(&b, true, t);
    assert_false(brk_allow(&b, t));
    assert_int_equal(b.state, BRK_HALF_OPEN);
}

static void test_probes_succeed_close(void **state)
{
    struct brk_breaker b;
    int64_t t = T0 + BRK_OPEN_MS_DEFAULT;
    int i;

    (void)state;
    brk_init(&b, NULL);
    trip(&b, T0);
    for (i = 0; i < BRK_PROBES_DEFAULT; i++)
        assert_true(brk_allow(&b, t));
    for (i = 0; i < BRK_PROBES_DEFAULT - 1; i++) {
        brk_record(&b, true, t + 1);
        assert_int_equal(b.state, BRK_HALF_OPEN);
    }
    brk_record(&b, true, t + 1);
    assert_int_equal(b.state, BRK_CLOSED);
    assert_int_equal(b.consecutive_failures, 0);
    assert_int_equal(b.window_fill, 0);
    assert_int_equal(b.window_bits, 0);
    assert_int_equal(b.probes_out, 0);
    assert_int_equal(b.probes_ok, 0);
    assert_true(brk_allow(&b, t + 2));
    brk_record(&b, true, t + 2);
    /* Fresh counters: it takes the full 5 failures to open again. */
    for (i = 0; i < 4; i++)
        call(&b, false, t + 3);
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, false, t + 3);
    assert_int_equal(b.state, BRK_OPEN);
}

static void test_probe_failure_reopens(void **state)
{
    struct brk_breaker b;
    int64_t t = T0 + BRK_OPEN_MS_DEFAULT;
    int i;

    (void)state;
    brk_init(&b, NULL);
    trip(&b, T0);
    for (i = 0; i < BRK_PROBES_DEFAULT; i++)
        assert_true(brk_allow(&b, t));
    brk_record(&b, true, t + 10);
    brk_record(&b, false, t + 20);
    assert_int_equal(b.state, BRK_OPEN);
    assert_int_equal(b.opened_at_ms, t + 20);
    /* The last probe's late success is ignored while open. */
    brk_record(&b, true, t + 30);
    assert_int_equal(b.state, BRK_OPEN);
    /* The cool-down restarts from the failure. */
    assert_false(brk_allow(&b, t + 20 + BRK_OPEN_MS_DEFAULT - 1));
    assert_int_equal(brk_state_at(&b, t + 20 + BRK_OPEN_MS_DEFAULT - 1), BRK_OPEN);
    assert_true(brk_allow(&b, t + 20 + BRK_OPEN_MS_DEFAULT));
    assert_int_equal(b.state, BRK_HALF_OPEN);
    assert_int_equal(b.probes_out, 1);
    assert_int_equal(b.probes_ok, 0);
}

static void test_state_at_pure(void **state)
{
    struct brk_breaker b;
    struct brk_breaker copy;

    (void)state;
    brk_init(&b, NULL);
    assert_int_equal(brk_state_at(&b, T0), BRK_CLOSED);
    trip(&b, T0);
    memcpy(&copy, &b, sizeof b);
    assert_int_equal(brk_state_at(&b, T0), BRK_OPEN);
    assert_int_equal(brk_state_at(&b, T0 + BRK_OPEN_MS_DEFAULT - 1), BRK_OPEN);
    assert_int_equal(brk_state_at(&b, T0 + BRK_OPEN_MS_DEFAULT), BRK_HALF_OPEN);
    assert_int_equal(brk_state_at(&b, T0 + 10 * BRK_OPEN_MS_DEFAULT), BRK_HALF_OPEN);
    assert_memory_equal(&copy, &b, sizeof b); /* nothing moved */
    assert_int_equal(b.state, BRK_OPEN);
    assert_true(brk_allow(&b, T0 + BRK_OPEN_MS_DEFAULT));
    assert_int_equal(brk_state_at(&b, T0 + BRK_OPEN_MS_DEFAULT), BRK_HALF_OPEN);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(brk_state_name(BRK_CLOSED), "closed");
    assert_string_equal(brk_state_name(BRK_OPEN), "open");
    assert_string_equal(brk_state_name(BRK_HALF_OPEN), "half_open");
    assert_string_equal(brk_state_name((enum brk_state)42), "unknown");
}

static void test_late_record_while_open(void **state)
{
    struct brk_breaker b;
    struct brk_breaker copy;
    int i;

    (void)state;
    brk_init(&b, NULL);
    /* Calls admitted while closed, still in flight when it opens. */
    for (i = 0; i < 8; i++)
        assert_true(brk_allow(&b, T0));
    for (i = 0; i < 5; i++)
        brk_record(&b, false, T0 + 1);
    assert_int_equal(b.state, BRK_OPEN);
    memcpy(&copy, &b, sizeof b);
    brk_record(&b, true, T0 + 2);
    brk_record(&b, false, T0 + 3);
    brk_record(&b, true, T0 + BRK_OPEN_MS_DEFAULT + 100); /* even past cool-down */
    assert_memory_equal(&copy, &b, sizeof b);
    /* Half-open still admits exactly `probes`, and a result with none
     * outstanding is ignored too. */
    assert_int_equal(brk_state_at(&b, T0 + 1 + BRK_OPEN_MS_DEFAULT), BRK_HALF_OPEN);
    for (i = 0; i < BRK_PROBES_DEFAULT; i++)
        assert_true(brk_allow(&b, T0 + 1 + BRK_OPEN_MS_DEFAULT));
    assert_false(brk_allow(&b, T0 + 1 + BRK_OPEN_MS_DEFAULT));
    for (i = 0; i < BRK_PROBES_DEFAULT; i++)
        brk_record(&b, true, T0 + 2 + BRK_OPEN_MS_DEFAULT);
    assert_int_equal(b.state, BRK_CLOSED);
}

static void test_half_open_stray_record_ignored(void **state)
{
    struct brk_breaker b;
    int64_t t = T0 + BRK_OPEN_MS_DEFAULT;

    (void)state;
    brk_init(&b, NULL);
    trip(&b, T0);
    assert_true(brk_allow(&b, t));
    brk_record(&b, true, t);
    assert_int_equal(b.probes_out, 0);
    assert_int_equal(b.probes_ok, 1);
    /* Nothing outstanding: a stray failure does not reopen it. */
    brk_record(&b, false, t);
    assert_int_equal(b.state, BRK_HALF_OPEN);
    assert_int_equal(b.probes_ok, 1);
}

static void test_sanitised_config(void **state)
{
    struct brk_config c;
    struct brk_breaker b;
    int64_t t = T0 + 1;

    (void)state;
    memset(&c, 0, sizeof c); /* everything zero: nothing may wedge */
    brk_init(&b, &c);
    assert_int_equal(b.cfg.window, 1);
    assert_int_equal(b.cfg.min_calls, 1);
    assert_int_equal(b.cfg.probes, 1);
    call(&b, false, T0); /* both triggers disabled: stays closed */
    assert_int_equal(b.state, BRK_CLOSED);
    c.consecutive = 1;
    brk_init(&b, &c);
    call(&b, false, T0);
    assert_int_equal(b.state, BRK_OPEN);
    /* open_ms 0: half-open at once; probes 1: one success closes. */
    assert_true(brk_allow(&b, t));
    assert_false(brk_allow(&b, t));
    brk_record(&b, true, t);
    assert_int_equal(b.state, BRK_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_opens_after_consecutive),
        cmocka_unit_test(test_success_resets_consecutive),
        cmocka_unit_test(test_rate_opens_at_min_calls),
        cmocka_unit_test(test_rate_below_min_calls),
        cmocka_unit_test(test_rate_alternating_defaults),
        cmocka_unit_test(test_rate_window_slides),
        cmocka_unit_test(test_window_max),
        cmocka_unit_test(test_open_refuses_until_cooldown),
        cmocka_unit_test(test_half_open_admits_probes),
        cmocka_unit_test(test_probes_succeed_close),
        cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_state_at_pure),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_late_record_while_open),
        cmocka_unit_test(test_half_open_stray_record_ignored),
        cmocka_unit_test(test_sanitised_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
