/* replica_api.c: GET /v1/replicas and the replicas' gauges (see
 * replica_api.h). */
#include "replica_api.h"

#include "../core/members.h"
#include "auth/guard.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdlib.h>

struct rrp_api {
    struct rmb_members *members; /* borrowed */
    const struct acl *acl;       /* borrowed; NULL: open */
};

/* rmb_foreach callback: one replica into the array arg. */
static int rrp_one(const struct rmb_view *v, void *arg)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:b, s:b}", "id", v->id, "url", v->url,
                          "create_index", (json_int_t)v->create_revision, "started_ms",
                          (json_int_t)v->started_ms, "leader", v->is_leader, "self", v->is_self);

    return o && json_array_append_new(arg, o) == 0 ? 0 : -1;
}

/* GET /v1/replicas */
static void rrp_list(struct hs_req *req, void *arg)
{
    struct rrp_api *a = arg;
    json_t *list = NULL, *body = NULL;

    if (!guard_request(a->acl, req, ACL_READ, NULL))
        return;
    list = json_array();
    if (!list || rmb_foreach(a->members, rrp_one, list) != 0)
        goto oom;
    body = json_pack("{s:b, s:s, s:s, s:s, s:s, s:o}", REGV1_F_SUCCESS, 1, "leader",
                     rmb_leader_id(a->members), "self", rmb_self_id(a->members), "membership",
                     rmb_through_store(a->members) ? "store" : "local", "reason",
                     rmb_local_reason(a->members), "replicas", list);
    list = NULL; /* stolen (also on failure) */
    if (!body)
        goto oom;
    hs_reply_json(req, 200, body);
    return;
oom:
    json_decref(list);
    hs_reply_oom(req);
}

/* Gauges for /metrics: live replicas, and whether this one leads. */
static void rrp_collect(struct evbuffer *out, void *arg)
{
    struct rrp_api *a = arg;

    evbuffer_add_printf(out,
                        "# HELP registry_replicas Registry replicas live on the store.\n"
                        "# TYPE registry_replicas gauge\n"
                        "registry_replicas %zu\n"
                        "# HELP registry_leader 1 while this replica leads (runs the active "
                        "checks).\n"
                        "# TYPE registry_leader gauge\n"
                        "registry_leader %d\n",
                        rmb_count(a->members), rmb_is_leader(a->members) ? 1 : 0);
}

struct rrp_api *rrp_new(struct svc *svc, struct rmb_members *members, const struct acl *acl)
{
    struct rrp_api *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->members = members;
    a->acl = acl;
    if (hs_route(svc_http(svc), HS_GET, REGV1_REPLICAS, rrp_list, a) != 0 ||
        mtr_add_collector(svc_metrics(svc), rrp_collect, a) != 0) {
        free(a);
        return NULL;
    }
    return a;
}

void rrp_free(struct rrp_api *a) { free(a); }
