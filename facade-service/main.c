/* main.c: facade-service: accepts messages from clients, stores them on
 * logging-service instances found through the registry (replicated, with
 * retries), and answers reads by fanning out to logging and messages. */
#include "core/config.h"
#include "core/log.h"
#include "core/service.h"
#include "fanout.h"
#include "regclient/discovery.h"
#include "regclient/peer.h"
#include "replicate.h"
#include "routes.h"
#include "upstream.h"

#include <stdio.h>
#include <string.h>

#define FC_PORT_DEFAULT 5000

/* Everything main wires together, for the shutdown hooks. */
struct fc_app {
    struct svc svc;
    struct peer peer;
    struct up_table *ups;
    struct rep_ctx *rep;
    struct fc_routes *routes;
};

/* Shutdown drain: messages still being stored and reads still gathering
 * count as work in flight (peer_start chains its own calls after this). */
static size_t fc_busy(void *arg)
{
    struct fc_app *app = arg;

    return (app->rep ? rep_pending(app->rep) : 0) +
           (app->routes ? fc_routes_pending(app->routes) : 0);
}

int main(int argc, char **argv)
{
    struct cfg_common common = {FC_PORT_DEFAULT, "127.0.0.1", PEER_REGISTRY_DEFAULT, "", "info"};
    int64_t ttl_ms = PEER_TTL_S_DEFAULT * 1000;
    long replicas = REP_REPLICAS_DEFAULT;
    int64_t deadline_ms = BO_DEADLINE_MS_DEFAULT, base_ms = BO_BASE_MS_DEFAULT;
    int64_t cap_ms = BO_CAP_MS_DEFAULT;
    const struct cfg_option opts[] = {
        CFG_COMMON_OPTIONS(&common),
        {"ttl", "TTL", CFG_DURATION, &ttl_ms, 1000, 86400 * 1000LL, "DUR",
         "registration lease, renewed every ttl/3"},
        {"replicas", "REPLICAS", CFG_INT, &replicas, 1, REP_REPLICAS_MAX, "N",
         "logging-service instances that store each message"},
        {"retry-deadline", "RETRY_DEADLINE", CFG_DURATION, &deadline_ms, 100, 3600 * 1000LL, "DUR",
         "how long a POST may retry before answering 503"},
        {"retry-base", "RETRY_BASE", CFG_DURATION, &base_ms, 1, 60 * 1000LL, "DUR",
         "first backoff ceiling"},
        {"retry-cap", "RETRY_CAP", CFG_DURATION, &cap_ms, 1, 600 * 1000LL, "DUR",
         "largest backoff ceiling"},
    };
    static struct fc_app app;
    struct rep_options ropt;
    struct fo_options fopt;
    char err[512];
    int rc = 1, cfg_rc;

    cfg_rc = svc_configure("facade-service",
                           "Stores client messages on logging-service replicas; reads them back.",
                           opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &common);
    if (cfg_rc >= 0)
        return cfg_rc;
    if (peer_check_options(&common, err, sizeof(err)) != 0) {
        fprintf(stderr, "facade-service: %s\n", err);
        return 2;
    }
    if (svc_init(&app.svc, "facade-service", err, sizeof(err)) != 0) {
        fprintf(stderr, "facade-service: %s\n", err);
        goto cleanup;
    }
    app.svc.busy = fc_busy;
    app.svc.hook_arg = &app;
    if (svc_listen(&app.svc, common.bind, common.port, err, sizeof(err)) != 0 ||
        peer_start(&app.peer, &app.svc, &common, "facade-service", (int)(ttl_ms / 1000), err,
                   sizeof(err)) != 0) {
        fprintf(stderr, "facade-service: %s\n", err);
        goto cleanup;
    }
    if (disc_watch(app.peer.disc, REP_SERVICE) != 0 ||
        disc_watch(app.peer.disc, "messages-service") != 0) {
        fprintf(stderr, "facade-service: cannot watch services\n");
        goto cleanup;
    }
    memset(&ropt, 0, sizeof(ropt));
    ropt.replicas = (int)replicas;
    ropt.deadline_ms = deadline_ms;
    ropt.backoff.base_ms = base_ms;
    ropt.backoff.cap_ms = cap_ms;
    app.ups = up_new(NULL);
    app.rep = app.ups ? rep_new(app.svc.base, app.peer.hc, app.peer.disc, app.ups, &ropt) : NULL;
    memset(&fopt, 0, sizeof(fopt));
    fopt.replicas = (int)replicas;
    app.routes = app.rep
                     ? fc_routes_new(&app.svc, app.peer.hc, app.peer.disc, app.ups, app.rep, &fopt)
                     : NULL;
    if (!app.routes) {
        fprintf(stderr, "facade-service: cannot set up the routes\n");
        goto cleanup;
    }
    log_info("replicas %ld, retry deadline %lld ms, backoff %lld..%lld ms", replicas,
             (long long)deadline_ms, (long long)base_ms, (long long)cap_ms);
    rc = svc_run(&app.svc);
cleanup:
    fc_routes_free(app.routes);
    rep_free(app.rep);
    up_free(app.ups);
    peer_free(&app.peer);
    svc_free(&app.svc);
    return rc;
}
