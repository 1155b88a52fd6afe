/* main.c: facade-service: accepts messages from clients, stores them on
 * logging-service instances found through the registry (replicated, with
 * retries), and answers reads by fanning out to logging and messages. Its
 * options and parts are its own; the shared peer_main does the rest.
 *
 * --replicas and --retry-deadline not given (flag or variable) follow the
 * registry KV keys config/facade-service/replicas and .../retry-deadline
 * while they exist (kvwatch): a key's value replaces the built-in default
 * for the messages stored from then on; a deleted key brings the default
 * back; a bad value is ignored with one WARN line (the last good value
 * stays). A given option wins: its key is not followed. */
#include "auth/acl.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "fanout.h"
#include "http/metrics.h"
#include "http/service.h"
#include "proto/greeting.h"
#include "proto/messages.h"
#include "regclient/discovery.h"
#include "regclient/kvwatch.h"
#include "regclient/peer.h"
#include "repair.h"
#include "replicate.h"
#include "routes.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define FC_PORT_DEFAULT    5000
#define FC_KV_REPLICAS     "config/facade-service/replicas"
#define FC_KV_DEADLINE     "config/facade-service/retry-deadline"
#define FC_DEADLINE_MIN_MS 100LL /* --retry-deadline's range, the key's too */
#define FC_DEADLINE_MAX_MS (3600 * 1000LL)
#define FC_KV_VALUE_MAX    32 /* bytes of a setting's value, blanks around it included */

/* The options and what start makes, freed by fc_stop. */
struct fc_app {
    long replicas;
    int64_t deadline_ms, base_ms, cap_ms;
    int64_t repair_ms;
    const char *peer_token;            /* --peer-token */
    const char *peer_token_file;       /* --peer-token-file */
    char token[LIM_ACL_TOKEN_MAX + 1]; /* the one of them given, for logging-service; "" none */
    struct up_table *ups;              /* owned */
    struct rep_ctx *rep;               /* owned */
    struct fc_routes *routes;          /* owned */
    struct rpr_ctx *repair;            /* owned */
    struct disc_client *disc;          /* borrowed: the peer's discovery cache */
    long replicas_opt;                 /* --replicas as parsed: given or the default */
    int64_t deadline_opt;              /* --retry-deadline as parsed */
    struct kvw *kv_replicas;           /* owned; NULL: --replicas given */
    struct kvw *kv_deadline;           /* owned; NULL: --retry-deadline given */
};

/* rpr_store_fn: a repair re-send goes through the replicator (arg), in
 * the trace of the message's first POST when logging listed it with one. */
static int fc_repair_store(void *arg, const char *uuid, const char *msg, size_t len, int64_t ts,
                           const char *trace, rpr_done_fn done, void *done_arg)
{
    return rep_store_traced(arg, uuid, msg, len, ts, trace, done, done_arg);
}

/* rpr_options.stamp: what changes when copies may have gone missing:
 * messages acknowledged under-replicated, or discovery's list of logging
 * instances (arg: the app). */
static uint64_t fc_repair_stamp(void *arg)
{
    const struct fc_app *app = arg;

    return rep_under_replicated(app->rep) + disc_version(app->disc, PM_SERVICE);
}

/* Stop hook: repair starts nothing new once shutdown begins, and the
 * parked KV reads do not hold the shutdown. */
static void fc_on_stop(void *arg)
{
    struct fc_app *app = arg;

    rpr_stop(app->repair);
    kvw_stop(app->kv_replicas);
    kvw_stop(app->kv_deadline);
}

/* A KV setting's value (len bytes) without the blanks around it into out
 * (FC_KV_VALUE_MAX). 0, or -1 when it is too long or holds a NUL. */
static int fc_kv_text(const char *value, size_t len, char *out)
{
    while (len > 0 && strchr(" \t\r\n", value[0]))
        value++, len--;
    while (len > 0 && strchr(" \t\r\n", value[len - 1]))
        len--;
    if (len == 0 || len >= FC_KV_VALUE_MAX || memchr(value, '\0', len))
        return -1;
    memcpy(out, value, len);
    out[len] = '\0';
    return 0;
}

/* Use replicas for the messages stored from now on (why: where it came
 * from, for the log). */
static void fc_apply_replicas(struct fc_app *app, long replicas, const char *why)
{
    app->replicas = replicas;
    rep_set_replicas(app->rep, (int)replicas);
    fan_set_replicas(fc_routes_view(app->routes), (int)replicas);
    log_info("replicas %ld (%s)", replicas, why);
}

/* kvw_fn of config/facade-service/replicas (arg: the app). */
static void fc_on_replicas(void *arg, bool present, const char *value, size_t len)
{
    struct fc_app *app = arg;
    char text[FC_KV_VALUE_MAX], *end = NULL;
    long n = 0;

    if (!present) {
        fc_apply_replicas(app, app->replicas_opt, "the default: " FC_KV_REPLICAS " is absent");
        return;
    }
    if (fc_kv_text(value, len, text) == 0 && text[0] >= '0' && text[0] <= '9') {
        n = strtol(text, &end, 10);
        if (*end == '\0' && n >= 1 && n <= REP_REPLICAS_MAX) {
            fc_apply_replicas(app, n, "from " FC_KV_REPLICAS);
            return;
        }
    }
    log_warn("%s: ignored: not a whole number from 1 to %d; replicas stay %ld", FC_KV_REPLICAS,
             REP_REPLICAS_MAX, app->replicas);
}

/* Use deadline_ms for the messages stored from now on. */
static void fc_apply_deadline(struct fc_app *app, int64_t deadline_ms, const char *why)
{
    app->deadline_ms = deadline_ms;
    rep_set_deadline(app->rep, deadline_ms);
    log_info("retry deadline %lld ms (%s)", (long long)deadline_ms, why);
}

/* kvw_fn of config/facade-service/retry-deadline (arg: the app). */
static void fc_on_deadline(void *arg, bool present, const char *value, size_t len)
{
    struct fc_app *app = arg;
    char text[FC_KV_VALUE_MAX];
    int64_t ms = 0;

    if (!present) {
        fc_apply_deadline(app, app->deadline_opt, "the default: " FC_KV_DEADLINE " is absent");
        return;
    }
    if (fc_kv_text(value, len, text) == 0 && cfg_parse_duration_ms(text, &ms) == 0 &&
        ms >= FC_DEADLINE_MIN_MS && ms <= FC_DEADLINE_MAX_MS) {
        fc_apply_deadline(app, ms, "from " FC_KV_DEADLINE);
        return;
    }
    log_warn("%s: ignored: not a duration from 100ms to 1h (such as 10s); the retry deadline "
             "stays %lld ms",
             FC_KV_DEADLINE, (long long)app->deadline_ms);
}

/* Follow the KV keys of the options not given explicitly. 0 or -1. */
static int fc_follow_settings(struct svc *svc, struct peer *peer, struct fc_app *app)
{
    app->replicas_opt = app->replicas;
    app->deadline_opt = app->deadline_ms;
    if (cfg_given(&app->replicas))
        log_info("--replicas given: %s is not followed", FC_KV_REPLICAS);
    else {
        app->kv_replicas = kvw_new(svc_base(svc), peer->hc, &peer->urls, peer->token,
                                   FC_KV_REPLICAS, fc_on_replicas, app);
        if (!app->kv_replicas)
            return -1;
    }
    if (cfg_given(&app->deadline_ms))
        log_info("--retry-deadline given: %s is not followed", FC_KV_DEADLINE);
    else {
        app->kv_deadline = kvw_new(svc_base(svc), peer->hc, &peer->urls, peer->token,
                                   FC_KV_DEADLINE, fc_on_deadline, app);
        if (!app->kv_deadline)
            return -1;
    }
    return 0;
}

/* mtr_collect_fn: repair's counter (arg: the app). */
static void fc_collect_repair(struct evbuffer *out, void *arg)
{
    const struct fc_app *app = arg;

    evbuffer_add_printf(out,
                        "# HELP facade_repaired_total Messages repair re-sent to bring them back "
                        "to --replicas copies (answered 200).\n"
                        "# TYPE facade_repaired_total counter\n"
                        "facade_repaired_total %llu\n",
                        (unsigned long long)(app->repair ? rpr_repaired(app->repair) : 0));
}

/* Busy hook: messages still being stored and reads still gathering count
 * as work in flight. */
static size_t fc_busy(void *arg)
{
    struct fc_app *app = arg;

    return (app->rep ? rep_pending(app->rep) : 0) +
           (app->routes ? fc_routes_pending(app->routes) : 0);
}

/* peer_app check: the token for logging-service from --peer-token or the
 * first line of --peer-token-file. 0, or 2 with err. */
static int fc_check(void *arg, char *err, size_t errlen)
{
    struct fc_app *app = arg;
    char why[512];

    if (app->peer_token[0] && app->peer_token_file[0]) {
        errbuf_set(err, errlen, "--peer-token and --peer-token-file: give one of them");
        return 2;
    }
    if (app->peer_token[0] && !acl_token_valid(app->peer_token)) {
        errbuf_set(err, errlen,
                   "--peer-token: 1 to %d printable ASCII characters without spaces expected",
                   LIM_ACL_TOKEN_MAX);
        return 2;
    }
    if (app->peer_token[0])
        snprintf(app->token, sizeof(app->token), "%s", app->peer_token);
    else if (app->peer_token_file[0] &&
             acl_token_read_file(app->peer_token_file, app->token, sizeof(app->token), why,
                                 sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--peer-token-file: %s", why);
        return 2;
    }
    return 0;
}

/* peer_app start: watch the two services, then the replicator and the
 * routes. */
static int fc_start(struct svc *svc, struct peer *peer, void *arg, char *err, size_t errlen)
{
    struct fc_app *app = arg;
    struct rep_options ropt;
    struct fan_options fopt;
    struct rpr_options popt;

    if (disc_watch(peer->disc, PM_SERVICE) != 0 || disc_watch(peer->disc, PG_SERVICE) != 0) {
        errbuf_set(err, errlen, "cannot watch services");
        return -1;
    }
    app->disc = peer->disc;
    memset(&ropt, 0, sizeof(ropt));
    ropt.replicas = (int)app->replicas;
    ropt.deadline_ms = app->deadline_ms;
    ropt.backoff.base_ms = app->base_ms;
    ropt.backoff.cap_ms = app->cap_ms;
    ropt.token = app->token;
    memset(&fopt, 0, sizeof(fopt));
    fopt.replicas = (int)app->replicas;
    fopt.token = app->token;
    app->ups = up_new(NULL);
    app->rep = app->ups ? rep_new(svc_base(svc), peer->hc, peer->disc, app->ups, &ropt) : NULL;
    app->routes =
        app->rep ? fc_routes_new(svc, peer->hc, peer->disc, app->ups, app->rep, &fopt) : NULL;
    if (!app->routes || svc_on_busy(svc, fc_busy, app) != 0) {
        errbuf_set(err, errlen, "cannot set up the routes");
        return -1;
    }
    memset(&popt, 0, sizeof(popt));
    popt.interval_ms = app->repair_ms;
    popt.store = fc_repair_store;
    popt.stamp = fc_repair_stamp;
    popt.stamp_arg = app;
    popt.store_arg = app->rep;
    app->repair = rpr_new(svc_base(svc), fc_routes_view(app->routes), &popt);
    if (!app->repair || svc_on_stop(svc, fc_on_stop, app) != 0 ||
        fc_follow_settings(svc, peer, app) != 0 ||
        mtr_add_collector(svc_metrics(svc), fc_collect_repair, app) != 0) {
        errbuf_set(err, errlen, "cannot set up repair");
        return -1;
    }
    log_info("replicas %ld, retry deadline %lld ms, backoff %lld..%lld ms, repair every %lld ms%s",
             app->replicas, (long long)app->deadline_ms, (long long)app->base_ms,
             (long long)app->cap_ms, (long long)app->repair_ms, app->repair_ms ? "" : " (off)");
    return 0;
}

/* peer_app stop: free in reverse order of fc_start. */
static void fc_stop(void *arg)
{
    struct fc_app *app = arg;

    /* the loop has stopped: repair's pending callbacks go with rep_free */
    kvw_free(app->kv_deadline);
    kvw_free(app->kv_replicas);
    app->kv_deadline = app->kv_replicas = NULL;
    rpr_free(app->repair);
    fc_routes_free(app->routes);
    rep_free(app->rep);
    up_free(app->ups);
}

int main(int argc, char **argv)
{
    static struct fc_app st = {.replicas = REP_REPLICAS_DEFAULT,
                               .deadline_ms = BO_DEADLINE_MS_DEFAULT,
                               .base_ms = BO_BASE_MS_DEFAULT,
                               .cap_ms = BO_CAP_MS_DEFAULT,
                               .repair_ms = RPR_INTERVAL_MS_DEFAULT,
                               .peer_token = "",
                               .peer_token_file = ""};
    const struct cfg_option opts[] = {
        {"replicas", "REPLICAS", CFG_INT, &st.replicas, 1, REP_REPLICAS_MAX, "N",
         "logging-service instances that store each message"},
        {"retry-deadline", "RETRY_DEADLINE", CFG_DURATION, &st.deadline_ms, 100, 3600 * 1000LL,
         "DUR", "how long a POST may retry before answering 503"},
        {"retry-base", "RETRY_BASE", CFG_DURATION, &st.base_ms, 1, 60 * 1000LL, "DUR",
         "first backoff ceiling"},
        {"retry-cap", "RETRY_CAP", CFG_DURATION, &st.cap_ms, 1, 600 * 1000LL, "DUR",
         "largest backoff ceiling"},
        {"repair-interval", "REPAIR_INTERVAL", CFG_DURATION, &st.repair_ms, 0, 3600 * 1000LL, "DUR",
         "how often messages below --replicas copies are re-sent (0: never)"},
        {"peer-token", "PEER_TOKEN", CFG_STRING, &st.peer_token, 0, 0, "TOKEN",
         "token sent to logging-service (its --peer-token)"},
        {"peer-token-file", "PEER_TOKEN_FILE", CFG_STRING, &st.peer_token_file, 0, 0, "PATH",
         "file whose first line is that token"},
    };
    const struct peer_app app = {
        .name = "facade-service",
        .summary = "Stores client messages on logging-service replicas; reads them back.",
        .port_default = FC_PORT_DEFAULT,
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .check = fc_check,
        .start = fc_start,
        .stop = fc_stop,
        .arg = &st,
    };

    return peer_main(&app, argc, argv);
}
