/* api.h: the registry's REST API on the shared HTTP server, plus the
 * expiry timer behind it. */
#ifndef REG_API_API_H
#define REG_API_API_H

#include <stddef.h>
#include <stdint.h>

struct svc;
struct store;
struct reg_registry;
struct reg_api;
struct acl;
struct rev_hub;

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

#endif
