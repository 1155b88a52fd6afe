/* test_client.c: unit tests for common/http/client.c. Each test gets a
 * fresh event_base with an evhttp test server on 127.0.0.1 (ephemeral port)
 * and an hc_client on the same base, so client and server run in one loop.
 * Every loop run is bounded by a safety timer: a broken client fails the
 * test instead of hanging it.
 *
 * Test server routes:
 *   /echo          replies "method=M\nct=C\nexpect=E\nbody=" + request body
 *   /status/N      replies with status N
 *   /slow?ms=N     replies 200 "slow" after N ms
 *   /big?n=N[&chunked=1]  replies N bytes ('a'..'z' repeating)
 *   /drip?n=N&ms=M sends "0\n" .. "N-1\n" as chunks, one every M ms
 * Every accepted connection is counted (evhttp_set_bevcb). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "http/client.h"
#include "support.h"

#define SAFETY_MS        10000 /* no single loop run may take longer */
#define CONCURRENT_CALLS 200
#define SEQUENTIAL_CALLS 50
#define BODY_COPY_MAX    (64 * 1024) /* bytes of a response kept by tests */

struct fixture;

/* A /slow request waiting for its timer. */
struct slow_reply {
    struct fixture *fx;
    struct evhttp_request *req; /* replied to exactly once */
    struct event *timer;
    struct slow_reply *next;
};

/* What one completion reported (copied: the response is borrowed). */
struct result {
    struct fixture *fx;
    int called;
    enum hc_error error;
    long status;
    char body[BODY_COPY_MAX + 1];
    size_t body_len;
    int body_ok; /* /big: every byte matched the pattern */
    char msg[256];
    double elapsed_ms;
    char header[300]; /* resp->header, "(none)" when NULL */
};

struct fixture {
    struct event_base *base;
    struct evhttp *http;
    struct hc_client *client;
    int port;
    int conns;               /* connections the server accepted */
    int done_count;          /* completions seen by on_done */
    int done_target;         /* break the loop at this count */
    int timed_out;           /* the safety timer fired */
    struct slow_reply *slow; /* pending /slow replies */
    char url[128];           /* scratch for make_url */
};

/* ---- test server ---- */

/* Name of an evhttp command. */
static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

/* Integer query parameter key of req, or def. */
static long query_long(struct evhttp_request *req, const char *key, long def)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *v = NULL;
    long out = def;

    if (query == NULL)
        return def;
    if (evhttp_parse_query_str(query, &params) == 0) {
        v = evhttp_find_header(&params, key);
        if (v != NULL)
            out = strtol(v, NULL, 10);
    }
    evhttp_clear_headers(&params);
    return out;
}

static void srv_echo(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *ct = evhttp_find_header(in, "Content-Type");
    const char *expect = evhttp_find_header(in, "Expect");
    struct evbuffer *out = evbuffer_new();

    evbuffer_add_printf(
        out, "method=%s\nct=%s\nexpect=%s\nbody=", method_name(evhttp_request_get_command(req)),
        ct != NULL ? ct : "-", expect != NULL ? expect : "-");
    evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* Answer the X-Registry-Token header the request came with ("-": none). */
static void srv_token(struct evhttp_request *req)
{
    const char *tok = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Registry-Token");
    struct evbuffer *out = evbuffer_new();

    evbuffer_add_printf(out, "%s", tok != NULL ? tok : "-");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void srv_big(struct evhttp_request *req)
{
    long n = query_long(req, "n", 0);
    long chunked = query_long(req, "chunked", 0);
    char block[26 * 2048]; /* a whole number of patterns: blocks chain */
    struct evbuffer *out = evbuffer_new();
    long sent = 0;
    size_t i = 0;

    for (i = 0; i < sizeof(block); i++)
        block[i] = (char)('a' + i % 26);
    if (chunked)
        evhttp_send_reply_start(req, 200, "OK");
    while (sent < n) {
        size_t len = (size_t)(n - sent) < sizeof(block) ? (size_t)(n - sent) : sizeof(block);

        evbuffer_add(out, block, len);
        sent += (long)len;
        if (chunked)
            evhttp_send_reply_chunk(req, out);
    }
    if (chunked)
        evhttp_send_reply_end(req);
    else
        evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* Unlink r from the pending list and free it (the request is already
 * replied to). */
static void slow_forget(struct slow_reply *r)
{
    struct slow_reply **p = &r->fx->slow;

    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    event_free(r->timer);
    free(r);
}

static void slow_fire(evutil_socket_t fd, short what, void *arg)
{
    struct slow_reply *r = arg;
    struct evbuffer *out = evbuffer_new();

    (void)fd;
    (void)what;
    evbuffer_add_printf(out, "slow");
    evhttp_send_reply(r->req, 200, "OK", out);
    evbuffer_free(out);
    slow_forget(r);
}

static void srv_slow(struct fixture *fx, struct evhttp_request *req)
{
    long ms = query_long(req, "ms", 1000);
    struct slow_reply *r = calloc(1, sizeof(*r));
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    assert_non_null(r);
    r->fx = fx;
    r->req = req;
    r->timer = evtimer_new(fx->base, slow_fire, r);
    assert_non_null(r->timer);
    r->next = fx->slow;
    fx->slow = r;
    evtimer_add(r->timer, &tv);
}

/* A /drip reply in progress. */
struct drip {
    struct evhttp_request *req;
    struct event *timer;
    long next, n, ms;
};

static void drip_fire(evutil_socket_t fd, short what, void *arg)
{
    struct drip *d = arg;
    struct timeval tv = {d->ms / 1000, (d->ms % 1000) * 1000};
    struct evbuffer *out = evbuffer_new();

    (void)fd;
    (void)what;
    evbuffer_add_printf(out, "%ld\n", d->next++);
    evhttp_send_reply_chunk(d->req, out);
    evbuffer_free(out);
    if (d->next < d->n) {
        evtimer_add(d->timer, &tv);
        return;
    }
    evhttp_send_reply_end(d->req);
    event_free(d->timer);
    free(d);
}

static void srv_drip(struct fixture *fx, struct evhttp_request *req)
{
    struct drip *d = calloc(1, sizeof(*d));

    assert_non_null(d);
    d->req = req;
    d->n = query_long(req, "n", 3);
    d->ms = query_long(req, "ms", 100);
    d->timer = evtimer_new(fx->base, drip_fire, d);
    assert_non_null(d->timer);
    evhttp_send_reply_start(req, 200, "OK");
    drip_fire(-1, 0, d);
}

static void srv_dispatch(struct evhttp_request *req, void *arg)
{
    struct fixture *fx = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (path == NULL)
        path = "";
    if (strcmp(path, "/echo") == 0) {
        srv_echo(req);
    } else if (strcmp(path, "/token") == 0) {
        srv_token(req);
    } else if (strcmp(path, "/header") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Registry-Index", "  42 ");
        evhttp_send_reply(req, 404, "Not Found", NULL);
    } else if (strncmp(path, "/status/", 8) == 0) {
        evhttp_send_reply(req, atoi(path + 8), "Status", NULL);
    } else if (strcmp(path, "/slow") == 0) {
        srv_slow(fx, req);
    } else if (strcmp(path, "/big") == 0) {
        srv_big(req);
    } else if (strcmp(path, "/drip") == 0) {
        srv_drip(fx, req);
    } else {
        evhttp_send_error(req, 404, NULL);
    }
}

/* evhttp_set_bevcb: called once per accepted connection. */
static struct bufferevent *srv_new_bev(struct event_base *base, void *arg)
{
    struct fixture *fx = arg;

    fx->conns++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* ---- loop control ---- */

static void safety_fire(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;

    (void)fd;
    (void)what;
    fx->timed_out = 1;
    event_base_loopbreak(fx->base);
}

/* Run the loop for ms milliseconds (or until something breaks it). */
static void run_for(struct fixture *fx, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(fx->base, &tv);
    event_base_dispatch(fx->base);
}

/* Run the loop until on_done has seen target completions in total.
 * Returns 0, or -1 when the safety timer fired first. */
static int run_until(struct fixture *fx, int target)
{
    struct timeval tv = {SAFETY_MS / 1000, (SAFETY_MS % 1000) * 1000};
    struct event *safety = evtimer_new(fx->base, safety_fire, fx);

    assert_non_null(safety);
    fx->done_target = target;
    fx->timed_out = 0;
    evtimer_add(safety, &tv);
    while (fx->done_count < target && !fx->timed_out)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(safety);
    return fx->timed_out ? -1 : 0;
}

/* Completion that records the response into a struct result. */
static void on_done(const struct hc_response *resp, void *arg)
{
    struct result *res = arg;
    size_t keep = resp->body_len < BODY_COPY_MAX ? resp->body_len : BODY_COPY_MAX;
    size_t i = 0;

    res->called++;
    res->error = resp->error;
    res->status = resp->status;
    res->body_len = resp->body_len;
    memcpy(res->body, resp->body, keep);
    res->body[keep] = '\0';
    res->body_ok = resp->body[resp->body_len] == '\0';
    for (i = 0; i < resp->body_len && res->body_ok; i++)
        res->body_ok = resp->body[i] == (char)('a' + i % 26);
    snprintf(res->msg, sizeof(res->msg), "%s",
             resp->error_msg != NULL ? resp->error_msg : "(null)");
    res->elapsed_ms = resp->elapsed_ms;
    snprintf(res->header, sizeof(res->header), "%s", resp->header ? resp->header : "(none)");
    res->fx->done_count++;
}

/* Completion that must never run. */
static void on_done_forbidden(const struct hc_response *resp, void *arg)
{
    (void)resp;
    (void)arg;
    fail_msg("a cancelled call completed");
}

/* "http://127.0.0.1:<port><path>" in fx's scratch buffer. */
static const char *make_url(struct fixture *fx, const char *path)
{
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d%s", fx->port, path);
    return fx->url;
}

/* Send method path body with on_done into res; asserts it started. */
static struct hc_call *send_simple(struct fixture *fx, const char *method, const char *path,
                                   const char *body, long timeout_ms, struct result *res)
{
    struct hc_request req = {0};
    struct hc_call *call = NULL;

    res->fx = fx;
    req.method = method;
    req.url = make_url(fx, path);
    req.body = body;
    req.body_len = body != NULL ? strlen(body) : 0;
    req.timeout_ms = timeout_ms;
    call = hc_send(fx->client, &req, on_done, res);
    assert_non_null(call);
    assert_int_equal(res->called, 0); /* never synchronous */
    return call;
}

/* ---- fixture ---- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    *state = fx;
    fx->base = event_base_new();
    if (fx->base == NULL)
        return -1;
    fx->http = evhttp_new(fx->base);
    if (fx->http == NULL)
        return -1;
    evhttp_set_allowed_methods(fx->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE);
    evhttp_set_max_body_size(fx->http, 4 * 1024 * 1024);
    evhttp_set_gencb(fx->http, srv_dispatch, fx);
    evhttp_set_bevcb(fx->http, srv_new_bev, fx);
    fx->port = ts_evhttp_listen(fx->http, 0);
    if (fx->port < 0)
        return -1;
    fx->client = hc_client_new(fx->base);
    if (fx->client == NULL)
        return -1;
    return 0;
}

/* Free in reverse order of creation: client, pending server replies (each
 * request is replied to once, so evhttp frees it), server, base. */
static int teardown(void **state)
{
    struct fixture *fx = *state;
    int i = 0;

    if (fx == NULL)
        return 0;
    hc_client_free(fx->client);
    while (fx->slow != NULL)
        slow_fire(-1, 0, fx->slow);
    if (fx->base != NULL) {
        for (i = 0; i < 10; i++)
            event_base_loop(fx->base, EVLOOP_NONBLOCK);
    }
    if (fx->http != NULL)
        evhttp_free(fx->http);
    if (fx->base != NULL)
        event_base_free(fx->base);
    free(fx);
    return 0;
}

/* ---- tests ---- */

static void test_get_ok(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};

    send_simple(fx, "GET", "/echo", NULL, 0, &res);
    assert_int_equal(hc_inflight(fx->client), 1);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.called, 1);
    assert_int_equal(res.error, HC_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "method=GET\nct=-\nexpect=-\nbody=");
    assert_int_equal(res.body_len, strlen(res.body));
    assert_string_equal(res.msg, "");
    assert_true(res.elapsed_ms > 0.0);
    assert_int_equal(hc_inflight(fx->client), 0);
}

static void test_null_method_is_get(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};

    send_simple(fx, NULL, "/echo", NULL, 0, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_OK);
    assert_non_null(strstr(res.body, "method=GET\n"));
}

static void test_post_echo_default_content_type(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};

    send_simple(fx, "POST", "/echo", "{\"a\":1}", 0, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "method=POST\nct=application/json\n"
                                  "expect=-\nbody={\"a\":1}");
}

static void test_post_binary_body_copied(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct hc_request req = {0};
    char body[] = {'x', '\0', 'y'};
    const char *want = "method=POST\nct=text/plain\nexpect=-\nbody=";
    size_t wlen = strlen(want);

    res.fx = fx;
    req.method = "POST";
    req.url = make_url(fx, "/echo");
    req.body = body;
    req.body_len = sizeof(body);
    req.content_type = "text/plain";
    assert_non_null(hc_send(fx->client, &req, on_done, &res));
    body[0] = 'Z'; /* the client copied the body: this must not be sent */
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_OK);
    assert_int_equal(res.body_len, wlen + 3);
    assert_memory_equal(res.body, want, wlen);
    assert_memory_equal(res.body + wlen, "x\0y", 3);
}

/* 2 MiB is past libcurl's Expect: 100-continue threshold (1 MiB in 7.88). */
static void test_post_large_body_no_expect(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    size_t n = 2 * 1024 * 1024;
    char *body = malloc(n + 1);

    assert_non_null(body);
    memset(body, 'q', n);
    body[n] = '\0';
    send_simple(fx, "PUT", "/echo", body, 0, &res);
    free(body);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_OK);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "method=PUT\n"));
    assert_non_null(strstr(res.body, "expect=-\n"));
    assert_int_equal(res.body_len, strlen("method=PUT\nct=application/json\nexpect=-\n"
                                          "body=") +
                                       n);
}

static void test_put_delete_methods(void **state)
{
    struct fixture *fx = *state;
    struct result put = {0};
    struct result del = {0};
    struct result post = {0};

    send_simple(fx, "PUT", "/echo", "{}", 0, &put);
    send_simple(fx, "DELETE", "/echo", NULL, 0, &del);
    send_simple(fx, "POST", "/echo", NULL, 0, &post);
    assert_int_equal(run_until(fx, 3), 0);
    assert_int_equal(put.error, HC_OK);
    assert_string_equal(put.body, "method=PUT\nct=application/json\nexpect=-\nbody={}");
    assert_int_equal(del.error, HC_OK);
    assert_string_equal(del.body, "method=DELETE\nct=-\nexpect=-\nbody=");
    /* a bodiless POST carries no invented form content type */
    assert_int_equal(post.error, HC_OK);
    assert_string_equal(post.body, "method=POST\nct=-\nexpect=-\nbody=");
}

static void test_status_passthrough(void **state)
{
    struct fixture *fx = *state;
    struct result r503 = {0};
    struct result r404 = {0};

    send_simple(fx, "GET", "/status/503", NULL, 0, &r503);
    send_simple(fx, "GET", "/nowhere", NULL, 0, &r404);
    assert_int_equal(run_until(fx, 2), 0);
    assert_int_equal(r503.error, HC_OK);
    assert_int_equal(r503.status, 503);
    assert_int_equal(r404.error, HC_OK);
    assert_int_equal(r404.status, 404);
}

static void test_timeout(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};

    send_simple(fx, "GET", "/slow?ms=5000", NULL, 100, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_ETIMEOUT);
    assert_string_equal(res.msg, "timeout");
    assert_int_equal(res.status, 0);
    assert_int_equal(res.body_len, 0);
    assert_string_equal(res.body, "");
    assert_true(res.elapsed_ms >= 90.0);
    assert_true(res.elapsed_ms < 3000.0);
}

static void test_connect_refused(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct hc_request req = {0};
    char url[64];
    int port = ts_closed_port();

    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    res.fx = fx;
    req.url = url;
    assert_non_null(hc_send(fx->client, &req, on_done, &res));
    assert_int_equal(res.called, 0);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_ECONNECT);
    assert_string_equal(res.msg, "connection refused");
    assert_int_equal(res.status, 0);
}

/* Depends on the resolver: skipped when it cannot answer in time. */
static void test_resolve_failure(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct hc_request req = {0};

    res.fx = fx;
    req.url = "http://hc-test.invalid/";
    req.timeout_ms = 3000;
    assert_non_null(hc_send(fx->client, &req, on_done, &res));
    assert_int_equal(run_until(fx, 1), 0);
    if (res.error == HC_ETIMEOUT)
        skip();
    assert_int_equal(res.error, HC_ERESOLVE);
    assert_true(res.msg[0] != '\0');
}

static void test_unsupported_scheme(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct hc_request req = {0};

    res.fx = fx;
    req.url = "ftp://127.0.0.1/x";
    assert_non_null(hc_send(fx->client, &req, on_done, &res));
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_EOTHER);
    assert_true(res.msg[0] != '\0');
}

static void test_big_body(void **state)
{
    struct fixture *fx = *state;
    struct result plain = {0};
    struct result chunked = {0};

    send_simple(fx, "GET", "/big?n=1000003", NULL, 0, &plain);
    send_simple(fx, "GET", "/big?n=1000003&chunked=1", NULL, 0, &chunked);
    assert_int_equal(run_until(fx, 2), 0);
    assert_int_equal(plain.error, HC_OK);
    assert_int_equal(plain.body_len, 1000003);
    assert_true(plain.body_ok);
    assert_int_equal(chunked.error, HC_OK);
    assert_int_equal(chunked.body_len, 1000003);
    assert_true(chunked.body_ok);
}

static void test_body_at_and_over_cap(void **state)
{
    struct fixture *fx = *state;
    struct result at = {0};
    struct result over = {0};
    struct result over_chunked = {0};
    char path[64];

    snprintf(path, sizeof(path), "/big?n=%d&chunked=1", HC_RESPONSE_MAX);
    send_simple(fx, "GET", path, NULL, 30000, &at);
    snprintf(path, sizeof(path), "/big?n=%d", HC_RESPONSE_MAX + 1);
    send_simple(fx, "GET", path, NULL, 30000, &over);
    snprintf(path, sizeof(path), "/big?n=%d&chunked=1", HC_RESPONSE_MAX + 1);
    send_simple(fx, "GET", path, NULL, 30000, &over_chunked);
    assert_int_equal(run_until(fx, 3), 0);
    assert_int_equal(at.error, HC_OK);
    assert_int_equal(at.body_len, HC_RESPONSE_MAX);
    assert_true(at.body_ok);
    assert_int_equal(over.error, HC_ETOOBIG); /* Content-Length check */
    assert_int_equal(over.status, 0);
    assert_int_equal(over_chunked.error, HC_ETOOBIG); /* write cap */
    assert_int_equal(over_chunked.body_len, 0);
}

static void test_many_concurrent(void **state)
{
    struct fixture *fx = *state;
    struct result *res = calloc(CONCURRENT_CALLS, sizeof(*res));
    char path[64];
    char want[64];
    int i = 0;

    assert_non_null(res);
    for (i = 0; i < CONCURRENT_CALLS; i++) {
        snprintf(path, sizeof(path), "/echo?i=%d", i);
        snprintf(want, sizeof(want), "body=%d", i);
        send_simple(fx, "POST", path, want + 5, 0, &res[i]);
    }
    assert_int_equal(hc_inflight(fx->client), CONCURRENT_CALLS);
    assert_int_equal(run_until(fx, CONCURRENT_CALLS), 0);
    for (i = 0; i < CONCURRENT_CALLS; i++) {
        snprintf(want, sizeof(want), "body=%d", i);
        assert_int_equal(res[i].called, 1);
        assert_int_equal(res[i].error, HC_OK);
        assert_int_equal(res[i].status, 200);
        assert_non_null(strstr(res[i].body, want));
    }
    assert_int_equal(hc_inflight(fx->client), 0);
    free(res);
}

/* State of a chain of requests, each started from the previous one's
 * completion. */
struct chain {
    struct fixture *fx;
    int left; /* requests still to start */
    int completed;
    int failures; /* completions that were not 200 */
};

static void chain_next(struct chain *ch);

static void chain_done(const struct hc_response *resp, void *arg)
{
    struct chain *ch = arg;

    ch->completed++;
    if (resp->error != HC_OK || resp->status != 200)
        ch->failures++;
    ch->fx->done_count++;
    chain_next(ch);
}

/* Start the next request of the chain, if any (from a done callback too). */
static void chain_next(struct chain *ch)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    struct hc_request req = {0};

    if (ch->left == 0)
        return;
    ch->left--;
    req.method = methods[ch->left % 4];
    req.url = make_url(ch->fx, "/echo");
    req.body = ch->left % 4 == 1 || ch->left % 4 == 2 ? "{\"k\":\"v\"}" : NULL;
    req.body_len = req.body != NULL ? strlen(req.body) : 0;
    assert_non_null(hc_send(ch->fx->client, &req, chain_done, ch));
}

static void test_chained_from_callback(void **state)
{
    struct fixture *fx = *state;
    struct chain ch = {fx, 10, 0, 0};

    chain_next(&ch);
    assert_int_equal(run_until(fx, 10), 0);
    assert_int_equal(ch.completed, 10);
    assert_int_equal(ch.failures, 0);
    assert_int_equal(hc_inflight(fx->client), 0);
}

static void test_keepalive_reuse(void **state)
{
    struct fixture *fx = *state;
    struct chain ch = {fx, SEQUENTIAL_CALLS, 0, 0};

    chain_next(&ch);
    assert_int_equal(run_until(fx, SEQUENTIAL_CALLS), 0);
    assert_int_equal(ch.completed, SEQUENTIAL_CALLS);
    assert_int_equal(ch.failures, 0);
    /* one connection carries them all; allow one reconnect */
    assert_true(fx->conns >= 1);
    assert_true(fx->conns <= 2);
}

/* hc_kick puts a request on the wire at once: before it, libcurl has not
 * even connected (it waits for its timer, at the next loop turn); after
 * it, the connection waits in the listener's queue without the loop having
 * run. Kicking with nothing to start does nothing. */
static void test_kick_connects_at_once(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    struct hc_request req;
    struct hc_call *call = NULL;
    char url[64];
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int cfd = -1;

    assert_true(lfd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/kick", ntohs(addr.sin_port));
    memset(&req, 0, sizeof(req));
    req.url = url;
    req.timeout_ms = 2000;
    call = hc_send(fx->client, &req, NULL, NULL);
    assert_non_null(call);
    assert_true(accept(lfd, NULL, NULL) < 0); /* not connected yet */
    hc_kick(fx->client);
    cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    hc_cancel(call);
    assert_int_equal(hc_inflight(fx->client), 0);
    hc_kick(fx->client); /* nothing to start */
    hc_kick(NULL);
    close(cfd);
    close(lfd);
}

static void test_cancel(void **state)
{
    struct fixture *fx = *state;
    struct result other = {0};
    struct hc_request req = {0};
    struct hc_call *slow = NULL;
    struct hc_call *fresh = NULL;

    req.url = make_url(fx, "/slow?ms=100");
    slow = hc_send(fx->client, &req, on_done_forbidden, NULL);
    fresh = hc_send(fx->client, &req, on_done_forbidden, NULL);
    assert_non_null(slow);
    assert_non_null(fresh);
    hc_cancel(fresh); /* before the loop ever ran */
    send_simple(fx, "GET", "/echo", NULL, 0, &other);
    assert_int_equal(run_until(fx, 1), 0); /* slow is now on the wire */
    assert_int_equal(hc_inflight(fx->client), 1);
    hc_cancel(slow);
    assert_int_equal(hc_inflight(fx->client), 0);
    hc_cancel(NULL);
    run_for(fx, 300); /* past the server's reply: still no callback */
    assert_int_equal(other.called, 1);
    assert_int_equal(fx->done_count, 1);
}

/* Calls that one completion cancels: all but the first to complete. */
struct cancel_group {
    struct fixture *fx;
    struct hc_call *calls[20];
    int completed;
};

static void cancel_group_done(const struct hc_response *resp, void *arg)
{
    struct cancel_group *g = arg;
    size_t i = 0;

    (void)resp;
    g->completed++;
    g->fx->done_count++;
    /* some of these may already be finished and queued inside libcurl;
     * cancelling them must still suppress their callbacks */
    for (i = 0; i < sizeof(g->calls) / sizeof(g->calls[0]); i++) {
        hc_cancel(g->calls[i]); /* includes this call: a no-op */
        g->calls[i] = NULL;
    }
}

static void test_cancel_from_callback(void **state)
{
    struct fixture *fx = *state;
    struct cancel_group g;
    struct hc_request req = {0};
    size_t i = 0;

    memset(&g, 0, sizeof(g));
    g.fx = fx;
    req.url = make_url(fx, "/echo");
    for (i = 0; i < sizeof(g.calls) / sizeof(g.calls[0]); i++) {
        g.calls[i] = hc_send(fx->client, &req, cancel_group_done, &g);
        assert_non_null(g.calls[i]);
    }
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(hc_inflight(fx->client), 0);
    run_for(fx, 100);
    assert_int_equal(g.completed, 1);
}

static void test_free_with_inflight(void **state)
{
    struct fixture *fx = *state;
    struct hc_request req = {0};
    int i = 0;

    req.url = make_url(fx, "/slow?ms=200");
    for (i = 0; i < 20; i++)
        assert_non_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
    run_for(fx, 50); /* requests reach the server */
    assert_int_equal(hc_inflight(fx->client), 20);
    hc_client_free(fx->client);
    fx->client = NULL;
    run_for(fx, 300); /* server replies into closed connections */
}

/* Completion that frees the client it belongs to. */
static void free_client_done(const struct hc_response *resp, void *arg)
{
    struct fixture *fx = arg;
    struct hc_request req = {0};

    (void)resp;
    fx->done_count++;
    hc_client_free(fx->client);
    req.url = make_url(fx, "/echo");
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
    fx->client = NULL;
}

static void test_free_from_callback(void **state)
{
    struct fixture *fx = *state;
    struct hc_request fast = {0};
    struct hc_request slow = {0};

    fast.url = make_url(fx, "/echo");
    assert_non_null(hc_send(fx->client, &fast, free_client_done, fx));
    slow.url = make_url(fx, "/slow?ms=100");
    assert_non_null(hc_send(fx->client, &slow, on_done_forbidden, NULL));
    assert_int_equal(run_until(fx, 1), 0);
    assert_null(fx->client);
    run_for(fx, 200);
    assert_int_equal(fx->done_count, 1);
}

/* req.token goes out as X-Registry-Token; none without it; a token with
 * CR or LF is refused (header injection). */
static void test_token_header(void **state)
{
    struct fixture *fx = *state;
    struct result with = {0}, without = {0};
    struct hc_request req = {0};

    with.fx = fx;
    without.fx = fx;
    req.url = make_url(fx, "/token");
    req.token = "s3cr3t-token";
    assert_non_null(hc_send(fx->client, &req, on_done, &with));
    req.token = NULL;
    assert_non_null(hc_send(fx->client, &req, on_done, &without));
    assert_int_equal(run_until(fx, 2), 0);
    assert_string_equal(with.body, "s3cr3t-token");
    assert_string_equal(without.body, "-");
    req.token = "a\r\nX-Injected: 1";
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
}

/* keep_header: the value of that one response header, trimmed, any
 * status; NULL when absent or not asked for; a name too long is refused. */
static void test_keep_header(void **state)
{
    struct fixture *fx = *state;
    struct result asked = {0}, lower = {0}, absent = {0}, not_asked = {0};
    struct hc_request req = {0};
    char longname[HC_HEADER_NAME_MAX + 2];

    asked.fx = lower.fx = absent.fx = not_asked.fx = fx;
    req.url = make_url(fx, "/header");
    req.keep_header = "X-Registry-Index";
    assert_non_null(hc_send(fx->client, &req, on_done, &asked));
    req.keep_header = "x-registry-index";
    assert_non_null(hc_send(fx->client, &req, on_done, &lower));
    req.url = make_url(fx, "/echo");
    assert_non_null(hc_send(fx->client, &req, on_done, &absent));
    req.url = make_url(fx, "/header");
    req.keep_header = NULL;
    assert_non_null(hc_send(fx->client, &req, on_done, &not_asked));
    assert_int_equal(run_until(fx, 4), 0);
    assert_int_equal(asked.status, 404);
    assert_string_equal(asked.header, "42");
    assert_string_equal(lower.header, "42");
    assert_string_equal(absent.header, "(none)");
    assert_string_equal(not_asked.header, "(none)");
    memset(longname, 'h', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    req.keep_header = longname;
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
}

/* What a stream's data callback saw. */
struct streamed {
    struct hc_call *call; /* cancelled from data when cancel is set */
    int cancel;
    int calls;
    size_t len;
    char text[BODY_COPY_MAX + 1];
    int done_before; /* done had run when data was called */
    struct result *res;
};

static void on_stream_data(const char *chunk, size_t len, void *arg)
{
    struct streamed *sd = arg;
    size_t keep = len < BODY_COPY_MAX - sd->len ? len : BODY_COPY_MAX - sd->len;

    sd->calls++;
    sd->done_before |= sd->res->called;
    memcpy(sd->text + sd->len, chunk, keep);
    sd->len += keep;
    sd->text[sd->len] = '\0';
    if (sd->cancel) {
        hc_cancel(sd->call);
        sd->res->fx->done_count++; /* stands for the completion that never comes */
    }
}

static void on_stream_done(const struct hc_response *resp, void *arg)
{
    struct streamed *sd = arg;

    on_done(resp, sd->res);
}

/* Start a stream of path into sd, with res for its completion. */
static void send_stream(struct fixture *fx, const char *path, long timeout_ms, long idle_ms,
                        struct streamed *sd, struct result *res)
{
    struct hc_request req = {0};

    res->fx = fx;
    sd->res = res;
    req.url = make_url(fx, path);
    req.timeout_ms = timeout_ms;
    req.idle_ms = idle_ms;
    req.data = on_stream_data;
    sd->call = hc_send(fx->client, &req, on_stream_done, sd);
    assert_non_null(sd->call);
}

/* A stream's body goes to data as it arrives (several calls for chunks
 * 150 ms apart), all of it before done, whose body is then empty; the
 * request's timeout_ms (100 ms) does not end a stream. */
static void test_stream_data_in_pieces_no_total_timeout(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct streamed sd = {0};

    send_stream(fx, "/drip?n=4&ms=150", 100, 0, &sd, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_OK);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 0);
    assert_string_equal(sd.text, "0\n1\n2\n3\n");
    assert_true(sd.calls >= 2);
    assert_int_equal(sd.done_before, 0);
}

/* A stream that sends nothing for idle_ms fails with a timeout. */
static void test_stream_idle_limit(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct streamed sd = {0};

    send_stream(fx, "/slow?ms=4000", 100, 1000, &sd, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(res.error, HC_ETIMEOUT);
    assert_int_equal(sd.calls, 0);
}

/* hc_cancel from inside data: done never runs, the call is gone. */
static void test_stream_cancel_from_data(void **state)
{
    struct fixture *fx = *state;
    struct result res = {0};
    struct streamed sd = {.cancel = 1};

    send_stream(fx, "/big?n=200000&chunked=1", 0, 0, &sd, &res);
    assert_int_equal(run_until(fx, 1), 0);
    assert_int_equal(sd.calls, 1);
    assert_int_equal(res.called, 0);
    assert_int_equal(hc_inflight(fx->client), 0);
    run_for(fx, 100);
    assert_int_equal(res.called, 0);
}

static void test_invalid_arguments(void **state)
{
    struct fixture *fx = *state;
    struct hc_request req = {0};

    assert_null(hc_client_new(NULL));
    hc_client_free(NULL);
    assert_int_equal(hc_inflight(NULL), 0);
    req.url = make_url(fx, "/echo");
    assert_null(hc_send(NULL, &req, on_done_forbidden, NULL));
    assert_null(hc_send(fx->client, NULL, on_done_forbidden, NULL));
    req.method = "PATCH";
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
    req.method = "POST";
    req.content_type = "text/plain\r\nX-Injected: 1";
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
    req.content_type = NULL;
    req.url = NULL;
    assert_null(hc_send(fx->client, &req, on_done_forbidden, NULL));
    assert_int_equal(hc_inflight(fx->client), 0);
    run_for(fx, 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_method_is_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_echo_default_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_binary_body_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_large_body_no_expect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_delete_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_scheme, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_at_and_over_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chained_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_connects_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_data_in_pieces_no_total_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_idle_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cancel_from_data, setup, teardown),
    };

    /* the server writes into connections the client dropped */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
