/* reply.h: the facade's one error shape. Every error answer of the facade
 * carries "success": false and "error" (what every service's runtime
 * writes, hs_reply_error), plus "status": "error" (what POST /facade's 503
 * always said) and, for a POST that picked its uuid, "uuid" and "replicas"
 * (the copies made). Success bodies keep {"status": "success", ...}. */
#ifndef FC_REPLY_H
#define FC_REPLY_H

#include "http/server.h"

/* Answer req (freed by the call) with status and
 * {"success":false,"status":"error","error":<text>} where text is fmt
 * formatted, cut at LIM_ERROR_ECHO_MAX bytes ("...") and with bytes that
 * are not UTF-8 replaced by '?'; with "uuid" (borrowed, copied) and
 * "replicas" after it when uuid is not NULL. The runtime's out-of-memory
 * answer when the body cannot be built. */
void fr_reply_error(struct hs_req *req, int status, const char *uuid, int replicas, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

#endif
