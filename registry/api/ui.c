/* ui.c: the dashboard's routes (see ui.h): the embedded files under /ui/,
 * the redirects to it, and the relay of an instance's /stats or /metrics.
 *
 * Caching: the files keep fixed names (app.js imports ./api.js; a person
 * edits them and rebuilds), so they are sent with Cache-Control: no-cache
 * and their ETag: a browser revalidates each load with one request that
 * costs a 304 and no body, and an edit shows at the next load. Versioned
 * names with a long max-age would need a build step rewriting the imports.
 *
 * The relay (rather than CORS headers on every service): the page stays on
 * one origin, so its Content-Security-Policy is connect-src 'self', and it
 * works where the browser cannot reach the services' advertised addresses
 * (containers, loopback of another host) while the registry can. It is no
 * open proxy: only the address of a registered instance, only GET /stats
 * and /metrics, a capped number in flight, a timeout, a capped answer.
 *
 * The batch (GET /ui/relay?stats=A,B&metrics=C): one request of the page
 * per round, whatever the number of instances. Each id is one relayed GET
 * (counted in flight like a single one), all sent at once; the answer goes
 * when the last has ended (each has its timeout), one JSON object keyed by
 * instance id: a /stats answer embedded, a /metrics text as a string, or
 * {"error", "status"} for that id alone. */
#include "ui.h"

#include "../core/catalog.h"
#include "auth/guard.h"
#include "core/limits.h"
#include "http/client.h"
#include "http/server.h"
#include "http/service.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sent with every file: scripts and styles from this origin only (no
 * inline ones), data from the registry itself, no framing, no plugins. */
#define RUI_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

#define RUI_URL_MAX 320 /* "http://[host]:port/metrics": host is at most 253 bytes */

/* A batched relay request: its request (answered exactly once, when its
 * last GET ends, or by the stop hook) and the answer being filled. Owned by
 * the list of u; its GETs point to it. */
struct rui_batch {
    struct rui *ui;
    struct hs_req *req;
    json_t *out;    /* owned: instance id -> answer or {"error", "status"} */
    size_t pending; /* its GETs still in flight */
    int oom;        /* an entry could not be stored: the answer is 503 */
    struct rui_batch *prev, *next;
};

/* A relayed GET in flight: for a single relay its request (answered exactly
 * once, by its done callback or the stop hook), for a batch the batch
 * (borrowed) and the id its entry goes under. Owned by the list of u. */
struct rui_relay {
    struct rui *ui;
    struct hs_req *req;      /* single relay; NULL in a batch */
    struct rui_batch *batch; /* batch member; NULL for a single relay */
    char id[LIM_ID_MAX + 1]; /* batch member: its key in the answer */
    struct hc_call *call;
    int metrics; /* path is /metrics (else /stats) */
    struct rui_relay *prev, *next;
};

struct rui {
    struct svc *svc;
    struct reg_registry *reg;
    const struct acl *acl;
    struct hc_client *hc;      /* made at the first relay */
    struct rui_relay *relays;  /* in flight */
    struct rui_batch *batches; /* waiting for their GETs */
    size_t inflight;           /* relayed GETs, single or in a batch */
    int stopping;
};

const struct rui_asset *rui_asset_find(const char *path)
{
    size_t i;

    if (!path || path[0] == '\0')
        path = "index.html";
    for (i = 0; i < rui_assets_count; i++)
        if (strcmp(rui_assets[i].path, path) == 0)
            return &rui_assets[i];
    return NULL;
}

int rui_etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;

    if (!inm)
        return 0;
    while (*p) {
        const char *start;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2; /* a weak comparison: If-None-Match allows it */
        start = p;
        while (*p && *p != ',')
            p++;
        /* the tag runs to the comma, trailing blanks off */
        {
            const char *end = p;

            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if ((size_t)(end - start) == elen && memcmp(start, etag, elen) == 0)
                return 1;
        }
    }
    return 0;
}

int rui_relay_path_ok(const char *path)
{
    return path && (strcmp(path, "/stats") == 0 || strcmp(path, "/metrics") == 0);
}

/* The security headers every answer of the dashboard carries. 0 or -1. */
static int rui_security_headers(struct hs_req *req)
{
    if (hs_reply_header(req, "Content-Security-Policy", RUI_CSP) != 0 ||
        hs_reply_header(req, "X-Content-Type-Options", "nosniff") != 0 ||
        hs_reply_header(req, "Referrer-Policy", "no-referrer") != 0 ||
        hs_reply_header(req, "X-Frame-Options", "DENY") != 0)
        return -1;
    return 0;
}

/* GET / and /ui: to /ui/ (302: the root may serve something else some day,
 * so browsers must not remember it). */
static void rui_redirect(struct hs_req *req, void *arg)
{
    (void)arg;
    if (hs_reply_header(req, "Location", "/ui/") != 0 || rui_security_headers(req) != 0) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_raw(req, 302, "text/plain; charset=utf-8", "see /ui/\n", 9);
}

/* GET /ui/{file*}: the embedded file, or 304 when the client has it, or
 * 404. The bytes are static: the answer references them, no copy. */
static void rui_file(struct hs_req *req, void *arg)
{
    const char *name = hs_req_param(req, "{file}");
    const struct rui_asset *a = rui_asset_find(name);

    (void)arg;
    if (!a) {
        if (rui_security_headers(req) != 0) {
            hs_reply_oom(req);
            return;
        }
        hs_reply_error(req, 404, "no dashboard file '%.64s' (the dashboard is at /ui/)",
                       name ? name : "");
        return;
    }
    if (rui_security_headers(req) != 0 || hs_reply_header(req, "ETag", a->etag) != 0 ||
        hs_reply_header(req, "Cache-Control", "no-cache") != 0) {
        hs_reply_oom(req);
        return;
    }
    if (rui_etag_matches(hs_req_header(req, "If-None-Match"), a->etag)) {
        hs_reply_raw(req, 304, a->content_type, "", 0);
        return;
    }
    if (evbuffer_add_reference(hs_req_output(req), a->bytes, a->len, NULL, NULL) != 0) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_buffer(req, 200, a->content_type, NULL);
}

/* Take r off the list of its dashboard and free it (its request was
 * answered, or its batch holds its entry). */
static void rui_relay_drop(struct rui_relay *r)
{
    struct rui *u = r->ui;

    if (r->prev)
        r->prev->next = r->next;
    else
        u->relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
    u->inflight--;
    free(r);
}

/* Take b off the list of its dashboard and free it with its answer (its
 * request was answered, or goes with the server). */
static void rui_batch_drop(struct rui_batch *b)
{
    struct rui *u = b->ui;

    if (b->prev)
        b->prev->next = b->next;
    else
        u->batches = b->next;
    if (b->next)
        b->next->prev = b->prev;
    json_decref(b->out);
    free(b);
}

/* Put {"error": <formatted>, "status": status} under id in b's answer
 * (id borrowed). On allocation failure b answers 503 at the end. */
static void rui_batch_error(struct rui_batch *b, const char *id, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rui_batch_error(struct rui_batch *b, const char *id, int status, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    json_t *e;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e = json_pack("{s:s,s:i}", "error", msg, "status", status);
    if (!e || json_object_set_new(b->out, id, e) != 0)
        b->oom = 1;
}

/* Answer b if none of its GETs is in flight any more, and free it. */
static void rui_batch_maybe_reply(struct rui_batch *b)
{
    struct hs_req *req = b->req;

    if (b->pending > 0)
        return;
    if (b->oom || rui_security_headers(req) != 0 ||
        hs_reply_header(req, "Cache-Control", "no-store") != 0) {
        hs_reply_oom(req);
    } else {
        hs_reply_json(req, 200, b->out);
        b->out = NULL; /* stolen by the reply */
    }
    rui_batch_drop(b);
}

/* What went wrong with a relayed GET, as the HTTP status the relay gives
 * and a text in msg (size bytes); 0 when the answer is a 200 to pass on. */
static int rui_relay_failure(const struct hc_response *resp, char *msg, size_t size)
{
    if (resp->error == HC_ETIMEOUT) {
        snprintf(msg, size, "the instance did not answer within %d ms", LIM_UI_RELAY_TIMEOUT_MS);
        return 504;
    }
    if (resp->error != HC_OK) {
        snprintf(msg, size, "the instance cannot be reached: %s", resp->error_msg);
        return 502;
    }
    if (resp->status != 200) {
        snprintf(msg, size, "the instance answered %ld", resp->status);
        return 502;
    }
    if (resp->body_len > LIM_UI_RELAY_BODY_MAX) {
        snprintf(msg, size, "the instance's answer is over %d bytes", LIM_UI_RELAY_BODY_MAX);
        return 502;
    }
    return 0;
}

/* A GET of a batch ended: its entry (the /stats JSON, the /metrics text as
 * a string, or an error), then the batch's answer if it was the last. */
static void rui_batch_done(struct rui_relay *r, const struct hc_response *resp)
{
    struct rui_batch *b = r->batch;
    char msg[384];
    int status = rui_relay_failure(resp, msg, sizeof(msg));
    json_t *v = NULL;

    if (status != 0) {
        rui_batch_error(b, r->id, status, "%s", msg);
    } else if (r->metrics) {
        v = json_stringn(resp->body, resp->body_len);
        if (!v)
            rui_batch_error(b, r->id, 502, "the instance's /metrics is not UTF-8 text");
    } else {
        v = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
        if (!v)
            rui_batch_error(b, r->id, 502, "the instance's /stats is not JSON");
    }
    if (v && json_object_set_new(b->out, r->id, v) != 0)
        b->oom = 1;
    b->pending--;
    rui_relay_drop(r);
    rui_batch_maybe_reply(b);
}

/* The relayed GET ended: its answer as it came (200 only, with a JSON or
 * text type), else 502/504 saying what went wrong; in a batch, its entry. */
static void rui_relay_done(const struct hc_response *resp, void *arg)
{
    struct rui_relay *r = arg;
    struct hs_req *req = r->req;
    const char *type = r->metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json";
    char msg[384];
    int status;

    r->call = NULL;
    if (r->batch) {
        rui_batch_done(r, resp);
        return;
    }
    status = rui_relay_failure(resp, msg, sizeof(msg));
    if (rui_security_headers(req) != 0 || hs_reply_header(req, "Cache-Control", "no-store") != 0)
        hs_reply_oom(req);
    else if (status != 0)
        hs_reply_error(req, status, "%s", msg);
    else
        hs_reply_raw(req, 200, type, resp->body, resp->body_len);
    rui_relay_drop(r);
}

/* Start the GET of path (borrowed) from instance in, for req (single) or
 * for b under id (both borrowed; id at most LIM_ID_MAX bytes). Returns
 * 0 with the GET on u's list, or the status of the failure with its text
 * in msg (size bytes): 503 too many in flight, 400 address too long, 502
 * not started, HS_OOM_STATUS out of memory. */
static int rui_relay_start(struct rui *u, const struct reg_instance *in, const char *path,
                           struct hs_req *req, struct rui_batch *b, const char *id, char *msg,
                           size_t size)
{
    const char *host = reg_instance_host(in);
    struct hc_request hr;
    struct rui_relay *r;
    char url[RUI_URL_MAX];

    if (u->inflight >= LIM_UI_RELAY_INFLIGHT) {
        snprintf(msg, size, "%d relayed requests are in flight already", LIM_UI_RELAY_INFLIGHT);
        return 503;
    }
    if ((size_t)snprintf(url, sizeof(url),
                         strchr(host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s", host,
                         reg_instance_port(in), path) >= sizeof(url)) {
        snprintf(msg, size, "the instance's address is too long to relay to");
        return 400;
    }
    if (!u->hc)
        u->hc = hc_client_new(svc_base(u->svc));
    r = calloc(1, sizeof(*r));
    if (!u->hc || !r) {
        free(r);
        snprintf(msg, size, "out of memory");
        return HS_OOM_STATUS;
    }
    memset(&hr, 0, sizeof(hr));
    hr.url = url;
    hr.timeout_ms = LIM_UI_RELAY_TIMEOUT_MS;
    r->ui = u;
    r->req = req;
    r->batch = b;
    if (id)
        snprintf(r->id, sizeof(r->id), "%s", id);
    r->metrics = strcmp(path, "/metrics") == 0;
    r->call = hc_send(u->hc, &hr, rui_relay_done, r);
    if (!r->call) {
        free(r);
        snprintf(msg, size, "cannot start the request to %.200s", url);
        return 502;
    }
    r->next = u->relays;
    if (u->relays)
        u->relays->prev = r;
    u->relays = r;
    u->inflight++;
    return 0;
}

/* One id of a batch, as parsed: where it is in the copy of its list. */
struct rui_item {
    const char *id;
    int metrics;
};

/* Split the comma-separated list (borrowed, NULL: none) into items of
 * copy (size bytes, a copy of list made here; the items point into it),
 * appended at *n. 0, or -1 with a text in err (errsize bytes): an empty or
 * too long id, more than LIM_UI_RELAY_IDS in all, an id given twice. */
static int rui_items_parse(const char *list, int metrics, char *copy, size_t size,
                           struct rui_item *items, size_t *n, char *err, size_t errsize)
{
    char *p;

    if (!list)
        return 0;
    if ((size_t)snprintf(copy, size, "%s", list) >= size) {
        snprintf(err, errsize, "at most %d instance ids in one relay", LIM_UI_RELAY_IDS);
        return -1;
    }
    p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        size_t i;

        if (comma)
            *comma = '\0';
        if (p[0] == '\0' || strlen(p) > LIM_ID_MAX) {
            snprintf(err, errsize, "'%s' holds an empty or too long instance id (1 to %d bytes)",
                     metrics ? "metrics" : "stats", LIM_ID_MAX);
            return -1;
        }
        if (*n >= LIM_UI_RELAY_IDS) {
            snprintf(err, errsize, "at most %d instance ids in one relay", LIM_UI_RELAY_IDS);
            return -1;
        }
        for (i = 0; i < *n; i++)
            if (strcmp(items[i].id, p) == 0) {
                snprintf(err, errsize, "instance id '%.128s' is given twice", p);
                return -1;
            }
        items[*n].id = p;
        items[*n].metrics = metrics;
        (*n)++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* The size of a copy of one list of a batch: as many ids as allowed, each
 * with its comma (a longer list is refused before any id is read). */
#define RUI_LIST_MAX (LIM_UI_RELAY_IDS * (LIM_ID_MAX + 1) + 1)

/* GET /ui/relay?stats=A,B&metrics=C (either list may be absent, not
 * both): every GET sent at once, one answer when all have ended. */
static void rui_relay_batch(struct rui *u, struct hs_req *req, const char *stats,
                            const char *metrics)
{
    char copies[2][RUI_LIST_MAX]; /* 21 KiB of stack, freed with the call */
    struct rui_item items[LIM_UI_RELAY_IDS];
    struct rui_batch *b;
    size_t n = 0, i;
    int sent;
    char err[384];

    if (rui_items_parse(stats, 0, copies[0], sizeof(copies[0]), items, &n, err, sizeof(err)) != 0 ||
        rui_items_parse(metrics, 1, copies[1], sizeof(copies[1]), items, &n, err, sizeof(err)) !=
            0) {
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    if (u->stopping) {
        hs_reply_error(req, 503, "the registry is shutting down");
        return;
    }
    b = calloc(1, sizeof(*b));
    if (b)
        b->out = json_object();
    if (!b || !b->out) {
        free(b);
        hs_reply_oom(req);
        return;
    }
    b->ui = u;
    b->req = req;
    b->next = u->batches;
    if (u->batches)
        u->batches->prev = b;
    u->batches = b;
    for (i = 0; i < n; i++) {
        const struct reg_instance *in = reg_get(u->reg, items[i].id);
        int status;

        if (!in) {
            rui_batch_error(b, items[i].id, 404, "no instance '%.128s'", items[i].id);
            continue;
        }
        status = rui_relay_start(u, in, items[i].metrics ? "/metrics" : "/stats", NULL, b,
                                 items[i].id, err, sizeof(err));
        if (status != 0)
            rui_batch_error(b, items[i].id, status, "%s", err);
        else
            b->pending++;
    }
    sent = b->pending > 0;
    rui_batch_maybe_reply(b); /* all refused at once: answered now */
    /* The GETs on the wire now, not after the next turn's events; b may be
     * answered and freed from in here, so it is not touched after. */
    if (sent)
        hc_kick(u->hc);
}

/* GET /ui/relay?id=<instance>&path=/stats|/metrics, or the batch form
 * ?stats=<ids>&metrics=<ids> (needs read rights). */
static void rui_relay(struct hs_req *req, void *arg)
{
    struct rui *u = arg;
    const char *id = hs_req_query(req, "id");
    const char *path = hs_req_query(req, "path");
    const char *stats = hs_req_query(req, "stats");
    const char *metrics = hs_req_query(req, "metrics");
    const struct reg_instance *in;
    char msg[384];
    int status;

    if (!guard_request(u->acl, req, ACL_READ, NULL))
        return;
    if (stats || metrics) {
        if (id || path) {
            hs_reply_error(req, 400, "either id and path, or stats and metrics lists, not both");
            return;
        }
        rui_relay_batch(u, req, stats, metrics);
        return;
    }
    if (!id || id[0] == '\0') {
        hs_reply_error(req, 400,
                       "query parameter id (an instance id) is required, or a stats or "
                       "metrics list of them");
        return;
    }
    if (!rui_relay_path_ok(path)) {
        hs_reply_error(req, 400, "query parameter path must be /stats or /metrics");
        return;
    }
    in = reg_get(u->reg, id);
    if (!in) {
        hs_reply_error(req, 404, "no instance '%.128s'", id);
        return;
    }
    if (u->stopping) {
        hs_reply_error(req, 503, "the registry is shutting down");
        return;
    }
    status = rui_relay_start(u, in, path, req, NULL, NULL, msg, sizeof(msg));
    if (status == HS_OOM_STATUS) {
        hs_reply_oom(req);
    } else if (status != 0) {
        if (status == 503)
            hs_reply_header(req, "Retry-After", "1");
        hs_reply_error(req, status, "%s", msg);
    }
}

/* Shutdown begins: answer the relays and batches in flight (503) and
 * cancel their calls, so nothing waits for an instance at the end. */
static void rui_stop(void *arg)
{
    struct rui *u = arg;

    u->stopping = 1;
    while (u->relays) {
        struct rui_relay *r = u->relays;

        hc_cancel(r->call);
        if (r->req)
            hs_reply_error(r->req, 503, "the registry is shutting down");
        rui_relay_drop(r);
    }
    while (u->batches) {
        struct rui_batch *b = u->batches;

        hs_reply_error(b->req, 503, "the registry is shutting down");
        rui_batch_drop(b);
    }
}

struct rui *rui_new(struct svc *svc, struct reg_registry *reg, const struct acl *acl)
{
    struct rui *u = calloc(1, sizeof(*u));
    struct hs_server *s = svc_http(svc);

    if (!u)
        return NULL;
    u->svc = svc;
    u->reg = reg;
    u->acl = acl;
    /* Later routes win: the relay over the files' catch-all. */
    if (hs_route(s, HS_GET | HS_HEAD, "/", rui_redirect, u) != 0 ||
        hs_route(s, HS_GET | HS_HEAD, "/ui", rui_redirect, u) != 0 ||
        hs_route(s, HS_GET | HS_HEAD, "/ui/{file*}", rui_file, u) != 0 ||
        hs_route(s, HS_GET, "/ui/relay", rui_relay, u) != 0 || svc_on_stop(svc, rui_stop, u) != 0) {
        svc_remove_hooks(svc, u);
        free(u);
        return NULL;
    }
    return u;
}

void rui_free(struct rui *u)
{
    if (!u)
        return;
    svc_remove_hooks(u->svc, u);
    while (u->relays) {
        struct rui_relay *r = u->relays;

        hc_cancel(r->call);
        rui_relay_drop(r); /* its request goes with the server */
    }
    while (u->batches)
        rui_batch_drop(u->batches); /* their requests go with the server */
    hc_client_free(u->hc);
    free(u);
}
