/* routes.h: the logging-service's HTTP API on the shared server:
 *   POST /logging  one {"uuid", "msg", "ts"?} object, or an array of them
 *                  (with a token table: only for a token with the write
 *                  right, else 403)
 *   GET  /logging  every message in the order first stored; with
 *                  ?after=N&limit=L one page of it, with the store's epoch
 *   GET  /health   200 ok, or 503 degraded while the journal fails writes
 * (the whole list streamed as the client reads it), and the service's
 * /metrics series. The HTTP side only: the rules, the store and the journal
 * are ingest.h's. */
#ifndef LG_ROUTES_H
#define LG_ROUTES_H

#include <stddef.h>

struct svc;
struct ig_ingest;
struct lg_service;
struct acl;

/* Add the /logging routes to svc's server and the metrics collector to its
 * registry. svc and ig (with its store and journal) are borrowed and must outlive the
 * returned object, which the caller frees with lg_free once the loop has
 * stopped (or before svc_run, on a start-up failure). NULL when out of memory or the
 * route table is full. acl (borrowed, outliving it too; NULL: anyone may
 * write) decides who may POST. */
struct lg_service *lg_new(struct svc *svc, struct ig_ingest *ig, const struct acl *acl)
    __attribute__((warn_unused_result));

/* Free. Accepts NULL. */
void lg_free(struct lg_service *lg);

#endif
