/* test_idem.c: unit tests of the facade's table of Idempotency-Keys taken
 * (facade-service/idem.h): unknown, same and other message; a key keeps its
 * first message; either case of a uuid is one key; bad uuids; the oldest
 * key forgotten past the bound, and only it. */
#include "facade-service/idem.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define U1 "0b9b6f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
#define U2 "0b9b6f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5c"

static void test_same_other_unknown(void **state)
{
    struct idm_table *t = idm_new(0);

    (void)state;
    assert_non_null(t);
    assert_int_equal(idm_check(t, U1, "hello", 5), IDM_UNKNOWN);
    assert_int_equal(idm_take(t, U1, "hello", 5), 0);
    assert_int_equal(idm_check(t, U1, "hello", 5), IDM_SAME);
    assert_int_equal(idm_check(t, U1, "hellO", 5), IDM_OTHER);
    assert_int_equal(idm_check(t, U1, "hello!", 6), IDM_OTHER);
    assert_int_equal(idm_check(t, U1, "hell", 4), IDM_OTHER);
    assert_int_equal(idm_check(t, U1, "", 0), IDM_OTHER);
    assert_int_equal(idm_check(t, U2, "hello", 5), IDM_UNKNOWN);
    /* a key keeps its first message */
    assert_int_equal(idm_take(t, U1, "other", 5), 0);
    assert_int_equal(idm_check(t, U1, "hello", 5), IDM_SAME);
    assert_int_equal(idm_check(t, U1, "other", 5), IDM_OTHER);
    assert_int_equal(idm_count(t), 1);
    /* a text with a NUL byte inside is compared over its length */
    assert_int_equal(idm_take(t, U2, "a\0b", 3), 0);
    assert_int_equal(idm_check(t, U2, "a\0c", 3), IDM_OTHER);
    assert_int_equal(idm_check(t, U2, "a\0b", 3), IDM_SAME);
    idm_free(t);
}

static void test_case_and_bad_uuids(void **state)
{
    struct idm_table *t = idm_new(0);

    (void)state;
    assert_int_equal(idm_take(t, U1, "x", 1), 0);
    assert_int_equal(idm_check(t, "0B9B6F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "y", 1), IDM_OTHER);
    assert_int_equal(idm_take(t, "not-a-uuid", "x", 1), -1);
    assert_int_equal(idm_take(t, "0b9b6f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5", "x", 1), -1);
    assert_int_equal(idm_take(t, "0b9b6f5e11c2d-4e3f-8a9b-0c1d2e3f4a5b", "x", 1), -1);
    assert_int_equal(idm_take(t, U1 "0", "x", 1), -1);
    assert_int_equal(idm_check(t, "not-a-uuid", "x", 1), IDM_UNKNOWN);
    assert_int_equal(idm_count(t), 1);
    idm_free(t);
}

static void uuid_of(unsigned n, char out[37])
{
    snprintf(out, 37, "%08x-0000-4000-8000-000000000000", n);
}

static void test_oldest_forgotten_past_the_bound(void **state)
{
    struct idm_table *t = idm_new(100);
    char u[37];
    unsigned n;

    (void)state;
    for (n = 0; n < 150; n++) {
        uuid_of(n, u);
        assert_int_equal(idm_take(t, u, "m", 1), 0);
        assert_true(idm_count(t) <= 100);
    }
    assert_int_equal(idm_count(t), 100);
    for (n = 0; n < 150; n++) {
        uuid_of(n, u);
        assert_int_equal(idm_check(t, u, "z", 1), n < 50 ? IDM_UNKNOWN : IDM_OTHER);
    }
    /* taking a key already there evicts nothing */
    uuid_of(149, u);
    assert_int_equal(idm_take(t, u, "m", 1), 0);
    uuid_of(50, u);
    assert_int_equal(idm_check(t, u, "m", 1), IDM_SAME);
    idm_free(t);
    idm_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_other_unknown),
        cmocka_unit_test(test_case_and_bad_uuids),
        cmocka_unit_test(test_oldest_forgotten_past_the_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
