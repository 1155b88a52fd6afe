/* ingest.c: validation, store + journal, rollback and replay of the
 * logging-service (see ingest.h). A batch is applied to the store first
 * (that is where duplicates and conflicts are decided, also between items
 * of the same batch), then the new messages' lines go to the journal in one
 * write; when that write fails the new messages are cut back off the store
 * (ds_truncate), so memory and disk always agree and nothing is kept. */
#include "ingest.h"

#include "codec/jsonflat.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "dedup/store.h"
#include "http/trace.h"
#include "journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ig_ingest {
    struct ds_store *store;     /* borrowed */
    struct jn_journal *journal; /* borrowed */
    bool rewrite_pending;       /* the journal was deleted and is not whole again yet */
    struct ig_stats stats;
    /* The trace id of each stored message by store position (the store
     * keeps uuid, msg and ts only): traces[pos][0] '\0' when none. Owned;
     * cap entries allocated, grown by doubling. */
    char (*traces)[PM_TRACE_LEN];
    size_t traces_cap;
};

/* Remember trace (borrowed, "" none) for store position pos. 0, or -1 out
 * of memory. */
static int ig_trace_keep(struct ig_ingest *ig, size_t pos, const char *trace)
{
    if (pos >= ig->traces_cap) {
        size_t cap = ig->traces_cap ? ig->traces_cap * 2 : 1024;
        char(*grown)[PM_TRACE_LEN] = NULL;

        while (cap <= pos)
            cap *= 2;
        grown = realloc(ig->traces, cap * sizeof(*grown));
        if (!grown)
            return -1;
        memset(grown + ig->traces_cap, 0, (cap - ig->traces_cap) * sizeof(*grown));
        ig->traces = grown;
        ig->traces_cap = cap;
    }
    if (trace[0])
        memcpy(ig->traces[pos], trace, PM_TRACE_LEN);
    else
        ig->traces[pos][0] = '\0';
    return 0;
}

const char *ig_trace_at(const struct ig_ingest *ig, size_t pos)
{
    return pos < ig->traces_cap && ig->traces[pos][0] ? ig->traces[pos] : NULL;
}

/* ---------------------------------------------------------------------- */

void ig_fields_json(const json_t *obj, struct ig_fields *f)
{
    const json_t *uuid = json_object_get(obj, "uuid");
    const json_t *msg = json_object_get(obj, "msg");
    const json_t *ts = json_object_get(obj, "ts");
    const json_t *trace = json_object_get(obj, PM_F_TRACE);

    memset(f, 0, sizeof(*f));
    f->is_object = json_is_object(obj);
    f->uuid_kind = !uuid ? IG_ABSENT : json_is_string(uuid) ? IG_STR : IG_WRONG;
    f->msg_kind = !msg ? IG_ABSENT : json_is_string(msg) ? IG_STR : IG_WRONG;
    f->ts_kind = !ts ? IG_ABSENT : json_is_integer(ts) ? IG_INT : IG_WRONG;
    if (f->uuid_kind == IG_STR) {
        f->uuid = json_string_value(uuid);
        f->uuid_len = json_string_length(uuid);
    }
    f->trace_kind = !trace ? IG_ABSENT : json_is_string(trace) ? IG_STR : IG_WRONG;
    if (f->trace_kind == IG_STR) {
        f->trace = json_string_value(trace);
        f->trace_len = json_string_length(trace);
    }
    if (f->msg_kind == IG_STR) {
        f->msg = json_string_value(msg);
        f->msg_len = json_string_length(msg);
    }
    if (f->ts_kind == IG_INT)
        f->ts = (int64_t)json_integer_value(ts);
}

void ig_fields_flat(const struct jf_tok *toks, size_t obj, struct ig_fields *f)
{
    long uuid = jf_get(toks, obj, "uuid");
    long msg = jf_get(toks, obj, "msg");
    long ts = jf_get(toks, obj, "ts");
    long trace = jf_get(toks, obj, PM_F_TRACE);

    memset(f, 0, sizeof(*f));
    f->is_object = toks[obj].type == JF_OBJECT;
    f->uuid_kind = uuid < 0 ? IG_ABSENT : toks[uuid].type == JF_STRING ? IG_STR : IG_WRONG;
    f->msg_kind = msg < 0 ? IG_ABSENT : toks[msg].type == JF_STRING ? IG_STR : IG_WRONG;
    f->ts_kind = ts < 0 ? IG_ABSENT : toks[ts].type == JF_INT ? IG_INT : IG_WRONG;
    if (f->uuid_kind == IG_STR) {
        f->uuid = toks[uuid].str;
        f->uuid_len = toks[uuid].len;
    }
    f->trace_kind = trace < 0 ? IG_ABSENT : toks[trace].type == JF_STRING ? IG_STR : IG_WRONG;
    if (f->trace_kind == IG_STR) {
        f->trace = toks[trace].str;
        f->trace_len = toks[trace].len;
    }
    if (f->msg_kind == IG_STR) {
        f->msg = toks[msg].str;
        f->msg_len = toks[msg].len;
    }
    if (f->ts_kind == IG_INT)
        f->ts = toks[ts].num;
}

/* The item's optional trace into out ("" when absent). False, with out
 * "", when it is given but is not a valid trace id (trace.h). */
static bool ig_trace_take(const struct ig_fields *f, char out[PM_TRACE_LEN + 1])
{
    out[0] = '\0';
    if (f->trace_kind == IG_ABSENT)
        return true;
    if (f->trace_kind != IG_STR || f->trace_len != PM_TRACE_LEN)
        return false;
    memcpy(out, f->trace, PM_TRACE_LEN);
    out[PM_TRACE_LEN] = '\0';
    if (trc_trace_id_valid(out))
        return true;
    out[0] = '\0';
    return false;
}

int ig_check_item(const struct ig_fields *f, int64_t now, struct ig_item *it)
{
    char uuid[UID_STR_LEN + 1];

    memset(it, 0, sizeof(*it));
    it->status = 400;
    if (!f->is_object) {
        snprintf(it->error, sizeof(it->error),
                 "a message must be a JSON object with "
                 "\"uuid\" and \"msg\"");
        return -1;
    }
    if (f->uuid_kind == IG_STR && f->uuid_len == UID_STR_LEN) {
        memcpy(uuid, f->uuid, UID_STR_LEN);
        uuid[UID_STR_LEN] = '\0';
        if (uid_is_valid(uuid)) {
            uid_normalize(uuid, it->uuid);
            it->has_uuid = true;
        }
    }
    if (f->uuid_kind == IG_ABSENT) {
        snprintf(it->error, sizeof(it->error), "field 'uuid' is required");
    } else if (f->uuid_kind != IG_STR) {
        snprintf(it->error, sizeof(it->error), "field 'uuid' must be a string");
    } else if (!it->has_uuid) {
        snprintf(it->error, sizeof(it->error),
                 "field 'uuid' must be a canonical UUID "
                 "(8-4-4-4-12 hex digits), got '%.*s'",
                 (int)(f->uuid_len < 64 ? f->uuid_len : 64), f->uuid);
    } else if (f->msg_kind == IG_ABSENT) {
        snprintf(it->error, sizeof(it->error), "field 'msg' is required");
    } else if (f->msg_kind != IG_STR) {
        snprintf(it->error, sizeof(it->error), "field 'msg' must be a string");
    } else if (f->msg_len == 0) {
        snprintf(it->error, sizeof(it->error), "field 'msg' must not be empty");
    } else if (f->msg_len > LG_MSG_MAX) {
        snprintf(it->error, sizeof(it->error),
                 "field 'msg' is %zu bytes, over the limit "
                 "of %d",
                 f->msg_len, LG_MSG_MAX);
    } else if (f->ts_kind == IG_WRONG) {
        snprintf(it->error, sizeof(it->error),
                 "field 'ts' must be an integer "
                 "(milliseconds since the epoch)");
    } else if (f->ts_kind == IG_INT && (f->ts < 0 || f->ts > LG_TS_MAX)) {
        snprintf(it->error, sizeof(it->error),
                 "field 'ts' must be between 0 and %lld, "
                 "got %" PRId64,
                 LG_TS_MAX, f->ts);
    } else if (!ig_trace_take(f, it->trace)) {
        snprintf(it->error, sizeof(it->error),
                 "field 'trace' must be a W3C trace id (32 lower-case hex digits, not all zero)");
    } else {
        it->msg = f->msg;
        it->len = f->msg_len;
        it->ts = f->ts_kind == IG_INT ? f->ts : now;
        it->status = 0;
        it->error[0] = '\0';
        return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------------- */

struct ig_ingest *ig_new(struct ds_store *store, struct jn_journal *journal)
{
    struct ig_ingest *ig = calloc(1, sizeof(*ig));

    if (!ig)
        return NULL;
    ig->store = store;
    ig->journal = journal;
    return ig;
}

void ig_free(struct ig_ingest *ig)
{
    if (!ig)
        return;
    free(ig->traces);
    free(ig);
}

/* Undo what ig_apply decided about items[0..n): the store back to before
 * messages, the items' statuses back to 0. */
static void ig_rollback(struct ig_ingest *ig, struct ig_item *items, size_t n, size_t before)
{
    size_t i;

    ds_truncate(ig->store, before);
    for (i = 0; i < n; i++) {
        if (!items[i].decided)
            continue;
        items[i].decided = false;
        items[i].status = 0;
        items[i].error[0] = '\0';
    }
    ig->stats.write_failures++;
}

/* Create the deleted journal again and write every message of the store
 * to it, IG_REWRITE_CHUNK lines per append. Clears rewrite_pending on
 * success. Blocks the loop for as long as the writes take (once, after a
 * deletion). Returns 0, or -1 with err filled (rewrite_pending stays: the
 * next batch tries again). */
static int ig_rewrite(struct ig_ingest *ig, char *err, size_t errlen)
{
    struct jn_record recs[IG_REWRITE_CHUNK];
    size_t count = ds_count(ig->store), i = 0, n;
    struct ds_view v;

    if (jn_recreate(ig->journal, err, errlen) != 0)
        return -1;
    while (i < count) {
        for (n = 0; n < IG_REWRITE_CHUNK && i + n < count && ds_at(ig->store, i + n, &v); n++) {
            recs[n].uuid = v.uuid;
            recs[n].msg = v.msg;
            recs[n].len = v.len;
            recs[n].ts = v.ts;
            recs[n].trace = ig_trace_at(ig, i + n);
        }
        if (n == 0)
            break;
        if (jn_append(ig->journal, recs, n, err, errlen) != 0)
            return -1;
        i += n;
    }
    ig->rewrite_pending = false;
    log_warn("journal %s created again with the %zu messages held", jn_path(ig->journal), count);
    return 0;
}

int ig_apply(struct ig_ingest *ig, struct ig_item *items, size_t n, char *err, size_t errlen)
{
    size_t before = ds_count(ig->store);
    struct jn_record *recs = NULL;
    struct ds_view v;
    enum ds_outcome outcome;
    uint64_t dups = 0, conflicts = 0;
    size_t added, i;
    int rc = -1;

    for (i = 0; i < n; i++) {
        struct ig_item *it = &items[i];

        if (it->status != 0)
            continue;
        if (ds_put(ig->store, it->uuid, it->msg, it->len, it->ts, &outcome) != 0) {
            errbuf_set(err, errlen, "out of memory");
            goto cleanup;
        }
        it->decided = true;
        if (outcome == DS_STORED) {
            it->status = 201;
            if (ig_trace_keep(ig, ds_count(ig->store) - 1, it->trace) != 0) {
                errbuf_set(err, errlen, "out of memory");
                goto cleanup;
            }
        } else if (outcome == DS_DUPLICATE) {
            it->status = 200;
            dups++;
        } else {
            it->status = 409;
            conflicts++;
            snprintf(it->error, sizeof(it->error),
                     "uuid %.36s is already stored with a "
                     "different msg",
                     it->uuid);
        }
    }
    added = ds_count(ig->store) - before;
    if (added > 0) {
        recs = calloc(added, sizeof(*recs));
        if (!recs) {
            errbuf_set(err, errlen, "out of memory");
            goto cleanup;
        }
        for (i = 0; i < added; i++) {
            if (!ds_at(ig->store, before + i, &v))
                break;
            recs[i].uuid = v.uuid;
            recs[i].msg = v.msg;
            recs[i].len = v.len;
            recs[i].ts = v.ts;
            recs[i].trace = ig_trace_at(ig, before + i);
        }
        /* An fstat before and after the write: lines written to a deleted
         * file would vanish with the process, so they are not acknowledged
         * until the journal is whole again at its path. */
        if (!ig->rewrite_pending && !jn_unlinked(ig->journal) &&
            jn_append(ig->journal, recs, added, err, errlen) != 0)
            goto cleanup;
        if (!ig->rewrite_pending && jn_unlinked(ig->journal)) {
            log_error("journal %s was deleted while in use; writing the %zu messages held "
                      "to a new one",
                      jn_path(ig->journal), ds_count(ig->store));
            ig->rewrite_pending = true;
        }
        if (ig->rewrite_pending && ig_rewrite(ig, err, errlen) != 0)
            goto cleanup;
        for (i = 0; i < added; i++) {
            char prev[LOG_TRACE_MAX + 1], trace[PM_TRACE_LEN + 1] = "";

            /* each line in its own message's trace (a batch mixes them) */
            if (recs[i].trace)
                snprintf(trace, sizeof(trace), "%.*s", PM_TRACE_LEN, recs[i].trace);
            log_trace_set(trace[0] ? trace : NULL, prev);
            log_info("stored %s: %.*s", recs[i].uuid, (int)recs[i].len, recs[i].msg);
            log_trace_set(prev, NULL);
        }
    }
    ig->stats.stored += added;
    ig->stats.duplicates += dups;
    ig->stats.conflicts += conflicts;
    for (i = 0; i < n; i++)
        items[i].decided = false;
    rc = 0;
cleanup:
    if (rc != 0)
        ig_rollback(ig, items, n, before);
    free(recs);
    return rc;
}

/* ---------------------------------------------------------------------- */

/* What ig_replay's callback needs. */
struct ig_replay_ctx {
    struct ig_ingest *ig;   /* borrowed: keeps the traces */
    struct ds_store *store; /* borrowed */
    long duplicates;        /* lines that repeated a stored message */
};

/* jn_replay callback: check one journal record (rec borrowed) by the rules
 * of a POST (ig_check_item: the same uuid, msg and ts bounds), then store
 * it. 0; JN_REPLAY_REJECT with why filled for a record no POST could have
 * stored; -1 out of memory (the replay stops). */
static int ig_replay_record(const struct jn_record *rec, void *arg, char *why, size_t whylen)
{
    struct ig_replay_ctx *ctx = arg;
    enum ds_outcome outcome;
    struct ig_fields f;
    struct ig_item it;

    memset(&f, 0, sizeof(f));
    f.is_object = true;
    f.uuid_kind = IG_STR;
    f.uuid = rec->uuid;
    f.uuid_len = strlen(rec->uuid);
    f.msg_kind = IG_STR;
    f.msg = rec->msg;
    f.msg_len = rec->len;
    f.ts_kind = IG_INT;
    f.ts = rec->ts;
    if (ig_check_item(&f, 0, &it) != 0) {
        errbuf_set(why, whylen, "%s", it.error);
        return JN_REPLAY_REJECT;
    }
    if (rec->trace && trc_trace_id_valid(rec->trace))
        memcpy(it.trace, rec->trace, sizeof(it.trace));
    if (ds_put(ctx->store, it.uuid, it.msg, it.len, it.ts, &outcome) != 0)
        return -1;
    if (outcome == DS_STORED && ig_trace_keep(ctx->ig, ds_count(ctx->store) - 1, it.trace) != 0)
        return -1;
    if (outcome == DS_DUPLICATE)
        ctx->duplicates++;
    else if (outcome == DS_CONFLICT)
        log_warn("journal holds uuid %s again with another msg; keeping the first", it.uuid);
    return 0;
}

long ig_replay(struct ig_ingest *ig, char *err, size_t errlen)
{
    struct ig_replay_ctx ctx = {ig, ig->store, 0};
    size_t before = ds_count(ig->store);

    if (jn_replay(ig->journal, ig_replay_record, &ctx, err, errlen) < 0)
        return -1;
    if (ctx.duplicates > 0)
        log_debug("journal %s: %ld repeated lines ignored", jn_path(ig->journal), ctx.duplicates);
    return (long)(ds_count(ig->store) - before);
}

struct ds_store *ig_store(const struct ig_ingest *ig) { return ig->store; }

struct jn_journal *ig_journal(const struct ig_ingest *ig) { return ig->journal; }

void ig_get_stats(const struct ig_ingest *ig, struct ig_stats *out) { *out = ig->stats; }
