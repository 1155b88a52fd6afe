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
    int port;
    int64_t ttl_ms;
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

/* Append ms as a JSON number of seconds: an integer when whole ("10"),
 * else with the milliseconds ("0.25", "1.5"). At most JW_INT_MAX_LEN
 * bytes for the values of a ttl. */
static char *regc_seconds_put(char *dst, int64_t ms)
{
    int64_t frac = ms % 1000;
    int digits = 3;

    dst = jw_int_put(dst, ms / 1000);
    if (frac == 0)
        return dst;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    return dst + sprintf(dst, ".%0*lld", digits, (long long)frac);
}

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
    return regc_seconds_put(dst, v->ttl_ms);
}

/* The name of a health in the API. */
const char *regc_health_name(enum reg_health h)
{
    return h == REG_PASSING ? REGV1_PASSING : h == REG_WARNING ? REGV1_WARNING : REGV1_CRITICAL;
}

/* A duration as the registration takes it back: "<n>ms". */
static json_t *regc_ms(int64_t ms)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lldms", (long long)ms);
    return json_string(buf);
}

/* Add the given check cs (as a registration says it) to the array a. 0 or
 * -1 (out of memory). */
static int regc_check_def(json_t *a, const char *id, enum reg_check_kind kind, const char *target,
                          int64_t ttl_ms, int64_t interval_ms, int64_t timeout_ms,
                          int64_t deregister_ms, const struct chk_policy *pol,
                          enum reg_health initial)
{
    json_t *c = json_object();
    int bad = 0;

    if (!c)
        return -1;
    bad |= json_object_set_new(c, REGV1_C_ID, json_string(id));
    if (kind == REG_CHECK_TTL) {
        bad |= json_object_set_new(c, REGV1_C_TTL, regc_ms(ttl_ms));
        if (initial != REG_PASSING)
            bad |= json_object_set_new(c, REGV1_C_STATUS, json_string(regc_health_name(initial)));
    } else {
        bad |= json_object_set_new(c, kind == REG_CHECK_HTTP ? REGV1_C_HTTP : REGV1_C_TCP,
                                   json_string(target));
        bad |= json_object_set_new(c, REGV1_C_INTERVAL, regc_ms(interval_ms));
        bad |= json_object_set_new(c, REGV1_C_TIMEOUT, regc_ms(timeout_ms));
        bad |=
            json_object_set_new(c, REGV1_C_FAILURES, json_integer(pol->failures_before_critical));
        bad |=
            json_object_set_new(c, REGV1_C_SUCCESSES, json_integer(pol->successes_before_passing));
        bad |= json_object_set_new(c, REGV1_C_STATUS, json_string(regc_health_name(initial)));
    }
    if (deregister_ms > 0)
        bad |= json_object_set_new(c, REGV1_C_DEREGISTER, regc_ms(deregister_ms));
    bad |= json_array_append_new(a, c);
    return bad ? -1 : 0;
}

/* What a stored document holds beyond the registration's fixed part: its
 * given checks (written whenever there are some, or no TTL check: "ttl":0
 * reads back only beside "checks") and its maintenance. */
struct regc_extra {
    json_t *checks; /* owned array; NULL: none to write */
    bool maint;
    long long maint_since_ms;
    const char *maint_reason; /* borrowed */
};

/* ",\"checks\":[...],\"maintenance\":{...}" for x, or "" (caller frees);
 * NULL when out of memory. */
static char *regc_extra_text(const struct regc_extra *x)
{
    json_t *o = json_object();
    char *text = NULL, *out = NULL;
    size_t n;

    if (!o)
        return NULL;
    if ((x->checks && json_object_set(o, REGV1_F_CHECKS, x->checks) != 0) ||
        (x->maint && json_object_set_new(o, REGV1_F_MAINT,
                                         json_pack("{s:s,s:I}", "reason", x->maint_reason, "since",
                                                   (json_int_t)x->maint_since_ms)) != 0))
        goto cleanup;
    if (json_object_size(o) == 0) {
        out = strdup("");
        goto cleanup;
    }
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto cleanup;
    /* "{...}" into ",..." */
    n = strlen(text);
    text[0] = ',';
    text[n - 1] = '\0';
    out = text;
    text = NULL;
cleanup:
    free(text);
    json_decref(o);
    return out;
}

/* The stored document of v, with critical_since_ms when it is above 0 and
 * extra (NULL: none): bytes the caller frees (NUL-terminated), their length
 * in *len; NULL when out of memory. */
static char *regc_doc_of(const struct regc_view *v, long long critical_since_ms,
                         const struct regc_extra *extra, size_t *len)
{
    char *more = extra ? regc_extra_text(extra) : NULL;
    /* "{"v":1," then the registration without its '{', the health, the
     * extra members, "}\0". */
    char *doc = NULL;
    char *end = NULL;
    char *comma = NULL;

    if (extra && !more)
        return NULL;
    doc = malloc(regc_len(v) + sizeof("{\"v\":,") + JW_INT_MAX_LEN + 2 +
                 sizeof(",\"" REGC_F_CRITICAL_SINCE "\":") + JW_INT_MAX_LEN +
                 (more ? strlen(more) : 0));
    if (!doc) {
        free(more);
        return NULL;
    }
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
    if (more)
        end = regc_lit(end, more);
    free(more);
    *end++ = '}';
    *end = '\0';
    *len = (size_t)(end - doc);
    return doc;
}

char *regc_doc_new(const char *id, const struct reg_spec *spec, size_t *len)
{
    struct regc_view v = {id,         spec->name,    spec->host,      spec->type,
                          spec->port, spec->ttl_ms,  spec->tag_count, spec->meta_count,
                          spec,       regc_spec_tag, regc_spec_key,   regc_spec_value};

    struct regc_extra x = {NULL, spec->maint, spec->maint_since_ms, spec->maint_reason};
    char *doc = NULL;
    size_t i;

    if (spec->check_count > 0 || spec->ttl_ms == 0) {
        x.checks = json_array();
        if (!x.checks)
            return NULL;
        for (i = 0; i < spec->check_count; i++) {
            const struct reg_check_spec *cs = &spec->checks[i];
            char def[LIM_CHECK_ID_MAX + 1];

            if (!cs->id[0])
                snprintf(def, sizeof(def), "%s:%zu", id, i + 1);
            if (regc_check_def(x.checks, cs->id[0] ? cs->id : def, cs->kind, cs->target,
                               spec->ttl_ms, cs->interval_ms, cs->timeout_ms,
                               cs->deregister_after_ms, &cs->policy, cs->status) != 0)
                goto cleanup;
        }
    }
    /* a registration of before checks has nothing more to store */
    doc = regc_doc_of(&v, spec->critical_since_ms, x.checks || x.maint ? &x : NULL, len);
cleanup:
    json_decref(x.checks);
    return doc;
}

/* The view of an instance's registration. */
static struct regc_view regc_view_of(const struct reg_instance *in)
{
    return (struct regc_view){reg_instance_id(in),
                              reg_instance_name(in),
                              reg_instance_host(in),
                              reg_instance_type(in),
                              reg_instance_port(in),
                              reg_instance_ttl_ms(in),
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
    struct regc_extra x = {NULL, false, 0, NULL};
    long long since = 0;
    int64_t maint_since = 0;
    size_t i, n = reg_instance_check_count(in);
    char *doc = NULL;

    if (reg_instance_ttl_ms(in) > 0 && reg_instance_ttl_health(in) == REG_CRITICAL)
        since = (long long)reg_instance_heartbeat_ms(in) + (long long)reg_instance_ttl_ms(in);
    x.maint = reg_instance_maintenance(in, &x.maint_reason, &maint_since);
    x.maint_since_ms = maint_since;
    for (i = 0; i < n; i++) {
        struct reg_check_view c;

        reg_instance_check(in, i, &c);
        if (!c.given)
            continue;
        if (!x.checks && !(x.checks = json_array()))
            return NULL;
        if (regc_check_def(x.checks, c.id, c.kind, c.target, reg_instance_ttl_ms(in), c.interval_ms,
                           c.timeout_ms, c.deregister_after_ms, &c.policy, c.initial) != 0)
            goto cleanup;
    }
    if (!x.checks && reg_instance_ttl_ms(in) == 0 && !(x.checks = json_array()))
        return NULL;
    doc = regc_doc_of(&v, since, x.checks || x.maint ? &x : NULL, len);
cleanup:
    json_decref(x.checks);
    return doc;
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
    v = json_object_get(body, REGV1_F_MAINT);
    if (rc == 0 && json_is_object(v)) {
        const char *reason = json_string_value(json_object_get(v, "reason"));
        json_t *at = json_object_get(v, "since");

        spec->maint = true;
        snprintf(spec->maint_reason, sizeof(spec->maint_reason), "%s", reason ? reason : "");
        spec->maint_since_ms = json_is_integer(at) ? (long long)json_integer_value(at) : 0;
    }

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

/* Append the JSON string of s to out. 0 or -1. */
static int regc_add_str(struct evbuffer *out, const char *s)
{
    size_t n = strlen(s);
    struct evbuffer_iovec vec;
    char *end;

    if (evbuffer_reserve_space(out, (ev_ssize_t)jw_string_len(s, n), &vec, 1) != 1)
        return -1;
    end = jw_string_put(vec.iov_base, s, n);
    vec.iov_len = (size_t)(end - (char *)vec.iov_base);
    return evbuffer_commit_space(out, &vec, 1);
}

/* The name of a check kind in the API. */
static const char *regc_kind_name(enum reg_check_kind k)
{
    return k == REG_CHECK_HTTP ? REGV1_C_HTTP : k == REG_CHECK_TCP ? REGV1_C_TCP : REGV1_C_TTL;
}

/* A time in Unix seconds with milliseconds, as a JSON number. */
static int regc_add_secs(struct evbuffer *out, int64_t ms)
{
    return evbuffer_add_printf(out, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000)) <
                   0
               ? -1
               : 0;
}

int regc_write_check(const struct reg_check_view *c, struct evbuffer *out)
{
    if (evbuffer_add_printf(out, "{\"" REGV1_C_ID "\":") < 0 || regc_add_str(out, c->id) != 0 ||
        evbuffer_add_printf(out,
                            ",\"" REGV1_C_TYPE "\":\"%s\",\"" REGV1_C_STATUS
                            "\":\"%s\",\"" REGV1_C_OUTPUT "\":",
                            regc_kind_name(c->kind), regc_health_name(c->status)) < 0 ||
        regc_add_str(out, c->output) != 0 ||
        evbuffer_add_printf(out, ",\"" REGV1_C_LAST_CHANGE "\":") < 0 ||
        regc_add_secs(out, c->last_change_ms) != 0 || evbuffer_add(out, "}", 1) != 0)
        return -1;
    return 0;
}

/* The maintenance of in as its pseudo-check, when it is on. */
static void regc_maint_view(const struct reg_instance *in, const char *reason, int64_t since,
                            struct reg_check_view *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id_buf, sizeof(c->id_buf), "%s:%s", reg_instance_id(in), REGV1_F_MAINT);
    c->id = c->id_buf;
    c->kind = REG_CHECK_TTL;
    c->status = REG_CRITICAL;
    c->output = reason;
    c->last_change_ms = since;
}

int regc_write_checks(const struct reg_instance *in, struct evbuffer *out)
{
    size_t i, n = reg_instance_check_count(in);
    struct reg_check_view c;
    const char *reason = NULL;
    int64_t since = 0;
    bool maint = reg_instance_maintenance(in, &reason, &since);

    if (evbuffer_add(out, "[", 1) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        reg_instance_check(in, i, &c);
        if ((i > 0 && evbuffer_add(out, ",", 1) != 0) || regc_write_check(&c, out) != 0)
            return -1;
    }
    if (maint) {
        regc_maint_view(in, reason, since, &c);
        if ((n > 0 && evbuffer_add(out, ",", 1) != 0) ||
            evbuffer_add_printf(out, "{\"" REGV1_C_ID "\":") < 0 || regc_add_str(out, c.id) != 0 ||
            evbuffer_add_printf(out, ",\"" REGV1_C_TYPE "\":\"" REGV1_F_MAINT "\",\"" REGV1_C_STATUS
                                     "\":\"" REGV1_CRITICAL "\",\"" REGV1_C_OUTPUT "\":") < 0 ||
            regc_add_str(out, reason) != 0 ||
            evbuffer_add_printf(out, ",\"" REGV1_C_LAST_CHANGE "\":") < 0 ||
            regc_add_secs(out, since) != 0 || evbuffer_add(out, "}", 1) != 0)
            return -1;
    }
    return evbuffer_add(out, "]", 1);
}

/* The live fields after the cached part: heartbeat, health, checks,
 * maintenance, and the closing brace. */
static int regc_write_live(const struct reg_instance *in, struct evbuffer *out)
{
    char live[64 + JW_INT_MAX_LEN];
    const char *reason = NULL;
    int64_t since = 0;
    int n = snprintf(live, sizeof(live),
                     ",\"" REGV1_F_HEARTBEAT "\":%lld,\"" REGV1_F_HEALTH
                     "\":\"%s\",\"" REGV1_F_CHECKS "\":",
                     (long long)(reg_instance_heartbeat_ms(in) / 1000),
                     regc_health_name(reg_instance_health(in)));

    if (evbuffer_add(out, live, (size_t)n) != 0 || regc_write_checks(in, out) != 0)
        return -1;
    if (reg_instance_maintenance(in, &reason, &since)) {
        if (evbuffer_add_printf(out, ",\"" REGV1_F_MAINT "\":{\"reason\":") < 0 ||
            regc_add_str(out, reason) != 0 || evbuffer_add_printf(out, ",\"since\":") < 0 ||
            regc_add_secs(out, since) != 0 || evbuffer_add(out, "}", 1) != 0)
            return -1;
    }
    return evbuffer_add(out, "}", 1);
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
