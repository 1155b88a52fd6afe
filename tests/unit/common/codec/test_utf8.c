/* test_utf8.c: unit tests for common/utf8: utf8_valid agrees with jansson
 * (json_stringn refuses exactly the ill-formed strings) on every two-byte
 * string, on the edges of every three- and four-byte lead, and on random
 * strings built from the bytes where the rules change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "codec/utf8.h"

/* Whether jansson takes s[0..len) as a string. */
static bool jansson_valid(const unsigned char *s, size_t len)
{
    json_t *j = json_stringn((const char *)s, len);
    bool ok = j != NULL;

    json_decref(j);
    return ok;
}

static void agree(const unsigned char *s, size_t len)
{
    bool want = jansson_valid(s, len);

    if (utf8_valid((const char *)s, len) != want)
        fail_msg("utf8_valid disagrees with jansson on %zu bytes %02x %02x %02x %02x: "
                 "jansson says %d",
                 len, len > 0 ? s[0] : 0, len > 1 ? s[1] : 0, len > 2 ? s[2] : 0,
                 len > 3 ? s[3] : 0, want);
}

static void test_every_two_bytes(void **state)
{
    unsigned char s[2];
    unsigned a, b;

    (void)state;
    for (a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        agree(s, 1);
        for (b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            agree(s, 2);
        }
    }
}

static void test_long_sequences(void **state)
{
    static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                          0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    unsigned char s[4];
    unsigned lead, b;
    size_t t, u;

    (void)state;
    for (lead = 0xe0; lead <= 0xff; lead++) {
        s[0] = (unsigned char)lead;
        for (b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            for (t = 0; t < sizeof(tails); t++) {
                s[2] = tails[t];
                agree(s, 3);
                for (u = 0; u < sizeof(tails); u++) {
                    s[3] = tails[u];
                    agree(s, 4);
                }
            }
        }
    }
}

static void test_known_cases(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain ascii, long enough for the fast path", 43));
    assert_true(utf8_valid("a\0b", 3)); /* NUL is a character */
    assert_true(utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));               /* U+10FFFF */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4));              /* U+110000 */
    assert_false(utf8_valid("\xed\xa0\x80", 3));                  /* U+D800 */
    assert_false(utf8_valid("\xc0\xaf", 2));                      /* overlong '/' */
    assert_false(utf8_valid("\xe0\x80\xaf", 3));                  /* overlong */
    assert_false(utf8_valid("abcdefgh\xc3", 9));                  /* truncated */
    assert_false(utf8_valid("abcdefghijklmnop\x80qrstuvwx", 25)); /* stray continuation */
}

static void test_random_strings(void **state)
{
    static const unsigned char bytes[] = {'a',  0x00, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc1, 0xc2,
                                          0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    unsigned char s[24];
    size_t len, i;
    int k;

    (void)state;
    srand(12345);
    for (k = 0; k < 200000; k++) {
        len = (size_t)rand() % sizeof(s);
        for (i = 0; i < len; i++)
            s[i] = bytes[(size_t)rand() % sizeof(bytes)];
        agree(s, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_two_bytes),
        cmocka_unit_test(test_long_sequences),
        cmocka_unit_test(test_known_cases),
        cmocka_unit_test(test_random_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
