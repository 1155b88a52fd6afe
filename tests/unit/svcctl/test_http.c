/* test_http.c: unit tests for the pure piece of svcctl/http: sch_escape,
 * the percent-encoding of path parameters and KV keys (with and without
 * the '/' kept). The calls themselves are tested against a real registry
 * by tests/integration/test_svcctl.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "svcctl/http.h"

static void expect_escape(const char *in, bool keep_slash, const char *want)
{
    char *got = sch_escape(in, keep_slash);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_escape(void **state)
{
    (void)state;
    expect_escape("web-1.a_b~", false, "web-1.a_b~");
    expect_escape("", false, "");
    expect_escape("a b&c=d?e#f%", false, "a%20b%26c%3Dd%3Fe%23f%25");
    expect_escape("config/x y/z", true, "config/x%20y/z");
    expect_escape("config/x", false, "config%2Fx");
    expect_escape("\xc3\xa9\x01", false, "%C3%A9%01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
