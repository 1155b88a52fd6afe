/* main.c: messages-service: GET /messages answers a fixed message (set with
 * --message / MESSAGE). It registers itself with the registry like every
 * service so the facade finds it through discovery. */
#include "codec/utf8.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/greeting.h"
#include "regclient/peer.h"

#include <string.h>

#define MSG_PORT_DEFAULT 5002
#define MSG_TEXT_MAX     4096

static const char *msg_text = "not implemented yet";

/* GET /messages */
static void msg_get(struct hs_req *req, void *arg)
{
    (void)arg;
    hs_reply_json(req, 200, json_pack("{s:s}", PG_F_MESSAGE, msg_text));
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

/* peer_app start: the one route. */
static int msg_start(struct svc *svc, struct peer *peer, void *arg, char *err, size_t errlen)
{
    (void)peer;
    (void)arg;
    if (hs_route(svc_http(svc), HS_GET, PG_PATH, msg_get, NULL) != 0) {
        errbuf_set(err, errlen, "cannot add the /messages route");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct cfg_option opts[] = {
        {"message", "MESSAGE", CFG_STRING, &msg_text, 0, 0, "TEXT",
         "the text GET /messages answers"},
    };
    const struct peer_app app = {
        .name = PG_SERVICE,
        .summary = "Answers GET /messages with a fixed message.",
        .port_default = MSG_PORT_DEFAULT,
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .check = msg_check,
        .start = msg_start,
    };

    return peer_main(&app, argc, argv);
}
