/* proto/messages.c: the /logging wire contract (see proto/messages.h): the
 * off-heap output pieces, the encoders logging writes with, and the
 * decoders the facade reads with (jansson: the authority on JSON). */
#include "proto/messages.h"

#include "codec/jsonw.h"
#include "core/errbuf.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>
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
    char *dst = pm_out_reserve(o, max), *p = dst;

    if (!dst)
        return 0;
    if (comma)
        *p++ = ',';
    p = jw_message_put(p, r->uuid, r->msg, r->len, r->ts);
    pm_out_commit(o, (size_t)(p - dst));
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
        errbuf_set(err, errlen, "page answer is not JSON: %s", jerr.text);
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
        struct pm_record rec;

        if (!json_is_string(uuid) || !json_is_string(msg))
            continue;
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

long pm_results_decode(const char *body, size_t len, pm_result_fn fn, void *arg, char *err,
                       size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *results = json_object_get(root, "results"), *item;
    size_t i;
    long rc = -1;

    if (!root) {
        errbuf_set(err, errlen, "batch answer is not JSON: %s", jerr.text);
        goto cleanup;
    }
    if (!json_is_array(results)) {
        errbuf_set(err, errlen, "not a batch answer (results)");
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
