/* replicas.c: svcctl replicas (see replicas.h): ID, URL, CREATE INDEX,
 * ROLE (leader or follower) and a '*' on the replica that answered; a
 * registry on a store that is not shared shows itself alone, with why. */
#include "replicas.h"

#include "proto/registry_v1.h"
#include "table.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static int crep_oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return SC_FAIL;
}

int crep_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    static const char *const head[] = {"ID", "URL", "CREATE INDEX", "ROLE", "ANSWERED"};
    struct sch_resp raw = {0};
    json_t *doc = NULL, *r = NULL;
    const json_t *list = NULL;
    struct tbl *t = NULL;
    const char *reason = NULL;
    char *text = NULL;
    size_t i;
    int rc;

    (void)args;
    if (argc != 0) {
        snprintf(err, errlen, "usage: svcctl replicas");
        return SC_USAGE;
    }
    rc = sc_registry_json(c, "replicas", "GET", REGV1_REPLICAS, NULL, &doc, &raw, err, errlen);
    if (rc != SC_OK)
        goto cleanup;
    if (c->json) {
        sc_print_raw(raw.body, raw.len);
        goto cleanup;
    }
    list = json_object_get(doc, "replicas");
    t = tbl_new(5, head);
    if (!t) {
        rc = crep_oom(err, errlen);
        goto cleanup;
    }
    json_array_foreach (list, i, r) {
        char idx[24];
        const char *row[5];

        snprintf(idx, sizeof(idx), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(r, "create_index")));
        row[0] = json_string_value(json_object_get(r, "id"));
        row[1] = json_string_value(json_object_get(r, "url"));
        row[2] = idx;
        row[3] = json_is_true(json_object_get(r, "leader")) ? "leader" : "follower";
        row[4] = json_is_true(json_object_get(r, "self")) ? "*" : "";
        if (tbl_add(t, row) != 0) {
            rc = crep_oom(err, errlen);
            goto cleanup;
        }
    }
    text = tbl_render(t);
    if (!text) {
        rc = crep_oom(err, errlen);
        goto cleanup;
    }
    fputs(text, stdout);
    reason = json_string_value(json_object_get(doc, "reason"));
    if (reason && reason[0])
        printf("(one replica: %s)\n", reason);
    else if (tbl_rows(t) == 0)
        printf("(no live replica: the leader is not elected yet)\n");
cleanup:
    free(text);
    tbl_free(t);
    json_decref(doc);
    sch_resp_clear(&raw);
    return rc;
}
