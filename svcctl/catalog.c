/* catalog.c: svcctl's instance commands over the registry's native API
 * (see catalog.h): the reads render tables, the writes say what they did;
 * with --json each prints the registry's answer as it is. */
#include "catalog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/registry_v1.h"
#include "table.h"

#define CCAT_CELL_MAX 1024 /* bytes of one built cell (address, summary, tags) */

/* "host:port", "[v6]:port" into buf. */
static const char *ccat_address(const json_t *inst, char *buf, size_t len)
{
    const char *host = json_string_value(json_object_get(inst, REGV1_F_HOST));
    json_int_t port = json_integer_value(json_object_get(inst, REGV1_F_PORT));

    if (!host)
        return "-";
    snprintf(buf, len,
             strchr(host, ':') ? "[%s]:%" JSON_INTEGER_FORMAT : "%s:%" JSON_INTEGER_FORMAT, host,
             port);
    return buf;
}

/* Unix seconds (with a fraction) as UTC text into buf. */
static const char *ccat_time(const json_t *v, char *buf, size_t len)
{
    time_t t;
    struct tm tm;

    if (!json_is_number(v))
        return "-";
    t = (time_t)json_number_value(v);
    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return "-";
    return buf;
}

/* The checks of inst counted by status: "2 passing, 1 critical" ("none"). */
static const char *ccat_checks(const json_t *inst, char *buf, size_t len)
{
    static const char *const status[] = {REGV1_PASSING, REGV1_WARNING, REGV1_CRITICAL};
    const json_t *checks = json_object_get(inst, REGV1_F_CHECKS);
    size_t n[3] = {0}, i, j, used = 0;
    const json_t *ck;

    json_array_foreach (checks, i, ck) {
        const char *s = json_string_value(json_object_get(ck, REGV1_C_STATUS));

        for (j = 0; j < 3; j++)
            if (s && strcmp(s, status[j]) == 0)
                n[j]++;
    }
    buf[0] = '\0';
    for (j = 0; j < 3; j++)
        if (n[j] && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%zu %s", used ? ", " : "", n[j],
                                     status[j]);
    return buf[0] ? buf : "none";
}

/* The table (borrowed) rendered on stdout; -1 when out of memory. */
static int ccat_print(const struct tbl *t)
{
    char *text = tbl_render(t);

    if (!text)
        return -1;
    fputs(text, stdout);
    free(text);
    return 0;
}

/* args must be exactly n operands, else SC_USAGE with usage in err. */
static int ccat_operands(int argc, int n, const char *usage, char *err, size_t errlen)
{
    if (argc == n)
        return SC_OK;
    snprintf(err, errlen, "usage: svcctl %s", usage);
    return SC_USAGE;
}

static int ccat_oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return SC_FAIL;
}

static int ccat_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* name -> {passing, warning, critical, tags: {tag: true}} of list. */
static json_t *ccat_group(const json_t *list)
{
    json_t *by = json_object();
    const json_t *inst, *tag;
    size_t i, k;

    json_array_foreach (list, i, inst) {
        const char *name = json_string_value(json_object_get(inst, REGV1_F_NAME));
        json_t *g;

        if (!name || !by)
            continue;
        g = json_object_get(by, name);
        if (!g) {
            g = json_pack("{s:i, s:i, s:i, s:{}}", REGV1_PASSING, 0, REGV1_WARNING, 0,
                          REGV1_CRITICAL, 0, REGV1_F_TAGS);
            if (!g || json_object_set_new(by, name, g) != 0) {
                json_decref(by);
                return NULL;
            }
        }
        json_t *count = json_object_get(g, sc_health(inst));
        if (count)
            json_integer_set(count, json_integer_value(count) + 1);
        json_array_foreach (json_object_get(inst, REGV1_F_TAGS), k, tag)
            if (json_is_string(tag))
                json_object_set(json_object_get(g, REGV1_F_TAGS), json_string_value(tag),
                                json_true());
    }
    return by;
}

/* The tags of a group, sorted, comma-separated, into buf ("-": none). */
static const char *ccat_tags(const json_t *tags, char *buf, size_t len)
{
    size_t n = json_object_size(tags), i = 0, used = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char *k;
    json_t *v;

    if (!keys)
        return "-";
    json_object_foreach ((json_t *)tags, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof(*keys), ccat_cmp);
    buf[0] = '\0';
    for (i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", keys[i]);
    free(keys);
    return buf[0] ? buf : "-";
}

int ccat_services(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    static const char *const head[] = {"SERVICE", "INSTANCES", "PASSING",
                                       "WARNING", "CRITICAL",  "TAGS"};
    struct sch_resp raw = {0};
    json_t *doc = NULL, *by = NULL;
    struct tbl *t = NULL;
    const char **names = NULL;
    int rc = ccat_operands(argc, 0, "services", err, errlen);
    size_t n = 0, i;

    (void)args;
    if (rc != SC_OK)
        return rc;
    rc = sc_registry_json(c, "services", "GET", REGV1_SERVICES, NULL, &doc, &raw, err, errlen);
    if (rc != SC_OK)
        goto cleanup;
    if (c->json) {
        sc_print_raw(raw.body, raw.len);
        goto cleanup;
    }
    by = ccat_group(json_object_get(doc, REGV1_F_SERVICES));
    t = tbl_new(6, head);
    names = calloc(json_object_size(by) + 1, sizeof(*names));
    if (!by || !t || !names) {
        rc = ccat_oom(err, errlen);
        goto cleanup;
    }
    const char *k;
    json_t *g;
    json_object_foreach (by, k, g)
        names[n++] = k;
    qsort(names, n, sizeof(*names), ccat_cmp);
    for (i = 0; i < n; i++) {
        char cnt[4][24], tags[CCAT_CELL_MAX];
        json_int_t p, w, cr;

        g = json_object_get(by, names[i]);
        p = json_integer_value(json_object_get(g, REGV1_PASSING));
        w = json_integer_value(json_object_get(g, REGV1_WARNING));
        cr = json_integer_value(json_object_get(g, REGV1_CRITICAL));
        snprintf(cnt[0], sizeof(cnt[0]), "%" JSON_INTEGER_FORMAT, p + w + cr);
        snprintf(cnt[1], sizeof(cnt[1]), "%" JSON_INTEGER_FORMAT, p);
        snprintf(cnt[2], sizeof(cnt[2]), "%" JSON_INTEGER_FORMAT, w);
        snprintf(cnt[3], sizeof(cnt[3]), "%" JSON_INTEGER_FORMAT, cr);
        const char *row[] = {
            names[i], cnt[0], cnt[1],
            cnt[2],   cnt[3], ccat_tags(json_object_get(g, REGV1_F_TAGS), tags, sizeof(tags))};
        if (tbl_add(t, row) != 0) {
            rc = ccat_oom(err, errlen);
            goto cleanup;
        }
    }
    if (ccat_print(t) != 0)
        rc = ccat_oom(err, errlen);
cleanup:
    free(names);
    tbl_free(t);
    json_decref(by);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}

/* A row of instances, and of health: id, address, health, checks,
 * maintenance reason ("-": none). */
static int ccat_instance_row(struct tbl *t, const json_t *inst)
{
    char addr[CCAT_CELL_MAX], checks[CCAT_CELL_MAX];
    const json_t *m = json_object_get(inst, REGV1_F_MAINT);
    const char *row[] = {
        json_string_value(json_object_get(inst, REGV1_F_ID)),
        ccat_address(inst, addr, sizeof(addr)),
        sc_health(inst),
        ccat_checks(inst, checks, sizeof(checks)),
        m ? json_string_value(json_object_get(m, "reason")) : NULL,
    };

    if (m && !row[4])
        row[4] = "on";
    return tbl_add(t, row);
}

static const char *const ccat_inst_head[] = {"ID", "ADDRESS", "HEALTH", "CHECKS", "MAINTENANCE"};

int ccat_instances(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    struct sch_resp raw = {0};
    json_t *doc = NULL, *inst;
    const json_t *list;
    struct tbl *t = NULL;
    char path[512], what[256], *name = NULL;
    int rc = ccat_operands(argc, 1, "instances NAME", err, errlen);
    size_t i;

    if (rc != SC_OK)
        return rc;
    name = sch_escape(args[0], false);
    if (!name)
        return ccat_oom(err, errlen);
    snprintf(what, sizeof(what), "instances %.200s", args[0]);
    snprintf(path, sizeof(path), REGV1_SERVICES "?" REGV1_Q_NAME "=%.400s", name);
    rc = sc_registry_json(c, what, "GET", path, NULL, &doc, &raw, err, errlen);
    if (rc != SC_OK)
        goto cleanup;
    list = json_object_get(doc, REGV1_F_SERVICES);
    if (json_array_size(list) == 0) {
        snprintf(err, errlen, "%s: no instance of service '%.200s' is registered", what, args[0]);
        rc = SC_FAIL;
        goto cleanup;
    }
    if (c->json) {
        sc_print_raw(raw.body, raw.len);
        goto cleanup;
    }
    t = tbl_new(5, ccat_inst_head);
    if (!t) {
        rc = ccat_oom(err, errlen);
        goto cleanup;
    }
    json_array_foreach (list, i, inst)
        if (ccat_instance_row(t, inst) != 0) {
            rc = ccat_oom(err, errlen);
            goto cleanup;
        }
    if (ccat_print(t) != 0)
        rc = ccat_oom(err, errlen);
cleanup:
    tbl_free(t);
    free(name);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}

/* One "label: value" line of show, the labels aligned. */
static void ccat_field(const char *label, const char *value)
{
    printf("%-15s %s\n", label, value && *value ? value : "-");
}

/* The instance inst (borrowed) as show prints it; -1 when out of memory. */
static int ccat_show_instance(const json_t *inst)
{
    static const char *const head[] = {"CHECK", "TYPE", "STATUS", "LAST CHANGE", "OUTPUT"};
    char buf[CCAT_CELL_MAX], when[64];
    const json_t *m = json_object_get(inst, REGV1_F_MAINT), *v, *ck;
    struct tbl *t = NULL;
    const char *k;
    size_t i, used = 0;
    int rc = 0;

    ccat_field("id:", json_string_value(json_object_get(inst, REGV1_F_ID)));
    ccat_field("name:", json_string_value(json_object_get(inst, REGV1_F_NAME)));
    ccat_field("type:", json_string_value(json_object_get(inst, REGV1_F_TYPE)));
    ccat_field("address:", ccat_address(inst, buf, sizeof(buf)));
    ccat_field("health:", sc_health(inst));
    buf[0] = '\0';
    json_array_foreach (json_object_get(inst, REGV1_F_TAGS), i, v)
        if (used < sizeof(buf))
            used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? "," : "",
                                     json_string_value(v) ? json_string_value(v) : "");
    ccat_field("tags:", buf);
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT " s",
             json_integer_value(json_object_get(inst, REGV1_F_TTL)));
    ccat_field("ttl:", json_object_get(inst, REGV1_F_TTL) ? buf : NULL);
    ccat_field("last heartbeat:",
               ccat_time(json_object_get(inst, REGV1_F_HEARTBEAT), when, sizeof(when)));
    if (m) {
        const char *reason = json_string_value(json_object_get(m, "reason"));

        snprintf(buf, sizeof(buf), "on since %s: %s",
                 ccat_time(json_object_get(m, "since"), when, sizeof(when)), reason ? reason : "");
        ccat_field("maintenance:", buf);
    } else {
        ccat_field("maintenance:", "off");
    }
    if (json_object_size(json_object_get(inst, REGV1_F_METADATA)) == 0)
        ccat_field("metadata:", NULL);
    else
        printf("metadata:\n");
    json_object_foreach (json_object_get(inst, REGV1_F_METADATA), k, v)
        printf("  %s = %s\n", k, json_string_value(v) ? json_string_value(v) : "");
    if (json_array_size(json_object_get(inst, REGV1_F_CHECKS)) == 0) {
        ccat_field("checks:", "none");
        return 0;
    }
    printf("checks:\n");
    t = tbl_new(5, head);
    if (!t)
        return -1;
    json_array_foreach (json_object_get(inst, REGV1_F_CHECKS), i, ck) {
        const char *row[] = {
            json_string_value(json_object_get(ck, REGV1_C_ID)),
            json_string_value(json_object_get(ck, REGV1_C_TYPE)),
            json_string_value(json_object_get(ck, REGV1_C_STATUS)),
            ccat_time(json_object_get(ck, REGV1_C_LAST_CHANGE), when, sizeof(when)),
            json_string_value(json_object_get(ck, REGV1_C_OUTPUT)),
        };
        if (tbl_add(t, row) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        char *text = tbl_render(t), *line, *save = NULL;

        if (!text) {
            rc = -1;
        } else {
            for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                printf("  %s\n", line);
            free(text);
        }
    }
    tbl_free(t);
    return rc;
}

int ccat_show(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    struct sch_resp raw = {0};
    json_t *doc = NULL;
    char path[512], what[256], *id = NULL;
    int rc = ccat_operands(argc, 1, "show ID", err, errlen);

    if (rc != SC_OK)
        return rc;
    id = sch_escape(args[0], false);
    if (!id)
        return ccat_oom(err, errlen);
    snprintf(what, sizeof(what), "show %.200s", args[0]);
    snprintf(path, sizeof(path), REGV1_SERVICE_FMT, id);
    rc = sc_registry_json(c, what, "GET", path, NULL, &doc, &raw, err, errlen);
    if (rc == SC_OK) {
        if (c->json)
            sc_print_raw(raw.body, raw.len);
        else if (ccat_show_instance(json_object_get(doc, REGV1_F_SERVICE)) != 0)
            rc = ccat_oom(err, errlen);
    }
    free(id);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}

int ccat_health(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    json_t *doc = NULL, *bad = NULL, *inst;
    const json_t *list;
    struct tbl *t = NULL;
    int rc = ccat_operands(argc, 0, "health", err, errlen);
    size_t i, n;

    (void)args;
    if (rc != SC_OK)
        return rc;
    rc = sc_registry_json(c, "health", "GET", REGV1_SERVICES, NULL, &doc, NULL, err, errlen);
    if (rc != SC_OK)
        return rc;
    list = json_object_get(doc, REGV1_F_SERVICES);
    n = json_array_size(list);
    bad = json_array();
    t = tbl_new(5, ccat_inst_head);
    if (!bad || !t) {
        rc = ccat_oom(err, errlen);
        goto cleanup;
    }
    json_array_foreach (list, i, inst)
        if (strcmp(sc_health(inst), REGV1_PASSING) != 0 &&
            (json_array_append(bad, inst) != 0 || ccat_instance_row(t, inst) != 0)) {
            rc = ccat_oom(err, errlen);
            goto cleanup;
        }
    if (c->json) {
        json_t *out = json_pack("{s:b, s:I, s:O}", "passing", json_array_size(bad) == 0,
                                "instances", (json_int_t)n, "not_passing", bad);
        char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;

        if (text)
            puts(text);
        free(text);
        json_decref(out);
    } else if (json_array_size(bad) == 0) {
        printf("all %zu instances passing\n", n);
    } else if (ccat_print(t) != 0) {
        rc = ccat_oom(err, errlen);
        goto cleanup;
    }
    if (json_array_size(bad) > 0) {
        snprintf(err, errlen, "health: %zu of %zu instances are not passing", json_array_size(bad),
                 n);
        rc = SC_FAIL;
    }
cleanup:
    tbl_free(t);
    json_decref(bad);
    json_decref(doc);
    return rc;
}

int ccat_maint(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    struct sch_resp raw = {0};
    json_t *doc = NULL, *body = NULL;
    char path[512], what[256], *id = NULL, *text = NULL;
    int rc = ccat_operands(argc, 2, "maint ID on|off [--reason R]", err, errlen);
    bool on;

    if (rc != SC_OK)
        return rc;
    if (strcmp(args[1], "on") != 0 && strcmp(args[1], "off") != 0) {
        snprintf(err, errlen, "maint: the second operand must be on or off, not '%.100s'", args[1]);
        return SC_USAGE;
    }
    on = strcmp(args[1], "on") == 0;
    if (!on && c->reason) {
        snprintf(err, errlen, "maint: --reason goes with on only");
        return SC_USAGE;
    }
    id = sch_escape(args[0], false);
    body = on && c->reason ? json_pack("{s:b, s:s}", "enable", 1, "reason", c->reason)
                           : json_pack("{s:b}", "enable", on);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!id || !text) {
        rc = ccat_oom(err, errlen);
        goto cleanup;
    }
    snprintf(what, sizeof(what), "maint %.200s", args[0]);
    snprintf(path, sizeof(path), REGV1_MAINT_FMT, id);
    rc = sc_registry_json(c, what, "PUT", path, text, &doc, &raw, err, errlen);
    if (rc != SC_OK)
        goto cleanup;
    if (c->json)
        sc_print_raw(raw.body, raw.len);
    else
        printf("%s: maintenance %s, health %s\n", args[0], on ? "on" : "off",
               sc_health(json_object_get(doc, REGV1_F_SERVICE)));
cleanup:
    free(text);
    free(id);
    json_decref(body);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}

int ccat_deregister(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    struct sch_resp raw = {0};
    json_t *doc = NULL;
    char path[512], what[256], *id = NULL;
    int rc = ccat_operands(argc, 1, "deregister ID", err, errlen);

    if (rc != SC_OK)
        return rc;
    id = sch_escape(args[0], false);
    if (!id)
        return ccat_oom(err, errlen);
    snprintf(what, sizeof(what), "deregister %.200s", args[0]);
    snprintf(path, sizeof(path), REGV1_SERVICE_FMT, id);
    rc = sc_registry_json(c, what, "DELETE", path, NULL, &doc, &raw, err, errlen);
    if (rc == SC_OK) {
        if (c->json)
            sc_print_raw(raw.body, raw.len);
        else
            printf("deregistered %s\n", args[0]);
    }
    free(id);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}
