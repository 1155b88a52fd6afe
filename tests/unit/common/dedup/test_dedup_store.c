/* test_dedup_store.c: unit tests of the deduplicating message store
 * (common/dedup/store.h): insert and lookup, the duplicate and
 * conflict rules, insertion order, rollback with ds_truncate, keys it must
 * refuse, and many messages (the table stays O(1) per operation). */
#include "dedup/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"

static int setup(void **state)
{
    struct ds_store *s = ds_new();

    if (!s)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    ds_free(*state);
    return 0;
}

/* Put and assert that ds_put succeeded; returns the outcome. */
static enum ds_outcome put(struct ds_store *s, const char *uuid, const char *msg, int64_t ts)
{
    enum ds_outcome out = DS_CONFLICT;

    assert_int_equal(ds_put(s, uuid, msg, strlen(msg), ts, &out), 0);
    return out;
}

/* A canonical-looking uuid made from i. */
static void uuid_of(unsigned i, char out[DS_KEY_MAX + 1])
{
    snprintf(out, DS_KEY_MAX + 1, "%08x-0000-4000-8000-%012u", i, i);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_empty(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(ds_count(s), 0);
    assert_false(ds_get(s, U1, &v));
    assert_false(ds_at(s, 0, &v));
    ds_truncate(s, 0);
    assert_int_equal(ds_count(s), 0);
}

static void test_insert_and_get(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(put(s, U1, "hello", 1700000000123LL), DS_STORED);
    assert_int_equal(ds_count(s), 1);
    assert_true(ds_get(s, U1, &v));
    assert_string_equal(v.uuid, U1);
    assert_string_equal(v.msg, "hello");
    assert_int_equal(v.len, 5);
    assert_int_equal(v.ts, 1700000000123LL);
    assert_true(ds_get(s, U1, NULL));
    assert_false(ds_get(s, U2, &v));
}

/* The store copies what it is given: the caller's buffers may change. */
static void test_insert_copies(void **state)
{
    struct ds_store *s = *state;
    char uuid[] = U1;
    char msg[] = "original";
    struct ds_view v;

    assert_int_equal(put(s, uuid, msg, 1), DS_STORED);
    memset(msg, 'x', sizeof(msg) - 1);
    uuid[0] = '9';
    assert_true(ds_get(s, U1, &v));
    assert_string_equal(v.msg, "original");
}

/* Messages are bytes: embedded NULs and non-ASCII survive, len counts them. */
static void test_binary_msg(void **state)
{
    struct ds_store *s = *state;
    const char msg[] = {'a', '\0', 'b', '\n', (char)0xc3, (char)0xa9};
    enum ds_outcome out = DS_CONFLICT;
    struct ds_view v;

    assert_int_equal(ds_put(s, U1, msg, sizeof(msg), 5, &out), 0);
    assert_int_equal(out, DS_STORED);
    assert_true(ds_get(s, U1, &v));
    assert_int_equal(v.len, sizeof(msg));
    assert_memory_equal(v.msg, msg, sizeof(msg));
    assert_int_equal(v.msg[v.len], '\0');
    /* Same bytes: duplicate; same prefix up to the NUL only: conflict. */
    assert_int_equal(ds_put(s, U1, msg, sizeof(msg), 6, &out), 0);
    assert_int_equal(out, DS_DUPLICATE);
    assert_int_equal(ds_put(s, U1, msg, 1, 6, &out), 0);
    assert_int_equal(out, DS_CONFLICT);
}

static void test_duplicate(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(put(s, U1, "hello", 10), DS_STORED);
    assert_int_equal(put(s, U1, "hello", 20), DS_DUPLICATE);
    assert_int_equal(ds_count(s), 1);
    /* The first timestamp stays. */
    assert_true(ds_get(s, U1, &v));
    assert_int_equal(v.ts, 10);
}

static void test_conflict(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(put(s, U1, "hello", 10), DS_STORED);
    assert_int_equal(put(s, U1, "goodbye", 20), DS_CONFLICT);
    assert_int_equal(put(s, U1, "hell", 20), DS_CONFLICT);
    assert_int_equal(put(s, U1, "hello!", 20), DS_CONFLICT);
    assert_int_equal(ds_count(s), 1);
    assert_true(ds_get(s, U1, &v));
    assert_string_equal(v.msg, "hello");
    assert_int_equal(v.ts, 10);
    /* Still a duplicate of the original afterwards. */
    assert_int_equal(put(s, U1, "hello", 30), DS_DUPLICATE);
}

/* Keys are compared byte for byte: the caller normalises case. */
static void test_keys_are_exact(void **state)
{
    struct ds_store *s = *state;

    assert_int_equal(put(s, "aaaaaaaa-1111-4111-8111-111111111111", "x", 1), DS_STORED);
    assert_int_equal(put(s, "AAAAAAAA-1111-4111-8111-111111111111", "y", 1), DS_STORED);
    assert_int_equal(ds_count(s), 2);
}

static void test_bad_keys_refused(void **state)
{
    struct ds_store *s = *state;
    enum ds_outcome out = DS_STORED;
    char long_key[DS_KEY_MAX + 2];

    memset(long_key, 'a', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(ds_put(s, "", "x", 1, 0, &out), -1);
    assert_int_equal(ds_put(s, long_key, "x", 1, 0, &out), -1);
    assert_int_equal(ds_count(s), 0);
    assert_false(ds_get(s, "", NULL));
    assert_false(ds_get(s, long_key, NULL));
}

static void test_order(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(put(s, U3, "third-key first", 3), DS_STORED);
    assert_int_equal(put(s, U1, "one", 1), DS_STORED);
    assert_int_equal(put(s, U3, "third-key first", 9), DS_DUPLICATE);
    assert_int_equal(put(s, U1, "conflict", 9), DS_CONFLICT);
    assert_int_equal(put(s, U2, "two", 2), DS_STORED);
    assert_int_equal(ds_count(s), 3);
    assert_true(ds_at(s, 0, &v));
    assert_string_equal(v.uuid, U3);
    assert_true(ds_at(s, 1, &v));
    assert_string_equal(v.uuid, U1);
    assert_true(ds_at(s, 2, &v));
    assert_string_equal(v.uuid, U2);
    assert_string_equal(v.msg, "two");
    assert_false(ds_at(s, 3, &v));
}

/* ds_truncate undoes the newest inserts: they are forgotten entirely and
 * can be stored again; older ones are untouched. */
static void test_truncate_rolls_back(void **state)
{
    struct ds_store *s = *state;
    struct ds_view v;

    assert_int_equal(put(s, U1, "one", 1), DS_STORED);
    assert_int_equal(put(s, U2, "two", 2), DS_STORED);
    assert_int_equal(put(s, U3, "three", 3), DS_STORED);
    ds_truncate(s, 1);
    assert_int_equal(ds_count(s), 1);
    assert_true(ds_get(s, U1, &v));
    assert_false(ds_get(s, U2, NULL));
    assert_false(ds_get(s, U3, NULL));
    assert_int_equal(put(s, U3, "three again", 4), DS_STORED);
    assert_true(ds_at(s, 1, &v));
    assert_string_equal(v.msg, "three again");
    ds_truncate(s, 5); /* more than there are: nothing happens */
    assert_int_equal(ds_count(s), 2);
    ds_truncate(s, 0);
    assert_int_equal(ds_count(s), 0);
    assert_false(ds_get(s, U1, NULL));
}

/* 200000 messages: every one found, order kept, duplicates recognised, and
 * the time per operation does not grow with the table (O(1)): the second
 * half of the inserts costs about as much as the first. */
static void test_many(void **state)
{
    struct ds_store *s = *state;
    const unsigned n = 200000;
    char uuid[DS_KEY_MAX + 1];
    char msg[64];
    struct ds_view v;
    double t0 = 0, t1 = 0, t2 = 0;
    unsigned i;

    t0 = now_s();
    for (i = 0; i < n; i++) {
        if (i == n / 2)
            t1 = now_s();
        uuid_of(i, uuid);
        snprintf(msg, sizeof(msg), "message %u", i);
        assert_int_equal(put(s, uuid, msg, i), DS_STORED);
    }
    t2 = now_s();
    assert_int_equal(ds_count(s), n);
    for (i = 0; i < n; i += 997) {
        uuid_of(i, uuid);
        snprintf(msg, sizeof(msg), "message %u", i);
        assert_true(ds_get(s, uuid, &v));
        assert_string_equal(v.msg, msg);
        assert_int_equal(v.ts, i);
        assert_true(ds_at(s, i, &v));
        assert_string_equal(v.uuid, uuid);
        assert_int_equal(put(s, uuid, msg, 0), DS_DUPLICATE);
    }
    assert_int_equal(ds_count(s), n);
    print_message("[  BENCH   ] %u inserts: first half %.3f s, second half %.3f s\n", n, t1 - t0,
                  t2 - t1);
    /* Generous bound (sanitizers, noisy machines); a linear scan would be
     * thousands of times slower in the second half. */
    assert_true(t2 - t1 < 10 * (t1 - t0) + 0.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
