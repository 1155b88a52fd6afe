/* kv_txn.c: PUT /v1/txn, Consul's transaction endpoint for KV ops (see
 * kv_txn.h). The body, a JSON array of at most LIM_KV_TXN_OPS_MAX
 * {"KV":{"Verb","Key","Value" (base64),"Flags","Index"}}, is read whole
 * into typed ops (struct kv_txn_op) before anything is asked of the core;
 * every key is then checked against the caller's rights (read for the
 * reads, write for the writes); only then does the core decide and queue
 * the transaction. Answers:
 *   200 {"Results":[{"KV":{entry}}...]|null,"Errors":null} once committed;
 *   409 {"Results":null,"Errors":[{"OpIndex":i,"What":"..."}]} when a
 *       check failed (nothing written);
 *   400 {"success":false,"error":"op i: ...","Results":null,"Errors":
 *       [{"OpIndex":i,"What":"..."}]} for a body or an op that is wrong;
 *   403 for the whole transaction when one key is not the caller's;
 *   413 (a value too big), 507 (the store is full), 503 (the store failed);
 *   500 "No path to datacenter" (text) for ?dc= of another datacenter.
 * X-Consul-Index and X-Registry-Index carry the registry index (after the
 * transaction when it wrote). */
#include "kv_txn.h"

#include "../core/catalog.h"
#include "../core/kv.h"
#include "auth/guard.h"
#include "codec/b64.h"
#include "codec/jsonerr.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/server.h"
#include "http/service.h"
#include "kv_api.h"
#include "proto/registry_v1.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KVT_PATH       "/v1/txn"
#define KVT_DC_DEFAULT "dc1" /* as the Consul API's (consul.c) */
#define KVT_DC_MAX     255   /* bytes of the datacenter name kept */

struct kvt_api {
    struct svc *svc;          /* borrowed */
    struct reg_registry *reg; /* borrowed */
    const struct acl *acl;    /* borrowed; NULL: open */
    struct kv_store *kv;      /* borrowed; NULL until started */
    char dc[KVT_DC_MAX + 1];
};

/* A transaction waiting for its commit. */
struct kvt_wait {
    struct kvt_api *t; /* borrowed */
    struct hs_req *req;
};

/* The ops of a body and the buffers they borrow. */
struct kvt_body {
    json_t *root;                             /* owned: the keys point into it */
    struct kv_txn_op ops[LIM_KV_TXN_OPS_MAX]; /* values point into bufs */
    unsigned char *bufs[LIM_KV_TXN_OPS_MAX];  /* owned: decoded values */
    bool writes[LIM_KV_TXN_OPS_MAX];          /* the op writes (needs the write right) */
    size_t n;
};

static void kvt_body_clear(struct kvt_body *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        free(b->bufs[i]);
    json_decref(b->root);
}

static void kvt_index_headers(struct hs_req *req, uint64_t index)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, index);
    (void)hs_reply_header(req, "X-Consul-Index", hdr);
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr);
}

/* {"Results":null,"Errors":[{"OpIndex":op,"What":what}]} with the
 * project's "success"/"error" too when bad_input (status 400). */
static void kvt_reply_op_error(struct hs_req *req, int status, size_t op, const char *what,
                               bool bad_input)
{
    json_t *body = json_pack("{s:n, s:[{s:I, s:s}]}", "Results", "Errors", "OpIndex",
                             (json_int_t)op, "What", what);
    char msg[400];

    if (body && bad_input) {
        snprintf(msg, sizeof(msg), "op %zu: %s", op, what);
        if (json_object_set_new(body, "success", json_false()) != 0 ||
            json_object_set_new(body, "error", json_string(msg)) != 0) {
            json_decref(body);
            body = NULL;
        }
    }
    if (!body) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_json(req, status, body);
}

static const struct {
    const char *name;
    enum kv_txn_verb verb;
    bool writes;
} kvt_verbs[] = {
    {"set", KV_TXN_SET, true},
    {"cas", KV_TXN_CAS, true},
    {"get", KV_TXN_GET, false},
    {"get-tree", KV_TXN_GET_TREE, false},
    {"check-index", KV_TXN_CHECK_INDEX, false},
    {"check-not-exists", KV_TXN_CHECK_NOT_EXISTS, false},
    {"delete", KV_TXN_DELETE, true},
    {"delete-tree", KV_TXN_DELETE_TREE, true},
    {"delete-cas", KV_TXN_DELETE_CAS, true},
};

/* A non-negative JSON integer member name of o into *out (absent: 0). 0,
 * or -1 with why. */
static int kvt_u64(const json_t *o, const char *name, uint64_t *out, char *why, size_t len)
{
    const json_t *v = json_object_get(o, name);

    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(why, len, "%s must be an integer from 0 to %" PRId64, name, (int64_t)INT64_MAX);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Op i of the body (v) into b->ops[i]. 0, or -1 with why. */
static int kvt_parse_op(struct kvt_body *b, size_t i, const json_t *v, char *why, size_t len)
{
    struct kv_txn_op *op = &b->ops[i];
    const json_t *kv = json_is_object(v) ? json_object_get(v, "KV") : NULL;
    const json_t *verb = NULL, *key = NULL, *value = NULL, *session = NULL;
    const char *name;
    size_t k;

    if (!json_is_object(v)) {
        snprintf(why, len, "an operation must be an object such as {\"KV\": {...}}");
        return -1;
    }
    if (!kv) {
        if (json_object_get(v, "Node") || json_object_get(v, "Service") ||
            json_object_get(v, "Check"))
            snprintf(why, len, "only KV operations are supported (no Node, Service, Check)");
        else
            snprintf(why, len, "the operation has no \"KV\" object");
        return -1;
    }
    if (!json_is_object(kv)) {
        snprintf(why, len, "\"KV\" must be an object");
        return -1;
    }
    verb = json_object_get(kv, "Verb");
    key = json_object_get(kv, "Key");
    value = json_object_get(kv, "Value");
    session = json_object_get(kv, "Session");
    if (!json_is_string(verb)) {
        snprintf(why, len, "Verb must be a string");
        return -1;
    }
    name = json_string_value(verb);
    for (k = 0; k < sizeof(kvt_verbs) / sizeof(kvt_verbs[0]); k++)
        if (strcmp(name, kvt_verbs[k].name) == 0)
            break;
    if (k == sizeof(kvt_verbs) / sizeof(kvt_verbs[0])) {
        if (!strcmp(name, "lock") || !strcmp(name, "unlock") || !strcmp(name, "check-session"))
            snprintf(why, len, "verb %s needs sessions, which are not supported", name);
        else if (!strcmp(name, "get-or-empty"))
            snprintf(why, len, "verb get-or-empty is not supported");
        else
            snprintf(why, len, "unknown verb '%.64s'", name);
        return -1;
    }
    if (session && !json_is_null(session) &&
        (!json_is_string(session) || json_string_length(session) > 0)) {
        snprintf(why, len, "sessions are not supported (Session must be empty)");
        return -1;
    }
    op->verb = kvt_verbs[k].verb;
    b->writes[i] = kvt_verbs[k].writes;
    if (!json_is_string(key)) {
        snprintf(why, len, "Key must be a string");
        return -1;
    }
    op->key = json_string_value(key);
    if (strlen(op->key) != json_string_length(key)) {
        snprintf(why, len, "key holds a NUL byte");
        return -1;
    }
    if (kvt_u64(kv, "Flags", &op->flags, why, len) != 0 ||
        kvt_u64(kv, "Index", &op->index, why, len) != 0)
        return -1;
    if (value && !json_is_null(value)) {
        size_t n;

        if (!json_is_string(value)) {
            snprintf(why, len, "Value must be a base64 string");
            return -1;
        }
        n = json_string_length(value);
        b->bufs[i] = malloc(n / 4 * 3 + 1);
        if (!b->bufs[i]) {
            snprintf(why, len, "out of memory");
            return -1;
        }
        if (b64_decode(json_string_value(value), n, b->bufs[i], &op->len) != 0) {
            snprintf(why, len, "Value is not base64");
            return -1;
        }
        op->value = b->bufs[i];
    }
    return 0;
}

/* Answer a refusal of kv_txn (rc < 0) for op (n: none in particular). */
static void kvt_reply_refusal(struct hs_req *req, int rc, size_t op, size_t n, const char *err)
{
    switch (rc) {
    case KV_E_BAD_KEY:
        kvt_reply_op_error(req, 400, op, err, true);
        break;
    case KV_E_TOO_BIG:
        hs_reply_error(req, 413, "op %zu: %s", op, err);
        break;
    case KV_E_FULL:
        if (op < n)
            hs_reply_error(req, 507, "op %zu: %s", op, err);
        else
            hs_reply_error(req, 507, "%s", err);
        break;
    default:
        hs_reply_error(req, 503, "could not write: %s", err);
        break;
    }
}

/* The transaction's completion: the results, in op order. */
static void kvt_done(void *arg, int rc, const char *err, const struct kv_txn_item *items, size_t n,
                     uint64_t index)
{
    struct kvt_wait *w = arg;
    struct hs_req *req = w->req;
    struct evbuffer *out = hs_req_output(req);
    size_t i;

    free(w);
    kvt_index_headers(req, index);
    if (rc != 0) {
        log_error("KV transaction failed: %s", err ? err : "store failure");
        hs_reply_error(req, 503, "could not write: %s", err ? err : "store failure");
        return;
    }
    if (err) {
        /* applied, but its results could not be built */
        hs_reply_error(req, 500, "%s", err);
        return;
    }
    if (evbuffer_add_printf(out, "{\"Results\":%s", n ? "[" : "null") < 0)
        goto oom;
    for (i = 0; i < n; i++) {
        if (evbuffer_add_printf(out, "%s{\"KV\":", i ? "," : "") < 0 ||
            kv_api_write_entry(out, items[i].e, items[i].with_value) != 0 ||
            evbuffer_add(out, "}", 1) != 0)
            goto oom;
    }
    if (evbuffer_add_printf(out, "%s,\"Errors\":null}", n ? "]" : "") < 0)
        goto oom;
    hs_reply_buffer(req, 200, "application/json", NULL);
    return;
oom:
    evbuffer_drain(out, evbuffer_get_length(out));
    hs_reply_error(req, 500, "out of memory for the results (the transaction is applied)");
}

/* Read the body into b. 0, or -1 after answering (400, or 403 to a caller
 * without the read right: a stranger learns nothing of the rules). */
static int kvt_parse(struct kvt_api *t, struct hs_req *req, struct kvt_body *b)
{
    json_error_t jerr;
    const char *text;
    size_t len = 0, i;
    char why[300];

    b->root = hs_req_json(req, &jerr);
    if (!b->root) {
        text = hs_req_body(req, &len);
        if (guard_request(t->acl, req, ACL_READ, NULL))
            hs_reply_error(req, 400, "%s",
                           jerr_describe(&jerr, text ? text : "", len, "body", why, sizeof(why)));
        return -1;
    }
    if (!json_is_array(b->root) || json_array_size(b->root) > LIM_KV_TXN_OPS_MAX) {
        if (guard_request(t->acl, req, ACL_READ, NULL))
            hs_reply_error(req, 400,
                           json_is_array(b->root)
                               ? "a transaction has at most %d operations"
                               : "body must be a JSON array of at most %d operations",
                           LIM_KV_TXN_OPS_MAX);
        return -1;
    }
    for (i = 0; i < json_array_size(b->root); i++) {
        b->n = i + 1;
        if (kvt_parse_op(b, i, json_array_get(b->root, i), why, sizeof(why)) != 0 ||
            kv_key_check(b->ops[i].key, strlen(b->ops[i].key),
                         b->ops[i].verb == KV_TXN_GET_TREE || b->ops[i].verb == KV_TXN_DELETE_TREE,
                         why, sizeof(why)) != 0) {
            if (guard_request(t->acl, req, ACL_READ, NULL))
                kvt_reply_op_error(req, 400, i, why, true);
            return -1;
        }
    }
    return 0;
}

/* PUT /v1/txn[?dc=D] */
static void kvt_put(struct hs_req *req, void *arg)
{
    static const char no_dc[] = "No path to datacenter";
    struct kvt_api *t = arg;
    const char *dc = hs_req_query(req, "dc");
    struct kvt_body *b = calloc(1, sizeof(*b));
    struct kvt_wait *w = NULL;
    size_t i, failed = 0;
    char err[300];
    int rc;

    kvt_index_headers(req, reg_index(t->reg)); /* on every answer, errors too */
    if (!b) {
        hs_reply_oom(req);
        return;
    }
    if (dc && *dc && strcmp(dc, t->dc) != 0) {
        hs_reply_raw(req, 500, "text/plain; charset=utf-8", no_dc, sizeof(no_dc) - 1);
        goto cleanup;
    }
    if (kvt_parse(t, req, b) != 0)
        goto cleanup;
    /* every key's right before anything is done: one refusal is the 403 */
    for (i = 0; i < b->n; i++) {
        if (!guard_request(t->acl, req, b->writes[i] ? ACL_WRITE_KV : ACL_READ,
                           b->writes[i] ? b->ops[i].key : NULL))
            goto cleanup;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        goto cleanup;
    }
    w->t = t;
    w->req = req;
    rc = kv_txn(t->kv, b->ops, b->n, kvt_done, w, &failed, err, sizeof(err));
    if (rc == 0) {
        w = NULL; /* answered by kvt_done (maybe already) */
        goto cleanup;
    }
    if (rc == 1)
        kvt_reply_op_error(req, 409, failed, err, false);
    else
        kvt_reply_refusal(req, rc, failed, b->n, err);
cleanup:
    free(w);
    if (b)
        kvt_body_clear(b);
    free(b);
}

struct kvt_api *kvt_new(struct svc *svc, struct reg_registry *reg, const struct acl *acl,
                        const char *datacenter)
{
    struct kvt_api *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->svc = svc;
    t->reg = reg;
    t->acl = acl;
    snprintf(t->dc, sizeof(t->dc), "%s", datacenter && *datacenter ? datacenter : KVT_DC_DEFAULT);
    return t;
}

int kvt_start(struct kvt_api *t, struct kv_store *kv)
{
    t->kv = kv;
    return hs_route(svc_http(t->svc), HS_PUT, KVT_PATH, kvt_put, t);
}

void kvt_free(struct kvt_api *t) { free(t); }
