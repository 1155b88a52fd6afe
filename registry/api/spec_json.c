/* spec_json.c: parsing and validation of registration bodies into the
 * core's typed struct reg_spec (see spec_json.h). */
#include "spec_json.h"

#include "codec/jsonerr.h"
#include "codec/uid.h"
#include "core/errbuf.h"
#include "proto/registry_v1.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* An id of the form "<name>-<uuid>" for this name. */
static bool reg_id_valid_for(const char *id, const char *name)
{
    size_t n = strlen(name);

    return strncmp(id, name, n) == 0 && id[n] == '-' && uid_is_valid(id + n + 1);
}

/* Copy a string member into dst (cap bytes with the NUL) after checking
 * it; a missing optional member leaves dst as it is. */
static int reg_take_string(const json_t *body, const char *key, bool required, char *dst,
                           size_t cap, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, key);
    size_t len;

    if (!v) {
        if (required) {
            errbuf_set(err, errlen, "missing required field '%s'", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        errbuf_set(err, errlen, "field '%s' must be a string", key);
        return -1;
    }
    len = json_string_length(v);
    if (len >= cap || strlen(json_string_value(v)) != len) {
        errbuf_set(err, errlen, "field '%s' is longer than %zu characters or holds a NUL", key,
                   cap - 1);
        return -1;
    }
    memcpy(dst, json_string_value(v), len + 1);
    return 0;
}

/* Read an integer member into *out, checking [min, max]. */
static int reg_take_int(const json_t *body, const char *key, bool required, long min, long max,
                        int *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, key);
    json_int_t x;

    if (!v) {
        if (required) {
            errbuf_set(err, errlen, "missing required field '%s'", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer(v)) {
        errbuf_set(err, errlen, "field '%s' must be an integer", key);
        return -1;
    }
    x = json_integer_value(v);
    if (x < min || x > max) {
        errbuf_set(err, errlen, "field '%s' must be between %ld and %ld, got %lld", key, min, max,
                   (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* Check the optional "tags" member and copy its strings into spec, in
 * order. 0, or -1 with err. */
static int reg_take_tags(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, REGV1_F_TAGS);
    const json_t *tag;
    size_t i;

    if (!v)
        return 0;
    if (!json_is_array(v)) {
        errbuf_set(err, errlen, "field 'tags' must be an array of strings");
        return -1;
    }
    if (json_array_size(v) > LIM_TAGS_MAX) {
        errbuf_set(err, errlen, "field 'tags' has %zu tags; at most %d are allowed",
                   json_array_size(v), LIM_TAGS_MAX);
        return -1;
    }
    json_array_foreach (v, i, tag) {
        if (!json_is_string(tag)) {
            errbuf_set(err, errlen, "tags[%zu] must be a string", i);
            return -1;
        }
        if (json_string_length(tag) == 0 || json_string_length(tag) > LIM_TAG_LEN_MAX) {
            errbuf_set(err, errlen, "tags[%zu] must be 1 to %d characters long", i,
                       LIM_TAG_LEN_MAX);
            return -1;
        }
    }
    json_array_foreach (v, i, tag) {
        if (reg_spec_add_tag(spec, json_string_value(tag), json_string_length(tag)) != 0) {
            errbuf_set(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Check the optional "metadata" member (null is an empty object) and copy
 * its pairs into spec, in order. 0, or -1 with err. */
static int reg_take_metadata(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, REGV1_F_METADATA);
    const char *key;
    const json_t *value;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        errbuf_set(err, errlen, "field 'metadata' must be an object of string values");
        return -1;
    }
    if (json_object_size(v) > LIM_META_MAX) {
        errbuf_set(err, errlen, "field 'metadata' has %zu keys; at most %d are allowed",
                   json_object_size(v), LIM_META_MAX);
        return -1;
    }
    json_object_foreach ((json_t *)v, key, value) {
        if (strlen(key) == 0 || strlen(key) > LIM_META_KEY_MAX) {
            errbuf_set(err, errlen, "metadata keys must be 1 to %d characters long",
                       LIM_META_KEY_MAX);
            return -1;
        }
        if (!json_is_string(value)) {
            errbuf_set(err, errlen, "metadata['%.64s'] must be a string", key);
            return -1;
        }
        if (json_string_length(value) > LIM_META_VALUE_MAX) {
            errbuf_set(err, errlen, "metadata['%.64s'] is longer than %d characters", key,
                       LIM_META_VALUE_MAX);
            return -1;
        }
    }
    json_object_foreach ((json_t *)v, key, value) {
        if (reg_spec_add_meta(spec, key, strlen(key), json_string_value(value),
                              json_string_length(value)) != 0) {
            errbuf_set(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

int reg_spec_parse(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
{
    reg_spec_init(spec);
    errbuf_set(err, errlen, "out of memory");
    if (!json_is_object(body)) {
        errbuf_set(err, errlen, "request body must be a JSON object");
        return -1;
    }
    if (reg_take_string(body, REGV1_F_NAME, true, spec->name, sizeof(spec->name), err, errlen) ||
        reg_take_string(body, REGV1_F_HOST, true, spec->host, sizeof(spec->host), err, errlen) ||
        reg_take_int(body, REGV1_F_PORT, true, 1, 65535, &spec->port, err, errlen) ||
        reg_take_string(body, REGV1_F_TYPE, false, spec->type, sizeof(spec->type), err, errlen) ||
        reg_take_int(body, REGV1_F_TTL, false, LIM_TTL_MIN, LIM_TTL_MAX, &spec->ttl, err, errlen))
        goto fail;
    if (!regv1_name_valid(spec->name)) {
        errbuf_set(err, errlen, "field 'name' must match [A-Za-z0-9._-]{1,%d}", LIM_NAME_MAX);
        goto fail;
    }
    if (regv1_only_dots(spec->name)) {
        errbuf_set(err, errlen, "field 'name' must not be only dots");
        goto fail;
    }
    if (!regv1_name_valid(spec->type)) {
        errbuf_set(err, errlen, "field 'type' must match [A-Za-z0-9._-]{1,%d}", LIM_TYPE_MAX);
        goto fail;
    }
    if (regv1_only_dots(spec->type)) {
        errbuf_set(err, errlen, "field 'type' must not be only dots");
        goto fail;
    }
    if (!regv1_host_valid(spec->host)) {
        errbuf_set(err, errlen,
                   "field 'host' must be a hostname or an IP address of at most %d characters",
                   LIM_HOST_MAX);
        goto fail;
    }
    if (json_object_get(body, REGV1_F_ID)) {
        if (reg_take_string(body, REGV1_F_ID, false, spec->id, sizeof(spec->id), err, errlen))
            goto fail;
        if (!reg_id_valid_for(spec->id, spec->name)) {
            errbuf_set(err, errlen, "field 'id' must be '<name>-<uuid>' for name '%s'", spec->name);
            goto fail;
        }
        spec->has_id = true;
    }
    if (reg_take_tags(body, spec, err, errlen) || reg_take_metadata(body, spec, err, errlen))
        goto fail;
    return 0;
fail:
    reg_spec_clear(spec);
    return -1;
}

int reg_spec_parse_text(const char *text, size_t len, struct reg_spec *spec, char *err,
                        size_t errlen)
{
    json_error_t jerr;
    json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    int rc;

    if (!body) {
        reg_spec_init(spec);
        jerr_describe(&jerr, text, len, "registration", err, errlen);
        return -1;
    }
    rc = reg_spec_parse(body, spec, err, errlen);
    json_decref(body);
    return rc;
}
