/* codec.c: the registry's JSON for stored documents and answers (see
 * codec.h). Written by hand with jsonw, byte for byte what jansson's
 * json_dumps(JSON_COMPACT) wrote for the same object before (the fields in
 * the same order, strings escaped the same way); read back with jansson. */
#include "codec.h"

#include "codec/jsonw.h"
#include "core/errbuf.h"
#include "proto/registry_v1.h"
#include "spec_json.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stored document's member for the health of a critical instance: the
 * Unix milliseconds it turned critical (its last heartbeat plus its ttl).
 * Not part of the API's answers nor of a registration body (a client never
 * sets it). Absent: passing. An older v1 registry ignores it (it ignores
 * unknown members) and loads the instance as passing, as it always did. */
#define REGC_F_CRITICAL_SINCE "critical_since"

/* A registration to encode, whichever struct holds it: the fixed fields and
 * getters for the i-th tag, metadata key and value of src. */
struct regc_view {
    const char *id, *name, *host, *type;
    int port, ttl;
    size_t ntags, nmeta;
    const void *src;
    const char *(*tag)(const void *src, size_t i);
    const char *(*key)(const void *src, size_t i);
    const char *(*value)(const void *src, size_t i);
};

/* The cached registration part of an instance: its object without the
 * closing brace, ready for the live fields. */
struct regc_cache {
    size_t len;
    char text[]; /* len bytes */
};

/* Getters of struct regc_view over a struct reg_spec and over an instance. */
static const char *regc_spec_tag(const void *src, size_t i) { return reg_spec_tag(src, i); }
static const char *regc_spec_key(const void *src, size_t i) { return reg_spec_meta_key(src, i); }
static const char *regc_spec_value(const void *src, size_t i)
{
    return reg_spec_meta_value(src, i);
}
static const char *regc_in_tag(const void *src, size_t i) { return reg_instance_tag(src, i); }
static const char *regc_in_key(const void *src, size_t i) { return reg_instance_meta_key(src, i); }
static const char *regc_in_value(const void *src, size_t i)
{
    return reg_instance_meta_value(src, i);
}

/* Append the literal s (no escaping) at dst; returns the byte after it. */
static char *regc_lit(char *dst, const char *s)
{
    size_t n = strlen(s);

    memcpy(dst, s, n);
    return dst + n;
}

/* Append the JSON string of the C string s at dst. */
static char *regc_str(char *dst, const char *s) { return jw_string_put(dst, s, strlen(s)); }

/* Bytes of the JSON string of the C string s. */
static size_t regc_str_len(const char *s) { return jw_string_len(s, strlen(s)); }

/* Upper bound of the bytes regc_put writes for v. */
static size_t regc_len(const struct regc_view *v)
{
    size_t n =
        sizeof("{\"" REGV1_F_ID "\":,\"" REGV1_F_NAME "\":,\"" REGV1_F_HOST "\":,\"" REGV1_F_PORT
               "\":,\"" REGV1_F_TYPE "\":,\"" REGV1_F_TAGS "\":[],\"" REGV1_F_METADATA "\":{},"
               "\"" REGV1_F_TTL "\":") +
        2 * JW_INT_MAX_LEN;
    size_t i;

    n +=
        regc_str_len(v->id) + regc_str_len(v->name) + regc_str_len(v->host) + regc_str_len(v->type);
    for (i = 0; i < v->ntags; i++)
        n += regc_str_len(v->tag(v->src, i)) + 1;
    for (i = 0; i < v->nmeta; i++)
        n += regc_str_len(v->key(v->src, i)) + regc_str_len(v->value(v->src, i)) + 2;
    return n;
}

/* Write {"id":..,"name":..,"host":..,"port":..,"type":..,"tags":[..],
 * "metadata":{..},"ttl":.. at dst (room for regc_len(v) bytes), without the
 * closing brace. Returns the byte after it. */
static char *regc_put(char *dst, const struct regc_view *v)
{
    size_t i;

    dst = regc_lit(dst, "{\"" REGV1_F_ID "\":");
    dst = regc_str(dst, v->id);
    dst = regc_lit(dst, ",\"" REGV1_F_NAME "\":");
    dst = regc_str(dst, v->name);
    dst = regc_lit(dst, ",\"" REGV1_F_HOST "\":");
    dst = regc_str(dst, v->host);
    dst = regc_lit(dst, ",\"" REGV1_F_PORT "\":");
    dst = jw_int_put(dst, v->port);
    dst = regc_lit(dst, ",\"" REGV1_F_TYPE "\":");
    dst = regc_str(dst, v->type);
    dst = regc_lit(dst, ",\"" REGV1_F_TAGS "\":[");
    for (i = 0; i < v->ntags; i++) {
        if (i > 0)
            *dst++ = ',';
        dst = regc_str(dst, v->tag(v->src, i));
    }
    dst = regc_lit(dst, "],\"" REGV1_F_METADATA "\":{");
    for (i = 0; i < v->nmeta; i++) {
        if (i > 0)
            *dst++ = ',';
        dst = regc_str(dst, v->key(v->src, i));
        *dst++ = ':';
        dst = regc_str(dst, v->value(v->src, i));
    }
    dst = regc_lit(dst, "},\"" REGV1_F_TTL "\":");
    return jw_int_put(dst, v->ttl);
}

/* The stored document of v, with critical_since_ms when it is above 0:
 * bytes the caller frees (NUL-terminated), their length in *len; NULL when
 * out of memory. */
static char *regc_doc_of(const struct regc_view *v, long long critical_since_ms, size_t *len)
{
    /* "{"v":1," then the registration without its '{', the health, "}\0". */
    char *doc = malloc(regc_len(v) + sizeof("{\"v\":,") + JW_INT_MAX_LEN + 2 +
                       sizeof(",\"" REGC_F_CRITICAL_SINCE "\":") + JW_INT_MAX_LEN);
    char *end = NULL;
    char *comma = NULL;

    if (!doc)
        return NULL;
    end = regc_lit(doc, "{\"v\":");
    end = jw_int_put(end, REGC_DOC_VERSION);
    comma = end;
    /* regc_put starts with '{': write it over the comma, then put the
     * comma back. */
    end = regc_put(comma, v);
    *comma = ',';
    if (critical_since_ms > 0) {
        end = regc_lit(end, ",\"" REGC_F_CRITICAL_SINCE "\":");
        end = jw_int_put(end, critical_since_ms);
    }
    *end++ = '}';
    *end = '\0';
    *len = (size_t)(end - doc);
    return doc;
}

char *regc_doc_new(const char *id, const struct reg_spec *spec, size_t *len)
{
    struct regc_view v = {id,         spec->name,    spec->host,      spec->type,
                          spec->port, spec->ttl,     spec->tag_count, spec->meta_count,
                          spec,       regc_spec_tag, regc_spec_key,   regc_spec_value};

    return regc_doc_of(&v, spec->critical_since_ms, len);
}

/* The view of an instance's registration. */
static struct regc_view regc_view_of(const struct reg_instance *in)
{
    return (struct regc_view){reg_instance_id(in),
                              reg_instance_name(in),
                              reg_instance_host(in),
                              reg_instance_type(in),
                              reg_instance_port(in),
                              reg_instance_ttl(in),
                              reg_instance_tag_count(in),
                              reg_instance_meta_count(in),
                              in,
                              regc_in_tag,
                              regc_in_key,
                              regc_in_value};
}

char *regc_doc_of_instance(const struct reg_instance *in, size_t *len)
{
    struct regc_view v = regc_view_of(in);
    long long since = 0;

    if (reg_instance_health(in) == REG_CRITICAL)
        since = (long long)reg_instance_heartbeat_ms(in) + (long long)reg_instance_ttl(in) * 1000;
    return regc_doc_of(&v, since, len);
}

int regc_doc_parse(const char *doc, size_t len, struct reg_spec *spec, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *body = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v = NULL;
    int rc = -1;

    reg_spec_init(spec);
    if (!body) {
        errbuf_set(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
        goto cleanup;
    }
    v = json_object_get(body, "v");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
              json_integer_value(v) > REGC_DOC_VERSION)) {
        errbuf_set(err, errlen,
                   "document version is not one this registry knows (up to %d): written by a "
                   "newer registry?",
                   REGC_DOC_VERSION);
        goto cleanup;
    }
    rc = reg_spec_parse(body, spec, err, errlen);
    v = json_object_get(body, REGC_F_CRITICAL_SINCE);
    /* a health that does not read as one: passing, as before the member */
    if (rc == 0 && json_is_integer(v) && json_integer_value(v) > 0)
        spec->critical_since_ms = (long long)json_integer_value(v);

cleanup:
    json_decref(body);
    return rc;
}

/* The core's cache-slot destructor. */
static void regc_cache_free(void *cache) { free(cache); }

/* The instance's cached registration part, encoded now if missing; NULL
 * when out of memory. */
static const struct regc_cache *regc_cache_get(const struct reg_instance *in)
{
    struct regc_cache *c = reg_instance_cache(in);
    struct regc_view v;
    char *end = NULL;

    if (c)
        return c;
    v = regc_view_of(in);
    c = malloc(sizeof(*c) + regc_len(&v));
    if (!c)
        return NULL;
    end = regc_put(c->text, &v);
    c->len = (size_t)(end - c->text);
    reg_instance_set_cache(in, c);
    return c;
}

/* The live fields after the cached part: heartbeat and health, and the
 * closing brace. */
static int regc_write_live(const struct reg_instance *in, struct evbuffer *out)
{
    char live[64 + JW_INT_MAX_LEN];
    int n = snprintf(live, sizeof(live),
                     ",\"" REGV1_F_HEARTBEAT "\":%lld,\"" REGV1_F_HEALTH "\":\"%s\"}",
                     (long long)(reg_instance_heartbeat_ms(in) / 1000),
                     reg_instance_health(in) == REG_PASSING ? REGV1_PASSING : REGV1_CRITICAL);

    return evbuffer_add(out, live, (size_t)n);
}

int regc_write_instance(const struct reg_instance *in, struct evbuffer *out)
{
    const struct regc_cache *c = regc_cache_get(in);

    if (!c || evbuffer_add(out, c->text, c->len) != 0)
        return -1;
    return regc_write_live(in, out);
}

int regc_write_instance_once(const struct reg_instance *in, struct evbuffer *out)
{
    const struct regc_cache *c = reg_instance_cache(in);
    struct regc_view v;
    struct evbuffer_iovec vec;
    char *end;

    if (c)
        return regc_write_instance(in, out);
    v = regc_view_of(in);
    if (evbuffer_reserve_space(out, (ev_ssize_t)regc_len(&v), &vec, 1) != 1)
        return -1;
    end = regc_put(vec.iov_base, &v);
    vec.iov_len = (size_t)(end - (char *)vec.iov_base);
    if (evbuffer_commit_space(out, &vec, 1) != 0)
        return -1;
    return regc_write_live(in, out);
}

const struct reg_codec regc_codec = {
    .encode = regc_doc_new,
    .encode_instance = regc_doc_of_instance,
    .decode = regc_doc_parse,
    .cache_free = regc_cache_free,
};
