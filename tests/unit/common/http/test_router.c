/* test_router.c: unit tests for common/http/router.c, the route table:
 * pattern checks and the table's capacity, segment matching, "{name}"
 * captures with percent-decoding, later routes winning, the method mask of
 * a 405, and paths too long for the stack copy or with too many segments.
 * No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "http/router.h"

#define GET    1u
#define POST   2u
#define DELETE 8u

static int setup(void **state)
{
    struct hr_table *t = hr_new();

    *state = t;
    return t ? 0 : -1;
}

static int teardown(void **state)
{
    hr_free(*state);
    return 0;
}

static void test_add_returns_indexes_and_refuses_bad_patterns(void **state)
{
    struct hr_table *t = *state;

    assert_int_equal(hr_add(t, GET, "/health"), 0);
    assert_int_equal(hr_add(t, GET, "/v1/services/{id}"), 1);
    assert_string_equal(hr_pattern(t, 1), "/v1/services/{id}");
    assert_int_equal(hr_add(t, GET, "relative"), -1);
    assert_int_equal(hr_add(t, GET, "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"), -1);
    assert_int_equal(hr_add(t, GET, "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16"), 2);
}

static void test_table_is_bounded(void **state)
{
    struct hr_table *t = *state;
    int i;

    for (i = 0; i < LIM_ROUTES_MAX; i++)
        assert_int_equal(hr_add(t, GET, "/x"), i);
    assert_int_equal(hr_add(t, GET, "/y"), -1);
}

static void test_literal_and_param_segments(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET, "/v1/services/{id}/renew"), 0);
    assert_int_equal(hr_add(t, GET, "/a/{x}/b/{y}"), 1);

    assert_int_equal(hr_lookup(t, "/v1/services/web-1/renew", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 0);
    assert_string_equal(hr_param(&p, "{id}"), "web-1");
    assert_null(hr_param(&p, "id")); /* names keep their braces */
    hr_params_clear(&p);

    assert_int_equal(hr_lookup(t, "/a/1%2F2/b/%E2%82%AC", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 1);
    assert_string_equal(hr_param(&p, "{x}"), "1/2"); /* decoded after the split */
    assert_string_equal(hr_param(&p, "{y}"), "\xE2\x82\xAC");
    assert_int_equal(p.n, 2);
    hr_params_clear(&p);
    assert_int_equal(p.n, 0);

    /* segment counts must agree; literals must be equal */
    assert_int_equal(hr_lookup(t, "/v1/services/web-1", GET, &route, &allowed, &p), HR_NOT_FOUND);
    assert_int_equal(hr_lookup(t, "/v1/services/web-1/renew/x", GET, &route, &allowed, &p),
                     HR_NOT_FOUND);
    assert_int_equal(hr_lookup(t, "/v1/service/web-1/renew", GET, &route, &allowed, &p),
                     HR_NOT_FOUND);
    assert_int_equal(p.n, 0);
}

/* Finding (hostile HTTP): "%00" decoded to a NUL byte and cut the value
 * (an echoed id was truncated there). Now HR_NUL_PARAM, naming the route,
 * with the bad value last in params. */
static void test_nul_in_a_value(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET, "/a/{x}/b/{y}"), 0);
    assert_int_equal(hr_lookup(t, "/a/ok/b/ab%00cd", GET, &route, &allowed, &p), HR_NUL_PARAM);
    assert_int_equal(route, 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.names[1], "{y}");
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/a/%00/b/x", GET, &route, &allowed, &p), HR_NUL_PARAM);
    assert_int_equal(p.n, 1);
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/a/%01/b/x", GET, &route, &allowed, &p), HR_FOUND);
    hr_params_clear(&p);
}

/* A "{name*}" last segment takes the rest of the path, slashes and all,
 * decoded, with any number of segments; a NUL in it is HR_NUL_PARAM. */
static void test_rest_capture(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET | 4u, "/v1/kv/{key*}"), 0);
    assert_int_equal(hr_add(t, GET, "/v1/{x}/{key*}"), -1); /* only a literal prefix */
    assert_int_equal(hr_add(t, GET, "/v1/k*/{key}"), 1);    /* a star elsewhere is a literal */
    assert_int_equal(hr_lookup(t, "/v1/kv/a/b/c", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 0);
    assert_string_equal(hr_param(&p, "{key}"), "a/b/c");
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/v1/kv/", GET, &route, &allowed, &p), HR_FOUND);
    assert_string_equal(hr_param(&p, "{key}"), "");
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/v1/kv/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/%41", GET,
                               &route, &allowed, &p),
                     HR_FOUND);
    assert_string_equal(hr_param(&p, "{key}"), "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/A");
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/v1/kv//x", GET, &route, &allowed, &p), HR_FOUND);
    assert_string_equal(hr_param(&p, "{key}"), "/x"); /* not collapsed: the caller judges */
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/v1/kv/a%00b", GET, &route, &allowed, &p), HR_NUL_PARAM);
    assert_int_equal(p.n, 1);
    hr_params_clear(&p);
    assert_int_equal(hr_lookup(t, "/v1/kv/a", POST, &route, &allowed, &p), HR_NOT_ALLOWED);
    assert_int_equal(allowed, GET | 4u);
    assert_int_equal(hr_lookup(t, "/v1/kv", GET, &route, &allowed, &p), HR_NOT_FOUND);
}

static void test_slashes(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET, "/"), 0);
    assert_int_equal(hr_add(t, GET, "/health"), 1);
    assert_int_equal(hr_lookup(t, "/", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 0);
    assert_int_equal(hr_lookup(t, "//health", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 1);
    assert_int_equal(hr_lookup(t, "/health/", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 1);
}

static void test_later_route_wins(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET, "/health"), 0);
    assert_int_equal(hr_add(t, GET, "/{any}"), 1);
    assert_int_equal(hr_lookup(t, "/health", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 1);
    assert_string_equal(hr_param(&p, "{any}"), "health");
    hr_params_clear(&p);
    assert_int_equal(hr_add(t, GET, "/health"), 2);
    assert_int_equal(hr_lookup(t, "/health", GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 2);
    assert_int_equal(p.n, 0);
}

static void test_other_method_gives_the_mask(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;

    assert_int_equal(hr_add(t, GET, "/v1/services/{id}"), 0);
    assert_int_equal(hr_add(t, DELETE, "/v1/services/{id}"), 1);
    assert_int_equal(hr_add(t, POST, "/v1/services"), 2);
    assert_int_equal(hr_lookup(t, "/v1/services/x", POST, &route, &allowed, &p), HR_NOT_ALLOWED);
    assert_int_equal(allowed, GET | DELETE);
    assert_int_equal(p.n, 0);
    assert_int_equal(hr_lookup(t, "/v1/services/x", DELETE, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(route, 1);
    hr_params_clear(&p);
}

static void test_long_and_deep_paths(void **state)
{
    struct hr_table *t = *state;
    struct hr_params p;
    unsigned allowed = 0;
    int route = -1;
    char path[1024];

    assert_int_equal(hr_add(t, GET, "/files/{name}"), 0);
    /* longer than the stack copy: split on the heap, same answer */
    strcpy(path, "/files/");
    memset(path + 7, 'n', 600);
    path[607] = '\0';
    assert_int_equal(hr_lookup(t, path, GET, &route, &allowed, &p), HR_FOUND);
    assert_int_equal(strlen(hr_param(&p, "{name}")), 600);
    hr_params_clear(&p);
    /* more segments than any route may have: not found */
    assert_int_equal(
        hr_lookup(t, "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", GET, &route, &allowed, &p),
        HR_NOT_FOUND);
}

static void test_free_accepts_null(void **state)
{
    struct hr_params p;

    (void)state;
    memset(&p, 0, sizeof(p));
    hr_free(NULL);
    hr_params_clear(&p);
    assert_int_equal(p.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_returns_indexes_and_refuses_bad_patterns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_table_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_and_param_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_a_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_route_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_method_gives_the_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_and_deep_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_accepts_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_capture, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
