/* api.h: the registry's REST API on the shared HTTP server, plus the
 * expiry timer behind it. */
#ifndef REG_API_API_H
#define REG_API_API_H

#include "core/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct svc;
struct store;
struct reg_registry;
struct reg_api;
struct acl;
struct rev_hub;
struct hs_req;
struct reg_spec;
struct reg_instance;

/* Bytes of "host:port" ("[host]:port" for an IPv6 literal) with its NUL. */
#define REG_API_ADDR_MAX (LIM_HOST_MAX + 16)

/* Add the /v1 routes to svc's server (GET /v1/events answered by hub, the
 * change events the registry's observer feeds), start the cleanup timer every
 * cleanup_ms, and make shutdown wait for writes still waiting for their
 * commit (svc's busy hook). With acl (NULL: everything open) every route
 * but /health needs a token with the right (GET /metrics is then served
 * here, behind the read right). svc, r, st, hub and acl are borrowed and must
 * outlive the API. Returns NULL on failure; caller frees with
 * reg_api_free. */
struct reg_api *reg_api_new(struct svc *svc, struct reg_registry *r, struct store *st,
                            struct rev_hub *hub, int64_t cleanup_ms, const struct acl *acl)
    __attribute__((warn_unused_result));

/* Stop the timer, wait for the writes still waiting (answering their
 * requests), free. Call before the server is freed. Accepts NULL. */
void reg_api_free(struct reg_api *api);

/* The pieces of the native routes that another protocol on the same core
 * (registry/api/action.c) answers the same way. */

/* The checks of a registration of spec (borrowed) before it is queued:
 * the right to write spec's name, and for a known id also the right on
 * the existing instance's name and, when the address changes, the
 * request's ?replace=true (409 without). Sets *moved, and then old
 * (REG_API_ADDR_MAX bytes) to the address it moves from. 0, or -1 after
 * answering req (400 bad ?replace, 403, 409). */
int reg_api_register_check(struct reg_api *api, struct hs_req *req, const struct reg_spec *spec,
                           bool *moved, char *old) __attribute__((warn_unused_result));

/* Answer a registration reg_register refused (rc one of its enum
 * reg_refusal, err its text, borrowed): 429 over a count cap, 413 over the
 * document size, else 503. */
void reg_api_reply_refusal(struct hs_req *req, int rc, const char *err);

/* X-Registry-Stale: true on req's answer while the store cannot commit
 * (memory may then lag the shared state); nothing otherwise. */
void reg_api_stale_header(const struct reg_api *api, struct hs_req *req);

/* Answer 200 {"success": true, "<key>": <instance>} (key and in
 * borrowed); 500 when out of memory. */
void reg_api_reply_instance(struct hs_req *req, const char *key, const struct reg_instance *in);

/* Answer req with every instance of type (borrowed, copied; NULL: every
 * instance; longer than LIM_TYPE_MAX: 400), streamed like the unpaged GET
 * /v1/services: {"success":true,"services":[...]} with X-Registry-Index. */
void reg_api_list_stream(struct reg_api *api, struct hs_req *req, const char *type);

#endif
