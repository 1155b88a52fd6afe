/* routes.c: the /logging handlers (see routes.h): the HTTP side only. A
 * POST body is read (jsonflat when it has the common shape, else jansson),
 * its items are checked and applied by ingest.c, and the answer is written
 * here: 503 when ingest could not keep them (journal write failed: nothing
 * kept). A plain GET /logging is streamed piece by piece as the client
 * takes it; a page (?after=&limit=) is one buffered answer. */
#include "routes.h"

#include "auth/guard.h"
#include "codec/jsonerr.h"
#include "codec/jsonflat.h"
#include "codec/jsonw.h"
#include "codec/uid.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "dedup/store.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "http/stream.h"
#include "http/trace.h"
#include "ingest.h"
#include "journal.h"
#include "lg_limits.h"
#include "proto/messages.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

/* Tokens of the largest batch the fast path reads: the array, and per item
 * an object with four keys (uuid, msg, ts, trace: what the facade sends)
 * and their values. Bigger bodies (more keys) take jansson's path. */
#define LG_TOKS_MAX (1 + (size_t)LG_BATCH_MAX * 9)

struct lg_stream;

struct lg_service {
    struct svc *svc;             /* borrowed */
    struct ig_ingest *ig;        /* borrowed: the store, the journal, the rules */
    struct ds_store *store;      /* borrowed from ig */
    struct jf_tok *toks;         /* owned: LG_TOKS_MAX tokens for the fast path */
    struct ig_item *items;       /* owned: LG_BATCH_MAX items, scratch of one POST */
    bool items_busy;             /* items is lent out (see lg_items_new) */
    struct lg_stream *streams;   /* open streamed GETs (utlist DL); they borrow lg */
    char epoch[UID_STR_LEN + 1]; /* this store's incarnation, new at every start */
    const struct acl *acl;       /* borrowed; NULL: anyone may write */
};

/* ig_check_item of a jansson value (borrowed; it->msg points into it). */
static int lg_parse_item(const json_t *obj, int64_t now, struct ig_item *it)
{
    struct ig_fields f;

    ig_fields_json(obj, &f);
    return ig_check_item(&f, now, it);
}

/* Store one valid item and answer: 201, 200 (duplicate), 409 or 503. */
static void lg_answer_one(struct lg_service *lg, struct hs_req *req, struct ig_item *it)
{
    char err[256];

    if (ig_apply(lg->ig, it, 1, err, sizeof(err)) != 0) {
        log_error("message %s not stored: %s", it->uuid, err);
        hs_reply_error(req, 503, "message not stored: %s", err);
        return;
    }
    if (it->status == 409) {
        hs_reply_json(
            req, 409,
            json_pack("{s:b, s:s, s:s}", "success", 0, "error", it->error, "uuid", it->uuid));
        return;
    }
    hs_reply_json(req, it->status,
                  json_pack("{s:b, s:s, s:b}", "success", 1, "uuid", it->uuid, "duplicate",
                            it->status == 200));
}

/* POST /logging with one object: 201, 200 (duplicate), 409, 400 or 503. */
static void lg_post_one(struct lg_service *lg, struct hs_req *req, const json_t *obj)
{
    struct ig_item it;

    if (lg_parse_item(obj, clk_wall_ms(), &it) != 0) {
        hs_reply_error(req, 400, "%s", it.error);
        return;
    }
    lg_answer_one(lg, req, &it);
}

/* json_dump_callback sink into an evbuffer. */
static int lg_dump_evbuffer(const char *data, size_t n, void *arg)
{
    return evbuffer_add(arg, data, n);
}

/* The result object of one batch item, or NULL when out of memory. */
static json_t *lg_result(const struct ig_item *it, const json_t *obj)
{
    const json_t *given = json_object_get(obj, "uuid"); /* NULL for non-objects */
    json_t *res = NULL;
    json_t *uuid = NULL;

    if (it->has_uuid)
        uuid = json_string(it->uuid);
    else if (json_is_string(given))
        uuid = json_incref((json_t *)given);
    else
        uuid = json_null();
    res = json_pack("{s:o, s:i, s:b}", "uuid", uuid, "status", it->status, "duplicate",
                    it->status == 200);
    if (res && it->error[0] && json_object_set_new(res, "error", json_string(it->error)) != 0) {
        json_decref(res);
        return NULL;
    }
    return res;
}

#define LG_BATCH_HEAD "{\"success\":true,\"results\":["

/* Store the valid ones of items[0..n) (checked: invalid ones carry their
 * 400) and answer 200 with one result per item, in order, or 503 when the
 * journal write fails (then nothing of the batch is stored). arr is the
 * posted array when jansson read it (its items' given uuids are echoed in
 * the rare results), or NULL. */
static void lg_answer_batch(struct lg_service *lg, struct hs_req *req, struct ig_item *items,
                            size_t n, const json_t *arr)
{
    struct evbuffer *out = NULL;
    char err[256];
    size_t i;
    int bad;

    if (ig_apply(lg->ig, items, n, err, sizeof(err)) != 0) {
        log_error("batch of %zu messages not stored: %s", n, err);
        hs_reply_error(req, 503, "batch not stored: %s", err);
        return;
    }
    /* Straight into the reply: the common results written by hand, the rare
     * ones (errors, odd uuids) through jansson for their escaping. */
    out = hs_req_output(req);
    bad = evbuffer_add(out, LG_BATCH_HEAD, sizeof(LG_BATCH_HEAD) - 1) != 0;
    for (i = 0; i < n && !bad; i++) {
        const struct ig_item *it = &items[i];
        json_t *res;

        if (it->has_uuid && !it->error[0]) {
            char tmp[PM_RESULT_MAX];

            bad |= evbuffer_add(out, tmp, pm_result_put(tmp, i > 0, it->uuid, it->status)) != 0;
            continue;
        }
        if (i > 0)
            bad |= evbuffer_add(out, ",", 1) != 0;
        res = lg_result(it, arr ? json_array_get(arr, i) : NULL);
        bad |= !res || json_dump_callback(res, lg_dump_evbuffer, out, JSON_COMPACT) != 0;
        json_decref(res);
    }
    if (!bad)
        bad = evbuffer_add(out, "]}", 2) != 0;
    if (bad) {
        /* The messages are stored; only the answer could not be built. */
        hs_reply_oom(req); /* drains what was written */
        return;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
}

/* Room for n items (n <= LG_BATCH_MAX): the service's scratch array when
 * it is free (requests are handled one at a time, so it always is), else
 * a fresh one. Give it back with lg_items_free. */
static struct ig_item *lg_items_new(struct lg_service *lg, size_t n)
{
    if (!lg->items_busy && lg->items) {
        lg->items_busy = true;
        return lg->items;
    }
    return calloc(n, sizeof(struct ig_item));
}

static void lg_items_free(struct lg_service *lg, struct ig_item *items)
{
    if (items == lg->items)
        lg->items_busy = false;
    else
        free(items);
}

/* The batch-size rules of POST /logging: 400 for an empty array, 413 past
 * LG_BATCH_MAX items. Returns true when n is fine, else has answered. */
static bool lg_batch_size_ok(struct hs_req *req, size_t n)
{
    if (n == 0) {
        hs_reply_error(req, 400, "empty batch: send at least one message");
        return false;
    }
    if (n > LG_BATCH_MAX) {
        hs_reply_error(req, 413, "batch of %zu messages is over the limit of %d", n, LG_BATCH_MAX);
        return false;
    }
    return true;
}

/* POST /logging with an array read by jansson (see lg_answer_batch). */
static void lg_post_batch(struct lg_service *lg, struct hs_req *req, const json_t *arr)
{
    size_t n = json_array_size(arr);
    struct ig_item *items = NULL;
    int64_t now = clk_wall_ms();
    size_t i;

    if (!lg_batch_size_ok(req, n))
        return;
    items = lg_items_new(lg, n);
    if (!items) {
        hs_reply_oom(req);
        return;
    }
    for (i = 0; i < n; i++)
        (void)lg_parse_item(json_array_get(arr, i), now, &items[i]);
    lg_answer_batch(lg, req, items, n, arr);
    lg_items_free(lg, items);
}

/* The fast path of POST /logging: a body in jsonflat's subset (an object,
 * or an array of objects, within the size rules) whose items are all valid
 * is stored and answered here, without building a jansson tree. Returns
 * false, having answered nothing, for anything else: jansson then reads
 * the body, and every error is reported by one code path. */
static bool lg_post_flat(struct lg_service *lg, struct hs_req *req)
{
    const struct jf_tok *toks = lg->toks;
    struct ig_item one, *items = NULL;
    struct ig_fields f;
    int64_t now = clk_wall_ms();
    size_t len = 0, n, i, k;
    const char *body = hs_req_body(req, &len);

    if (!body || jf_parse(body, len, lg->toks, LG_TOKS_MAX, NULL) != JF_OK)
        return false;
    if (toks[0].type == JF_OBJECT) {
        ig_fields_flat(toks, 0, &f);
        if (ig_check_item(&f, now, &one) != 0)
            return false;
        lg_answer_one(lg, req, &one);
        return true;
    }
    n = toks[0].count;
    if (n == 0 || n > LG_BATCH_MAX)
        return false;
    items = lg_items_new(lg, n);
    if (!items)
        return false;
    for (i = 0, k = 1; i < n; i++, k = toks[k].end) {
        ig_fields_flat(toks, k, &f);
        if (ig_check_item(&f, now, &items[i]) != 0) {
            lg_items_free(lg, items);
            return false;
        }
    }
    lg_answer_batch(lg, req, items, n, NULL);
    lg_items_free(lg, items);
    return true;
}

static void lg_post_traced(struct hs_req *req, struct lg_service *lg);

/* The trace id of req's valid traceparent into trace ("" when it has
 * none; logging does not start traces: its callers do). */
static void lg_req_trace(const struct hs_req *req, char trace[TRC_TRACE_ID_LEN + 1])
{
    if (trc_parse(hs_req_header(req, TRC_HEADER), trace, NULL) != 0)
        trace[0] = '\0';
}

/* POST /logging: one message object or an array of them; the lines about
 * the request carry its traceparent's trace (each stored message's line
 * its own item's, ingest.c). */
static void lg_post(struct hs_req *req, void *arg)
{
    char trace[TRC_TRACE_ID_LEN + 1], prev[LOG_TRACE_MAX + 1];

    lg_req_trace(req, trace);
    log_trace_set(trace, prev);
    lg_post_traced(req, arg);
    log_trace_set(prev, NULL);
}

/* lg_post's work. */
static void lg_post_traced(struct hs_req *req, struct lg_service *lg)
{
    char err[256];
    json_t *root = NULL;
    json_error_t jerr;
    const char *body;
    size_t len;

    /* Only a token with the write right stores messages (the facade's peer
     * token): nothing is read before the check. */
    if (!guard_request(lg->acl, req, ACL_WRITE_ANY, NULL))
        return;
    if (lg_post_flat(lg, req))
        return;
    root = hs_req_json(req, &jerr);
    if (!root) {
        body = hs_req_body(req, &len);
        hs_reply_error(req, 400, "%s",
                       jerr_describe(&jerr, body, len, "request body", err, sizeof(err)));
        return;
    }
    if (json_is_object(root))
        lg_post_one(lg, req, root);
    else if (json_is_array(root))
        lg_post_batch(lg, req, root);
    else
        hs_reply_error(req, 400,
                       "body must be a JSON object {\"uuid\": ..., \"msg\": ...} "
                       "or an array of them");
    json_decref(root);
}

/* Read the query value of key as a decimal integer in [min, max] into *out
 * (untouched when the key is absent). Returns 0, or -1 having answered 400. */
static int lg_query_uint(struct hs_req *req, const char *key, uint64_t min, uint64_t max,
                         uint64_t *out)
{
    const char *v = hs_req_query(req, key);
    uint64_t n = 0;
    size_t i;

    if (!v)
        return 0;
    for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 19; i++)
        n = n * 10 + (uint64_t)(v[i] - '0');
    if (i == 0 || v[i] != '\0' || n < min || n > max) {
        hs_reply_error(req, 400,
                       "query '%s' must be an integer from %" PRIu64 " to %" PRIu64 ", got '%.32s'",
                       key, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* Write the messages at positions [from, to) of the store into o, each
 * after a comma but the first of the answer (first). Returns the position
 * after the last one written: to, or less when bytes (0: no bound) were
 * passed first, or when out of memory (o->failed). */
static size_t lg_put_range(struct lg_service *lg, struct pm_out *o, size_t from, size_t to,
                           size_t bytes, bool first)
{
    struct ds_view v;
    struct pm_record rec;
    size_t i, written = 0, n;

    for (i = from; i < to; i++) {
        if (bytes && written >= bytes)
            break;
        if (!ds_at(lg->store, i, &v))
            break;
        rec.uuid = v.uuid;
        rec.msg = v.msg;
        rec.len = v.len;
        rec.ts = v.ts;
        rec.trace = ig_trace_at(lg->ig, i);
        n = pm_record_put(o, &rec, !(first && i == from));
        if (n == 0)
            break;
        written += n;
    }
    return i;
}

/* GET /logging?after=N&limit=L: the page of messages at positions N ..
 * N+L-1 of the order first stored, at most LIM_PAGE_BYTES of records (one
 * message past it), with the epoch, the position to go on from and whether
 * more remain. */
static void lg_get_page(struct lg_service *lg, struct hs_req *req)
{
    uint64_t after = 0, limit = LIM_PAGE_DEFAULT;
    size_t count = ds_count(lg->store), from, to, end;
    struct evbuffer *out = NULL;
    struct pm_out o;

    if (lg_query_uint(req, "after", 0, UINT64_MAX / 2, &after) != 0 ||
        lg_query_uint(req, "limit", 1, LIM_PAGE_MAX, &limit) != 0)
        return;
    from = after < count ? (size_t)after : count;
    to = count - from < limit ? count : from + (size_t)limit;
    out = hs_req_output(req);
    pm_out_init(&o, out);
    end = to;
    if (pm_page_begin(&o, lg->epoch) == 0)
        end = lg_put_range(lg, &o, from, to, LIM_PAGE_BYTES, true);
    if (o.failed || pm_page_end(&o, after < count ? end : after, end < count) != 0 ||
        pm_out_finish(&o) != 0) {
        hs_reply_oom(req); /* drains what was written */
        return;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
}

/* A plain GET /logging being streamed: the list as it was when the GET
 * began (positions [0, count) of the store; messages stored meanwhile are
 * not in it, and the store only grows between loop turns, so those
 * positions stay valid), written a few pieces at a time as the client
 * takes them. */
struct lg_stream {
    struct lg_service *lg;         /* borrowed; NULL once lg_free ran */
    struct hs_stream *st;          /* the stream (the server frees it after on_close) */
    struct evbuffer *pieces;       /* owned: the pieces of one round, handed to st */
    size_t pos;                    /* next position to write */
    size_t count;                  /* ds_count when the GET began: the end of the answer */
    bool began;                    /* the list's head was written */
    bool done;                     /* ended (or failed): write nothing more */
    struct lg_stream *prev, *next; /* in lg->streams */
};

/* Write the records from position ls->pos on into o while they fit in the
 * current piece (at least one), then the list's tail after the last one.
 * Returns 0, or -1 when out of memory (o->failed). */
static int lg_stream_piece(struct lg_stream *ls, struct pm_out *o)
{
    struct ds_view v;
    struct pm_record rec;
    size_t wrote = 0, need;

    if (!ls->began) {
        if (pm_list_begin(o) != 0)
            return -1;
        ls->began = true;
    }
    while (ls->pos < ls->count) {
        if (!ds_at(ls->lg->store, ls->pos, &v)) {
            ls->count = ls->pos; /* cannot happen (the store only grows): end here */
            break;
        }
        rec.trace = ig_trace_at(ls->lg->ig, ls->pos);
        need = jw_message_len(v.uuid, v.msg, v.len) + 1 + (rec.trace ? PM_TRACE_PUT_MAX : 0);
        if (wrote > 0 && (!o->chunk || o->cap - o->len < need))
            break; /* the next one starts the next piece, in the next round */
        rec.uuid = v.uuid;
        rec.msg = v.msg;
        rec.len = v.len;
        rec.ts = v.ts;
        if (pm_record_put(o, &rec, ls->pos > 0) == 0)
            return -1;
        wrote++;
        ls->pos++;
    }
    if (ls->pos >= ls->count && pm_list_end(o) != 0)
        return -1;
    return pm_out_finish(o);
}

/* Write pieces to the stream until the client has LG_STREAM_LOW_WATER
 * bytes or more to take (on_drain calls again once it took them), and end
 * the stream after the list's tail. A piece that cannot be made (out of
 * memory) ends the stream without the tail, so the client sees JSON cut
 * short rather than a shorter list. */
static void lg_stream_fill(struct lg_stream *ls)
{
    struct pm_out o;

    if (ls->done)
        return;
    if (!ls->lg) {
        /* the service is going away: its store with it */
        ls->done = true;
        hs_stream_end(ls->st);
        return;
    }
    while (hs_stream_pending(ls->st) <= LG_STREAM_LOW_WATER) {
        pm_out_init(&o, ls->pieces);
        if (lg_stream_piece(ls, &o) != 0) {
            evbuffer_drain(ls->pieces, evbuffer_get_length(ls->pieces));
            log_error("GET /logging cut short at message %zu of %zu: out of memory", ls->pos,
                      ls->count);
            ls->done = true;
            hs_stream_end(ls->st);
            return;
        }
        if (hs_stream_write_buffer(ls->st, ls->pieces) != 0) {
            /* the stream is ending (client gone, cap passed): on_close follows */
            evbuffer_drain(ls->pieces, evbuffer_get_length(ls->pieces));
            ls->done = true;
            return;
        }
        if (ls->pos >= ls->count) {
            ls->done = true;
            hs_stream_end(ls->st);
            return;
        }
    }
}

/* hs_stream drain callback: the client took the previous pieces. */
static void lg_stream_on_drain(struct hs_stream *st, void *arg)
{
    (void)st;
    lg_stream_fill(arg);
}

/* hs_stream close callback: forget ls (st is freed by the server after). */
static void lg_stream_on_close(struct hs_stream *st, enum hs_stream_end_reason why, void *arg)
{
    struct lg_stream *ls = arg;

    (void)st;
    if (why != HS_STREAM_ENDED && why != HS_STREAM_SHUTDOWN)
        log_debug("GET /logging ended at message %zu of %zu: %s", ls->pos, ls->count,
                  why == HS_STREAM_GONE ? "client gone" : "client too slow");
    if (ls->lg)
        DL_DELETE(ls->lg->streams, ls);
    hs_buffer_free(ls->pieces);
    free(ls);
}

/* GET /logging: {"success": true, "messages": [{uuid, msg, ts}...]} in the
 * order first stored; with after= or limit=, one page (lg_get_page). The
 * whole list is streamed (chunked) in off-heap pieces (proto/messages.h),
 * made only as the client takes the previous ones, so a client holds at
 * most about LG_STREAM_LOW_WATER plus a round of pieces, and one that does
 * not read never more than the stream's cap (LIM_STREAM_OUT_MAX). */
static void lg_get(struct hs_req *req, void *arg)
{
    struct lg_service *lg = arg;
    struct lg_stream *ls = NULL;
    struct hs_stream_opts opts = {0};

    if (hs_req_query(req, "after") || hs_req_query(req, "limit")) {
        lg_get_page(lg, req);
        return;
    }
    ls = calloc(1, sizeof(*ls));
    if (ls)
        ls->pieces = evbuffer_new();
    if (!ls || !ls->pieces) {
        if (ls)
            free(ls);
        hs_reply_oom(req);
        return;
    }
    ls->lg = lg;
    ls->count = ds_count(lg->store);
    opts.content_type = "application/json";
    opts.low_water = LG_STREAM_LOW_WATER;
    opts.on_drain = lg_stream_on_drain;
    opts.on_close = lg_stream_on_close;
    opts.arg = ls;
    ls->st = hs_stream_start(req, 200, &opts);
    if (!ls->st) {
        /* req was answered (500) and freed */
        hs_buffer_free(ls->pieces);
        free(ls);
        return;
    }
    DL_APPEND(lg->streams, ls);
    lg_stream_fill(ls);
}

/* GET /health: 200 {"success":true,"status":"ok"} while the journal keeps
 * what it is given, else 503 {"success":false,"status":"degraded","error":
 * "journal: <why>"} (see jn_health). Overrides the server's built-in. */
static void lg_health(struct hs_req *req, void *arg)
{
    struct lg_service *lg = arg;
    char why[JN_FAIL_MAX + 64];
    char error[sizeof(why) + 16];

    if (jn_health(ig_journal(lg->ig), why, sizeof(why)) == 0) {
        hs_reply_json(req, 200,
                      json_pack("{s:b, s:s, s:I}", "success", 1, "status", "ok", "timestamp",
                                (json_int_t)(clk_wall_ms() / 1000)));
        return;
    }
    snprintf(error, sizeof(error), "journal: %s", why);
    hs_reply_json(req, 503,
                  json_pack("{s:b, s:s, s:s}", "success", 0, "status", "degraded", "error", error));
}

/* The service's series for GET /metrics. */
static void lg_collect(struct evbuffer *out, void *arg)
{
    struct lg_service *lg = arg;
    struct jn_stats st;
    struct ig_stats ig;

    char why[JN_FAIL_MAX + 64];
    int degraded = jn_health(ig_journal(lg->ig), why, sizeof(why)) != 0;

    jn_get_stats(ig_journal(lg->ig), &st);
    ig_get_stats(lg->ig, &ig);
    evbuffer_add_printf(
        out,
        "# HELP logging_messages_stored Messages stored (replayed or posted).\n"
        "# TYPE logging_messages_stored gauge\n"
        "logging_messages_stored %zu\n"
        "# HELP logging_messages_stored_total Messages posted and stored (201) since start.\n"
        "# TYPE logging_messages_stored_total counter\n"
        "logging_messages_stored_total %" PRIu64 "\n"
        "# HELP logging_duplicates_total Messages posted again with the same uuid and msg.\n"
        "# TYPE logging_duplicates_total counter\n"
        "logging_duplicates_total %" PRIu64 "\n"
        "# HELP logging_conflicts_total Messages refused: uuid stored with another msg.\n"
        "# TYPE logging_conflicts_total counter\n"
        "logging_conflicts_total %" PRIu64 "\n"
        "# HELP logging_store_failures_total Posts refused with 503 (journal write failed).\n"
        "# TYPE logging_store_failures_total counter\n"
        "logging_store_failures_total %" PRIu64 "\n"
        "# HELP logging_journal_writes_total write(2) calls appending to the journal.\n"
        "# TYPE logging_journal_writes_total counter\n"
        "logging_journal_writes_total %" PRIu64 "\n"
        "# HELP logging_journal_syncs_total fdatasync calls on the journal.\n"
        "# TYPE logging_journal_syncs_total counter\n"
        "logging_journal_syncs_total %" PRIu64 "\n"
        "# HELP logging_journal_degraded 1 while GET /health answers 503 (journal writes fail).\n"
        "# TYPE logging_journal_degraded gauge\n"
        "logging_journal_degraded %d\n",
        ds_count(lg->store), ig.stored, ig.duplicates, ig.conflicts, ig.write_failures, st.writes,
        st.syncs, degraded);
}

struct lg_service *lg_new(struct svc *svc, struct ig_ingest *ig, const struct acl *acl)
{
    struct lg_service *lg = calloc(1, sizeof(*lg));

    if (!lg)
        return NULL;
    lg->svc = svc;
    lg->ig = ig;
    lg->acl = acl;
    lg->store = ig_store(ig);
    uid_generate(lg->epoch);
    lg->toks = malloc(LG_TOKS_MAX * sizeof(*lg->toks));
    lg->items = malloc(LG_BATCH_MAX * sizeof(*lg->items));
    if (!lg->toks || !lg->items || hs_route(svc_http(svc), HS_POST, "/logging", lg_post, lg) != 0 ||
        hs_route(svc_http(svc), HS_GET, "/logging", lg_get, lg) != 0 ||
        hs_route(svc_http(svc), HS_GET | HS_HEAD, "/health", lg_health, lg) != 0 ||
        mtr_add_collector(svc_metrics(svc), lg_collect, lg) != 0) {
        lg_free(lg);
        return NULL;
    }
    return lg;
}

void lg_free(struct lg_service *lg)
{
    struct lg_stream *ls, *tmp;

    if (lg) {
        /* Streams still open end without their store (see lg_stream_fill). */
        DL_FOREACH_SAFE (lg->streams, ls, tmp) {
            DL_DELETE(lg->streams, ls);
            ls->lg = NULL;
        }
        free(lg->toks);
        free(lg->items);
    }
    free(lg);
}
