/* catalog.c: the registry's domain (see catalog.h). Three indexes over one
 * set of instances:
 *   - by id: a uthash table, the owner of every instance;
 *   - by name and by type: groups holding only the passing instances in an
 *     array, so discovery picks one in O(1);
 *   - by ttl: buckets with a passing list and a critical list, each ordered
 *     by last heartbeat, so expiry only ever looks at list heads. */
#include "catalog.h"

#include "../store/store.h"
#include "codec/uid.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "core/service.h"

#include <event2/buffer.h>
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

/* Kept small: with 100k instances every byte counts 100k times. The strings
 * share one allocation; metadata lives only in the stored document. */
struct reg_instance {
    char *strs;                                 /* owned: "id\0name\0host\0type\0tag\0...tag\0\0" */
    const char *id, *name, *host, *type, *tags; /* into strs; tags ends at "" */
    int port, ttl;
    char *doc; /* owned: the stored registration, a JSON object */
    size_t doc_len;
    int64_t heartbeat_ms;
    unsigned char health;                /* enum reg_health */
    unsigned char removing;              /* an expiry removal waits for its commit */
    struct reg_bucket *bucket;           /* borrowed */
    struct reg_instance *prev, *next;    /* in bucket->passing or bucket->critical */
    struct reg_group *by_name, *by_type; /* borrowed */
    size_t name_pos, type_pos;           /* index in the groups' items while passing */
    UT_hash_handle hh;
};

/* A write waiting for its commit: what to apply to memory when the store
 * says it is durable, and whom to tell. */
struct reg_write {
    struct reg_registry *r;  /* borrowed */
    struct reg_instance *in; /* owned, prepared (reserved, unlinked); NULL for a deletion */
    char id[LIM_ID_MAX + 1];
    bool expiry;      /* a removal by reg_tick, not a client's deregistration */
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
    unsigned int seed;
    struct reg_stats stats;
};

/* The real clock, in the reg_clock_fn shape. */
static int64_t reg_real_clock(void *arg)
{
    (void)arg;
    return svc_wall_ms();
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

static int64_t reg_deregister_after(const struct reg_registry *r, int ttl)
{
    return r->opt.deregister_after_ms > 0 ? r->opt.deregister_after_ms : (int64_t)ttl * 3000;
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

/* ---------------------------------------------------------------------- */
/* instances */

static void reg_instance_free(struct reg_instance *in)
{
    if (!in)
        return;
    free(in->strs);
    free(in->doc);
    free(in);
}

/* Serialise the registration part of spec under id; caller frees. */
static char *reg_doc_new(const char *id, const struct reg_spec *spec)
{
    json_t *obj = json_pack("{s:s, s:s, s:s, s:i, s:s, s:O, s:O, s:i}", "id", id, "name",
                            spec->name, "host", spec->host, "port", spec->port, "type", spec->type,
                            "tags", spec->tags, "metadata", spec->metadata, "ttl", spec->ttl);
    char *doc = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    return doc;
}

/* Fill in's registration fields from spec under id (copied), taking
 * ownership of doc. On failure in is unchanged and doc is freed. The
 * instance must not be in the id table (its key lives in the strings). */
static int reg_instance_set(struct reg_instance *in, const char *id, const struct reg_spec *spec,
                            char *doc)
{
    const char *fixed[4] = {id, spec->name, spec->host, spec->type};
    const json_t *tag;
    size_t len = 1, i, off = 0;
    char *strs;

    for (i = 0; i < 4; i++)
        len += strlen(fixed[i]) + 1;
    json_array_foreach (spec->tags, i, tag)
        len += json_string_length(tag) + 1;
    strs = malloc(len);
    if (!strs) {
        free(doc);
        return -1;
    }
    for (i = 0; i < 4; i++) {
        size_t n = strlen(fixed[i]) + 1;

        memcpy(strs + off, fixed[i], n);
        off += n;
    }
    json_array_foreach (spec->tags, i, tag) {
        size_t n = json_string_length(tag) + 1;

        memcpy(strs + off, json_string_value(tag), n);
        off += n;
    }
    strs[off] = '\0';
    free(in->strs);
    free(in->doc);
    in->strs = strs;
    in->id = strs;
    in->name = in->id + strlen(in->id) + 1;
    in->host = in->name + strlen(in->name) + 1;
    in->type = in->host + strlen(in->host) + 1;
    in->tags = in->type + strlen(in->type) + 1;
    in->doc = doc;
    in->doc_len = strlen(doc);
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
    r->stats.passing++;
    in->heartbeat_ms = now;
    DL_APPEND(in->bucket->passing, in);
    HASH_ADD_KEYPTR(hh, r->by_id, in->id, strlen(in->id), in);
    r->stats.instances++;
}

/* Undo reg_attach: out of lists, groups and (when empty) the bucket; not
 * out of the id table. */
static void reg_unlink_all(struct reg_registry *r, struct reg_instance *in)
{
    reg_unlink(r, in);
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
    reg_instance_free(in);
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
        reg_instance_free(w->in);
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

    if (rc == 0) {
        HASH_FIND_STR(r->by_id, w->in->id, old);
        if (old)
            reg_drop(r, old);
        reg_attach(r, w->in, reg_now(r));
        w->in = NULL;
        r->stats.registered++;
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

    HASH_FIND_STR(r->by_id, w->id, in);
    if (rc == 0) {
        if (in)
            reg_drop(r, in);
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
    if (store_del(r->store, id, reg_del_done, w, err, errlen) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */

struct reg_registry *reg_new(struct store *store, const struct reg_options *opt)
{
    struct reg_registry *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->store = store;
    if (opt)
        r->opt = *opt;
    if (!r->opt.clock)
        r->opt.clock = reg_real_clock;
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
        reg_instance_free(in);
    }
    free(r);
}

int reg_register(struct reg_registry *r, const struct reg_spec *spec, reg_done_fn done, void *arg,
                 char *id_out, bool *created, char *err, size_t errlen)
{
    struct reg_write *w = NULL;
    struct reg_instance *in = NULL;
    char id[LIM_ID_MAX + 1];
    char uuid[UID_STR_LEN + 1];
    char *doc = NULL;
    int rc = -1;

    if (spec->has_id) {
        snprintf(id, sizeof(id), "%s", spec->id);
    } else {
        uid_generate(uuid);
        snprintf(id, sizeof(id), "%s-%s", spec->name, uuid);
    }
    w = calloc(1, sizeof(*w));
    in = calloc(1, sizeof(*in));
    doc = reg_doc_new(id, spec);
    if (!w || !in || !doc)
        goto oom;
    if (reg_instance_set(in, id, spec, doc) != 0) {
        doc = NULL; /* freed by reg_instance_set */
        goto oom;
    }
    doc = NULL;
    if (reg_reserve(r, in) != 0)
        goto oom;
    w->r = r;
    w->in = in;
    in = NULL;
    w->done = done;
    w->arg = arg;
    if (store_put(r->store, id, w->in->doc, w->in->doc_len, reg_put_done, w, err, errlen) != 0)
        goto cleanup;
    *created = reg_get(r, id) == NULL;
    memcpy(id_out, id, sizeof(id));
    w = NULL;
    rc = 0;
    goto cleanup;
oom:
    errbuf_set(err, errlen, "out of memory");
cleanup:
    reg_write_free(w);
    reg_instance_free(in);
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

    HASH_FIND_STR(r->by_id, id, in);
    if (!in)
        return 1;
    if (in->health == REG_CRITICAL) {
        if (reg_make_passing(r, in) != 0)
            return 0; /* stays critical; the next renewal tries again */
        DL_DELETE(in->bucket->critical, in);
        r->stats.critical--;
        log_info("instance %s is passing again", in->id);
    } else {
        DL_DELETE(in->bucket->passing, in);
    }
    in->heartbeat_ms = reg_now(r);
    DL_APPEND(in->bucket->passing, in);
    r->stats.renewed++;
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
    const char *t;

    for (t = in->tags; *t; t += strlen(t) + 1)
        if (strcmp(t, tag) == 0)
            return true;
    return false;
}

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

int reg_write_instance(const struct reg_instance *in, struct evbuffer *out)
{
    /* The stored document ends with '}': reopen it to add the live fields. */
    if (evbuffer_add(out, in->doc, in->doc_len - 1) != 0)
        return -1;
    return evbuffer_add_printf(out, ",\"last_heartbeat\":%lld,\"health\":\"%s\"}",
                               (long long)(in->heartbeat_ms / 1000),
                               in->health == REG_PASSING ? "passing" : "critical") < 0
               ? -1
               : 0;
}

int reg_write_list(const struct reg_registry *r, const struct reg_filter *f, struct evbuffer *out)
{
    const struct reg_instance *in;
    int first = 1;

    if (evbuffer_add(out, "[", 1) != 0)
        return -1;
    for (in = r->by_id; in; in = in->hh.next) {
        if (!reg_matches(in, f))
            continue;
        if (!first && evbuffer_add(out, ",", 1) != 0)
            return -1;
        first = 0;
        if (reg_write_instance(in, out) != 0)
            return -1;
    }
    return evbuffer_add(out, "]", 1);
}

size_t reg_tick(struct reg_registry *r)
{
    struct reg_bucket *b, *btmp;
    size_t changed = 0;
    int64_t now = reg_now(r);
    char err[256];

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
            r->stats.expired++;
            changed++;
            log_warn("instance %s is critical: no renewal within its ttl of %d s", in->id, b->ttl);
        }
    }
    return changed;
}

/* store_load callback: one stored registration back into memory. */
static int reg_load_one(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct reg_registry *r = arg;
    struct reg_spec spec;
    struct reg_instance *in = NULL;
    char err[256];
    char *copy = NULL;

    if (reg_spec_parse_text(doc, doc_len, &spec, err, sizeof(err)) != 0) {
        log_warn("skipping stored record %.200s: %s", id, err);
        return 0;
    }
    if (!spec.has_id || strcmp(spec.id, id) != 0) {
        log_warn("skipping stored record %.200s: its document names another id", id);
        reg_spec_clear(&spec);
        return 0;
    }
    HASH_FIND_STR(r->by_id, id, in);
    copy = reg_doc_new(id, &spec);
    if (in || !copy) {
        free(copy);
        reg_spec_clear(&spec);
        return in ? 0 : -1;
    }
    in = calloc(1, sizeof(*in));
    if (!in) {
        free(copy);
        reg_spec_clear(&spec);
        return -1;
    }
    if (reg_instance_set(in, id, &spec, copy) != 0) {
        free(in);
        reg_spec_clear(&spec);
        return -1;
    }
    reg_spec_clear(&spec);
    if (reg_reserve(r, in) != 0) {
        reg_instance_free(in);
        return -1;
    }
    reg_attach(r, in, reg_now(r));
    return 0;
}

long reg_load(struct reg_registry *r, char *err, size_t errlen)
{
    size_t before = r->stats.instances;

    if (store_load(r->store, reg_load_one, r, err, errlen) != 0)
        return -1;
    return (long)(r->stats.instances - before);
}

void reg_get_stats(const struct reg_registry *r, struct reg_stats *out) { *out = r->stats; }

const char *reg_instance_id(const struct reg_instance *in) { return in->id; }
const char *reg_instance_name(const struct reg_instance *in) { return in->name; }
int reg_instance_port(const struct reg_instance *in) { return in->port; }
enum reg_health reg_instance_health(const struct reg_instance *in)
{
    return (enum reg_health)in->health;
}
int64_t reg_instance_heartbeat_ms(const struct reg_instance *in) { return in->heartbeat_ms; }
