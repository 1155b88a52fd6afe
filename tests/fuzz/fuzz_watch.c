/* fuzz_watch.c: libFuzzer harness for what a watch and the KV store take
 * from a client: the fuzz data, split at NUL bytes (at most 32 pieces), is
 * a list of strings. Each piece goes through rev_parse_index,
 * rev_parse_wait and cfg_parse_duration_ms (against references computed in
 * 128 bits: each parses exactly what its rules accept, a parsed wait is
 * within [0, LIM_WATCH_WAIT_MAX_MS], and the printed value parses back to
 * the same one) and through kv_key_check as a key and as a prefix (against
 * a reference of the key rules: an accepted key has no NUL, no ".."
 * segment, no leading '/', is UTF-8 and at most LIM_KV_KEY_MAX bytes; the
 * whole input, NULs included, is checked too). Then the pieces are a
 * program for a KV store over a registry and the in-memory store (no
 * socket; the event base only runs the store's completions): the first
 * byte of a piece picks set, compare-and-set, delete or recursive delete,
 * the rest is the key. Each write is settled before the next, and the
 * store is compared with a model after each: same keys, same values, a
 * refusal exactly when the key rules or the CAS rule say so, indexes from
 * the registry's; at the end the sorted order and kv_range's prefix counts
 * are checked. Besides crashes and leaks, any broken contract aborts. */
#include "core/config.h"
#include "core/limits.h"
#include "registry/api/codec.h"
#include "registry/api/events.h"
#include "registry/core/catalog.h"
#include "registry/core/kv.h"
#include "registry/store/store.h"

#include "codec/utf8.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECES_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------ parsers -- */

/* Reference of rev_parse_index: 1 to 20 digits whose value fits. */
static int ref_index(const char *s, uint64_t *out)
{
    unsigned __int128 v = 0;
    size_t n = 0;

    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 20)
            return -1;
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || v > UINT64_MAX)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Reference of cfg_parse_duration_ms: digits then "", "s", "ms", "m" or
 * "h", the product within int64. */
static int ref_duration(const char *s, int64_t *ms)
{
    __int128 v = 0, mult;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > INT64_MAX)
            return -1;
    }
    if (!*p || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (v * mult > INT64_MAX)
        return -1;
    *ms = (int64_t)(v * mult);
    return 0;
}

static void check_index(const char *s)
{
    uint64_t got = 0, want = 0, back = 0;
    int rc = rev_parse_index(s, &got);
    char text[32];

    if (rc != ref_index(s, &want) || (rc == 0 && got != want))
        abort();
    if (rc != 0)
        return;
    snprintf(text, sizeof(text), "%" PRIu64, got);
    if (rev_parse_index(text, &back) != 0 || back != got)
        abort();
}

/* A duration printed as ms (and as s and bare seconds when whole) parses
 * back to ms. */
static void check_round_trip(int64_t ms, int (*parse)(const char *, int64_t *))
{
    char text[40];
    int64_t back = -1;

    snprintf(text, sizeof(text), "%" PRId64 "ms", ms);
    if (parse(text, &back) != 0 || back != ms)
        abort();
    if (ms % 1000 != 0)
        return;
    snprintf(text, sizeof(text), "%" PRId64 "s", ms / 1000);
    if (parse(text, &back) != 0 || back != ms)
        abort();
    snprintf(text, sizeof(text), "%" PRId64, ms / 1000);
    if (parse(text, &back) != 0 || back != ms)
        abort();
}

static void check_durations(const char *s)
{
    int64_t got = -1, want = -1, wait = -1;
    int rc = cfg_parse_duration_ms(s, &got), ref = ref_duration(s, &want);
    int wrc = rev_parse_wait(s, &wait);
    bool wait_ok = ref == 0 && want >= 0 && want <= LIM_WATCH_WAIT_MAX_MS;

    if (rc != ref || (rc == 0 && got != want))
        abort();
    if ((wrc == 0) != wait_ok || (wrc == 0 && wait != want))
        abort();
    if (wrc == 0 && (wait < 0 || wait > LIM_WATCH_WAIT_MAX_MS))
        abort();
    if (rc == 0)
        check_round_trip(got, cfg_parse_duration_ms);
    if (wrc == 0)
        check_round_trip(wait, rev_parse_wait);
}

/* Reference of the key rules (kv.h). */
static bool ref_key_ok(const char *k, size_t len, bool prefix)
{
    size_t i, seg = 0;

    if (memchr(k, '\0', len) || len > LIM_KV_KEY_MAX || (!prefix && len == 0))
        return false;
    if (len > 0 && k[0] == '/')
        return false;
    if (!utf8_valid(k, len))
        return false;
    for (i = 0; i <= len; i++) {
        if (i == len || k[i] == '/') {
            if (i - seg == 2 && k[seg] == '.' && k[seg + 1] == '.')
                return false;
            seg = i + 1;
        }
    }
    return true;
}

static void check_key(const char *k, size_t len, bool prefix)
{
    char err[256];
    int rc;

    err[0] = '\0';
    rc = kv_key_check(k, len, prefix, err, sizeof(err));
    if ((rc == 0) != ref_key_ok(k, len, prefix))
        abort();
    if (rc == 0) {
        /* the contract as the task states it, besides the reference */
        if (memchr(k, '\0', len) || len > LIM_KV_KEY_MAX || (len == 2 && memcmp(k, "..", 2) == 0))
            abort();
    } else if (!err[0] || !memchr(err, '\0', sizeof(err))) {
        abort(); /* a refusal says why */
    }
}

/* ----------------------------------------------------------- KV store -- */

struct model_entry {
    char *key;   /* owned */
    char *value; /* owned */
    uint64_t create, modify;
};

struct run {
    struct event_base *base; /* borrowed (one for the process) */
    struct store *store;
    struct reg_registry *reg;
    struct kv_store *kv;
    struct model_entry m[PIECES_MAX]; /* the model: at most one key per piece */
    size_t n;
    int done_calls;
};

static void done_cb(void *arg, int rc, const char *err)
{
    struct run *r = arg;

    (void)err;
    if (rc != 0)
        abort(); /* the memory store does not fail */
    r->done_calls++;
}

static void settle(struct run *r)
{
    int rounds = 0;

    while (store_pending(r->store) > 0) {
        if (rounds++ > 1000 || event_base_loop(r->base, EVLOOP_ONCE) == -1)
            abort();
    }
}

static struct model_entry *model_find(struct run *r, const char *key)
{
    size_t i;

    for (i = 0; i < r->n; i++)
        if (strcmp(r->m[i].key, key) == 0)
            return &r->m[i];
    return NULL;
}

static void model_remove(struct run *r, struct model_entry *e)
{
    free(e->key);
    free(e->value);
    *e = r->m[--r->n];
}

/* The store holds exactly the model's keys and values. */
static void compare(struct run *r)
{
    size_t i, vlen;

    if (kv_count(r->kv) != r->n)
        abort();
    for (i = 0; i < r->n; i++) {
        const struct kv_entry *e = kv_get(r->kv, r->m[i].key);
        const unsigned char *v;

        if (!e)
            abort();
        v = kv_entry_value(e, &vlen);
        if (vlen != strlen(r->m[i].value) || memcmp(v, r->m[i].value, vlen) != 0 ||
            strcmp(kv_entry_key(e), r->m[i].key) != 0 ||
            kv_entry_create_index(e) != r->m[i].create ||
            kv_entry_modify_index(e) != r->m[i].modify)
            abort();
    }
}

/* A set of key (with CAS when has_cas), its outcome against the model. */
static void op_put(struct run *r, const char *key, size_t step, bool has_cas, uint64_t cas)
{
    struct model_entry *e = model_find(r, key);
    bool valid = ref_key_ok(key, strlen(key), false);
    bool cas_ok = !has_cas || (cas == 0 ? !e : e && e->modify == cas);
    char value[LIM_KV_KEY_MAX + 32], err[256];
    int rc, calls = r->done_calls;

    snprintf(value, sizeof(value), "%zu=%s", step, key);
    rc = kv_put(r->kv, key, value, strlen(value), step, has_cas, cas, done_cb, r, err, sizeof(err));
    if (!valid) {
        if (rc != KV_E_BAD_KEY)
            abort();
        return;
    }
    if (!cas_ok) {
        if (rc != 1)
            abort();
        return;
    }
    if (rc != 0)
        abort();
    settle(r);
    if (r->done_calls != calls + 1)
        abort();
    if (!e) {
        e = &r->m[r->n++];
        e->key = strdup(key);
        e->value = NULL;
        e->create = reg_index(r->reg);
        if (!e->key)
            abort();
    }
    free(e->value);
    e->value = strdup(value);
    e->modify = reg_index(r->reg);
    if (!e->value || kv_entry_flags(kv_get(r->kv, key)) != step)
        abort();
}

static void op_delete(struct run *r, const char *key, bool recurse)
{
    size_t klen = strlen(key), i, under = 0;
    bool valid = ref_key_ok(key, klen, recurse);
    char err[256];
    int rc, calls = r->done_calls;

    for (i = 0; i < r->n; i++)
        if (recurse ? strncmp(r->m[i].key, key, klen) == 0 : strcmp(r->m[i].key, key) == 0)
            under++;
    rc = kv_delete(r->kv, key, recurse, false, 0, done_cb, r, err, sizeof(err));
    if (!valid) {
        if (rc != KV_E_BAD_KEY)
            abort();
        return;
    }
    if (under == 0) {
        if (rc != 2)
            abort();
        return;
    }
    if (rc != 0)
        abort();
    settle(r);
    if (r->done_calls != calls + 1)
        abort();
    for (i = r->n; i-- > 0;)
        if (recurse ? strncmp(r->m[i].key, key, klen) == 0 : strcmp(r->m[i].key, key) == 0)
            model_remove(r, &r->m[i]);
}

/* Keys in strictly increasing byte order, each a valid key, indexes
 * ordered; kv_range of each piece as a prefix counts what a scan finds. */
static void check_order(struct run *r, char *const *pieces, size_t npieces)
{
    size_t i, j, count = kv_count(r->kv);

    for (i = 0; i < count; i++) {
        const struct kv_entry *e = kv_at(r->kv, i);
        const char *k = kv_entry_key(e);

        if (!ref_key_ok(k, strlen(k), false) || kv_entry_create_index(e) == 0 ||
            kv_entry_create_index(e) > kv_entry_modify_index(e) ||
            kv_entry_modify_index(e) > reg_index(r->reg))
            abort();
        if (i > 0 && strcmp(kv_entry_key(kv_at(r->kv, i - 1)), k) >= 0)
            abort();
    }
    for (j = 0; j < npieces; j++) {
        const char *p = pieces[j] + (pieces[j][0] ? 1 : 0);
        size_t plen = strlen(p), first = 0, n = kv_range(r->kv, p, &first), want = 0;

        for (i = 0; i < count; i++)
            if (strncmp(kv_entry_key(kv_at(r->kv, i)), p, plen) == 0)
                want++;
        if (n != want || (n > 0 && first + n > count))
            abort();
        for (i = first; i < first + n; i++)
            if (strncmp(kv_entry_key(kv_at(r->kv, i)), p, plen) != 0)
                abort();
    }
}

static void run_kv(char *const *pieces, size_t npieces)
{
    static struct event_base *base;
    struct reg_options opt;
    struct run r;
    size_t i;

    if (!base)
        base = event_base_new();
    if (!base)
        abort();
    memset(&r, 0, sizeof(r));
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    r.base = base;
    r.store = store_memory_open(base);
    r.reg = r.store ? reg_new(r.store, &opt) : NULL;
    r.kv = r.reg ? kv_new(r.reg, r.store, NULL) : NULL;
    if (!r.kv)
        abort();
    for (i = 0; i < npieces; i++) {
        const char *key = pieces[i][0] ? pieces[i] + 1 : pieces[i];
        struct model_entry *e = model_find(&r, key);

        switch ((unsigned char)pieces[i][0] % 6) {
        case 0:
        case 1:
            op_put(&r, key, i, false, 0);
            break;
        case 2: /* CAS on the current index: wins when the key is there */
            op_put(&r, key, i, true, e ? e->modify : 0);
            break;
        case 3: /* CAS on a stale index: loses */
            op_put(&r, key, i, true, e ? e->modify + 1 : 1);
            break;
        case 4:
            op_delete(&r, key, false);
            break;
        case 5:
            op_delete(&r, key, true);
            break;
        }
        compare(&r);
    }
    check_order(&r, pieces, npieces);
    kv_free(r.kv);
    reg_free(r.reg);
    store_close(r.store);
    for (i = 0; i < r.n; i++) {
        free(r.m[i].key);
        free(r.m[i].value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy, *pieces[PIECES_MAX];
    size_t i, start = 0, n = 0;

    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    check_key(copy, size, false); /* NULs included */
    check_key(copy, size, true);
    for (i = 0; i <= size && n < PIECES_MAX; i++) {
        if (copy[i] == '\0') {
            pieces[n++] = copy + start;
            start = i + 1;
        }
    }
    for (i = 0; i < n; i++) {
        check_index(pieces[i]);
        check_durations(pieces[i]);
        check_key(pieces[i], strlen(pieces[i]), false);
        check_key(pieces[i], strlen(pieces[i]), true);
    }
    run_kv(pieces, n);
    free(copy);
    return 0;
}
