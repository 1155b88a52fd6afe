/* test_consul_body.c: Consul's bodies into the native registration JSON
 * (registry/api/consul_body.c): Go durations as Consul reads them, keys in
 * any case, the id derivation, Consul's defaults for checks, and the
 * refusals with their status codes. */
#include "registry/api/consul_body.h"
#include "registry/api/consul_codec.h"
#include "registry/api/spec_json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct dur_case {
    const char *text;
    int rc;
    int64_t ms;
};

static void test_go_durations(void **state)
{
    static const struct dur_case cases[] = {
        {"10s", 0, 10000},
        {"1m30s", 0, 90000},
        {"1.5s", 0, 1500},
        {"250ms", 0, 250},
        {"2h0m0s", 0, 7200000},
        {"1500us", 0, 1},
        {"999999ns", 0, 0},
        {"0.25s", 0, 250},
        /* what Go's time.ParseDuration refuses, and strtod would take */
        {"1e3s", -1, 0},
        {"0x10s", -1, 0},
        {"inf", -1, 0},
        {"nans", -1, 0},
        {"", -1, 0},
        {"10", -1, 0},
        {"s", -1, 0},
        {"-1s", -1, 0},
        {"1.s5", -1, 0},
        {"10 s", -1, 0},
        {"10parsecs", -1, 0},
        /* over the ceiling: LIM_TTL_MAX hours */
        {"99999999h", -1, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -7;
        int rc = rconb_go_duration(cases[i].text, &ms);

        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
            fail_msg("'%s': rc %d ms %lld, want rc %d ms %lld", cases[i].text, rc, (long long)ms,
                     cases[i].rc, (long long)cases[i].ms);
    }
}

/* The native body of the Consul text, through rconb_to_native and
 * reg_spec_parse as the route takes it; status 0 when both accept. */
static int translate(const char *text, struct reg_spec *spec, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *in = json_loads(text, 0, &jerr);
    json_t *native = NULL;
    int status = 0;

    assert_non_null(in);
    native = rconb_to_native(in, "10.0.0.1", err, errlen, &status);
    json_decref(in);
    if (!native)
        return status;
    status = reg_spec_parse(native, spec, err, errlen) == 0 ? 0 : 400;
    json_decref(native);
    return status;
}

static void test_service_definition(void **state)
{
    struct reg_spec spec;
    char err[256];
    char id[LIM_ID_MAX + 1];

    (void)state;
    /* python-consul's lower-case keys; no Address: the node's */
    assert_int_equal(translate("{\"name\":\"web\",\"id\":\"web-1\",\"port\":8080,\"tags\":[\"v1\"],"
                               "\"check\":{\"ttl\":\"1m30s\"}}",
                               &spec, err, sizeof(err)),
                     0);
    assert_string_equal(spec.name, "web");
    assert_string_equal(spec.host, "10.0.0.1");
    assert_int_equal(spec.port, 8080);
    assert_int_equal(spec.ttl_ms, 90000);
    assert_int_equal(spec.check_count, 1);
    /* Consul's TTL check starts critical */
    assert_int_equal(spec.checks[0].status, REG_CRITICAL);
    /* the derived id, kept stable, the Consul id in the metadata */
    assert_int_equal(rcon_native_id("web", "web-1", id), 1);
    assert_string_equal(spec.id, id);
    assert_int_equal(spec.meta_count, 1);
    assert_string_equal(reg_spec_meta_key(&spec, 0), RCON_META_ID);
    assert_string_equal(reg_spec_meta_value(&spec, 0), "web-1");
    reg_spec_clear(&spec);

    /* Checks: HTTP with Go durations, and no TTL check at all */
    assert_int_equal(translate("{\"Name\":\"api\",\"Address\":\"h\",\"Port\":1,\"Checks\":[{"
                               "\"HTTP\":\"http://h:1/health\",\"Interval\":\"1m\","
                               "\"Timeout\":\"1.5s\"}]}",
                               &spec, err, sizeof(err)),
                     0);
    assert_int_equal(spec.ttl_ms, 0);
    assert_int_equal(spec.check_count, 1);
    assert_int_equal(spec.checks[0].kind, REG_CHECK_HTTP);
    assert_int_equal(spec.checks[0].interval_ms, 60000);
    assert_int_equal(spec.checks[0].timeout_ms, 1500);
    assert_string_equal(spec.checks[0].id, "service:api:1");
    reg_spec_clear(&spec);

    /* a millisecond TTL */
    assert_int_equal(translate("{\"Name\":\"f\",\"Port\":1,\"Check\":{\"TTL\":\"150ms\"}}", &spec,
                               err, sizeof(err)),
                     0);
    assert_int_equal(spec.ttl_ms, 150);
    reg_spec_clear(&spec);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *body;
        int status;
        const char *words;
    } cases[] = {
        {"[1]", 400, "JSON object"},
        {"{\"Port\":1}", 400, "Name"},
        {"{\"Name\":\"a b\",\"Port\":1}", 400, "Name"},
        {"{\"Name\":\"a\",\"ID\":\"x/y\",\"Port\":1}", 400, "ID"},
        {"{\"Name\":\"a\",\"Port\":1,\"Check\":{},\"Checks\":[]}", 400, "not both"},
        {"{\"Name\":\"a\",\"Port\":1,\"Meta\":[1]}", 400, "Meta"},
        {"{\"Name\":\"a\",\"Port\":1,\"Meta\":{\"consul_id\":\"x\"}}", 400, "consul_id"},
        {"{\"Name\":\"a\",\"Port\":1,\"Check\":{\"Script\":\"/bin/true\"}}", 501, "Script"},
        {"{\"Name\":\"a\",\"Port\":1,\"Checks\":[{\"GRPC\":\"h:1\"}]}", 501, "GRPC"},
        {"{\"Name\":\"a\",\"Port\":1,\"Checks\":[7]}", 400, "object"},
        {"{\"Name\":\"a\",\"Port\":1,\"Check\":{\"TTL\":\"1e3s\"}}", 400, "ttl"},
        {"{\"Name\":\"a\",\"Port\":0}", 400, "port"},
    };
    struct reg_spec spec;
    char err[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status;

        err[0] = '\0';
        status = translate(cases[i].body, &spec, err, sizeof(err));
        if (status != cases[i].status || !strstr(err, cases[i].words))
            fail_msg("%s: %d '%s', want %d with '%s'", cases[i].body, status, err, cases[i].status,
                     cases[i].words);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_durations),
        cmocka_unit_test(test_service_definition),
        cmocka_unit_test(test_refusals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
