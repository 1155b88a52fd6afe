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
    size_t reserved; /* slots of items kept for registrations waiting for their commit */
    size_t members;  /* instances referring to the group, any health, or waiting */
    uint64_t rr;     /* round-robin cursor */
    UT_hash_handle hh;
};

/* Instances sharing one ttl, each list ordered by last heartbeat. */
struct reg_bucket {
    int ttl;
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
    int port, ttl;
    void *cache; /* the API's (reg_instance_cache); freed by the codec */
    int64_t heartbeat_ms;
    uint64_t seq;           /* registration order: larger for every attach */
    unsigned char health;   /* enum reg_health */
    unsigned char removing; /* an expiry removal waits for its commit */
    unsigned char stored;   /* the health the store has (or is queued), or
                                            REG_STORED_UNKNOWN after a failed write */
    unsigned char dirty;    /* in r->dirty: its health is to be stored */
    uint16_t busy;          /* client writes of this id (re-registration, deregistration) in flight:
                      they decide what the store holds, so no health write meanwhile */
    struct reg_instance *dprev, *dnext;  /* in r->dirty */
    struct reg_bucket *bucket;           /* borrowed */
    struct reg_instance *prev, *next;    /* in bucket->passing or bucket->critical */
    struct reg_group *by_name, *by_type; /* borrowed */
    size_t name_pos, type_pos;           /* index in the groups' items while passing */
    UT_hash_handle hh;
};

/* reg_instance.stored after a failed health write: write it again. */
#define REG_STORED_UNKNOWN 2

/* A write waiting for its commit: what to apply to memory when the store
 * says it is durable, and whom to tell. */
struct reg_write {
    struct reg_registry *r;  /* borrowed */
    struct reg_instance *in; /* owned, prepared (reserved, unlinked); NULL for a deletion */
    char id[LIM_ID_MAX + 1];
    bool expiry;      /* a removal by reg_tick, not a client's deregistration */
    bool counted;     /* a new id, counted in r->pending_new until completion */
    bool pinned;      /* counted in the busy of the id's instance */
    reg_done_fn done; /* NULL for expiry removals */
    void *arg;
};

struct reg_registry {
    struct store *store; /* borrowed */
    struct reg_options opt;
    struct reg_instance *by_id; /* uthash head; owns the instances */
    struct reg_group *names;    /* uthash head */
    struct reg_group *types;    /* uthash head */
    struct reg_bucket *buckets; /* uthash head */
    int64_t last_now;           /* the clock never goes back for us */
    size_t pending_new;         /* registrations of new ids waiting for their commit */
    uint64_t next_seq;          /* the seq of the last instance attached */
    struct reg_instance *dirty; /* utlist DL head (dprev/dnext): health not stored yet */
    unsigned int seed;
    struct reg_stats stats;
    uint64_t index;         /* of the last committed change */
    uint64_t lease;         /* the highest lease queued to the store */
    uint64_t lease_durable; /* the highest lease committed (or loaded) */
    size_t pending_adv;     /* queued writes that will advance the index */
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

/* How long an instance of this ttl may stay critical before removal. */
static int64_t reg_deregister_after(const struct reg_registry *r, int ttl)
{
    return r->opt.deregister_after_ms > 0 ? r->opt.deregister_after_ms : (int64_t)ttl * 3000;
}

/* ---------------------------------------------------------------------- */
/* the index */

/* Take the next index for a change of in (applied already) and tell the
 * observer; prev is the health before, for REG_EV_HEALTH. */
static void reg_emit(struct reg_registry *r, enum reg_event_type type,
                     const struct reg_instance *in, enum reg_health prev, int64_t now)
{
    struct reg_event ev;
    char check[LIM_ID_MAX + sizeof(REG_TTL_CHECK_SUFFIX)];

    r->index++;
    if (!r->opt.observer)
        return;
    ev.check_id = NULL;
    if (type == REG_EV_HEALTH) {
        reg_ttl_check_id(in, check, sizeof(check));
        ev.check_id = check;
    }
    ev.type = type;
    ev.index = r->index;
    ev.time_ms = now;
    ev.in = in;
    ev.previous = prev;
    ev.status = (enum reg_health)in->health;
    r->opt.observer(r->opt.observer_arg, &ev);
}

/* The changes a lease must leave room for (see "The index" above). */
static uint64_t reg_lease_headroom(const struct reg_registry *r)
{
    return (uint64_t)r->pending_adv + 4 * (uint64_t)(r->stats.instances + r->pending_new) + 1;
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

/* Find or create the group for key in *table and count one more member. */
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

/* Make room in g's items for one more than the passing and reserved ones.
 * 0 or -1 (out of memory, nothing changed). */
static int reg_group_grow(struct reg_group *g)
{
    size_t cap = 0;
    struct reg_instance **items = NULL;

    if (g->n + g->reserved < g->cap)
        return 0;
    cap = g->cap ? g->cap * 2 : 4;
    items = realloc(g->items, cap * sizeof(*items));
    if (!items)
        return -1;
    g->items = items;
    g->cap = cap;
    return 0;
}

/* Append in to g's passing items, storing its index in *pos. 0 or -1. */
static int reg_group_add(struct reg_group *g, struct reg_instance *in, size_t *pos)
{
    if (reg_group_grow(g) != 0)
        return -1;
    *pos = g->n;
    g->items[g->n++] = in;
    return 0;
}

/* Keep one slot of g's items for a registration waiting for its commit.
 * 0 or -1 (nothing changed). */
static int reg_group_reserve(struct reg_group *g)
{
    if (reg_group_grow(g) != 0)
        return -1;
    g->reserved++;
    return 0;
}

/* Put in into the slot reserved for it; cannot fail. */
static void reg_group_add_reserved(struct reg_group *g, struct reg_instance *in, size_t *pos)
{
    g->reserved--;
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

/* Put in into its groups' passing arrays and mark it passing (the caller
 * moves it between bucket lists). 0, or -1 out of memory (unchanged). */
static int reg_make_passing(struct reg_registry *r, struct reg_instance *in)
{
    if (reg_group_add(in->by_name, in, &in->name_pos) != 0)
        return -1;
    if (reg_group_add(in->by_type, in, &in->type_pos) != 0) {
        reg_group_remove(in->by_name, in->name_pos, true);
        return -1;
    }
    in->health = REG_PASSING;
    r->stats.passing++;
    return 0;
}

/* Take in out of its groups' passing arrays. */
static void reg_leave_passing(struct reg_registry *r, struct reg_instance *in)
{
    reg_group_remove(in->by_name, in->name_pos, true);
    reg_group_remove(in->by_type, in->type_pos, false);
    r->stats.passing--;
}

/* Take in out of its bucket list and its groups' passing arrays. */
static void reg_unlink(struct reg_registry *r, struct reg_instance *in)
{
    if (in->health == REG_PASSING) {
        DL_DELETE(in->bucket->passing, in);
        reg_leave_passing(r, in);
    } else {
        DL_DELETE(in->bucket->critical, in);
        r->stats.critical--;
    }
}

/* Queue in's health to be stored by a later reg_tick (once in the list). */
static void reg_mark_dirty(struct reg_registry *r, struct reg_instance *in)
{
    if (in->dirty)
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

/* Free in, its strings and its cache slot (through r's codec). Accepts
 * NULL. */
static void reg_instance_free(const struct reg_registry *r, struct reg_instance *in)
{
    if (!in)
        return;
    if (in->cache && r->opt.codec->cache_free)
        r->opt.codec->cache_free(in->cache);
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
    in->ttl = spec->ttl;
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
 * its bucket and groups are joined and a passing slot is reserved in each
 * group, so reg_attach cannot fail later. 0, or -1 with nothing changed. */
static int reg_reserve(struct reg_registry *r, struct reg_instance *in)
{
    struct reg_bucket *b = NULL;

    HASH_FIND_INT(r->buckets, &in->ttl, b);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return -1;
        b->ttl = in->ttl;
        HASH_ADD_INT(r->buckets, ttl, b);
    }
    b->members++;
    in->bucket = b;
    in->by_name = reg_group_join(&r->names, in->name);
    if (!in->by_name)
        goto fail;
    in->by_type = reg_group_join(&r->types, in->type);
    if (!in->by_type)
        goto fail;
    if (reg_group_reserve(in->by_name) != 0)
        goto fail;
    if (reg_group_reserve(in->by_type) != 0) {
        in->by_name->reserved--;
        goto fail;
    }
    return 0;
fail:
    if (in->by_type)
        reg_group_leave(&r->types, in->by_type);
    if (in->by_name)
        reg_group_leave(&r->names, in->by_name);
    in->by_name = in->by_type = NULL;
    reg_bucket_leave(r, b);
    in->bucket = NULL;
    return -1;
}

/* Undo reg_reserve for an instance that will not be attached. */
static void reg_unreserve(struct reg_registry *r, struct reg_instance *in)
{
    in->by_name->reserved--;
    in->by_type->reserved--;
    reg_group_leave(&r->names, in->by_name);
    reg_group_leave(&r->types, in->by_type);
    in->by_name = in->by_type = NULL;
    reg_bucket_leave(r, in->bucket);
    in->bucket = NULL;
}

/* Link a reserved instance: passing in its groups, at the tail of its
 * bucket's passing list with a heartbeat at now, in the id table. Uses only
 * what reg_reserve allocated. */
static void reg_attach(struct reg_registry *r, struct reg_instance *in, int64_t now)
{
    reg_group_add_reserved(in->by_name, in, &in->name_pos);
    reg_group_add_reserved(in->by_type, in, &in->type_pos);
    in->health = REG_PASSING;
    in->stored = REG_PASSING;
    r->stats.passing++;
    in->heartbeat_ms = now;
    in->seq = ++r->next_seq;
    DL_APPEND(in->bucket->passing, in);
    /* appended: the id table's own order is the order of seq */
    HASH_ADD_KEYPTR(hh, r->by_id, in->id, strlen(in->id), in);
    r->stats.instances++;
}

/* Undo reg_attach: out of lists, groups and (when empty) the bucket; not
 * out of the id table. */
static void reg_unlink_all(struct reg_registry *r, struct reg_instance *in)
{
    reg_unlink(r, in);
    reg_unmark_dirty(r, in);
    reg_group_leave(&r->names, in->by_name);
    reg_group_leave(&r->types, in->by_type);
    in->by_name = in->by_type = NULL;
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
    if (w->in) {
        if (w->in->bucket)
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

        if (old)
            reg_drop(r, old);
        reg_attach(r, in, now);
        in->busy = busy;
        w->in = NULL;
        r->stats.registered++;
        reg_emit(r, REG_EV_REGISTER, in, REG_PASSING, now);
    }
    if (w->done)
        w->done(w->arg, rc, err);
    reg_write_free(w);
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
        if (in) {
            /* out of every index first, reported as it was, then freed */
            reg_unlink_all(r, in);
            HASH_DEL(r->by_id, in);
            r->stats.instances--;
            reg_emit(r, w->expiry ? REG_EV_EXPIRE : REG_EV_DEREGISTER, in,
                     (enum reg_health)in->health, reg_now(r));
            reg_instance_free(r, in);
        }
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

/* Queue the deletion of id in the store; reg_del_done applies it. 0, or -1
 * with err and nothing changed. */
static int reg_queue_del(struct reg_registry *r, const char *id, bool expiry, reg_done_fn done,
                         void *arg, char *err, size_t errlen)
{
    struct reg_write *w = calloc(1, sizeof(*w));

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
    if (!expiry) {
        struct reg_instance *in = NULL;

        HASH_FIND_STR(r->by_id, id, in);
        if (in) {
            in->busy++;
            w->pinned = true;
        }
    }
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
    in->stored = in->health;
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
        if (in->removing || in->stored == in->health)
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

int reg_renew(struct reg_registry *r, const char *id)
{
    struct reg_instance *in = NULL;
    bool revived = false;

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->health == REG_CRITICAL) {
        if (reg_make_passing(r, in) != 0)
            return 0; /* stays critical; the next renewal tries again */
        DL_DELETE(in->bucket->critical, in);
        r->stats.critical--;
        reg_mark_dirty(r, in);
        revived = true;
        log_info("instance %s is passing again", in->id);
    } else {
        DL_DELETE(in->bucket->passing, in);
    }
    in->heartbeat_ms = reg_now(r);
    DL_APPEND(in->bucket->passing, in);
    r->stats.renewed++;
    if (revived)
        reg_emit(r, REG_EV_HEALTH, in, REG_CRITICAL, in->heartbeat_ms);
    return 0;
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
           (f->health < 0 || (int)in->health == f->health);
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
        int64_t ttl_ms = (int64_t)b->ttl * 1000;
        int64_t grace = reg_deregister_after(r, b->ttl);
        struct reg_instance *in;

        /* Critical ones due for removal: the store deletes them first,
         * memory follows in reg_del_done. Those already on their way are
         * skipped; a failed deletion is tried again on a later tick. */
        for (in = b->critical; in && in->heartbeat_ms + ttl_ms + grace <= now; in = in->next) {
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
        while (b->passing && b->passing->heartbeat_ms + ttl_ms <= now) {
            in = b->passing;
            DL_DELETE(b->passing, in);
            reg_leave_passing(r, in);
            in->health = REG_CRITICAL;
            r->stats.critical++;
            DL_APPEND(b->critical, in);
            reg_mark_dirty(r, in);
            r->stats.expired++;
            changed++;
            log_warn("instance %s is critical: no renewal within its ttl of %d s", in->id, b->ttl);
            reg_emit(r, REG_EV_HEALTH, in, REG_PASSING, now);
        }
    }
    reg_flush_health(r);
    return changed;
}

/* store_load callback: one stored registration back into memory. A
 * record that does not decode, or names another id, is skipped with a
 * warning; -1 (stop) only when out of memory. */
static int reg_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct reg_registry *r = arg;
    struct reg_spec spec;
    struct reg_instance *in = NULL;
    char err[256];
    int rc = -1;

    if (strcmp(id, REG_META_INDEX_ID) == 0) {
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
    if (spec.critical_since_ms > 0) {
        /* critical before the restart: critical since the same time */
        DL_DELETE(in->bucket->passing, in);
        reg_leave_passing(r, in);
        in->health = in->stored = REG_CRITICAL;
        in->heartbeat_ms = (int64_t)spec.critical_since_ms - (int64_t)in->ttl * 1000;
        DL_APPEND(in->bucket->critical, in);
        r->stats.critical++;
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

long reg_load(struct reg_registry *r, char *err, size_t errlen)
{
    size_t before = r->stats.instances;
    struct reg_bucket *b, *btmp;

    if (store_load(r->store, reg_load_one, r, err, errlen) != 0)
        return -1;
    /* The store's order is not the heartbeats': expiry reads list heads. */
    HASH_ITER (hh, r->buckets, b, btmp)
        DL_SORT(b->critical, reg_cmp_heartbeat);
    return (long)(r->stats.instances - before);
}

void reg_get_stats(const struct reg_registry *r, struct reg_stats *out) { *out = r->stats; }

uint64_t reg_index(const struct reg_registry *r) { return r->index; }

int reg_change_begin(struct reg_registry *r, char *err, size_t errlen)
{
    return reg_adv_begin(r, err, errlen);
}

void reg_change_cancel(struct reg_registry *r) { r->pending_adv--; }

uint64_t reg_change_end(struct reg_registry *r, bool applied)
{
    r->pending_adv--;
    return applied ? ++r->index : 0;
}

uint64_t reg_change_predict(const struct reg_registry *r) { return r->index + r->pending_adv; }

void reg_ttl_check_id(const struct reg_instance *in, char *buf, size_t len)
{
    snprintf(buf, len, "%s" REG_TTL_CHECK_SUFFIX, in->id);
}

const char *reg_instance_id(const struct reg_instance *in) { return in->id; }
const char *reg_instance_name(const struct reg_instance *in) { return in->name; }
const char *reg_instance_host(const struct reg_instance *in) { return in->host; }
const char *reg_instance_type(const struct reg_instance *in) { return in->type; }
int reg_instance_port(const struct reg_instance *in) { return in->port; }
int reg_instance_ttl(const struct reg_instance *in) { return in->ttl; }
enum reg_health reg_instance_health(const struct reg_instance *in)
{
    return (enum reg_health)in->health;
}
int64_t reg_instance_heartbeat_ms(const struct reg_instance *in) { return in->heartbeat_ms; }

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
