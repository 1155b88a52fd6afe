/* routes.c: the facade's handlers (see routes.h). POST hands the message to
 * the replicator and answers when it is stored or has failed; GET is served
 * by the merged, incrementally synced view of fanout.c. */
#include "routes.h"

#include "codec/jsonerr.h"
#include "codec/jsonflat.h"
#include "codec/uid.h"
#include "codec/utf8.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "fanout.h"
#include "http/client.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "http/trace.h"
#include "idem.h"
#include "proto/greeting.h"
#include "proto/messages.h"
#include "regclient/discovery.h"
#include "replicate.h"
#include "reply.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <utlist.h>

#define FC_POST_TOKS 16 /* tokens of a POST body the fast path reads */

struct fc_keyed;

struct fc_routes {
    struct svc *svc;
    struct hc_client *hc;
    struct disc_client *disc;
    struct up_table *ups;
    struct rep_ctx *rep;
    struct fan_view *fo;    /* owned: GET /facade's merged view */
    struct fc_keyed *keyed; /* keyed POSTs waiting for a sync round (utlist DL) */
    size_t nkeyed;
    struct idm_table *idem; /* owned: the keys this facade has taken */
};

/* A POST with an Idempotency-Key, waiting for a sync round of the merged
 * view before it is stored: a uuid that any reachable instance holds with
 * another text is refused (409) before a copy is written anywhere, whatever
 * instances the key's rendezvous ranking picks today; so is one this facade
 * took with another text (idem.h), even when no instance holding it can be
 * read now. */
struct fc_keyed {
    struct fc_routes *f;
    struct hs_req *req; /* borrowed: answered once, from fc_keyed_synced */
    char uuid[UID_STR_LEN + 1];
    const char *msg; /* borrowed from req's body or from body */
    size_t len;
    json_t *body;                     /* owned, or NULL */
    char trace[TRC_TRACE_ID_LEN + 1]; /* the POST's trace id */
    struct fc_keyed *prev, *next;
};

/* ---------------------------------------------------------------------- */
/* POST /facade */

/* The replicator's verdict for one POST (arg: its request): a log line and the reply,
 * which says how many copies were made ("replicas"); an error in the
 * facade's one error shape (reply.h), with the uuid to resend under. */
static void fc_post_done(int status, int copies, const char *error, const char *uuid, void *arg)
{
    struct hs_req *req = arg;

    /* one line per POST, in its trace (the replicator or the keyed path
     * set it): what to grep for with the traceparent of the answer */
    log_info("POST %s answered %d with %d copies", uuid, status, copies);
    if (status == 200) {
        char body[128];
        int n = snprintf(body, sizeof(body),
                         "{\"status\":\"success\",\"uuid\":\"%s\",\"replicas\":%d}", uuid, copies);

        hs_reply_raw(req, 200, "application/json", body, (size_t)n);
    } else
        fr_reply_error(req, status, uuid, copies, "%s", error);
}

/* fan_synced_fn of a keyed POST (arg: its fc_keyed, freed here): the view
 * now holds what every reachable logging instance had when the round
 * began; store the message unless its uuid holds another text. */
static void fc_keyed_synced(const struct fan_round_info *info, void *arg)
{
    struct fc_keyed *k = arg;
    struct fc_routes *f = k->f;
    int found = fan_lookup(f->fo, k->uuid, k->msg, k->len);
    char prev[LOG_TRACE_MAX + 1];

    (void)info;
    log_trace_set(k->trace, prev); /* an instance not read is not known to hold it: stored */
    DL_DELETE(f->keyed, k);
    f->nkeyed--;
    if (found == FAN_OTHER || idm_check(f->idem, k->uuid, k->msg, k->len) == IDM_OTHER)
        fc_post_done(409, 0, "this uuid is already stored with a different message", k->uuid,
                     k->req);
    else if (found == FAN_LOOKUP_ERROR || idm_take(f->idem, k->uuid, k->msg, k->len) != 0 ||
             rep_store_traced(f->rep, k->uuid, k->msg, k->len, clk_wall_ms(), k->trace,
                              fc_post_done, k->req) != 0)
        hs_reply_oom(k->req);
    log_trace_set(prev, NULL);
    json_decref(k->body);
    free(k);
}

/* Hand a keyed POST (uuid, msg of len bytes, both borrowed; body: steals
 * the reference, may be NULL) to a sync round first (fc_keyed_synced
 * answers it). */
static void fc_post_keyed(struct fc_routes *f, struct hs_req *req, const char *uuid,
                          const char *msg, size_t len, json_t *body, const char *trace)
{
    struct fc_keyed *k;

    if (idm_check(f->idem, uuid, msg, len) == IDM_OTHER) {
        json_decref(body);
        fc_post_done(409, 0, "this uuid is already stored with a different message", uuid, req);
        return;
    }
    k = calloc(1, sizeof(*k));
    if (!k) {
        json_decref(body);
        hs_reply_oom(req);
        return;
    }
    k->f = f;
    k->req = req;
    snprintf(k->uuid, sizeof(k->uuid), "%s", uuid);
    k->msg = msg;
    k->len = len;
    k->body = body;
    snprintf(k->trace, sizeof(k->trace), "%s", trace);
    DL_APPEND(f->keyed, k);
    f->nkeyed++;
    /* the round may end (and answer) before fan_sync returns */
    if (fan_sync_traced(f->fo, fc_keyed_synced, k, k->trace) != 0) {
        DL_DELETE(f->keyed, k);
        f->nkeyed--;
        json_decref(k->body);
        free(k);
        hs_reply_oom(req);
    }
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

/* Whether msg[0..len) (borrowed) holds only ASCII whitespace (space, tab,
 * CR, LF, VT, FF): such a message is refused like an empty one. */
static bool fc_is_blank(const char *msg, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (!strchr(" \t\r\n\v\f", msg[i]) || msg[i] == '\0')
            return false;
    return true;
}

/* Take the request's traceparent or start a trace (trace.h) into *tc, set
 * the answer's traceparent header (this facade's span of it) and make the
 * lines logged from now on carry its id; the previous id goes to prev. */
static void fc_trace_begin(struct hs_req *req, struct trc_ctx *tc, char *prev)
{
    char tp[TRC_PARENT_LEN + 1];
    const char *given = hs_req_header(req, TRC_HEADER);

    trc_begin(tc, given);
    trc_format(tc, tp);
    (void)hs_reply_header(req, TRC_HEADER, tp); /* fails only when the client left */
    log_trace_set(tc->trace_id, prev);
}

static void fc_post_traced(struct hs_req *req, struct fc_routes *f, const char *trace);

/* POST /facade: in its trace (fc_trace_begin), validate the body (JSON
 * {"msg"} or text/plain), pick the uuid (new, or the Idempotency-Key's)
 * and hand the message to the replicator (keyed: after a sync round);
 * exactly one reply, errors in the facade's one shape (reply.h). */
static void fc_post(struct hs_req *req, void *arg)
{
    struct trc_ctx tc;
    char prev[LOG_TRACE_MAX + 1];

    fc_trace_begin(req, &tc, prev);
    fc_post_traced(req, arg, tc.trace_id);
    log_trace_set(prev, NULL);
}

/* fc_post's work; trace (borrowed) is the request's trace id. */
static void fc_post_traced(struct hs_req *req, struct fc_routes *f, const char *trace)
{
    const char *key = hs_req_header(req, "Idempotency-Key");
    char uuid[UID_STR_LEN + 1], err[300];
    const char *msg = NULL;
    size_t len = 0;
    json_t *body = NULL;

    if (key) {
        if (!uid_is_valid(key)) {
            fr_reply_error(req, 400, NULL, 0, "Idempotency-Key must be a UUID");
            return;
        }
        uid_normalize(key, uuid);
    } else {
        uid_generate(uuid);
    }
    if (fc_is_text(req)) {
        msg = hs_req_body(req, &len);
        if (msg && (memchr(msg, '\0', len) || !utf8_valid(msg, len))) {
            fr_reply_error(req, 400, NULL, 0,
                           "a text/plain msg must be UTF-8 text without NUL bytes");
            return;
        }
    } else if (fc_flat_msg(req, &msg, &len)) {
        /* read without jansson */
    } else {
        const json_t *m;

        json_error_t jerr;

        body = hs_req_json(req, &jerr);
        if (!body) {
            msg = hs_req_body(req, &len);
            fr_reply_error(req, 400, NULL, 0, "%s",
                           jerr_describe(&jerr, msg, len, "request body", err, sizeof(err)));
            return;
        }
        m = json_is_object(body) ? json_object_get(body, "msg") : NULL;
        if (!json_is_string(m)) {
            json_decref(body);
            fr_reply_error(req, 400, NULL, 0,
                           "body must be {\"msg\": \"<text>\"} (or a text/plain body)");
            return;
        }
        msg = json_string_value(m);
        len = json_string_length(m);
    }
    if (len == 0) {
        json_decref(body);
        fr_reply_error(req, 400, NULL, 0, "msg is empty");
        return;
    }
    if (fc_is_blank(msg, len)) {
        json_decref(body);
        fr_reply_error(req, 400, NULL, 0, "msg is only whitespace");
        return;
    }
    if (len > LIM_MSG_MAX) {
        json_decref(body);
        fr_reply_error(req, 413, NULL, 0, "msg of %zu bytes is over the limit of %d bytes", len,
                       LIM_MSG_MAX);
        return;
    }
    if (key) {
        fc_post_keyed(f, req, uuid, msg, len, body, trace);
        return;
    }
    /* req stays valid until its reply: fc_post_done answers it */
    if (rep_store_traced(f->rep, uuid, msg, len, clk_wall_ms(), trace, fc_post_done, req) != 0) {
        json_decref(body);
        hs_reply_oom(req);
        return;
    }
    json_decref(body);
}

/* ---------------------------------------------------------------------- */
/* GET /facade: the merged view (fanout.c) */

/* GET /facade: answered by the merged view (arg: the routes), in the
 * request's trace. */
static void fc_get(struct hs_req *req, void *arg)
{
    struct fc_routes *f = arg;
    struct trc_ctx tc;
    char prev[LOG_TRACE_MAX + 1];

    fc_trace_begin(req, &tc, prev);
    fan_serve(f->fo, req, tc.trace_id);
    log_trace_set(prev, NULL);
}

/* fan_list_fn over the discovery cache. */
static size_t fc_list(void *arg, const char *service, struct disc_instance *out, size_t max)
{
    return disc_list(arg, service, out, max);
}

/* ---------------------------------------------------------------------- */

/* mtr_collect_fn: the facade's own series (arg: the routes). */
static void fc_collect(struct evbuffer *out, void *arg)
{
    const struct fc_routes *f = arg;
    int i;

    evbuffer_add_printf(out,
                        "# HELP facade_under_replicated_total POSTs answered with fewer copies "
                        "than --replicas (but at least one).\n"
                        "# TYPE facade_under_replicated_total counter\n"
                        "facade_under_replicated_total %llu\n"
                        "# HELP facade_messages_replicated_total Messages answered 200: stored "
                        "on every replica that could be reached.\n"
                        "# TYPE facade_messages_replicated_total counter\n"
                        "facade_messages_replicated_total %llu\n"
                        "# HELP facade_copies_stored_total Copies of messages logging instances "
                        "stored (or already held).\n"
                        "# TYPE facade_copies_stored_total counter\n"
                        "facade_copies_stored_total %llu\n"
                        "# HELP facade_retries_total Failed copies retried (or waits for an "
                        "instance), by reason.\n"
                        "# TYPE facade_retries_total counter\n",
                        (unsigned long long)rep_under_replicated(f->rep),
                        (unsigned long long)rep_replicated(f->rep),
                        (unsigned long long)rep_copies(f->rep));
    for (i = 0; i < REP_REASONS; i++)
        evbuffer_add_printf(out, "facade_retries_total{reason=\"%s\"} %llu\n",
                            rep_reason_name((enum rep_reason)i),
                            (unsigned long long)rep_retries(f->rep, (enum rep_reason)i));
    up_metrics(f->ups, out);
}

/* {"id","host","port"} of each instance discovery holds for service, as
 * a new JSON array (NULL when out of memory). */
static json_t *fc_discovered(const struct fc_routes *f, const char *service)
{
    static struct disc_instance insts[DISC_INSTANCES_MAX]; /* the loop is single-threaded */
    size_t n = disc_list(f->disc, service, insts, DISC_INSTANCES_MAX), i;
    json_t *a = json_array();

    for (i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("{s:s, s:s, s:i}", "id", insts[i].id, "host",
                                               insts[i].host, "port", insts[i].port)) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* GET /stats: each upstream's breaker and counters, what discovery holds
 * for each service the facade calls, and the replicas and retry deadline
 * new messages get (arg: the routes). */
static void fc_stats(struct hs_req *req, void *arg)
{
    struct fc_routes *f = arg;
    json_t *body = up_stats_json(f->ups);
    json_t *disc = json_pack("{s:o?, s:o?}", PM_SERVICE, fc_discovered(f, PM_SERVICE), PG_SERVICE,
                             fc_discovered(f, PG_SERVICE));

    if (!body || !disc) {
        json_decref(body);
        json_decref(disc);
        hs_reply_oom(req);
        return;
    }
    if (json_object_set_new(body, "discovered", disc) != 0 || /* steals disc */
        json_object_set_new(body, "settings",
                            json_pack("{s:i, s:I}", "replicas", rep_replicas(f->rep),
                                      "retry_deadline_ms", (json_int_t)rep_deadline(f->rep))) !=
            0) {
        json_decref(body);
        hs_reply_oom(req);
        return;
    }
    hs_reply_json(req, 200, body);
}

struct fc_routes *fc_routes_new(struct svc *svc, struct hc_client *hc, struct disc_client *disc,
                                struct up_table *ups, struct rep_ctx *rep,
                                const struct fan_options *fopt)
{
    struct fc_routes *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->fo = fan_new(hc, ups, fc_list, disc, fopt);
    f->idem = idm_new(0);
    if (!f->fo || !f->idem) {
        fan_free(f->fo);
        idm_free(f->idem);
        free(f);
        return NULL;
    }
    f->svc = svc;
    f->hc = hc;
    f->disc = disc;
    f->ups = ups;
    f->rep = rep;
    if (hs_route(svc_http(svc), HS_POST, "/facade", fc_post, f) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/facade", fc_get, f) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/stats", fc_stats, f) != 0 ||
        mtr_add_collector(svc_metrics(svc), fc_collect, f) != 0) {
        fan_free(f->fo);
        idm_free(f->idem);
        free(f);
        return NULL;
    }
    return f;
}

size_t fc_routes_pending(const struct fc_routes *f) { return fan_pending(f->fo) + f->nkeyed; }

struct fan_view *fc_routes_view(const struct fc_routes *f) { return f->fo; }

void fc_routes_free(struct fc_routes *f)
{
    struct fc_keyed *k, *tmp;

    if (!f)
        return;
    fan_free(f->fo); /* no callback runs: the waiting keyed POSTs are freed here */
    DL_FOREACH_SAFE (f->keyed, k, tmp) {
        DL_DELETE(f->keyed, k);
        json_decref(k->body);
        free(k);
    }
    idm_free(f->idem);
    free(f);
}
