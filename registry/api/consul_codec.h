/* consul_codec.h: the JSON shapes of Consul's HTTP API for the registry's
 * instances (catalog entries, agent services, health entries, checks), and
 * the mapping between Consul's free-form service ids and the registry's
 * "<name>-<uuid>" ids. Only shapes: the routes are consul.c's. Every
 * function returning json_t gives a new reference (caller decrefs), NULL
 * when out of memory. */
#ifndef REG_API_CONSUL_CODEC_H
#define REG_API_CONSUL_CODEC_H

#include "../core/catalog.h"
#include "codec/uid.h"

#include <jansson.h>
#include <stdint.h>

/* The metadata key a Consul registration keeps its own service id under,
 * when that id is not already of the registry's form. Hidden from the
 * Consul views' Meta (the native API shows it). */
#define RCON_META_ID "consul_id"

/* The metadata keys an external service (PUT /v1/catalog/register of a
 * node that is not the registry's) keeps its node's name and address
 * under. Hidden from the Consul views' Meta too. */
#define RCON_META_NODE      "consul_node"
#define RCON_META_NODE_ADDR "consul_node_address"

/* The one node the registry is, as Consul's answers name it (all
 * borrowed). */
struct rcon_node {
    const char *name;    /* --node-name */
    const char *dc;      /* --datacenter */
    const char *address; /* the node's address (bind, or 127.0.0.1 for a wildcard) */
    int http_port;       /* the registry's HTTP port: its "consul" service's port */
    bool external;       /* a node of external services (no serfHealth, no consul) */
};

/* The node of instance in: n (the registry's, borrowed), or the external
 * node it was registered on (strings borrowed from in). */
struct rcon_node rcon_node_for(const struct rcon_node *n, const struct reg_instance *in);

/* Whether in was registered on the external node named node (NULL: on the
 * registry's own). */
bool rcon_on_node(const struct reg_instance *in, const char *node);

/* The Create/ModifyIndex of the node, its serfHealth check and its
 * "consul" service: they are there from the start and never change. */
#define RCON_NODE_INDEX 1

/* The service the registry itself is in Consul's catalog, as a Consul
 * server is: listed by the catalog and health views, not by the agent's
 * (agent/services lists what was registered with the agent). */
#define RCON_SELF_SERVICE "consul"

/* The Consul service id of in: its RCON_META_ID value, else its own id
 * (borrowed from the instance). */
const char *rcon_enc_service_id(const struct reg_instance *in);

/* The registry id for Consul id cid (borrowed) of service name (borrowed)
 * into out (LIM_ID_MAX + 1 bytes): cid itself when it is already
 * "<name>-<uuid>" (returns 0), else "<name>-<uuid derived from cid>"
 * (returns 1: the caller keeps cid in RCON_META_ID). The derivation is
 * fixed, so registering the same Consul id again replaces its instance. */
int rcon_native_id(const char *name, const char *cid, char *out);

/* The Consul check id of check c of instance in into buf (len bytes): the
 * TTL check is "service:<consul id>", the others keep their ids. */
void rcon_check_id(const struct reg_instance *in, const struct reg_check_view *c, char *buf,
                   size_t len);

/* {ID, Node, Address, Datacenter, TaggedAddresses, Meta, CreateIndex,
 * ModifyIndex}: the node of catalog/nodes and of the health entries. */
json_t *rcon_enc_node(const struct rcon_node *n);

/* One entry of catalog/service/<name>: the node's and the service's
 * fields side by side. */
json_t *rcon_enc_catalog_service(const struct rcon_node *n, const struct reg_instance *in);

/* A service of agent/services (with_index false) or of catalog/node/<node>
 * and health entries (with_index true: CreateIndex, ModifyIndex). */
json_t *rcon_enc_agent_service(const struct rcon_node *n, const struct reg_instance *in,
                               bool with_index);

/* The registry's own "consul" service: its catalog/service entry, its
 * form in catalog/node and health entries (with Create/ModifyIndex), its
 * health/service entry (the node's serfHealth its only check). */
json_t *rcon_enc_self_catalog(const struct rcon_node *n);
json_t *rcon_enc_self_service(const struct rcon_node *n);
json_t *rcon_enc_self_health(const struct rcon_node *n);

/* The node's own check, serfHealth (always passing: the registry is up
 * when it answers). */
json_t *rcon_enc_node_check(const struct rcon_node *n);

/* Append the Consul checks of in to arr (its TTL check, the others, then
 * maintenance as "_service_maintenance:<id>"), only those of status
 * state (-1: all). 0, or -1 when out of memory. */
int rcon_enc_checks(const struct rcon_node *n, const struct reg_instance *in, int state,
                    json_t *arr) __attribute__((warn_unused_result));

/* Sort an array of Consul checks by CheckID (then ServiceID): the stable
 * order of every check list. 0, or -1 when out of memory (arr may then
 * have lost members). */
int rcon_sort_checks(json_t *arr) __attribute__((warn_unused_result));

/* One entry of health/service/<name>: {Node, Service, Checks}, the
 * checks by CheckID. */
json_t *rcon_enc_health_entry(const struct rcon_node *n, const struct reg_instance *in);

#endif
