/* routes.h: the facade's HTTP routes: POST /facade (store a message through
 * the replicator), GET /facade (the merged view of fanout.h) and GET /stats
 * (upstream breakers and counters). */
#ifndef FC_ROUTES_H
#define FC_ROUTES_H

#include <stddef.h>

struct svc;
struct hc_client;
struct disc_client;
struct up_table;
struct rep_ctx;
struct fc_routes;
struct fan_options;
struct fan_view;

/* Add the routes to svc's server. Everything is borrowed and must outlive
 * the routes but fopt (GET /facade's options, copied). NULL on failure;
 * caller frees with fc_routes_free. */
struct fc_routes *fc_routes_new(struct svc *svc, struct hc_client *hc, struct disc_client *disc,
                                struct up_table *ups, struct rep_ctx *rep,
                                const struct fan_options *fopt) __attribute__((warn_unused_result));

/* GET /facade requests still gathering answers, and keyed POSTs waiting
 * for the sync round that checks their uuid. */
size_t fc_routes_pending(const struct fc_routes *f);

/* The merged view behind GET /facade (borrowed, valid until
 * fc_routes_free), which repair walks too. */
struct fan_view *fc_routes_view(const struct fc_routes *f);

/* Cancel the fan-outs in flight and the keyed POSTs waiting for them
 * (their requests stay unanswered and are dropped with the server) and
 * free. Accepts NULL. */
void fc_routes_free(struct fc_routes *f);

#endif
