/* test_sse.c: unit tests for svcctl/sse: whole events out of bytes split
 * anywhere (one byte at a time too), comments skipped, data lines joined,
 * "\r\n" line ends, the id kept across events, the size cap, and a
 * callback that stops the parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "svcctl/sse.h"

/* What the callback saw: each event as "id|event|data" lines. */
struct seen {
    char text[4096];
    int count;
    int stop_after; /* 0: never stop */
};

static int on_event(const char *id, const char *event, const char *data, void *arg)
{
    struct seen *s = arg;
    size_t used = strlen(s->text);

    snprintf(s->text + used, sizeof(s->text) - used, "%s|%s|%s\n", id, event, data);
    s->count++;
    return s->stop_after && s->count >= s->stop_after;
}

static const char stream[] = ": keep-alive\n"
                             "\n"
                             "id: 4\n"
                             "event: register\n"
                             "data: {\"a\":1}\n"
                             "\n"
                             "id: 5\r\n"
                             "event: kv\r\n"
                             "data: line one\r\n"
                             "data: line two\r\n"
                             "retry: 100\r\n"
                             "\r\n"
                             "event: reset\n"
                             "data:{\"index\":9}\n"
                             "\n";

static const char expected[] = "4|register|{\"a\":1}\n"
                               "5|kv|line one\nline two\n"
                               "5|reset|{\"index\":9}\n";

static void test_whole_stream(void **state)
{
    struct sse_parser *p = sse_new(1024);
    struct seen s = {0};

    (void)state;
    assert_non_null(p);
    assert_int_equal(sse_feed(p, stream, strlen(stream), on_event, &s), 0);
    assert_int_equal(s.count, 3);
    assert_string_equal(s.text, expected);
    sse_free(p);
}

static void test_byte_at_a_time(void **state)
{
    struct sse_parser *p = sse_new(1024);
    struct seen s = {0};
    size_t i;

    (void)state;
    assert_non_null(p);
    for (i = 0; i < strlen(stream); i++)
        assert_int_equal(sse_feed(p, stream + i, 1, on_event, &s), 0);
    assert_string_equal(s.text, expected);
    sse_free(p);
}

static void test_unfinished_event_waits(void **state)
{
    struct sse_parser *p = sse_new(1024);
    struct seen s = {0};

    (void)state;
    assert_non_null(p);
    assert_int_equal(sse_feed(p, "event: kv\ndata: x\n", 18, on_event, &s), 0);
    assert_int_equal(s.count, 0); /* no blank line yet */
    assert_int_equal(sse_feed(p, "\n", 1, on_event, &s), 0);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.text, "|kv|x\n");
    sse_free(p);
}

static void test_cap(void **state)
{
    struct sse_parser *p = sse_new(16);
    struct seen s = {0};
    const char *big = "data: 0123456789abcdefghij\n\n";

    (void)state;
    assert_non_null(p);
    assert_int_equal(sse_feed(p, big, strlen(big), on_event, &s), -1);
    assert_int_equal(s.count, 0);
    sse_free(p);
}

static void test_stop(void **state)
{
    struct sse_parser *p = sse_new(1024);
    struct seen s = {.stop_after = 1};

    (void)state;
    assert_non_null(p);
    assert_int_equal(sse_feed(p, stream, strlen(stream), on_event, &s), 1);
    assert_int_equal(s.count, 1);
    sse_free(p);
    sse_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_unfinished_event_waits),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
