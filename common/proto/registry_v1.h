/* registry_v1.h: the registry's native API, version 1, as both sides
 * compile it: the registry's routes (registry/api) and its client SDK
 * (common/regclient) take their paths, query parameters and field names
 * from here, so the two cannot drift apart. The input rules (lengths,
 * counts, ranges) are the LIM_ values of core/limits.h. */
#ifndef SVC_PROTO_REGISTRY_V1_H
#define SVC_PROTO_REGISTRY_V1_H

/* Routes, as the server's route table spells them ("{id}": a path
 * parameter). */
#define REGV1_SERVICES  "/v1/services"         /* POST: register; GET: list */
#define REGV1_SERVICE   REGV1_SERVICES "/{id}" /* GET: one instance; DELETE: deregister */
#define REGV1_RENEW     REGV1_SERVICE "/renew" /* PUT: heartbeat */
#define REGV1_DISCOVER  "/v1/discover"         /* GET: one passing instance */
#define REGV1_PARAM_ID  "{id}"                 /* the path parameter of the two above */
#define REGV1_EVENTS    "/v1/events"           /* GET: change events, long-poll or SSE */
#define REGV1_REPLICAS  "/v1/replicas"         /* GET: the registry replicas and their leader */
#define REGV1_H_INDEX   "X-Registry-Index"     /* the registry index, on reads */
#define REGV1_H_STALE   "X-Registry-Stale"     /* "true" while the store cannot commit */
#define REGV1_KV        "/v1/kv/{key*}"        /* GET, PUT, DELETE: the KV store (Consul's) */
#define REGV1_KV_FMT    "/v1/kv/%s"
#define REGV1_PARAM_KEY "{key}" /* the path parameter of REGV1_KV: the rest of the path */

/* The same paths as a client fills them in (printf formats, one %s: the
 * instance id). */
#define REGV1_SERVICE_FMT REGV1_SERVICES "/%s"
#define REGV1_RENEW_FMT   REGV1_SERVICE_FMT "/renew"

/* Query parameters of the list and of discovery. */
#define REGV1_Q_NAME     "name"
#define REGV1_Q_TYPE     "type"
#define REGV1_Q_TAG      "tag"
#define REGV1_Q_HEALTH   "health"
#define REGV1_Q_STRATEGY "strategy"
#define REGV1_Q_LIMIT    "limit" /* GET /v1/services: one page of at most this many */
#define REGV1_Q_AFTER    "after" /* GET /v1/services: the page after this id */
#define REGV1_Q_INDEX    "index" /* GET /v1/events: the events after this index */
#define REGV1_Q_WAIT     "wait"  /* GET /v1/events: how long a long-poll may be held */
/* Query parameters of /v1/kv (Consul's names; index and wait as above) */
#define REGV1_Q_RAW       "raw"       /* GET: the value bytes */
#define REGV1_Q_RECURSE   "recurse"   /* GET, DELETE: every key under the prefix */
#define REGV1_Q_KEYS      "keys"      /* GET: the key names under the prefix */
#define REGV1_Q_SEPARATOR "separator" /* GET ?keys: cut names after this, past the prefix */
#define REGV1_Q_FLAGS     "flags"     /* PUT: a uint64 kept with the value */
#define REGV1_Q_CAS       "cas"       /* PUT, DELETE: compare-and-set on ModifyIndex */
#define REGV1_Q_REPLACE                                                                            \
    "replace" /* POST /v1/services: "true" moves a known id to another address */

/* Health values (the "health" field and ?health=). */
#define REGV1_PASSING  "passing"
#define REGV1_WARNING  "warning"
#define REGV1_CRITICAL "critical"

/* Fields of a registration and of an instance. */
#define REGV1_F_ID        "id"
#define REGV1_F_NAME      "name"
#define REGV1_F_HOST      "host"
#define REGV1_F_PORT      "port"
#define REGV1_F_TYPE      "type"
#define REGV1_F_TAGS      "tags"
#define REGV1_F_METADATA  "metadata"
#define REGV1_F_TTL       "ttl"
#define REGV1_F_HEARTBEAT "last_heartbeat"
#define REGV1_F_HEALTH    "health"
#define REGV1_F_CHECK     "check"       /* one check of a registration */
#define REGV1_F_CHECKS    "checks"      /* a registration's checks; an instance's, with status */
#define REGV1_F_MAINT     "maintenance" /* an instance in maintenance: {"reason","since"} */

/* Members of a check (registration) and of a check's state (answers). */
#define REGV1_C_ID          "id"
#define REGV1_C_HTTP        "http"
#define REGV1_C_TCP         "tcp"
#define REGV1_C_TTL         "ttl"
#define REGV1_C_INTERVAL    "interval"
#define REGV1_C_TIMEOUT     "timeout"
#define REGV1_C_FAILURES    "failures_before_critical"
#define REGV1_C_SUCCESSES   "successes_before_passing"
#define REGV1_C_DEREGISTER  "deregister_critical_after"
#define REGV1_C_STATUS      "status"
#define REGV1_C_TYPE        "type"
#define REGV1_C_OUTPUT      "output"
#define REGV1_C_LAST_CHANGE "last_change"
#define REGV1_CHECKS        REGV1_SERVICE "/checks"      /* GET: an instance's checks */
#define REGV1_MAINT         REGV1_SERVICE "/maintenance" /* PUT: maintenance on or off */
#define REGV1_MAINT_FMT     REGV1_SERVICE_FMT "/maintenance"

/* Fields of the answers. */
#define REGV1_F_SUCCESS    "success"
#define REGV1_F_ERROR      "error"
#define REGV1_F_SERVICE    "service"    /* one instance */
#define REGV1_F_SERVICES   "services"   /* the list */
#define REGV1_F_SERVICE_ID "service_id" /* the id a registration got */
#define REGV1_F_MESSAGE    "message"
#define REGV1_F_NEXT       "next" /* a page's last id, when more follow */

#include <stdbool.h>

/* A name or type: [A-Za-z0-9._-]{1,LIM_NAME_MAX}. */
bool regv1_name_valid(const char *s);
/* Whether s (non-empty) is only dots ("." and ".." pass the alphabet of
 * names but read as path steps: refused). */
bool regv1_only_dots(const char *s);
/* A host: a DNS name (labels of letters, digits, '-', '_', 1..63 each), an
 * IPv4 or IPv6 literal, at most LIM_HOST_MAX characters; a host of only
 * digits and dots must be a valid IPv4 address. */
bool regv1_host_valid(const char *s);

#endif
