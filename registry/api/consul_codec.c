/* consul_codec.c: Consul's JSON shapes for the registry's instances (see
 * consul_codec.h). */
#include "consul_codec.h"

#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of in's metadata key (borrowed), or NULL. */
static const char *rcon_meta(const struct reg_instance *in, const char *key)
{
    size_t i, n = reg_instance_meta_count(in);

    for (i = 0; i < n; i++)
        if (strcmp(reg_instance_meta_key(in, i), key) == 0)
            return reg_instance_meta_value(in, i);
    return NULL;
}

const char *rcon_enc_service_id(const struct reg_instance *in)
{
    const char *cid = rcon_meta(in, RCON_META_ID);

    return cid ? cid : reg_instance_id(in);
}

/* 64-bit FNV-1a of s from seed h. */
static uint64_t rcon_fnv(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int rcon_native_id(const char *name, const char *cid, char *out)
{
    size_t n = strlen(name);
    uint64_t a, b;

    if (strncmp(cid, name, n) == 0 && cid[n] == '-' && uid_is_valid(cid + n + 1) &&
        strlen(cid) <= LIM_ID_MAX) {
        snprintf(out, LIM_ID_MAX + 1, "%s", cid);
        return 0;
    }
    /* Not a cryptographic hash: it only has to be fixed and spread ids
     * apart; shaped as a version 8 (custom) UUID. */
    a = rcon_fnv(cid, 14695981039346656037ULL);
    b = rcon_fnv(cid, a ^ 0x9e3779b97f4a7c15ULL);
    snprintf(out, LIM_ID_MAX + 1, "%s-%08x-%04x-8%03x-%04x-%012llx", name, (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
    return 1;
}

void rcon_check_id(const struct reg_instance *in, const struct reg_check_view *c, char *buf,
                   size_t len)
{
    if (c->kind == REG_CHECK_TTL)
        snprintf(buf, len, "service:%s", rcon_enc_service_id(in));
    else
        snprintf(buf, len, "%s", c->id);
}

/* Consul's tags (an array) of in. */
static json_t *rcon_enc_tags(const struct reg_instance *in)
{
    json_t *a = json_array();
    size_t i, n = reg_instance_tag_count(in);

    for (i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(reg_instance_tag(in, i))) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

struct rcon_node rcon_node_for(const struct rcon_node *n, const struct reg_instance *in)
{
    struct rcon_node ext = *n;
    const char *name = rcon_meta(in, RCON_META_NODE);
    const char *addr = rcon_meta(in, RCON_META_NODE_ADDR);

    if (!name)
        return ext;
    ext.name = name;
    ext.address = addr ? addr : reg_instance_host(in);
    ext.http_port = 0;
    ext.external = true;
    return ext;
}

bool rcon_on_node(const struct reg_instance *in, const char *node)
{
    const char *name = rcon_meta(in, RCON_META_NODE);

    return node ? name && strcmp(name, node) == 0 : !name;
}

/* Consul's Meta of in: its metadata but the registry's own keys. */
static json_t *rcon_enc_meta(const struct reg_instance *in)
{
    json_t *o = json_object();
    size_t i, n = reg_instance_meta_count(in);

    for (i = 0; o && i < n; i++) {
        const char *k = reg_instance_meta_key(in, i);

        if (strcmp(k, RCON_META_ID) == 0 || strcmp(k, RCON_META_NODE) == 0 ||
            strcmp(k, RCON_META_NODE_ADDR) == 0)
            continue;
        if (json_object_set_new(o, reg_instance_meta_key(in, i),
                                json_string(reg_instance_meta_value(in, i))) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *rcon_enc_node(const struct rcon_node *n)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{}, s:I, s:I}", "ID", "", "Node",
                     n->name, "Address", n->address, "Datacenter", n->dc, "TaggedAddresses", "lan",
                     n->address, "wan", n->address, "Meta", "CreateIndex",
                     (json_int_t)RCON_NODE_INDEX, "ModifyIndex", (json_int_t)RCON_NODE_INDEX);
}

/* A service as the encoders below see it: an instance, or the registry's
 * own "consul" entry. */
struct rcon_svc {
    const char *id, *name, *address;
    int port;
    json_t *tags, *meta; /* owned by the view (NULL: out of memory) */
    uint64_t create_index, modify_index;
};

/* The view of instance in (release with rcon_svc_clear). */
static struct rcon_svc rcon_svc_of(const struct reg_instance *in)
{
    struct rcon_svc v = {rcon_enc_service_id(in),
                         reg_instance_name(in),
                         reg_instance_host(in),
                         reg_instance_port(in),
                         rcon_enc_tags(in),
                         rcon_enc_meta(in),
                         reg_instance_create_index(in),
                         reg_instance_modify_index(in)};

    return v;
}

/* The view of the registry itself: Consul's "consul" service, on the
 * node's address (empty, as Consul gives it) at the HTTP port. */
static struct rcon_svc rcon_svc_self(const struct rcon_node *n)
{
    struct rcon_svc v = {RCON_SELF_SERVICE, RCON_SELF_SERVICE, "",
                         n->http_port,      json_array(),      json_object(),
                         RCON_NODE_INDEX,   RCON_NODE_INDEX};

    return v;
}

static void rcon_svc_clear(struct rcon_svc *v)
{
    json_decref(v->tags);
    json_decref(v->meta);
}

/* catalog/service/<name>'s entry of v (its tags and meta taken). */
static json_t *rcon_svc_catalog(const struct rcon_node *n, struct rcon_svc *v)
{
    json_t *o = NULL;

    if (v->tags && v->meta)
        o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{}, s:s, s:s, s:s, s:s, s:i, s:O, "
                      "s:O, s:b, s:{s:i, s:i}, s:I, s:I}",
                      "ID", "", "Node", n->name, "Address", n->address, "Datacenter", n->dc,
                      "TaggedAddresses", "lan", n->address, "wan", n->address, "NodeMeta",
                      "ServiceKind", "", "ServiceID", v->id, "ServiceName", v->name,
                      "ServiceAddress", v->address, "ServicePort", v->port, "ServiceTags", v->tags,
                      "ServiceMeta", v->meta, "ServiceEnableTagOverride", 0, "ServiceWeights",
                      "Passing", 1, "Warning", 1, "CreateIndex", (json_int_t)v->create_index,
                      "ModifyIndex", (json_int_t)v->modify_index);
    rcon_svc_clear(v);
    return o;
}

/* The agent/services form of v (its tags and meta taken), with Create/
 * ModifyIndex when with_index. */
static json_t *rcon_svc_agent(const struct rcon_node *n, struct rcon_svc *v, bool with_index)
{
    json_t *o = NULL;

    if (v->tags && v->meta)
        o = json_pack("{s:s, s:s, s:O, s:O, s:i, s:s, s:{s:i, s:i}, s:b, s:s}", "ID", v->id,
                      "Service", v->name, "Tags", v->tags, "Meta", v->meta, "Port", v->port,
                      "Address", v->address, "Weights", "Passing", 1, "Warning", 1,
                      "EnableTagOverride", 0, "Datacenter", n->dc);
    if (o && with_index &&
        (json_object_set_new(o, "CreateIndex", json_integer((json_int_t)v->create_index)) != 0 ||
         json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)v->modify_index)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    rcon_svc_clear(v);
    return o;
}

json_t *rcon_enc_catalog_service(const struct rcon_node *n, const struct reg_instance *in)
{
    struct rcon_node node = rcon_node_for(n, in);
    struct rcon_svc v = rcon_svc_of(in);

    return rcon_svc_catalog(&node, &v);
}

json_t *rcon_enc_agent_service(const struct rcon_node *n, const struct reg_instance *in,
                               bool with_index)
{
    struct rcon_svc v = rcon_svc_of(in);

    return rcon_svc_agent(n, &v, with_index);
}

json_t *rcon_enc_self_catalog(const struct rcon_node *n)
{
    struct rcon_svc v = rcon_svc_self(n);

    return rcon_svc_catalog(n, &v);
}

json_t *rcon_enc_self_service(const struct rcon_node *n)
{
    struct rcon_svc v = rcon_svc_self(n);

    return rcon_svc_agent(n, &v, true);
}

json_t *rcon_enc_node_check(const struct rcon_node *n)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[], s:s, s:I, s:I}", "Node",
                     n->name, "CheckID", "serfHealth", "Name", "Serf Health Status", "Status",
                     "passing", "Notes", "", "Output", "Agent alive and reachable", "ServiceID", "",
                     "ServiceName", "", "ServiceTags", "Type", "", "CreateIndex",
                     (json_int_t)RCON_NODE_INDEX, "ModifyIndex", (json_int_t)RCON_NODE_INDEX);
}

/* A duration as Go prints the simple cases ("10s", "500ms"). */
static void rcon_duration(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

/* The Definition of an http or tcp check: what it probes, how often. */
static json_t *rcon_enc_definition(const struct reg_check_view *c)
{
    char iv[32], to[32], dr[32];

    rcon_duration(c->interval_ms, iv, sizeof(iv));
    rcon_duration(c->timeout_ms, to, sizeof(to));
    rcon_duration(c->deregister_after_ms, dr, sizeof(dr));
    return json_pack("{s:s, s:s, s:s, s:s}", c->kind == REG_CHECK_HTTP ? "HTTP" : "TCP", c->target,
                     "Interval", iv, "Timeout", to, "DeregisterCriticalServiceAfter", dr);
}

/* One Consul check object. */
static json_t *rcon_enc_check(const struct rcon_node *n, const struct reg_instance *in,
                              const char *id, const char *name, const char *status,
                              const char *notes, const char *output, const char *type,
                              json_t *definition)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:I}", "Node",
                          n->name, "CheckID", id, "Name", name, "Status", status, "Notes", notes,
                          "Output", output, "ServiceID", rcon_enc_service_id(in), "ServiceName",
                          reg_instance_name(in), "ServiceTags", rcon_enc_tags(in), "Type", type,
                          "CreateIndex", (json_int_t)reg_instance_create_index(in), "ModifyIndex",
                          (json_int_t)reg_instance_modify_index(in));

    if (o && definition && json_object_set_new(o, "Definition", definition) != 0) {
        json_decref(o);
        return NULL;
    }
    if (!o)
        json_decref(definition);
    return o;
}

/* Append o (stolen) to arr; -1 when o is NULL or out of memory. */
static int rcon_append(json_t *arr, json_t *o) { return o ? json_array_append_new(arr, o) : -1; }

int rcon_enc_checks(const struct rcon_node *this_node, const struct reg_instance *in, int state,
                    json_t *arr)
{
    struct rcon_node node = rcon_node_for(this_node, in);
    const struct rcon_node *n = &node;
    size_t i, count = reg_instance_check_count(in);
    struct reg_check_view c;
    char id[LIM_CHECK_ID_MAX + LIM_META_VALUE_MAX + 32];
    char name[LIM_NAME_MAX + 32];
    const char *reason = NULL;
    const char *type = NULL;

    snprintf(name, sizeof(name), "Service '%s' check", reg_instance_name(in));
    for (i = 0; i < count; i++) {
        reg_instance_check(in, i, &c);
        if (state >= 0 && (int)c.status != state)
            continue;
        rcon_check_id(in, &c, id, sizeof(id));
        type = c.kind == REG_CHECK_TTL ? "ttl" : c.kind == REG_CHECK_HTTP ? "http" : "tcp";
        if (rcon_append(
                arr, rcon_enc_check(n, in, id, name, regc_health_name(c.status), "", c.output, type,
                                    c.kind == REG_CHECK_TTL ? NULL : rcon_enc_definition(&c))) != 0)
            return -1;
    }
    if (reg_instance_maintenance(in, &reason, NULL) && (state < 0 || state == REG_CRITICAL)) {
        snprintf(id, sizeof(id), "_service_maintenance:%s", rcon_enc_service_id(in));
        if (rcon_append(arr, rcon_enc_check(n, in, id, "Service Maintenance Mode", "critical",
                                            reason, "", "", NULL)) != 0)
            return -1;
    }
    return 0;
}

/* qsort order of checks: by CheckID, then ServiceID. */
static int rcon_check_cmp(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a;
    const json_t *y = *(const json_t *const *)b;
    int d = strcmp(json_string_value(json_object_get(x, "CheckID")),
                   json_string_value(json_object_get(y, "CheckID")));

    return d ? d
             : strcmp(json_string_value(json_object_get(x, "ServiceID")),
                      json_string_value(json_object_get(y, "ServiceID")));
}

int rcon_sort_checks(json_t *arr)
{
    size_t i, n = json_array_size(arr);
    json_t **v = NULL;
    int rc = -1;

    if (n < 2)
        return 0;
    v = malloc(n * sizeof(*v));
    if (!v)
        return -1;
    for (i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof(*v), rcon_check_cmp);
    json_array_clear(arr);
    for (i = 0; i < n; i++)
        if (json_array_append(arr, v[i]) != 0)
            goto cleanup;
    rc = 0;
cleanup:
    for (i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
    return rc;
}

json_t *rcon_enc_health_entry(const struct rcon_node *this_node, const struct reg_instance *in)
{
    struct rcon_node node = rcon_node_for(this_node, in);
    json_t *checks = json_array();

    /* an external node has no agent, so no serfHealth */
    if (!checks || (!node.external && rcon_append(checks, rcon_enc_node_check(&node)) != 0) ||
        rcon_enc_checks(this_node, in, -1, checks) != 0 || rcon_sort_checks(checks) != 0) {
        json_decref(checks);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o}", "Node", rcon_enc_node(&node), "Service",
                     rcon_enc_agent_service(&node, in, true), "Checks", checks);
}

json_t *rcon_enc_self_health(const struct rcon_node *n)
{
    return json_pack("{s:o, s:o, s:[o]}", "Node", rcon_enc_node(n), "Service",
                     rcon_enc_self_service(n), "Checks", rcon_enc_node_check(n));
}
