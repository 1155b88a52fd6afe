/* fuzz_consul.c: libFuzzer harness for the Consul bodies
 * (registry/api/consul_body.h), the path a PUT /v1/agent/service/register
 * body takes: the fuzz data read as the server reads a body (jansson,
 * duplicate keys refused, any value), translated by rconb_to_native and,
 * when that gives a native body, judged by reg_spec_parse as consul.c
 * does; the same value also goes alone through rconb_check_to_native as
 * one check. Besides crashes, leaks and UB it aborts when:
 * - a refusal has an empty err or a status outside {400, 501, 503};
 * - an accepted service is not an object whose "name" is the input's Name
 *   (found in any case) and whose "checks" is an array, or whose "id" is
 *   not "<name>-<uuid>" as rcon_native_id gives it (twice the same);
 * - an accepted check did not append exactly one object.
 * Second part: the fuzz data as a C string through rconb_go_duration,
 * against a reference Go duration parser written here in integer
 * nanoseconds; both must agree on accept or refuse (except within 1 ms of
 * the LIM_TTL_MAX hours ceiling, where the double of rconb_go_duration may
 * round either way) and, when both accept, on the milliseconds within 1.
 * No registry, no socket. */
#include "registry/api/consul_body.h"
#include "registry/api/consul_codec.h"
#include "registry/api/spec_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The node address consul.c passes for a service without Address. */
#define FZ_ADDR "127.0.0.1"
/* The longest fuzz data tried as a duration (longer inputs are cut). */
#define FZ_DURATION_MAX 512

/* Abort unless err/status are a proper refusal. */
static void refusal_or_abort(const char *err, size_t errlen, int status)
{
    if (err[0] == '\0' || strnlen(err, errlen) >= errlen ||
        (status != 400 && status != 501 && status != 503))
        abort();
}

/* Whether s is a UUID text: 36 bytes of hex, hyphens at 8, 13, 18, 23. */
static bool is_uuid(const char *s)
{
    size_t i;

    if (strlen(s) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || s[i] == '\0')
            return false;
    }
    return true;
}

/* Whether v is one of the members of o whose key is key in any case
 * (the same value: rconb_to_native copies a reference). */
static bool is_member_any_case(const json_t *o, const char *key, const json_t *v)
{
    const char *k;
    json_t *m;

    json_object_foreach ((json_t *)o, k, m) {
        if (strcasecmp(k, key) == 0 && json_equal(m, (json_t *)v))
            return true;
    }
    return false;
}

/* The service definition path: rconb_to_native, its contract, then
 * reg_spec_parse on what it gives. */
static void fuzz_service(const json_t *body)
{
    json_t *native = NULL, *name = NULL, *checks = NULL, *id = NULL, *cidv = NULL;
    struct reg_spec spec;
    char err[512], spec_err[512];
    char nid1[LIM_ID_MAX + 1], nid2[LIM_ID_MAX + 1];
    const char *cid;
    size_t n;
    int status = 0, r1, r2;

    err[0] = '\0';
    native = rconb_to_native(body, FZ_ADDR, err, sizeof(err), &status);
    if (!native) {
        refusal_or_abort(err, sizeof(err), status);
        return;
    }
    if (!json_is_object(body) || !json_is_object(native))
        abort();
    name = json_object_get(native, "name");
    checks = json_object_get(native, "checks");
    id = json_object_get(native, "id");
    if (!json_is_string(name) || !is_member_any_case(body, "Name", name) ||
        !json_is_array(checks) || !json_is_string(id))
        abort();
    /* the Consul id: ID in any case (the first, as Consul reads one), else
     * the Name */
    cidv = rconb_get(body, "ID");
    cid = json_is_string(cidv) ? json_string_value(cidv) : json_string_value(name);
    r1 = rcon_native_id(json_string_value(name), cid, nid1);
    r2 = rcon_native_id(json_string_value(name), cid, nid2);
    n = strlen(json_string_value(name));
    if (r1 != r2 || strcmp(nid1, nid2) != 0 || strcmp(nid1, json_string_value(id)) != 0 ||
        strncmp(nid1, json_string_value(name), n) != 0 || nid1[n] != '-' || !is_uuid(nid1 + n + 1))
        abort();
    /* a derived id keeps the Consul id in the metadata; a given one does
     * not need to */
    if (r1 == 1) {
        json_t *want = json_string(cid);
        json_t *got = json_object_get(json_object_get(native, "metadata"), RCON_META_ID);

        if (!want || !json_equal(want, got))
            abort();
        json_decref(want);
    }
    spec_err[0] = '\0';
    if (reg_spec_parse(native, &spec, spec_err, sizeof(spec_err)) != 0) {
        refusal_or_abort(spec_err, sizeof(spec_err), 400);
    } else {
        if (strcmp(spec.name, json_string_value(name)) != 0 || !spec.has_id ||
            strcmp(spec.id, nid1) != 0)
            abort();
        reg_spec_clear(&spec);
    }
    json_decref(native);
}

/* The check path: body as one Consul check of service "fuzz-svc", and the
 * native check it gives inside a minimal native body through
 * reg_spec_parse. */
static void fuzz_check(const json_t *body)
{
    json_t *checks = json_array(), *wrap = NULL;
    struct reg_spec spec;
    char err[512];
    int status = 0;

    if (!checks)
        abort();
    err[0] = '\0';
    if (rconb_check_to_native(body, 1, false, "fuzz-svc", checks, err, sizeof(err), &status) != 0) {
        refusal_or_abort(err, sizeof(err), status);
        if (json_array_size(checks) != 0)
            abort();
        json_decref(checks);
        return;
    }
    if (json_array_size(checks) != 1 || !json_is_object(json_array_get(checks, 0)))
        abort();
    wrap = json_pack("{s:s, s:s, s:i, s:o}", "name", "fuzz-svc", "host", FZ_ADDR, "port", 80,
                     "checks", checks); /* steals checks */
    if (!wrap)
        abort();
    if (reg_spec_parse(wrap, &spec, err, sizeof(err)) == 0)
        reg_spec_clear(&spec);
    json_decref(wrap);
}

/* --- the reference Go duration parser --------------------------------- */

#define NS_PER_MS ((__int128)1000000)

/* The ceiling: LIM_TTL_MAX hours, in nanoseconds. */
static __int128 ref_limit_ns(void) { return (__int128)LIM_TTL_MAX * 3600 * 1000000000; }

/* Parse s as one or more <number><unit> (number: digits, then optionally
 * '.' and digits, as Go reads them; unit: h m s ms us ns) into *ns, the
 * total in nanoseconds with fractions of a nanosecond dropped per term
 * (saturated a second past the ceiling: beyond it, the exact figure does
 * not matter). 0, or -1 when s is not one. */
static int ref_duration_ns(const char *s, __int128 *ns)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"ns", 1},         {"us", 1000},         {"ms", 1000000},
                 {"s", 1000000000}, {"m", 60000000000LL}, {"h", 3600000000000LL}};
    /* a second past the ceiling: far from the 1 ms band fuzz_duration
     * allows around it */
    const __int128 cap = ref_limit_ns() + 1000 * NS_PER_MS;
    __int128 total = 0;

    if (*s == '\0')
        return -1;
    while (*s) {
        __int128 whole = 0, frac = 0, scale = 1, term;
        size_t i, len = 0;

        if (*s < '0' || *s > '9')
            return -1;
        while (*s >= '0' && *s <= '9') {
            if (whole < cap)
                whole = whole * 10 + (*s - '0');
            s++;
        }
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                /* 18 digits are below a nanosecond of an hour */
                if (scale < (__int128)1000000000000000000LL) {
                    frac = frac * 10 + (*s - '0');
                    scale *= 10;
                }
                s++;
            }
        }
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            len = strlen(units[i].unit);
            /* the unit is the whole run of letters up to the next digit */
            if (strncmp(s, units[i].unit, len) == 0 &&
                (s[len] == '\0' || (s[len] >= '0' && s[len] <= '9')))
                break;
        }
        if (i == sizeof(units) / sizeof(units[0]))
            return -1;
        s += len;
        term = whole * units[i].ns + frac * units[i].ns / scale;
        total += term;
        if (total > cap)
            total = cap;
    }
    *ns = total;
    return 0;
}

/* rconb_go_duration against the reference on the fuzz data as a string. */
static void fuzz_duration(const uint8_t *data, size_t size)
{
    char s[FZ_DURATION_MAX + 1];
    const __int128 limit = ref_limit_ns();
    __int128 ns = 0, diff;
    int64_t ms = -7;
    int rc, ref;

    if (size > FZ_DURATION_MAX)
        size = FZ_DURATION_MAX;
    memcpy(s, data, size);
    s[size] = '\0';
    rc = rconb_go_duration(s, &ms);
    ref = ref_duration_ns(s, &ns);
    if (ref == 0 && ns > limit)
        ref = -1;
    diff = ns - limit;
    if (ref == 0 || (ref == -1 && ns > 0)) {
        /* within a millisecond of the ceiling either answer is right */
        if (diff <= NS_PER_MS && diff >= -NS_PER_MS)
            return;
    }
    if ((rc == 0) != (ref == 0))
        abort();
    if (rc == 0) {
        __int128 want = ns / NS_PER_MS;

        if (ms < 0 || ms - want > 1 || want - ms > 1)
            abort();
    }
}

/* The catalog registration path (PUT /v1/catalog/register):
 * rconb_catalog_to_native, its contract (a refusal is proper; an external
 * node's translation keeps the node in the metadata and has no TTL
 * check), then reg_spec_parse. */
static void fuzz_catalog(const json_t *body)
{
    json_t *native = NULL, *meta = NULL, *node = NULL;
    struct reg_spec spec;
    char err[512], spec_err[512];
    bool external = true;
    int status = 0;

    err[0] = '\0';
    native = rconb_catalog_to_native(body, "node-a", FZ_ADDR, &external, err, sizeof(err), &status);
    if (!native) {
        refusal_or_abort(err, sizeof(err), status);
        return;
    }
    if (!json_is_object(native) || !json_is_array(json_object_get(native, "checks")))
        abort();
    meta = json_object_get(native, "metadata");
    node = json_object_get(meta, RCON_META_NODE);
    if (external != (node != NULL) || (node && !json_equal(node, rconb_get(body, "Node"))) ||
        (external && !json_object_get(meta, RCON_META_ID)))
        abort();
    if (reg_spec_parse(native, &spec, spec_err, sizeof(spec_err)) == 0) {
        size_t i;

        for (i = 0; i < spec.check_count; i++)
            if (spec.checks[i].kind == REG_CHECK_TTL)
                abort(); /* nobody would renew it */
        reg_spec_clear(&spec);
    } else if (spec_err[0] == '\0') {
        abort();
    }
    json_decref(native);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = NULL;

    fuzz_duration(data, size);
    body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!body)
        return 0;
    fuzz_service(body);
    fuzz_check(body);
    fuzz_catalog(body);
    json_decref(body);
    return 0;
}
