/* register.c: self-registration with the registry (see register.h).
 *
 * One state machine on the event loop, driven by one timer and at most one
 * registry call at a time (plus the final DELETE):
 *
 *   register --201/200--> wait ttl/3 --> renew --200--> wait ttl/3 --> ...
 *      ^                                   |
 *      +---------------- 404 --------------+   "registry forgot us"
 *
 * Any other failure (connection refused, timeout, 5xx, an unexpected
 * status) retries the same step after a backoff delay with full jitter
 * (BO base 100 ms, cap 2 s), on the next registry URL of the list. Which
 * URL, and how an outage is logged, is the shared policy of failover.h
 * (the list is shared with the discovery cache).
 *
 * With RC_CHECK_NONE there is no lease: the machine stops after the
 * registration is acknowledged (nothing to renew). The maintenance call
 * (rc_maintenance, the start of a drain) is a call of its own beside the
 * machine's, so renewals go on while it is out.
 *
 * The timer is armed through the clk_timers hook of rc_options (NULL: the
 * real clock), so tests run the whole machine on a virtual clock.
 *
 * Ownership: the client borrows base, hc, urls and timers; it owns its timer and
 * its calls. Callbacks clear the call pointer first thing, so hc_cancel is
 * never given a call whose done is running. rc_free must run before
 * hc_client_free (it cancels its calls on the client). */
#include "regclient/register.h"

#include "codec/uid.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "proto/registry_v1.h"
#include "regclient/failover.h"
#include "regclient/urls.h"
#include "resilience/backoff.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RC_RENEW_MIN_MS         100 /* floor of ttl/3 */
#define RC_RENEW_TIMEOUT_MIN_MS 250 /* floor of a renewal's timeout (ttl/4) */
#define RC_RETRY_BASE_MS        BO_BASE_MS_DEFAULT
#define RC_RETRY_CAP_MS         BO_CAP_MS_DEFAULT
#define RC_ATTEMPT_MAX          32 /* the ceiling is at the cap long before */
#define RC_URL_MAX              (RU_URL_MAX + LIM_ID_MAX + 32)
#define RC_WHY_MAX              256 /* text describing one failure */
#define RC_DUR_MAX              32  /* "3600000ms" */

/* The registry side of checks and maintenance (the registration's "check"
 * and "checks" members, PUT .../maintenance). They belong in
 * proto/registry_v1.h beside the other names of the wire contract; kept
 * here until the registry side that defines them there has landed. */
#define RC_MAINTENANCE_FMT REGV1_SERVICE_FMT "/maintenance"
#define RC_F_CHECK         "check"
#define RC_F_CHECKS        "checks"
#define RC_F_CHECK_HTTP    "http"
#define RC_F_INTERVAL      "interval"
#define RC_F_TIMEOUT       "timeout"
#define RC_F_ENABLE        "enable"
#define RC_F_REASON        "reason"
#define RC_HEALTH_PATH     "/health"

enum rc_step {
    RC_STEP_REGISTER, /* POST /v1/services */
    RC_STEP_RENEW,    /* PUT /v1/services/{id}/renew */
};

struct rc_client {
    struct event_base *base; /* borrowed */
    struct hc_client *hc;    /* borrowed */
    struct ru_list *urls;    /* borrowed, shared with discovery */
    char id[LIM_ID_MAX + 1];
    char *body; /* registration JSON, owned */
    int ttl_s;
    enum rc_check check;
    char token[LIM_ACL_TOKEN_MAX + 1]; /* X-Registry-Token of every call; "": none */
    bool denied;                       /* a 403 was logged; reset on success */
    const struct clk_timers *timers;   /* how timer is armed; borrowed, NULL: real */
    struct event *timer;               /* next renew or retry; owned */
    enum rc_step next;                 /* what the timer starts */
    struct hc_call *call;              /* register or renew in flight */
    struct fo_caller fo;               /* where call went, the outage it belongs to */
    struct hc_call *dereg;             /* the DELETE in flight */
    size_t dereg_url;                  /* urls->current when dereg was sent */
    struct hc_call *maint;             /* the maintenance PUT in flight */
    rc_maint_fn maint_done;            /* its completion, and arg (borrowed) */
    void *maint_arg;
    bool in_maintenance; /* asked to leave discovery: no re-registration */
    bool registered;     /* acknowledged, not forgotten since */
    bool started;
    bool stopped;
    struct bo_policy retry;
};

static void rc_send(struct rc_client *rc, enum rc_step step);

/* The URL at index i of the list (borrowed), for messages about a call
 * sent there: the shared cursor may have moved since. */
static const char *rc_call_url(const struct rc_client *rc, size_t i)
{
    if (rc->urls->n == 0)
        return "";
    return rc->urls->urls[i % rc->urls->n];
}

/* Arm the timer to start step after ms. A timer that cannot be armed
 * (event_add failing: out of memory) would stall the lease silently, so
 * it is logged. */
static void rc_schedule(struct rc_client *rc, enum rc_step step, int64_t ms)
{
    rc->next = step;
    if (clk_timers_arm(rc->timers, rc->timer, ms) != 0)
        log_error("cannot arm the registration timer of %s", rc->id);
}

/* The renewal period: a third of the ttl, so two renewals may be lost
 * before the registry marks us critical. */
static int64_t rc_renew_ms(const struct rc_client *rc)
{
    int64_t ms = (int64_t)rc->ttl_s * 1000 / 3;

    return ms < RC_RENEW_MIN_MS ? RC_RENEW_MIN_MS : ms;
}

/* The timeout of one renewal: a quarter of the ttl, between
 * RC_RENEW_TIMEOUT_MIN_MS and LIM_CALL_TIMEOUT_MS. A renewal sent ttl/3
 * after the last one that was answered, to a registry that died without
 * closing its connections, is then given up 7/12 of the ttl after that
 * answer and sent to the next URL with a third of the ttl still left
 * before the lease lapses (with the plain call timeout, 2 s, a ttl of 4 s
 * left none on a loaded machine). */
static long rc_renew_timeout_ms(const struct rc_client *rc)
{
    int64_t ms = (int64_t)rc->ttl_s * 1000 / 4;

    if (ms < RC_RENEW_TIMEOUT_MIN_MS)
        ms = RC_RENEW_TIMEOUT_MIN_MS;
    return ms < LIM_CALL_TIMEOUT_MS ? (long)ms : LIM_CALL_TIMEOUT_MS;
}

/* Describe a failed response into why (cap bytes): the transport error, or
 * the status with the registry's "error" text when the body carries one.
 * Borrows resp. */
static void rc_describe(const struct hc_response *resp, char *why, size_t cap)
{
    json_t *doc = NULL;
    const char *text = NULL;

    if (resp->error != HC_OK) {
        errbuf_set(why, cap, "%s", resp->error_msg);
        return;
    }
    doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    text = json_string_value(json_object_get(doc, REGV1_F_ERROR));
    if (text != NULL)
        errbuf_set(why, cap, "HTTP %ld: %s", resp->status, text);
    else
        errbuf_set(why, cap, "HTTP %ld", resp->status);
    json_decref(doc);
}

/* A step failed (why: borrowed text): fail over and log by the shared
 * policy, and retry the same step after a backoff delay. */
static void rc_retry(struct rc_client *rc, enum rc_step step, const char *why)
{
    unsigned attempt = rc->fo.failures < RC_ATTEMPT_MAX ? rc->fo.failures : RC_ATTEMPT_MAX;
    int64_t delay = bo_delay_ms(&rc->retry, attempt);

    fo_failed(&rc->fo, why, "retrying in %lld ms", (long long)delay);
    rc_schedule(rc, step, delay);
}

/* A step failed (why: borrowed text): fail over and log by the shared
 * policy, and retry the same step after a backoff delay. A 403 (resp) is
 * a configuration problem, not an outage: it is said once at ERROR. */
static void rc_retry_after(struct rc_client *rc, enum rc_step step, const struct hc_response *resp,
                           const char *why)
{
    if (resp->error == HC_OK && resp->status == 403 && !rc->denied) {
        rc->denied = true;
        log_error("registry %s refused our token for %s: %s (check --token or --token-file); "
                  "retrying with backoff",
                  fo_sent_url(&rc->fo), rc->id, why);
    }
    rc_retry(rc, step, why);
}

/* Completion of POST /v1/services. 200/201: registered, renew in ttl/3;
 * anything else: retry. */
static void rc_on_register(const struct hc_response *resp, void *arg)
{
    struct rc_client *rc = arg;
    char why[RC_WHY_MAX];

    rc->call = NULL;
    if (resp->error == HC_OK && (resp->status == 201 || resp->status == 200)) {
        fo_succeeded(&rc->fo, NULL);
        if (!rc->registered)
            log_info("registered as %s with %s", rc->id, fo_sent_url(&rc->fo));
        rc->registered = true;
        rc->denied = false;
        if (rc->check != RC_CHECK_NONE)
            rc_schedule(rc, RC_STEP_RENEW, rc_renew_ms(rc));
        return;
    }
    rc_describe(resp, why, sizeof(why));
    rc_retry_after(rc, RC_STEP_REGISTER, resp, why);
}

/* Completion of PUT /v1/services/{id}/renew. 200: renew again in ttl/3;
 * 404: the registry lost us (restart, expiry, another replica): register
 * again at once under the same id; anything else: retry the renewal. */
static void rc_on_renew(const struct hc_response *resp, void *arg)
{
    struct rc_client *rc = arg;
    char why[RC_WHY_MAX];

    rc->call = NULL;
    if (resp->error == HC_OK && resp->status == 200) {
        fo_succeeded(&rc->fo, NULL);
        rc_schedule(rc, RC_STEP_RENEW, rc_renew_ms(rc));
        return;
    }
    if (resp->error == HC_OK && resp->status == 404 && rc->in_maintenance) {
        /* draining: coming back would put us in discovery again */
        fo_succeeded(&rc->fo, NULL);
        log_info("registry forgot us while in maintenance; not registering %s again", rc->id);
        rc->registered = false;
        return;
    }
    if (resp->error == HC_OK && resp->status == 404) {
        fo_succeeded(&rc->fo, NULL);
        log_info("registry forgot us; registering again as %s", rc->id);
        rc->registered = false;
        rc_send(rc, RC_STEP_REGISTER);
        return;
    }
    rc_describe(resp, why, sizeof(why));
    rc_retry_after(rc, RC_STEP_RENEW, resp, why);
}

/* Send the request of step to the current registry URL. A request that
 * cannot even be started counts as a failure (retried with backoff). */
static void rc_send(struct rc_client *rc, enum rc_step step)
{
    char url[RC_URL_MAX];
    const char *base;
    struct hc_request req;

    memset(&req, 0, sizeof(req));
    req.timeout_ms = LIM_CALL_TIMEOUT_MS;
    base = fo_send(&rc->fo);
    if (step == RC_STEP_REGISTER) {
        snprintf(url, sizeof(url), "%s" REGV1_SERVICES, base);
        req.method = "POST";
        req.body = rc->body;
        req.body_len = strlen(rc->body);
    } else {
        snprintf(url, sizeof(url), "%s" REGV1_RENEW_FMT, base, rc->id);
        req.method = "PUT";
        req.timeout_ms = rc_renew_timeout_ms(rc);
    }
    req.url = url;
    req.token = rc->token;
    rc->call = hc_send(rc->hc, &req, step == RC_STEP_REGISTER ? rc_on_register : rc_on_renew, rc);
    if (rc->call == NULL)
        rc_retry(rc, step, "cannot start the request");
}

/* Timer: start the scheduled step. */
static void rc_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rc_client *rc = arg;

    (void)fd;
    (void)what;
    if (rc->stopped || rc->call != NULL)
        return;
    rc_send(rc, rc->next);
}

/* Completion of DELETE /v1/services/{id}: log the outcome. */
static void rc_on_deregister(const struct hc_response *resp, void *arg)
{
    struct rc_client *rc = arg;
    char why[RC_WHY_MAX];

    rc->dereg = NULL;
    rc->registered = false;
    if (resp->error == HC_OK && resp->status == 200) {
        log_info("deregistered %s", rc->id);
        return;
    }
    if (resp->error == HC_OK && resp->status == 404) {
        log_info("deregistered %s (the registry did not know it)", rc->id);
        return;
    }
    rc_describe(resp, why, sizeof(why));
    log_warn("registry %s: %s; could not deregister %s (it expires after its ttl)",
             rc_call_url(rc, rc->dereg_url), why, rc->id);
}

/* Write ms as a registry duration into out (RC_DUR_MAX bytes): whole
 * seconds as "10s", anything else as "250ms". */
static void rc_format_duration(int64_t ms, char *out)
{
    if (ms % 1000 == 0)
        snprintf(out, RC_DUR_MAX, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, RC_DUR_MAX, "%lldms", (long long)ms);
}

/* The "check" member of an HTTP check of the instance's own /health at
 * host:port (an IPv6 literal in brackets). New reference, or NULL when out
 * of memory. */
static json_t *rc_http_check_new(const char *host, int port, int64_t interval_ms,
                                 int64_t timeout_ms)
{
    char url[LIM_HOST_MAX + 64];
    char interval[RC_DUR_MAX], timeout[RC_DUR_MAX];

    if (strchr(host, ':') != NULL)
        snprintf(url, sizeof(url), "http://[%s]:%d" RC_HEALTH_PATH, host, port);
    else
        snprintf(url, sizeof(url), "http://%s:%d" RC_HEALTH_PATH, host, port);
    rc_format_duration(interval_ms, interval);
    rc_format_duration(timeout_ms, timeout);
    return json_pack("{s:s, s:s, s:s}", RC_F_CHECK_HTTP, url, RC_F_INTERVAL, interval, RC_F_TIMEOUT,
                     timeout);
}

/* Build the registration body (caller frees), or NULL when out of memory:
 * the instance, plus by opt->check "ttl" (ttl), "ttl" and "check" (http),
 * or "checks": [] without "ttl" (none). */
static char *rc_body_new(const struct rc_client *rc, const struct rc_options *opt, const char *type)
{
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:i, s:s}", REGV1_F_ID, rc->id, REGV1_F_NAME, opt->name,
                  REGV1_F_HOST, opt->host, REGV1_F_PORT, opt->port, REGV1_F_TYPE, type);
    char *out = NULL;
    int bad = 0;

    if (doc == NULL)
        return NULL;
    if (opt->check == RC_CHECK_NONE) {
        bad = json_object_set_new(doc, RC_F_CHECKS, json_array());
    } else {
        bad = json_object_set_new(doc, REGV1_F_TTL, json_integer(rc->ttl_s));
        if (bad == 0 && opt->check == RC_CHECK_HTTP) {
            int64_t timeout = opt->check_timeout_ms;

            if (timeout <= 0)
                timeout = opt->check_interval_ms < LIM_CHECK_TIMEOUT_MAX_MS
                              ? opt->check_interval_ms
                              : LIM_CHECK_TIMEOUT_MAX_MS;
            bad = json_object_set_new(
                doc, RC_F_CHECK,
                rc_http_check_new(opt->host, opt->port, opt->check_interval_ms, timeout));
        }
    }
    if (bad == 0)
        out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return out;
}

/* Are the check members of opt in range (see rc_options)? */
static bool rc_check_valid(const struct rc_options *opt)
{
    switch (opt->check) {
    case RC_CHECK_TTL:
        return true;
    case RC_CHECK_NONE:
        return true;
    case RC_CHECK_HTTP:
        return opt->check_interval_ms >= LIM_CHECK_INTERVAL_MIN_MS &&
               opt->check_interval_ms <= LIM_CHECK_INTERVAL_MAX_MS && opt->check_timeout_ms >= 0 &&
               opt->check_timeout_ms <= opt->check_interval_ms;
    }
    return false;
}

/* Create the client (see register.h). Borrows base, hc, urls and opt
 * (whose strings are copied into the registration body). Returns NULL when
 * out of memory or when opt is out of range (no name, name over
 * LIM_NAME_MAX, no host, port outside 1..65535, ttl outside
 * LIM_TTL_MIN..LIM_TTL_MAX); caller frees with rc_free. */
struct rc_client *rc_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                         const struct rc_options *opt)
{
    struct rc_client *rc = NULL;
    char uuid[UID_STR_LEN + 1];
    const char *type = NULL;

    if (base == NULL || hc == NULL || urls == NULL || opt == NULL || opt->name == NULL ||
        opt->name[0] == '\0' || strlen(opt->name) > LIM_NAME_MAX || opt->host == NULL ||
        opt->host[0] == '\0' || opt->port < 1 || opt->port > 65535 || !rc_check_valid(opt) ||
        (opt->check != RC_CHECK_NONE && (opt->ttl_s < LIM_TTL_MIN || opt->ttl_s > LIM_TTL_MAX)) ||
        (opt->token != NULL && strlen(opt->token) > LIM_ACL_TOKEN_MAX))
        goto cleanup;
    type = opt->type != NULL ? opt->type : opt->name;
    rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        goto cleanup;
    rc->base = base;
    rc->hc = hc;
    rc->urls = urls;
    fo_init(&rc->fo, urls);
    rc->ttl_s = opt->ttl_s;
    rc->check = opt->check;
    if (opt->token != NULL)
        snprintf(rc->token, sizeof(rc->token), "%s", opt->token);
    rc->timers = opt->timers;
    rc->retry.base_ms = RC_RETRY_BASE_MS;
    rc->retry.cap_ms = RC_RETRY_CAP_MS;
    uid_generate(uuid);
    snprintf(rc->id, sizeof(rc->id), "%s-%s", opt->name, uuid);
    rc->body = rc_body_new(rc, opt, type);
    if (rc->body == NULL)
        goto cleanup;
    rc->timer = evtimer_new(base, rc_on_timer, rc);
    if (rc->timer == NULL)
        goto cleanup;
    return rc;

cleanup:
    rc_free(rc);
    return NULL;
}

/* Register now; the renewals and retries follow from the loop. Only the
 * first call does anything, and none after rc_stop. */
void rc_start(struct rc_client *rc)
{
    if (rc == NULL || rc->started || rc->stopped)
        return;
    rc->started = true;
    rc_send(rc, RC_STEP_REGISTER);
}

/* Stop the timer and the call in flight, then send DELETE (short timeout)
 * when rc_start ran: even an unacknowledged registration may have reached
 * the registry, and a 404 costs nothing. Only the first call does
 * anything. */
void rc_stop(struct rc_client *rc)
{
    char url[RC_URL_MAX];
    struct hc_request req;

    if (rc == NULL || rc->stopped)
        return;
    rc->stopped = true;
    clk_timers_disarm(rc->timers, rc->timer);
    hc_cancel(rc->call);
    rc->call = NULL;
    hc_cancel(rc->maint);
    rc->maint = NULL;
    if (!rc->started)
        return;
    memset(&req, 0, sizeof(req));
    rc->dereg_url = rc->urls->current;
    snprintf(url, sizeof(url), "%s" REGV1_SERVICE_FMT, ru_current(rc->urls), rc->id);
    req.method = "DELETE";
    req.url = url;
    req.token = rc->token;
    req.timeout_ms = LIM_DEREGISTER_TIMEOUT_MS;
    rc->dereg = hc_send(rc->hc, &req, rc_on_deregister, rc);
    if (rc->dereg == NULL)
        log_warn("could not send the deregistration of %s", rc->id);
}

/* Completion of PUT /v1/services/{id}/maintenance: log the outcome and
 * tell the caller. */
static void rc_on_maintenance(const struct hc_response *resp, void *arg)
{
    struct rc_client *rc = arg;
    rc_maint_fn done = rc->maint_done;
    void *done_arg = rc->maint_arg;
    char why[RC_WHY_MAX];
    bool ok = resp->error == HC_OK && resp->status == 200;

    rc->maint = NULL;
    rc->maint_done = NULL;
    rc->maint_arg = NULL;
    if (ok) {
        log_info("%s %s maintenance", rc->id, rc->in_maintenance ? "in" : "out of");
    } else {
        rc_describe(resp, why, sizeof(why));
        log_warn("registry %s: %s; could not change the maintenance of %s", ru_current(rc->urls),
                 why, rc->id);
    }
    if (done != NULL)
        done(ok, done_arg);
}

/* See register.h. */
int rc_maintenance(struct rc_client *rc, bool enable, const char *reason, int64_t timeout_ms,
                   rc_maint_fn done, void *arg)
{
    char url[RC_URL_MAX];
    struct hc_request req;
    json_t *doc = NULL;
    char *body = NULL;
    int out = -1;

    if (rc == NULL || rc->stopped || !rc->registered)
        return -1;
    hc_cancel(rc->maint);
    rc->maint = NULL;
    doc = json_pack("{s:b}", RC_F_ENABLE, enable ? 1 : 0);
    if (doc == NULL ||
        (enable && reason != NULL && json_object_set_new(doc, RC_F_REASON, json_string(reason))))
        goto cleanup;
    body = json_dumps(doc, JSON_COMPACT);
    if (body == NULL)
        goto cleanup;
    memset(&req, 0, sizeof(req));
    snprintf(url, sizeof(url), "%s" RC_MAINTENANCE_FMT, ru_current(rc->urls), rc->id);
    req.method = "PUT";
    req.url = url;
    req.body = body;
    req.body_len = strlen(body);
    req.token = rc->token;
    req.timeout_ms =
        timeout_ms > 0 && timeout_ms < LIM_CALL_TIMEOUT_MS ? (long)timeout_ms : LIM_CALL_TIMEOUT_MS;
    rc->in_maintenance = enable;
    rc->maint_done = done;
    rc->maint_arg = arg;
    rc->maint = hc_send(rc->hc, &req, rc_on_maintenance, rc);
    if (rc->maint == NULL) {
        rc->maint_done = NULL;
        rc->maint_arg = NULL;
        goto cleanup;
    }
    out = 0;
cleanup:
    free(body);
    json_decref(doc);
    return out;
}

/* Calls in flight: the register/renew call, the maintenance PUT and the
 * DELETE. */
size_t rc_busy(const struct rc_client *rc)
{
    if (rc == NULL)
        return 0;
    return (rc->call != NULL ? 1u : 0u) + (rc->maint != NULL ? 1u : 0u) +
           (rc->dereg != NULL ? 1u : 0u);
}

/* The instance id, borrowed from rc (lives as long as rc). */
const char *rc_id(const struct rc_client *rc)
{
    if (rc == NULL)
        return "";
    return rc->id;
}

/* Whether the last answer about our registration acknowledged it. */
bool rc_registered(const struct rc_client *rc) { return rc != NULL && rc->registered; }

/* Cancel the timer and the calls in flight (no callback runs) and free.
 * Accepts NULL. Must run before hc_client_free of the borrowed client and
 * not from one of rc's own callbacks. */
void rc_free(struct rc_client *rc)
{
    if (rc == NULL)
        return;
    if (rc->timer != NULL) {
        clk_timers_disarm(rc->timers, rc->timer);
        event_free(rc->timer);
    }
    hc_cancel(rc->call);
    hc_cancel(rc->maint);
    hc_cancel(rc->dereg);
    free(rc->body);
    memset(rc->token, 0, sizeof(rc->token));
    free(rc);
}
