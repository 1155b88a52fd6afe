/* events.c: change events, their history and their watchers (see
 * events.h). An event is one allocation holding its SSE frame
 * "id: N\nevent: T\ndata: <json>\n\n"; the JSON is a range of it, so a
 * long-poll answer and a stream send the same bytes, by reference: the
 * event counts its references (the history's, and one per buffer chain
 * that holds it) and is freed with the last.
 *
 * The history is a ring in index order. A watcher asks for the events
 * after an index N; the history answers for every N at or above its floor
 * (the index before its oldest event, or the current index when it holds
 * none); below, events were dropped (or lost in a restart) and the watcher
 * must re-read the state (410, or an SSE "reset").
 *
 * Watchers sit in one list per service name (?name=) or in the list of
 * those without one; an event looks at the two lists it concerns and
 * nothing else. The ?type= filter is checked there. A parked long-poll has
 * one timer, its deadline: for the default wait a libevent common timeout
 * (one of LIM_WATCH_JITTER_DIV, for the jitter), so that thousands of them
 * cost one heap entry each bucket. */
#include "events.h"

#include "../core/catalog.h"
#include "codec.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "http/stream.h"
#include "proto/registry_v1.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>

/* The event types a ?type= filter may name. */
/* In the order of enum reg_event_type (rev_observe indexes it with one),
 * then "kv", which must stay last. */
static const char *const rev_types[] = {"register", "deregister",  "expire",
                                        "health",   "maintenance", "kv"};
#define REV_NTYPES   (sizeof(rev_types) / sizeof(rev_types[0]))
#define REV_TYPE_MAX 16               /* bytes of a type name with its NUL */
#define REV_TYPE_KV  (REV_NTYPES - 1) /* rev_types' "kv", the last */
_Static_assert(REG_EV_MAINTENANCE + 1 == REV_NTYPES - 1,
               "rev_types: one name per enum reg_event_type, then kv");
#define REV_INSTANCE (-2) /* a watcher's type: any event of an instance (all but "kv") */

/* One event, shared by the history and the answers that hold it. */
struct rev_event {
    uint64_t index;
    char type[REV_TYPE_MAX];
    char *name;      /* owned; the service name, NULL for none */
    char *id;        /* owned; the instance id, NULL for none */
    char *blob;      /* owned: the SSE frame */
    size_t len;      /* of blob */
    size_t json_off; /* the JSON within blob */
    size_t json_len;
    unsigned refs; /* the history's, plus one per buffer chain */
};

struct rev_name;

/* A watcher: a parked long-poll (req), a parked read of another route
 * (req and wake: rev_park) or an SSE stream (st). */
struct rev_watch {
    struct rev_hub *h;     /* borrowed; NULL once the hub is freed (streams) */
    struct hs_req *req;    /* long-poll: the parked request */
    struct hs_stream *st;  /* SSE: the stream (the server frees it) */
    struct event *timer;   /* long-poll: owned, its deadline */
    uint64_t after;        /* long-poll: the events after this; SSE: sent up to */
    int type;              /* -1: any, REV_INSTANCE, else an index in rev_types */
    struct rev_name *list; /* the name's (or id's) list it is in; NULL: the list of all */
    bool by_id;            /* list is one of h->ids (rev_park with an id) */
    rev_wake_fn wake;      /* rev_park: answers req; NULL: a long-poll of /v1/events */
    void *arg;             /* of wake, the caller's */
    bool caught_up;        /* SSE: the last fill reached the end of the history */
    struct rev_watch *prev, *next;
};

/* The watchers of one service name (or, in h->ids, of one instance id). */
struct rev_name {
    char *name; /* owned: the name or id */
    struct rev_watch *watchers;
    size_t n;
    UT_hash_handle hh;
};

struct rev_hub {
    struct svc *svc; /* borrowed; NULL: history only (tests) */
    struct rev_options opt;
    struct rev_event **ring;   /* owned, opt.history_max slots */
    size_t head, count, bytes; /* oldest at ring[head] */
    uint64_t index;            /* the last event's (the registry's) */
    uint64_t lost;             /* events up to this were lost (out of memory) */
    uint64_t dropped;          /* the last event dropped from the ring's index, or the index
                                  the history began at: every event after it is held (on a
                                  shared store indexes skip the commits that make no event) */
    struct rev_watch *all;     /* watchers of every name (DL) */
    struct rev_name *names;    /* uthash: watchers by name */
    struct rev_name *ids;      /* uthash: rev_park watchers by instance id */
    size_t nwatch;
    bool stopping; /* shutdown began: answer at once, park nothing */
    const struct timeval *ct[LIM_WATCH_JITTER_DIV]; /* common timeouts of the default wait */
    unsigned int seed;
    uint64_t streamed_sse;  /* events written to SSE streams */
    uint64_t streamed_poll; /* events in answers to GET /v1/events (long-poll or not) */
};

/* ---------------------------------------------------------------------- */
/* events */

static void rev_event_unref(struct rev_event *ev)
{
    if (!ev || --ev->refs > 0)
        return;
    free(ev->name);
    free(ev->id);
    free(ev->blob);
    free(ev);
}

/* evbuffer reference cleanup: one chain less holds the event. */
static void rev_ref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    rev_event_unref(arg);
}

/* Append the event's JSON (json) or frame to out by reference. 0 or -1. */
static int rev_event_add(struct rev_event *ev, struct evbuffer *out, bool json)
{
    const char *p = json ? ev->blob + ev->json_off : ev->blob;
    size_t n = json ? ev->json_len : ev->len;

    ev->refs++;
    if (evbuffer_add_reference(out, p, n, rev_ref_cleanup, ev) != 0) {
        ev->refs--;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* the history */

static struct rev_event *rev_at(const struct rev_hub *h, size_t i)
{
    return h->ring[(h->head + i) % h->opt.history_max];
}

static void rev_drop_oldest(struct rev_hub *h)
{
    struct rev_event *ev = h->ring[h->head];

    h->ring[h->head] = NULL;
    h->head = (h->head + 1) % h->opt.history_max;
    h->count--;
    h->bytes -= ev->len;
    h->dropped = ev->index;
    rev_event_unref(ev);
}

/* The lowest index N the history can give every event after. */
static uint64_t rev_floor(const struct rev_hub *h)
{
    uint64_t f = h->count ? h->dropped : h->index;

    return f > h->lost ? f : h->lost;
}

/* Position of the first event after index n (count when none). */
static size_t rev_find_after(const struct rev_hub *h, uint64_t n)
{
    size_t lo = 0, hi = h->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rev_at(h, mid)->index <= n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether w's filter takes ev. */
static bool rev_matches(const struct rev_watch *w, const struct rev_event *ev)
{
    const char *key = w->by_id ? ev->id : ev->name;

    if (w->type >= 0 && strcmp(ev->type, rev_types[w->type]) != 0)
        return false;
    if (w->type == REV_INSTANCE && strcmp(ev->type, rev_types[REV_TYPE_KV]) == 0)
        return false;
    if (w->list && (!key || strcmp(key, w->list->name) != 0))
        return false;
    return true;
}

/* ---------------------------------------------------------------------- */
/* watchers */

/* Take w out of its list (the name's list goes with its last watcher). */
static void rev_unlist(struct rev_hub *h, struct rev_watch *w)
{
    if (w->list) {
        struct rev_name *nl = w->list;

        DL_DELETE(nl->watchers, w);
        if (--nl->n == 0) {
            if (w->by_id)
                HASH_DEL(h->ids, nl);
            else
                HASH_DEL(h->names, nl);
            free(nl->name);
            free(nl);
        }
        w->list = NULL;
    } else {
        DL_DELETE(h->all, w);
    }
    h->nwatch--;
}

/* Put w into the list of name in *table (h->names or h->ids; name NULL:
 * the list of all). 0 or -1. */
static int rev_enlist_in(struct rev_hub *h, struct rev_name **table, struct rev_watch *w,
                         const char *name)
{
    struct rev_name *nl = NULL;

    if (!name) {
        DL_APPEND(h->all, w);
        h->nwatch++;
        return 0;
    }
    HASH_FIND_STR(*table, name, nl);
    if (!nl) {
        nl = calloc(1, sizeof(*nl));
        if (!nl)
            return -1;
        nl->name = strdup(name);
        if (!nl->name) {
            free(nl);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, *table, nl->name, strlen(nl->name), nl);
    }
    DL_APPEND(nl->watchers, w);
    nl->n++;
    w->list = nl;
    w->by_id = table == &h->ids;
    h->nwatch++;
    return 0;
}

/* Put w into the list of name (NULL: the list of all). 0 or -1. */
static int rev_enlist(struct rev_hub *h, struct rev_watch *w, const char *name)
{
    return rev_enlist_in(h, &h->names, w, name);
}

/* X-Registry-Index: the current index, on req's answer. */
static void rev_index_header(const struct rev_hub *h, struct hs_req *req)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, h->index);
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr); /* the client may have left */
}

/* Answer req with the events after `after` matching w's filter (at most
 * LIM_EVENTS_ANSWER_MAX; "index" is then the last one's, to ask after),
 * and X-Registry-Index. The history covers `after` (checked before). */
static void rev_answer(struct rev_hub *h, struct hs_req *req, const struct rev_watch *w,
                       uint64_t after)
{
    struct evbuffer *out = hs_req_output(req);
    size_t i = rev_find_after(h, after), n = 0;
    uint64_t index = h->index;

    if (evbuffer_add_printf(out, "{\"" REGV1_F_SUCCESS "\":true,\"events\":[") < 0)
        goto oom;
    for (; i < h->count; i++) {
        struct rev_event *ev = rev_at(h, i);

        if (!rev_matches(w, ev))
            continue;
        if (n == LIM_EVENTS_ANSWER_MAX) {
            index = rev_at(h, i - 1)->index;
            break;
        }
        if ((n > 0 && evbuffer_add(out, ",", 1) != 0) || rev_event_add(ev, out, true) != 0)
            goto oom;
        n++;
    }
    h->streamed_poll += n;
    if (evbuffer_add_printf(out, "],\"index\":%" PRIu64 "}", index) < 0)
        goto oom;
    rev_index_header(h, req);
    hs_reply_buffer(req, 200, "application/json", NULL);
    return;
oom:
    evbuffer_drain(out, evbuffer_get_length(out));
    hs_reply_oom(req);
}

/* Free a long-poll watcher once its request was answered. */
static void rev_watch_free(struct rev_watch *w)
{
    if (!w)
        return;
    if (w->timer)
        event_free(w->timer);
    free(w);
}

/* Answer a parked long-poll with what the history has for it and forget
 * it. */
static void rev_wake_poll(struct rev_hub *h, struct rev_watch *w)
{
    if (w->wake) {
        /* a parked read of another route: its owner answers; w is gone
         * first so that the answer finds the hub as it is */
        rev_wake_fn wake = w->wake;
        struct hs_req *req = w->req;
        void *arg = w->arg;

        rev_unlist(h, w);
        rev_watch_free(w);
        wake(arg, req);
        return;
    }
    rev_answer(h, w->req, w, w->after); /* the filter needs w's list */
    rev_unlist(h, w);
    w->req = NULL;
    rev_watch_free(w);
}

/* A long-poll's deadline: answer what there is (an empty list). The timer
 * is not persistent and its callback is the last thing that touches it, so
 * freeing it here is safe (libevent allows event_free of a non-pending
 * event from its own callback). */
static void rev_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rev_watch *w = arg;

    (void)fd;
    (void)what;
    rev_wake_poll(w->h, w);
}

/* Send an SSE "reset": the events after the stream's position are gone;
 * it goes on from the current index. */
static void rev_sse_reset(struct rev_hub *h, struct rev_watch *w)
{
    char data[96], id[32];

    snprintf(data, sizeof(data), "{\"oldest_index\":%" PRIu64 ",\"index\":%" PRIu64 "}",
             rev_floor(h) + 1, h->index);
    snprintf(id, sizeof(id), "%" PRIu64, h->index);
    if (hs_stream_event(w->st, id, "reset", data, strlen(data)) != 0)
        return; /* the stream is ending: on_close follows */
    w->after = h->index;
    w->caught_up = true;
}

/* Send a stream the events after its position matching its filter: a
 * backlog while its client keeps up (below the low water: on_drain calls
 * again), new events as they come. */
static void rev_sse_fill(struct rev_watch *w)
{
    struct rev_hub *h = w->h;
    struct evbuffer *buf = NULL;
    size_t i;

    if (!h)
        return;
    if (w->after < rev_floor(h)) {
        /* caught up: every matching event since woke it and was sent, so
         * nothing of it was dropped; else it fell behind the history */
        if (!w->caught_up) {
            rev_sse_reset(h, w);
            return;
        }
        w->after = rev_floor(h);
    }
    buf = evbuffer_new();
    if (!buf) {
        hs_stream_end(w->st);
        return;
    }
    for (i = rev_find_after(h, w->after); i < h->count; i++) {
        struct rev_event *ev = rev_at(h, i);

        /* catching up on the history: no more than the low water at a
         * time (on_drain goes on); live, every event is written, so a
         * client that stopped reading meets the output cap and is dropped */
        if (!w->caught_up && hs_stream_pending(w->st) > LIM_STREAM_OUT_MAX / 4) {
            w->caught_up = false;
            evbuffer_free(buf);
            return;
        }
        if (rev_matches(w, ev)) {
            if (rev_event_add(ev, buf, false) != 0) {
                hs_stream_end(w->st);
                break;
            }
            if (hs_stream_write_buffer(w->st, buf) != 0) {
                /* ending (gone, past the cap): on_close follows */
                evbuffer_drain(buf, evbuffer_get_length(buf));
                break;
            }
            h->streamed_sse++;
        }
        w->after = ev->index;
    }
    if (i == h->count) {
        w->after = h->index;
        w->caught_up = true;
    }
    evbuffer_free(buf);
}

/* hs_stream drain callback: the client took what was sent. */
static void rev_sse_on_drain(struct hs_stream *st, void *arg)
{
    (void)st;
    rev_sse_fill(arg);
}

/* hs_stream close callback: forget the watcher (st is freed after). */
static void rev_sse_on_close(struct hs_stream *st, enum hs_stream_end_reason why, void *arg)
{
    struct rev_watch *w = arg;

    (void)st;
    if (why == HS_STREAM_OVERFLOW)
        log_info("an event stream was dropped: its client did not read %d bytes",
                 LIM_STREAM_OUT_MAX);
    if (w->h)
        rev_unlist(w->h, w);
    free(w);
}

/* Wake the watchers of one list that ev matches. */
static void rev_wake_list(struct rev_hub *h, struct rev_watch **list, const struct rev_event *ev)
{
    struct rev_watch *w, *tmp;

    DL_FOREACH_SAFE (*list, w, tmp) {
        if (!rev_matches(w, ev))
            continue;
        if (w->st)
            rev_sse_fill(w);
        else
            rev_wake_poll(h, w);
    }
}

/* Wake the watchers of key's list in table that ev matches. */
static void rev_wake_key(struct rev_hub *h, struct rev_name *table, const char *key,
                         const struct rev_event *ev)
{
    struct rev_name *nl = NULL;

    if (!key || !table)
        return;
    HASH_FIND_STR(table, key, nl);
    /* the list goes with its last watcher: take the pointer to its head
     * from a copy that outlives it */
    if (nl) {
        struct rev_watch *list = nl->watchers, *w, *tmp;

        DL_FOREACH_SAFE (list, w, tmp) {
            if (!rev_matches(w, ev))
                continue;
            if (w->st)
                rev_sse_fill(w);
            else
                rev_wake_poll(h, w);
        }
    }
}

/* Wake the watchers ev concerns: those of every name, those of its name
 * and those of its instance id. */
static void rev_wake(struct rev_hub *h, const struct rev_event *ev)
{
    if (h->all)
        rev_wake_list(h, &h->all, ev);
    rev_wake_key(h, h->names, ev->name, ev);
    rev_wake_key(h, h->ids, ev->id, ev);
}

/* ---------------------------------------------------------------------- */
/* publishing */

/* The event of index could not be made (out of memory): nobody may
 * believe they saw every event, so the history is cleared past it. Streams
 * are told to reset now; long-polls get 410 when they ask next. Parked
 * long-polls wait on (their events come after it). */
static void rev_lose(struct rev_hub *h, uint64_t index)
{
    struct rev_watch *w, *tmp;
    struct rev_name *nl, *ntmp;

    log_error("out of memory: event %" PRIu64 " lost; watchers behind it will re-read the state",
              index);
    h->index = index;
    while (h->count > 0)
        rev_drop_oldest(h);
    h->lost = index;
    DL_FOREACH_SAFE (h->all, w, tmp)
        if (w->st) {
            w->caught_up = false;
            rev_sse_fill(w);
        }
    HASH_ITER (hh, h->names, nl, ntmp) {
        DL_FOREACH_SAFE (nl->watchers, w, tmp)
            if (w->st) {
                w->caught_up = false;
                rev_sse_fill(w);
            }
    }
}

int rev_publish(struct rev_hub *h, const char *type, uint64_t index, int64_t time_ms,
                const char *name, const char *data, size_t len)
{
    return rev_publish_id(h, type, index, time_ms, name, NULL, data, len);
}

int rev_publish_id(struct rev_hub *h, const char *type, uint64_t index, int64_t time_ms,
                   const char *name, const char *id, const char *data, size_t len)
{
    struct rev_event *ev = calloc(1, sizeof(*ev));
    struct evbuffer *b = evbuffer_new();
    int n = 0;

    h->index = index;
    if (!ev || !b || strlen(type) >= REV_TYPE_MAX)
        goto fail;
    ev->index = index;
    snprintf(ev->type, sizeof(ev->type), "%s", type);
    ev->refs = 1;
    if (name) {
        ev->name = strdup(name);
        if (!ev->name)
            goto fail;
    }
    if (id) {
        ev->id = strdup(id);
        if (!ev->id)
            goto fail;
    }
    n = evbuffer_add_printf(b, "id: %" PRIu64 "\nevent: %s\ndata: ", index, type);
    if (n < 0)
        goto fail;
    ev->json_off = (size_t)n;
    if (evbuffer_add_printf(
            b, "{\"type\":\"%s\",\"index\":%" PRIu64 ",\"timestamp\":%lld,\"data\":", type, index,
            (long long)(time_ms / 1000)) < 0 ||
        evbuffer_add(b, data, len) != 0 || evbuffer_add(b, "}", 1) != 0)
        goto fail;
    ev->json_len = evbuffer_get_length(b) - ev->json_off;
    if (evbuffer_add(b, "\n\n", 2) != 0)
        goto fail;
    ev->len = evbuffer_get_length(b);
    ev->blob = malloc(ev->len);
    if (!ev->blob || evbuffer_remove(b, ev->blob, ev->len) != (int)ev->len)
        goto fail;
    evbuffer_free(b);
    while (h->count > 0 &&
           (h->count == h->opt.history_max || h->bytes + ev->len > h->opt.history_bytes))
        rev_drop_oldest(h);
    h->ring[(h->head + h->count) % h->opt.history_max] = ev;
    h->count++;
    h->bytes += ev->len;
    rev_wake(h, ev);
    return 0;
fail:
    if (ev) {
        free(ev->name);
        free(ev->id);
        free(ev->blob);
        free(ev);
    }
    hs_buffer_free(b);
    rev_lose(h, index);
    return -1;
}

void rev_observe(void *arg, const struct reg_event *ev)
{
    struct rev_hub *h = arg;
    struct evbuffer *d = evbuffer_new();
    const char *id = reg_instance_id(ev->in);
    int rc = -1;

    if (!d)
        goto done;
    if (evbuffer_add_printf(d, "{\"service_id\":\"%s\",\"service_info\":", id) < 0 ||
        regc_write_instance_once(ev->in, d) != 0)
        goto done;
    if (ev->type == REG_EV_HEALTH) {
        /* check ids are instance ids and a suffix of the same alphabet */
        if (evbuffer_add_printf(d, ",\"check_id\":\"%s\",\"status\":\"%s\",\"previous\":\"%s\"",
                                ev->check_id, regc_health_name(ev->status),
                                regc_health_name(ev->previous)) < 0)
            goto done;
    }
    if (ev->type == REG_EV_MAINTENANCE &&
        evbuffer_add_printf(d, ",\"enable\":%s", ev->maint ? "true" : "false") < 0)
        goto done;
    if (evbuffer_add(d, "}", 1) != 0)
        goto done;
    rc = 0;
done:
    if (rc == 0) {
        size_t len = evbuffer_get_length(d);
        const char *text = (const char *)evbuffer_pullup(d, -1);

        if (text)
            (void)rev_publish_id(h, rev_types[ev->type], ev->index, ev->time_ms,
                                 reg_instance_name(ev->in), id, text, len);
        else
            rev_lose(h, ev->index);
    } else {
        rev_lose(h, ev->index);
    }
    hs_buffer_free(d);
}

/* ---------------------------------------------------------------------- */
/* the route */

int rev_parse_index(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (!*s || strlen(s) > 20)
        return -1;
    for (i = 0; s[i]; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rev_parse_wait(const char *s, int64_t *ms)
{
    int64_t v = 0;

    if (cfg_parse_duration_ms(s, &v) != 0 || v < 0 || v > LIM_WATCH_WAIT_MAX_MS)
        return -1;
    *ms = v;
    return 0;
}

/* Answer 410: the history no longer holds the events after `after` (or
 * `after` is ahead of the index: a watcher of a store that went back). */
static void rev_reply_gone(struct rev_hub *h, struct hs_req *req, uint64_t after)
{
    char msg[256];
    uint64_t oldest = rev_floor(h) + 1;

    if (after > h->index)
        snprintf(msg, sizeof(msg),
                 "index %" PRIu64 " is ahead of the registry's index %" PRIu64
                 " (an index from another registry, or one restarted on an older store); "
                 "re-read the state and watch from index %" PRIu64,
                 after, h->index, h->index);
    else
        snprintf(msg, sizeof(msg),
                 "index %" PRIu64 " is older than the event history (oldest held: %" PRIu64
                 "); re-read the state and watch from index %" PRIu64,
                 after, oldest, h->index);
    rev_index_header(h, req);
    hs_reply_json(req, 410,
                  json_pack("{s:b, s:s, s:I, s:I}", REGV1_F_SUCCESS, 0, REGV1_F_ERROR, msg,
                            "oldest_index", (json_int_t)oldest, "index", (json_int_t)h->index));
}

/* Whether the request asks for an event stream. */
static bool rev_wants_sse(struct hs_req *req)
{
    const char *accept = hs_req_header(req, "Accept");

    return accept && strstr(accept, "text/event-stream") != NULL;
}

/* Start an SSE stream for w, from `from` (has_from: given). */
static void rev_start_sse(struct rev_hub *h, struct hs_req *req, struct rev_watch *w,
                          const char *name, bool has_from, uint64_t from)
{
    struct hs_stream_opts opts = {0};

    if (rev_enlist(h, w, name) != 0) {
        free(w);
        hs_reply_oom(req);
        return;
    }
    rev_index_header(h, req);
    opts.sse = 1;
    opts.heartbeat_ms = LIM_EVENTS_SSE_HEARTBEAT_MS;
    opts.low_water = LIM_STREAM_OUT_MAX / 4;
    opts.on_drain = rev_sse_on_drain;
    opts.on_close = rev_sse_on_close;
    opts.arg = w;
    w->st = hs_stream_start(req, 200, &opts);
    if (!w->st) {
        rev_unlist(h, w);
        free(w);
        return;
    }
    w->caught_up = false;
    if (!has_from || from == 0 || from > h->index) {
        w->after = h->index;
        w->caught_up = true;
        return;
    }
    w->after = from;
    if (from < rev_floor(h)) {
        rev_sse_reset(h, w);
        return;
    }
    rev_sse_fill(w);
}

/* The jittered deadline of a long-poll of wait_ms: arm w->timer. 0 or -1. */
static int rev_arm(struct rev_hub *h, struct rev_watch *w, int64_t wait_ms)
{
    int64_t slice = wait_ms / LIM_WATCH_JITTER_DIV;

    if (wait_ms == LIM_WATCH_WAIT_DEFAULT_MS) {
        unsigned k = (unsigned)rand_r(&h->seed) % LIM_WATCH_JITTER_DIV;

        if (!h->ct[k]) {
            struct timeval tv;
            int64_t ms = wait_ms + slice * (int64_t)k / LIM_WATCH_JITTER_DIV;

            tv.tv_sec = (time_t)(ms / 1000);
            tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
            h->ct[k] = event_base_init_common_timeout(svc_base(h->svc), &tv);
        }
        if (h->ct[k])
            return event_add(w->timer, h->ct[k]);
    }
    if (slice > 0)
        wait_ms += (int64_t)((unsigned)rand_r(&h->seed) % (unsigned)(slice + 1));
    return clk_timer_in(w->timer, wait_ms);
}

void rev_watch(struct rev_hub *h, struct hs_req *req)
{
    const char *index_s = hs_req_query(req, REGV1_Q_INDEX);
    const char *wait_s = hs_req_query(req, REGV1_Q_WAIT);
    const char *type_s = hs_req_query(req, REGV1_Q_TYPE);
    const char *name = hs_req_query(req, REGV1_Q_NAME);
    const char *last_id = hs_req_header(req, "Last-Event-ID");
    bool sse = rev_wants_sse(req);
    struct rev_watch *w = NULL;
    uint64_t after = 0;
    int64_t wait_ms = LIM_WATCH_WAIT_DEFAULT_MS;
    int type = -1;
    size_t i;

    rev_index_header(h, req); /* on every answer, errors too (replaced when a late one is sent) */
    if (index_s && rev_parse_index(index_s, &after) != 0) {
        hs_reply_error(req, 400, "index must be a decimal number from 0 to %" PRIu64, UINT64_MAX);
        return;
    }
    if (sse && last_id && rev_parse_index(last_id, &after) != 0) {
        hs_reply_error(req, 400, "Last-Event-ID must be an event index (a decimal number)");
        return;
    }
    if (wait_s && rev_parse_wait(wait_s, &wait_ms) != 0) {
        hs_reply_error(req, 400,
                       "wait must be a duration such as 30s or 5m, at most %d m (a bare number "
                       "is seconds)",
                       LIM_WATCH_WAIT_MAX_MS / 60000);
        return;
    }
    if (type_s) {
        for (i = 0; i < REV_NTYPES && type < 0; i++)
            if (strcmp(type_s, rev_types[i]) == 0)
                type = (int)i;
        if (type < 0) {
            hs_reply_error(req, 400,
                           "type must be one of register, deregister, expire, health, "
                           "maintenance, kv");
            return;
        }
    }
    if (name && !regv1_name_valid(name)) {
        hs_reply_error(req, 400, "name must be a service name ([A-Za-z0-9._-], 1 to %d)",
                       LIM_NAME_MAX);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->h = h;
    w->type = type;
    if (sse) {
        rev_start_sse(h, req, w, name, index_s || last_id, after);
        return;
    }
    /* a long-poll: index 0 (or none) asks for the current index only */
    if (!index_s || after == 0) {
        rev_answer(h, req, w, h->index);
        free(w);
        return;
    }
    if (after < rev_floor(h) || after > h->index) {
        free(w);
        rev_reply_gone(h, req, after);
        return;
    }
    if (rev_enlist(h, w, name) != 0) {
        free(w);
        hs_reply_oom(req);
        return;
    }
    /* events already there: answer at once */
    for (i = rev_find_after(h, after); i < h->count; i++)
        if (rev_matches(w, rev_at(h, i)))
            break;
    w->after = after;
    w->req = req;
    if (i < h->count || wait_ms == 0 || h->stopping || !h->svc) {
        rev_wake_poll(h, w);
        return;
    }
    w->timer = evtimer_new(svc_base(h->svc), rev_deadline_cb, w);
    if (!w->timer || rev_arm(h, w, wait_ms) != 0) {
        rev_unlist(h, w);
        rev_watch_free(w);
        hs_reply_oom(req);
        return;
    }
}

int rev_park(struct rev_hub *h, struct hs_req *req, uint64_t index, int64_t wait_ms,
             const char *name, const char *id, rev_wake_fn wake, void *arg)
{
    struct rev_watch *w = NULL;
    size_t i;
    int rc = 0;

    if (index < rev_floor(h) || wait_ms == 0 || h->stopping || !h->svc)
        return 0;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->h = h;
    w->type = REV_INSTANCE;
    rc = id ? rev_enlist_in(h, &h->ids, w, id) : rev_enlist(h, w, name);
    if (rc != 0) {
        free(w);
        return -1;
    }
    /* a change after index already in the history: answer now */
    for (i = rev_find_after(h, index); i < h->count; i++)
        if (rev_matches(w, rev_at(h, i)))
            break;
    if (i < h->count) {
        rev_unlist(h, w);
        free(w);
        return 0;
    }
    w->after = index;
    w->timer = evtimer_new(svc_base(h->svc), rev_deadline_cb, w);
    if (!w->timer || rev_arm(h, w, wait_ms) != 0) {
        rev_unlist(h, w);
        rev_watch_free(w);
        return -1;
    }
    w->req = req;
    w->wake = wake;
    w->arg = arg;
    return 1;
}

/* ---------------------------------------------------------------------- */

/* Answer the parked long-polls of every list in *table; their count. */
static size_t rev_stop_table(struct rev_hub *h, struct rev_name **table)
{
    struct rev_watch *w, *tmp;
    struct rev_name *nl, *ntmp;
    size_t n = 0;

    HASH_ITER (hh, *table, nl, ntmp) {
        struct rev_watch *list = nl->watchers;

        /* the name's list may go with its last watcher: walk a copy */
        DL_FOREACH_SAFE (list, w, tmp)
            if (!w->st) {
                rev_wake_poll(h, w);
                n++;
            }
    }
    return n;
}

/* Stop hook: answer every parked long-poll and read now (streams are
 * ended by the server), and park nothing from now on. */
static void rev_on_stop(void *arg)
{
    struct rev_hub *h = arg;
    struct rev_watch *w, *tmp;
    size_t n = 0;

    h->stopping = true;
    DL_FOREACH_SAFE (h->all, w, tmp)
        if (!w->st) {
            rev_wake_poll(h, w);
            n++;
        }
    n += rev_stop_table(h, &h->names);
    n += rev_stop_table(h, &h->ids);
    if (n)
        log_info("answered %zu parked watches for the shutdown", n);
}

/* mtr_collect_fn: the events handed to watchers (arg: the hub). */
static void rev_collect(struct evbuffer *out, void *arg)
{
    const struct rev_hub *h = arg;

    evbuffer_add_printf(out,
                        "# HELP registry_events_streamed_total Events sent to watchers of "
                        "/v1/events, by how: SSE streams or JSON answers.\n"
                        "# TYPE registry_events_streamed_total counter\n"
                        "registry_events_streamed_total{via=\"sse\"} %" PRIu64 "\n"
                        "registry_events_streamed_total{via=\"json\"} %" PRIu64 "\n",
                        h->streamed_sse, h->streamed_poll);
}

struct rev_hub *rev_hub_new(struct svc *svc, const struct rev_options *opt)
{
    struct rev_hub *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    if (opt)
        h->opt = *opt;
    if (!h->opt.history_max)
        h->opt.history_max = LIM_EVENTS_HISTORY_MAX;
    if (!h->opt.history_bytes)
        h->opt.history_bytes = LIM_EVENTS_HISTORY_BYTES;
    h->svc = svc;
    h->index = h->opt.index;
    h->seed = (unsigned int)time(NULL) ^ (unsigned int)clock();
    h->ring = calloc(h->opt.history_max, sizeof(*h->ring));
    if (!h->ring || (svc && (svc_on_stop(svc, rev_on_stop, h) != 0 ||
                             mtr_add_collector(svc_metrics(svc), rev_collect, h) != 0))) {
        free(h->ring);
        free(h);
        return NULL;
    }
    return h;
}

void rev_hub_set_index(struct rev_hub *h, uint64_t index) { h->index = h->dropped = index; }

uint64_t rev_hub_index(const struct rev_hub *h) { return h->index; }

size_t rev_hub_watchers(const struct rev_hub *h) { return h->nwatch; }

size_t rev_hub_held(const struct rev_hub *h, uint64_t *oldest)
{
    *oldest = h->count ? rev_at(h, 0)->index : 0;
    return h->count;
}

void rev_hub_free(struct rev_hub *h)
{
    struct rev_watch *w, *tmp;
    struct rev_name *nl, *ntmp;

    if (!h)
        return;
    if (h->svc) {
        rev_on_stop(h); /* long-polls still parked are answered */
        svc_remove_hooks(h->svc, h);
    }
    /* streams end with the server; their close callback finds no hub */
    DL_FOREACH_SAFE (h->all, w, tmp) {
        DL_DELETE(h->all, w);
        w->h = NULL;
    }
    HASH_ITER (hh, h->names, nl, ntmp) {
        DL_FOREACH_SAFE (nl->watchers, w, tmp) {
            DL_DELETE(nl->watchers, w);
            w->h = NULL;
            w->list = NULL;
        }
        HASH_DEL(h->names, nl);
        free(nl->name);
        free(nl);
    }
    while (h->count > 0)
        rev_drop_oldest(h);
    free(h->ring);
    free(h);
}
