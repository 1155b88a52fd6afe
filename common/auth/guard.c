/* guard.c: one request's access check (see guard.h). */
#include "auth/guard.h"

#include "core/log.h"
#include "http/server.h"

int guard_request(const struct acl *a, struct hs_req *req, enum acl_action action, const char *name)
{
    const char *token;
    enum acl_verdict v;
    char why[256];

    if (!a)
        return 1;
    token = acl_token_from_headers(hs_req_header(req, ACL_HDR_REGISTRY),
                                   hs_req_header(req, ACL_HDR_CONSUL),
                                   hs_req_header(req, ACL_HDR_AUTH));
    if (!token) {
        /* Consul's older clients (python-consul) send ?token= instead */
        token = hs_req_query(req, "token");
        if (token && !token[0])
            token = NULL;
    }
    v = acl_allows(a, token, action, name);
    if (v == ACL_ALLOWED)
        return 1;
    acl_describe(v, action, name, why, sizeof(why));
    log_debug("permission denied: %s (%s)", why, hs_req_path(req));
    hs_reply_error(req, 403, "permission denied: %s", why);
    return 0;
}
