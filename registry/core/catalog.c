/* catalog.c: the registry's domain (see catalog.h). Three indexes over one
 * set of instances:
 *   - by id: a uthash table, the owner of every instance;
 *   - by name and by type: groups holding only the passing instances in an
 *     array, so discovery picks one in O(1);
 *   - by ttl: buckets with a passing list and a critical list, each ordered
 *     by last heartbeat, so expiry only ever looks at list heads.
 * Beside them, the list of instances whose health the store does not have
 * yet ("dirty"), in the order the changes happened: reg_tick writes them, a
 * bounded number per tick, so neither a renewal nor a mass expiry writes
 * more than the store can take in one turn.
 *
 * The index: every committed change (a registration, a deregistration, an
 * expiry removal, a health change) takes the next number, and the observer
 * hears of it once it is applied. So that a restart never hands out a
 * number again, the store keeps a lease, the record REG_META_INDEX_ID: a
 * value the index has not reached yet, rewritten before the index could
 * reach it, and a restarted registry resumes from it. The lease is kept
 * ahead of the index by the changes that may be handed out before a new
 * lease is durable: the writes waiting for their commit (the lease is
 * queued before them, in the same turn, so the same batch carries both),
 * plus, for health changes, which take effect in memory at once without a
 * write (a tick's turns to critical, renewals' revivals), four per
 * instance: an instance changes at most twice per cleanup interval (turned
 * critical by a tick, revived by a renewal), and the lease each tick checks
 * covers the changes until the tick after next, so a lease may take a whole
 * interval to commit. It is rewritten with headroom to spare (at least
 * REG_INDEX_LEASE_MIN), so it costs one row every few thousand changes,
 * and a heartbeat that changes nothing never writes. A restart may thus
 * skip numbers, never repeat one. */
#include "catalog.h"

#include "../store/store.h"
#include "check.h"
#include "codec/uid.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>

/* Instances of one name or one type; items holds the passing ones. */
struct reg_group {
    char *key;                   /* owned */
    struct reg_instance **items; /* owned array of borrowed pointers */
    size_t n, cap;
    size_t members; /* instances referring to the group, any health, or waiting; items
                       always has room for all of them, so joining the passing ones
                       cannot fail */
    uint64_t rr;    /* round-robin cursor */
    UT_hash_handle hh;
};

/* What a bucket is found by: instances of one ttl and one grace share it,
 * so that both its lists stay ordered by deadline. */
struct reg_bucket_key {
    int64_t ttl_ms;
    int64_t grace_ms; /* critical this long: removed */
};

/* Instances sharing one ttl and grace, each list ordered by last heartbeat. */
struct reg_bucket {
    struct reg_bucket_key key;
    struct reg_instance *passing;  /* utlist DL head */
    struct reg_instance *critical; /* utlist DL head */
    size_t members;                /* instances in the lists, or waiting for their commit */
    UT_hash_handle hh;
};

/* Kept small: with 100k instances every byte counts 100k times. All the
 * strings share one allocation, strs: first one uint32_t offset (from strs)
 * per tag, then a key and a value offset per metadata pair, then
 * "id\0name\0host\0type\0", the tags and the pairs, each NUL-terminated. */
struct reg_instance {
    char *strs;                          /* owned */
    const char *id, *name, *host, *type; /* into strs */
    uint16_t tag_count, meta_count;      /* <= LIM_TAGS_MAX, LIM_META_MAX */
    int port;
    int32_t ttl_ms; /* 0: no TTL check */
    void *cache;    /* the API's (reg_instance_cache); freed by the codec */
    int64_t heartbeat_ms;
    int64_t ttl_change_ms;        /* since when ttl_health is what it is */
    uint64_t seq;                 /* registration order: larger for every attach */
    uint64_t create_index;        /* the index of its id's first registration (kept by a
                                 re-registration); at load, the index then */
    uint64_t modify_index;        /* the index of its last change (registration, health,
                                 maintenance) */
    struct reg_ext *ext;          /* owned; NULL: no check but the TTL one, no maintenance */
    unsigned char health;         /* enum reg_health: the worst of its checks and maintenance */
    unsigned char ttl_health;     /* REG_CRITICAL once the TTL lapsed, else REG_PASSING */
    unsigned char ttl_set;        /* the TTL check's status while it has not lapsed: what its
                                 last update said (a renewal: passing) */
    unsigned char removing;       /* an expiry removal waits for its commit */
    unsigned char stored;         /* the ttl_health the store has (or is queued), or
                                            REG_STORED_UNKNOWN after a failed write */
    unsigned char dirty : 1;      /* in r->dirty: its health is to be stored */
    unsigned char seen : 1;       /* shared store: put again since the running reset began */
    unsigned char lease_busy : 1; /* shared store: a grant or keepalive of its lease is out */
    unsigned char alive_seen : 1; /* shared store: its alive record put since the reset began */
    int64_t lease; /* shared store: the lease of its alive record (0: none known, or gone) */
    uint16_t busy; /* client writes of this id (re-registration, deregistration) in flight:
                      they decide what the store holds, so no health write meanwhile */
    struct reg_instance *dprev, *dnext;  /* in r->dirty */
    struct reg_bucket *bucket;           /* borrowed */
    struct reg_instance *prev, *next;    /* in bucket->passing or bucket->critical */
    struct reg_group *by_name, *by_type; /* borrowed */
    size_t name_pos, type_pos;           /* index in the groups' items while passing */
    UT_hash_handle hh;
};

/* A check given at registration (the default TTL check is none of these:
 * its state is the instance's ttl_health). One allocation holds id and
 * target. */
struct reg_check {
    char *id;           /* owned: "id\0target\0" */
    const char *target; /* into id */
    char *output;       /* owned; NULL: none yet */
    struct reg_check_spec_rules {
        int64_t interval_ms, timeout_ms, deregister_after_ms;
        struct chk_policy policy;
        unsigned char kind, initial;
    } rules;
    struct chk_state st;  /* http and tcp; a TTL one reads the instance's */
    unsigned char queued; /* shared store, leader: a status record of it is on its way */
    unsigned char want;   /* its status (enum reg_health) */
};

/* What only some instances have: checks beyond the default TTL one, and
 * maintenance. */
struct reg_ext {
    size_t n;                 /* checks */
    struct reg_check *checks; /* owned array */
    bool maint;
    int64_t maint_since_ms;
    char *maint_reason;                 /* owned; NULL when off */
    char *ttl_note;                     /* owned: the TTL check's output from its last
                                           update; NULL: none */
    bool reaped;                        /* some active check has deregister_after_ms */
    struct reg_instance *rprev, *rnext; /* in r->reaped, when reaped */
};

/* reg_instance.stored after a failed health write: write it again. */
#define REG_STORED_UNKNOWN 2

/* A write waiting for its commit: what to apply to memory when the store
 * says it is durable, and whom to tell. */
struct reg_write {
    struct reg_registry *r;  /* borrowed */
    struct reg_instance *in; /* owned, prepared (reserved, unlinked); NULL for a deletion */
    char id[LIM_ID_MAX + 1];
    bool expiry;               /* a removal by reg_tick, not a client's deregistration */
    bool counted;              /* a new id, counted in r->pending_new until completion */
    bool pinned;               /* counted in the busy of the id's instance */
    uint64_t seq;              /* maintenance: the instance it was asked for */
    struct reg_ext *maint_ext; /* owned: the maintenance part (no checks) to apply */
    char *doc;                 /* shared store, maintenance and checks: owned copy of the
                                  document written, applied as such when the instance it
                                  was asked for was replaced or removed by another replica
                                  in between (commit order: the store holds this one) */
    size_t doc_len;
    reg_done_fn done; /* NULL for expiry removals */
    void *arg;
};

struct reg_registry {
    struct store *store; /* borrowed */
    struct reg_options opt;
    struct reg_instance *by_id;  /* uthash head; owns the instances */
    struct reg_group *names;     /* uthash head */
    struct reg_group *types;     /* uthash head */
    struct reg_bucket *buckets;  /* uthash head */
    int64_t last_now;            /* the clock never goes back for us */
    size_t pending_new;          /* registrations of new ids waiting for their commit */
    uint64_t next_seq;           /* the seq of the last instance attached */
    struct reg_instance *dirty;  /* utlist DL head (dprev/dnext): health not stored yet */
    struct reg_instance *reaped; /* utlist DL head (ext->rprev/rnext): instances with an
                                    active check that removes them when critical too long */
    size_t active_checks;        /* http and tcp checks of the instances attached */
    unsigned int seed;
    struct reg_stats stats;
    uint64_t index;         /* of the last committed change */
    uint64_t lease;         /* the highest lease queued to the store */
    uint64_t lease_durable; /* the highest lease committed (or loaded) */
    size_t pending_adv;     /* queued writes that will advance the index */
    reg_wake_fn wake;       /* NULL: nobody to tell of deadlines */
    void *wake_arg;
    int64_t wake_at;    /* the deadline last told (INT64_MAX: none since the last tick) */
    uint64_t gen;       /* see reg_generation */
    bool shared;        /* the store is shared (it follows): the index is its revision */
    bool resetting;     /* a STORE_CH_RESET is running (see reg_apply_change) */
    bool leases;        /* shared, and the store has leases: they decide TTL checks */
    bool health_commit; /* the health change being emitted is a commit's (an alive record) */
    struct reg_alive_op *alive_ops;   /* utlist DL head: owned until their completion */
    struct reg_alive_orphan *orphans; /* uthash head, owned */
    size_t norphans;
    bool leader; /* shared store with leases: this replica leads (reg_set_leader) */
    struct reg_checkrec_load *loaded_checks; /* owned list: check records read by the load,
                                                applied by reg_load_finish */
};

/* A check record read by the load (the store's order is not ours: it may
 * come before its instance). */
struct reg_checkrec_load {
    struct reg_checkrec_load *next;
    char *id;  /* owned */
    char *doc; /* owned, NUL-terminated at len */
    size_t len;
};

/* A check record put by this replica (the leader), waiting for its
 * commit. */
struct reg_checkrec_write {
    struct reg_registry *r; /* borrowed */
    char *id;               /* owned */
    char *doc;              /* owned, NUL-terminated at len */
    size_t len;
};

/* Shared store: a lease grant, keepalive or alive-record put in flight
 * for the instance id (seq: the one it was asked for). */
struct reg_alive_op {
    struct reg_alive_op *prev, *next; /* in r->alive_ops */
    struct reg_registry *r;           /* borrowed; NULL once reg_free ran (the op then only
                                         frees itself when its completion comes) */
    char id[LIM_ID_MAX + 1];
    uint64_t seq;
    int64_t lease; /* the put's */
};

/* Shared store: an alive record whose instance is not here (yet). */
struct reg_alive_orphan {
    char *id; /* owned; the hash key */
    int64_t lease;
    UT_hash_handle hh;
};

/* A lease of the index waiting for its commit. */
struct reg_lease_write {
    struct reg_registry *r; /* borrowed */
    uint64_t value;
};

/* The real clock, in the reg_clock_fn shape. */
static int64_t reg_real_clock(void *arg)
{
    (void)arg;
    return clk_wall_ms();
}

/* Current time, clamped so that heartbeats stay ordered in their lists even
 * if the wall clock steps back. */
static int64_t reg_now(struct reg_registry *r)
{
    int64_t now = r->opt.clock(r->opt.clock_arg);

    if (now < r->last_now)
        now = r->last_now;
    r->last_now = now;
    return now;
}

/* How long an instance whose TTL check is critical stays before removal:
 * its TTL check's own deregister_after_ms when given, else the registry's. */
static int64_t reg_deregister_after(const struct reg_registry *r, int64_t ttl_ms, int64_t given_ms)
{
    if (given_ms > 0)
        return given_ms;
    return r->opt.deregister_after_ms > 0 ? r->opt.deregister_after_ms : 3 * ttl_ms;
}

/* ---------------------------------------------------------------------- */
/* the index */

/* The index a change applied now takes: the next number; on a shared
 * store the revision of the commit being applied (several changes of one
 * commit share it), and for a health change, which is this replica's own
 * and no commit, the current index. */
static uint64_t reg_take_index(struct reg_registry *r, enum reg_event_type type)
{
    uint64_t rev = 0;

    if (!r->shared)
        return ++r->index;
    if (type != REG_EV_HEALTH || r->health_commit) {
        rev = store_revision(r->store);
        if (rev > r->index)
            r->index = rev;
    }
    return r->index;
}

/* The index the committed change being applied will take (before
 * reg_take_index takes it): what a new instance's create_index is. */
static uint64_t reg_next_index(const struct reg_registry *r)
{
    uint64_t rev = 0;

    if (!r->shared)
        return r->index + 1;
    rev = store_revision(r->store);
    return rev > r->index ? rev : r->index;
}

/* Take the next index for a change of in (applied already; its
 * modify_index becomes it) and tell the observer. For REG_EV_HEALTH,
 * check_id (borrowed), prev and status are the check's; for the others
 * the event carries the instance's health. */
static void reg_emit_check(struct reg_registry *r, enum reg_event_type type,
                           struct reg_instance *in, const char *check_id, enum reg_health prev,
                           enum reg_health status, int64_t now)
{
    struct reg_event ev;

    in->modify_index = reg_take_index(r, type);
    r->gen++;
    if (!r->opt.observer)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.index = r->index;
    ev.time_ms = now;
    ev.in = in;
    ev.previous = prev;
    ev.status = status;
    ev.check_id = check_id;
    if (type == REG_EV_MAINTENANCE)
        ev.maint = in->ext && in->ext->maint;
    r->opt.observer(r->opt.observer_arg, &ev);
}

/* A change of in that is not one check's: reg_emit_check with its health. */
static void reg_emit(struct reg_registry *r, enum reg_event_type type, struct reg_instance *in,
                     int64_t now)
{
    enum reg_health h = (enum reg_health)in->health;

    reg_emit_check(r, type, in, NULL, h, h, now);
}

/* A status change of one of in's checks. */
static void reg_emit_health(struct reg_registry *r, struct reg_instance *in, const char *check_id,
                            enum reg_health prev, enum reg_health status, int64_t now)
{
    reg_emit_check(r, REG_EV_HEALTH, in, check_id, prev, status, now);
}

/* Tell the wake function of deadline at, when it is before the one told
 * last: a timer there runs reg_tick, so a TTL lapses at its deadline, not
 * at the next regular tick. */
static void reg_wake(struct reg_registry *r, int64_t at)
{
    if (!r->wake || at >= r->wake_at || r->leases)
        return;
    r->wake_at = at;
    r->wake(r->wake_arg, at);
}

/* The earliest deadline of a passing TTL check (INT64_MAX: none): the
 * heads of the buckets' passing lists. */
static int64_t reg_next_deadline(const struct reg_registry *r)
{
    const struct reg_bucket *b, *btmp;
    int64_t at = INT64_MAX;

    if (r->leases)
        return at; /* the leases decide (see "TTL leases") */
    HASH_ITER (hh, r->buckets, b, btmp)
        if (b->passing && b->passing->heartbeat_ms + b->key.ttl_ms < at)
            at = b->passing->heartbeat_ms + b->key.ttl_ms;
    return at;
}

/* The changes a lease must leave room for (see "The index" above). */
static uint64_t reg_lease_headroom(const struct reg_registry *r)
{
    /* an active check may change at every probe: four per lease too, and a
     * change it makes queues a new lease when this runs short */
    return (uint64_t)r->pending_adv +
           4 * (uint64_t)(r->stats.instances + r->pending_new + r->active_checks) + 1;
}

/* Store completion of a lease: remember what is durable; on failure queue
 * one again at the next need. */
static void reg_lease_done(void *arg, int rc, const char *err)
{
    struct reg_lease_write *w = arg;
    struct reg_registry *r = w->r;

    if (rc == 0) {
        if (w->value > r->lease_durable)
            r->lease_durable = w->value;
    } else {
        log_warn("could not store the index lease %llu: %s", (unsigned long long)w->value,
                 err ? err : "unknown error");
        r->lease = r->lease_durable;
    }
    free(w);
}

/* Queue a new lease when the one queued does not cover the index plus the
 * headroom. 0, or -1 with err (nothing queued). */
static int reg_lease_ensure(struct reg_registry *r, char *err, size_t errlen)
{
    uint64_t head = reg_lease_headroom(r);
    struct reg_lease_write *w = NULL;
    char doc[32];
    int len;

    if (r->shared)
        return 0; /* the store's revision is the index: it needs no lease */
    if (r->index + head <= r->lease)
        return 0;
    w = calloc(1, sizeof(*w));
    if (!w) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    w->r = r;
    w->value = r->index + 2 * head + REG_INDEX_LEASE_MIN;
    len = snprintf(doc, sizeof(doc), "%llu", (unsigned long long)w->value);
    if (store_put(r->store, REG_META_INDEX_ID, doc, (size_t)len, reg_lease_done, w, err, errlen) !=
        0) {
        free(w);
        return -1;
    }
    r->lease = w->value;
    return 0;
}

/* Count one more queued write that will advance the index, with a lease
 * covering it queued first. 0, or -1 with err (nothing counted). */
static int reg_adv_begin(struct reg_registry *r, char *err, size_t errlen)
{
    r->pending_adv++;
    if (reg_lease_ensure(r, err, errlen) != 0) {
        r->pending_adv--;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* groups */

/* Make room in g's items for one more member. 0 or -1 (out of memory,
 * nothing changed). */
static int reg_group_grow(struct reg_group *g)
{
    size_t cap = 0;
    struct reg_instance **items = NULL;

    if (g->members < g->cap)
        return 0;
    cap = g->cap ? g->cap * 2 : 4;
    items = realloc(g->items, cap * sizeof(*items));
    if (!items)
        return -1;
    g->items = items;
    g->cap = cap;
    return 0;
}

/* Find or create the group for key in *table and count one more member,
 * with room for it among the passing items. NULL when out of memory
 * (nothing changed). */
static struct reg_group *reg_group_join(struct reg_group **table, const char *key)
{
    struct reg_group *g = NULL;

    HASH_FIND_STR(*table, key, g);
    if (!g) {
        g = calloc(1, sizeof(*g));
        if (!g)
            return NULL;
        g->key = strdup(key);
        if (!g->key) {
            free(g);
            return NULL;
        }
        HASH_ADD_KEYPTR(hh, *table, g->key, strlen(g->key), g);
    }
    if (reg_group_grow(g) != 0) {
        if (g->members == 0) {
            HASH_DEL(*table, g);
            free(g->key);
            free(g);
        }
        return NULL;
    }
    g->members++;
    return g;
}

/* Count one member less; free the group with its last member. */
static void reg_group_leave(struct reg_group **table, struct reg_group *g)
{
    if (--g->members > 0)
        return;
    HASH_DEL(*table, g);
    free(g->items);
    free(g->key);
    free(g);
}

/* Append in (a member) to g's passing items, storing its index in *pos.
 * Cannot fail: items has room for every member. */
static void reg_group_add(struct reg_group *g, struct reg_instance *in, size_t *pos)
{
    *pos = g->n;
    g->items[g->n++] = in;
}

/* Remove the item at pos by moving the last one into its place. */
static void reg_group_remove(struct reg_group *g, size_t pos, bool by_name)
{
    struct reg_instance *last = g->items[--g->n];

    g->items[pos] = last;
    if (by_name)
        last->name_pos = pos;
    else
        last->type_pos = pos;
}

/* ---------------------------------------------------------------------- */
/* health transitions */

/* The counter of r->stats for health h. */
static size_t *reg_health_count(struct reg_registry *r, enum reg_health h)
{
    return h == REG_PASSING   ? &r->stats.passing
           : h == REG_WARNING ? &r->stats.warning
                              : &r->stats.critical;
}

/* The status of in's TTL check: critical once it lapsed, else what its
 * last update set. */
static enum reg_health reg_ttl_status(const struct reg_instance *in)
{
    return in->ttl_health == REG_CRITICAL ? REG_CRITICAL : (enum reg_health)in->ttl_set;
}

/* What in's health is by its checks and maintenance: the worst of them
 * (an instance without any check is passing). */
static enum reg_health reg_worst(const struct reg_instance *in)
{
    enum reg_health h = in->ttl_ms > 0 ? reg_ttl_status(in) : REG_PASSING;
    size_t i;

    if (!in->ext)
        return h;
    if (in->ext->maint)
        return REG_CRITICAL;
    for (i = 0; i < in->ext->n; i++) {
        const struct reg_check *c = &in->ext->checks[i];

        if (c->rules.kind != REG_CHECK_TTL && c->st.status > h)
            h = (enum reg_health)c->st.status;
    }
    return h;
}

/* Put in into its groups' passing items. */
static void reg_join_passing(struct reg_instance *in)
{
    reg_group_add(in->by_name, in, &in->name_pos);
    reg_group_add(in->by_type, in, &in->type_pos);
}

/* Take in out of its groups' passing items. */
static void reg_leave_passing(struct reg_instance *in)
{
    reg_group_remove(in->by_name, in->name_pos, true);
    reg_group_remove(in->by_type, in->type_pos, false);
}

/* Set in's health (attached) to what its checks say now, moving it into or
 * out of discovery. Cannot fail. Returns the health it had. */
static enum reg_health reg_refresh(struct reg_registry *r, struct reg_instance *in)
{
    enum reg_health old = (enum reg_health)in->health, now = reg_worst(in);

    if (old == now)
        return old;
    if (old == REG_PASSING)
        reg_leave_passing(in);
    else if (now == REG_PASSING)
        reg_join_passing(in);
    (*reg_health_count(r, old))--;
    (*reg_health_count(r, now))++;
    in->health = (unsigned char)now;
    return old;
}

/* Take in out of its bucket list and its groups' passing items. */
static void reg_unlink(struct reg_registry *r, struct reg_instance *in)
{
    if (in->bucket) {
        if (in->ttl_health == REG_PASSING)
            DL_DELETE(in->bucket->passing, in);
        else
            DL_DELETE(in->bucket->critical, in);
    }
    if (in->health == REG_PASSING)
        reg_leave_passing(in);
    (*reg_health_count(r, (enum reg_health)in->health))--;
}

/* Queue in's health to be stored by a later reg_tick (once in the list). */
static void reg_mark_dirty(struct reg_registry *r, struct reg_instance *in)
{
    /* on a shared store health stays local: a full document put from here
     * would race the other replicas' writes (catalog.h) */
    if (in->dirty || r->shared)
        return;
    DL_APPEND2(r->dirty, in, dprev, dnext);
    in->dirty = 1;
}

/* Take in out of the dirty list, if it is there. */
static void reg_unmark_dirty(struct reg_registry *r, struct reg_instance *in)
{
    if (!in->dirty)
        return;
    DL_DELETE2(r->dirty, in, dprev, dnext);
    in->dirty = 0;
}

/* ---------------------------------------------------------------------- */
/* instances */

/* Free x and what it owns. Accepts NULL. */
static void reg_ext_free(struct reg_ext *x)
{
    size_t i;

    if (!x)
        return;
    for (i = 0; i < x->n; i++) {
        free(x->checks[i].id);
        free(x->checks[i].output);
    }
    free(x->checks);
    free(x->maint_reason);
    free(x->ttl_note);
    free(x);
}

/* Fill c from the check cs, the i-th given, of instance id. 0 or -1 (out
 * of memory; c owns nothing). */
static int reg_check_set(struct reg_check *c, const char *id, size_t i,
                         const struct reg_check_spec *cs)
{
    char def[LIM_CHECK_ID_MAX + 1];
    const char *cid = cs->id;
    size_t idlen, tlen = strlen(cs->target);

    if (!cid[0]) {
        snprintf(def, sizeof(def), "%s:%zu", id, i + 1);
        cid = def;
    }
    idlen = strlen(cid);
    c->id = malloc(idlen + tlen + 2);
    if (!c->id)
        return -1;
    memcpy(c->id, cid, idlen + 1);
    memcpy(c->id + idlen + 1, cs->target, tlen + 1);
    c->target = c->id + idlen + 1;
    c->output = NULL;
    c->rules.interval_ms = cs->interval_ms;
    c->rules.timeout_ms = cs->timeout_ms;
    c->rules.deregister_after_ms = cs->deregister_after_ms;
    c->rules.policy = cs->policy;
    c->rules.kind = (unsigned char)cs->kind;
    c->rules.initial = (unsigned char)cs->status;
    chk_init(&c->st, cs->kind == REG_CHECK_TTL ? REG_PASSING : cs->status, 0);
    return 0;
}

/* The ext of the registration spec under id: its given checks and, for a
 * stored document, its maintenance. *out NULL when it needs none. 0 or -1
 * (out of memory). */
static int reg_ext_new(const char *id, const struct reg_spec *spec, struct reg_ext **out)
{
    struct reg_ext *x = NULL;
    size_t i;

    *out = NULL;
    if (spec->check_count == 0 && !spec->maint)
        return 0;
    x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    if (spec->check_count > 0) {
        x->checks = calloc(spec->check_count, sizeof(*x->checks));
        if (!x->checks)
            goto fail;
    }
    for (i = 0; i < spec->check_count; i++) {
        const struct reg_check_spec *cs = &spec->checks[i];

        if (reg_check_set(&x->checks[i], id, i, cs) != 0)
            goto fail;
        x->n++;
        if (cs->kind != REG_CHECK_TTL && cs->deregister_after_ms > 0)
            x->reaped = true;
    }
    if (spec->maint) {
        x->maint_reason = strdup(spec->maint_reason);
        if (!x->maint_reason)
            goto fail;
        x->maint = true;
        x->maint_since_ms = spec->maint_since_ms;
    }
    *out = x;
    return 0;
fail:
    reg_ext_free(x);
    return -1;
}

/* The given TTL check of in, or NULL (none given, or no TTL check). */
static const struct reg_check *reg_ttl_given(const struct reg_instance *in)
{
    size_t i;

    for (i = 0; in->ext && i < in->ext->n; i++)
        if (in->ext->checks[i].rules.kind == REG_CHECK_TTL)
            return &in->ext->checks[i];
    return NULL;
}

/* The http and tcp checks of in. */
static size_t reg_active_count(const struct reg_instance *in)
{
    size_t i, n = 0;

    for (i = 0; in->ext && i < in->ext->n; i++)
        n += in->ext->checks[i].rules.kind != REG_CHECK_TTL;
    return n;
}

/* Free in, its strings, its checks and its cache slot (through r's codec).
 * Accepts NULL. */
static void reg_instance_free(const struct reg_registry *r, struct reg_instance *in)
{
    if (!in)
        return;
    if (in->cache && r->opt.codec->cache_free)
        r->opt.codec->cache_free(in->cache);
    reg_ext_free(in->ext);
    free(in->strs);
    free(in);
}

/* The offsets at the head of in's strings. */
static const uint32_t *reg_instance_offs(const struct reg_instance *in)
{
    return (const uint32_t *)(const void *)in->strs;
}

/* Append the C string src at *off in strs; returns where it starts. */
static const char *reg_strs_put(char *strs, size_t *off, const char *src)
{
    size_t n = strlen(src) + 1;
    const char *at = strs + *off;

    memcpy(strs + *off, src, n);
    *off += n;
    return at;
}

/* Fill a fresh (zeroed, unlinked) in with the registration of spec under id
 * (all copied into one allocation). 0, or -1 when out of memory (in
 * unchanged). */
static int reg_instance_set(struct reg_instance *in, const char *id, const struct reg_spec *spec)
{
    const char *fixed[4] = {id, spec->name, spec->host, spec->type};
    size_t noffs = spec->tag_count + 2 * spec->meta_count;
    size_t head = noffs * sizeof(uint32_t);
    size_t len = head, i, off = head;
    uint32_t *offs = NULL;
    char *strs = NULL;

    for (i = 0; i < 4; i++)
        len += strlen(fixed[i]) + 1;
    for (i = 0; i < spec->tag_count; i++)
        len += strlen(reg_spec_tag(spec, i)) + 1;
    for (i = 0; i < spec->meta_count; i++)
        len += strlen(reg_spec_meta_key(spec, i)) + strlen(reg_spec_meta_value(spec, i)) + 2;
    if (len > UINT32_MAX)
        return -1;
    strs = malloc(len);
    if (!strs)
        return -1;
    offs = (uint32_t *)(void *)strs;
    in->id = reg_strs_put(strs, &off, id);
    in->name = reg_strs_put(strs, &off, spec->name);
    in->host = reg_strs_put(strs, &off, spec->host);
    in->type = reg_strs_put(strs, &off, spec->type);
    for (i = 0; i < spec->tag_count; i++) {
        offs[i] = (uint32_t)off;
        (void)reg_strs_put(strs, &off, reg_spec_tag(spec, i));
    }
    for (i = 0; i < spec->meta_count; i++) {
        offs[spec->tag_count + 2 * i] = (uint32_t)off;
        (void)reg_strs_put(strs, &off, reg_spec_meta_key(spec, i));
        offs[spec->tag_count + 2 * i + 1] = (uint32_t)off;
        (void)reg_strs_put(strs, &off, reg_spec_meta_value(spec, i));
    }
    in->strs = strs;
    in->tag_count = (uint16_t)spec->tag_count;
    in->meta_count = (uint16_t)spec->meta_count;
    in->port = spec->port;
    in->ttl_ms = (int32_t)spec->ttl_ms;
    if (reg_ext_new(id, spec, &in->ext) != 0) {
        free(strs);
        in->strs = NULL;
        return -1;
    }
    return 0;
}

/* Count one member less of bucket b; free it with its last member. */
static void reg_bucket_leave(struct reg_registry *r, struct reg_bucket *b)
{
    if (--b->members > 0)
        return;
    HASH_DEL(r->buckets, b);
    free(b);
}

/* Allocate everything in (not linked anywhere) will need to be linked:
 * its bucket (when it has a TTL check) and groups are joined, each group
 * with room for it, so reg_attach cannot fail later. 0, or -1 with nothing
 * changed. */
static int reg_reserve(struct reg_registry *r, struct reg_instance *in)
{
    struct reg_bucket *b = NULL;

    if (in->ttl_ms > 0) {
        const struct reg_check *given = reg_ttl_given(in);
        struct reg_bucket_key key;

        memset(&key, 0, sizeof(key));
        key.ttl_ms = in->ttl_ms;
        key.grace_ms =
            reg_deregister_after(r, in->ttl_ms, given ? given->rules.deregister_after_ms : 0);
        HASH_FIND(hh, r->buckets, &key, sizeof(key), b);
        if (!b) {
            b = calloc(1, sizeof(*b));
            if (!b)
                return -1;
            b->key = key;
            HASH_ADD(hh, r->buckets, key, sizeof(key), b);
        }
        b->members++;
    }
    in->bucket = b;
    in->by_name = reg_group_join(&r->names, in->name);
    if (!in->by_name)
        goto fail;
    in->by_type = reg_group_join(&r->types, in->type);
    if (!in->by_type)
        goto fail;
    return 0;
fail:
    if (in->by_name)
        reg_group_leave(&r->names, in->by_name);
    in->by_name = in->by_type = NULL;
    if (b)
        reg_bucket_leave(r, b);
    in->bucket = NULL;
    return -1;
}

/* Undo reg_reserve for an instance that will not be attached. */
static void reg_unreserve(struct reg_registry *r, struct reg_instance *in)
{
    reg_group_leave(&r->names, in->by_name);
    reg_group_leave(&r->types, in->by_type);
    in->by_name = in->by_type = NULL;
    if (in->bucket)
        reg_bucket_leave(r, in->bucket);
    in->bucket = NULL;
}

/* ---------------------------------------------------------------------- */
/* TTL leases (shared store): see catalog.h. The alive record
 * REG_ALIVE_PREFIX<id> holds the lease id in decimal and is bound to that
 * lease; its put makes the TTL check passing, its deletion (a lapse, or
 * the deregistration) critical, on every replica at that revision. */

static const char *reg_ttl_id(const struct reg_instance *in, char *buf, size_t len);
static void reg_lag(struct reg_registry *r, const char *id, const char *why);

/* The instance id an alive record's id names, or NULL when id is none. */
static const char *reg_alive_target(const char *id)
{
    size_t n = sizeof(REG_ALIVE_PREFIX) - 1;

    return id && strncmp(id, REG_ALIVE_PREFIX, n) == 0 ? id + n : NULL;
}

/* A new op for in, in r->alive_ops; NULL when out of memory. */
static struct reg_alive_op *reg_alive_op_new(struct reg_registry *r, const struct reg_instance *in)
{
    struct reg_alive_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->r = r;
    snprintf(op->id, sizeof(op->id), "%s", in->id);
    op->seq = in->seq;
    DL_APPEND(r->alive_ops, op);
    return op;
}

/* The op is done: out of the list (unless reg_free detached it), freed. */
static void reg_alive_op_end(struct reg_alive_op *op)
{
    if (op->r)
        DL_DELETE(op->r->alive_ops, op);
    free(op);
}

/* The instance op was asked for, if it is still here (and not replaced). */
static struct reg_instance *reg_alive_op_target(const struct reg_alive_op *op)
{
    struct reg_instance *in = NULL;

    if (!op->r)
        return NULL;
    HASH_FIND_STR(op->r->by_id, op->id, in);
    return in && in->seq == op->seq ? in : NULL;
}

/* Move in's TTL check to health h (REG_PASSING or REG_CRITICAL) as the
 * commit being applied says, telling the observer at its revision when the
 * check's status changes. */
static void reg_alive_set(struct reg_registry *r, struct reg_instance *in, enum reg_health h)
{
    char cid[LIM_CHECK_ID_MAX + 1];
    enum reg_health prev = reg_ttl_status(in);
    int64_t now = reg_now(r);

    if (in->ttl_health == (unsigned char)h)
        return;
    if (h == REG_CRITICAL) {
        DL_DELETE(in->bucket->passing, in);
        DL_APPEND(in->bucket->critical, in);
        r->stats.expired++;
        log_warn("instance %s is critical: its lease lapsed (no renewal within its ttl)", in->id);
    } else {
        DL_DELETE(in->bucket->critical, in);
        DL_APPEND(in->bucket->passing, in);
        log_info("instance %s: its ttl check is passing again (a new lease)", in->id);
    }
    in->ttl_health = (unsigned char)h;
    if (reg_ttl_status(in) == prev)
        return;
    in->ttl_change_ms = now;
    (void)reg_refresh(r, in);
    r->health_commit = true;
    reg_emit_health(r, in, reg_ttl_id(in, cid, sizeof(cid)), prev, reg_ttl_status(in), now);
    r->health_commit = false;
}

/* Forget the orphan alive record of id, if any. */
static void reg_orphan_drop(struct reg_registry *r, const char *id)
{
    struct reg_alive_orphan *o = NULL;

    HASH_FIND_STR(r->orphans, id, o);
    if (!o)
        return;
    HASH_DEL(r->orphans, o);
    free(o->id);
    free(o);
    r->norphans--;
}

/* Forget every orphan alive record. */
static void reg_orphans_clear(struct reg_registry *r)
{
    struct reg_alive_orphan *o, *tmp;

    HASH_ITER (hh, r->orphans, o, tmp) {
        HASH_DEL(r->orphans, o);
        free(o->id);
        free(o);
    }
    r->norphans = 0;
}

/* A newly attached instance takes the alive record that came before it. */
static void reg_alive_adopt(struct reg_registry *r, struct reg_instance *in)
{
    struct reg_alive_orphan *o = NULL;

    HASH_FIND_STR(r->orphans, in->id, o);
    if (!o)
        return;
    in->lease = o->lease;
    in->alive_seen = 1;
    reg_orphan_drop(r, in->id);
}

/* The alive record of id (an instance id) holds lease (committed; own or
 * another replica's): its instance knows the lease and its TTL check is
 * passing. For an id not here, the record waits in the orphan table. */
static void reg_alive_apply(struct reg_registry *r, const char *id, int64_t lease)
{
    struct reg_instance *in = NULL;
    struct reg_alive_orphan *o = NULL;

    HASH_FIND_STR(r->by_id, id, in);
    if (in) {
        in->lease = lease;
        in->alive_seen = 1;
        if (in->ttl_ms > 0)
            reg_alive_set(r, in, REG_PASSING);
        return;
    }
    HASH_FIND_STR(r->orphans, id, o);
    if (o) {
        o->lease = lease;
        return;
    }
    if (r->norphans >= LIM_REG_ALIVE_ORPHANS_MAX)
        return; /* its instance, if it comes, turns passing at its registration anyway */
    o = calloc(1, sizeof(*o));
    if (!o || !(o->id = strdup(id))) {
        free(o);
        reg_lag(r, id, "out of memory");
        return;
    }
    o->lease = lease;
    HASH_ADD_KEYPTR(hh, r->orphans, o->id, strlen(o->id), o);
    r->norphans++;
}

/* The alive record of id is gone (its lease lapsed, or a deregistration):
 * the TTL check of its instance, if here, is critical. */
static void reg_alive_gone(struct reg_registry *r, const char *id)
{
    struct reg_instance *in = NULL;

    reg_orphan_drop(r, id);
    HASH_FIND_STR(r->by_id, id, in);
    if (!in || in->ttl_ms == 0)
        return;
    in->lease = 0;
    reg_alive_set(r, in, REG_CRITICAL);
}

/* An alive record's document: the lease id; 0 when it is none. */
static int64_t reg_alive_parse(const char *doc, size_t len)
{
    char buf[32];
    char *end = NULL;
    long long v;

    if (!doc || len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, doc, len);
    buf[len] = '\0';
    v = strtoll(buf, &end, 10);
    return end && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

/* Completion of the alive record's put (this replica's write). */
static void reg_alive_put_done(void *arg, int rc, const char *err)
{
    struct reg_alive_op *op = arg;
    struct reg_instance *in = reg_alive_op_target(op);

    if (in)
        in->lease_busy = 0;
    if (op->r && rc == 0)
        reg_alive_apply(op->r, op->id, op->lease);
    else if (op->r)
        log_warn("could not store the alive record of %s (the next renewal tries again): %s",
                 op->id, err ? err : "unknown error");
    reg_alive_op_end(op);
}

/* A lease was granted for op's instance: put its alive record bound to it. */
static void reg_alive_granted(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct reg_alive_op *op = arg;
    struct reg_instance *in = reg_alive_op_target(op);
    char rid[sizeof(REG_ALIVE_PREFIX) + LIM_ID_MAX], doc[32], perr[256];
    int n;

    (void)ttl_s;
    if (!in) {
        reg_alive_op_end(op); /* gone or replaced meanwhile: no record for it */
        return;
    }
    if (rc != 0) {
        log_warn("could not grant a lease for %s (the next renewal tries again): %s", op->id,
                 err ? err : "unknown error");
        in->lease_busy = 0;
        reg_alive_op_end(op);
        return;
    }
    op->lease = lease;
    snprintf(rid, sizeof(rid), "%s%s", REG_ALIVE_PREFIX, op->id);
    n = snprintf(doc, sizeof(doc), "%lld", (long long)lease);
    if (store_put_leased(op->r->store, rid, doc, (size_t)n, lease, reg_alive_put_done, op, perr,
                         sizeof(perr)) != 0) {
        log_warn("could not queue the alive record of %s: %s", op->id, perr);
        in->lease_busy = 0;
        reg_alive_op_end(op);
    }
}

/* Grant in a new lease of its ttl and put its alive record (unless a lease
 * op of it is out already). */
static void reg_alive_start(struct reg_registry *r, struct reg_instance *in)
{
    struct reg_alive_op *op = NULL;
    char err[256];

    if (!r->leases || in->ttl_ms <= 0 || in->lease_busy)
        return;
    op = reg_alive_op_new(r, in);
    if (!op) {
        log_warn("could not grant a lease for %s: out of memory", in->id);
        return;
    }
    in->lease_busy = 1;
    if (store_lease_grant(r->store, in->ttl_ms, reg_alive_granted, op, err, sizeof(err)) != 0) {
        log_warn("could not grant a lease for %s: %s", in->id, err);
        in->lease_busy = 0;
        reg_alive_op_end(op);
    }
}

/* The keepalive of op's lease answered: a lease gone gets a new one. */
static void reg_alive_kept(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct reg_alive_op *op = arg;
    struct reg_instance *in = reg_alive_op_target(op);

    (void)lease;
    if (!in) {
        reg_alive_op_end(op);
        return;
    }
    in->lease_busy = 0;
    if (rc != 0)
        log_warn("could not keep the lease of %s alive (the next renewal tries again): %s", op->id,
                 err ? err : "unknown error");
    if (rc == 0 && ttl_s <= 0) {
        /* lapsed: its deletion reaches every replica (or did); a new lease
         * and record make it passing again */
        if (in->lease == op->lease)
            in->lease = 0;
        reg_alive_start(op->r, in);
    }
    reg_alive_op_end(op);
}

/* A heartbeat of in on a shared store: keep its lease alive, or grant one
 * when none is known. */
static void reg_alive_keep(struct reg_registry *r, struct reg_instance *in)
{
    struct reg_alive_op *op = NULL;
    char err[256];

    if (in->ttl_ms <= 0 || in->lease_busy)
        return;
    if (in->lease == 0) {
        reg_alive_start(r, in);
        return;
    }
    op = reg_alive_op_new(r, in);
    if (!op) {
        log_warn("could not keep the lease of %s alive: out of memory", in->id);
        return;
    }
    op->lease = in->lease;
    in->lease_busy = 1;
    if (store_lease_keepalive(r->store, in->lease, reg_alive_kept, op, err, sizeof(err)) != 0) {
        log_warn("could not keep the lease of %s alive: %s", in->id, err);
        in->lease_busy = 0;
        reg_alive_op_end(op);
    }
}

/* Link a reserved instance: its TTL check passing with a heartbeat at now
 * (at the tail of its bucket's passing list), its other checks at their
 * initial status, in its groups when that makes it passing, in the id
 * table. Uses only what reg_reserve allocated. */
static void reg_attach(struct reg_registry *r, struct reg_instance *in, int64_t now)
{
    size_t i;

    const struct reg_check *given = reg_ttl_given(in);

    in->ttl_health = REG_PASSING;
    in->ttl_set = given ? given->rules.initial : REG_PASSING;
    in->stored = REG_PASSING;
    in->heartbeat_ms = in->ttl_change_ms = now;
    for (i = 0; in->ext && i < in->ext->n; i++)
        in->ext->checks[i].st.last_change_ms = now;
    in->health = (unsigned char)reg_worst(in);
    if (in->health == REG_PASSING)
        reg_join_passing(in);
    (*reg_health_count(r, (enum reg_health)in->health))++;
    in->seq = ++r->next_seq;
    if (in->bucket) {
        DL_APPEND(in->bucket->passing, in);
        reg_wake(r, now + in->ttl_ms);
    }
    if (in->ext && in->ext->reaped)
        DL_APPEND2(r->reaped, in, ext->rprev, ext->rnext);
    r->active_checks += reg_active_count(in);
    /* appended: the id table's own order is the order of seq */
    HASH_ADD_KEYPTR(hh, r->by_id, in->id, strlen(in->id), in);
    r->stats.instances++;
    if (r->shared)
        reg_alive_adopt(r, in);
}

/* Undo reg_attach: out of lists, groups and (when empty) the bucket; not
 * out of the id table. */
static void reg_unlink_all(struct reg_registry *r, struct reg_instance *in)
{
    reg_unlink(r, in);
    reg_unmark_dirty(r, in);
    if (in->ext && in->ext->reaped)
        DL_DELETE2(r->reaped, in, ext->rprev, ext->rnext);
    r->active_checks -= reg_active_count(in);
    reg_group_leave(&r->names, in->by_name);
    reg_group_leave(&r->types, in->by_type);
    in->by_name = in->by_type = NULL;
    if (in->bucket)
        reg_bucket_leave(r, in->bucket);
    in->bucket = NULL;
}

/* Drop in from every index and free it (the store is the caller's job). */
static void reg_drop(struct reg_registry *r, struct reg_instance *in)
{
    reg_unlink_all(r, in);
    HASH_DEL(r->by_id, in);
    reg_instance_free(r, in);
    r->stats.instances--;
}

/* Free a write that is done with; its prepared instance, if still owned,
 * gives back its reservations. */
static void reg_write_free(struct reg_write *w)
{
    if (!w)
        return;
    reg_ext_free(w->maint_ext);
    free(w->doc);
    if (w->in) {
        if (w->in->by_name)
            reg_unreserve(w->r, w->in);
        reg_instance_free(w->r, w->in);
    }
    free(w);
}

/* Store completion of a registration: on success the prepared instance
 * replaces the one of the same id, if any (looked up now: writes complete
 * in order, so memory follows the store); on failure nothing changes. Then
 * tells the caller. */
static void reg_put_done(void *arg, int rc, const char *err)
{
    struct reg_write *w = arg;
    struct reg_registry *r = w->r;
    struct reg_instance *old = NULL;

    if (w->counted)
        r->pending_new--;
    r->pending_adv--;
    HASH_FIND_STR(r->by_id, w->in->id, old);
    if (old && w->pinned)
        old->busy--;
    if (rc == 0) {
        /* client writes still in flight for this id now pin the new one */
        uint16_t busy = old ? old->busy : 0;
        struct reg_instance *in = w->in;
        int64_t now = reg_now(r);

        in->create_index = old ? old->create_index : reg_next_index(r);
        if (old)
            reg_drop(r, old);
        reg_attach(r, in, now);
        in->busy = busy;
        w->in = NULL;
        r->stats.registered++;
        reg_emit(r, REG_EV_REGISTER, in, now);
        reg_alive_start(r, in); /* shared store, TTL check: its lease and alive record */
    }
    if (w->done)
        w->done(w->arg, rc, err);
    reg_write_free(w);
}

/* A committed deletion of in: out of every index first, reported (type)
 * as it was, then freed. */
static void reg_remove(struct reg_registry *r, struct reg_instance *in, enum reg_event_type type)
{
    reg_unlink_all(r, in);
    HASH_DEL(r->by_id, in);
    r->stats.instances--;
    reg_emit(r, type, in, reg_now(r));
    reg_instance_free(r, in);
}

/* Store completion of a deletion (a deregistration or an expiry removal):
 * on success the instance of that id, if still there, leaves memory too. */
static void reg_del_done(void *arg, int rc, const char *err)
{
    struct reg_write *w = arg;
    struct reg_registry *r = w->r;
    struct reg_instance *in = NULL;

    r->pending_adv--;
    HASH_FIND_STR(r->by_id, w->id, in);
    if (in && w->pinned)
        in->busy--;
    if (rc == 0) {
        if (in)
            reg_remove(r, in, w->expiry ? REG_EV_EXPIRE : REG_EV_DEREGISTER);
        if (w->expiry)
            r->stats.removed++;
        else
            r->stats.deregistered++;
    } else if (w->expiry) {
        log_warn("could not delete %s from the store, retrying on a later tick: %s", w->id,
                 err ? err : "unknown error");
        if (in)
            in->removing = 0;
    }
    if (w->done)
        w->done(w->arg, rc, err);
    reg_write_free(w);
}

/* Queue the deletion of the check record of instance id's check check_id
 * (both borrowed) in the batch of the turn. */
static void reg_checkrec_del(struct reg_registry *r, const char *id, const char *check_id)
{
    char rid[sizeof(REG_CHECK_PREFIX) + LIM_ID_MAX + 1 + LIM_CHECK_ID_MAX], err[256];

    snprintf(rid, sizeof(rid), "%s%s/%s", REG_CHECK_PREFIX, id, check_id);
    if (store_del(r->store, rid, NULL, NULL, err, sizeof(err)) != 0)
        log_warn("could not queue the deletion of %s: %s", rid, err);
}

/* Queue the deletion of the check records of in's active checks (shared
 * store with leases), in the batch of the turn: its deregistration's, or
 * a re-registration's (whose checks start again). */
static void reg_checkrecs_del(struct reg_registry *r, const struct reg_instance *in)
{
    size_t i;

    for (i = 0; in->ext && i < in->ext->n; i++)
        if (in->ext->checks[i].rules.kind != REG_CHECK_TTL)
            reg_checkrec_del(r, in->id, in->ext->checks[i].id);
}

/* Queue the deletion of id in the store; reg_del_done applies it. 0, or -1
 * with err and nothing changed. */
static int reg_queue_del(struct reg_registry *r, const char *id, bool expiry, reg_done_fn done,
                         void *arg, char *err, size_t errlen)
{
    struct reg_write *w = calloc(1, sizeof(*w));
    struct reg_instance *ttl_in = NULL;

    if (!w) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    w->r = r;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->expiry = expiry;
    w->done = done;
    w->arg = arg;
    if (reg_adv_begin(r, err, errlen) != 0) {
        free(w);
        return -1;
    }
    if (store_del(r->store, id, reg_del_done, w, err, errlen) != 0) {
        r->pending_adv--;
        free(w);
        return -1;
    }
    HASH_FIND_STR(r->by_id, id, ttl_in);
    if (!expiry && ttl_in) {
        ttl_in->busy++;
        w->pinned = true;
    }
    if (r->leases && ttl_in && ttl_in->ttl_ms > 0) {
        /* the alive record goes in the same batch (it lapses anyway else) */
        char rid[sizeof(REG_ALIVE_PREFIX) + LIM_ID_MAX], aerr[256];

        snprintf(rid, sizeof(rid), "%s%s", REG_ALIVE_PREFIX, id);
        if (store_del(r->store, rid, NULL, NULL, aerr, sizeof(aerr)) != 0)
            log_warn("could not queue the deletion of %s: %s", rid, aerr);
    }
    if (r->leases && ttl_in)
        reg_checkrecs_del(r, ttl_in);
    return 0;
}

/* Store completion of a health write: on failure the instance (if still
 * there) is written again by a later tick. */
static void reg_health_done(void *arg, int rc, const char *err)
{
    struct reg_write *w = arg;
    struct reg_instance *in = NULL;

    if (rc != 0) {
        log_warn("could not store the health of %s, retrying on a later tick: %s", w->id,
                 err ? err : "unknown error");
        HASH_FIND_STR(w->r->by_id, w->id, in);
        if (in) {
            in->stored = REG_STORED_UNKNOWN;
            reg_mark_dirty(w->r, in);
        }
    }
    free(w);
}

/* Queue the write of in's document with its health (the registration is
 * the one stored: no client write of this id is in flight). 0, or -1 with
 * err and nothing changed. */
static int reg_queue_health(struct reg_registry *r, struct reg_instance *in, char *err,
                            size_t errlen)
{
    struct reg_write *w = calloc(1, sizeof(*w));
    size_t len = 0;
    char *doc = w ? r->opt.codec->encode_instance(in, &len) : NULL;
    int rc = -1;

    if (!doc) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    w->r = r;
    snprintf(w->id, sizeof(w->id), "%s", in->id);
    if (store_put(r->store, in->id, doc, len, reg_health_done, w, err, errlen) != 0)
        goto cleanup;
    in->stored = in->ttl_health;
    w = NULL;
    rc = 0;
cleanup:
    free(w);
    free(doc);
    return rc;
}

/* Store the health changes waiting in r->dirty, oldest first: at most
 * LIM_HEALTH_WRITES_PER_TICK, and none while the store holds half its
 * capacity (client writes keep the other half). An instance with a client
 * write in flight waits (that write decides the document); one being
 * removed, or whose store has its health already, leaves the list. */
static void reg_flush_health(struct reg_registry *r)
{
    struct reg_instance *in, *tmp;
    size_t writes = 0, looks = 0;
    char err[256];

    DL_FOREACH_SAFE2(r->dirty, in, tmp, dnext)
    {
        if (writes >= LIM_HEALTH_WRITES_PER_TICK || looks++ >= 4 * LIM_HEALTH_WRITES_PER_TICK ||
            store_pending(r->store) >= STORE_PENDING_MAX / 2)
            break;
        if (in->busy)
            continue;
        reg_unmark_dirty(r, in);
        if (in->removing || in->stored == in->ttl_health)
            continue;
        if (reg_queue_health(r, in, err, sizeof(err)) != 0) {
            log_warn("could not store the health of %s: %s", in->id, err);
            reg_mark_dirty(r, in);
            break;
        }
        writes++;
    }
}

/* ---------------------------------------------------------------------- */

struct reg_registry *reg_new(struct store *store, const struct reg_options *opt)
{
    struct reg_registry *r = NULL;

    if (!opt || !opt->codec || !opt->codec->encode || !opt->codec->decode ||
        !opt->codec->encode_instance)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->store = store;
    r->shared = store && store->ops->follow != NULL;
    /* a shared backend without lease ops (etcd, until it has them) keeps
     * the local TTL lapse of before */
    r->leases = r->shared && store->ops->lease_grant && store->ops->put_leased &&
                store->ops->lease_keepalive;
    r->opt = *opt;
    if (!r->opt.clock)
        r->opt.clock = reg_real_clock;
    if (!r->opt.max_instances)
        r->opt.max_instances = LIM_INSTANCES_MAX;
    if (!r->opt.max_per_name)
        r->opt.max_per_name = LIM_PER_NAME_MAX;
    if (!r->opt.doc_max)
        r->opt.doc_max = LIM_REG_DOC_MAX;
    r->seed = r->opt.seed ? r->opt.seed : (unsigned int)time(NULL) ^ (unsigned int)clock();
    return r;
}

void reg_free(struct reg_registry *r)
{
    struct reg_instance *in, *tmp;

    if (!r)
        return;
    /* Writes still waiting hold pointers to r: let them complete first. */
    store_drain(r->store);
    HASH_ITER (hh, r->by_id, in, tmp) {
        reg_unlink_all(r, in);
        HASH_DEL(r->by_id, in);
        reg_instance_free(r, in);
    }
    /* lease ops still out free themselves when the store answers them */
    while (r->alive_ops) {
        struct reg_alive_op *op = r->alive_ops;

        DL_DELETE(r->alive_ops, op);
        op->r = NULL;
    }
    reg_orphans_clear(r);
    while (r->loaded_checks) {
        struct reg_checkrec_load *l = r->loaded_checks;

        r->loaded_checks = l->next;
        free(l->id);
        free(l->doc);
        free(l);
    }
    free(r);
}

/* Whether one more instance of name fits under the caps: 0, or
 * REG_E_FULL / REG_E_NAME_FULL with err. Registrations waiting for their
 * commit count (the group's members count them too), so a burst cannot
 * pass a cap before its commits land. */
static int reg_check_caps(const struct reg_registry *r, const char *name, char *err, size_t errlen)
{
    struct reg_group *g = NULL;

    if (r->stats.instances + r->pending_new >= r->opt.max_instances) {
        errbuf_set(err, errlen,
                   "too many instances: the registry holds its maximum of %zu; try again once "
                   "some are deregistered",
                   r->opt.max_instances);
        return REG_E_FULL;
    }
    HASH_FIND_STR(r->names, name, g);
    if (g && g->members >= r->opt.max_per_name) {
        errbuf_set(err, errlen,
                   "too many instances of '%.128s': at most %zu per name; try again once some "
                   "are deregistered",
                   name, r->opt.max_per_name);
        return REG_E_NAME_FULL;
    }
    return 0;
}

int reg_register(struct reg_registry *r, const struct reg_spec *spec, reg_done_fn done, void *arg,
                 char *id_out, bool *created, char *err, size_t errlen)
{
    struct reg_write *w = NULL;
    struct reg_instance *in = NULL;
    char id[LIM_ID_MAX + 1];
    char uuid[UID_STR_LEN + 1];
    char *doc = NULL;
    size_t doc_len = 0;
    bool known = false;
    int rc = REG_E_FAILED;

    if (spec->has_id) {
        snprintf(id, sizeof(id), "%s", spec->id);
    } else {
        uid_generate(uuid);
        snprintf(id, sizeof(id), "%s-%s", spec->name, uuid);
    }
    known = reg_get(r, id) != NULL;
    if (!known) {
        rc = reg_check_caps(r, spec->name, err, errlen);
        if (rc != 0)
            return rc;
        rc = REG_E_FAILED;
    }
    w = calloc(1, sizeof(*w));
    in = calloc(1, sizeof(*in));
    doc = r->opt.codec->encode(id, spec, &doc_len);
    if (!w || !in || !doc)
        goto oom;
    if (doc_len > r->opt.doc_max) {
        errbuf_set(err, errlen,
                   "registration of %zu bytes (as stored) is over the limit of %zu bytes: fewer "
                   "or shorter tags and metadata",
                   doc_len, r->opt.doc_max);
        rc = REG_E_TOO_BIG;
        goto cleanup;
    }
    if (reg_instance_set(in, id, spec) != 0)
        goto oom;
    if (reg_reserve(r, in) != 0)
        goto oom;
    w->r = r;
    w->in = in;
    in = NULL;
    w->done = done;
    w->arg = arg;
    if (reg_adv_begin(r, err, errlen) != 0)
        goto cleanup;
    if (store_put(r->store, id, doc, doc_len, reg_put_done, w, err, errlen) != 0) {
        r->pending_adv--;
        goto cleanup;
    }
    *created = !known;
    if (!known) {
        w->counted = true;
        r->pending_new++;
    } else {
        struct reg_instance *cur = NULL;

        HASH_FIND_STR(r->by_id, id, cur);
        cur->busy++;
        w->pinned = true;
        if (r->leases)
            reg_checkrecs_del(r, cur); /* its checks start again */
    }
    memcpy(id_out, id, sizeof(id));
    w = NULL;
    rc = 0;
    goto cleanup;
oom:
    errbuf_set(err, errlen, "out of memory");
cleanup:
    reg_write_free(w);
    reg_instance_free(r, in);
    free(doc);
    return rc;
}

int reg_deregister(struct reg_registry *r, const char *id, reg_done_fn done, void *arg, char *err,
                   size_t errlen)
{
    if (!reg_get(r, id))
        return 1;
    return reg_queue_del(r, id, false, done, arg, err, errlen);
}

/* The id of in's TTL check into buf (LIM_CHECK_ID_MAX + 1 bytes): the one
 * given, or "<id>:ttl". */
static const char *reg_ttl_id(const struct reg_instance *in, char *buf, size_t len)
{
    const struct reg_check *given = reg_ttl_given(in);

    if (given)
        return given->id;
    reg_ttl_check_id(in, buf, len);
    return buf;
}

/* Keep note (NULL: none) as the output of in's TTL check; when out of
 * memory the old one stays. */
static bool reg_ttl_note(struct reg_instance *in, const char *note)
{
    size_t n = note ? strnlen(note, LIM_CHECK_OUTPUT_MAX) : 0;
    const char *old = in->ext ? in->ext->ttl_note : NULL;
    char *copy = NULL;

    if (n == 0) {
        if (!old)
            return false;
        free(in->ext->ttl_note);
        in->ext->ttl_note = NULL;
        return true;
    }
    if (old && strncmp(old, note, n) == 0 && old[n] == '\0')
        return false;
    if (!in->ext && !(in->ext = calloc(1, sizeof(*in->ext))))
        return false;
    copy = malloc(n + 1);
    if (!copy)
        return false;
    memcpy(copy, note, n);
    copy[n] = '\0';
    free(in->ext->ttl_note);
    in->ext->ttl_note = copy;
    return true;
}

/* reg_ttl_update on a shared store: the heartbeat keeps the lease alive
 * (the lease, not this replica's clock, decides the lapse, and only a new
 * lease revives); the status and note given stay this replica's own,
 * reported at the current index. prev: the check's status before. */
static int reg_ttl_update_shared(struct reg_registry *r, struct reg_instance *in,
                                 enum reg_health status, const char *note, enum reg_health prev)
{
    char cid[LIM_CHECK_ID_MAX + 1];
    enum reg_health now_status;

    in->heartbeat_ms = reg_now(r); /* local information only */
    if (in->ttl_health == REG_CRITICAL) {
        DL_DELETE(in->bucket->critical, in);
        DL_APPEND(in->bucket->critical, in);
    } else {
        DL_DELETE(in->bucket->passing, in);
        DL_APPEND(in->bucket->passing, in);
    }
    in->ttl_set = (unsigned char)status;
    if (reg_ttl_note(in, note))
        r->gen++;
    r->stats.renewed++;
    reg_alive_keep(r, in);
    now_status = reg_ttl_status(in);
    if (now_status == prev)
        return 0;
    in->ttl_change_ms = in->heartbeat_ms;
    (void)reg_refresh(r, in);
    reg_emit_health(r, in, reg_ttl_id(in, cid, sizeof(cid)), prev, now_status, in->heartbeat_ms);
    return 0;
}

int reg_ttl_update(struct reg_registry *r, const char *id, enum reg_health status, const char *note)
{
    struct reg_instance *in = NULL;
    char cid[LIM_CHECK_ID_MAX + 1], err[256];
    enum reg_health prev, now_status;
    bool revival = false;

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->ttl_ms == 0)
        return 2;
    prev = reg_ttl_status(in);
    if (r->leases)
        return reg_ttl_update_shared(r, in, status, note, prev);
    revival = in->ttl_health == REG_CRITICAL && status == REG_PASSING;
    in->heartbeat_ms = reg_now(r);
    if (in->ttl_health == REG_CRITICAL) {
        DL_DELETE(in->bucket->critical, in);
        in->ttl_health = REG_PASSING;
        reg_mark_dirty(r, in); /* the store has it lapsed */
    } else {
        DL_DELETE(in->bucket->passing, in);
    }
    DL_APPEND(in->bucket->passing, in);
    reg_wake(r, in->heartbeat_ms + in->ttl_ms); /* a revival may come first */
    in->ttl_set = (unsigned char)status;
    if (reg_ttl_note(in, note))
        r->gen++;
    r->stats.renewed++;
    now_status = reg_ttl_status(in);
    if (now_status == prev)
        return 0;
    /* a lapsed check revived is one of the changes the tick's lease
     * covers (see "The index"); other updates may change it at any rate */
    if (!revival && reg_lease_ensure(r, err, sizeof(err)) != 0)
        log_warn("could not queue the index lease: %s", err);
    in->ttl_change_ms = in->heartbeat_ms;
    (void)reg_refresh(r, in);
    log_info("instance %s: its ttl check is %s", in->id,
             now_status == REG_PASSING   ? "passing again"
             : now_status == REG_WARNING ? "warning"
                                         : "critical");
    reg_emit_health(r, in, reg_ttl_id(in, cid, sizeof(cid)), prev, now_status, in->heartbeat_ms);
    return 0;
}

int reg_renew(struct reg_registry *r, const char *id)
{
    return reg_ttl_update(r, id, REG_PASSING, NULL);
}

/* The given check of in named check_id, or NULL. */
static struct reg_check *reg_check_find(struct reg_instance *in, const char *check_id)
{
    size_t i;

    for (i = 0; in->ext && i < in->ext->n; i++)
        if (strcmp(in->ext->checks[i].id, check_id) == 0)
            return &in->ext->checks[i];
    return NULL;
}

/* Keep output (cut at LIM_CHECK_OUTPUT_MAX bytes) as c's; when out of
 * memory the old one stays. Whether it changed. */
static bool reg_check_output(struct reg_check *c, const char *output)
{
    size_t n = strnlen(output, LIM_CHECK_OUTPUT_MAX);
    char *copy = NULL;

    if (c->output && strncmp(c->output, output, n) == 0 && c->output[n] == '\0')
        return false;
    copy = malloc(n + 1);
    if (!copy)
        return false;
    memcpy(copy, output, n);
    copy[n] = '\0';
    free(c->output);
    c->output = copy;
    return true;
}

/* ---------------------------------------------------------------------- */
/* check records (shared store with leases): the leader puts a check's
 * status change as REG_CHECK_PREFIX<instance-id>/<check-id>, document
 * "<status digit> <since, Unix ms>\n<output>", and every replica (the
 * leader in the put's completion) applies it at that commit's revision. */

/* Split a check record's id into its instance id (into iid, LIM_ID_MAX +
 * 1 bytes) and its check id (returned, into id); NULL when id is none. */
static const char *reg_checkrec_split(const char *id, char *iid)
{
    size_t n = sizeof(REG_CHECK_PREFIX) - 1;
    const char *rest = NULL, *slash = NULL;

    if (!id || strncmp(id, REG_CHECK_PREFIX, n) != 0)
        return NULL;
    rest = id + n;
    slash = strchr(rest, '/');
    if (!slash || slash == rest || (size_t)(slash - rest) > LIM_ID_MAX || slash[1] == '\0')
        return NULL;
    memcpy(iid, rest, (size_t)(slash - rest));
    iid[slash - rest] = '\0';
    return slash + 1;
}

/* Apply the check record id -> doc (committed) to its check, if its
 * instance and check are here: its status since the record's time, its
 * output; a status change moves the instance's health and, when emit, is
 * told to the observer at the commit's revision. */
static void reg_checkrec_apply(struct reg_registry *r, const char *id, const char *doc, size_t len,
                               bool emit)
{
    char iid[LIM_ID_MAX + 1];
    const char *cid = reg_checkrec_split(id, iid);
    struct reg_instance *in = NULL;
    struct reg_check *c = NULL;
    const char *nl = NULL;
    char *end = NULL;
    char num[24], out[LIM_CHECK_OUTPUT_MAX + 1];
    size_t n;
    long long since;
    enum reg_health prev, now;

    if (!cid || !doc || len < 3 || doc[0] < '0' || doc[0] > '2' || doc[1] != ' ') {
        reg_lag(r, id ? id : "(null)", "not a check record");
        return;
    }
    HASH_FIND_STR(r->by_id, iid, in);
    c = in ? reg_check_find(in, cid) : NULL;
    if (!c || c->rules.kind == REG_CHECK_TTL)
        return; /* gone, or replaced without that check, since */
    now = (enum reg_health)(doc[0] - '0');
    /* the document is borrowed with its length, not always NUL-terminated */
    nl = memchr(doc, '\n', len);
    n = (size_t)((nl ? nl : doc + len) - (doc + 2));
    if (n >= sizeof(num))
        n = sizeof(num) - 1;
    memcpy(num, doc + 2, n);
    num[n] = '\0';
    since = strtoll(num, &end, 10);
    if (c->queued && c->want == (unsigned char)now)
        c->queued = 0;
    if (nl) {
        n = len - (size_t)(nl + 1 - doc);
        if (n > LIM_CHECK_OUTPUT_MAX)
            n = LIM_CHECK_OUTPUT_MAX;
        memcpy(out, nl + 1, n);
        out[n] = '\0';
        if (reg_check_output(c, out))
            r->gen++;
    }
    prev = (enum reg_health)c->st.status;
    if (prev == now)
        return;
    c->st.status = (unsigned char)now;
    c->st.last_change_ms = end && end != num && since > 0 ? (int64_t)since : reg_now(r);
    (void)reg_refresh(r, in);
    if (!emit)
        return;
    if (now == REG_PASSING)
        log_info("instance %s: check %s is passing again", in->id, c->id);
    else
        log_warn("instance %s: check %s is %s: %s", in->id, c->id,
                 now == REG_WARNING ? "warning" : "critical", c->output ? c->output : "");
    r->health_commit = true;
    reg_emit_health(r, in, c->id, prev, now, reg_now(r));
    r->health_commit = false;
}

static void reg_checkrec_write_free(struct reg_checkrec_write *w)
{
    if (!w)
        return;
    free(w->id);
    free(w->doc);
    free(w);
}

/* Completion of this replica's check record: applied as every replica
 * applies it. */
static void reg_checkrec_done(void *arg, int rc, const char *err)
{
    struct reg_checkrec_write *w = arg;
    char iid[LIM_ID_MAX + 1];
    const char *cid = reg_checkrec_split(w->id, iid);
    struct reg_instance *in = NULL;
    struct reg_check *c = NULL;

    if (rc == 0) {
        reg_checkrec_apply(w->r, w->id, w->doc, w->len, true);
    } else {
        log_warn("could not store the status of check %s (the next probe tries again): %s", w->id,
                 err ? err : "unknown error");
    }
    HASH_FIND_STR(w->r->by_id, iid, in);
    c = in && cid ? reg_check_find(in, cid) : NULL;
    if (c)
        c->queued = 0;
    reg_checkrec_write_free(w);
}

/* reg_check_result on a shared store with leases: only the leader moves
 * checks; a status change is put as the check's record (output changes
 * alone are kept here, not written) and applied at its commit. */
static int reg_checkrec_report(struct reg_registry *r, struct reg_instance *in, struct reg_check *c,
                               enum reg_health result, int64_t now)
{
    struct chk_state next = c->st;
    struct reg_checkrec_write *w = NULL;
    unsigned char want;
    char err[256];
    int n;

    if (!r->leader)
        return 0; /* a late report: the leader's probes decide */
    if (!chk_apply(&next, &c->rules.policy, result, now)) {
        c->st = next; /* the run of results moves on */
        return 0;
    }
    /* the run moves on; the status only when the record commits */
    want = next.status;
    next.status = c->st.status;
    next.last_change_ms = c->st.last_change_ms;
    c->st = next;
    if (c->queued && c->want == want)
        return 0;
    w = calloc(1, sizeof(*w));
    if (!w)
        goto oom;
    w->r = r;
    n = snprintf(NULL, 0, "%s%s/%s", REG_CHECK_PREFIX, in->id, c->id);
    w->id = malloc((size_t)n + 1);
    w->doc = malloc(LIM_CHECK_OUTPUT_MAX + 32);
    if (!w->id || !w->doc)
        goto oom;
    snprintf(w->id, (size_t)n + 1, "%s%s/%s", REG_CHECK_PREFIX, in->id, c->id);
    w->len = (size_t)snprintf(w->doc, LIM_CHECK_OUTPUT_MAX + 32, "%d %lld\n%s", (int)want,
                              (long long)now, c->output ? c->output : "");
    if (store_put(r->store, w->id, w->doc, w->len, reg_checkrec_done, w, err, sizeof(err)) != 0) {
        log_warn("could not queue the status of check %s: %s", w->id, err);
        reg_checkrec_write_free(w);
        return 0;
    }
    c->queued = 1;
    c->want = want;
    return 0;
oom:
    log_warn("could not store the status of check %s of %s: out of memory", c->id, in->id);
    reg_checkrec_write_free(w);
    return 0;
}

int reg_check_result(struct reg_registry *r, const char *id, const char *check_id,
                     enum reg_health result, const char *output)
{
    struct reg_instance *in = NULL;
    struct reg_check *c = NULL;
    enum reg_health prev;
    int64_t now;
    char err[256];

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    c = reg_check_find(in, check_id);
    if (!c || c->rules.kind == REG_CHECK_TTL)
        return 1;
    if (r->leases && !r->leader)
        return 0; /* a late report: the leader's probes decide */
    if (reg_check_output(c, output ? output : ""))
        r->gen++;
    prev = (enum reg_health)c->st.status;
    now = reg_now(r);
    if (r->leases)
        return reg_checkrec_report(r, in, c, result, now);
    if (!chk_apply(&c->st, &c->rules.policy, result, now))
        return 0;
    /* a change the next tick's lease may not cover yet */
    if (reg_lease_ensure(r, err, sizeof(err)) != 0)
        log_warn("could not queue the index lease: %s", err);
    (void)reg_refresh(r, in);
    if (c->st.status == REG_PASSING)
        log_info("instance %s: check %s is passing again", in->id, c->id);
    else
        log_warn("instance %s: check %s is %s: %s", in->id, c->id,
                 c->st.status == REG_WARNING ? "warning" : "critical", c->output ? c->output : "");
    reg_emit_health(r, in, c->id, prev, (enum reg_health)c->st.status, now);
    return 0;
}

static void reg_apply_put(struct reg_registry *r, const char *id, const char *doc, size_t len);

/* The start of the completion of a write of an instance's document
 * queued by reg_queue_ext: the index's count and the instance's pin
 * released, the instance it was asked for (NULL when it is gone or was
 * replaced since). */
static struct reg_instance *reg_ext_write_target(struct reg_write *w)
{
    struct reg_registry *r = w->r;
    struct reg_instance *in = NULL;

    r->pending_adv--;
    HASH_FIND_STR(r->by_id, w->id, in);
    if (in && w->pinned)
        in->busy--;
    return in && in->seq == w->seq ? in : NULL;
}

/* Queue the document of in as it would be with ext view (borrowed; the
 * codec only reads it) to the store, done_cb completing it; w->maint_ext
 * takes owned (what the completion applies; freed with the write when it
 * is not queued, and on -1). done(arg, ...) runs once the completion
 * applied it. 0, or -1 with err. */
static int reg_queue_ext(struct reg_registry *r, struct reg_instance *in, struct reg_ext *view,
                         struct reg_ext *owned, store_done_fn done_cb, reg_done_fn done, void *arg,
                         char *err, size_t errlen)
{
    struct reg_instance shown = *in;
    struct reg_write *w = calloc(1, sizeof(*w));
    char *doc = NULL;
    size_t len = 0;
    int rc = -1;

    shown.ext = view;
    doc = w ? r->opt.codec->encode_instance(&shown, &len) : NULL;
    if (!doc) {
        errbuf_set(err, errlen, "out of memory");
        reg_ext_free(owned);
        free(w);
        return -1;
    }
    w->r = r;
    snprintf(w->id, sizeof(w->id), "%s", in->id);
    w->seq = in->seq;
    w->done = done;
    w->arg = arg;
    w->maint_ext = owned;
    if (reg_adv_begin(r, err, errlen) != 0)
        goto cleanup;
    if (store_put(r->store, in->id, doc, len, done_cb, w, err, errlen) != 0) {
        r->pending_adv--;
        goto cleanup;
    }
    in->busy++;
    w->pinned = true;
    if (r->shared) {
        /* kept for the completion (see reg_write.doc) */
        w->doc = doc;
        w->doc_len = len;
        doc = NULL;
    }
    w = NULL;
    rc = 0;
cleanup:
    reg_write_free(w);
    free(doc);
    return rc;
}

/* A committed maintenance change: in takes the maintenance part x
 * (taken; it has no checks) and, when that changed it, the observer hears
 * REG_EV_MAINTENANCE. */
static void reg_maint_apply(struct reg_registry *r, struct reg_instance *in, struct reg_ext *x)
{
    bool was = in->ext && in->ext->maint;
    bool changed = was != x->maint || (was && strcmp(in->ext->maint_reason, x->maint_reason) != 0);

    if (!in->ext) {
        in->ext = x;
        x = NULL;
    } else {
        free(in->ext->maint_reason);
        in->ext->maint = x->maint;
        in->ext->maint_since_ms = x->maint_since_ms;
        in->ext->maint_reason = x->maint_reason;
        x->maint_reason = NULL;
    }
    reg_ext_free(x);
    (void)reg_refresh(r, in);
    if (changed) {
        log_info("instance %s: maintenance %s%s%s", in->id, in->ext->maint ? "on" : "off",
                 in->ext->maint ? ": " : "", in->ext->maint ? in->ext->maint_reason : "");
        reg_emit(r, REG_EV_MAINTENANCE, in, reg_now(r));
    }
}

/* Store completion of a maintenance change: on success the instance it
 * was asked for, if still there, takes the change (w->maint_ext holds only
 * the maintenance part). */
static void reg_maint_done(void *arg, int rc, const char *err)
{
    struct reg_write *w = arg;
    struct reg_registry *r = w->r;
    struct reg_instance *in = reg_ext_write_target(w);

    if (rc == 0 && in) {
        reg_maint_apply(r, in, w->maint_ext);
        w->maint_ext = NULL;
    } else if (rc == 0 && w->doc) {
        reg_apply_put(r, w->id, w->doc, w->doc_len);
    }
    if (w->done)
        w->done(w->arg, rc, err);
    reg_write_free(w);
}

int reg_maintenance(struct reg_registry *r, const char *id, bool enable, const char *reason,
                    reg_done_fn done, void *arg, char *err, size_t errlen)
{
    struct reg_instance *in = NULL;
    struct reg_ext shown;
    struct reg_ext *x = NULL;

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->busy || in->removing)
        return 2;
    x = calloc(1, sizeof(*x));
    if (!x)
        goto oom;
    if (enable) {
        x->maint = true;
        x->maint_since_ms = in->ext && in->ext->maint ? in->ext->maint_since_ms : reg_now(r);
        x->maint_reason = strdup(reason ? reason : "");
        if (!x->maint_reason)
            goto oom;
    }
    /* the document the instance will have, encoded from a copy of its ext
     * that sees the change (the checks are the instance's) */
    memset(&shown, 0, sizeof(shown));
    if (in->ext)
        shown = *in->ext;
    shown.maint = x->maint;
    shown.maint_since_ms = x->maint_since_ms;
    shown.maint_reason = x->maint_reason;
    return reg_queue_ext(r, in, &shown, x, reg_maint_done, done, arg, err, errlen);
oom:
    errbuf_set(err, errlen, "out of memory");
    reg_ext_free(x);
    return -1;
}

/* A copy of in's ext (NULL: an empty one) with check cs (borrowed; NULL:
 * none) added, or replacing the given check of its id (which starts
 * again), and the check drop_id (NULL: none) left out; the others keep
 * their state and output. NULL when out of memory. */
static struct reg_ext *reg_ext_edit(const struct reg_instance *in, const struct reg_check_spec *cs,
                                    const char *drop_id)
{
    const struct reg_ext *old = in->ext;
    struct reg_ext *x = calloc(1, sizeof(*x));
    size_t i, n = old ? old->n : 0;

    if (!x)
        return NULL;
    x->checks = calloc(n + 1, sizeof(*x->checks));
    if (!x->checks)
        goto fail;
    for (i = 0; i < n; i++) {
        const struct reg_check *c = &old->checks[i];
        struct reg_check *d = &x->checks[x->n];
        size_t len = strlen(c->id) + 1 + strlen(c->target) + 1;

        if ((drop_id && strcmp(c->id, drop_id) == 0) || (cs && strcmp(c->id, cs->id) == 0))
            continue;
        *d = *c;
        d->id = malloc(len);
        d->output = NULL;
        if (!d->id)
            goto fail;
        memcpy(d->id, c->id, len);
        d->target = d->id + (c->target - c->id);
        x->n++;
        if (c->output && !(d->output = strdup(c->output)))
            goto fail;
    }
    if (cs) {
        if (reg_check_set(&x->checks[x->n], in->id, x->n, cs) != 0)
            goto fail; /* its last_change_ms 0: set at the commit */
        x->n++;
    }
    for (i = 0; i < x->n; i++)
        if (x->checks[i].rules.kind != REG_CHECK_TTL && x->checks[i].rules.deregister_after_ms > 0)
            x->reaped = true;
    if (old) {
        x->maint = old->maint;
        x->maint_since_ms = old->maint_since_ms;
        if ((old->maint_reason && !(x->maint_reason = strdup(old->maint_reason))) ||
            (old->ttl_note && !(x->ttl_note = strdup(old->ttl_note))))
            goto fail;
    }
    return x;
fail:
    reg_ext_free(x);
    return NULL;
}

/* Store completion of a check added or removed: on success the instance
 * it was asked for, if still there, takes its new checks (w->maint_ext
 * holds the whole new ext), reported as a re-registration. */
static void reg_checks_done(void *arg, int rc, const char *err)
{
    struct reg_write *w = arg;
    struct reg_registry *r = w->r;
    struct reg_instance *in = reg_ext_write_target(w);

    if (rc == 0 && in) {
        struct reg_ext *old = in->ext, *x = w->maint_ext;
        int64_t now = reg_now(r);
        size_t i;

        if (old && old->reaped)
            DL_DELETE2(r->reaped, in, ext->rprev, ext->rnext);
        r->active_checks -= reg_active_count(in);
        for (i = 0; i < x->n; i++)
            if (x->checks[i].st.last_change_ms == 0)
                x->checks[i].st.last_change_ms = now; /* the new one */
        in->ext = x;
        w->maint_ext = old;
        r->active_checks += reg_active_count(in);
        if (x->reaped)
            DL_APPEND2(r->reaped, in, ext->rprev, ext->rnext);
        (void)reg_refresh(r, in);
        reg_emit(r, REG_EV_REGISTER, in, now);
    } else if (rc == 0 && w->doc) {
        reg_apply_put(r, w->id, w->doc, w->doc_len);
    }
    if (w->done)
        w->done(w->arg, rc, err);
    reg_write_free(w);
}

int reg_check_add(struct reg_registry *r, const char *id, const struct reg_check_spec *cs,
                  reg_done_fn done, void *arg, char *err, size_t errlen)
{
    struct reg_instance *in = NULL;
    struct reg_ext *x = NULL;
    size_t i, kept = 0;
    int rc;

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->busy || in->removing)
        return 2;
    if (cs->kind == REG_CHECK_TTL || !cs->id[0]) {
        errbuf_set(err, errlen, "%s",
                   cs->id[0] ? "a ttl check comes with the registration" : "the check needs an id");
        return 3;
    }
    if (in->ttl_ms > 0) {
        char ttl_id[LIM_CHECK_ID_MAX + 1];

        if (strcmp(reg_ttl_id(in, ttl_id, sizeof(ttl_id)), cs->id) == 0) {
            errbuf_set(err, errlen, "check id '%s' is the instance's ttl check", cs->id);
            return 3;
        }
        kept = 1;
    }
    for (i = 0; in->ext && i < in->ext->n; i++)
        kept += in->ext->checks[i].rules.kind == REG_CHECK_TTL
                    ? 0
                    : strcmp(in->ext->checks[i].id, cs->id) != 0;
    if (kept >= LIM_CHECKS_MAX) {
        errbuf_set(err, errlen, "the instance has %zu checks; at most %d are allowed", kept,
                   LIM_CHECKS_MAX);
        return 3;
    }
    x = reg_ext_edit(in, cs, NULL);
    if (!x) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    rc = reg_queue_ext(r, in, x, x, reg_checks_done, done, arg, err, errlen);
    if (rc == 0 && r->leases)
        reg_checkrec_del(r, id, cs->id); /* a replaced check starts again */
    return rc;
}

int reg_check_remove(struct reg_registry *r, const char *id, const char *check_id, reg_done_fn done,
                     void *arg, char *err, size_t errlen)
{
    struct reg_instance *in = NULL;
    struct reg_ext *x = NULL;
    size_t i;
    int rc;

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->busy || in->removing)
        return 2;
    for (i = 0; in->ext && i < in->ext->n; i++)
        if (strcmp(in->ext->checks[i].id, check_id) == 0)
            break;
    if (!in->ext || i == in->ext->n)
        return 3;
    if (in->ext->checks[i].rules.kind == REG_CHECK_TTL) {
        errbuf_set(err, errlen, "check '%s' is the instance's ttl check (its lease)", check_id);
        return 4;
    }
    x = reg_ext_edit(in, NULL, check_id);
    if (!x) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    rc = reg_queue_ext(r, in, x, x, reg_checks_done, done, arg, err, errlen);
    if (rc == 0 && r->leases)
        reg_checkrec_del(r, id, check_id);
    return rc;
}

const struct reg_instance *reg_get(const struct reg_registry *r, const char *id)
{
    struct reg_instance *in = NULL;

    HASH_FIND_STR(r->by_id, id, in);
    return in;
}

/* Whether in carries tag. */
static bool reg_has_tag(const struct reg_instance *in, const char *tag)
{
    size_t i;

    for (i = 0; i < in->tag_count; i++)
        if (strcmp(reg_instance_tag(in, i), tag) == 0)
            return true;
    return false;
}

/* Whether in passes every non-NULL member of f. */
static bool reg_matches(const struct reg_instance *in, const struct reg_filter *f)
{
    return (!f->name || strcmp(in->name, f->name) == 0) &&
           (!f->type || strcmp(in->type, f->type) == 0) && (!f->tag || reg_has_tag(in, f->tag)) &&
           (f->health < 0 || (int)in->health == f->health ||
            (f->health_or_better && (int)in->health < f->health));
}

const struct reg_instance *reg_discover(struct reg_registry *r, const char *name, const char *type,
                                        enum reg_strategy strategy)
{
    struct reg_group *g = NULL;
    struct reg_instance *pick = NULL;
    size_t i, start;

    if (name)
        HASH_FIND_STR(r->names, name, g);
    else if (type)
        HASH_FIND_STR(r->types, type, g);
    if (!g || g->n == 0)
        return NULL;
    start =
        strategy == REG_ROUND_ROBIN ? (size_t)(g->rr++ % g->n) : (size_t)rand_r(&r->seed) % g->n;
    if (!name || !type)
        return g->items[start];
    /* Both given: from start on, the first instance of the name that also
     * has the type; the moving start keeps the choice spread. */
    for (i = 0; i < g->n && !pick; i++) {
        struct reg_instance *in = g->items[(start + i) % g->n];

        if (strcmp(in->type, type) == 0)
            pick = in;
    }
    return pick;
}

int reg_foreach(const struct reg_registry *r, const struct reg_filter *f, reg_each_fn fn, void *arg)
{
    const struct reg_instance *in;

    for (in = r->by_id; in; in = in->hh.next) {
        if (!reg_matches(in, f))
            continue;
        if (fn(in, arg) != 0)
            return -1;
    }
    return 0;
}

int reg_foreach_from(const struct reg_registry *r, const struct reg_filter *f, struct reg_cursor *c,
                     reg_step_fn fn, void *arg)
{
    const struct reg_instance *in = NULL;
    int rc = 0;

    if (c->seq == 0) {
        in = r->by_id;
    } else {
        HASH_FIND_STR(r->by_id, c->id, in);
        if (in && in->seq == c->seq) {
            in = in->hh.next;
        } else {
            /* the last one passed is gone (or was replaced): the first
             * later one, found by its seq (rare: one pass) */
            for (in = r->by_id; in && in->seq <= c->seq; in = in->hh.next)
                ;
        }
    }
    for (; in; in = in->hh.next) {
        if (!reg_matches(in, f))
            continue;
        rc = fn(in, arg);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            c->seq = in->seq;
            snprintf(c->id, sizeof(c->id), "%s", in->id);
            return 1;
        }
    }
    return 0;
}

/* The max-heap of reg_page, on ids: move h[i] down below larger children. */
static void reg_heap_down(const struct reg_instance **h, size_t n, size_t i)
{
    for (;;) {
        size_t big = i, l = 2 * i + 1, rt = 2 * i + 2;
        const struct reg_instance *t = NULL;

        if (l < n && strcmp(h[l]->id, h[big]->id) > 0)
            big = l;
        if (rt < n && strcmp(h[rt]->id, h[big]->id) > 0)
            big = rt;
        if (big == i)
            return;
        t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

/* Move h[i] up above smaller parents. */
static void reg_heap_up(const struct reg_instance **h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        const struct reg_instance *t = NULL;

        if (strcmp(h[p]->id, h[i]->id) >= 0)
            return;
        t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* qsort comparator: instances by id. */
static int reg_cmp_id(const void *a, const void *b)
{
    const struct reg_instance *x = *(const struct reg_instance *const *)a;
    const struct reg_instance *y = *(const struct reg_instance *const *)b;

    return strcmp(x->id, y->id);
}

size_t reg_page(const struct reg_registry *r, const struct reg_filter *f, const char *after,
                size_t limit, const struct reg_instance **out, bool *more)
{
    const struct reg_instance *in;
    size_t cap = limit + 1, n = 0;

    /* keep the limit + 1 smallest ids after `after`: the extra one says
     * whether more follow */
    for (in = r->by_id; in; in = in->hh.next) {
        if ((after && strcmp(in->id, after) <= 0) || !reg_matches(in, f))
            continue;
        if (n < cap) {
            out[n] = in;
            reg_heap_up(out, n++);
        } else if (strcmp(in->id, out[0]->id) < 0) {
            out[0] = in;
            reg_heap_down(out, n, 0);
        }
    }
    qsort(out, n, sizeof(*out), reg_cmp_id);
    *more = n > limit;
    return *more ? limit : n;
}

/* Whether this replica removes instances critical too long: on a local
 * store always, on a shared one only the leader, and only when leases
 * decide the TTL checks (then every replica agrees on who is critical). */
static bool reg_removes(const struct reg_registry *r)
{
    return !r->shared || (r->leases && r->leader);
}

/* Whether the critical in is due for removal after grace: locally its
 * last heartbeat plus ttl plus grace; on a shared store (heartbeats are
 * each replica's own) since its TTL check turned critical. */
static bool reg_removal_due(const struct reg_registry *r, const struct reg_instance *in,
                            int64_t grace, int64_t now)
{
    if (r->shared)
        return in->ttl_change_ms + grace <= now;
    return in->heartbeat_ms + in->ttl_ms + grace <= now;
}

/* Queue the removal of the instances one of whose active checks has been
 * critical longer than its deregister_after_ms. The number queued. */
static size_t reg_reap(struct reg_registry *r, int64_t now)
{
    struct reg_instance *in, *tmp;
    size_t queued = 0, i;
    char err[256];

    DL_FOREACH_SAFE2(r->reaped, in, tmp, ext->rnext)
    {
        const struct reg_check *due = NULL;

        if (in->removing)
            continue;
        for (i = 0; i < in->ext->n && !due; i++) {
            const struct reg_check *c = &in->ext->checks[i];

            if (c->rules.kind != REG_CHECK_TTL && c->rules.deregister_after_ms > 0 &&
                c->st.status == REG_CRITICAL &&
                c->st.last_change_ms + c->rules.deregister_after_ms <= now)
                due = c;
        }
        if (!due)
            continue;
        log_info("removing instance %s: check %s critical for longer than %lld ms", in->id, due->id,
                 (long long)due->rules.deregister_after_ms);
        if (reg_queue_del(r, in->id, true, NULL, NULL, err, sizeof(err)) != 0) {
            log_warn("could not delete %s from the store: %s", in->id, err);
            continue;
        }
        in->removing = 1;
        queued++;
    }
    return queued;
}

size_t reg_tick(struct reg_registry *r)
{
    struct reg_bucket *b, *btmp;
    size_t changed = 0;
    int64_t now = reg_now(r);
    char err[256];

    /* the lease covers the health changes of this tick and the next */
    if (reg_lease_ensure(r, err, sizeof(err)) != 0)
        log_warn("could not queue the index lease: %s", err);
    HASH_ITER (hh, r->buckets, b, btmp) {
        int64_t ttl_ms = b->key.ttl_ms;
        int64_t grace = b->key.grace_ms;
        struct reg_instance *in;

        /* Critical ones due for removal: the store deletes them first,
         * memory follows in reg_del_done. Those already on their way are
         * skipped; a failed deletion is tried again on a later tick. Not
         * on a shared store: this replica's view of health is its own (a
         * renewal may reach another replica only), and a removal would be
         * every replica's (catalog.h). */
        for (in = reg_removes(r) ? b->critical : NULL; in && reg_removal_due(r, in, grace, now);
             in = in->next) {
            if (in->removing)
                continue;
            log_info("removing instance %s: critical for longer than %lld ms", in->id,
                     (long long)grace);
            if (reg_queue_del(r, in->id, true, NULL, NULL, err, sizeof(err)) != 0) {
                log_warn("could not delete %s from the store: %s", in->id, err);
                continue;
            }
            in->removing = 1;
            changed++;
        }
        /* on a shared store the leases decide the lapse, not this clock */
        while (!r->leases && b->passing && b->passing->heartbeat_ms + ttl_ms <= now) {
            char cid[LIM_CHECK_ID_MAX + 1];

            enum reg_health prev;

            in = b->passing;
            prev = reg_ttl_status(in);
            DL_DELETE(b->passing, in);
            in->ttl_health = REG_CRITICAL;
            DL_APPEND(b->critical, in);
            reg_mark_dirty(r, in);
            r->stats.expired++;
            changed++;
            log_warn("instance %s is critical: no renewal within its ttl of %d ms", in->id,
                     (int)in->ttl_ms);
            if (prev == REG_CRITICAL)
                continue; /* an update had said so already */
            in->ttl_change_ms = now;
            (void)reg_refresh(r, in);
            reg_emit_health(r, in, reg_ttl_id(in, cid, sizeof(cid)), prev, REG_CRITICAL, now);
        }
    }
    if (reg_removes(r))
        changed += reg_reap(r, now);
    reg_flush_health(r);
    r->wake_at = INT64_MAX;
    reg_wake(r, reg_next_deadline(r));
    return changed;
}

int reg_load_record(struct reg_registry *r, const char *id, const char *doc, size_t doc_len)
{
    struct reg_spec spec;
    struct reg_instance *in = NULL;
    char err[256];
    int rc = -1;

    if (strcmp(id, REG_META_INDEX_ID) == 0 && !r->shared) {
        char *end = NULL;
        unsigned long long v = strtoull(doc, &end, 10);

        if (end == doc || *end != '\0') {
            log_warn("skipping stored record %s: not an index", id);
            return 0;
        }
        if (v > r->index)
            r->index = r->lease = r->lease_durable = (uint64_t)v;
        return 0;
    }
    if (r->shared && reg_alive_target(id)) {
        int64_t lease = reg_alive_parse(doc, doc_len);

        if (lease > 0)
            reg_alive_apply(r, reg_alive_target(id), lease);
        return 0;
    }
    if (r->leases && strncmp(id, REG_CHECK_PREFIX, sizeof(REG_CHECK_PREFIX) - 1) == 0) {
        /* applied by reg_load_finish: its instance may come later */
        struct reg_checkrec_load *l = calloc(1, sizeof(*l));

        if (!l || !(l->id = strdup(id)) || !(l->doc = malloc(doc_len + 1))) {
            if (l)
                free(l->id);
            free(l);
            return -1;
        }
        memcpy(l->doc, doc, doc_len);
        l->doc[doc_len] = '\0';
        l->len = doc_len;
        l->next = r->loaded_checks;
        r->loaded_checks = l;
        return 0;
    }
    if (id[0] == REG_META_PREFIX_CHAR)
        return 0; /* another module's record (a KV key) */
    if (r->opt.codec->decode(doc, doc_len, &spec, err, sizeof(err)) != 0) {
        log_warn("skipping stored record %.200s: %s", id, err);
        return 0;
    }
    if (!spec.has_id || strcmp(spec.id, id) != 0) {
        log_warn("skipping stored record %.200s: its document names another id", id);
        rc = 0;
        goto cleanup;
    }
    HASH_FIND_STR(r->by_id, id, in);
    if (in) {
        in = NULL;
        rc = 0;
        goto cleanup;
    }
    in = calloc(1, sizeof(*in));
    if (!in || reg_instance_set(in, id, &spec) != 0 || reg_reserve(r, in) != 0)
        goto cleanup;
    reg_attach(r, in, reg_now(r));
    /* shared: the record's own revision (see store_load); else set by
     * reg_load_finish to the index then */
    in->create_index = in->modify_index = store_revision(r->store);
    if (spec.critical_since_ms > 0 && in->bucket && !r->shared) {
        /* critical before the restart: critical since the same time */
        DL_DELETE(in->bucket->passing, in);
        in->ttl_health = in->stored = REG_CRITICAL;
        in->heartbeat_ms = (int64_t)spec.critical_since_ms - in->ttl_ms;
        in->ttl_change_ms = (int64_t)spec.critical_since_ms;
        DL_APPEND(in->bucket->critical, in);
        (void)reg_refresh(r, in);
    }
    in = NULL;
    rc = 0;
cleanup:
    reg_instance_free(r, in);
    reg_spec_clear(&spec);
    return rc;
}

/* Order of a critical list: by last heartbeat (DL_SORT comparator). */
static int reg_cmp_heartbeat(const struct reg_instance *a, const struct reg_instance *b)
{
    return a->heartbeat_ms < b->heartbeat_ms ? -1 : a->heartbeat_ms > b->heartbeat_ms;
}

/* store_load callback of reg_load: reg_load_record. */
static int reg_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    return reg_load_record(arg, id, doc, doc_len);
}

void reg_load_finish(struct reg_registry *r)
{
    struct reg_bucket *b, *btmp;
    struct reg_instance *in, *itmp;

    /* The store's order is not the heartbeats': expiry reads list heads. */
    HASH_ITER (hh, r->buckets, b, btmp)
        DL_SORT(b->critical, reg_cmp_heartbeat);
    while (r->loaded_checks) {
        struct reg_checkrec_load *l = r->loaded_checks;

        r->loaded_checks = l->next;
        reg_checkrec_apply(r, l->id, l->doc, l->len, false);
        free(l->id);
        free(l->doc);
        free(l);
    }
    if (r->shared) {
        /* a TTL check without an alive record: its lease lapsed (or the
         * record of a registration just made is still on its way) */
        HASH_ITER (hh, r->by_id, in, itmp) {
            if (r->leases && in->ttl_ms > 0 && in->lease == 0 && in->ttl_health == REG_PASSING) {
                DL_DELETE(in->bucket->passing, in);
                DL_APPEND(in->bucket->critical, in);
                in->ttl_health = REG_CRITICAL;
                (void)reg_refresh(r, in);
            }
        }
        reg_orphans_clear(r);
        /* the revision the state was read at; each instance has its own */
        (void)reg_change_remote(r);
        return;
    }
    /* the index record may come after the instances */
    HASH_ITER (hh, r->by_id, in, itmp)
        in->create_index = in->modify_index = r->index;
}

long reg_load(struct reg_registry *r, char *err, size_t errlen)
{
    size_t before = r->stats.instances;

    if (store_load(r->store, reg_load_one, r, err, errlen) != 0)
        return -1;
    reg_load_finish(r);
    return (long)(r->stats.instances - before);
}

/* ---------------------------------------------------------------------- */
/* other replicas' commits (a shared store) */

/* The checks given in spec under id are in's given checks, the same
 * rules in the same order. */
static bool reg_same_checks(const struct reg_instance *in, const char *id,
                            const struct reg_spec *spec)
{
    size_t i, n = in->ext ? in->ext->n : 0;

    if (n != spec->check_count)
        return false;
    for (i = 0; i < n; i++) {
        const struct reg_check *c = &in->ext->checks[i];
        const struct reg_check_spec *cs = &spec->checks[i];
        char def[LIM_CHECK_ID_MAX + 1];
        const char *cid = cs->id;

        if (!cid[0]) {
            snprintf(def, sizeof(def), "%s:%zu", id, i + 1);
            cid = def;
        }
        if (strcmp(c->id, cid) != 0 || strcmp(c->target, cs->target) != 0 ||
            c->rules.kind != (unsigned char)cs->kind ||
            c->rules.initial != (unsigned char)cs->status ||
            c->rules.interval_ms != cs->interval_ms || c->rules.timeout_ms != cs->timeout_ms ||
            c->rules.deregister_after_ms != cs->deregister_after_ms ||
            c->rules.policy.failures_before_critical != cs->policy.failures_before_critical ||
            c->rules.policy.successes_before_passing != cs->policy.successes_before_passing)
            return false;
    }
    return true;
}

/* Whether spec registers what in (of id) is, leaving maintenance aside:
 * a document that differs only there is a maintenance change. */
static bool reg_same_registration(const struct reg_instance *in, const char *id,
                                  const struct reg_spec *spec)
{
    size_t i;

    if (strcmp(in->name, spec->name) != 0 || strcmp(in->host, spec->host) != 0 ||
        strcmp(in->type, spec->type) != 0 || in->port != spec->port ||
        in->ttl_ms != (int32_t)spec->ttl_ms || in->tag_count != spec->tag_count ||
        in->meta_count != spec->meta_count)
        return false;
    for (i = 0; i < spec->tag_count; i++)
        if (strcmp(reg_instance_tag(in, i), reg_spec_tag(spec, i)) != 0)
            return false;
    for (i = 0; i < spec->meta_count; i++)
        if (strcmp(reg_instance_meta_key(in, i), reg_spec_meta_key(spec, i)) != 0 ||
            strcmp(reg_instance_meta_value(in, i), reg_spec_meta_value(spec, i)) != 0)
            return false;
    return reg_same_checks(in, id, spec);
}

/* Memory could not follow a commit (out of memory, or a document that
 * does not decode): it lags the store for that id until its next change. */
static void reg_lag(struct reg_registry *r, const char *id, const char *why)
{
    log_warn("could not apply the change of %.200s from the store (%s): this replica's copy of "
             "it lags until its next change",
             id, why);
    r->stats.lagged++;
}

/* Another replica's put of id: as a committed local registration (the
 * instance replaced, its create_index kept, heartbeat now here), or, when
 * only its maintenance differs, as a committed maintenance change. */
static void reg_apply_put(struct reg_registry *r, const char *id, const char *doc, size_t len)
{
    struct reg_spec spec;
    struct reg_instance *old = NULL, *in = NULL;
    struct reg_ext *x = NULL;
    char err[256];
    uint16_t busy = 0;
    int64_t now;

    if (r->opt.codec->decode(doc, len, &spec, err, sizeof(err)) != 0) {
        reg_lag(r, id, err);
        return;
    }
    if (!spec.has_id || strcmp(spec.id, id) != 0) {
        reg_lag(r, id, "its document names another id");
        goto cleanup;
    }
    HASH_FIND_STR(r->by_id, id, old);
    if (old && reg_same_registration(old, id, &spec)) {
        bool was = old->ext && old->ext->maint;

        old->seen = 1;
        if (was == spec.maint && (!was || strcmp(old->ext->maint_reason, spec.maint_reason) == 0)) {
            if (r->resetting)
                goto cleanup; /* the reset read again what is here */
        } else {
            x = calloc(1, sizeof(*x));
            if (!x || (spec.maint && !(x->maint_reason = strdup(spec.maint_reason)))) {
                reg_ext_free(x);
                reg_lag(r, id, "out of memory");
                goto cleanup;
            }
            x->maint = spec.maint;
            x->maint_since_ms = spec.maint_since_ms;
            reg_maint_apply(r, old, x);
            goto cleanup;
        }
    }
    in = calloc(1, sizeof(*in));
    if (!in || reg_instance_set(in, id, &spec) != 0 || reg_reserve(r, in) != 0) {
        reg_instance_free(r, in);
        reg_lag(r, id, "out of memory");
        goto cleanup;
    }
    now = reg_now(r);
    /* a local write of id in flight stays pinned to whoever holds the id:
     * its completion comes after this commit and applies after it */
    busy = old ? old->busy : 0;
    in->create_index = old ? old->create_index : reg_next_index(r);
    if (old) {
        in->lease = old->lease; /* until the writer's new alive record comes */
        reg_drop(r, old);
    }
    reg_attach(r, in, now);
    in->busy = busy;
    in->seen = 1;
    r->stats.registered++;
    reg_emit(r, REG_EV_REGISTER, in, now);
cleanup:
    reg_spec_clear(&spec);
}

/* RESET_END: every instance not put since RESET is gone. */
static void reg_reset_end(struct reg_registry *r)
{
    struct reg_instance *in, *tmp;

    HASH_ITER (hh, r->by_id, in, tmp) {
        if (!in->seen) {
            reg_remove(r, in, REG_EV_DEREGISTER);
            r->stats.deregistered++;
            continue;
        }
        in->seen = 0;
        /* its alive record was not read again: gone (lapsed) */
        if (in->ttl_ms > 0 && !in->alive_seen && in->lease != 0)
            reg_alive_gone(r, in->id);
        in->alive_seen = 0;
    }
    reg_orphans_clear(r);
    r->resetting = false;
}

void reg_apply_change(struct reg_registry *r, enum store_change kind, const char *id,
                      const char *doc, size_t len)
{
    struct reg_instance *in = NULL, *tmp = NULL;

    switch (kind) {
    case STORE_CH_RESET:
        HASH_ITER (hh, r->by_id, in, tmp)
            in->seen = in->alive_seen = 0;
        r->resetting = true;
        return;
    case STORE_CH_RESET_END:
        reg_reset_end(r);
        return;
    case STORE_CH_PUT:
        if (reg_alive_target(id)) {
            int64_t lease = reg_alive_parse(doc, len);

            if (lease > 0)
                reg_alive_apply(r, reg_alive_target(id), lease);
            else
                reg_lag(r, id, "its document is not a lease id");
        } else if (r->leases && id &&
                   strncmp(id, REG_CHECK_PREFIX, sizeof(REG_CHECK_PREFIX) - 1) == 0) {
            reg_checkrec_apply(r, id, doc, len, true);
        } else if (id && doc && id[0] != REG_META_PREFIX_CHAR) {
            reg_apply_put(r, id, doc, len);
        }
        return;
    case STORE_CH_DEL:
        if (reg_alive_target(id)) {
            reg_alive_gone(r, reg_alive_target(id));
            return;
        }
        if (!id || id[0] == REG_META_PREFIX_CHAR)
            return;
        HASH_FIND_STR(r->by_id, id, in);
        if (in) {
            reg_remove(r, in, REG_EV_DEREGISTER);
            r->stats.deregistered++;
        }
        return;
    }
}

void reg_get_stats(const struct reg_registry *r, struct reg_stats *out) { *out = r->stats; }

uint64_t reg_index(const struct reg_registry *r) { return r->index; }

uint64_t reg_generation(const struct reg_registry *r) { return r->gen; }

void reg_set_wake(struct reg_registry *r, reg_wake_fn fn, void *arg)
{
    r->wake = fn;
    r->wake_arg = arg;
    r->wake_at = INT64_MAX;
    reg_wake(r, reg_next_deadline(r));
}

int reg_change_begin(struct reg_registry *r, char *err, size_t errlen)
{
    return reg_adv_begin(r, err, errlen);
}

void reg_change_cancel(struct reg_registry *r) { r->pending_adv--; }

uint64_t reg_change_end(struct reg_registry *r, bool applied)
{
    r->pending_adv--;
    if (!applied)
        return 0;
    return r->shared ? reg_change_remote(r) : ++r->index;
}

uint64_t reg_change_remote(struct reg_registry *r)
{
    uint64_t rev = store_revision(r->store);

    if (rev > r->index)
        r->index = rev;
    return r->index;
}

uint64_t reg_change_predict(const struct reg_registry *r)
{
    return r->shared ? 0 : r->index + r->pending_adv;
}

bool reg_shared(const struct reg_registry *r) { return r->shared; }

void reg_set_leader(struct reg_registry *r, bool leader) { r->leader = leader; }

void reg_ttl_check_id(const struct reg_instance *in, char *buf, size_t len)
{
    snprintf(buf, len, "%s" REG_TTL_CHECK_SUFFIX, in->id);
}

const char *reg_instance_id(const struct reg_instance *in) { return in->id; }
const char *reg_instance_name(const struct reg_instance *in) { return in->name; }
const char *reg_instance_host(const struct reg_instance *in) { return in->host; }
const char *reg_instance_type(const struct reg_instance *in) { return in->type; }
int reg_instance_port(const struct reg_instance *in) { return in->port; }
int64_t reg_instance_ttl_ms(const struct reg_instance *in) { return in->ttl_ms; }
int64_t reg_instance_lease(const struct reg_instance *in) { return in->lease; }
enum reg_health reg_instance_health(const struct reg_instance *in)
{
    return (enum reg_health)in->health;
}
int64_t reg_instance_heartbeat_ms(const struct reg_instance *in) { return in->heartbeat_ms; }

uint64_t reg_instance_create_index(const struct reg_instance *in) { return in->create_index; }

uint64_t reg_instance_modify_index(const struct reg_instance *in) { return in->modify_index; }
int64_t reg_instance_ttl_change_ms(const struct reg_instance *in) { return in->ttl_change_ms; }
enum reg_health reg_instance_ttl_health(const struct reg_instance *in)
{
    return (enum reg_health)in->ttl_health;
}

size_t reg_instance_check_count(const struct reg_instance *in)
{
    size_t n = in->ext ? in->ext->n : 0;

    /* the default TTL check, when the TTL check is not among those given */
    return n + (in->ttl_ms > 0 && !reg_ttl_given(in));
}

void reg_instance_check(const struct reg_instance *in, size_t i, struct reg_check_view *out)
{
    const struct reg_check *c = NULL;
    size_t n = in->ext ? in->ext->n : 0;
    bool implicit = in->ttl_ms > 0 && !reg_ttl_given(in);

    memset(out, 0, sizeof(*out));
    if (implicit && i == 0) {
        reg_ttl_check_id(in, out->id_buf, sizeof(out->id_buf));
        out->id = out->id_buf;
        out->kind = REG_CHECK_TTL;
        out->target = "";
        out->initial = REG_PASSING;
        out->policy.failures_before_critical = out->policy.successes_before_passing = 1;
    } else {
        i -= implicit;
        if (i >= n)
            return;
        c = &in->ext->checks[i];
        out->id = c->id;
        out->kind = (enum reg_check_kind)c->rules.kind;
        out->target = c->target;
        out->interval_ms = c->rules.interval_ms;
        out->timeout_ms = c->rules.timeout_ms;
        out->deregister_after_ms = c->rules.deregister_after_ms;
        out->policy = c->rules.policy;
        out->initial = (enum reg_health)c->rules.initial;
        out->given = true;
    }
    if (out->kind == REG_CHECK_TTL) {
        out->status = reg_ttl_status(in);
        out->last_change_ms = in->ttl_change_ms;
        if (in->ttl_health == REG_CRITICAL)
            out->output = "no renewal within the ttl";
        else
            out->output = in->ext && in->ext->ttl_note ? in->ext->ttl_note : "";
    } else {
        out->status = (enum reg_health)c->st.status;
        out->last_change_ms = c->st.last_change_ms;
        out->output = c->output ? c->output : "";
    }
}

bool reg_instance_maintenance(const struct reg_instance *in, const char **reason, int64_t *since_ms)
{
    if (!in->ext || !in->ext->maint)
        return false;
    if (reason)
        *reason = in->ext->maint_reason ? in->ext->maint_reason : "";
    if (since_ms)
        *since_ms = in->ext->maint_since_ms;
    return true;
}

size_t reg_instance_tag_count(const struct reg_instance *in) { return in->tag_count; }

const char *reg_instance_tag(const struct reg_instance *in, size_t i)
{
    return in->strs + reg_instance_offs(in)[i];
}

size_t reg_instance_meta_count(const struct reg_instance *in) { return in->meta_count; }

const char *reg_instance_meta_key(const struct reg_instance *in, size_t i)
{
    return in->strs + reg_instance_offs(in)[in->tag_count + 2 * i];
}

const char *reg_instance_meta_value(const struct reg_instance *in, size_t i)
{
    return in->strs + reg_instance_offs(in)[in->tag_count + 2 * i + 1];
}

void *reg_instance_cache(const struct reg_instance *in) { return in->cache; }

/* The slot is the API's, outside the instance's value: writing it through
 * a const pointer is the documented exception (see catalog.h). */
void reg_instance_set_cache(const struct reg_instance *in, void *cache)
{
    ((struct reg_instance *)in)->cache = cache;
}
