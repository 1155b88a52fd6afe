/* test_uid.c: unit tests for common/uid through the public header:
 * generated UUIDs are canonical version-4 text and distinct, and the
 * validity check accepts exactly the canonical 8-4-4-4-12 form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/uid.h"

#define N_DISTINCT 10000

static void test_generate_valid(void **state)
{
    char id[UID_STR_LEN + 1];
    size_t i;
    int k;

    (void)state;
    for (k = 0; k < 1000; k++) {
        memset(id, 'Z', sizeof id);
        uid_generate(id);
        assert_int_equal(strlen(id), UID_STR_LEN);
        assert_true(uid_is_valid(id));
        assert_int_equal(id[14], '4');           /* version 4 */
        assert_non_null(strchr("89ab", id[19])); /* RFC 4122 variant */
        for (i = 0; i < UID_STR_LEN; i++)
            assert_true(id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
                        (id[i] >= 'a' && id[i] <= 'f')); /* lower case */
    }
}

static int cmp_id(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static void test_generate_distinct(void **state)
{
    char(*ids)[UID_STR_LEN + 1] = calloc(N_DISTINCT, sizeof *ids);
    size_t i;

    (void)state;
    assert_non_null(ids);
    for (i = 0; i < N_DISTINCT; i++)
        uid_generate(ids[i]);
    qsort(ids, N_DISTINCT, sizeof *ids, cmp_id);
    for (i = 1; i < N_DISTINCT; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            free(ids);
            fail_msg("duplicate uuid");
        }
    free(ids);
}

static void test_validity_table(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"123e4567-e89b-42d3-a456-426614174000", true},
        {"123E4567-E89B-42D3-A456-426614174000", true}, /* any case */
        {"123e4567-E89b-42d3-A456-426614174000", true}, /* mixed case */
        {"00000000-0000-0000-0000-000000000000", true}, /* nil */
        {"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
        {"123e4567-e89b-12d3-a456-426614174000", true}, /* version 1 */
        {"", false},
        {"123e4567-e89b-42d3-a456-42661417400", false},   /* 35 chars */
        {"123e4567-e89b-42d3-a456-4266141740000", false}, /* 37 chars */
        {"123e4567e89b42d3a456426614174000", false},      /* no hyphens */
        {"123e4567-e89b-42d3-a456_426614174000", false},  /* wrong separator */
        {"123e456-7e89b-42d3-a456-426614174000", false},  /* hyphen moved */
        {"123e4567-e89b-42d3-a456-42661417400g", false},  /* not hex */
        {"{123e4567-e89b-42d3-a456-426614174000}", false},
        {" 123e4567-e89b-42d3-a456-426614174000", false},
        {"123e4567-e89b-42d3-a456-426614174000\n", false},
        {"123e4567-e89b-42d3-a456-4266141740-0", false},
        {"------------------------------------", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (uid_is_valid(cases[i].s) != cases[i].ok)
            fail_msg("'%s': want %s", cases[i].s, cases[i].ok ? "valid" : "invalid");
    assert_false(uid_is_valid(NULL));
}

static void test_no_overread(void **state)
{
    /* a short string at the very end of a heap block: ASan catches overreads */
    char *s = malloc(9);

    (void)state;
    assert_non_null(s);
    memcpy(s, "123e4567", 9);
    assert_false(uid_is_valid(s));
    free(s);
}

/* uid_normalize lower-cases the hex digits and keeps the hyphens. */
static void test_normalize(void **state)
{
    char out[UID_STR_LEN + 1];

    (void)state;
    uid_normalize("ABCDEF01-2345-4789-AbCd-0123456789EF", out);
    assert_string_equal(out, "abcdef01-2345-4789-abcd-0123456789ef");
    uid_normalize("abcdef01-2345-4789-abcd-0123456789ef", out);
    assert_string_equal(out, "abcdef01-2345-4789-abcd-0123456789ef");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_valid), cmocka_unit_test(test_generate_distinct),
        cmocka_unit_test(test_validity_table), cmocka_unit_test(test_no_overread),
        cmocka_unit_test(test_normalize),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
