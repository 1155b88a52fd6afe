/* test_jsonw.c: unit tests for common/jsonw: every string, integer and
 * message it writes is byte for byte what jansson's compact dump writes for
 * the same value, and the length functions bound what is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "codec/jsonw.h"

/* jansson's compact text of the string s[0..len). Caller frees. */
static char *ref_string(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *text = NULL;

    assert_non_null(j);
    text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    assert_non_null(text);
    return text;
}

/* jw's text of s[0..len) equals jansson's, and jw_string_len is exact. */
static void check_string(const char *s, size_t len)
{
    char *want = ref_string(s, len);
    size_t n = jw_string_len(s, len);
    char *got = malloc(n + 1);
    char *end = NULL;

    assert_non_null(got);
    memset(got, '#', n + 1);
    end = jw_string_put(got, s, len);
    assert_int_equal((size_t)(end - got), n);
    assert_int_equal(got[n], '#'); /* nothing written past the end */
    *end = '\0';
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static void test_every_ascii_byte(void **state)
{
    char s[4];
    int c;

    (void)state;
    for (c = 1; c < 0x80; c++) {
        s[0] = 'a';
        s[1] = (char)c;
        s[2] = 'z';
        check_string(s, 3);
        check_string(s + 1, 1);
    }
}

static void test_strings(void **state)
{
    static const char *cases[] = {
        "",
        "hello, world",
        "quote \" backslash \\ slash / tab \t newline \n cr \r",
        "\"\"\"\\\\\\",
        "\x01\x02\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", /* 2, 3 and 4 byte UTF-8 */
        "\xe2\x80\xa8 line separator stays as it is",
        "ends with an escape\n",
        "\nstarts with one",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_string(cases[i], strlen(cases[i]));
}

static void test_long_string(void **state)
{
    size_t len = 70000, i;
    char *s = malloc(len);

    (void)state;
    assert_non_null(s);
    for (i = 0; i < len; i++)
        s[i] = (char)(i % 7 == 0 ? '"' : i % 11 == 0 ? '\n' : 'a' + (char)(i % 26));
    check_string(s, len);
    free(s);
}

static void test_integers(void **state)
{
    static const int64_t cases[] = {0,         1,         -1,           9, 10, -10, 1700000000000LL,
                                    INT64_MAX, INT64_MIN, INT64_MIN + 1};
    char got[JW_INT_MAX_LEN + 1];
    char want[32];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *end = jw_int_put(got, cases[i]);

        assert_true(end - got <= JW_INT_MAX_LEN);
        *end = '\0';
        snprintf(want, sizeof(want), "%lld", (long long)cases[i]);
        assert_string_equal(got, want);
    }
}

static void test_message(void **state)
{
    static const char *msgs[] = {"plain", "with \"quotes\"\n", "\xc3\xa9t\xc3\xa9"};
    static const int64_t stamps[] = {0, 1763800000123LL, INT64_MAX};
    const char *uuid = "123e4567-e89b-42d3-a456-426614174000";
    size_t i, k;

    (void)state;
    for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        for (k = 0; k < sizeof(stamps) / sizeof(stamps[0]); k++) {
            json_t *obj = json_pack("{s:s, s:s, s:I}", "uuid", uuid, "msg", msgs[i], "ts",
                                    (json_int_t)stamps[k]);
            char *want = json_dumps(obj, JSON_COMPACT);
            size_t bound = jw_message_len(uuid, msgs[i], strlen(msgs[i]));
            char *got = malloc(bound + 1);
            char *end = jw_message_put(got, uuid, msgs[i], strlen(msgs[i]), stamps[k]);

            assert_true((size_t)(end - got) <= bound);
            *end = '\0';
            assert_string_equal(got, want);
            free(got);
            free(want);
            json_decref(obj);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_ascii_byte), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_long_string),      cmocka_unit_test(test_integers),
        cmocka_unit_test(test_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
