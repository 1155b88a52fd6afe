/* test_jsonerr.c: unit tests for common/codec/jsonerr.c: each kind of
 * text jansson refuses is told in the caller's terms, with no trace of
 * jansson's wording ("near", "JSON_ALLOW_NUL", "expected"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "codec/jsonerr.h"

/* What jerr_describe says of text[0..len) loaded with flags. */
static const char *said(const char *text, size_t len, size_t flags, char *buf, size_t buflen)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, flags, &e);

    assert_null(j);
    jerr_describe(&e, text, len, "body", buf, buflen);
    assert_null(strstr(buf, "near"));
    assert_null(strstr(buf, "JSON_ALLOW_NUL"));
    assert_null(strstr(buf, "expected near"));
    return buf;
}

#define ANY (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

static void test_each_kind(void **state)
{
    char b[256];

    (void)state;
    assert_string_equal(said("", 0, ANY, b, sizeof(b)), "body is empty; expected JSON");
    assert_string_equal(said("{} x", 4, ANY, b, sizeof(b)),
                        "body is not valid JSON: text after the value (line 1, column 4)");
    assert_string_equal(said("{\"a\":\"\\u0000\"}", 14, ANY, b, sizeof(b)),
                        "body holds a NUL byte (\\u0000) at line 1, column 13");
    assert_string_equal(said("{\"a\":\"b\0\"}", 10, ANY, b, sizeof(b)), "body holds a NUL byte");
    assert_string_equal(said("{\"a\":\"\xff\"}", 9, ANY, b, sizeof(b)),
                        "body is not valid UTF-8 (line 1, column 6)");
    assert_string_equal(said("{\"a\":1,\"a\":2}", 13, ANY, b, sizeof(b)),
                        "body has a duplicate key in an object (line 1, column 10)");
    assert_string_equal(said("{", 1, ANY, b, sizeof(b)),
                        "body is not valid JSON: it ends too early (line 1, column 1)");
    assert_string_equal(said("[1e999]", 7, ANY, b, sizeof(b)),
                        "body holds a number out of range (line 1, column 6)");
    assert_string_equal(said("[1,]", 4, ANY, b, sizeof(b)),
                        "body is not valid JSON (line 1, column 4)");
    assert_string_equal(said("3", 1, 0, b, sizeof(b)), "body must be a JSON object or array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_kind),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
