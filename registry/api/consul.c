/* consul.c: the Consul HTTP API subset (see consul.h and the README's
 * "Use it with Consul tools"). Reads answer from the core as it is now,
 * or park on the change events (rev_park) for a blocking query; writes
 * build the native registration body and go through reg_spec_parse and
 * the same core calls as the native routes, answered from their commit.
 *
 * Every answer carries X-Consul-Index (the registry index),
 * X-Consul-KnownLeader (true; false while a shared store cannot commit,
 * so what is read may be stale) and X-Consul-LastContact: 0, errors too. Our
 * 4xx bodies are the registry's JSON errors (Consul's clients read the
 * status code); a request for another datacenter is Consul's 500 "No path
 * to datacenter" as text. */
#include "consul.h"

#include "../core/catalog.h"
#include "auth/guard.h"
#include "codec/jsonerr.h"
#include "consul_body.h"
#include "consul_codec.h"
#include "core/config.h"
#include "core/log.h"
#include "events.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"
#include "spec_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define RCON_DC_DEFAULT  "dc1"
#define RCON_SERVER_PORT 8300 /* Consul's server RPC port, as status/leader names it */
#define RCON_SERF_PORT   8301 /* Consul's LAN gossip port, as agent/members names it */
#define RCON_NAME_MAX    255  /* bytes of --node-name / --datacenter kept */
#define RCON_VERSION     "1.16.0"
#define RCON_ADDR_MAX    (LIM_HOST_MAX + 16)
#define RCON_STATE_ANY   (-1)
#define RCON_CACHE_SLOTS 8            /* answers kept (see struct rcon_cached) */
#define RCON_CACHE_BODY  (256 * 1024) /* bytes of the largest answer kept */
#define RCON_CACHE_KEY   (LIM_NAME_MAX + LIM_TAG_LEN_MAX + 16)

/* One answer of a per-service list, kept while the registry's generation
 * (reg_generation) is the one it was built at: the same instances,
 * checks and outputs give the same bytes, so a read that comes again
 * (a scraper, a load balancer polling) costs a copy. */
struct rcon_cached {
    char key[RCON_CACHE_KEY]; /* "<route>|<passing>|<tag or none>|<name>"; "": empty slot */
    uint64_t gen;
    char *body; /* owned */
    size_t len;
};

struct rcon_api {
    struct svc *svc;           /* borrowed */
    struct reg_registry *reg;  /* borrowed */
    struct rev_hub *hub;       /* borrowed */
    const struct acl *acl;     /* borrowed; NULL: open */
    const struct store *store; /* borrowed; NULL: always writable */
    char dc[RCON_NAME_MAX + 1];
    char node[RCON_NAME_MAX + 1];
    char addr[LIM_HOST_MAX + 1];
    struct rcon_cached cache[RCON_CACHE_SLOTS];
    size_t cache_next; /* the slot the next answer replaces */
};

/* A write waiting for its commit; freed by its completion. */
struct rcon_wait {
    struct rcon_api *c;
    struct hs_req *req;
    char id[LIM_ID_MAX + 1];
    const char *what; /* for the log line: "registered", ... */
    bool answer_true; /* the catalog's writes answer true, the agent's nothing */
};

/* The instances of one answer, sorted by Consul id. */
struct rcon_list {
    const struct reg_instance **v; /* owned array; instances borrowed */
    size_t n, cap;
};

/* The node of c's answers, with the index now. */
static struct rcon_node rcon_node_of(const struct rcon_api *c)
{
    struct rcon_node n = {c->node, c->dc, c->addr, svc_port(c->svc), false};

    return n;
}

/* The index the Consul views show: the registry's, but never 0 (Consul
 * answers 1 at the least, and its clients take 0 for "no blocking"). */
static uint64_t rcon_index(const struct rcon_api *c)
{
    uint64_t i = reg_index(c->reg);

    return i > 0 ? i : 1;
}

/* The Consul headers on req's answer. */
static void rcon_headers(struct rcon_api *c, struct hs_req *req)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, rcon_index(c));
    (void)hs_reply_header(req, "X-Consul-Index", hdr);
    (void)hs_reply_header(req, "X-Consul-KnownLeader",
                          !c->store || store_writable(c->store) ? "true" : "false");
    (void)hs_reply_header(req, "X-Consul-LastContact", "0");
}

/* The start of every route: the headers, ?dc= (this one or none), the
 * right to do action on name. 0 to go on, -1 after answering req. */
static int rcon_begin(struct rcon_api *c, struct hs_req *req, enum acl_action action,
                      const char *name)
{
    static const char no_dc[] = "No path to datacenter";
    const char *dc = hs_req_query(req, "dc");

    rcon_headers(c, req);
    if (dc && *dc && strcmp(dc, c->dc) != 0) {
        hs_reply_raw(req, 500, "text/plain; charset=utf-8", no_dc, sizeof(no_dc) - 1);
        return -1;
    }
    return guard_request(c->acl, req, action, name) ? 0 : -1;
}

/* Reply with body (stolen; NULL: out of memory). */
static void rcon_reply(struct hs_req *req, json_t *body)
{
    if (!body) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_json(req, 200, body);
}

/* Reply with the object body (stolen; NULL: out of memory), its keys
 * sorted as Go writes a map. */
static void rcon_reply_sorted(struct hs_req *req, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    json_decref(body);
    if (!text) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_raw(req, 200, "application/json", text, strlen(text));
    free(text);
}

/* Reply 200 with an empty body, as Consul's agent writes do. */
static void rcon_reply_empty(struct hs_req *req) { hs_reply_raw(req, 200, "text/plain", "", 0); }

/* reg_foreach callback: add one instance to the list. */
static int rcon_list_add(const struct reg_instance *in, void *arg)
{
    struct rcon_list *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        const struct reg_instance **v = realloc(l->v, cap * sizeof(*v));

        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = in;
    return 0;
}

/* qsort order: by Consul id, then by registry id (two native instances
 * never share one; a Consul id kept in metadata could, in theory). */
static int rcon_list_cmp(const void *a, const void *b)
{
    const struct reg_instance *x = *(const struct reg_instance *const *)a;
    const struct reg_instance *y = *(const struct reg_instance *const *)b;
    int d = strcmp(rcon_enc_service_id(x), rcon_enc_service_id(y));

    return d ? d : strcmp(reg_instance_id(x), reg_instance_id(y));
}

/* The instances matching f into l (caller frees l->v), sorted. 0, or -1
 * when out of memory. */
static int rcon_collect(const struct rcon_api *c, const struct reg_filter *f, struct rcon_list *l)
{
    memset(l, 0, sizeof(*l));
    if (reg_foreach(c->reg, f, rcon_list_add, l) != 0) {
        free(l->v);
        l->v = NULL;
        return -1;
    }
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), rcon_list_cmp);
    return 0;
}

/* A search of reg_foreach: what is looked for, what was found. */
struct rcon_search {
    const char *id;                /* borrowed */
    const struct reg_instance *in; /* the match, or NULL */
    const char *node;              /* on this external node (NULL: the registry's) */
};

/* reg_foreach callback: stop at the instance of Consul id s->id on
 * s->node. */
static int rcon_search_service(const struct reg_instance *in, void *arg)
{
    struct rcon_search *s = arg;

    if (!rcon_on_node(in, s->node) || strcmp(rcon_enc_service_id(in), s->id) != 0)
        return 0;
    s->in = in;
    return -1;
}

/* The instance of Consul id cid (borrowed) on node (NULL: the registry's
 * own, the agent's services): one whose Consul id it is, or the one of
 * that registry id. NULL when none. One pass over the instances (no
 * allocation): the core has no index on metadata. */
static const struct reg_instance *rcon_find_on(const struct rcon_api *c, const char *node,
                                               const char *cid)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_search s = {cid, NULL, node};
    const struct reg_instance *in = reg_get(c->reg, cid);

    if (in && !rcon_on_node(in, node))
        in = NULL;
    if (in && strcmp(rcon_enc_service_id(in), cid) == 0)
        return in;
    if (reg_foreach(c->reg, &all, rcon_search_service, &s) != 0 && s.in)
        return s.in; /* stopped at the match */
    return in;
}

/* The agent's service of Consul id cid: rcon_find_on the registry's node. */
static const struct reg_instance *rcon_find(const struct rcon_api *c, const char *cid)
{
    return rcon_find_on(c, NULL, cid);
}

/* Keep in l only the instances on node (NULL: the registry's own). */
static void rcon_keep_node(struct rcon_list *l, const char *node)
{
    size_t i, n = 0;

    for (i = 0; i < l->n; i++)
        if (rcon_on_node(l->v[i], node))
            l->v[n++] = l->v[i];
    l->n = n;
}

/* Whether the node name given is this node. */
static bool rcon_is_node(const struct rcon_api *c, const char *node)
{
    return node && strcmp(node, c->node) == 0;
}

/* --- blocking queries --- */

/* A read: answer req now with the state (arg: the module). Also the
 * rev_wake_fn of a parked read. */
typedef void (*rcon_answer_fn)(void *arg, struct hs_req *req);

/* Consul's blocking query on a read: with ?index=N (N not above the
 * index shown; above, it reset: 0) park until a change of service name
 * (NULL: any), or ?wait= (default LIM_WATCH_WAIT_DEFAULT_MS, at most
 * LIM_WATCH_WAIT_MAX_MS: longer is cut to it, as Consul does) plus the
 * hub's jitter ends; then, or without index, answer. An empty registry
 * shows 1 for its index 0: N = 1 then waits for the first change. */
static void rcon_read(struct rcon_api *c, struct hs_req *req, const char *name,
                      rcon_answer_fn answer)
{
    const char *index_s = hs_req_query(req, REGV1_Q_INDEX);
    const char *wait_s = hs_req_query(req, REGV1_Q_WAIT);
    uint64_t index = 0;
    int64_t wait_ms = LIM_WATCH_WAIT_DEFAULT_MS;
    int rc;

    if (index_s && rev_parse_index(index_s, &index) != 0) {
        hs_reply_error(req, 400, "index must be a decimal number from 0 to %" PRIu64, UINT64_MAX);
        return;
    }
    if (wait_s && cfg_parse_duration_ms(wait_s, &wait_ms) != 0 &&
        rconb_go_duration(wait_s, &wait_ms) != 0) {
        hs_reply_error(req, 400,
                       "wait must be a duration such as 30s, 5m or 1m30s (a bare number "
                       "is seconds)");
        return;
    }
    if (wait_ms > LIM_WATCH_WAIT_MAX_MS)
        wait_ms = LIM_WATCH_WAIT_MAX_MS;
    if (wait_ms == 0)
        wait_ms = LIM_WATCH_WAIT_DEFAULT_MS;
    if (index > rcon_index(c))
        index = 0; /* the index went back (a reset): answer at once */
    rc = index > 0 ? rev_park(c->hub, req, index > reg_index(c->reg) ? reg_index(c->reg) : index,
                              wait_ms, name, NULL, answer, c)
                   : 0;
    if (rc < 0) {
        hs_reply_oom(req);
        return;
    }
    if (rc == 0)
        answer(c, req);
}

/* --- catalog --- */

/* GET /v1/catalog/services: {name: [tags, unique]}. */
static void rcon_catalog_services_answer(void *arg, struct hs_req *req)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_list l;
    json_t *out = NULL, *tags = NULL;
    size_t i, j, k, n;

    rcon_headers(c, req);
    if (rcon_collect(c, &all, &l) != 0) {
        hs_reply_oom(req);
        return;
    }
    out = json_object();
    for (i = 0; out && i < l.n; i++) {
        const char *name = reg_instance_name(l.v[i]);

        tags = json_object_get(out, name);
        if (!tags) {
            tags = json_array();
            if (json_object_set_new(out, name, tags) != 0)
                goto oom;
        }
        n = reg_instance_tag_count(l.v[i]);
        for (j = 0; j < n; j++) {
            const char *t = reg_instance_tag(l.v[i], j);

            for (k = 0; k < json_array_size(tags); k++)
                if (strcmp(json_string_value(json_array_get(tags, k)), t) == 0)
                    break;
            if (k == json_array_size(tags) && json_array_append_new(tags, json_string(t)) != 0)
                goto oom;
        }
    }
    free(l.v);
    /* the registry itself, as a Consul server lists itself (no tags) */
    if (out && !json_object_get(out, RCON_SELF_SERVICE) &&
        json_object_set_new(out, RCON_SELF_SERVICE, json_array()) != 0)
        goto oom_out;
    rcon_reply_sorted(req, out);
    return;
oom:
    free(l.v);
oom_out:
    json_decref(out);
    hs_reply_oom(req);
}

static void rcon_catalog_services(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, NULL, rcon_catalog_services_answer);
}

/* An array of enc(node, instance) over the instances of the service of
 * path parameter {name} (?tag=, and passing only when passing), and
 * self_enc(node) for the registry itself when that name is
 * RCON_SELF_SERVICE (it has no tags; always passing). */
static json_t *rcon_service_array(struct rcon_api *c, struct hs_req *req, bool passing,
                                  json_t *(*enc)(const struct rcon_node *,
                                                 const struct reg_instance *),
                                  json_t *(*self_enc)(const struct rcon_node *))
{
    struct reg_filter f = {hs_req_param(req, "{name}"), NULL, hs_req_query(req, REGV1_Q_TAG),
                           passing ? REG_PASSING : -1, false};
    struct rcon_node node = rcon_node_of(c);
    struct rcon_list l;
    json_t *out = NULL;
    size_t i;

    bool self = self_enc && strcmp(f.name, RCON_SELF_SERVICE) == 0 && !f.tag;

    if (rcon_collect(c, &f, &l) != 0)
        return NULL;
    out = json_array();
    for (i = 0; out && i <= l.n; i++) {
        /* the registry's own entry where its ID sorts among the others */
        if (self && (i == l.n || strcmp(rcon_enc_service_id(l.v[i]), RCON_SELF_SERVICE) >= 0)) {
            self = false;
            if (json_array_append_new(out, self_enc(&node)) != 0)
                break;
        }
        if (i < l.n && json_array_append_new(out, enc(&node, l.v[i])) != 0)
            break;
    }
    if (i <= l.n) {
        json_decref(out);
        out = NULL;
    }
    free(l.v);
    return out;
}

/* Answer req with rcon_service_array's list, from the cache when the
 * registry's generation has not moved since it was built (route: a letter
 * naming the list). */
static void
rcon_reply_service_array(struct rcon_api *c, struct hs_req *req, char route, bool passing,
                         json_t *(*enc)(const struct rcon_node *, const struct reg_instance *),
                         json_t *(*self_enc)(const struct rcon_node *))
{
    const char *tag = hs_req_query(req, REGV1_Q_TAG);
    uint64_t gen = reg_generation(c->reg);
    struct rcon_cached *slot = NULL;
    char key[RCON_CACHE_KEY];
    char *text = NULL;
    json_t *body = NULL;
    size_t i, len;
    int n;

    rcon_headers(c, req);
    n = snprintf(key, sizeof(key), "%c|%d|%s%s|%s", route, passing, tag ? "=" : "-", tag ? tag : "",
                 hs_req_param(req, "{name}"));
    if (n <= 0 || (size_t)n >= sizeof(key))
        key[0] = '\0'; /* too long to keep */
    for (i = 0; key[0] && i < RCON_CACHE_SLOTS; i++) {
        if (c->cache[i].gen == gen && c->cache[i].body && strcmp(c->cache[i].key, key) == 0) {
            hs_reply_raw(req, 200, "application/json", c->cache[i].body, c->cache[i].len);
            return;
        }
    }
    body = rcon_service_array(c, req, passing, enc, self_enc);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        hs_reply_oom(req);
        return;
    }
    len = strlen(text);
    hs_reply_raw(req, 200, "application/json", text, len);
    if (!key[0] || len > RCON_CACHE_BODY) {
        free(text);
        return;
    }
    slot = &c->cache[c->cache_next];
    c->cache_next = (c->cache_next + 1) % RCON_CACHE_SLOTS;
    free(slot->body);
    memcpy(slot->key, key, (size_t)n + 1);
    slot->gen = gen;
    slot->body = text;
    slot->len = len;
}

/* GET /v1/catalog/service/{name}[?tag=] */
static void rcon_catalog_service_answer(void *arg, struct hs_req *req)
{
    rcon_reply_service_array(arg, req, 'c', false, rcon_enc_catalog_service, rcon_enc_self_catalog);
}

static void rcon_catalog_service(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, hs_req_param(req, "{name}"), rcon_catalog_service_answer);
}

/* qsort order of Consul node objects: by Node. */
static int rcon_node_cmp(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "Node")),
                  json_string_value(json_object_get(*(json_t *const *)b, "Node")));
}

/* GET /v1/catalog/nodes: this node and the external nodes of the
 * services registered through the catalog, by name. */
static void rcon_catalog_nodes_answer(void *arg, struct hs_req *req)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_node node = rcon_node_of(c);
    struct rcon_list l;
    json_t *seen = json_object(), *out = NULL;
    json_t **v = NULL;
    const char *k;
    json_t *o;
    size_t i, n = 0;

    rcon_headers(c, req);
    if (!seen || rcon_collect(c, &all, &l) != 0) {
        json_decref(seen);
        hs_reply_oom(req);
        return;
    }
    if (json_object_set_new(seen, node.name, rcon_enc_node(&node)) != 0)
        goto oom;
    for (i = 0; i < l.n; i++) {
        struct rcon_node ext = rcon_node_for(&node, l.v[i]);

        if (ext.external && !json_object_get(seen, ext.name) &&
            json_object_set_new(seen, ext.name, rcon_enc_node(&ext)) != 0)
            goto oom;
    }
    v = malloc(json_object_size(seen) * sizeof(*v));
    out = json_array();
    if (!v || !out)
        goto oom;
    json_object_foreach (seen, k, o)
        v[n++] = o;
    qsort(v, n, sizeof(*v), rcon_node_cmp);
    for (i = 0; i < n; i++)
        if (json_array_append(out, v[i]) != 0)
            goto oom;
    free(v);
    free(l.v);
    json_decref(seen);
    rcon_reply(req, out);
    return;
oom:
    free(v);
    free(l.v);
    json_decref(seen);
    json_decref(out);
    hs_reply_oom(req);
}

static void rcon_catalog_nodes(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, NULL, rcon_catalog_nodes_answer);
}

/* GET /v1/catalog/node/{node}: {Node, Services: {id: service}}; another
 * node: null, as Consul answers. */
static void rcon_catalog_node_answer(void *arg, struct hs_req *req)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_node node = rcon_node_of(c);
    struct rcon_list l;
    json_t *services = NULL;
    size_t i;

    const char *name = hs_req_param(req, "{node}");
    bool mine = rcon_is_node(c, name);

    rcon_headers(c, req);
    if (rcon_collect(c, &all, &l) != 0) {
        hs_reply_oom(req);
        return;
    }
    rcon_keep_node(&l, mine ? NULL : name);
    if (!mine && l.n == 0) {
        free(l.v);
        hs_reply_raw(req, 200, "application/json", "null", 4); /* no such node */
        return;
    }
    if (!mine)
        node = rcon_node_for(&node, l.v[0]);
    services = json_object();
    for (i = 0; services && i < l.n; i++)
        if (json_object_set_new(services, rcon_enc_service_id(l.v[i]),
                                rcon_enc_agent_service(&node, l.v[i], true)) != 0) {
            json_decref(services);
            services = NULL;
        }
    free(l.v);
    if (mine && services && !json_object_get(services, RCON_SELF_SERVICE) &&
        json_object_set_new(services, RCON_SELF_SERVICE, rcon_enc_self_service(&node)) != 0) {
        json_decref(services);
        services = NULL;
    }
    /* sorted: Services is a map, which Go writes by key */
    rcon_reply_sorted(
        req, services ? json_pack("{s:o, s:o}", "Node", rcon_enc_node(&node), "Services", services)
                      : NULL);
}

static void rcon_catalog_node(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, NULL, rcon_catalog_node_answer);
}

/* GET /v1/catalog/datacenters */
static void rcon_catalog_dcs(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_reply(req, json_pack("[s]", c->dc));
}

/* --- health --- */

/* Whether ?passing is on: given with no value, or any value but "false"
 * and "0" (Consul reads the key's presence). */
static bool rcon_flag(struct hs_req *req, const char *key)
{
    const char *v = hs_req_query(req, key);

    return v && strcmp(v, "false") != 0 && strcmp(v, "0") != 0;
}

/* GET /v1/health/service/{name}[?passing][&tag=] */
static void rcon_health_service_answer(void *arg, struct hs_req *req)
{
    rcon_reply_service_array(arg, req, 'h', rcon_flag(req, "passing"), rcon_enc_health_entry,
                             rcon_enc_self_health);
}

static void rcon_health_service(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, hs_req_param(req, "{name}"), rcon_health_service_answer);
}

static json_t *rcon_checks_array_on(struct rcon_api *c, const struct reg_filter *f, int state,
                                    bool with_node, bool on_node, const char *node_name);

/* The checks of status state (RCON_STATE_ANY: all) of the instances of
 * f, with the node's own check when with_node, by CheckID. NULL when out
 * of memory. */
static json_t *rcon_checks_array(struct rcon_api *c, const struct reg_filter *f, int state,
                                 bool with_node)
{
    return rcon_checks_array_on(c, f, state, with_node, false, NULL);
}

/* As rcon_checks_array, of the instances on node only (NULL: the
 * registry's own) when on_node. */
static json_t *rcon_checks_array_on(struct rcon_api *c, const struct reg_filter *f, int state,
                                    bool with_node, bool on_node, const char *node_name)
{
    struct rcon_node node = rcon_node_of(c);
    struct rcon_list l;
    json_t *out = json_array();
    size_t i;

    if (!out)
        return NULL;
    if (with_node && (state == RCON_STATE_ANY || state == REG_PASSING) &&
        json_array_append_new(out, rcon_enc_node_check(&node)) != 0)
        goto fail;
    if (rcon_collect(c, f, &l) != 0)
        goto fail;
    if (on_node)
        rcon_keep_node(&l, node_name);
    for (i = 0; i < l.n; i++)
        if (rcon_enc_checks(&node, l.v[i], state, out) != 0) {
            free(l.v);
            goto fail;
        }
    free(l.v);
    if (rcon_sort_checks(out) != 0)
        goto fail;
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* GET /v1/health/checks/{name}: the checks of that service's instances. */
static void rcon_health_checks_answer(void *arg, struct hs_req *req)
{
    struct reg_filter f = {hs_req_param(req, "{name}"), NULL, NULL, -1, false};

    rcon_headers(arg, req);
    rcon_reply(req, rcon_checks_array(arg, &f, RCON_STATE_ANY, false));
}

static void rcon_health_checks(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, hs_req_param(req, "{name}"), rcon_health_checks_answer);
}

/* The state of path parameter {state}: RCON_STATE_ANY for "any", else the
 * health; -2 when it is none of them. */
static int rcon_state(struct hs_req *req)
{
    const char *s = hs_req_param(req, "{state}");

    if (strcmp(s, "any") == 0)
        return RCON_STATE_ANY;
    if (strcmp(s, REGV1_PASSING) == 0)
        return REG_PASSING;
    if (strcmp(s, REGV1_WARNING) == 0)
        return REG_WARNING;
    if (strcmp(s, REGV1_CRITICAL) == 0)
        return REG_CRITICAL;
    return -2;
}

/* GET /v1/health/state/{state} */
static void rcon_health_state_answer(void *arg, struct hs_req *req)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};

    rcon_headers(arg, req);
    rcon_reply(req, rcon_checks_array(arg, &all, rcon_state(req), true));
}

static void rcon_health_state(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    if (rcon_state(req) == -2) {
        hs_reply_error(req, 400, "state must be any, passing, warning or critical, not '%.64s'",
                       hs_req_param(req, "{state}"));
        return;
    }
    rcon_read(c, req, NULL, rcon_health_state_answer);
}

/* GET /v1/health/node/{node}: every check of this node; another: []. */
static void rcon_health_node_answer(void *arg, struct hs_req *req)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};

    const char *name = hs_req_param(req, "{node}");
    bool mine = rcon_is_node(arg, name);

    rcon_headers(arg, req);
    /* an unknown node has no checks: [] */
    rcon_reply(req,
               rcon_checks_array_on(arg, &all, RCON_STATE_ANY, mine, true, mine ? NULL : name));
}

static void rcon_health_node(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_read(c, req, NULL, rcon_health_node_answer);
}

/* --- agent reads --- */

/* GET /v1/agent/services: {id: service} */
static void rcon_agent_services(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_node node = rcon_node_of(c);
    struct rcon_list l;
    json_t *out = NULL;
    size_t i;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    if (rcon_collect(c, &all, &l) != 0) {
        hs_reply_oom(req);
        return;
    }
    rcon_keep_node(&l, NULL); /* the agent's own */
    out = json_object();
    for (i = 0; out && i < l.n; i++)
        if (json_object_set_new(out, rcon_enc_service_id(l.v[i]),
                                rcon_enc_agent_service(&node, l.v[i], false)) != 0) {
            json_decref(out);
            out = NULL;
        }
    free(l.v);
    rcon_reply(req, out);
}

/* GET /v1/agent/service/{id}: one service; 404 when unknown. */
static void rcon_agent_service(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    struct rcon_node node = rcon_node_of(c);
    const struct reg_instance *in = NULL;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    in = rcon_find(c, hs_req_param(req, "{id}"));
    if (!in) {
        hs_reply_error(req, 404, "unknown service ID '%.200s'", hs_req_param(req, "{id}"));
        return;
    }
    rcon_reply(req, rcon_enc_agent_service(&node, in, true));
}

/* GET /v1/agent/checks: {check id: check} (the services' checks). */
static void rcon_agent_checks(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    json_t *arr = NULL, *out = NULL, *v = NULL;
    size_t i;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    arr = rcon_checks_array_on(c, &all, RCON_STATE_ANY, false, true, NULL);
    out = arr ? json_object() : NULL;
    json_array_foreach (arr, i, v) {
        if (!out)
            break;
        if (json_object_set(out, json_string_value(json_object_get(v, "CheckID")), v) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(arr);
    rcon_reply(req, out);
}

/* This node as a gossip member {Name, Addr, Port, Tags, Status, ...}. */
static json_t *rcon_member(const struct rcon_api *c)
{
    char port[16];

    snprintf(port, sizeof(port), "%d", RCON_SERVER_PORT);
    return json_pack("{s:s, s:s, s:i, s:{s:s, s:s, s:s, s:s, s:s}, s:i, s:i, s:i, s:i, s:i, s:i, "
                     "s:i}",
                     "Name", c->node, "Addr", c->addr, "Port", RCON_SERF_PORT, "Tags", "role",
                     "consul", "dc", c->dc, "port", port, "build", RCON_VERSION, "vsn", "2",
                     "Status", 1, "ProtocolMin", 1, "ProtocolMax", 5, "ProtocolCur", 2,
                     "DelegateMin", 2, "DelegateMax", 5, "DelegateCur", 4);
}

/* GET /v1/agent/self: {Config: {Datacenter, NodeName, ...}, Member}. */
static void rcon_agent_self(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    rcon_reply(req, json_pack("{s:{s:s, s:s, s:s, s:b, s:s, s:s}, s:o}", "Config", "Datacenter",
                              c->dc, "NodeName", c->node, "NodeID", "", "Server", 1, "Version",
                              RCON_VERSION, "Revision", "svcmesh", "Member", rcon_member(c)));
}

/* GET /v1/agent/members: this node. */
static void rcon_agent_members(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;

    if (rcon_begin(c, req, ACL_READ, NULL) == 0)
        rcon_reply(req, json_pack("[o]", rcon_member(c)));
}

/* "<addr>:8300" into buf (RCON_ADDR_MAX). */
static void rcon_server_addr(const struct rcon_api *c, char *buf)
{
    snprintf(buf, RCON_ADDR_MAX, strchr(c->addr, ':') ? "[%s]:%d" : "%s:%d", c->addr,
             RCON_SERVER_PORT);
}

/* GET /v1/status/leader: this node, "<addr>:8300". */
static void rcon_status_leader(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    char addr[RCON_ADDR_MAX], quoted[RCON_ADDR_MAX + 2];
    int n;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    rcon_server_addr(c, addr);
    /* an address needs no JSON escapes; a bare string is outside what
     * hs_reply_json encodes */
    n = snprintf(quoted, sizeof(quoted), "\"%s\"", addr);
    hs_reply_raw(req, 200, "application/json", quoted, (size_t)n);
}

/* GET /v1/status/peers: this node. */
static void rcon_status_peers(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    char addr[RCON_ADDR_MAX];

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    rcon_server_addr(c, addr);
    rcon_reply(req, json_pack("[s]", addr));
}

/* --- writes --- */

/* Completion of a write: 200 with an empty body once it is durable. */
static void rcon_write_done(void *arg, int rc, const char *err)
{
    struct rcon_wait *w = arg;

    rcon_headers(w->c, w->req);
    if (rc != 0) {
        log_error("consul: could not change %s: %s", w->id, err ? err : "store failure");
        hs_reply_error(w->req, 503, "could not change %s: %s", w->id, err ? err : "store failure");
    } else {
        log_info("consul: %s %s", w->what, w->id);
        if (w->answer_true)
            hs_reply_raw(w->req, 200, "application/json", "true", 4);
        else
            rcon_reply_empty(w->req);
    }
    free(w);
}

/* A new wait for req on id (borrowed, copied); NULL after answering
 * req (out of memory). */
static struct rcon_wait *rcon_wait_new(struct rcon_api *c, struct hs_req *req, const char *id,
                                       const char *what)
{
    struct rcon_wait *w = calloc(1, sizeof(*w));

    if (!w) {
        hs_reply_oom(req);
        return NULL;
    }
    w->c = c;
    w->req = req;
    w->what = what;
    snprintf(w->id, sizeof(w->id), "%s", id);
    return w;
}

/* Answer req for a committed write of w's instance the core refused or
 * queued (rc: 0 queued, w answered by its completion; 1 unknown; 2 busy;
 * 3 refused with err; -1 failed with err), freeing w unless queued. */
static void rcon_reply_write_rc(struct hs_req *req, struct rcon_wait *w, int rc, const char *err)
{
    switch (rc) {
    case 0:
        return;
    case 1:
        hs_reply_error(req, 404, "unknown service ID '%.200s'", w->id);
        break;
    case 2:
        (void)hs_reply_header(req, "Retry-After", "1");
        hs_reply_error(req, 409,
                       "another write of this service is waiting for its commit; "
                       "try again");
        break;
    case 3:
        hs_reply_error(req, 400, "%s", err);
        break;
    default:
        hs_reply_error(req, 503, "could not change %s: %s", w->id, err);
        break;
    }
    free(w);
}

/* The Consul ID of a translated registration (borrowed from spec): its
 * RCON_META_ID value, else its id. */
static const char *rcon_spec_consul_id(const struct reg_spec *spec)
{
    size_t i;

    for (i = 0; i < spec->meta_count; i++)
        if (strcmp(reg_spec_meta_key(spec, i), RCON_META_ID) == 0)
            return reg_spec_meta_value(spec, i);
    return spec->id;
}

/* Answer a registration the core refused (rc an enum reg_refusal). */
static void rcon_reply_refusal(struct hs_req *req, int rc, const char *err)
{
    if (rc == REG_E_FULL || rc == REG_E_NAME_FULL)
        hs_reply_error(req, 429, "%s", err);
    else if (rc == REG_E_TOO_BIG)
        hs_reply_error(req, 413, "%s", err);
    else
        hs_reply_error(req, 503, "could not register: %s", err);
}

/* PUT /v1/agent/service/register: the Consul service definition, as the
 * native registration it translates to. 200 with an empty body once
 * committed. A known Consul ID is replaced (Consul's rule), also at
 * another address. */
/* A search for the given check of Consul id s->id (its Consul id or its
 * own), which s->check then names (native id). */
struct rcon_check_search {
    const char *id;                /* borrowed */
    const struct reg_instance *in; /* the match, or NULL */
    char check[LIM_CHECK_ID_MAX + 1];
    bool ttl;         /* the match is a TTL check */
    const char *node; /* among the services of this external node (NULL: the agent's) */
};

/* reg_foreach callback of struct rcon_check_search. */
static int rcon_search_check(const struct reg_instance *in, void *arg)
{
    struct rcon_check_search *s = arg;
    struct reg_check_view v;
    char cid[RCONB_CHECK_ID_ROOM + LIM_CHECK_ID_MAX];
    size_t j, n = reg_instance_check_count(in);

    if (!rcon_on_node(in, s->node))
        return 0;
    for (j = 0; j < n; j++) {
        reg_instance_check(in, j, &v);
        rcon_check_id(in, &v, cid, sizeof(cid));
        if (strcmp(cid, s->id) == 0 || strcmp(v.id, s->id) == 0) {
            s->in = in;
            s->ttl = v.kind == REG_CHECK_TTL;
            snprintf(s->check, sizeof(s->check), "%s", v.id);
            return -1;
        }
    }
    return 0;
}

/* Register spec (the native registration a Consul body became) on node
 * (NULL: the registry's own; else the external node it names), answering
 * req once committed (true for the catalog's route). A known Consul ID on
 * that node is replaced, also at another address. */
static void rcon_register_spec(struct rcon_api *c, struct hs_req *req, const struct reg_spec *spec,
                               const char *node, bool answer_true)
{
    const struct reg_instance *old = NULL;
    struct rcon_wait *w = NULL;
    char err[512];
    char id[LIM_ID_MAX + 1];
    bool created = false;
    int rc;

    if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, spec->name))
        return;
    old = rcon_find_on(c, node, rcon_spec_consul_id(spec));
    if (old && strcmp(reg_instance_id(old), spec->id) != 0) {
        /* the same Consul ID under another Name: Consul would move it to
         * the new name; here the id is derived from the name too */
        hs_reply_error(req, 409,
                       "service ID '%.200s' is registered for service '%s'; deregister it "
                       "first to use it for '%s'",
                       rcon_spec_consul_id(spec), reg_instance_name(old), spec->name);
        return;
    }
    old = reg_get(c->reg, spec->id);
    if (old && strcmp(reg_instance_name(old), spec->name) != 0 &&
        !guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(old)))
        return;
    w = rcon_wait_new(c, req, spec->id, old ? "re-registered" : "registered");
    if (!w)
        return;
    w->answer_true = answer_true;
    rc = reg_register(c->reg, spec, rcon_write_done, w, id, &created, err, sizeof(err));
    if (rc != 0) {
        free(w);
        rcon_reply_refusal(req, rc, err);
    }
}

/* The JSON body of req, or NULL after answering 400 with what is wrong. */
static json_t *rcon_body(struct hs_req *req)
{
    json_error_t jerr;
    json_t *body = hs_req_json(req, &jerr);
    char err[512];
    const char *text;
    size_t len;

    if (!body) {
        text = hs_req_body(req, &len);
        hs_reply_error(req, 400, "%s",
                       jerr_describe(&jerr, text, len, "request body", err, sizeof(err)));
    }
    return body;
}

/* The native spec of native (taken), or -1 after answering req 400. */
static int rcon_spec_of(struct hs_req *req, json_t *native, struct reg_spec *spec)
{
    char err[512];
    int rc = reg_spec_parse(native, spec, err, sizeof(err));

    json_decref(native);
    if (rc != 0)
        hs_reply_error(req, 400, "%s", err);
    return rc;
}

/* PUT /v1/agent/service/register: the Consul service definition, as the
 * native registration it translates to. 200 with an empty body once
 * committed. */
static void rcon_register(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    json_t *body = NULL, *native = NULL;
    struct reg_spec spec;
    char err[512];
    int status = 400;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0 || !(body = rcon_body(req)))
        return;
    native = rconb_to_native(body, c->addr, err, sizeof(err), &status);
    json_decref(body);
    if (!native) {
        hs_reply_error(req, status, "%s", err);
        return;
    }
    if (rcon_spec_of(req, native, &spec) != 0)
        return;
    rcon_register_spec(c, req, &spec, NULL, false);
    reg_spec_clear(&spec);
}

/* Whether the Datacenter member of body is missing, empty or this one;
 * else req is answered Consul's 500. */
static bool rcon_body_dc(struct rcon_api *c, struct hs_req *req, const json_t *body)
{
    static const char no_dc[] = "No path to datacenter";
    const json_t *dc = rconb_get(body, "Datacenter");

    if (!json_is_string(dc) || json_string_length(dc) == 0 ||
        strcmp(json_string_value(dc), c->dc) == 0)
        return true;
    hs_reply_raw(req, 500, "text/plain; charset=utf-8", no_dc, sizeof(no_dc) - 1);
    return false;
}

/* PUT /v1/catalog/register: a service of this node (as the agent's
 * register) or of an external node (a service the registry does not run:
 * a database, a SaaS endpoint), true once committed. */
static void rcon_catalog_register(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    json_t *body = NULL, *native = NULL;
    struct reg_spec spec;
    char err[512];
    char node[LIM_META_VALUE_MAX + 1];
    bool external = false;
    int status = 400;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0 || !(body = rcon_body(req)))
        return;
    if (!rcon_body_dc(c, req, body)) {
        json_decref(body);
        return;
    }
    native = rconb_catalog_to_native(body, c->node, c->addr, &external, err, sizeof(err), &status);
    snprintf(node, sizeof(node), "%s", external ? json_string_value(rconb_get(body, "Node")) : "");
    json_decref(body);
    if (!native) {
        hs_reply_error(req, status, "%s", err);
        return;
    }
    if (rcon_spec_of(req, native, &spec) != 0)
        return;
    rcon_register_spec(c, req, &spec, external ? node : NULL, true);
    reg_spec_clear(&spec);
}

/* Several deregistrations answered as one (the catalog's deregistration
 * of a whole external node): true once all committed. */
struct rcon_multi {
    struct rcon_api *c;
    struct hs_req *req;
    size_t pending;
    bool failed;
};

/* reg_done_fn of each write of a struct rcon_multi. */
static void rcon_multi_done(void *arg, int rc, const char *err)
{
    struct rcon_multi *m = arg;

    if (rc != 0) {
        log_error("consul: could not deregister a service of a node: %s",
                  err ? err : "store failure");
        m->failed = true;
    }
    if (--m->pending > 0)
        return;
    rcon_headers(m->c, m->req);
    if (m->failed)
        hs_reply_error(m->req, 503, "could not deregister every service of the node");
    else
        hs_reply_raw(m->req, 200, "application/json", "true", 4);
    free(m);
}

/* Deregister every service of the external node (its instances in l),
 * each with the right to; true once all committed. */
static void rcon_deregister_node(struct rcon_api *c, struct hs_req *req, struct rcon_list *l)
{
    struct rcon_multi *m = NULL;
    char err[256];
    size_t i;

    for (i = 0; i < l->n; i++)
        if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(l->v[i])))
            return;
    if (l->n == 0) {
        hs_reply_raw(req, 200, "application/json", "true", 4);
        return;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        hs_reply_oom(req);
        return;
    }
    m->c = c;
    m->req = req;
    m->pending = 1; /* held until every write is queued */
    for (i = 0; i < l->n; i++) {
        m->pending++;
        if (reg_deregister(c->reg, reg_instance_id(l->v[i]), rcon_multi_done, m, err,
                           sizeof(err)) != 0) {
            m->pending--;
            m->failed = true;
            break; /* the rest stay: the node is answered 503 */
        }
    }
    rcon_multi_done(m, 0, NULL);
}

/* PUT /v1/catalog/deregister {Node, ServiceID | CheckID}: remove a
 * service or a check of it, or (Node alone) an external node with its
 * services; true once committed, and true when there was nothing to
 * remove, as Consul answers. The registry's own node stays. */
static void rcon_catalog_deregister(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    json_t *body = NULL;
    const json_t *node = NULL, *sid = NULL, *cid = NULL;
    const char *name = NULL;
    const struct reg_instance *in = NULL;
    struct rcon_check_search s;
    struct rcon_wait *w = NULL;
    struct rcon_list l;
    char err[256];
    int rc;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0 || !(body = rcon_body(req)))
        return;
    if (!rcon_body_dc(c, req, body))
        goto done;
    node = rconb_get(body, "Node");
    sid = rconb_get(body, "ServiceID");
    cid = rconb_get(body, "CheckID");
    if (!json_is_string(node) || json_string_length(node) == 0 || (sid && !json_is_string(sid)) ||
        (cid && !json_is_string(cid))) {
        hs_reply_error(req, 400,
                       "the body must be {\"Node\": \"<node>\"} with an optional "
                       "\"ServiceID\" or \"CheckID\" (strings)");
        goto done;
    }
    name = rcon_is_node(c, json_string_value(node)) ? NULL : json_string_value(node);
    if (sid) {
        in = rcon_find_on(c, name, json_string_value(sid));
        if (!in) {
            hs_reply_raw(req, 200, "application/json", "true", 4);
            goto done;
        }
        if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(in)))
            goto done;
        w = rcon_wait_new(c, req, reg_instance_id(in), "deregistered");
        if (!w)
            goto done;
        w->answer_true = true;
        rc = reg_deregister(c->reg, w->id, rcon_write_done, w, err, sizeof(err));
        if (rc == 0)
            goto done;
        free(w);
        if (rc > 0)
            hs_reply_raw(req, 200, "application/json", "true", 4);
        else
            hs_reply_error(req, 503, "could not deregister: %s", err);
    } else if (cid) {
        memset(&s, 0, sizeof(s));
        s.id = json_string_value(cid);
        s.node = name;
        if (reg_foreach(c->reg, &all, rcon_search_check, &s) == 0 || !s.in) {
            hs_reply_raw(req, 200, "application/json", "true", 4);
            goto done;
        }
        if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(s.in)))
            goto done;
        if (s.ttl) {
            hs_reply_error(req, 400, "check '%.200s' is its service's TTL check (its lease)", s.id);
            goto done;
        }
        w = rcon_wait_new(c, req, reg_instance_id(s.in), "check removed from");
        if (!w)
            goto done;
        w->answer_true = true;
        rc = reg_check_remove(c->reg, w->id, s.check, rcon_write_done, w, err, sizeof(err));
        if (rc == 3)
            rc = 1;
        rcon_reply_write_rc(req, w, rc, err);
    } else if (!name) {
        hs_reply_error(req, 400,
                       "node '%.200s' is the registry itself; give a ServiceID or CheckID",
                       json_string_value(node));
    } else if (rcon_collect(c, &all, &l) != 0) {
        hs_reply_oom(req);
    } else {
        rcon_keep_node(&l, name);
        rcon_deregister_node(c, req, &l);
        free(l.v);
    }
done:
    json_decref(body);
}

/* The instance of path parameter {id} for a write, with the right to
 * write it; NULL after answering req (404 when unknown). */
static const struct reg_instance *rcon_write_target(struct rcon_api *c, struct hs_req *req)
{
    const char *cid = hs_req_param(req, "{id}");
    const struct reg_instance *in = rcon_find(c, cid);

    if (!in) {
        if (guard_request(c->acl, req, ACL_READ, NULL))
            hs_reply_error(req, 404, "unknown service ID '%.200s'", cid);
        return NULL;
    }
    return guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(in)) ? in : NULL;
}

/* PUT (or GET, as python-consul sends it) /v1/agent/service/deregister/{id} */
static void rcon_deregister(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    const struct reg_instance *in = NULL;
    struct rcon_wait *w = NULL;
    char err[256];
    int rc;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    in = rcon_write_target(c, req);
    if (!in)
        return;
    w = rcon_wait_new(c, req, reg_instance_id(in), "deregistered");
    if (!w)
        return;
    rc = reg_deregister(c->reg, w->id, rcon_write_done, w, err, sizeof(err));
    if (rc == 0)
        return;
    free(w);
    if (rc > 0)
        hs_reply_error(req, 404, "unknown service ID '%.200s'", hs_req_param(req, "{id}"));
    else
        hs_reply_error(req, 503, "could not deregister: %s", err);
}

/* PUT /v1/agent/service/maintenance/{id}?enable=true|false[&reason=] */
static void rcon_maintenance(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    const char *enable = hs_req_query(req, "enable");
    const char *reason = hs_req_query(req, "reason");
    const struct reg_instance *in = NULL;
    struct rcon_wait *w = NULL;
    char err[256];
    bool on = false;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    if (!enable || (strcasecmp(enable, "true") != 0 && strcasecmp(enable, "false") != 0)) {
        hs_reply_error(req, 400, "enable must be given, true or false");
        return;
    }
    on = strcasecmp(enable, "true") == 0;
    if (reason && strlen(reason) > LIM_MAINT_REASON_MAX) {
        hs_reply_error(req, 400, "reason must be at most %d bytes", LIM_MAINT_REASON_MAX);
        return;
    }
    in = rcon_write_target(c, req);
    if (!in)
        return;
    w = rcon_wait_new(c, req, reg_instance_id(in),
                      on ? "maintenance on for" : "maintenance off for");
    if (!w)
        return;
    rcon_reply_write_rc(req, w,
                        reg_maintenance(c->reg, w->id, on, reason ? reason : "", rcon_write_done, w,
                                        err, sizeof(err)),
                        err);
}

/* reg_foreach callback: stop at the instance whose TTL check has the
 * registry check id s->id. */
static int rcon_search_ttl(const struct reg_instance *in, void *arg)
{
    struct rcon_search *s = arg;
    struct reg_check_view v;
    size_t j, n = reg_instance_check_count(in);

    for (j = 0; j < n; j++) {
        reg_instance_check(in, j, &v);
        if (v.kind == REG_CHECK_TTL && strcmp(v.id, s->id) == 0) {
            s->in = in;
            return -1;
        }
    }
    return 0;
}

/* The instance whose TTL check is Consul check id cid: "service:<id>", or
 * the TTL check's own registry id. NULL when none. */
static const struct reg_instance *rcon_find_ttl(const struct rcon_api *c, const char *cid)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_search s = {cid, NULL, NULL};
    const struct reg_instance *in = NULL;

    if (strncmp(cid, "service:", 8) == 0) {
        in = rcon_find(c, cid + 8);
        if (in)
            return in;
    }
    if (reg_foreach(c->reg, &all, rcon_search_ttl, &s) != 0)
        return s.in; /* stopped at the match */
    return NULL;
}

/* Set the TTL check cid (borrowed) of req's service to status with note
 * (borrowed; NULL: none) as its output, and answer. */
static void rcon_ttl_set(struct rcon_api *c, struct hs_req *req, const char *cid,
                         enum reg_health status, const char *note)
{
    const struct reg_instance *in = rcon_find_ttl(c, cid);

    if (!in) {
        hs_reply_error(req, 404, "unknown check ID '%.200s'", cid);
        return;
    }
    if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(in)))
        return;
    switch (reg_ttl_update(c->reg, reg_instance_id(in), status, note)) {
    case 0:
        rcon_reply_empty(req);
        break;
    case 2:
        hs_reply_error(req, 400, "check '%.200s' is not a TTL check (its service has none)", cid);
        break;
    default:
        hs_reply_error(req, 404, "unknown check ID '%.200s'", cid);
        break;
    }
}

/* PUT /v1/agent/check/register: a Consul check definition (Name, CheckID
 * or ID, ServiceID, HTTP or TCP with Interval, Timeout, Status,
 * DeregisterCriticalServiceAfter) added to the service ServiceID, or
 * replacing its check of that id; 200 with an empty body once committed.
 * The CheckID defaults to the Name, as in Consul. */
static void rcon_check_register(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    json_error_t jerr;
    json_t *body = NULL, *def = NULL, *native = json_array();
    const json_t *sid = NULL, *cid = NULL;
    const struct reg_instance *in = NULL;
    struct reg_check_spec cs;
    struct rcon_wait *w = NULL;
    char err[512];
    int status = 400;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        goto done;
    body = hs_req_json(req, &jerr);
    if (!json_is_object(body)) {
        hs_reply_error(req, 400, "the body must be a Consul check definition (a JSON object)");
        goto done;
    }
    sid = rconb_get(body, "ServiceID");
    if (!sid || (json_is_string(sid) && json_string_length(sid) == 0)) {
        hs_reply_error(req, 501,
                       "node checks (no ServiceID) are not implemented: the node's only check "
                       "is serfHealth; give the ServiceID the check is for");
        goto done;
    }
    if (!json_is_string(sid)) {
        hs_reply_error(req, 400, "ServiceID must be a string");
        goto done;
    }
    in = rcon_find(c, json_string_value(sid));
    if (!in) {
        hs_reply_error(req, 404, "unknown service ID '%.200s'", json_string_value(sid));
        goto done;
    }
    if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(in)))
        goto done;
    cid = rconb_get(body, "CheckID");
    if (!cid)
        cid = rconb_get(body, "ID");
    if (!cid)
        cid = rconb_get(body, "Name");
    if (!json_is_string(cid) || json_string_length(cid) == 0) {
        hs_reply_error(req, 400, "give the check a CheckID (or a Name, its default)");
        goto done;
    }
    def = json_deep_copy(body);
    if (!def || !native || json_object_set(def, "CheckID", (json_t *)cid) != 0) {
        hs_reply_oom(req);
        goto done;
    }
    if (rconb_check_to_native(def, 1, false, rcon_enc_service_id(in), native, err, sizeof(err),
                              &status) != 0 ||
        reg_check_parse(json_array_get(native, 0), &cs, err, sizeof(err)) != 0) {
        hs_reply_error(req, status, "%s", err);
        goto done;
    }
    w = rcon_wait_new(c, req, reg_instance_id(in), "check added to");
    if (w)
        rcon_reply_write_rc(
            req, w, reg_check_add(c->reg, w->id, &cs, rcon_write_done, w, err, sizeof(err)), err);
done:
    json_decref(native);
    json_decref(def);
    json_decref(body);
}

/* PUT (or GET) /v1/agent/check/deregister/{id}: remove a service's HTTP
 * or TCP check (not its TTL check, which is its lease); 200 with an empty
 * body once committed. */
static void rcon_check_deregister(struct rcon_api *c, struct hs_req *req, const char *cid)
{
    struct reg_filter all = {NULL, NULL, NULL, -1, false};
    struct rcon_check_search s;
    struct rcon_wait *w = NULL;
    char err[256];
    int rc;

    memset(&s, 0, sizeof(s));
    s.id = cid;
    if (strncmp(cid, "_service_maintenance:", 21) == 0) {
        hs_reply_error(req, 400,
                       "'%.200s' is a maintenance check: turn it off with "
                       "/v1/agent/service/maintenance/<id>?enable=false",
                       cid);
        return;
    }
    if (reg_foreach(c->reg, &all, rcon_search_check, &s) == 0 || !s.in) {
        hs_reply_error(req, 404, "unknown check ID '%.200s'", cid);
        return;
    }
    if (!guard_request(c->acl, req, ACL_WRITE_SERVICE, reg_instance_name(s.in)))
        return;
    if (s.ttl) {
        hs_reply_error(req, 400,
                       "check '%.200s' is its service's TTL check (its lease): deregister the "
                       "service, or register it again without it",
                       cid);
        return;
    }
    w = rcon_wait_new(c, req, reg_instance_id(s.in), "check removed from");
    if (!w)
        return;
    rc = reg_check_remove(c->reg, w->id, s.check, rcon_write_done, w, err, sizeof(err));
    if (rc == 3 || rc == 4) {
        hs_reply_error(req, rc == 3 ? 404 : 400, "%s", rc == 3 ? "unknown check ID" : err);
        free(w);
        return;
    }
    rcon_reply_write_rc(req, w, rc, err);
}

/* PUT (or GET) /v1/agent/check/{pass,warn,fail}/{id}[?note=]: the
 * service's TTL check to that status, the note as its output. */
static void rcon_check_verb(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    const char *verb = hs_req_param(req, "{verb}");
    const char *cid = hs_req_param(req, "{id}");
    enum reg_health status = REG_PASSING;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    if (strcmp(verb, "pass") == 0)
        status = REG_PASSING;
    else if (strcmp(verb, "warn") == 0)
        status = REG_WARNING;
    else if (strcmp(verb, "fail") == 0)
        status = REG_CRITICAL;
    else if (strcmp(verb, "deregister") == 0) {
        rcon_check_deregister(c, req, cid);
        return;
    } else {
        hs_reply_error(req, 404, "no such Consul endpoint: /v1/agent/check/%.64s/", verb);
        return;
    }
    rcon_ttl_set(c, req, cid, status, hs_req_query(req, "note"));
}

/* PUT /v1/agent/check/update/{id} {"Status": "passing"|"warning"|"critical",
 * "Output": "..."}: the same as pass, warn and fail, with the output. */
static void rcon_check_update(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    const char *cid = hs_req_param(req, "{id}");
    json_error_t jerr;
    json_t *body = NULL;
    const json_t *st = NULL, *out = NULL;
    const char *s = NULL;
    enum reg_health status = REG_PASSING;

    if (rcon_begin(c, req, ACL_READ, NULL) != 0)
        return;
    body = hs_req_json(req, &jerr);
    st = body ? rconb_get(body, "Status") : NULL;
    out = body ? rconb_get(body, "Output") : NULL;
    s = json_is_string(st) ? json_string_value(st) : "";
    if (strcmp(s, REGV1_PASSING) == 0)
        status = REG_PASSING;
    else if (strcmp(s, REGV1_WARNING) == 0)
        status = REG_WARNING;
    else if (strcmp(s, REGV1_CRITICAL) == 0)
        status = REG_CRITICAL;
    else {
        json_decref(body);
        hs_reply_error(req, 400,
                       "the body must be {\"Status\": \"passing\"|\"warning\"|\"critical\", "
                       "\"Output\": \"...\"}");
        return;
    }
    if (out && !json_is_string(out)) {
        json_decref(body);
        hs_reply_error(req, 400, "Output must be a string");
        return;
    }
    rcon_ttl_set(c, req, cid, status, out ? json_string_value(out) : NULL);
    json_decref(body);
}

/* The Consul routes the registry has no core call for: 501 with why. */
static void rcon_not_implemented(struct hs_req *req, void *arg)
{
    struct rcon_api *c = arg;
    const char *path = hs_req_path(req);
    const char *why = "this Consul endpoint is not implemented by the registry";

    rcon_headers(c, req);
    if (strstr(path, "/agent/maintenance"))
        why = "node maintenance is not implemented; use /v1/agent/service/maintenance/<id>";
    hs_reply_error(req, 501, "%s", why);
}

/* The routes: "{...}" ones first, the literal paths after them (the
 * router prefers later routes). */
static int rcon_routes(struct rcon_api *c)
{
    struct hs_server *s = svc_http(c->svc);
    const unsigned w = HS_PUT | HS_GET; /* python-consul 0.7 GETs some writes */

    return hs_route(s, HS_GET, "/v1/catalog/service/{name}", rcon_catalog_service, c) ||
           hs_route(s, HS_GET, "/v1/catalog/node/{node}", rcon_catalog_node, c) ||
           hs_route(s, HS_GET, "/v1/health/service/{name}", rcon_health_service, c) ||
           hs_route(s, HS_GET, "/v1/health/checks/{name}", rcon_health_checks, c) ||
           hs_route(s, HS_GET, "/v1/health/state/{state}", rcon_health_state, c) ||
           hs_route(s, HS_GET, "/v1/health/node/{node}", rcon_health_node, c) ||
           hs_route(s, HS_GET, "/v1/agent/service/{id}", rcon_agent_service, c) ||
           hs_route(s, w, "/v1/agent/service/deregister/{id}", rcon_deregister, c) ||
           hs_route(s, HS_PUT, "/v1/agent/service/maintenance/{id}", rcon_maintenance, c) ||
           hs_route(s, w, "/v1/agent/check/{verb}/{id}", rcon_check_verb, c) ||
           hs_route(s, HS_PUT, "/v1/agent/check/update/{id}", rcon_check_update, c) ||
           hs_route(s, HS_PUT, "/v1/agent/check/register", rcon_check_register, c) ||
           hs_route(s, HS_PUT, "/v1/agent/maintenance", rcon_not_implemented, c) ||
           hs_route(s, HS_GET, "/v1/catalog/services", rcon_catalog_services, c) ||
           hs_route(s, HS_GET, "/v1/catalog/nodes", rcon_catalog_nodes, c) ||
           hs_route(s, HS_GET, "/v1/catalog/datacenters", rcon_catalog_dcs, c) ||
           hs_route(s, HS_GET, "/v1/agent/services", rcon_agent_services, c) ||
           hs_route(s, HS_GET, "/v1/agent/checks", rcon_agent_checks, c) ||
           hs_route(s, HS_GET, "/v1/agent/self", rcon_agent_self, c) ||
           hs_route(s, HS_GET, "/v1/agent/members", rcon_agent_members, c) ||
           hs_route(s, HS_GET, "/v1/status/leader", rcon_status_leader, c) ||
           hs_route(s, HS_GET, "/v1/status/peers", rcon_status_peers, c) ||
           hs_route(s, HS_PUT, "/v1/agent/service/register", rcon_register, c) ||
           hs_route(s, HS_PUT, "/v1/catalog/register", rcon_catalog_register, c) ||
           hs_route(s, HS_PUT, "/v1/catalog/deregister", rcon_catalog_deregister, c);
}

/* Copy s (borrowed) into dst (RCON_NAME_MAX + 1), or fallback when s is
 * NULL or empty. */
static void rcon_set(char *dst, const char *s, const char *fallback)
{
    snprintf(dst, RCON_NAME_MAX + 1, "%s", s && *s ? s : fallback);
}

struct rcon_api *rcon_new(struct svc *svc, struct reg_registry *r, struct rev_hub *hub,
                          const struct acl *acl, const struct rcon_options *opt)
{
    struct rcon_api *c = calloc(1, sizeof(*c));
    char host[RCON_NAME_MAX + 1] = "";
    const char *bind = opt ? opt->bind : NULL;

    if (!c)
        return NULL;
    c->svc = svc;
    c->reg = r;
    c->hub = hub;
    c->acl = acl;
    c->store = opt ? opt->store : NULL;
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "registry");
    rcon_set(c->dc, opt ? opt->datacenter : NULL, RCON_DC_DEFAULT);
    rcon_set(c->node, opt ? opt->node_name : NULL, host);
    if (!bind || !*bind || strcmp(bind, "0.0.0.0") == 0 || strcmp(bind, "::") == 0)
        bind = "127.0.0.1";
    snprintf(c->addr, sizeof(c->addr), "%s", bind);
    if (rcon_routes(c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void rcon_free(struct rcon_api *c)
{
    size_t i;

    if (!c)
        return;
    for (i = 0; i < RCON_CACHE_SLOTS; i++)
        free(c->cache[i].body);
    free(c);
}
