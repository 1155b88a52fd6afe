/* discovery.c: the discovery cache behind discovery.h.
 *
 * Each watched name has exactly one GET /v1/services?name=X&health=passing
 * in flight or one one-shot timer armed for the next: a blocking read
 * (&index=N&wait=DISC_WAIT_S s, N the X-Registry-Index of the last
 * answer) follows each answer after DISC_FLOOR_MS. The first read of a
 * name, the first after a failure and the first after the index went back
 * (another or a restarted registry) carry no index and answer at once. A
 * successful answer replaces the cached list, an empty one included
 * (nothing is passing); a failed one (transport error, non-200 status, a
 * body that is not the expected JSON) keeps the last list, fails over to
 * the next registry URL and is retried after the shared backoff
 * (resilience/backoff.h). A registry that does not hold reads (no
 * X-Registry-Index, or a blocking read answered at once with the index it
 * was given: an older registry) is read every refresh_ms instead, as
 * before blocking reads.
 *
 * Which URL, and how an outage is logged, is the shared policy of
 * failover.h (the list is shared with the registration).
 *
 * The timers are armed through a clk_timers hook (disc_set_timers; NULL:
 * the real clock), so tests run the refreshes on a virtual clock.
 *
 * Ownership: the client borrows base, hc, urls and timers; it owns the names, the
 * cached lists, the timers and the calls. disc_free must run before
 * hc_client_free. */
#include "regclient/discovery.h"

#include "core/clock.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "proto/registry_v1.h"
#include "regclient/failover.h"
#include "regclient/urls.h"
#include "resilience/backoff.h"

#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISC_HEALTH_QUERY   "&" REGV1_Q_HEALTH "=" REGV1_PASSING
#define DISC_REFRESH_MIN_MS 10
#define DISC_URL_MAX        (RU_URL_MAX + 3 * LIM_NAME_MAX + 96)
#define DISC_WHY_MAX        256

struct disc_entry {
    struct disc_client *d; /* back pointer for the callbacks */
    char name[LIM_NAME_MAX + 1];
    struct disc_instance *list; /* owned; n instances */
    size_t n;
    bool known;           /* one refresh has succeeded */
    uint64_t version;     /* bumped when the list changes */
    struct event *timer;  /* one-shot: the next read; owned */
    struct hc_call *call; /* the refresh in flight */
    struct fo_caller fo;  /* where call went, the outage it belongs to */
    uint64_t index;       /* X-Registry-Index of the last answer; 0: read without */
    uint64_t sent_index;  /* the index the call in flight blocks on (0: none) */
    unsigned failures;    /* in a row: the backoff's attempt */
};

struct disc_client {
    struct event_base *base;         /* borrowed */
    struct hc_client *hc;            /* borrowed */
    struct ru_list *urls;            /* borrowed, shared with regclient */
    const struct clk_timers *timers; /* how timers are armed; borrowed, NULL: real */
    int64_t refresh_ms;
    char token[LIM_ACL_TOKEN_MAX + 1]; /* sent on every list call; "": none */
    struct disc_entry entries[DISC_NAMES_MAX];
    size_t n;
    bool stopped;
};

/* The entry of name, or NULL. */
static const struct disc_entry *disc_find(const struct disc_client *d, const char *name)
{
    size_t i = 0;

    for (i = 0; i < d->n; i++) {
        if (strcmp(d->entries[i].name, name) == 0)
            return &d->entries[i];
    }
    return NULL;
}

/* Append name to out (cap bytes, NUL-terminated) percent-encoded: service
 * names are [A-Za-z0-9._-] and pass as they are, anything else is escaped
 * so it cannot change the query. Returns 0, or -1 when it does not fit. */
static int disc_encode(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = strlen(out);
    const unsigned char *p = (const unsigned char *)name;

    for (; *p != '\0'; p++) {
        unsigned char c = *p;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '~';

        if (used + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[used++] = (char)c;
        } else {
            out[used++] = '%';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 0x0f];
        }
    }
    out[used] = '\0';
    return 0;
}

/* Parse a list answer {"success":true,"services":[{"id","host","port"},
 * ...]} into a new array (caller frees *out; *out is NULL when there are no
 * instances). Members with a missing or wrong-typed id, host or port, or
 * too long for struct disc_instance, are skipped; past DISC_INSTANCES_MAX
 * the rest is dropped. Returns 0, or -1 with why filled when the body is
 * not such an answer (or memory runs out). Borrows body. */
static int disc_parse(const char *body, size_t len, struct disc_instance **out, size_t *n_out,
                      char *why, size_t whylen)
{
    json_t *doc = NULL;
    json_t *services = NULL;
    json_error_t jerr;
    struct disc_instance *list = NULL;
    size_t n = 0;
    size_t i = 0;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL) {
        errbuf_set(why, whylen, "invalid JSON in the answer: %s", jerr.text);
        goto cleanup;
    }
    services = json_object_get(doc, REGV1_F_SERVICES);
    if (!json_is_true(json_object_get(doc, "success")) || !json_is_array(services)) {
        errbuf_set(why, whylen, "the answer has no 'services' array");
        goto cleanup;
    }
    if (json_array_size(services) > 0) {
        size_t cap = json_array_size(services);

        if (cap > DISC_INSTANCES_MAX)
            cap = DISC_INSTANCES_MAX;
        list = calloc(cap, sizeof(*list));
        if (list == NULL) {
            errbuf_set(why, whylen, "out of memory");
            goto cleanup;
        }
        for (i = 0; i < json_array_size(services) && n < cap; i++) {
            json_t *s = json_array_get(services, i);
            const char *id = json_string_value(json_object_get(s, REGV1_F_ID));
            const char *host = json_string_value(json_object_get(s, REGV1_F_HOST));
            json_t *port = json_object_get(s, REGV1_F_PORT);

            if (id == NULL || host == NULL || !json_is_integer(port) || strlen(id) > LIM_ID_MAX ||
                strlen(host) > LIM_HOST_MAX || host[0] == '\0' || json_integer_value(port) < 1 ||
                json_integer_value(port) > 65535)
                continue;
            memcpy(list[n].id, id, strlen(id) + 1);
            memcpy(list[n].host, host, strlen(host) + 1);
            list[n].port = (int)json_integer_value(port);
            n++;
        }
        if (json_array_size(services) > cap)
            log_debug("discovery: kept %d of %zu instances", DISC_INSTANCES_MAX,
                      json_array_size(services));
    }
    *out = list;
    *n_out = n;
    list = NULL;
    rc = 0;

cleanup:
    free(list);
    json_decref(doc);
    return rc;
}

/* A refresh of e failed (why: borrowed): keep the list; fail over and log
 * by the shared policy. */
static void disc_failed(struct disc_entry *e, const char *why)
{
    if (e->known)
        fo_failed(&e->fo, why, "keeping the last %zu instances of %s", e->n, e->name);
    else
        fo_failed(&e->fo, why, "no instances of %s known yet", e->name);
}

/* Whether two instance lists hold the same instances in the same order. */
static bool disc_same(const struct disc_instance *a, size_t na, const struct disc_instance *b,
                      size_t nb)
{
    size_t i = 0;

    if (na != nb)
        return false;
    for (i = 0; i < na; i++) {
        if (a[i].port != b[i].port || strcmp(a[i].host, b[i].host) != 0 ||
            strcmp(a[i].id, b[i].id) != 0)
            return false;
    }
    return true;
}

/* Arm e's next read in ms. */
static void disc_later(struct disc_entry *e, int64_t ms)
{
    if (clk_timers_arm(e->d->timers, e->timer, ms) != 0)
        log_warn("discovery of %s: cannot arm its timer", e->name);
}

/* A read of e failed (why borrowed): keep the list, read again without
 * an index (it may be another registry's) after the backoff. */
static void disc_retry(struct disc_entry *e, const char *why)
{
    disc_failed(e, why);
    e->index = 0;
    disc_later(e, bo_delay_ms(NULL, e->failures++) + 1);
}

/* After a good answer with X-Registry-Index header (NULL: none): the
 * index to block on next and when to send. A missing or bad index, or a
 * blocking read answered at once with the index it gave (a registry that
 * does not hold reads), paces reads at refresh_ms; an index lower than
 * the last (the registry was restarted or replaced) is forgotten: the
 * next read is a plain one. */
static void disc_next(struct disc_entry *e, const char *header, double elapsed_ms)
{
    uint64_t index = 0;
    char *end = NULL;

    if (header)
        index = (uint64_t)strtoull(header, &end, 10);
    if (!header || !end || *end != '\0' || index == 0) {
        e->index = 0;
        disc_later(e, e->d->refresh_ms);
        return;
    }
    if (index < e->index) {
        log_info("discovery of %s: the registry index went back (%" PRIu64 " after %" PRIu64
                 "); reading it again from the start",
                 e->name, index, e->index);
        e->index = 0;
        disc_later(e, DISC_FLOOR_MS);
        return;
    }
    e->index = index;
    if (e->sent_index > 0 && index == e->sent_index && elapsed_ms < DISC_WAIT_S * 1000.0 / 2) {
        disc_later(e, e->d->refresh_ms); /* not held: an older registry */
        return;
    }
    disc_later(e, DISC_FLOOR_MS);
}

/* Completion of a refresh: replace the list, or keep it on failure; then
 * the next read. */
static void disc_on_list(const struct hc_response *resp, void *arg)
{
    struct disc_entry *e = arg;
    struct disc_instance *list = NULL;
    size_t n = 0;
    char why[DISC_WHY_MAX];

    e->call = NULL;
    if (e->d->stopped)
        return;
    if (resp->error != HC_OK) {
        disc_retry(e, resp->error_msg);
        return;
    }
    if (resp->status != 200) {
        snprintf(why, sizeof(why), "HTTP %ld", resp->status);
        disc_retry(e, why);
        return;
    }
    if (disc_parse(resp->body, resp->body_len, &list, &n, why, sizeof(why)) != 0) {
        disc_retry(e, why);
        return;
    }
    fo_succeeded(&e->fo, "%zu instances of %s", n, e->name);
    e->failures = 0;
    if (!disc_same(e->list, e->n, list, n))
        e->version++;
    free(e->list);
    e->list = list;
    e->n = n;
    e->known = true;
    disc_next(e, resp->header, resp->elapsed_ms);
}

/* Start a read of e unless one is in flight or the client stopped: a
 * blocking one when an index is known. */
static void disc_refresh(struct disc_entry *e)
{
    struct disc_client *d = e->d;
    char url[DISC_URL_MAX];
    struct hc_request req;

    if (d->stopped || e->call != NULL)
        return;
    snprintf(url, sizeof(url), "%s" REGV1_SERVICES "?" REGV1_Q_NAME "=", fo_send(&e->fo));
    if (disc_encode(e->name, url, sizeof(url)) != 0 ||
        strlen(url) + sizeof(DISC_HEALTH_QUERY) > sizeof(url))
        return; /* cannot happen: url is sized for the longest name */
    strcat(url, DISC_HEALTH_QUERY);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.timeout_ms = LIM_CALL_TIMEOUT_MS;
    e->sent_index = e->index;
    if (e->index > 0) {
        size_t used = strlen(url);

        snprintf(url + used, sizeof(url) - used,
                 "&" REGV1_Q_INDEX "=%" PRIu64 "&" REGV1_Q_WAIT "=%ds", e->index, DISC_WAIT_S);
        /* the wait, its jitter (up to a sixteenth) and a call's own bound */
        req.timeout_ms = DISC_WAIT_S * 1000L + DISC_WAIT_S * 1000L / 16 + LIM_CALL_TIMEOUT_MS;
        req.connect_timeout_ms = LIM_CONNECT_TIMEOUT_MS;
    }
    req.token = d->token;
    req.keep_header = REGV1_H_INDEX;
    e->call = hc_send(d->hc, &req, disc_on_list, e);
    if (e->call == NULL)
        disc_retry(e, "cannot start the request");
}

/* The one-shot timer of one entry: its next read. */
static void disc_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    disc_refresh(arg);
}

/* Create the client (see discovery.h); refresh_ms <= 0 means
 * DISC_REFRESH_MS_DEFAULT. Borrows base, hc and urls. Returns NULL on bad
 * arguments or allocation failure; caller frees with disc_free. */
struct disc_client *disc_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                             int64_t refresh_ms)
{
    struct disc_client *d = NULL;

    if (base == NULL || hc == NULL || urls == NULL)
        return NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->base = base;
    d->hc = hc;
    d->urls = urls;
    if (refresh_ms <= 0)
        refresh_ms = DISC_REFRESH_MS_DEFAULT;
    if (refresh_ms < DISC_REFRESH_MIN_MS)
        refresh_ms = DISC_REFRESH_MIN_MS;
    d->refresh_ms = refresh_ms;
    return d;
}

/* Use t (borrowed; NULL: the real clock) for the timers armed from now
 * on. Accepts d NULL. */
void disc_set_timers(struct disc_client *d, const struct clk_timers *t)
{
    if (d != NULL)
        d->timers = t;
}

int disc_set_token(struct disc_client *d, const char *token)
{
    if (d == NULL || token == NULL || strlen(token) > LIM_ACL_TOKEN_MAX)
        return -1;
    snprintf(d->token, sizeof(d->token), "%s", token);
    return 0;
}

/* Watch name (copied): read it now, then follow it (see the head of the
 * file). Watching a
 * name again is a no-op returning 0. Returns -1 when DISC_NAMES_MAX names
 * are watched, name is empty or longer than LIM_NAME_MAX, after disc_stop,
 * or when the timer cannot be set. */
int disc_watch(struct disc_client *d, const char *name)
{
    struct disc_entry *e = NULL;

    if (d == NULL || name == NULL || name[0] == '\0' || strlen(name) > LIM_NAME_MAX || d->stopped)
        return -1;
    if (disc_find(d, name) != NULL)
        return 0;
    if (d->n == DISC_NAMES_MAX)
        return -1;
    e = &d->entries[d->n];
    memset(e, 0, sizeof(*e));
    e->d = d;
    fo_init(&e->fo, d->urls);
    memcpy(e->name, name, strlen(name) + 1);
    e->timer = event_new(d->base, -1, 0, disc_on_timer, e);
    if (e->timer == NULL)
        return -1;
    d->n++;
    disc_refresh(e);
    return 0;
}

/* Copy up to max instances of name into out (borrowed; caller's). */
size_t disc_list(const struct disc_client *d, const char *name, struct disc_instance *out,
                 size_t max)
{
    const struct disc_entry *e = NULL;
    size_t n = 0;

    if (d == NULL || name == NULL)
        return 0;
    e = disc_find(d, name);
    if (e == NULL || out == NULL)
        return 0;
    n = e->n < max ? e->n : max;
    if (n > 0)
        memcpy(out, e->list, n * sizeof(*out));
    return n;
}

/* The version of name's list: it changes whenever the list does. */
uint64_t disc_version(const struct disc_client *d, const char *name)
{
    const struct disc_entry *e = NULL;

    if (d == NULL || name == NULL)
        return 0;
    e = disc_find(d, name);
    return e != NULL ? e->version : 0;
}

/* Whether a refresh of name has succeeded once. */
bool disc_known(const struct disc_client *d, const char *name)
{
    const struct disc_entry *e = NULL;

    if (d == NULL || name == NULL)
        return false;
    e = disc_find(d, name);
    return e != NULL && e->known;
}

/* Stop the timers and cancel the refreshes in flight (they would only
 * delay the shutdown drain); the lists stay readable. */
void disc_stop(struct disc_client *d)
{
    size_t i = 0;

    if (d == NULL || d->stopped)
        return;
    d->stopped = true;
    for (i = 0; i < d->n; i++) {
        clk_timers_disarm(d->timers, d->entries[i].timer);
        hc_cancel(d->entries[i].call);
        d->entries[i].call = NULL;
    }
}

/* Cancel everything and free. Accepts NULL. Must run before hc_client_free
 * of the borrowed client and not from a callback of d. */
void disc_free(struct disc_client *d)
{
    size_t i = 0;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++) {
        clk_timers_disarm(d->timers, d->entries[i].timer);
        event_free(d->entries[i].timer);
        hc_cancel(d->entries[i].call);
        free(d->entries[i].list);
    }
    memset(d->token, 0, sizeof(d->token));
    free(d);
}
