/* router.h: the route table of the HTTP server: patterns such as
 * "/v1/services/{id}/renew" with a mask of methods, matched segment by
 * segment against a request path, later routes first; "{name}" segments
 * capture their (percent-decoded) value. A last segment "{name*}" captures
 * the rest of the path after the pattern's literal prefix, slashes and
 * all, decoded (any number of segments; possibly empty), as "{name}". No I/O: server.c answers what the
 * lookup says (404, 405, 400) and keeps the handlers by route index. */
#ifndef SVC_HTTP_ROUTER_H
#define SVC_HTTP_ROUTER_H

#include <stddef.h>

#define HR_PARAMS_MAX 4 /* "{name}" segments captured per request */

struct hr_table;

/* The "{name}" values of one matched path. names are borrowed from the
 * table (with their braces: "{id}"), values owned (free with
 * hr_params_clear). */
struct hr_params {
    const char *names[HR_PARAMS_MAX];
    char *values[HR_PARAMS_MAX];
    int n;
};

enum hr_result {
    HR_FOUND = 0,       /* *route and params are set */
    HR_NOT_FOUND = 1,   /* no route has this path (or it has too many segments) */
    HR_NOT_ALLOWED = 2, /* routes have this path, none this method: *allowed is their mask */
    HR_BAD_PATH = 3,    /* a "{name}" value could not be decoded */
    HR_NO_MEMORY = 4,
    HR_NUL_PARAM = 5, /* a "{name}" value decodes to text holding a NUL byte
                         (%00): params holds the values up to it, the last
                         one being the bad one, cut at its NUL */
};

/* A new, empty table (caller frees with hr_free), or NULL. */
struct hr_table *hr_new(void) __attribute__((warn_unused_result));
/* Free t and its patterns' copies. Accepts NULL. */
void hr_free(struct hr_table *t);

/* Add a route for methods (a mask) on pattern (borrowed: a literal or
 * outliving t; it must start with '/' and have at most
 * LIM_PATH_SEGMENTS_MAX segments). Returns the route's index (0, 1, ...),
 * or -1 when the table is full (LIM_ROUTES_MAX), the pattern malformed or
 * memory short. */
int hr_add(struct hr_table *t, unsigned methods, const char *pattern)
    __attribute__((warn_unused_result));

/* The pattern of route index i (borrowed), e.g. as a metrics label. */
const char *hr_pattern(const struct hr_table *t, int i);

/* Match path (raw, not decoded; borrowed) with method (one bit of the
 * mask). The route added last wins among those that match. On HR_FOUND
 * and HR_NUL_PARAM sets *route and fills params (which the caller clears); on HR_NOT_ALLOWED sets
 * *allowed; params is left empty otherwise. */
enum hr_result hr_lookup(const struct hr_table *t, const char *path, unsigned method, int *route,
                         unsigned *allowed, struct hr_params *params)
    __attribute__((warn_unused_result));

/* The value of "{name}" (name with its braces), or NULL. Borrowed. */
const char *hr_param(const struct hr_params *p, const char *name);
/* Free the values of p and empty it. Accepts an empty p. */
void hr_params_clear(struct hr_params *p);

#endif
