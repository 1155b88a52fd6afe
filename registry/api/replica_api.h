/* replica_api.h: GET /v1/replicas (prefix rrp_): the registry replicas on
 * the store and which one leads, as registry/core/members.h sees them:
 *   {"success":true,"leader":"<id>","self":"<id>","membership":"store"|"local",
 *    "reason":"<why local>","replicas":[{"id","url","create_index","leader",
 *    "self"}]}
 * Read like the other reads (ACL read). On a store that is not shared, or
 * has no leases, one entry: this replica ("membership":"local"). On
 * /metrics: registry_replicas (live) and registry_leader (1 while this
 * replica leads). */
#ifndef REG_API_REPLICA_API_H
#define REG_API_REPLICA_API_H

struct svc;
struct acl;
struct rmb_members;
struct rrp_api;

/* Add the route and the gauges on svc (borrowed, as are members and acl; NULL acl:
 * open; all must outlive the server's requests). NULL when out of memory
 * or the route cannot be added. Caller frees with rrp_free. */
struct rrp_api *rrp_new(struct svc *svc, struct rmb_members *members, const struct acl *acl)
    __attribute__((warn_unused_result));

/* Free. Accepts NULL. */
void rrp_free(struct rrp_api *a);

#endif
