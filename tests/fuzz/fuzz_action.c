/* fuzz_action.c: libFuzzer harness for the JSON action protocol's request
 * check (registry/api/action.h, ract_parse): the fuzz data is read as the
 * server reads a body (jansson, duplicate keys refused, any value), then
 * validated. Besides crashes and leaks, it aborts when ract_parse breaks
 * its contract against a reference of the protocol's rules written here:
 * it accepts exactly what the reference accepts; a refusal says why and
 * leaves nothing owned; an accepted request names the body's action, its
 * strings are the body's (1 to their limit bytes, no NUL) and, for a
 * register, its registration is what reg_spec_parse makes of service_info
 * with the top-level ttl set over its own. No registry, no socket. */
#include "registry/api/action.h"
#include "registry/api/spec_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"register", "deregister", "renew", "get",
                                    "list",     "discover",   "health"};

/* The string member key of o when it is a string of 1..max bytes without
 * NUL: 1; absent: 0; anything else: -1. */
static int ref_string(const json_t *o, const char *key, size_t max)
{
    const json_t *v = json_object_get(o, key);

    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    return 1;
}

/* service_info with the top-level ttl over its own (caller decrefs), or
 * NULL when service_info is not an object (or out of memory: abort). */
static json_t *ref_merged(const json_t *body)
{
    const json_t *info = json_object_get(body, "service_info");
    json_t *ttl = json_object_get(body, "ttl");
    json_t *copy = NULL;

    if (!json_is_object(info))
        return NULL;
    copy = json_deep_copy(info);
    if (!copy || (ttl && json_object_set(copy, "ttl", ttl) != 0))
        abort();
    return copy;
}

/* The reference verdict on body: the index of its action when it is a
 * valid request, else -1. */
static int ref_verdict(const json_t *body)
{
    const json_t *act = json_is_object(body) ? json_object_get(body, "action") : NULL;
    struct reg_spec spec;
    json_t *merged = NULL;
    char err[256];
    int i, type, name, rc;

    if (!json_is_string(act))
        return -1;
    for (i = 0; i < 7; i++)
        if (json_string_length(act) == strlen(names[i]) &&
            memcmp(json_string_value(act), names[i], strlen(names[i])) == 0)
            break;
    switch (i) {
    case RACT_REGISTER:
        merged = ref_merged(body);
        if (!merged)
            return -1;
        rc = reg_spec_parse(merged, &spec, err, sizeof(err));
        json_decref(merged);
        if (rc != 0)
            return -1;
        reg_spec_clear(&spec);
        return i;
    case RACT_DEREGISTER:
    case RACT_RENEW:
    case RACT_GET:
        return ref_string(body, "service_id", LIM_ID_MAX) == 1 ? i : -1;
    case RACT_LIST:
        return ref_string(body, "service_type", LIM_TYPE_MAX) >= 0 ? i : -1;
    case RACT_DISCOVER:
        type = ref_string(body, "service_type", LIM_TYPE_MAX);
        name = ref_string(body, "name", LIM_NAME_MAX);
        return type >= 0 && name >= 0 && (type == 1 || name == 1) ? i : -1;
    case RACT_HEALTH:
        return i;
    default:
        return -1;
    }
}

/* Abort unless the string member key of body is s (has: it is there). */
static void same_string(const json_t *body, const char *key, bool has, const char *s)
{
    const json_t *v = json_object_get(body, key);

    if (has != (v != NULL))
        abort();
    if (has && (strcmp(json_string_value(v), s) != 0 || strlen(s) != json_string_length(v)))
        abort();
}

/* Abort unless a and b hold the same registration. */
static void same_spec(const struct reg_spec *a, const struct reg_spec *b)
{
    size_t i;

    if (a->has_id != b->has_id || strcmp(a->id, b->id) != 0 || strcmp(a->name, b->name) != 0 ||
        strcmp(a->host, b->host) != 0 || strcmp(a->type, b->type) != 0 || a->port != b->port ||
        a->ttl_ms != b->ttl_ms || a->tag_count != b->tag_count || a->meta_count != b->meta_count ||
        a->check_count != b->check_count)
        abort();
    for (i = 0; i < a->tag_count; i++)
        if (strcmp(reg_spec_tag(a, i), reg_spec_tag(b, i)) != 0)
            abort();
    for (i = 0; i < a->meta_count; i++)
        if (strcmp(reg_spec_meta_key(a, i), reg_spec_meta_key(b, i)) != 0 ||
            strcmp(reg_spec_meta_value(a, i), reg_spec_meta_value(b, i)) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ract_request rq;
    struct reg_spec ref;
    json_error_t jerr;
    json_t *body = NULL, *merged = NULL;
    char err[512];
    int rc, want;

    body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!body)
        return 0;
    want = ref_verdict(body);
    err[0] = '\0';
    rc = ract_parse(body, &rq, err, sizeof(err));
    if (rc != 0) {
        /* -2 (out of memory) cannot happen without an allocation failing */
        if (rc != -1 || want != -1 || err[0] == '\0' || strlen(err) >= sizeof(err))
            abort();
        if (rq.spec.strs || rq.spec.tag_count || rq.spec.meta_count)
            abort();
        json_decref(body);
        return 0;
    }
    if (want < 0 || (int)rq.action != want ||
        strcmp(ract_action_name(rq.action), json_string_value(json_object_get(body, "action"))))
        abort();
    switch (rq.action) {
    case RACT_REGISTER:
        merged = ref_merged(body);
        if (!merged || reg_spec_parse(merged, &ref, err, sizeof(err)) != 0)
            abort();
        same_spec(&rq.spec, &ref);
        reg_spec_clear(&ref);
        json_decref(merged);
        break;
    case RACT_DEREGISTER:
    case RACT_RENEW:
    case RACT_GET:
        same_string(body, "service_id", true, rq.service_id);
        break;
    case RACT_LIST:
        same_string(body, "service_type", rq.has_type, rq.type);
        break;
    case RACT_DISCOVER:
        same_string(body, "service_type", rq.has_type, rq.type);
        same_string(body, "name", rq.has_name, rq.name);
        break;
    case RACT_HEALTH:
        break;
    }
    if (rq.action != RACT_REGISTER && (rq.spec.strs || rq.spec.tag_count || rq.spec.meta_count))
        abort();
    ract_request_clear(&rq);
    ract_request_clear(&rq); /* a cleared request clears again */
    json_decref(body);
    return 0;
}
