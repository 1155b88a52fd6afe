/* consul_body.c: Consul's request bodies translated to the registry's
 * native JSON (see consul_body.h). */
#include "consul_body.h"

#include "consul_codec.h"
#include "proto/registry_v1.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The member of o (an object) named key in any case, or NULL. */
json_t *rconb_get(const json_t *o, const char *key)
{
    const char *k;
    json_t *v;

    json_object_foreach ((json_t *)o, k, v) {
        if (strcasecmp(k, key) == 0)
            return v;
    }
    return NULL;
}

/* Copy member ckey of the Consul object from (any case) to member nkey of
 * the native object to, when it is there. 0, or -1 when out of memory. */
static int rconb_copy(const json_t *from, const char *ckey, json_t *to, const char *nkey)
{
    json_t *v = rconb_get(from, ckey);

    return v ? json_object_set(to, nkey, v) : 0;
}

/* Parse a Go duration ("1m30s", "1.5s", "250ms", "2h0m0s": numbers with
 * an optional fraction, each with a unit of h, m, s, ms, us or ns) into
 * whole milliseconds (*ms, a fraction of a millisecond dropped). 0, or -1
 * when s is not one or passes a day of hours times LIM_TTL_MAX. */
int rconb_go_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"us", 1e-3}, {"ns", 1e-6}, {"h", 3600e3}, {"m", 60e3}, {"s", 1e3}};
    double total = 0;
    size_t i;

    if (!*s)
        return -1;
    while (*s) {
        double x = 0, scale = 1;

        /* digits, then optionally '.' and digits, read by hand: strtod
         * would also take what Go refuses (an exponent "1e3", hex "0x1") */
        if (*s < '0' || *s > '9')
            return -1;
        while (*s >= '0' && *s <= '9')
            x = x * 10 + (*s++ - '0');
        if (*s == '.') {
            for (s++; *s >= '0' && *s <= '9'; s++) {
                scale /= 10;
                x += (*s - '0') * scale;
            }
        }
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strncmp(s, units[i].unit, strlen(units[i].unit)) == 0)
                break;
        if (i == sizeof(units) / sizeof(units[0]))
            return -1;
        total += x * units[i].ms;
        s += strlen(units[i].unit);
        if (total > (double)LIM_TTL_MAX * 3600e3)
            return -1;
    }
    *ms = (int64_t)total;
    return 0;
}

/* As rcon_copy, for a duration: a Go duration string becomes "<n>ms" for
 * the native rules (which read "10s", "500ms", not "1m30s"); anything else
 * goes as it is, for the native rules to refuse with their text. */
static int rconb_copy_duration(const json_t *from, const char *ckey, json_t *to, const char *nkey)
{
    json_t *v = rconb_get(from, ckey);
    char buf[32];
    int64_t ms = 0;

    if (!v)
        return 0;
    if (!json_is_string(v) || rconb_go_duration(json_string_value(v), &ms) != 0)
        return json_object_set(to, nkey, v);
    snprintf(buf, sizeof(buf), "%lldms", (long long)ms);
    return json_object_set_new(to, nkey, json_string(buf));
}

/* Whether the Consul check ch holds a member of a kind the registry cannot
 * run (a script, docker, gRPC, ...): its name, or NULL. */
static const char *rconb_check_unsupported(const json_t *ch)
{
    static const char *const kinds[] = {"Script",    "Args",      "DockerContainerID",
                                        "GRPC",      "H2PING",    "AliasService",
                                        "AliasNode", "OSService", "UDP"};
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (rconb_get(ch, kinds[i]))
            return kinds[i];
    return NULL;
}

/* Translate the Consul check ch (the n-th, from 1; of many when many) of
 * service cid into a native check object appended to checks. 0, or -1
 * with err and *status (400 or 501). */
int rconb_check_to_native(const json_t *ch, size_t n, bool many, const char *cid, json_t *checks,
                          char *err, size_t errlen, int *status)
{
    const char *bad = NULL;
    json_t *nc = NULL, *st = NULL, *id = NULL;
    char idbuf[RCONB_CHECK_ID_ROOM];
    int rc = -1;

    *status = 400;
    if (!json_is_object(ch)) {
        snprintf(err, errlen, "each check must be an object");
        return -1;
    }
    bad = rconb_check_unsupported(ch);
    if (bad) {
        *status = 501;
        snprintf(err, errlen,
                 "%s checks are not supported by this registry (HTTP, TCP and TTL "
                 "are)",
                 bad);
        return -1;
    }
    nc = json_object();
    if (!nc)
        goto oom;
    if (rconb_copy(ch, "HTTP", nc, REGV1_C_HTTP) || rconb_copy(ch, "TCP", nc, REGV1_C_TCP) ||
        rconb_copy_duration(ch, "TTL", nc, REGV1_C_TTL) ||
        rconb_copy_duration(ch, "DeregisterCriticalServiceAfter", nc, REGV1_C_DEREGISTER))
        goto oom;
    st = rconb_get(ch, "Status");
    if (json_object_get(nc, REGV1_C_TTL)) {
        /* Consul's TTL check starts critical unless Status says otherwise
         * (the native default is passing) */
        if (st ? json_object_set(nc, REGV1_C_STATUS, st) != 0
               : json_object_set_new(nc, REGV1_C_STATUS, json_string(REGV1_CRITICAL)) != 0)
            goto oom;
    } else if ((rconb_copy_duration(ch, "Interval", nc, REGV1_C_INTERVAL) ||
                rconb_copy_duration(ch, "Timeout", nc, REGV1_C_TIMEOUT) ||
                (st && json_object_set(nc, REGV1_C_STATUS, st) != 0))) {
        goto oom;
    }
    id = rconb_get(ch, "CheckID");
    if (!id)
        id = rconb_get(ch, "ID");
    if (id) {
        if (json_object_set(nc, REGV1_C_ID, id) != 0)
            goto oom;
    } else if (!json_object_get(nc, REGV1_C_TTL)) {
        /* Consul's names for a service's checks, when they fit ours */
        if (many)
            snprintf(idbuf, sizeof(idbuf), "service:%s:%zu", cid, n);
        else
            snprintf(idbuf, sizeof(idbuf), "service:%s", cid);
        if (strlen(idbuf) <= LIM_CHECK_ID_MAX &&
            strspn(idbuf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") ==
                strlen(idbuf) &&
            json_object_set_new(nc, REGV1_C_ID, json_string(idbuf)) != 0)
            goto oom;
    }
    if (json_array_append(checks, nc) != 0)
        goto oom;
    rc = 0;
    goto fail;
oom:
    *status = 503;
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(nc);
    return rc;
}

/* The native registration body of the Consul one in (borrowed), for the
 * node address addr. New reference, or NULL with err and *status. */
json_t *rconb_to_native(const json_t *in, const char *addr, char *err, size_t errlen, int *status)
{
    json_t *out = NULL, *checks = NULL, *meta = NULL, *v = NULL, *ch = NULL;
    const json_t *name = rconb_get(in, "Name");
    const json_t *cidv = rconb_get(in, "ID");
    const json_t *one = rconb_get(in, "Check");
    const json_t *many = rconb_get(in, "Checks");
    const json_t *addrv = rconb_get(in, "Address");
    const char *cid = NULL;
    char nid[LIM_ID_MAX + 1];
    size_t i;

    *status = 400;
    if (!json_is_object(in)) {
        snprintf(err, errlen, "request body must be a JSON object");
        return NULL;
    }
    if (!json_is_string(name) || !regv1_name_valid(json_string_value(name))) {
        snprintf(err, errlen, "Name must be a service name ([A-Za-z0-9._-]{1,%d})", LIM_NAME_MAX);
        return NULL;
    }
    if (cidv && (!json_is_string(cidv) || json_string_length(cidv) == 0 ||
                 json_string_length(cidv) > LIM_META_VALUE_MAX ||
                 strlen(json_string_value(cidv)) != json_string_length(cidv) ||
                 strchr(json_string_value(cidv), '/'))) {
        snprintf(err, errlen, "ID must be a string of 1 to %d bytes without '/' or NUL",
                 LIM_META_VALUE_MAX);
        return NULL;
    }
    cid = cidv ? json_string_value(cidv) : json_string_value(name);
    if ((one && !json_is_null(one) && many && !json_is_null(many)) ||
        (many && !json_is_null(many) && !json_is_array(many))) {
        snprintf(err, errlen, "give Check (an object) or Checks (an array), not both");
        return NULL;
    }
    out = json_object();
    checks = json_array();
    if (!out || !checks || json_object_set(out, REGV1_F_NAME, (json_t *)name) != 0)
        goto oom;
    if (addrv && !(json_is_string(addrv) && json_string_length(addrv) == 0)) {
        if (json_object_set(out, REGV1_F_HOST, (json_t *)addrv) != 0)
            goto oom;
    } else if (json_object_set_new(out, REGV1_F_HOST, json_string(addr)) != 0) {
        goto oom;
    }
    if (rconb_copy(in, "Port", out, REGV1_F_PORT) || rconb_copy(in, "Tags", out, REGV1_F_TAGS))
        goto oom;
    v = rconb_get(in, "Meta");
    if (v && !json_is_null(v) && !json_is_object(v)) {
        snprintf(err, errlen, "Meta must be an object of string values");
        goto fail;
    }
    meta = v && json_is_object(v) ? json_deep_copy(v) : json_object();
    if (!meta)
        goto oom;
    if (json_object_get(meta, RCON_META_ID)) {
        snprintf(err, errlen, "Meta key '%s' is the registry's own (the Consul service ID)",
                 RCON_META_ID);
        goto fail;
    }
    if (rcon_native_id(json_string_value(name), cid, nid) == 1 &&
        json_object_set_new(meta, RCON_META_ID, json_string(cid)) != 0)
        goto oom;
    if (json_object_set_new(out, REGV1_F_ID, json_string(nid)) != 0)
        goto oom;
    v = meta;
    meta = NULL; /* out's now, also when the set fails */
    if (json_object_set_new(out, REGV1_F_METADATA, v) != 0)
        goto oom;
    if (one && !json_is_null(one)) {
        if (rconb_check_to_native(one, 1, false, cid, checks, err, errlen, status) != 0)
            goto fail;
    } else if (many && !json_is_null(many)) {
        json_array_foreach (many, i, ch) {
            if (rconb_check_to_native(ch, i + 1, true, cid, checks, err, errlen, status) != 0)
                goto fail;
        }
    }
    /* Always "checks", even empty: a Consul service without checks has
     * none (the native default would be a TTL check). */
    if (json_object_set_new(out, REGV1_F_CHECKS, checks) != 0) {
        checks = NULL;
        goto oom;
    }
    return out;
oom:
    *status = 503;
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(meta);
    json_decref(checks);
    json_decref(out);
    return NULL;
}
