/* router.c: the route table (see router.h). A pattern is split once into
 * owned segment copies; a lookup splits a copy of the path (on the stack
 * when it fits) and compares segment by segment, newest route first. A
 * pattern ending in a "{name*}" segment matches by its literal prefix
 * instead (the path is not split for it, so its remainder may have any
 * number of segments). */
#include "http/router.h"

#include "core/limits.h"

#include <event2/http.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HR_STACK_PATH 256 /* paths shorter than this are split without malloc */

struct hr_route {
    unsigned methods;
    const char *pattern;                   /* borrowed */
    char *segments[LIM_PATH_SEGMENTS_MAX]; /* owned copies of the pattern's segments */
    int nsegments;
    char *rest_prefix; /* owned: "/v1/kv/" of "/v1/kv/{key*}"; NULL: not a rest route */
    char *rest_name;   /* owned: "{key}", the capture's name as hr_param takes it */
};

struct hr_table {
    struct hr_route routes[LIM_ROUTES_MAX];
    int n;
};

struct hr_table *hr_new(void) { return calloc(1, sizeof(struct hr_table)); }

void hr_free(struct hr_table *t)
{
    int i, j;

    if (!t)
        return;
    for (i = 0; i < t->n; i++) {
        for (j = 0; j < t->routes[i].nsegments; j++)
            free(t->routes[i].segments[j]);
        free(t->routes[i].rest_prefix);
        free(t->routes[i].rest_name);
    }
    free(t);
}

/* Splits path (modified in place) into at most max segments. Returns the
 * count, or -1 when there are more. "/" has zero segments. */
static int hr_split(char *path, char **segs, int max)
{
    int n = 0;
    char *p = path;

    while (*p == '/')
        p++;
    while (*p) {
        char *end = strchr(p, '/');

        if (n == max)
            return -1;
        segs[n++] = p;
        if (!end)
            break;
        *end = '\0';
        p = end + 1;
    }
    return n;
}

/* Whether a pattern segment is a "{name}" capture. */
static bool hr_is_param(const char *seg)
{
    size_t len = strlen(seg);

    return len > 2 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Add a rest route: pattern ends in "/{name*}" (at star). -1 or the index. */
static int hr_add_rest(struct hr_table *t, unsigned methods, const char *pattern, const char *open)
{
    struct hr_route *route = &t->routes[t->n];
    size_t nlen = strlen(open) - 2; /* "{name*}" -> "{name" */

    memset(route, 0, sizeof(*route));
    route->rest_prefix = strndup(pattern, (size_t)(open - pattern));
    route->rest_name = malloc(nlen + 2);
    if (!route->rest_prefix || !route->rest_name) {
        free(route->rest_prefix);
        free(route->rest_name);
        route->rest_prefix = route->rest_name = NULL;
        return -1;
    }
    memcpy(route->rest_name, open, nlen);
    route->rest_name[nlen] = '}';
    route->rest_name[nlen + 1] = '\0';
    route->methods = methods;
    route->pattern = pattern;
    return t->n++;
}

int hr_add(struct hr_table *t, unsigned methods, const char *pattern)
{
    const char *last = NULL;
    struct hr_route *route;
    char *copy = NULL;
    char *segs[LIM_PATH_SEGMENTS_MAX];
    int n, i, rc = -1;

    if (t->n >= LIM_ROUTES_MAX || pattern[0] != '/')
        return -1;
    last = strrchr(pattern, '/') + 1;
    if (strlen(last) > 3 && last[0] == '{' && strcmp(last + strlen(last) - 2, "*}") == 0) {
        if (memchr(pattern, '{', (size_t)(last - pattern)) ||
            strchr(pattern, '*') != last + strlen(last) - 2)
            return -1; /* the prefix is literal: no capture before the rest */
        return hr_add_rest(t, methods, pattern, last);
    }
    copy = strdup(pattern);
    if (!copy)
        goto cleanup;
    n = hr_split(copy, segs, LIM_PATH_SEGMENTS_MAX);
    if (n < 0)
        goto cleanup;
    route = &t->routes[t->n];
    memset(route, 0, sizeof(*route));
    for (i = 0; i < n; i++) {
        route->segments[i] = strdup(segs[i]);
        if (!route->segments[i]) {
            while (i-- > 0)
                free(route->segments[i]);
            goto cleanup;
        }
    }
    route->nsegments = n;
    route->methods = methods;
    route->pattern = pattern;
    rc = t->n++;
cleanup:
    free(copy);
    return rc;
}

const char *hr_pattern(const struct hr_table *t, int i) { return t->routes[i].pattern; }

/* Whether route's segments match segs. */
static bool hr_match(const struct hr_route *route, char **segs, int nsegs)
{
    int i;

    if (route->rest_prefix || route->nsegments != nsegs)
        return false;
    for (i = 0; i < nsegs; i++) {
        if (!hr_is_param(route->segments[i]) && strcmp(route->segments[i], segs[i]) != 0)
            return false;
    }
    return true;
}

/* Fills params with route's captures from segs. HR_FOUND, HR_BAD_PATH
 * when a value cannot be decoded (params then holds what was decoded
 * before), HR_NUL_PARAM when one holds a NUL byte (params ends with it). */
static enum hr_result hr_capture(const struct hr_route *route, char **segs, int nsegs,
                                 struct hr_params *params)
{
    int i;

    for (i = 0; i < nsegs && params->n < HR_PARAMS_MAX; i++) {
        if (hr_is_param(route->segments[i])) {
            size_t len = 0;
            char *value = evhttp_uridecode(segs[i], 0, &len);

            if (!value)
                return HR_BAD_PATH;
            params->names[params->n] = route->segments[i];
            params->values[params->n++] = value;
            if (strlen(value) != len)
                return HR_NUL_PARAM;
        }
    }
    return HR_FOUND;
}

/* Fills params with the one capture of a rest route: rest (raw) decoded. */
static enum hr_result hr_capture_rest(const struct hr_route *route, const char *rest,
                                      struct hr_params *params)
{
    size_t len = 0;
    char *value = evhttp_uridecode(rest, 0, &len);

    if (!value)
        return HR_BAD_PATH;
    params->names[0] = route->rest_name;
    params->values[0] = value;
    params->n = 1;
    return strlen(value) != len ? HR_NUL_PARAM : HR_FOUND;
}

enum hr_result hr_lookup(const struct hr_table *t, const char *path, unsigned method, int *route,
                         unsigned *allowed, struct hr_params *params)
{
    char stack_path[HR_STACK_PATH];
    char *scratch = NULL, *split;
    char *segs[LIM_PATH_SEGMENTS_MAX];
    unsigned mask = 0;
    enum hr_result rc = HR_NOT_FOUND;
    int nsegs, i;

    memset(params, 0, sizeof(*params));
    if (strlen(path) < sizeof(stack_path)) {
        strcpy(stack_path, path);
        split = stack_path;
    } else {
        scratch = strdup(path);
        if (!scratch) {
            rc = HR_NO_MEMORY;
            goto cleanup;
        }
        split = scratch;
    }
    /* too many segments: only a rest route can match (nsegs -1) */
    nsegs = hr_split(split, segs, LIM_PATH_SEGMENTS_MAX);
    /* Later routes win, so a service may override a built-in one. */
    for (i = t->n - 1; i >= 0; i--) {
        const struct hr_route *r = &t->routes[i];

        if (r->rest_prefix) {
            size_t plen = strlen(r->rest_prefix);

            if (strncmp(path, r->rest_prefix, plen) != 0)
                continue;
            mask |= r->methods;
            if (!(r->methods & method))
                continue;
            rc = hr_capture_rest(r, path + plen, params);
            if (rc == HR_BAD_PATH)
                hr_params_clear(params);
            *route = i;
            goto cleanup;
        }
        if (nsegs < 0 || !hr_match(r, segs, nsegs))
            continue;
        mask |= r->methods;
        if (!(r->methods & method))
            continue;
        rc = hr_capture(r, segs, nsegs, params);
        if (rc == HR_BAD_PATH)
            hr_params_clear(params);
        *route = i;
        goto cleanup;
    }
    if (mask) {
        *allowed = mask;
        rc = HR_NOT_ALLOWED;
    }
cleanup:
    free(scratch);
    return rc;
}

const char *hr_param(const struct hr_params *p, const char *name)
{
    int i;

    for (i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return NULL;
}

void hr_params_clear(struct hr_params *p)
{
    int i;

    for (i = 0; i < p->n; i++)
        free(p->values[i]);
    memset(p, 0, sizeof(*p));
}
