/* memory.c: the in-memory store backend, a uthash map of id -> document.
 * Nothing survives the process; it serves tests and a registry run without
 * persistence. A write applies to the map at once and cannot fail after it
 * was accepted; its completion is queued and called from the event loop
 * (an event made active on the first write of a turn), never from inside
 * the write call, so callers see the same contract as with SQLite.
 *
 * Shared mode (store_memory_open_shared), for the tests of replicas:
 * several stores on one group hold one map and one revision counter, as
 * registries on one etcd prefix do. The writes a store queues in one turn
 * are one batch, committed at the next revision (a new one as soon as
 * another store of the group committed in between). Every commit is
 * appended to the group's log; each store walks the log from its loop (its
 * kick event), in commit order: its own writes through their completions,
 * the others' through its follow function, store_revision then being the
 * commit's.
 *
 * Leases (shared mode): the group holds them, each with a timer on the
 * base of the store that granted it (through the group's clk_timers, so a
 * test may run them on virtual time). A lease lapses at its TTL unless
 * kept alive; its records are then deleted as one commit of the group at a
 * new revision, authored by no store, so every member, the granter too,
 * hears the deletions through its follow function. Lease completions run
 * from the store's kick, after the log walk of that turn. */
#include "core/clock.h"
#include "core/errbuf.h"
#include "store.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed allocation inside HASH_ADD leaves the element out (hh.tbl NULL)
 * instead of calling exit(): library code never decides to exit. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

struct mem_entry {
    char *id;  /* owned, NUL-terminated; the hash key */
    char *doc; /* owned, NUL-terminated at doc_len */
    size_t doc_len;
    uint64_t rev;  /* shared mode: the revision that last wrote it */
    int64_t lease; /* shared mode: the lease it is bound to; 0: none */
    UT_hash_handle hh;
};

/* A lease of a group. */
struct mem_lease {
    int64_t id;
    int64_t ttl_s;
    struct store_memory_group *g; /* borrowed */
    struct event *timer;          /* owned: the lapse */
    UT_hash_handle hh;
};

/* A lease completion waiting for the loop. */
struct mem_lease_op {
    struct mem_lease_op *next;
    store_lease_fn done;
    void *arg;
    int64_t lease, ttl_s;
};

struct mem_store;

/* One committed write of a group, in its log. */
struct mem_change {
    uint64_t rev;
    const struct mem_store *author; /* borrowed; compared only (may be closed since) */
    enum store_change kind;         /* STORE_CH_PUT or STORE_CH_DEL */
    char *id;                       /* owned */
    char *doc;                      /* owned; NULL for a DEL */
    size_t doc_len;
};

/* Below this many log entries every member has passed, the log is not
 * compacted (a memmove per compaction). */
#define MEM_LOG_SLACK 64

struct store_memory_group {
    struct mem_entry *entries; /* the one map */
    uint64_t revision;         /* of the last commit */
    struct mem_change *log;    /* owned array: the commits from log_first on */
    size_t log_n, log_cap;
    uint64_t log_first;         /* the position (from 0) of log[0] in the whole history */
    struct mem_store **members; /* owned array of borrowed stores */
    size_t nmembers, members_cap;
    struct mem_lease *leases;        /* uthash head, owned */
    int64_t last_lease;              /* the id of the last lease granted */
    const struct clk_timers *timers; /* borrowed; NULL: the real clock */
};

/* A completion waiting for the loop. */
struct mem_done {
    struct mem_done *next;
    store_done_fn done;
    void *arg;
};

struct mem_store {
    struct store base; /* must stay first: struct store * casts to this */
    struct mem_entry *entries;
    int loading;                         /* inside load(): calls back into the store are refused */
    struct event *kick;                  /* owned: runs the queued completions */
    struct mem_done *dones, **dones_end; /* FIFO of completions to call */
    size_t pending;                      /* completions queued, not yet called */
    /* shared mode only (group NULL otherwise) */
    struct store_memory_group *group; /* borrowed; must outlive the store */
    uint64_t cursor;                  /* log position of the next commit to walk */
    uint64_t batch_rev;               /* revision of this turn's batch; 0: none open */
    uint64_t cur_rev;                 /* what store_revision answers */
    store_change_fn follow;           /* NULL: not following (others' commits skipped) */
    void *follow_arg;
    struct event_base *ev;                 /* borrowed */
    struct mem_lease_op *lops, **lops_end; /* FIFO of lease completions to call */
};

/* Queue the completion of a write that was applied, and make sure the loop
 * calls it. 0, or -1 when out of memory (the caller undoes the write). */
static int mem_store_queue_done(struct mem_store *st, store_done_fn done, void *arg)
{
    struct mem_done *d = NULL;

    if (st->pending >= STORE_PENDING_MAX)
        return -1;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->done = done;
    d->arg = arg;
    *st->dones_end = d;
    st->dones_end = &d->next;
    st->pending++;
    if (st->kick && !event_pending(st->kick, EV_TIMEOUT, NULL))
        event_active(st->kick, EV_TIMEOUT, 0);
    return 0;
}

/* Call every queued completion in order. Completions may queue new writes:
 * those land in a fresh list and wait for the next run. */
static void mem_store_run_dones(struct mem_store *st)
{
    struct mem_done *d = st->dones;
    struct mem_done *next = NULL;

    st->dones = NULL;
    st->dones_end = &st->dones;
    for (; d; d = next) {
        next = d->next;
        st->pending--;
        if (d->done)
            d->done(d->arg, 0, NULL);
        free(d);
    }
}

static void mem_shared_walk(struct mem_store *st, uint64_t end, bool own_only);

/* Call every queued lease completion in order (those queued meanwhile
 * wait for the next run). */
static void mem_run_lease_ops(struct mem_store *st)
{
    struct mem_lease_op *op = st->lops;
    struct mem_lease_op *next = NULL;

    st->lops = NULL;
    st->lops_end = &st->lops;
    for (; op; op = next) {
        next = op->next;
        op->done(op->arg, 0, op->lease, op->ttl_s, NULL);
        free(op);
    }
}

/* The kick event: the loop's turn to call the completions (shared mode:
 * to walk the group's log as it is now, then the lease completions). */
static void mem_store_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mem_store *st = arg;

    (void)fd;
    (void)what;
    if (st->group) {
        mem_shared_walk(st, st->group->log_first + st->group->log_n, false);
        mem_run_lease_ops(st);
    } else {
        mem_store_run_dones(st);
    }
}

/* The map the store's records are in: its own, or its group's. */
static struct mem_entry **mem_store_map(struct mem_store *st)
{
    return st->group ? &st->group->entries : &st->entries;
}

/* Free one entry (already out of the hash). Accepts NULL. */
static void mem_entry_free(struct mem_entry *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->doc);
    free(e);
}

/* Copy doc_len bytes of doc into a new NUL-terminated buffer; caller frees.
 * NULL on allocation failure. */
static char *mem_store_dup(const char *doc, size_t doc_len)
{
    char *copy = NULL;

    if (doc_len == (size_t)-1)
        return NULL;
    copy = malloc(doc_len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, doc, doc_len);
    copy[doc_len] = '\0';
    return copy;
}

/* Take back the completion queued last (a write that failed after
 * queueing it). */
static void mem_store_unqueue_last(struct mem_store *st)
{
    struct mem_done **pp = &st->dones;

    while (*pp && (*pp)->next)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    free(*pp);
    *pp = NULL;
    st->dones_end = pp;
    st->pending--;
}

/* ---------------------------------------------------------------------- */
/* shared mode: the group's log */

/* Free what a log entry owns. */
static void mem_change_clear(struct mem_change *c)
{
    free(c->id);
    free(c->doc);
    c->id = c->doc = NULL;
}

/* Make the log entry after the last one ready for a write of id (doc:
 * doc_len bytes, NULL for a deletion; both copied), so that committing it
 * (mem_log_commit) cannot fail. An entry made ready before and never
 * committed (its write failed) is reused. 0, or -1 when out of memory. */
static int mem_log_prepare(struct store_memory_group *g, const char *id, const char *doc,
                           size_t doc_len)
{
    struct mem_change *c = NULL;

    if (g->log_n + 1 >= g->log_cap) {
        size_t cap = g->log_cap ? 2 * g->log_cap : 64;
        struct mem_change *log = realloc(g->log, cap * sizeof(*log));

        if (!log)
            return -1;
        memset(log + g->log_cap, 0, (cap - g->log_cap) * sizeof(*log));
        g->log = log;
        g->log_cap = cap;
    }
    c = &g->log[g->log_n];
    mem_change_clear(c);
    c->id = strdup(id);
    c->doc = doc ? mem_store_dup(doc, doc_len) : NULL;
    c->doc_len = doc ? doc_len : 0;
    if (!c->id || (doc && !c->doc)) {
        mem_change_clear(c);
        return -1;
    }
    return 0;
}

/* The write made ready by mem_log_prepare was applied to the map: it is
 * committed, in st's batch of this turn (a new revision when none is open
 * or another store committed since), and e (the entry written; NULL for a
 * deletion) has that revision. Every store of the group walks to it. */
static void mem_log_commit(struct mem_store *st, enum store_change kind, struct mem_entry *e)
{
    struct store_memory_group *g = st->group;
    struct mem_change *c = NULL;
    size_t i;

    if (!g)
        return;
    if (st->batch_rev == 0 || st->batch_rev != g->revision)
        st->batch_rev = ++g->revision;
    c = &g->log[g->log_n++];
    c->rev = st->batch_rev;
    c->author = st;
    c->kind = kind;
    if (e)
        e->rev = c->rev;
    for (i = 0; i < g->nmembers; i++) {
        struct event *kick = g->members[i]->kick;

        if (!event_pending(kick, EV_TIMEOUT, NULL))
            event_active(kick, EV_TIMEOUT, 0);
    }
}

/* Drop the log entries every store of g has walked past, once there are
 * enough of them to be worth the move. */
static void mem_log_trim(struct store_memory_group *g)
{
    uint64_t low = g->log_first + g->log_n;
    size_t i, k;

    for (i = 0; i < g->nmembers; i++)
        if (g->members[i]->cursor < low)
            low = g->members[i]->cursor;
    k = (size_t)(low - g->log_first);
    if (k < MEM_LOG_SLACK)
        return;
    for (i = 0; i < k; i++)
        mem_change_clear(&g->log[i]);
    /* the ready entry after the last one moves too */
    memmove(g->log, g->log + k, (g->log_cap - k) * sizeof(*g->log));
    memset(g->log + g->log_cap - k, 0, k * sizeof(*g->log));
    g->log_n -= k;
    g->log_first += k;
}

/* Walk st along the group's log up to position end (exclusive), in commit
 * order: its own writes' completions, the others' commits to its follow
 * function (skipped while it does not follow), store_revision being each
 * one's during its call. own_only (a drain): stop after the last of its
 * own, so nothing of the others is told past what it waits for. The batch
 * of the turn is closed: later writes take a new revision. */
static void mem_shared_walk(struct mem_store *st, uint64_t end, bool own_only)
{
    struct store_memory_group *g = st->group;
    uint64_t p;

    st->batch_rev = 0;
    if (own_only) {
        uint64_t last = st->cursor;

        for (p = st->cursor; p < end; p++)
            if (g->log[p - g->log_first].author == st)
                last = p + 1;
        end = last;
    }
    while (st->cursor < end) {
        /* copied out: a callback may grow (move) the log */
        struct mem_change c = g->log[st->cursor - g->log_first];

        st->cursor++;
        st->cur_rev = c.rev;
        if (c.author == st) {
            struct mem_done *d = st->dones;

            if (!d)
                continue; /* cannot happen: one completion per own commit */
            st->dones = d->next;
            if (!st->dones)
                st->dones_end = &st->dones;
            st->pending--;
            if (d->done)
                d->done(d->arg, 0, NULL);
            free(d);
        } else if (st->follow) {
            st->follow(st->follow_arg, c.kind, c.id, c.doc, c.doc_len);
        }
    }
    mem_log_trim(g);
}

/* Take st out of its group's members. */
static void mem_group_leave(struct mem_store *st)
{
    struct store_memory_group *g = st->group;
    size_t i;

    for (i = 0; i < g->nmembers; i++) {
        if (g->members[i] == st) {
            g->members[i] = g->members[--g->nmembers];
            break;
        }
    }
    mem_log_trim(g);
}

/* Insert or replace id -> doc, bound to lease (0: none); both borrowed
 * and copied; done(arg) is queued for the loop. On failure the previous
 * document, if any, stays and done is not called. */
static int mem_store_put_any(struct store *base, const char *id, const char *doc, size_t doc_len,
                             int64_t lease, store_done_fn done, void *arg, char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *fresh = NULL;
    char *copy = NULL;
    int rc = -1;

    if (!id || !doc) {
        errbuf_set(err, errlen, "memory store: put: NULL id or doc");
        goto cleanup;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: put called during load");
        goto cleanup;
    }
    copy = mem_store_dup(doc, doc_len);
    if (!copy) {
        errbuf_set(err, errlen, "memory store: out of memory");
        goto cleanup;
    }
    if (st->group && mem_log_prepare(st->group, id, copy, doc_len) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory");
        goto cleanup;
    }
    /* Queued first: it is the step that may fail, and the map is not
     * changed yet. The completion runs on a later loop turn anyway. */
    if (mem_store_queue_done(st, done, arg) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory or too many writes waiting");
        goto cleanup;
    }

    HASH_FIND_STR(*mem_store_map(st), id, e);
    if (e) {
        free(e->doc);
        e->doc = copy;
        e->doc_len = doc_len;
        e->lease = lease;
        copy = NULL;
        mem_log_commit(st, STORE_CH_PUT, e);
        rc = 0;
        goto cleanup;
    }

    fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        goto oom;
    fresh->id = strdup(id);
    if (!fresh->id)
        goto oom;
    fresh->doc = copy;
    fresh->doc_len = doc_len;
    fresh->lease = lease;
    copy = NULL;
    HASH_ADD_KEYPTR(hh, *mem_store_map(st), fresh->id, strlen(fresh->id), fresh);
    if (!fresh->hh.tbl)
        goto oom;
    mem_log_commit(st, STORE_CH_PUT, fresh);
    fresh = NULL;
    rc = 0;
    goto cleanup;

oom:
    /* The completion was queued: take it back (it is the last one). */
    mem_store_unqueue_last(st);
    errbuf_set(err, errlen, "memory store: out of memory");
cleanup:
    mem_entry_free(fresh);
    free(copy);
    return rc;
}

static int mem_store_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                         store_done_fn done, void *arg, char *err, size_t errlen)
{
    return mem_store_put_any(base, id, doc, doc_len, 0, done, arg, err, errlen);
}

/* Remove id if present (borrowed); an unknown id is not an error. done(arg)
 * is queued for the loop. */
static int mem_store_del(struct store *base, const char *id, store_done_fn done, void *arg,
                         char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;

    if (!id) {
        errbuf_set(err, errlen, "memory store: del: NULL id");
        return -1;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: del called during load");
        return -1;
    }
    if (st->group && mem_log_prepare(st->group, id, NULL, 0) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory");
        return -1;
    }
    if (mem_store_queue_done(st, done, arg) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory or too many writes waiting");
        return -1;
    }
    HASH_FIND_STR(*mem_store_map(st), id, e);
    if (e)
        HASH_DEL(*mem_store_map(st), e);
    /* a deletion of an unknown id is a commit all the same (as on etcd) */
    mem_log_commit(st, STORE_CH_DEL, NULL);
    mem_entry_free(e);
    return 0;
}

/* Call fn on every entry in insertion order; id and doc are lent to fn for
 * the call only. -1 if fn asks to stop. */
static int mem_store_load(struct store *base, store_load_fn fn, void *arg, char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;
    int rc = 0;

    if (!fn) {
        errbuf_set(err, errlen, "memory store: load: NULL callback");
        return -1;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "memory store: load called during load");
        return -1;
    }
    if (st->pending > 0) {
        errbuf_set(err, errlen, "memory store: load called with writes queued");
        return -1;
    }
    st->loading = 1;
    HASH_ITER (hh, *mem_store_map(st), e, tmp) {
        st->cur_rev = e->rev; /* shared mode: the record's revision during the call */
        if (fn(e->id, e->doc, e->doc_len, arg) != 0) {
            errbuf_set(err, errlen, "memory store: load stopped by callback at id %s", e->id);
            rc = -1;
            break;
        }
    }
    st->loading = 0;
    if (st->group) {
        /* what was read is the state at the group's revision: follow from there */
        st->cur_rev = st->group->revision;
        st->cursor = st->group->log_first + st->group->log_n;
    }
    return rc;
}

/* Completions queued, not yet called. */
static size_t mem_store_pending(const struct store *base)
{
    return ((const struct mem_store *)base)->pending;
}

/* Call every queued completion now, on the caller's thread (shared mode:
 * with the others' commits before them delivered first, in order; none
 * after the last of its own). */
static void mem_store_drain(struct store *base)
{
    struct mem_store *st = (struct mem_store *)base;

    if (st->group)
        mem_shared_walk(st, st->group->log_first + st->group->log_n, true);
    else
        mem_store_run_dones(st);
}

/* Call the queued completions, then free every entry and the store. */
static void mem_store_close(struct store *base)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;

    mem_store_drain(base);
    if (st->group) {
        mem_run_lease_ops(st);
        mem_group_leave(st);
        if (st->kick)
            event_free(st->kick);
        free(st);
        return;
    }
    HASH_ITER (hh, st->entries, e, tmp) {
        HASH_DEL(st->entries, e);
        mem_entry_free(e);
    }
    if (st->kick)
        event_free(st->kick);
    free(st);
}

/* Shared mode: follow the group from the revision load read. */
static int mem_store_follow(struct store *base, store_change_fn fn, void *arg, char *err,
                            size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;

    if (!fn) {
        errbuf_set(err, errlen, "memory store: follow: NULL callback");
        return -1;
    }
    st->follow = fn;
    st->follow_arg = arg;
    return 0;
}

static uint64_t mem_store_revision(const struct store *base)
{
    return ((const struct mem_store *)base)->cur_rev;
}

/* A memory group always commits. */
static bool mem_store_writable(const struct store *base)
{
    (void)base;
    return true;
}

/* ---------------------------------------------------------------------- */
/* shared mode: leases */

/* Free a lease (already out of the group's table). */
static void mem_lease_free(struct mem_lease *l)
{
    if (!l)
        return;
    if (l->timer) {
        clk_timers_disarm(l->g->timers, l->timer);
        event_free(l->timer);
    }
    free(l);
}

/* Kick every member of g: a commit is in the log. */
static void mem_group_kick(struct store_memory_group *g)
{
    size_t i;

    for (i = 0; i < g->nmembers; i++)
        if (!event_pending(g->members[i]->kick, EV_TIMEOUT, NULL))
            event_active(g->members[i]->kick, EV_TIMEOUT, 0);
}

/* The lease's TTL ran out: every record bound to it is deleted, one
 * commit at a new revision that no store authored, and the lease is gone.
 * A record whose log entry cannot be made (out of memory) stays, unbound. */
static void mem_lease_lapse_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mem_lease *l = arg;
    struct store_memory_group *g = l->g;
    struct mem_entry *e = NULL, *tmp = NULL;
    uint64_t rev = 0;

    (void)fd;
    (void)what;
    HASH_ITER (hh, g->entries, e, tmp) {
        struct mem_change *c = NULL;

        if (e->lease != l->id)
            continue;
        e->lease = 0;
        if (mem_log_prepare(g, e->id, NULL, 0) != 0)
            continue;
        if (rev == 0)
            rev = ++g->revision;
        c = &g->log[g->log_n++];
        c->rev = rev;
        c->author = NULL;
        c->kind = STORE_CH_DEL;
        HASH_DEL(g->entries, e);
        mem_entry_free(e);
    }
    if (rev)
        mem_group_kick(g);
    HASH_DEL(g->leases, l);
    mem_lease_free(l);
}

/* Queue a lease completion on st's loop. 0, or -1 when out of memory. */
static int mem_lease_queue(struct mem_store *st, store_lease_fn done, void *arg, int64_t lease,
                           int64_t ttl_s)
{
    struct mem_lease_op *op = calloc(1, sizeof(*op));

    if (!op)
        return -1;
    op->done = done;
    op->arg = arg;
    op->lease = lease;
    op->ttl_s = ttl_s;
    *st->lops_end = op;
    st->lops_end = &op->next;
    if (!event_pending(st->kick, EV_TIMEOUT, NULL))
        event_active(st->kick, EV_TIMEOUT, 0);
    return 0;
}

/* A new lease of ttl_ms rounded up to whole seconds, its timer on st's
 * base. */
static int mem_lease_grant(struct store *base, int64_t ttl_ms, store_lease_fn done, void *arg,
                           char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct store_memory_group *g = st->group;
    struct mem_lease *l = NULL;

    if (!done || ttl_ms <= 0) {
        errbuf_set(err, errlen, "memory store: lease grant: %s",
                   done ? "ttl must be positive" : "NULL callback");
        return -1;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        errbuf_set(err, errlen, "memory store: out of memory");
        return -1;
    }
    l->g = g;
    l->id = ++g->last_lease;
    l->ttl_s = (ttl_ms + 999) / 1000;
    l->timer = event_new(st->ev, -1, 0, mem_lease_lapse_cb, l);
    if (!l->timer || clk_timers_arm(g->timers, l->timer, l->ttl_s * 1000) != 0 ||
        mem_lease_queue(st, done, arg, l->id, l->ttl_s) != 0) {
        mem_lease_free(l);
        errbuf_set(err, errlen, "memory store: out of memory");
        return -1;
    }
    HASH_ADD(hh, g->leases, id, sizeof(l->id), l);
    return 0;
}

static int mem_store_put_leased(struct store *base, const char *id, const char *doc, size_t doc_len,
                                int64_t lease, store_done_fn done, void *arg, char *err,
                                size_t errlen)
{
    if (lease <= 0) {
        errbuf_set(err, errlen, "memory store: put: no lease");
        return -1;
    }
    return mem_store_put_any(base, id, doc, doc_len, lease, done, arg, err, errlen);
}

/* The lease's TTL starts again; the answer is its TTL, 0 when it is gone. */
static int mem_lease_keepalive(struct store *base, int64_t lease, store_lease_fn done, void *arg,
                               char *err, size_t errlen)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_lease *l = NULL;

    if (!done) {
        errbuf_set(err, errlen, "memory store: keepalive: NULL callback");
        return -1;
    }
    HASH_FIND(hh, st->group->leases, &lease, sizeof(lease), l);
    if (l && clk_timers_arm(st->group->timers, l->timer, l->ttl_s * 1000) != 0) {
        errbuf_set(err, errlen, "memory store: keepalive: cannot arm the timer");
        return -1;
    }
    if (mem_lease_queue(st, done, arg, lease, l ? l->ttl_s : 0) != 0) {
        errbuf_set(err, errlen, "memory store: out of memory");
        return -1;
    }
    return 0;
}

void store_memory_group_set_timers(struct store_memory_group *g, const struct clk_timers *t)
{
    g->timers = t;
}

static const struct store_ops mem_shared_ops = {
    .name = "memory",
    .put = mem_store_put,
    .del = mem_store_del,
    .load = mem_store_load,
    .pending = mem_store_pending,
    .drain = mem_store_drain,
    .close = mem_store_close,
    .follow = mem_store_follow,
    .revision = mem_store_revision,
    .writable = mem_store_writable,
    .lease_grant = mem_lease_grant,
    .put_leased = mem_store_put_leased,
    .lease_keepalive = mem_lease_keepalive,
};

static const struct store_ops mem_store_ops = {
    .name = "memory",
    .put = mem_store_put,
    .del = mem_store_del,
    .load = mem_store_load,
    .pending = mem_store_pending,
    .drain = mem_store_drain,
    .close = mem_store_close,
};

/* New empty memory store whose completions run on base (borrowed); NULL
 * only if out of memory. Caller closes it with store_close. */
struct store *store_memory_open(struct event_base *base)
{
    struct mem_store *st = NULL;

    if (!base)
        return NULL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->base.ops = &mem_store_ops;
    st->dones_end = &st->dones;
    st->lops_end = &st->lops;
    st->ev = base;
    st->kick = event_new(base, -1, 0, mem_store_kick_cb, st);
    if (!st->kick) {
        free(st);
        return NULL;
    }
    return &st->base;
}

struct store_memory_group *store_memory_group_new(void)
{
    return calloc(1, sizeof(struct store_memory_group));
}

void store_memory_group_free(struct store_memory_group *g)
{
    struct mem_entry *e = NULL;
    struct mem_entry *tmp = NULL;
    size_t i;

    if (!g)
        return;
    HASH_ITER (hh, g->entries, e, tmp) {
        HASH_DEL(g->entries, e);
        mem_entry_free(e);
    }
    for (i = 0; i < g->log_cap; i++)
        mem_change_clear(&g->log[i]);
    while (g->leases) {
        struct mem_lease *l = g->leases;

        HASH_DEL(g->leases, l);
        mem_lease_free(l);
    }
    free(g->log);
    free(g->members);
    free(g);
}

struct store *store_memory_open_shared(struct event_base *base, struct store_memory_group *g)
{
    struct mem_store *st = NULL;

    if (!g || g->nmembers == g->members_cap) {
        size_t cap = g && g->members_cap ? 2 * g->members_cap : 4;
        struct mem_store **m = g ? realloc(g->members, cap * sizeof(*m)) : NULL;

        if (!m)
            return NULL;
        g->members = m;
        g->members_cap = cap;
    }
    st = (struct mem_store *)store_memory_open(base);
    if (!st)
        return NULL;
    st->base.ops = &mem_shared_ops;
    st->group = g;
    st->cursor = g->log_first + g->log_n;
    st->cur_rev = g->revision;
    g->members[g->nmembers++] = st;
    return &st->base;
}
