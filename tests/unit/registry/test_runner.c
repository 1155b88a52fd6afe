/* test_runner.c: unit tests for registry/checks/runner.c, on real sockets
 * on 127.0.0.1 (ephemeral ports). Each test gets a fresh event_base with a
 * small evhttp server, a TCP listener that accepts and closes at once, and
 * a runner on the same base, so probes and targets run in one loop. Every
 * loop run is bounded by a safety deadline: a broken runner fails a test
 * instead of hanging it.
 *
 * Test server routes:
 *   /ok...     200 (any path starting with /ok)
 *   /busy      429
 *   /bad       500
 *   /code/N    status N
 *   /hang      never answered (the request stays pending), counted */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "core/clock.h"
#include "registry/checks/runner.h"
#include "support.h"

#define REPORTS_MAX  1024
#define ID_MAX       64
#define SAFETY_MS    4000 /* no single wait may take longer */
#define JITTER_N     200
#define CONCURRENT_N 50
#define POLL_MS      2

struct fixture;

/* What one report said (copied: the arguments are borrowed). */
struct rep {
    char inst[ID_MAX];
    char check[ID_MAX];
    enum crun_result res;
    char out[LIM_CHECK_OUTPUT_MAX + 8];
    size_t out_len;
    int64_t at_ms;
    int hang_count; /* fixture.hang_count when it was reported */
};

/* A test's own step inside the report callback, before it is recorded. */
typedef void (*hook_fn)(struct fixture *fx, const char *inst, const char *check);

struct fixture {
    struct event_base *base;
    struct evhttp *http;
    int http_port;
    struct evconnlistener *tcp4; /* accepts and closes */
    struct evconnlistener *tcp6; /* the same port on ::1, or NULL */
    int tcp_port;
    struct crun *c;
    struct rep reps[REPORTS_MAX];
    int nrep;
    int hang_count; /* /hang requests received */
    int firsts;     /* reports that were the first of their probe */
    hook_fn hook;
    int hook_runs;
    /* run_until */
    int (*pred)(struct fixture *fx);
    int met;
    char url[128];
};

/* ---- test server ---- */

static void srv_cb(struct evhttp_request *req, void *arg)
{
    struct fixture *fx = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (path == NULL)
        path = "";
    if (strncmp(path, "/ok", 3) == 0) {
        evhttp_send_reply(req, 200, "OK", NULL);
    } else if (strcmp(path, "/busy") == 0) {
        evhttp_send_reply(req, 429, "Too Many Requests", NULL);
    } else if (strcmp(path, "/bad") == 0) {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
    } else if (strncmp(path, "/code/", 6) == 0) {
        evhttp_send_reply(req, atoi(path + 6), "Whatever", NULL);
    } else if (strcmp(path, "/hang") == 0) {
        fx->hang_count++; /* never answered; evhttp_free drops it */
    } else {
        evhttp_send_reply(req, 404, "Not Found", NULL);
    }
}

/* evconnlistener callback: close the connection at once. */
static void tcp_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    evutil_closesocket(fd);
}

/* ---- the report callback ---- */

static int count_of(const struct fixture *fx, const char *inst, const char *check);

static void on_report(void *arg, const char *inst, const char *check, enum crun_result res,
                      const char *output)
{
    struct fixture *fx = arg;
    struct rep *r;

    if (fx->hook != NULL) {
        fx->hook_runs++;
        fx->hook(fx, inst, check); /* may remove or replace this probe */
    }
    if (fx->nrep >= REPORTS_MAX)
        return;
    /* Read the borrowed strings after the hook: they must still be valid. */
    if (count_of(fx, inst, check) == 0)
        fx->firsts++;
    r = &fx->reps[fx->nrep++];
    snprintf(r->inst, sizeof(r->inst), "%s", inst);
    snprintf(r->check, sizeof(r->check), "%s", check);
    r->res = res;
    r->out_len = strlen(output);
    snprintf(r->out, sizeof(r->out), "%s", output);
    r->at_ms = clk_now_ms();
    r->hang_count = fx->hang_count;
    if (getenv("RUNNER_TEST_PRINT") != NULL)
        print_message("report %s/%s %d: %s\n", r->inst, r->check, (int)res, r->out);
}

/* ---- loop helpers ---- */

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;

    (void)fd;
    (void)what;
    if (fx->pred != NULL && fx->pred(fx)) {
        fx->met = 1;
        event_base_loopbreak(fx->base);
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(fx->base);
}

/* Run the loop until pred(fx) holds (checked every POLL_MS; NULL: never)
 * or max_ms passed. Both timers are freed before it returns, so nothing of
 * one wait ends the next early. Returns 1 when pred held. */
static int run_until(struct fixture *fx, int (*pred)(struct fixture *), int64_t max_ms)
{
    struct event *poll = event_new(fx->base, -1, EV_PERSIST, poll_cb, fx);
    struct event *deadline = evtimer_new(fx->base, deadline_cb, fx);
    struct timeval every = {0, POLL_MS * 1000};

    assert_non_null(poll);
    assert_non_null(deadline);
    fx->pred = pred;
    fx->met = pred != NULL && pred(fx);
    if (!fx->met) {
        event_add(poll, &every);
        assert_int_equal(clk_timer_in(deadline, max_ms), 0);
        event_base_dispatch(fx->base);
    }
    event_free(poll);
    event_free(deadline);
    fx->pred = NULL;
    return fx->met;
}

/* Run the loop for ms, whatever happens. */
static void run_for(struct fixture *fx, int64_t ms) { (void)run_until(fx, NULL, ms); }

static int n_target;
static int at_least_n(struct fixture *fx) { return fx->nrep >= n_target; }

static int hang_reached(struct fixture *fx) { return fx->hang_count > 0; }

static int some_inflight(struct fixture *fx) { return crun_inflight(fx->c) > 0; }

/* Reports of check of inst so far. */
static int count_of(const struct fixture *fx, const char *inst, const char *check)
{
    int n = 0;

    for (int i = 0; i < fx->nrep; i++)
        if (strcmp(fx->reps[i].inst, inst) == 0 && strcmp(fx->reps[i].check, check) == 0)
            n++;
    return n;
}

/* The first report of check of inst, or NULL. */
static const struct rep *first_of(const struct fixture *fx, const char *inst, const char *check)
{
    for (int i = 0; i < fx->nrep; i++)
        if (strcmp(fx->reps[i].inst, inst) == 0 && strcmp(fx->reps[i].check, check) == 0)
            return &fx->reps[i];
    return NULL;
}

/* http://127.0.0.1:<server port><path>, in fx->url (overwritten by the next call). */
static const char *url(struct fixture *fx, const char *path)
{
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d%s", fx->http_port, path);
    return fx->url;
}

/* ---- setup ---- */

static struct evconnlistener *listen_on(struct fixture *fx, int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_addr = in6addr_loopback;
        len = sizeof(*sin6);
    }
    return evconnlistener_new_bind(fx->base, tcp_accept_cb, fx,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                   (struct sockaddr *)&ss, (int)len);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    if (fx == NULL)
        return -1;
    fx->base = event_base_new();
    if (fx->base == NULL)
        return -1;
    fx->http = evhttp_new(fx->base);
    if (fx->http == NULL)
        return -1;
    evhttp_set_gencb(fx->http, srv_cb, fx);
    fx->http_port = ts_evhttp_listen(fx->http, 0);
    if (fx->http_port < 0)
        return -1;
    fx->tcp4 = listen_on(fx, AF_INET, 0);
    if (fx->tcp4 == NULL)
        return -1;
    if (getsockname(evconnlistener_get_fd(fx->tcp4), (struct sockaddr *)&sin, &len) != 0)
        return -1;
    fx->tcp_port = ntohs(sin.sin_port);
    fx->tcp6 = listen_on(fx, AF_INET6, fx->tcp_port); /* NULL without IPv6 */
    fx->c = crun_new(fx->base, on_report, fx, 12345);
    if (fx->c == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    crun_free(fx->c);
    if (fx->tcp6 != NULL)
        evconnlistener_free(fx->tcp6);
    evconnlistener_free(fx->tcp4);
    evhttp_free(fx->http);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* ---- tests ---- */

/* 2xx passes, 429 warns, anything else fails; the output names the URL,
 * the status and its reason (just the number for an unknown one). */
static void test_http_results(void **state)
{
    struct fixture *fx = *state;
    char want[600];
    const struct rep *r;
    struct crun_stats st;
    const struct {
        const char *check, *path;
        enum crun_result res;
        const char *detail;
    } cases[] = {
        {"ok", "/ok", CRUN_PASS, "200 OK"},
        {"busy", "/busy", CRUN_WARN, "429 Too Many Requests"},
        {"bad", "/bad", CRUN_FAIL, "500 Internal Server Error"},
        {"c299", "/code/299", CRUN_PASS, "299"},
        {"c418", "/code/418", CRUN_FAIL, "418"},
        {"c404", "/nothing", CRUN_FAIL, "404 Not Found"},
        {"c302", "/code/302", CRUN_FAIL, "302 Found"},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);

    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            crun_add(fx->c, "i1", cases[i].check, CRUN_HTTP, url(fx, cases[i].path), 100, 2000), 0);
    assert_int_equal(crun_count(fx->c), n);
    n_target = (int)n;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    crun_remove_instance(fx->c, "i1");
    assert_int_equal(crun_count(fx->c), 0);
    for (size_t i = 0; i < n; i++) {
        r = first_of(fx, "i1", cases[i].check);
        assert_non_null(r);
        assert_int_equal(r->res, cases[i].res);
        snprintf(want, sizeof(want), "HTTP GET %s: %s", url(fx, cases[i].path), cases[i].detail);
        assert_string_equal(r->out, want);
    }
    crun_get_stats(fx->c, &st);
    assert_true(st.run >= n);
    assert_true(st.passed >= 2);
    assert_true(st.warned >= 1);
    assert_true(st.failed >= 4);
    assert_true(st.passed + st.warned + st.failed <= st.run);
    assert_int_equal(st.passed + st.warned + st.failed, (uint64_t)fx->nrep);
}

/* A closed port fails with "connection refused". */
static void test_http_refused(void **state)
{
    struct fixture *fx = *state;
    int port = ts_closed_port();
    char target[128], want[512];

    assert_true(port > 0);
    snprintf(target, sizeof(target), "http://127.0.0.1:%d/ok", port);
    assert_int_equal(crun_add(fx->c, "i1", "http", CRUN_HTTP, target, 100, 1000), 0);
    n_target = 1;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_int_equal(fx->reps[0].res, CRUN_FAIL);
    snprintf(want, sizeof(want), "HTTP GET %s: connection refused", target);
    assert_string_equal(fx->reps[0].out, want);
}

/* A target that never answers fails with "timeout" once its timeout has
 * passed, not before; the runs due meanwhile are skipped, not overlapped. */
static void test_http_timeout_and_skip(void **state)
{
    struct fixture *fx = *state;
    char want[512];
    int64_t added;
    struct crun_stats st;

    snprintf(want, sizeof(want), "HTTP GET %s: timeout after 250 ms", url(fx, "/hang"));
    added = clk_now_ms();
    assert_int_equal(crun_add(fx->c, "i1", "hang", CRUN_HTTP, url(fx, "/hang"), 100, 250), 0);
    n_target = 1;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_int_equal(fx->reps[0].res, CRUN_FAIL);
    assert_string_equal(fx->reps[0].out, want);
    /* The run started at or after crun_add: the report is at least the
     * timeout later (5 ms for the clocks' rounding). */
    assert_true(fx->reps[0].at_ms - added >= 250 - 5);
    /* One request had reached the server when it was reported: the runs
     * due 100 and 200 ms after the first found it in flight. */
    assert_int_equal(fx->reps[0].hang_count, 1);
    crun_get_stats(fx->c, &st);
    assert_true(st.skipped >= 1);
}

static int two_v4_reports(struct fixture *fx)
{
    return first_of(fx, "t", "up") != NULL && first_of(fx, "t", "down") != NULL &&
           first_of(fx, "t", "name") != NULL && first_of(fx, "t", "v6") != NULL;
}

/* TCP: a listening port passes, a closed one fails with the reason, an
 * IPv6 literal and a host name work as well. */
static void test_tcp(void **state)
{
    struct fixture *fx = *state;
    int closed = ts_closed_port();
    char up[64], down[64], name[64], v6[64], want[512];
    const struct rep *r;

    assert_true(closed > 0);
    snprintf(up, sizeof(up), "127.0.0.1:%d", fx->tcp_port);
    snprintf(down, sizeof(down), "127.0.0.1:%d", closed);
    snprintf(name, sizeof(name), "localhost:%d", fx->tcp_port);
    snprintf(v6, sizeof(v6), "[::1]:%d", fx->tcp6 != NULL ? fx->tcp_port : closed);
    assert_int_equal(crun_add(fx->c, "t", "up", CRUN_TCP, up, 100, 1000), 0);
    assert_int_equal(crun_add(fx->c, "t", "down", CRUN_TCP, down, 100, 1000), 0);
    assert_int_equal(crun_add(fx->c, "t", "name", CRUN_TCP, name, 100, 1000), 0);
    assert_int_equal(crun_add(fx->c, "t", "v6", CRUN_TCP, v6, 100, 1000), 0);
    assert_true(run_until(fx, two_v4_reports, SAFETY_MS));

    r = first_of(fx, "t", "up");
    assert_int_equal(r->res, CRUN_PASS);
    snprintf(want, sizeof(want), "TCP connect %s: success", up);
    assert_string_equal(r->out, want);

    r = first_of(fx, "t", "down");
    assert_int_equal(r->res, CRUN_FAIL);
    snprintf(want, sizeof(want), "TCP connect %s: connection refused", down);
    assert_string_equal(r->out, want);

    /* localhost resolves through evdns (the hosts file) to 127.0.0.1 or
     * ::1, both listening when the machine has IPv6. */
    r = first_of(fx, "t", "name");
    snprintf(want, sizeof(want), "TCP connect %s: success", name);
    if (fx->tcp6 != NULL || r->res == CRUN_PASS) {
        assert_int_equal(r->res, CRUN_PASS);
        assert_string_equal(r->out, want);
    }

    r = first_of(fx, "t", "v6");
    if (fx->tcp6 != NULL) {
        assert_int_equal(r->res, CRUN_PASS);
        snprintf(want, sizeof(want), "TCP connect %s: success", v6);
        assert_string_equal(r->out, want);
    } else {
        assert_int_equal(r->res, CRUN_FAIL);
    }
}

/* A name that does not resolve fails (how fast depends on the machine's
 * resolver: either its answer or the probe's timeout). */
static void test_tcp_unresolvable(void **state)
{
    struct fixture *fx = *state;
    const char *prefix = "TCP connect no-such-host.invalid:80: ";

    assert_int_equal(crun_add(fx->c, "t", "dns", CRUN_TCP, "no-such-host.invalid:80", 50, 600), 0);
    n_target = 1;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_int_equal(fx->reps[0].res, CRUN_FAIL);
    assert_memory_equal(fx->reps[0].out, prefix, strlen(prefix));
    assert_true(strstr(fx->reps[0].out, "cannot resolve") != NULL ||
                strstr(fx->reps[0].out, "timeout after 600 ms") != NULL);
}

static int tcp_bh_and_http_bh(struct fixture *fx)
{
    return first_of(fx, "b", "tcp") != NULL && first_of(fx, "b", "http") != NULL;
}

/* A black-holed target (a listener whose accept queue is full: the kernel
 * drops further SYNs) costs its probe the timeout, TCP and HTTP alike, and
 * reports "timeout" no earlier than that. */
static void test_blackhole_timeout(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int lfd, fillers[4];
    char tcp[64], http[96], want[512];
    int64_t added;
    const struct rep *r;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fillers[i] >= 0);
        assert_int_equal(evutil_make_socket_nonblocking(fillers[i]), 0);
        (void)connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin)); /* EINPROGRESS */
    }
    run_for(fx, 50); /* let the first handshakes fill the queue */
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", ntohs(sin.sin_port));
    snprintf(http, sizeof(http), "http://127.0.0.1:%d/ok", ntohs(sin.sin_port));
    added = clk_now_ms();
    assert_int_equal(crun_add(fx->c, "b", "tcp", CRUN_TCP, tcp, 100, 300), 0);
    assert_int_equal(crun_add(fx->c, "b", "http", CRUN_HTTP, http, 100, 300), 0);
    assert_true(run_until(fx, tcp_bh_and_http_bh, SAFETY_MS));

    r = first_of(fx, "b", "tcp");
    assert_int_equal(r->res, CRUN_FAIL);
    snprintf(want, sizeof(want), "TCP connect %s: timeout after 300 ms", tcp);
    assert_string_equal(r->out, want);
    assert_true(r->at_ms - added >= 300 - 5);
    r = first_of(fx, "b", "http");
    assert_int_equal(r->res, CRUN_FAIL);
    snprintf(want, sizeof(want), "HTTP GET %s: timeout after 300 ms", http);
    assert_string_equal(r->out, want);
    assert_true(r->at_ms - added >= 300 - 5);

    crun_remove_instance(fx->c, "b");
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
}

static int all_hang_inflight(struct fixture *fx) { return crun_inflight(fx->c) == CONCURRENT_N; }

static int all_hang_reported(struct fixture *fx) { return fx->firsts >= CONCURRENT_N; }

/* Probes of slow targets run side by side: 50 hanging requests are in
 * flight at once, and each ends with its own timeout. */
static void test_many_concurrent(void **state)
{
    struct fixture *fx = *state;
    char inst[32];

    for (int i = 0; i < CONCURRENT_N; i++) {
        snprintf(inst, sizeof(inst), "h%d", i);
        assert_int_equal(crun_add(fx->c, inst, "hang", CRUN_HTTP, url(fx, "/hang"), 100, 500), 0);
    }
    assert_true(run_until(fx, all_hang_inflight, SAFETY_MS));
    assert_true(run_until(fx, all_hang_reported, SAFETY_MS));
    for (int i = 0; i < fx->nrep; i++) {
        assert_int_equal(fx->reps[i].res, CRUN_FAIL);
        assert_non_null(strstr(fx->reps[i].out, ": timeout after 500 ms"));
    }
}

static int all_jitter_reported(struct fixture *fx) { return fx->firsts >= JITTER_N; }

/* 200 probes added together run first at points spread over their
 * interval, not all at once. Loose on purpose: a loaded machine delays
 * runs, it does not bunch 200 random points into a few milliseconds. */
static void test_first_runs_spread(void **state)
{
    struct fixture *fx = *state;
    char inst[32], target[64];
    int64_t added, lo = INT64_MAX, hi = INT64_MIN;
    int buckets[10] = {0}, used = 0;

    snprintf(target, sizeof(target), "127.0.0.1:%d", fx->tcp_port);
    added = clk_now_ms();
    for (int i = 0; i < JITTER_N; i++) {
        snprintf(inst, sizeof(inst), "j%d", i);
        assert_int_equal(crun_add(fx->c, inst, "tcp", CRUN_TCP, target, 1000, 1000), 0);
    }
    assert_int_equal(crun_count(fx->c), JITTER_N);
    assert_true(run_until(fx, all_jitter_reported, SAFETY_MS));
    for (int i = 0; i < JITTER_N; i++) {
        const struct rep *r;
        int64_t t;

        snprintf(inst, sizeof(inst), "j%d", i);
        r = first_of(fx, inst, "tcp");
        assert_non_null(r);
        assert_int_equal(r->res, CRUN_PASS);
        t = r->at_ms - added;
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
        buckets[t / 100 < 10 ? t / 100 : 9]++;
    }
    for (int b = 0; b < 10; b++)
        used += buckets[b] > 0;
    assert_true(hi - lo >= 300);
    assert_true(used >= 4);
}

/* Removing an instance cancels its run in flight (no report ever comes)
 * and leaves other instances alone. */
static void test_remove_cancels_inflight(void **state)
{
    struct fixture *fx = *state;
    int before;

    assert_int_equal(crun_add(fx->c, "r1", "hang", CRUN_HTTP, url(fx, "/hang"), 50, 3000), 0);
    assert_int_equal(crun_add(fx->c, "r1", "tcp", CRUN_TCP, "127.0.0.1:1", 5000, 3000), 0);
    assert_true(run_until(fx, hang_reached, SAFETY_MS)); /* at the server, waiting */
    assert_int_equal(crun_inflight(fx->c), 1);
    assert_int_equal(crun_add(fx->c, "r2", "ok", CRUN_HTTP, url(fx, "/ok"), 50, 1000), 0);
    assert_int_equal(crun_count(fx->c), 3);

    crun_remove_instance(fx->c, "r1");
    assert_int_equal(crun_count(fx->c), 1);
    assert_int_equal(crun_inflight(fx->c), 0);
    crun_remove_instance(fx->c, "r1"); /* unknown now: a no-op */
    crun_remove_instance(fx->c, "nobody");
    before = count_of(fx, "r1", "hang") + count_of(fx, "r1", "tcp");
    run_for(fx, 400);
    assert_int_equal(count_of(fx, "r1", "hang") + count_of(fx, "r1", "tcp"), before);
    assert_int_equal(count_of(fx, "r1", "hang"), 0);
    assert_true(count_of(fx, "r2", "ok") >= 2);
}

/* crun_add with the same ids cancels the run in flight and restarts with
 * the new target; a refused replacement changes nothing. */
static void test_replace(void **state)
{
    struct fixture *fx = *state;
    char want[512];

    assert_int_equal(crun_add(fx->c, "p1", "c", CRUN_HTTP, url(fx, "/hang"), 50, 3000), 0);
    assert_true(run_until(fx, some_inflight, SAFETY_MS));
    assert_int_equal(crun_add(fx->c, "p1", "c", CRUN_HTTP, url(fx, "/ok"), 50, 1000), 0);
    assert_int_equal(crun_count(fx->c), 1);
    assert_int_equal(crun_inflight(fx->c), 0);
    assert_int_equal(crun_add(fx->c, "p1", "c", CRUN_HTTP, "ftp://x/", 50, 1000), -1);
    assert_int_equal(crun_count(fx->c), 1);
    n_target = 3;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    snprintf(want, sizeof(want), "HTTP GET %s: 200 OK", url(fx, "/ok"));
    for (int i = 0; i < fx->nrep; i++) {
        assert_int_equal(fx->reps[i].res, CRUN_PASS);
        assert_string_equal(fx->reps[i].out, want);
    }
}

static void hook_remove_self(struct fixture *fx, const char *inst, const char *check)
{
    (void)check;
    crun_remove_instance(fx->c, inst);
}

/* A report may remove its own instance, with another of its probes in
 * flight: the ids it was given stay readable (ASan checks), nothing more
 * is reported. */
static void test_report_removes_own_instance(void **state)
{
    struct fixture *fx = *state;

    fx->hook = hook_remove_self;
    assert_int_equal(crun_add(fx->c, "s1", "hang", CRUN_HTTP, url(fx, "/hang"), 20, 3000), 0);
    assert_true(run_until(fx, some_inflight, SAFETY_MS));
    assert_int_equal(crun_add(fx->c, "s1", "ok", CRUN_HTTP, url(fx, "/ok"), 20, 1000), 0);
    n_target = 1;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_string_equal(fx->reps[0].inst, "s1");
    assert_string_equal(fx->reps[0].check, "ok");
    assert_int_equal(crun_count(fx->c), 0);
    assert_int_equal(crun_inflight(fx->c), 0);
    run_for(fx, 200);
    assert_int_equal(fx->nrep, 1);
}

static void hook_replace_self(struct fixture *fx, const char *inst, const char *check)
{
    if (fx->hook_runs == 1) {
        assert_int_equal(crun_add(fx->c, inst, check, CRUN_HTTP, url(fx, "/busy"), 20, 1000), 0);
        assert_int_equal(crun_add(fx->c, "other", "x", CRUN_TCP, "127.0.0.1:1", 5000, 1000), 0);
    }
}

/* A report may replace its own probe and add others. */
static void test_report_replaces_own_probe(void **state)
{
    struct fixture *fx = *state;

    fx->hook = hook_replace_self;
    assert_int_equal(crun_add(fx->c, "a1", "c", CRUN_HTTP, url(fx, "/ok"), 20, 1000), 0);
    n_target = 3;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_int_equal(crun_count(fx->c), 2);
    assert_int_equal(fx->reps[0].res, CRUN_PASS);
    assert_string_equal(fx->reps[0].inst, "a1");
    /* Every later report of a1/c is from the replacement. */
    for (int i = 1; i < fx->nrep; i++)
        if (strcmp(fx->reps[i].inst, "a1") == 0)
            assert_int_equal(fx->reps[i].res, CRUN_WARN);
    assert_true(count_of(fx, "a1", "c") >= 2);
}

static int long2_reported(struct fixture *fx) { return first_of(fx, "o", "long2") != NULL; }

/* Output is printable ASCII of at most LIM_CHECK_OUTPUT_MAX bytes, with a
 * long URL cut and its odd bytes turned to '?'. */
static void test_output_sanitized_and_capped(void **state)
{
    struct fixture *fx = *state;
    char target[1024];
    const char *prefix = "HTTP GET http://127.0.0.1:";
    const struct rep *r;
    int len;

    len = snprintf(target, sizeof(target), "http://127.0.0.1:%d/ok\x01\x7f\xc3\xa9", fx->http_port);
    memset(target + len, 'a', 600);
    target[len + 600] = '\0';
    assert_int_equal(crun_add(fx->c, "o", "long", CRUN_HTTP, target, 50, 1000), 0);
    n_target = 1;
    assert_true(run_until(fx, at_least_n, SAFETY_MS));
    assert_true(fx->reps[0].out_len <= LIM_CHECK_OUTPUT_MAX);
    for (size_t i = 0; i < fx->reps[0].out_len; i++)
        assert_true(fx->reps[0].out[i] >= 0x20 && fx->reps[0].out[i] <= 0x7e);
    assert_memory_equal(fx->reps[0].out, prefix, strlen(prefix));
    assert_non_null(strstr(fx->reps[0].out, "/ok????aaa"));
    assert_non_null(strstr(fx->reps[0].out, "aaa...: "));

    /* Only long, no odd byte: the server answers, and the cut URL still
     * leaves the whole status. */
    len = snprintf(target, sizeof(target), "http://127.0.0.1:%d/ok", fx->http_port);
    memset(target + len, 'b', 600);
    target[len + 600] = '\0';
    assert_int_equal(crun_add(fx->c, "o", "long2", CRUN_HTTP, target, 50, 1000), 0);
    assert_true(run_until(fx, long2_reported, SAFETY_MS));
    r = first_of(fx, "o", "long2");
    assert_int_equal(r->res, CRUN_PASS);
    assert_int_equal(r->out_len, LIM_CHECK_OUTPUT_MAX);
    assert_memory_equal(r->out, prefix, strlen(prefix));
    assert_string_equal(r->out + r->out_len - strlen("bbb...: 200 OK"), "bbb...: 200 OK");
}

/* Bad arguments are refused and change nothing. */
static void test_bad_args(void **state)
{
    struct fixture *fx = *state;
    const char *u = url(fx, "/ok");
    struct crun_stats st;

    assert_null(crun_new(NULL, on_report, fx, 1));
    assert_null(crun_new(fx->base, NULL, fx, 1));
    assert_int_equal(crun_add(NULL, "i", "c", CRUN_HTTP, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, NULL, "c", CRUN_HTTP, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", NULL, CRUN_HTTP, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "", "c", CRUN_HTTP, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "", CRUN_HTTP, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, NULL, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, u, 0, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, u, 100, 0), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, u, (int64_t)CRUN_MS_MAX + 1, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", (enum crun_kind)7, u, 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, "file:///etc/passwd", 100, 100), -1);
    assert_int_equal(crun_add(fx->c, "i", "c", CRUN_HTTP, "127.0.0.1:80", 100, 100), -1);
    const char *bad_tcp[] = {
        "",           "127.0.0.1",   "127.0.0.1:", ":80",      "127.0.0.1:0",
        "host:65536", "host:80x",    "::1:80",     "[::1]",    "[::1]80",
        "[zz]:80",    "bad host:80", "host:-1",    "host:+80", "http://h:80",
    };
    for (size_t i = 0; i < sizeof(bad_tcp) / sizeof(bad_tcp[0]); i++)
        assert_int_equal(crun_add(fx->c, "i", "c", CRUN_TCP, bad_tcp[i], 100, 100), -1);
    assert_int_equal(crun_count(fx->c), 0);
    crun_get_stats(fx->c, &st);
    assert_int_equal(st.run, 0);
    crun_remove_instance(fx->c, "i");
    crun_free(NULL);
    assert_int_equal(crun_count(NULL), 0);
}

/* crun_free with runs in flight cancels them (ASan checks nothing leaks
 * and no callback comes after). */
static void test_free_with_inflight(void **state)
{
    struct fixture *fx = *state;
    int before;

    assert_int_equal(crun_add(fx->c, "f", "hang", CRUN_HTTP, url(fx, "/hang"), 20, 3000), 0);
    assert_int_equal(crun_add(fx->c, "f", "dns", CRUN_TCP, "no-such-host.invalid:80", 20, 3000), 0);

    assert_true(run_until(fx, some_inflight, SAFETY_MS));
    before = fx->nrep;
    crun_free(fx->c);
    fx->c = NULL;
    run_for(fx, 50);
    assert_int_equal(fx->nrep, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_timeout_and_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_unresolvable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blackhole_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_runs_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_cancels_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_removes_own_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_replaces_own_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_sanitized_and_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_inflight, setup, teardown),
    };

    /* the server writes into connections the client dropped */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
