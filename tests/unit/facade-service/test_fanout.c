/* test_fanout.c: unit tests of the facade's merged view (facade-service/
 * fanout.h) against fake logging instances: evhttp servers on loopback in
 * the test's own event loop that answer GET /logging?after=&limit= from a
 * list the test controls. The breakers run on an injected clock. Covers
 * the incremental sync, the full read in pages, the re-read after an epoch
 * change, the order rule and the cache, a failing instance named in the
 * errors with the status rule (each instance once, even when listed
 * twice), a size limit not charged to the instance's breaker, and the
 * holders repair reads (which listed instances hold each message, cleared
 * for an instance that restarted). */
#include "facade-service/fanout.h"
#include "facade-service/upstream.h"
#include "http/client.h"
#include "regclient/discovery.h"
#include "support.h"

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

#define FAKE_MSGS_MAX 64

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
    int fail_status;      /* answer this status instead (0: pages) */
    int too_big;          /* answer a body over the client's limit */
    long long afters[64]; /* after= of each request, in order */
    size_t requests;
};

struct env {
    struct event_base *base;
    struct hc_client *hc;
    struct up_table *ups;
    struct fan_view *fo;
    struct fake fakes[3];
    size_t nlisted; /* fakes listed as passing */
    int dead_port;  /* listed too when nonzero: nothing listens there */
    int twice;      /* the first fake is listed twice (two registrations) */
    size_t ndead;   /* listed first: 127.0.1.<i>:dead_port, nothing there */
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
    if (f->requests < 64)
        f->afters[f->requests] = after;
    f->requests++;
    if (f->fail_status) {
        evbuffer_add_printf(out, "{\"success\":false,\"error\":\"broken\"}");
        evhttp_send_reply(req, f->fail_status, "Broken", out);
        evbuffer_free(out);
        return;
    }
    if (f->too_big) {
        static char blob[64 * 1024];

        memset(blob, ' ', sizeof(blob));
        for (i = 0; i < (HC_RESPONSE_MAX / sizeof(blob)) + 2; i++)
            evbuffer_add(out, blob, sizeof(blob));
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    evbuffer_add_printf(out, "{\"success\":true,\"epoch\":\"%s\",\"messages\":[", f->epoch);
    end = (size_t)after;
    for (i = (size_t)after; i < f->n && (long long)(i - (size_t)after) < limit; i++) {
        evbuffer_add_printf(out, "%s{\"uuid\":\"%s\",\"msg\":\"%s\",\"ts\":%lld}",
                            i > (size_t)after ? "," : "", f->msgs[i].uuid, f->msgs[i].msg,
                            f->msgs[i].ts);
        end = i + 1;
    }
    if ((size_t)after > f->n)
        end = (size_t)after;
    evbuffer_add_printf(out, "],\"next\":%zu,\"more\":%s}", end, end < f->n ? "true" : "false");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* Store msg (uuid from n) with ts in fake f. */
static void fake_add(struct fake *f, unsigned n, const char *msg, long long ts)
{
    assert_true(f->n < FAKE_MSGS_MAX);
    snprintf(f->msgs[f->n].uuid, sizeof(f->msgs[f->n].uuid), "%08x-0000-4000-8000-%012x", n, n);
    snprintf(f->msgs[f->n].msg, sizeof(f->msgs[f->n].msg), "%s", msg);
    f->msgs[f->n].ts = ts;
    f->n++;
}

static size_t env_list(void *arg, const char *service, struct disc_instance *out, size_t max)
{
    struct env *e = arg;
    size_t n = 0, i;

    if (strcmp(service, "logging-service") != 0)
        return 0;
    for (i = 0; i < e->ndead && n < max; i++, n++) {
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].host, sizeof(out[n].host), "127.0.1.%zu", i + 1);
        out[n].port = e->dead_port;
    }
    for (i = 0; i < e->nlisted && n < max; i++, n++) {
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].host, sizeof(out[n].host), "127.0.0.1");
        out[n].port = e->fakes[i].port;
    }
    if (e->twice && e->nlisted > 0 && n < max) {
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].host, sizeof(out[n].host), "127.0.0.1");
        out[n].port = e->fakes[0].port;
        n++;
    }
    if (e->dead_port && !e->ndead && n < max) {
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].host, sizeof(out[n].host), "127.0.0.1");
        out[n].port = e->dead_port;
        n++;
    }
    return n;
}

static int env_view(struct env *e, int replicas, size_t page_limit)
{
    struct fan_options opt = {replicas, page_limit, 2000, NULL};

    fan_free(e->fo);
    e->fo = fan_new(e->hc, e->ups, env_list, e, &opt);
    return e->fo ? 0 : -1;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    size_t i;

    if (!e)
        return -1;
    fake_now = 1000000;
    e->base = event_base_new();
    e->hc = e->base ? hc_client_new(e->base) : NULL;
    e->ups = up_new(fake_clock);
    if (!e->hc || !e->ups)
        return -1;
    for (i = 0; i < 3; i++) {
        struct fake *f = &e->fakes[i];

        f->http = evhttp_new(e->base);
        if (!f->http)
            return -1;
        f->port = ts_evhttp_listen(f->http, 0);
        if (f->port < 0)
            return -1;
        evhttp_set_gencb(f->http, fake_handle, f);
        snprintf(f->epoch, sizeof(f->epoch), "epoch-%zu-a", i);
    }
    e->nlisted = 1;
    if (env_view(e, 2, 0) != 0)
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    size_t i;

    fan_free(e->fo);
    hc_client_free(e->hc);
    up_free(e->ups);
    for (i = 0; i < 3; i++)
        if (e->fakes[i].http)
            evhttp_free(e->fakes[i].http);
    event_base_free(e->base);
    free(e);
    return 0;
}

/* What a finished round said. */
struct outcome {
    int done;
    int status;
    size_t answered, listed, nerrors;
    char errors[4][512];
};

static void on_synced(const struct fan_round_info *info, void *arg)
{
    struct outcome *o = arg;
    size_t i;

    o->done = 1;
    o->status = info->status;
    o->answered = info->answered;
    o->listed = info->listed;
    o->nerrors = info->nerrors;
    for (i = 0; i < info->nerrors && i < 4; i++)
        snprintf(o->errors[i], sizeof(o->errors[i]), "%s", info->errors[i]);
}

/* Whether one of o's errors contains text. */
static int has_error(const struct outcome *o, const char *text)
{
    size_t i;

    for (i = 0; i < o->nerrors && i < 4; i++)
        if (strstr(o->errors[i], text))
            return 1;
    return 0;
}

/* One sync round, run to its end on the loop. */
static struct outcome sync_once(struct env *e)
{
    struct outcome o;

    memset(&o, 0, sizeof(o));
    assert_int_equal(fan_sync(e->fo, on_synced, &o), 0);
    while (!o.done)
        event_base_loop(e->base, EVLOOP_ONCE);
    return o;
}

/* The view's messages joined with '|' (their JSON literals). */
static const char *view_text(struct env *e)
{
    static char buf[4096];
    size_t i, len, n = 0;
    const char *lit;

    buf[0] = '\0';
    for (i = 0; (lit = fan_at(e->fo, i, &len)) != NULL; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%.*s", i ? "|" : "", (int)len, lit);
    return buf;
}

static void test_incremental_sync_asks_only_for_what_is_new(void **state)
{
    struct env *e = *state;
    struct fake *f = &e->fakes[0];
    struct outcome o;
    uint64_t rebuilds, extends;

    fake_add(f, 1, "a", 10);
    fake_add(f, 2, "b", 11);
    fake_add(f, 3, "c", 12);
    o = sync_once(e);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.answered, 1);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->afters[0], 0);
    assert_string_equal(view_text(e), "\"a\"|\"b\"|\"c\"");
    /* nothing new: one cheap call from the end */
    o = sync_once(e);
    assert_int_equal(f->requests, 2);
    assert_int_equal(f->afters[1], 3);
    assert_int_equal(fan_count(e->fo), 3);
    fake_add(f, 4, "d", 13);
    o = sync_once(e);
    assert_int_equal(f->afters[2], 3);
    assert_string_equal(view_text(e), "\"a\"|\"b\"|\"c\"|\"d\"");
    fan_cache_stats(e->fo, &rebuilds, &extends);
    assert_int_equal(rebuilds, 1); /* the first build only */
    assert_int_equal(extends, 2);  /* then extended at its end */
}

static void test_full_read_goes_in_pages(void **state)
{
    struct env *e = *state;
    struct fake *f = &e->fakes[0];
    struct outcome o;
    unsigned i;
    char msg[16];

    assert_int_equal(env_view(e, 2, 2), 0);
    for (i = 0; i < 5; i++) {
        snprintf(msg, sizeof(msg), "m%u", i);
        fake_add(f, i + 1, msg, 100 + i);
    }
    o = sync_once(e);
    assert_int_equal(o.status, 200);
    assert_int_equal(f->requests, 3);
    assert_int_equal(f->afters[0], 0);
    assert_int_equal(f->afters[1], 2);
    assert_int_equal(f->afters[2], 4);
    assert_string_equal(view_text(e), "\"m0\"|\"m1\"|\"m2\"|\"m3\"|\"m4\"");
}

static void test_new_epoch_is_read_again_in_full(void **state)
{
    struct env *e = *state;
    struct fake *f = &e->fakes[0];
    struct outcome o;

    fake_add(f, 1, "a", 10);
    fake_add(f, 2, "b", 11);
    o = sync_once(e);
    assert_int_equal(fan_count(e->fo), 2);
    /* restarted: a new store with the old messages in another order, and
     * one more; the old position (2) means nothing in it */
    snprintf(f->epoch, sizeof(f->epoch), "epoch-0-b");
    f->n = 0;
    fake_add(f, 3, "c", 12);
    fake_add(f, 2, "b", 11);
    fake_add(f, 1, "a", 10);
    o = sync_once(e);
    assert_int_equal(o.status, 200);
    assert_int_equal(f->requests, 3);
    assert_int_equal(f->afters[1], 2); /* answered under the new epoch: dropped */
    assert_int_equal(f->afters[2], 0); /* read again from the start */
    assert_string_equal(view_text(e), "\"a\"|\"b\"|\"c\"");
    o = sync_once(e);
    assert_int_equal(f->afters[3], 3);
}

static void test_order_is_ts_then_position_and_older_ts_rebuilds(void **state)
{
    struct env *e = *state;
    struct fake *f = &e->fakes[0];
    uint64_t rebuilds, extends;

    /* same millisecond: stored order, not uuid order */
    fake_add(f, 9, "first", 50);
    fake_add(f, 1, "second", 50);
    (void)sync_once(e);
    assert_string_equal(view_text(e), "\"first\"|\"second\"");
    /* an older timestamp lands before them: the cache is rebuilt */
    fake_add(f, 5, "older", 20);
    (void)sync_once(e);
    assert_string_equal(view_text(e), "\"older\"|\"first\"|\"second\"");
    fan_cache_stats(e->fo, &rebuilds, &extends);
    assert_int_equal(rebuilds, 2);
}

static void test_replicas_merge_once_and_failures_are_named(void **state)
{
    struct env *e = *state;
    struct outcome o;
    char want[64];

    /* two replicas holding the same messages in different orders */
    fake_add(&e->fakes[0], 1, "x", 10);
    fake_add(&e->fakes[0], 2, "y", 11);
    fake_add(&e->fakes[1], 2, "y", 11);
    fake_add(&e->fakes[1], 1, "x", 10);
    e->nlisted = 2;
    o = sync_once(e);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.nerrors, 1); /* no messages-service listed */
    assert_string_equal(view_text(e), "\"x\"|\"y\"");
    /* one of two down, 2 replicas: every message has a copy that answered */
    e->fakes[1].fail_status = 500;
    o = sync_once(e);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.answered, 1);
    snprintf(want, sizeof(want), "127.0.0.1:%d: HTTP 500", e->fakes[1].port);
    assert_int_equal(o.nerrors, 2);
    assert_true(has_error(&o, want));
    /* plus an instance that refuses connections: as many missing as
     * copies, so some message may have lost every copy: 206 */
    e->dead_port = ts_closed_port();
    o = sync_once(e);
    assert_int_equal(o.status, 206);
    assert_int_equal(o.listed, 3);
    assert_int_equal(o.answered, 1);
    /* nobody answers: 502 (the view keeps what it had) */
    e->fakes[0].fail_status = 503;
    o = sync_once(e);
    assert_int_equal(o.status, 502);
    assert_int_equal(fan_count(e->fo), 2);
}

/* Each instance appears once in errors: one listed twice (two
 * registrations at one address) whose breaker is open was named twice. */
static void test_an_instance_is_named_once(void **state)
{
    struct env *e = *state;
    struct outcome o;
    char want[64];
    size_t i, named;
    int round;

    e->twice = 1;
    e->fakes[0].fail_status = 500;
    /* its breaker opens after 5 failures (one call a round: the second
     * listing waits for the first's call) */
    for (round = 0; round < 5; round++) {
        o = sync_once(e);
        fake_now += 10;
        assert_int_equal(o.status, 502);
    }
    assert_int_equal(e->fakes[0].requests, 5);
    o = sync_once(e);
    assert_int_equal(e->fakes[0].requests, 5);
    snprintf(want, sizeof(want), "logging-service 127.0.0.1:%d: ", e->fakes[0].port);
    for (i = 0, named = 0; i < o.nerrors && i < 4; i++)
        named += strncmp(o.errors[i], want, strlen(want)) == 0;
    assert_int_equal(named, 1);
    assert_true(has_error(&o, "circuit breaker open"));
    assert_int_equal(o.nerrors, 2); /* plus: no messages-service listed */
}

/* The breaker of the fake at index i. */
static struct up_instance *fake_up(struct env *e, size_t i)
{
    return up_get(e->ups, "logging-service", "127.0.0.1", e->fakes[i].port);
}

static void test_size_limit_does_not_open_the_breaker(void **state)
{
    struct env *e = *state;
    struct outcome o;
    int i;

    e->nlisted = 2;
    e->fakes[0].too_big = 1;
    e->fakes[1].fail_status = 500;
    for (i = 0; i < 6; i++) {
        o = sync_once(e);
        fake_now += 10;
        assert_int_equal(o.status, 502); /* neither was read */
        assert_true(has_error(&o, "over the facade's"));
    }
    /* the size limit is ours: its instance's breaker stays closed, and it
     * was asked every time; the failing one opened after 5 failures */
    assert_false(up_is_open(e->ups, fake_up(e, 0)));
    assert_int_equal(e->fakes[0].requests, 6);
    assert_true(up_is_open(e->ups, fake_up(e, 1)));
    assert_int_equal(e->fakes[1].requests, 5);
    /* after the cool-down (clock injected) it is probed again */
    fake_now += 6000;
    e->fakes[1].fail_status = 0;
    fake_add(&e->fakes[1], 7, "back", 5);
    o = sync_once(e);
    assert_int_equal(e->fakes[1].requests, 6);
    assert_string_equal(view_text(e), "\"back\"");
}

/* Finding 4 (a conflicting Idempotency-Key resend was stored once the
 * instances changed): the keyed POST asks the view, after a sync round,
 * what it knows of the uuid: absent, held with the same text (compared as
 * the same JSON literal, escapes included), or with another one; a
 * malformed uuid is an error. */
static void test_lookup_by_uuid(void **state)
{
    struct env *e = *state;
    char uuid[40];

    fake_add(&e->fakes[0], 1, "a", 10);
    /* the fake writes its text into the JSON as is: \t there is a tab */
    fake_add(&e->fakes[1], 2, "tab\\there", 11);
    e->nlisted = 2;
    (void)sync_once(e);
    snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-%012x", 1u, 1u);
    assert_int_equal(fan_lookup(e->fo, uuid, "a", 1), FAN_SAME);
    assert_int_equal(fan_lookup(e->fo, uuid, "b", 1), FAN_OTHER);
    assert_int_equal(fan_lookup(e->fo, uuid, "ab", 2), FAN_OTHER);
    uuid[0] = 'F'; /* another uuid */
    assert_int_equal(fan_lookup(e->fo, uuid, "a", 1), FAN_ABSENT);
    snprintf(uuid, sizeof(uuid), "%08X-0000-4000-8000-%012X", 2u, 2u); /* either case */
    assert_int_equal(fan_lookup(e->fo, uuid, "tab\there", 8), FAN_SAME);
    assert_int_equal(fan_lookup(e->fo, uuid, "tab\\there", 9), FAN_OTHER);
    assert_int_equal(fan_lookup(e->fo, "not-a-uuid", "a", 1), FAN_LOOKUP_ERROR);
}

/* The uuid fake_add gives n. */
static const char *uuid_of(unsigned n)
{
    static char buf[40];

    snprintf(buf, sizeof(buf), "%08x-0000-4000-8000-%012x", n, n);
    return buf;
}

/* Repair's view of the holders: a message is under-replicated when fewer
 * of the instances listed in the last complete round hold it than
 * min(replicas, listed). fan_under_next hands it over with its uuid, its
 * text decoded from the JSON literal, and its timestamp. */
static void test_holders_mark_under_replicated_messages(void **state)
{
    struct env *e = *state;
    struct fan_under u;
    size_t cursor = 0;
    struct outcome o;

    assert_int_equal(fan_copies_wanted(e->fo), 0); /* no round yet */
    fake_add(&e->fakes[0], 1, "both", 10);
    fake_add(&e->fakes[1], 1, "both", 10);
    /* the fake writes its text into the JSON as is: \" is a quote */
    fake_add(&e->fakes[0], 2, "only \\\"zero\\\"", 11);
    fake_add(&e->fakes[0], 3, "all", 12);
    fake_add(&e->fakes[1], 3, "all", 12);
    fake_add(&e->fakes[2], 3, "all", 12);
    fake_add(&e->fakes[2], 4, "only two", 13);
    e->nlisted = 3;
    o = sync_once(e);
    assert_true(o.done);
    assert_int_equal(fan_copies_wanted(e->fo), 2);
    assert_int_equal(fan_under_count(e->fo), 2);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 1);
    assert_string_equal(u.uuid, uuid_of(2));
    assert_int_equal(u.len, 11);
    assert_string_equal(u.msg, "only \"zero\"");
    assert_int_equal(u.ts, 11);
    assert_int_equal(u.holders, 1);
    free(u.msg);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 1);
    assert_string_equal(u.uuid, uuid_of(4));
    assert_string_equal(u.msg, "only two");
    free(u.msg);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 0);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 0);
    /* repaired: the next round sees the new copies */
    fake_add(&e->fakes[1], 2, "only \\\"zero\\\"", 11);
    fake_add(&e->fakes[0], 4, "only two", 13);
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 0);
    cursor = 0;
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 0);
}

/* Copies are wanted from the instances listed: with one instance, one
 * copy is all there can be; an instance listed twice counts once and the
 * round is still complete. */
static void test_copies_wanted_follow_the_instances_listed(void **state)
{
    struct env *e = *state;
    struct outcome o;

    fake_add(&e->fakes[0], 1, "a", 10);
    e->nlisted = 1;
    e->twice = 1;
    o = sync_once(e);
    assert_int_equal(o.listed, 2);
    assert_int_equal(fan_copies_wanted(e->fo), 1);
    assert_int_equal(fan_under_count(e->fo), 0);
    /* two more come: the message on one of three is below 2 */
    e->twice = 0;
    e->nlisted = 3;
    (void)sync_once(e);
    assert_int_equal(fan_copies_wanted(e->fo), 2);
    assert_int_equal(fan_under_count(e->fo), 1);
}

/* A round that did not read every listed instance says so (complete 0)
 * and nothing is judged on it: the instance not read may hold the
 * copies. */
static void test_incomplete_round_judges_nothing(void **state)
{
    struct env *e = *state;
    struct fan_under u;
    size_t cursor = 0;
    struct outcome o;

    fake_add(&e->fakes[0], 1, "a", 10);
    e->nlisted = 2;
    e->fakes[1].fail_status = 500;
    o = sync_once(e);
    assert_int_equal(o.answered, 1);
    assert_int_equal(fan_copies_wanted(e->fo), 0);
    assert_int_equal(fan_under_count(e->fo), 0);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 0);
    e->fakes[1].fail_status = 0;
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 1);
}

/* An instance that restarts (a new store epoch), here empty, no longer
 * counts as holding what it held: its marks are cleared before its new
 * store is read, and set again for what it holds now. */
static void test_restarted_instance_loses_its_marks(void **state)
{
    struct env *e = *state;
    struct fake *f = &e->fakes[1];
    struct fan_under u;
    size_t cursor = 0;

    fake_add(&e->fakes[0], 1, "a", 10);
    fake_add(&e->fakes[0], 2, "b", 11);
    fake_add(f, 1, "a", 10);
    fake_add(f, 2, "b", 11);
    e->nlisted = 2;
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 0);
    snprintf(f->epoch, sizeof(f->epoch), "epoch-1-b");
    f->n = 0;
    (void)sync_once(e);
    assert_int_equal(fan_count(e->fo), 2); /* the view keeps both */
    assert_int_equal(fan_under_count(e->fo), 2);
    /* refilled with one of them */
    fake_add(f, 2, "b", 11);
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 1);
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 1);
    assert_string_equal(u.uuid, uuid_of(1));
    assert_int_equal(u.holders, 1);
    free(u.msg);
    /* a restart found on a later page (asked after its old end) too */
    snprintf(f->epoch, sizeof(f->epoch), "epoch-1-c");
    f->n = 0;
    fake_add(f, 1, "a", 10);
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 1);
    cursor = 0;
    assert_int_equal(fan_under_next(e->fo, &cursor, &u), 1);
    assert_string_equal(u.uuid, uuid_of(2));
    free(u.msg);
}

/* Past 64 instances: once every holders slot is taken, a newcomer takes
 * the slot of an instance not listed since (it is forgotten, and read in
 * full should it come back), so the instances listed now are counted. */
static void test_slots_go_to_the_instances_listed(void **state)
{
    struct env *e = *state;
    struct outcome o;

    e->dead_port = ts_closed_port();
    assert_true(e->dead_port > 0);
    e->ndead = 64; /* every slot: 64 instances that refuse */
    e->nlisted = 0;
    o = sync_once(e);
    assert_int_equal(o.listed, 64);
    assert_int_equal(o.answered, 0);
    fake_add(&e->fakes[0], 1, "a", 10);
    e->ndead = 0;
    e->dead_port = 0;
    e->nlisted = 2;
    o = sync_once(e);
    assert_true(o.done);
    assert_int_equal(o.answered, 2);
    /* both newcomers got a slot: 2 copies wanted, the message has 1 */
    assert_int_equal(fan_copies_wanted(e->fo), 2);
    assert_int_equal(fan_under_count(e->fo), 1);
    fake_add(&e->fakes[1], 1, "a", 10);
    (void)sync_once(e);
    assert_int_equal(fan_under_count(e->fo), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_incremental_sync_asks_only_for_what_is_new, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_read_goes_in_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_epoch_is_read_again_in_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_is_ts_then_position_and_older_ts_rebuilds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replicas_merge_once_and_failures_are_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_instance_is_named_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit_does_not_open_the_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_by_uuid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holders_mark_under_replicated_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_copies_wanted_follow_the_instances_listed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_round_judges_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarted_instance_loses_its_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_go_to_the_instances_listed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
