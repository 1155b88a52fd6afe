/* routes.h: the logging-service's HTTP API on the shared server:
 *   POST /logging  one {"uuid", "msg", "ts"?} object, or an array of them
 *   GET  /logging  every message in the order first stored; with
 *                  ?after=N&limit=L one page of it, with the store's epoch
 * plus the glue between the message store and the journal (a message is
 * acknowledged only once its journal line is written; replay on start) and
 * the service's /metrics series. */
#ifndef LG_ROUTES_H
#define LG_ROUTES_H

#include <stddef.h>

struct svc;
struct ds_store;
struct jn_journal;
struct lg_service;

/* Add the /logging routes to svc's server and the metrics collector to its
 * registry. svc, store and journal are borrowed and must outlive the
 * returned object, which the caller frees with lg_free once the loop has
 * stopped (or before svc_run, on a start-up failure). NULL when out of memory or the
 * route table is full. */
struct lg_service *lg_new(struct svc *svc, struct ds_store *store, struct jn_journal *journal)
    __attribute__((warn_unused_result));

/* Free. Accepts NULL. */
void lg_free(struct lg_service *lg);

/* Load every message of journal into store (both borrowed), as if it had
 * been posted again: a uuid seen twice keeps its first message. Returns the
 * number of messages stored, or -1 with err filled (read error, out of
 * memory). */
long lg_replay(struct ds_store *store, struct jn_journal *journal, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
