/* test_codec.c: the registry's native JSON (registry/api/codec.c): the
 * stored document is what jansson's json_dumps(JSON_COMPACT) writes for the
 * same object with "v":1 first, documents of every known version load and a
 * newer one is refused, and an instance's answer is the document's fields
 * plus the live ones, the same bytes from the cache as from a fresh encode. */
#include "registry/api/codec.h"
#include "registry/api/spec_json.h"
#include "registry/core/catalog.h"
#include "registry/store/store.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Bodies with strings that need escaping, UTF-8, empty values, no tags. */
static const char *const bodies[] = {
    "{\"name\":\"a\",\"host\":\"127.0.0.1\",\"port\":1}",
    "{\"name\":\"svc\",\"host\":\"h.example\",\"port\":65535,\"type\":\"t\",\"ttl\":86400,"
    "\"tags\":[\"v1\",\"with \\\"quote\\\"\",\"\\u00e9\\u20ac\\ud83d\\ude00\",\"tab\\there\","
    "\"ctl\\u0001\\u001f\",\"slash/back\\\\\"],"
    "\"metadata\":{\"zone\":\"a\",\"empty\":\"\",\"nl\":\"a\\nb\",\"k\\\"\":\"\\u007f\"}}",
};

/* The object jansson builds for spec under id, dumped compact. */
static char *jansson_doc(const char *id, const struct reg_spec *spec)
{
    json_t *tags = json_array();
    json_t *meta = json_object();
    json_t *obj = NULL;
    char *out = NULL;
    size_t i;

    for (i = 0; i < spec->tag_count; i++)
        json_array_append_new(tags, json_string(reg_spec_tag(spec, i)));
    for (i = 0; i < spec->meta_count; i++)
        json_object_set_new(meta, reg_spec_meta_key(spec, i),
                            json_string(reg_spec_meta_value(spec, i)));
    obj = json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:o, s:o, s:i}", "v", 1, "id", id, "name",
                    spec->name, "host", spec->host, "port", spec->port, "type", spec->type, "tags",
                    tags, "metadata", meta, "ttl", (int)(spec->ttl_ms / 1000));
    out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return out;
}

static void test_doc_matches_jansson(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct reg_spec spec, back;
        char err[256], id[LIM_ID_MAX + 1];
        size_t len = 0;
        char *doc = NULL;
        char *want = NULL;

        if (reg_spec_parse_text(bodies[i], strlen(bodies[i]), &spec, err, sizeof(err)) != 0)
            fail_msg("body %zu refused: %s", i, err);
        snprintf(id, sizeof(id), "%s-00000000-0000-4000-8000-000000000001", spec.name);
        doc = regc_doc_new(id, &spec, &len);
        assert_non_null(doc);
        want = jansson_doc(id, &spec);
        assert_string_equal(doc, want);
        assert_int_equal(len, strlen(want));

        /* And it reads back to the same spec. */
        if (regc_doc_parse(doc, len, &back, err, sizeof(err)) != 0)
            fail_msg("document %s refused: %s", doc, err);
        assert_int_equal(back.tag_count, spec.tag_count);
        assert_int_equal(back.meta_count, spec.meta_count);
        if (spec.tag_count > 0)
            assert_string_equal(reg_spec_tag(&back, spec.tag_count - 1),
                                reg_spec_tag(&spec, spec.tag_count - 1));
        assert_string_equal(back.id, id);
        reg_spec_clear(&back);
        reg_spec_clear(&spec);
        free(doc);
        free(want);
    }
}

static void test_doc_versions(void **state)
{
    struct reg_spec spec;
    char err[256];
    const char *v0 = "{\"id\":\"a-00000000-0000-4000-8000-000000000001\",\"name\":\"a\","
                     "\"host\":\"h\",\"port\":1,\"type\":\"service\",\"tags\":[\"x\"],"
                     "\"metadata\":{},\"ttl\":10}";
    const char *v1 = "{\"v\":1,\"id\":\"a-00000000-0000-4000-8000-000000000001\",\"name\":\"a\","
                     "\"host\":\"h\",\"port\":1,\"ttl\":10}";
    const char *v2 = "{\"v\":2,\"id\":\"a-00000000-0000-4000-8000-000000000001\",\"name\":\"a\","
                     "\"host\":\"h\",\"port\":1}";
    const char *vbad = "{\"v\":\"1\",\"name\":\"a\",\"host\":\"h\",\"port\":1}";

    (void)state;
    assert_int_equal(regc_doc_parse(v0, strlen(v0), &spec, err, sizeof(err)), 0);
    assert_int_equal(spec.ttl_ms, 10000);
    assert_string_equal(reg_spec_tag(&spec, 0), "x");
    reg_spec_clear(&spec);
    assert_int_equal(regc_doc_parse(v1, strlen(v1), &spec, err, sizeof(err)), 0);
    assert_true(spec.has_id);
    reg_spec_clear(&spec);
    assert_int_equal(regc_doc_parse(v2, strlen(v2), &spec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "newer registry"));
    assert_null(spec.strs);
    assert_int_equal(regc_doc_parse(vbad, strlen(vbad), &spec, err, sizeof(err)), -1);
    assert_int_equal(regc_doc_parse("{", 1, &spec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid JSON"));
}

/* Fetch the completion of a registration. */
static void done_cb(void *arg, int rc, const char *err)
{
    (void)err;
    *(int *)arg = rc;
}

static int64_t fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000999LL;
}

/* The answer for an instance: the stored fields without "v", then
 * last_heartbeat (seconds) and health; the same bytes again from the cache. */
static void test_instance_answer(void **state)
{
    struct event_base *base = event_base_new();
    struct store *st = store_memory_open(base);
    struct reg_options opt;
    struct reg_registry *reg = NULL;
    struct reg_spec spec;
    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    char err[256], id[LIM_ID_MAX + 1], *doc = NULL, *want = NULL;
    bool created = false;
    int rc = 1;
    size_t len = 0;

    (void)state;
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = fixed_clock;
    reg = reg_new(st, &opt);
    assert_non_null(reg);
    assert_int_equal(reg_spec_parse_text(bodies[1], strlen(bodies[1]), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(reg, &spec, done_cb, &rc, id, &created, err, sizeof(err)), 0);
    while (store_pending(st) > 0)
        assert_int_not_equal(event_base_loop(base, EVLOOP_ONCE), -1);
    assert_int_equal(rc, 0);

    doc = regc_doc_new(id, &spec, &len);
    assert_non_null(doc);
    /* "{"v":1," -> "{", "}" -> the live fields. */
    want = calloc(1, len + 512);
    assert_non_null(want);
    snprintf(want, len + 512,
             "{%.*s,\"last_heartbeat\":1700000000,\"health\":\"passing\",\"checks\":[{\"id\":"
             "\"%s:ttl\",\"type\":\"ttl\",\"status\":\"passing\",\"output\":\"\","
             "\"last_change\":1700000000.999}]}",
             (int)(len - 8), doc + 7, id);
    assert_int_equal(regc_write_instance(reg_get(reg, id), a), 0);
    assert_int_equal(regc_write_instance(reg_get(reg, id), b), 0);
    evbuffer_add(a, "", 1);
    evbuffer_add(b, "", 1);
    assert_string_equal((const char *)evbuffer_pullup(a, -1), want);
    assert_string_equal((const char *)evbuffer_pullup(b, -1), want);

    free(want);
    free(doc);
    reg_spec_clear(&spec);
    evbuffer_free(a);
    evbuffer_free(b);
    reg_free(reg);
    store_close(st);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_matches_jansson),
        cmocka_unit_test(test_doc_versions),
        cmocka_unit_test(test_instance_answer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
