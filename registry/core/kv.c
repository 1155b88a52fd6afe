/* kv.c: the KV config store (see kv.h).
 *
 * The stored document of a key is text, no JSON: "kv1 <flags> <create>
 * <modify> <base64 value>". Its indexes are written before the commit,
 * when the index the write will take is not known yet: the write stores
 * the index it takes if every counted write before it commits and no
 * health change comes between (reg_change_predict), which is what happens
 * almost always. Memory always holds the exact index (taken in the
 * completion). When the two differ, the completion queues the document
 * again with the exact indexes (unless another write of the key is queued:
 * its own document follows), so a key's indexes survive a restart; should
 * the registry die before that rewrite commits, the key comes back with
 * the predicted indexes, which are still below every index handed out
 * after the restart (the lease covers them): a CAS with the old index then
 * answers false and a blocking read answers at once, nothing worse. */
#include "kv.h"

#include "../store/store.h"
#include "catalog.h"
#include "codec/b64.h"
#include "codec/utf8.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct kv_entry {
    char *key;            /* owned */
    unsigned char *value; /* owned; NULL when len is 0 */
    size_t len;
    uint64_t flags, create_index, modify_index;
};

/* The writes of one key waiting for their commit. */
struct kv_pend {
    char *key;       /* owned */
    unsigned writes; /* queued, not completed */
    bool present;    /* the key exists once they are committed */
    bool unknown;    /* one of them failed: present is not known till they are done */
    UT_hash_handle hh;
};

/* The writes of one request (a recursive delete has several): done is
 * called once, after the last. */
struct kv_group {
    unsigned left;
    int rc;
    char err[256];
    kv_done_fn done;
    void *arg;
};

/* A write waiting for its commit. */
struct kv_write {
    struct kv_store *kv; /* borrowed */
    enum kv_op op;
    char *key;              /* owned (for a set, also in entry) */
    struct kv_entry *entry; /* set: owned, prepared, with the indexes stored */
    bool counted_new;       /* counted in pend_new */
    bool fixup;             /* a rewrite of a document with its exact indexes */
    struct kv_group *group; /* shared; freed by the last write */
};

struct kv_store {
    struct reg_registry *reg; /* borrowed */
    struct store *store;      /* borrowed */
    struct kv_options opt;
    struct kv_entry **items; /* owned array, sorted by key (bytewise) */
    size_t n, cap;
    size_t bytes;         /* value bytes of the committed keys */
    size_t pend_sets;     /* sets queued: each has a slot of items reserved */
    size_t pend_new;      /* of them, of keys absent when queued */
    size_t pend_bytes;    /* their value bytes */
    struct kv_pend *pend; /* uthash by key */
    uint64_t last_delete; /* index of the last committed delete (the load's index after a start) */
};

/* ---------------------------------------------------------------------- */
/* entries and the sorted array */

static void kv_entry_free(struct kv_entry *e)
{
    if (!e)
        return;
    free(e->key);
    free(e->value);
    free(e);
}

/* Binary search: whether key is there, and where it is or would go. */
static bool kv_find(const struct kv_store *kv, const char *key, size_t *pos)
{
    size_t lo = 0, hi = kv->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(kv->items[mid]->key, key);

        if (c == 0) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

/* Room in items for every committed key and every queued set, plus one.
 * 0 or -1 (unchanged). */
static int kv_reserve(struct kv_store *kv)
{
    size_t need = kv->n + kv->pend_sets + 1, cap;
    struct kv_entry **items = NULL;

    if (need <= kv->cap)
        return 0;
    cap = kv->cap ? kv->cap * 2 : 16;
    while (cap < need)
        cap *= 2;
    items = realloc(kv->items, cap * sizeof(*items));
    if (!items)
        return -1;
    kv->items = items;
    kv->cap = cap;
    return 0;
}

/* The stored document of a key (caller frees; NULL out of memory). */
static char *kv_doc(const struct kv_entry *e, size_t *len)
{
    size_t cap = 3 * 21 + 8 + B64_ENCODED_LEN(e->len);
    char *doc = malloc(cap);
    int head;

    if (!doc)
        return NULL;
    head = snprintf(doc, cap, "kv1 %" PRIu64 " %" PRIu64 " %" PRIu64 " ", e->flags, e->create_index,
                    e->modify_index);
    *len = (size_t)head +
           b64_encode(e->value ? e->value : (const unsigned char *)"", e->len, doc + head);
    return doc;
}

/* KV_RECORD_PREFIX + key into a new string (caller frees), or NULL. */
static char *kv_record_id(const char *key)
{
    size_t n = strlen(key);
    char *id = malloc(sizeof(KV_RECORD_PREFIX) + n);

    if (!id)
        return NULL;
    memcpy(id, KV_RECORD_PREFIX, sizeof(KV_RECORD_PREFIX) - 1);
    memcpy(id + sizeof(KV_RECORD_PREFIX) - 1, key, n + 1);
    return id;
}

/* ---------------------------------------------------------------------- */
/* writes waiting */

static struct kv_pend *kv_pend_find(const struct kv_store *kv, const char *key)
{
    struct kv_pend *p = NULL;

    HASH_FIND_STR(kv->pend, key, p);
    return p;
}

/* Whether key exists once the queued writes commit (unknown counts as
 * present: a CAS on it is refused, and a set of it is not counted new). */
static bool kv_present_after(const struct kv_store *kv, const char *key, struct kv_pend **pp)
{
    struct kv_pend *p = kv_pend_find(kv, key);

    *pp = p;
    if (p)
        return p->unknown || p->present;
    return kv_get(kv, key) != NULL;
}

/* Record one more queued write of key, after which it is present or not.
 * p is its record, or NULL to make one. 0 or -1 (out of memory). */
static int kv_pend_add(struct kv_store *kv, struct kv_pend *p, const char *key, bool present)
{
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (p)
            p->key = strdup(key);
        if (!p || !p->key) {
            free(p);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, kv->pend, p->key, strlen(p->key), p);
    }
    p->writes++;
    p->present = present;
    return 0;
}

/* Take back the last kv_pend_add of p, whose write could not be queued:
 * the key is again as the writes queued before it leave it (was_present:
 * p->present before that add; the record goes with its last write). */
static void kv_pend_undo(struct kv_store *kv, struct kv_pend *p, bool was_present)
{
    if (--p->writes > 0) {
        p->present = was_present;
        return;
    }
    HASH_DEL(kv->pend, p);
    free(p->key);
    free(p);
}

/* One queued write of key completed (rc its result). Returns whether
 * writes of key are still queued. */
static bool kv_pend_end(struct kv_store *kv, const char *key, int rc)
{
    struct kv_pend *p = kv_pend_find(kv, key);

    if (!p)
        return false;
    if (rc != 0)
        p->unknown = true;
    if (--p->writes > 0)
        return true;
    HASH_DEL(kv->pend, p);
    free(p->key);
    free(p);
    return false;
}

static void kv_write_free(struct kv_write *w)
{
    if (!w)
        return;
    if (w->entry)
        kv_entry_free(w->entry);
    free(w->key);
    free(w);
}

/* A write of the group ended with rc: the last one tells the caller. */
static void kv_group_end(struct kv_group *g, int rc, const char *err)
{
    if (rc != 0 && g->rc == 0) {
        g->rc = -1;
        errbuf_set(g->err, sizeof(g->err), "%s", err ? err : "store failure");
    }
    if (--g->left > 0)
        return;
    if (g->done)
        g->done(g->arg, g->rc, g->rc ? g->err : NULL);
    free(g);
}

static void kv_tell(struct kv_store *kv, enum kv_op op, const char *key, uint64_t index,
                    const struct kv_entry *e)
{
    struct kv_change ch;

    if (!kv->opt.observer)
        return;
    ch.op = op;
    ch.key = key;
    ch.index = index;
    ch.time_ms = clk_wall_ms();
    ch.e = e;
    kv->opt.observer(kv->opt.observer_arg, &ch);
}

/* Completion of a rewrite with exact indexes: nothing waits for it. */
static void kv_fixup_done(void *arg, int rc, const char *err)
{
    struct kv_write *w = arg;

    if (rc != 0)
        log_warn("could not rewrite the indexes of key %.200s: %s (a restart gives it those "
                 "stored before)",
                 w->key, err ? err : "store failure");
    kv_write_free(w);
}

/* Queue the document of e again (its indexes are exact now). */
static void kv_fixup(struct kv_store *kv, const struct kv_entry *e)
{
    struct kv_write *w = calloc(1, sizeof(*w));
    char *id = kv_record_id(e->key), *doc = NULL;
    size_t len = 0;
    char err[256];

    if (w)
        w->key = strdup(e->key);
    doc = kv_doc(e, &len);
    if (!w || !w->key || !id || !doc) {
        log_warn("could not rewrite the indexes of key %.200s: out of memory", e->key);
        goto cleanup;
    }
    w->kv = kv;
    w->fixup = true;
    if (store_put(kv->store, id, doc, len, kv_fixup_done, w, err, sizeof(err)) != 0) {
        log_warn("could not rewrite the indexes of key %.200s: %s", e->key, err);
        goto cleanup;
    }
    w = NULL;
cleanup:
    kv_write_free(w);
    free(id);
    free(doc);
}

/* Store completion of a set: on success the prepared entry takes the key
 * (replacing the committed one, whose CreateIndex it keeps). */
static void kv_set_done(void *arg, int rc, const char *err)
{
    struct kv_write *w = arg;
    struct kv_store *kv = w->kv;
    struct kv_entry *e = w->entry;
    uint64_t idx = reg_change_end(kv->reg, rc == 0);
    uint64_t stored_create = e->create_index, stored_modify = e->modify_index;
    bool busy;
    size_t pos = 0;

    kv->pend_sets--;
    kv->pend_bytes -= e->len;
    if (w->counted_new)
        kv->pend_new--;
    busy = kv_pend_end(kv, w->key, rc);
    if (rc == 0) {
        if (kv_find(kv, w->key, &pos)) {
            struct kv_entry *old = kv->items[pos];

            e->create_index = old->create_index;
            kv->bytes -= old->len;
            kv_entry_free(old);
        } else {
            memmove(kv->items + pos + 1, kv->items + pos, (kv->n - pos) * sizeof(*kv->items));
            kv->n++;
            e->create_index = idx;
        }
        e->modify_index = idx;
        kv->items[pos] = e;
        kv->bytes += e->len;
        w->entry = NULL;
        if (!busy && (stored_create != e->create_index || stored_modify != e->modify_index))
            kv_fixup(kv, e);
        kv_tell(kv, KV_OP_SET, e->key, idx, e);
    }
    kv_group_end(w->group, rc, err);
    kv_write_free(w);
}

/* Store completion of a delete: on success the key leaves memory (if it is
 * still there: otherwise nothing changed and no index is taken). */
static void kv_del_done(void *arg, int rc, const char *err)
{
    struct kv_write *w = arg;
    struct kv_store *kv = w->kv;
    size_t pos = 0;
    bool found = kv_find(kv, w->key, &pos);
    uint64_t idx = reg_change_end(kv->reg, rc == 0 && found);

    (void)kv_pend_end(kv, w->key, rc);
    if (rc == 0 && found) {
        struct kv_entry *old = kv->items[pos];

        memmove(kv->items + pos, kv->items + pos + 1, (kv->n - pos - 1) * sizeof(*kv->items));
        kv->n--;
        kv->bytes -= old->len;
        kv->last_delete = idx;
        kv_tell(kv, KV_OP_DELETE, w->key, idx, NULL);
        kv_entry_free(old);
    }
    kv_group_end(w->group, rc, err);
    kv_write_free(w);
}

/* ---------------------------------------------------------------------- */

struct kv_store *kv_new(struct reg_registry *r, struct store *st, const struct kv_options *opt)
{
    struct kv_store *kv = calloc(1, sizeof(*kv));

    if (!kv)
        return NULL;
    kv->reg = r;
    kv->store = st;
    if (opt)
        kv->opt = *opt;
    if (!kv->opt.max_keys)
        kv->opt.max_keys = LIM_KV_KEYS_MAX;
    if (!kv->opt.max_bytes)
        kv->opt.max_bytes = LIM_KV_BYTES_MAX;
    if (!kv->opt.max_value)
        kv->opt.max_value = LIM_KV_VALUE_MAX;
    return kv;
}

void kv_free(struct kv_store *kv)
{
    struct kv_pend *p, *tmp;
    size_t i;

    if (!kv)
        return;
    store_drain(kv->store); /* writes waiting point at kv */
    for (i = 0; i < kv->n; i++)
        kv_entry_free(kv->items[i]);
    free(kv->items);
    HASH_ITER (hh, kv->pend, p, tmp) {
        HASH_DEL(kv->pend, p);
        free(p->key);
        free(p);
    }
    free(kv);
}

int kv_key_check(const char *key, size_t len, bool prefix, char *err, size_t errlen)
{
    const char *seg = key;

    if (memchr(key, '\0', len)) {
        errbuf_set(err, errlen, "key holds a NUL byte");
        return -1;
    }
    if ((!prefix && len == 0) || len > LIM_KV_KEY_MAX) {
        errbuf_set(err, errlen, "key must be 1 to %d bytes, got %zu", LIM_KV_KEY_MAX, len);
        return -1;
    }
    if (len > 0 && key[0] == '/') {
        errbuf_set(err, errlen, "key must not start with '/'");
        return -1;
    }
    if (!utf8_valid(key, len)) {
        errbuf_set(err, errlen, "key is not valid UTF-8");
        return -1;
    }
    while (seg < key + len) {
        const char *end = memchr(seg, '/', (size_t)(key + len - seg));
        size_t n = end ? (size_t)(end - seg) : (size_t)(key + len - seg);

        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            errbuf_set(err, errlen, "key must not have a '..' segment");
            return -1;
        }
        if (!end)
            break;
        seg = end + 1;
    }
    return 0;
}

/* Queue one deletion of key in group g. 0, or -1 with err. */
static int kv_queue_del(struct kv_store *kv, const char *key, struct kv_group *g, char *err,
                        size_t errlen)
{
    struct kv_write *w = calloc(1, sizeof(*w));
    struct kv_pend *p = kv_pend_find(kv, key);
    bool was_present = p && p->present;
    char *id = kv_record_id(key);
    int rc = -1;

    if (w)
        w->key = strdup(key);
    if (!w || !w->key || !id) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    w->kv = kv;
    w->op = KV_OP_DELETE;
    w->group = g;
    if (kv_pend_add(kv, p, key, false) != 0) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    p = kv_pend_find(kv, key);
    if (reg_change_begin(kv->reg, err, errlen) != 0)
        goto unpend;
    if (store_del(kv->store, id, kv_del_done, w, err, errlen) != 0) {
        reg_change_cancel(kv->reg);
        goto unpend;
    }
    w = NULL;
    rc = 0;
    goto cleanup;
unpend:
    kv_pend_undo(kv, p, was_present);
cleanup:
    kv_write_free(w);
    free(id);
    return rc;
}

int kv_put(struct kv_store *kv, const char *key, const void *value, size_t len, uint64_t flags,
           bool has_cas, uint64_t cas, kv_done_fn done, void *arg, char *err, size_t errlen)
{
    struct kv_write *w = NULL;
    struct kv_entry *e = NULL;
    struct kv_group *g = NULL;
    const struct kv_entry *cur = kv_get(kv, key);
    struct kv_pend *p = NULL;
    bool present = kv_present_after(kv, key, &p);
    bool was_present = p && p->present;
    char *id = NULL, *doc = NULL;
    size_t doc_len = 0;
    uint64_t predicted;
    int rc = KV_E_FAILED;

    if (kv_key_check(key, strlen(key), false, err, errlen) != 0)
        return KV_E_BAD_KEY;
    if (len > kv->opt.max_value) {
        errbuf_set(err, errlen, "value of %zu bytes is over the limit of %zu bytes", len,
                   kv->opt.max_value);
        return KV_E_TOO_BIG;
    }
    if (has_cas && (cas == 0 ? present : (p || !cur || cur->modify_index != cas)))
        return 1;
    if (!present && kv->n + kv->pend_new >= kv->opt.max_keys) {
        errbuf_set(err, errlen, "the KV store holds its maximum of %zu keys", kv->opt.max_keys);
        return KV_E_FULL;
    }
    if (kv->bytes + kv->pend_bytes + len > kv->opt.max_bytes) {
        errbuf_set(err, errlen, "the KV store would pass its maximum of %zu value bytes",
                   kv->opt.max_bytes);
        return KV_E_FULL;
    }
    if (kv_reserve(kv) != 0)
        goto oom;
    w = calloc(1, sizeof(*w));
    e = calloc(1, sizeof(*e));
    g = calloc(1, sizeof(*g));
    if (!w || !e || !g)
        goto oom;
    w->key = strdup(key);
    e->key = strdup(key);
    e->value = len ? malloc(len) : NULL;
    id = kv_record_id(key);
    if (!w->key || !e->key || (len && !e->value) || !id)
        goto oom;
    if (len)
        memcpy(e->value, value, len);
    e->len = len;
    e->flags = flags;
    if (kv_pend_add(kv, p, key, true) != 0)
        goto oom;
    p = kv_pend_find(kv, key);
    if (reg_change_begin(kv->reg, err, errlen) != 0)
        goto unpend;
    predicted = reg_change_predict(kv->reg);
    e->modify_index = predicted;
    e->create_index = cur && p->writes == 1 ? cur->create_index : predicted;
    doc = kv_doc(e, &doc_len);
    if (!doc) {
        errbuf_set(err, errlen, "out of memory");
        reg_change_cancel(kv->reg);
        goto unpend;
    }
    w->kv = kv;
    w->op = KV_OP_SET;
    w->entry = e;
    w->group = g;
    g->left = 1;
    g->done = done;
    g->arg = arg;
    if (store_put(kv->store, id, doc, doc_len, kv_set_done, w, err, errlen) != 0) {
        w->entry = NULL;
        reg_change_cancel(kv->reg);
        goto unpend;
    }
    kv->pend_sets++;
    kv->pend_bytes += len;
    if (!present) {
        w->counted_new = true;
        kv->pend_new++;
    }
    w = NULL;
    e = NULL;
    g = NULL;
    rc = 0;
    goto cleanup;
oom:
    errbuf_set(err, errlen, "out of memory");
    goto cleanup;
unpend:
    kv_pend_undo(kv, p, was_present);
cleanup:
    kv_write_free(w);
    kv_entry_free(e);
    free(g);
    free(id);
    free(doc);
    return rc;
}

/* Whether s starts with prefix. */
static bool kv_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int kv_delete(struct kv_store *kv, const char *key, bool recurse, bool has_cas, uint64_t cas,
              kv_done_fn done, void *arg, char *err, size_t errlen)
{
    struct kv_group *g = NULL;
    char **keys = NULL;
    size_t nkeys = 0, cap = 0, i, first = 0, count = 0;
    struct kv_pend *p, *tmp;
    int rc = KV_E_FAILED;

    if (kv_key_check(key, strlen(key), recurse, err, errlen) != 0)
        return KV_E_BAD_KEY;
    if (!recurse) {
        const struct kv_entry *cur = kv_get(kv, key);
        bool present = kv_present_after(kv, key, &p);

        if (has_cas && (cas == 0 || p || !cur || cur->modify_index != cas))
            return 1;
        if (!present)
            return 2;
        keys = calloc(1, sizeof(*keys));
        if (!keys)
            goto oom;
        keys[nkeys++] = strdup(key);
        if (!keys[0])
            goto oom;
    } else {
        /* the committed keys under the prefix that stay present, then the
         * queued ones that are not committed yet */
        count = kv_range(kv, key, &first);
        cap = count + HASH_COUNT(kv->pend);
        keys = calloc(cap ? cap : 1, sizeof(*keys));
        if (!keys)
            goto oom;
        for (i = first; i < first + count; i++) {
            p = kv_pend_find(kv, kv->items[i]->key);
            if (p && !p->present && !p->unknown)
                continue;
            keys[nkeys] = strdup(kv->items[i]->key);
            if (!keys[nkeys++])
                goto oom;
        }
        HASH_ITER (hh, kv->pend, p, tmp) {
            if (!kv_has_prefix(p->key, key) || (!p->present && !p->unknown) || kv_get(kv, p->key))
                continue;
            keys[nkeys] = strdup(p->key);
            if (!keys[nkeys++])
                goto oom;
        }
        if (nkeys == 0) {
            rc = 2;
            goto cleanup;
        }
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        goto oom;
    g->done = done;
    g->arg = arg;
    for (i = 0; i < nkeys; i++) {
        if (kv_queue_del(kv, keys[i], g, err, errlen) != 0)
            break;
        g->left++;
    }
    if (g->left == 0) {
        rc = KV_E_FAILED;
        goto cleanup;
    }
    if (i < nkeys) {
        /* some are queued: they answer, as failed */
        g->rc = -1;
        errbuf_set(g->err, sizeof(g->err), "%s", err);
    }
    g = NULL;
    rc = 0;
    goto cleanup;
oom:
    errbuf_set(err, errlen, "out of memory");
cleanup:
    for (i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    free(g);
    return rc;
}

/* store_load callback: one stored key back into memory (other records
 * are skipped; a bad one with a warning). -1 only when out of memory. */
static int kv_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct kv_store *kv = arg;
    const char *key = id + sizeof(KV_RECORD_PREFIX) - 1;
    unsigned long long flags = 0, create = 0, modify = 0;
    struct kv_entry *e = NULL;
    size_t pos = 0, b64len;
    int head = 0;
    char err[128];
    unsigned char empty[1];

    (void)doc_len;
    if (strncmp(id, KV_RECORD_PREFIX, sizeof(KV_RECORD_PREFIX) - 1) != 0)
        return 0;
    if (kv_key_check(key, strlen(key), false, err, sizeof(err)) != 0) {
        log_warn("skipping stored key %.200s: %s", key, err);
        return 0;
    }
    if (sscanf(doc, "kv1 %llu %llu %llu %n", &flags, &create, &modify, &head) != 3 || head == 0) {
        log_warn("skipping stored key %.200s: not a KV document", key);
        return 0;
    }
    b64len = strlen(doc + head);
    if (kv_find(kv, key, &pos))
        return 0; /* a store holds one record per id: cannot happen */
    if (kv_reserve(kv) != 0)
        return -1;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    e->value = b64len ? malloc(b64len / 4 * 3 + 1) : NULL;
    if (!e->key || (b64len && !e->value)) {
        kv_entry_free(e);
        return -1;
    }
    if (b64_decode(doc + head, b64len, e->value ? e->value : empty, &e->len) != 0) {
        log_warn("skipping stored key %.200s: its value is not base64", key);
        kv_entry_free(e);
        return 0;
    }
    if (e->len == 0) {
        free(e->value);
        e->value = NULL;
    }
    e->flags = flags;
    e->create_index = create;
    e->modify_index = modify;
    memmove(kv->items + pos + 1, kv->items + pos, (kv->n - pos) * sizeof(*kv->items));
    kv->items[pos] = e;
    kv->n++;
    kv->bytes += e->len;
    return 0;
}

long kv_load(struct kv_store *kv, char *err, size_t errlen)
{
    size_t before = kv->n, i;
    uint64_t top = reg_index(kv->reg);

    if (store_load(kv->store, kv_load_one, kv, err, errlen) != 0)
        return -1;
    kv->last_delete = top; /* deletions before the start are not known */
    /* the lease is at or above every index handed out: a larger one is a
     * record of another store's numbering, lowered so the index never
     * runs behind a key */
    for (i = 0; i < kv->n; i++) {
        if (kv->items[i]->modify_index > top)
            kv->items[i]->modify_index = top;
        if (kv->items[i]->create_index > kv->items[i]->modify_index)
            kv->items[i]->create_index = kv->items[i]->modify_index;
    }
    return (long)(kv->n - before);
}

const struct kv_entry *kv_get(const struct kv_store *kv, const char *key)
{
    size_t pos = 0;

    return kv_find(kv, key, &pos) ? kv->items[pos] : NULL;
}

size_t kv_range(const struct kv_store *kv, const char *prefix, size_t *first)
{
    size_t lo = 0, hi = kv->n, start;

    (void)kv_find(kv, prefix, &lo);
    start = lo;
    /* the keys with the prefix are contiguous from there: find the end */
    hi = kv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (kv_has_prefix(kv->items[mid]->key, prefix))
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = start;
    return lo - start;
}

const struct kv_entry *kv_at(const struct kv_store *kv, size_t i) { return kv->items[i]; }
size_t kv_count(const struct kv_store *kv) { return kv->n; }
uint64_t kv_last_delete(const struct kv_store *kv) { return kv->last_delete; }
size_t kv_bytes(const struct kv_store *kv) { return kv->bytes; }

const char *kv_entry_key(const struct kv_entry *e) { return e->key; }

const unsigned char *kv_entry_value(const struct kv_entry *e, size_t *len)
{
    *len = e->len;
    return e->value;
}

uint64_t kv_entry_flags(const struct kv_entry *e) { return e->flags; }
uint64_t kv_entry_create_index(const struct kv_entry *e) { return e->create_index; }
uint64_t kv_entry_modify_index(const struct kv_entry *e) { return e->modify_index; }
