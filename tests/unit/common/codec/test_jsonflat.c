/* test_jsonflat.c: unit tests for common/jsonflat through the public
 * header: the documents the services exchange are read into the right
 * tokens (values, counts, `end` links, jf_get, jf_streq); everything
 * outside the subset, valid JSON or not, is JF_OTHER, and jansson is asked
 * about each refused case so the table says which are merely narrow; every
 * input sits in a heap buffer of its exact size, with no NUL after it, so
 * AddressSanitizer catches any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/jsonflat.h"

#define TOKS_CAP 256

/* A heap copy of s[0..len) of exactly len bytes (at least one byte is
 * allocated so malloc(0) is never asked for). Caller frees. */
static char *dup_exact(const char *s, size_t len)
{
    char *b = malloc(len > 0 ? len : 1);

    assert_non_null(b);
    if (len > 0)
        memcpy(b, s, len);
    return b;
}

/* jf_parse of s[0..len) copied to an exact-size heap buffer. The tokens
 * point into that buffer, so it is returned in *keep for the caller to
 * free once done with them. */
static int parse_exact(const char *s, size_t len, struct jf_tok *toks, size_t cap, size_t *ntoks,
                       char **keep)
{
    char *b = dup_exact(s, len);
    int rc = jf_parse(b, len, toks, cap, ntoks);

    *keep = b;
    return rc;
}

/* Parse the NUL-terminated text s (the NUL is not passed) and require
 * JF_OK with want tokens. Caller frees *keep. */
static void parse_ok(const char *s, struct jf_tok *toks, size_t want, char **keep)
{
    size_t n = 12345;

    assert_int_equal(parse_exact(s, strlen(s), toks, TOKS_CAP, &n, keep), JF_OK);
    assert_int_equal(n, want);
    assert_int_equal(toks[0].end, want);
}

/* Require toks[i] to be a string equal to s. */
static void assert_str(const struct jf_tok *toks, size_t i, const char *s)
{
    assert_int_equal(toks[i].type, JF_STRING);
    assert_int_equal(toks[i].len, strlen(s));
    assert_memory_equal(toks[i].str, s, toks[i].len);
    assert_true(jf_streq(&toks[i], s));
    assert_int_equal(toks[i].end, i + 1);
}

/* Require toks[i] to be the integer v. */
static void assert_int_tok(const struct jf_tok *toks, size_t i, int64_t v)
{
    assert_int_equal(toks[i].type, JF_INT);
    assert_true(toks[i].num == v);
    assert_null(toks[i].str);
    assert_int_equal(toks[i].end, i + 1);
}

static void test_single_message(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    parse_ok("{\"msg\":\"hi\"}", toks, 3, &b);
    assert_int_equal(toks[0].type, JF_OBJECT);
    assert_int_equal(toks[0].count, 1);
    assert_null(toks[0].str);
    assert_str(toks, 1, "msg");
    assert_str(toks, 2, "hi");
    assert_ptr_equal(toks[2].str, b + 8); /* borrowed from the input, no copy */

    assert_int_equal(jf_get(toks, 0, "msg"), 2);
    assert_int_equal(jf_get(toks, 0, "ms"), -1);
    assert_int_equal(jf_get(toks, 0, "msgs"), -1);
    assert_int_equal(jf_get(toks, 0, ""), -1);
    assert_int_equal(jf_get(toks, 2, "msg"), -1); /* not an object */
    assert_int_equal(jf_get(toks, 0, NULL), -1);

    assert_false(jf_streq(&toks[2], "h"));
    assert_false(jf_streq(&toks[2], "hii"));
    assert_false(jf_streq(&toks[2], ""));
    assert_false(jf_streq(&toks[2], NULL));
    assert_false(jf_streq(&toks[0], "hi")); /* not a string */
    assert_false(jf_streq(NULL, "hi"));
    free(b);
}

static void test_array_of_messages(void **state)
{
    static const char doc[] = "[{\"uuid\":\"u1\",\"msg\":\"one\",\"ts\":1700000000001},"
                              "{\"uuid\":\"u2\",\"msg\":\"two\",\"ts\":1700000000002},"
                              "{\"ts\":1700000000003,\"msg\":\"three\",\"uuid\":\"u3\"}]";
    static const char *const uuids[] = {"u1", "u2", "u3"};
    static const char *const msgs[] = {"one", "two", "three"};
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;
    size_t i;
    size_t k;
    size_t seen = 0;

    (void)state;
    parse_ok(doc, toks, 22, &b);
    assert_int_equal(toks[0].type, JF_ARRAY);
    assert_int_equal(toks[0].count, 3);
    /* Elements by their `end` links: 1, 8, 15, then the end (22). */
    for (i = 1; i < toks[0].end; i = toks[i].end) {
        long u = jf_get(toks, i, "uuid");
        long m = jf_get(toks, i, "msg");
        long t = jf_get(toks, i, "ts");

        assert_int_equal(i, 1 + 7 * seen);
        assert_int_equal(toks[i].type, JF_OBJECT);
        assert_int_equal(toks[i].count, 3);
        assert_int_equal(toks[i].end, i + 7);
        assert_true(u > 0 && m > 0 && t > 0);
        assert_true(jf_streq(&toks[u], uuids[seen]));
        assert_true(jf_streq(&toks[m], msgs[seen]));
        assert_int_tok(toks, (size_t)t, 1700000000001 + (int64_t)seen);
        assert_int_equal(jf_get(toks, i, "status"), -1);
        seen++;
    }
    assert_int_equal(seen, 3);
    /* Pairs of the last object by their links: key, value, next key. */
    seen = 0;
    for (k = 16; k < toks[15].end; k = toks[k + 1].end)
        seen++;
    assert_int_equal(seen, 3);
    assert_str(toks, 16, "ts");
    assert_str(toks, 20, "uuid");
    free(b);
}

static void test_nested_reply(void **state)
{
    static const char doc[] =
        "{\"success\":true,\"results\":[{\"uuid\":\"a\",\"status\":201,\"duplicate\":false}]}";
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;
    long r;
    long st;

    (void)state;
    parse_ok(doc, toks, 12, &b);
    assert_int_equal(toks[0].count, 2);
    assert_int_equal(jf_get(toks, 0, "success"), 2);
    assert_int_equal(toks[2].type, JF_TRUE);
    assert_int_equal(toks[2].end, 3);
    r = jf_get(toks, 0, "results");
    assert_int_equal(r, 4);
    assert_int_equal(toks[4].type, JF_ARRAY);
    assert_int_equal(toks[4].count, 1);
    assert_int_equal(toks[4].end, 12);
    assert_int_equal(toks[5].type, JF_OBJECT);
    assert_int_equal(toks[5].count, 3);
    assert_int_equal(toks[5].end, 12);
    assert_true(jf_streq(&toks[jf_get(toks, 5, "uuid")], "a"));
    st = jf_get(toks, 5, "status");
    assert_int_tok(toks, (size_t)st, 201);
    assert_int_equal(toks[jf_get(toks, 5, "duplicate")].type, JF_FALSE);
    assert_int_equal(jf_get(toks, 0, "uuid"), -1); /* only the object's own keys */
    free(b);
}

static void test_whitespace_everywhere(void **state)
{
    static const char doc[] =
        " \t\r\n{ \"a\" :\t[ 1 ,\ttrue ,null\n,\r\"s\" ] ,\n\"b\"\r:\"x y\" , \"c\":{ } } \n\t\r ";
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    parse_ok(doc, toks, 11, &b);
    assert_int_equal(toks[0].count, 3);
    assert_int_equal(toks[2].type, JF_ARRAY);
    assert_int_equal(toks[2].count, 4);
    assert_int_equal(toks[2].end, 7);
    assert_int_tok(toks, 3, 1);
    assert_int_equal(toks[4].type, JF_TRUE);
    assert_int_equal(toks[5].type, JF_NULL);
    assert_str(toks, 6, "s");
    assert_str(toks, 8, "x y");
    assert_int_equal(toks[10].type, JF_OBJECT);
    assert_int_equal(toks[10].count, 0);
    assert_int_equal(jf_get(toks, 0, "c"), 10);
    free(b);
}

static void test_empty_containers(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    parse_ok("{}", toks, 1, &b);
    assert_int_equal(toks[0].type, JF_OBJECT);
    assert_int_equal(toks[0].count, 0);
    assert_int_equal(jf_get(toks, 0, "a"), -1);
    free(b);
    parse_ok("[]", toks, 1, &b);
    assert_int_equal(toks[0].type, JF_ARRAY);
    assert_int_equal(toks[0].count, 0);
    free(b);
    parse_ok("[{},[],{ },[ ]]", toks, 5, &b);
    assert_int_equal(toks[0].count, 4);
    assert_int_equal(toks[1].end, 2);
    assert_int_equal(toks[2].end, 3);
    free(b);
    parse_ok("{\"a\":{},\"b\":[],\"\":\"\"}", toks, 7, &b);
    assert_int_equal(jf_get(toks, 0, "b"), 4);
    assert_int_equal(jf_get(toks, 0, ""), 6); /* the empty key */
    assert_str(toks, 6, "");
    free(b);
}

static void test_literals(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    parse_ok("[null,true,false,{\"n\":null}]", toks, 7, &b);
    assert_int_equal(toks[1].type, JF_NULL);
    assert_int_equal(toks[2].type, JF_TRUE);
    assert_int_equal(toks[3].type, JF_FALSE);
    assert_int_equal(toks[jf_get(toks, 4, "n")].type, JF_NULL);
    assert_null(toks[1].str);
    assert_int_equal(toks[1].num, 0);
    free(b);
}

static void test_utf8_accepted(void **state)
{
    /* Every boundary of every sequence length, DEL, and a long string so
     * multi-byte sequences straddle the scanner's 8-byte words. */
    static const char *const strs[] = {
        "\xc3\xa9",         /* e acute, 2 bytes */
        "\xe2\x82\xac",     /* euro sign, 3 bytes */
        "\xf0\x9f\x98\x80", /* emoji, 4 bytes */
        "\xc2\x80",         /* U+0080, smallest 2-byte */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800, smallest 3-byte */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above them */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
        "\x7f",             /* DEL: not a control byte for JSON */
        "abcdefg\xc3\xa9hijklmn\xe2\x82\xacopqrstu\xf0\x9f\x98\x80vwxyz 0123456789",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        struct jf_tok toks[8];
        char doc[128];
        char *b = NULL;
        size_t n = 0;
        int len = snprintf(doc, sizeof doc, "{\"%s\":[\"%s\"]}", strs[i], strs[i]);

        assert_true(len > 0 && (size_t)len < sizeof doc);
        assert_int_equal(parse_exact(doc, (size_t)len, toks, 8, &n, &b), JF_OK);
        assert_int_equal(n, 4);
        assert_str(toks, 1, strs[i]);
        assert_str(toks, 3, strs[i]);
        assert_int_equal(jf_get(toks, 0, strs[i]), 2);
        free(b);
    }
}

static void test_integers(void **state)
{
    static const struct {
        const char *text;
        int64_t value;
    } cases[] = {
        {"0", 0},
        {"-0", 0}, /* jansson: strtoll("-0") is integer 0 */
        {"7", 7},
        {"-7", -7},
        {"201", 201},
        {"-42", -42},
        {"1234567890123456789", INT64_C(1234567890123456789)}, /* 19 digits */
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775807", -INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"1000000000000000000", INT64_C(1000000000000000000)},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jf_tok toks[5];
        char doc[64];
        char *b = NULL;
        size_t n = 0;
        int len = snprintf(doc, sizeof doc, "[%s,{\"v\":%s}]", cases[i].text, cases[i].text);

        assert_true(len > 0 && (size_t)len < sizeof doc);
        assert_int_equal(parse_exact(doc, (size_t)len, toks, 5, &n, &b), JF_OK);
        assert_int_equal(n, 5);
        assert_int_tok(toks, 1, cases[i].value);
        assert_int_tok(toks, 4, cases[i].value);
        free(b);
    }
}

static void test_depth_limit(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    /* JF_DEPTH_MAX (4) containers, the root included, is the deepest read. */
    parse_ok("[[[[1]]]]", toks, 5, &b);
    free(b);
    parse_ok("{\"a\":{\"b\":[{\"c\":1}]}}", toks, 8, &b);
    free(b);
}

static void test_keys_limit(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char doc[1024];
    size_t pos;
    int k;
    int keys;

    (void)state;
    for (keys = JF_KEYS_MAX; keys <= JF_KEYS_MAX + 1; keys++) {
        char *b = NULL;
        size_t n = 0;
        int rc;

        pos = 0;
        doc[pos++] = '{';
        for (k = 0; k < keys; k++)
            pos += (size_t)snprintf(doc + pos, sizeof doc - pos, "%s\"k%d\":%d", k > 0 ? "," : "",
                                    k, k);
        doc[pos++] = '}';
        assert_true(pos < sizeof doc);
        rc = parse_exact(doc, pos, toks, TOKS_CAP, &n, &b);
        if (keys == JF_KEYS_MAX) {
            assert_int_equal(rc, JF_OK);
            assert_int_equal(toks[0].count, JF_KEYS_MAX);
            assert_int_equal(jf_get(toks, 0, "k31"), 64);
            assert_int_tok(toks, 64, 31);
        } else {
            assert_int_equal(rc, JF_OTHER);
            assert_int_equal(n, 0);
        }
        free(b);
    }
}

static void test_same_key_in_two_objects(void **state)
{
    struct jf_tok toks[TOKS_CAP];
    char *b = NULL;

    (void)state;
    /* Duplicates are per object; a key that is a prefix of another is not one. */
    parse_ok("{\"a\":1,\"b\":{\"a\":2},\"ab\":3,\"aa\":4}", toks, 11, &b);
    assert_int_tok(toks, (size_t)jf_get(toks, 0, "a"), 1);
    assert_int_tok(toks, (size_t)jf_get(toks, 4, "a"), 2);
    assert_int_tok(toks, (size_t)jf_get(toks, 0, "ab"), 3);
    free(b);
}

static void test_capacity(void **state)
{
    static const char doc[] =
        "{\"success\":true,\"results\":[{\"uuid\":\"a\",\"status\":201,\"duplicate\":false}]}";
    struct jf_tok toks[12];
    char *b = dup_exact(doc, strlen(doc));
    size_t n = 99;
    size_t cap;

    (void)state;
    /* 12 tokens needed: every smaller capacity (0 and exactly one short
     * included) is JF_OTHER, 12 and more are fine. */
    for (cap = 0; cap < 12; cap++) {
        assert_int_equal(jf_parse(b, strlen(doc), toks, cap, &n), JF_OTHER);
        assert_int_equal(n, 0);
    }
    assert_int_equal(jf_parse(b, strlen(doc), toks, 12, &n), JF_OK);
    assert_int_equal(n, 12);
    assert_int_equal(jf_parse(b, strlen(doc), NULL, 12, &n), JF_OTHER); /* no array */
    assert_int_equal(jf_parse(b, strlen(doc), toks, 12, NULL), JF_OK);  /* ntoks optional */
    free(b);
}

static void test_bad_arguments(void **state)
{
    struct jf_tok toks[4];
    char *b = dup_exact("[]", 2);
    size_t n = 7;

    (void)state;
    assert_int_equal(jf_parse(NULL, 0, toks, 4, &n), JF_OTHER);
    assert_int_equal(n, 0);
    assert_int_equal(jf_parse(NULL, 2, toks, 4, &n), JF_OTHER);
    assert_int_equal(jf_parse(b, 0, toks, 4, &n), JF_OTHER); /* empty input */
    /* Too long: refused before a single byte is read (the buffer is only
     * 2 bytes; ASan would report any read). */
    assert_int_equal(jf_parse(b, (size_t)JF_LEN_MAX + 1, toks, 4, &n), JF_OTHER);
    assert_int_equal(jf_parse(b, SIZE_MAX, toks, 4, &n), JF_OTHER);
    free(b);
}

static void test_every_prefix_is_refused(void **state)
{
    /* Every proper prefix of a document is incomplete; each is parsed from
     * its own exact-size heap buffer, so a read past the end is an ASan
     * error rather than a lucky NUL. The full text still parses. */
    static const char *const docs[] = {
        "{\"msg\":\"hi\"}",
        "[{\"uuid\":\"9b2e\",\"msg\":\"h\xc3\xa9llo "
        "w\xf0\x9f\x98\x80rld\",\"ts\":-12},null,true,false,[]]",
        "{\"success\":true,\"results\":[{\"uuid\":\"a\",\"status\":201,\"duplicate\":false}]}",
    };
    size_t d;

    (void)state;
    for (d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        size_t full = strlen(docs[d]);
        size_t len;

        for (len = 0; len <= full; len++) {
            struct jf_tok toks[TOKS_CAP];
            char *b = NULL;
            size_t n = 0;
            int rc = parse_exact(docs[d], len, toks, TOKS_CAP, &n, &b);

            assert_int_equal(rc, len == full ? JF_OK : JF_OTHER);
            free(b);
        }
    }
}

/* One input jf_ must refuse; valid says whether jansson reads it (so the
 * case shows the subset is narrow on purpose) or refuses it too. */
struct refused {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    bool valid;
};

#define R(name, text, valid)                                                                       \
    {                                                                                              \
        name, text, 0, valid                                                                       \
    }
#define RN(name, text, valid)                                                                      \
    {                                                                                              \
        name, text, sizeof(text) - 1, valid                                                        \
    } /* embedded NUL */

static const struct refused refused_cases[] = {
    /* escapes: valid JSON, jansson's job */
    R("escape n", "{\"a\":\"x\\ny\"}", true),
    R("escape quote", "[\"say \\\"hi\\\"\"]", true),
    R("escape u", "[\"\\u00e9\"]", true),
    R("escape slash", "[\"\\/\"]", true),
    R("escape in key", "{\"a\\tb\":1}", true),
    R("bad escape", "[\"\\q\"]", false),
    /* control bytes inside strings */
    R("raw 0x01",
      "[\"a\x01"
      "b\"]",
      false),
    R("raw tab", "[\"a\tb\"]", false),
    R("raw newline", "[\"a\nb\"]", false),
    R("raw 0x1f", "{\"\x1f\":1}", false),
    RN("raw NUL", "[\"a\0b\"]", false),
    RN("NUL after root", "[]\0", false),
    /* ill-formed UTF-8, each family */
    R("stray continuation 0x80", "[\"\x80\"]", false),
    R("stray continuation 0xbf",
      "[\"a\xbf"
      "b\"]",
      false),
    R("overlong C0", "[\"\xc0\xaf\"]", false),
    R("overlong C1", "[\"\xc1\xbf\"]", false),
    R("overlong 3-byte", "[\"\xe0\x80\xaf\"]", false),
    R("overlong 3-byte U+07FF", "[\"\xe0\x9f\xbf\"]", false),
    R("overlong 4-byte", "[\"\xf0\x80\x80\xaf\"]", false),
    R("overlong 4-byte U+FFFF", "[\"\xf0\x8f\xbf\xbf\"]", false),
    R("surrogate D800", "[\"\xed\xa0\x80\"]", false),
    R("surrogate DFFF", "[\"\xed\xbf\xbf\"]", false),
    R("above U+10FFFF", "[\"\xf4\x90\x80\x80\"]", false),
    R("lead F5", "[\"\xf5\x80\x80\x80\"]", false),
    R("lead F8", "[\"\xf8\x88\x80\x80\x80\"]", false),
    R("byte FE", "[\"\xfe\"]", false),
    R("byte FF", "[\"\xff\"]", false),
    R("truncated 2-byte", "[\"\xc3\"]", false),
    R("truncated 3-byte", "[\"\xe2\x82\"]", false),
    R("truncated 4-byte", "[\"\xf0\x9f\x98\"]", false),
    R("ASCII where continuation due",
      "[\"\xe2"
      "ab\"]",
      false),
    R("truncated at buffer end", "[\"\xe2\x82", false),
    R("UTF-8 outside a string", "[\xc3\xa9]", false),
    /* numbers outside the integer subset */
    R("fraction", "[1.5]", true),
    R("exponent e", "[1e5]", true),
    R("exponent E", "[1E+5]", true),
    R("negative zero real", "[-0.0]", true),
    R("int then fraction in object", "{\"a\":10.25}", true),
    R("leading zero", "[01]", false),
    R("negative leading zero", "[-01]", false),
    R("double zero", "[00]", false),
    R("lone minus", "[-]", false),
    R("minus letter", "[-a]", false),
    R("plus", "[+1]", false),
    R("bare dot", "[.5]", false),
    R("dot no digits", "[1.]", false),
    R("int64 max + 1", "[9223372036854775808]", false),
    R("int64 min - 1", "[-9223372036854775809]", false),
    R("20 digits", "[12345678901234567890]", false),
    R("huge", "[99999999999999999999999999]", false),
    R("int then letters", "[12abc]", false),
    R("int then minus", "[1-2]", false),
    /* literals */
    R("truex", "[truex]", false),
    R("true1", "[true1]", false),
    R("nul", "[nul]", false),
    R("tru at end", "[tru", false),
    R("True", "[True]", false),
    R("nulll", "[nulll]", false),
    R("falsey", "{\"a\":falsey}", false),
    R("literal at buffer end", "[null", false),
    /* structure */
    R("trailing garbage", "{} x", false),
    R("two roots", "{}{}", false),
    R("extra close", "[]]", false),
    R("extra brace", "{}}", false),
    R("trailing comma array", "[1,]", false),
    R("trailing comma object", "{\"a\":1,}", false),
    R("leading comma", "[,1]", false),
    R("missing comma array", "[1 2]", false),
    R("missing comma object", "{\"a\":1 \"b\":2}", false),
    R("missing colon", "{\"a\" 1}", false),
    R("missing value", "{\"a\":}", false),
    R("numeric key", "{1:2}", false),
    R("bare key", "{a:1}", false),
    R("null key", "{null:1}", false),
    R("mismatched close", "[1}", false),
    R("unterminated string", "{\"a\":\"b", false),
    R("unterminated key", "{\"a", false),
    R("unterminated object", "{\"a\":1", false),
    R("unterminated after colon", "{\"a\":", false),
    R("unterminated array", "[1,2", false),
    R("open brace", "{", false),
    R("open bracket", "[", false),
    R("form feed is not whitespace", "[1,\f2]", false),
    R("vertical tab is not whitespace", "\v[]", false),
    /* depth over JF_DEPTH_MAX (valid JSON, jansson allows 2048) */
    R("5 arrays", "[[[[[1]]]]]", true),
    R("5 objects", "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", true),
    R("5 mixed, empty innermost", "[{\"a\":[{\"b\":[]}]}]", true),
    /* duplicate keys: jansson keeps the last; we decline */
    R("duplicate keys", "{\"a\":1,\"a\":2}", true),
    R("duplicate keys apart", "{\"a\":1,\"b\":2,\"c\":3,\"a\":4}", true),
    R("duplicate empty keys", "{\"\":1,\"\":2}", true),
    R("duplicate keys nested", "[{\"x\":{\"k\":null,\"k\":null}}]", true),
    /* roots jansson refuses without JSON_DECODE_ANY */
    R("string root", "\"a\"", false),
    R("int root", "1", false),
    R("true root", "true", false),
    R("null root", "null", false),
    R("empty input", "", false),
    R("only whitespace", " \t\r\n", false),
};

static void test_refused(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof refused_cases / sizeof refused_cases[0]; i++) {
        const struct refused *c = &refused_cases[i];
        size_t len = c->len != 0 ? c->len : strlen(c->text);
        struct jf_tok toks[TOKS_CAP];
        json_error_t err;
        json_t *j;
        char *b = NULL;
        size_t n = 99;
        int rc = parse_exact(c->text, len, toks, TOKS_CAP, &n, &b);

        if (rc != JF_OTHER || n != 0)
            fail_msg("case '%s': jf_parse gave %d with %zu tokens", c->name, rc, n);
        j = json_loadb(b, len, 0, &err);
        if ((j != NULL) != c->valid)
            fail_msg("case '%s': jansson %s it", c->name, j != NULL ? "accepts" : "refuses");
        json_decref(j);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_message),
        cmocka_unit_test(test_array_of_messages),
        cmocka_unit_test(test_nested_reply),
        cmocka_unit_test(test_whitespace_everywhere),
        cmocka_unit_test(test_empty_containers),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_utf8_accepted),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_keys_limit),
        cmocka_unit_test(test_same_key_in_two_objects),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_every_prefix_is_refused),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
