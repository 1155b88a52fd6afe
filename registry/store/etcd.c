/* etcd.c: the etcd store backend (store.h), over etcd's v3 JSON gateway
 * (etcd 3.4: /v3/kv/range, /v3/kv/txn, /v3/watch, /v3/lease/grant and
 * keepalive, /v3/maintenance/status). Record id lives at key
 * <prefix><id>; keys and values travel base64 in JSON. Every call made while
 * the loop runs goes through the asynchronous client (http/client.h); only
 * store_load, which runs before the loop, uses a blocking libcurl call.
 *
 * Writes: the writes queued during one loop turn form one batch (at most
 * LIM_ETCD_TXN_OPS_MAX writes and LIM_ETCD_TXN_BYTES_MAX bytes, else the
 * turn makes several), sent as one txn of puts and delete_ranges. Up to
 * LIM_ETCD_TXNS_MAX txns are in flight, and those in flight together
 * write disjoint ids: a batch that writes an id a txn out writes waits
 * for that txn's answer, with every batch behind it, and is then sent with
 * the closed batches queued behind it (the turns meanwhile) as far as the
 * same bounds allow (est_pump, est_coalesce). So the writes of one id
 * reach etcd, and complete, in the order they were made, while writes of
 * different ids may commit and complete in another order (etcd commits
 * concurrent txns in the order its leader takes them). rc 0 is given only
 * once etcd answered the txn with success (and, when following, once the
 * watch delivered it: see below); every other outcome is rc -1 with the
 * reason.
 *
 * Failover, the choice made: a txn that could not reach its endpoint
 * (connection refused, name not resolved: nothing was sent) is retried on
 * the next endpoint, until each was tried once. A txn that was sent and then
 * timed out, lost its connection or got an etcd error is failed (-1), not
 * retried: its outcome is unknown, and although a retried batch of puts is
 * idempotent on its own, in a shared store it is not: another registry may
 * have written the same id in between, and the retry would put the older
 * document back over it. A failed batch that etcd did apply after all shows
 * up in the watch (when following) and is then delivered to the follower as
 * if another writer had made it, so the follower converges on etcd's state;
 * without follow it is simply there at the next load. After any failure the
 * next request goes to the next endpoint.
 *
 * Follow: a watch over the prefix from the loaded revision + 1. Each txn of
 * a following store also puts <prefix>!writer/<uuid of this handle> = the
 * batch's sequence number, so the watch event group (one revision) that
 * holds this key is recognised as our batch N: its completions run there,
 * with store_revision() = that revision, in their place among the other
 * writers' changes. The txn's HTTP answer then only reports failures. Keys
 * under "!writer/" never reach fn or load; close deletes the handle's own.
 * A compacted watch is answered by a full range read (RESET, PUTs,
 * RESET_END) and a new watch from that revision; the range shows one
 * number of ours (the last commit's), so with several txns out it
 * completes that batch and those etcd already said yes to at or below its
 * revision, and a txn still out whose answer then names a revision at or
 * below it completes on that answer. Any other watch failure reconnects
 * (next endpoint, backoff) from the last revision delivered + 1. A watch
 * silent for LIM_ETCD_WATCH_IDLE_MS (progress notifications are asked
 * for) is reopened the same way.
 *
 * Writable: true while etcd shows it can commit: every answer that needs
 * a quorum (a probe, a txn, a lease grant; not a keepalive, which etcd's
 * leader answers alone) makes it true and
 * starts a LIM_ETCD_QUORUM_MS timer (800 ms) that makes it false unless
 * another such answer comes first; it is also false at once after a txn
 * no endpoint took or an etcd error of the server side (no leader, no
 * quorum). The probe is a linearizable range of one key (it needs a
 * quorum) every LIM_ETCD_PROBE_MS (200 ms), LIM_ETCD_PROBE_TIMEOUT_MS
 * (700 ms) each; a probe that waits two periods gets a second one on the
 * next endpoint beside it (a hanging member must not hide the others).
 * So a replica cut off from etcd stops acknowledging within 800 ms of its
 * last answer, and does not flap on a loaded machine: one slow or failed
 * request changes nothing while any other answer (a probe every 200 ms,
 * or the writes) arrives within 800 ms; one endpoint that dies or times
 * out a txn only moves the requests to the next one. */
#include "codec/b64.h"
#include "codec/uid.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "http/client.h"
#include "resilience/backoff.h"
#include "store.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#define EST_WRITER_DIR "!writer/" /* ids under it are the writers' keys */
#define EST_ERR_MAX    256

/* Where a batch is. */
enum est_state {
    EST_QUEUED,    /* waiting for its turn */
    EST_SENT,      /* its txn is in flight */
    EST_COMMITTED, /* etcd said yes; a follower waits for the watch */
    EST_OK,        /* done: completions with rc 0 */
    EST_FAILED     /* done: completions with rc -1 and err */
};

/* One queued write. */
struct est_write {
    struct est_write *next;
    char *id;  /* owned */
    char *doc; /* owned, NUL-terminated; NULL: a delete */
    size_t doc_len;
    int64_t lease; /* bound to it (> 0), or 0 */
    store_done_fn done;
    void *arg;
};

/* The writes of one txn. */
struct est_batch {
    struct est_batch *next;
    struct est_store *st;                   /* borrowed */
    struct est_write *writes, **writes_end; /* owned FIFO */
    size_t n, bytes;
    size_t nleased; /* of its writes, puts bound to a lease (see est_unlease) */
    uint64_t seq;   /* the writer key's value in its txn */
    enum est_state state;
    bool out;              /* taken to be sent, outcome not known (see est_out_begin) */
    struct hc_call *call;  /* its txn while in flight */
    size_t ep;             /* the endpoint it went to */
    uint64_t revision;     /* of its commit, once known */
    size_t tried;          /* endpoints that refused it */
    char err[EST_ERR_MAX]; /* why it failed */
};

/* An id that batches out write, with how many (see est_out_begin). */
struct est_busy {
    UT_hash_handle hh; /* st->busy, keyed by id */
    unsigned n;
    char id[]; /* NUL-terminated */
};

/* A completion waiting for a lease request's answer. */
struct est_lwait {
    struct est_lwait *next;
    store_lease_fn done;
    void *arg;
};

enum est_lop_kind { EST_GRANT, EST_KEEPALIVE };

/* One lease request to etcd: a grant, or a keepalive that every keepalive
 * of the same lease asked before its answer joins (one lease, several
 * completions). */
struct est_lop {
    struct est_lop *next; /* grants: st->lops; keepalives: st->kas while queued */
    UT_hash_handle hh;    /* keepalives only, in st->ka_by_lease */
    struct est_store *st; /* borrowed */
    enum est_lop_kind kind;
    int64_t lease;                        /* keepalive: the lease; grant: 0 */
    int64_t ttl_s;                        /* grant: the TTL asked */
    struct est_lwait *waits, **waits_end; /* owned FIFO */
    struct hc_call *call;                 /* grants: in flight; NULL: queued */
    size_t tried;                         /* grants: endpoints that refused it */
    unsigned unnamed;                     /* keepalives: answers that did not name it */
};

/* One keepalive request in flight: a stream of up to
 * LIM_ETCD_KA_BATCH leases (see "leases" below). */
struct est_kab {
    struct est_kab *next; /* st->kabs */
    struct est_store *st; /* borrowed */
    struct hc_call *call;
    int to_leader; /* sent to st->ka_ep as etcd's leader */
    size_t tried;  /* endpoints that refused it */
    size_t n;
    struct est_lop *ops[LIM_ETCD_KA_BATCH]; /* owned; NULL once answered */
};

/* One record of a reset's range read. */
struct est_kv {
    struct est_kv *next;
    char *id;  /* owned */
    char *doc; /* owned, NUL-terminated */
    size_t len;
};

/* One quorum probe in flight (or a free slot: call NULL). */
struct est_probe {
    struct est_store *st; /* borrowed */
    struct hc_call *call;
    int64_t sent_ms; /* CLOCK_MONOTONIC */
};

#define EST_PROBES 2 /* probes in flight at most (see est_probe_cb) */

#define EST_KA_UNNAMED_MAX 3 /* a lease not named in this many answers fails */

struct est_store {
    struct store base;                       /* must stay first */
    struct event_base *ev;                   /* borrowed */
    struct hc_client *hc;                    /* owned */
    char *endpoints[LIM_ETCD_ENDPOINTS_MAX]; /* owned, without a trailing / */
    size_t nendpoints;
    size_t cur; /* the endpoint requests go to */
    char *prefix;
    size_t prefix_len;
    char *prefix_b64, *end_b64; /* the range [prefix, prefix with last byte + 1) */
    long timeout_ms;
    char *writer_id; /* EST_WRITER_DIR<uuid>, once following */
    /* writes */
    struct est_batch *head, **tail; /* every batch not completed, in order */
    struct est_batch *open;         /* the batch of this turn (the last) */
    struct event *flush;            /* end of the turn: close open, send */
    size_t txns;                    /* batches out (est_out_begin) */
    struct est_busy *busy;          /* owned: uthash of the ids they write */
    size_t pending;                 /* writes queued, completion not run */
    uint64_t seq;                   /* of the last batch made */
    uint64_t revision;
    uint64_t seen_rev; /* following: the watch (or a reset) is at least here */
    bool writable;
    int loaded, loading, closing;
    /* probe */
    struct event *probe;                 /* every LIM_ETCD_PROBE_MS */
    struct est_probe probes[EST_PROBES]; /* in flight */
    size_t probe_fails;                  /* probes failed in a row */
    int64_t ok_ms, probe_ms;             /* last quorum answer, last probe sent */
    struct event *quorum;                /* LIM_ETCD_QUORUM_MS after an answer */
    /* follow */
    store_change_fn fn;
    void *fn_arg;
    int following;
    struct hc_call *watch;
    char *line; /* owned: the watch stream's unfinished line */
    size_t line_len, line_cap;
    struct event *rewatch; /* the backoff before a watch or reset retry */
    unsigned attempt;
    /* reset (compaction) */
    int resetting;
    struct hc_call *range;
    struct est_kv *reset_kvs; /* collected, newest first */
    uint64_t reset_rev;
    uint64_t reset_my_seq; /* our writer key's value in the range */
    char *reset_next;      /* the next page's first key (raw), owned */
    struct event *drain_wake;
    /* lease requests */
    struct est_lop *lops, **lops_end; /* owned: the grants not answered */
    size_t lops_inflight;             /* of them sent */
    struct est_lop *kas, **kas_end;   /* owned: the keepalives queued */
    struct est_kab *kabs;             /* owned: the keepalive requests out */
    struct est_lop *ka_by_lease;      /* uthash of the keepalives (kas, kabs) */
    struct event *ka_send;            /* sends the queue from the loop */
    size_t ka_ep;                     /* etcd's leader among the endpoints ... */
    int ka_leader;                    /* ... when this is set; else keepalives go to cur */
    struct hc_call *status;           /* the leader search's request in flight */
    size_t status_ep, status_asked;   /* its endpoint; endpoints asked in this search */
    struct event *leader_tick;        /* a search every LIM_ETCD_LEADER_MS */
    size_t lwaits;                    /* completions waiting in all */
};

static void est_pump(struct est_store *st);
static void est_watch_start(struct est_store *st);
static void est_reset_start(struct est_store *st);

/* ---- small helpers ---- */

/* base64 of n bytes of s; caller frees; NULL when out of memory. */
static char *est_b64(const char *s, size_t n)
{
    char *out = malloc(B64_ENCODED_LEN(n));

    if (out)
        b64_encode((const unsigned char *)s, n, out);
    return out;
}

/* Decode the base64 string v (NULL or missing: empty) into a new
 * NUL-terminated buffer, its length in *len; caller frees; NULL when it is
 * not base64 or out of memory. */
static char *est_unb64(json_t *v, size_t *len)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strlen(s);
    char *out = malloc(n / 4 * 3 + 1);

    if (!out)
        return NULL;
    if (b64_decode(s, n, (unsigned char *)out, len) != 0) {
        free(out);
        return NULL;
    }
    out[*len] = '\0';
    return out;
}

/* An int64 of the gateway: a JSON string of digits, or a number; 0 else. */
static uint64_t est_u64(json_t *v)
{
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return (uint64_t)json_integer_value(v);
    return 0;
}

/* The message of an etcd error answer ({"error":"...","code":N} or
 * {"error":{"message":...}}) into out, else the HTTP status. */
static void est_error_text(json_t *root, long status, char *out, size_t outlen)
{
    json_t *e = json_object_get(root, "error");
    json_t *m = json_object_get(root, "message");

    if (json_is_object(e))
        m = json_object_get(e, "message");
    else if (json_is_string(e))
        m = e;
    if (json_is_string(m))
        errbuf_set(out, outlen, "etcd: %s (HTTP %ld)", json_string_value(m), status);
    else
        errbuf_set(out, outlen, "etcd: HTTP %ld", status);
}

/* <prefix><id> (raw bytes, NUL-ended); caller frees; NULL when out of
 * memory. */
static char *est_key(const struct est_store *st, const char *id)
{
    size_t n = strlen(id);
    char *k = malloc(st->prefix_len + n + 1);

    if (!k)
        return NULL;
    memcpy(k, st->prefix, st->prefix_len);
    memcpy(k + st->prefix_len, id, n + 1);
    return k;
}

/* The id of a raw key (borrowed from key), or NULL when key is not under
 * the prefix. */
static const char *est_id_of(const struct est_store *st, const char *key, size_t len)
{
    if (len < st->prefix_len || memcmp(key, st->prefix, st->prefix_len) != 0)
        return NULL;
    return key + st->prefix_len;
}

static bool est_is_writer(const char *id)
{
    return strncmp(id, EST_WRITER_DIR, sizeof(EST_WRITER_DIR) - 1) == 0;
}

static void est_next_endpoint(struct est_store *st) { st->cur = (st->cur + 1) % st->nendpoints; }

/* POST body (borrowed) to path on endpoint ep through the asynchronous
 * client. NULL when it could not start. */
static struct hc_call *est_post_at(struct est_store *st, size_t ep, const char *path,
                                   const char *body, long timeout_ms, hc_done_fn done,
                                   hc_data_fn data, void *arg)
{
    char url[512];
    struct hc_request req;

    snprintf(url, sizeof(url), "%s%s", st->endpoints[ep], path);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.body = body;
    req.body_len = strlen(body);
    req.timeout_ms = timeout_ms;
    req.connect_timeout_ms = timeout_ms;
    req.data = data;
    req.idle_ms = data ? LIM_ETCD_WATCH_IDLE_MS : 0;
    return hc_send(st->hc, &req, done, arg);
}

/* est_post_at the current endpoint. */
static struct hc_call *est_post(struct est_store *st, const char *path, const char *body,
                                long timeout_ms, hc_done_fn done, hc_data_fn data, void *arg)
{
    return est_post_at(st, st->cur, path, body, timeout_ms, done, data, arg);
}

/* etcd answered a request that needs a quorum: it can commit, and will be
 * taken not to once LIM_ETCD_QUORUM_MS pass without another such answer. */
static int64_t est_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void est_quorum_arm(struct est_store *st)
{
    struct timeval tv = {LIM_ETCD_QUORUM_MS / 1000, (LIM_ETCD_QUORUM_MS % 1000) * 1000};

    if (st->quorum && !st->closing)
        evtimer_add(st->quorum, &tv);
}

static void est_quorum_ok(struct est_store *st)
{
    st->writable = true;
    st->ok_ms = est_now_ms();
    est_quorum_arm(st);
}

static void est_probe_cb(evutil_socket_t fd, short what, void *arg);

/* No answer needing a quorum for LIM_ETCD_QUORUM_MS: unwritable, unless no
 * probe was even sent since the last answer (the loop itself was held up,
 * as at start-up after a long load): then it is asked now, and has its
 * own LIM_ETCD_QUORUM_MS. */
static void est_quorum_lost_cb(evutil_socket_t fd, short what, void *arg)
{
    struct est_store *st = arg;

    (void)fd;
    (void)what;
    if (st->probe_ms <= st->ok_ms && st->loaded && !st->closing) {
        st->ok_ms = est_now_ms();
        est_probe_cb(-1, 0, st);
        est_quorum_arm(st);
        return;
    }
    st->writable = false;
}

/* ---- batches ---- */

static void est_write_free(struct est_write *w)
{
    if (!w)
        return;
    free(w->id);
    free(w->doc);
    free(w);
}

/* Run the completions of every finished batch, in queue order. Batches in
 * flight together write disjoint ids (est_pump), so one may finish before
 * an older one: its completions run then, not behind the older, which
 * keeps a follower's completions at their revision among the other
 * writers' changes. A completion may queue writes: they join batches at
 * the tail. */
static void est_settle(struct est_store *st)
{
    struct est_batch **pp = &st->head;

    while (*pp) {
        struct est_batch *b = *pp;
        struct est_write *w = NULL;
        struct est_write *next = NULL;
        int ok = b->state == EST_OK;

        if (!ok && b->state != EST_FAILED) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        if (st->tail == &b->next)
            st->tail = pp;
        if (ok && b->revision > st->revision)
            st->revision = b->revision;
        for (w = b->writes; w; w = next) {
            next = w->next;
            st->pending--;
            if (w->done)
                w->done(w->arg, ok ? 0 : -1, ok ? NULL : b->err);
            est_write_free(w);
        }
        free(b);
    }
}

static void est_fail(struct est_batch *b, const char *msg)
{
    b->state = EST_FAILED;
    errbuf_set(b->err, sizeof(b->err), "%s", msg);
}

/* The txn body of batch b; caller frees; NULL when out of memory. */
static char *est_txn_body(struct est_store *st, const struct est_batch *b)
{
    json_t *root = json_object();
    json_t *ops = json_array();
    const struct est_write *w = NULL;
    char *out = NULL;
    int bad = !root || !ops;

    if (!bad)
        bad |= json_object_set(root, "success", ops) != 0;
    for (w = b->writes; w && !bad; w = w->next) {
        char *key = est_key(st, w->id);
        char *k64 = key ? est_b64(key, strlen(key)) : NULL;
        char *v64 = w->doc ? est_b64(w->doc, w->doc_len) : NULL;
        json_t *op = NULL;

        if (!k64 || (w->doc && !v64))
            bad = 1;
        else if (w->doc && w->lease > 0) {
            /* the gateway's int64: a JSON string of digits */
            char lease[32];

            snprintf(lease, sizeof(lease), "%" PRId64, w->lease);
            op = json_pack("{s:{s:s,s:s,s:s}}", "request_put", "key", k64, "value", v64, "lease",
                           lease);
        } else if (w->doc)
            op = json_pack("{s:{s:s,s:s}}", "request_put", "key", k64, "value", v64);
        else
            op = json_pack("{s:{s:s}}", "request_delete_range", "key", k64);
        if (!bad && (!op || json_array_append_new(ops, op) != 0))
            bad = 1;
        free(key);
        free(k64);
        free(v64);
    }
    if (!bad && st->writer_id) {
        char seq[32];
        char *key = est_key(st, st->writer_id);
        char *k64 = key ? est_b64(key, strlen(key)) : NULL;
        char *v64 = NULL;

        snprintf(seq, sizeof(seq), "%" PRIu64, b->seq);
        v64 = est_b64(seq, strlen(seq));
        if (!k64 || !v64 ||
            json_array_append_new(
                ops, json_pack("{s:{s:s,s:s}}", "request_put", "key", k64, "value", v64)) != 0)
            bad = 1;
        free(key);
        free(k64);
        free(v64);
    }
    if (!bad)
        out = json_dumps(root, JSON_COMPACT);
    json_decref(ops);
    json_decref(root);
    return out;
}

static void est_txn_done(const struct hc_response *resp, void *arg);

/* A put bound to a lease etcd no longer has (it lapsed between the grant
 * and the put) makes etcd refuse the whole txn, nothing of it applied
 * (404, "requested lease not found"). The leased puts then leave batch b
 * (returned, in order, for the caller to fail once b is on its way again)
 * and the rest of b is sent again as it was: such a lapse costs only the
 * leased puts of the txn (alive and member records, which their owners put
 * again), never a registration or a KV write, and those puts complete
 * with -1 ahead of their turn. NULL when b has no leased put or nothing
 * else. */
static struct est_write *est_unlease(struct est_batch *b)
{
    struct est_write *out = NULL, **out_end = &out, **pp = &b->writes;

    if (b->nleased == 0 || b->nleased == b->n)
        return NULL;
    b->writes_end = &b->writes;
    while (*pp) {
        struct est_write *w = *pp;

        if (w->lease > 0) {
            *pp = w->next;
            w->next = NULL;
            *out_end = w;
            out_end = &w->next;
            b->n--;
            b->bytes -= w->doc_len + strlen(w->id);
        } else {
            pp = &w->next;
            b->writes_end = pp;
        }
    }
    b->nleased = 0;
    return out;
}

/* ---- batches out ----
 *
 * A batch is out from the moment est_pump takes it to be sent until etcd
 * gave its outcome (yes, no, or unknown), across the resends of
 * est_txn_done; while out, its ids are counted in st->busy, and it is one
 * of st->txns. */

/* Whether a batch out writes id. */
static bool est_busy_has(const struct est_store *st, const char *id)
{
    struct est_busy *e = NULL;

    HASH_FIND_STR(st->busy, id, e);
    return e != NULL;
}

/* Whether a batch out writes one of b's ids. */
static bool est_busy_any(const struct est_store *st, const struct est_batch *b)
{
    const struct est_write *w = NULL;

    if (!st->busy)
        return false;
    for (w = b->writes; w; w = w->next)
        if (est_busy_has(st, w->id))
            return true;
    return false;
}

/* One write of id no longer out. */
static void est_busy_drop(struct est_store *st, const char *id)
{
    struct est_busy *e = NULL;

    HASH_FIND_STR(st->busy, id, e);
    if (e && --e->n == 0) {
        HASH_DEL(st->busy, e);
        free(e);
    }
}

/* Count b's writes as out; -1, none counted, when out of memory. */
static int est_busy_add(struct est_store *st, const struct est_batch *b)
{
    const struct est_write *u = NULL, *w = NULL;

    for (u = b->writes; u; u = u->next) {
        struct est_busy *e = NULL;
        size_t len = strlen(u->id);

        HASH_FIND(hh, st->busy, u->id, len, e);
        if (!e) {
            e = calloc(1, sizeof(*e) + len + 1);
            if (!e)
                break;
            memcpy(e->id, u->id, len + 1);
            HASH_ADD(hh, st->busy, id, len, e);
        }
        e->n++;
    }
    if (!u)
        return 0;
    for (w = b->writes; w != u; w = w->next) /* take back those counted */
        est_busy_drop(st, w->id);
    return -1;
}

/* b is out; -1 (it is not) when out of memory. */
static int est_out_begin(struct est_store *st, struct est_batch *b)
{
    if (est_busy_add(st, b) != 0)
        return -1;
    b->out = true;
    st->txns++;
    return 0;
}

/* b is no longer out: its txn (if one is in flight) cancelled, its ids
 * free for the batches behind. */
static void est_out_end(struct est_store *st, struct est_batch *b)
{
    const struct est_write *w = NULL;

    if (!b->out)
        return;
    if (b->call) {
        hc_cancel(b->call);
        b->call = NULL;
    }
    for (w = b->writes; w; w = w->next)
        est_busy_drop(st, w->id);
    b->out = false;
    st->txns--;
}

/* Send batch b's txn (b out) to the current endpoint. On failure to
 * start, b fails and is no longer out. */
static void est_send(struct est_store *st, struct est_batch *b)
{
    char *body = est_txn_body(st, b);

    b->state = EST_SENT;
    b->ep = st->cur;
    b->call = body ? est_post(st, "/v3/kv/txn", body, st->timeout_ms, est_txn_done, NULL, b) : NULL;
    free(body);
    if (!b->call) {
        est_out_end(st, b);
        est_fail(b, "etcd store: cannot start the txn (out of memory)");
    }
}

/* After a failed request to endpoint ep: the next requests go to the next
 * endpoint, unless another failure already moved them. */
static void est_leave_endpoint(struct est_store *st, size_t ep)
{
    if (st->cur == ep)
        est_next_endpoint(st);
}

/* The txn answered (see the file comment for what each outcome does). */
static void est_txn_done(const struct hc_response *resp, void *arg)
{
    struct est_batch *b = arg;
    struct est_store *st = b->st;
    char msg[EST_ERR_MAX];
    json_t *root = NULL;

    b->call = NULL;
    if (resp->error == HC_ECONNECT || resp->error == HC_ERESOLVE) {
        /* nothing was sent: the next endpoint may take it */
        b->tried++;
        est_leave_endpoint(st, b->ep);
        if (b->tried < st->nendpoints && !st->closing) {
            est_send(st, b); /* still out */
            if (b->call)
                return;
        } else {
            errbuf_set(msg, sizeof(msg), "etcd store: no endpoint answered (%s)", resp->error_msg);
            est_fail(b, msg);
            st->writable = false;
        }
    } else if (resp->error != HC_OK) {
        /* one endpoint's trouble (it died mid-request, or is slow) says
         * nothing of the others' quorum: the probe and the quorum timer
         * decide writable */
        errbuf_set(msg, sizeof(msg), "etcd store: txn %s (outcome unknown, not retried)",
                   resp->error_msg);
        est_fail(b, msg);
        est_leave_endpoint(st, b->ep);
    } else {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (resp->status == 404 && b->nleased > 0 && b->nleased < b->n && !st->closing &&
            memmem(resp->body, resp->body_len, "lease not found", 15)) {
            struct est_write *lost = est_unlease(b), *w = NULL, *next = NULL;

            est_error_text(root, resp->status, msg, sizeof(msg));
            json_decref(root);
            est_send(st, b); /* the rest, the same batch again, still out */
            for (w = lost; w; w = next) {
                next = w->next;
                est_busy_drop(st, w->id);
                st->pending--;
                if (w->done)
                    w->done(w->arg, -1, msg);
                est_write_free(w);
            }
            est_settle(st);
            est_pump(st);
            return;
        }
        if (resp->status != 200 || !json_is_object(root)) {
            est_error_text(root, resp->status, msg, sizeof(msg));
            est_fail(b, msg);
            if (resp->status >= 500) {
                st->writable = false;
                est_leave_endpoint(st, b->ep);
            }
        } else if (!json_is_true(json_object_get(root, "succeeded"))) {
            est_fail(b, "etcd store: txn not succeeded");
        } else {
            est_quorum_ok(st);
            b->revision = est_u64(json_object_get(json_object_get(root, "header"), "revision"));
            /* a follower's batch completes when the watch brings it (it may
             * already have); a reset that read past its revision (while the
             * txn was out) will not bring it: done */
            if (b->state == EST_SENT)
                b->state = st->following && b->revision > st->seen_rev ? EST_COMMITTED : EST_OK;
        }
        json_decref(root);
    }
    est_out_end(st, b); /* its outcome is known */
    est_settle(st);
    est_pump(st);
}

/* Move into b (out) the closed batches queued right behind it while the
 * whole fits one txn (leased puts and the rest alike: see est_unlease) and
 * none writes an id of b or of another batch out (etcd refuses a txn that
 * writes one key twice): the turns that queued writes while the txns were
 * out then share the next one. Only neighbours are taken, so the writes
 * keep their order; the merged batch keeps b's sequence number. */
static void est_coalesce(struct est_store *st, struct est_batch *b)
{
    struct est_batch *n = NULL;

    while ((n = b->next) && n != st->open && n->state == EST_QUEUED &&
           b->n + n->n <= LIM_ETCD_TXN_OPS_MAX && b->bytes + n->bytes <= LIM_ETCD_TXN_BYTES_MAX &&
           !est_busy_any(st, n) && est_busy_add(st, n) == 0) {
        *b->writes_end = n->writes;
        b->writes_end = n->writes_end;
        b->n += n->n;
        b->nleased += n->nleased;
        b->bytes += n->bytes;
        b->next = n->next;
        if (st->tail == &n->next)
            st->tail = &b->next;
        free(n);
    }
}

/* Send the first queued batch that is closed, with the closed ones behind
 * it it can take (est_coalesce), while fewer than LIM_ETCD_TXNS_MAX txns
 * are in flight. A batch that writes an id a txn in flight writes waits
 * for it, and the batches behind it wait too: txns in flight together
 * write disjoint ids, so etcd may commit them in any order, and the writes
 * of one id reach etcd in the order they were made. */
static void est_pump(struct est_store *st)
{
    struct est_batch *b = NULL;

    while (st->txns < LIM_ETCD_TXNS_MAX) {
        for (b = st->head; b && (b->state != EST_QUEUED || b == st->open); b = b->next)
            ;
        if (!b || est_busy_any(st, b))
            return;
        if (est_out_begin(st, b) != 0) {
            est_fail(b, "etcd store: cannot start the txn (out of memory)");
            est_settle(st);
            continue;
        }
        est_coalesce(st, b);
        est_send(st, b);
        if (!b->call)
            est_settle(st);
    }
}

/* End of the turn: the open batch is closed and may be sent. */
static void est_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct est_store *st = arg;

    (void)fd;
    (void)what;
    st->open = NULL;
    est_pump(st);
}

/* Whether batch b writes id. */
static bool est_batch_has(const struct est_batch *b, const char *id)
{
    const struct est_write *w = NULL;

    for (w = b->writes; w; w = w->next)
        if (strcmp(w->id, id) == 0)
            return true;
    return false;
}

/* Queue one write (id and doc copied; doc NULL: a delete), bound to lease
 * when > 0 (a put). Leased puts share txns with the other writes; a txn
 * that etcd refuses for a lease it no longer has loses only them (see
 * est_unlease). */
static int est_queue(struct est_store *st, const char *id, const char *doc, size_t doc_len,
                     int64_t lease, store_done_fn done, void *arg, char *err, size_t errlen)
{
    struct est_write *w = NULL;
    struct est_batch *b = st->open;

    if (!id || !id[0]) {
        errbuf_set(err, errlen, "etcd store: empty id");
        return -1;
    }
    if (est_is_writer(id)) {
        errbuf_set(err, errlen, "etcd store: ids under %s are reserved", EST_WRITER_DIR);
        return -1;
    }
    if (st->loading || st->closing) {
        errbuf_set(err, errlen, "etcd store: write during %s", st->loading ? "load" : "close");
        return -1;
    }
    if (st->pending >= STORE_PENDING_MAX) {
        errbuf_set(err, errlen, "etcd store: too many writes waiting");
        return -1;
    }
    if (doc && doc_len > LIM_ETCD_TXN_BYTES_MAX) {
        errbuf_set(err, errlen, "etcd store: document of %zu bytes over %d", doc_len,
                   LIM_ETCD_TXN_BYTES_MAX);
        return -1;
    }
    w = calloc(1, sizeof(*w));
    if (!w)
        goto oom;
    w->id = strdup(id);
    if (doc) {
        w->doc = malloc(doc_len + 1);
        if (w->doc) {
            memcpy(w->doc, doc, doc_len);
            w->doc[doc_len] = '\0';
        }
    }
    if (!w->id || (doc && !w->doc))
        goto oom;
    w->doc_len = doc_len;
    w->lease = lease;
    w->done = done;
    w->arg = arg;
    if (b && (b->n >= LIM_ETCD_TXN_OPS_MAX || b->bytes + doc_len > LIM_ETCD_TXN_BYTES_MAX ||
              est_batch_has(b, id)))
        b = NULL; /* full, or the id twice (etcd refuses that txn): this turn gets another */
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            goto oom;
        b->writes_end = &b->writes;
        b->st = st;
        b->seq = ++st->seq;
        *st->tail = b;
        st->tail = &b->next;
        st->open = b;
    }
    *b->writes_end = w;
    b->writes_end = &w->next;
    b->n++;
    b->nleased += lease > 0;
    b->bytes += doc_len + strlen(id);
    st->pending++;
    if (!event_pending(st->flush, EV_TIMEOUT, NULL))
        event_active(st->flush, EV_TIMEOUT, 0);
    return 0;
oom:
    est_write_free(w);
    errbuf_set(err, errlen, "etcd store: out of memory");
    return -1;
}

static int est_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                   store_done_fn done, void *arg, char *err, size_t errlen)
{
    if (!doc) {
        errbuf_set(err, errlen, "etcd store: put: NULL doc");
        return -1;
    }
    return est_queue((struct est_store *)base, id, doc, doc_len, 0, done, arg, err, errlen);
}

static int est_put_leased(struct store *base, const char *id, const char *doc, size_t doc_len,
                          int64_t lease, store_done_fn done, void *arg, char *err, size_t errlen)
{
    if (!doc || lease <= 0) {
        errbuf_set(err, errlen, "etcd store: put_leased: NULL doc or no lease");
        return -1;
    }
    return est_queue((struct est_store *)base, id, doc, doc_len, lease, done, arg, err, errlen);
}

static int est_del(struct store *base, const char *id, store_done_fn done, void *arg, char *err,
                   size_t errlen)
{
    return est_queue((struct est_store *)base, id, NULL, 0, 0, done, arg, err, errlen);
}

/* ---- load: blocking, before the loop runs ---- */

/* Accumulates a blocking answer, bounded by HC_RESPONSE_MAX. */
struct est_buf {
    char *p;
    size_t len;
};

static size_t est_buf_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct est_buf *b = userp;
    size_t n = size * nmemb;
    char *grown = NULL;

    if (n > (size_t)HC_RESPONSE_MAX - b->len)
        return 0;
    grown = realloc(b->p, b->len + n + 1);
    if (!grown)
        return 0;
    b->p = grown;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* POST body to path, blocking, trying each endpoint from the current one
 * until one answers. The parsed answer in *out (caller decrefs) for an HTTP
 * 200; else -1 with err. */
static int est_post_sync(struct est_store *st, const char *path, const char *body, json_t **out,
                         char *err, size_t errlen)
{
    size_t tries = 0;

    *out = NULL;
    for (tries = 0; tries < st->nendpoints; tries++) {
        CURL *e = curl_easy_init();
        struct est_buf buf = {NULL, 0};
        struct curl_slist *hdr = NULL;
        char url[512];
        CURLcode rc;
        long status = 0;

        if (!e) {
            errbuf_set(err, errlen, "etcd store: out of memory");
            return -1;
        }
        snprintf(url, sizeof(url), "%s%s", st->endpoints[st->cur], path);
        hdr = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, st->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, est_buf_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &buf);
        rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(e);
        if (rc != CURLE_OK) {
            errbuf_set(err, errlen, "etcd store: %s: %s", url, curl_easy_strerror(rc));
            free(buf.p);
            est_next_endpoint(st);
            continue;
        }
        *out = buf.p ? json_loads(buf.p, 0, NULL) : NULL;
        free(buf.p);
        if (status != 200 || !json_is_object(*out)) {
            est_error_text(*out, status, err, errlen);
            json_decref(*out);
            *out = NULL;
            return -1;
        }
        return 0;
    }
    return -1;
}

/* The body of one range page: from key (raw, NULL: the prefix) to the end
 * of the prefix, at revision rev (0: the current one). Caller frees. */
static char *est_range_body(const struct est_store *st, const char *key, uint64_t rev)
{
    char *k64 = key ? est_b64(key, strlen(key) + 1) : NULL; /* with its "\0" */
    json_t *root = json_pack("{s:s,s:s,s:I}", "key", k64 ? k64 : st->prefix_b64, "range_end",
                             st->end_b64, "limit", (json_int_t)LIM_ETCD_PAGE_KEYS);
    char *out = NULL;

    if (root && rev)
        json_object_set_new(root, "revision", json_integer((json_int_t)rev));
    out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    free(k64);
    return out;
}

/* Call fn on every record of the prefix, read page by page at the first
 * page's revision (which the store then remembers). During each call
 * store_revision is that record's mod_revision (store.h's load contract). */
static int est_load(struct store *base, store_load_fn fn, void *arg, char *err, size_t errlen)
{
    struct est_store *st = (struct est_store *)base;
    char *from = NULL;
    uint64_t rev = 0, before = st->revision;
    int rc = -1, more = 1;

    if (!fn || st->loading || st->pending > 0 || st->following) {
        errbuf_set(err, errlen, "etcd store: load %s",
                   !fn ? "without callback" : "with writes queued, or while loading or following");
        return -1;
    }
    st->loading = 1;
    while (more) {
        char *body = est_range_body(st, from, rev);
        json_t *root = NULL, *kvs = NULL, *kv = NULL;
        size_t i = 0;

        if (!body || est_post_sync(st, "/v3/kv/range", body, &root, err, errlen) != 0) {
            if (!body)
                errbuf_set(err, errlen, "etcd store: out of memory");
            free(body);
            goto cleanup;
        }
        free(body);
        if (!rev)
            rev = est_u64(json_object_get(json_object_get(root, "header"), "revision"));
        more = json_is_true(json_object_get(root, "more"));
        kvs = json_object_get(root, "kvs");
        json_array_foreach (kvs, i, kv) {
            size_t klen = 0, vlen = 0;
            char *key = est_unb64(json_object_get(kv, "key"), &klen);
            char *doc = est_unb64(json_object_get(kv, "value"), &vlen);
            const char *id = key ? est_id_of(st, key, klen) : NULL;
            int stop = 0;

            if (!key || !doc || !id) {
                errbuf_set(err, errlen, "etcd store: a record that is not base64 or not ours");
                stop = 1;
            } else if (!est_is_writer(id)) {
                st->revision = est_u64(json_object_get(kv, "mod_revision"));
                if (fn(id, doc, vlen, arg) != 0) {
                    errbuf_set(err, errlen, "etcd store: load stopped by callback at id %s", id);
                    stop = 1;
                }
            }
            if (!stop && i + 1 == json_array_size(kvs)) {
                free(from);
                from = key;
                key = NULL;
            }
            free(key);
            free(doc);
            if (stop) {
                json_decref(root);
                goto cleanup;
            }
        }
        if (json_array_size(kvs) == 0)
            more = 0;
        json_decref(root);
    }
    st->revision = rev > before ? rev : before;
    st->loaded = 1;
    est_quorum_ok(st);
    rc = 0;
cleanup:
    if (rc != 0)
        st->revision = before;
    st->loading = 0;
    free(from);
    return rc;
}

/* ---- probe ---- */

/* A failed probe is followed at once by one on the next endpoint (so a
 * dead member costs no period), until every endpoint failed in a row: then
 * the period paces them. The quorum timer decides whether failures count. */
static void est_probe_done(const struct hc_response *resp, void *arg)
{
    struct est_probe *p = arg;
    struct est_store *st = p->st;

    p->call = NULL;
    if (resp->error == HC_OK && resp->status == 200) {
        st->probe_fails = 0;
        est_quorum_ok(st);
        return;
    }
    est_next_endpoint(st);
    if (++st->probe_fails < st->nendpoints)
        est_probe_cb(-1, 0, st);
}

/* Every LIM_ETCD_PROBE_MS: a probe when none is in flight; a second one,
 * on the next endpoint, when the one in flight has waited two periods (a
 * member that hangs must not hide the others' quorum). */
static void est_probe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct est_store *st = arg;
    struct est_probe *slot = NULL;
    int64_t now = est_now_ms();
    json_t *root = NULL;
    char *body = NULL;
    size_t i = 0, busy = 0, old = 0;

    (void)fd;
    (void)what;
    if (st->closing || !st->loaded)
        return;
    for (i = 0; i < EST_PROBES; i++) {
        if (!st->probes[i].call)
            slot = slot ? slot : &st->probes[i];
        else if (now - st->probes[i].sent_ms < 2 * LIM_ETCD_PROBE_MS)
            busy++;
        else
            old++;
    }
    if (!slot || busy > 0)
        return;
    if (old > 0)
        est_next_endpoint(st); /* another is in flight: ask someone else */
    /* one key, linearizable (the default): it needs a quorum */
    root = json_pack("{s:s,s:i}", "key", st->prefix_b64, "limit", 1);
    body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    slot->st = st;
    slot->sent_ms = now;
    st->probe_ms = now;
    if (body)
        slot->call = est_post(st, "/v3/kv/range", body, LIM_ETCD_PROBE_TIMEOUT_MS, est_probe_done,
                              NULL, slot);
    free(body);
    json_decref(root);
}

/* ---- follow ---- */

/* Schedule the next watch (or reset) attempt on the next endpoint, after a
 * backoff. */
static void est_retry_later(struct est_store *st)
{
    struct timeval tv;
    int64_t ms = bo_delay_ms(NULL, st->attempt);

    if (st->closing)
        return;
    if (st->attempt < 100)
        st->attempt++;
    est_next_endpoint(st);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(st->rewatch, &tv);
}

static void est_rewatch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct est_store *st = arg;

    (void)fd;
    (void)what;
    if (st->resetting)
        est_reset_start(st);
    else
        est_watch_start(st);
}

/* Mark our batch seq committed at rev (the watch or a reset showed it).
 * Returns whether a batch of ours had that sequence number. */
static bool est_mine_seen(struct est_store *st, uint64_t seq, uint64_t rev)
{
    struct est_batch *b = NULL;

    for (b = st->head; b; b = b->next) {
        if (b->seq == seq && (b->state == EST_SENT || b->state == EST_COMMITTED)) {
            b->state = EST_OK;
            b->revision = rev;
            /* the watch may be faster than the txn's answer: that answer
             * is not needed any more (it is the yes we just saw) */
            est_out_end(st, b);
            return true;
        }
    }
    return false;
}

/* The events [from, to) of one watch message, all at revision rev (one
 * txn): ours (our writer key among them) complete our batch; anyone else's
 * go to fn. */
static void est_watch_group(struct est_store *st, json_t *events, size_t from, size_t to,
                            uint64_t rev)
{
    size_t i = 0;
    bool mine = false;

    for (i = from; i < to && !mine; i++) {
        json_t *kv = json_object_get(json_array_get(events, i), "kv");
        size_t klen = 0, vlen = 0;
        char *key = est_unb64(json_object_get(kv, "key"), &klen);
        char *val = est_unb64(json_object_get(kv, "value"), &vlen);
        const char *id = key ? est_id_of(st, key, klen) : NULL;

        /* a batch of ours we failed (unknown outcome) that etcd applied:
         * not found, so delivered to fn like another writer's */
        if (id && val && strcmp(id, st->writer_id) == 0)
            mine = est_mine_seen(st, strtoull(val, NULL, 10), rev);
        free(key);
        free(val);
    }
    if (rev > st->seen_rev)
        st->seen_rev = rev;
    if (mine) {
        est_settle(st);
        est_pump(st);
        return;
    }
    if (rev > st->revision)
        st->revision = rev;
    for (i = from; i < to && st->following; i++) {
        json_t *ev = json_array_get(events, i);
        json_t *kv = json_object_get(ev, "kv");
        json_t *type = json_object_get(ev, "type");
        bool del = json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0;
        size_t klen = 0, vlen = 0;
        char *key = est_unb64(json_object_get(kv, "key"), &klen);
        char *val = del ? NULL : est_unb64(json_object_get(kv, "value"), &vlen);
        const char *id = key ? est_id_of(st, key, klen) : NULL;

        if (id && !est_is_writer(id) && (del || val))
            st->fn(st->fn_arg, del ? STORE_CH_DEL : STORE_CH_PUT, id, val, vlen);
        free(key);
        free(val);
    }
}

/* One message of the watch stream. */
static void est_watch_line(struct est_store *st, const char *line, size_t len)
{
    json_t *root = json_loadb(line, len, 0, NULL);
    json_t *res = json_object_get(root, "result");
    json_t *events = json_object_get(res, "events");
    size_t i = 0, from = 0, n = json_array_size(events);
    uint64_t rev = 0;

    if (!json_is_object(res)) {
        /* an error message ({"error":...}) or garbage: reopen */
        hc_cancel(st->watch);
        st->watch = NULL;
        est_retry_later(st);
        goto cleanup;
    }
    if (est_u64(json_object_get(res, "compact_revision")) > 0) {
        hc_cancel(st->watch);
        st->watch = NULL;
        est_reset_start(st);
        goto cleanup;
    }
    if (json_is_true(json_object_get(res, "canceled"))) {
        hc_cancel(st->watch);
        st->watch = NULL;
        est_retry_later(st);
        goto cleanup;
    }
    st->attempt = 0;
    for (i = 0; i < n && st->following; i++) {
        json_t *kv = json_object_get(json_array_get(events, i), "kv");
        uint64_t r = est_u64(json_object_get(kv, "mod_revision"));

        if (i == from) {
            rev = r;
        } else if (r != rev) {
            est_watch_group(st, events, from, i, rev);
            from = i;
            rev = r;
        }
    }
    if (n > 0 && st->following)
        est_watch_group(st, events, from, n, rev);
cleanup:
    json_decref(root);
}

/* Bytes of the watch stream: assembled into lines, each one message. */
static void est_watch_data(const char *chunk, size_t len, void *arg)
{
    struct est_store *st = arg;
    struct hc_call *me = st->watch;
    size_t start = 0, i = 0;

    if (st->line_len + len > LIM_ETCD_LINE_MAX) {
        hc_cancel(st->watch);
        st->watch = NULL;
        st->line_len = 0;
        est_retry_later(st);
        return;
    }
    if (st->line_len + len + 1 > st->line_cap) {
        size_t cap = st->line_cap ? st->line_cap : 4096;
        char *grown = NULL;

        while (cap < st->line_len + len + 1)
            cap *= 2;
        grown = realloc(st->line, cap);

        if (!grown) {
            hc_cancel(st->watch);
            st->watch = NULL;
            est_retry_later(st);
            return;
        }
        st->line = grown;
        st->line_cap = cap;
    }
    memcpy(st->line + st->line_len, chunk, len);
    st->line_len += len;
    for (i = 0; i < st->line_len && st->watch == me; i++) {
        if (st->line[i] != '\n')
            continue;
        if (i > start)
            est_watch_line(st, st->line + start, i - start);
        start = i + 1;
    }
    if (st->watch != me) {
        st->line_len = 0;
        return;
    }
    memmove(st->line, st->line + start, st->line_len - start);
    st->line_len -= start;
}

static void est_watch_done(const struct hc_response *resp, void *arg)
{
    struct est_store *st = arg;

    (void)resp;
    st->watch = NULL;
    st->line_len = 0;
    est_retry_later(st);
}

/* Open the watch from the last revision delivered + 1. */
static void est_watch_start(struct est_store *st)
{
    json_t *root = json_pack("{s:{s:s,s:s,s:I,s:b}}", "create_request", "key", st->prefix_b64,
                             "range_end", st->end_b64, "start_revision",
                             (json_int_t)(st->revision + 1), "progress_notify", 1);
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;

    json_decref(root);
    st->line_len = 0;
    if (body)
        st->watch =
            est_post(st, "/v3/watch", body, st->timeout_ms, est_watch_done, est_watch_data, st);
    free(body);
    if (!st->watch)
        est_retry_later(st);
}

static void est_reset_free(struct est_store *st)
{
    while (st->reset_kvs) {
        struct est_kv *k = st->reset_kvs;

        st->reset_kvs = k->next;
        free(k->id);
        free(k->doc);
        free(k);
    }
    free(st->reset_next);
    st->reset_next = NULL;
}

/* The reset's range read is complete: report it, complete our batches it
 * contains, watch on from its revision. */
static void est_reset_deliver(struct est_store *st)
{
    struct est_kv *k = NULL;
    struct est_batch *b = NULL;

    st->resetting = 0;
    if (st->reset_rev > st->revision)
        st->revision = st->reset_rev;
    st->fn(st->fn_arg, STORE_CH_RESET, NULL, NULL, 0);
    for (k = st->reset_kvs; k && st->following; k = k->next)
        st->fn(st->fn_arg, STORE_CH_PUT, k->id, k->doc, k->len);
    if (st->following)
        st->fn(st->fn_arg, STORE_CH_RESET_END, NULL, NULL, 0);
    est_reset_free(st);
    if (st->reset_rev > st->seen_rev)
        st->seen_rev = st->reset_rev;
    /* ours that the range holds: the one whose number the writer key
     * shows, and those etcd said yes to at or below its revision; one
     * still out that committed below it is done when its answer comes */
    for (b = st->head; b; b = b->next) {
        if ((b->state == EST_SENT && b->seq == st->reset_my_seq) ||
            (b->state == EST_COMMITTED && b->revision <= st->reset_rev)) {
            est_out_end(st, b);
            b->state = EST_OK;
            if (b->seq == st->reset_my_seq)
                b->revision = st->reset_rev;
        }
    }
    est_settle(st);
    if (st->following)
        est_watch_start(st);
}

static void est_range_done(const struct hc_response *resp, void *arg)
{
    struct est_store *st = arg;
    json_t *root = NULL, *kvs = NULL, *kv = NULL;
    size_t i = 0;

    st->range = NULL;
    if (resp->error == HC_OK && resp->status == 200)
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (!json_is_object(root)) {
        est_reset_free(st);
        est_retry_later(st);
        return;
    }
    if (!st->reset_rev)
        st->reset_rev = est_u64(json_object_get(json_object_get(root, "header"), "revision"));
    kvs = json_object_get(root, "kvs");
    json_array_foreach (kvs, i, kv) {
        size_t klen = 0, vlen = 0;
        char *key = est_unb64(json_object_get(kv, "key"), &klen);
        char *doc = est_unb64(json_object_get(kv, "value"), &vlen);
        const char *id = key ? est_id_of(st, key, klen) : NULL;
        struct est_kv *k = NULL;

        if (id && doc && strcmp(id, st->writer_id) == 0)
            st->reset_my_seq = strtoull(doc, NULL, 10);
        if (id && doc && !est_is_writer(id)) {
            k = calloc(1, sizeof(*k));
            if (k)
                k->id = strdup(id);
            if (k && k->id) {
                k->doc = doc;
                k->len = vlen;
                doc = NULL;
                k->next = st->reset_kvs;
                st->reset_kvs = k;
            } else if (k) {
                free(k);
            }
        }
        if (i + 1 == json_array_size(kvs)) {
            free(st->reset_next);
            st->reset_next = key;
            key = NULL;
        }
        free(key);
        free(doc);
    }
    if (json_is_true(json_object_get(root, "more")) && json_array_size(kvs) > 0) {
        char *body = est_range_body(st, st->reset_next, st->reset_rev);

        json_decref(root);
        st->range =
            body ? est_post(st, "/v3/kv/range", body, st->timeout_ms, est_range_done, NULL, st)
                 : NULL;
        free(body);
        if (!st->range) {
            est_reset_free(st);
            est_retry_later(st);
        }
        return;
    }
    json_decref(root);
    est_reset_deliver(st);
}

/* Read the whole state again (the history we needed was compacted). */
static void est_reset_start(struct est_store *st)
{
    char *body = NULL;

    est_reset_free(st);
    st->resetting = 1;
    st->reset_rev = 0;
    st->reset_my_seq = 0;
    body = est_range_body(st, NULL, 0);
    st->range =
        body ? est_post(st, "/v3/kv/range", body, st->timeout_ms, est_range_done, NULL, st) : NULL;
    free(body);
    if (!st->range)
        est_retry_later(st);
}

static int est_follow(struct store *base, store_change_fn fn, void *arg, char *err, size_t errlen)
{
    struct est_store *st = (struct est_store *)base;
    char uid[UID_STR_LEN + 1];
    size_t n = sizeof(EST_WRITER_DIR) - 1;

    if (!fn || !st->loaded || st->following || st->pending > 0) {
        errbuf_set(err, errlen,
                   "etcd store: follow needs a callback, a load before, no write "
                   "queued, and is called once");
        return -1;
    }
    uid_generate(uid);
    st->writer_id = malloc(n + sizeof(uid));
    if (!st->writer_id) {
        errbuf_set(err, errlen, "etcd store: out of memory");
        return -1;
    }
    memcpy(st->writer_id, EST_WRITER_DIR, n);
    memcpy(st->writer_id + n, uid, sizeof(uid));
    st->fn = fn;
    st->fn_arg = arg;
    st->following = 1;
    st->seen_rev = st->revision;
    est_watch_start(st);
    return 0;
}

/* ---- the keepalive endpoint ----
 *
 * Only etcd's leader renews a lease. A follower forwards each lease of a
 * keepalive stream to the leader in a peer request of its own, one after
 * the other (it reads the stream in order), so a batch sent to a follower
 * costs a peer round trip per lease and, on a loaded cluster, times out.
 * Keepalives therefore go to the endpoint that is etcd's leader when one
 * of ours is: POST /v3/maintenance/status answers the member's own id
 * (header.member_id) and the leader's (leader), and the search asks the
 * endpoints in turn, from the one keepalives use now, until one names
 * itself. It runs every LIM_ETCD_LEADER_MS once loaded, and at once when a
 * keepalive request failed; until it finds the leader (and with one
 * endpoint) keepalives go to the current endpoint as the rest. */

static void est_status_done(const struct hc_response *resp, void *arg);

static void est_status_send(struct est_store *st)
{
    st->status = est_post_at(st, st->status_ep, "/v3/maintenance/status", "{}",
                             LIM_ETCD_PROBE_TIMEOUT_MS, est_status_done, NULL, st);
}

/* Start a search unless one is out (or there is nothing to choose from). */
static void est_leader_search(struct est_store *st)
{
    if (st->status || st->closing || !st->loaded || st->nendpoints < 2)
        return;
    st->status_ep = st->ka_leader ? st->ka_ep : st->cur;
    st->status_asked = 0;
    est_status_send(st);
}

static void est_status_done(const struct hc_response *resp, void *arg)
{
    struct est_store *st = arg;
    json_t *root = NULL;
    uint64_t self = 0, leader = 0;

    st->status = NULL;
    if (resp->error == HC_OK && resp->status == 200) {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
        self = est_u64(json_object_get(json_object_get(root, "header"), "member_id"));
        leader = est_u64(json_object_get(root, "leader"));
        json_decref(root);
    }
    if (self != 0 && self == leader) {
        st->ka_ep = st->status_ep;
        st->ka_leader = 1;
        return;
    }
    if (st->status_ep == st->ka_ep)
        st->ka_leader = 0; /* it was, and is no more */
    if (++st->status_asked < st->nendpoints && !st->closing) {
        st->status_ep = (st->status_ep + 1) % st->nendpoints;
        est_status_send(st);
    }
}

static void est_leader_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    est_leader_search(arg);
}

/* ---- leases ----
 *
 * A grant is POST /v3/lease/grant {"TTL": s} (the TTL asked rounded up to
 * whole seconds; etcd raises it to its minimum, about 1.5 x its election
 * timeout, and answers the TTL granted). At most LIM_ETCD_GRANTS_MAX
 * grants are in flight; the others wait in the order asked.
 *
 * Keepalives share requests. The gateway's /v3/lease/keepalive is a
 * stream: the request body is a sequence of {"ID": "<id>"} objects and
 * the answer one {"result": {"ID": .., "TTL": ".."}} line for each, in
 * order, the TTL left; a lease etcd does not know (lapsed, revoked, never
 * granted) is answered without "TTL" (etcd 3.4, checked by hand): that is
 * the TTL 0 of store.h. So the keepalives asked while others are out wait
 * in a queue, and each request carries up to LIM_ETCD_KA_BATCH of
 * them (one request a batch, not one a lease: the gateway's cost is per
 * request), at most LIM_ETCD_KA_REQUESTS requests in flight. The
 * queue is sent from the loop (est_ka_cb) once the current callbacks are
 * done, so the renewals of one turn share a request. A keepalive of a
 * lease that already has one asked (queued or in flight) joins it: its
 * completion runs with that answer. A lease of a batch the answer does not
 * name is asked again in the next request (est_kab_requeue), and fails
 * with -1 after EST_KA_UNNAMED_MAX such answers.
 *
 * Up to STORE_PENDING_MAX completions wait in all; one more is refused
 * with -1 at once. Failover as for a txn: a request that reached no
 * endpoint is tried on the next one until each was tried; any other
 * failure is rc -1 (a keepalive asked again is harmless, a grant asked
 * again would only leave a lease nobody uses to lapse, but the caller
 * retries at the next renewal anyway). A lapse is etcd deleting the leased
 * keys in a revision of their own: the watch brings it with no writer key,
 * so each follower, the writer included, hears STORE_CH_DEL. */

static void est_lop_done(const struct hc_response *resp, void *arg);
static void est_kab_done(const struct hc_response *resp, void *arg);

/* Start grant op's request on the current endpoint; op->call NULL when it
 * could not start. */
static void est_lop_send(struct est_store *st, struct est_lop *op)
{
    char body[64];

    snprintf(body, sizeof(body), "{\"TTL\":%" PRId64 "}", op->ttl_s);
    op->call = est_post(st, "/v3/lease/grant", body, st->timeout_ms, est_lop_done, NULL, op);
    if (op->call)
        st->lops_inflight++;
}

/* Call op's completions in order and free it (already out of every list
 * but the keepalive table, which this leaves too). */
static void est_lop_finish(struct est_store *st, struct est_lop *op, int rc, int64_t lease,
                           int64_t ttl_s, const char *err)
{
    struct est_lwait *w = NULL, *next = NULL;

    if (op->kind == EST_KEEPALIVE)
        HASH_DEL(st->ka_by_lease, op);
    for (w = op->waits; w; w = next) {
        next = w->next;
        st->lwaits--;
        if (w->done)
            w->done(w->arg, rc, rc == 0 ? lease : 0, rc == 0 ? ttl_s : 0, rc == 0 ? NULL : err);
        free(w);
    }
    free(op);
}

/* Take grant op out of st->lops. */
static void est_lop_unlink(struct est_store *st, struct est_lop *op)
{
    struct est_lop **pp = &st->lops;

    while (*pp && *pp != op)
        pp = &(*pp)->next;
    if (*pp)
        *pp = op->next;
    if (st->lops_end == &op->next)
        st->lops_end = pp;
}

/* Body of kab's request: its leases as a stream of {"ID":"<id>"}; the
 * caller frees; NULL when out of memory. */
static char *est_kab_body(const struct est_kab *kab)
{
    size_t i, len = 0, cap = kab->n * 32 + 1;
    char *body = malloc(cap);

    if (!body)
        return NULL;
    body[0] = '\0';
    for (i = 0; i < kab->n; i++)
        len +=
            (size_t)snprintf(body + len, cap - len, "{\"ID\":\"%" PRId64 "\"}", kab->ops[i]->lease);
    return body;
}

/* Start kab's request on the current endpoint; kab->call NULL when it
 * could not start. */
static void est_kab_send(struct est_store *st, struct est_kab *kab)
{
    char *body = est_kab_body(kab);

    kab->to_leader = st->ka_leader;
    kab->call = body ? est_post_at(st, st->ka_leader ? st->ka_ep : st->cur, "/v3/lease/keepalive",
                                   body, st->timeout_ms, est_kab_done, NULL, kab)
                     : NULL;
    free(body);
}

/* Take kab out of st->kabs, finish each of its leases not answered with
 * -1 and err, free it. */
static void est_kab_finish(struct est_store *st, struct est_kab *kab, const char *err)
{
    struct est_kab **pp = &st->kabs;
    size_t i;

    while (*pp && *pp != kab)
        pp = &(*pp)->next;
    if (*pp)
        *pp = kab->next;
    for (i = 0; i < kab->n; i++)
        if (kab->ops[i])
            est_lop_finish(st, kab->ops[i], -1, 0, 0, err);
    free(kab);
}

/* The leases of kab that a complete answer did not name go back to the
 * head of the queue, in order, up to EST_KA_UNNAMED_MAX times each. etcd's
 * HTTP/1 server reads the rest of a request body away when it writes the
 * first answer line (its handler does not read and write at once), so on
 * a loaded member the last leases of a stream can go unread: asked again,
 * they are answered in the next request. */
static void est_kab_requeue(struct est_store *st, struct est_kab *kab)
{
    struct est_lop *head = NULL, **end = &head;
    size_t i;

    for (i = 0; i < kab->n; i++) {
        struct est_lop *op = kab->ops[i];

        if (!op || ++op->unnamed > EST_KA_UNNAMED_MAX)
            continue;
        kab->ops[i] = NULL;
        *end = op;
        end = &op->next;
    }
    if (!head)
        return;
    *end = st->kas;
    if (!st->kas)
        st->kas_end = end;
    st->kas = head;
    event_active(st->ka_send, EV_TIMEOUT, 1);
}

/* A request for the first LIM_ETCD_KA_BATCH keepalives queued, sent
 * now. -1 when it could not start (its keepalives then failed). */
static int est_kab_start(struct est_store *st)
{
    struct est_kab *kab = calloc(1, sizeof(*kab));

    if (!kab)
        return -1;
    kab->st = st;
    while (st->kas && kab->n < LIM_ETCD_KA_BATCH) {
        struct est_lop *op = st->kas;

        st->kas = op->next;
        op->next = NULL;
        kab->ops[kab->n++] = op;
    }
    if (!st->kas)
        st->kas_end = &st->kas;
    kab->next = st->kabs;
    st->kabs = kab;
    est_kab_send(st, kab);
    if (!kab->call) {
        est_kab_finish(st, kab, "etcd store: cannot start a keepalive request");
        return -1;
    }
    return 0;
}

/* Send queued grants while fewer than LIM_ETCD_GRANTS_MAX are in flight,
 * and queued keepalives while fewer than LIM_ETCD_KA_REQUESTS of
 * their requests are. */
static void est_lop_pump(struct est_store *st)
{
    struct est_lop *op = st->lops;
    struct est_kab *k = NULL;
    size_t streams = 0;

    while (op && st->lops_inflight < LIM_ETCD_GRANTS_MAX && !st->closing) {
        struct est_lop *next = op->next;

        if (!op->call) {
            est_lop_send(st, op);
            if (!op->call) {
                est_lop_unlink(st, op);
                est_lop_finish(st, op, -1, 0, 0, "etcd store: cannot start a lease request");
            }
        }
        op = next;
    }
    for (k = st->kabs; k; k = k->next)
        streams++;
    while (st->kas && streams < LIM_ETCD_KA_REQUESTS && !st->closing) {
        if (est_kab_start(st) == 0)
            streams++;
    }
}

static void est_ka_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    est_lop_pump(arg);
}

static void est_lop_done(const struct hc_response *resp, void *arg)
{
    struct est_lop *op = arg;
    struct est_store *st = op->st;
    char msg[EST_ERR_MAX] = "";
    json_t *root = NULL;
    int64_t lease = 0, ttl = 0;
    int rc = -1;

    op->call = NULL;
    st->lops_inflight--;
    if (resp->error == HC_ECONNECT || resp->error == HC_ERESOLVE) {
        op->tried++;
        est_next_endpoint(st);
        if (op->tried < st->nendpoints && !st->closing) {
            est_lop_send(st, op);
            if (op->call)
                return;
        }
        errbuf_set(msg, sizeof(msg), "etcd store: no endpoint answered the lease request (%s)",
                   resp->error_msg);
    } else if (resp->error != HC_OK) {
        errbuf_set(msg, sizeof(msg), "etcd store: lease request %s", resp->error_msg);
        est_next_endpoint(st);
    } else {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (resp->status != 200 || !json_is_object(root) ||
            json_object_get(root, "error") != NULL) {
            est_error_text(root, resp->status, msg, sizeof(msg));
            if (resp->status >= 500)
                est_next_endpoint(st);
        } else {
            lease = (int64_t)est_u64(json_object_get(root, "ID"));
            ttl = (int64_t)est_u64(json_object_get(root, "TTL"));
            if (lease <= 0 || ttl <= 0) {
                errbuf_set(msg, sizeof(msg), "etcd store: the grant answer has no ID or TTL");
            } else {
                rc = 0;
                est_quorum_ok(st); /* a grant went through Raft */
            }
        }
        json_decref(root);
    }
    est_lop_unlink(st, op);
    est_lop_finish(st, op, rc, lease, ttl, msg);
    est_lop_pump(st);
}

/* The answers of a keepalive stream: each {"result": {"ID", "TTL"}} line
 * finishes its lease of kab (a keepalive is the leader's alone, no log
 * entry: it proves no quorum); an {"error": ..} line, or text that is not
 * JSON, ends the reading with its message in msg. */
static void est_kab_answers(struct est_store *st, struct est_kab *kab, const char *body, size_t len,
                            char *msg, size_t msglen)
{
    size_t pos = 0, i;

    while (pos < len) {
        json_error_t jerr;
        json_t *root = NULL, *res = NULL;
        int64_t id = 0;

        while (pos < len && (body[pos] == '\n' || body[pos] == '\r' || body[pos] == ' '))
            pos++;
        if (pos == len)
            break;
        root = json_loadb(body + pos, len - pos, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!root) {
            errbuf_set(msg, msglen, "etcd store: a keepalive answer is not JSON (%s)", jerr.text);
            return;
        }
        pos += (size_t)jerr.position;
        res = json_object_get(root, "result");
        if (!json_is_object(res)) {
            est_error_text(root, 200, msg, msglen);
            json_decref(root);
            return;
        }
        id = (int64_t)est_u64(json_object_get(res, "ID"));
        for (i = 0; i < kab->n; i++) {
            if (kab->ops[i] && kab->ops[i]->lease == id) {
                struct est_lop *op = kab->ops[i];

                kab->ops[i] = NULL;
                est_lop_finish(st, op, 0, id, (int64_t)est_u64(json_object_get(res, "TTL")), NULL);
                break;
            }
        }
        json_decref(root);
    }
}

static void est_kab_done(const struct hc_response *resp, void *arg)
{
    struct est_kab *kab = arg;
    struct est_store *st = kab->st;
    char msg[EST_ERR_MAX] = "";

    kab->call = NULL;
    if (resp->error != HC_OK || resp->status != 200) {
        /* the leader may have moved, or this endpoint died: look again */
        if (kab->to_leader)
            st->ka_leader = 0;
        est_leader_search(st);
    }
    if (resp->error == HC_ECONNECT || resp->error == HC_ERESOLVE) {
        kab->tried++;
        if (!kab->to_leader)
            est_next_endpoint(st);
        if (kab->tried < st->nendpoints && !st->closing) {
            est_kab_send(st, kab);
            if (kab->call)
                return;
        }
        errbuf_set(msg, sizeof(msg), "etcd store: no endpoint answered the keepalive (%s)",
                   resp->error_msg);
    } else if (resp->error != HC_OK) {
        errbuf_set(msg, sizeof(msg), "etcd store: keepalive %s", resp->error_msg);
        if (!kab->to_leader)
            est_next_endpoint(st);
    } else if (resp->status != 200) {
        json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);

        est_error_text(root, resp->status, msg, sizeof(msg));
        json_decref(root);
        if (resp->status >= 500)
            est_next_endpoint(st);
    } else {
        est_kab_answers(st, kab, resp->body, resp->body_len, msg, sizeof(msg));
        if (!msg[0]) {
            errbuf_set(msg, sizeof(msg), "etcd store: the keepalive answer did not name the lease");
            est_kab_requeue(st, kab);
        }
    }
    est_kab_finish(st, kab, msg);
    est_lop_pump(st);
}

/* A new lease request of kind for lease / ttl_s with its first completion:
 * a grant sent now when the limit allows, a keepalive queued for the
 * loop's next turn. 0, or -1 with err (nothing queued). */
static int est_lop_new(struct est_store *st, enum est_lop_kind kind, int64_t lease, int64_t ttl_s,
                       store_lease_fn done, void *arg, char *err, size_t errlen)
{
    struct est_lop *op = calloc(1, sizeof(*op));
    struct est_lwait *w = calloc(1, sizeof(*w));

    if (!op || !w) {
        free(op);
        free(w);
        errbuf_set(err, errlen, "etcd store: out of memory");
        return -1;
    }
    op->st = st;
    op->kind = kind;
    op->lease = lease;
    op->ttl_s = ttl_s;
    w->done = done;
    w->arg = arg;
    op->waits = w;
    op->waits_end = &w->next;
    if (kind == EST_GRANT && st->lops_inflight < LIM_ETCD_GRANTS_MAX) {
        est_lop_send(st, op);
        if (!op->call) {
            free(op);
            free(w);
            errbuf_set(err, errlen, "etcd store: cannot start a lease request");
            return -1;
        }
    }
    if (kind == EST_GRANT) {
        *st->lops_end = op;
        st->lops_end = &op->next;
    } else {
        *st->kas_end = op;
        st->kas_end = &op->next;
        HASH_ADD(hh, st->ka_by_lease, lease, sizeof(op->lease), op);
        event_active(st->ka_send, EV_TIMEOUT, 1);
    }
    st->lwaits++;
    return 0;
}

/* Whether a lease op may be asked now; -1 with err if not. */
static int est_lop_allowed(const struct est_store *st, char *err, size_t errlen)
{
    if (st->closing || st->loading || !st->loaded) {
        errbuf_set(err, errlen, "etcd store: lease request %s",
                   st->closing ? "during close" : "before the load");
        return -1;
    }
    if (st->lwaits >= STORE_PENDING_MAX) {
        errbuf_set(err, errlen, "etcd store: too many lease requests waiting");
        return -1;
    }
    return 0;
}

static int est_lease_grant(struct store *base, int64_t ttl_ms, store_lease_fn done, void *arg,
                           char *err, size_t errlen)
{
    struct est_store *st = (struct est_store *)base;

    if (ttl_ms <= 0 || ttl_ms > INT64_MAX - 999) {
        errbuf_set(err, errlen, "etcd store: lease TTL of %" PRId64 " ms", ttl_ms);
        return -1;
    }
    if (est_lop_allowed(st, err, errlen) != 0)
        return -1;
    return est_lop_new(st, EST_GRANT, 0, (ttl_ms + 999) / 1000, done, arg, err, errlen);
}

static int est_lease_keepalive(struct store *base, int64_t lease, store_lease_fn done, void *arg,
                               char *err, size_t errlen)
{
    struct est_store *st = (struct est_store *)base;
    struct est_lop *op = NULL;
    struct est_lwait *w = NULL;

    if (lease <= 0) {
        errbuf_set(err, errlen, "etcd store: keepalive of no lease");
        return -1;
    }
    if (est_lop_allowed(st, err, errlen) != 0)
        return -1;
    HASH_FIND(hh, st->ka_by_lease, &lease, sizeof(lease), op);
    if (!op)
        return est_lop_new(st, EST_KEEPALIVE, lease, 0, done, arg, err, errlen);
    w = calloc(1, sizeof(*w));
    if (!w) {
        errbuf_set(err, errlen, "etcd store: out of memory");
        return -1;
    }
    w->done = done;
    w->arg = arg;
    *op->waits_end = w;
    op->waits_end = &w->next;
    st->lwaits++;
    return 0;
}

/* Close: every lease request still out completes with -1. */
static void est_lop_fail_all(struct est_store *st)
{
    const char *why = "etcd store: closed before etcd answered";

    while (st->lops) {
        struct est_lop *op = st->lops;

        if (op->call) {
            hc_cancel(op->call);
            op->call = NULL;
            st->lops_inflight--;
        }
        est_lop_unlink(st, op);
        est_lop_finish(st, op, -1, 0, 0, why);
    }
    while (st->kabs) {
        if (st->kabs->call)
            hc_cancel(st->kabs->call);
        st->kabs->call = NULL;
        est_kab_finish(st, st->kabs, why);
    }
    while (st->kas) {
        struct est_lop *op = st->kas;

        st->kas = op->next;
        est_lop_finish(st, op, -1, 0, 0, why);
    }
    st->kas_end = &st->kas;
}

/* Whether no lease request is out. */
static bool est_lops_idle(const struct est_store *st) { return !st->lops && !st->kas && !st->kabs; }

/* ---- the rest of the ops ---- */

static size_t est_pending(const struct store *base)
{
    return ((const struct est_store *)base)->pending;
}

static uint64_t est_revision(const struct store *base)
{
    return ((const struct est_store *)base)->revision;
}

static bool est_writable(const struct store *base)
{
    return ((const struct est_store *)base)->writable;
}

static void est_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until every write completed, at most LIM_ETCD_DRAIN_MS;
 * what is left then completes now: a batch etcd said yes to with rc 0 (the
 * watch did not bring it back in time), any other with -1. */
static void est_drain(struct store *base)
{
    struct est_store *st = (struct est_store *)base;
    struct timespec start, now;
    struct timeval tv = {0, 100 * 1000};
    struct est_batch *b = NULL;

    if (st->pending == 0 && est_lops_idle(st))
        return;
    if (event_pending(st->flush, EV_TIMEOUT, NULL) || st->open) {
        event_del(st->flush);
        st->open = NULL;
    }
    est_pump(st);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (st->pending > 0 || !est_lops_idle(st)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
            LIM_ETCD_DRAIN_MS)
            break;
        evtimer_add(st->drain_wake, &tv);
        if (event_base_loop(st->ev, EVLOOP_ONCE) < 0)
            break;
        st->open = NULL; /* writes the completions made: sent on */
        est_pump(st);
    }
    evtimer_del(st->drain_wake);
    if (st->pending == 0 && est_lops_idle(st))
        return;
    st->closing = 1; /* completions may not queue more */
    est_lop_fail_all(st);
    if (st->pending == 0)
        return;
    for (b = st->head; b; b = b->next) {
        est_out_end(st, b);
        if (b->state == EST_COMMITTED)
            b->state = EST_OK;
        else if (b->state != EST_OK)
            est_fail(b, "etcd store: closed before etcd answered");
    }
    est_settle(st);
}

/* Delete this handle's writer key (nobody needs it once the handle is
 * gone), blocking: close runs after the loop. Best effort: a key left
 * behind (etcd down) is a few bytes nobody reads. */
static void est_drop_writer(struct est_store *st)
{
    char *key = est_key(st, st->writer_id);
    char *k64 = key ? est_b64(key, strlen(key)) : NULL;
    json_t *root = k64 ? json_pack("{s:s}", "key", k64) : NULL;
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_t *answer = NULL;
    char err[EST_ERR_MAX];

    if (body && est_post_sync(st, "/v3/kv/deleterange", body, &answer, err, sizeof(err)) == 0)
        json_decref(answer);
    free(body);
    json_decref(root);
    free(k64);
    free(key);
}

static void est_close(struct store *base)
{
    struct est_store *st = (struct est_store *)base;
    size_t i = 0;

    est_drain(base);
    st->closing = 1;
    if (st->writer_id)
        est_drop_writer(st);
    st->following = 0;
    hc_client_free(st->hc); /* cancels the watch, probe and range calls */
    if (st->flush)
        event_free(st->flush);
    if (st->probe)
        event_free(st->probe);
    if (st->quorum)
        event_free(st->quorum);
    if (st->rewatch)
        event_free(st->rewatch);
    if (st->drain_wake)
        event_free(st->drain_wake);
    if (st->ka_send)
        event_free(st->ka_send);
    if (st->leader_tick)
        event_free(st->leader_tick);
    est_reset_free(st);
    while (st->busy) { /* none: est_drain ended every txn */
        struct est_busy *e = st->busy;

        HASH_DEL(st->busy, e);
        free(e);
    }
    for (i = 0; i < st->nendpoints; i++)
        free(st->endpoints[i]);
    free(st->prefix);
    free(st->prefix_b64);
    free(st->end_b64);
    free(st->writer_id);
    free(st->line);
    free(st);
}

static const struct store_ops est_ops = {
    .name = "etcd",
    .put = est_put,
    .del = est_del,
    .load = est_load,
    .pending = est_pending,
    .drain = est_drain,
    .close = est_close,
    .follow = est_follow,
    .revision = est_revision,
    .writable = est_writable,
    .lease_grant = est_lease_grant,
    .put_leased = est_put_leased,
    .lease_keepalive = est_lease_keepalive,
};

/* Split the comma-separated endpoints into st (each http:// or https://,
 * without a trailing /). 0, or -1 with err. */
static int est_parse_endpoints(struct est_store *st, const char *list, char *err, size_t errlen)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '/'))
            n--;
        if (n > 0) {
            if (st->nendpoints >= LIM_ETCD_ENDPOINTS_MAX) {
                errbuf_set(err, errlen, "etcd store: more than %d endpoints",
                           LIM_ETCD_ENDPOINTS_MAX);
                return -1;
            }
            if (n > 400 || (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0)) {
                errbuf_set(err, errlen, "etcd store: endpoint '%.*s' is not an http(s) URL",
                           (int)(n > 64 ? 64 : n), p);
                return -1;
            }
            st->endpoints[st->nendpoints] = strndup(p, n);
            if (!st->endpoints[st->nendpoints]) {
                errbuf_set(err, errlen, "etcd store: out of memory");
                return -1;
            }
            st->nendpoints++;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    if (st->nendpoints == 0) {
        errbuf_set(err, errlen, "etcd store: no endpoint given");
        return -1;
    }
    return 0;
}

struct store *store_etcd_open(const struct store_etcd_options *opt, struct event_base *base,
                              char *err, size_t errlen)
{
    struct est_store *st = NULL;
    const char *prefix = opt && opt->prefix ? opt->prefix : "/svcmesh/";
    char *end = NULL;
    size_t n = strlen(prefix);
    struct timeval probe = {LIM_ETCD_PROBE_MS / 1000, (LIM_ETCD_PROBE_MS % 1000) * 1000};
    struct timeval leader_tick = {LIM_ETCD_LEADER_MS / 1000, (LIM_ETCD_LEADER_MS % 1000) * 1000};

    if (!opt || !opt->endpoints || !base) {
        errbuf_set(err, errlen, "etcd store: no options, endpoints or event base");
        return NULL;
    }
    if (n == 0 || (unsigned char)prefix[n - 1] == 0xff) {
        errbuf_set(err, errlen, "etcd store: the prefix must be non-empty and not end in 0xff");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        goto oom;
    st->base.ops = &est_ops;
    st->ev = base;
    st->tail = &st->head;
    st->lops_end = &st->lops;
    st->kas_end = &st->kas;
    st->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 2000;
    st->writable = true;
    if (est_parse_endpoints(st, opt->endpoints, err, errlen) != 0)
        goto fail;
    st->prefix = strdup(prefix);
    st->prefix_len = n;
    end = strdup(prefix);
    if (!st->prefix || !end)
        goto oom;
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    st->prefix_b64 = est_b64(prefix, n);
    st->end_b64 = est_b64(end, n);
    free(end);
    end = NULL;
    st->hc = hc_client_new(base);
    st->flush = event_new(base, -1, 0, est_flush_cb, st);
    st->probe = event_new(base, -1, EV_PERSIST, est_probe_cb, st);
    st->quorum = evtimer_new(base, est_quorum_lost_cb, st);
    st->rewatch = evtimer_new(base, est_rewatch_cb, st);
    st->drain_wake = evtimer_new(base, est_wake_cb, st);
    st->ka_send = event_new(base, -1, 0, est_ka_cb, st);
    st->leader_tick = event_new(base, -1, EV_PERSIST, est_leader_tick_cb, st);
    if (!st->prefix_b64 || !st->end_b64 || !st->hc || !st->flush || !st->probe || !st->quorum ||
        !st->rewatch || !st->drain_wake || !st->ka_send || !st->leader_tick ||
        event_add(st->probe, &probe) != 0 || event_add(st->leader_tick, &leader_tick) != 0)
        goto oom;
    return &st->base;
oom:
    errbuf_set(err, errlen, "etcd store: out of memory");
fail:
    free(end);
    if (st)
        est_close(&st->base);
    return NULL;
}
