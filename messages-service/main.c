/* main.c: messages-service: GET /messages answers a fixed message (set with
 * --message / MESSAGE). It registers itself with the registry like every
 * service so the facade finds it through discovery. */
#include "core/config.h"
#include "core/log.h"
#include "core/service.h"
#include "http/server.h"
#include "regclient/peer.h"

#include <stdio.h>
#include <string.h>

#define MSG_PORT_DEFAULT 5002
#define MSG_TEXT_MAX     4096

static const char *msg_text = "not implemented yet";

/* GET /messages */
static void msg_get(struct hs_req *req, void *arg)
{
    (void)arg;
    hs_reply_json(req, 200, json_pack("{s:s}", "message", msg_text));
}

int main(int argc, char **argv)
{
    struct cfg_common common = {MSG_PORT_DEFAULT, "127.0.0.1", PEER_REGISTRY_DEFAULT, "", "info"};
    int64_t ttl_ms = PEER_TTL_S_DEFAULT * 1000;
    const struct cfg_option opts[] = {
        CFG_COMMON_OPTIONS(&common),
        {"ttl", "TTL", CFG_DURATION, &ttl_ms, 1000, 86400 * 1000LL, "DUR",
         "registration lease, renewed every ttl/3"},
        {"message", "MESSAGE", CFG_STRING, &msg_text, 0, 0, "TEXT",
         "the text GET /messages answers"},
    };
    struct svc svc;
    struct peer peer;
    char err[512];
    int rc = 1, cfg_rc;

    memset(&svc, 0, sizeof(svc));
    memset(&peer, 0, sizeof(peer));
    cfg_rc = svc_configure("messages-service", "Answers GET /messages with a fixed message.", opts,
                           sizeof(opts) / sizeof(opts[0]), argc, argv, &common);
    if (cfg_rc >= 0)
        return cfg_rc;
    if (peer_check_options(&common, err, sizeof(err)) != 0) {
        fprintf(stderr, "messages-service: %s\n", err);
        return 2;
    }
    if (strlen(msg_text) > MSG_TEXT_MAX) {
        fprintf(stderr, "messages-service: --message: longer than %d bytes\n", MSG_TEXT_MAX);
        return 2;
    }
    if (svc_init(&svc, "messages-service", err, sizeof(err)) != 0 ||
        hs_route(svc.http, HS_GET, "/messages", msg_get, NULL) != 0) {
        fprintf(stderr, "messages-service: cannot set up: %s\n", err);
        goto cleanup;
    }
    if (svc_listen(&svc, common.bind, common.port, err, sizeof(err)) != 0 ||
        peer_start(&peer, &svc, &common, "messages-service", (int)(ttl_ms / 1000), err,
                   sizeof(err)) != 0) {
        fprintf(stderr, "messages-service: %s\n", err);
        goto cleanup;
    }
    rc = svc_run(&svc);
cleanup:
    peer_free(&peer);
    svc_free(&svc);
    return rc;
}
