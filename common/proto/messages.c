/* proto/messages.c: the /logging wire contract (see proto/messages.h): the
 * off-heap output pieces, the encoders logging writes with, and the
 * decoders the facade reads with (jansson: the authority on JSON; the batch
 * answer, read on the write path, goes through jsonflat first). */
#include "proto/messages.h"

#include "codec/jsonerr.h"
#include "codec/jsonflat.h"
#include "codec/jsonw.h"
#include "core/errbuf.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* evbuffer cleanup of a piece: give its pages back. extra is its size. */
static void pm_piece_unmap(const void *data, size_t len, void *extra)
{
    (void)len;
    munmap((void *)data, (size_t)(uintptr_t)extra);
}

void pm_out_init(struct pm_out *o, struct evbuffer *dst)
{
    memset(o, 0, sizeof(*o));
    o->dst = dst;
}

/* Hand the current piece (if it holds anything) to dst. 0 or -1. */
static int pm_out_flush(struct pm_out *o)
{
    int rc = 0;

    if (!o->chunk)
        return 0;
    if (o->len == 0) {
        munmap(o->chunk, o->cap);
    } else if (evbuffer_add_reference(o->dst, o->chunk, o->len, pm_piece_unmap,
                                      (void *)(uintptr_t)o->cap) != 0) {
        munmap(o->chunk, o->cap);
        o->failed = true;
        rc = -1;
    }
    o->chunk = NULL;
    o->len = o->cap = 0;
    return rc;
}

char *pm_out_reserve(struct pm_out *o, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), cap = LIM_CHUNK_BYTES;
    void *p;

    if (o->failed)
        return NULL;
    if (o->chunk && o->cap - o->len >= n)
        return o->chunk + o->len;
    if (pm_out_flush(o) != 0)
        return NULL;
    if (n > cap)
        cap = (n + page - 1) / page * page;
    p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        o->failed = true;
        return NULL;
    }
    o->chunk = p;
    o->cap = cap;
    return o->chunk;
}

void pm_out_commit(struct pm_out *o, size_t n) { o->len += n; }

int pm_out_add(struct pm_out *o, const void *data, size_t n)
{
    char *p = pm_out_reserve(o, n);

    if (!p)
        return -1;
    memcpy(p, data, n);
    pm_out_commit(o, n);
    return 0;
}

int pm_out_finish(struct pm_out *o)
{
    if (pm_out_flush(o) != 0 || o->failed)
        return -1;
    return 0;
}

size_t pm_out_pending(const struct pm_out *o) { return o->len; }

/* ---------------------------------------------------------------------- */

#define PM_LIST_HEAD "{\"success\":true,\"messages\":["

int pm_list_begin(struct pm_out *o)
{
    return pm_out_add(o, PM_LIST_HEAD, sizeof(PM_LIST_HEAD) - 1);
}

int pm_list_end(struct pm_out *o) { return pm_out_add(o, "]}", 2); }

int pm_page_begin(struct pm_out *o, const char *epoch)
{
    static const char head[] = "{\"success\":true,\"epoch\":\"";
    static const char tail[] = "\",\"messages\":[";

    if (pm_out_add(o, head, sizeof(head) - 1) != 0 || pm_out_add(o, epoch, strlen(epoch)) != 0 ||
        pm_out_add(o, tail, sizeof(tail) - 1) != 0)
        return -1;
    return 0;
}

int pm_page_end(struct pm_out *o, uint64_t next, bool more)
{
    static const char head[] = "],\"next\":";
    static const char yes[] = ",\"more\":true}";
    static const char no[] = ",\"more\":false}";
    char buf[sizeof(head) + JW_INT_MAX_LEN + sizeof(no)], *p = buf;

    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    p = jw_int_put(p, (int64_t)next);
    memcpy(p, more ? yes : no, more ? sizeof(yes) - 1 : sizeof(no) - 1);
    p += more ? sizeof(yes) - 1 : sizeof(no) - 1;
    return pm_out_add(o, buf, (size_t)(p - buf));
}

size_t pm_record_put(struct pm_out *o, const struct pm_record *r, bool comma)
{
    size_t max = jw_message_len(r->uuid, r->msg, r->len) + 1;
    char *dst = NULL, *p = NULL;

    if (r->trace != NULL)
        max += PM_TRACE_PUT_MAX;
    dst = pm_out_reserve(o, max);
    p = dst;
    if (!dst)
        return 0;
    if (comma)
        *p++ = ',';
    p = jw_message_put(p, r->uuid, r->msg, r->len, r->ts);
    if (r->trace != NULL)
        p = p - 1 + pm_trace_put(p - 1, r->trace);
    pm_out_commit(o, (size_t)(p - dst));
    return (size_t)(p - dst);
}

size_t pm_trace_put(char *dst, const char *trace)
{
    static const char head[] = ",\"" PM_F_TRACE "\":\"";
    char *p = dst;

    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    memcpy(p, trace, PM_TRACE_LEN);
    p += PM_TRACE_LEN;
    *p++ = '"';
    *p++ = '}';
    return (size_t)(p - dst);
}

size_t pm_result_put(char *dst, bool comma, const char *uuid, int status)
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
    memcpy(p, uuid, 36);
    p += 36;
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    p = jw_int_put(p, status);
    if (status == 200) {
        memcpy(p, dup, sizeof(dup) - 1);
        p += sizeof(dup) - 1;
    } else {
        memcpy(p, nodup, sizeof(nodup) - 1);
        p += sizeof(nodup) - 1;
    }
    return (size_t)(p - dst);
}

/* ---------------------------------------------------------------------- */

int pm_page_decode(const char *body, size_t len, pm_record_fn fn, void *arg, struct pm_page *page,
                   char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *msgs = json_object_get(root, "messages"), *item;
    const json_t *epoch = json_object_get(root, "epoch");
    const json_t *next = json_object_get(root, "next");
    const json_t *more = json_object_get(root, "more");
    size_t i;
    int rc = -1;

    memset(page, 0, sizeof(*page));
    if (!root) {
        jerr_describe(&jerr, body, len, "page answer", err, errlen);
        goto cleanup;
    }
    if (!json_is_array(msgs) || !json_is_string(epoch) || !json_is_integer(next) ||
        json_integer_value(next) < 0 || !json_is_boolean(more) ||
        json_string_length(epoch) > PM_EPOCH_MAX) {
        errbuf_set(err, errlen, "not a page answer (epoch, messages, next, more)");
        goto cleanup;
    }
    memcpy(page->epoch, json_string_value(epoch), json_string_length(epoch) + 1);
    page->next = (uint64_t)json_integer_value(next);
    page->more = json_is_true(more);
    json_array_foreach (msgs, i, item) {
        const json_t *uuid = json_object_get(item, "uuid");
        const json_t *msg = json_object_get(item, "msg");
        const json_t *ts = json_object_get(item, "ts");
        const json_t *trace = json_object_get(item, PM_F_TRACE);
        struct pm_record rec;

        if (!json_is_string(uuid) || !json_is_string(msg))
            continue;
        rec.trace = json_is_string(trace) && json_string_length(trace) == PM_TRACE_LEN
                        ? json_string_value(trace)
                        : NULL;
        rec.uuid = json_string_value(uuid);
        rec.msg = json_string_value(msg);
        rec.len = json_string_length(msg);
        rec.ts = json_is_integer(ts) ? (int64_t)json_integer_value(ts) : 0;
        if (fn && fn(&rec, i, arg) != 0) {
            errbuf_set(err, errlen, "page record %zu refused", i);
            goto cleanup;
        }
        page->count++;
    }
    rc = 0;
cleanup:
    json_decref(root);
    return rc;
}

/* Tokens of the largest batch answer the fast path reads: the object, its
 * "success" and "results" pairs, and per item an object of up to four
 * pairs (uuid, status, duplicate, error). */
#define PM_RESULTS_TOKS (5 + (size_t)LIM_BATCH_MAX * 9)
/* Longest uuid and error text of a result the fast path copies out; longer
 * ones (never written by logging) are left to jansson. */
#define PM_RESULT_UUID_MAX  63
#define PM_RESULT_ERROR_MAX 511

struct pm_reader {
    struct jf_tok toks[PM_RESULTS_TOKS];
};

struct pm_reader *pm_reader_new(void) { return malloc(sizeof(struct pm_reader)); }

void pm_reader_free(struct pm_reader *rd) { free(rd); }

/* Copy the string token t (borrowed; index < 0: absent) into out (cap
 * bytes) and point *s at it; a value that is not a string reads as NULL, as
 * json_string_value has it. false when the string does not fit. */
static bool pm_flat_string(const struct jf_tok *toks, long t, char *out, size_t cap, const char **s)
{
    *s = NULL;
    if (t < 0 || toks[t].type != JF_STRING)
        return true;
    if (toks[t].len >= cap)
        return false;
    memcpy(out, toks[t].str, toks[t].len);
    out[toks[t].len] = '\0';
    *s = out;
    return true;
}

/* Whether every item of the results array at toks[res] can be read by the
 * fast path: its status, if an integer, fits an int; its uuid and error,
 * if strings, fit the copies. */
static bool pm_flat_fits(const struct jf_tok *toks, long res)
{
    size_t i, k;

    for (i = 0, k = (size_t)res + 1; i < toks[res].count; i++, k = toks[k].end) {
        long st = jf_get(toks, k, "status"); /* -1 when toks[k] is not an object */
        long id = jf_get(toks, k, "uuid");
        long er = jf_get(toks, k, "error");

        if (st >= 0 && toks[st].type == JF_INT &&
            (toks[st].num < INT_MIN || toks[st].num > INT_MAX))
            return false;
        if (id >= 0 && toks[id].type == JF_STRING && toks[id].len > PM_RESULT_UUID_MAX)
            return false;
        if (er >= 0 && toks[er].type == JF_STRING && toks[er].len > PM_RESULT_ERROR_MAX)
            return false;
    }
    return true;
}

/* The fast reading of a batch answer through rd's tokens. Returns the
 * number of results (or -1 with err when it differs from expect or fn
 * stopped, or the answer's "success" is there and not true), or -2, having
 * called nothing, when the body is not in the subset it reads: jansson then reads it. Reads each item as jansson's
 * reading does (a missing or non-integer status is 0, a non-string uuid or
 * error NULL, duplicate only when true). */
static long pm_results_flat(struct pm_reader *rd, const char *body, size_t len, long expect,
                            pm_result_fn fn, void *arg, char *err, size_t errlen)
{
    const struct jf_tok *t = rd->toks;
    char uuid[PM_RESULT_UUID_MAX + 1], error[PM_RESULT_ERROR_MAX + 1];
    size_t i, k;
    long res, ok;

    if (jf_parse(body, len, rd->toks, PM_RESULTS_TOKS, NULL) != JF_OK || t[0].type != JF_OBJECT)
        return -2;
    res = jf_get(t, 0, "results");
    if (res < 0 || t[res].type != JF_ARRAY || !pm_flat_fits(t, res))
        return -2;
    ok = jf_get(t, 0, "success");
    if (ok >= 0 && t[ok].type != JF_TRUE) {
        errbuf_set(err, errlen, "batch answer does not say \"success\":true");
        return -1;
    }
    if (expect >= 0 && t[res].count != (size_t)expect) {
        errbuf_set(err, errlen, "batch answer has %u results for %ld items", t[res].count, expect);
        return -1;
    }
    for (i = 0, k = (size_t)res + 1; i < t[res].count; i++, k = t[k].end) {
        long st = jf_get(t, k, "status");
        long dup = jf_get(t, k, "duplicate");
        struct pm_result r;

        /* both fit: pm_flat_fits looked */
        (void)pm_flat_string(t, jf_get(t, k, "uuid"), uuid, sizeof(uuid), &r.uuid);
        (void)pm_flat_string(t, jf_get(t, k, "error"), error, sizeof(error), &r.error);
        r.status = st >= 0 && t[st].type == JF_INT ? (int)t[st].num : 0;
        r.duplicate = dup >= 0 && t[dup].type == JF_TRUE;
        if (fn && fn(&r, i, arg) != 0) {
            errbuf_set(err, errlen, "batch result %zu refused", i);
            return -1;
        }
    }
    return (long)t[res].count;
}

long pm_results_decode(struct pm_reader *rd, const char *body, size_t len, long expect,
                       pm_result_fn fn, void *arg, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL, *results = NULL, *item = NULL;
    const json_t *success = NULL;
    size_t i;
    long rc = -1;

    if (rd) {
        rc = pm_results_flat(rd, body, len, expect, fn, arg, err, errlen);
        if (rc != -2)
            return rc;
        rc = -1;
    }
    root = json_loadb(body, len, 0, &jerr);
    results = json_object_get(root, "results");
    if (!root) {
        jerr_describe(&jerr, body, len, "batch answer", err, errlen);
        goto cleanup;
    }
    if (!json_is_array(results)) {
        errbuf_set(err, errlen, "not a batch answer (results)");
        goto cleanup;
    }
    success = json_object_get(root, "success");
    if (success && !json_is_true(success)) {
        errbuf_set(err, errlen, "batch answer does not say \"success\":true");
        goto cleanup;
    }
    if (expect >= 0 && json_array_size(results) != (size_t)expect) {
        errbuf_set(err, errlen, "batch answer has %zu results for %ld items",
                   json_array_size(results), expect);
        goto cleanup;
    }
    json_array_foreach (results, i, item) {
        struct pm_result res;

        res.uuid = json_string_value(json_object_get(item, "uuid"));
        res.status = (int)json_integer_value(json_object_get(item, "status"));
        res.duplicate = json_is_true(json_object_get(item, "duplicate"));
        res.error = json_string_value(json_object_get(item, "error"));
        if (fn && fn(&res, i, arg) != 0) {
            errbuf_set(err, errlen, "batch result %zu refused", i);
            goto cleanup;
        }
    }
    rc = (long)json_array_size(results);
cleanup:
    json_decref(root);
    return rc;
}

int pm_error_decode(const char *body, size_t len, char *out, size_t cap)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *text = json_string_value(json_object_get(root, "error"));
    int rc = -1;

    if (cap > 0)
        out[0] = '\0';
    if (text) {
        errbuf_set(out, cap, "%s", text);
        rc = 0;
    }
    json_decref(root);
    return rc;
}
