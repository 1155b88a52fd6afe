/* test_b64.c: unit tests for common/codec/b64.c: RFC 4648's vectors both
 * ways, binary bytes, and what decoding refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "codec/b64.h"

static void test_rfc4648_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[32];
    unsigned char back[32];
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < 7; i++) {
        assert_int_equal(b64_encode((const unsigned char *)plain[i], strlen(plain[i]), out),
                         strlen(coded[i]));
        assert_string_equal(out, coded[i]);
        assert_int_equal(b64_decode(coded[i], strlen(coded[i]), back, &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(back, plain[i], n);
    }
}

static void test_binary_round_trip(void **state)
{
    unsigned char in[256], back[256];
    char out[B64_ENCODED_LEN(256)];
    size_t i, n = 0, len;

    (void)state;
    for (i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    len = b64_encode(in, 256, out);
    assert_int_equal(len + 1, B64_ENCODED_LEN(256));
    assert_int_equal(b64_decode(out, len, back, &n), 0);
    assert_int_equal(n, 256);
    assert_memory_equal(in, back, 256);
}

static void test_decode_refuses(void **state)
{
    unsigned char back[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(b64_decode("Zm9", 3, back, &n), -1);        /* not a multiple of 4 */
    assert_int_equal(b64_decode("Zm9v!A==", 8, back, &n), -1);   /* outside the alphabet */
    assert_int_equal(b64_decode("Zg==Zm9v", 8, back, &n), -1);   /* padding in the middle */
    assert_int_equal(b64_decode("Zm=v", 4, back, &n), -1);       /* '=' then a character */
    assert_int_equal(b64_decode("Zm9v\nZg==", 9, back, &n), -1); /* white space */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_binary_round_trip),
        cmocka_unit_test(test_decode_refuses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
