/* check_api.c: health-check routes and the core <-> runner glue (see
 * check_api.h). */
#include "check_api.h"

#include "../checks/runner.h"
#include "../core/catalog.h"
#include "auth/guard.h"
#include "codec.h"
#include "codec/jsonerr.h"
#include "core/log.h"
#include "events.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check_api {
    struct svc *svc;          /* borrowed */
    struct rev_hub *hub;      /* borrowed */
    const struct acl *acl;    /* borrowed; NULL: open */
    struct reg_registry *reg; /* borrowed; NULL until cka_start */
    struct crun *run;         /* owned: the probes */
    bool leading;             /* probes run (this replica leads) */
};

/* A maintenance request waiting for its commit; freed by its completion. */
struct cka_wait {
    struct check_api *a;
    struct hs_req *req;
    char id[LIM_ID_MAX + 1];
};

/* The runner's report: hand the result to the core. */
static void cka_report(void *arg, const char *instance_id, const char *check_id,
                       enum crun_result res, const char *output)
{
    struct check_api *a = arg;
    enum reg_health h = res == CRUN_PASS   ? REG_PASSING
                        : res == CRUN_WARN ? REG_WARNING
                                           : REG_CRITICAL;

    if (a->reg)
        (void)reg_check_result(a->reg, instance_id, check_id, h, output);
}

/* Start the probes of in's http and tcp checks (replacing any it had). */
static void cka_add_probes(struct check_api *a, const struct reg_instance *in)
{
    size_t i, n = reg_instance_check_count(in);
    struct reg_check_view c;

    for (i = 0; i < n; i++) {
        reg_instance_check(in, i, &c);
        if (c.kind == REG_CHECK_TTL)
            continue;
        if (crun_add(a->run, reg_instance_id(in), c.id,
                     c.kind == REG_CHECK_HTTP ? CRUN_HTTP : CRUN_TCP, c.target, c.interval_ms,
                     c.timeout_ms) != 0)
            log_error("instance %s: could not start check %s (out of memory); it keeps its "
                      "status",
                      reg_instance_id(in), c.id);
    }
}

void cka_observe(void *arg, const struct reg_event *ev)
{
    struct check_api *a = arg;

    switch (ev->type) {
    case REG_EV_REGISTER:
        /* a re-registration replaced the instance: its probes too */
        crun_remove_instance(a->run, reg_instance_id(ev->in));
        if (a->leading)
            cka_add_probes(a, ev->in);
        break;
    case REG_EV_DEREGISTER:
    case REG_EV_EXPIRE:
        crun_remove_instance(a->run, reg_instance_id(ev->in));
        break;
    default:
        break;
    }
    rev_observe(a->hub, ev);
}

/* X-Registry-Index on an answer. */
static void cka_index_header(struct check_api *a, struct hs_req *req)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, reg_index(a->reg));
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr);
}

/* GET /v1/services/{id}/checks */
static void cka_checks(struct hs_req *req, void *arg)
{
    struct check_api *a = arg;
    const char *id = hs_req_param(req, REGV1_PARAM_ID);
    const struct reg_instance *in = NULL;
    struct evbuffer *out = hs_req_output(req);

    if (!guard_request(a->acl, req, ACL_READ, NULL))
        return;
    cka_index_header(a, req);
    in = reg_get(a->reg, id);
    if (!in) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    if (evbuffer_add_printf(out,
                            "{\"success\":true,\"" REGV1_F_SERVICE_ID "\":\"%s\",\"" REGV1_F_HEALTH
                            "\":\"%s\",\"" REGV1_F_CHECKS "\":",
                            reg_instance_id(in), regc_health_name(reg_instance_health(in))) < 0 ||
        regc_write_checks(in, out) != 0 || evbuffer_add(out, "}", 1) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
}

/* Completion of a maintenance change: the instance as it is now, or 503. */
static void cka_maint_done(void *arg, int rc, const char *err)
{
    struct cka_wait *w = arg;
    const struct reg_instance *in = NULL;
    struct evbuffer *out = hs_req_output(w->req);

    if (rc != 0) {
        log_error("could not change the maintenance of %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not change maintenance: %s",
                       err ? err : "store failure");
        free(w);
        return;
    }
    in = reg_get(w->a->reg, w->id);
    if (!in) {
        hs_reply_error(w->req, 404, "service '%.200s' is gone (deregistered meanwhile)", w->id);
        free(w);
        return;
    }
    cka_index_header(w->a, w->req);
    if (evbuffer_add_printf(out, "{\"success\":true,\"" REGV1_F_SERVICE "\":") < 0 ||
        regc_write_instance(in, out) != 0 || evbuffer_add(out, "}", 1) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_error(w->req, 500, "out of memory");
    } else {
        hs_reply_buffer(w->req, 200, "application/json", NULL);
    }
    free(w);
}

/* Read {"enable": bool, "reason": string} from req's body into *enable
 * and reason (LIM_MAINT_REASON_MAX + 1 bytes). 0, or -1 after answering
 * 400. */
static int cka_maint_body(struct hs_req *req, bool *enable, char *reason)
{
    json_error_t jerr;
    json_t *body = hs_req_json(req, &jerr);
    const json_t *en = NULL, *why = NULL;
    char err[512];
    const char *text;
    size_t len;
    int rc = -1;

    if (!body) {
        text = hs_req_body(req, &len);
        hs_reply_error(req, 400, "%s",
                       jerr_describe(&jerr, text, len, "request body", err, sizeof(err)));
        return -1;
    }
    en = json_object_get(body, "enable");
    why = json_object_get(body, "reason");
    if (!json_is_object(body) || !json_is_boolean(en)) {
        hs_reply_error(req, 400, "the body must be {\"enable\": true|false, \"reason\": \"...\"}");
        goto cleanup;
    }
    if (why && (!json_is_string(why) || json_string_length(why) > LIM_MAINT_REASON_MAX ||
                strlen(json_string_value(why)) != json_string_length(why))) {
        hs_reply_error(req, 400, "field 'reason' must be a string of at most %d bytes without NUL",
                       LIM_MAINT_REASON_MAX);
        goto cleanup;
    }
    *enable = json_is_true(en);
    snprintf(reason, LIM_MAINT_REASON_MAX + 1, "%s", why ? json_string_value(why) : "");
    rc = 0;
cleanup:
    json_decref(body);
    return rc;
}

/* PUT /v1/services/{id}/maintenance */
static void cka_maint(struct hs_req *req, void *arg)
{
    struct check_api *a = arg;
    const char *id = hs_req_param(req, REGV1_PARAM_ID);
    const struct reg_instance *in = reg_get(a->reg, id);
    struct cka_wait *w = NULL;
    char reason[LIM_MAINT_REASON_MAX + 1];
    char err[256];
    bool enable = false;

    if (!guard_request(a->acl, req, in ? ACL_WRITE_SERVICE : ACL_READ,
                       in ? reg_instance_name(in) : NULL))
        return;
    if (!in) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    if (cka_maint_body(req, &enable, reason) != 0)
        return;
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->a = a;
    w->req = req;
    snprintf(w->id, sizeof(w->id), "%s", id);
    switch (reg_maintenance(a->reg, id, enable, reason, cka_maint_done, w, err, sizeof(err))) {
    case 0:
        return;
    case 1:
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        break;
    case 2:
        (void)hs_reply_header(req, "Retry-After", "1");
        hs_reply_error(
            req, 409, "another write of service '%.200s' is waiting for its commit; try again", id);
        break;
    default:
        hs_reply_error(req, 503, "could not change maintenance: %s", err);
        break;
    }
    free(w);
}

/* Check counters for /metrics. */
static void cka_collect(struct evbuffer *out, void *arg)
{
    struct check_api *a = arg;
    struct crun_stats st;

    crun_get_stats(a->run, &st);
    evbuffer_add_printf(out,
                        "# HELP registry_check_runs_total Active check runs by result.\n"
                        "# TYPE registry_check_runs_total counter\n"
                        "registry_check_runs_total{result=\"passing\"} %llu\n"
                        "registry_check_runs_total{result=\"warning\"} %llu\n"
                        "registry_check_runs_total{result=\"critical\"} %llu\n"
                        "# HELP registry_checks Active (http and tcp) checks configured.\n"
                        "# TYPE registry_checks gauge\n"
                        "registry_checks %zu\n",
                        (unsigned long long)st.passed, (unsigned long long)st.warned,
                        (unsigned long long)st.failed, crun_count(a->run));
}

struct check_api *cka_new(struct svc *svc, struct rev_hub *hub, const struct acl *acl)
{
    struct check_api *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->svc = svc;
    a->hub = hub;
    a->acl = acl;
    a->leading = true;
    a->run = crun_new(svc_base(svc), cka_report, a, 0);
    if (!a->run) {
        free(a);
        return NULL;
    }
    return a;
}

/* reg_foreach callback: the probes of one loaded instance. */
static int cka_load_one(const struct reg_instance *in, void *arg)
{
    cka_add_probes(arg, in);
    return 0;
}

int cka_start(struct check_api *a, struct reg_registry *r)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};

    a->reg = r;
    if (hs_route(svc_http(a->svc), HS_GET, REGV1_CHECKS, cka_checks, a) != 0 ||
        hs_route(svc_http(a->svc), HS_PUT, REGV1_MAINT, cka_maint, a) != 0 ||
        mtr_add_collector(svc_metrics(a->svc), cka_collect, a) != 0)
        return -1;
    return a->leading ? reg_foreach(r, &all, cka_load_one, a) : 0;
}

/* reg_foreach callback: stop the probes of one instance. */
static int cka_stop_one(const struct reg_instance *in, void *arg)
{
    crun_remove_instance(arg, reg_instance_id(in));
    return 0;
}

void cka_set_leader(struct check_api *a, bool leading)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};

    if (leading == a->leading)
        return;
    a->leading = leading;
    if (!a->reg)
        return; /* cka_start starts them, or not */
    if (reg_foreach(a->reg, &all, leading ? cka_load_one : cka_stop_one,
                    leading ? (void *)a : (void *)a->run) != 0)
        log_error("could not %s the probes", leading ? "start" : "stop");
    log_info("health checks: %s (%zu probes)",
             leading ? "this replica leads, probes started"
                     : "no longer the leader, probes stopped",
             crun_count(a->run));
}

size_t cka_probes(const struct check_api *a) { return crun_count(a->run); }

void cka_free(struct check_api *a)
{
    if (!a)
        return;
    crun_free(a->run);
    free(a);
}
