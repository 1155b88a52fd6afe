/* test_service.c: unit tests for common/http/service.c, the life cycle every
 * executable shares: stop hooks in reverse order of registration, busy hooks
 * that hold the drain, hooks removed with their owner, the hook table's
 * bound, and the exit code of a drain that ends cleanly or runs out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/server.h"
#include "http/service.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_order_and_removal),
        cmocka_unit_test(test_hooks_bounded),
        cmocka_unit_test(test_drain_waits_for_busy),
        cmocka_unit_test(test_drain_runs_out),
        cmocka_unit_test(test_listen_ephemeral),
        cmocka_unit_test(test_drain_waits_for_answers_being_written),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
