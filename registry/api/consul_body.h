/* consul_body.h: the bodies Consul clients send (a service definition, a
 * check definition) translated into the registry's native registration
 * JSON, for reg_spec_parse to judge by the native rules. Pure: no HTTP, no
 * core; the routes are consul.c's. Keys are matched in any case, like
 * Consul; unknown keys are ignored, like Consul. */
#ifndef REG_API_CONSUL_BODY_H
#define REG_API_CONSUL_BODY_H

#include "core/limits.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a check id built from a Consul service id. */
#define RCONB_CHECK_ID_ROOM (LIM_META_VALUE_MAX + 16)

/* The member of o (an object) named key in any case (borrowed), or NULL. */
json_t *rconb_get(const json_t *o, const char *key);

/* A Go duration ("1m30s", "1.5s", "250ms") in whole milliseconds into *ms.
 * 0, or -1 when s is not one or is beyond LIM_TTL_MAX hours. */
int rconb_go_duration(const char *s, int64_t *ms);

/* Translate the Consul check ch (the n-th, from 1; of many when many) of
 * the service with Consul id cid into a native check object appended to
 * checks. 0, or -1 with err and *status (400, 501 for a kind the registry
 * cannot run, 503 when out of memory). */
int rconb_check_to_native(const json_t *ch, size_t n, bool many, const char *cid, json_t *checks,
                          char *err, size_t errlen, int *status);

/* The native registration body of the Consul service definition in
 * (borrowed), for the node address addr. New reference, or NULL with err
 * and *status (400, 501, 503). */
json_t *rconb_to_native(const json_t *in, const char *addr, char *err, size_t errlen, int *status);

/* The native registration body of a catalog registration (PUT
 * /v1/catalog/register: Node, Address, Service {ID, Service, Tags,
 * Address, Port, Meta}, Check or Checks). *external is whether Node is not
 * this_node: an external node's service keeps the node's name and address
 * in its metadata (RCON_META_NODE, RCON_META_NODE_ADDR) and its id is
 * derived from node and ID; this node's is the agent's registration (its
 * address this_addr by default). A check with a Definition of an HTTP or
 * TCP probe is that probe; one without is a status, passing only. New
 * reference, or NULL with err and *status (400, 501, 503). */
json_t *rconb_catalog_to_native(const json_t *in, const char *this_node, const char *this_addr,
                                bool *external, char *err, size_t errlen, int *status);

#endif
