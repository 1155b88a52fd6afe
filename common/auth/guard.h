/* guard.h: the access check of one HTTP request against a token table
 * (acl.h): the token taken from the request's headers in their order of
 * precedence (then from the query parameter "token", as Consul's older
 * clients send it), the verdict, and the 403 answer with the reason when it is
 * a refusal. One place for every route that needs a right (the registry's
 * catalog and KV routes, logging-service's writes). */
#ifndef SVC_AUTH_GUARD_H
#define SVC_AUTH_GUARD_H

#include "auth/acl.h"

struct hs_req;

/* May the caller of req do action on name (see acl_allows)? 1 when it may
 * (always when a is NULL: no token table, everything open); else req is
 * answered 403 with the JSON error "permission denied: <reason>" (never
 * quoting the token; logged at debug level with the path only) and 0. */
int guard_request(const struct acl *a, struct hs_req *req, enum acl_action action, const char *name)
    __attribute__((warn_unused_result));

#endif
