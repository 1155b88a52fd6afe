/* kv.c: svcctl's KV commands (see kv.h). get prints the value's bytes as
 * they are (?raw), put sends VALUE (or stdin for "-") as the body, del
 * reads the key first so a missing one is "not found" (exit 1), ls lists
 * the key names under a prefix (?keys), none for an empty prefix. */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "proto/registry_v1.h"

#define CKV_USAGE "usage: svcctl kv get KEY | put KEY VALUE|- | del KEY | ls [PREFIX]"

/* The path of key with query (NULL: none), into a new string the caller
 * frees; NULL when out of memory. */
static char *ckv_path(const char *key, const char *query)
{
    char *esc = sch_escape(key, true), *path = NULL;

    if (esc && asprintf(&path, REGV1_KV_FMT "%s%s", esc, query ? "?" : "", query ? query : "") < 0)
        path = NULL;
    free(esc);
    return path;
}

/* All of stdin (at most LIM_KV_VALUE_MAX bytes) into *out (caller frees). */
static int ckv_stdin(char **out, size_t *len, char *err, size_t errlen)
{
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);

    while (buf) {
        if (n == cap) {
            char *grown = cap > LIM_KV_VALUE_MAX ? NULL : realloc(buf, cap * 2);

            if (!grown) {
                snprintf(err, errlen, "kv put: the value from stdin is over %d bytes",
                         LIM_KV_VALUE_MAX);
                free(buf);
                return SC_USAGE;
            }
            buf = grown;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    if (ferror(stdin) || n > LIM_KV_VALUE_MAX) {
        snprintf(err, errlen,
                 n > LIM_KV_VALUE_MAX ? "kv put: the value is over %d bytes"
                                      : "kv put: cannot read stdin (limit %d bytes)",
                 LIM_KV_VALUE_MAX);
        free(buf);
        return SC_USAGE;
    }
    *out = buf;
    *len = n;
    return SC_OK;
}

static int ckv_get(const struct sc_ctx *c, const char *key, char *err, size_t errlen)
{
    struct sch_resp r = {0};
    char what[LIM_KV_KEY_MAX + 16], *path = ckv_path(key, c->json ? NULL : REGV1_Q_RAW);
    int rc;

    if (!path) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    snprintf(what, sizeof(what), "kv get %s", key);
    rc = sc_registry(c, what, "GET", path, NULL, 0, NULL, &r, err, errlen);
    if (rc == SC_OK) {
        if (c->json)
            sc_print_raw(r.body, r.len);
        else
            fwrite(r.body, 1, r.len, stdout); /* the bytes, as they are */
    }
    sch_resp_clear(&r);
    free(path);
    return rc;
}

static int ckv_put(const struct sc_ctx *c, const char *key, const char *value, char *err,
                   size_t errlen)
{
    struct sch_resp r = {0};
    char what[LIM_KV_KEY_MAX + 16], *path = ckv_path(key, NULL), *in = NULL;
    size_t len = strlen(value);
    int rc = SC_OK;

    if (!path) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    if (strcmp(value, "-") == 0) {
        rc = ckv_stdin(&in, &len, err, errlen);
        value = in;
    }
    snprintf(what, sizeof(what), "kv put %s", key);
    if (rc == SC_OK)
        rc = sc_registry(c, what, "PUT", path, value, len, "application/octet-stream", &r, err,
                         errlen);
    if (rc == SC_OK) {
        if (c->json)
            sc_print_raw(r.body, r.len);
        else if (strncmp(r.body, "true", 4) == 0)
            printf("set %s (%zu byte%s)\n", key, len, len == 1 ? "" : "s");
        else {
            snprintf(err, errlen, "%s: the registry answered %.20s", what, r.body);
            rc = SC_FAIL;
        }
    }
    sch_resp_clear(&r);
    free(in);
    free(path);
    return rc;
}

static int ckv_del(const struct sc_ctx *c, const char *key, char *err, size_t errlen)
{
    struct sch_resp r = {0};
    char what[LIM_KV_KEY_MAX + 16], *path = ckv_path(key, NULL);
    int rc;

    if (!path) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    snprintf(what, sizeof(what), "kv del %s", key);
    /* a DELETE is true whether or not the key was there: ask first */
    rc = sc_registry(c, what, "GET", path, NULL, 0, NULL, &r, err, errlen);
    sch_resp_clear(&r);
    if (rc == SC_OK)
        rc = sc_registry(c, what, "DELETE", path, NULL, 0, NULL, &r, err, errlen);
    if (rc == SC_OK) {
        if (c->json)
            sc_print_raw(r.body, r.len);
        else
            printf("deleted %s\n", key);
    }
    sch_resp_clear(&r);
    free(path);
    return rc;
}

static int ckv_ls(const struct sc_ctx *c, const char *prefix, char *err, size_t errlen)
{
    struct sch_resp r = {0};
    char what[LIM_KV_KEY_MAX + 16], *path = ckv_path(prefix, REGV1_Q_KEYS);
    json_t *keys = NULL, *k;
    size_t i;
    int rc;

    if (!path) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    snprintf(what, sizeof(what), "kv ls %s", prefix);
    rc = sc_registry(c, what, "GET", path, NULL, 0, NULL, &r, err, errlen);
    if (rc == SC_FAIL && r.status == 404) { /* no key under it: an empty list */
        rc = SC_OK;
        if (c->json)
            puts("[]");
        goto cleanup;
    }
    if (rc != SC_OK)
        goto cleanup;
    keys = json_loadb(r.body, r.len, 0, NULL);
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "%s: the registry's answer is not a list", what);
        rc = SC_UNREACHABLE;
        goto cleanup;
    }
    if (c->json)
        sc_print_raw(r.body, r.len);
    else
        json_array_foreach (keys, i, k)
            if (json_is_string(k))
                printf("%s\n", json_string_value(k));
cleanup:
    json_decref(keys);
    sch_resp_clear(&r);
    free(path);
    return rc;
}

int ckv_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    const char *sub = argc > 0 ? args[0] : "";

    if (strcmp(sub, "get") == 0 && argc == 2)
        return ckv_get(c, args[1], err, errlen);
    if (strcmp(sub, "put") == 0 && argc == 3)
        return ckv_put(c, args[1], args[2], err, errlen);
    if (strcmp(sub, "del") == 0 && argc == 2)
        return ckv_del(c, args[1], err, errlen);
    if (strcmp(sub, "ls") == 0 && argc <= 2)
        return ckv_ls(c, argc == 2 ? args[1] : "", err, errlen);
    snprintf(err, errlen, "%s", CKV_USAGE);
    return SC_USAGE;
}
