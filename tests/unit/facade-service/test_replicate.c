/* test_replicate.c: unit tests of the facade's write path
 * (facade-service/replicate.h) against fake logging-service instances and
 * a fake registry, all evhttp servers on loopback in the test's own event
 * loop. The replicator reads the instances from a real disc_client that
 * polls the fake registry's GET /v1/services.
 *
 * A fake logging instance answers batch POSTs as logging does (200
 * {"success":true,"results":[...]}, 201 stored or 200 duplicate per item),
 * or fails on demand: 503 to the whole batch, 409 for one uuid (conflict),
 * or holds its answers (a hung instance) until the test releases them. A
 * refused instance is a listed port where nothing listens.
 *
 * Time is virtual: the replicator's backoff and deadline timers and the
 * discovery refresh are armed through a clk_timers hook that records them,
 * and the replicator's deadlines and the breakers read the same virtual
 * clock. The I/O is real; settle() runs the loop until every call in
 * flight is answered (or held at a fake), and advancing the clock fires
 * each timer that falls due, in order, settling after each. Backoff draws
 * are injected (always the ceiling), so the delays armed are exact. Every
 * loop run is bounded by a real safety timer. */
#include "facade-service/replicate.h"
#include "facade-service/upstream.h"

#include "core/clock.h"
#include "core/log.h"
#include "http/client.h"
#include "proto/messages.h"
#include "regclient/discovery.h"
#include "regclient/urls.h"
#include "resilience/rendezvous.h"
#include "support.h"
#include "vclock.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define SAFETY_MS      5000 /* no single loop run may take longer */
#define VC_FIRES_MAX   10000
#define FAKES          3
#define FAKE_POSTS_MAX 64   /* batch POSTs a fake remembers */
#define FAKE_SEEN_MAX  256  /* uuids a fake remembers, in arrival order */
#define FAKE_HELD_MAX  16   /* answers a fake holds back at once */
#define MSGS_MAX       32   /* messages one test stores */
#define DEADLINE_MS    1000 /* the replicator's deadline in most tests */
#define REFRESH_MS     100  /* discovery refresh period */

/* How a lying fake answers (finding "the facade trusts batch answers by
 * position"): stores nothing, yet answers 200 with 201 results. */
#define FAKE_LIE_UUID    1 /* each result names another uuid */
#define FAKE_LIE_FAILURE 2 /* "success":false around 201 results */
#define FAKE_LIE_STATUS  3 /* the right uuid with status 500 */
#define OTHER_UUID       "00000000-0000-4000-8000-00000000dead"

/* ---- the virtual clock (tests/unit/support/vclock.h) ---- */

/* The clock the replicator and the breakers read (one test at a time). */
static struct vclock *vc_current;

/* The replicator's and the breakers' clock function: the virtual now. */
static int64_t vc_clock(void) { return vc_current->now; }

/* ---- fakes ---- */

struct fake_held {
    struct evhttp_request *req;
    char *answer; /* owned: the 200 body to send on release */
};

/* One fake logging-service instance. */
struct fake {
    struct evhttp *http;
    int port;
    char key[64];      /* "127.0.0.1:<port>", the upstream key */
    int fail_status;   /* answer every batch with this status (0: results) */
    char conflict[40]; /* this uuid is answered 409 */
    int hold;          /* hold answers until fake_release */
    int lie;           /* FAKE_LIE_*: answer 200 with results that are not true */
    int posts;
    size_t items[FAKE_POSTS_MAX]; /* items per POST */
    char seen[FAKE_SEEN_MAX][40]; /* every uuid received, in order */
    size_t nseen;
    char stored[FAKE_SEEN_MAX][40];
    size_t nstored;
    struct fake_held held[FAKE_HELD_MAX];
    size_t nheld;
    int bad_requests;     /* not a POST /logging of a JSON array */
    char traceparent[64]; /* the last batch's traceparent header ("" none) */
    char trace[40];       /* the last item's "trace" member ("" none) */
};

struct env {
    struct event_base *base;
    struct vclock vc;
    struct hc_client *hc;
    struct evhttp *registry;
    int registry_port;
    int listed[8]; /* ports the registry lists as passing, in order */
    size_t nlisted;
    int registry_gets;
    struct ru_list urls;
    struct disc_client *disc;
    const struct event *disc_timer; /* discovery's read timer (its first arming), to tell apart */
    struct up_table *ups;
    struct rep_ctx *rep;
    struct fake fakes[FAKES];
    int timed_out;
};

/* What rep_done said for one message. */
struct outcome {
    int calls;
    int status;
    int copies; /* instances that stored it */
    char error[600];
    char uuid[40];
    int64_t at; /* virtual time of the call */
};

static struct outcome outcomes[MSGS_MAX];

static void reply(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *out = evbuffer_new();

    assert_non_null(out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, status, status < 300 ? "OK" : "Error", out);
    evbuffer_free(out);
}

static int fake_has(char (*set)[40], size_t n, const char *uuid)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(set[i], uuid) == 0)
            return 1;
    return 0;
}

/* Times uuid reached f. */
static int fake_count(const struct fake *f, const char *uuid)
{
    size_t i;
    int n = 0;

    for (i = 0; i < f->nseen; i++)
        n += strcmp(f->seen[i], uuid) == 0;
    return n;
}

/* POST /logging with a batch: record it, and answer as logging does (or
 * as told). */
static void fake_handle(struct evhttp_request *req, void *arg)
{
    struct fake *f = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in), i;
    char *body = malloc(len + 1);
    json_t *batch = NULL, *item = NULL;
    struct evbuffer *out = evbuffer_new();
    char *answer = NULL;

    assert_non_null(body);
    assert_non_null(out);
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    batch = json_loads(body, 0, NULL);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST ||
        strcmp(evhttp_request_get_uri(req), PM_PATH) != 0 || !json_is_array(batch)) {
        f->bad_requests++;
        reply(req, 400, "{\"success\":false,\"error\":\"not a batch\"}");
        goto cleanup;
    }
    if (f->posts < FAKE_POSTS_MAX)
        f->items[f->posts] = json_array_size(batch);
    f->posts++;
    {
        const char *tp = evhttp_find_header(evhttp_request_get_input_headers(req), "traceparent");

        snprintf(f->traceparent, sizeof(f->traceparent), "%s", tp ? tp : "");
    }
    evbuffer_add_printf(out, "{\"success\":%s,\"results\":[",
                        f->lie == FAKE_LIE_FAILURE ? "false" : "true");
    json_array_foreach (batch, i, item) {
        const char *uuid = json_string_value(json_object_get(item, "uuid"));

        assert_non_null(uuid);
        assert_non_null(json_string_value(json_object_get(item, "msg")));
        assert_true(json_is_integer(json_object_get(item, "ts")));
        snprintf(f->trace, sizeof(f->trace), "%s",
                 json_is_string(json_object_get(item, "trace"))
                     ? json_string_value(json_object_get(item, "trace"))
                     : "");
        if (f->nseen < FAKE_SEEN_MAX)
            snprintf(f->seen[f->nseen++], sizeof(f->seen[0]), "%s", uuid);
        if (f->lie) {
            evbuffer_add_printf(out, "%s{\"uuid\":\"%s\",\"status\":%d,\"duplicate\":false}",
                                i ? "," : "", f->lie == FAKE_LIE_UUID ? OTHER_UUID : uuid,
                                f->lie == FAKE_LIE_STATUS ? 500 : 201);
        } else if (strcmp(uuid, f->conflict) == 0) {
            evbuffer_add_printf(out,
                                "%s{\"uuid\":\"%s\",\"status\":409,\"duplicate\":false,"
                                "\"error\":\"uuid already stored with another msg\"}",
                                i ? "," : "", uuid);
        } else if (fake_has(f->stored, f->nstored, uuid)) {
            evbuffer_add_printf(out, "%s{\"uuid\":\"%s\",\"status\":200,\"duplicate\":true}",
                                i ? "," : "", uuid);
        } else {
            if (!f->fail_status && f->nstored < FAKE_SEEN_MAX)
                snprintf(f->stored[f->nstored++], sizeof(f->stored[0]), "%s", uuid);
            evbuffer_add_printf(out, "%s{\"uuid\":\"%s\",\"status\":201,\"duplicate\":false}",
                                i ? "," : "", uuid);
        }
    }
    evbuffer_add_printf(out, "]}");
    if (f->fail_status) {
        reply(req, f->fail_status, "{\"success\":false,\"error\":\"overloaded\"}");
        goto cleanup;
    }
    len = evbuffer_get_length(out);
    answer = malloc(len + 1);
    assert_non_null(answer);
    evbuffer_copyout(out, answer, len);
    answer[len] = '\0';
    if (f->hold) {
        assert_true(f->nheld < FAKE_HELD_MAX);
        f->held[f->nheld].req = req;
        f->held[f->nheld].answer = answer;
        f->nheld++;
        answer = NULL;
        goto cleanup;
    }
    reply(req, 200, answer);
cleanup:
    free(answer);
    evbuffer_free(out);
    json_decref(batch);
    free(body);
}

/* Send every answer f holds back, and stop holding. */
static void fake_release(struct fake *f)
{
    size_t i;

    for (i = 0; i < f->nheld; i++) {
        reply(f->held[i].req, 200, f->held[i].answer);
        free(f->held[i].answer);
    }
    f->nheld = 0;
    f->hold = 0;
}

/* The fake registry: GET /v1/services lists e->listed as passing
 * logging-service instances. */
static void registry_handle(struct evhttp_request *req, void *arg)
{
    struct env *e = arg;
    struct evbuffer *out = evbuffer_new();
    size_t i;

    assert_non_null(out);
    e->registry_gets++;
    evbuffer_add_printf(out, "{\"success\":true,\"services\":[");
    for (i = 0; i < e->nlisted; i++)
        evbuffer_add_printf(out,
                            "%s{\"id\":\"logging-service-%zu\",\"name\":\"%s\",\"host\":"
                            "\"127.0.0.1\",\"port\":%d,\"health\":\"passing\"}",
                            i ? "," : "", i, PM_SERVICE, e->listed[i]);
    evbuffer_add_printf(out, "]}");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* ---- loop control ---- */

static void safety_fire(evutil_socket_t fd, short what, void *arg)
{
    struct env *e = arg;

    (void)fd;
    (void)what;
    e->timed_out = 1;
}

static size_t held_total(const struct env *e)
{
    size_t n = 0, i;

    for (i = 0; i < FAKES; i++)
        n += e->fakes[i].nheld;
    return n;
}

/* Run the loop until every call in flight is answered or held at a fake;
 * no virtual time passes. Fails after SAFETY_MS of real time. */
static void settle(struct env *e)
{
    struct timeval tv = {SAFETY_MS / 1000, 0};
    struct event *safety = evtimer_new(e->base, safety_fire, e);

    assert_non_null(safety);
    e->timed_out = 0;
    evtimer_add(safety, &tv);
    do {
        event_base_loop(e->base, EVLOOP_NONBLOCK);
        while (!e->timed_out && hc_inflight(e->hc) > held_total(e))
            event_base_loop(e->base, EVLOOP_ONCE);
        event_base_loop(e->base, EVLOOP_NONBLOCK);
    } while (!e->timed_out && hc_inflight(e->hc) > held_total(e));
    event_free(safety);
    assert_false(e->timed_out);
}

/* Let ms of virtual time pass, firing every timer due in order. */
static void run_for(struct env *e, int64_t ms)
{
    int64_t until = e->vc.now + ms;
    int fires = 0;

    settle(e);
    while (vc_fire_next(&e->vc, until)) {
        assert_true(++fires <= VC_FIRES_MAX);
        settle(e);
    }
    e->vc.now = until;
    /* nothing armed behind the hook's back */
    assert_int_equal(vc_check_virtual(&e->vc), 0);
}

/* ---- fixture ---- */

/* Backoff draws: always the ceiling, so the delays are exact. */
static uint64_t draw_ceiling(uint64_t bound, void *arg)
{
    (void)arg;
    return bound;
}

static void on_done(int status, int copies, const char *error, const char *uuid, void *arg)
{
    struct outcome *o = arg;

    o->calls++;
    o->status = status;
    o->copies = copies;
    snprintf(o->error, sizeof(o->error), "%s", error ? error : "");
    snprintf(o->uuid, sizeof(o->uuid), "%s", uuid);
    o->at = vc_current->now;
}

/* (Re)make the replicator with replicas and a deadline. */
static void make_rep(struct env *e, int replicas, int64_t deadline_ms)
{
    struct rep_options opt;

    rep_free(e->rep);
    memset(&opt, 0, sizeof(opt));
    opt.replicas = replicas;
    opt.deadline_ms = deadline_ms;
    opt.backoff.base_ms = 100;
    opt.backoff.cap_ms = 400;
    opt.backoff.random = draw_ceiling;
    opt.timers = &e->vc.hook;
    opt.clock = vc_clock;
    e->rep = rep_new(e->base, e->hc, e->disc, e->ups, &opt);
    assert_non_null(e->rep);
}

/* List ports as the passing instances and let discovery see it. */
static void list_ports(struct env *e, const int *ports, size_t n)
{
    int gets = e->registry_gets;

    memcpy(e->listed, ports, n * sizeof(*ports));
    e->nlisted = n;
    run_for(e, REFRESH_MS);
    assert_true(e->registry_gets > gets);
}

/* List the first n fakes, in order. */
static void list_fakes(struct env *e, size_t n)
{
    int ports[FAKES];
    size_t i;

    for (i = 0; i < n; i++)
        ports[i] = e->fakes[i].port;
    list_ports(e, ports, n);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char url[64];
    size_t i;

    if (!e)
        return -1;
    *state = e;
    memset(outcomes, 0, sizeof(outcomes));
    vc_init(&e->vc, 1000000);
    vc_current = &e->vc;
    e->base = event_base_new();
    e->hc = e->base ? hc_client_new(e->base) : NULL;
    e->registry = e->base ? evhttp_new(e->base) : NULL;
    e->ups = up_new(vc_clock);
    if (!e->hc || !e->registry || !e->ups)
        return -1;
    evhttp_set_gencb(e->registry, registry_handle, e);
    e->registry_port = ts_evhttp_listen(e->registry, 0);
    if (e->registry_port < 0)
        return -1;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", e->registry_port);
    if (ru_parse(&e->urls, url, NULL, 0) != 0)
        return -1;
    for (i = 0; i < FAKES; i++) {
        struct fake *f = &e->fakes[i];

        f->http = evhttp_new(e->base);
        if (!f->http)
            return -1;
        evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        evhttp_set_gencb(f->http, fake_handle, f);
        f->port = ts_evhttp_listen(f->http, 0);
        if (f->port < 0)
            return -1;
        snprintf(f->key, sizeof(f->key), "127.0.0.1:%d", f->port);
    }
    e->disc = disc_new(e->base, e->hc, &e->urls, REFRESH_MS);
    if (!e->disc)
        return -1;
    disc_set_timers(e->disc, &e->vc.hook);
    if (disc_watch(e->disc, PM_SERVICE) != 0)
        return -1;
    settle(e); /* the first refresh: nothing listed yet */
    if (!disc_known(e->disc, PM_SERVICE) || e->vc.nlog < 1)
        return -1;
    e->disc_timer = e->vc.log[e->vc.nlog - 1].ev;
    make_rep(e, 2, DEADLINE_MS);
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    size_t i;

    if (!e)
        return 0;
    rep_free(e->rep);
    disc_free(e->disc);
    hc_client_free(e->hc);
    for (i = 0; i < FAKES; i++) {
        fake_release(&e->fakes[i]);
        if (e->fakes[i].http)
            evhttp_free(e->fakes[i].http);
    }
    if (e->registry)
        evhttp_free(e->registry);
    up_free(e->ups);
    if (e->base)
        event_base_free(e->base);
    free(e);
    return 0;
}

/* The uuid of message n (deterministic, canonical). */
static void uuid_of(unsigned n, char out[40])
{
    snprintf(out, 40, "%08x-0000-4000-8000-%012x", n * 2654435761u, n);
}

/* Store message n; its outcome lands in outcomes[n]. */
static void store(struct env *e, unsigned n)
{
    char uuid[40], msg[32];

    assert_true(n < MSGS_MAX);
    uuid_of(n, uuid);
    snprintf(msg, sizeof(msg), "message %u", n);
    assert_int_equal(
        rep_store(e->rep, uuid, msg, strlen(msg), 1700000000000LL + n, on_done, &outcomes[n]), 0);
    assert_int_equal(outcomes[n].calls, 0); /* never before rep_store returns */
}

/* The fakes' keys in listing order, for rank_of. */
static void fake_keys(struct env *e, const char *keys[FAKES])
{
    size_t i;

    for (i = 0; i < FAKES; i++)
        keys[i] = e->fakes[i].key;
}

/* ---- tests ---- */

/* The same uuid goes to the same top-2 instances by rendezvous rank,
 * whatever order the registry lists them in; a resend finds them again. */
static void test_placement_by_rendezvous_rank(void **state)
{
    struct env *e = *state;
    const char *keys[FAKES];
    int reversed[FAKES];
    size_t order[FAKES], i, k;
    int pairs_seen = 0, pair_mask = 0;
    unsigned n;

    fake_keys(e, keys);
    list_fakes(e, FAKES);
    for (n = 0; n < 20; n++)
        store(e, n);
    settle(e);
    for (n = 0; n < 20; n++) {
        char uuid[40];

        uuid_of(n, uuid);
        assert_int_equal(outcomes[n].calls, 1);
        assert_int_equal(outcomes[n].status, 200);
        assert_string_equal(outcomes[n].uuid, uuid);
        rv_rank(uuid, keys, FAKES, order);
        assert_int_equal(fake_count(&e->fakes[order[0]], uuid), 1);
        assert_int_equal(fake_count(&e->fakes[order[1]], uuid), 1);
        assert_int_equal(fake_count(&e->fakes[order[2]], uuid), 0);
        pair_mask |= 1 << (int)order[2];
    }
    for (k = 0; k < FAKES; k++)
        pairs_seen += (pair_mask >> k) & 1;
    assert_true(pairs_seen >= 2); /* the uuids spread over the instances */

    /* listed the other way round, the same uuids go to the same instances */
    for (i = 0; i < FAKES; i++)
        reversed[i] = e->fakes[FAKES - 1 - i].port;
    list_ports(e, reversed, FAKES);
    memset(outcomes, 0, sizeof(outcomes));
    for (n = 0; n < 20; n++)
        store(e, n);
    settle(e);
    for (n = 0; n < 20; n++) {
        char uuid[40];

        uuid_of(n, uuid);
        assert_int_equal(outcomes[n].status, 200); /* duplicates: stored already */
        rv_rank(uuid, keys, FAKES, order);
        assert_int_equal(fake_count(&e->fakes[order[0]], uuid), 2);
        assert_int_equal(fake_count(&e->fakes[order[1]], uuid), 2);
        assert_int_equal(fake_count(&e->fakes[order[2]], uuid), 0);
    }
    for (i = 0; i < FAKES; i++)
        assert_int_equal(e->fakes[i].bad_requests, 0);
    assert_int_equal(rep_pending(e->rep), 0);
}

/* A copy whose instance answers 503 moves to the next instance in rank
 * order, at once (no wait). */
static void test_failed_copy_moves_to_next_in_rank(void **state)
{
    struct env *e = *state;
    const char *keys[FAKES];
    size_t order[FAKES];
    char uuid[40];
    struct up_instance *u;

    fake_keys(e, keys);
    list_fakes(e, FAKES);
    uuid_of(7, uuid);
    rv_rank(uuid, keys, FAKES, order);
    e->fakes[order[0]].fail_status = 503;
    store(e, 7);
    settle(e);
    assert_int_equal(outcomes[7].calls, 1);
    assert_int_equal(outcomes[7].status, 200);
    assert_int_equal(fake_count(&e->fakes[order[0]], uuid), 1); /* tried once */
    assert_int_equal(e->fakes[order[0]].nstored, 0);
    assert_int_equal(fake_count(&e->fakes[order[1]], uuid), 1);
    assert_int_equal(fake_count(&e->fakes[order[2]], uuid), 1); /* the third in rank */
    assert_int_equal(e->fakes[order[2]].nstored, 1);
    assert_int_equal(outcomes[7].at, e->vc.now); /* no virtual time passed */
    u = up_get(e->ups, PM_SERVICE, "127.0.0.1", e->fakes[order[0]].port);
    assert_non_null(u);
    assert_int_equal(u->failed, 1);
    assert_int_equal(u->retries, 1);
    assert_int_equal(rep_retries(e->rep, REP_REASON_5XX), 1); /* /metrics: reason="5xx" */
    assert_int_equal(rep_retries(e->rep, REP_REASON_CONNECT), 0);
    assert_int_equal(rep_replicated(e->rep), 1);
    assert_int_equal(rep_copies(e->rep), 2);
}

/* A message of a trace: every copy's batch item carries its "trace", the
 * batch its traceparent (of that trace, with a span of its own); one
 * without a trace sends neither. */
static void test_trace_travels_with_the_copies(void **state)
{
    static const char trace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
    struct env *e = *state;
    const char *keys[FAKES];
    size_t order[FAKES], i;
    char uuid[40];

    fake_keys(e, keys);
    list_fakes(e, FAKES);
    uuid_of(3, uuid);
    rv_rank(uuid, keys, FAKES, order);
    assert_int_equal(
        rep_store_traced(e->rep, uuid, "traced", 6, 1700000000000LL, trace, on_done, &outcomes[3]),
        0);
    settle(e);
    assert_int_equal(outcomes[3].status, 200);
    for (i = 0; i < 2; i++) {
        const struct fake *f = &e->fakes[order[i]];

        assert_string_equal(f->trace, trace);
        assert_int_equal(strlen(f->traceparent), 55);
        assert_memory_equal(f->traceparent, "00-", 3);
        assert_memory_equal(f->traceparent + 3, trace, 32);
        assert_string_equal(f->traceparent + 52, "-01");
    }
    assert_string_not_equal(e->fakes[order[0]].traceparent, e->fakes[order[1]].traceparent);
    /* an invalid trace is no trace */
    uuid_of(4, uuid);
    rv_rank(uuid, keys, FAKES, order);
    assert_int_equal(rep_store_traced(e->rep, uuid, "untraced", 8, 1700000000000LL,
                                      "00000000000000000000000000000000", on_done, &outcomes[4]),
                     0);
    settle(e);
    assert_int_equal(outcomes[4].status, 200);
    assert_string_equal(e->fakes[order[0]].trace, "");
    assert_string_equal(e->fakes[order[0]].traceparent, "");
}

/* An instance that refuses connections (nothing listens on its port) is
 * left for the next one in rank order too. */
static void test_refused_instance_moves_on(void **state)
{
    struct env *e = *state;
    int ports[3];
    char keys_buf[3][64], uuid[40];
    const char *keys[3];
    size_t order[3], i;
    unsigned n = 0;
    int dead = ts_closed_port();

    assert_true(dead > 0);
    ports[0] = e->fakes[0].port;
    ports[1] = dead;
    ports[2] = e->fakes[1].port;
    for (i = 0; i < 3; i++) {
        snprintf(keys_buf[i], sizeof(keys_buf[i]), "127.0.0.1:%d", ports[i]);
        keys[i] = keys_buf[i];
    }
    /* a uuid whose top-2 holds the dead port */
    for (n = 0; n < MSGS_MAX; n++) {
        uuid_of(n, uuid);
        rv_rank(uuid, keys, 3, order);
        if (order[0] == 1 || order[1] == 1)
            break;
    }
    assert_true(n < MSGS_MAX);
    list_ports(e, ports, 3);
    store(e, n);
    settle(e);
    assert_int_equal(outcomes[n].calls, 1);
    assert_int_equal(outcomes[n].status, 200);
    assert_int_equal(fake_count(&e->fakes[0], uuid), 1);
    assert_int_equal(fake_count(&e->fakes[1], uuid), 1);
    assert_int_equal(up_get(e->ups, PM_SERVICE, "127.0.0.1", dead)->failed, 1);
    assert_int_equal(rep_retries(e->rep, REP_REASON_CONNECT), 1); /* reason="connect" */
}

/* No instance known: the message waits with backoff (ceilings 100, 200,
 * 400 ms), and succeeds once an instance appears, before its deadline. */
static void test_no_instance_waits_then_succeeds(void **state)
{
    struct env *e = *state;
    char uuid[40];
    int64_t start = e->vc.now;
    size_t first_log = e->vc.nlog, i;
    int64_t waits[8];
    size_t nwaits = 0;
    const struct event *deadline_ev = NULL;

    make_rep(e, 2, 10000);
    first_log = e->vc.nlog;
    store(e, 3);
    uuid_of(3, uuid);
    run_for(e, 250); /* waits of 100 and 200 ms armed; the second not due */
    assert_int_equal(outcomes[3].calls, 0);
    assert_int_equal(rep_pending(e->rep), 1);
    list_fakes(e, 1); /* now + 100: seen at the next refresh */
    run_for(e, 1000);
    assert_int_equal(outcomes[3].calls, 1);
    assert_int_equal(outcomes[3].status, 200);
    assert_int_equal(fake_count(&e->fakes[0], uuid), 1);
    /* stored at the first retry after discovery saw it: t = 100 + 200 +
     * 400 (the third wait began at 300, before the instance was seen) */
    assert_int_equal(outcomes[3].at - start, 700);
    /* the armings of the replicator: the deadline once, then the waits */
    for (i = first_log; i < e->vc.nlog && i < VC_LOG_MAX; i++) {
        const struct vc_arming *a = &e->vc.log[i];

        if (a->persistent || a->ev == e->disc_timer)
            continue; /* discovery's refresh */
        if (!deadline_ev) {
            deadline_ev = a->ev;
            assert_int_equal(a->ms, 10000);
            continue;
        }
        if (a->ev != deadline_ev && nwaits < 8)
            waits[nwaits++] = a->ms;
    }
    assert_int_equal(nwaits, 3);
    assert_int_equal(waits[0], 100);
    assert_int_equal(waits[1], 200);
    assert_int_equal(waits[2], 400);
    assert_int_equal(rep_pending(e->rep), 0);
}

/* Past the deadline the message answers 503 with its uuid, exactly once:
 * with no instance at all, and with an instance that hangs. */
static void test_deadline_answers_503(void **state)
{
    struct env *e = *state;
    char uuid[40];
    int64_t start = e->vc.now;

    /* no instance: backoff waits until no wait fits, then the deadline */
    store(e, 1);
    uuid_of(1, uuid);
    run_for(e, DEADLINE_MS - 1);
    assert_int_equal(outcomes[1].calls, 0);
    run_for(e, 1);
    assert_int_equal(outcomes[1].calls, 1);
    assert_int_equal(outcomes[1].status, 503);
    assert_int_equal(outcomes[1].at - start, DEADLINE_MS);
    assert_string_equal(outcomes[1].uuid, uuid);
    assert_non_null(strstr(outcomes[1].error, "within 1000 ms"));
    assert_non_null(strstr(outcomes[1].error, "no passing logging-service instance known"));

    /* a hung instance holds the copy in flight past the deadline */
    list_fakes(e, 1);
    e->fakes[0].hold = 1;
    start = e->vc.now;
    store(e, 2);
    uuid_of(2, uuid);
    settle(e);
    assert_int_equal(e->fakes[0].nheld, 1);
    run_for(e, DEADLINE_MS - 1);
    assert_int_equal(outcomes[2].calls, 0);
    run_for(e, 1);
    assert_int_equal(outcomes[2].calls, 1);
    assert_int_equal(outcomes[2].status, 503);
    assert_string_equal(outcomes[2].uuid, uuid);
    assert_int_equal(outcomes[2].at - start, DEADLINE_MS);
    assert_int_equal(rep_pending(e->rep), 0);
    /* the late answer changes nothing */
    fake_release(&e->fakes[0]);
    run_for(e, 100);
    assert_int_equal(outcomes[2].calls, 1);
    assert_int_equal(outcomes[2].status, 503);
    assert_int_equal(outcomes[1].calls, 1);
}

/* Copies queued in one loop turn leave as one POST per instance; while a
 * batch is in flight the copies that arrive wait and leave together as
 * the next batch. */
static void test_batching_one_batch_in_flight(void **state)
{
    struct env *e = *state;
    unsigned n;
    size_t i;

    list_fakes(e, 2);
    for (n = 0; n < 5; n++)
        store(e, n);
    assert_int_equal(e->fakes[0].posts + e->fakes[1].posts, 0); /* not before the turn ends */
    settle(e);
    for (i = 0; i < 2; i++) {
        assert_int_equal(e->fakes[i].posts, 1);
        assert_int_equal(e->fakes[i].items[0], 5);
    }
    for (n = 0; n < 5; n++)
        assert_int_equal(outcomes[n].status, 200);

    /* one batch in flight per instance */
    e->fakes[0].hold = e->fakes[1].hold = 1;
    store(e, 5);
    settle(e);
    assert_int_equal(e->fakes[0].posts, 2);
    assert_int_equal(e->fakes[1].posts, 2);
    store(e, 6);
    settle(e);
    store(e, 7);
    settle(e);
    assert_int_equal(e->fakes[0].posts, 2); /* 6 and 7 wait for the batch in flight */
    assert_int_equal(e->fakes[1].posts, 2);
    assert_int_equal(outcomes[5].calls + outcomes[6].calls + outcomes[7].calls, 0);
    fake_release(&e->fakes[0]);
    fake_release(&e->fakes[1]);
    settle(e);
    for (i = 0; i < 2; i++) {
        assert_int_equal(e->fakes[i].posts, 3);
        assert_int_equal(e->fakes[i].items[1], 1);
        assert_int_equal(e->fakes[i].items[2], 2); /* 6 and 7 together */
    }
    for (n = 5; n < 8; n++) {
        assert_int_equal(outcomes[n].calls, 1);
        assert_int_equal(outcomes[n].status, 200);
    }
}

/* An instance whose breaker is open is skipped without a network call. */
static void test_open_breaker_skipped_without_a_call(void **state)
{
    struct env *e = *state;
    const char *keys[FAKES];
    size_t order[FAKES];
    struct up_instance *u;
    char uuid[40];
    int i;

    fake_keys(e, keys);
    list_fakes(e, FAKES);
    uuid_of(9, uuid);
    rv_rank(uuid, keys, FAKES, order);
    u = up_get(e->ups, PM_SERVICE, "127.0.0.1", e->fakes[order[0]].port);
    assert_non_null(u);
    for (i = 0; i < BRK_CONSECUTIVE_DEFAULT; i++) {
        assert_true(up_allow(e->ups, u));
        up_record(e->ups, u, false, 1);
    }
    assert_true(up_is_open(e->ups, u));
    store(e, 9);
    settle(e);
    assert_int_equal(outcomes[9].status, 200);
    assert_int_equal(e->fakes[order[0]].posts, 0); /* no call at all */
    assert_int_equal(fake_count(&e->fakes[order[1]], uuid), 1);
    assert_int_equal(fake_count(&e->fakes[order[2]], uuid), 1);
    assert_int_equal(u->total, BRK_CONSECUTIVE_DEFAULT); /* nothing recorded since */
}

/* A conflict (409 for one item) answers 409 and is not retried; the other
 * items of the same batch are stored. */
static void test_conflict_refused_not_retried(void **state)
{
    struct env *e = *state;
    char uuid[40], other[40];
    size_t i;

    list_fakes(e, 2);
    uuid_of(4, uuid);
    uuid_of(5, other);
    snprintf(e->fakes[0].conflict, sizeof(e->fakes[0].conflict), "%s", uuid);
    snprintf(e->fakes[1].conflict, sizeof(e->fakes[1].conflict), "%s", uuid);
    store(e, 4);
    store(e, 5);
    settle(e);
    assert_int_equal(outcomes[4].calls, 1);
    assert_int_equal(outcomes[4].status, 409);
    assert_string_equal(outcomes[4].uuid, uuid);
    assert_non_null(strstr(outcomes[4].error, "different message"));
    assert_int_equal(outcomes[5].status, 200);
    run_for(e, 5000); /* long past any backoff: nothing is sent again */
    for (i = 0; i < 2; i++) {
        assert_int_equal(e->fakes[i].posts, 1);
        assert_int_equal(e->fakes[i].items[0], 2);
        assert_int_equal(fake_count(&e->fakes[i], uuid), 1);
        assert_int_equal(fake_count(&e->fakes[i], other), 1);
    }
    assert_int_equal(outcomes[4].calls, 1);
    assert_int_equal(rep_pending(e->rep), 0);
}

/* Finding 1 (the facade trusted batch answers by position): an instance
 * answering 200 with results for another uuid, "success":false around 201
 * results, or an odd status, stored nothing: its copy is a failed one, moved
 * to the next instance in rank order, and the instance's breaker is
 * charged. Before the fix the copy counted as stored and the third instance
 * never got it. */
static void test_untrue_batch_answer_is_a_failed_copy(void **state)
{
    struct env *e = *state;
    const char *keys[FAKES];
    static const int lies[] = {FAKE_LIE_UUID, FAKE_LIE_FAILURE, FAKE_LIE_STATUS};
    size_t order[FAKES], k;

    fake_keys(e, keys);
    list_fakes(e, FAKES);
    for (k = 0; k < sizeof(lies) / sizeof(lies[0]); k++) {
        unsigned n = 10 + (unsigned)k;
        char uuid[40];
        struct up_instance *liar;
        size_t i;

        for (i = 0; i < FAKES; i++)
            e->fakes[i].lie = 0;
        uuid_of(n, uuid);
        rv_rank(uuid, keys, FAKES, order);
        e->fakes[order[0]].lie = lies[k];
        liar = up_get(e->ups, PM_SERVICE, "127.0.0.1", e->fakes[order[0]].port);
        assert_non_null(liar);
        store(e, n);
        settle(e);
        assert_int_equal(outcomes[n].calls, 1);
        assert_int_equal(outcomes[n].status, 200);
        assert_int_equal(fake_count(&e->fakes[order[0]], uuid), 1);
        /* the copy the liar did not store went to the third in rank */
        assert_int_equal(fake_count(&e->fakes[order[1]], uuid), 1);
        assert_int_equal(fake_count(&e->fakes[order[2]], uuid), 1);
        assert_true(fake_has(e->fakes[order[2]].stored, e->fakes[order[2]].nstored, uuid));
        assert_int_equal(liar->failed, 1); /* one failure per liar: k differs per order */
        assert_int_equal(liar->retries, 1);
        /* reset the liar's counters for the next round's assertions */
        liar->failed = 0;
        liar->retries = 0;
    }
    assert_int_equal(rep_pending(e->rep), 0);
}

/* Two distinct loopback ports where nothing listens. */
static void two_closed_ports(int dead[2])
{
    int tries = 0;

    dead[0] = ts_closed_port();
    do {
        dead[1] = ts_closed_port();
    } while (dead[1] == dead[0] && ++tries < 100);
    assert_true(dead[0] > 0 && dead[1] > 0 && dead[0] != dead[1]);
}

/* Finding 2 (with 2 of 3 instances killed the first POSTs waited the full
 * deadline and answered 503 "no instance stored it" although one had):
 * with 3 listed and 2 refusing, every message answers 200 at once (no
 * virtual time passes, far before the 10 s deadline) with 1 copy, and is
 * counted as under-replicated. Before the fix each one waited out its
 * deadline. */
static void test_refused_instances_not_waited_for(void **state)
{
    struct env *e = *state;
    int ports[3], dead[2];
    int64_t start;
    unsigned n;

    make_rep(e, 2, 10000);
    two_closed_ports(dead);
    ports[0] = dead[0];
    ports[1] = e->fakes[0].port;
    ports[2] = dead[1];
    list_ports(e, ports, 3);
    start = e->vc.now;
    for (n = 0; n < 8; n++)
        store(e, n);
    settle(e);
    for (n = 0; n < 8; n++) {
        char uuid[40];

        uuid_of(n, uuid);
        assert_int_equal(outcomes[n].calls, 1);
        assert_int_equal(outcomes[n].status, 200);
        assert_int_equal(outcomes[n].copies, 1);
        assert_int_equal(outcomes[n].at, start);
        assert_int_equal(fake_count(&e->fakes[0], uuid), 1);
    }
    assert_int_equal(rep_under_replicated(e->rep), 8);
    assert_int_equal(rep_pending(e->rep), 0);

    /* one message a round: each charges both refusing breakers, which
     * open after BRK_CONSECUTIVE_DEFAULT rounds; then they are skipped,
     * not waited for, and still not counted as owed a copy */
    for (n = 0; n < BRK_CONSECUTIVE_DEFAULT + 2; n++) {
        store(e, 10 + n);
        settle(e);
        assert_int_equal(outcomes[10 + n].calls, 1);
        assert_int_equal(outcomes[10 + n].status, 200);
        assert_int_equal(outcomes[10 + n].copies, 1);
        assert_int_equal(outcomes[10 + n].at, start);
    }
    assert_true(up_is_open(e->ups, up_get(e->ups, PM_SERVICE, "127.0.0.1", dead[0])));
    assert_true(up_is_open(e->ups, up_get(e->ups, PM_SERVICE, "127.0.0.1", dead[1])));
    assert_int_equal(rep_under_replicated(e->rep), 8 + BRK_CONSECUTIVE_DEFAULT + 2);
}

/* Finding 2: a copy made and the other one held by a hung instance (not
 * refused: it is still owed a copy) answers 503 at the deadline saying
 * how many copies were made; a full success says replicas 2. */
static void test_503_says_how_many_copies(void **state)
{
    struct env *e = *state;

    list_fakes(e, 2);
    store(e, 1);
    settle(e);
    assert_int_equal(outcomes[1].status, 200);
    assert_int_equal(outcomes[1].copies, 2);
    e->fakes[1].hold = 1;
    store(e, 2);
    run_for(e, DEADLINE_MS);
    assert_int_equal(outcomes[2].calls, 1);
    assert_int_equal(outcomes[2].status, 503);
    assert_int_equal(outcomes[2].copies, 1);
    assert_non_null(strstr(outcomes[2].error, "stored on 1 of 2 logging-service instances"));
    assert_int_equal(rep_under_replicated(e->rep), 1);
    fake_release(&e->fakes[1]);
    settle(e);
}

/* stderr into a temporary file while a test runs, to read the log lines. */
struct capture {
    FILE *tmp;
    int saved;
    char text[16384];
};

static void capture_begin(struct capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    cap->tmp = tmpfile();
    assert_non_null(cap->tmp);
    cap->saved = dup(STDERR_FILENO);
    assert_true(cap->saved >= 0);
    assert_true(dup2(fileno(cap->tmp), STDERR_FILENO) >= 0);
}

/* Stop capturing; cap->text holds what was written (cut to fit). */
static void capture_end(struct capture *cap)
{
    size_t n;

    assert_true(dup2(cap->saved, STDERR_FILENO) >= 0);
    close(cap->saved);
    rewind(cap->tmp);
    n = fread(cap->text, 1, sizeof(cap->text) - 1, cap->tmp);
    cap->text[n] = '\0';
    fclose(cap->tmp);
}

/* Finding 3 (one frozen instance of three cut POST throughput to a few per
 * second: copies queued behind its stuck batch and kept going to it): once
 * a batch has been out REP_LANE_STUCK_MS, the copies in it and queued
 * behind it move to the next instance in rank order, and new copies pass
 * the stuck instance by, so every message answers 200 with 2 copies at
 * REP_LANE_STUCK_MS at the latest, not at the call's timeout or the
 * deadline; the retry line names the frozen instance, not the one the copy
 * moved to. Before the fix nothing answered until the frozen batch ended. */
static void test_stuck_instance_passed_by(void **state)
{
    struct env *e = *state;
    const char *keys[FAKES];
    size_t order[FAKES];
    struct fake *frozen;
    struct capture cap;
    char uuid[40], line[256];
    unsigned picks[4], npicks = 0, first, second, late, again, n;
    int64_t start;

    make_rep(e, 2, 10000);
    fake_keys(e, keys);
    list_fakes(e, FAKES);
    frozen = &e->fakes[0];
    /* four uuids with the frozen instance in their top 2 */
    for (n = 0; n < MSGS_MAX && npicks < 4; n++) {
        uuid_of(n, uuid);
        rv_rank(uuid, keys, FAKES, order);
        if (order[0] == 0 || order[1] == 0)
            picks[npicks++] = n;
    }
    assert_int_equal(npicks, 4);
    first = picks[0];
    second = picks[1];
    late = picks[2];
    again = picks[3];
    frozen->hold = 1;
    start = e->vc.now;
    capture_begin(&cap);
    store(e, first);
    settle(e); /* its batch is held at the frozen instance */
    assert_int_equal(frozen->posts, 1);
    store(e, second); /* queued behind the held batch */
    settle(e);
    assert_int_equal(frozen->posts, 1);
    run_for(e, REP_LANE_STUCK_MS - 1);
    assert_int_equal(outcomes[first].calls + outcomes[second].calls, 0);
    run_for(e, 1);
    /* both moved on at REP_LANE_STUCK_MS */
    assert_int_equal(outcomes[first].calls, 1);
    assert_int_equal(outcomes[first].status, 200);
    assert_int_equal(outcomes[first].copies, 2);
    assert_int_equal(outcomes[first].at - start, REP_LANE_STUCK_MS);
    assert_int_equal(outcomes[second].status, 200);
    assert_int_equal(outcomes[second].copies, 2);
    assert_int_equal(outcomes[second].at - start, REP_LANE_STUCK_MS);
    /* a new copy passes the stuck instance by, at once */
    store(e, late);
    settle(e);
    capture_end(&cap);
    assert_int_equal(outcomes[late].status, 200);
    assert_int_equal(outcomes[late].copies, 2);
    assert_int_equal(outcomes[late].at, e->vc.now);
    assert_int_equal(frozen->posts, 1); /* nothing more went to it */
    uuid_of(second, uuid);
    assert_int_equal(fake_count(frozen, uuid), 0);
    for (n = 1; n < FAKES; n++) {
        uuid_of(first, uuid);
        assert_int_equal(fake_count(&e->fakes[n], uuid), 1);
        uuid_of(late, uuid);
        assert_int_equal(fake_count(&e->fakes[n], uuid), 1);
    }
    /* the retry line names the instance that failed, then where it went */
    snprintf(line, sizeof(line),
             "retrying POST logging-service %s (attempt 1) in 0 ms: ", frozen->key);
    assert_non_null(strstr(cap.text, line));
    assert_non_null(strstr(cap.text, "copy moved to 127.0.0.1:"));
    /* the frozen answer, late, still adds nothing wrong */
    fake_release(frozen);
    settle(e);
    assert_int_equal(outcomes[first].calls, 1);
    assert_int_equal(rep_pending(e->rep), 0);
    /* unstuck after its batch ended: it takes copies again */
    store(e, again);
    settle(e);
    assert_int_equal(outcomes[again].status, 200);
    assert_int_equal(outcomes[again].copies, 2);
    assert_int_equal(frozen->posts, 2);
    uuid_of(again, uuid);
    assert_int_equal(fake_count(frozen, uuid), 1);
    assert_int_equal(rep_pending(e->rep), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_placement_by_rendezvous_rank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_copy_moves_to_next_in_rank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_travels_with_the_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_instance_moves_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_instance_waits_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_answers_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching_one_batch_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_breaker_skipped_without_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_refused_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrue_batch_answer_is_a_failed_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_instances_not_waited_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_says_how_many_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_instance_passed_by, setup, teardown),
    };

    log_init("test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
