/* test_urls.c: unit tests for common/regclient/urls.c: which --registry lists
 * are accepted and how they are stored, which are refused and what the
 * error names, and the failover cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "regclient/urls.h"

static void test_single(void **state)
{
    struct ru_list l;
    char err[256] = "";

    (void)state;
    assert_int_equal(ru_parse(&l, "http://127.0.0.1:8500", err, sizeof(err)), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.current, 0);
    assert_string_equal(ru_current(&l), "http://127.0.0.1:8500");
}

static void test_list_trimmed(void **state)
{
    struct ru_list l;
    char err[256] = "";

    (void)state;
    assert_int_equal(ru_parse(&l,
                              " http://a:1/ ,http://b.example.com:8500 , "
                              "http://[::1]:9000/prefix/,HTTP://c",
                              err, sizeof(err)),
                     0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.urls[0], "http://a:1");
    assert_string_equal(l.urls[1], "http://b.example.com:8500");
    assert_string_equal(l.urls[2], "http://[::1]:9000/prefix");
    assert_string_equal(l.urls[3], "HTTP://c");
}

/* spec must be refused with an error containing want. */
static void expect_bad(const char *spec, const char *want)
{
    struct ru_list l;
    char err[256] = "";

    memset(&l, 0x5a, sizeof(l));
    if (ru_parse(&l, spec, err, sizeof(err)) != -1)
        fail_msg("accepted '%s'", spec != NULL ? spec : "(null)");
    if (strstr(err, want) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", spec != NULL ? spec : "(null)", err, want);
    assert_int_equal(l.n, 0);
    assert_string_equal(ru_current(&l), "");
}

static void test_invalid(void **state)
{
    char many[1024] = "";
    char longer[RU_URL_MAX + 32];
    int i = 0;

    (void)state;
    expect_bad("htp://x", "'htp://x' is not an http:// URL");
    expect_bad("https://x", "not an http:// URL");
    expect_bad("127.0.0.1:8500", "not an http:// URL");
    expect_bad("http://", "no host");
    expect_bad("http://:8500", "no host");
    expect_bad("http://h:0", "bad port");
    expect_bad("http://h:65536", "bad port");
    expect_bad("http://h:99999999999999999999", "bad port");
    expect_bad("http://h:", "bad port");
    expect_bad("http://h:80x", "bad character after the host");
    expect_bad("http://user@h", "bad character after the host");
    expect_bad("http://h/p?q=1", "bad character in its path");
    expect_bad("http://h/a b", "bad character in its path");
    expect_bad("http://[zz]:1", "malformed IPv6");
    expect_bad("http://[::1", "malformed IPv6");
    expect_bad("", "no URL given");
    expect_bad("  ", "no URL given");
    expect_bad(NULL, "no URL given");
    expect_bad("http://a,,http://b", "empty entry");
    expect_bad("http://a,", "empty entry");
    expect_bad("http://a, htp://b", "'htp://b' is not");
    for (i = 0; i <= RU_URLS_MAX; i++)
        strcat(many, i == 0 ? "http://h" : ",http://h");
    expect_bad(many, "more than 8 URLs");
    memset(longer, 0, sizeof(longer));
    strcpy(longer, "http://h/");
    memset(longer + strlen(longer), 'p', RU_URL_MAX);
    expect_bad(longer, "too long");
}

static void test_at_limits(void **state)
{
    struct ru_list l;
    char many[1024] = "";
    char longest[RU_URL_MAX];
    char err[256] = "";
    int i = 0;

    (void)state;
    for (i = 0; i < RU_URLS_MAX; i++)
        strcat(many, i == 0 ? "http://h" : ",http://h");
    assert_int_equal(ru_parse(&l, many, err, sizeof(err)), 0);
    assert_int_equal(l.n, RU_URLS_MAX);
    memset(longest, 'p', sizeof(longest));
    memcpy(longest, "http://h/", 9);
    longest[RU_URL_MAX - 1] = '\0'; /* RU_URL_MAX - 1 characters: fits */
    assert_int_equal(ru_parse(&l, longest, err, sizeof(err)), 0);
    assert_string_equal(l.urls[0], longest);
    /* a NULL error buffer is allowed */
    assert_int_equal(ru_parse(&l, "nope", NULL, 0), -1);
}

static void test_failover_wraps(void **state)
{
    struct ru_list l;
    char err[256] = "";

    (void)state;
    assert_int_equal(ru_parse(&l, "http://a,http://b,http://c", err, sizeof(err)), 0);
    assert_string_equal(ru_current(&l), "http://a");
    assert_string_equal(ru_failover(&l), "http://b");
    assert_string_equal(ru_current(&l), "http://b");
    assert_string_equal(ru_failover(&l), "http://c");
    assert_string_equal(ru_failover(&l), "http://a");
    assert_int_equal(l.current, 0);

    assert_int_equal(ru_parse(&l, "http://only", err, sizeof(err)), 0);
    assert_string_equal(ru_failover(&l), "http://only");
    assert_string_equal(ru_failover(&l), "http://only");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),         cmocka_unit_test(test_list_trimmed),
        cmocka_unit_test(test_invalid),        cmocka_unit_test(test_at_limits),
        cmocka_unit_test(test_failover_wraps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
