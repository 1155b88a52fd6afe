/* api.c: the registry's REST routes (see the README for the contract) and
 * the expiry timer. A registration or deregistration is answered from the
 * completion of its store write: 201/200 once it is durable, 503 when the
 * commit failed (then nothing changed). The store commits the writes of one
 * loop turn together, off the loop.
 *
 * Access control (optional, common/auth/acl.h): with a token table every
 * route but /health checks the caller's token before it does anything; a
 * refusal is 403 "permission denied: <reason>", the token never quoted and
 * never logged. Without a table everything is open. Either way an existing
 * id is only moved to another host:port by an explicit ?replace=true, so a
 * re-registration cannot silently take over another instance's entry.
 *
 * On a shared store (etcd) a replica whose store cannot commit (no quorum,
 * no endpoint answering: store_writable false) still answers reads from
 * memory, each with X-Registry-Stale: true; it refuses registrations and
 * deregistrations at once with 503 naming the reason, and answers a
 * renewal 503 after recording it (the heartbeat is this replica's own, so
 * nothing expires for the outage, but the client moves to a replica that
 * can commit). GET /health, in place of the server's own, says the same. */
#include "api.h"

#include "../core/catalog.h"
#include "../store/store.h"
#include "auth/guard.h"
#include "codec.h"
#include "codec/jsonerr.h"
#include "core/clock.h"
#include "core/log.h"
#include "events.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "http/stream.h"
#include "proto/registry_v1.h"
#include "spec_json.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utlist.h>

#define API_ADDR_MAX REG_API_ADDR_MAX

struct api_stream;

struct reg_api {
    struct svc *svc;            /* borrowed */
    struct reg_registry *reg;   /* borrowed */
    struct store *store;        /* borrowed */
    const struct acl *acl;      /* borrowed; NULL: no access control */
    struct rev_hub *hub;        /* borrowed: the change events */
    struct event *tick;         /* owned: persistent expiry timer */
    struct event *deadline;     /* owned: one-shot timer at the next TTL deadline */
    struct api_stream *streams; /* open streamed lists (utlist DL); they borrow the API */
};

/* A request waiting for its store commit; freed by its completion. */
struct api_wait {
    struct hs_req *req; /* answered by the completion */
    char id[LIM_ID_MAX + 1];
    bool created;
    char host[LIM_HOST_MAX + 1]; /* for the log line */
    int port;
    int64_t ttl_ms;
    bool moved;             /* ?replace=true moved it from old */
    char old[API_ADDR_MAX]; /* "host:port" before the move */
};

/* "host:port" ("[host]:port" for an IPv6 literal) into buf (API_ADDR_MAX). */
static void api_addr(char *buf, const char *host, int port)
{
    snprintf(buf, API_ADDR_MAX, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* May the caller of req do action on name? (guard.h) */
static int api_allowed(struct reg_api *api, struct hs_req *req, enum acl_action action,
                       const char *name)
{
    return guard_request(api->acl, req, action, name);
}

/* The right a write on the instance id needs: on its name when it exists
 * (the instance is *in), else read (the answer will be 404). 1 when the
 * caller has it, else req was answered 403 and 0. */
static int api_allowed_on(struct reg_api *api, struct hs_req *req, const char *id,
                          const struct reg_instance **in)
{
    *in = reg_get(api->reg, id);
    if (*in)
        return api_allowed(api, req, ACL_WRITE_SERVICE, reg_instance_name(*in));
    return api_allowed(api, req, ACL_READ, NULL);
}

void reg_api_stale_header(const struct reg_api *api, struct hs_req *req)
{
    if (!store_writable(api->store))
        (void)hs_reply_header(req, REGV1_H_STALE, "true");
}

/* X-Registry-Index: the registry index, on a read's answer, with
 * X-Registry-Stale when it applies. */
static void api_index_header(struct reg_api *api, struct hs_req *req)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, reg_index(api->reg));
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr);
    reg_api_stale_header(api, req);
}

/* A write (what: "register", "deregister") on a store that cannot commit
 * now: answer 503 saying why and return 1; else 0 (go on). The store
 * would fail the write anyway, but only after its timeout. */
static int api_store_down(const struct reg_api *api, struct hs_req *req, const char *what)
{
    if (store_writable(api->store))
        return 0;
    reg_api_stale_header(api, req);
    hs_reply_error(req, 503,
                   "could not %s: the %s store cannot commit now (no quorum, or no endpoint "
                   "reachable); this replica's reads may be stale, try another replica",
                   what, api->store->ops->name);
    return 1;
}

/* The expiry timer. */
static void api_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reg_api *api = arg;

    (void)fd;
    (void)what;
    (void)reg_tick(api->reg);
}

/* The core's wake hook (reg_wake_fn): the next TTL deadline, at_ms on the
 * wall clock; the deadline timer is moved there (the core tells only
 * earlier ones, and after a tick the next). */
static void api_wake(void *arg, int64_t at_ms)
{
    struct reg_api *api = arg;
    int64_t delay = at_ms - clk_wall_ms();

    if (at_ms == INT64_MAX) {
        event_del(api->deadline);
        return;
    }
    if (clk_timer_in(api->deadline, delay > 0 ? delay : 0) != 0)
        log_warn("could not arm the ttl deadline timer (the regular tick still runs)");
}

/* Shutdown waits for the writes still waiting for their commit. */
static size_t api_busy(void *arg)
{
    struct reg_api *api = arg;

    return store_pending(api->store);
}

void reg_api_reply_instance(struct hs_req *req, const char *key, const struct reg_instance *in)
{
    struct evbuffer *out = hs_req_output(req);

    if (evbuffer_add_printf(out, "{\"success\":true,\"%s\":", key) < 0 ||
        regc_write_instance(in, out) != 0 || evbuffer_add(out, "}", 1) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
}

/* Reply {"success": true, "message": message}. */
static void api_reply_message(struct hs_req *req, int status, const char *message)
{
    hs_reply_json(req, status,
                  json_pack("{s:b, s:s}", REGV1_F_SUCCESS, 1, REGV1_F_MESSAGE, message));
}

/* Completion of a registration: answer it now that it is durable, or 503. */
static void api_register_done(void *arg, int rc, const char *err)
{
    struct api_wait *w = arg;

    if (rc != 0) {
        log_error("could not register %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not register: %s", err ? err : "store failure");
        free(w);
        return;
    }
    if (w->moved) {
        char now[API_ADDR_MAX];

        api_addr(now, w->host, w->port);
        log_info("instance %s moved from %s to %s", w->id, w->old, now);
    }
    log_info("%s %s at %s:%d (ttl %lld ms)", w->created ? "registered" : "re-registered", w->id,
             w->host, w->port, (long long)w->ttl_ms);
    hs_reply_json(w->req, w->created ? 201 : 200,
                  json_pack("{s:b, s:s, s:s}", REGV1_F_SUCCESS, 1, REGV1_F_SERVICE_ID, w->id,
                            REGV1_F_MESSAGE, "Service registered successfully"));
    free(w);
}

/* (api.h) Over a count cap 429 (a quota: the same request succeeds once
 * instances leave), over the document size 413 (the request itself is too
 * large, retrying cannot help), else 503. */
void reg_api_reply_refusal(struct hs_req *req, int rc, const char *err)
{
    switch (rc) {
    case REG_E_FULL:
    case REG_E_NAME_FULL:
        hs_reply_error(req, 429, "%s", err);
        break;
    case REG_E_TOO_BIG:
        hs_reply_error(req, 413, "%s", err);
        break;
    default:
        hs_reply_error(req, 503, "could not register: %s", err);
        break;
    }
}

/* (api.h) An id is never taken over by accident or by a stranger's
 * renewals: a move needs the right on the old name and ?replace=true. */
int reg_api_register_check(struct reg_api *api, struct hs_req *req, const struct reg_spec *spec,
                           bool *moved, char *old)
{
    const char *replace = hs_req_query(req, REGV1_Q_REPLACE);
    const struct reg_instance *in = NULL;
    bool may_move = false;

    *moved = false;
    if (replace && strcmp(replace, "true") != 0 && strcmp(replace, "false") != 0) {
        hs_reply_error(req, 400, "replace must be 'true' or 'false'");
        return -1;
    }
    may_move = replace && strcmp(replace, "true") == 0;
    if (!api_allowed(api, req, ACL_WRITE_SERVICE, spec->name))
        return -1;
    in = spec->has_id ? reg_get(api->reg, spec->id) : NULL;
    if (!in)
        return 0;
    if (strcmp(reg_instance_name(in), spec->name) != 0 &&
        !api_allowed(api, req, ACL_WRITE_SERVICE, reg_instance_name(in)))
        return -1;
    if (strcasecmp(reg_instance_host(in), spec->host) == 0 && reg_instance_port(in) == spec->port)
        return 0;
    api_addr(old, reg_instance_host(in), reg_instance_port(in));
    if (!may_move) {
        hs_reply_error(req, 409,
                       "instance %s is registered at %s; to move it, re-register with "
                       "?replace=true",
                       spec->id, old);
        return -1;
    }
    *moved = true;
    return 0;
}

/* POST /v1/services[?replace=true] */
static void api_register(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    struct reg_spec spec;
    struct api_wait *w = NULL;
    char err[512];
    int rc = 0;
    json_error_t jerr;
    json_t *body = NULL;
    const char *text;
    size_t len;

    /* Who may register anything at all is checked before the body is
     * read: a caller without a known token learns nothing from it. */
    if (api->acl && !api_allowed(api, req, ACL_READ, NULL))
        return;
    body = hs_req_json(req, &jerr);
    if (!body) {
        text = hs_req_body(req, &len);
        hs_reply_error(req, 400, "%s",
                       jerr_describe(&jerr, text, len, "request body", err, sizeof(err)));
        return;
    }
    if (reg_spec_parse(body, &spec, err, sizeof(err)) != 0) {
        json_decref(body);
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    json_decref(body);
    w = calloc(1, sizeof(*w));
    if (!w) {
        reg_spec_clear(&spec);
        hs_reply_error(req, 503, "could not register: out of memory");
        return;
    }
    w->req = req;
    if (reg_api_register_check(api, req, &spec, &w->moved, w->old) != 0) {
        reg_spec_clear(&spec);
        free(w);
        return;
    }
    snprintf(w->host, sizeof(w->host), "%s", spec.host);
    w->port = spec.port;
    w->ttl_ms = spec.ttl_ms;
    if (api_store_down(api, req, "register")) {
        reg_spec_clear(&spec);
        free(w);
        return;
    }
    rc = reg_register(api->reg, &spec, api_register_done, w, w->id, &w->created, err, sizeof(err));
    if (rc != 0) {
        reg_spec_clear(&spec);
        free(w);
        reg_api_reply_refusal(req, rc, err);
        return;
    }
    log_debug("%s waits for its commit", w->id);
    reg_spec_clear(&spec);
}

/* Completion of a deregistration: answer it now that it is durable. */
static void api_deregister_done(void *arg, int rc, const char *err)
{
    struct api_wait *w = arg;

    if (rc != 0) {
        log_error("could not deregister %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not deregister: %s", err ? err : "store failure");
    } else {
        log_info("deregistered %s", w->id);
        api_reply_message(w->req, 200, "Service deregistered successfully");
    }
    free(w);
}

/* DELETE /v1/services/{id} */
static void api_deregister(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, REGV1_PARAM_ID);
    const struct reg_instance *in = NULL;
    struct api_wait *w = NULL;
    char err[256];
    int rc = 0;

    if (!api_allowed_on(api, req, id, &in))
        return;
    if (api_store_down(api, req, "deregister"))
        return;
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_error(req, 503, "could not deregister: out of memory");
        return;
    }
    w->req = req;
    snprintf(w->id, sizeof(w->id), "%s", id);
    rc = reg_deregister(api->reg, id, api_deregister_done, w, err, sizeof(err));
    if (rc < 0) {
        free(w);
        hs_reply_error(req, 503, "could not deregister: %s", err);
        return;
    }
    if (rc > 0) {
        free(w);
        hs_reply_error(req, 404, "service '%.200s' not found", id);
    }
}

/* PUT /v1/services/{id}/renew */
static void api_renew(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, REGV1_PARAM_ID);
    const struct reg_instance *in = NULL;

    if (!api_allowed_on(api, req, id, &in))
        return;
    switch (reg_renew(api->reg, id)) {
    case 0:
        break;
    case 2:
        hs_reply_error(req, 400,
                       "service '%.200s' has no ttl check to renew (it was registered with "
                       "checks and no ttl)",
                       id);
        return;
    default:
        hs_reply_error(req, 404, "service '%.200s' not found; register again", id);
        return;
    }
    if (!store_writable(api->store)) {
        reg_api_stale_header(api, req);
        hs_reply_error(req, 503,
                       "renewed on this replica only: its %s store cannot commit now (no "
                       "quorum, or no endpoint reachable); renew through another replica",
                       api->store->ops->name);
        return;
    }
    api_reply_message(req, 200, "Service renewed successfully");
}

/* The blocking-read query of a read: ?index=N (*index, 0 without) and
 * ?wait=D (*wait_ms, LIM_WATCH_WAIT_DEFAULT_MS without), the rules of
 * /v1/events (rev_parse_index, rev_parse_wait). 0, or -1 after answering
 * 400. */
static int api_block_query(struct hs_req *req, uint64_t *index, int64_t *wait_ms)
{
    const char *index_s = hs_req_query(req, REGV1_Q_INDEX);
    const char *wait_s = hs_req_query(req, REGV1_Q_WAIT);

    *index = 0;
    *wait_ms = LIM_WATCH_WAIT_DEFAULT_MS;
    if (index_s && rev_parse_index(index_s, index) != 0) {
        hs_reply_error(req, 400, "index must be a decimal number from 0 to %" PRIu64, UINT64_MAX);
        return -1;
    }
    if (wait_s && rev_parse_wait(wait_s, wait_ms) != 0) {
        hs_reply_error(req, 400,
                       "wait must be a duration such as 30s or 5m, at most %d m (a bare number "
                       "is seconds)",
                       LIM_WATCH_WAIT_MAX_MS / 60000);
        return -1;
    }
    return 0;
}

/* Park the read req (seen at index) on the hub until a change its filter
 * (name or id) matches; wake answers it then. 1 when parked, 0 when it is
 * to be answered now (index 0 among them), -1 after answering 500 (out of
 * memory). */
static int api_block(struct reg_api *api, struct hs_req *req, uint64_t index, int64_t wait_ms,
                     const char *name, const char *id, rev_wake_fn wake)
{
    int rc = index > 0 ? rev_park(api->hub, req, index, wait_ms, name, id, wake, api) : 0;

    if (rc < 0)
        hs_reply_oom(req);
    return rc;
}

/* Answer GET /v1/services/{id} with the instance as it is now (404 when it
 * is not there), and X-Registry-Index. Also rev_wake_fn (arg: the API). */
static void api_get_answer(void *arg, struct hs_req *req)
{
    struct reg_api *api = arg;
    const char *id = hs_req_param(req, REGV1_PARAM_ID);
    const struct reg_instance *in = NULL;

    api_index_header(api, req);
    in = reg_get(api->reg, id);
    if (!in) {
        hs_reply_error(req, 404, "service '%.200s' not found", id);
        return;
    }
    reg_api_reply_instance(req, REGV1_F_SERVICE, in);
}

/* GET /v1/services/{id}[?index=N[&wait=D]]: with index, a blocking read
 * held until a change of that instance after N (its deregistration
 * answers 404) or the wait's end. */
static void api_get(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    uint64_t index = 0;
    int64_t wait_ms = 0;

    if (!api_allowed(api, req, ACL_READ, NULL))
        return;
    api_index_header(api, req); /* on the errors too (replaced by the answer's) */
    if (api_block_query(req, &index, &wait_ms) != 0)
        return;
    if (api_block(api, req, index, wait_ms, NULL, hs_req_param(req, REGV1_PARAM_ID),
                  api_get_answer) != 0)
        return;
    api_get_answer(api, req);
}

/* Parse ?health= into f: passing (only), warning (and passing), critical
 * (only), absent: any. 0, or -1 for a bad value. */
static int api_health_param(const char *s, struct reg_filter *f)
{
    f->health = -1;
    f->health_or_better = false;
    if (!s)
        return 0;
    if (strcmp(s, REGV1_PASSING) == 0)
        f->health = REG_PASSING;
    else if (strcmp(s, REGV1_WARNING) == 0) {
        f->health = REG_WARNING;
        f->health_or_better = true;
    } else if (strcmp(s, REGV1_CRITICAL) == 0)
        f->health = REG_CRITICAL;
    else
        return -1;
    return 0;
}

/* The filters of a list request, from its query; 0, or -1 after answering
 * 400. The strings are borrowed from req. */
static int api_list_filter(struct hs_req *req, struct reg_filter *f)
{
    f->name = hs_req_query(req, REGV1_Q_NAME);
    f->type = hs_req_query(req, REGV1_Q_TYPE);
    f->tag = hs_req_query(req, REGV1_Q_TAG);
    if (api_health_param(hs_req_query(req, REGV1_Q_HEALTH), f) != 0) {
        hs_reply_error(req, 400,
                       "health must be 'passing', 'warning' (passing and warning) or 'critical'");
        return -1;
    }
    return 0;
}

/* GET /v1/services?limit=N&after=ID: one page in id order, at most N
 * instances (LIM_REG_PAGE_DEFAULT without limit=) and about LIM_PAGE_BYTES
 * of them, with "next" (the page's last id: ask after= it) when more
 * follow. */
static void api_list_page(struct reg_api *api, struct hs_req *req, const struct reg_filter *f)
{
    const char *limit_s = hs_req_query(req, REGV1_Q_LIMIT);
    const char *after = hs_req_query(req, REGV1_Q_AFTER);
    const struct reg_instance **page = NULL;
    struct evbuffer *buf = NULL;
    long limit = LIM_REG_PAGE_DEFAULT;
    size_t n = 0, i;
    bool more = false;
    char *end = NULL;

    if (limit_s) {
        limit = strtol(limit_s, &end, 10);
        if (!*limit_s || *end || limit < 1 || limit > LIM_REG_PAGE_MAX || limit_s[0] == '+' ||
            limit_s[0] == '-' || limit_s[0] == ' ') {
            hs_reply_error(req, 400, "limit must be an integer from 1 to %d", LIM_REG_PAGE_MAX);
            return;
        }
    }
    if (after && (!*after || strlen(after) > LIM_ID_MAX)) {
        hs_reply_error(req, 400, "after must be an instance id (1 to %d characters)", LIM_ID_MAX);
        return;
    }
    page = malloc(((size_t)limit + 1) * sizeof(*page));
    buf = evbuffer_new();
    if (!page || !buf)
        goto oom;
    n = reg_page(api->reg, f, after, (size_t)limit, page, &more);
    if (evbuffer_add_printf(buf, "{\"" REGV1_F_SUCCESS "\":true,\"" REGV1_F_SERVICES "\":[") < 0)
        goto oom;
    for (i = 0; i < n; i++) {
        if (i > 0 && evbuffer_get_length(buf) >= LIM_PAGE_BYTES) {
            more = true; /* the page is full by size: the rest in the next */
            break;
        }
        if ((i > 0 && evbuffer_add(buf, ",", 1) != 0) || regc_write_instance(page[i], buf) != 0)
            goto oom;
    }
    if (evbuffer_add(buf, "]", 1) != 0)
        goto oom;
    if (more && n > 0) {
        /* an id is [A-Za-z0-9._-] and a uuid: nothing to escape */
        if (evbuffer_add_printf(buf, ",\"" REGV1_F_NEXT "\":\"%s\"", reg_instance_id(page[i - 1])) <
            0)
            goto oom;
    }
    if (evbuffer_add(buf, "}", 1) != 0)
        goto oom;
    hs_reply_buffer(req, 200, "application/json", buf);
    goto cleanup;
oom:
    hs_reply_oom(req);
cleanup:
    hs_buffer_free(buf);
    free(page);
}

/* An unpaged GET /v1/services being streamed: the instances in
 * registration order, each as it is when its piece is written, pieces of
 * about LIM_CHUNK_BYTES made only once the client has taken all but
 * LIM_REG_STREAM_LOW_WATER of what was sent. */
struct api_stream {
    struct reg_api *api;            /* borrowed; NULL once the API is freed */
    struct hs_stream *st;           /* the stream (the server frees it after on_close) */
    struct evbuffer *piece;         /* owned: the piece being made */
    struct reg_filter f;            /* strings borrowed from the stream's request, or type */
    char type[LIM_TYPE_MAX + 1];    /* a copy of the type filter (reg_api_list_stream) */
    struct reg_cursor cur;          /* where the list goes on */
    bool began;                     /* the head was written */
    bool first;                     /* no instance written yet */
    bool done;                      /* ended: write nothing more */
    struct api_stream *prev, *next; /* in api->streams */
};

/* reg_foreach_from callback: append one instance to the piece; pause once
 * the piece is full. */
static int api_stream_one(const struct reg_instance *in, void *arg)
{
    struct api_stream *as = arg;

    if (!as->first && evbuffer_add(as->piece, ",", 1) != 0)
        return -1;
    as->first = false;
    if (regc_write_instance(in, as->piece) != 0)
        return -1;
    return evbuffer_get_length(as->piece) >= LIM_CHUNK_BYTES ? 1 : 0;
}

/* Write pieces while the client has at most LIM_REG_STREAM_LOW_WATER bytes
 * to take (on_drain calls again), and end the stream after "]}". A piece
 * that cannot be made (out of memory) ends the stream without its tail:
 * JSON cut short, never a shorter list that parses. */
static void api_stream_fill(struct api_stream *as)
{
    int rc = 1;

    if (as->done)
        return;
    if (!as->api) {
        as->done = true;
        hs_stream_end(as->st);
        return;
    }
    while (rc == 1 && hs_stream_pending(as->st) <= LIM_REG_STREAM_LOW_WATER) {
        if (!as->began) {
            if (evbuffer_add_printf(as->piece, "{\"" REGV1_F_SUCCESS "\":true,\"" REGV1_F_SERVICES
                                               "\":[") < 0) {
                rc = -1;
                break;
            }
            as->began = true;
        }
        rc = reg_foreach_from(as->api->reg, &as->f, &as->cur, api_stream_one, as);
        if (rc == 0 && evbuffer_add(as->piece, "]}", 2) != 0)
            rc = -1;
        if (rc < 0)
            break;
        if (hs_stream_write_buffer(as->st, as->piece) != 0) {
            /* the stream is ending (client gone, cap passed): on_close follows */
            evbuffer_drain(as->piece, evbuffer_get_length(as->piece));
            as->done = true;
            return;
        }
    }
    if (rc < 0) {
        evbuffer_drain(as->piece, evbuffer_get_length(as->piece));
        log_error("GET /v1/services cut short: out of memory");
    }
    if (rc <= 0) {
        as->done = true;
        hs_stream_end(as->st);
    }
}

/* hs_stream drain callback: the client took the previous pieces. */
static void api_stream_on_drain(struct hs_stream *st, void *arg)
{
    (void)st;
    api_stream_fill(arg);
}

/* hs_stream close callback: forget as (st is freed by the server after). */
static void api_stream_on_close(struct hs_stream *st, enum hs_stream_end_reason why, void *arg)
{
    struct api_stream *as = arg;

    (void)st;
    if (why == HS_STREAM_GONE || why == HS_STREAM_OVERFLOW)
        log_debug("GET /v1/services ended early: %s",
                  why == HS_STREAM_GONE ? "client gone" : "client too slow");
    if (as->api)
        DL_DELETE(as->api->streams, as);
    hs_buffer_free(as->piece);
    free(as);
}

/* Answer req with every instance matching f, streamed (chunked) in
 * registration order: {"success":true,"services":[...]}. With type (at
 * most LIM_TYPE_MAX bytes, copied), the stream filters on its copy of it
 * instead of f->type (whose string need not outlive this call then). */
static void api_list_stream(struct reg_api *api, struct hs_req *req, const struct reg_filter *f,
                            const char *type)
{
    struct api_stream *as = NULL;
    struct hs_stream_opts opts = {0};

    as = calloc(1, sizeof(*as));
    if (as)
        as->piece = evbuffer_new();
    if (!as || !as->piece) {
        free(as);
        hs_reply_oom(req);
        return;
    }
    as->api = api;
    as->f = *f;
    if (type) {
        snprintf(as->type, sizeof(as->type), "%s", type);
        as->f.type = as->type;
    }
    as->first = true;
    opts.content_type = "application/json";
    opts.low_water = LIM_REG_STREAM_LOW_WATER;
    opts.on_drain = api_stream_on_drain;
    opts.on_close = api_stream_on_close;
    opts.arg = as;
    as->st = hs_stream_start(req, 200, &opts);
    if (!as->st) {
        /* req was answered (500) and freed */
        hs_buffer_free(as->piece);
        free(as);
        return;
    }
    DL_APPEND(api->streams, as);
    api_stream_fill(as);
}

void reg_api_list_stream(struct reg_api *api, struct hs_req *req, const char *type)
{
    struct reg_filter f = {.health = -1};

    if (type && strlen(type) > LIM_TYPE_MAX) {
        hs_reply_error(req, 400, "a type is at most %d characters", LIM_TYPE_MAX);
        return;
    }
    api_index_header(api, req);
    api_list_stream(api, req, &f, type);
}

/* Answer a list request (its filter f, parsed before) with the state now:
 * without limit= and after=, every matching instance, streamed
 * (api_list_stream); with either, one page (api_list_page).
 * X-Registry-Index on both. */
static void api_list_now(struct reg_api *api, struct hs_req *req, const struct reg_filter *f)
{
    api_index_header(api, req);
    if (hs_req_query(req, REGV1_Q_LIMIT) || hs_req_query(req, REGV1_Q_AFTER)) {
        api_list_page(api, req, f);
        return;
    }
    api_list_stream(api, req, f, NULL);
}

/* rev_wake_fn of a parked list (arg: the API): answer it now. Its query
 * was checked before it was parked, so the filter parses again. */
static void api_list_wake(void *arg, struct hs_req *req)
{
    struct reg_filter f;

    if (api_list_filter(req, &f) != 0)
        return; /* cannot happen: answered 400 */
    api_list_now(arg, req, &f);
}

/* GET /v1/services?name=&type=&tag=&health=[&limit=&after=][&index=N
 * [&wait=D]]: the list (api_list_now); with index, a blocking read held
 * until an instance event after N of the service ?name= (any service
 * without name=) or the wait's end. With limit=/after= the same: the
 * watch is on the filter, the answer the page asked for. */
static void api_list(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    struct reg_filter f;
    uint64_t index = 0;
    int64_t wait_ms = 0;

    if (!api_allowed(api, req, ACL_READ, NULL))
        return;
    api_index_header(api, req); /* on the errors too (replaced by the answer's) */
    if (api_list_filter(req, &f) != 0 || api_block_query(req, &index, &wait_ms) != 0)
        return;
    if (api_block(api, req, index, wait_ms, f.name, NULL, api_list_wake) != 0)
        return;
    api_list_now(api, req, &f);
}

/* GET /v1/discover?name=X|type=Y[&strategy=random|round_robin] */
static void api_discover(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    const char *name = hs_req_query(req, REGV1_Q_NAME);
    const char *type = hs_req_query(req, REGV1_Q_TYPE);
    const char *strategy = hs_req_query(req, REGV1_Q_STRATEGY);
    enum reg_strategy how = REG_RANDOM;
    const struct reg_instance *in;

    if (!api_allowed(api, req, ACL_READ, NULL))
        return;
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
    reg_api_reply_instance(req, REGV1_F_SERVICE, in);
}

/* GET /v1/events: change events, long-poll or SSE (events.h). */
static void api_events(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;

    if (!api_allowed(api, req, ACL_READ, NULL))
        return;
    reg_api_stale_header(api, req);
    rev_watch(api->hub, req);
}

/* GET /health, in place of the server's own (open like it, no token):
 * the same answer plus the store's state, {"store": {"backend",
 * "shared", "writable", "revision"}}; "status" is "stale" instead of
 * "ok" while the store cannot commit. 200 either way: reads still
 * answer. */
static void api_health(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    bool writable = store_writable(api->store);

    reg_api_stale_header(api, req);
    hs_reply_json(req, 200,
                  json_pack("{s:b, s:s, s:I, s:{s:s, s:b, s:b, s:I}}", REGV1_F_SUCCESS, 1, "status",
                            writable ? "ok" : "stale", "timestamp",
                            (json_int_t)(clk_wall_ms() / 1000), "store", "backend",
                            api->store->ops->name, "shared", api->store->ops->follow != NULL,
                            "writable", writable, "revision",
                            (json_int_t)store_revision(api->store)));
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
                        "registry_instances{health=\"warning\"} %zu\n"
                        "registry_instances{health=\"critical\"} %zu\n"
                        "# HELP registry_events_total Registry events by kind.\n"
                        "# TYPE registry_events_total counter\n"
                        "registry_events_total{event=\"registered\"} %llu\n"
                        "registry_events_total{event=\"deregistered\"} %llu\n"
                        "registry_events_total{event=\"renewed\"} %llu\n"
                        "registry_events_total{event=\"expired\"} %llu\n"
                        "registry_events_total{event=\"removed\"} %llu\n"
                        "# HELP registry_index The registry-wide change index.\n"
                        "# TYPE registry_index counter\n"
                        "registry_index %llu\n"
                        "# HELP registry_watchers Open watches: parked long-polls and streams.\n"
                        "# TYPE registry_watchers gauge\n"
                        "registry_watchers %zu\n",
                        st.passing, st.warning, st.critical, (unsigned long long)st.registered,
                        (unsigned long long)st.deregistered, (unsigned long long)st.renewed,
                        (unsigned long long)st.expired, (unsigned long long)st.removed,
                        (unsigned long long)reg_index(api->reg), rev_hub_watchers(api->hub));
}

/* GET /metrics, in place of the server's own: the same text, behind the
 * read right (Consul guards its metrics the same way: instance counts and
 * names of what runs are a map of the system). */
static void api_metrics(struct hs_req *req, void *arg)
{
    struct reg_api *api = arg;
    struct evbuffer *buf = NULL;

    if (!api_allowed(api, req, ACL_READ, NULL))
        return;
    buf = evbuffer_new();
    if (!buf || mtr_render(svc_metrics(api->svc), buf) != 0) {
        hs_buffer_free(buf);
        hs_reply_error(req, 500, "metrics unavailable");
        return;
    }
    hs_reply_buffer(req, 200, "text/plain; version=0.0.4", buf);
    hs_buffer_free(buf);
}

struct reg_api *reg_api_new(struct svc *svc, struct reg_registry *r, struct store *st,
                            struct rev_hub *hub, int64_t cleanup_ms, const struct acl *acl)
{
    struct reg_api *api = calloc(1, sizeof(*api));

    if (!api)
        return NULL;
    api->svc = svc;
    api->reg = r;
    api->store = st;
    api->acl = acl;
    api->hub = hub;
    api->tick = event_new(svc_base(svc), -1, EV_PERSIST, api_tick_cb, api);
    if (!api->tick)
        goto fail;
    if (clk_timer_in(api->tick, cleanup_ms) != 0)
        goto fail;
    api->deadline = evtimer_new(svc_base(svc), api_tick_cb, api);
    if (!api->deadline)
        goto fail;
    reg_set_wake(r, api_wake, api);
    if (hs_route(svc_http(svc), HS_POST, REGV1_SERVICES, api_register, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, REGV1_SERVICES, api_list, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, REGV1_SERVICE, api_get, api) != 0 ||
        hs_route(svc_http(svc), HS_DELETE, REGV1_SERVICE, api_deregister, api) != 0 ||
        hs_route(svc_http(svc), HS_PUT, REGV1_RENEW, api_renew, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, REGV1_DISCOVER, api_discover, api) != 0 ||
        hs_route(svc_http(svc), HS_GET, REGV1_EVENTS, api_events, api) != 0 ||
        hs_route(svc_http(svc), HS_GET | HS_HEAD, "/health", api_health, api) != 0 ||
        (acl && hs_route(svc_http(svc), HS_GET, "/metrics", api_metrics, api) != 0) ||
        mtr_add_collector(svc_metrics(svc), api_collect, api) != 0)
        goto fail;
    if (svc_on_busy(svc, api_busy, api) != 0)
        goto fail;
    return api;
fail:
    reg_api_free(api);
    return NULL;
}

void reg_api_free(struct reg_api *api)
{
    if (!api)
        return;
    if (api->tick)
        event_free(api->tick);
    if (api->deadline) {
        reg_set_wake(api->reg, NULL, NULL);
        event_free(api->deadline);
    }
    /* Streams still open end without the registry (see api_stream_fill). */
    {
        struct api_stream *as, *tmp;

        DL_FOREACH_SAFE (api->streams, as, tmp) {
            DL_DELETE(api->streams, as);
            as->api = NULL;
        }
    }
    /* Writes still waiting are answered before the server goes away. */
    store_drain(api->store);
    svc_remove_hooks(api->svc, api);
    free(api);
}
