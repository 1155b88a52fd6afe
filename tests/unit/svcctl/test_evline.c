/* test_evline.c: unit tests for svcctl/evline: the watch line of each
 * event type the registry sends (register, deregister, health with the
 * check's move, maintenance on with its reason and off, kv, reset), the
 * UTC time from the timestamp (or "now" without one), "-" for what is
 * missing, and one line whatever the event holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "svcctl/evline.h"

/* The line of the event in JSON text ev; fails the test on bad JSON. */
static char *line_of(const char *sse_event, const char *ev, time_t now)
{
    json_error_t jerr;
    json_t *doc = json_loads(ev, 0, &jerr);
    char *line;

    if (!doc)
        fail_msg("bad test JSON: %s", jerr.text);
    line = evl_line(sse_event, doc, now);
    json_decref(doc);
    assert_non_null(line);
    return line;
}

/* 1796177517 is 2026-12-02T02:11:57Z */
#define INFO "\"service_info\":{\"name\":\"api\",\"health\":\"passing\"}"

static void test_register(void **state)
{
    char *l = line_of("register",
                      "{\"type\":\"register\",\"index\":4,\"timestamp\":1796177517,"
                      "\"data\":{\"service_id\":\"api-1\"," INFO "}}",
                      0);

    (void)state;
    assert_string_equal(l, "2026-12-02T02:11:57Z register    api api-1 passing");
    free(l);
}

static void test_health(void **state)
{
    char *l = line_of(
        "health",
        "{\"type\":\"health\",\"index\":5,\"timestamp\":1796177517,\"data\":{\"service_id\":"
        "\"api-1\",\"service_info\":{\"name\":\"api\",\"health\":\"critical\"},\"check_id\":"
        "\"api-1:ttl\",\"status\":\"critical\",\"previous\":\"passing\"}}",
        0);

    (void)state;
    assert_string_equal(
        l,
        "2026-12-02T02:11:57Z health      api api-1 critical check api-1:ttl passing -> critical");
    free(l);
}

static void test_maintenance(void **state)
{
    char *on =
        line_of("maintenance",
                "{\"type\":\"maintenance\",\"timestamp\":1796177517,\"data\":{\"service_id\":"
                "\"api-1\",\"service_info\":{\"name\":\"api\",\"health\":\"critical\","
                "\"maintenance\":{\"reason\":\"deploy\\nnow\"}},\"enable\":true}}",
                0);
    char *off =
        line_of("maintenance",
                "{\"type\":\"maintenance\",\"timestamp\":1796177517,\"data\":{\"service_id\":"
                "\"api-1\"," INFO ",\"enable\":false}}",
                0);

    (void)state;
    /* the reason's newline does not break the line */
    assert_string_equal(
        on, "2026-12-02T02:11:57Z maintenance api api-1 critical maintenance on: deploy now");
    assert_string_equal(off, "2026-12-02T02:11:57Z maintenance api api-1 passing maintenance off");
    free(on);
    free(off);
}

static void test_kv_and_deregister(void **state)
{
    char *kv = line_of("kv",
                       "{\"type\":\"kv\",\"index\":3,\"timestamp\":1796168839,\"data\":{\"key\":"
                       "\"config/x\",\"op\":\"delete\",\"modify_index\":3}}",
                       0);
    char *dereg =
        line_of("deregister",
                "{\"type\":\"deregister\",\"timestamp\":1796177517,\"data\":{\"service_id\":"
                "\"api-1\"}}",
                0);

    (void)state;
    assert_string_equal(kv, "2026-12-01T23:47:19Z kv          - config/x delete");
    assert_string_equal(dereg, "2026-12-02T02:11:57Z deregister  - api-1 -");
    free(kv);
    free(dereg);
}

static void test_reset_uses_now(void **state)
{
    char *l = line_of("reset", "{\"oldest_index\":3,\"index\":9}", 1796177517);

    (void)state;
    assert_string_equal(l, "2026-12-02T02:11:57Z reset       - - the history passed this watch: "
                           "re-read the state (index 9)");
    free(l);
}

static void test_not_an_object(void **state)
{
    char *l = evl_line("", NULL, 0);

    (void)state;
    assert_non_null(l);
    assert_string_equal(l, "1970-01-01T00:00:00Z -           - - -");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register),       cmocka_unit_test(test_health),
        cmocka_unit_test(test_maintenance),    cmocka_unit_test(test_kv_and_deregister),
        cmocka_unit_test(test_reset_uses_now), cmocka_unit_test(test_not_an_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
