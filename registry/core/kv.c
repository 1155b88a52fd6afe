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
 * answers false and a blocking read answers at once, nothing worse.
 *
 * On a shared store (registry/core/replica.h) the index is the store's
 * revision, not known before the commit: a new key's document carries
 * create 0 ("not known"), an update the entry's known create index, and
 * modify is always 0. Memory takes modify = the commit's revision and
 * create = the entry's or, for a new key, the revision; a document loaded
 * with create 0 takes its record's revision (store_load's contract), and
 * its stored modify is not read. No rewrite is queued: the document is
 * what another replica reads, and it is right as it is. Other replicas'
 * commits of keys arrive through kv_apply_change. */
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
    bool seen; /* shared store: put again since the running reset began */
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
    bool shared;          /* the store is shared: indexes are its revisions */
    bool resetting;       /* a STORE_CH_RESET is running (kv_apply_change) */
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

/* Room in items for every committed key and every queued set, plus
 * extra. 0 or -1 (unchanged). */
static int kv_reserve_n(struct kv_store *kv, size_t extra)
{
    size_t need = kv->n + kv->pend_sets + extra, cap;
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

/* Room for one more set (see kv_reserve_n). */
static int kv_reserve(struct kv_store *kv) { return kv_reserve_n(kv, 1); }

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

/* Applying a committed write to the sorted array. */

/* Put e (taken) at pos, the place of its key (found: over the committed
 * entry there, whose CreateIndex it keeps), as changed at idx; unless busy
 * (another write of the key is queued, which will store it again), its
 * record is rewritten when the indexes it was stored with are not these. */
static void kv_install(struct kv_store *kv, struct kv_entry *e, size_t pos, bool found,
                       uint64_t idx, bool busy)
{
    uint64_t stored_create = e->create_index, stored_modify = e->modify_index;

    if (found) {
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
    if (!busy && !kv->shared &&
        (stored_create != e->create_index || stored_modify != e->modify_index))
        kv_fixup(kv, e);
}

/* Remove the committed entry at pos, deleted at idx. */
static void kv_remove_at(struct kv_store *kv, size_t pos, uint64_t idx)
{
    struct kv_entry *old = kv->items[pos];

    memmove(kv->items + pos, kv->items + pos + 1, (kv->n - pos - 1) * sizeof(*kv->items));
    kv->n--;
    kv->bytes -= old->len;
    kv->last_delete = idx;
    kv_entry_free(old);
}

/* Store completion of a set: on success the prepared entry takes the key
 * (replacing the committed one, whose CreateIndex it keeps). */
static void kv_set_done(void *arg, int rc, const char *err)
{
    struct kv_write *w = arg;
    struct kv_store *kv = w->kv;
    struct kv_entry *e = w->entry;
    uint64_t idx = reg_change_end(kv->reg, rc == 0);
    bool busy;
    size_t pos = 0;

    kv->pend_sets--;
    kv->pend_bytes -= e->len;
    if (w->counted_new)
        kv->pend_new--;
    busy = kv_pend_end(kv, w->key, rc);
    if (rc == 0) {
        bool found = kv_find(kv, w->key, &pos);

        w->entry = NULL;
        kv_install(kv, e, pos, found, idx, busy);
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
        kv_remove_at(kv, pos, idx);
        kv_tell(kv, KV_OP_DELETE, w->key, idx, NULL);
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
    kv->shared = st && st->ops->follow != NULL;
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

/* ---------------------------------------------------------------------- */
/* transactions */

/* A key as the writes of a transaction before the current op leave it. */
struct kv_tkey {
    char *key; /* owned */
    bool present;
    UT_hash_handle hh;
};

/* One write of a transaction. */
struct kv_twrite {
    struct kv_txn *t; /* borrowed: its transaction (set when queued) */
    enum kv_op op;
    char *key;              /* owned */
    struct kv_entry *entry; /* set: owned, prepared; NULL once applied */
    bool keep_create;       /* set: the committed CreateIndex stays (no write of it before) */
    bool was_present;       /* its pend record's present before its kv_pend_add */
    bool counted_new;       /* counted in pend_new */
    int rc;                 /* its completion's */
    uint64_t index;         /* the index it took when applied (0: it changed nothing) */
};

/* One op as the completion needs it. */
struct kv_tstep {
    enum kv_txn_verb verb;
    char *key;     /* owned */
    size_t w0, w1; /* its writes: writes[w0..w1) */
};

struct kv_txn {
    struct kv_store *kv; /* borrowed */
    struct kv_tstep *steps;
    size_t nsteps;
    struct kv_twrite *writes;
    size_t nwrites, capw;
    size_t queued;    /* writes handed to the store (all, unless partial) */
    size_t completed; /* of them, completed (in any order: see kv_txn_write_done) */
    bool partial;     /* the store refused a write after others were queued */
    char err[256];
    kv_txn_done_fn done;
    void *arg;
    struct kv_tkey *tkeys; /* uthash: keys the writes so far touch */
};

static void kv_txn_free(struct kv_txn *t)
{
    struct kv_tkey *k, *tmp;
    size_t i;

    if (!t)
        return;
    for (i = 0; i < t->nsteps; i++)
        free(t->steps[i].key);
    free(t->steps);
    for (i = 0; i < t->nwrites; i++) {
        free(t->writes[i].key);
        kv_entry_free(t->writes[i].entry);
    }
    free(t->writes);
    HASH_ITER (hh, t->tkeys, k, tmp) {
        HASH_DEL(t->tkeys, k);
        free(k->key);
        free(k);
    }
    free(t);
}

/* Whether key exists after the committed state, the queued writes and
 * the transaction's writes so far. */
static bool kv_txn_present(const struct kv_txn *t, const char *key)
{
    struct kv_tkey *k = NULL;
    struct kv_pend *p = NULL;

    HASH_FIND_STR(t->tkeys, key, k);
    if (k)
        return k->present;
    return kv_present_after(t->kv, key, &p);
}

/* Whether a write of key is queued or earlier in the transaction (its
 * ModifyIndex will change). */
static bool kv_txn_written(const struct kv_txn *t, const char *key)
{
    struct kv_tkey *k = NULL;

    HASH_FIND_STR(t->tkeys, key, k);
    return k || kv_pend_find(t->kv, key);
}

/* Add a write of key to t (a set of value when op is KV_OP_SET). 0 or -1
 * (out of memory). */
static int kv_txn_add_write(struct kv_txn *t, enum kv_op op, const char *key, const void *value,
                            size_t len, uint64_t flags)
{
    struct kv_twrite *w;
    struct kv_tkey *k = NULL;
    const struct kv_entry *cur = kv_get(t->kv, key);

    if (t->nwrites == t->capw) {
        size_t cap = t->capw ? t->capw * 2 : 8;
        struct kv_twrite *nw = realloc(t->writes, cap * sizeof(*nw));

        if (!nw)
            return -1;
        t->writes = nw;
        t->capw = cap;
    }
    w = &t->writes[t->nwrites];
    memset(w, 0, sizeof(*w));
    w->op = op;
    w->key = strdup(key);
    if (!w->key)
        return -1;
    w->keep_create = cur && !kv_txn_written(t, key);
    if (op == KV_OP_SET) {
        w->entry = calloc(1, sizeof(*w->entry));
        if (w->entry) {
            w->entry->key = strdup(key);
            w->entry->value = len ? malloc(len) : NULL;
        }
        if (!w->entry || !w->entry->key || (len && !w->entry->value)) {
            kv_entry_free(w->entry);
            free(w->key);
            return -1;
        }
        if (len)
            memcpy(w->entry->value, value, len);
        w->entry->len = len;
        w->entry->flags = flags;
    }
    HASH_FIND_STR(t->tkeys, key, k);
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (k)
            k->key = strdup(key);
        if (!k || !k->key) {
            free(k);
            kv_entry_free(w->entry);
            free(w->key);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, t->tkeys, k->key, strlen(k->key), k);
    }
    k->present = op == KV_OP_SET;
    t->nwrites++;
    return 0;
}

/* The keys under prefix as the transaction so far leaves them, each once,
 * into a new array of borrowed strings (*n of them; caller frees the
 * array). NULL with *n 0 when there are none or out of memory (*oom). */
static const char **kv_txn_tree(const struct kv_txn *t, const char *prefix, size_t *n, bool *oom)
{
    const struct kv_store *kv = t->kv;
    size_t first = 0, count = kv_range(kv, prefix, &first), i, cap;
    struct kv_pend *p, *ptmp;
    struct kv_tkey *k, *ktmp;
    const char **keys;

    *n = 0;
    *oom = false;
    cap = count + HASH_COUNT(kv->pend) + HASH_COUNT(t->tkeys);
    if (cap == 0)
        return NULL;
    keys = calloc(cap, sizeof(*keys));
    if (!keys) {
        *oom = true;
        return NULL;
    }
    for (i = first; i < first + count; i++) {
        if (kv_txn_present(t, kv->items[i]->key))
            keys[(*n)++] = kv->items[i]->key;
    }
    HASH_ITER (hh, kv->pend, p, ptmp) {
        if (kv_has_prefix(p->key, prefix) && !kv_get(kv, p->key) && kv_txn_present(t, p->key))
            keys[(*n)++] = p->key;
    }
    HASH_ITER (hh, t->tkeys, k, ktmp) {
        if (kv_has_prefix(k->key, prefix) && !kv_get(kv, k->key) && !kv_pend_find(kv, k->key) &&
            k->present)
            keys[(*n)++] = k->key;
    }
    if (*n == 0) {
        free(keys);
        return NULL;
    }
    return keys;
}

/* Decide op i of t against the state so far and add its writes. 0, 1
 * when a check fails (err), or a negative enum kv_refusal (err). */
static int kv_txn_plan(struct kv_txn *t, const struct kv_txn_op *op, size_t *new_keys,
                       size_t *new_bytes, char *err, size_t errlen)
{
    struct kv_store *kv = t->kv;
    const struct kv_entry *cur = kv_get(kv, op->key);
    bool present = kv_txn_present(t, op->key), written = kv_txn_written(t, op->key);
    const char **keys = NULL;
    size_t nkeys = 0, i;
    bool oom = false;
    int rc = 0;

    switch (op->verb) {
    case KV_TXN_CAS:
        if (op->index == 0 ? present : (written || !cur || cur->modify_index != op->index)) {
            errbuf_set(err, errlen, "failed to set key \"%.200s\", index is stale", op->key);
            return 1;
        }
        /* fall through */
    case KV_TXN_SET:
        if (!present && kv->n + kv->pend_new + *new_keys >= kv->opt.max_keys) {
            errbuf_set(err, errlen, "the KV store holds its maximum of %zu keys", kv->opt.max_keys);
            return KV_E_FULL;
        }
        if (kv->bytes + kv->pend_bytes + *new_bytes + op->len > kv->opt.max_bytes) {
            errbuf_set(err, errlen, "the KV store would pass its maximum of %zu value bytes",
                       kv->opt.max_bytes);
            return KV_E_FULL;
        }
        if (kv_txn_add_write(t, KV_OP_SET, op->key, op->value, op->len, op->flags) != 0)
            goto oom;
        t->writes[t->nwrites - 1].counted_new = !present;
        *new_keys += !present;
        *new_bytes += op->len;
        return 0;
    case KV_TXN_GET:
        if (!present) {
            errbuf_set(err, errlen, "key \"%.200s\" doesn't exist", op->key);
            return 1;
        }
        return 0;
    case KV_TXN_GET_TREE:
        return 0;
    case KV_TXN_CHECK_INDEX:
        if (!present) {
            errbuf_set(err, errlen, "key \"%.200s\" doesn't exist", op->key);
            return 1;
        }
        if (written) {
            errbuf_set(err, errlen,
                       "key \"%.200s\" has a write waiting or earlier in the transaction: its "
                       "modify index is not %" PRIu64 " once that is done",
                       op->key, op->index);
            return 1;
        }
        if (cur->modify_index != op->index) {
            errbuf_set(err, errlen,
                       "current modify index %" PRIu64 " != %" PRIu64 " for key \"%.200s\"",
                       cur->modify_index, op->index, op->key);
            return 1;
        }
        return 0;
    case KV_TXN_CHECK_NOT_EXISTS:
        if (present) {
            errbuf_set(err, errlen, "key \"%.200s\" exists", op->key);
            return 1;
        }
        return 0;
    case KV_TXN_DELETE_CAS:
        if (op->index == 0 || written || !cur || cur->modify_index != op->index) {
            errbuf_set(err, errlen, "failed to delete key \"%.200s\", index is stale", op->key);
            return 1;
        }
        /* fall through */
    case KV_TXN_DELETE:
        if (present && kv_txn_add_write(t, KV_OP_DELETE, op->key, NULL, 0, 0) != 0)
            goto oom;
        return 0;
    case KV_TXN_DELETE_TREE:
        keys = kv_txn_tree(t, op->key, &nkeys, &oom);
        if (oom)
            goto oom;
        for (i = 0; i < nkeys && rc == 0; i++) {
            /* the array borrows from the hashes an added write may grow:
             * copy the key first */
            char *key = strdup(keys[i]);

            if (!key || kv_txn_add_write(t, KV_OP_DELETE, key, NULL, 0, 0) != 0)
                rc = -1;
            free(key);
        }
        free(keys);
        if (rc != 0)
            goto oom;
        return 0;
    }
    errbuf_set(err, errlen, "unknown verb %d", (int)op->verb);
    return KV_E_FAILED;
oom:
    errbuf_set(err, errlen, "out of memory");
    return KV_E_FAILED;
}

/* A copy of e (the value only with with_value), or NULL. */
static struct kv_entry *kv_entry_copy(const struct kv_entry *e, bool with_value)
{
    struct kv_entry *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    *c = *e;
    c->value = NULL;
    c->len = 0;
    c->key = strdup(e->key);
    if (with_value && e->len) {
        c->value = malloc(e->len);
        if (c->value) {
            memcpy(c->value, e->value, e->len);
            c->len = e->len;
        }
    }
    if (!c->key || (with_value && e->len && !c->value)) {
        kv_entry_free(c);
        return NULL;
    }
    return c;
}

/* The results being collected in the completion. */
struct kv_titems {
    struct kv_txn_item *v;
    size_t n, cap;
    bool oom;
};

static void kv_titems_add(struct kv_titems *it, size_t op, const struct kv_entry *e,
                          bool with_value)
{
    struct kv_entry *c = NULL;

    if (it->oom || !e)
        return;
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 8;
        struct kv_txn_item *v = realloc(it->v, cap * sizeof(*v));

        if (!v) {
            it->oom = true;
            return;
        }
        it->v = v;
        it->cap = cap;
    }
    c = kv_entry_copy(e, with_value);
    if (!c) {
        it->oom = true;
        return;
    }
    it->v[it->n].op = op;
    it->v[it->n].e = c;
    it->v[it->n].with_value = with_value;
    it->n++;
}

static void kv_titems_free(struct kv_titems *it)
{
    size_t i;

    for (i = 0; i < it->n; i++)
        kv_entry_free((struct kv_entry *)it->v[i].e);
    free(it->v);
}

/* The completion side of write w (queued) of t: its counts, and when
 * apply, the change in memory (as kv_set_done / kv_del_done do; the
 * observer is told later, kv_txn_tell). */
static void kv_txn_apply_write(struct kv_txn *t, struct kv_twrite *w, bool apply)
{
    struct kv_store *kv = t->kv;
    size_t pos = 0;
    bool found = kv_find(kv, w->key, &pos), busy;
    uint64_t idx;

    if (w->op == KV_OP_DELETE) {
        idx = reg_change_end(kv->reg, apply && found);
        (void)kv_pend_end(kv, w->key, apply ? 0 : -1);
        if (apply && found) {
            kv_remove_at(kv, pos, idx);
            w->index = idx;
        }
        return;
    }
    idx = reg_change_end(kv->reg, apply);
    kv->pend_sets--;
    kv->pend_bytes -= w->entry->len;
    if (w->counted_new)
        kv->pend_new--;
    busy = kv_pend_end(kv, w->key, apply ? 0 : -1);
    if (apply) {
        kv_install(kv, w->entry, pos, found, idx, busy);
        w->entry = NULL;
        w->index = idx;
    }
}

/* Tell the observer the changes of t's applied writes, in order, once all
 * are applied: a reader it wakes sees the whole transaction. A set's entry
 * is the key's as it is now (NULL when a later op deleted it). */
static void kv_txn_tell(struct kv_txn *t)
{
    size_t i;

    for (i = 0; i < t->queued; i++) {
        const struct kv_twrite *w = &t->writes[i];

        if (w->index)
            kv_tell(t->kv, w->op, w->key, w->index,
                    w->op == KV_OP_SET ? kv_get(t->kv, w->key) : NULL);
    }
}

/* Every queued write of t completed (or none was queued): apply them in op
 * order, or none, collect the results, tell the caller, free t. */
static void kv_txn_finish(struct kv_txn *t)
{
    struct kv_store *kv = t->kv;
    struct kv_titems it = {0};
    bool failed = false, apply;
    size_t i, j, first = 0, count;

    for (i = 0; i < t->queued; i++)
        failed = failed || t->writes[i].rc != 0;
    /* one batch commits or fails as one: a partial one applies what
     * committed, so memory stays what the store holds */
    apply = !failed;
    for (i = 0; i < t->nsteps; i++) {
        const struct kv_tstep *s = &t->steps[i];
        const struct kv_entry *e = NULL;

        for (j = s->w0; j < s->w1 && j < t->queued; j++)
            kv_txn_apply_write(t, &t->writes[j], apply);
        if (failed || t->partial)
            continue;
        switch (s->verb) {
        case KV_TXN_SET:
        case KV_TXN_CAS:
        case KV_TXN_CHECK_INDEX:
            kv_titems_add(&it, i, kv_get(kv, s->key), false);
            break;
        case KV_TXN_GET:
            /* absent only when a queued write it counted on failed, or
             * (no write in the transaction) is not committed yet: no
             * result then */
            e = kv_get(kv, s->key);
            kv_titems_add(&it, i, e, true);
            break;
        case KV_TXN_GET_TREE:
            count = kv_range(kv, s->key, &first);
            for (j = first; j < first + count; j++)
                kv_titems_add(&it, i, kv->items[j], true);
            break;
        default:
            break;
        }
    }
    kv_txn_tell(t);
    if (failed || t->partial) {
        if (!t->err[0])
            errbuf_set(t->err, sizeof(t->err), "store failure");
        t->done(t->arg, -1, t->err, NULL, 0, reg_index(kv->reg));
    } else if (it.oom) {
        t->done(t->arg, 0, "out of memory for the results (the transaction is applied)", NULL, 0,
                reg_index(kv->reg));
    } else {
        t->done(t->arg, 0, NULL, it.v, it.n, reg_index(kv->reg));
    }
    kv_titems_free(&it);
    kv_txn_free(t);
}

/* Store completion of one write w of a transaction: writes of different
 * keys may complete in any order (a store with several transactions in
 * flight); the last finishes the transaction. */
static void kv_txn_write_done(void *arg, int rc, const char *err)
{
    struct kv_twrite *w = arg;
    struct kv_txn *t = w->t;

    w->rc = rc;
    if (rc != 0 && !t->err[0])
        errbuf_set(t->err, sizeof(t->err), "%s", err ? err : "store failure");
    if (++t->completed == t->queued)
        kv_txn_finish(t);
}

int kv_txn(struct kv_store *kv, const struct kv_txn_op *ops, size_t n, kv_txn_done_fn done,
           void *arg, size_t *failed, char *err, size_t errlen)
{
    struct kv_txn *t = calloc(1, sizeof(*t));
    size_t new_keys = 0, new_bytes = 0, nsets = 0, i, begun = 0, pended = 0;
    char *id = NULL, *doc = NULL;
    int rc = KV_E_FAILED;

    *failed = n;
    if (!t || (n && !(t->steps = calloc(n, sizeof(*t->steps))))) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    t->kv = kv;
    t->done = done;
    t->arg = arg;
    /* the keys and sizes of every op, then the checks in op order */
    for (i = 0; i < n; i++) {
        bool tree = ops[i].verb == KV_TXN_GET_TREE || ops[i].verb == KV_TXN_DELETE_TREE;

        if (kv_key_check(ops[i].key, strlen(ops[i].key), tree, err, errlen) != 0) {
            *failed = i;
            rc = KV_E_BAD_KEY;
            goto cleanup;
        }
        if ((ops[i].verb == KV_TXN_SET || ops[i].verb == KV_TXN_CAS) &&
            ops[i].len > kv->opt.max_value) {
            errbuf_set(err, errlen, "value of %zu bytes is over the limit of %zu bytes", ops[i].len,
                       kv->opt.max_value);
            *failed = i;
            rc = KV_E_TOO_BIG;
            goto cleanup;
        }
    }
    for (i = 0; i < n; i++) {
        t->steps[i].verb = ops[i].verb;
        t->steps[i].key = strdup(ops[i].key);
        t->nsteps++;
        if (!t->steps[i].key) {
            errbuf_set(err, errlen, "out of memory");
            goto cleanup;
        }
        t->steps[i].w0 = t->nwrites;
        rc = kv_txn_plan(t, &ops[i], &new_keys, &new_bytes, err, errlen);
        t->steps[i].w1 = t->nwrites;
        if (rc != 0) {
            *failed = i;
            goto cleanup;
        }
    }
    rc = KV_E_FAILED;
    if (t->nwrites == 0) {
        /* nothing to write: the committed state answers, now */
        kv_txn_finish(t);
        t = NULL;
        rc = 0;
        goto cleanup;
    }
    /* room first, so that queueing can fail only out of memory */
    if (store_pending(kv->store) + t->nwrites + 1 > STORE_PENDING_MAX) {
        errbuf_set(err, errlen, "%zu writes wait for the store: no room for %zu more",
                   store_pending(kv->store), t->nwrites);
        goto cleanup;
    }
    for (i = 0; i < t->nwrites; i++)
        nsets += t->writes[i].op == KV_OP_SET;
    if (kv_reserve_n(kv, nsets + 1) != 0) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < t->nwrites; i++, pended++) {
        struct kv_twrite *w = &t->writes[i];
        struct kv_pend *p = kv_pend_find(kv, w->key);

        w->was_present = p && p->present;
        if (kv_pend_add(kv, p, w->key, w->op == KV_OP_SET) != 0) {
            errbuf_set(err, errlen, "out of memory");
            goto unwind;
        }
    }
    /* queued back to back in this call: one batch of the store */
    for (i = 0; i < t->nwrites; i++) {
        struct kv_twrite *w = &t->writes[i];
        size_t doc_len = 0;
        int qrc;

        if (reg_change_begin(kv->reg, err, errlen) != 0)
            goto stop;
        begun++;
        id = kv_record_id(w->key);
        if (w->op == KV_OP_SET) {
            const struct kv_entry *cur = kv_get(kv, w->key);
            uint64_t predicted = reg_change_predict(kv->reg);

            w->entry->modify_index = predicted;
            w->entry->create_index = w->keep_create && cur ? cur->create_index : predicted;
            doc = kv_doc(w->entry, &doc_len);
        }
        if (!id || (w->op == KV_OP_SET && !doc)) {
            errbuf_set(err, errlen, "out of memory");
            goto stop;
        }
        w->t = t;
        qrc = w->op == KV_OP_SET
                  ? store_put(kv->store, id, doc, doc_len, kv_txn_write_done, w, err, errlen)
                  : store_del(kv->store, id, kv_txn_write_done, w, err, errlen);
        free(id);
        free(doc);
        id = doc = NULL;
        if (qrc != 0)
            goto stop;
        if (w->op == KV_OP_SET) {
            kv->pend_sets++;
            kv->pend_bytes += w->entry->len;
            if (w->counted_new)
                kv->pend_new++;
        }
        t->queued++;
    }
    t = NULL;
    rc = 0;
    goto cleanup;
stop:
    /* write i was not queued: take back its count and those after it */
    if (begun > t->queued)
        reg_change_cancel(kv->reg);
    if (t->queued > 0) {
        /* the ones queued will commit: the completion applies them, and
         * tells the caller the transaction failed */
        t->partial = true;
        errbuf_set(t->err, sizeof(t->err),
                   "the store could not queue write %zu of %zu (%s): the %zu before it may "
                   "have committed",
                   t->queued + 1, t->nwrites, err, t->queued);
        while (pended > t->queued) {
            pended--;
            kv_pend_undo(kv, kv_pend_find(kv, t->writes[pended].key),
                         t->writes[pended].was_present);
        }
        t = NULL;
        rc = 0;
        goto cleanup;
    }
unwind:
    while (pended > 0) {
        pended--;
        kv_pend_undo(kv, kv_pend_find(kv, t->writes[pended].key), t->writes[pended].was_present);
    }
cleanup:
    free(id);
    free(doc);
    kv_txn_free(t);
    return rc;
}

/* The entry a stored record id (borrowed; a KV key's, KV_RECORD_PREFIX
 * checked by the caller) with document doc holds, with the indexes the
 * document says, into *out (caller frees). 0; 1 when the record is not a
 * key (*out NULL, logged with what, "stored" or "changed"); -1 when out of
 * memory. */
static int kv_entry_parse(const char *id, const char *doc, const char *what, struct kv_entry **out)
{
    const char *key = id + sizeof(KV_RECORD_PREFIX) - 1;
    unsigned long long flags = 0, create = 0, modify = 0;
    struct kv_entry *e = NULL;
    size_t b64len;
    int head = 0;
    char err[128];
    unsigned char empty[1];

    *out = NULL;
    if (kv_key_check(key, strlen(key), false, err, sizeof(err)) != 0) {
        log_warn("skipping %s key %.200s: %s", what, key, err);
        return 1;
    }
    if (sscanf(doc, "kv1 %llu %llu %llu %n", &flags, &create, &modify, &head) != 3 || head == 0) {
        log_warn("skipping %s key %.200s: not a KV document", what, key);
        return 1;
    }
    b64len = strlen(doc + head);
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
        log_warn("skipping %s key %.200s: its value is not base64", what, key);
        kv_entry_free(e);
        return 1;
    }
    if (e->len == 0) {
        free(e->value);
        e->value = NULL;
    }
    e->flags = flags;
    e->create_index = create;
    e->modify_index = modify;
    *out = e;
    return 0;
}

int kv_load_record(struct kv_store *kv, const char *id, const char *doc, size_t doc_len)
{
    struct kv_entry *e = NULL;
    size_t pos = 0;
    int rc;

    (void)doc_len;
    if (strncmp(id, KV_RECORD_PREFIX, sizeof(KV_RECORD_PREFIX) - 1) != 0)
        return 0;
    if (kv_find(kv, id + sizeof(KV_RECORD_PREFIX) - 1, &pos))
        return 0; /* a store holds one record per id: cannot happen */
    if (kv_reserve(kv) != 0)
        return -1;
    rc = kv_entry_parse(id, doc, "stored", &e);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (kv->shared) {
        /* the record's revision (store_load's contract); create 0: not
         * known when it was written, so that revision too */
        e->modify_index = store_revision(kv->store);
        if (e->create_index == 0 || e->create_index > e->modify_index)
            e->create_index = e->modify_index;
    }
    memmove(kv->items + pos + 1, kv->items + pos, (kv->n - pos) * sizeof(*kv->items));
    kv->items[pos] = e;
    kv->n++;
    kv->bytes += e->len;
    return 0;
}

/* store_load callback of kv_load: kv_load_record. */
static int kv_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    return kv_load_record(arg, id, doc, doc_len);
}

long kv_load(struct kv_store *kv, char *err, size_t errlen)
{
    size_t before = kv->n;

    if (store_load(kv->store, kv_load_one, kv, err, errlen) != 0)
        return -1;
    kv_load_finish(kv);
    return (long)(kv->n - before);
}

void kv_load_finish(struct kv_store *kv)
{
    size_t i;
    uint64_t top = reg_index(kv->reg);

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
}

/* ---------------------------------------------------------------------- */
/* other replicas' commits (a shared store) */

/* Another replica's put of the key of record id: as a committed kv_set
 * (CreateIndex kept, or the document's, or the revision for a new key). */
static void kv_apply_put(struct kv_store *kv, const char *id, const char *doc)
{
    struct kv_entry *e = NULL;
    const struct kv_entry *cur = NULL;
    uint64_t idx, doc_create;
    size_t pos = 0;
    bool found;
    int rc = kv_entry_parse(id, doc, "changed", &e);

    if (rc != 0) {
        if (rc < 0)
            log_warn("out of memory applying the change of key %.200s: this replica's copy "
                     "lags until its next change",
                     id + sizeof(KV_RECORD_PREFIX) - 1);
        return;
    }
    found = kv_find(kv, e->key, &pos);
    cur = found ? kv->items[pos] : NULL;
    if (kv->resetting && cur && cur->flags == e->flags && cur->len == e->len &&
        (e->len == 0 || memcmp(cur->value, e->value, e->len) == 0)) {
        kv->items[pos]->seen = true; /* the reset read again what is here */
        kv_entry_free(e);
        return;
    }
    if (!found && kv_reserve(kv) != 0) {
        log_warn("out of memory applying the change of key %.200s: this replica's copy lags "
                 "until its next change",
                 e->key);
        kv_entry_free(e);
        return;
    }
    doc_create = e->create_index;
    idx = reg_change_remote(kv->reg);
    /* busy: no rewrite of the record (it is another replica's) */
    kv_install(kv, e, pos, found, idx, true);
    if (!found && doc_create != 0 && doc_create < idx)
        e->create_index = doc_create; /* created before this replica saw it */
    e->seen = true;
    kv_tell(kv, KV_OP_SET, e->key, idx, e);
}

/* RESET_END: every key not put since RESET is gone. */
static void kv_reset_end(struct kv_store *kv)
{
    size_t i = 0;
    uint64_t idx = reg_change_remote(kv->reg);

    while (i < kv->n) {
        char *key = NULL;

        if (kv->items[i]->seen) {
            kv->items[i++]->seen = false;
            continue;
        }
        key = strdup(kv->items[i]->key);
        kv_remove_at(kv, i, idx);
        kv_tell(kv, KV_OP_DELETE, key ? key : "", idx, NULL);
        free(key);
    }
    kv->resetting = false;
}

void kv_apply_change(struct kv_store *kv, enum store_change kind, const char *id, const char *doc,
                     size_t len)
{
    size_t pos = 0, i;

    (void)len;
    switch (kind) {
    case STORE_CH_RESET:
        for (i = 0; i < kv->n; i++)
            kv->items[i]->seen = false;
        kv->resetting = true;
        return;
    case STORE_CH_RESET_END:
        kv_reset_end(kv);
        return;
    case STORE_CH_PUT:
    case STORE_CH_DEL:
        break;
    }
    if (!id || strncmp(id, KV_RECORD_PREFIX, sizeof(KV_RECORD_PREFIX) - 1) != 0)
        return;
    if (kind == STORE_CH_PUT) {
        if (doc)
            kv_apply_put(kv, id, doc);
        return;
    }
    if (kv_find(kv, id + sizeof(KV_RECORD_PREFIX) - 1, &pos)) {
        uint64_t idx = reg_change_remote(kv->reg);

        kv_remove_at(kv, pos, idx);
        kv_tell(kv, KV_OP_DELETE, id + sizeof(KV_RECORD_PREFIX) - 1, idx, NULL);
    }
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
struct reg_registry *kv_registry(const struct kv_store *kv) { return kv->reg; }
uint64_t kv_last_delete(const struct kv_store *kv) { return kv->last_delete; }
bool kv_writable(const struct kv_store *kv) { return store_writable(kv->store); }
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
