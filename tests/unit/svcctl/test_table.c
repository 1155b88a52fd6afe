/* test_table.c: unit tests for svcctl/table: columns as wide as their
 * widest cell (counted in characters, not bytes), two spaces apart, no
 * trailing blanks, NULL cells as "-", control characters as spaces, and
 * the column-count bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "svcctl/table.h"

static void test_aligned_columns(void **state)
{
    static const char *const head[] = {"ID", "HEALTH", "N"};
    static const char *const r1[] = {"web-1", "passing", "10"};
    static const char *const r2[] = {"a", "critical", "7"};
    struct tbl *t = tbl_new(3, head);
    char *out;

    (void)state;
    assert_non_null(t);
    assert_int_equal(tbl_rows(t), 0);
    assert_int_equal(tbl_add(t, r1), 0);
    assert_int_equal(tbl_add(t, r2), 0);
    assert_int_equal(tbl_rows(t), 2);
    out = tbl_render(t);
    assert_non_null(out);
    assert_string_equal(out, "ID     HEALTH    N\n"
                             "web-1  passing   10\n"
                             "a      critical  7\n");
    free(out);
    tbl_free(t);
}

static void test_header_only_and_trailing_blanks(void **state)
{
    static const char *const head[] = {"CHECK", "OUTPUT"};
    static const char *const row[] = {"a-long-check-id", ""};
    struct tbl *t = tbl_new(2, head);
    char *out;

    (void)state;
    assert_non_null(t);
    out = tbl_render(t);
    assert_string_equal(out, "CHECK  OUTPUT\n");
    free(out);
    /* an empty last cell leaves no blanks at the end of its line */
    assert_int_equal(tbl_add(t, row), 0);
    out = tbl_render(t);
    assert_string_equal(out, "CHECK            OUTPUT\n"
                             "a-long-check-id\n");
    free(out);
    tbl_free(t);
}

static void test_null_and_control_characters(void **state)
{
    static const char *const head[] = {"A", "B", "C"};
    static const char *const row[] = {NULL, "two\nlines\tand tab", "x"};
    struct tbl *t = tbl_new(3, head);
    char *out;

    (void)state;
    assert_non_null(t);
    assert_int_equal(tbl_add(t, row), 0);
    out = tbl_render(t);
    assert_string_equal(out, "A  B                  C\n"
                             "-  two lines and tab  x\n");
    free(out);
    tbl_free(t);
}

static void test_width_in_characters(void **state)
{
    static const char *const head[] = {"NAME", "X"};
    static const char *const row[] = {"\xc3\xa9t\xc3\xa9s", "1"}; /* "étés": 4 characters */
    struct tbl *t = tbl_new(2, head);
    char *out;

    (void)state;
    assert_non_null(t);
    assert_int_equal(tbl_add(t, row), 0);
    out = tbl_render(t);
    assert_string_equal(out, "NAME  X\n"
                             "\xc3\xa9t\xc3\xa9s  1\n");
    free(out);
    tbl_free(t);
}

static void test_column_bounds(void **state)
{
    const char *head[33];
    struct tbl *t;
    size_t i;

    (void)state;
    for (i = 0; i < 33; i++)
        head[i] = "h";
    assert_null(tbl_new(0, head));
    assert_null(tbl_new(33, head));
    t = tbl_new(32, head);
    assert_non_null(t);
    tbl_free(t);
    tbl_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_columns),
        cmocka_unit_test(test_header_only_and_trailing_blanks),
        cmocka_unit_test(test_null_and_control_characters),
        cmocka_unit_test(test_width_in_characters),
        cmocka_unit_test(test_column_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
