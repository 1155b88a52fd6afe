/* test_ui.c: the dashboard's pure parts (registry/api/ui.c): the table
 * cmake/embed.cmake generates from registry/ui/ (every file there, its
 * bytes and length as on disk, a NUL after them, its Content-Type by
 * extension, an ETag of 16 hex digits in quotes that differs between
 * files of different bytes), the lookup of a name, the If-None-Match
 * matching, and the paths the relay may fetch. */
#include "registry/api/ui.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef UI_SOURCE_DIR
#error "UI_SOURCE_DIR must name registry/ui/"
#endif

/* The files the page cannot do without, each with its expected type. */
static const struct {
    const char *name;
    const char *type;
} expected[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"api.js", "text/javascript; charset=utf-8"},
    {"style.css", "text/css; charset=utf-8"},
    {"icon.svg", "image/svg+xml"},
};

static void test_known_files_have_their_type(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const struct rui_asset *a = rui_asset_find(expected[i].name);

        assert_non_null(a);
        assert_string_equal(a->path, expected[i].name);
        assert_string_equal(a->content_type, expected[i].type);
    }
}

/* Every embedded file is byte for byte the one on disk. */
static void test_bytes_are_the_files(void **state)
{
    size_t i;

    (void)state;
    assert_true(rui_assets_count >= 5);
    for (i = 0; i < rui_assets_count; i++) {
        const struct rui_asset *a = &rui_assets[i];
        char path[512];
        FILE *f;
        long len;
        char *buf;

        snprintf(path, sizeof(path), "%s/%s", UI_SOURCE_DIR, a->path);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        len = ftell(f);
        rewind(f);
        assert_int_equal((long)a->len, len);
        buf = malloc((size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        assert_memory_equal(buf, a->bytes, (size_t)len);
        assert_int_equal(a->bytes[a->len], 0);
        free(buf);
    }
}

static void test_etags_are_quoted_hashes(void **state)
{
    size_t i, j;

    (void)state;
    for (i = 0; i < rui_assets_count; i++) {
        const char *e = rui_assets[i].etag;

        assert_int_equal(strlen(e), 18);
        assert_int_equal(e[0], '"');
        assert_int_equal(e[17], '"');
        assert_int_equal(strspn(e + 1, "0123456789abcdef"), 16);
        for (j = 0; j < i; j++)
            if (rui_assets[j].len != rui_assets[i].len ||
                memcmp(rui_assets[j].bytes, rui_assets[i].bytes, rui_assets[i].len) != 0)
                assert_string_not_equal(rui_assets[j].etag, e);
    }
}

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(rui_asset_find(""), rui_asset_find("index.html"));
    assert_ptr_equal(rui_asset_find(NULL), rui_asset_find("index.html"));
    assert_null(rui_asset_find("nope.js"));
    assert_null(rui_asset_find("../main.c"));
    assert_null(rui_asset_find("app.js/"));
    assert_null(rui_asset_find("APP.JS"));
}

static void test_etag_matches(void **state)
{
    const char *e = "\"0123456789abcdef\"";

    (void)state;
    assert_true(rui_etag_matches("\"0123456789abcdef\"", e));
    assert_true(rui_etag_matches("W/\"0123456789abcdef\"", e));
    assert_true(rui_etag_matches("\"x\", \"0123456789abcdef\"", e));
    assert_true(rui_etag_matches("\"x\",W/\"0123456789abcdef\"  ", e));
    assert_true(rui_etag_matches("*", e));
    assert_false(rui_etag_matches(NULL, e));
    assert_false(rui_etag_matches("", e));
    assert_false(rui_etag_matches("\"0123456789abcdee\"", e));
    assert_false(rui_etag_matches("0123456789abcdef", e)); /* unquoted */
    assert_false(rui_etag_matches("\"0123456789abcdef", e));
    assert_false(rui_etag_matches("\"0123456789abcdef\"x", e));
    assert_false(rui_etag_matches(" , ,", e));
}

static void test_relay_paths(void **state)
{
    (void)state;
    assert_true(rui_relay_path_ok("/stats"));
    assert_true(rui_relay_path_ok("/metrics"));
    assert_false(rui_relay_path_ok(NULL));
    assert_false(rui_relay_path_ok(""));
    assert_false(rui_relay_path_ok("/stats/"));
    assert_false(rui_relay_path_ok("/stats?x=1"));
    assert_false(rui_relay_path_ok("/facade"));
    assert_false(rui_relay_path_ok("//evil.example/stats"));
    assert_false(rui_relay_path_ok("@evil.example/stats"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_files_have_their_type),
        cmocka_unit_test(test_bytes_are_the_files),
        cmocka_unit_test(test_etags_are_quoted_hashes),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_etag_matches),
        cmocka_unit_test(test_relay_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
