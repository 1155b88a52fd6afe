/* test_spec.c: the registration input rules (registry/api/spec_json.c), as
 * a table of bodies that must be accepted or refused with a message naming
 * what was wrong, and the typed spec they produce. */
#include "registry/api/spec_json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct spec_case {
    const char *body;
    const char *error; /* substring of the message, NULL when accepted */
};

static const struct spec_case spec_cases[] = {
    {"{\"name\":\"a\",\"host\":\"127.0.0.1\",\"port\":1}", NULL},
    {"{\"name\":\"A.b_c-9\",\"host\":\"::1\",\"port\":65535,\"ttl\":86400}", NULL},
    {"{\"name\":\"a\",\"host\":\"logging-service.svc_net.local.\",\"port\":80,\"ttl\":1}", NULL},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":80,\"unknown\":[1,2]}", NULL},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":80,\"metadata\":null}", NULL},
    {"[1]", "JSON object"},
    {"\"x\"", "JSON object"},
    {"{\"x\":", "registration is not valid JSON: it ends too early"},
    {"{\"name\":\"a\",\"name\":\"b\",\"host\":\"h\",\"port\":1}", "duplicate key"},
    {"{\"name\":\"a\"} x", "registration is not valid JSON: text after the value"},
    {"{\"name\":\"\\u0000\"}", "registration holds a NUL byte (\\u0000)"},
    {"{\"host\":\"h\",\"port\":1}", "'name'"},
    {"{\"name\":\"a\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"h\"}", "'port'"},
    {"{\"name\":1,\"host\":\"h\",\"port\":1}", "'name' must be a string"},
    {"{\"name\":\"a b\",\"host\":\"h\",\"port\":1}", "'name' must match"},
    {"{\"name\":\"\",\"host\":\"h\",\"port\":1}", "'name' must match"},
    {"{\"name\":\"a\",\"host\":\"bad host!\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"-lead.example\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"a..b\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":\"80\"}", "'port' must be an integer"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":80.5}", "'port' must be an integer"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":0}", "'port' must be between 1 and 65535"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":65536}", "'port' must be between"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"ttl\":0}",
     "'ttl' must be between 0.1 and 86400 seconds"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"ttl\":86401}", "'ttl'"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"ttl\":\"x\"}",
     "'ttl' must be a number of seconds"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"type\":\"a/b\"}", "'type' must match"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"tags\":\"x\"}", "'tags' must be an array"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"tags\":[1]}", "tags[0] must be a string"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"tags\":[\"\"]}", "tags[0] must be 1 to 256"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"metadata\":[]}", "'metadata' must be an object"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"metadata\":{\"k\":1}}",
     "metadata['k'] must be a string"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"id\":\"b-00000000-0000-4000-8000-000000000000\"}",
     "'id' must be '<name>-<uuid>'"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"id\":\"a-zz\"}", "'id'"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"id\":7}", "'id' must be a string"},
    /* Finding "validation" (harden issue): a dotted-quad-looking host must be a
     * valid IPv4 address, and a name or type of only dots is refused. */
    {"{\"name\":\"a\",\"host\":\"999.1.1.1\",\"port\":1}", "'host' must be a hostname"},
    {"{\"name\":\"a\",\"host\":\"1.2.3\",\"port\":1}", "'host' must be a hostname"},
    {"{\"name\":\"a\",\"host\":\"1.2.3.4.5\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"256.0.0.1.\",\"port\":1}", "'host'"},
    {"{\"name\":\"a\",\"host\":\"123\",\"port\":1}", "'host'"},
    {"{\"name\":\"..\",\"host\":\"h\",\"port\":1}", "'name' must not be only dots"},
    {"{\"name\":\".\",\"host\":\"h\",\"port\":1}", "'name' must not be only dots"},
    {"{\"name\":\"a\",\"host\":\"h\",\"port\":1,\"type\":\"...\"}", "'type' must not be only dots"},
    /* still accepted: names with dots and letters, hosts with a digit label */
    {"{\"name\":\"a..b\",\"host\":\"255.255.255.255\",\"port\":1}", NULL},
    {"{\"name\":\".a\",\"host\":\"1.2.3.example\",\"port\":1}", NULL},
    {"{\"name\":\"a\",\"host\":\"3com.example\",\"port\":1}", NULL},
};

static void test_spec_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
        struct reg_spec spec;
        char err[512] = "";
        const struct spec_case *c = &spec_cases[i];
        int rc = reg_spec_parse_text(c->body, strlen(c->body), &spec, err, sizeof(err));

        if (c->error == NULL) {
            if (rc != 0)
                fail_msg("case %zu (%s) refused: %s", i, c->body, err);
            reg_spec_clear(&spec);
        } else {
            if (rc == 0)
                fail_msg("case %zu (%s) accepted", i, c->body);
            if (!strstr(err, c->error))
                fail_msg("case %zu: message '%s' lacks '%s'", i, err, c->error);
            assert_null(spec.strs);
            assert_int_equal(spec.tag_count, 0);
            assert_int_equal(spec.meta_count, 0);
        }
    }
}

static void test_defaults(void **state)
{
    struct reg_spec spec;
    char err[256];
    const char *body = "{\"name\":\"svc\",\"host\":\"h\",\"port\":9}";

    (void)state;
    assert_int_equal(reg_spec_parse_text(body, strlen(body), &spec, err, sizeof(err)), 0);
    assert_string_equal(spec.type, REG_TYPE_DEFAULT);
    assert_int_equal(spec.ttl_ms, LIM_TTL_DEFAULT * 1000);
    assert_int_equal(spec.tag_count, 0);
    assert_int_equal(spec.meta_count, 0);
    assert_false(spec.has_id);
    reg_spec_clear(&spec);
}

/* Every field lands typed: tags and metadata pairs in body order, strings
 * unescaped, the id kept. */
static void test_typed_fields(void **state)
{
    struct reg_spec spec;
    char err[256];
    const char *body = "{\"metadata\":{\"zone\":\"a\",\"empty\":\"\",\"q\\\"\":\"\\u00e9\"},"
                       "\"name\":\"svc\",\"id\":\"svc-00000000-0000-4000-8000-000000000001\","
                       "\"host\":\"h.example\",\"port\":9,\"type\":\"t\",\"ttl\":7,"
                       "\"tags\":[\"b\",\"a\",\"b\"]}";

    (void)state;
    assert_int_equal(reg_spec_parse_text(body, strlen(body), &spec, err, sizeof(err)), 0);
    assert_true(spec.has_id);
    assert_string_equal(spec.id, "svc-00000000-0000-4000-8000-000000000001");
    assert_string_equal(spec.name, "svc");
    assert_string_equal(spec.host, "h.example");
    assert_string_equal(spec.type, "t");
    assert_int_equal(spec.port, 9);
    assert_int_equal(spec.ttl_ms, 7000);
    assert_int_equal(spec.tag_count, 3);
    assert_string_equal(reg_spec_tag(&spec, 0), "b");
    assert_string_equal(reg_spec_tag(&spec, 1), "a");
    assert_string_equal(reg_spec_tag(&spec, 2), "b");
    assert_int_equal(spec.meta_count, 3);
    assert_string_equal(reg_spec_meta_key(&spec, 0), "zone");
    assert_string_equal(reg_spec_meta_value(&spec, 0), "a");
    assert_string_equal(reg_spec_meta_key(&spec, 1), "empty");
    assert_string_equal(reg_spec_meta_value(&spec, 1), "");
    assert_string_equal(reg_spec_meta_key(&spec, 2), "q\"");
    assert_string_equal(reg_spec_meta_value(&spec, 2), "\xc3\xa9");
    reg_spec_clear(&spec);
    assert_null(spec.strs);
    reg_spec_clear(&spec); /* twice is fine */
}

/* Bodies built at the edges of the limits in core/limits.h. */
static void test_limits(void **state)
{
    json_t *body = json_pack("{s:s, s:s, s:i}", "name", "a", "host", "h", "port", 1);
    json_t *tags = json_array();
    struct reg_spec spec;
    char err[256], s[512];
    int i;

    (void)state;
    memset(s, 'n', sizeof(s));
    s[LIM_NAME_MAX] = '\0';
    json_object_set_new(body, "name", json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), 0);
    reg_spec_clear(&spec);
    s[LIM_NAME_MAX] = 'n';
    s[LIM_NAME_MAX + 1] = '\0';
    json_object_set_new(body, "name", json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), -1);
    json_object_set_new(body, "name", json_string("a"));

    /* host: 253 characters in labels of 63 is fine, 254 is not */
    memset(s, 'h', sizeof(s));
    for (i = 63; i < 253; i += 64)
        s[i] = '.';
    s[253] = '\0';
    json_object_set_new(body, "host", json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), 0);
    reg_spec_clear(&spec);
    s[253] = 'h';
    s[254] = '\0';
    json_object_set_new(body, "host", json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), -1);
    json_object_set_new(body, "host", json_string("h"));

    for (i = 0; i < LIM_TAGS_MAX; i++)
        json_array_append_new(tags, json_string("t"));
    json_object_set(body, "tags", tags);
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), 0);
    reg_spec_clear(&spec);
    json_array_append_new(tags, json_string("t"));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at most 64"));

    json_array_clear(tags);
    memset(s, 't', sizeof(s));
    s[LIM_TAG_LEN_MAX] = '\0';
    json_array_append_new(tags, json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), 0);
    reg_spec_clear(&spec);
    s[LIM_TAG_LEN_MAX] = 't';
    s[LIM_TAG_LEN_MAX + 1] = '\0';
    json_array_append_new(tags, json_string(s));
    assert_int_equal(reg_spec_parse(body, &spec, err, sizeof(err)), -1);

    json_decref(tags);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_table),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_typed_fields),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
