/* reply.c: the facade's one error shape (see reply.h). */
#include "reply.h"

#include "codec/utf8.h"
#include "core/limits.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Make msg (NUL-terminated, at least LIM_ERROR_ECHO_MAX + 4 bytes) text
 * jansson accepts: a byte that starts no UTF-8 sequence becomes '?', and
 * text past LIM_ERROR_ECHO_MAX bytes is cut at a character boundary and
 * ends "...". */
static void fr_clean(char *msg)
{
    unsigned char *p = (unsigned char *)msg;
    size_t len = strlen(msg), off = 0, n;

    while (off < len) {
        n = utf8_seq_len(p + off, len - off);
        if (n == 0) {
            p[off] = '?';
            n = 1;
        }
        if (off + n > LIM_ERROR_ECHO_MAX) {
            memcpy(p + off, "...", 4);
            return;
        }
        off += n;
    }
}

void fr_reply_error(struct hs_req *req, int status, const char *uuid, int replicas, const char *fmt,
                    ...)
{
    char msg[LIM_ERROR_ECHO_MAX + 4];
    json_t *body;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fr_clean(msg);
    body = json_pack("{s:b, s:s, s:s}", "success", 0, "status", "error", "error", msg);
    if (body && uuid &&
        (json_object_set_new(body, "uuid", json_string(uuid)) != 0 ||
         json_object_set_new(body, "replicas", json_integer(replicas)) != 0)) {
        json_decref(body);
        body = NULL;
    }
    if (!body) {
        hs_reply_oom(req);
        return;
    }
    hs_reply_json(req, status, body);
}
