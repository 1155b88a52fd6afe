/* test_failover.c: unit tests for common/regclient/failover.c, the one
 * failover policy of the registry clients: a failure moves the shared
 * cursor only if nobody moved it since the call was sent, an outage logs
 * one WARN, DEBUG lines after, one INFO at its end. No network: the policy
 * is driven by hand, the log is captured from stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "regclient/failover.h"
#include "regclient/urls.h"
#include "support.h"

#define LOG_MAX 8192

/* Send stderr (the log) to a temporary file until capture_end. */
static void capture_begin(void) { assert_int_equal(ts_capture_begin(), 0); }

/* Restore stderr and copy what was logged into buf (cap bytes). */
static void capture_end(char *buf, size_t cap) { ts_capture_end(buf, cap); }

#define count_of ts_count_of

static int setup(void **state)
{
    (void)state;
    log_init("failover-test");
    log_set_level(LOGL_DEBUG);
    return 0;
}

/* Two callers fail on the same dead URL: the cursor moves once, so the
 * second does not skip past the live one back onto the dead one. */
static void test_shared_cursor_moves_once(void **state)
{
    struct ru_list urls;
    struct fo_caller a, b;
    char log[LOG_MAX];

    (void)state;
    assert_int_equal(ru_parse(&urls, "http://dead:1,http://live:2", NULL, 0), 0);
    fo_init(&a, &urls);
    fo_init(&b, &urls);
    assert_string_equal(fo_send(&a), "http://dead:1");
    assert_string_equal(fo_send(&b), "http://dead:1");
    capture_begin();
    fo_failed(&a, "connection refused", "retrying in %d ms", 10);
    fo_failed(&b, "connection refused", "keeping %d instances", 2);
    capture_end(log, sizeof(log));
    assert_string_equal(ru_current(&urls), "http://live:2");
    assert_int_equal(count_of(log, " WARN "), 2); /* one outage each */
    assert_non_null(strstr(log, "registry http://dead:1: connection refused; retrying in 10 ms "
                                "(next: http://live:2)"));
    assert_non_null(
        strstr(log, "registry http://dead:1: connection refused; keeping 2 instances\n"));
    assert_string_equal(fo_sent_url(&b), "http://dead:1");
    assert_string_equal(fo_send(&b), "http://live:2");
}

/* One outage: one WARN, DEBUG with the count after, one INFO at the end;
 * a new outage warns again. */
static void test_outage_logs_three_kinds_of_line(void **state)
{
    struct ru_list urls;
    struct fo_caller c;
    char log[LOG_MAX];
    int i;

    (void)state;
    assert_int_equal(ru_parse(&urls, "http://only:1", NULL, 0), 0);
    fo_init(&c, &urls);
    capture_begin();
    for (i = 0; i < 5; i++) {
        (void)fo_send(&c);
        fo_failed(&c, "timeout", "retrying");
    }
    (void)fo_send(&c);
    fo_succeeded(&c, "%d instances of x", 3);
    fo_succeeded(&c, NULL); /* no outage: silent */
    (void)fo_send(&c);
    fo_failed(&c, "HTTP 503", "retrying");
    capture_end(log, sizeof(log));
    assert_int_equal(count_of(log, " WARN "), 2);
    assert_int_equal(count_of(log, " DEBUG "), 4);
    assert_non_null(strstr(log, "timeout; retrying (failure 5)"));
    assert_int_equal(count_of(log, " INFO "), 1);
    assert_non_null(strstr(log, "registry http://only:1 answers again after 5 failures; "
                                "3 instances of x"));
    assert_string_equal(ru_current(&urls), "http://only:1"); /* one URL: stays */
    assert_int_equal(c.failures, 1);
}

/* A quiet caller fails over the same way but logs its outage at DEBUG
 * only: the caller beside it warns for the same list. */
static void test_quiet_caller(void **state)
{
    struct ru_list urls;
    struct fo_caller c;
    char log[LOG_MAX];

    (void)state;
    assert_int_equal(ru_parse(&urls, "http://dead:1,http://live:2", NULL, 0), 0);
    fo_init(&c, &urls);
    c.quiet = true;
    (void)fo_send(&c);
    capture_begin();
    fo_failed(&c, "connection refused", "keeping the value");
    (void)fo_send(&c);
    fo_succeeded(&c, "following k");
    capture_end(log, sizeof(log));
    assert_string_equal(ru_current(&urls), "http://live:2");
    assert_int_equal(count_of(log, " WARN "), 0);
    assert_int_equal(count_of(log, " INFO "), 0);
    assert_int_equal(count_of(log, " DEBUG "), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_cursor_moves_once),
        cmocka_unit_test(test_outage_logs_three_kinds_of_line),
        cmocka_unit_test(test_quiet_caller),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
