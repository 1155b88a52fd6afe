/* stats.c: svcctl stats (see stats.h). A facade that does not answer its
 * /stats gets a row saying so and makes the exit code SC_FAIL (the others
 * are still shown); no facade registered is SC_FAIL too. --json prints
 * {"facades": [{id, address, stats | error}]}, stats each facade's answer
 * as it is. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/registry_v1.h"
#include "table.h"

/* GET the /stats of the facade at addr; *doc its parsed answer (caller
 * decrefs), or NULL with why filled. */
static void cst_fetch(const struct sc_ctx *c, const char *addr, json_t **doc, char *why, size_t len)
{
    struct sch_resp r = {0};
    char url[512];

    *doc = NULL;
    snprintf(url, sizeof(url), "http://%s" CST_STATS_PATH, addr);
    if (sch_call(&c->peer, "GET", url, NULL, 0, NULL, NULL, &r, why, len) != 0)
        return;
    if (r.status != 200)
        snprintf(why, len, "HTTP %ld", r.status);
    else if (!(*doc = json_loadb(r.body, r.len, 0, NULL)) ||
             !json_is_array(json_object_get(*doc, "upstreams"))) {
        snprintf(why, len, "the answer is not a stats document");
        json_decref(*doc);
        *doc = NULL;
    }
    sch_resp_clear(&r);
}

/* The rows of one facade's upstreams (or of its failure) into t. */
static int cst_rows(struct tbl *t, const char *addr, const json_t *stats, const char *why)
{
    const json_t *u;
    size_t i;

    if (!stats) {
        const char *row[] = {addr, why, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        return tbl_add(t, row);
    }
    json_array_foreach (json_object_get(stats, "upstreams"), i, u) {
        char num[5][32];

        snprintf(num[0], sizeof(num[0]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(u, "total_requests")));
        snprintf(num[1], sizeof(num[1]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(u, "successful_requests")));
        snprintf(num[2], sizeof(num[2]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(u, "failure_requests")));
        snprintf(num[3], sizeof(num[3]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(u, "retries")));
        snprintf(num[4], sizeof(num[4]), "%.2f",
                 json_number_value(json_object_get(u, "mean_latency_ms")));
        const char *row[] = {addr,
                             json_string_value(json_object_get(u, "service")),
                             json_string_value(json_object_get(u, "instance")),
                             json_string_value(json_object_get(u, "breaker")),
                             num[0],
                             num[1],
                             num[2],
                             num[3],
                             num[4]};
        if (tbl_add(t, row) != 0)
            return -1;
    }
    return 0;
}

int cst_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    static const char *const head[] = {"FACADE",  "UPSTREAM", "INSTANCE", "BREAKER", "TOTAL",
                                       "SUCCESS", "FAILURE",  "RETRIES",  "MEAN MS"};
    json_t *doc = NULL, *out = NULL, *inst;
    const json_t *list;
    struct tbl *t = NULL;
    size_t i, failed = 0;
    int rc;

    (void)args;
    if (argc != 0) {
        snprintf(err, errlen, "usage: svcctl stats");
        return SC_USAGE;
    }
    rc = sc_registry_json(c, "stats", "GET", REGV1_SERVICES "?" REGV1_Q_NAME "=" CST_FACADE_NAME,
                          NULL, &doc, NULL, err, errlen);
    if (rc != SC_OK)
        return rc;
    list = json_object_get(doc, REGV1_F_SERVICES);
    if (json_array_size(list) == 0) {
        snprintf(err, errlen, "stats: no %s instance is registered", CST_FACADE_NAME);
        rc = SC_FAIL;
        goto cleanup;
    }
    t = tbl_new(9, head);
    out = json_array();
    if (!t || !out)
        goto oom;
    json_array_foreach (list, i, inst) {
        const char *host = json_string_value(json_object_get(inst, REGV1_F_HOST));
        json_int_t port = json_integer_value(json_object_get(inst, REGV1_F_PORT));
        char addr[300], why[512] = "";
        json_t *stats = NULL;

        snprintf(addr, sizeof(addr),
                 host && strchr(host, ':') ? "[%s]:%" JSON_INTEGER_FORMAT
                                           : "%s:%" JSON_INTEGER_FORMAT,
                 host ? host : "?", port);
        cst_fetch(c, addr, &stats, why, sizeof(why));
        if (!stats)
            failed++;
        if (cst_rows(t, addr, stats, why) != 0 ||
            json_array_append_new(out, json_pack("{s:O*, s:s, s:o*, s:s*}", REGV1_F_ID,
                                                 json_object_get(inst, REGV1_F_ID), "address", addr,
                                                 "stats", stats, "error", stats ? NULL : why)) != 0)
            goto oom; /* stats is stolen by json_pack's "o" either way */
    }
    if (c->json) {
        json_t *top = json_pack("{s:O}", "facades", out);
        char *text = top ? json_dumps(top, JSON_COMPACT) : NULL;

        json_decref(top);
        if (!text)
            goto oom;
        puts(text);
        free(text);
    } else {
        char *text = tbl_render(t);

        if (!text)
            goto oom;
        fputs(text, stdout);
        free(text);
    }
    if (failed) {
        snprintf(err, errlen, "stats: %zu of %zu facades did not answer %s", failed,
                 json_array_size(list), CST_STATS_PATH);
        rc = SC_FAIL;
    }
    goto cleanup;
oom:
    snprintf(err, errlen, "out of memory");
    rc = SC_FAIL;
cleanup:
    json_decref(out);
    tbl_free(t);
    json_decref(doc);
    return rc;
}
