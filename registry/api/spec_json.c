/* spec_json.c: parsing and validation of registration bodies into the
 * core's typed struct reg_spec (see spec_json.h). */
#include "spec_json.h"

#include "codec/jsonerr.h"
#include "codec/uid.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "proto/registry_v1.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The optional "ttl" member into spec->ttl_ms: seconds, an integer from 0
 * to LIM_TTL_MAX, or a real with at most millisecond precision from
 * LIM_TTL_MIN_MS (0.1). 0, or -1 with err. */
static int reg_take_ttl(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
{
    const json_t *v = json_object_get(body, REGV1_F_TTL);
    double ms;

    if (!v)
        return 0;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);

        if (x < 0 || x > LIM_TTL_MAX) {
            errbuf_set(err, errlen, "field '%s' must be between 0 and %d, got %lld", REGV1_F_TTL,
                       LIM_TTL_MAX, (long long)x);
            return -1;
        }
        spec->ttl_ms = (int64_t)x * 1000;
        return 0;
    }
    if (!json_is_real(v)) {
        errbuf_set(err, errlen, "field '%s' must be a number of seconds (10, or 0.5)", REGV1_F_TTL);
        return -1;
    }
    ms = json_real_value(v) * 1000;
    if (!(ms >= LIM_TTL_MIN_MS - 1e-6 && ms <= (double)LIM_TTL_MAX * 1000) ||
        fabs(ms - round(ms)) > 1e-6) {
        errbuf_set(err, errlen,
                   "field '%s' must be between %g and %d seconds, in whole milliseconds, got %g",
                   REGV1_F_TTL, LIM_TTL_MIN_MS / 1000.0, LIM_TTL_MAX, json_real_value(v));
        return -1;
    }
    spec->ttl_ms = (int64_t)round(ms);
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

/* Read the duration member key of the check at index i into *ms, within
 * [min, max] ms; absent leaves *ms as it is. 0, or -1 with err. */
static int reg_take_duration(const json_t *c, size_t i, const char *key, int64_t min, int64_t max,
                             int64_t *ms, char *err, size_t errlen)
{
    const json_t *v = json_object_get(c, key);
    int64_t x = 0;

    if (!v)
        return 0;
    if (!json_is_string(v) || cfg_parse_duration_ms(json_string_value(v), &x) != 0) {
        errbuf_set(err, errlen,
                   "checks[%zu].%s must be a duration such as \"10s\", \"500ms\" or \"1m\"", i,
                   key);
        return -1;
    }
    if (x < min || x > max) {
        errbuf_set(err, errlen, "checks[%zu].%s must be between %lld ms and %lld ms, got %lld ms",
                   i, key, (long long)min, (long long)max, (long long)x);
        return -1;
    }
    *ms = x;
    return 0;
}

/* Read a threshold member (1..LIM_CHECK_THRESHOLD_MAX) of check i. */
static int reg_take_threshold(const json_t *c, size_t i, const char *key, uint8_t *out, char *err,
                              size_t errlen)
{
    const json_t *v = json_object_get(c, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > LIM_CHECK_THRESHOLD_MAX) {
        errbuf_set(err, errlen, "checks[%zu].%s must be an integer from 1 to %d", i, key,
                   LIM_CHECK_THRESHOLD_MAX);
        return -1;
    }
    *out = (uint8_t)json_integer_value(v);
    return 0;
}

/* Whether s is an http(s) URL with a host, of printable ASCII without
 * spaces. */
static bool reg_check_url_valid(const char *s)
{
    const char *p = NULL;

    if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return false;
    if (*p == '\0' || *p == '/' || *p == ':')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Whether s is HOST:PORT (HOST a name or IPv4 address, or [IPv6]). */
static bool reg_check_addr_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[LIM_HOST_MAX + 3];
    size_t hl;
    char *end = NULL;
    long port;

    if (!colon || colon == s)
        return false;
    hl = (size_t)(colon - s);
    if (hl >= sizeof(host))
        return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (host[0] == '[') {
        struct in6_addr a6;

        if (hl < 3 || host[hl - 1] != ']')
            return false;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6) != 1)
            return false;
    } else if (!regv1_host_valid(host) || strchr(host, ':')) {
        return false;
    }
    port = strtol(colon + 1, &end, 10);
    return colon[1] >= '0' && colon[1] <= '9' && *end == '\0' && port >= 1 && port <= 65535;
}

/* Whether s is a check id: [A-Za-z0-9._:-]{1,LIM_CHECK_ID_MAX}. */
static bool reg_check_id_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return n >= 1 && n <= LIM_CHECK_ID_MAX;
}

/* The "status" member of check i (the status it starts with) into *out:
 * passing when absent. 0, or -1 with err. */
static int reg_take_status(const json_t *c, size_t i, enum reg_health *out, char *err,
                           size_t errlen)
{
    const json_t *v = json_object_get(c, REGV1_C_STATUS);
    const char *st = json_is_string(v) ? json_string_value(v) : "";

    *out = REG_PASSING;
    if (!v || strcmp(st, REGV1_PASSING) == 0)
        return 0;
    if (strcmp(st, REGV1_WARNING) == 0)
        *out = REG_WARNING;
    else if (strcmp(st, REGV1_CRITICAL) == 0)
        *out = REG_CRITICAL;
    else {
        errbuf_set(err, errlen,
                   "checks[%zu].status must be \"passing\", \"warning\" or \"critical\"", i);
        return -1;
    }
    return 0;
}

/* Parse the i-th check c into cs. 0, or -1 with err. */
static int reg_take_check(const json_t *c, size_t i, struct reg_check_spec *cs, char *err,
                          size_t errlen)
{
    const json_t *http = json_object_get(c, REGV1_C_HTTP);
    const json_t *tcp = json_object_get(c, REGV1_C_TCP);
    const json_t *ttl = json_object_get(c, REGV1_C_TTL);
    const json_t *target = http ? http : tcp;
    const json_t *v = NULL;

    memset(cs, 0, sizeof(*cs));
    cs->policy.failures_before_critical = cs->policy.successes_before_passing = 1;
    if (!json_is_object(c)) {
        errbuf_set(err, errlen, "checks[%zu] must be an object", i);
        return -1;
    }
    if ((http != NULL) + (tcp != NULL) + (ttl != NULL) != 1) {
        errbuf_set(err, errlen,
                   "checks[%zu] must have exactly one of \"http\" (a URL), \"tcp\" "
                   "(HOST:PORT) or \"ttl\" (a duration)",
                   i);
        return -1;
    }
    v = json_object_get(c, REGV1_C_ID);
    if (v) {
        if (!json_is_string(v) || !reg_check_id_valid(json_string_value(v))) {
            errbuf_set(err, errlen, "checks[%zu].id must match [A-Za-z0-9._:-]{1,%d}", i,
                       LIM_CHECK_ID_MAX);
            return -1;
        }
        snprintf(cs->id, sizeof(cs->id), "%s", json_string_value(v));
    }
    if (ttl) {
        int64_t ms = 0;

        cs->kind = REG_CHECK_TTL;
        if (reg_take_duration(c, i, REGV1_C_TTL, LIM_TTL_MIN_MS, (int64_t)LIM_TTL_MAX * 1000, &ms,
                              err, errlen) != 0)
            return -1;
        cs->interval_ms = ms; /* the ttl, handed back through reg_spec_parse */
        if (json_object_get(c, REGV1_C_INTERVAL) || json_object_get(c, REGV1_C_TIMEOUT) ||
            json_object_get(c, REGV1_C_FAILURES) || json_object_get(c, REGV1_C_SUCCESSES)) {
            errbuf_set(err, errlen,
                       "checks[%zu] is a ttl check: interval, timeout and the thresholds "
                       "belong to http and tcp checks",
                       i);
            return -1;
        }
        return reg_take_duration(c, i, REGV1_C_DEREGISTER, 1000, (int64_t)30 * 86400 * 1000,
                                 &cs->deregister_after_ms, err, errlen) != 0 ||
                       reg_take_status(c, i, &cs->status, err, errlen) != 0
                   ? -1
                   : 0;
    }
    cs->kind = http ? REG_CHECK_HTTP : REG_CHECK_TCP;
    if (!json_is_string(target) || json_string_length(target) > LIM_CHECK_TARGET_MAX ||
        strlen(json_string_value(target)) != json_string_length(target) ||
        !(http ? reg_check_url_valid(json_string_value(target))
               : reg_check_addr_valid(json_string_value(target)))) {
        errbuf_set(err, errlen,
                   http ? "checks[%zu].http must be an http:// or https:// URL of at most %d "
                          "bytes"
                        : "checks[%zu].tcp must be HOST:PORT (a name, an IPv4 address or "
                          "[IPv6]) of at most %d bytes",
                   i, LIM_CHECK_TARGET_MAX);
        return -1;
    }
    snprintf(cs->target, sizeof(cs->target), "%s", json_string_value(target));
    cs->interval_ms = LIM_CHECK_INTERVAL_DEFAULT_MS;
    if (reg_take_duration(c, i, REGV1_C_INTERVAL, LIM_CHECK_INTERVAL_MIN_MS, (int64_t)86400 * 1000,
                          &cs->interval_ms, err, errlen) != 0)
        return -1;
    cs->timeout_ms = cs->interval_ms < LIM_CHECK_TIMEOUT_DEFAULT_MS ? cs->interval_ms
                                                                    : LIM_CHECK_TIMEOUT_DEFAULT_MS;
    if (reg_take_duration(c, i, REGV1_C_TIMEOUT, 1, (int64_t)86400 * 1000, &cs->timeout_ms, err,
                          errlen) != 0)
        return -1;
    if (cs->timeout_ms > cs->interval_ms) {
        errbuf_set(err, errlen,
                   "checks[%zu].timeout (%lld ms) must not be over its interval (%lld ms)", i,
                   (long long)cs->timeout_ms, (long long)cs->interval_ms);
        return -1;
    }
    if (reg_take_threshold(c, i, REGV1_C_FAILURES, &cs->policy.failures_before_critical, err,
                           errlen) != 0 ||
        reg_take_threshold(c, i, REGV1_C_SUCCESSES, &cs->policy.successes_before_passing, err,
                           errlen) != 0 ||
        reg_take_duration(c, i, REGV1_C_DEREGISTER, 1000, (int64_t)30 * 86400 * 1000,
                          &cs->deregister_after_ms, err, errlen) != 0)
        return -1;
    return reg_take_status(c, i, &cs->status, err, errlen);
}

/* The "check" or "checks" member into spec, and the TTL check's rule:
 * the instance has one when the body says "ttl" (above 0), or gives a ttl
 * check, or gives no checks at all (the default of every registration
 * before checks). 0, or -1 with err. */
static int reg_take_checks(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
{
    const json_t *one = json_object_get(body, REGV1_F_CHECK);
    const json_t *many = json_object_get(body, REGV1_F_CHECKS);
    const json_t *ttl = json_object_get(body, REGV1_F_TTL);
    const json_t *c = NULL;
    size_t i, n, j;
    int64_t ttl_ms = 0;

    if (one && many) {
        errbuf_set(err, errlen, "give either \"check\" or \"checks\", not both");
        return -1;
    }
    if (!one && !many) {
        if (ttl && json_number_value(ttl) == 0) {
            errbuf_set(err, errlen,
                       "field 'ttl' must be between %g and %d seconds (0, no ttl check, "
                       "only beside \"checks\")",
                       LIM_TTL_MIN_MS / 1000.0, LIM_TTL_MAX);
            return -1;
        }
        return 0;
    }
    if (many && !json_is_array(many)) {
        errbuf_set(err, errlen, "field 'checks' must be an array of check objects");
        return -1;
    }
    n = one ? 1 : json_array_size(many);
    if (n > LIM_CHECKS_MAX) {
        errbuf_set(err, errlen, "field 'checks' has %zu checks; at most %d are allowed", n,
                   LIM_CHECKS_MAX);
        return -1;
    }
    for (i = 0; i < n; i++) {
        c = one ? one : json_array_get(many, i);
        if (reg_take_check(c, i, &spec->checks[i], err, errlen) != 0)
            return -1;
        for (j = 0; j < i; j++) {
            if (spec->checks[i].id[0] && strcmp(spec->checks[i].id, spec->checks[j].id) == 0) {
                errbuf_set(err, errlen, "checks[%zu].id '%s' is given twice", i,
                           spec->checks[i].id);
                return -1;
            }
            if (spec->checks[i].kind == REG_CHECK_TTL && spec->checks[j].kind == REG_CHECK_TTL) {
                errbuf_set(err, errlen, "checks[%zu] is a second ttl check; one is allowed", i);
                return -1;
            }
        }
        if (spec->checks[i].kind == REG_CHECK_TTL) {
            ttl_ms = spec->checks[i].interval_ms;
            spec->checks[i].interval_ms = 0;
        }
        spec->check_count++;
    }
    if (ttl_ms > 0) {
        if (ttl && spec->ttl_ms != ttl_ms) {
            errbuf_set(err, errlen, "field 'ttl' (%lld ms) and the ttl check (%lld ms) disagree",
                       (long long)spec->ttl_ms, (long long)ttl_ms);
            return -1;
        }
        spec->ttl_ms = ttl_ms;
    } else if (!ttl) {
        spec->ttl_ms = 0;
    } else if (spec->ttl_ms > 0 && spec->check_count >= LIM_CHECKS_MAX) {
        errbuf_set(err, errlen, "%zu checks and the ttl one: at most %d are allowed",
                   spec->check_count, LIM_CHECKS_MAX);
        return -1;
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
        reg_take_ttl(body, spec, err, errlen) || reg_take_checks(body, spec, err, errlen))
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

int reg_check_parse(const json_t *c, struct reg_check_spec *cs, char *err, size_t errlen)
{
    static const char one[] = "checks[0]";

    memset(cs, 0, sizeof(*cs));
    if (reg_take_check(c, 0, cs, err, errlen) == 0)
        return 0;
    /* the rules name a check by its place among many; here it is one */
    if (errlen > sizeof(one) && strncmp(err, one, sizeof(one) - 1) == 0)
        memmove(err + 5, err + sizeof(one) - 1, strlen(err + sizeof(one) - 1) + 1);
    return -1;
}
