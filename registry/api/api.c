/* api.c: the registry's REST routes (see the README for the contract), the
 * expiry timer and the group commit: store writes made while handling the
 * requests of one event-loop turn are committed together at its end. */
#include "api.h"

#include "../core/catalog.h"
#include "../core/spec.h"
#include "../store/store.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct reg_api {
    struct svc *svc;          /* borrowed */
    struct reg_registry *reg; /* borrowed */
    struct store *store;      /* borrowed */
    struct event *tick;       /* owned: persistent expiry timer */
    struct event *flush;      /* owned: activated after a write */
};

/* Queue the commit of this turn's writes (runs once per loop turn). */
static void api_schedule_flush(struct reg_api *api)
{
    if (store_pending(api->store) > 0 && !event_pending(api->flush, EV_TIMEOUT, NULL))
        event_active(api->flush, EV_TIMEOUT, 0);
}

static void api_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reg_api *api = arg;
    char err[256];
    struct timeval retry = {0, 200 * 1000};

    (void)fd;
    (void)what;
    if (store_flush(api->store, err, sizeof(err)) != 0) {
        log_error("store commit failed, retrying in 200 ms: %s", err);
        evtimer_add(api->flush, &retry);
    }
}

static void api_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reg_api *api = arg;

    (void)fd;
    (void)what;
    if (reg_tick(api->reg) > 0)
        api_schedule_flush(api);
}

/* Reply {"success": true, "<key>": <instance>}. */
static void api_reply_instance(struct hs_req *req, const char *key, const struct reg_instance *in)
{
    struct evbuffer *out = hs_req_output(req);

    if (evbuffer_add_printf(out, "{\"success\":true,\"%s\":", key) < 0 ||
        reg_write_instance(in, out) != 0 || evbuffer_add(out, "}", 1) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
}

static void api_reply_message(struct hs_req *req, int status, const char *message)
{
    hs_reply_json(req, status, json_pack("{s:b, s:s}", "success", 1, "message", message));
}

/* POST /v1/services */
static void api_register(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    struct reg_spec spec;
    char err[512], id[LIM_ID_MAX + 1];
    bool created = false;
    json_t *body = hs_req_json(req, err, sizeof(err));

    if (!body) {
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    if (reg_spec_parse(body, &spec, err, sizeof(err)) != 0) {
        json_decref(body);
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    json_decref(body);
    if (reg_register(api->reg, &spec, id, &created, err, sizeof(err)) != 0) {
        reg_spec_clear(&spec);
        hs_reply_error(req, 500, "could not register: %s", err);
        return;
    }
    log_info("%s %s at %s:%d (ttl %d s)", created ? "registered" : "re-registered", id, spec.host,
             spec.port, spec.ttl);
    reg_spec_clear(&spec);
    api_schedule_flush(api);
    hs_reply_json(req, created ? 201 : 200,
                  json_pack("{s:b, s:s, s:s}", "success", 1, "service_id", id, "message",
                            "Service registered successfully"));
}

/* DELETE /v1/services/{id} */
static void api_deregister(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, "{id}");
    char err[256];
    int rc = reg_deregister(api->reg, id, err, sizeof(err));

    if (rc < 0) {
        hs_reply_error(req, 500, "could not deregister: %s", err);
        return;
    }
    if (rc > 0) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    log_info("deregistered %s", id);
    api_schedule_flush(api);
    api_reply_message(req, 200, "Service deregistered successfully");
}

/* PUT /v1/services/{id}/renew */
static void api_renew(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, "{id}");

    if (reg_renew(api->reg, id) != 0) {
        hs_reply_error(req, 404, "service '%.200s' not found; register again", id);
        return;
    }
    api_reply_message(req, 200, "Service renewed successfully");
}

/* GET /v1/services/{id} */
static void api_get(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, "{id}");
    const struct reg_instance *in = reg_get(api->reg, id);

    if (!in) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    api_reply_instance(req, "service", in);
}

/* Parse ?health=; -1 for any, -2 for a bad value. */
static int api_health_param(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "passing") == 0)
        return REG_PASSING;
    if (strcmp(s, "critical") == 0)
        return REG_CRITICAL;
    return -2;
}

/* GET /v1/services?name=&type=&tag=&health= */
static void api_list(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    struct reg_filter f;
    struct evbuffer *buf = NULL;

    f.name = hs_req_query(req, "name");
    f.type = hs_req_query(req, "type");
    f.tag = hs_req_query(req, "tag");
    f.health = api_health_param(hs_req_query(req, "health"));
    if (f.health == -2) {
        hs_reply_error(req, 400, "health must be 'passing' or 'critical'");
        return;
    }
    buf = evbuffer_new();
    if (!buf || evbuffer_add_printf(buf, "{\"success\":true,\"services\":") < 0 ||
        reg_write_list(api->reg, &f, buf) != 0 || evbuffer_add(buf, "}", 1) != 0) {
        hs_buffer_free(buf);
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    hs_reply_buffer(req, 200, "application/json", buf);
    hs_buffer_free(buf);
}

/* GET /v1/discover?name=X|type=Y[&strategy=random|round_robin] */
static void api_discover(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *name = hs_req_query(req, "name");
    const char *type = hs_req_query(req, "type");
    const char *strategy = hs_req_query(req, "strategy");
    enum reg_strategy how = REG_RANDOM;
    const struct reg_instance *in;

    if (!name && !type) {
        hs_reply_error(req, 400, "give a service name (?name=) or type (?type=)");
        return;
    }
    if (strategy && strcmp(strategy, "round_robin") == 0)
        how = REG_ROUND_ROBIN;
    else if (strategy && strcmp(strategy, "random") != 0) {
        hs_reply_error(req, 400, "strategy must be 'random' or 'round_robin'");
        return;
    }
    in = reg_discover(api->reg, name, type, how);
    if (!in) {
        hs_reply_error(req, 404, "no passing instance of %s '%.200s'", name ? "service" : "type",
                       name ? name : type);
        return;
    }
    api_reply_instance(req, "service", in);
}

/* Registry gauges and counters for /metrics. */
static void api_collect(struct evbuffer *out, void *arg)
{
    struct reg_api *api = arg;
    struct reg_stats st;

    reg_get_stats(api->reg, &st);
    evbuffer_add_printf(out,
                        "# HELP registry_instances Registered instances by health.\n"
                        "# TYPE registry_instances gauge\n"
                        "registry_instances{health=\"passing\"} %zu\n"
                        "registry_instances{health=\"critical\"} %zu\n"
                        "# HELP registry_events_total Registry events by kind.\n"
                        "# TYPE registry_events_total counter\n"
                        "registry_events_total{event=\"registered\"} %llu\n"
                        "registry_events_total{event=\"deregistered\"} %llu\n"
                        "registry_events_total{event=\"renewed\"} %llu\n"
                        "registry_events_total{event=\"expired\"} %llu\n"
                        "registry_events_total{event=\"removed\"} %llu\n",
                        st.passing, st.critical, (unsigned long long)st.registered,
                        (unsigned long long)st.deregistered, (unsigned long long)st.renewed,
                        (unsigned long long)st.expired, (unsigned long long)st.removed);
}

struct reg_api *reg_api_new(struct svc *svc, struct reg_registry *r, struct store *st,
                            int64_t cleanup_ms)
{
    struct reg_api *api = calloc(1, sizeof(*api));

    if (!api)
        return NULL;
    api->svc = svc;
    api->reg = r;
    api->store = st;
    api->tick = event_new(svc_base(svc), -1, EV_PERSIST, api_tick_cb, api);
    api->flush = evtimer_new(svc_base(svc), api_flush_cb, api);
    if (!api->tick || !api->flush)
        goto fail;
    if (clk_timer_in(api->tick, cleanup_ms) != 0)
        goto fail;
    if (hs_route(svc_http(svc), HS_POST, "/v1/services", api_register, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/v1/services", api_list, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/v1/services/{id}", api_get, api) != 0 ||
        hs_route(svc_http(svc), HS_DELETE, "/v1/services/{id}", api_deregister, api) != 0 ||
        hs_route(svc_http(svc), HS_PUT, "/v1/services/{id}/renew", api_renew, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/v1/discover", api_discover, api) != 0 ||
        mtr_add_collector(svc_metrics(svc), api_collect, api) != 0)
        goto fail;
    return api;
fail:
    reg_api_free(api);
    return NULL;
}

void reg_api_free(struct reg_api *api)
{
    char err[256];

    if (!api)
        return;
    if (api->tick)
        event_free(api->tick);
    if (api->flush)
        event_free(api->flush);
    if (store_flush(api->store, err, sizeof(err)) != 0)
        log_error("final store commit failed: %s", err);
    free(api);
}
