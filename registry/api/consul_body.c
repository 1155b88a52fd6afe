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
    if (json_object_get(meta, RCON_META_ID) || json_object_get(meta, RCON_META_NODE) ||
        json_object_get(meta, RCON_META_NODE_ADDR)) {
        snprintf(err, errlen, "Meta keys '%s', '%s' and '%s' are the registry's own", RCON_META_ID,
                 RCON_META_NODE, RCON_META_NODE_ADDR);
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

/* The checks of a catalog registration (Check, or Checks) as the agent's
 * Checks into def: those with a Definition of an HTTP or TCP probe become
 * that probe; one without a Definition is only a status, kept when it is
 * passing (the service then has one check less) and refused when not (the
 * registry runs its checks itself). 0, or -1 with err and *status. */
static int rconb_catalog_checks(const json_t *in, const char *sid, json_t *def, char *err,
                                size_t errlen, int *status)
{
    static const char *const keys[] = {"HTTP", "TCP", "Interval", "Timeout",
                                       "DeregisterCriticalServiceAfter"};
    const json_t *one = rconb_get(in, "Check");
    const json_t *many = rconb_get(in, "Checks");
    json_t *out = json_array(), *ch = NULL;
    size_t i, j, n;

    *status = 400;
    if (!out)
        goto oom;
    if (many && !json_is_null(many) && !json_is_array(many)) {
        snprintf(err, errlen, "Checks must be an array of check objects");
        goto fail;
    }
    n = one && !json_is_null(one) ? 1 : many && !json_is_null(many) ? json_array_size(many) : 0;
    for (i = 0; i < n; i++) {
        const json_t *c = one && !json_is_null(one) ? one : json_array_get(many, i);
        const json_t *d = NULL, *st = NULL, *csid = NULL;
        json_t *v = NULL;

        if (!json_is_object(c)) {
            snprintf(err, errlen, "each check must be an object");
            goto fail;
        }
        csid = rconb_get(c, "ServiceID");
        if (csid && !(json_is_string(csid) && (json_string_length(csid) == 0 ||
                                               strcmp(json_string_value(csid), sid) == 0))) {
            snprintf(err, errlen,
                     "check %zu names another ServiceID: a node's checks and another "
                     "service's are not kept; register each check with its service",
                     i + 1);
            goto fail;
        }
        d = rconb_get(c, "Definition");
        st = rconb_get(c, "Status");
        if (!d || json_is_null(d) || !(rconb_get(d, "HTTP") || rconb_get(d, "TCP"))) {
            if (st && !(json_is_string(st) && strcmp(json_string_value(st), "passing") == 0)) {
                *status = 501;
                snprintf(err, errlen,
                         "a catalog check without an HTTP or TCP Definition is only a status; "
                         "the registry keeps none but passing (it runs its checks itself)");
                goto fail;
            }
            continue;
        }
        ch = json_object();
        if (!ch)
            goto oom;
        for (j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
            v = rconb_get(d, keys[j]);
            if (!v && j >= 2) {
                char dur[64];

                snprintf(dur, sizeof(dur), "%sDuration", keys[j]); /* Consul's older names */
                v = rconb_get(d, dur);
            }
            if (v && json_object_set(ch, keys[j], v) != 0)
                goto oom;
        }
        if ((rconb_get(c, "CheckID") &&
             json_object_set(ch, "CheckID", rconb_get(c, "CheckID")) != 0) ||
            (st && json_object_set(ch, "Status", (json_t *)st) != 0) ||
            json_array_append_new(out, ch) != 0) {
            ch = NULL;
            goto oom;
        }
        ch = NULL;
    }
    if (json_object_set_new(def, "Checks", out) != 0) {
        out = NULL;
        goto oom;
    }
    return 0;
oom:
    *status = 503;
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(ch);
    json_decref(out);
    return -1;
}

json_t *rconb_catalog_to_native(const json_t *in, const char *this_node, const char *this_addr,
                                bool *external, char *err, size_t errlen, int *status)
{
    static const char *const keys[] = {"ID", "Tags", "Port", "Meta"};
    const json_t *node = rconb_get(in, "Node");
    const json_t *addr = rconb_get(in, "Address");
    const json_t *svc = rconb_get(in, "Service");
    const json_t *sname = NULL, *saddr = NULL, *sid = NULL;
    json_t *def = NULL, *out = NULL, *meta = NULL;
    const char *node_addr = this_addr;
    char key[LIM_META_VALUE_MAX * 2 + 2];
    char nid[LIM_ID_MAX + 1];
    size_t i;

    *status = 400;
    *external = false;
    if (!json_is_object(in)) {
        snprintf(err, errlen, "request body must be a JSON object");
        return NULL;
    }
    if (!json_is_string(node) || json_string_length(node) == 0 ||
        json_string_length(node) > LIM_META_VALUE_MAX ||
        strlen(json_string_value(node)) != json_string_length(node) ||
        strchr(json_string_value(node), '/')) {
        snprintf(err, errlen, "Node must be a node name of 1 to %d bytes without '/' or NUL",
                 LIM_META_VALUE_MAX);
        return NULL;
    }
    *external = strcmp(json_string_value(node), this_node) != 0;
    if (*external) {
        if (!json_is_string(addr) || json_string_length(addr) == 0 ||
            json_string_length(addr) > LIM_HOST_MAX) {
            snprintf(err, errlen, "Address must be the node's address (1 to %d bytes)",
                     LIM_HOST_MAX);
            return NULL;
        }
        node_addr = json_string_value(addr);
    }
    if (!json_is_object(svc)) {
        *status = 501;
        snprintf(err, errlen,
                 "a node without a Service is not kept: the registry keeps services (give "
                 "Service)");
        return NULL;
    }
    sname = rconb_get(svc, "Service");
    saddr = rconb_get(svc, "Address");
    sid = rconb_get(svc, "ID");
    if (!json_is_string(sid) || json_string_length(sid) == 0)
        sid = sname; /* Consul's default */
    def = json_object();
    if (!def || (sname && json_object_set(def, "Name", (json_t *)sname) != 0))
        goto oom;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const json_t *v = rconb_get(svc, keys[i]);

        if (v && json_object_set(def, keys[i], (json_t *)v) != 0)
            goto oom;
    }
    if (json_object_set_new(def, "Address",
                            json_is_string(saddr) && json_string_length(saddr) > 0
                                ? json_incref((json_t *)saddr)
                                : json_string(node_addr)) != 0)
        goto oom;
    if (rconb_catalog_checks(in, json_is_string(sid) ? json_string_value(sid) : "", def, err,
                             errlen, status) != 0)
        goto fail;
    out = rconb_to_native(def, node_addr, err, errlen, status);
    if (!out || !*external)
        goto done;
    /* an external node's service: its id derived from node and ID, so the
     * same ID on two nodes is two instances, as in Consul */
    meta = json_object_get(out, REGV1_F_METADATA);
    snprintf(key, sizeof(key), "%s/%s", json_string_value(node), json_string_value(sid));
    (void)rcon_native_id(json_string_value(sname), key, nid);
    if (json_object_set_new(out, REGV1_F_ID, json_string(nid)) != 0 ||
        json_object_set_new(meta, RCON_META_ID, json_string(json_string_value(sid))) != 0 ||
        json_object_set(meta, RCON_META_NODE, (json_t *)node) != 0 ||
        json_object_set_new(meta, RCON_META_NODE_ADDR, json_string(node_addr)) != 0)
        goto oom;
    goto done;
oom:
    *status = 503;
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(out);
    out = NULL;
done:
    json_decref(def);
    return out;
}
