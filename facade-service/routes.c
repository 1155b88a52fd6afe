/* routes.c: the facade's handlers (see routes.h). POST hands the message to
 * the replicator and answers when it is stored or has failed; GET asks every
 * passing logging instance and one messages instance at once and merges the
 * logs by uuid in the facade's timestamp order. */
#include "routes.h"

#include "codec/jsonflat.h"
#include "codec/uid.h"
#include "codec/utf8.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "http/service.h"
#include "regclient/discovery.h"
#include "replicate.h"
#include "upstream.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <utlist.h>

#define FC_FANOUT_MAX (DISC_INSTANCES_MAX + 1)
#define FC_POST_TOKS  16 /* tokens of a POST body the fast path reads */

struct fc_get;

/* One call of a GET fan-out. */
struct fc_leg {
    struct fc_get *get;
    struct up_instance *up; /* borrowed */
    struct hc_call *call;
    bool is_messages;
};

struct fc_get {
    struct fc_routes *f;
    struct hs_req *req;
    json_t *by_uuid; /* uuid -> [ts, msg, position in an instance's list] */
    json_t *message; /* the messages-service answer, or NULL */
    json_t *errors;  /* array of strings */
    struct fc_leg legs[FC_FANOUT_MAX];
    size_t nlegs, outstanding;
    struct fc_get *prev, *next;
};

struct fc_routes {
    struct svc *svc;
    struct hc_client *hc;
    struct disc_client *disc;
    struct up_table *ups;
    struct rep_ctx *rep;
    unsigned messages_rr; /* round robin over messages instances */
    struct fc_get *gets;  /* fan-outs in flight (utlist DL) */
    size_t ngets;
};

/* ---------------------------------------------------------------------- */
/* POST /facade */

/* The replicator's verdict for one POST (arg: its request): the reply. */
static void fc_post_done(int status, const char *error, const char *uuid, void *arg)
{
    struct hs_req *req = arg;

    if (status == 200) {
        char body[96];
        int n = snprintf(body, sizeof(body), "{\"status\":\"success\",\"uuid\":\"%s\"}", uuid);

        hs_reply_raw(req, 200, "application/json", body, (size_t)n);
    } else
        hs_reply_json(
            req, status,
            json_pack("{s:s, s:s, s:s}", "status", "error", "uuid", uuid, "error", error));
}

/* Whether the request's Content-Type is text/plain. */
static bool fc_is_text(const struct hs_req *req)
{
    const char *ct = hs_req_header(req, "Content-Type");

    return ct && strncasecmp(ct, "text/plain", 10) == 0;
}

/* The fast path for the common body {"msg": "<text>"}: true with *msg
 * (borrowed from the body, valid UTF-8) and *len when the body is in
 * jsonflat's subset and its "msg" is a string; false for anything else,
 * which jansson then reads (and explains, when it is wrong). */
static bool fc_flat_msg(const struct hs_req *req, const char **msg, size_t *len)
{
    struct jf_tok toks[FC_POST_TOKS];
    size_t blen = 0;
    const char *body = hs_req_body(req, &blen);
    long m;

    if (!body || jf_parse(body, blen, toks, FC_POST_TOKS, NULL) != JF_OK ||
        toks[0].type != JF_OBJECT)
        return false;
    m = jf_get(toks, 0, "msg");
    if (m < 0 || toks[m].type != JF_STRING)
        return false;
    *msg = toks[m].str;
    *len = toks[m].len;
    return true;
}

static void fc_post(struct hs_req *req, void *arg)
{
    struct fc_routes *f = arg;
    const char *key = hs_req_header(req, "Idempotency-Key");
    char uuid[UID_STR_LEN + 1], err[300];
    const char *msg = NULL;
    size_t len = 0;
    json_t *body = NULL;

    if (key) {
        if (!uid_is_valid(key)) {
            hs_reply_error(req, 400, "Idempotency-Key must be a UUID");
            return;
        }
        uid_normalize(key, uuid);
    } else {
        uid_generate(uuid);
    }
    if (fc_is_text(req)) {
        msg = hs_req_body(req, &len);
        if (msg && (memchr(msg, '\0', len) || !utf8_valid(msg, len))) {
            hs_reply_error(req, 400, "a text/plain msg must be UTF-8 text without NUL bytes");
            return;
        }
    } else if (fc_flat_msg(req, &msg, &len)) {
        /* read without jansson */
    } else {
        const json_t *m;

        body = hs_req_json(req, err, sizeof(err));
        if (!body) {
            hs_reply_error(req, 400, "%s", err);
            return;
        }
        m = json_is_object(body) ? json_object_get(body, "msg") : NULL;
        if (!json_is_string(m)) {
            json_decref(body);
            hs_reply_error(req, 400, "body must be {\"msg\": \"<text>\"} (or a text/plain body)");
            return;
        }
        msg = json_string_value(m);
        len = json_string_length(m);
    }
    if (len == 0) {
        json_decref(body);
        hs_reply_error(req, 400, "msg is empty");
        return;
    }
    if (len > LIM_MSG_MAX) {
        json_decref(body);
        hs_reply_error(req, 413, "msg of %zu bytes is over the limit of %d bytes", len,
                       LIM_MSG_MAX);
        return;
    }
    /* req stays valid until its reply: fc_post_done answers it */
    if (rep_store(f->rep, uuid, msg, len, clk_wall_ms(), fc_post_done, req) != 0) {
        json_decref(body);
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    json_decref(body);
}

/* ---------------------------------------------------------------------- */
/* GET /facade */

/* qsort order of [ts, msg, position, uuid] entries: by ts; messages of
 * the same millisecond by their position in a logging instance's list
 * (the order they were stored in, which is the order the facade sent
 * them), then by uuid. */
static int fc_cmp_entries(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_array_get(x, 0));
    json_int_t ty = json_integer_value(json_array_get(y, 0));
    json_int_t px = json_integer_value(json_array_get(x, 2));
    json_int_t py = json_integer_value(json_array_get(y, 2));

    if (tx != ty)
        return tx < ty ? -1 : 1;
    if (px != py)
        return px < py ? -1 : 1;
    return strcmp(json_string_value(json_array_get(x, 3)), json_string_value(json_array_get(y, 3)));
}

static void fc_get_finish(struct fc_get *g)
{
    struct fc_routes *f = g->f;
    size_t n = json_object_size(g->by_uuid), i = 0;
    json_t **entries = calloc(n ? n : 1, sizeof(*entries));
    json_t *logs = json_array(), *reply;
    const char *uuid;
    json_t *v;

    json_object_foreach (g->by_uuid, uuid, v) {
        json_array_append_new(v, json_string(uuid));
        entries[i++] = v;
    }
    if (entries)
        qsort(entries, i, sizeof(*entries), fc_cmp_entries);
    for (n = 0; entries && n < i; n++)
        json_array_append(logs, json_array_get(entries[n], 1));
    free(entries);
    reply = json_pack("{s:o, s:O}", "logs", logs, "message", g->message ? g->message : json_null());
    if (json_array_size(g->errors) > 0)
        json_object_set(reply, "errors", g->errors);
    DL_DELETE(f->gets, g);
    f->ngets--;
    hs_reply_json(g->req, 200, reply);
    json_decref(g->by_uuid);
    json_decref(g->message);
    json_decref(g->errors);
    free(g);
}

/* Fold one logging instance's GET /logging answer into g. */
static int fc_merge_logs(struct fc_get *g, const struct hc_response *resp)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *msgs = json_object_get(root, "messages"), *item;
    size_t i;

    if (!json_is_array(msgs)) {
        json_decref(root);
        return -1;
    }
    json_array_foreach (msgs, i, item) {
        const char *uuid = json_string_value(json_object_get(item, "uuid"));
        json_t *msg = json_object_get(item, "msg");
        json_t *ts = json_object_get(item, "ts");

        json_t *seen = NULL;

        if (!uuid || !json_is_string(msg))
            continue;
        seen = json_object_get(g->by_uuid, uuid);
        if (seen) {
            /* keep the earliest position any instance gives it */
            if ((json_int_t)i < json_integer_value(json_array_get(seen, 2)))
                json_array_set_new(seen, 2, json_integer((json_int_t)i));
            continue;
        }
        json_object_set_new(g->by_uuid, uuid,
                            json_pack("[I, O, I]", json_integer_value(ts), msg, (json_int_t)i));
    }
    json_decref(root);
    return 0;
}

static void fc_leg_done(const struct hc_response *resp, void *arg)
{
    struct fc_leg *leg = arg;
    struct fc_get *g = leg->get;
    struct fc_routes *f = g->f;
    bool ok = resp->error == HC_OK && resp->status == 200;
    char why[512];

    leg->call = NULL;
    up_record(f->ups, leg->up, resp->error == HC_OK && resp->status < 500, resp->elapsed_ms);
    if (ok && leg->is_messages) {
        json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
        json_t *m = json_object_get(root, "message");

        if (m) {
            json_decref(g->message);
            g->message = json_incref(m);
        } else {
            ok = false;
        }
        json_decref(root);
    } else if (ok && fc_merge_logs(g, resp) != 0) {
        ok = false;
    }
    if (!ok) {
        if (resp->error != HC_OK)
            snprintf(why, sizeof(why), "%s %s: %s", leg->up->service, leg->up->key,
                     resp->error_msg);
        else
            snprintf(why, sizeof(why), "%s %s: HTTP %ld", leg->up->service, leg->up->key,
                     resp->status);
        log_warn("GET /facade: %s", why);
        json_array_append_new(g->errors, json_string(why));
    }
    if (--g->outstanding == 0)
        fc_get_finish(g);
}

/* Start one leg to instance in of service, at path. */
static void fc_leg_start(struct fc_get *g, const char *service, const struct disc_instance *in,
                         const char *path, bool is_messages)
{
    struct fc_routes *f = g->f;
    struct fc_leg *leg = &g->legs[g->nlegs];
    struct hc_request req;
    char url[LIM_HOST_MAX + 64];

    leg->get = g;
    leg->is_messages = is_messages;
    leg->up = up_get(f->ups, service, in->host, in->port);
    if (!leg->up)
        return;
    if (!up_allow(f->ups, leg->up)) {
        char why[512];

        snprintf(why, sizeof(why), "%s %s: circuit breaker open", service, leg->up->key);
        json_array_append_new(g->errors, json_string(why));
        return;
    }
    snprintf(url, sizeof(url), strchr(in->host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s",
             in->host, in->port, path);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.timeout_ms = FC_GET_TIMEOUT_MS;
    req.connect_timeout_ms = REP_CONNECT_TIMEOUT_MS;
    leg->call = hc_send(f->hc, &req, fc_leg_done, leg);
    if (!leg->call) {
        up_record(f->ups, leg->up, false, 0);
        return;
    }
    g->nlegs++;
    g->outstanding++;
}

static void fc_get(struct hs_req *req, void *arg)
{
    struct fc_routes *f = arg;
    struct fc_get *g = calloc(1, sizeof(*g));
    struct disc_instance insts[DISC_INSTANCES_MAX];
    size_t n, i;

    if (!g) {
        hs_reply_error(req, 500, "out of memory");
        return;
    }
    g->f = f;
    g->req = req;
    g->by_uuid = json_object();
    g->errors = json_array();
    DL_APPEND(f->gets, g);
    f->ngets++;
    n = disc_list(f->disc, "logging-service", insts, DISC_INSTANCES_MAX);
    if (n == 0)
        json_array_append_new(g->errors, json_string("no passing logging-service instance known"));
    for (i = 0; i < n; i++)
        fc_leg_start(g, "logging-service", &insts[i], "/logging", false);
    n = disc_list(f->disc, "messages-service", insts, DISC_INSTANCES_MAX);
    if (n == 0)
        json_array_append_new(g->errors, json_string("no passing messages-service instance known"));
    else
        fc_leg_start(g, "messages-service", &insts[f->messages_rr++ % n], "/messages", true);
    /* Answered from the loop's next completion, or now if nothing went out. */
    g->outstanding++;
    if (--g->outstanding == 0)
        fc_get_finish(g);
}

/* ---------------------------------------------------------------------- */

static void fc_stats(struct hs_req *req, void *arg)
{
    struct fc_routes *f = arg;

    hs_reply_json(req, 200, up_stats_json(f->ups));
}

struct fc_routes *fc_routes_new(struct svc *svc, struct hc_client *hc, struct disc_client *disc,
                                struct up_table *ups, struct rep_ctx *rep)
{
    struct fc_routes *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->svc = svc;
    f->hc = hc;
    f->disc = disc;
    f->ups = ups;
    f->rep = rep;
    if (hs_route(svc_http(svc), HS_POST, "/facade", fc_post, f) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/facade", fc_get, f) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/stats", fc_stats, f) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

size_t fc_routes_pending(const struct fc_routes *f) { return f->ngets; }

void fc_routes_free(struct fc_routes *f)
{
    struct fc_get *g, *tmp;
    size_t i;

    if (!f)
        return;
    DL_FOREACH_SAFE (f->gets, g, tmp) {
        DL_DELETE(f->gets, g);
        for (i = 0; i < g->nlegs; i++)
            if (g->legs[i].call)
                hc_cancel(g->legs[i].call);
        json_decref(g->by_uuid);
        json_decref(g->message);
        json_decref(g->errors);
        free(g);
    }
    free(f);
}
