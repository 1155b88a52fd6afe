/* fanout.c: the merged, incrementally synced view behind GET /facade (see
 * fanout.h).
 *
 * Memory: a message costs one compact entry (binary uuid, ts, position,
 * where its text is, and a 64-bit mask of the instances that listed it) of
 * 56 bytes in an array, a slot in an open-addressing hash of
 * entry indices, a slot in the order array, and its JSON string literal
 * twice: once in the text arena (the source when the encoding is rebuilt or
 * a page is cut) and once in the cached encoding. The cached encoding is a
 * short list of immutable, reference-counted segments that replies borrow
 * with evbuffer_add_reference: extending it appends a segment (merged with
 * its neighbours in a binary-counter fashion so there are O(log n)), and a
 * reply never copies the list.
 *
 * Holders (for repair, fan_under_next): each source gets one of
 * FAN_SLOTS_MAX slots, and an entry's holders mask has the bit of every
 * source whose pages listed it. A source seen under a new epoch (restarted,
 * maybe empty) has its bit cleared from every entry before its first page
 * of the new store is folded in. A source beyond FAN_SLOTS_MAX gets no slot
 * and is not counted, unless an unlisted one can be dropped for it: when
 * the slots are all taken, the source least recently listed (and not
 * listed in the round being started) is forgotten, its bit cleared; should
 * it come back it is read in full again. */
#include "fanout.h"

#include "codec/jsonw.h"
#include "codec/uid.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "http/trace.h"
#include "proto/greeting.h"
#include "proto/messages.h"
#include "regclient/discovery.h"
#include "reply.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define FAN_SEGS_MAX   64  /* cached segments; the merging keeps far fewer */
#define FAN_ERROR_MAX  512 /* bytes of one error text */
#define FAN_ERRORS_MAX (DISC_INSTANCES_MAX + 4)
#define FAN_CURSOR_MAX 80 /* "<ts>.<pos>.<32 hex digits>" */
#define FAN_SLOTS_MAX  64 /* sources with a holders bit (REP_INSTANCES_MAX) */
#define FAN_NO_SLOT    (-1)

/* One message of the view. */
struct fan_entry {
    int64_t ts;
    uint64_t pos; /* the earliest position an instance gave it */
    uint64_t off; /* its JSON string literal: text + off, len bytes */
    uint32_t len;
    uint32_t rank; /* index in order once placed */
    uint8_t uuid[16];
    uint8_t trace[16]; /* the trace id an instance listed it with; zero: none */
    uint64_t holders;  /* bit per source slot whose pages listed it */
};

/* An immutable piece of the cached encoding, shared with replies. */
struct fan_seg {
    size_t refs; /* the cache's and each reply's */
    size_t len;
    char data[];
};

struct fan_view;

/* One logging instance as the view knows it. */
struct fan_source {
    UT_hash_handle hh;
    char key[LIM_HOST_MAX + 16]; /* "host:port" */
    char host[LIM_HOST_MAX + 1];
    int port;
    char epoch[PM_EPOCH_MAX + 1]; /* "" until first read */
    uint64_t pos;                 /* next position to ask for */
    uint64_t asked;               /* after= of the call in flight */
    struct up_instance *up;       /* borrowed */
    struct hc_call *call;         /* in flight, or NULL */
    struct fan_view *view;
    int slot;           /* 0..FAN_SLOTS_MAX-1, or FAN_NO_SLOT */
    uint64_t listed_in; /* the round (v->rounds) that last listed it */
};

/* A caller waiting for a round. */
struct fan_waiter {
    fan_synced_fn fn;
    void *arg;
    char trace[TRC_TRACE_ID_LEN + 1]; /* the trace of the request waiting, "" none */
    struct fan_waiter *next;
};

/* One sync round. */
struct fan_round {
    bool active;
    struct fan_waiter *waiters;
    size_t listed, answered, outstanding;
    size_t distinct;              /* sources listed, each counted once */
    uint64_t listed_mask;         /* slots of the sources listed */
    char *errors[FAN_ERRORS_MAX]; /* owned texts */
    size_t nerrors;
    char *before[FAN_ERRORS_MAX]; /* owned: the errors of the round before */
    size_t nbefore;
    struct hc_call *msg_call; /* the messages-service call, or NULL */
    struct up_instance *msg_up;
    char trace[TRC_TRACE_ID_LEN + 1];      /* the first waiter's trace ("" none:
                                              a repair tick's round): the trace
                                              of its log lines */
    char call_trace[TRC_TRACE_ID_LEN + 1]; /* trace, or a new one: its calls'
                                              traceparent */
};

struct fan_view {
    struct hc_client *hc;
    struct up_table *ups;
    fan_list_fn list;
    void *list_arg;
    struct fan_options opt;

    struct fan_entry *entries; /* owned; count used, cap allocated */
    size_t count, cap;
    size_t placed;   /* entries [0, placed) are in order; the rest are new */
    uint32_t *slots; /* hash: entry index + 1, 0 empty; nslots a power of 2 */
    size_t nslots;
    uint32_t *order; /* entry indices in the view's order */
    char *text;      /* the JSON string literals of every entry */
    size_t text_len, text_cap;
    bool resort; /* a placed entry moved before a neighbour */

    struct fan_seg *segs[FAN_SEGS_MAX]; /* the cached encoding, in order */
    size_t nsegs;
    uint64_t rebuilds, extends;

    struct fan_source *sources; /* uthash by key */
    struct fan_round round;     /* the round in flight (round.active) */
    struct fan_waiter *next_waiters, **next_tail;
    size_t pending_gets;
    json_t *message; /* the last messages-service answer, or NULL */
    unsigned messages_rr;

    uint64_t slots_used;  /* source slots taken */
    uint64_t rounds;      /* rounds started */
    bool last_complete;   /* the last round read every source it listed */
    uint64_t last_listed; /* slots the last complete round listed */
};

/* ---------------------------------------------------------------------- */
/* segments */

static struct fan_seg *fan_seg_new(size_t len)
{
    struct fan_seg *s = malloc(sizeof(*s) + len);

    if (s) {
        s->refs = 1;
        s->len = 0;
    }
    return s;
}

static void fan_seg_unref(struct fan_seg *s)
{
    if (s && --s->refs == 0)
        free(s);
}

/* evbuffer cleanup of a borrowed segment. */
static void fan_seg_release(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    fan_seg_unref(arg);
}

static void fan_cache_clear(struct fan_view *v)
{
    size_t i;

    for (i = 0; i < v->nsegs; i++)
        fan_seg_unref(v->segs[i]);
    v->nsegs = 0;
}

/* A segment holding the literals of order[from, to), each after a comma
 * but the very first of the list. NULL when out of memory. */
static struct fan_seg *fan_seg_encode(const struct fan_view *v, size_t from, size_t to)
{
    size_t bytes = 0, i;
    struct fan_seg *s;

    for (i = from; i < to; i++)
        bytes += v->entries[v->order[i]].len + 1;
    s = fan_seg_new(bytes);
    if (!s)
        return NULL;
    for (i = from; i < to; i++) {
        const struct fan_entry *e = &v->entries[v->order[i]];

        if (i > 0)
            s->data[s->len++] = ',';
        memcpy(s->data + s->len, v->text + e->off, e->len);
        s->len += e->len;
    }
    return s;
}

/* Merge the last two segments while the older is not more than twice the
 * newer: O(log n) segments, each byte copied O(log n) times in all. */
static int fan_cache_compact(struct fan_view *v)
{
    while (v->nsegs >= 2 && (v->segs[v->nsegs - 2]->len <= 2 * v->segs[v->nsegs - 1]->len ||
                             v->nsegs == FAN_SEGS_MAX)) {
        struct fan_seg *a = v->segs[v->nsegs - 2], *b = v->segs[v->nsegs - 1];
        struct fan_seg *m = fan_seg_new(a->len + b->len);

        if (!m)
            return -1;
        memcpy(m->data, a->data, a->len);
        memcpy(m->data + a->len, b->data, b->len);
        m->len = a->len + b->len;
        fan_seg_unref(a);
        fan_seg_unref(b);
        v->nsegs -= 2;
        v->segs[v->nsegs++] = m;
    }
    return 0;
}

/* Append the encoding of order[from, placed) as a new segment. 0 or -1. */
static int fan_cache_extend(struct fan_view *v, size_t from)
{
    struct fan_seg *s;

    if (from >= v->placed)
        return 0;
    if (v->nsegs == FAN_SEGS_MAX && fan_cache_compact(v) != 0)
        return -1;
    s = fan_seg_encode(v, from, v->placed);
    if (!s)
        return -1;
    v->segs[v->nsegs++] = s;
    v->extends++;
    return fan_cache_compact(v);
}

/* Drop the cache and encode the whole order again. 0 or -1. */
static int fan_cache_rebuild(struct fan_view *v)
{
    fan_cache_clear(v);
    v->rebuilds++;
    return fan_cache_extend(v, 0);
}

/* ---------------------------------------------------------------------- */
/* entries: hash, keys, order */

static size_t fan_hash(const uint8_t uuid[16])
{
    uint64_t a, b;

    memcpy(&a, uuid, 8);
    memcpy(&b, uuid + 8, 8);
    return (size_t)(((a ^ (b * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL) >> 17);
}

/* The index of uuid's entry, or -1. */
static long fan_find(const struct fan_view *v, const uint8_t uuid[16])
{
    size_t mask = v->nslots - 1, i;

    if (!v->nslots)
        return -1;
    for (i = fan_hash(uuid) & mask; v->slots[i]; i = (i + 1) & mask)
        if (memcmp(v->entries[v->slots[i] - 1].uuid, uuid, 16) == 0)
            return (long)(v->slots[i] - 1);
    return -1;
}

/* Grow the hash to keep it at most half full. 0 or -1. */
static int fan_hash_reserve(struct fan_view *v)
{
    size_t n = v->nslots ? v->nslots : 1024, i, mask;
    uint32_t *slots;

    if (v->nslots && (v->count + 1) * 2 <= v->nslots)
        return 0;
    while ((v->count + 1) * 2 > n)
        n *= 2;
    slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -1;
    mask = n - 1;
    for (i = 0; i < v->count; i++) {
        size_t k = fan_hash(v->entries[i].uuid) & mask;

        while (slots[k])
            k = (k + 1) & mask;
        slots[k] = (uint32_t)(i + 1);
    }
    free(v->slots);
    v->slots = slots;
    v->nslots = n;
    return 0;
}

/* Order of two entries: ts, then position, then uuid. */
static int fan_cmp(const struct fan_entry *x, const struct fan_entry *y)
{
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return memcmp(x->uuid, y->uuid, 16);
}

/* qsort of entry indices needs the view: sorting runs on the loop thread
 * only, one at a time. */
static const struct fan_entry *fan_sort_entries;

static int fan_cmp_idx(const void *a, const void *b)
{
    return fan_cmp(&fan_sort_entries[*(const uint32_t *)a],
                   &fan_sort_entries[*(const uint32_t *)b]);
}

/* The value of a lower-case hex digit, or -1. */
static int fan_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The record's trace (PM_TRACE_LEN hex digits, borrowed, or NULL) into
 * out[16]; all zero when there is none or it is not lower-case hex. */
static void fan_trace_parse(const char *trace, uint8_t out[16])
{
    size_t i;

    memset(out, 0, 16);
    for (i = 0; trace && i < 16; i++) {
        int hi = fan_hex(trace[2 * i]), lo = fan_hex(trace[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            memset(out, 0, 16);
            return;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

/* Whether a trace id of 16 bytes is set. */
static bool fan_trace_set(const uint8_t trace[16])
{
    size_t i;

    for (i = 0; i < 16; i++)
        if (trace[i])
            return true;
    return false;
}

/* Add (or fold in) one record read from an instance at position pos, held
 * by the source whose bit is holder (0: none). 0, or -1 when out of
 * memory. Records without a canonical uuid are skipped. */
static int fan_add(struct fan_view *v, const struct pm_record *r, uint64_t pos, uint64_t holder)
{
    uint8_t uuid[16];
    struct fan_entry *e;
    size_t lit, mask, k;
    long at;

    if (uid_parse(r->uuid, uuid) != 0)
        return 0;
    at = fan_find(v, uuid);
    if (at >= 0) {
        e = &v->entries[at];
        e->holders |= holder;
        if (!fan_trace_set(e->trace))
            fan_trace_parse(r->trace, e->trace);
        if (pos < e->pos) {
            e->pos = pos;
            /* a placed entry may now belong before its neighbour */
            if ((size_t)at < v->placed && e->rank > 0 &&
                v->entries[v->order[e->rank - 1]].ts == e->ts)
                v->resort = true;
        }
        return 0;
    }
    lit = jw_string_len(r->msg, r->len);
    if (lit > UINT32_MAX || v->count >= UINT32_MAX - 1 || fan_hash_reserve(v) != 0)
        return -1;
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        struct fan_entry *grown = realloc(v->entries, cap * sizeof(*grown));
        uint32_t *order = grown ? realloc(v->order, cap * sizeof(*order)) : NULL;

        if (grown)
            v->entries = grown;
        if (!order)
            return -1;
        v->order = order;
        v->cap = cap;
    }
    if (v->text_cap - v->text_len < lit) {
        size_t cap = v->text_cap ? v->text_cap : 64 * 1024;
        char *grown;

        while (cap - v->text_len < lit)
            cap *= 2;
        grown = realloc(v->text, cap);
        if (!grown)
            return -1;
        v->text = grown;
        v->text_cap = cap;
    }
    jw_string_put(v->text + v->text_len, r->msg, r->len);
    e = &v->entries[v->count];
    memcpy(e->uuid, uuid, 16);
    fan_trace_parse(r->trace, e->trace);
    e->ts = r->ts;
    e->pos = pos;
    e->off = v->text_len;
    e->len = (uint32_t)lit;
    e->rank = 0;
    e->holders = holder;
    v->text_len += lit;
    mask = v->nslots - 1;
    for (k = fan_hash(uuid) & mask; v->slots[k]; k = (k + 1) & mask)
        ;
    v->slots[k] = (uint32_t)(v->count + 1);
    v->count++;
    return 0;
}

/* Place the entries added since the last call: appended to the order (and
 * the cache extended) when they all sort after it, else merged in and the
 * cache rebuilt. 0, or -1 when out of memory (the cache is then rebuilt at
 * the next call). */
static int fan_place(struct fan_view *v)
{
    size_t first = v->placed, i;
    bool append;

    if (first == v->count && !v->resort)
        return 0;
    for (i = first; i < v->count; i++)
        v->order[i] = (uint32_t)i;
    fan_sort_entries = v->entries;
    qsort(v->order + first, v->count - first, sizeof(*v->order), fan_cmp_idx);
    append = !v->resort && (first == 0 || fan_cmp(&v->entries[v->order[first - 1]],
                                                  &v->entries[v->order[first]]) < 0);
    if (!append) {
        /* rare: an older timestamp, or a tie that moved; one sort of all */
        qsort(v->order, v->count, sizeof(*v->order), fan_cmp_idx);
    }
    for (i = append ? first : 0; i < v->count; i++)
        v->entries[v->order[i]].rank = (uint32_t)i;
    v->placed = v->count;
    v->resort = false;
    if (append && v->nsegs > 0)
        return fan_cache_extend(v, first);
    return fan_cache_rebuild(v);
}

/* ---------------------------------------------------------------------- */
/* rounds */

/* The length of what an error text names: "<service> <host:port>" or
 * "facade" before the first ": ", else the whole text (e.g. "no passing
 * logging-service instance known"). */
static size_t fan_error_subject_len(const char *text)
{
    const char *sep = strstr(text, ": ");

    return sep ? (size_t)(sep - text) : strlen(text);
}

/* Whether one of rd's errors already names what text names. */
static bool fan_round_names(const struct fan_round *rd, const char *text)
{
    size_t n = fan_error_subject_len(text), i;

    for (i = 0; i < rd->nerrors; i++)
        if (fan_error_subject_len(rd->errors[i]) == n && memcmp(rd->errors[i], text, n) == 0)
            return true;
    return false;
}

static void fan_round_error(struct fan_round *rd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether the round before had exactly this error. */
static bool fan_round_had(const struct fan_round *rd, const char *text)
{
    size_t i;

    for (i = 0; i < rd->nbefore; i++)
        if (strcmp(rd->before[i], text) == 0)
            return true;
    return false;
}

/* Log the formatted text and add it to the round's errors, unless an error
 * of the round already names the same instance (or part): each appears
 * once in "errors", with the first reason (an instance listed twice by
 * discovery, or failing twice in one round). Rounds also run for repair
 * every few seconds, so an error the round before already had is logged at
 * debug level only: a WARN says when it begins, not every round. */
static void fan_round_error(struct fan_round *rd, const char *fmt, ...)
{
    char buf[FAN_ERROR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fan_round_had(rd, buf))
        log_debug("merged view sync: %s", buf);
    else
        log_warn("merged view sync: %s", buf);
    if (fan_round_names(rd, buf))
        return;
    if (rd->nerrors < FAN_ERRORS_MAX) {
        rd->errors[rd->nerrors] = strdup(buf);
        if (rd->errors[rd->nerrors])
            rd->nerrors++;
    }
}

static void fan_round_start(struct fan_view *v);

/* The status a round earns: 200 when fewer instances are missing than
 * copies of a message (each acknowledged message is on min(replicas,
 * instances) of them, so one copy was read), else 206 when some instance
 * was read, else 502. */
static int fan_round_status(const struct fan_view *v, const struct fan_round *rd)
{
    size_t replicas = v->opt.replicas > 0 ? (size_t)v->opt.replicas : 1;
    size_t copies = rd->listed < replicas ? rd->listed : replicas;

    if (rd->listed > 0 && rd->listed - rd->answered < copies)
        return 200;
    return rd->answered > 0 ? 206 : 502;
}

/* The round is over: place the new entries, tell its waiters, start the
 * next round for those who came meanwhile. */
static void fan_round_end(struct fan_view *v)
{
    struct fan_round *rd = &v->round;
    struct fan_waiter *w = rd->waiters, *next;
    struct fan_round_info info;
    size_t i;

    if (fan_place(v) != 0)
        fan_round_error(rd, "facade: out of memory building the list");
    v->last_complete = rd->distinct > 0 && rd->answered == rd->distinct;
    if (v->last_complete)
        v->last_listed = rd->listed_mask;
    info.listed = rd->listed;
    info.answered = rd->answered;
    info.complete = v->last_complete;
    info.status = fan_round_status(v, rd);
    info.errors = (const char *const *)rd->errors;
    info.nerrors = rd->nerrors;
    rd->waiters = NULL;
    for (; w; w = next) {
        next = w->next;
        w->fn(&info, w->arg);
        free(w);
    }
    for (i = 0; i < rd->nbefore; i++)
        free(rd->before[i]);
    memcpy(rd->before, rd->errors, rd->nerrors * sizeof(rd->errors[0]));
    rd->nbefore = rd->nerrors;
    rd->nerrors = 0;
    rd->active = false;
    if (v->next_waiters)
        fan_round_start(v);
}

static void fan_round_leg_done(struct fan_view *v)
{
    if (--v->round.outstanding == 0)
        fan_round_end(v);
}

static void fan_page_done(const struct hc_response *resp, void *arg);

/* Ask source s for the page after s->pos. 0, or -1 (named in errors). */
static int fan_page_ask(struct fan_view *v, struct fan_source *s)
{
    struct hc_request req;
    char url[LIM_HOST_MAX + 96], tp[TRC_PARENT_LEN + 1];
    size_t limit = v->opt.page_limit ? v->opt.page_limit : LIM_PAGE_MAX;

    snprintf(url, sizeof(url),
             strchr(s->host, ':') ? "http://[%s]:%d%s?after=%" PRIu64 "&limit=%zu"
                                  : "http://%s:%d%s?after=%" PRIu64 "&limit=%zu",
             s->host, s->port, PM_PATH, s->pos, limit);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.timeout_ms = v->opt.timeout_ms > 0 ? v->opt.timeout_ms : LIM_CALL_TIMEOUT_MS;
    req.connect_timeout_ms = LIM_CONNECT_TIMEOUT_MS;
    req.token = v->opt.token;
    trc_format_child(v->round.call_trace, tp);
    req.traceparent = tp;
    s->asked = s->pos;
    s->call = hc_send(v->hc, &req, fan_page_done, s);
    if (!s->call) {
        /* a local failure: not the instance's, but its breaker admitted it */
        up_record(v->ups, s->up, true, 0);
        fan_round_error(&v->round, "%s %s: request could not be started", PM_SERVICE, s->key);
        return -1;
    }
    return 0;
}

/* What fan_page_done's decoding callback needs. */
struct fan_page_ctx {
    struct fan_view *v;
    struct fan_source *s;
    const struct pm_page *page; /* epoch filled before the first record */
    bool stale;                 /* the page is of another epoch than asked */
    bool checked;               /* fan_page_epoch ran for this page */
};

/* The holders bit of s, or 0 when it has no slot. */
static uint64_t fan_source_bit(const struct fan_source *s)
{
    return s->slot == FAN_NO_SLOT ? 0 : 1ULL << s->slot;
}

/* Clear bit from the holders of every entry: what a source held before
 * it restarted (or was forgotten) is no longer known to be there. */
static void fan_forget_holder(struct fan_view *v, uint64_t bit)
{
    size_t i;

    if (!bit)
        return;
    for (i = 0; i < v->count; i++)
        v->entries[i].holders &= ~bit;
}

/* Once per page, before anything of it is folded in: a page under another
 * epoch than the one s was read under is a new store (the instance
 * restarted, maybe empty), so s holds nothing the view knows of yet. */
static void fan_page_epoch(struct fan_page_ctx *c)
{
    if (c->checked)
        return;
    c->checked = true;
    if (c->s->epoch[0] && strcmp(c->page->epoch, c->s->epoch) != 0)
        fan_forget_holder(c->v, fan_source_bit(c->s));
}

static int fan_page_record(const struct pm_record *rec, size_t index, void *arg)
{
    struct fan_page_ctx *c = arg;

    if (index == 0) {
        c->stale = c->s->asked > 0 && strcmp(c->page->epoch, c->s->epoch) != 0;
        fan_page_epoch(c);
    }
    if (c->stale)
        return 0;
    return fan_add(c->v, rec, c->s->asked + index, fan_source_bit(c->s));
}

static void fan_page_read(const struct hc_response *resp, struct fan_source *s);

/* One page answer of a source: read in the round's trace. */
static void fan_page_done(const struct hc_response *resp, void *arg)
{
    struct fan_source *s = arg;
    char prev[LOG_TRACE_MAX + 1];

    log_trace_set(s->view->round.trace, prev);
    fan_page_read(resp, s);
    log_trace_set(prev, NULL);
}

/* fan_page_done's work. */
static void fan_page_read(const struct hc_response *resp, struct fan_source *s)
{
    struct fan_view *v = s->view;
    struct pm_page page;
    struct fan_page_ctx ctx = {v, s, &page, false, false};
    char err[256];

    s->call = NULL;
    if (resp->error == HC_ETOOBIG) {
        /* our limit, not the instance's failure: its breaker is not charged */
        up_record(v->ups, s->up, true, resp->elapsed_ms);
        fan_round_error(&v->round, "%s %s: answer over the facade's %d-byte limit", PM_SERVICE,
                        s->key, HC_RESPONSE_MAX);
        goto done;
    }
    up_record(v->ups, s->up, resp->error == HC_OK && resp->status < 500, resp->elapsed_ms);
    if (resp->error != HC_OK) {
        fan_round_error(&v->round, "%s %s: %s", PM_SERVICE, s->key, resp->error_msg);
        goto done;
    }
    if (resp->status != 200) {
        fan_round_error(&v->round, "%s %s: HTTP %ld", PM_SERVICE, s->key, resp->status);
        goto done;
    }
    if (pm_page_decode(resp->body, resp->body_len, fan_page_record, &ctx, &page, err,
                       sizeof(err)) != 0) {
        fan_round_error(&v->round, "%s %s: %s", PM_SERVICE, s->key, err);
        goto done;
    }
    if (page.count == 0) {
        ctx.stale = s->asked > 0 && strcmp(page.epoch, s->epoch) != 0;
        fan_page_epoch(&ctx);
    }
    if (ctx.stale || (s->asked == 0 && strcmp(page.epoch, s->epoch) != 0)) {
        if (s->epoch[0])
            log_info("%s %s: new store epoch %s: reading it again in full", PM_SERVICE, s->key,
                     page.epoch);
        memcpy(s->epoch, page.epoch, sizeof(s->epoch));
        if (ctx.stale) {
            s->pos = 0;
            if (fan_page_ask(v, s) == 0)
                return;
            goto done;
        }
    }
    s->pos = page.next;
    if (page.more && page.next > s->asked) {
        /* the rest of a full read: the breaker admitted the round's call */
        if (fan_page_ask(v, s) == 0)
            return;
        goto done;
    }
    v->round.answered++;
done:
    fan_round_leg_done(v);
}

/* The messages-service answer. */
static void fan_message_done(const struct hc_response *resp, void *arg)
{
    struct fan_view *v = arg;
    struct fan_round *rd = &v->round;
    json_t *root = NULL, *m = NULL;
    char prev[LOG_TRACE_MAX + 1];

    log_trace_set(rd->trace, prev);
    rd->msg_call = NULL;
    up_record(v->ups, rd->msg_up, resp->error == HC_OK && resp->status < 500, resp->elapsed_ms);
    if (resp->error == HC_OK && resp->status == 200) {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
        m = json_object_get(root, PG_F_MESSAGE);
    }
    if (m) {
        json_decref(v->message);
        v->message = json_incref(m);
    } else if (resp->error != HC_OK) {
        fan_round_error(rd, "%s %s: %s", PG_SERVICE, rd->msg_up->key, resp->error_msg);
    } else {
        fan_round_error(rd, "%s %s: HTTP %ld", PG_SERVICE, rd->msg_up->key, resp->status);
    }
    json_decref(root);
    fan_round_leg_done(v);
    log_trace_set(prev, NULL);
}

/* Give s a holders slot if one is free, or can be freed by forgetting the
 * source least recently listed (not in the round begun, none in flight).
 * A source given a slot after it was read is read again in full, so its
 * bit is set on everything it holds. */
static void fan_source_claim(struct fan_view *v, struct fan_source *s)
{
    struct fan_source *o, *tmp, *old = NULL;
    int slot;

    if (s->slot != FAN_NO_SLOT)
        return;
    if (v->slots_used == UINT64_MAX) {
        HASH_ITER (hh, v->sources, o, tmp)
            if (o != s && o->slot != FAN_NO_SLOT && !o->call && o->listed_in < v->rounds &&
                (!old || o->listed_in < old->listed_in))
                old = o;
        if (!old)
            return;
        log_info("%s %s: not listed since round %" PRIu64 ": forgotten, slot given to %s",
                 PM_SERVICE, old->key, old->listed_in, s->key);
        fan_forget_holder(v, fan_source_bit(old));
        v->slots_used &= ~fan_source_bit(old);
        HASH_DEL(v->sources, old);
        free(old);
    }
    slot = __builtin_ctzll(~v->slots_used);
    s->slot = slot;
    v->slots_used |= 1ULL << slot;
    if (s->epoch[0]) {
        s->epoch[0] = '\0';
        s->pos = 0;
    }
}

/* The source record of instance in (created on first sight), or NULL. */
static struct fan_source *fan_source_get(struct fan_view *v, const struct disc_instance *in)
{
    struct fan_source *s = NULL;
    char key[sizeof(s->key)];

    snprintf(key, sizeof(key), "%s:%d", in->host, in->port);
    HASH_FIND_STR(v->sources, key, s);
    if (s)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->up = up_get(v->ups, PM_SERVICE, in->host, in->port);
    if (!s->up) {
        free(s);
        return NULL;
    }
    memcpy(s->key, key, sizeof(key));
    snprintf(s->host, sizeof(s->host), "%s", in->host);
    s->port = in->port;
    s->view = v;
    s->slot = FAN_NO_SLOT;
    HASH_ADD_STR(v->sources, key, s);
    return s;
}

/* Ask the messages-service instance whose turn it is. */
static void fan_message_ask(struct fan_view *v, const struct disc_instance *in)
{
    struct fan_round *rd = &v->round;
    struct hc_request req;
    char url[LIM_HOST_MAX + 64], tp[TRC_PARENT_LEN + 1];

    rd->msg_up = up_get(v->ups, PG_SERVICE, in->host, in->port);
    if (!rd->msg_up)
        return;
    if (!up_allow(v->ups, rd->msg_up)) {
        fan_round_error(rd, "%s %s: circuit breaker open", PG_SERVICE, rd->msg_up->key);
        return;
    }
    snprintf(url, sizeof(url), strchr(in->host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s",
             in->host, in->port, PG_PATH);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.timeout_ms = v->opt.timeout_ms > 0 ? v->opt.timeout_ms : LIM_CALL_TIMEOUT_MS;
    req.connect_timeout_ms = LIM_CONNECT_TIMEOUT_MS;
    trc_format_child(rd->call_trace, tp);
    req.traceparent = tp;
    rd->msg_call = hc_send(v->hc, &req, fan_message_done, v);
    if (!rd->msg_call) {
        up_record(v->ups, rd->msg_up, true, 0);
        fan_round_error(rd, "%s %s: request could not be started", PG_SERVICE, rd->msg_up->key);
        return;
    }
    rd->outstanding++;
}

/* Begin a round for the waiters queued so far. */
static void fan_round_start(struct fan_view *v)
{
    struct fan_round *rd = &v->round;
    struct disc_instance *insts = malloc(DISC_INSTANCES_MAX * sizeof(*insts));
    struct fan_waiter *w;
    size_t n = 0, i;

    rd->active = true;
    rd->waiters = v->next_waiters;
    v->next_waiters = NULL;
    v->next_tail = &v->next_waiters;
    rd->listed = rd->answered = rd->distinct = 0;
    rd->listed_mask = 0;
    rd->outstanding = 1; /* held until every call is out */
    v->rounds++;
    rd->trace[0] = '\0';
    for (w = rd->waiters; w && !rd->trace[0]; w = w->next)
        memcpy(rd->trace, w->trace, sizeof(rd->trace));
    if (rd->trace[0])
        memcpy(rd->call_trace, rd->trace, sizeof(rd->call_trace));
    else
        trc_random_hex(rd->call_trace, TRC_TRACE_ID_LEN);
    if (!insts) {
        fan_round_error(rd, "facade: out of memory");
        goto out;
    }
    n = v->list(v->list_arg, PM_SERVICE, insts, DISC_INSTANCES_MAX);
    rd->listed = n;
    if (n == 0)
        fan_round_error(rd, "no passing %s instance known", PM_SERVICE);
    for (i = 0; i < n; i++) {
        struct fan_source *s = fan_source_get(v, &insts[i]);

        if (!s) {
            fan_round_error(rd, "facade: out of memory");
            continue;
        }
        if (s->listed_in == v->rounds || s->call)
            continue; /* listed twice (two registrations): read once */
        s->listed_in = v->rounds;
        fan_source_claim(v, s);
        rd->distinct++;
        rd->listed_mask |= fan_source_bit(s);
        if (!up_allow(v->ups, s->up)) {
            fan_round_error(rd, "%s %s: circuit breaker open", PM_SERVICE, s->key);
            continue;
        }
        if (fan_page_ask(v, s) == 0)
            rd->outstanding++;
    }
    n = v->list(v->list_arg, PG_SERVICE, insts, DISC_INSTANCES_MAX);
    if (n == 0)
        fan_round_error(rd, "no passing %s instance known", PG_SERVICE);
    else
        fan_message_ask(v, &insts[v->messages_rr++ % n]);
out:
    free(insts);
    fan_round_leg_done(v);
}

int fan_sync(struct fan_view *v, fan_synced_fn fn, void *arg)
{
    return fan_sync_traced(v, fn, arg, NULL);
}

int fan_sync_traced(struct fan_view *v, fan_synced_fn fn, void *arg, const char *trace)
{
    struct fan_waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return -1;
    w->fn = fn;
    w->arg = arg;
    if (trace && trc_trace_id_valid(trace))
        memcpy(w->trace, trace, sizeof(w->trace));
    *v->next_tail = w;
    v->next_tail = &w->next;
    if (!v->round.active)
        fan_round_start(v);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* GET /facade */

/* The cursor of entry e: "<ts>.<pos>.<uuid as 32 hex>". */
static void fan_cursor(const struct fan_entry *e, char out[FAN_CURSOR_MAX])
{
    int n = snprintf(out, FAN_CURSOR_MAX, "%" PRId64 ".%" PRIu64 ".", e->ts, e->pos);
    size_t i;

    for (i = 0; i < 16 && n > 0 && (size_t)n + 2 < FAN_CURSOR_MAX; i++)
        n += snprintf(out + n, FAN_CURSOR_MAX - (size_t)n, "%02x", e->uuid[i]);
}

/* Read a cursor into a key. 0, or -1 when it is not one. */
static int fan_cursor_parse(const char *s, struct fan_entry *key)
{
    char hex[33], uuid[37];
    long long ts;
    unsigned long long pos;
    int used = 0;

    if (sscanf(s, "%lld.%llu.%32[0-9a-f]%n", &ts, &pos, hex, &used) != 3 || s[used] != '\0' ||
        strlen(hex) != 32 || s[0] == '-')
        return -1;
    snprintf(uuid, sizeof(uuid), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    memset(key, 0, sizeof(*key));
    key->ts = ts;
    key->pos = pos;
    return uid_parse(uuid, key->uuid);
}

/* The first rank whose entry sorts after key. */
static size_t fan_rank_after(const struct fan_view *v, const struct fan_entry *key)
{
    size_t lo = 0, hi = v->placed;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (fan_cmp(&v->entries[v->order[mid]], key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A GET /facade waiting for its round. */
struct fan_get {
    struct fan_view *v;
    struct hs_req *req;
    bool paged;           /* ?limit= or ?after= given: one page */
    size_t limit;         /* messages of the page */
    bool has_key;         /* the page begins after key (else at the start) */
    struct fan_entry key; /* the cursor given with after= */
};

/* json_dump_callback sink into an evbuffer. */
static int fan_dump(const char *data, size_t n, void *arg) { return evbuffer_add(arg, data, n); }

/* Answer g from the view after its round. */
static void fan_get_synced(const struct fan_round_info *info, void *arg)
{
    struct fan_get *g = arg;
    struct fan_view *v = g->v;
    struct evbuffer *out = hs_req_output(g->req);
    json_t *errors = NULL;
    char cursor[FAN_CURSOR_MAX];
    size_t i, from = 0, to = v->placed;
    int bad = evbuffer_add(out, "{\"logs\":[", 9) != 0;

    v->pending_gets--;
    if (!g->paged) {
        for (i = 0; i < v->nsegs && !bad; i++) {
            struct fan_seg *s = v->segs[i];

            s->refs++;
            if (evbuffer_add_reference(out, s->data, s->len, fan_seg_release, s) != 0) {
                s->refs--;
                bad = 1;
            }
        }
    } else {
        from = g->has_key ? fan_rank_after(v, &g->key) : 0;
        to = v->placed - from < g->limit ? v->placed : from + g->limit;
        for (i = from; i < to && !bad; i++) {
            const struct fan_entry *e = &v->entries[v->order[i]];

            bad |= (i > from && evbuffer_add(out, ",", 1) != 0) ||
                   evbuffer_add(out, v->text + e->off, e->len) != 0;
        }
    }
    bad |= evbuffer_add(out, "],\"message\":", 12) != 0;
    bad |= json_dump_callback(v->message ? v->message : json_null(), fan_dump, out,
                              JSON_COMPACT | JSON_ENCODE_ANY) != 0;
    if (info->nerrors > 0) {
        errors = json_array();
        for (i = 0; i < info->nerrors && errors; i++)
            json_array_append_new(errors, json_string(info->errors[i]));
        bad |= !errors || evbuffer_add(out, ",\"errors\":", 10) != 0 ||
               json_dump_callback(errors, fan_dump, out, JSON_COMPACT) != 0;
        json_decref(errors);
    }
    if (g->paged) {
        if (to > from)
            fan_cursor(&v->entries[v->order[to - 1]], cursor);
        else if (g->has_key)
            fan_cursor(&g->key, cursor);
        bad |= evbuffer_add_printf(out, ",\"next\":") < 0;
        if (to > from || g->has_key)
            bad |= evbuffer_add_printf(out, "\"%s\"", cursor) < 0;
        else
            bad |= evbuffer_add_printf(out, "null") < 0;
        bad |= evbuffer_add_printf(out, ",\"more\":%s", to < v->placed ? "true" : "false") < 0;
    }
    bad |= evbuffer_add(out, "}", 1) != 0;
    if (bad) {
        evbuffer_drain(out, evbuffer_get_length(out));
        hs_reply_oom(g->req);
    } else {
        hs_reply_buffer(g->req, info->status, "application/json", NULL);
    }
    free(g);
}

void fan_serve(struct fan_view *v, struct hs_req *req, const char *trace)
{
    const char *after = hs_req_query(req, "after"), *limit = hs_req_query(req, "limit");
    struct fan_get *g = calloc(1, sizeof(*g));
    char *end = NULL;
    unsigned long n = LIM_PAGE_DEFAULT;

    if (!g) {
        hs_reply_oom(req);
        return;
    }
    g->v = v;
    g->req = req;
    g->paged = after || limit;
    if (limit) {
        n = strtoul(limit, &end, 10);
        if (!(limit[0] >= '0' && limit[0] <= '9') || *end != '\0' || n < 1 || n > LIM_PAGE_MAX) {
            free(g);
            fr_reply_error(req, 400, NULL, 0, "query 'limit' must be an integer from 1 to %d",
                           LIM_PAGE_MAX);
            return;
        }
    }
    g->limit = n;
    if (after && after[0]) {
        if (fan_cursor_parse(after, &g->key) != 0) {
            free(g);
            fr_reply_error(req, 400, NULL, 0,
                           "query 'after' must be the \"next\" cursor of a previous answer");
            return;
        }
        g->has_key = true;
    }
    v->pending_gets++;
    if (fan_sync_traced(v, fan_get_synced, g, trace) != 0) {
        v->pending_gets--;
        free(g);
        hs_reply_oom(req);
    }
}

size_t fan_pending(const struct fan_view *v) { return v->pending_gets; }

void fan_set_replicas(struct fan_view *v, int replicas)
{
    if (replicas >= 1)
        v->opt.replicas = replicas;
}

/* ---------------------------------------------------------------------- */

struct fan_view *fan_new(struct hc_client *hc, struct up_table *ups, fan_list_fn list,
                         void *list_arg, const struct fan_options *opt)
{
    struct fan_view *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->hc = hc;
    v->ups = ups;
    v->list = list;
    v->list_arg = list_arg;
    if (opt)
        v->opt = *opt;
    v->next_tail = &v->next_waiters;
    return v;
}

void fan_free(struct fan_view *v)
{
    struct fan_source *s, *tmp;
    struct fan_waiter *w, *next;
    size_t i;

    if (!v)
        return;
    HASH_ITER (hh, v->sources, s, tmp) {
        HASH_DEL(v->sources, s);
        hc_cancel(s->call);
        free(s);
    }
    hc_cancel(v->round.msg_call);
    for (w = v->round.waiters; w; w = next) {
        next = w->next;
        free(w->fn == fan_get_synced ? w->arg : NULL);
        free(w);
    }
    for (w = v->next_waiters; w; w = next) {
        next = w->next;
        free(w->fn == fan_get_synced ? w->arg : NULL);
        free(w);
    }
    for (i = 0; i < v->round.nerrors; i++)
        free(v->round.errors[i]);
    for (i = 0; i < v->round.nbefore; i++)
        free(v->round.before[i]);
    fan_cache_clear(v);
    json_decref(v->message);
    free(v->entries);
    free(v->order);
    free(v->slots);
    free(v->text);
    free(v);
}

size_t fan_count(const struct fan_view *v) { return v->placed; }

const char *fan_at(const struct fan_view *v, size_t i, size_t *len)
{
    const struct fan_entry *e;

    if (i >= v->placed)
        return NULL;
    e = &v->entries[v->order[i]];
    *len = e->len;
    return v->text + e->off;
}

int fan_lookup(const struct fan_view *v, const char *uuid, const char *msg, size_t len)
{
    uint8_t key[16];
    const struct fan_entry *e;
    char *lit = NULL;
    size_t n;
    long at;
    int rc;

    if (uid_parse(uuid, key) != 0)
        return FAN_LOOKUP_ERROR;
    at = fan_find(v, key);
    if (at < 0)
        return FAN_ABSENT;
    e = &v->entries[at];
    n = jw_string_len(msg, len);
    if (n != e->len)
        return FAN_OTHER;
    lit = malloc(n);
    if (!lit)
        return FAN_LOOKUP_ERROR;
    jw_string_put(lit, msg, len);
    rc = memcmp(lit, v->text + e->off, n) == 0 ? FAN_SAME : FAN_OTHER;
    free(lit);
    return rc;
}

void fan_cache_stats(const struct fan_view *v, uint64_t *rebuilds, uint64_t *extends)
{
    *rebuilds = v->rebuilds;
    *extends = v->extends;
}

/* ---------------------------------------------------------------------- */
/* repair: under-replicated entries */

int fan_copies_wanted(const struct fan_view *v)
{
    int listed = __builtin_popcountll(v->last_listed);
    int replicas = v->opt.replicas > 0 ? v->opt.replicas : 1;

    if (!v->last_complete)
        return 0;
    return listed < replicas ? listed : replicas;
}

/* Whether e is held by fewer listed instances than wanted. */
static bool fan_is_under(const struct fan_view *v, const struct fan_entry *e, int wanted)
{
    return __builtin_popcountll(e->holders & v->last_listed) < wanted;
}

size_t fan_under_count(const struct fan_view *v)
{
    int wanted = fan_copies_wanted(v);
    size_t n = 0, i;

    for (i = 0; wanted > 0 && i < v->count; i++)
        n += fan_is_under(v, &v->entries[i], wanted);
    return n;
}

int fan_under_next(const struct fan_view *v, size_t *cursor, struct fan_under *out)
{
    static const char hex[] = "0123456789abcdef";
    int wanted = fan_copies_wanted(v);
    const struct fan_entry *e = NULL;
    json_t *lit;
    size_t i, k = 0;

    while (wanted > 0 && *cursor < v->count) {
        const struct fan_entry *c = &v->entries[(*cursor)++];

        if (fan_is_under(v, c, wanted)) {
            e = c;
            break;
        }
    }
    if (!e)
        return 0;
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out->uuid[k++] = '-';
        out->uuid[k++] = hex[e->uuid[i] >> 4];
        out->uuid[k++] = hex[e->uuid[i] & 15];
    }
    out->uuid[k] = '\0';
    out->trace[0] = '\0';
    if (fan_trace_set(e->trace)) {
        for (i = 0; i < 16; i++) {
            out->trace[2 * i] = hex[e->trace[i] >> 4];
            out->trace[2 * i + 1] = hex[e->trace[i] & 15];
        }
        out->trace[32] = '\0';
    }
    out->ts = e->ts;
    out->holders = __builtin_popcountll(e->holders & v->last_listed);
    /* the literal is jw_string_put's encoding of the instance's text */
    lit = json_loadb(v->text + e->off, e->len, JSON_DECODE_ANY, NULL);
    out->len = json_string_length(lit);
    out->msg = json_is_string(lit) ? malloc(out->len + 1) : NULL;
    if (out->msg) {
        memcpy(out->msg, json_string_value(lit), out->len);
        out->msg[out->len] = '\0';
    }
    json_decref(lit);
    return out->msg ? 1 : -1;
}
