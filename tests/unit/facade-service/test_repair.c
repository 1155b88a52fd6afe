/* test_repair.c: unit tests of the facade's anti-entropy timer
 * (facade-service/repair.h) over a real merged view (fanout.h) of fake
 * logging instances: evhttp servers on loopback in the test's own loop
 * that answer GET /logging?after=&limit= from lists the test controls.
 * The store repair re-sends through is a fake that records each call and
 * answers when the test releases it (200 also puts the message on the
 * second fake, as a real replicator would place a copy). The tick timer
 * runs on the virtual clock (tests/unit/support/vclock.h): nothing waits
 * in real time. Covers the re-send of what is below its copies (uuid,
 * text, ts), the bound on re-sends in flight with the walk going on from
 * its cursor, a new pass only once the last one has ended, a conflict
 * (409) logged once and left alone, a round that did not read every
 * instance skipped, and the stop hook. */
#include "facade-service/fanout.h"
#include "facade-service/repair.h"
#include "facade-service/upstream.h"

#include "core/log.h"
#include "http/client.h"
#include "regclient/discovery.h"
#include "support.h"
#include "vclock.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FAKE_MSGS_MAX 400
#define CALLS_MAX     1024
#define INTERVAL_MS   1000

/* One fake logging instance. */
struct fake {
    struct evhttp *http;
    int port;
    char epoch[40];
    struct {
        char uuid[37];
        char msg[32];
        long long ts;
    } msgs[FAKE_MSGS_MAX];
    size_t n;
    int fail_status; /* answer this status instead (0: pages) */
    size_t gets;     /* requests answered */
};

/* One call of the fake store. */
struct call {
    char uuid[37];
    char msg[64];
    long long ts;
    char trace[33];
    rpr_done_fn done;
    void *arg;
    int answered;
};

struct env {
    struct event_base *base;
    struct hc_client *hc;
    struct up_table *ups;
    struct fan_view *fo;
    struct rpr_ctx *rpr;
    struct vclock vc;
    struct fake fakes[2];
    struct call calls[CALLS_MAX];
    size_t ncalls;
    uint64_t stamp; /* what the stamp function answers */
};

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

static void fake_handle(struct evhttp_request *req, void *arg)
{
    struct fake *f = arg;
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?');
    const char *a, *l;
    long long after = 0, limit = 10000;
    struct evbuffer *out = evbuffer_new();
    size_t i, end;

    f->gets++;
    memset(&q, 0, sizeof(q));
    q.tqh_last = &q.tqh_first; /* an empty queue (sys/queue.h's TAILQ_INIT) */
    if (qs)
        evhttp_parse_query_str(qs + 1, &q);
    a = evhttp_find_header(&q, "after");
    l = evhttp_find_header(&q, "limit");
    if (a)
        after = atoll(a);
    if (l)
        limit = atoll(l);
    evhttp_clear_headers(&q);
    if (f->fail_status) {
        evbuffer_add_printf(out, "{\"success\":false,\"error\":\"broken\"}");
        evhttp_send_reply(req, f->fail_status, "Broken", out);
        evbuffer_free(out);
        return;
    }
    evbuffer_add_printf(out, "{\"success\":true,\"epoch\":\"%s\",\"messages\":[", f->epoch);
    end = (size_t)after;
    for (i = (size_t)after; i < f->n && (long long)(i - (size_t)after) < limit; i++) {
        evbuffer_add_printf(out, "%s{\"uuid\":\"%s\",\"msg\":\"%s\",\"ts\":%lld",
                            i > (size_t)after ? "," : "", f->msgs[i].uuid, f->msgs[i].msg,
                            f->msgs[i].ts);
        /* messages of odd n (ts 100 + n) are listed with a trace: n's ts in hex */
        if (f->msgs[i].ts % 2)
            evbuffer_add_printf(out, ",\"trace\":\"%032llx\"", f->msgs[i].ts);
        evbuffer_add_printf(out, "}");
        end = i + 1;
    }
    evbuffer_add_printf(out, "],\"next\":%zu,\"more\":%s}", end, end < f->n ? "true" : "false");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* The uuid message n has. */
static void uuid_of(unsigned n, char out[37])
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012x", n, n);
}

/* Store message n (its text "m<n>", ts 100 + n) in fake f. */
static void fake_add(struct fake *f, unsigned n)
{
    assert_true(f->n < FAKE_MSGS_MAX);
    uuid_of(n, f->msgs[f->n].uuid);
    snprintf(f->msgs[f->n].msg, sizeof(f->msgs[f->n].msg), "m%u", n);
    f->msgs[f->n].ts = 100 + n;
    f->n++;
}

static size_t env_list(void *arg, const char *service, struct disc_instance *out, size_t max)
{
    struct env *e = arg;
    size_t n = 0, i;

    if (strcmp(service, "logging-service") != 0)
        return 0;
    for (i = 0; i < 2 && n < max; i++, n++) {
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].host, sizeof(out[n].host), "127.0.0.1");
        out[n].port = e->fakes[i].port;
    }
    return n;
}

/* rpr_store_fn: record the call; the test answers it (release). */
static int fake_store(void *store_arg, const char *uuid, const char *msg, size_t len, int64_t ts,
                      const char *trace, rpr_done_fn done, void *arg)
{
    struct env *e = store_arg;
    struct call *c;

    assert_true(e->ncalls < CALLS_MAX);
    c = &e->calls[e->ncalls++];
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    snprintf(c->msg, sizeof(c->msg), "%.*s", (int)len, msg);
    c->ts = (long long)ts;
    snprintf(c->trace, sizeof(c->trace), "%s", trace);
    c->done = done;
    c->arg = arg;
    c->answered = 0;
    return 0;
}

/* Answer every call not answered yet with status; a 200 places a copy on
 * the second fake, as the replicator would. */
static void release(struct env *e, int status)
{
    size_t i;

    for (i = 0; i < e->ncalls; i++) {
        struct call *c = &e->calls[i];
        unsigned n;

        if (c->answered)
            continue;
        c->answered = 1;
        if (status == 200) {
            assert_int_equal(sscanf(c->msg, "m%u", &n), 1);
            fake_add(&e->fakes[1], n);
        }
        c->done(status, status == 200 ? 2 : 0, status == 200 ? NULL : "refused", c->uuid, c->arg);
    }
}

/* Let the next tick fire on the virtual clock and run the loop until its
 * sync round's calls are answered. */
static void tick(struct env *e)
{
    int guard = 0;

    assert_int_equal(vc_fire_next(&e->vc, e->vc.now + INTERVAL_MS), 1);
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    while (hc_inflight(e->hc) > 0) {
        assert_true(++guard < 100000);
        event_base_loop(e->base, EVLOOP_ONCE);
    }
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(vc_check_virtual(&e->vc), 0);
}

static int env_repair(struct env *e, int64_t interval_ms)
{
    struct rpr_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.interval_ms = interval_ms;
    opt.store = fake_store;
    opt.store_arg = e;
    opt.timers = &e->vc.hook;
    rpr_free(e->rpr);
    e->rpr = rpr_new(e->base, e->fo, &opt);
    return e->rpr ? 0 : -1;
}

static uint64_t env_stamp(void *arg) { return ((struct env *)arg)->stamp; }

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct fan_options fopt = {.replicas = 2, .timeout_ms = 2000};
    size_t i;

    if (!e)
        return -1;
    fake_now = 1000000;
    vc_init(&e->vc, 1000000);
    e->base = event_base_new();
    e->hc = e->base ? hc_client_new(e->base) : NULL;
    e->ups = up_new(fake_clock);
    if (!e->hc || !e->ups)
        return -1;
    for (i = 0; i < 2; i++) {
        struct fake *f = &e->fakes[i];

        f->http = evhttp_new(e->base);
        if (!f->http)
            return -1;
        f->port = ts_evhttp_listen(f->http, 0);
        if (f->port < 0)
            return -1;
        evhttp_set_gencb(f->http, fake_handle, f);
        snprintf(f->epoch, sizeof(f->epoch), "epoch-%zu", i);
    }
    e->fo = fan_new(e->hc, e->ups, env_list, e, &fopt);
    if (!e->fo || env_repair(e, INTERVAL_MS) != 0)
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    size_t i;

    rpr_free(e->rpr);
    fan_free(e->fo);
    hc_client_free(e->hc);
    up_free(e->ups);
    for (i = 0; i < 2; i++)
        if (e->fakes[i].http)
            evhttp_free(e->fakes[i].http);
    event_base_free(e->base);
    free(e);
    return 0;
}

/* The timer is armed every INTERVAL_MS through the hook; a tick re-sends
 * each message below 2 copies with its uuid, text and ts, logs one line
 * and counts what was stored; the next pass finds nothing to do. */
static void test_tick_resends_what_is_below_its_copies(void **state)
{
    struct env *e = *state;
    char log[4096], uuid[37];
    unsigned n;

    assert_int_equal(e->vc.narmed, 1);
    assert_int_equal(e->vc.log[0].ms, INTERVAL_MS);
    assert_true(e->vc.log[0].persistent);
    for (n = 1; n <= 4; n++)
        fake_add(&e->fakes[0], n);
    fake_add(&e->fakes[1], 4);
    assert_int_equal(ts_capture_begin(), 0);
    tick(e);
    ts_capture_end(log, sizeof(log));
    assert_int_equal(e->ncalls, 3);
    for (n = 1; n <= 3; n++) {
        uuid_of(n, uuid);
        assert_string_equal(e->calls[n - 1].uuid, uuid);
        assert_int_equal(e->calls[n - 1].ts, 100 + n);
    }
    assert_string_equal(e->calls[0].msg, "m1");
    /* each re-send in the trace logging listed its message with (or none) */
    assert_string_equal(e->calls[0].trace, "00000000000000000000000000000065");
    assert_string_equal(e->calls[1].trace, "");
    assert_string_equal(e->calls[2].trace, "00000000000000000000000000000067");
    assert_non_null(strstr(log, "repair: 3 messages below 2 copies, re-sent 3"));
    assert_int_equal(rpr_inflight(e->rpr), 3);
    assert_int_equal(rpr_repaired(e->rpr), 0);
    release(e, 200);
    assert_int_equal(rpr_repaired(e->rpr), 3);
    assert_int_equal(rpr_inflight(e->rpr), 0);
    tick(e); /* a new pass, on a view that has the copies */
    tick(e);
    assert_int_equal(e->ncalls, 3);
}

/* At most RPR_INFLIGHT_MAX re-sends in flight: a tick while they are out
 * sends nothing more; once they end the walk goes on from its cursor in the
 * next loop turn, without waiting for a tick, and only when that pass has
 * ended does a new one begin. */
static void test_inflight_is_bounded_and_the_walk_goes_on(void **state)
{
    struct env *e = *state;
    char uuid[37];
    unsigned n, total = RPR_INFLIGHT_MAX + 44;

    for (n = 1; n <= total; n++)
        fake_add(&e->fakes[0], n);
    tick(e);
    assert_int_equal(e->ncalls, RPR_INFLIGHT_MAX);
    tick(e);
    assert_int_equal(e->ncalls, RPR_INFLIGHT_MAX);
    release(e, 200);
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->ncalls, total);
    uuid_of(RPR_INFLIGHT_MAX + 1, uuid);
    assert_string_equal(e->calls[RPR_INFLIGHT_MAX].uuid, uuid);
    /* not answered yet: no new pass, nothing sent twice */
    tick(e);
    assert_int_equal(e->ncalls, total);
    release(e, 200);
    tick(e);
    tick(e);
    assert_int_equal(e->ncalls, total);
    assert_int_equal(rpr_repaired(e->rpr), total);
}

/* A 409 (an instance holds another text under the uuid) is logged once
 * with the uuid and the message is not re-sent again (nor is a line logged
 * every tick for it); a failure is tried again in the next pass. */
static void test_conflict_is_logged_once_and_left_alone(void **state)
{
    struct env *e = *state;
    char log[4096];

    fake_add(&e->fakes[0], 1);
    fake_add(&e->fakes[0], 2);
    tick(e);
    assert_int_equal(e->ncalls, 2);
    assert_int_equal(ts_capture_begin(), 0);
    e->calls[1].answered = 1; /* message 2: answered below */
    release(e, 409);
    e->calls[1].done(503, 0, "no instance", e->calls[1].uuid, e->calls[1].arg);
    tick(e);
    tick(e);
    ts_capture_end(log, sizeof(log));
    assert_int_equal(ts_count_of(log, "repair: message 00000001-0000-4000-8000-000000000001 is "
                                      "held with another text"),
                     1);
    /* the new pass re-sent message 2 only */
    assert_int_equal(e->ncalls, 3);
    assert_string_equal(e->calls[2].msg, "m2");
    assert_int_equal(rpr_repaired(e->rpr), 0);
    /* message 2 repaired; message 1 stays below and stays quiet */
    release(e, 200);
    tick(e);
    assert_int_equal(ts_capture_begin(), 0);
    tick(e);
    tick(e);
    ts_capture_end(log, sizeof(log));
    assert_int_equal(e->ncalls, 3);
    assert_null(strstr(log, "repair:"));
}

/* A round that could not read every listed instance judges nothing: the
 * instance not read may hold the copies. */
static void test_incomplete_round_is_skipped(void **state)
{
    struct env *e = *state;

    fake_add(&e->fakes[0], 1);
    e->fakes[1].fail_status = 500;
    tick(e);
    assert_int_equal(e->ncalls, 0);
    e->fakes[1].fail_status = 0;
    tick(e);
    assert_int_equal(e->ncalls, 1);
}

/* The stop hook disarms the timer; with interval 0 none is armed. */
/* With a stamp: once a round found every message with its copies, ticks
 * read nothing until the stamp changes (a facade whose copies are all made
 * costs its instances nothing); a changed stamp syncs again and re-sends
 * what went missing. */
static void test_clean_view_is_not_synced_until_the_stamp_changes(void **state)
{
    struct env *e = *state;
    struct rpr_options opt;
    size_t gets;

    memset(&opt, 0, sizeof(opt));
    opt.interval_ms = INTERVAL_MS;
    opt.store = fake_store;
    opt.store_arg = e;
    opt.timers = &e->vc.hook;
    opt.stamp = env_stamp;
    opt.stamp_arg = e;
    rpr_free(e->rpr);
    e->rpr = rpr_new(e->base, e->fo, &opt);
    assert_non_null(e->rpr);
    fake_add(&e->fakes[0], 1);
    fake_add(&e->fakes[1], 1);
    e->stamp = 7;
    tick(e); /* reads both, finds nothing below its copies: clean */
    gets = e->fakes[0].gets;
    assert_true(gets > 0);
    tick(e);
    tick(e);
    assert_int_equal(e->fakes[0].gets, gets);
    /* a message on one instance only: nothing reads it while the stamp
     * stays (the replicator would have counted it), then it is repaired */
    fake_add(&e->fakes[0], 2);
    tick(e);
    assert_int_equal(e->fakes[0].gets, gets);
    assert_int_equal(e->ncalls, 0);
    e->stamp = 8;
    tick(e);
    assert_true(e->fakes[0].gets > gets);
    assert_int_equal(e->ncalls, 1);
    release(e, 200);
    tick(e); /* the pass ended: a new one finds it with its copies, clean */
    gets = e->fakes[0].gets;
    tick(e);
    assert_int_equal(e->fakes[0].gets, gets);
    assert_int_equal(e->ncalls, 1);
}

static void test_stop_and_off(void **state)
{
    struct env *e = *state;

    assert_int_equal(e->vc.narmed, 1);
    rpr_stop(e->rpr);
    assert_int_equal(e->vc.narmed, 0);
    assert_int_equal(vc_fire_next(&e->vc, e->vc.now + 10 * INTERVAL_MS), 0);
    assert_int_equal(env_repair(e, 0), 0);
    assert_int_equal(e->vc.narmed, 0);
    assert_int_equal(rpr_repaired(e->rpr), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tick_resends_what_is_below_its_copies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inflight_is_bounded_and_the_walk_goes_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conflict_is_logged_once_and_left_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_round_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_view_is_not_synced_until_the_stamp_changes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_off, setup, teardown),
    };

    log_init("test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
