/* test_service.c: unit tests for common/http/service.c, the life cycle every
 * executable shares: stop hooks in reverse order of registration, busy hooks
 * that hold the drain, hooks removed with their owner, the hook table's
 * bound, the exit code of a drain that ends cleanly or runs out, and the
 * pre-stop phase: drain hooks, a drain delay during which the service
 * still serves, cut short by a second signal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/server.h"
#include "http/service.h"
#include "rawclient.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static char hook_order[8];

static void order_a(void *arg)
{
    (void)arg;
    strcat(hook_order, "a");
}

static void order_b(void *arg)
{
    (void)arg;
    strcat(hook_order, "b");
}

/* Busy hook: the counter arg points at. */
static size_t busy_count(void *arg) { return *(const size_t *)arg; }

/* Stop hooks run once, in reverse order of registration; busy hooks add
 * up; removed hooks are not called. */
static void test_hooks_order_and_removal(void **state)
{
    struct svc *s;
    char err[256] = "";
    size_t two = 2;
    int owner = 0;

    (void)state;
    s = svc_new("hooks-test", err, sizeof(err));
    assert_non_null(s);
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_a, &owner), 0);
    assert_int_equal(svc_on_stop(s, order_b, NULL), 0);
    assert_int_equal(svc_on_busy(s, busy_count, &two), 0);
    assert_int_equal(svc_on_busy(s, busy_count, &two), 0);
    assert_int_equal(svc_busy(s), 4);
    svc_remove_hooks(s, &two);
    assert_int_equal(svc_busy(s), 0);
    svc_remove_hooks(s, NULL); /* order_b goes */
    assert_int_equal(svc_on_stop(s, order_b, NULL), 0);
    svc_shutdown(s);
    svc_shutdown(s); /* only the first call runs the hooks */
    assert_string_equal(hook_order, "ba");
    assert_int_equal(svc_run(s), 0); /* nothing in flight: drained at once */
    svc_free(s);
}

/* The hook tables have a bound and say so. */
static void test_hooks_bounded(void **state)
{
    struct svc *s;
    char err[256] = "";
    size_t zero = 0;
    int i;

    (void)state;
    s = svc_new("hooks-test", err, sizeof(err));
    assert_non_null(s);
    for (i = 0; i < SVC_HOOKS_MAX; i++) {
        assert_int_equal(svc_on_stop(s, order_a, NULL), 0);
        assert_int_equal(svc_on_busy(s, busy_count, &zero), 0);
    }
    assert_int_equal(svc_on_stop(s, order_a, NULL), -1);
    assert_int_equal(svc_on_busy(s, busy_count, &zero), -1);
    svc_free(s);
    svc_free(NULL);
}

/* Timer: the work in flight is done. */
static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(size_t *)arg = 0;
}

/* A busy hook holds the drain until its work is done: exit code 0. */
static void test_drain_waits_for_busy(void **state)
{
    struct svc *s;
    struct event *done;
    struct timeval tv = {0, 50 * 1000};
    char err[256] = "";
    size_t inflight = 1;

    (void)state;
    s = svc_new("drain-test", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(svc_on_busy(s, busy_count, &inflight), 0);
    done = evtimer_new(svc_base(s), finish_cb, &inflight);
    assert_non_null(done);
    assert_int_equal(evtimer_add(done, &tv), 0);
    svc_shutdown(s);
    assert_int_equal(svc_run(s), 0);
    assert_int_equal(inflight, 0);
    event_free(done);
    svc_free(s);
}

/* Work that never ends: the grace period runs out, exit code 1. */
static void test_drain_runs_out(void **state)
{
    struct svc *s;
    char err[256] = "";
    size_t inflight = 1;

    (void)state;
    s = svc_new("drain-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_grace_ms(s, 60);
    assert_int_equal(svc_on_busy(s, busy_count, &inflight), 0);
    svc_shutdown(s);
    assert_int_equal(svc_run(s), 1);
    svc_free(s);
}

/* Listening on port 0 binds an ephemeral port and svc_port tells it. */
static void test_listen_ephemeral(void **state)
{
    struct svc *s;
    char err[256] = "";

    (void)state;
    s = svc_new("listen-test", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(svc_port(s), 0);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    assert_true(svc_port(s) > 0);
    assert_string_equal(svc_name(s), "listen-test");
    assert_non_null(svc_http(s));
    assert_non_null(svc_metrics(s));
    svc_free(s);
}

#define BIG_ANSWER (4 * 1024 * 1024)

/* What the big-answer test shares with its callbacks. */
struct big {
    struct svc *svc;
    size_t received; /* bytes the client read */
};

/* GET /big: answer 4 MiB, then begin the shutdown at once, as a SIGTERM
 * arriving right after an answer would. */
static void route_big(struct hs_req *req, void *arg)
{
    struct big *b = arg;
    struct evbuffer *out = hs_req_output(req);
    static char chunk[64 * 1024];
    size_t i;

    memset(chunk, 'b', sizeof(chunk));
    for (i = 0; i < BIG_ANSWER / sizeof(chunk); i++)
        evbuffer_add(out, chunk, sizeof(chunk));
    hs_reply_buffer(req, 200, "text/plain", NULL);
    svc_shutdown(b->svc);
}

/* The client's socket is readable: count what arrives. */
static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct big *b = arg;
    char buf[65536];
    ssize_t n;

    (void)what;
    n = read(fd, buf, sizeof(buf));
    if (n > 0)
        b->received += (size_t)n;
}

/* An answer given just before the shutdown is written out whole before
 * the loop ends: the drain waits for connections still writing, not only
 * for requests not answered yet. */
static void test_drain_waits_for_answers_being_written(void **state)
{
    struct svc *s;
    struct big b = {NULL, 0};
    struct sockaddr_in sa;
    struct event *rd;
    char err[256] = "";
    const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd;

    (void)state;
    s = svc_new("drain-test", err, sizeof(err));
    assert_non_null(s);
    b.svc = s;
    assert_int_equal(hs_route(svc_http(s), HS_GET, "/big", route_big, &b), 0);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)svc_port(s));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    assert_int_equal(evutil_make_socket_nonblocking(fd), 0);
    rd = event_new(svc_base(s), fd, EV_READ | EV_PERSIST, client_read_cb, &b);
    assert_non_null(rd);
    assert_int_equal(event_add(rd, NULL), 0);
    assert_int_equal(svc_run(s), 0);
    /* what the kernel still holds for the client */
    for (;;) {
        size_t before = b.received;

        client_read_cb(fd, EV_READ, &b);
        if (b.received == before)
            break;
    }
    assert_true(b.received > BIG_ANSWER); /* the headers and every byte of the body */
    event_free(rd);
    close(fd);
    svc_free(s);
}

/* A drain hook that records 'd' and asks for the delay. */
static bool drain_wants(void *arg, int64_t delay_ms)
{
    *(int64_t *)arg = delay_ms;
    strcat(hook_order, "d");
    return true;
}

/* A drain hook that records 'n' and asks for no delay. */
static bool drain_declines(void *arg, int64_t delay_ms)
{
    (void)arg;
    (void)delay_ms;
    strcat(hook_order, "n");
    return false;
}

static void order_s(void *arg)
{
    (void)arg;
    strcat(hook_order, "s");
}

/* What the drain-delay test's busy hook saw once the stop had begun. */
struct probe {
    int port;
    int probes;  /* times the hook ran */
    int refused; /* connects refused */
};

/* Does a new TCP connection to 127.0.0.1:port fail (nobody listening)? */
static bool connect_refused(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc != 0;
}

/* Busy hook, asked only after the stop: try a new connection. */
static size_t probe_connect(void *arg)
{
    struct probe *p = arg;

    p->probes++;
    if (connect_refused(p->port))
        p->refused++;
    return 0;
}

/* With a drain delay, the drain hooks run on the signal, a request sent
 * during the delay is served, and only after the delay the stop hooks run
 * and new connections are refused. */
static void test_drain_delay_serves_then_stops(void **state)
{
    struct svc *s;
    struct rc_client *c;
    struct rc_response r;
    struct probe pr = {0, 0, 0};
    char err[256] = "";
    int64_t seen_delay = 0;
    size_t len;
    const char *data;

    (void)state;
    s = svc_new("delay-test", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    pr.port = svc_port(s);
    svc_set_drain_delay(s, 300);
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_s, NULL), 0);
    assert_int_equal(svc_on_drain(s, drain_wants, &seen_delay), 0);
    assert_int_equal(svc_on_busy(s, probe_connect, &pr), 0);
    svc_shutdown(s);
    assert_string_equal(hook_order, "d"); /* drain hooks now, stop hooks not yet */
    assert_int_equal(seen_delay, 300);
    assert_true(svc_delaying(s));
    assert_int_equal(pr.probes, 0); /* no drain yet */

    assert_false(connect_refused(svc_port(s))); /* still listening */
    c = rc_connect(svc_base(s), svc_port(s));
    assert_non_null(c);
    assert_int_equal(rc_send(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_true(rc_run_until(svc_base(s), rc_pred_response, c, 2000));
    data = rc_data(c, &len);
    assert_true(rc_parse(data, len, 0, &r) > 0);
    assert_int_equal(r.status, 200);
    rc_response_free(&r);
    rc_free(c);
    assert_true(svc_delaying(s));
    assert_string_equal(hook_order, "d");

    assert_int_equal(svc_run(s), 0);
    assert_false(svc_delaying(s));
    assert_string_equal(hook_order, "ds");
    assert_true(pr.probes >= 1);
    assert_int_equal(pr.refused, pr.probes); /* not accepting once stopping */
    assert_true(connect_refused(svc_port(s)));
    svc_free(s);
}

/* A second svc_shutdown during the delay ends it at once: the stop hooks
 * run and the loop drains without waiting out the (long) delay. */
static void test_second_shutdown_cuts_delay(void **state)
{
    struct svc *s;
    char err[256] = "";
    int64_t seen_delay = 0;

    (void)state;
    s = svc_new("delay-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_drain_delay(s, 600 * 1000); /* longer than the test may run */
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_s, NULL), 0);
    assert_int_equal(svc_on_drain(s, drain_wants, &seen_delay), 0);
    svc_shutdown(s);
    assert_true(svc_delaying(s));
    assert_string_equal(hook_order, "d");
    svc_shutdown(s);
    assert_false(svc_delaying(s));
    assert_string_equal(hook_order, "ds");
    svc_shutdown(s); /* a third call does nothing */
    assert_string_equal(hook_order, "ds");
    assert_int_equal(svc_run(s), 0);
    svc_free(s);
}

/* Timer: a second SIGTERM, as an operator's would. */
static void raise_term_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    raise(SIGTERM);
}

/* The same through signals: the first SIGTERM begins the delay, the second
 * ends it, and the service drains with exit code 0. */
static void test_second_signal_cuts_delay(void **state)
{
    struct svc *s;
    struct event *again;
    struct timeval tv = {0, 50 * 1000};
    char err[256] = "";
    int64_t seen_delay = 0;

    (void)state;
    s = svc_new("delay-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_drain_delay(s, 600 * 1000);
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_s, NULL), 0);
    assert_int_equal(svc_on_drain(s, drain_wants, &seen_delay), 0);
    again = evtimer_new(svc_base(s), raise_term_cb, NULL);
    assert_non_null(again);
    assert_int_equal(evtimer_add(again, &tv), 0);
    raise(SIGTERM); /* delivered to the loop once it runs */
    assert_int_equal(svc_run(s), 0);
    assert_string_equal(hook_order, "ds");
    event_free(again);
    svc_free(s);
}

/* The delay runs only when a drain hook asks for it; without a delay set
 * the drain hooks do not run at all (the registry's contract). */
static void test_drain_hooks_decide(void **state)
{
    struct svc *s;
    char err[256] = "";
    int64_t seen_delay = 0;

    (void)state;
    s = svc_new("delay-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_drain_delay(s, 600 * 1000);
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_s, NULL), 0);
    assert_int_equal(svc_on_drain(s, drain_declines, NULL), 0);
    svc_shutdown(s);
    assert_false(svc_delaying(s));
    assert_string_equal(hook_order, "ns");
    assert_int_equal(svc_run(s), 0);
    svc_free(s);

    s = svc_new("delay-test", err, sizeof(err));
    assert_non_null(s);
    hook_order[0] = '\0';
    assert_int_equal(svc_on_stop(s, order_s, NULL), 0);
    assert_int_equal(svc_on_drain(s, drain_wants, &seen_delay), 0);
    svc_shutdown(s);
    assert_false(svc_delaying(s));
    assert_string_equal(hook_order, "s");
    assert_int_equal(seen_delay, 0);
    /* removed with their owner like the other hooks */
    svc_remove_hooks(s, &seen_delay);
    assert_int_equal(svc_run(s), 0);
    svc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_order_and_removal),
        cmocka_unit_test(test_hooks_bounded),
        cmocka_unit_test(test_drain_waits_for_busy),
        cmocka_unit_test(test_drain_runs_out),
        cmocka_unit_test(test_listen_ephemeral),
        cmocka_unit_test(test_drain_waits_for_answers_being_written),
        cmocka_unit_test(test_drain_delay_serves_then_stops),
        cmocka_unit_test(test_second_shutdown_cuts_delay),
        cmocka_unit_test(test_second_signal_cuts_delay),
        cmocka_unit_test(test_drain_hooks_decide),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
