/* replicate.c: replication of messages to logging-service instances with
 * rendezvous placement, failover, backoff and batching (see replicate.h).
 *
 * Objects: a rep_msg per message being stored (refcounted: the message
 * itself and every item queued or in flight for it); a rep_lane per logging
 * instance (its queue of items and its batches in flight), hung on the
 * instance's upstream record; a rep_call per batch POST. */
#include "replicate.h"

#include "codec/jsonw.h"
#include "codec/uid.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "http/trace.h"
#include "proto/messages.h"
#include "regclient/discovery.h"
#include "resilience/rendezvous.h"
#include "upstream.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utlist.h>

struct rep_msg;
struct rep_lane;

/* One copy of a message queued for, or in flight to, one instance: a slot
 * of the message itself (a message has at most `replicas` copies out at
 * once, one per instance in m->inflight), so copies cost no allocation. */
struct rep_item {
    struct rep_msg *m;     /* holds a reference while used */
    struct rep_lane *lane; /* borrowed */
    bool used;
    bool detached;                /* in flight on a stuck lane, no longer counted in m->inflight:
                      the message moved on; a late answer may still add a copy */
    struct rep_item *prev, *next; /* in lane->queue while queued */
};

struct rep_msg {
    struct rep_ctx *ctx;
    char uuid[UID_STR_LEN + 1];
    char trace[TRC_TRACE_ID_LEN + 1]; /* the POST's trace id, "" for none */
    int64_t deadline;                 /* monotonic ms; rep_ctx's deadline timer enforces it */
    int replicas;                     /* copies it needs: opt.replicas when it was stored */
    int64_t wait_ms;                  /* its retry deadline: opt.deadline_ms when it was stored */
    unsigned attempt;                 /* retries so far (failovers and waits) */
    unsigned waits;                   /* backoff waits so far: the backoff exponent */
    bool failed;                      /* a copy failed since the last retry was logged */
    int refs;
    bool finished;
    struct up_instance *stored[REP_REPLICAS_MAX];
    size_t nstored;
    struct up_instance *inflight[REP_REPLICAS_MAX];
    size_t ninflight;
    struct up_instance **tried; /* owned, 2 x REP_INSTANCES_MAX slots, made at
                                   the first failure: the instances failed this
                                   round (kept out of the message's common
                                   case, which stays one small allocation) */
    size_t ntried;
    struct up_instance **unreach; /* tried + REP_INSTANCES_MAX: the instances
                                     that refused the connection or had their
                                     breaker open this round; no copy is owed
                                     to them */
    size_t nunreach;
    char last_error[160];
    const struct up_instance *last_target; /* borrowed: records live until exit */
    struct event *timer;                   /* owned: backoff wake-up, made at the first wait */
    rep_done_fn done;
    void *done_arg;
    struct rep_msg *prev, *next; /* in ctx->msgs while not finished */
    struct rep_item copies[REP_REPLICAS_MAX];
    size_t item_len;
    char item[]; /* {"uuid","msg","ts"}, encoded once for every copy */
};

struct rep_lane {
    struct rep_ctx *ctx;
    struct up_instance *up; /* borrowed; up->user points back here */
    char host[LIM_HOST_MAX + 1];
    int port;
    char url[LIM_HOST_MAX + 32];
    struct rep_item *queue; /* utlist DL */
    size_t queued;
    int calls;  /* batches in flight */
    bool dirty; /* in ctx->dirty */
    struct rep_lane *dirty_next;
    bool stuck;                /* a batch has been out over REP_LANE_STUCK_MS: placement
                            passes this instance by until the batch ends */
    struct event *stuck_timer; /* owned, made at the first batch: fires
                                  every REP_LANE_STUCK_MS from the moment a
                                  batch leaves an idle lane until it ends */
};

struct rep_call {
    struct rep_lane *lane;
    struct rep_item **items; /* owned array */
    size_t n;
    size_t bad; /* results that were not their item's (another uuid, odd status) */
    struct hc_call *call;
    struct rep_call *prev, *next; /* in ctx->calls */
};

/* The logging instances of one discovery version with their lanes and
 * rendezvous keys, so a placement does not format and look up every
 * instance again: rebuilt only when the discovery list changes. */
struct rep_view {
    bool valid;       /* built, and for version */
    uint64_t version; /* disc_version when built */
    size_t n;
    struct rep_lane *lanes[REP_INSTANCES_MAX]; /* borrowed from the upstream records */
    const char *keys[REP_INSTANCES_MAX];       /* lanes[i]->up->key: "host:port" */
};

struct rep_ctx {
    struct event_base *base;
    struct hc_client *hc;
    struct disc_client *disc;
    struct up_table *ups;
    struct rep_options opt;
    int64_t (*now)(void);    /* opt.clock, or clk_now_ms */
    struct event *flush;     /* owned: sends the dirty lanes' queues */
    struct rep_lane *dirty;  /* singly linked */
    struct rep_msg *msgs;    /* unfinished messages (utlist DL) in deadline order
                                 (store time + opt.deadline_ms then: oldest
                                 first unless rep_set_deadline shortened it) */
    struct event *deadlines; /* owned: fires at (or after) the oldest deadline */
    struct rep_call *calls;  /* batches in flight (utlist DL) */
    size_t pending;
    uint64_t under_replicated;     /* messages answered with fewer copies than replicas */
    uint64_t replicated;           /* messages answered 200 */
    uint64_t copies;               /* copies stored (201) or found stored (200) */
    uint64_t retries[REP_REASONS]; /* failed copies by cause (rep_reason_name) */
    struct rep_view view;
    struct disc_instance scratch[REP_INSTANCES_MAX]; /* for rebuilding the view */
    struct pm_reader *reader;                        /* owned: reads batch answers */
};

static void rep_attempt(struct rep_msg *m);

/* ---------------------------------------------------------------------- */
/* messages */

static void rep_msg_unref(struct rep_msg *m)
{
    if (--m->refs > 0)
        return;
    if (m->timer) {
        clk_timers_disarm(m->ctx->opt.timers, m->timer);
        event_free(m->timer);
    }
    free(m->tried);
    free(m);
}

/* Finish m once: reply through done, forget it in the context. Its lines
 * carry its trace. */
static void rep_finish(struct rep_msg *m, int status, const char *error)
{
    struct rep_ctx *r = m->ctx;
    char prev[LOG_TRACE_MAX + 1];

    if (m->finished)
        return;
    log_trace_set(m->trace, prev);
    m->finished = true;
    clk_timers_disarm(r->opt.timers, m->timer);
    DL_DELETE(r->msgs, m);
    r->pending--;
    if ((status == 200 || status == 503) && m->nstored > 0 && m->nstored < (size_t)m->replicas) {
        r->under_replicated++;
        log_warn("message %s has %zu of %d copies (%s): %s", m->uuid, m->nstored, m->replicas,
                 status == 200 ? "answered 200: every reachable instance has it"
                               : "answered 503 at its deadline",
                 m->last_error[0] ? m->last_error : "fewer passing instances than replicas");
    }
    if (status == 200)
        r->replicated++;
    m->done(status, (int)m->nstored, error, m->uuid, m->done_arg);
    log_trace_set(prev, NULL);
    rep_msg_unref(m);
}

static bool rep_has(struct up_instance *const *set, size_t n, const struct up_instance *u)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (set[i] == u)
            return true;
    return false;
}

static void rep_remove(struct up_instance **set, size_t *n, const struct up_instance *u)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (set[i] == u) {
            set[i] = set[--*n];
            return;
        }
    }
}

/* Finish m with 503: its deadline passed; the text says how many copies
 * were made. */
static void rep_expire(struct rep_msg *m)
{
    char why[600];

    if (m->nstored > 0)
        snprintf(why, sizeof(why), "stored on %zu of %d %s instances within %lld ms: %s",
                 m->nstored, m->replicas, PM_SERVICE, (long long)m->wait_ms,
                 m->last_error[0] ? m->last_error : "the other copies are still owed");
    else
        snprintf(why, sizeof(why), "no %s instance stored it within %lld ms: %s", PM_SERVICE,
                 (long long)m->wait_ms,
                 m->last_error[0] ? m->last_error : "no passing instance known");
    rep_finish(m, 503, why);
}

/* Remember that u failed m this round, so placement skips it. Out of
 * memory, it is not remembered: placement may pick it again, and its
 * breaker still counts the failure. */
static void rep_tried(struct rep_msg *m, struct up_instance *u)
{
    if (!m->tried) {
        m->tried = calloc(2 * REP_INSTANCES_MAX, sizeof(*m->tried));
        m->unreach = m->tried ? m->tried + REP_INSTANCES_MAX : NULL;
    }
    if (m->tried && m->ntried < REP_INSTANCES_MAX && !rep_has(m->tried, m->ntried, u))
        m->tried[m->ntried++] = u;
}

/* Remember that u cannot be reached this round (it refused the connection,
 * or its breaker is open): besides being skipped, it is no longer counted
 * among the instances a copy is owed to. Out of memory, it is not
 * remembered: the message then waits for it as before. */
static void rep_unreachable(struct rep_msg *m, struct up_instance *u)
{
    rep_tried(m, u);
    if (m->unreach && m->nunreach < REP_INSTANCES_MAX && !rep_has(m->unreach, m->nunreach, u))
        m->unreach[m->nunreach++] = u;
}

/* A backoff wait is over: try again (unless the deadline passed). */
static void rep_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rep_msg *m = arg;

    (void)fd;
    (void)what;
    if (m->ctx->now() >= m->deadline) {
        rep_expire(m);
        return;
    }
    m->ntried = 0;
    m->nunreach = 0;
    rep_attempt(m);
}

/* Arm r's deadline timer for its oldest message. Messages finish mostly in
 * order, so the timer is not moved when the oldest one finishes: it fires
 * at an old deadline, finds that message gone and is armed again. */
static void rep_deadlines_arm(struct rep_ctx *r)
{
    if (r->msgs && clk_timers_arm(r->opt.timers, r->deadlines, r->msgs->deadline - r->now()) != 0)
        log_error("cannot arm the deadline timer; messages wait for their copies");
}

/* The deadline timer: every message whose deadline passed answers 503. */
static void rep_deadlines_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rep_ctx *r = arg;
    int64_t now = r->now();

    (void)fd;
    (void)what;
    while (r->msgs && r->msgs->deadline <= now)
        rep_expire(r->msgs);
    rep_deadlines_arm(r);
}

/* Arm m's own timer to wake it after delay_ms for another attempt. 0, or
 * -1 out of memory (then the deadline timer ends it). */
static int rep_wait(struct rep_msg *m, int64_t delay_ms)
{
    if (!m->timer)
        m->timer = evtimer_new(m->ctx->base, rep_timer_cb, m);
    if (!m->timer)
        return -1;
    return clk_timers_arm(m->ctx->opt.timers, m->timer, delay_ms);
}

/* ---------------------------------------------------------------------- */
/* lanes and batches */

static struct rep_lane *rep_lane_get(struct rep_ctx *r, const struct disc_instance *in)
{
    struct up_instance *u = up_get(r->ups, PM_SERVICE, in->host, in->port);
    struct rep_lane *lane;

    if (!u)
        return NULL;
    if (u->user)
        return u->user;
    lane = calloc(1, sizeof(*lane));
    if (!lane)
        return NULL;
    lane->ctx = r;
    lane->up = u;
    snprintf(lane->host, sizeof(lane->host), "%s", in->host);
    lane->port = in->port;
    if (strchr(in->host, ':'))
        snprintf(lane->url, sizeof(lane->url), "http://[%s]:%d%s", in->host, in->port, PM_PATH);
    else
        snprintf(lane->url, sizeof(lane->url), "http://%s:%d%s", in->host, in->port, PM_PATH);
    u->user = lane;
    return lane;
}

static void rep_mark_dirty(struct rep_lane *lane)
{
    struct rep_ctx *r = lane->ctx;

    if (!lane->dirty) {
        lane->dirty = true;
        lane->dirty_next = r->dirty;
        r->dirty = lane;
    }
    if (!event_pending(r->flush, EV_TIMEOUT, NULL))
        event_active(r->flush, EV_TIMEOUT, 0);
}

/* The outcome of one item: a copy stored, or failed (retryable or not);
 * refused: the instance refused the connection (or its breaker is open),
 * so it is not counted as a place a copy is owed to this round. */
static void rep_item_done(struct rep_item *it, int status, const char *error, bool refused,
                          enum rep_reason reason)
{
    struct rep_msg *m = it->m;
    struct up_instance *u = it->lane->up;
    bool detached = it->detached;

    /* the slot is free again before rep_attempt may want one */
    it->used = false;
    it->detached = false;
    if (!detached)
        rep_remove(m->inflight, &m->ninflight, u);
    if (!m->finished && detached && status != 200 && status != 201) {
        /* the message moved on from this instance when its batch got
         * stuck: the failure was counted then */
    } else if (!m->finished) {
        if (status == 200 || status == 201) {
            if (!rep_has(m->stored, m->nstored, u) && m->nstored < REP_REPLICAS_MAX) {
                m->stored[m->nstored++] = u;
                m->ctx->copies++;
            }
            rep_attempt(m);
        } else if (status == 409) {
            rep_finish(m, 409, "this uuid is already stored with a different message");
        } else if (status == 400) {
            char why[600];

            snprintf(why, sizeof(why), "%s %.260s refused the message: %.200s", PM_SERVICE, u->key,
                     error ? error : "bad request");
            rep_finish(m, 502, why);
        } else {
            /* rep_attempt logs the retry: a failover, or a wait. */
            u->retries++;
            m->ctx->retries[reason]++;
            snprintf(m->last_error, sizeof(m->last_error), "%.150s", error ? error : "failed");
            m->last_target = u;
            m->failed = true;
            if (refused)
                rep_unreachable(m, u);
            else
                rep_tried(m, u);
            rep_attempt(m);
        }
    }
    rep_msg_unref(m);
}

/* Fail every item of c retryably with error (borrowed); refused as in
 * rep_item_done. */
static void rep_call_fail_all(struct rep_call *c, const char *error, bool refused,
                              enum rep_reason reason)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        rep_item_done(c->items[i], 503, error, refused, reason);
}

static void rep_send_lane(struct rep_lane *lane);

/* The copy it (in flight or queued on a stuck lane) is given up on: the
 * message counts it as a failed copy of that instance and moves on (the
 * retry line names that instance). An item in flight stays the call's,
 * detached; a queued one is the caller's to take out of the queue and
 * release. */
static void rep_item_move_on(struct rep_item *it)
{
    struct rep_msg *m = it->m;
    struct up_instance *u = it->lane->up;

    rep_remove(m->inflight, &m->ninflight, u);
    if (m->finished)
        return;
    snprintf(m->last_error, sizeof(m->last_error),
             "no answer within %d ms (a batch outstanding at %.100s)", REP_LANE_STUCK_MS, u->key);
    m->last_target = u;
    m->failed = true;
    u->retries++;
    m->ctx->retries[REP_REASON_STUCK]++;
    rep_tried(m, u);
    rep_attempt(m);
}

/* The stuck timer of a lane (arg): its batch has been out for
 * REP_LANE_STUCK_MS. Mark the lane stuck, and move every copy waiting for
 * it, queued or in its batch, to the next instance of its message. */
static void rep_stuck_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rep_lane *lane = arg;
    struct rep_ctx *r = lane->ctx;
    struct rep_item *queue = lane->queue, *it, *tmp;
    struct rep_call *c;
    size_t i;

    (void)fd;
    (void)what;
    if (lane->calls == 0 || lane->stuck)
        return;
    lane->stuck = true;
    log_warn("%s %s has had a batch outstanding for %d ms: new copies go to the next instance",
             PM_SERVICE, lane->up->key, REP_LANE_STUCK_MS);
    /* the queue is taken whole first: placement passes a stuck lane by,
     * so nothing is queued here meanwhile */
    lane->queue = NULL;
    lane->queued = 0;
    DL_FOREACH_SAFE (queue, it, tmp) {
        struct rep_msg *m = it->m;

        DL_DELETE(queue, it);
        it->used = false;
        rep_item_move_on(it);
        rep_msg_unref(m);
    }
    DL_FOREACH (r->calls, c) {
        if (c->lane != lane)
            continue;
        for (i = 0; i < c->n; i++) {
            if (!c->items[i]->detached) {
                c->items[i]->detached = true;
                rep_item_move_on(c->items[i]);
            }
        }
    }
}

/* pm_result_fn of a batch answer (arg: the call): hand item index its
 * outcome. The decoder checked that the answer says "success":true and has
 * one result per item; a result counts as the item's only when it names
 * the item's uuid, and as stored only with status 201 (stored) or 200
 * (duplicate). A result for another uuid, or with any other status than
 * those and 409/400, is a failed copy: it moves on as a failure of this
 * instance, and the batch charges the instance's breaker. */
static int rep_result(const struct pm_result *res, size_t index, void *arg)
{
    struct rep_call *c = arg;
    struct rep_item *it = c->items[index];
    char why[160];

    if (!res->uuid || strcasecmp(res->uuid, it->m->uuid) != 0) {
        c->bad++;
        snprintf(why, sizeof(why), "batch result %zu is for uuid %.40s, not %s", index,
                 res->uuid ? res->uuid : "(none)", it->m->uuid);
        rep_item_done(it, 503, why, false, REP_REASON_BAD_ANSWER);
        return 0;
    }
    switch (res->status) {
    case 200:
    case 201:
    case 400:
    case 409:
        rep_item_done(it, res->status, res->error, false, REP_REASON_BAD_ANSWER);
        break;
    default:
        c->bad++;
        snprintf(why, sizeof(why), "batch result %zu has status %d", index, res->status);
        rep_item_done(it, 503, why, false, REP_REASON_BAD_ANSWER);
        break;
    }
    return 0;
}

/* Completion of one batch POST: 200 with one result per item hands each
 * item its own outcome (proto/messages reads the answer, rep_result checks
 * each result is its item's); anything else fails every item, retryably
 * unless logging refused the batch (4xx). A 200 that is not a true answer
 * for every item counts as a failure of the instance for its breaker. */
static void rep_call_done(const struct hc_response *resp, void *arg)
{
    struct rep_call *c = arg;
    struct rep_lane *lane = c->lane;
    struct rep_ctx *r = lane->ctx;
    char why[200], err[160];
    size_t i;
    int status;
    enum rep_reason reason = REP_REASON_BAD_ANSWER;

    DL_DELETE(r->calls, c);
    lane->calls--;
    if (lane->calls == 0) {
        lane->stuck = false;
        clk_timers_disarm(r->opt.timers, lane->stuck_timer);
    }
    if (resp->error != HC_OK) {
        up_record(r->ups, lane->up, false, resp->elapsed_ms);
        rep_call_fail_all(c, resp->error_msg, resp->error == HC_ECONNECT,
                          resp->error == HC_ECONNECT   ? REP_REASON_CONNECT
                          : resp->error == HC_ETIMEOUT ? REP_REASON_TIMEOUT
                                                       : REP_REASON_OTHER);
        goto cleanup;
    }
    if (resp->status == 200) {
        /* recorded once the results are read: a false answer is a failure */
        if (pm_results_decode(r->reader, resp->body, resp->body_len, (long)c->n, rep_result, c, err,
                              sizeof(err)) >= 0) {
            up_record(r->ups, lane->up, c->bad == 0, resp->elapsed_ms);
            goto cleanup;
        }
        up_record(r->ups, lane->up, false, resp->elapsed_ms);
        snprintf(why, sizeof(why), "HTTP 200: %s", err);
        status = 503;
    } else {
        bool known = pm_error_decode(resp->body, resp->body_len, err, sizeof(err)) == 0;

        up_record(r->ups, lane->up, resp->status < 500 && resp->status != 429, resp->elapsed_ms);
        snprintf(why, sizeof(why), "HTTP %ld%s%s", resp->status, known ? ": " : "",
                 known ? err : "");
        status = resp->status >= 500 || resp->status == 429 ? 503 : 400;
        reason = resp->status == 429 ? REP_REASON_429 : REP_REASON_5XX;
    }
    for (i = 0; i < c->n; i++)
        rep_item_done(c->items[i], status, why, false, reason);
cleanup:
    free(c->items);
    free(c);
    if (lane->queued > 0)
        rep_send_lane(lane);
}

/* Arm lane's stuck timer for the batch that just left. Without it (out of
 * memory), the lane is never marked stuck: copies wait for the call's own
 * timeout as before. */
static void rep_stuck_arm(struct rep_lane *lane)
{
    struct rep_ctx *r = lane->ctx;

    /* persistent: a watchdog that fires every REP_LANE_STUCK_MS while
     * batches are out (a no-op once the lane is marked stuck), disarmed
     * when the last one ends */
    if (!lane->stuck_timer)
        lane->stuck_timer = event_new(r->base, -1, EV_PERSIST, rep_stuck_cb, lane);
    if (!lane->stuck_timer ||
        clk_timers_arm(r->opt.timers, lane->stuck_timer, REP_LANE_STUCK_MS) != 0)
        log_error("%s %s: cannot arm the stuck-batch timer", PM_SERVICE, lane->up->key);
}

/* Send as many batches from lane's queue as its in-flight bound allows. */
static void rep_send_lane(struct rep_lane *lane)
{
    struct rep_ctx *r = lane->ctx;

    while (lane->queued > 0 && lane->calls < REP_LANE_INFLIGHT) {
        struct rep_call *c = calloc(1, sizeof(*c));
        size_t cap = lane->queued < LIM_BATCH_MAX ? lane->queued : LIM_BATCH_MAX;
        char *body = NULL;
        size_t bytes = 1, i;
        struct hc_request req;
        char tp[TRC_PARENT_LEN + 1];

        if (!c || !(c->items = calloc(cap, sizeof(*c->items)))) {
            free(c);
            return; /* stays queued; the next completion or store retries */
        }
        c->lane = lane;
        while (lane->queue && c->n < cap &&
               (c->n == 0 || bytes + lane->queue->m->item_len + 1 <= LIM_BATCH_BYTES)) {
            struct rep_item *it = lane->queue;

            DL_DELETE(lane->queue, it);
            lane->queued--;
            c->items[c->n++] = it;
            bytes += it->m->item_len + 1;
        }
        /* The body: the items' encodings joined into one JSON array. */
        body = malloc(bytes + 1);
        if (body) {
            char *p = body;

            for (i = 0; i < c->n; i++) {
                *p++ = i ? ',' : '[';
                memcpy(p, c->items[i]->m->item, c->items[i]->m->item_len);
                p += c->items[i]->m->item_len;
            }
            *p++ = ']';
            *p = '\0';
        }
        if (!up_allow(r->ups, lane->up)) {
            free(body);
            rep_call_fail_all(c, "circuit breaker open", true, REP_REASON_BREAKER);
            free(c->items);
            free(c);
            continue;
        }
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.url = lane->url;
        req.body = body;
        req.body_len = body ? bytes : 0;
        req.token = r->opt.token;
        /* one header per call: the first item's trace (each item carries
         * its own in the body) */
        if (c->n > 0 && c->items[0]->m->trace[0]) {
            trc_format_child(c->items[0]->m->trace, tp);
            req.traceparent = tp;
        }
        req.timeout_ms = LIM_CALL_TIMEOUT_MS;
        req.connect_timeout_ms = LIM_CONNECT_TIMEOUT_MS;
        c->call = body ? hc_send(r->hc, &req, rep_call_done, c) : NULL;
        free(body);
        if (!c->call) {
            up_record(r->ups, lane->up, false, 0);
            rep_call_fail_all(c, "could not start the request", false, REP_REASON_OTHER);
            free(c->items);
            free(c);
            continue;
        }
        lane->calls++;
        DL_APPEND(r->calls, c);
        if (lane->calls == 1)
            rep_stuck_arm(lane);
    }
}

/* End of a loop turn with copies queued: send them. */
static void rep_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rep_ctx *r = arg;

    (void)fd;
    (void)what;
    while (r->dirty) {
        struct rep_lane *lane = r->dirty;

        r->dirty = lane->dirty_next;
        lane->dirty = false;
        rep_send_lane(lane);
    }
    /* the batches leave now, not after the next turn's events */
    hc_kick(r->hc);
}

/* ---------------------------------------------------------------------- */
/* placement */

/* Queue a copy of m for the instance in; 0 or -1 on OOM. */
static int rep_enqueue(struct rep_msg *m, struct rep_lane *lane)
{
    struct rep_item *it = NULL;
    size_t i;

    for (i = 0; i < REP_REPLICAS_MAX && !it; i++)
        if (!m->copies[i].used)
            it = &m->copies[i];
    if (!it)
        return -1; /* all slots taken by copies detached on stuck lanes */
    it->m = m;
    it->lane = lane;
    it->used = true;
    m->refs++;
    m->inflight[m->ninflight++] = lane->up;
    DL_APPEND(lane->queue, it);
    lane->queued++;
    rep_mark_dirty(lane);
    return 0;
}

/* The current view of the logging instances (see struct rep_view). An
 * instance whose lane cannot be made (out of memory) is left out of this
 * view, which is then rebuilt next time. */
static const struct rep_view *rep_view_get(struct rep_ctx *r)
{
    struct rep_view *v = &r->view;
    uint64_t version = disc_version(r->disc, PM_SERVICE);
    size_t n, i;

    if (v->valid && v->version == version)
        return v;
    n = disc_list(r->disc, PM_SERVICE, r->scratch, REP_INSTANCES_MAX);
    v->valid = true;
    v->version = version;
    v->n = 0;
    for (i = 0; i < n; i++) {
        struct rep_lane *lane = rep_lane_get(r, &r->scratch[i]);

        if (!lane) {
            v->valid = false;
            continue;
        }
        v->lanes[v->n] = lane;
        v->keys[v->n] = lane->up->key;
        v->n++;
    }
    return v;
}

/* How many copies m needs in view v: replicas, or fewer when fewer
 * instances are listed and not unreachable this round (refused, breaker
 * open); an instance that has m counts whatever happened since. */
static size_t rep_need(const struct rep_msg *m, const struct rep_view *v)
{
    size_t replicas = (size_t)m->replicas, reachable = 0, i;

    for (i = 0; i < v->n; i++) {
        const struct up_instance *u = v->lanes[i]->up;

        if (!rep_has(m->unreach, m->nunreach, u) || rep_has(m->stored, m->nstored, u))
            reachable++;
    }
    return reachable < replicas ? reachable : replicas;
}

static void rep_attempt_now(struct rep_msg *m);

/* Decide what m needs now: finish, send copies, or wait and retry; the
 * lines logged meanwhile carry m's trace. */
static void rep_attempt(struct rep_msg *m)
{
    char prev[LOG_TRACE_MAX + 1];

    log_trace_set(m->trace, prev);
    rep_attempt_now(m);
    log_trace_set(prev, NULL);
}

/* rep_attempt's work. */
static void rep_attempt_now(struct rep_msg *m)
{
    struct rep_ctx *r = m->ctx;
    const struct rep_view *v = NULL;
    size_t order[REP_INSTANCES_MAX];
    size_t replicas = (size_t)m->replicas, n, need, i;
    const struct rep_lane *first_new = NULL; /* first instance given a copy now */
    int64_t now = r->now(), delay;

    if (m->finished)
        return;
    /* Every replica stored, or every copy on its way with nothing failed:
     * no need to look at the instances (the common case on completions). */
    if (m->nstored >= replicas) {
        rep_finish(m, 200, NULL);
        return;
    }
    if (!m->failed && m->nstored + m->ninflight >= replicas)
        return;
    v = rep_view_get(r);
    n = v->n;
    need = rep_need(m, v);
    if (need > 0 && m->nstored >= need) {
        rep_finish(m, 200, NULL);
        return;
    }
    rv_rank(m->uuid, v->keys, n, order);
    for (i = 0; i < n && m->nstored + m->ninflight < replicas; i++) {
        struct rep_lane *lane = v->lanes[order[i]];

        if (rep_has(m->stored, m->nstored, lane->up) ||
            rep_has(m->inflight, m->ninflight, lane->up) || rep_has(m->tried, m->ntried, lane->up))
            continue;
        if (lane->stuck) {
            /* owed a copy still (it may answer), but not waited for now */
            rep_tried(m, lane->up);
            if (!m->last_error[0]) {
                snprintf(m->last_error, sizeof(m->last_error),
                         "a batch outstanding over %d ms at %.100s", REP_LANE_STUCK_MS,
                         lane->up->key);
                m->last_target = lane->up;
            }
            continue;
        }
        if (up_is_open(r->ups, lane->up)) {
            /* counted as a copy failed over: the breaker answered for it */
            r->retries[REP_REASON_BREAKER]++;
            rep_unreachable(m, lane->up);
            snprintf(m->last_error, sizeof(m->last_error), "circuit breaker open for %.120s",
                     lane->up->key);
            m->last_target = lane->up;
            continue;
        }
        if (rep_enqueue(m, lane) != 0)
            break;
        if (!first_new)
            first_new = lane;
    }
    if (m->failed && first_new) {
        /* the line names the instance that failed; the one the copy moved
         * to comes last */
        m->failed = false;
        m->attempt++;
        log_warn("retrying POST %s %s (attempt %u) in 0 ms: %s; copy moved to %s", PM_SERVICE,
                 m->last_target ? m->last_target->key : "(no instance)", m->attempt, m->last_error,
                 first_new->up->key);
    }
    if (m->ninflight > 0)
        return; /* the deadline timer holds while copies fly */
    /* Every instance that can be reached has a copy: fewer than replicas,
     * but waiting would not make more (the answer says how many). */
    need = rep_need(m, v);
    if (need > 0 && m->nstored >= need) {
        rep_finish(m, 200, NULL);
        return;
    }
    /* Nothing can take a copy now: wait, then try every instance again. */
    if (n == 0) {
        snprintf(m->last_error, sizeof(m->last_error), "no passing %s instance known", PM_SERVICE);
        r->retries[REP_REASON_NO_INSTANCE]++;
    }
    delay = bo_next_delay_ms(&r->opt.backoff, m->waits, now, m->deadline);
    m->waits++;
    m->attempt++;
    m->failed = false;
    if (delay < 0)
        return; /* no time left for a wait: the deadline timer ends it */
    log_warn("retrying POST %s %s (attempt %u) in %lld ms: %s", PM_SERVICE,
             m->last_target ? m->last_target->key : "(no instance)", m->attempt, (long long)delay,
             m->last_error);
    if (rep_wait(m, delay) != 0)
        log_error("message %s: cannot arm its retry timer; it fails at its deadline", m->uuid);
}

/* ---------------------------------------------------------------------- */

struct rep_ctx *rep_new(struct event_base *base, struct hc_client *hc, struct disc_client *disc,
                        struct up_table *ups, const struct rep_options *opt)
{
    struct rep_ctx *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->base = base;
    r->hc = hc;
    r->disc = disc;
    r->ups = ups;
    r->opt = *opt;
    r->now = opt->clock ? opt->clock : clk_now_ms;
    if (r->opt.replicas < 1)
        r->opt.replicas = 1;
    if (r->opt.replicas > REP_REPLICAS_MAX)
        r->opt.replicas = REP_REPLICAS_MAX;
    r->flush = event_new(base, -1, 0, rep_flush_cb, r);
    r->deadlines = evtimer_new(base, rep_deadlines_cb, r);
    r->reader = pm_reader_new();
    if (!r->flush || !r->deadlines || !r->reader) {
        if (r->flush)
            event_free(r->flush);
        if (r->deadlines)
            event_free(r->deadlines);
        pm_reader_free(r->reader);
        free(r);
        return NULL;
    }
    return r;
}

int rep_store(struct rep_ctx *r, const char *uuid, const char *msg, size_t msg_len, int64_t ts,
              rep_done_fn done, void *arg)
{
    return rep_store_traced(r, uuid, msg, msg_len, ts, NULL, done, arg);
}

int rep_store_traced(struct rep_ctx *r, const char *uuid, const char *msg, size_t msg_len,
                     int64_t ts, const char *trace, rep_done_fn done, void *arg)
{
    /* One allocation holds the message, its copies and its encoding, which
     * is written by hand (jansson's pack and dump were ~10% of a POST). */
    bool traced = trc_trace_id_valid(trace);
    struct rep_msg *m =
        malloc(sizeof(*m) + jw_message_len(uuid, msg, msg_len) + (traced ? PM_TRACE_PUT_MAX : 0));
    struct rep_msg *before = NULL;

    if (!m)
        return -1;
    memset(m, 0, sizeof(*m));
    m->item_len = (size_t)(jw_message_put(m->item, uuid, msg, msg_len, ts) - m->item);
    if (traced) {
        /* the item's optional trace member goes before its closing brace */
        m->item_len = m->item_len - 1 + pm_trace_put(m->item + m->item_len - 1, trace);
        memcpy(m->trace, trace, sizeof(m->trace));
    }
    snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
    m->ctx = r;
    m->replicas = r->opt.replicas;
    m->wait_ms = r->opt.deadline_ms;
    m->deadline = r->now() + m->wait_ms;
    m->refs = 1;
    m->done = done;
    m->done_arg = arg;
    /* after the last message due no later (the tail, unless the deadline
     * was shortened since older ones were stored) */
    before = r->msgs ? r->msgs->prev : NULL;
    while (before && before->deadline > m->deadline)
        before = before == r->msgs ? NULL : before->prev;
    if (before) {
        DL_APPEND_ELEM(r->msgs, before, m);
    } else {
        DL_PREPEND(r->msgs, m);
        rep_deadlines_arm(r); /* the first due now */
    }
    r->pending++;
    /* The first placement cannot finish the message (nothing is stored
     * yet), so done never runs inside rep_store. */
    rep_attempt(m);
    return 0;
}

void rep_set_replicas(struct rep_ctx *r, int replicas)
{
    if (replicas >= 1 && replicas <= REP_REPLICAS_MAX)
        r->opt.replicas = replicas;
}

void rep_set_deadline(struct rep_ctx *r, int64_t deadline_ms)
{
    if (deadline_ms > 0)
        r->opt.deadline_ms = deadline_ms;
}

int rep_replicas(const struct rep_ctx *r) { return r->opt.replicas; }

int64_t rep_deadline(const struct rep_ctx *r) { return r->opt.deadline_ms; }

size_t rep_pending(const struct rep_ctx *r) { return r->pending; }

uint64_t rep_under_replicated(const struct rep_ctx *r) { return r->under_replicated; }

uint64_t rep_replicated(const struct rep_ctx *r) { return r->replicated; }

uint64_t rep_copies(const struct rep_ctx *r) { return r->copies; }

uint64_t rep_retries(const struct rep_ctx *r, enum rep_reason reason)
{
    return (unsigned)reason < REP_REASONS ? r->retries[reason] : 0;
}

const char *rep_reason_name(enum rep_reason reason)
{
    static const char *const names[REP_REASONS] = {"connect", "timeout",     "5xx",
                                                   "429",     "bad_answer",  "breaker_open",
                                                   "stuck",   "no_instance", "other"};

    return (unsigned)reason < REP_REASONS ? names[reason] : "other";
}

static void rep_lane_free(struct up_instance *u, void *arg)
{
    struct rep_lane *lane = u->user;
    struct rep_item *it, *tmp;

    (void)arg;
    if (!lane)
        return;
    DL_FOREACH_SAFE (lane->queue, it, tmp) {
        DL_DELETE(lane->queue, it);
        it->used = false;
        rep_msg_unref(it->m);
    }
    if (lane->stuck_timer) {
        clk_timers_disarm(lane->ctx->opt.timers, lane->stuck_timer);
        event_free(lane->stuck_timer);
    }
    free(lane);
    u->user = NULL;
}

void rep_free(struct rep_ctx *r)
{
    struct rep_call *c, *ctmp;
    struct rep_msg *m, *mtmp;
    size_t i;

    if (!r)
        return;
    DL_FOREACH_SAFE (r->calls, c, ctmp) {
        DL_DELETE(r->calls, c);
        hc_cancel(c->call);
        for (i = 0; i < c->n; i++) {
            c->items[i]->used = false;
            rep_msg_unref(c->items[i]->m);
        }
        free(c->items);
        free(c);
    }
    up_foreach(r->ups, rep_lane_free, NULL);
    DL_FOREACH_SAFE (r->msgs, m, mtmp) {
        DL_DELETE(r->msgs, m);
        m->finished = true;
        rep_msg_unref(m);
    }
    event_free(r->flush);
    clk_timers_disarm(r->opt.timers, r->deadlines);
    event_free(r->deadlines);
    pm_reader_free(r->reader);
    free(r);
}
