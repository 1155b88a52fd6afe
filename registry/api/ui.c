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
 * and /metrics, a capped number in flight, a timeout, a capped answer. */
#include "ui.h"

#include "../core/catalog.h"
#include "auth/guard.h"
#include "core/limits.h"
#include "http/client.h"
#include "http/server.h"
#include "http/service.h"

#include <event2/buffer.h>
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

/* A relayed GET in flight: its request (answered exactly once, by its done
 * callback or the stop hook) and its call. Owned by the list of u. */
struct rui_relay {
    struct rui *ui;
    struct hs_req *req;
    struct hc_call *call;
    int metrics; /* path is /metrics (else /stats) */
    struct rui_relay *prev, *next;
};

struct rui {
    struct svc *svc;
    struct reg_registry *reg;
    const struct acl *acl;
    struct hc_client *hc;     /* made at the first relay */
    struct rui_relay *relays; /* in flight */
    size_t inflight;
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
 * answered). */
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

/* The relayed GET ended: its answer as it came (200 only, with a JSON or
 * text type), else 502/504 saying what went wrong. */
static void rui_relay_done(const struct hc_response *resp, void *arg)
{
    struct rui_relay *r = arg;
    struct hs_req *req = r->req;
    const char *type = r->metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json";

    r->call = NULL;
    if (rui_security_headers(req) != 0 || hs_reply_header(req, "Cache-Control", "no-store") != 0)
        hs_reply_oom(req);
    else if (resp->error == HC_ETIMEOUT)
        hs_reply_error(req, 504, "the instance did not answer within %d ms",
                       LIM_UI_RELAY_TIMEOUT_MS);
    else if (resp->error != HC_OK)
        hs_reply_error(req, 502, "the instance cannot be reached: %s", resp->error_msg);
    else if (resp->status != 200)
        hs_reply_error(req, 502, "the instance answered %ld", resp->status);
    else if (resp->body_len > LIM_UI_RELAY_BODY_MAX)
        hs_reply_error(req, 502, "the instance's answer is over %d bytes", LIM_UI_RELAY_BODY_MAX);
    else
        hs_reply_raw(req, 200, type, resp->body, resp->body_len);
    rui_relay_drop(r);
}

/* GET /ui/relay?id=<instance>&path=/stats|/metrics (needs read rights). */
static void rui_relay(struct hs_req *req, void *arg)
{
    struct rui *u = arg;
    const char *id = hs_req_query(req, "id");
    const char *path = hs_req_query(req, "path");
    const struct reg_instance *in;
    const char *host;
    struct hc_request hr;
    struct rui_relay *r;
    char url[RUI_URL_MAX];

    if (!guard_request(u->acl, req, ACL_READ, NULL))
        return;
    if (!id || id[0] == '\0') {
        hs_reply_error(req, 400, "query parameter id (an instance id) is required");
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
    if (u->inflight >= LIM_UI_RELAY_INFLIGHT) {
        hs_reply_header(req, "Retry-After", "1");
        hs_reply_error(req, 503, "%d relayed requests are in flight already",
                       LIM_UI_RELAY_INFLIGHT);
        return;
    }
    host = reg_instance_host(in);
    if ((size_t)snprintf(url, sizeof(url),
                         strchr(host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s", host,
                         reg_instance_port(in), path) >= sizeof(url)) {
        hs_reply_error(req, 400, "the instance's address is too long to relay to");
        return;
    }
    if (!u->hc)
        u->hc = hc_client_new(svc_base(u->svc));
    r = calloc(1, sizeof(*r));
    if (!u->hc || !r) {
        free(r);
        hs_reply_oom(req);
        return;
    }
    memset(&hr, 0, sizeof(hr));
    hr.url = url;
    hr.timeout_ms = LIM_UI_RELAY_TIMEOUT_MS;
    r->ui = u;
    r->req = req;
    r->metrics = strcmp(path, "/metrics") == 0;
    r->call = hc_send(u->hc, &hr, rui_relay_done, r);
    if (!r->call) {
        free(r);
        hs_reply_error(req, 502, "cannot start the request to %s", url);
        return;
    }
    r->next = u->relays;
    if (u->relays)
        u->relays->prev = r;
    u->relays = r;
    u->inflight++;
}

/* Shutdown begins: answer the relays in flight (503) and cancel their
 * calls, so nothing waits for an instance at the end. */
static void rui_stop(void *arg)
{
    struct rui *u = arg;

    u->stopping = 1;
    while (u->relays) {
        struct rui_relay *r = u->relays;

        hc_cancel(r->call);
        hs_reply_error(r->req, 503, "the registry is shutting down");
        rui_relay_drop(r);
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
    hc_client_free(u->hc);
    free(u);
}
