/* main.c: messages-service: GET /messages answers its message: the value
 * of the registry KV key config/messages-service/message when it exists
 * (followed with blocking reads, so a PUT there shows within a second),
 * else --message / MESSAGE. It registers itself with the registry like
 * every service so the facade finds it through discovery. */
#include "codec/utf8.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "http/server.h"
#include "http/service.h"
#include "http/trace.h"
#include "proto/greeting.h"
#include "regclient/kvwatch.h"
#include "regclient/peer.h"

#include <stdlib.h>
#include <string.h>

#define MSG_PORT_DEFAULT 5002
#define MSG_TEXT_MAX     4096
#define MSG_KV_KEY       "config/" PG_SERVICE "/message" /* the text, when it exists */

static const char *msg_text = "not implemented yet"; /* --message: the fallback */
static char *msg_kv_text;                            /* owned: the key's value; NULL: none */
static struct kvw *msg_watch;                        /* owned */

/* GET /messages; a request of a trace (a valid traceparent: the facade
 * always sends one) is logged with its trace id, so the trace shows which
 * messages instance answered. */
static void msg_get(struct hs_req *req, void *arg)
{
    char trace[TRC_TRACE_ID_LEN + 1], prev[LOG_TRACE_MAX + 1];

    (void)arg;
    if (trc_parse(hs_req_header(req, TRC_HEADER), trace, NULL) == 0) {
        log_trace_set(trace, prev);
        log_info("GET %s answered from %s", PG_PATH, msg_kv_text ? MSG_KV_KEY : "--message");
        log_trace_set(prev, NULL);
    }
    hs_reply_json(req, 200, json_pack("{s:s}", PG_F_MESSAGE, msg_kv_text ? msg_kv_text : msg_text));
}

/* kvw_fn: the key's value changed (or went: back to --message). A value
 * that could not be answered (too long, not UTF-8) is ignored, with a
 * warning, and the text stays as it was. */
static void msg_on_key(void *arg, bool present, const char *value, size_t len)
{
    char *copy = NULL;

    (void)arg;
    if (present && (len > MSG_TEXT_MAX || !utf8_valid(value, len) || memchr(value, '\0', len))) {
        log_warn("%s: ignored: not UTF-8 text of at most %d bytes", MSG_KV_KEY, MSG_TEXT_MAX);
        return;
    }
    if (present) {
        copy = malloc(len + 1);
        if (!copy) {
            log_warn("%s: ignored: out of memory", MSG_KV_KEY);
            return;
        }
        memcpy(copy, value, len);
        copy[len] = '\0';
    }
    free(msg_kv_text);
    msg_kv_text = copy;
    log_info("message now from %s", present ? MSG_KV_KEY : "--message (the key is absent)");
}

/* Stop hook: the parked read must not hold the shutdown. */
static void msg_on_stop(void *arg)
{
    (void)arg;
    kvw_stop(msg_watch);
}

/* peer_app stop: free the watcher and the text. */
static void msg_stop(void *arg)
{
    (void)arg;
    kvw_free(msg_watch);
    msg_watch = NULL;
    free(msg_kv_text);
    msg_kv_text = NULL;
}

/* peer_app check: the text fits and is UTF-8. */
static int msg_check(void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (strlen(msg_text) > MSG_TEXT_MAX) {
        errbuf_set(err, errlen, "--message: longer than %d bytes", MSG_TEXT_MAX);
        return 2;
    }
    /* Every answer would fail to encode (jansson refuses it): say so now. */
    if (!utf8_valid(msg_text, strlen(msg_text))) {
        errbuf_set(err, errlen, "--message: not valid UTF-8");
        return 2;
    }
    return 0;
}

/* peer_app start: the one route, and the watch of the key. */
static int msg_start(struct svc *svc, struct peer *peer, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (hs_route(svc_http(svc), HS_GET, PG_PATH, msg_get, NULL) != 0) {
        errbuf_set(err, errlen, "cannot add the /messages route");
        return -1;
    }
    msg_watch =
        kvw_new(svc_base(svc), peer->hc, &peer->urls, peer->token, MSG_KV_KEY, msg_on_key, NULL);
    if (!msg_watch || svc_on_stop(svc, msg_on_stop, NULL) != 0) {
        errbuf_set(err, errlen, "cannot follow %s: out of memory", MSG_KV_KEY);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct cfg_option opts[] = {
        {"message", "MESSAGE", CFG_STRING, &msg_text, 0, 0, "TEXT",
         "the text GET /messages answers while the KV key config/messages-service/message "
         "does not exist"},
    };
    const struct peer_app app = {
        .name = PG_SERVICE,
        .summary = "Answers GET /messages with config/messages-service/message from the "
                   "registry's KV store, or --message.",
        .port_default = MSG_PORT_DEFAULT,
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .check = msg_check,
        .start = msg_start,
        .stop = msg_stop,
    };

    return peer_main(&app, argc, argv);
}
