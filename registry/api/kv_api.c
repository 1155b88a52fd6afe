/* kv_api.c: the KV routes (see kv_api.h). Shapes are Consul's:
 *   GET    [{"LockIndex":0,"Key":K,"Flags":F,"Value":<base64>|null,
 *           "CreateIndex":C,"ModifyIndex":M}], ?raw the bytes, ?keys [K...]
 *   PUT    the JSON literal true or false
 *   DELETE the same
 * A write is answered from its store completion (true once durable, 503
 * when the commit failed); a refused CAS answers false at once.
 *
 * Blocking reads: a GET with ?index=N whose state index (below) is not
 * above N is parked (one timer, a place in one list) in the list of its
 * key (exact reads) or of its prefix (?recurse, ?keys). A committed write
 * of key K wakes K's list and the lists of the watched prefixes of K,
 * nobody else; a woken read is answered with the state as it is then.
 * The state index of a read is what its X-Registry-Index says:
 *   - a key that exists: its ModifyIndex (Consul's rule);
 *   - a prefix with keys: the highest ModifyIndex under it, or the index of
 *     the last deletion when that is higher (there are no tombstones:
 *     without it a deletion under the prefix could go unseen);
 *   - nothing there (404): the registry index for the answer, the last
 *     deletion's index for the comparison.
 * A deletion elsewhere can thus answer a parked prefix read early, with
 * the same keys and a higher index; no change is ever missed. */
#include "kv_api.h"

#include "../core/catalog.h"
#include "../core/kv.h"
#include "auth/guard.h"
#include "codec/b64.h"
#include "codec/jsonw.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "events.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"

#include "../store/store.h"
#include "core/errbuf.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>

struct kva_list;

/* A parked read. */
struct kva_wait {
    struct kv_api *a;      /* borrowed */
    struct hs_req *req;    /* answered when woken or at its deadline */
    struct event *timer;   /* owned: the deadline */
    struct kva_list *list; /* the list it is in */
    struct kva_wait *prev, *next;
};

/* The reads parked on one key, or on one prefix. */
struct kva_list {
    char *key; /* owned */
    struct kva_wait *waits;
    UT_hash_handle hh;
};

struct kv_api {
    struct svc *svc;           /* borrowed */
    struct reg_registry *reg;  /* borrowed */
    struct rev_hub *hub;       /* borrowed */
    const struct acl *acl;     /* borrowed; NULL: open */
    struct kv_store *kv;       /* borrowed; NULL until started */
    struct kva_list *exact;    /* uthash: reads of one key */
    struct kva_list *prefixes; /* uthash: reads of a prefix */
    size_t parked;
    bool stopping;
    unsigned int seed;
};

/* A write waiting for its commit. */
struct kva_write {
    struct kv_api *a;
    struct hs_req *req;
};

/* May the caller do action on key? 1, or req answered 403 and 0
 * (guard.h). */
static int kva_allowed(struct kv_api *a, struct hs_req *req, enum acl_action action,
                       const char *key)
{
    return guard_request(a->acl, req, action, key);
}

/* X-Registry-Index (and Consul's name of it) on an answer, with
 * X-Registry-Stale while the store cannot commit. */
static void kva_index_header(const struct kv_api *a, struct hs_req *req, uint64_t index)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%" PRIu64, index);
    (void)hs_reply_header(req, REGV1_H_INDEX, hdr);
    /* Consul's name of it: its clients (python3-consul's kv.get) need it */
    (void)hs_reply_header(req, "X-Consul-Index", hdr);
    if (a->kv && !kv_writable(a->kv))
        (void)hs_reply_header(req, REGV1_H_STALE, "true");
}

/* A decimal uint64 query value (digits only) of name into *out; absent
 * leaves *out and *has false. 0, or -1 after answering 400. */
static int kva_query_u64(struct hs_req *req, const char *name, uint64_t *out, bool *has)
{
    const char *s = hs_req_query(req, name);

    *has = s != NULL;
    if (!s)
        return 0;
    if (rev_parse_index(s, out) != 0) {
        hs_reply_error(req, 400, "%s must be a decimal number from 0 to %" PRIu64, name,
                       UINT64_MAX);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* reads */

/* What a GET asks for. */
struct kva_read {
    const char *key; /* borrowed from req */
    bool raw, recurse, keys;
    const char *sep; /* ?separator= (with ?keys), NULL: none */
};

/* The query of a GET into r; 0, or -1 after answering 400. */
static int kva_read_parse(struct hs_req *req, struct kva_read *r)
{
    char err[256];

    r->key = hs_req_param(req, REGV1_PARAM_KEY);
    r->raw = hs_req_query(req, REGV1_Q_RAW) != NULL;
    r->recurse = hs_req_query(req, REGV1_Q_RECURSE) != NULL;
    r->keys = hs_req_query(req, REGV1_Q_KEYS) != NULL;
    r->sep = hs_req_query(req, REGV1_Q_SEPARATOR);
    if (kv_key_check(r->key, strlen(r->key), r->recurse || r->keys, err, sizeof(err)) != 0) {
        hs_reply_error(req, 400, "%s", err);
        return -1;
    }
    if (r->sep && (!r->keys || !*r->sep || strlen(r->sep) > LIM_KV_KEY_MAX)) {
        hs_reply_error(req, 400, "separator must be 1 to %d bytes, with ?keys", LIM_KV_KEY_MAX);
        return -1;
    }
    if (r->sep && !r->keys)
        r->sep = NULL;
    return 0;
}

/* The state index of the read r (see the head of the file); *found: any
 * key is there. */
static uint64_t kva_state(const struct kv_api *a, const struct kva_read *r, bool *found)
{
    size_t first = 0, n, i;
    uint64_t top = 0, del = kv_last_delete(a->kv);

    if (!r->recurse && !r->keys) {
        const struct kv_entry *e = kv_get(a->kv, r->key);

        *found = e != NULL;
        return e ? kv_entry_modify_index(e) : del;
    }
    n = kv_range(a->kv, r->key, &first);
    for (i = first; i < first + n; i++) {
        uint64_t m = kv_entry_modify_index(kv_at(a->kv, i));

        if (m > top)
            top = m;
    }
    *found = n > 0;
    return top > del ? top : del;
}

int kv_api_write_entry(struct evbuffer *out, const struct kv_entry *e, bool with_value)
{
    const char *key = kv_entry_key(e);
    size_t klen = strlen(key), vlen = 0;
    const unsigned char *v = kv_entry_value(e, &vlen);

    if (!with_value)
        vlen = 0;
    size_t cap = jw_string_len(key, klen) + B64_ENCODED_LEN(vlen) + 160;
    struct evbuffer_iovec vec;
    char *p;

    if (evbuffer_reserve_space(out, (ev_ssize_t)cap, &vec, 1) < 1 || vec.iov_len < cap)
        return -1;
    p = vec.iov_base;
    p += sprintf(p, "{\"LockIndex\":0,\"Key\":");
    p = jw_string_put(p, key, klen);
    p += sprintf(p, ",\"Flags\":%" PRIu64 ",\"Value\":", kv_entry_flags(e));
    if (vlen == 0) {
        memcpy(p, "null", 4);
        p += 4;
    } else {
        *p++ = '"';
        p += b64_encode(v, vlen, p);
        *p++ = '"';
    }
    p += sprintf(p, ",\"CreateIndex\":%" PRIu64 ",\"ModifyIndex\":%" PRIu64 "}",
                 kv_entry_create_index(e), kv_entry_modify_index(e));
    vec.iov_len = (size_t)(p - (char *)vec.iov_base);
    return evbuffer_commit_space(out, &vec, 1);
}

static int kva_write_entry(struct evbuffer *out, const struct kv_entry *e)
{
    return kv_api_write_entry(out, e, true);
}

/* Append a JSON string of s[0..len) to out. 0 or -1. */
static int kva_write_string(struct evbuffer *out, const char *s, size_t len)
{
    size_t cap = jw_string_len(s, len);
    struct evbuffer_iovec vec;
    char *end;

    if (evbuffer_reserve_space(out, (ev_ssize_t)cap, &vec, 1) < 1 || vec.iov_len < cap)
        return -1;
    end = jw_string_put(vec.iov_base, s, len);
    vec.iov_len = (size_t)(end - (char *)vec.iov_base);
    return evbuffer_commit_space(out, &vec, 1);
}

/* Answer the read r of req with the state as it is now. */
static void kva_answer(struct kv_api *a, struct hs_req *req, const struct kva_read *r)
{
    struct evbuffer *out = hs_req_output(req);
    bool found = false;
    uint64_t state = kva_state(a, r, &found);
    size_t first = 0, n = 0, i, plen = strlen(r->key);
    const char *last = NULL;
    size_t last_len = 0;

    kva_index_header(a, req, found ? state : reg_index(a->reg));
    if (!found) {
        hs_reply_error(req, 404, "%s '%.200s' not found",
                       r->recurse || r->keys ? "no key under" : "key", r->key);
        return;
    }
    if (!r->recurse && !r->keys) {
        const struct kv_entry *e = kv_get(a->kv, r->key);

        if (r->raw) {
            size_t len = 0;
            const unsigned char *v = kv_entry_value(e, &len);

            hs_reply_raw(req, 200, "application/octet-stream", v ? (const char *)v : "", len);
            return;
        }
        if (evbuffer_add(out, "[", 1) != 0 || kva_write_entry(out, e) != 0 ||
            evbuffer_add(out, "]", 1) != 0)
            goto oom;
        hs_reply_buffer(req, 200, "application/json", NULL);
        return;
    }
    n = kv_range(a->kv, r->key, &first);
    if (evbuffer_add(out, "[", 1) != 0)
        goto oom;
    for (i = first; i < first + n; i++) {
        const struct kv_entry *e = kv_at(a->kv, i);
        const char *k = kv_entry_key(e);
        size_t klen = strlen(k);

        if (r->keys && r->sep) {
            const char *cut = strstr(k + plen, r->sep);

            if (cut)
                klen = (size_t)(cut - k) + strlen(r->sep);
            /* names cut alike are neighbours in key order */
            if (last && last_len == klen && memcmp(last, k, klen) == 0)
                continue;
            last = k;
            last_len = klen;
        }
        if (i > first && evbuffer_add(out, ",", 1) != 0)
            goto oom;
        if (r->keys ? kva_write_string(out, k, klen) != 0 : kva_write_entry(out, e) != 0)
            goto oom;
    }
    if (evbuffer_add(out, "]", 1) != 0)
        goto oom;
    hs_reply_buffer(req, 200, "application/json", NULL);
    return;
oom:
    evbuffer_drain(out, evbuffer_get_length(out));
    hs_reply_oom(req);
}

/* Take w out of its list (which goes with its last read) and free it. */
static void kva_wait_free(struct kva_wait *w)
{
    struct kv_api *a = w->a;
    struct kva_list *l = w->list;

    DL_DELETE(l->waits, w);
    if (!l->waits) {
        if (hs_req_query(w->req, REGV1_Q_RECURSE) || hs_req_query(w->req, REGV1_Q_KEYS))
            HASH_DEL(a->prefixes, l);
        else
            HASH_DEL(a->exact, l);
        free(l->key);
        free(l);
    }
    if (w->timer)
        event_free(w->timer);
    a->parked--;
    free(w);
}

/* Answer a parked read with the state now, and forget it. */
static void kva_wake(struct kva_wait *w)
{
    struct kv_api *a = w->a;
    struct hs_req *req = w->req;
    struct kva_read r;

    kva_wait_free(w);
    /* parsed before it was parked: cannot fail now */
    memset(&r, 0, sizeof(r));
    r.key = hs_req_param(req, REGV1_PARAM_KEY);
    r.raw = hs_req_query(req, REGV1_Q_RAW) != NULL;
    r.recurse = hs_req_query(req, REGV1_Q_RECURSE) != NULL;
    r.keys = hs_req_query(req, REGV1_Q_KEYS) != NULL;
    r.sep = r.keys ? hs_req_query(req, REGV1_Q_SEPARATOR) : NULL;
    kva_answer(a, req, &r);
}

static void kva_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kva_wake(arg);
}

/* Park req (the read r) until a write touches it or wait_ms (plus up to
 * a sixteenth, at random) ends. 0, or -1 (out of memory; req untouched). */
static int kva_park(struct kv_api *a, struct hs_req *req, const struct kva_read *r, int64_t wait_ms)
{
    struct kva_list **table = r->recurse || r->keys ? &a->prefixes : &a->exact;
    struct kva_list *l = NULL;
    struct kva_wait *w = calloc(1, sizeof(*w));
    int64_t slice = wait_ms / LIM_WATCH_JITTER_DIV;

    if (!w)
        return -1;
    w->timer = evtimer_new(svc_base(a->svc), kva_deadline_cb, w);
    if (slice > 0)
        wait_ms += (int64_t)((unsigned)rand_r(&a->seed) % (unsigned)(slice + 1));
    if (!w->timer || clk_timer_in(w->timer, wait_ms) != 0)
        goto fail;
    HASH_FIND_STR(*table, r->key, l);
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (l)
            l->key = strdup(r->key);
        if (!l || !l->key) {
            free(l);
            goto fail;
        }
        HASH_ADD_KEYPTR(hh, *table, l->key, strlen(l->key), l);
    }
    w->a = a;
    w->req = req;
    w->list = l;
    DL_APPEND(l->waits, w);
    a->parked++;
    return 0;
fail:
    if (w->timer)
        event_free(w->timer);
    free(w);
    return -1;
}

/* GET /v1/kv/<key>[?raw|?recurse|?keys[&separator=S]][&index=N[&wait=D]] */
static void kva_get(struct hs_req *req, void *arg)
{
    struct kv_api *a = arg;
    const char *wait_s = hs_req_query(req, REGV1_Q_WAIT);
    struct kva_read r;
    uint64_t index = 0;
    int64_t wait_ms = LIM_WATCH_WAIT_DEFAULT_MS;
    bool has_index = false, found = false;

    kva_index_header(a, req, reg_index(a->reg)); /* on every answer (replaced by a later one) */
    if (!kva_allowed(a, req, ACL_READ, NULL))
        return;
    if (kva_read_parse(req, &r) != 0)
        return;
    if (kva_query_u64(req, REGV1_Q_INDEX, &index, &has_index) != 0)
        return;
    if (wait_s && rev_parse_wait(wait_s, &wait_ms) != 0) {
        hs_reply_error(req, 400,
                       "wait must be a duration such as 30s or 5m, at most %d m (a bare number "
                       "is seconds)",
                       LIM_WATCH_WAIT_MAX_MS / 60000);
        return;
    }
    if (has_index && index > 0 && wait_ms > 0 && !a->stopping &&
        kva_state(a, &r, &found) <= index) {
        if (kva_park(a, req, &r, wait_ms) == 0)
            return;
        hs_reply_oom(req);
        return;
    }
    kva_answer(a, req, &r);
}

/* Wake the reads of list l. */
static void kva_wake_list(struct kva_list *l)
{
    /* the list goes with its last read: stop at the one that frees it */
    while (l) {
        struct kva_wait *w = l->waits;
        bool last = w && !w->next;

        if (!w)
            return;
        kva_wake(w);
        if (last)
            return;
    }
}

void kv_api_observe(void *arg, const struct kv_change *ch)
{
    struct kv_api *a = arg;
    struct kva_list *l = NULL, *tmp = NULL;
    struct evbuffer *d = evbuffer_new();
    const char *text = NULL;

    /* the event: {"key":K,"op":"set"|"delete","modify_index":N} */
    if (d && evbuffer_add(d, "{\"key\":", 7) == 0 &&
        kva_write_string(d, ch->key, strlen(ch->key)) == 0 &&
        evbuffer_add_printf(d, ",\"op\":\"%s\",\"modify_index\":%" PRIu64 "}",
                            ch->op == KV_OP_SET ? "set" : "delete", ch->index) > 0)
        text = (const char *)evbuffer_pullup(d, -1);
    if (text)
        (void)rev_publish(a->hub, "kv", ch->index, ch->time_ms, NULL, text, evbuffer_get_length(d));
    else /* out of memory: the change is still an event, without its data */
        (void)rev_publish(a->hub, "kv", ch->index, ch->time_ms, NULL, "{}", 2);
    hs_buffer_free(d);
    if (!a->kv)
        return;
    HASH_FIND_STR(a->exact, ch->key, l);
    if (l)
        kva_wake_list(l);
    HASH_ITER (hh, a->prefixes, l, tmp) {
        if (strncmp(ch->key, l->key, strlen(l->key)) == 0)
            kva_wake_list(l);
    }
}

/* ---------------------------------------------------------------------- */
/* writes */

static void kva_reply_bool(struct kv_api *a, struct hs_req *req, bool v)
{
    kva_index_header(a, req, reg_index(a->reg));
    hs_reply_raw(req, 200, "application/json", v ? "true" : "false", v ? 4 : 5);
}

/* Completion of a write: true once durable, else 503. */
static void kva_write_done(void *arg, int rc, const char *err)
{
    struct kva_write *w = arg;

    if (rc != 0) {
        log_error("KV write %s failed: %s", hs_req_path(w->req), err ? err : "store failure");
        kva_index_header(w->a, w->req, reg_index(w->a->reg));
        hs_reply_error(w->req, 503, "could not write: %s", err ? err : "store failure");
    } else {
        kva_reply_bool(w->a, w->req, true);
    }
    free(w);
}

/* Answer a write kv_put or kv_delete did not queue (rc < 0). */
static void kva_reply_refusal(struct kv_api *a, struct hs_req *req, int rc, const char *err)
{
    kva_index_header(a, req, reg_index(a->reg));
    switch (rc) {
    case KV_E_BAD_KEY:
        hs_reply_error(req, 400, "%s", err);
        break;
    case KV_E_TOO_BIG:
        hs_reply_error(req, 413, "%s", err);
        break;
    case KV_E_FULL:
        hs_reply_error(req, 507, "%s", err);
        break;
    default:
        hs_reply_error(req, 503, "could not write: %s", err);
        break;
    }
}

/* The checks every write makes: the right, the key, no sessions. The key,
 * or NULL after answering. */
static const char *kva_write_begin(struct kv_api *a, struct hs_req *req, bool prefix)
{
    const char *key = hs_req_param(req, REGV1_PARAM_KEY);
    char err[256];

    kva_index_header(a, req, reg_index(a->reg)); /* on every answer, errors too */
    if (kv_key_check(key, strlen(key), prefix, err, sizeof(err)) != 0) {
        /* the right first: a stranger learns nothing of the rules */
        if (kva_allowed(a, req, ACL_READ, NULL))
            hs_reply_error(req, 400, "%s", err);
        return NULL;
    }
    if (!kva_allowed(a, req, ACL_WRITE_KV, key))
        return NULL;
    if (hs_req_query(req, "acquire") || hs_req_query(req, "release")) {
        hs_reply_error(req, 400, "sessions (?acquire, ?release) are not supported");
        return NULL;
    }
    return key;
}

/* PUT /v1/kv/<key>[?flags=F][&cas=N], the body the value */
static void kva_put(struct hs_req *req, void *arg)
{
    struct kv_api *a = arg;
    const char *key = kva_write_begin(a, req, false);
    const char *body = NULL;
    struct kva_write *w = NULL;
    uint64_t flags = 0, cas = 0;
    bool has_flags = false, has_cas = false;
    size_t len = 0;
    char err[256];
    int rc;

    if (!key || kva_query_u64(req, REGV1_Q_FLAGS, &flags, &has_flags) != 0 ||
        kva_query_u64(req, REGV1_Q_CAS, &cas, &has_cas) != 0)
        return;
    body = hs_req_body(req, &len);
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->a = a;
    w->req = req;
    rc = kv_put(a->kv, key, body ? body : "", body ? len : 0, flags, has_cas, cas, kva_write_done,
                w, err, sizeof(err));
    if (rc == 0)
        return;
    free(w);
    if (rc == 1)
        kva_reply_bool(a, req, false);
    else
        kva_reply_refusal(a, req, rc, err);
}

/* DELETE /v1/kv/<key>[?recurse][?cas=N] */
static void kva_delete(struct hs_req *req, void *arg)
{
    struct kv_api *a = arg;
    bool recurse = hs_req_query(req, REGV1_Q_RECURSE) != NULL;
    const char *key = kva_write_begin(a, req, recurse);
    struct kva_write *w = NULL;
    uint64_t cas = 0;
    bool has_cas = false;
    char err[256];
    int rc;

    if (!key || kva_query_u64(req, REGV1_Q_CAS, &cas, &has_cas) != 0)
        return;
    if (recurse && has_cas) {
        hs_reply_error(req, 400, "cas does not combine with recurse");
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        hs_reply_oom(req);
        return;
    }
    w->a = a;
    w->req = req;
    rc = kv_delete(a->kv, key, recurse, has_cas, cas, kva_write_done, w, err, sizeof(err));
    if (rc == 0)
        return;
    free(w);
    if (rc == 1 || rc == 2)
        kva_reply_bool(a, req, rc == 2);
    else
        kva_reply_refusal(a, req, rc, err);
}

/* ---------------------------------------------------------------------- */
/* the seed */

/* Completion of one seed write: count the failures. */
static void kva_seed_done(void *arg, int rc, const char *err)
{
    int *failed = arg;

    if (rc != 0) {
        log_error("a --kv-seed write failed: %s", err ? err : "store failure");
        (*failed)++;
    }
}

long kv_api_seed(struct kv_store *kv, struct store *st, const char *path, char *err, size_t errlen)
{
    json_t *root = NULL, *v = NULL;
    json_error_t jerr;
    const char *key;
    long written = -1, queued = 0;
    int failed = 0, rc;
    FILE *fp = fopen(path, "rb");
    long size = -1;
    char why[256];

    if (!fp) {
        errbuf_set(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(fp, 0, SEEK_END) == 0)
        size = ftell(fp);
    if (size < 0 || size > LIM_KV_SEED_FILE_MAX || fseek(fp, 0, SEEK_SET) != 0) {
        errbuf_set(err, errlen, "%s: not a readable file of at most %d bytes", path,
                   LIM_KV_SEED_FILE_MAX);
        fclose(fp);
        return -1;
    }
    root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (!root || !json_is_object(root)) {
        errbuf_set(err, errlen, "%s: %s", path,
                   root ? "expected a JSON object of key -> string value" : "not valid JSON");
        if (!root)
            errbuf_set(err, errlen, "%s: not valid JSON (line %d, column %d)", path, jerr.line,
                       jerr.column);
        goto cleanup;
    }
    /* every entry checked before anything is written */
    json_object_foreach (root, key, v) {
        if (!json_is_string(v)) {
            errbuf_set(err, errlen, "%s: the value of '%.200s' is not a string", path, key);
            goto cleanup;
        }
        if (kv_key_check(key, strlen(key), false, why, sizeof(why)) != 0) {
            errbuf_set(err, errlen, "%s: '%.200s': %s", path, key, why);
            goto cleanup;
        }
        if (json_string_length(v) > LIM_KV_VALUE_MAX) {
            errbuf_set(err, errlen, "%s: the value of '%.200s' is over %d bytes", path, key,
                       LIM_KV_VALUE_MAX);
            goto cleanup;
        }
    }
    json_object_foreach (root, key, v) {
        /* cas=0: only a key that does not exist */
        rc = kv_put(kv, key, json_string_value(v), json_string_length(v), 0, true, 0, kva_seed_done,
                    &failed, why, sizeof(why));
        if (rc < 0) {
            errbuf_set(err, errlen, "%s: '%.200s': %s", path, key, why);
            store_drain(st);
            goto cleanup;
        }
        if (rc == 0)
            queued++;
    }
    store_drain(st); /* before serving: every seed write is committed */
    if (failed) {
        errbuf_set(err, errlen, "%s: %d writes failed in the store", path, failed);
        goto cleanup;
    }
    written = queued;
cleanup:
    json_decref(root);
    return written;
}

/* ---------------------------------------------------------------------- */

/* Answer every parked read of table. */
static size_t kva_wake_all(struct kva_list **table)
{
    size_t n = 0;

    while (*table) {
        kva_wake((*table)->waits);
        n++;
    }
    return n;
}

/* Stop hook: answer the parked reads now, park nothing more. */
static void kva_on_stop(void *arg)
{
    struct kv_api *a = arg;
    size_t n;

    a->stopping = true;
    n = kva_wake_all(&a->exact) + kva_wake_all(&a->prefixes);
    if (n)
        log_info("answered %zu parked KV reads for the shutdown", n);
}

struct kv_api *kv_api_new(struct svc *svc, struct reg_registry *reg, struct rev_hub *hub,
                          const struct acl *acl)
{
    struct kv_api *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->svc = svc;
    a->reg = reg;
    a->hub = hub;
    a->acl = acl;
    a->seed = (unsigned int)time(NULL) ^ (unsigned int)clock() ^ 0x6b76u;
    return a;
}

/* KV gauges for /metrics. */
static void kva_collect(struct evbuffer *out, void *arg)
{
    struct kv_api *a = arg;

    evbuffer_add_printf(out,
                        "# HELP registry_kv_keys Keys in the KV store.\n"
                        "# TYPE registry_kv_keys gauge\n"
                        "registry_kv_keys %zu\n"
                        "# HELP registry_kv_bytes Value bytes in the KV store.\n"
                        "# TYPE registry_kv_bytes gauge\n"
                        "registry_kv_bytes %zu\n"
                        "# HELP registry_kv_reads_parked Blocking KV reads waiting.\n"
                        "# TYPE registry_kv_reads_parked gauge\n"
                        "registry_kv_reads_parked %zu\n",
                        kv_count(a->kv), kv_bytes(a->kv), a->parked);
}

int kv_api_start(struct kv_api *a, struct kv_store *kv)
{
    struct hs_server *http = svc_http(a->svc);

    a->kv = kv;
    if (hs_route(http, HS_GET, REGV1_KV, kva_get, a) != 0 ||
        hs_route(http, HS_PUT, REGV1_KV, kva_put, a) != 0 ||
        hs_route(http, HS_DELETE, REGV1_KV, kva_delete, a) != 0 ||
        mtr_add_collector(svc_metrics(a->svc), kva_collect, a) != 0)
        return -1;
    return svc_on_stop(a->svc, kva_on_stop, a);
}

void kv_api_free(struct kv_api *a)
{
    if (!a)
        return;
    if (a->kv)
        kva_on_stop(a);
    svc_remove_hooks(a->svc, a);
    free(a);
}
