/* action.h: the registry's JSON action protocol, the request/reply shape of
 * registries such as CGSE's egse.registry: POST /v1/registry takes one
 * JSON object naming an "action" (register, deregister, renew, get, list,
 * discover, health) and answers {"success": true, ...} or {"success":
 * false, "error": ...}. Every action is a call of the same core as the
 * native routes (api.h), with the same rules, rights and refusals: an
 * instance registered this way is the one GET /v1/services shows.
 *
 * ract_parse is the whole shape check of a request, pure (no registry, no
 * socket), so it is what tests/fuzz/fuzz_action.c fuzzes. */
#ifndef REG_API_ACTION_H
#define REG_API_ACTION_H

#include "../core/spec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The route of the protocol. */
#define RACT_PATH "/v1/registry"

struct svc;
struct reg_registry;
struct reg_api;
struct acl;
struct ract;

enum ract_action {
    RACT_REGISTER = 0,
    RACT_DEREGISTER,
    RACT_RENEW,
    RACT_GET,
    RACT_LIST,
    RACT_DISCOVER,
    RACT_HEALTH,
};

/* One request, validated and typed. */
struct ract_request {
    enum ract_action action;
    char service_id[LIM_ID_MAX + 1]; /* deregister, renew, get */
    bool has_type;                   /* list (optional), discover (this or name) */
    char type[LIM_TYPE_MAX + 1];
    bool has_name; /* discover */
    char name[LIM_NAME_MAX + 1];
    struct reg_spec spec; /* register: owned (ract_request_clear); else empty */
};

/* Validate body (borrowed) as an action request and fill rq. register
 * takes {"service_info": {name, host, port, type?, tags?, metadata?,
 * id?, ...}, "ttl"?}: service_info with the top-level ttl set in a copy of
 * it is parsed by reg_spec_parse (spec_json.h), so its input rules and
 * error texts are the native registration's. Unknown members are ignored.
 * Returns 0, or -1 with err saying what is wrong (the answer is 400), or
 * -2 when out of memory (503); rq then owns nothing. On success release rq with ract_request_clear. */
int ract_parse(const json_t *body, struct ract_request *rq, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free what rq owns. Safe on a zeroed or cleared rq. */
void ract_request_clear(struct ract_request *rq);

/* The word of an action in requests ("register", ...). */
const char *ract_action_name(enum ract_action a);

/* Add POST RACT_PATH to svc's server. svc, r, api (the native API, whose
 * checks and answers the protocol shares) and acl (NULL: everything open)
 * are borrowed and must outlive the protocol; with acl every action needs
 * the read right, writes the same rights as the native routes. Returns
 * NULL when out of memory or the route could not be added; caller frees
 * with ract_free. */
struct ract *ract_new(struct svc *svc, struct reg_registry *r, struct reg_api *api,
                      const struct acl *acl) __attribute__((warn_unused_result));

/* Free. Writes still waiting for their commit hold nothing of it (they are
 * answered when the native API drains the store). Accepts NULL. */
void ract_free(struct ract *ra);

#endif
