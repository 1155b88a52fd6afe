/* fuzz_request.c: libFuzzer harness for what a request's URI goes through
 * before a handler runs, as the server does it: evhttp's URI parse (with
 * the flags evhttp 2.1 uses for a request line), the route table's match
 * and "{name}" capture with percent-decoding (router.c; also the rest of a
 * path, "/v1/kv/{key*}"), the query split
 * and form decoding (uri.c), and the scrubbed, capped echo of the path in
 * an error body. The first byte picks the method, the rest is the URI.
 * Besides crashes and leaks it checks the contracts: a found route's
 * values hold no NUL byte and are what hr_param gives, a split query has
 * at most its maximum of pairs, and every echo is valid UTF-8 within
 * LIM_ERROR_ECHO_MAX + 3 bytes that jansson takes as a string. */
#include "codec/utf8.h"
#include "core/limits.h"
#include "http/router.h"
#include "http/uri.h"

#include <event2/http.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QMAX 16 /* as HS_QUERY_MAX in server.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The routes of the four services, and one with two captures. */
static const char *const patterns[] = {
    "/health",      "/metrics",      "/v1/services", "/v1/services/{id}", "/v1/services/{id}/renew",
    "/v1/discover", "/facade",       "/stats",       "/logging",          "/messages",
    "/a/{x}/b/{y}", "/v1/kv/{key*}",
};

static struct hr_table *table(void)
{
    static struct hr_table *t;
    size_t i;

    if (t)
        return t;
    t = hr_new();
    if (!t)
        abort();
    for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
        if (hr_add(t, (1u << (i % 5)) | 1u, patterns[i]) != (int)i)
            abort();
    return t;
}

/* The echo of text after prefix in an error body, as hs_reply_error
 * builds it. */
static void check_echo(const char *prefix, const char *text)
{
    char msg[LIM_ERROR_ECHO_MAX + 4];
    json_t *j;

    snprintf(msg, sizeof(msg), "%s%s", prefix, text);
    hu_echo_scrub(msg, LIM_ERROR_ECHO_MAX);
    if (strlen(msg) > LIM_ERROR_ECHO_MAX + 3 || !utf8_valid(msg, strlen(msg)))
        abort();
    j = json_string(msg);
    if (!j)
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hr_params params;
    struct evhttp_uri *uri = NULL;
    const char *path, *q, *keys[QMAX], *values[QMAX];
    char *text = NULL, *query = NULL, *decoded = NULL;
    unsigned method, allowed = 0;
    int route = -1, n, bad = -1, i;

    if (size < 1)
        return 0;
    method = 1u << (data[0] % 5);
    text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    uri = evhttp_uri_parse_with_flags(text, EVHTTP_URI_NONCONFORMANT);
    if (!uri)
        goto cleanup;
    path = evhttp_uri_get_path(uri);
    if (!path || !*path)
        path = "/";
    switch (hr_lookup(table(), path, method, &route, &allowed, &params)) {
    case HR_FOUND:
        if (route < 0 || route >= (int)(sizeof(patterns) / sizeof(patterns[0])))
            abort();
        for (i = 0; i < params.n; i++) {
            if (hr_param(&params, params.names[i]) != params.values[i])
                abort();
            check_echo("service ", params.values[i]);
        }
        hr_params_clear(&params);
        break;
    case HR_NUL_PARAM:
        if (params.n < 1)
            abort();
        hr_params_clear(&params);
        break;
    case HR_NOT_ALLOWED:
        if (!allowed || (allowed & method))
            abort();
        break;
    default:
        if (params.n != 0)
            abort();
        break;
    }
    decoded = evhttp_uridecode(path, 0, NULL);
    if (decoded)
        check_echo("no route for ", decoded);
    q = evhttp_uri_get_query(uri);
    if (q) {
        query = strdup(q);
        if (!query)
            goto cleanup;
        n = hu_query_split(query, keys, values, QMAX, &bad);
        if (n > QMAX || (n < 0 && (bad < 0 || bad >= QMAX)))
            abort();
        for (i = 0; i < (n < 0 ? bad + 1 : n); i++) {
            check_echo("query parameter ", keys[i]);
            check_echo("query value ", values[i]);
        }
    }
cleanup:
    free(decoded);
    free(query);
    if (uri)
        evhttp_uri_free(uri);
    free(text);
    return 0;
}
