/* test_stream.c: unit tests for common/http/stream.c. Each test gets a
 * fresh event_base and hs_server on 127.0.0.1 (ephemeral port) with one
 * route, GET /s, that starts a stream with the fixture's options and hands
 * it to the test's on_open hook. Clients are raw sockets read from the same
 * loop (rawclient.h), so chunk and SSE framing are checked byte for byte.
 * Heartbeats use a real loop and short intervals (this is I/O); the last
 * tests run 1,000 streams through a shutdown, first on a bare server, then
 * through the real life cycle of core/service.c with a SIGTERM. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/resource.h>
#include <time.h>

#include "core/log.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "http/stream.h"
#include "rawclient.h"

#define SAFETY_MS   5000 /* no wait may take longer */
#define MANY        1000 /* streams in the shutdown tests */
#define SHUTDOWN_MS 3000 /* generous bound on a shutdown with MANY streams */

struct fixture;
typedef void (*open_fn)(struct fixture *fx, struct hs_stream *st);

struct fixture {
    struct event_base *base;  /* owned, or svc's */
    struct mtr_registry *mtr; /* owned, or svc's */
    struct hs_server *srv;    /* owned, or svc's */
    struct svc *svc;          /* the life-cycle test only */
    int port;
    struct hs_stream_opts opts; /* for every stream GET /s starts */
    int status;
    open_fn on_open;
    struct hs_stream *st; /* the last stream opened, NULL once closed */
    int opened;
    int closes;
    int closes_by[4]; /* by enum hs_stream_end_reason */
    enum hs_stream_end_reason last_why;
    bool in_write; /* set around hs_stream_write calls */
    int drains;
    struct event *tick; /* test timer */
    int ticks;
    int write_rc; /* of the last write from a tick */
    size_t written;
};

static void on_close(struct hs_stream *st, enum hs_stream_end_reason why, void *arg)
{
    struct fixture *fx = arg;

    assert_false(fx->in_write); /* never from inside hs_stream_write */
    assert_non_null(hs_stream_req(st));
    fx->closes++;
    fx->closes_by[why]++;
    fx->last_why = why;
    if (fx->st == st)
        fx->st = NULL;
    /* writes after the end fail and do nothing */
    assert_int_equal(hs_stream_write(st, "x", 1), -1);
}

static void on_drain(struct hs_stream *st, void *arg)
{
    struct fixture *fx = arg;

    (void)st;
    fx->drains++;
}

static void route_stream(struct hs_req *req, void *arg)
{
    struct fixture *fx = arg;
    struct hs_stream *st = hs_stream_start(req, fx->status, &fx->opts);

    assert_non_null(st);
    fx->st = st;
    fx->opened++;
    if (fx->on_open)
        fx->on_open(fx, st);
}

/* Write from the test, marking the call so on_close can check. */
static int write_marked(struct fixture *fx, struct hs_stream *st, const char *s, size_t len)
{
    int rc;

    fx->in_write = true;
    rc = hs_stream_write(st, s, len);
    fx->in_write = false;
    return rc;
}

static void fixture_opts_default(struct fixture *fx)
{
    memset(&fx->opts, 0, sizeof(fx->opts));
    fx->opts.on_close = on_close;
    fx->opts.on_drain = on_drain;
    fx->opts.arg = fx;
    fx->status = 200;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char err[256];

    if (!fx)
        return -1;
    *state = fx;
    fixture_opts_default(fx);
    fx->base = event_base_new();
    fx->mtr = mtr_new();
    if (!fx->base || !fx->mtr)
        return -1;
    fx->srv = hs_server_new(fx->base, "test", NULL, fx->mtr);
    if (!fx->srv || hs_route(fx->srv, HS_GET | HS_HEAD, "/s", route_stream, fx) != 0)
        return -1;
    return hs_listen(fx->srv, "127.0.0.1", 0, &fx->port, err, sizeof(err));
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (!fx)
        return 0;
    hs_server_free(fx->srv);
    if (fx->tick)
        event_free(fx->tick);
    mtr_free(fx->mtr);
    if (fx->base)
        event_base_free(fx->base);
    free(fx);
    return 0;
}

/* A client that sent GET /s; waits until the stream is open. */
static struct rc_client *open_stream(struct fixture *fx);

static bool pred_opened(void *arg)
{
    struct fixture *fx = arg;

    return fx->opened > 0;
}

static struct rc_client *open_stream(struct fixture *fx)
{
    struct rc_client *c = rc_connect(fx->base, fx->port);

    assert_non_null(c);
    assert_int_equal(rc_send(c, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_true(rc_run_until(fx->base, pred_opened, fx, SAFETY_MS));
    return c;
}

static bool pred_closed(void *arg) { return ((struct fixture *)arg)->closes > 0; }

/* The bytes after the response head (raw chunked framing), copied. */
static char *raw_body(struct rc_client *c)
{
    size_t len;
    const char *data = rc_data(c, &len);
    const char *end = memmem(data, len, "\r\n\r\n", 4);

    assert_non_null(end);
    return strndup(end + 4, len - (size_t)(end + 4 - data));
}

/* ---------------------------------------------------------------------- */

static void open_write_three(struct fixture *fx, struct hs_stream *st)
{
    assert_int_equal(write_marked(fx, st, "one", 3), 0);
    assert_int_equal(write_marked(fx, st, "", 0), 0); /* no empty chunk: it would end it */
}

/* Tick: the next chunk, then the end. */
static void tick_write(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;
    struct timeval tv = {0, 5000};

    (void)fd;
    (void)what;
    if (!fx->st)
        return;
    if (fx->ticks++ == 0) {
        struct evbuffer *b = evbuffer_new();

        evbuffer_add(b, "two", 3);
        assert_int_equal(hs_stream_write_buffer(fx->st, b), 0);
        assert_int_equal(evbuffer_get_length(b), 0); /* drained, still ours */
        evbuffer_free(b);
        evtimer_add(fx->tick, &tv);
        return;
    }
    assert_int_equal(write_marked(fx, fx->st, "three", 5), 0);
    hs_stream_end(fx->st);
    hs_stream_end(fx->st); /* twice is harmless */
    assert_int_equal(hs_stream_write(fx->st, "late", 4), -1);
}

static void test_chunks_arrive_in_order_then_end(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct rc_response r;
    struct timeval tv = {0, 5000};
    char *body, type[64];
    size_t len;
    const char *data;

    fx->on_open = open_write_three;
    fx->tick = evtimer_new(fx->base, tick_write, fx);
    c = open_stream(fx);
    assert_int_equal(hs_inflight(fx->srv), 0); /* an open stream does not hold the drain */
    evtimer_add(fx->tick, &tv);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_int_equal(fx->closes, 1);
    assert_int_equal(fx->last_why, HS_STREAM_ENDED);
    assert_true(rc_run_until(fx->base, rc_pred_response, c, SAFETY_MS));
    body = raw_body(c);
    assert_string_equal(body, "3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n");
    free(body);
    data = rc_data(c, &len);
    assert_true(rc_parse(data, len, 0, &r) > 0);
    assert_int_equal(r.status, 200);
    assert_true(rc_header(&r, "Content-Type", type, sizeof(type)));
    assert_string_equal(type, "application/json");
    rc_response_free(&r);
    assert_false(c->eof); /* keep-alive: the connection serves on */
    rc_run_for(fx->base, 20);
    assert_int_equal(fx->closes, 1); /* exactly once */
    rc_free(c);
}

static void open_end_now(struct fixture *fx, struct hs_stream *st)
{
    (void)fx;
    assert_int_equal(hs_stream_write(st, "{\"a\":1}", 7), 0);
    hs_stream_end(st);
}

static void test_end_counts_in_metrics_and_connection_serves_on(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct evbuffer *m = evbuffer_new();
    size_t len;
    const char *data;
    struct rc_response r;
    long used;

    fx->on_open = open_end_now;
    c = open_stream(fx);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_int_equal(fx->last_why, HS_STREAM_ENDED);
    assert_int_equal(mtr_render(fx->mtr, m), 0);
    assert_non_null(strstr((const char *)evbuffer_pullup(m, -1),
                           "http_requests_total{route=\"/s\",method=\"GET\",status=\"200\"} 1"));
    evbuffer_free(m);
    /* a second request on the same connection after the stream */
    assert_true(rc_run_until(fx->base, rc_pred_response, c, SAFETY_MS));
    data = rc_data(c, &len);
    used = rc_parse(data, len, 0, &r);
    assert_true(used > 0);
    assert_string_equal(r.body, "{\"a\":1}");
    rc_response_free(&r);
    assert_int_equal(rc_send(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    rc_run_for(fx->base, 50);
    data = rc_data(c, &len);
    assert_true(rc_parse(data + used, len - (size_t)used, 0, &r) > 0);
    assert_int_equal(r.status, 200);
    rc_response_free(&r);
    rc_free(c);
}

static void open_sse_events(struct fixture *fx, struct hs_stream *st)
{
    (void)fx;
    assert_int_equal(hs_stream_event(st, "7", "msg", "a\nb", 3), 0);
    assert_int_equal(hs_stream_event(st, NULL, NULL, "x", 1), 0);
    assert_int_equal(hs_stream_event(st, NULL, "e", "l1\r\nl2\rl3", 9), 0);
    assert_int_equal(hs_stream_event(st, "bad\nid", NULL, "x", 1), -1); /* nothing sent */
    assert_int_equal(hs_stream_event(st, NULL, NULL, "", 0), 0);
    hs_stream_end(st);
}

static void test_sse_framing_exact_bytes(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct rc_response r;
    char v[64];
    size_t len;
    const char *data;
    char *body;

    fx->opts.sse = 1;
    fx->opts.content_type = "application/json"; /* SSE wins */
    fx->on_open = open_sse_events;
    c = open_stream(fx);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_true(rc_run_until(fx->base, rc_pred_response, c, SAFETY_MS));
    data = rc_data(c, &len);
    assert_true(rc_parse(data, len, 0, &r) > 0);
    assert_true(rc_header(&r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "text/event-stream");
    assert_true(rc_header(&r, "Cache-Control", v, sizeof(v)));
    assert_string_equal(v, "no-cache");
    assert_true(rc_header(&r, "Transfer-Encoding", v, sizeof(v)));
    assert_string_equal(v, "chunked");
    assert_string_equal(r.body, "id: 7\nevent: msg\ndata: a\ndata: b\n\n"
                                "data: x\n\n"
                                "event: e\ndata: l1\ndata: l2\ndata: l3\n\n"
                                "data: \n\n");
    rc_response_free(&r);
    body = raw_body(c); /* one chunk per event */
    assert_non_null(strstr(body, "22\r\nid: 7\nevent: msg\ndata: a\ndata: b\n\n\r\n"));
    free(body);
    rc_free(c);
}

static void test_event_on_plain_stream_fails(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c = open_stream(fx);

    assert_int_equal(hs_stream_event(fx->st, NULL, NULL, "x", 1), -1);
    hs_stream_end(fx->st);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    rc_free(c);
}

/* Predicate: n heartbeats arrived on the client. */
struct hb_wait {
    struct rc_client *c;
    int n;
};
static int count_heartbeats(struct rc_client *c)
{
    size_t len;
    const char *data = rc_data(c, &len), *p = data;
    int n = 0;

    while ((p = memmem(p, len - (size_t)(p - data), ": keep-alive\n\n", 14)) != NULL) {
        n++;
        p += 14;
    }
    return n;
}
static bool pred_heartbeats(void *arg)
{
    struct hb_wait *w = arg;

    return count_heartbeats(w->c) >= w->n;
}

static void test_heartbeat_after_silence(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct hb_wait w;
    struct timespec t0, t1;
    double ms;

    fx->opts.sse = 1;
    fx->opts.heartbeat_ms = 50;
    c = open_stream(fx);
    w.c = c;
    w.n = 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(rc_run_until(fx->base, pred_heartbeats, &w, SAFETY_MS));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 90); /* two silences of 50 ms, not sooner */
    {
        char *body = raw_body(c);

        /* nothing but heartbeat chunks */
        assert_string_equal(body, "e\r\n: keep-alive\n\n\r\ne\r\n: keep-alive\n\n\r\n");
        free(body);
    }
    assert_int_equal(fx->closes, 0);
    hs_stream_end(fx->st);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    rc_free(c);
}

static void test_plain_stream_has_no_heartbeat(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;

    fx->opts.heartbeat_ms = 20; /* ignored without SSE: JSON has no filler */
    c = open_stream(fx);
    rc_run_for(fx->base, 100);
    assert_int_equal(count_heartbeats(c), 0);
    hs_stream_end(fx->st);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    rc_free(c);
}

static void test_client_gone_is_noticed_by_heartbeat(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;

    fx->opts.sse = 1;
    fx->opts.heartbeat_ms = 20;
    c = open_stream(fx);
    rc_free(c); /* the client leaves */
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_int_equal(fx->closes, 1);
    assert_int_equal(fx->last_why, HS_STREAM_GONE);
    assert_null(fx->st);
    rc_run_for(fx->base, 60); /* no heartbeat timer left on the freed stream */
    assert_int_equal(fx->closes, 1);
}

/* Tick: write a chunk every 5 ms, until a write fails. */
static void tick_stream(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;
    struct timeval tv = {0, 5000};
    static char chunk[8192];

    (void)fd;
    (void)what;
    if (!fx->st)
        return;
    memset(chunk, 'a' + fx->ticks % 26, sizeof(chunk));
    fx->ticks++;
    fx->write_rc = write_marked(fx, fx->st, chunk, sizeof(chunk));
    if (fx->write_rc != 0)
        return;
    fx->written += sizeof(chunk);
    evtimer_add(fx->tick, &tv);
}

static void test_client_gone_on_plain_stream(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct timeval tv = {0, 5000};

    fx->tick = evtimer_new(fx->base, tick_stream, fx);
    c = open_stream(fx);
    evtimer_add(fx->tick, &tv);
    rc_run_for(fx->base, 30);
    rc_free(c);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_int_equal(fx->last_why, HS_STREAM_GONE);
    assert_int_equal(fx->closes, 1);
}

/* A small send buffer on the server's socket, so the bytes a client does
 * not read stay in the stream's output instead of the kernel's. */
static void small_sndbuf(struct hs_stream *st)
{
    int fd = hs_req_fd(hs_stream_req(st)), bytes = 64 * 1024;

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)), 0);
}

static void open_small_sndbuf(struct fixture *fx, struct hs_stream *st)
{
    (void)fx;
    small_sndbuf(st);
}

static void test_overflow_closes_a_client_that_does_not_read(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    struct timeval tv = {0, 1000};

    fx->opts.out_max = 64 * 1024;
    fx->on_open = open_small_sndbuf;
    fx->tick = evtimer_new(fx->base, tick_stream, fx);
    c = rc_connect(fx->base, fx->port);
    assert_non_null(c);
    rc_small_rcvbuf(c, 4096);
    rc_pause(c);
    assert_int_equal(rc_send(c, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_true(rc_run_until(fx->base, pred_opened, fx, SAFETY_MS));
    evtimer_add(fx->tick, &tv);
    assert_true(rc_run_until(fx->base, pred_closed, fx, SAFETY_MS));
    assert_int_equal(fx->last_why, HS_STREAM_OVERFLOW);
    assert_int_equal(fx->write_rc, -1); /* the write over the cap failed... */
    assert_int_equal(fx->closes, 1);    /* ...and the close ran after it, not inside */
    /* the connection is closed: reading again, the client reaches EOF */
    event_add(c->rd, NULL);
    assert_true(rc_run_until(fx->base, rc_pred_eof, c, SAFETY_MS));
    {
        size_t len;
        const char *data = rc_data(c, &len);

        assert_null(memmem(data, len, "\r\n0\r\n\r\n", 7)); /* cut, not ended */
    }
    rc_free(c);
}

/* Drain test: write until above half the cap, then wait for on_drain. */
static void drain_open(struct fixture *fx, struct hs_stream *st)
{
    static char chunk[16384];

    small_sndbuf(st);

    memset(chunk, 'd', sizeof(chunk));
    while (hs_stream_pending(st) < fx->opts.out_max / 2) {
        assert_int_equal(write_marked(fx, st, chunk, sizeof(chunk)), 0);
        fx->written += sizeof(chunk);
    }
}

static bool pred_drained(void *arg) { return ((struct fixture *)arg)->drains > 0; }

static void test_drain_callback_when_pending_falls(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c;
    size_t len;

    fx->opts.out_max = 4 * 1024 * 1024;
    fx->opts.low_water = 64 * 1024;
    fx->on_open = drain_open;
    c = rc_connect(fx->base, fx->port);
    assert_non_null(c);
    rc_small_rcvbuf(c, 64 * 1024);
    rc_pause(c);
    assert_int_equal(rc_send(c, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_true(rc_run_until(fx->base, pred_opened, fx, SAFETY_MS));
    rc_run_for(fx->base, 30);
    assert_int_equal(fx->drains, 0); /* the client does not read */
    assert_true(hs_stream_pending(fx->st) > fx->opts.low_water);
    event_add(c->rd, NULL); /* now it does */
    assert_true(rc_run_until(fx->base, pred_drained, fx, SAFETY_MS));
    assert_true(hs_stream_pending(fx->st) <= fx->opts.low_water);
    hs_stream_end(fx->st);
    assert_true(rc_run_until(fx->base, rc_pred_response, c, SAFETY_MS));
    assert_int_equal(fx->last_why, HS_STREAM_ENDED);
    {
        struct rc_response r;
        const char *data = rc_data(c, &len);

        assert_true(rc_parse(data, len, 0, &r) > 0);
        assert_int_equal(r.body_len, fx->written);
        rc_response_free(&r);
    }
    rc_free(c);
}

static void test_head_stream_sends_no_body(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c = rc_connect(fx->base, fx->port);

    assert_non_null(c);
    fx->on_open = open_end_now;
    assert_int_equal(rc_send(c, "HEAD /s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 0);
    assert_true(rc_run_until(fx->base, rc_pred_eof, c, SAFETY_MS));
    assert_int_equal(fx->closes, 1);
    {
        size_t len;
        const char *data = rc_data(c, &len);

        assert_true(len >= 4);
        assert_memory_equal(data + len - 4, "\r\n\r\n", 4); /* the head and nothing after */
    }
    rc_free(c);
}

static void test_server_free_closes_open_streams(void **state)
{
    struct fixture *fx = *state;
    struct rc_client *c = open_stream(fx);

    hs_server_free(fx->srv);
    fx->srv = NULL;
    assert_int_equal(fx->closes, 1);
    assert_int_equal(fx->last_why, HS_STREAM_SHUTDOWN);
    rc_free(c);
}

/* Raise the open-file limit to its hard limit; skip when MANY streams do
 * not fit (each takes two descriptors here: client and server). */
static bool enough_fds(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 2 * MANY + 64;
}

struct many {
    struct fixture *fx;
    struct rc_client *c[MANY];
};

static bool pred_all_open(void *arg)
{
    struct many *m = arg;

    return m->fx->opened == MANY;
}

/* Predicate: every client got the whole answer (last chunk) and EOF. */
static bool pred_all_done(void *arg)
{
    struct many *m = arg;
    int i;

    for (i = 0; i < MANY; i++)
        if (!m->c[i]->eof)
            return false;
    return m->fx->closes == MANY;
}

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void open_hello(struct fixture *fx, struct hs_stream *st)
{
    (void)fx;
    assert_int_equal(hs_stream_event(st, NULL, NULL, "hello", 5), 0);
}

struct opened_wait {
    struct fixture *fx;
    int n;
};
static bool pred_opened_n(void *arg)
{
    struct opened_wait *w = arg;

    return w->fx->opened >= w->n;
}

/* Connect MANY clients, each asking for GET /s, and wait until every
 * stream is open. The connects block, so they go in batches smaller than
 * the listen backlog, the loop accepting each batch. */
static void connect_many(struct many *m, struct event_base *base, int port)
{
    struct opened_wait w = {m->fx, 0};
    int i;

    for (i = 0; i < MANY; i++) {
        m->c[i] = rc_connect(base, port);
        assert_non_null(m->c[i]);
        assert_int_equal(rc_send(m->c[i], "GET /s HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        if ((i + 1) % 50 == 0 || i + 1 == MANY) {
            w.n = i + 1;
            assert_true(rc_run_until(base, pred_opened_n, &w, SAFETY_MS));
        }
    }
}

/* Every client got "hello", then the last chunk, then EOF. */
static void assert_all_ended(struct many *m)
{
    int i;

    for (i = 0; i < MANY; i++) {
        size_t len;
        const char *data = rc_data(m->c[i], &len);

        assert_non_null(memmem(data, len, "data: hello\n\n", 13));
        assert_true(len >= 5);
        assert_memory_equal(data + len - 5, "0\r\n\r\n", 5);
        rc_free(m->c[i]);
    }
}

static void test_shutdown_ends_many_streams(void **state)
{
    struct fixture *fx = *state;
    struct many *m = calloc(1, sizeof(*m));
    double t0, elapsed;

    if (!enough_fds()) {
        free(m);
        skip();
    }
    m->fx = fx;
    fx->opts.sse = 1;
    fx->opts.heartbeat_ms = 10000;
    fx->on_open = open_hello;
    connect_many(m, fx->base, fx->port);
    assert_true(pred_all_open(m));
    assert_int_equal(hs_inflight(fx->srv), 0);
    t0 = now_ms();
    hs_stop_accepting(fx->srv);
    assert_true(hs_inflight(fx->srv) > 0); /* the last chunks are being written */
    assert_int_equal(fx->closes, 0);       /* never from inside the call */
    assert_true(rc_run_until(fx->base, pred_all_done, m, SHUTDOWN_MS));
    elapsed = now_ms() - t0;
    assert_int_equal(fx->closes_by[HS_STREAM_SHUTDOWN], MANY);
    assert_int_equal(hs_inflight(fx->srv), 0);
    assert_true(elapsed < SHUTDOWN_MS);
    print_message("      %d streams ended by shutdown in %.0f ms\n", MANY, elapsed);
    assert_all_ended(m);
    free(m);
}

/* --- the real life cycle: svc_new / svc_listen / svc_run / SIGTERM --- */

static void tick_sigterm(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;
    struct timeval tv = {0, 2000};

    (void)fd;
    (void)what;
    if (fx->opened < MANY) {
        evtimer_add(fx->tick, &tv);
        return;
    }
    raise(SIGTERM);
}

static void test_sigterm_with_many_streams_exits_fast(void **state)
{
    struct fixture *fx = *state;
    struct many *m = calloc(1, sizeof(*m));
    struct svc *s = NULL;
    char err[256];
    struct timeval tv = {0, 2000};
    double t0, elapsed;

    if (!enough_fds()) {
        free(m);
        skip();
    }
    /* this test runs its own server, from the svc */
    teardown(state);
    fx = calloc(1, sizeof(*fx));
    *state = fx;
    fixture_opts_default(fx);
    m->fx = fx;
    fx->opts.sse = 1;
    fx->opts.heartbeat_ms = 10000;
    fx->on_open = open_hello;
    log_init("test_stream");
    s = svc_new("test_stream", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(hs_route(svc_http(s), HS_GET, "/s", route_stream, fx), 0);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    connect_many(m, svc_base(s), svc_port(s));
    fx->tick = evtimer_new(svc_base(s), tick_sigterm, fx);
    evtimer_add(fx->tick, &tv);
    t0 = now_ms();
    assert_int_equal(svc_run(s), 0); /* drained, not the grace running out */
    elapsed = now_ms() - t0;
    assert_int_equal(fx->opened, MANY);
    assert_int_equal(fx->closes_by[HS_STREAM_SHUTDOWN], MANY);
    assert_true(elapsed < SHUTDOWN_MS);
    print_message("      %d streams: open, SIGTERM, svc_run returned in %.0f ms in all\n", MANY,
                  elapsed);
    /* the clients got everything before the loop ended; read what is left */
    event_free(fx->tick);
    fx->tick = NULL;
    {
        int i;

        for (i = 0; i < MANY; i++)
            rc_on_read(m->c[i]->fd, EV_READ, m->c[i]);
    }
    assert_all_ended(m);
    svc_free(s);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_arrive_in_order_then_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_counts_in_metrics_and_connection_serves_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sse_framing_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_on_plain_stream_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_after_silence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_stream_has_no_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_is_noticed_by_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_on_plain_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_closes_a_client_that_does_not_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_callback_when_pending_falls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_stream_sends_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_closes_open_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_ends_many_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_with_many_streams_exits_fast, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
