/* consul.h: a subset of Consul's HTTP API on the registry's server, so
 * Consul clients (python-consul, Prometheus consul_sd_configs, curl
 * scripts written for Consul) work against it: the catalog, health and
 * agent reads (blocking on ?index= like Consul's), service registration,
 * deregistration, maintenance and TTL passes. It translates to the same
 * core calls as the native API (api.c), so an instance registered either
 * way is one instance seen two ways. The registry is one Consul node of
 * one datacenter. See the README, "Use it with Consul tools". */
#ifndef REG_API_CONSUL_H
#define REG_API_CONSUL_H

struct svc;
struct acl;
struct rev_hub;
struct reg_registry;
struct rcon_api;
struct store;

struct rcon_options {
    const char *datacenter;    /* --datacenter; NULL: "dc1" */
    const char *node_name;     /* --node-name; NULL or "": the host name */
    const char *bind;          /* the server's bind address (the node's address, the
                               leader's "<addr>:8300"); a wildcard reads 127.0.0.1 */
    const struct store *store; /* borrowed (must outlive the module): while it cannot
                                  commit, X-Consul-KnownLeader is false; NULL: true */
};

/* Add the Consul routes to svc's server. svc, r, hub and acl (NULL: open)
 * are borrowed and must outlive the module; the option strings are
 * copied. Caller frees with rcon_free, after the store was drained (its
 * waiting writes answer through the module). NULL when out of memory or a
 * route could not be added. */
struct rcon_api *rcon_new(struct svc *svc, struct reg_registry *r, struct rev_hub *hub,
                          const struct acl *acl, const struct rcon_options *opt)
    __attribute__((warn_unused_result));

/* Free the module. Accepts NULL. */
void rcon_free(struct rcon_api *c);

#endif
