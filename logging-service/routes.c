/* routes.c: the /logging handlers (see routes.h). A POST is validated item
 * by item, applied to the message store, and the new messages' lines are
 * appended to the journal in one write before anything is answered; when
 * that write fails the new messages are taken back out of the store and the
 * client gets 503, so memory and disk always agree. */
#include "routes.h"

#include "httpserver.h"
#include "journal.h"
#include "jsonw.h"
#include "lg_limits.h"
#include "log.h"
#include "metrics.h"
#include "msgstore.h"
#include "service.h"
#include "uid.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LG_ERROR_MAX 192 /* bytes of one item's error text */

struct lg_service {
    struct svc *svc;            /* borrowed */
    struct ms_store *store;     /* borrowed */
    struct jn_journal *journal; /* borrowed */
    uint64_t duplicates;        /* posts answered "duplicate" */
    uint64_t conflicts;         /* posts refused with 409 */
    uint64_t write_failures;    /* posts refused with 503 */
};

/* One posted message on its way through validation and the store. */
struct lg_item {
    char uuid[UID_STR_LEN + 1]; /* lower case; "" when the item had no usable uuid */
    bool has_uuid;              /* the item carried a string uuid (echoed back) */
    const char *msg;            /* borrowed from the request's JSON */
    size_t len;
    int64_t ts;
    int status;                 /* 0 until decided; then 201, 200, 409 or 400 */
    char error[LG_ERROR_MAX];   /* for 400 and 409 */
};

/* Validate one posted object into *it (strings borrowed from obj). Returns
 * 0, or -1 with it->status 400 and it->error saying what is wrong. */
static int lg_parse_item(const json_t *obj, int64_t now, struct lg_item *it)
{
    const json_t *uuid = NULL;
    const json_t *msg = NULL;
    const json_t *ts = NULL;

    memset(it, 0, sizeof(*it));
    it->status = 400;
    if (!json_is_object(obj)) {
        snprintf(it->error, sizeof(it->error), "a message must be a JSON object with "
                 "\"uuid\" and \"msg\"");
        return -1;
    }
    uuid = json_object_get(obj, "uuid");
    msg = json_object_get(obj, "msg");
    ts = json_object_get(obj, "ts");
    if (json_is_string(uuid) && uid_is_valid(json_string_value(uuid))) {
        uid_normalize(json_string_value(uuid), it->uuid);
        it->has_uuid = true;
    }
    if (!uuid) {
        snprintf(it->error, sizeof(it->error), "field 'uuid' is required");
    } else if (!json_is_string(uuid)) {
        snprintf(it->error, sizeof(it->error), "field 'uuid' must be a string");
    } else if (!it->has_uuid) {
        snprintf(it->error, sizeof(it->error), "field 'uuid' must be a canonical UUID "
                 "(8-4-4-4-12 hex digits), got '%.64s'", json_string_value(uuid));
    } else if (!msg) {
        snprintf(it->error, sizeof(it->error), "field 'msg' is required");
    } else if (!json_is_string(msg)) {
        snprintf(it->error, sizeof(it->error), "field 'msg' must be a string");
    } else if (json_string_length(msg) == 0) {
        snprintf(it->error, sizeof(it->error), "field 'msg' must not be empty");
    } else if (json_string_length(msg) > LG_MSG_MAX) {
        snprintf(it->error, sizeof(it->error), "field 'msg' is %zu bytes, over the limit "
                 "of %d", json_string_length(msg), LG_MSG_MAX);
    } else if (ts && !json_is_integer(ts)) {
        snprintf(it->error, sizeof(it->error), "field 'ts' must be an integer "
                 "(milliseconds since the epoch)");
    } else if (ts && (json_integer_value(ts) < 0 || json_integer_value(ts) > LG_TS_MAX)) {
        snprintf(it->error, sizeof(it->error), "field 'ts' must be between 0 and %lld, "
                 "got %" JSON_INTEGER_FORMAT, LG_TS_MAX, json_integer_value(ts));
    } else {
        it->msg = json_string_value(msg);
        it->len = json_string_length(msg);
        it->ts = ts ? (int64_t)json_integer_value(ts) : now;
        it->status = 0;
        it->error[0] = '\0';
        return 0;
    }
    return -1;
}

/* Apply the valid items of items[0..n) to the store, then append the new
 * messages to the journal in one write. On success every valid item has its
 * status (201 stored, 200 duplicate, 409 conflict) and 0 is returned. On
 * failure (journal write, memory) the store is as it was before the call
 * and -1 is returned with err filled. */
static int lg_ingest(struct lg_service *lg, struct lg_item *items, size_t n,
                     char *err, size_t errlen)
{
    size_t before = ms_count(lg->store);
    struct jn_record *recs = NULL;
    struct ms_view v;
    enum ms_outcome outcome;
    uint64_t dups = 0, conflicts = 0;
    size_t added, i;
    int rc = -1;

    for (i = 0; i < n; i++) {
        struct lg_item *it = &items[i];

        if (it->status != 0)
            continue;
        if (ms_put(lg->store, it->uuid, it->msg, it->len, it->ts, &outcome) != 0) {
            snprintf(err, errlen, "out of memory");
            goto cleanup;
        }
        if (outcome == MS_STORED) {
            it->status = 201;
        } else if (outcome == MS_DUPLICATE) {
            it->status = 200;
            dups++;
        } else {
            it->status = 409;
            conflicts++;
            snprintf(it->error, sizeof(it->error), "uuid %.36s is already stored with a "
                     "different msg", it->uuid);
        }
    }
    added = ms_count(lg->store) - before;
    if (added > 0) {
        recs = calloc(added, sizeof(*recs));
        if (!recs) {
            snprintf(err, errlen, "out of memory");
            goto cleanup;
        }
        for (i = 0; i < added; i++) {
            if (!ms_at(lg->store, before + i, &v))
                break;
            recs[i].uuid = v.uuid;
            recs[i].msg = v.msg;
            recs[i].len = v.len;
            recs[i].ts = v.ts;
        }
        if (jn_append(lg->journal, recs, added, err, errlen) != 0)
            goto cleanup;
        for (i = 0; i < added; i++)
            log_info("stored %s: %.*s", recs[i].uuid, (int)recs[i].len, recs[i].msg);
    }
    lg->duplicates += dups;
    lg->conflicts += conflicts;
    rc = 0;
cleanup:
    if (rc != 0) {
        ms_truncate(lg->store, before);
        lg->write_failures++;
    }
    free(recs);
    return rc;
}

/* POST /logging with one object: 201, 200 (duplicate), 409, 400 or 503. */
static void lg_post_one(struct lg_service *lg, struct hs_req *req, const json_t *obj)
{
    struct lg_item it;
    char err[256];

    if (lg_parse_item(obj, svc_wall_ms(), &it) != 0) {
        hs_reply_error(req, 400, "%s", it.error);
        return;
    }
    if (lg_ingest(lg, &it, 1, err, sizeof(err)) != 0) {
        log_error("message %s not stored: %s", it.uuid, err);
        hs_reply_error(req, 503, "message not stored: %s", err);
        return;
    }
    if (it.status == 409) {
        hs_reply_json(req, 409, json_pack("{s:b, s:s, s:s}", "success", 0, "error",
                                          it.error, "uuid", it.uuid));
        return;
    }
    hs_reply_json(req, it.status, json_pack("{s:b, s:s, s:b}", "success", 1, "uuid",
                                            it.uuid, "duplicate", it.status == 200));
}

/* json_dump_callback sink into an evbuffer. */
static int lg_dump_evbuffer(const char *data, size_t n, void *arg)
{
    return evbuffer_add(arg, data, n);
}

/* The result object of one batch item, or NULL when out of memory. */
static json_t *lg_result(const struct lg_item *it, const json_t *obj)
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
/* Longest common result: a comma, the object with a 36-character uuid, a
 * three-digit status and "false". */
#define LG_RESULT_MAX 96

/* Write the result of an item that has a canonical uuid and no error at
 * dst (LG_RESULT_MAX bytes), after a comma when comma; returns its length.
 * The same text jansson would write for lg_result's object. */
static size_t lg_result_put(char *dst, bool comma, const struct lg_item *it)
{
    static const char head[] = "{\"uuid\":\"";
    static const char mid[] = "\",\"status\":";
    static const char dup[] = ",\"duplicate\":true}";
    static const char nodup[] = ",\"duplicate\":false}";
    char *p = dst;

    if (comma)
        *p++ = ',';
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    memcpy(p, it->uuid, UID_STR_LEN);
    p += UID_STR_LEN;
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    p = jw_int_put(p, it->status);
    if (it->status == 200) {
        memcpy(p, dup, sizeof(dup) - 1);
        p += sizeof(dup) - 1;
    } else {
        memcpy(p, nodup, sizeof(nodup) - 1);
        p += sizeof(nodup) - 1;
    }
    return (size_t)(p - dst);
}

/* POST /logging with an array: 200 with one result per item, in order;
 * 400 for an empty array, 413 past LG_BATCH_MAX items, 503 when the
 * journal write fails (then nothing of the batch is stored). */
static void lg_post_batch(struct lg_service *lg, struct hs_req *req, const json_t *arr)
{
    size_t n = json_array_size(arr);
    struct lg_item *items = NULL;
    struct evbuffer *out = NULL;
    int64_t now = svc_wall_ms();
    int bad;
    char err[256];
    size_t i;

    if (n == 0) {
        hs_reply_error(req, 400, "empty batch: send at least one message");
        return;
    }
    if (n > LG_BATCH_MAX) {
        hs_reply_error(req, 413, "batch of %zu messages is over the limit of %d", n,
                       LG_BATCH_MAX);
        return;
    }
    items = calloc(n, sizeof(*items));
    if (!items) {
        hs_reply_error(req, 503, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < n; i++)
        (void)lg_parse_item(json_array_get(arr, i), now, &items[i]);
    if (lg_ingest(lg, items, n, err, sizeof(err)) != 0) {
        log_error("batch of %zu messages not stored: %s", n, err);
        hs_reply_error(req, 503, "batch not stored: %s", err);
        goto cleanup;
    }
    /* Straight into the reply: the common results written by hand, the rare
     * ones (errors, odd uuids) through jansson for their escaping. */
    out = hs_req_output(req);
    bad = evbuffer_add(out, LG_BATCH_HEAD, sizeof(LG_BATCH_HEAD) - 1) != 0;
    for (i = 0; i < n && !bad; i++) {
        const struct lg_item *it = &items[i];
        json_t *res;

        if (it->has_uuid && !it->error[0]) {
            char tmp[LG_RESULT_MAX];

            bad |= evbuffer_add(out, tmp, lg_result_put(tmp, i > 0, it)) != 0;
            continue;
        }
        if (i > 0)
            bad |= evbuffer_add(out, ",", 1) != 0;
        res = lg_result(it, json_array_get(arr, i));
        bad |= !res || json_dump_callback(res, lg_dump_evbuffer, out, JSON_COMPACT) != 0;
        json_decref(res);
    }
    if (!bad)
        bad = evbuffer_add(out, "]}", 2) != 0;
    if (bad) {
        /* The messages are stored; only the answer could not be built. */
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_error(req, 503, "out of memory");
        goto cleanup;
    }
    hs_reply_buffer(req, 200, "application/json", NULL);
cleanup:
    free(items);
}

/* POST /logging: one message object or an array of them. */
static void lg_post(struct hs_req *req, void *arg)
{
    struct lg_service *lg = arg;
    char err[256];
    json_t *root = hs_req_json(req, err, sizeof(err));

    if (!root) {
        hs_reply_error(req, 400, "%s", err);
        return;
    }
    if (json_is_object(root))
        lg_post_one(lg, req, root);
    else if (json_is_array(root))
        lg_post_batch(lg, req, root);
    else
        hs_reply_error(req, 400, "body must be a JSON object {\"uuid\": ..., \"msg\": ...} "
                       "or an array of them");
    json_decref(root);
}

/* GET /logging: {"success": true, "messages": [{uuid, msg, ts}...]} in the
 * order first stored, written straight into the reply buffer. */
static void lg_get(struct hs_req *req, void *arg)
{
    struct lg_service *lg = arg;
    struct evbuffer *buf = evbuffer_new();
    size_t n = ms_count(lg->store);
    struct ms_view v;
    json_t *text = NULL;
    size_t i;
    int bad = !buf || evbuffer_add_printf(buf, "{\"success\":true,\"messages\":[") < 0;

    for (i = 0; i < n && !bad; i++) {
        if (!ms_at(lg->store, i, &v))
            break;
        text = json_stringn(v.msg, v.len);
        bad = !text ||
              evbuffer_add_printf(buf, "%s{\"uuid\":\"%s\",\"msg\":", i ? "," : "", v.uuid) < 0 ||
              json_dump_callback(text, lg_dump_evbuffer, buf, JSON_ENCODE_ANY) != 0 ||
              evbuffer_add_printf(buf, ",\"ts\":%" PRId64 "}", v.ts) < 0;
        json_decref(text);
    }
    if (bad || evbuffer_add_printf(buf, "]}") < 0) {
        if (buf)
            hs_buffer_free(buf);
        hs_reply_error(req, 503, "out of memory");
        return;
    }
    hs_reply_buffer(req, 200, "application/json", buf);
    hs_buffer_free(buf);
}

/* The service's series for GET /metrics. */
static void lg_collect(struct evbuffer *out, void *arg)
{
    struct lg_service *lg = arg;
    struct jn_stats st;

    jn_get_stats(lg->journal, &st);
    evbuffer_add_printf(
        out,
        "# HELP logging_messages_stored Messages stored (replayed or posted).\n"
        "# TYPE logging_messages_stored gauge\n"
        "logging_messages_stored %zu\n"
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
        "logging_journal_syncs_total %" PRIu64 "\n",
        ms_count(lg->store), lg->duplicates, lg->conflicts, lg->write_failures, st.writes,
        st.syncs);
}

struct lg_service *lg_new(struct svc *svc, struct ms_store *store,
                          struct jn_journal *journal)
{
    struct lg_service *lg = calloc(1, sizeof(*lg));

    if (!lg)
        return NULL;
    lg->svc = svc;
    lg->store = store;
    lg->journal = journal;
    if (hs_route(svc->http, HS_POST, "/logging", lg_post, lg) != 0 ||
        hs_route(svc->http, HS_GET, "/logging", lg_get, lg) != 0 ||
        mtr_add_collector(svc->metrics, lg_collect, lg) != 0) {
        lg_free(lg);
        return NULL;
    }
    return lg;
}

void lg_free(struct lg_service *lg)
{
    free(lg);
}

/* What lg_replay's callback needs. */
struct lg_replay_ctx {
    struct ms_store *store;
    long duplicates;
};

/* jn_replay callback: store one journal record. */
static int lg_replay_record(const struct jn_record *rec, void *arg)
{
    struct lg_replay_ctx *ctx = arg;
    enum ms_outcome outcome;
    char uuid[UID_STR_LEN + 1];

    uid_normalize(rec->uuid, uuid);
    if (ms_put(ctx->store, uuid, rec->msg, rec->len, rec->ts, &outcome) != 0)
        return -1;
    if (outcome == MS_DUPLICATE)
        ctx->duplicates++;
    else if (outcome == MS_CONFLICT)
        log_warn("journal holds uuid %s again with another msg; keeping the first", uuid);
    return 0;
}

long lg_replay(struct ms_store *store, struct jn_journal *journal, char *err,
               size_t errlen)
{
    struct lg_replay_ctx ctx = {store, 0};
    size_t before = ms_count(store);

    if (jn_replay(journal, lg_replay_record, &ctx, err, errlen) < 0)
        return -1;
    if (ctx.duplicates > 0)
        log_debug("journal %s: %ld repeated lines ignored", jn_path(journal), ctx.duplicates);
    return (long)(ms_count(store) - before);
}
