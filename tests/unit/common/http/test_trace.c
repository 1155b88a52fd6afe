/* test_trace.c: unit tests for common/http/trace.c: the traceparent
 * examples of the W3C Trace Context specification (valid and invalid),
 * other malformed values, id generation and formatting. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "http/trace.h"

#define SPEC_VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_parse_spec_example(void **state)
{
    char id[TRC_TRACE_ID_LEN + 1];
    unsigned flags = 99;

    (void)state;
    assert_int_equal(trc_parse(SPEC_VALID, id, &flags), 0);
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(flags, 1);
    assert_int_equal(
        trc_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", id, &flags), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(
        trc_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", NULL, &flags), 0);
    assert_int_equal(flags, 0xff);
}

static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        /* the specification's invalid examples: all-zero ids, version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* upper-case hex is not allowed */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        /* other versions, lengths, separators, digits */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "",
        "garbage",
    };
    char id[TRC_TRACE_ID_LEN + 1] = "untouched";
    unsigned flags = 7;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (trc_parse(bad[i], id, &flags) != -1)
            fail_msg("accepted %s", bad[i]);
    }
    assert_int_equal(trc_parse(NULL, id, &flags), -1);
    assert_string_equal(id, "untouched");
}

static void test_trace_id_valid(void **state)
{
    (void)state;
    assert_true(trc_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_false(trc_trace_id_valid("00000000000000000000000000000000"));
    assert_false(trc_trace_id_valid("4BF92F3577B34DA6A3CE929D0E0E4736"));
    assert_false(trc_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e473"));
    assert_false(trc_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e47361"));
    assert_false(trc_trace_id_valid(""));
    assert_false(trc_trace_id_valid(NULL));
}

static void test_begin_takes_or_starts(void **state)
{
    struct trc_ctx a, b;
    char out[TRC_PARENT_LEN + 1];
    char id[TRC_TRACE_ID_LEN + 1];
    unsigned flags;

    (void)state;
    assert_true(trc_begin(&a, SPEC_VALID));
    assert_string_equal(a.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(strlen(a.span_id), TRC_SPAN_ID_LEN);
    assert_string_not_equal(a.span_id, "00f067aa0ba902b7"); /* our own span */
    trc_format(&a, out);
    assert_int_equal(strlen(out), TRC_PARENT_LEN);
    assert_int_equal(trc_parse(out, id, &flags), 0);
    assert_string_equal(id, a.trace_id);
    assert_int_equal(flags, 1);
    assert_memory_equal(out + 36, a.span_id, TRC_SPAN_ID_LEN);

    /* absent or invalid: a new, valid, sampled trace each time */
    assert_false(trc_begin(&a, NULL));
    assert_false(trc_begin(&b, "00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    assert_true(trc_trace_id_valid(a.trace_id));
    assert_true(trc_trace_id_valid(b.trace_id));
    assert_string_not_equal(a.trace_id, b.trace_id);
    assert_string_not_equal(b.trace_id, "00000000000000000000000000000000");
    trc_format(&b, out);
    assert_int_equal(trc_parse(out, NULL, &flags), 0);
    assert_int_equal(flags, TRC_FLAG_SAMPLED);
}

static void test_child_and_format_child(void **state)
{
    struct trc_ctx a, c;
    char out[TRC_PARENT_LEN + 1], out2[TRC_PARENT_LEN + 1];
    char id[TRC_TRACE_ID_LEN + 1];

    (void)state;
    assert_true(trc_begin(&a, SPEC_VALID));
    trc_child(&a, &c);
    assert_string_equal(c.trace_id, a.trace_id);
    assert_string_not_equal(c.span_id, a.span_id);
    trc_format_child(a.trace_id, out);
    trc_format_child(a.trace_id, out2);
    assert_int_equal(trc_parse(out, id, NULL), 0);
    assert_string_equal(id, a.trace_id);
    assert_string_not_equal(out, out2); /* a new span per call */
}

static void test_random_hex_many(void **state)
{
    char prev[TRC_TRACE_ID_LEN + 1] = "", cur[TRC_TRACE_ID_LEN + 1];
    int i;

    (void)state;
    /* past one pool refill: every id valid and different from the last */
    for (i = 0; i < 1000; i++) {
        trc_random_hex(cur, TRC_TRACE_ID_LEN);
        assert_true(trc_trace_id_valid(cur));
        assert_string_not_equal(cur, prev);
        memcpy(prev, cur, sizeof(prev));
    }
    trc_random_hex(cur, TRC_SPAN_ID_LEN);
    assert_int_equal(strlen(cur), TRC_SPAN_ID_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_spec_example),     cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_trace_id_valid),         cmocka_unit_test(test_begin_takes_or_starts),
        cmocka_unit_test(test_child_and_format_child), cmocka_unit_test(test_random_hex_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
