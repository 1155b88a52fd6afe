/* action.c: the JSON action protocol (action.h) on POST /v1/registry: one
 * object {"action": ..., ...} in, {"success": ...} out, each action the
 * core call its native route makes (api.c), with the native route's rights
 * (guard.h), checks and refusals (reg_api_register_check,
 * reg_api_reply_refusal, exported by api.c for this).
 *
 * Statuses: a success is 200 for every action, a registration that created
 * its instance too. The native POST /v1/services answers 201 because it
 * made a resource under the collection it was posted to; here the POST
 * goes to an RPC endpoint whose own resource nothing creates, and the
 * protocol's clients read "success", not the status (CGSE's registry
 * answers over ZeroMQ, where there is none). Errors keep the native
 * statuses (400, 403, 404, 409, 413, 429, 503) so a proxy or a log reads
 * them alike. */
#include "action.h"

#include "../core/catalog.h"
#include "api.h"
#include "auth/guard.h"
#include "codec/jsonerr.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"
#include "spec_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members of a request (the protocol's names). */
#define RACT_F_ACTION       "action"
#define RACT_F_SERVICE_INFO "service_info"
#define RACT_F_SERVICE_ID   "service_id"
#define RACT_F_SERVICE_TYPE "service_type"
#define RACT_F_NAME         "name"
#define RACT_F_TTL          "ttl"

struct ract {
    struct reg_registry *reg; /* borrowed */
    struct reg_api *api;      /* borrowed: the native API's checks */
    const struct acl *acl;    /* borrowed; NULL: no access control */
};

/* A request waiting for its store commit; freed by its completion, which
 * needs nothing else (so the protocol may go before the store drains). */
struct ract_wait {
    struct hs_req *req; /* answered by the completion */
    char id[LIM_ID_MAX + 1];
    bool created;
    bool moved;                 /* ?replace=true moved it from old */
    char old[REG_API_ADDR_MAX]; /* "host:port" before the move */
    char host[LIM_HOST_MAX + 1];
    int port;
    int64_t ttl_ms;
};

static const char *const ract_names[] = {
    [RACT_REGISTER] = "register", [RACT_DEREGISTER] = "deregister",
    [RACT_RENEW] = "renew",       [RACT_GET] = "get",
    [RACT_LIST] = "list",         [RACT_DISCOVER] = "discover",
    [RACT_HEALTH] = "health",
};
#define RACT_ACTIONS (sizeof(ract_names) / sizeof(ract_names[0]))

const char *ract_action_name(enum ract_action a)
{
    return (size_t)a < RACT_ACTIONS ? ract_names[a] : "?";
}

/* The string member key of body into buf (bufsize bytes: at most
 * bufsize - 1 of them, none of them NUL); *has says whether it was there
 * (NULL: it is required). 0, or -1 with err. */
static int ract_take_string(const json_t *body, const char *key, bool *has, char *buf,
                            size_t bufsize, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, key);
    size_t len;

    if (has)
        *has = false;
    if (!v) {
        if (has)
            return 0;
        errbuf_set(err, errlen, "missing required field '%s'", key);
        return -1;
    }
    if (!json_is_string(v)) {
        errbuf_set(err, errlen, "field '%s' must be a string", key);
        return -1;
    }
    len = json_string_length(v);
    if (len == 0 || len >= bufsize || strlen(json_string_value(v)) != len) {
        errbuf_set(err, errlen, "field '%s' must be 1 to %zu characters, without NUL", key,
                   bufsize - 1);
        return -1;
    }
    memcpy(buf, json_string_value(v), len + 1);
    if (has)
        *has = true;
    return 0;
}

/* The registration of a register request: service_info (an object) with
 * the top-level ttl, when given, set over its own in a copy, through the
 * native rules. 0, -1 with err, or -2 when out of memory. */
static int ract_parse_register(const json_t *body, struct ract_request *rq, char *err,
                               size_t errlen)
{
    const json_t *info = json_object_get(body, RACT_F_SERVICE_INFO);
    json_t *ttl = json_object_get(body, RACT_F_TTL);
    json_t *copy = NULL;
    int rc = 0;

    if (!info) {
        errbuf_set(err, errlen, "missing required field '%s'", RACT_F_SERVICE_INFO);
        return -1;
    }
    if (!json_is_object(info)) {
        errbuf_set(err, errlen, "field '%s' must be an object", RACT_F_SERVICE_INFO);
        return -1;
    }
    copy = json_deep_copy(info);
    if (!copy || (ttl && json_object_set(copy, REGV1_F_TTL, ttl) != 0)) {
        json_decref(copy);
        errbuf_set(err, errlen, "out of memory");
        return -2;
    }
    rc = reg_spec_parse(copy, &rq->spec, err, errlen);
    json_decref(copy);
    return rc == 0 ? 0 : -1;
}

int ract_parse(const json_t *body, struct ract_request *rq, char *err, size_t errlen)
{
    const json_t *act = NULL;
    const char *word;
    size_t i;
    int rc = 0;

    memset(rq, 0, sizeof(*rq));
    if (!json_is_object(body)) {
        errbuf_set(err, errlen, "request body must be a JSON object");
        return -1;
    }
    act = json_object_get(body, RACT_F_ACTION);
    if (!act) {
        errbuf_set(err, errlen, "missing required field '%s'", RACT_F_ACTION);
        return -1;
    }
    if (!json_is_string(act)) {
        errbuf_set(err, errlen, "field '%s' must be a string", RACT_F_ACTION);
        return -1;
    }
    word = json_string_value(act);
    for (i = 0; i < RACT_ACTIONS; i++)
        if (strlen(ract_names[i]) == json_string_length(act) && strcmp(word, ract_names[i]) == 0)
            break;
    if (i == RACT_ACTIONS) {
        errbuf_set(err, errlen,
                   "unknown action '%.64s' (register, deregister, renew, get, list, discover "
                   "or health)",
                   word);
        return -1;
    }
    rq->action = (enum ract_action)i;
    switch (rq->action) {
    case RACT_REGISTER:
        rc = ract_parse_register(body, rq, err, errlen);
        break;
    case RACT_DEREGISTER:
    case RACT_RENEW:
    case RACT_GET:
        rc = ract_take_string(body, RACT_F_SERVICE_ID, NULL, rq->service_id, sizeof(rq->service_id),
                              err, errlen);
        break;
    case RACT_LIST:
        rc = ract_take_string(body, RACT_F_SERVICE_TYPE, &rq->has_type, rq->type, sizeof(rq->type),
                              err, errlen);
        break;
    case RACT_DISCOVER:
        rc = ract_take_string(body, RACT_F_SERVICE_TYPE, &rq->has_type, rq->type, sizeof(rq->type),
                              err, errlen);
        if (rc == 0)
            rc = ract_take_string(body, RACT_F_NAME, &rq->has_name, rq->name, sizeof(rq->name), err,
                                  errlen);
        if (rc == 0 && !rq->has_type && !rq->has_name) {
            errbuf_set(err, errlen, "give a service type (field '%s') or name (field '%s')",
                       RACT_F_SERVICE_TYPE, RACT_F_NAME);
            rc = -1;
        }
        break;
    case RACT_HEALTH:
        break;
    }
    if (rc != 0)
        ract_request_clear(rq);
    return rc;
}

void ract_request_clear(struct ract_request *rq) { reg_spec_clear(&rq->spec); }

/* Reply {"success": true, "message": message}. */
static void ract_reply_message(struct hs_req *req, const char *message)
{
    hs_reply_json(req, 200, json_pack("{s:b, s:s}", REGV1_F_SUCCESS, 1, REGV1_F_MESSAGE, message));
}

/* The write right on the known instance id (its name), *in set to it;
 * an unknown id needs nothing more than the read right every action was
 * checked for. 1 when allowed, else req was answered 403 and 0. */
static int ract_allowed_on(struct ract *ra, struct hs_req *req, const char *id,
                           const struct reg_instance **in)
{
    *in = reg_get(ra->reg, id);
    if (!*in)
        return 1;
    return guard_request(ra->acl, req, ACL_WRITE_SERVICE, reg_instance_name(*in));
}

/* Completion of a registration: answer it now that it is durable, or 503. */
static void ract_register_done(void *arg, int rc, const char *err)
{
    struct ract_wait *w = arg;

    if (rc != 0) {
        log_error("could not register %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not register: %s", err ? err : "store failure");
        free(w);
        return;
    }
    if (w->moved)
        log_info("instance %s moved from %s to %s:%d", w->id, w->old, w->host, w->port);
    log_info("%s %s at %s:%d (ttl %lld ms, action protocol)",
             w->created ? "registered" : "re-registered", w->id, w->host, w->port,
             (long long)w->ttl_ms);
    hs_reply_json(w->req, 200,
                  json_pack("{s:b, s:s, s:s}", REGV1_F_SUCCESS, 1, REGV1_F_SERVICE_ID, w->id,
                            REGV1_F_MESSAGE, "Service registered successfully"));
    free(w);
}

/* register: the checks of POST /v1/services (rights, a move needing
 * ?replace=true on this route), then the write; answered at its commit. */
static void ract_register(struct ract *ra, struct hs_req *req, const struct reg_spec *spec)
{
    struct ract_wait *w = calloc(1, sizeof(*w));
    char err[512];
    int rc;

    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->req = req;
    if (reg_api_register_check(ra->api, req, spec, &w->moved, w->old) != 0) {
        free(w);
        return;
    }
    snprintf(w->host, sizeof(w->host), "%s", spec->host);
    w->port = spec->port;
    w->ttl_ms = spec->ttl_ms;
    rc = reg_register(ra->reg, spec, ract_register_done, w, w->id, &w->created, err, sizeof(err));
    if (rc != 0) {
        free(w);
        reg_api_reply_refusal(req, rc, err);
    }
}

/* Completion of a deregistration. */
static void ract_deregister_done(void *arg, int rc, const char *err)
{
    struct ract_wait *w = arg;

    if (rc != 0) {
        log_error("could not deregister %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not deregister: %s", err ? err : "store failure");
    } else {
        log_info("deregistered %s (action protocol)", w->id);
        ract_reply_message(w->req, "Service deregistered successfully");
    }
    free(w);
}

/* deregister: answered at the commit of the deletion. */
static void ract_deregister(struct ract *ra, struct hs_req *req, const char *id)
{
    const struct reg_instance *in = NULL;
    struct ract_wait *w = NULL;
    char err[256];
    int rc;

    if (!ract_allowed_on(ra, req, id, &in))
        return;
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->req = req;
    snprintf(w->id, sizeof(w->id), "%s", id);
    rc = reg_deregister(ra->reg, id, ract_deregister_done, w, err, sizeof(err));
    if (rc < 0) {
        free(w);
        hs_reply_error(req, 503, "could not deregister: %s", err);
    } else if (rc > 0) {
        free(w);
        hs_reply_error(req, 404, "service '%.200s' not found", id);
    }
}

/* renew: the heartbeat of PUT /v1/services/{id}/renew. */
static void ract_renew(struct ract *ra, struct hs_req *req, const char *id)
{
    const struct reg_instance *in = NULL;

    if (!ract_allowed_on(ra, req, id, &in))
        return;
    switch (reg_renew(ra->reg, id)) {
    case 0:
        ract_reply_message(req, "Service renewed successfully");
        break;
    case 2:
        hs_reply_error(req, 400,
                       "service '%.200s' has no ttl check to renew (it was registered with "
                       "checks and no ttl)",
                       id);
        break;
    default:
        hs_reply_error(req, 404, "service '%.200s' not found; register again", id);
        break;
    }
}

/* get: one instance, with X-Registry-Index like GET /v1/services/{id}. */
static void ract_get(struct ract *ra, struct hs_req *req, const char *id)
{
    const struct reg_instance *in = reg_get(ra->reg, id);
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, reg_index(ra->reg));
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr);
    reg_api_stale_header(ra->api, req);
    if (!in) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    reg_api_reply_instance(req, REGV1_F_SERVICE, in);
}

/* discover: one passing instance (random among them), 404 when none. */
static void ract_discover(struct ract *ra, struct hs_req *req, const struct ract_request *rq)
{
    const char *name = rq->has_name ? rq->name : NULL;
    const char *type = rq->has_type ? rq->type : NULL;
    const struct reg_instance *in = reg_discover(ra->reg, name, type, REG_RANDOM);

    if (in) {
        reg_api_reply_instance(req, REGV1_F_SERVICE, in);
        return;
    }
    if (name && type)
        hs_reply_error(req, 404, "No healthy service named '%s' of type '%s' found", name, type);
    else if (name)
        hs_reply_error(req, 404, "No healthy service named '%s' found", name);
    else
        hs_reply_error(req, 404, "No healthy service of type '%s' found", type);
}

/* POST /v1/registry. With ACLs the read right comes first, before the body
 * is read (as for POST /v1/services: a caller without a known token learns
 * nothing from it), so health needs it too here; GET /health stays the
 * open liveness probe. */
static void ract_handle(struct hs_req *req, void *arg)
{
    struct ract *ra = arg;
    struct ract_request rq;
    json_error_t jerr;
    json_t *body = NULL;
    const char *text;
    char err[512];
    size_t len;
    int rc;

    if (ra->acl && !guard_request(ra->acl, req, ACL_READ, NULL))
        return;
    body = hs_req_json(req, &jerr);
    if (!body) {
        text = hs_req_body(req, &len);
        hs_reply_error(req, 400, "%s",
                       jerr_describe(&jerr, text, len, "request body", err, sizeof(err)));
        return;
    }
    rc = ract_parse(body, &rq, err, sizeof(err));
    json_decref(body);
    if (rc == -2) {
        hs_reply_oom(req);
        return;
    }
    if (rc != 0) {
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    switch (rq.action) {
    case RACT_REGISTER:
        ract_register(ra, req, &rq.spec);
        break;
    case RACT_DEREGISTER:
        ract_deregister(ra, req, rq.service_id);
        break;
    case RACT_RENEW:
        ract_renew(ra, req, rq.service_id);
        break;
    case RACT_GET:
        ract_get(ra, req, rq.service_id);
        break;
    case RACT_LIST:
        reg_api_list_stream(ra->api, req, rq.has_type ? rq.type : NULL);
        break;
    case RACT_DISCOVER:
        ract_discover(ra, req, &rq);
        break;
    case RACT_HEALTH:
        hs_reply_json(req, 200,
                      json_pack("{s:b, s:s, s:I}", REGV1_F_SUCCESS, 1, "status", "ok", "timestamp",
                                (json_int_t)(clk_wall_ms() / 1000)));
        break;
    }
    ract_request_clear(&rq);
}

struct ract *ract_new(struct svc *svc, struct reg_registry *r, struct reg_api *api,
                      const struct acl *acl)
{
    struct ract *ra = calloc(1, sizeof(*ra));

    if (!ra)
        return NULL;
    ra->reg = r;
    ra->api = api;
    ra->acl = acl;
    if (hs_route(svc_http(svc), HS_POST, RACT_PATH, ract_handle, ra) != 0) {
        free(ra);
        return NULL;
    }
    return ra;
}

void ract_free(struct ract *ra) { free(ra); }
