/* test_register.c: unit tests for the registry side of a service:
 * common/regclient/register.c (self-registration), discovery.c (the cache of
 * passing instances) and common/peer.c (wiring into the service's life
 * cycle). They share one fake registry, which is why they live in one
 * binary.
 *
 * Each test gets a fresh event_base with a fake registry (evhttp on
 * 127.0.0.1, ephemeral port) and an hc_client on the same base, so clients
 * and fake run in one loop. The fake records every call and can be told to
 * answer 503 to everything, to forget every registration (so renewals get
 * 404), to be absent (its port closed) and to come back on the same port,
 * or to answer GET late.
 *
 * Time is virtual: the clients (and the fake's late answers) arm their
 * timers through a clk_timers hook that records (event, delay) instead of
 * adding them to libevent. The I/O with the fake is real; settle() runs
 * the loop until every call in flight is answered (or parked at the fake),
 * and advancing the virtual clock fires, in order, each recorded timer
 * that falls due, settling after each. So a test asserts the exact delays
 * armed (renewal at ttl/3, backoff within its ceiling, refresh period) and
 * runs an outage of hundreds of attempts without waiting for any of them.
 * Only the peer tests, which run the service's own loop and clock, use real
 * time, for I/O alone. Every loop run is bounded by a real safety timer: a
 * broken client fails the test instead of hanging it.
 *
 * Fake routes:
 *   POST   /v1/services              record; 201 new id, 200 known id
 *   PUT    /v1/services/{id}/renew   200 known, 404 unknown
 *   DELETE /v1/services/{id}         200 known (forgotten), 404 unknown
 *   GET    /v1/services?...          200 with fake.list (or get_status)
 *   PUT    /v1/services/{id}/maintenance  record; 200 known, 404 unknown,
 *                                    or held unanswered (maint_hold)
 * With require_token set, a call without that X-Registry-Token gets 403.
 * Log lines are captured (stderr redirected to a file) where a test checks
 * what was logged; they are written back to stderr afterwards. */
#include <setjmp.h>
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
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "codec/uid.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "http/service.h"
#include "regclient/discovery.h"
#include "regclient/peer.h"
#include "regclient/register.h"
#include "regclient/urls.h"
#include "resilience/backoff.h"
#include "support.h"
#include "vclock.h"

#define SAFETY_MS       5000   /* no single loop run may take longer */
#define POLL_MS         5      /* how often run_base_until checks its condition */
#define VC_FIRES_MAX    100000 /* timers one advance may fire (a runaway fails) */
#define FAKE_IDS_MAX    32     /* registrations the fake remembers */
#define FAKE_BODY_MAX   4096   /* bytes of a request body kept */
#define FAKE_LIST_MAX   8192   /* GET answer */
#define LOG_CAPTURE_MAX 65536  /* captured log bytes kept */
#define NAME            "test-svc"

struct fake;

/* A GET the fake answers later (get_delay_ms). */
struct slow_get {
    struct fake *f;
    struct evhttp_request *req; /* replied to exactly once, or abandoned */
    struct event *timer;
    struct slow_get *next;
};

/* The fake registry. */
struct fake {
    struct event_base *base;         /* borrowed */
    const struct clk_timers *timers; /* borrowed; the late answers' clock */
    struct evhttp *http;             /* NULL while absent */
    int port;
    int posts, renews, deletes, gets; /* calls received */
    int fail_503;                     /* answer 503 to everything */
    int get_status;                   /* status of GET answers (200) */
    int get_delay_ms;                 /* answer GET this late (0: at once) */
    int gets_pending, gets_pending_max;
    char ids[FAKE_IDS_MAX][LIM_ID_MAX + 1]; /* registered ids */
    size_t nids;
    char post_body[FAKE_BODY_MAX];    /* last POST body */
    char post_ids[8][LIM_ID_MAX + 1]; /* ids of the first POSTs */
    char renew_id[LIM_ID_MAX + 1];    /* last renewed id */
    int renew_wrong;                  /* renewals of an id never POSTed */
    char delete_id[LIM_ID_MAX + 1];
    char get_uri[512];        /* last GET's URI */
    char list[FAKE_LIST_MAX]; /* GET answer body */
    char get_index[24];       /* non-empty: the X-Registry-Index of GET answers */
    struct slow_get *slow;
    char require_token[64]; /* non-empty: other X-Registry-Token values get 403 */
    int denied;             /* calls answered 403 */
    int maints;             /* maintenance PUTs received */
    char maint_id[LIM_ID_MAX + 1];
    char maint_body[FAKE_BODY_MAX];    /* last maintenance body */
    char maint_token[64];              /* its X-Registry-Token ("" for none) */
    int maint_hold;                    /* hold maintenance PUTs unanswered */
    struct evhttp_request *maint_held; /* the one held; answered at fake_close */
    int renew_hold;                    /* hold renewals unanswered */
    struct evhttp_request *renew_held; /* the last one held; answered at fake_close */
    char calls[64];                    /* order of calls: P post, R renew, M maint, D delete */
};

struct fixture {
    struct event_base *base;
    struct vclock vc;
    struct fake fake;
    struct hc_client *hc;
    struct ru_list urls;
    struct rc_client *rc;
    struct disc_client *disc;
    int timed_out;
    char url[128];
};

/* ---- log capture (tests/unit/support) ---- */

/* Send stderr (our log) to a temporary file until capture_end. */
static void capture_begin(void) { assert_int_equal(ts_capture_begin(), 0); }

/* Restore stderr and copy what was logged into buf (cap bytes). */
static void capture_end(char *buf, size_t cap) { ts_capture_end(buf, cap); }

#define count_of ts_count_of

/* ---- the fake registry ---- */

/* Index of id among the registered ids, or -1. */
static int fake_known(const struct fake *f, const char *id)
{
    size_t i = 0;

    for (i = 0; i < f->nids; i++) {
        if (strcmp(f->ids[i], id) == 0)
            return (int)i;
    }
    return -1;
}

/* Reply status with a JSON body (copied). */
static void fake_reply(struct evhttp_request *req, int status, const char *json)
{
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(out, json, strlen(json));
    evhttp_send_reply(req, status, status < 300 ? "OK" : "Error", out);
    evbuffer_free(out);
}

/* POST /v1/services: record the body and the id; 201 new, 200 known, 400
 * without an id. */
static void fake_post(struct fake *f, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_t *doc = NULL;
    const char *id = NULL;
    char answer[512];

    if (len >= sizeof(f->post_body))
        len = sizeof(f->post_body) - 1;
    evbuffer_copyout(in, f->post_body, len);
    f->post_body[len] = '\0';
    doc = json_loads(f->post_body, 0, NULL);
    id = json_string_value(json_object_get(doc, "id"));
    if (id == NULL || strlen(id) > LIM_ID_MAX) {
        fake_reply(req, 400, "{\"success\":false,\"error\":\"no id\"}");
        goto cleanup;
    }
    if (f->posts < 8)
        snprintf(f->post_ids[f->posts], sizeof(f->post_ids[0]), "%s", id);
    f->posts++;
    snprintf(answer, sizeof(answer), "{\"success\":true,\"service_id\":\"%s\"}", id);
    if (fake_known(f, id) >= 0) {
        fake_reply(req, 200, answer);
        goto cleanup;
    }
    if (f->nids < FAKE_IDS_MAX)
        snprintf(f->ids[f->nids++], sizeof(f->ids[0]), "%s", id);
    fake_reply(req, 201, answer);
cleanup:
    json_decref(doc);
}

/* Copy the {id} of path after prefix (up to suffix) into out. */
static void fake_path_id(const char *path, const char *suffix, char *out, size_t cap)
{
    const char *id = path + strlen("/v1/services/");
    size_t n = strlen(id) - strlen(suffix);

    if (n >= cap)
        n = cap - 1;
    memcpy(out, id, n);
    out[n] = '\0';
}

/* PUT /v1/services/{id}/renew: 200 known, 404 unknown; counts renewals of
 * ids never POSTed. */
static void fake_renew(struct fake *f, struct evhttp_request *req, const char *path)
{
    int i = 0;
    int ever = 0;

    f->renews++;
    fake_path_id(path, "/renew", f->renew_id, sizeof(f->renew_id));
    for (i = 0; i < f->posts && i < 8; i++)
        ever |= strcmp(f->post_ids[i], f->renew_id) == 0;
    if (!ever)
        f->renew_wrong++;
    if (f->renew_hold) {
        if (f->renew_held != NULL)
            fake_reply(f->renew_held, 503, "{\"success\":false,\"error\":\"held\"}");
        f->renew_held = req;
        return;
    }
    if (fake_known(f, f->renew_id) < 0) {
        fake_reply(req, 404, "{\"success\":false,\"error\":\"unknown id\"}");
        return;
    }
    fake_reply(req, 200, "{\"success\":true}");
}

/* DELETE /v1/services/{id}: forget it (200), or 404 when unknown. */
static void fake_delete(struct fake *f, struct evhttp_request *req, const char *path)
{
    int i = 0;

    f->deletes++;
    fake_path_id(path, "", f->delete_id, sizeof(f->delete_id));
    i = fake_known(f, f->delete_id);
    if (i < 0) {
        fake_reply(req, 404, "{\"success\":false,\"error\":\"unknown id\"}");
        return;
    }
    f->nids--;
    memmove(f->ids[i], f->ids[f->nids], sizeof(f->ids[0]));
    fake_reply(req, 200, "{\"success\":true}");
}

/* Note call kind c in the fake's call order (as long as there is room). */
static void fake_note(struct fake *f, char c)
{
    size_t n = strlen(f->calls);

    if (n + 1 < sizeof(f->calls)) {
        f->calls[n] = c;
        f->calls[n + 1] = '\0';
    }
}

/* PUT /v1/services/{id}/maintenance: record the body and the token; 200
 * with an instance for a known id, 404 unknown, or no answer (maint_hold). */
static void fake_maintenance(struct fake *f, struct evhttp_request *req, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const char *tok = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Registry-Token");
    size_t len = evbuffer_get_length(in);
    char answer[512];

    f->maints++;
    fake_path_id(path, "/maintenance", f->maint_id, sizeof(f->maint_id));
    if (len >= sizeof(f->maint_body))
        len = sizeof(f->maint_body) - 1;
    evbuffer_copyout(in, f->maint_body, len);
    f->maint_body[len] = '\0';
    snprintf(f->maint_token, sizeof(f->maint_token), "%s", tok != NULL ? tok : "");
    if (f->maint_hold) {
        f->maint_held = req;
        return;
    }
    if (fake_known(f, f->maint_id) < 0) {
        fake_reply(req, 404, "{\"success\":false,\"error\":\"unknown id\"}");
        return;
    }
    snprintf(answer, sizeof(answer),
             "{\"success\":true,\"service\":{\"id\":\"%s\",\"health\":\"critical\"}}", f->maint_id);
    fake_reply(req, 200, answer);
}

/* Unlink g from the pending list and free it. */
static void fake_slow_forget(struct slow_get *g)
{
    struct slow_get **p = &g->f->slow;

    while (*p != g)
        p = &(*p)->next;
    *p = g->next;
    clk_timers_disarm(g->f->timers, g->timer);
    event_free(g->timer);
    free(g);
}

/* Answer a GET with fake.list (and get_index when set). */
static void fake_reply_get(struct fake *f, struct evhttp_request *req)
{
    if (f->get_index[0])
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Registry-Index", f->get_index);
    fake_reply(req, f->get_status, f->list);
}

/* A held-back GET falls due: answer it now. */
static void fake_slow_fire(evutil_socket_t fd, short what, void *arg)
{
    struct slow_get *g = arg;

    (void)fd;
    (void)what;
    g->f->gets_pending--;
    fake_reply_get(g->f, g->req);
    fake_slow_forget(g);
}

/* GET /v1/services: answer fake.list at once, or hold the request back
 * get_delay_ms on the fake's timers. */
static void fake_get(struct fake *f, struct evhttp_request *req)
{
    struct slow_get *g = NULL;

    f->gets++;
    snprintf(f->get_uri, sizeof(f->get_uri), "%s", evhttp_request_get_uri(req));
    if (f->get_delay_ms <= 0) {
        fake_reply_get(f, req);
        return;
    }
    g = calloc(1, sizeof(*g));
    assert_non_null(g);
    g->f = f;
    g->req = req;
    g->timer = evtimer_new(f->base, fake_slow_fire, g);
    assert_non_null(g->timer);
    g->next = f->slow;
    f->slow = g;
    f->gets_pending++;
    if (f->gets_pending > f->gets_pending_max)
        f->gets_pending_max = f->gets_pending;
    assert_int_equal(clk_timers_arm(f->timers, g->timer, f->get_delay_ms), 0);
}

/* The fake's one callback: route by method and path. */
static void fake_dispatch(struct evhttp_request *req, void *arg)
{
    struct fake *f = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    size_t len = 0;

    if (path == NULL)
        path = "";
    len = strlen(path);
    if (f->require_token[0] != '\0') {
        const char *tok =
            evhttp_find_header(evhttp_request_get_input_headers(req), "X-Registry-Token");

        if (tok == NULL || strcmp(tok, f->require_token) != 0) {
            f->denied++;
            fake_reply(req, 403,
                       "{\"success\":false,\"error\":\"permission denied: unknown "
                       "token\"}");
            return;
        }
    }
    if (f->fail_503) {
        /* GETs are counted even then: discovery tests look at attempts */
        if (cmd == EVHTTP_REQ_GET)
            f->gets++;
        fake_reply(req, 503, "{\"success\":false,\"error\":\"overloaded\"}");
    } else if (cmd == EVHTTP_REQ_POST && strcmp(path, "/v1/services") == 0) {
        fake_note(f, 'P');
        fake_post(f, req);
    } else if (cmd == EVHTTP_REQ_PUT && strncmp(path, "/v1/services/", 13) == 0 && len > 25 &&
               strcmp(path + len - 12, "/maintenance") == 0) {
        fake_note(f, 'M');
        fake_maintenance(f, req, path);
    } else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/v1/services") == 0) {
        fake_get(f, req);
    } else if (cmd == EVHTTP_REQ_PUT && strncmp(path, "/v1/services/", 13) == 0 && len > 19 &&
               strcmp(path + len - 6, "/renew") == 0) {
        fake_note(f, 'R');
        fake_renew(f, req, path);
    } else if (cmd == EVHTTP_REQ_DELETE && strncmp(path, "/v1/services/", 13) == 0) {
        fake_note(f, 'D');
        fake_delete(f, req, path);
    } else {
        fake_reply(req, 404, "{\"success\":false,\"error\":\"no route\"}");
    }
}

/* Listen on port (0: ephemeral) and remember the real one. 0 or -1. */
static int fake_listen(struct fake *f, int port)
{
    f->http = evhttp_new(f->base);
    if (f->http == NULL)
        return -1;
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_gencb(f->http, fake_dispatch, f);
    f->port = ts_evhttp_listen(f->http, port);
    return f->port < 0 ? -1 : 0;
}

/* Close the fake's port (connections are refused from now on). Pending
 * slow GETs are answered 503 first: a request whose client left is only
 * freed by its reply. */
static void fake_close(struct fake *f)
{
    while (f->slow != NULL) {
        fake_reply(f->slow->req, 503, "{\"success\":false,\"error\":\"closing\"}");
        fake_slow_forget(f->slow);
    }
    f->gets_pending = 0;
    if (f->maint_held != NULL)
        fake_reply(f->maint_held, 503, "{\"success\":false,\"error\":\"closing\"}");
    f->maint_held = NULL;
    if (f->renew_held != NULL)
        fake_reply(f->renew_held, 503, "{\"success\":false,\"error\":\"closing\"}");
    f->renew_held = NULL;
    if (f->http != NULL)
        evhttp_free(f->http);
    f->http = NULL;
}

/* Start a fake on base whose late answers run on timers (borrowed; NULL:
 * the real clock); 0 or -1. */
static int fake_start(struct fake *f, struct event_base *base, const struct clk_timers *timers)
{
    memset(f, 0, sizeof(*f));
    f->base = base;
    f->timers = timers;
    f->get_status = 200;
    snprintf(f->list, sizeof(f->list), "{\"success\":true,\"services\":[]}");
    return fake_listen(f, 0);
}

/* ---- loop control ---- */

typedef int (*cond_fn)(struct fixture *fx);

/* Real-time safety timer: give up the loop run. */
static void safety_fire(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;

    (void)fd;
    (void)what;
    fx->timed_out = 1;
}

/* Run the loop until the I/O has settled: every call in flight answered,
 * except the GETs the fake holds back on purpose (they wait for virtual
 * time). No virtual time passes. Fails the test after SAFETY_MS of real
 * time. */
static void settle(struct fixture *fx)
{
    struct timeval tv = {SAFETY_MS / 1000, (SAFETY_MS % 1000) * 1000};
    struct event *safety = evtimer_new(fx->base, safety_fire, fx);

    assert_non_null(safety);
    fx->timed_out = 0;
    evtimer_add(safety, &tv);
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    while (!fx->timed_out && hc_inflight(fx->hc) > (size_t)fx->fake.gets_pending)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    event_free(safety);
    assert_false(fx->timed_out);
}

/* Fire the timer next due by until on the virtual clock (see
 * vc_fire_next), followed by its I/O. Returns 1 when one fired, 0 when
 * none is due by until. */
static int fire_next(struct fixture *fx, int64_t until)
{
    if (!vc_fire_next(&fx->vc, until))
        return 0;
    settle(fx);
    return 1;
}

/* Let ms of virtual time pass, firing every timer due by then in order,
 * until cond(fx) holds (cond NULL: all of ms). The clock stays where cond
 * first held, so a test can assert when that was. Returns 1 when cond
 * held, 0 when ms passed without it. */
static int run_until(struct fixture *fx, cond_fn cond, int64_t ms)
{
    int64_t until = fx->vc.now + ms;
    int fires = 0;

    settle(fx);
    for (;;) {
        if (cond != NULL && cond(fx))
            return 1;
        if (!fire_next(fx, until))
            break;
        assert_true(++fires <= VC_FIRES_MAX);
    }
    fx->vc.now = until;
    /* nothing armed behind the hook's back (it would wait in real time) */
    assert_int_equal(vc_check_virtual(&fx->vc), 0);
    return 0;
}

/* Let ms of virtual time pass. */
static void run_for(struct fixture *fx, int64_t ms) { (void)run_until(fx, NULL, ms); }

/* Run base in real time until cond(fx) holds or ms pass (cond NULL: run
 * ms), for the peer tests, whose clients run on the service's own loop and
 * clock. Returns 1 when cond held, 0 on timeout. */
static int run_base_until(struct fixture *fx, struct event_base *base, cond_fn cond, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct timeval poll = {0, POLL_MS * 1000};
    struct event *safety = evtimer_new(base, safety_fire, fx);
    int held = 0;

    assert_non_null(safety);
    fx->timed_out = 0;
    evtimer_add(safety, &tv);
    for (;;) {
        if (cond != NULL && cond(fx)) {
            held = 1;
            break;
        }
        if (fx->timed_out)
            break;
        /* one poll interval at most, so cond is looked at often */
        event_base_loopexit(base, &poll);
        event_base_dispatch(base);
    }
    event_free(safety);
    return held;
}

/* ---- fixture ---- */

/* A fresh base, virtual clock, fake registry, HTTP client and URL list. */
static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    *state = fx;
    vc_init(&fx->vc, 0);
    fx->base = event_base_new();
    if (fx->base == NULL || fake_start(&fx->fake, fx->base, &fx->vc.hook) != 0)
        return -1;
    fx->hc = hc_client_new(fx->base);
    if (fx->hc == NULL)
        return -1;
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d", fx->fake.port);
    if (ru_parse(&fx->urls, fx->url, NULL, 0) != 0)
        return -1;
    return 0;
}

/* Free in reverse order; the clients disarm their timers on the way. */
static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (fx == NULL)
        return 0;
    {
        /* a capture an assertion left running ends here (a no-op otherwise) */
        char *buf = malloc(LOG_CAPTURE_MAX);

        if (buf != NULL)
            capture_end(buf, LOG_CAPTURE_MAX);
        free(buf);
    }
    disc_free(fx->disc);
    rc_free(fx->rc);
    hc_client_free(fx->hc);
    fake_close(&fx->fake);
    if (fx->base != NULL)
        event_base_free(fx->base);
    free(fx);
    return 0;
}

/* Create fx->rc with ttl_s, the fixture's URL list and virtual clock. */
static void make_rc(struct fixture *fx, int ttl_s)
{
    struct rc_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.name = NAME;
    opt.host = "10.1.2.3";
    opt.port = 5001;
    opt.ttl_s = ttl_s;
    opt.timers = &fx->vc.hook;
    fx->rc = rc_new(fx->base, fx->hc, &fx->urls, &opt);
    assert_non_null(fx->rc);
}

/* Create fx->rc like make_rc with the checks check (interval and timeout
 * in ms, for RC_CHECK_HTTP) and token (NULL: none). */
static void make_rc_check(struct fixture *fx, enum rc_check check, int64_t interval_ms,
                          int64_t timeout_ms, const char *token)
{
    struct rc_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.name = NAME;
    opt.host = "10.1.2.3";
    opt.port = 5001;
    opt.ttl_s = 10;
    opt.check = check;
    opt.check_interval_ms = interval_ms;
    opt.check_timeout_ms = timeout_ms;
    opt.token = token;
    opt.timers = &fx->vc.hook;
    fx->rc = rc_new(fx->base, fx->hc, &fx->urls, &opt);
    assert_non_null(fx->rc);
}

/* Point the URL list at a closed port first and the fake second. */
static void urls_closed_then_fake(struct fixture *fx)
{
    char spec[256];
    int dead = ts_closed_port();

    assert_true(dead > 0);
    snprintf(spec, sizeof(spec), "http://127.0.0.1:%d, %s", dead, fx->url);
    assert_int_equal(ru_parse(&fx->urls, spec, NULL, 0), 0);
}

/* The registration client's one timer: in the register tests it is the
 * only thing that arms one, so every arming logged is it. Checks that and
 * returns it (NULL when nothing was armed yet). */
static const struct event *rc_timer(const struct fixture *fx)
{
    size_t i = 0;

    if (fx->vc.nlog == 0)
        return NULL;
    for (i = 1; i < fx->vc.nlog && i < VC_LOG_MAX; i++)
        assert_ptr_equal(fx->vc.log[i].ev, fx->vc.log[0].ev);
    return fx->vc.log[0].ev;
}

/* Check that the backoff delays armed in log entries from..to-1 (each one
 * the retry after the k-th consecutive failure, k from 0) are within their
 * full-jitter bounds [0, min(cap, base * 2^k)] (bo_delay_ms draws the
 * upper bound inclusive). */
static void assert_backoff(const struct fixture *fx, size_t from, size_t to)
{
    size_t k = 0;

    assert_true(to <= VC_LOG_MAX);
    for (k = 0; from + k < to; k++) {
        int64_t ceiling = k >= 5 ? BO_CAP_MS_DEFAULT : (int64_t)BO_BASE_MS_DEFAULT << k;

        assert_true(fx->vc.log[from + k].ms >= 0);
        assert_true(fx->vc.log[from + k].ms <= ceiling);
    }
}

static int is_registered(struct fixture *fx) { return rc_registered(fx->rc); }
static int two_posts(struct fixture *fx) { return fx->fake.posts >= 2; }
static int rc_idle(struct fixture *fx) { return rc_busy(fx->rc) == 0; }
static int three_renews(struct fixture *fx) { return fx->fake.renews >= 3; }
static int two_renews(struct fixture *fx) { return fx->fake.renews >= 2; }

/* ---- regclient ---- */

static void test_registers_with_its_id(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL;
    const char *id = NULL;

    make_rc(fx, 10);
    id = rc_id(fx->rc);
    assert_true(strncmp(id, NAME "-", strlen(NAME) + 1) == 0);
    assert_true(uid_is_valid(id + strlen(NAME) + 1));
    assert_false(rc_registered(fx->rc));
    assert_int_equal(rc_busy(fx->rc), 0);
    rc_start(fx->rc);
    assert_int_equal(rc_busy(fx->rc), 1);
    rc_start(fx->rc); /* a second start does nothing */
    settle(fx);
    assert_true(rc_registered(fx->rc));
    assert_int_equal(fx->fake.posts, 1);
    assert_int_equal(rc_busy(fx->rc), 0);
    /* the renewal is armed at once, a third of the 10 s ttl away */
    assert_int_equal(fx->vc.nlog, 1);
    assert_int_equal(fx->vc.log[0].at, 0);
    assert_int_equal(fx->vc.log[0].ms, 3333);
    body = json_loads(fx->fake.post_body, 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "id")), id);
    assert_string_equal(json_string_value(json_object_get(body, "name")), NAME);
    assert_string_equal(json_string_value(json_object_get(body, "type")), NAME);
    assert_string_equal(json_string_value(json_object_get(body, "host")), "10.1.2.3");
    assert_int_equal(json_integer_value(json_object_get(body, "port")), 5001);
    assert_int_equal(json_integer_value(json_object_get(body, "ttl")), 10);
    json_decref(body);
}

static void test_renews_every_third_of_ttl(void **state)
{
    struct fixture *fx = *state;
    size_t i = 0;

    make_rc(fx, 1); /* renew every 333 ms */
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    run_for(fx, 332);
    assert_int_equal(fx->fake.renews, 0); /* not a millisecond early */
    run_for(fx, 1);
    assert_int_equal(fx->fake.renews, 1);
    assert_true(run_until(fx, three_renews, 5000));
    assert_int_equal(fx->vc.now, 3 * 333); /* three periods, exactly */
    /* registration and each renewal armed the next renewal 333 ms on */
    assert_non_null(rc_timer(fx));
    assert_int_equal(fx->vc.nlog, 4);
    for (i = 0; i < fx->vc.nlog; i++) {
        assert_int_equal(fx->vc.log[i].at, (int64_t)i * 333);
        assert_int_equal(fx->vc.log[i].ms, 333);
    }
    assert_int_equal(fx->fake.posts, 1);
    assert_int_equal(fx->fake.renew_wrong, 0);
    assert_string_equal(fx->fake.renew_id, rc_id(fx->rc));
    assert_true(rc_registered(fx->rc));
}

static void test_renew_404_registers_again(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    char want[256];

    assert_non_null(log);
    make_rc(fx, 1);
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    capture_begin();
    fx->fake.nids = 0; /* the registry forgets us: the next renewal is 404 */
    assert_true(run_until(fx, two_posts, 2000));
    capture_end(log, LOG_CAPTURE_MAX);
    /* the renewal at 333 ms got 404 and the registration followed at once */
    assert_int_equal(fx->vc.now, 333);
    assert_int_equal(fx->fake.renews, 1);
    assert_int_equal(fx->fake.posts, 2);
    assert_string_equal(fx->fake.post_ids[0], rc_id(fx->rc));
    assert_string_equal(fx->fake.post_ids[1], rc_id(fx->rc));
    snprintf(want, sizeof(want), "INFO test registry forgot us; registering again as %s",
             rc_id(fx->rc));
    assert_non_null(strstr(log, want));
    assert_int_equal(count_of(log, " WARN "), 0);
    assert_true(rc_registered(fx->rc));
    assert_int_equal(fake_known(&fx->fake, rc_id(fx->rc)), 0);
    /* and renews on the usual period from there: no backoff in between */
    assert_non_null(rc_timer(fx));
    assert_int_equal(fx->vc.nlog, 2);
    assert_int_equal(fx->vc.log[1].at, 333);
    assert_int_equal(fx->vc.log[1].ms, 333);
    free(log);
}

static void test_down_at_start_fails_over(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    char dead[RU_URL_MAX];
    int64_t delay = 0;

    assert_non_null(log);
    urls_closed_then_fake(fx);
    snprintf(dead, sizeof(dead), "%s", ru_current(&fx->urls));
    make_rc(fx, 10);
    capture_begin();
    rc_start(fx->rc);
    settle(fx);
    /* refused: the first retry is drawn below the base of 100 ms */
    assert_false(rc_registered(fx->rc));
    assert_int_equal(fx->vc.nlog, 1);
    delay = fx->vc.log[0].ms;
    assert_backoff(fx, 0, 1);
    assert_true(run_until(fx, is_registered, 100));
    capture_end(log, LOG_CAPTURE_MAX);
    assert_int_equal(fx->vc.now, delay); /* the retry went out when drawn */
    assert_int_equal(fx->fake.posts, 1);
    assert_string_equal(ru_current(&fx->urls), fx->url);
    assert_int_equal(fx->vc.nlog, 2);
    assert_int_equal(fx->vc.log[1].ms, 3333); /* then the renewal period */
    assert_int_equal(count_of(log, " WARN "), 1);
    assert_non_null(strstr(log, dead));
    assert_non_null(strstr(log, "connection refused; retrying in "));
    assert_non_null(strstr(log, "answers again after 1 failures"));
    free(log);
}

static void test_503_retried_with_one_warning(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    char want[128];
    size_t failures = 0;

    assert_non_null(log);
    fx->fake.fail_503 = 1;
    make_rc(fx, 10);
    capture_begin();
    rc_start(fx->rc);
    /* the first three ceilings are 100, 200, 400 ms: at least four
     * attempts fit in 700 ms whatever the draws */
    run_for(fx, 700);
    failures = fx->vc.nlog;
    assert_true(failures >= 4);
    assert_false(rc_registered(fx->rc));
    fx->fake.fail_503 = 0;
    /* the next retry comes within the cap */
    assert_true(run_until(fx, is_registered, BO_CAP_MS_DEFAULT));
    capture_end(log, LOG_CAPTURE_MAX);
    assert_int_equal(fx->fake.posts, 1);
    assert_non_null(rc_timer(fx));
    assert_backoff(fx, 0, failures);
    assert_int_equal(fx->vc.nlog, failures + 1);
    assert_int_equal(fx->vc.log[failures].ms, 3333);
    assert_int_equal(count_of(log, " WARN "), 1);
    assert_non_null(strstr(log, "HTTP 503: overloaded; retrying in "));
    snprintf(want, sizeof(want), "answers again after %zu failures", failures);
    assert_non_null(strstr(log, want));
    free(log);
}

/* A 403 (our token refused) is said once at ERROR, naming the reason, and
 * retried with backoff like any failure; the token goes on the register,
 * renew, deregister and discovery calls. */
static void test_403_logged_once_and_token_sent(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    struct rc_options opt;
    size_t failures = 0;

    assert_non_null(log);
    snprintf(fx->fake.require_token, sizeof(fx->fake.require_token), "right-token");
    memset(&opt, 0, sizeof(opt));
    opt.name = NAME;
    opt.host = "10.1.2.3";
    opt.port = 5001;
    opt.ttl_s = 3;
    opt.timers = &fx->vc.hook;
    opt.token = "wrong-token";
    fx->rc = rc_new(fx->base, fx->hc, &fx->urls, &opt);
    assert_non_null(fx->rc);
    capture_begin();
    rc_start(fx->rc);
    run_for(fx, 700);
    failures = fx->vc.nlog;
    assert_true(failures >= 4);
    assert_int_equal(fx->fake.denied, (int)failures);
    assert_false(rc_registered(fx->rc));
    /* the registry's table now holds our token */
    snprintf(fx->fake.require_token, sizeof(fx->fake.require_token), "wrong-token");
    assert_true(run_until(fx, is_registered, BO_CAP_MS_DEFAULT));
    assert_true(run_until(fx, three_renews, 5000));
    capture_end(log, LOG_CAPTURE_MAX);
    assert_int_equal(count_of(log, " ERROR "), 1);
    assert_non_null(strstr(log, "refused our token"));
    assert_non_null(strstr(log, "permission denied: unknown token"));
    assert_null(strstr(log, "wrong-token"));
    rc_stop(fx->rc);
    assert_true(run_until(fx, rc_idle, 2000));
    assert_int_equal(fx->fake.deletes, 1);
    assert_int_equal(fx->fake.denied, (int)failures);
    /* discovery sends it too */
    fx->disc = disc_new(fx->base, fx->hc, &fx->urls, 1000);
    assert_non_null(fx->disc);
    disc_set_timers(fx->disc, &fx->vc.hook);
    assert_int_equal(disc_set_token(fx->disc, "wrong-token"), 0);
    assert_int_equal(disc_watch(fx->disc, "logging-service"), 0);
    run_for(fx, 100);
    assert_true(fx->fake.gets >= 1);
    assert_int_equal(fx->fake.denied, (int)failures);
    free(log);
}

static void test_long_outage_backs_off_to_the_cap(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    char spec[64];
    size_t k = 0;
    int64_t sum = 0;
    int low = 0, high = 0;

    assert_non_null(log);
    snprintf(spec, sizeof(spec), "http://127.0.0.1:%d", ts_closed_port());
    assert_int_equal(ru_parse(&fx->urls, spec, NULL, 0), 0);
    make_rc(fx, 10);
    capture_begin();
    rc_start(fx->rc);
    run_for(fx, 10 * 60 * 1000); /* ten minutes down, in virtual time */
    capture_end(log, LOG_CAPTURE_MAX);
    assert_false(rc_registered(fx->rc));
    /* every retry is within its ceiling, and the attempts are spaced by
     * exactly the delays drawn: at most one in flight, none lost */
    assert_non_null(rc_timer(fx));
    assert_true(fx->vc.nlog >= 600 * 1000 / BO_CAP_MS_DEFAULT);
    assert_true(fx->vc.nlog < VC_LOG_MAX);
    assert_backoff(fx, 0, fx->vc.nlog);
    for (k = 0; k < fx->vc.nlog; k++) {
        assert_int_equal(fx->vc.log[k].at, sum);
        sum += fx->vc.log[k].ms;
        if (k >= 5 && fx->vc.log[k].ms < BO_CAP_MS_DEFAULT / 2)
            low++;
        if (k >= 5 && fx->vc.log[k].ms > BO_CAP_MS_DEFAULT / 2)
            high++;
    }
    /* full jitter: the capped delays spread over the whole range (each
     * half missed by hundreds of draws has odds of 2^-300) */
    assert_true(low > 0);
    assert_true(high > 0);
    /* hundreds of failures, one warning */
    assert_int_equal(count_of(log, " WARN "), 1);
    assert_int_equal(rc_busy(fx->rc), 0);
    rc_stop(fx->rc);
    assert_int_equal(fx->vc.narmed, 0);
    assert_int_equal(rc_busy(fx->rc), 1); /* the DELETE, refused too */
    settle(fx);
    assert_int_equal(rc_busy(fx->rc), 0);
    free(log);
}

static int fake_has_us(struct fixture *fx) { return fake_known(&fx->fake, rc_id(fx->rc)) >= 0; }

static void test_registry_restarts_empty(void **state)
{
    struct fixture *fx = *state;
    int port = fx->fake.port;
    size_t from = 0;

    make_rc(fx, 1);
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    fake_close(&fx->fake); /* down: renewals are refused */
    run_for(fx, 600);
    assert_true(rc_registered(fx->rc)); /* not known otherwise */
    /* the renewal at 333 ms was refused and is retried with backoff */
    assert_true(fx->vc.nlog >= 2);
    assert_int_equal(fx->vc.log[1].at, 333);
    assert_backoff(fx, 1, fx->vc.nlog);
    fx->fake.nids = 0; /* back on the same port, memory lost */
    fx->fake.posts = 0;
    assert_int_equal(fake_listen(&fx->fake, port), 0);
    from = fx->vc.nlog;
    assert_true(run_until(fx, fake_has_us, 3000));
    assert_int_equal(fx->fake.posts, 1);
    assert_string_equal(fx->fake.post_ids[0], rc_id(fx->rc));
    assert_true(rc_registered(fx->rc));
    /* the renewal that found it back got 404 and registered at once */
    assert_int_equal(fx->fake.renews, 1);
    assert_non_null(rc_timer(fx));
    assert_true(fx->vc.nlog > from);
    assert_int_equal(fx->vc.log[fx->vc.nlog - 1].ms, 333);
}

static void test_stop_deregisters(void **state)
{
    struct fixture *fx = *state;
    char *log = malloc(LOG_CAPTURE_MAX);
    char want[256];
    int renews = 0;

    assert_non_null(log);
    make_rc(fx, 1);
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    assert_int_equal(fx->vc.narmed, 1); /* the renewal */
    capture_begin();
    rc_stop(fx->rc);
    assert_int_equal(fx->vc.narmed, 0); /* disarmed */
    assert_int_equal(rc_busy(fx->rc), 1);
    rc_stop(fx->rc); /* a second stop does nothing */
    assert_int_equal(rc_busy(fx->rc), 1);
    assert_true(run_until(fx, rc_idle, 0)); /* I/O only */
    capture_end(log, LOG_CAPTURE_MAX);
    assert_int_equal(rc_busy(fx->rc), 0);
    assert_int_equal(fx->fake.deletes, 1);
    assert_string_equal(fx->fake.delete_id, rc_id(fx->rc));
    assert_int_equal(fake_known(&fx->fake, rc_id(fx->rc)), -1);
    assert_false(rc_registered(fx->rc));
    snprintf(want, sizeof(want), "deregistered %s", rc_id(fx->rc));
    assert_non_null(strstr(log, want));
    renews = fx->fake.renews;
    run_for(fx, 10000); /* nothing more after a stop */
    assert_int_equal(fx->fake.renews, renews);
    assert_int_equal(fx->fake.posts, 1);
    assert_int_equal(fx->vc.nlog, 1);
    rc_start(fx->rc); /* no restart after a stop */
    assert_int_equal(rc_busy(fx->rc), 0);
    free(log);
}

static void test_stop_while_down(void **state)
{
    struct fixture *fx = *state;
    char spec[64];
    size_t armed = 0;

    snprintf(spec, sizeof(spec), "http://127.0.0.1:%d", ts_closed_port());
    assert_int_equal(ru_parse(&fx->urls, spec, NULL, 0), 0);
    make_rc(fx, 10);
    rc_start(fx->rc);
    run_for(fx, 200);
    assert_false(rc_registered(fx->rc));
    assert_true(fx->vc.nlog >= 2); /* ceilings 100, 200: two retries at least */
    assert_backoff(fx, 0, fx->vc.nlog);
    rc_stop(fx->rc);
    assert_int_equal(fx->vc.narmed, 0); /* the pending retry is gone */
    assert_true(rc_busy(fx->rc) <= 1);
    settle(fx);
    assert_int_equal(rc_busy(fx->rc), 0);
    assert_int_equal(hc_inflight(fx->hc), 0);
    armed = fx->vc.nlog;
    run_for(fx, 10000);
    assert_int_equal(fx->vc.nlog, armed); /* no retry after the stop */
}

static void test_stop_before_start(void **state)
{
    struct fixture *fx = *state;

    make_rc(fx, 10);
    rc_stop(fx->rc);
    assert_int_equal(rc_busy(fx->rc), 0);
    run_for(fx, 10000);
    assert_int_equal(fx->fake.posts + fx->fake.deletes, 0);
    assert_int_equal(fx->vc.nlog, 0);
}

static void test_free_in_flight(void **state)
{
    struct fixture *fx = *state;

    make_rc(fx, 10);
    rc_start(fx->rc);
    rc_free(fx->rc); /* the POST is cancelled, no callback runs */
    fx->rc = NULL;
    assert_int_equal(hc_inflight(fx->hc), 0);
    run_for(fx, 10000);
    assert_int_equal(fx->vc.nlog, 0);
    rc_free(NULL);
}

static void test_free_disarms(void **state)
{
    struct fixture *fx = *state;

    make_rc(fx, 10);
    rc_start(fx->rc);
    settle(fx);
    assert_int_equal(fx->vc.narmed, 1);
    rc_free(fx->rc); /* the armed renewal goes with it */
    fx->rc = NULL;
    assert_int_equal(fx->vc.narmed, 0);
}

static void test_rc_new_rejects(void **state)
{
    struct fixture *fx = *state;
    struct rc_options opt;
    char longname[LIM_NAME_MAX + 2];

    memset(&opt, 0, sizeof(opt));
    opt.name = NAME;
    opt.host = "h";
    opt.port = 1;
    opt.ttl_s = 1;
    fx->rc = rc_new(fx->base, fx->hc, &fx->urls, &opt);
    assert_non_null(fx->rc);
    opt.port = 0;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.port = 65536;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.port = 80;
    opt.ttl_s = 0;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.ttl_s = LIM_TTL_MAX + 1;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.ttl_s = 5;
    opt.host = "";
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.host = "h";
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    opt.name = longname;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.name = NULL;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    assert_null(rc_new(fx->base, NULL, &fx->urls, &opt));
    assert_int_equal(rc_busy(NULL), 0);
    assert_false(rc_registered(NULL));
}

/* ---- discovery ---- */
#define LIST_TWO                                                                                   \
    "{\"success\":true,\"services\":["                                                             \
    "{\"id\":\"logging-service-1\",\"name\":\"logging-service\","                                  \
    "\"host\":\"10.0.0.1\",\"port\":5001,\"health\":\"passing\"},"                                 \
    "{\"id\":\"logging-service-2\",\"name\":\"logging-service\","                                  \
    "\"host\":\"10.0.0.2\",\"port\":5011,\"health\":\"passing\"}]}"
#define LIST_ONE                                                                                   \
    "{\"success\":true,\"services\":["                                                             \
    "{\"id\":\"logging-service-3\",\"host\":\"h3\",\"port\":7}]}"

/* Create fx->disc refreshing every refresh_ms on the virtual clock. */
static void make_disc(struct fixture *fx, int64_t refresh_ms)
{
    fx->disc = disc_new(fx->base, fx->hc, &fx->urls, refresh_ms);
    assert_non_null(fx->disc);
    disc_set_timers(fx->disc, &fx->vc.hook);
}

static int known_logging(struct fixture *fx) { return disc_known(fx->disc, "logging-service"); }

static int one_instance(struct fixture *fx)
{
    struct disc_instance out[4];

    return disc_list(fx->disc, "logging-service", out, 4) == 1;
}

static void test_discovery_cache(void **state)
{
    struct fixture *fx = *state;
    struct disc_instance out[4];
    uint64_t version = 0;
    int gets = 0;

    snprintf(fx->fake.list, sizeof(fx->fake.list), "%s", LIST_TWO);
    make_disc(fx, 100);
    assert_false(disc_known(fx->disc, "logging-service"));
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 0);
    assert_int_equal(disc_watch(fx->disc, "logging-service"), 0);
    /* the first read goes out at once; no timer until it is answered */
    assert_int_equal(fx->vc.nlog, 0);
    settle(fx);
    assert_true(disc_known(fx->disc, "logging-service"));
    assert_int_equal(fx->fake.gets, 1);
    assert_string_equal(fx->fake.get_uri, "/v1/services?name=logging-service&health=passing");
    /* an answer without X-Registry-Index (a registry that cannot hold
     * reads): the next read after the refresh interval */
    assert_int_equal(fx->vc.nlog, 1);
    assert_int_equal(fx->vc.log[0].ms, 100);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 2);
    assert_string_equal(out[0].id, "logging-service-1");
    assert_string_equal(out[0].host, "10.0.0.1");
    assert_int_equal(out[0].port, 5001);
    assert_string_equal(out[1].id, "logging-service-2");
    assert_string_equal(out[1].host, "10.0.0.2");
    assert_int_equal(out[1].port, 5011);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 1), 1);
    assert_string_equal(out[0].id, "logging-service-1");
    /* reads with the same list leave the version alone */
    version = disc_version(fx->disc, "logging-service");
    assert_true(version != 0);
    run_for(fx, 99);
    assert_int_equal(fx->fake.gets, 1); /* not before the interval */
    run_for(fx, 151);                   /* t = 250: reads at 100 and 200 */
    assert_int_equal(fx->fake.gets, 3);
    assert_true(disc_version(fx->disc, "logging-service") == version);
    assert_true(disc_version(fx->disc, "unknown") == 0);

    /* failing registry: retried with backoff, the last list is kept */
    fx->fake.fail_503 = 1;
    gets = fx->fake.gets;
    run_for(fx, 350);
    assert_true(fx->fake.gets > gets);
    assert_true(fx->vc.log[fx->vc.nlog - 1].ms <= BO_CAP_MS_DEFAULT + 1);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 2);
    fx->fake.fail_503 = 0;
    snprintf(fx->fake.list, sizeof(fx->fake.list), "not json");
    gets = fx->fake.gets;
    run_for(fx, BO_CAP_MS_DEFAULT + 1);
    assert_true(fx->fake.gets > gets);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 2);
    fake_close(&fx->fake);
    run_for(fx, 200);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 2);
    assert_true(disc_known(fx->disc, "logging-service"));

    /* back, with another list: updated on the next read */
    assert_int_equal(fake_listen(&fx->fake, fx->fake.port), 0);
    snprintf(fx->fake.list, sizeof(fx->fake.list), "%s", LIST_ONE);
    assert_true(run_until(fx, one_instance, BO_CAP_MS_DEFAULT + 1));
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 1);
    assert_string_equal(out[0].id, "logging-service-3");
    assert_string_equal(out[0].host, "h3");
    assert_int_equal(out[0].port, 7);
    assert_true(disc_version(fx->disc, "logging-service") != version);
    version = disc_version(fx->disc, "logging-service");

    /* nothing passing any more: an empty list is an answer too */
    snprintf(fx->fake.list, sizeof(fx->fake.list), "{\"success\":true,\"services\":[]}");
    gets = fx->fake.gets;
    run_for(fx, 100);
    assert_int_equal(fx->fake.gets, gets + 1);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 0);
    assert_true(disc_known(fx->disc, "logging-service"));
    assert_true(disc_version(fx->disc, "logging-service") != version);
    /* one timer, never two reads at once */
    assert_int_equal(fx->vc.narmed, 1);
}

/* With X-Registry-Index the reads block on it: the next one DISC_FLOOR_MS
 * after each answer; a blocking read answered at once with the same index
 * (a registry that does not hold it) paces at the refresh interval; an
 * index that goes back, or a failure, starts again with a plain read. */
static void test_discovery_blocks_on_the_index(void **state)
{
    struct fixture *fx = *state;
    char want[256];

    snprintf(fx->fake.list, sizeof(fx->fake.list), "%s", LIST_TWO);
    snprintf(fx->fake.get_index, sizeof(fx->fake.get_index), "5");
    make_disc(fx, 500);
    assert_int_equal(disc_watch(fx->disc, "logging-service"), 0);
    settle(fx);
    assert_string_equal(fx->fake.get_uri, "/v1/services?name=logging-service&health=passing");
    assert_int_equal(fx->vc.log[fx->vc.nlog - 1].ms, DISC_FLOOR_MS);
    run_for(fx, DISC_FLOOR_MS);
    assert_int_equal(fx->fake.gets, 2);
    snprintf(want, sizeof(want),
             "/v1/services?name=logging-service&health=passing&index=5&wait=%ds", DISC_WAIT_S);
    assert_string_equal(fx->fake.get_uri, want);
    /* answered at once with index 5 again: not held, so at the interval */
    assert_int_equal(fx->vc.log[fx->vc.nlog - 1].ms, 500);
    /* a change: index 9, the next read soon after */
    snprintf(fx->fake.list, sizeof(fx->fake.list), "%s", LIST_ONE);
    snprintf(fx->fake.get_index, sizeof(fx->fake.get_index), "9");
    run_for(fx, 500);
    assert_int_equal(fx->fake.gets, 3);
    assert_true(run_until(fx, one_instance, 1));
    assert_int_equal(fx->vc.log[fx->vc.nlog - 1].ms, DISC_FLOOR_MS);
    run_for(fx, DISC_FLOOR_MS);
    assert_int_equal(fx->fake.gets, 4);
    assert_non_null(strstr(fx->fake.get_uri, "&index=9&"));
    /* the index went back (a restarted registry): a plain read next */
    snprintf(fx->fake.get_index, sizeof(fx->fake.get_index), "3");
    run_for(fx, 500);
    assert_int_equal(fx->fake.gets, 5);
    run_for(fx, DISC_FLOOR_MS);
    assert_int_equal(fx->fake.gets, 6);
    assert_null(strstr(fx->fake.get_uri, "index="));
    run_for(fx, DISC_FLOOR_MS);
    assert_non_null(strstr(fx->fake.get_uri, "&index=3&"));
    /* a failure: the retry is a plain read */
    fx->fake.fail_503 = 1;
    run_for(fx, 500);
    fx->fake.fail_503 = 0;
    run_for(fx, BO_CAP_MS_DEFAULT + 1);
    assert_true(fx->fake.gets >= 9);
    assert_int_equal(disc_list(fx->disc, "logging-service", (struct disc_instance[4]){0}, 4), 1);
}

static void test_discovery_fails_over(void **state)
{
    struct fixture *fx = *state;
    struct disc_instance out[4];

    urls_closed_then_fake(fx);
    snprintf(fx->fake.list, sizeof(fx->fake.list), "%s", LIST_TWO);
    make_disc(fx, 50);
    assert_int_equal(disc_watch(fx->disc, "logging-service"), 0);
    settle(fx); /* refused: failed over, the list waits for the retry */
    assert_false(disc_known(fx->disc, "logging-service"));
    assert_string_equal(ru_current(&fx->urls), fx->url);
    assert_true(run_until(fx, known_logging, BO_BASE_MS_DEFAULT + 1));
    assert_int_equal(fx->fake.gets, 1);
    assert_int_equal(disc_list(fx->disc, "logging-service", out, 4), 2);
    assert_string_equal(ru_current(&fx->urls), fx->url);
}

static void test_discovery_skips_bad_members(void **state)
{
    struct fixture *fx = *state;
    struct disc_instance out[4];

    snprintf(fx->fake.list, sizeof(fx->fake.list),
             "{\"success\":true,\"services\":[{\"id\":1,\"host\":\"a\",\"port\":1},"
             "{\"id\":\"x\",\"host\":\"a\",\"port\":\"80\"},"
             "{\"id\":\"y\",\"host\":\"a\",\"port\":70000},"
             "{\"host\":\"a\",\"port\":1},7,"
             "{\"id\":\"ok\",\"host\":\"b\",\"port\":2}]}");
    make_disc(fx, 1000);
    assert_int_equal(disc_watch(fx->disc, "messages-service"), 0);
    settle(fx);
    assert_true(disc_known(fx->disc, "messages-service"));
    assert_int_equal(disc_list(fx->disc, "messages-service", out, 4), 1);
    assert_string_equal(out[0].id, "ok");
    assert_string_equal(out[0].host, "b");
    assert_int_equal(out[0].port, 2);
}

static void test_discovery_one_refresh_in_flight(void **state)
{
    struct fixture *fx = *state;

    fx->fake.get_delay_ms = 300; /* slower than the refresh interval */
    make_disc(fx, 20);
    assert_int_equal(disc_watch(fx->disc, "a"), 0);
    assert_int_equal(disc_watch(fx->disc, "b"), 0);
    settle(fx);
    assert_int_equal(fx->fake.gets_pending, 2);
    /* no other read while the answers are held back */
    run_for(fx, 299);
    assert_int_equal(fx->fake.gets, 2);
    assert_false(disc_known(fx->disc, "a"));
    run_for(fx, 1); /* t = 300: answered; the next reads 20 ms later */
    assert_true(disc_known(fx->disc, "a"));
    assert_true(disc_known(fx->disc, "b"));
    run_for(fx, 300);
    assert_int_equal(fx->fake.gets, 4); /* one GET per name per 320 ms */
    /* one GET per name at a time: two names, two at most */
    assert_int_equal(fx->fake.gets_pending_max, 2);
    disc_stop(fx->disc);
    assert_int_equal(hc_inflight(fx->hc), 0);
    run_for(fx, 1000);
    assert_true(disc_known(fx->disc, "a"));
    assert_int_equal(fx->fake.gets, 4); /* nothing after the stop */
}

static void test_discovery_limits(void **state)
{
    struct fixture *fx = *state;
    struct disc_instance out[2];
    struct disc_client *fast = NULL;
    char name[16];
    char longname[LIM_NAME_MAX + 2];
    size_t i = 0;

    make_disc(fx, 0); /* the default interval */
    for (i = 0; i < DISC_NAMES_MAX; i++) {
        snprintf(name, sizeof(name), "svc%zu", i);
        assert_int_equal(disc_watch(fx->disc, name), 0);
    }
    assert_int_equal(disc_watch(fx->disc, "svc0"), 0); /* already watched */
    assert_int_equal(disc_watch(fx->disc, "one-too-many"), -1);
    assert_int_equal(disc_watch(fx->disc, ""), -1);
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(disc_watch(fx->disc, longname), -1);
    assert_int_equal(disc_list(fx->disc, "unknown", out, 2), 0);
    assert_false(disc_known(fx->disc, "unknown"));
    assert_int_equal(hc_inflight(fx->hc), DISC_NAMES_MAX);
    settle(fx);
    /* answered without an index: one timer per name, DISC_REFRESH_MS_DEFAULT */
    assert_int_equal(fx->vc.nlog, DISC_NAMES_MAX);
    assert_int_equal(fx->vc.narmed, DISC_NAMES_MAX);
    for (i = 0; i < DISC_NAMES_MAX; i++)
        assert_int_equal(fx->vc.log[i].ms, DISC_REFRESH_MS_DEFAULT);
    disc_stop(fx->disc);
    assert_int_equal(hc_inflight(fx->hc), 0);
    assert_int_equal(fx->vc.narmed, 0);
    assert_int_equal(disc_watch(fx->disc, "late"), -1);
    disc_free(NULL);

    /* a shorter interval than the floor of 10 ms is raised to it */
    fast = disc_new(fx->base, fx->hc, &fx->urls, 1);
    assert_non_null(fast);
    disc_set_timers(fast, &fx->vc.hook);
    assert_int_equal(disc_watch(fast, "x"), 0);
    settle(fx);
    assert_int_equal(fx->vc.log[DISC_NAMES_MAX].ms, 10);
    disc_free(fast); /* disarms, and cancels its GET */
    assert_int_equal(fx->vc.narmed, 0);
    assert_int_equal(hc_inflight(fx->hc), 0);
}

/* ---- checks and maintenance ---- */

/* Assert that the JSON object text json has exactly the members of the
 * comma-separated list want, and return it parsed (caller decrefs). */
static json_t *assert_members(const char *json, const char *want)
{
    json_t *doc = json_loads(json, 0, NULL);
    char list[256];
    char *tok = NULL, *save = NULL;
    size_t n = 0;

    assert_non_null(doc);
    assert_true(json_is_object(doc));
    snprintf(list, sizeof(list), "%s", want);
    for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (json_object_get(doc, tok) == NULL)
            fail_msg("member '%s' missing from %s", tok, json);
        n++;
    }
    assert_int_equal(json_object_size(doc), n);
    return doc;
}

/* Register fx->rc and return the body the fake got, parsed with exactly
 * the members want (caller decrefs). */
static json_t *registered_body(struct fixture *fx, const char *want)
{
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    assert_int_equal(fx->fake.posts, 1);
    return assert_members(fx->fake.post_body, want);
}

/* --check ttl: today's body, the lease and nothing else. */
static void test_body_check_ttl(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL;

    make_rc_check(fx, RC_CHECK_TTL, 0, 0, NULL);
    body = registered_body(fx, "id,name,host,port,type,ttl");
    assert_int_equal(json_integer_value(json_object_get(body, "ttl")), 10);
    json_decref(body);
}

/* --check http: the lease plus an HTTP check of our own /health; the
 * timeout is min(2 s, interval). */
static void test_body_check_http(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL, *check = NULL;
    char *text = NULL;

    make_rc_check(fx, RC_CHECK_HTTP, 10000, 0, NULL);
    body = registered_body(fx, "id,name,host,port,type,ttl,check");
    assert_int_equal(json_integer_value(json_object_get(body, "ttl")), 10);
    text = json_dumps(json_object_get(body, "check"), JSON_COMPACT);
    assert_non_null(text);
    json_decref(body);
    check = assert_members(text, "http,interval,timeout");
    free(text);
    assert_string_equal(json_string_value(json_object_get(check, "http")),
                        "http://10.1.2.3:5001/health");
    assert_string_equal(json_string_value(json_object_get(check, "interval")), "10s");
    assert_string_equal(json_string_value(json_object_get(check, "timeout")), "2s");
    json_decref(check);
    /* the lease is still renewed */
    run_for(fx, 3333);
    assert_int_equal(fx->fake.renews, 1);
}

/* A short interval is also the timeout; milliseconds are said as such. */
static void test_body_check_http_short(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL, *check = NULL;

    make_rc_check(fx, RC_CHECK_HTTP, 200, 0, NULL);
    body = registered_body(fx, "id,name,host,port,type,ttl,check");
    check = json_object_get(body, "check");
    assert_string_equal(json_string_value(json_object_get(check, "interval")), "200ms");
    assert_string_equal(json_string_value(json_object_get(check, "timeout")), "200ms");
    json_decref(body);
}

/* --check none: "checks": [] and no ttl, and nothing is ever renewed. */
static void test_body_check_none_no_renewals(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL;

    make_rc_check(fx, RC_CHECK_NONE, 0, 0, NULL);
    body = registered_body(fx, "id,name,host,port,type,checks");
    assert_true(json_is_array(json_object_get(body, "checks")));
    assert_int_equal(json_array_size(json_object_get(body, "checks")), 0);
    json_decref(body);
    assert_int_equal(fx->vc.narmed, 0); /* no renewal armed */
    run_for(fx, 60000);
    assert_int_equal(fx->fake.renews, 0);
    assert_int_equal(fx->fake.posts, 1);
    rc_stop(fx->rc); /* still deregisters */
    settle(fx);
    assert_int_equal(fx->fake.deletes, 1);
}

/* rc_new refuses HTTP checks out of range. */
static void test_rc_new_rejects_checks(void **state)
{
    struct fixture *fx = *state;
    struct rc_options opt;

    memset(&opt, 0, sizeof(opt));
    opt.name = NAME;
    opt.host = "10.1.2.3";
    opt.port = 5001;
    opt.ttl_s = 10;
    opt.check = RC_CHECK_HTTP;
    opt.check_interval_ms = LIM_CHECK_INTERVAL_MIN_MS - 1;
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.check_interval_ms = 1000;
    opt.check_timeout_ms = 1001; /* longer than the interval */
    assert_null(rc_new(fx->base, fx->hc, &fx->urls, &opt));
    opt.check = RC_CHECK_NONE; /* no lease: the ttl is not looked at */
    opt.ttl_s = 0;
    fx->rc = rc_new(fx->base, fx->hc, &fx->urls, &opt);
    assert_non_null(fx->rc);
}

static int maint_calls;
static bool maint_ok;

/* Completion of rc_maintenance: record it. */
static void on_maint(bool ok, void *arg)
{
    (void)arg;
    maint_calls++;
    maint_ok = ok;
}

/* Maintenance: only once registered; the PUT carries the token and the
 * body of the contract; renewals go on, and a registry that forgets us
 * meanwhile is not registered with again (we are leaving). */
static void test_maintenance_put(void **state)
{
    struct fixture *fx = *state;
    json_t *body = NULL;

    snprintf(fx->fake.require_token, sizeof(fx->fake.require_token), "tok-1");
    make_rc_check(fx, RC_CHECK_TTL, 0, 0, "tok-1");
    maint_calls = 0;
    assert_int_equal(rc_maintenance(fx->rc, true, "shutting down", 500, on_maint, NULL), -1);
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    assert_int_equal(rc_maintenance(fx->rc, true, "shutting down", 500, on_maint, NULL), 0);
    assert_int_equal(rc_busy(fx->rc), 1);
    settle(fx);
    assert_int_equal(maint_calls, 1);
    assert_true(maint_ok);
    assert_int_equal(rc_busy(fx->rc), 0);
    assert_int_equal(fx->fake.maints, 1);
    assert_int_equal(fx->fake.denied, 0);
    assert_string_equal(fx->fake.maint_token, "tok-1");
    assert_string_equal(fx->fake.maint_id, rc_id(fx->rc));
    body = assert_members(fx->fake.maint_body, "enable,reason");
    assert_true(json_is_true(json_object_get(body, "enable")));
    assert_string_equal(json_string_value(json_object_get(body, "reason")), "shutting down");
    json_decref(body);

    run_for(fx, 3333); /* the lease is still renewed */
    assert_int_equal(fx->fake.renews, 1);
    fx->fake.nids = 0; /* forgotten: the next renewal is 404 */
    run_for(fx, 10000);
    assert_int_equal(fx->fake.renews, 2);
    assert_int_equal(fx->fake.posts, 1); /* not registered again */
    assert_false(rc_registered(fx->rc));
    assert_int_equal(fx->vc.narmed, 0);
    assert_string_equal(fx->fake.calls, "PMRR");

    /* unknown to the registry now: no call at all */
    assert_int_equal(rc_maintenance(fx->rc, false, NULL, 500, on_maint, NULL), -1);
}

/* A renewal the registry never answers is given up after a quarter of the
 * ttl (500 ms at ttl 2 s), not the 2 s of other calls, and retried after
 * a backoff: a registry that died without closing its connections is left
 * while the lease still has time. */
static void test_renew_timeout_is_a_quarter_of_ttl(void **state)
{
    struct fixture *fx = *state;
    struct timespec t0, t1;
    int64_t waited_ms = 0;

    make_rc(fx, 2); /* renew every 666 ms */
    rc_start(fx->rc);
    settle(fx);
    assert_true(rc_registered(fx->rc));
    fx->fake.renew_hold = 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_for(fx, 666); /* the renewal goes out and is held; settle waits for its end */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_int_equal(fx->fake.renews, 1);
    assert_true(waited_ms >= 450);
    assert_true(waited_ms < LIM_CALL_TIMEOUT_MS);
    /* the retry is a backoff below the base, not the renewal period */
    assert_int_equal(fx->vc.nlog, 2);
    assert_true(fx->vc.log[1].ms <= BO_BASE_MS_DEFAULT);
    fx->fake.renew_hold = 0;
    assert_true(run_until(fx, two_renews, 200));
    assert_true(rc_registered(fx->rc));
    assert_int_equal(fx->fake.posts, 1);
}

/* The maintenance call's timeout is the one given: a registry that never
 * answers fails it (done with false) well before the 2 s default. */
static void test_maintenance_timeout(void **state)
{
    struct fixture *fx = *state;
    int64_t t0;

    make_rc_check(fx, RC_CHECK_TTL, 0, 0, NULL);
    rc_start(fx->rc);
    settle(fx);
    fx->fake.maint_hold = 1;
    maint_calls = 0;
    maint_ok = true;
    t0 = clk_now_ms();
    assert_int_equal(rc_maintenance(fx->rc, true, "shutting down", 100, on_maint, NULL), 0);
    settle(fx); /* runs until the call has ended: by its timeout */
    assert_int_equal(maint_calls, 1);
    assert_false(maint_ok);
    assert_true(clk_now_ms() - t0 < LIM_CALL_TIMEOUT_MS); /* 100 ms, not the default */
    assert_int_equal(rc_busy(fx->rc), 0);
}

/* rc_stop cancels a maintenance call in flight (its done does not run) and
 * deregisters. */
static void test_stop_cancels_maintenance(void **state)
{
    struct fixture *fx = *state;

    make_rc_check(fx, RC_CHECK_TTL, 0, 0, NULL);
    rc_start(fx->rc);
    settle(fx);
    fx->fake.maint_hold = 1;
    maint_calls = 0;
    assert_int_equal(rc_maintenance(fx->rc, true, "shutting down", 1000, on_maint, NULL), 0);
    rc_stop(fx->rc);
    assert_int_equal(rc_busy(fx->rc), 1); /* the DELETE only */
    settle(fx);
    assert_int_equal(maint_calls, 0);
    assert_int_equal(fx->fake.deletes, 1);
}

/* ---- peer ---- */

static int own_stop_calls;

/* A stop hook of the service's own, counted. */
static void own_on_stop(void *arg)
{
    (void)arg;
    own_stop_calls++;
}

/* A busy hook of the service's own: never busy. */
static size_t own_busy(void *arg)
{
    (void)arg;
    return 0;
}

static int peer_fake_posted(struct fixture *fx) { return fx->fake.posts >= 1; }

static void test_peer_lifecycle(void **state)
{
    struct fixture *fx = *state;
    struct svc *s = NULL;
    struct peer p;
    struct cfg_common c = {
        .bind = "127.0.0.1", .registry = NULL, .advertise = "", .log_level = "info"};
    struct fake *f = &fx->fake;
    char url[128];
    char err[256] = "";
    char *log = malloc(LOG_CAPTURE_MAX);
    json_t *body = NULL;

    assert_non_null(log);
    memset(&p, 0, sizeof(p));
    s = svc_new("peer-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_grace_ms(s, 2000);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    /* the fixture's fake runs on another base: start one on the service's */
    fake_close(f);
    assert_int_equal(fake_start(f, svc_base(s), NULL), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->port);
    c.registry = url;
    assert_int_equal(svc_on_stop(s, own_on_stop, NULL), 0);
    assert_int_equal(svc_on_busy(s, own_busy, NULL), 0);
    own_stop_calls = 0;
    capture_begin();
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 1, err, sizeof(err)), 0);
    assert_true(svc_busy(s) >= 1); /* the peer's hook counts the POST in flight */
    assert_true(run_base_until(fx, svc_base(s), peer_fake_posted, 2000));
    capture_end(log, LOG_CAPTURE_MAX);
    assert_string_equal(p.advertise, "127.0.0.1");
    assert_non_null(strstr(log, "registering as peer-test-"));
    assert_non_null(strstr(log, " at 127.0.0.1:"));
    assert_non_null(strstr(log, " with http://127.0.0.1:"));
    body = json_loads(f->post_body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(body, "port")), svc_port(s));
    assert_int_equal(json_integer_value(json_object_get(body, "ttl")), 1);
    assert_string_equal(json_string_value(json_object_get(body, "host")), "127.0.0.1");
    json_decref(body);

    /* shutdown: deregister, drain until the DELETE is answered */
    svc_shutdown(s);
    assert_int_equal(own_stop_calls, 1);
    assert_int_equal(svc_run(s), 0);
    assert_int_equal(f->deletes, 1);
    assert_int_equal(f->nids, 0);

    fake_close(f); /* before its base goes */
    peer_free(&p);
    peer_free(&p); /* zeroed: a no-op */
    svc_free(s);
    free(log);
}

static void test_peer_bad_url(void **state)
{
    struct svc *s;
    struct peer p;
    struct cfg_common c = {
        .bind = "127.0.0.1", .registry = "htp://x", .advertise = "", .log_level = "info"};
    char err[256] = "";

    (void)state;
    memset(&p, 0, sizeof(p));
    s = svc_new("peer-test", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 10, err, sizeof(err)), -1);
    assert_string_equal(err, "--registry: 'htp://x' is not an http:// URL");
    peer_free(&p);
    svc_free(s);
}

static void test_peer_advertise(void **state)
{
    struct svc *s;
    struct peer p;
    struct cfg_common c = {.bind = "0.0.0.0", .registry = "", .advertise = "", .log_level = "info"};
    char err[256] = "";

    (void)state;
    memset(&p, 0, sizeof(p));
    s = svc_new("peer-test", err, sizeof(err));
    assert_non_null(s);
    /* listening, but nothing is sent before the loop runs */
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);

    /* wildcard bind: an interface address or the host name, never 0.0.0.0 */
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 0, err, sizeof(err)), 0);
    assert_string_not_equal(p.advertise, "0.0.0.0");
    assert_true(strlen(p.advertise) > 0);
    assert_string_equal(ru_current(&p.urls), "http://127.0.0.1:8500");
    assert_true(svc_busy(s) >= 1); /* the POST is in flight */
    peer_free(&p);
    assert_int_equal(svc_busy(s), 0); /* the peer's hooks left with it */

    c.bind = "::";
    c.advertise = "svc.example.com";
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 10, err, sizeof(err)), 0);
    assert_string_equal(p.advertise, "svc.example.com");
    peer_free(&p);

    c.bind = "10.9.8.7";
    c.advertise = NULL;
    c.registry = NULL;
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 10, err, sizeof(err)), 0);
    assert_string_equal(p.advertise, "10.9.8.7");
    peer_free(&p);

    assert_int_equal(peer_start(&p, s, &c, "peer-test", LIM_TTL_MAX + 1, err, sizeof(err)), -1);
    peer_free(&p);
    svc_shutdown(s); /* no hook of a freed peer is left to run */
    svc_free(s);
}

static struct event_base *bound_base; /* the loop svc_run_bounded runs */

/* Safety timer of svc_run_bounded: leave the loop, say so. */
static void run_bound_fire(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *fx = arg;

    (void)fd;
    (void)what;
    fx->timed_out = 1;
    event_base_loopexit(bound_base, NULL);
}

/* svc_run(s), but leave after ms of real time at most (fx->timed_out is
 * set then): a drain that never ends fails the test instead of hanging
 * it. Returns svc_run's exit code. */
static int svc_run_bounded(struct fixture *fx, struct svc *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *safety = evtimer_new(svc_base(s), run_bound_fire, fx);
    int rc;

    assert_non_null(safety);
    fx->timed_out = 0;
    bound_base = svc_base(s);
    evtimer_add(safety, &tv);
    rc = svc_run(s);
    event_free(safety);
    return rc;
}

static struct peer *drain_peer;

static int peer_registered(struct fixture *fx)
{
    (void)fx;
    return rc_registered(drain_peer->rc);
}

static int peer_fake_maint(struct fixture *fx) { return fx->fake.maints >= 1; }

/* Start a service s (drain delay delay_ms) with a peer p registered, with
 * the token, at a fake on the service's own base. */
static struct svc *drain_peer_start(struct fixture *fx, struct peer *p, int64_t delay_ms,
                                    const char *check)
{
    struct svc *s = NULL;
    struct cfg_common c = {
        .bind = "127.0.0.1", .registry = NULL, .advertise = "", .log_level = "info"};
    char url[128];
    char err[256] = "";

    memset(p, 0, sizeof(*p));
    s = svc_new("peer-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_grace_ms(s, 2000);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    fake_close(&fx->fake);
    assert_int_equal(fake_start(&fx->fake, svc_base(s), NULL), 0);
    snprintf(fx->fake.require_token, sizeof(fx->fake.require_token), "peer-tok");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fx->fake.port);
    c.registry = url;
    c.token = "peer-tok";
    c.check = check;
    c.check_interval_ms = 200;
    c.drain_delay_ms = delay_ms;
    assert_int_equal(peer_start(p, s, &c, "peer-test", 10, err, sizeof(err)), 0);
    drain_peer = p;
    assert_true(run_base_until(fx, svc_base(s), peer_registered, 2000));
    return s;
}

/* The drain of a registered peer: on the signal, maintenance (with the
 * token) while the service still serves, the deregistration only after
 * the delay; the registration asked for the HTTP check of our /health. */
static void test_peer_drain(void **state)
{
    struct fixture *fx = *state;
    struct svc *s = NULL;
    struct peer p;
    json_t *body = NULL;
    char want[128];

    s = drain_peer_start(fx, &p, 1000, "http");
    body = json_loads(fx->fake.post_body, 0, NULL);
    assert_non_null(body);
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/health", svc_port(s));
    assert_string_equal(json_string_value(json_object_get(json_object_get(body, "check"), "http")),
                        want);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(body, "check"), "interval")), "200ms");
    json_decref(body);

    svc_shutdown(s);
    assert_true(svc_delaying(s));
    assert_true(run_base_until(fx, svc_base(s), peer_fake_maint, 900));
    assert_int_equal(fx->fake.denied, 0);
    assert_string_equal(fx->fake.maint_token, "peer-tok");
    assert_string_equal(fx->fake.maint_id, rc_id(p.rc));
    body = json_loads(fx->fake.maint_body, 0, NULL);
    assert_true(json_is_true(json_object_get(body, "enable")));
    assert_string_equal(json_string_value(json_object_get(body, "reason")), "shutting down");
    json_decref(body);
    assert_true(svc_delaying(s)); /* maintenance taken: the delay goes on */
    assert_int_equal(fx->fake.deletes, 0);

    assert_int_equal(svc_run_bounded(fx, s, 4000), 0);
    assert_false(fx->timed_out);
    assert_int_equal(fx->fake.deletes, 1);
    assert_string_equal(fx->fake.calls, "PMD");
    fake_close(&fx->fake);
    peer_free(&p);
    svc_free(s);
}

/* A registry that refuses the maintenance (it forgot us) ends the delay
 * at once: the service deregisters and drains without waiting it out. */
static void test_peer_drain_refused(void **state)
{
    struct fixture *fx = *state;
    struct svc *s = NULL;
    struct peer p;

    s = drain_peer_start(fx, &p, 60000, "ttl");
    fx->fake.nids = 0;
    svc_shutdown(s);
    assert_true(svc_delaying(s));
    assert_int_equal(svc_run_bounded(fx, s, 3000), 0);
    assert_false(fx->timed_out); /* not the safety: the 60 s delay was cut */
    assert_int_equal(fx->fake.maints, 1);
    assert_string_equal(fx->fake.calls, "PMD");
    fake_close(&fx->fake);
    peer_free(&p);
    svc_free(s);
}

/* Never registered (registry down): no maintenance, no delay. */
static void test_peer_drain_unregistered(void **state)
{
    struct fixture *fx = *state;
    struct svc *s = NULL;
    struct peer p;
    struct cfg_common c = {
        .bind = "127.0.0.1", .registry = NULL, .advertise = "", .log_level = "info"};
    char url[128];
    char err[256] = "";

    memset(&p, 0, sizeof(p));
    s = svc_new("peer-test", err, sizeof(err));
    assert_non_null(s);
    svc_set_grace_ms(s, 2000);
    assert_int_equal(svc_listen(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ts_closed_port());
    c.registry = url;
    c.drain_delay_ms = 60000;
    assert_int_equal(peer_start(&p, s, &c, "peer-test", 10, err, sizeof(err)), 0);
    svc_shutdown(s);
    assert_false(svc_delaying(s));
    assert_int_equal(svc_run_bounded(fx, s, 3000), 0);
    assert_false(fx->timed_out);
    peer_free(&p);
    svc_free(s);
}

/* --check: the three names, the default, and anything else refused by
 * peer_check_options (a start-up error). */
static void test_peer_check_option(void **state)
{
    struct cfg_common c = {.bind = "127.0.0.1", .registry = "", .log_level = "info"};
    enum rc_check kind = RC_CHECK_TTL;
    char err[256] = "";

    (void)state;
    assert_int_equal(peer_check_kind("http", &kind), 0);
    assert_int_equal(kind, RC_CHECK_HTTP);
    assert_int_equal(peer_check_kind("ttl", &kind), 0);
    assert_int_equal(kind, RC_CHECK_TTL);
    assert_int_equal(peer_check_kind("none", &kind), 0);
    assert_int_equal(kind, RC_CHECK_NONE);
    assert_int_equal(peer_check_kind(NULL, &kind), 0);
    assert_int_equal(kind, RC_CHECK_HTTP);
    assert_int_equal(peer_check_kind("HTTP", &kind), -1);
    c.check = "tcp";
    assert_int_equal(peer_check_options(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "--check: 'tcp' is not http, ttl or none");
    c.check = "none";
    assert_int_equal(peer_check_options(&c, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers_with_its_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renews_every_third_of_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_404_registers_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_at_start_fails_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_retried_with_one_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_403_logged_once_and_token_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_outage_backs_off_to_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_restarts_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deregisters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_disarms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rc_new_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_check_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_check_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_check_http_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_check_none_no_renewals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rc_new_rejects_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_timeout_is_a_quarter_of_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels_maintenance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_blocks_on_the_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_fails_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_skips_bad_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_one_refresh_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_lifecycle, setup, teardown),
        cmocka_unit_test(test_peer_bad_url),
        cmocka_unit_test(test_peer_advertise),
        cmocka_unit_test_setup_teardown(test_peer_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_drain_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_drain_unregistered, setup, teardown),
        cmocka_unit_test(test_peer_check_option),
    };

    log_init("test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
