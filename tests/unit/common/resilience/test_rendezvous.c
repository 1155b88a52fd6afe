/* test_rendezvous.c: unit tests for common/rendezvous through the public
 * header: pinned weights (a change of hash must be noticed, since every
 * service instance has to agree on it), rankings that are deterministic
 * permutations in descending weight, an even spread of first choices, and
 * minimal disruption when one node is removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "resilience/rendezvous.h"

#define N_NODES 5
#define N_KEYS  10000
#define N_BIG   100 /* more nodes than rv_rank caches on the stack */

static const char *const nodes5[N_NODES] = {
    "10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001", "10.0.0.4:8001", "10.0.0.5:8001",
};

/* Check that order[0..n) is a permutation of 0..n-1 ranked by descending
 * weight for key, equal weights by strcmp of the names. */
static void check_ranked(const char *key, const char *const *nodes, size_t n, const size_t *order)
{
    unsigned char seen[N_BIG];
    size_t i;

    assert_true(n <= N_BIG);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < n; i++) {
        assert_true(order[i] < n);
        assert_int_equal(seen[order[i]], 0);
        seen[order[i]] = 1;
    }
    for (i = 1; i < n; i++) {
        uint64_t a = rv_weight(key, nodes[order[i - 1]]);
        uint64_t b = rv_weight(key, nodes[order[i]]);

        assert_true(a > b || (a == b && strcmp(nodes[order[i - 1]], nodes[order[i]]) <= 0));
    }
}

static void test_pinned_weights(void **state)
{
    /* Computed once (FNV-1a 64 of key, 0x00, node; splitmix64 finaliser)
     * and checked against an independent implementation. Changing them
     * reshuffles every key across a mixed-version deployment. */
    (void)state;
    assert_int_equal(rv_weight("msg-1", "10.0.0.1:8001"), UINT64_C(0xb7243c1e1fbf67b7));
    assert_int_equal(rv_weight("msg-1", "10.0.0.2:8001"), UINT64_C(0x310a2d729210b35b));
    assert_int_equal(rv_weight("", ""), UINT64_C(0x25fc6dd36ce04b20));
    assert_int_equal(rv_weight("a3f1c2d4-0000-4000-8000-000000000001", "logging-1"),
                     UINT64_C(0xdb99ad234acd0b3b));
    assert_int_equal(rv_weight(NULL, NULL), rv_weight("", ""));
}

static void test_separator(void **state)
{
    (void)state;
    /* The pair is hashed unambiguously: moving a byte across changes it. */
    assert_true(rv_weight("ab", "c") != rv_weight("a", "bc"));
    assert_true(rv_weight("k", "n1") != rv_weight("n1", "k"));
    assert_true(rv_weight("k", "n1") != rv_weight("k", "n2"));
}

static void test_same_key_same_order(void **state)
{
    size_t first[N_NODES];
    size_t again[N_NODES];
    int k;

    (void)state;
    rv_rank("message-42", nodes5, N_NODES, first);
    check_ranked("message-42", nodes5, N_NODES, first);
    for (k = 0; k < 100; k++) {
        memset(again, 0xff, sizeof again);
        rv_rank("message-42", nodes5, N_NODES, again);
        assert_memory_equal(first, again, sizeof first);
    }
}

static void test_order_is_permutation(void **state)
{
    const char *big[N_BIG];
    char names[N_BIG][32];
    size_t order[N_BIG];
    char key[32];
    size_t i;
    int k;

    (void)state;
    for (i = 0; i < N_BIG; i++) {
        snprintf(names[i], sizeof names[i], "node-%zu", i);
        big[i] = names[i];
    }
    for (k = 0; k < 200; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        rv_rank(key, nodes5, N_NODES, order);
        check_ranked(key, nodes5, N_NODES, order);
        rv_rank(key, big, 64, order); /* the cached path at its limit */
        check_ranked(key, big, 64, order);
        rv_rank(key, big, N_BIG, order); /* the uncached path */
        check_ranked(key, big, N_BIG, order);
    }
    rv_rank("k", nodes5, 1, order);
    assert_int_equal(order[0], 0);
    rv_rank("k", nodes5, 0, order); /* n 0: nothing to do, no write */
}

static void test_ties_by_name(void **state)
{
    /* Equal names have equal weights: ties fall to strcmp, then index. */
    const char *const dup[] = {"b", "a", "b", "a"};
    size_t order[4];

    (void)state;
    rv_rank("key", dup, 4, order);
    check_ranked("key", dup, 4, order);
    if (rv_weight("key", "a") > rv_weight("key", "b")) {
        assert_int_equal(order[0], 1);
        assert_int_equal(order[1], 3);
        assert_int_equal(order[2], 0);
        assert_int_equal(order[3], 2);
    } else {
        assert_int_equal(order[0], 0);
        assert_int_equal(order[1], 2);
        assert_int_equal(order[2], 1);
        assert_int_equal(order[3], 3);
    }
}

static void test_first_choice_spread(void **state)
{
    unsigned count[N_NODES] = {0};
    size_t order[N_NODES];
    char key[32];
    int k;
    int i;

    (void)state;
    for (k = 0; k < N_KEYS; k++) {
        snprintf(key, sizeof key, "msg-%d", k);
        rv_rank(key, nodes5, N_NODES, order);
        count[order[0]]++;
    }
    /* 20% each expected (2,000, standard deviation 40): 15% to 25%. */
    for (i = 0; i < N_NODES; i++)
        assert_in_range(count[i], N_KEYS * 15 / 100, N_KEYS * 25 / 100);
}

static void test_remove_node_minimal_disruption(void **state)
{
    const char *four[N_NODES - 1];
    size_t removed = 2;
    size_t order5[N_NODES];
    size_t order4[N_NODES - 1];
    char key[32];
    size_t i;
    size_t j = 0;
    int moved = 0;
    int k;

    (void)state;
    for (i = 0; i < N_NODES; i++)
        if (i != removed)
            four[j++] = nodes5[i];
    for (k = 0; k < N_KEYS; k++) {
        snprintf(key, sizeof key, "msg-%d", k);
        rv_rank(key, nodes5, N_NODES, order5);
        rv_rank(key, four, N_NODES - 1, order4);
        if (order5[0] == removed) {
            /* Its keys go to their second choice. */
            assert_string_equal(four[order4[0]], nodes5[order5[1]]);
            moved++;
        } else {
            /* Everyone else keeps the first choice, and the whole order
             * is the old one with the removed node left out. */
            size_t m = 0;

            for (i = 0; i < N_NODES; i++) {
                if (order5[i] == removed)
                    continue;
                assert_string_equal(four[order4[m]], nodes5[order5[i]]);
                m++;
            }
        }
    }
    assert_in_range(moved, N_KEYS * 15 / 100, N_KEYS * 25 / 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pinned_weights),
        cmocka_unit_test(test_separator),
        cmocka_unit_test(test_same_key_same_order),
        cmocka_unit_test(test_order_is_permutation),
        cmocka_unit_test(test_ties_by_name),
        cmocka_unit_test(test_first_choice_spread),
        cmocka_unit_test(test_remove_node_minimal_disruption),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
