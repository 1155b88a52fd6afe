/* test_uri.c: unit tests for common/http/uri.c, the server's pure text
 * helpers: form decoding, query splitting (and its NUL rule), and the
 * scrubbing and capping of echoed text. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "http/uri.h"

static void test_form_decode(void **state)
{
    char s[] = "a+b%41%4a%zz%4";

    (void)state;
    assert_int_equal(hu_form_decode(s), strlen("a bAJ%zz%4"));
    assert_string_equal(s, "a bAJ%zz%4");
}

static void test_query_split(void **state)
{
    char q[] = "limit=10&&after=a%2Fb&flag&=v&name=x+y";
    const char *k[8], *v[8];
    int bad = -7;

    (void)state;
    assert_int_equal(hu_query_split(q, k, v, 8, &bad), 5);
    assert_int_equal(bad, -7);
    assert_string_equal(k[0], "limit");
    assert_string_equal(v[0], "10");
    assert_string_equal(v[1], "a/b");
    assert_string_equal(k[2], "flag");
    assert_string_equal(v[2], "");
    assert_string_equal(k[3], "");
    assert_string_equal(v[4], "x y");
}

static void test_query_split_is_bounded(void **state)
{
    char q[] = "a=1&b=2&c=3";
    const char *k[2], *v[2];

    (void)state;
    assert_int_equal(hu_query_split(q, k, v, 2, NULL), 2);
    assert_string_equal(k[1], "b");
}

/* Finding (hostile HTTP): %00 decoded to a NUL byte and cut the value. */
static void test_query_split_refuses_nul(void **state)
{
    char q1[] = "limit=5&name=ab%00cd";
    char q2[] = "x%00y=1";
    const char *k[4], *v[4];
    int bad = -1;

    (void)state;
    assert_int_equal(hu_query_split(q1, k, v, 4, &bad), -1);
    assert_int_equal(bad, 1);
    assert_string_equal(k[1], "name");
    assert_int_equal(hu_query_split(q2, k, v, 4, &bad), -1);
    assert_int_equal(bad, 0);
    assert_string_equal(k[0], "x");
}

static void test_echo_scrub(void **state)
{
    char bad[16] = "a\xff\xc3\xa9\xed\xa0\x80z"; /* U+00E9 stays; a surrogate goes */
    char longer[64];

    (void)state;
    hu_echo_scrub(bad, 10);
    assert_string_equal(bad, "a?\xc3\xa9???z");
    memset(longer, 0, sizeof(longer));
    memcpy(longer, "abcd\xc3\xa9", 6);
    hu_echo_scrub(longer, 5); /* the two-byte character does not fit: cut before it */
    assert_string_equal(longer, "abcd...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_decode),
        cmocka_unit_test(test_query_split),
        cmocka_unit_test(test_query_split_is_bounded),
        cmocka_unit_test(test_query_split_refuses_nul),
        cmocka_unit_test(test_echo_scrub),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
