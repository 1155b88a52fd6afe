/* test_backoff.c: unit tests for common/backoff through the public header:
 * the ceiling doubles then caps and never overflows, draws stay inside
 * [0, ceiling] and really spread, an injected random source reaches both
 * ends exactly, and the deadline check allows landing exactly on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "resilience/backoff.h"

#define N_DRAWS 10000

/* An injected source answering the bound itself: the largest delay. */
static uint64_t rand_max(uint64_t bound, void *arg)
{
    (void)arg;
    return bound;
}

/* An injected source answering 0: no delay. */
static uint64_t rand_zero(uint64_t bound, void *arg)
{
    (void)bound;
    (void)arg;
    return 0;
}

/* An injected source answering the fixed value *arg, whatever the bound. */
static uint64_t rand_fixed(uint64_t bound, void *arg)
{
    (void)bound;
    return *(const uint64_t *)arg;
}

/* A default policy: base 100, cap 2000, the process-wide PRNG. */
static struct bo_policy policy_default(void)
{
    struct bo_policy p = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, NULL, NULL};

    return p;
}

static void test_ceiling_doubles_then_caps(void **state)
{
    static const int64_t want[] = {100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000};
    struct bo_policy p = policy_default();
    unsigned a;

    (void)state;
    for (a = 0; a < sizeof want / sizeof want[0]; a++)
        assert_int_equal(bo_ceiling_ms(&p, a), want[a]);
    assert_int_equal(bo_ceiling_ms(NULL, 2), 400); /* NULL: the defaults */
}

static void test_ceiling_huge_attempt(void **state)
{
    struct bo_policy p = policy_default();
    struct bo_policy big = {INT64_MAX / 4, INT64_MAX, NULL, NULL};
    unsigned a;

    (void)state;
    for (a = 5; a < 200; a++)
        assert_int_equal(bo_ceiling_ms(&p, a), 2000);
    assert_int_equal(bo_ceiling_ms(&p, 100), 2000);
    assert_int_equal(bo_ceiling_ms(&p, UINT32_MAX), 2000);
    /* Near the top of int64: two doublings fit, the third hits the cap
     * instead of overflowing. */
    assert_int_equal(bo_ceiling_ms(&big, 0), INT64_MAX / 4);
    assert_int_equal(bo_ceiling_ms(&big, 1), (INT64_MAX / 4) * 2);
    assert_int_equal(bo_ceiling_ms(&big, 2), (INT64_MAX / 4) * 4);
    assert_int_equal(bo_ceiling_ms(&big, 3), INT64_MAX);
    assert_int_equal(bo_ceiling_ms(&big, 100), INT64_MAX);
}

static void test_ceiling_degenerate(void **state)
{
    struct bo_policy zero_base = {0, 2000, NULL, NULL};
    struct bo_policy neg_cap = {100, -1, NULL, NULL};
    struct bo_policy base_over_cap = {5000, 2000, NULL, NULL};

    (void)state;
    assert_int_equal(bo_ceiling_ms(&zero_base, 3), 0);
    assert_int_equal(bo_ceiling_ms(&neg_cap, 3), 0);
    assert_int_equal(bo_ceiling_ms(&base_over_cap, 0), 2000);
    assert_int_equal(bo_delay_ms(&zero_base, 3), 0);
}

static void test_delay_within_bounds(void **state)
{
    struct bo_policy p = policy_default();
    unsigned a;
    int k;

    (void)state;
    for (a = 0; a < 12; a++) {
        int64_t ceiling = bo_ceiling_ms(&p, a);

        for (k = 0; k < 2000; k++) {
            int64_t d = bo_delay_ms(&p, a);

            assert_in_range(d, 0, ceiling);
        }
    }
    for (k = 0; k < 1000; k++)
        assert_in_range(bo_delay_ms(&p, 100), 0, 2000);
}

static void test_injected_extremes(void **state)
{
    struct bo_policy hi = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, rand_max, NULL};
    struct bo_policy lo = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, rand_zero, NULL};
    unsigned a;

    (void)state;
    for (a = 0; a < 10; a++) {
        assert_int_equal(bo_delay_ms(&hi, a), bo_ceiling_ms(&hi, a));
        assert_int_equal(bo_delay_ms(&lo, a), 0);
    }
    assert_int_equal(bo_delay_ms(&hi, 100), 2000);
}

static void test_injected_out_of_range_clamped(void **state)
{
    uint64_t v = UINT64_MAX;
    struct bo_policy p = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, rand_fixed, &v};

    (void)state;
    assert_int_equal(bo_delay_ms(&p, 0), 100);
    assert_int_equal(bo_delay_ms(&p, 9), 2000);
}

static void test_jitter_spreads(void **state)
{
    struct bo_policy p = policy_default();
    int64_t ceiling = bo_ceiling_ms(&p, 3);
    double sum = 0.0;
    double mean;
    int low = 0;
    int high = 0;
    int k;

    (void)state;
    assert_int_equal(ceiling, 800);
    for (k = 0; k < N_DRAWS; k++) {
        int64_t d = bo_delay_ms(&p, 3);

        sum += (double)d;
        if (d < ceiling / 4)
            low++;
        if (d > ceiling - ceiling / 4)
            high++;
    }
    mean = sum / N_DRAWS;
    /* Uniform on [0, 800]: mean 400, standard error ~2.3 over 10,000. */
    assert_true(mean > 380.0 && mean < 420.0);
    /* Each outer quarter should hold ~2,500 draws. */
    assert_in_range(low, 2000, 3000);
    assert_in_range(high, 2000, 3000);
}

static void test_inclusive_bound_unbiased(void **state)
{
    /* Ceiling 2: the draws 0, 1 and 2 should each come up about a third
     * of the time, the top value included. */
    struct bo_policy p = {2, 2, NULL, NULL};
    int count[3] = {0, 0, 0};
    int k;

    (void)state;
    for (k = 0; k < 30000; k++) {
        int64_t d = bo_delay_ms(&p, 0);

        assert_in_range(d, 0, 2);
        count[d]++;
    }
    for (k = 0; k < 3; k++)
        assert_in_range(count[k], 9000, 11000);
}

static void test_deadline(void **state)
{
    uint64_t v = 300;
    struct bo_policy p = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, rand_fixed, &v};

    (void)state;
    /* attempt 2: ceiling 400, the source answers 300. */
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 2000), 300);
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 1300), 300); /* equal: ok */
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 1299), -1);
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 1000), -1);
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 900), -1); /* already past */
    v = 0;
    assert_int_equal(bo_next_delay_ms(&p, 2, 1000, 1000), 0);
    /* Extreme clocks do not overflow. */
    v = 300;
    assert_int_equal(bo_next_delay_ms(&p, 2, INT64_MAX - 300, INT64_MAX), 300);
    assert_int_equal(bo_next_delay_ms(&p, 2, INT64_MAX - 299, INT64_MAX), -1);
    assert_int_equal(bo_next_delay_ms(&p, 2, INT64_MIN, INT64_MIN + 299), -1);
}

static void test_deadline_default_prng(void **state)
{
    struct bo_policy p = policy_default();
    int k;

    (void)state;
    for (k = 0; k < 1000; k++) {
        int64_t d = bo_next_delay_ms(&p, 4, 5000, 5000 + BO_DEADLINE_MS_DEFAULT);

        assert_in_range(d, 0, 1600);
    }
    /* Only 10 ms left against a ceiling of 1600: nearly always -1, never
     * a delay past the deadline. */
    for (k = 0; k < 1000; k++) {
        int64_t d = bo_next_delay_ms(&p, 4, 5000, 5010);

        assert_true(d == -1 || (d >= 0 && d <= 10));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_then_caps),
        cmocka_unit_test(test_ceiling_huge_attempt),
        cmocka_unit_test(test_ceiling_degenerate),
        cmocka_unit_test(test_delay_within_bounds),
        cmocka_unit_test(test_injected_extremes),
        cmocka_unit_test(test_injected_out_of_range_clamped),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_inclusive_bound_unbiased),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_deadline_default_prng),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
