/* kvwatch.c: following one KV key with blocking reads (see kvwatch.h). */
#include "regclient/kvwatch.h"

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "proto/registry_v1.h"
#include "regclient/failover.h"
#include "regclient/urls.h"
#include "resilience/backoff.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KVW_PATH_MAX    (3 * LIM_KV_KEY_MAX + 1)
#define KVW_URL_MAX     (RU_URL_MAX + KVW_PATH_MAX + 64)
#define KVW_NO_INDEX_MS 1000 /* an answer without X-Registry-Index: ask again after this */

struct kvw {
    struct hc_client *hc; /* borrowed */
    struct fo_caller fo;  /* where the read went; the outage it belongs to */
    char token[LIM_ACL_TOKEN_MAX + 1];
    char path[KVW_PATH_MAX]; /* the key, percent-encoded but for '/' */
    kvw_fn fn;
    void *arg;
    struct hc_call *call; /* the read in flight, or NULL */
    struct event *timer;  /* owned: the next read (after a failure: the backoff) */
    uint64_t index;       /* of the last answer; 0: none yet */
    bool known, present;  /* what fn was last told */
    unsigned failures;    /* in a row: the backoff's attempt */
    bool stopped;
};

/* Percent-encode key into out (KVW_PATH_MAX) but for '/' and the
 * unreserved characters. */
static void kvw_encode(const char *key, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *key; key++) {
        unsigned char c = (unsigned char)*key;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static void kvw_send(struct kvw *w);

/* Arm the next read in ms. */
static void kvw_later(struct kvw *w, int64_t ms)
{
    if (clk_timer_in(w->timer, ms) != 0)
        log_warn("kv watch of %s: cannot arm its timer", w->path);
}

static void kvw_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kvw_send(arg);
}

/* A read failed (why borrowed): keep the value, retry with backoff. */
static void kvw_failed(struct kvw *w, const char *why)
{
    fo_failed(&w->fo, why, "keeping the last value of %s", w->path);
    kvw_later(w, bo_delay_ms(NULL, w->failures++) + 1);
}

/* The answer to a read. */
static void kvw_on_answer(const struct hc_response *resp, void *arg)
{
    struct kvw *w = arg;
    uint64_t index = 0;
    char why[64];
    char *end = NULL;

    w->call = NULL;
    if (w->stopped)
        return;
    if (resp->error != HC_OK) {
        kvw_failed(w, resp->error_msg);
        return;
    }
    if (resp->status != 200 && resp->status != 404) {
        snprintf(why, sizeof(why), "HTTP %ld", resp->status);
        kvw_failed(w, why);
        return;
    }
    fo_succeeded(&w->fo, "following %s", w->path);
    w->failures = 0;
    if (resp->header)
        index = (uint64_t)strtoull(resp->header, &end, 10);
    if (resp->status == 200 && (!w->known || !w->present || index != w->index)) {
        w->known = w->present = true;
        w->fn(w->arg, true, resp->body, resp->body_len);
    } else if (resp->status == 404 && (!w->known || w->present)) {
        w->known = true;
        w->present = false;
        w->fn(w->arg, false, NULL, 0);
    }
    if (!resp->header || !end || *end != '\0' || index == 0) {
        /* no index to block on: ask again a little later, never in a loop */
        w->index = 0;
        kvw_later(w, KVW_NO_INDEX_MS);
        return;
    }
    /* an index that went back (another registry): start again from it */
    w->index = index;
    kvw_send(w);
}

/* Send the next read: blocking once an index is known. */
static void kvw_send(struct kvw *w)
{
    char url[KVW_URL_MAX];
    struct hc_request req;

    if (w->stopped || w->call)
        return;
    if (w->index > 0)
        snprintf(url, sizeof(url),
                 "%s/v1/kv/%s?" REGV1_Q_RAW "&" REGV1_Q_INDEX "=%" PRIu64 "&" REGV1_Q_WAIT "=%ds",
                 fo_send(&w->fo), w->path, w->index, LIM_KV_WATCH_WAIT_S);
    else
        snprintf(url, sizeof(url), "%s/v1/kv/%s?" REGV1_Q_RAW, fo_send(&w->fo), w->path);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    /* the wait, its jitter (up to a sixteenth) and a call's own bound */
    req.timeout_ms =
        LIM_KV_WATCH_WAIT_S * 1000L + LIM_KV_WATCH_WAIT_S * 1000L / 16 + LIM_CALL_TIMEOUT_MS;
    req.connect_timeout_ms = LIM_CONNECT_TIMEOUT_MS;
    req.token = w->token;
    req.keep_header = REGV1_H_INDEX;
    w->call = hc_send(w->hc, &req, kvw_on_answer, w);
    if (!w->call)
        kvw_failed(w, "cannot start the request");
}

struct kvw *kvw_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                    const char *token, const char *key, kvw_fn fn, void *arg)
{
    struct kvw *w = NULL;

    if (!key || !*key || strlen(key) > LIM_KV_KEY_MAX)
        return NULL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->hc = hc;
    w->fn = fn;
    w->arg = arg;
    fo_init(&w->fo, urls);
    w->fo.quiet = true; /* the registration warns for an outage of the same list */
    snprintf(w->token, sizeof(w->token), "%s", token ? token : "");
    kvw_encode(key, w->path);
    w->timer = evtimer_new(base, kvw_on_timer, w);
    if (!w->timer) {
        free(w);
        return NULL;
    }
    kvw_later(w, 0);
    return w;
}

void kvw_stop(struct kvw *w)
{
    if (!w)
        return;
    w->stopped = true;
    if (w->call) {
        hc_cancel(w->call);
        w->call = NULL;
    }
    event_del(w->timer);
}

void kvw_free(struct kvw *w)
{
    if (!w)
        return;
    kvw_stop(w);
    event_free(w->timer);
    memset(w->token, 0, sizeof(w->token));
    free(w);
}
