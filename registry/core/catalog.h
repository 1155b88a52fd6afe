/* catalog.h: the registry's domain: service instances with their health,
 * indexed for discovery, expired by TTL, persisted through a store. No I/O
 * of its own but the store, and time comes from an injected clock, so the
 * unit tests drive expiry without sleeping.
 *
 * Acknowledged means durable: a registration or deregistration is written to
 * the store first and applied to memory only in the store's completion, when
 * the commit succeeded; a failed commit changes nothing in memory. What can
 * fail in memory (allocations for the indexes) is reserved before the write,
 * so applying a committed write cannot fail. Until its completion, a write is
 * invisible: reads see the last committed state.
 *
 * Expiry costs nothing per healthy instance: instances sit in one list per
 * ttl value ordered by last heartbeat (a renewal moves one to the tail), so a
 * tick looks only at list heads, and at the instances that are due.
 *
 * On a shared store (one that follows: several registry replicas on one
 * state, registry/core/replica.h) memory applies commits only in the order
 * the store delivers them: this replica's own through their completions,
 * the others' through reg_apply_change, so every replica applies the same
 * sequence. The index is then the store's revision (no index lease is
 * written).
 *
 * TTL checks on a shared store are decided by the store's leases, once for
 * the whole cluster: an instance with a TTL check has the record
 * REG_ALIVE_PREFIX<id>, whose document is a lease id (decimal), put bound
 * to that lease. The replica that made a registration grants the lease
 * (the instance's ttl rounded up to whole seconds; etcd may raise it to
 * its minimum) and puts the record once the registration committed. A
 * renewal through any replica keeps that lease alive (reg_renew still
 * returns at once; one keepalive per lease at a time); when the lease is
 * gone, or none is known yet, it grants a new one and puts the record
 * again. The record's put makes the TTL check passing, its deletion (the
 * lease lapsed: nobody's write, every replica hears it; or a
 * deregistration, which deletes it in the same batch) critical, on every
 * replica at that commit's revision, with a REG_EV_HEALTH at that index.
 * Local heartbeat times are shown but never lapse anything. A replica
 * loading the state finds an instance without its record critical.
 *
 * Active checks on a shared store with leases run on the leader only
 * (registry/core/members.h elects it; the caller says so with
 * reg_set_leader): its reg_check_result moves a check's run of results,
 * and a status change (not an output change alone) is put as the record
 * REG_CHECK_PREFIX<instance-id>/<check-id> (document "<status digit>
 * <since, Unix ms>\n<output>"); every replica, the leader in the put's
 * completion, applies it as the check's status at that commit's revision
 * (REG_EV_HEALTH at that index), and a replica loading the state applies
 * the records it reads. A deregistration (and a re-registration, whose
 * checks start again, or a check replaced or removed) deletes them in its
 * batch. A non-leader's reg_check_result changes nothing.
 *
 * Removals of instances critical too long (reg_tick: a TTL check critical
 * for its deregister-after since it lapsed; an active check's
 * deregister_after) are decided on a shared store by the leader only,
 * through the store like any deregistration (every replica hears the
 * deletion); the others never remove. A shared store without leases
 * removes nothing (health is each replica's own there).
 *
 * Still local: a TTL update's status and note (pass, warn, fail:
 * reg_ttl_update) stay this replica's own, reported at the current index
 * (which it does not move; reg_generation moves), and no health document
 * is written (a full-document put would race the other replicas'
 * writes). */
#ifndef REG_CORE_CATALOG_H
#define REG_CORE_CATALOG_H

#include "../store/store.h"
#include "spec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct reg_registry;
struct reg_instance;

/* Completion of a registration or deregistration, on the event loop: rc 0
 * once it is durable and applied to memory, -1 with err (borrowed for the
 * call) when the store failed and nothing changed. */
typedef void (*reg_done_fn)(void *arg, int rc, const char *err);

/* Wall-clock time in milliseconds since the Unix epoch. */
typedef int64_t (*reg_clock_fn)(void *arg);

/* Why reg_register refused a registration (its negative return values). */
enum reg_refusal {
    REG_E_FAILED = -1,    /* out of memory, or the store could not queue the write */
    REG_E_FULL = -2,      /* max_instances instances are registered or waiting */
    REG_E_NAME_FULL = -3, /* max_per_name instances of that name */
    REG_E_TOO_BIG = -4,   /* the stored document would pass doc_max bytes */
};
enum reg_strategy { REG_RANDOM = 0, REG_ROUND_ROBIN = 1 };

/* The committed changes the registry reports to its observer. */
enum reg_event_type {
    REG_EV_REGISTER = 0,   /* a registration or re-registration was committed */
    REG_EV_DEREGISTER = 1, /* a client's deregistration was committed */
    REG_EV_EXPIRE = 2,     /* an instance critical for too long was removed */
    REG_EV_HEALTH = 3,     /* one of an instance's checks changed status */
    REG_EV_MAINTENANCE = 4 /* maintenance was turned on or off (committed) */
};

/* One committed change, as the observer sees it, after it is applied to
 * memory: indexes never decrease. On a local store each index value is
 * reported exactly once; on a shared store the changes of one commit share
 * its index (the store's revision), and a health change (this replica's
 * own) is reported at the current index. */
struct reg_event {
    enum reg_event_type type;
    uint64_t index;                   /* the registry index this change made */
    int64_t time_ms;                  /* wall clock of the change (Unix ms) */
    const struct reg_instance *in;    /* borrowed for the call; for DEREGISTER
                                      and EXPIRE the instance as it was */
    enum reg_health previous, status; /* HEALTH: the check's status before and now;
                                         MAINTENANCE: the instance's health */
    const char *check_id;             /* HEALTH only: the check that changed (borrowed for
                             the call); the TTL heartbeat is "<id>:ttl" unless named */
    bool maint;                       /* MAINTENANCE: on (true) or off */
};

/* Told of each committed change (ev borrowed for the call). It must not
 * change the registry. */
typedef void (*reg_observer_fn)(void *arg, const struct reg_event *ev);

/* Told the wall-clock time (Unix ms, as the registry's clock) by which
 * reg_tick should run next so that a TTL check lapses at its deadline: the
 * earliest deadline, whenever it is earlier than the one told before, and
 * after every reg_tick the next one. Never called when no instance has a
 * TTL check. It must not change the registry. */
typedef void (*reg_wake_fn)(void *arg, int64_t at_ms);

/* The id of the store record holding the index (see reg_index): '!' and
 * ':' are outside the id alphabet ([A-Za-z0-9._-]), so no instance can
 * have it. Its document is the index in decimal. */
#define REG_META_INDEX_ID "!meta:index"

/* The lease the index record runs ahead of the index by, at the least (see
 * catalog.c, "The index"). */
#define REG_INDEX_LEASE_MIN 4096

/* How registrations become stored documents and back, and how the API's
 * per-instance cache is freed: given by the layer that knows the wire
 * format (registry/api/codec.c), so the core knows none. */
struct reg_codec {
    /* The document to store for spec under id (both borrowed): bytes the
     * caller frees, their length in *len; NULL when out of memory. */
    char *(*encode)(const char *id, const struct reg_spec *spec, size_t *len);
    /* The document to store for the instance in (borrowed) as it is now,
     * with its health: a critical one carries the time it turned critical
     * (decoded into spec.critical_since_ms). Caller frees; NULL when out of
     * memory. */
    char *(*encode_instance)(const struct reg_instance *in, size_t *len);
    /* A stored document back into spec (reg_spec_clear releases it). 0, or
     * -1 with err (spec then owns nothing). */
    int (*decode)(const char *doc, size_t len, struct reg_spec *spec, char *err, size_t errlen);
    /* Frees what an instance's cache slot holds; NULL: nothing to free. */
    void (*cache_free)(void *cache);
};

struct reg_options {
    const struct reg_codec *codec; /* required; borrowed, must outlive the registry */
    int64_t deregister_after_ms;   /* critical this long -> removed; 0: 3 x ttl */
    reg_clock_fn clock;            /* NULL: the real clock */
    void *clock_arg;
    unsigned int seed;        /* random discovery; 0: seeded from time */
    size_t max_instances;     /* instances in all, committed or waiting; 0: LIM_INSTANCES_MAX */
    size_t max_per_name;      /* instances of one name; 0: LIM_PER_NAME_MAX */
    size_t doc_max;           /* bytes of a stored document; 0: LIM_REG_DOC_MAX */
    reg_observer_fn observer; /* NULL: nobody is told of changes */
    void *observer_arg;
};

/* Filters for listing; NULL members match everything. */
struct reg_filter {
    const char *name;
    const char *type;
    const char *tag;
    int health;            /* -1: any, else this enum reg_health */
    bool health_or_better; /* health or better (?health=warning: passing too) */
};

/* Counters for /metrics and the tests. */
struct reg_stats {
    size_t instances, passing, warning, critical;
    uint64_t registered, deregistered, renewed, expired, removed;
    uint64_t lagged; /* shared store: others' commits memory could not apply (out of memory,
                        bad document): those ids lag the store until their next change */
};

/* Create a registry over store (borrowed; must outlive it). opt and its
 * codec are required. Caller frees. NULL when out of memory or no codec. */
struct reg_registry *reg_new(struct store *store, const struct reg_options *opt)
    __attribute__((warn_unused_result));

/* Drain the store (the writes still waiting complete, their callbacks run),
 * then free everything. Accepts NULL. */
void reg_free(struct reg_registry *r);

/* Load every stored registration (decoded by the codec). One stored as
 * critical is critical again, since the same time (so it is removed when it
 * would have been); the others are passing with a fresh ttl window from
 * now.
 * Returns the number loaded, or -1 with err. Bad records are skipped with a
 * warning in the log. */
long reg_load(struct reg_registry *r, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The two halves of reg_load, for a loader that reads the store once for
 * several modules (registry/core/replica.h): one record (borrowed; records
 * of other modules, ids starting with REG_META_PREFIX_CHAR, are skipped;
 * on a shared store, called inside store_load, the instance's indexes are
 * the record's revision), 0 or -1 when out of memory (stop loading); then,
 * after the last record, the finish (on a shared store the index becomes
 * the revision the state was read at). */
int reg_load_record(struct reg_registry *r, const char *id, const char *doc, size_t doc_len)
    __attribute__((warn_unused_result));
void reg_load_finish(struct reg_registry *r);

/* Whether the registry's store is shared (it has a follow op). */
bool reg_shared(const struct reg_registry *r);

/* Shared store with leases: whether this replica leads now (false until
 * told). Only the leader moves active checks and removes instances
 * critical too long (see the header comment). No effect elsewhere. */
void reg_set_leader(struct reg_registry *r, bool leader);

/* Shared store: the id of a check's status record is this prefix, the
 * instance id, '/' and the check id (see the header comment). */
#define REG_CHECK_PREFIX "!check/"

/* A commit of another replica on the shared store (store_follow's change,
 * id and doc borrowed for the call), applied as the same local commit
 * would be: a PUT of an instance document replaces or creates the
 * instance (REG_EV_REGISTER; REG_EV_MAINTENANCE when only its maintenance
 * changed), a DEL removes it (REG_EV_DEREGISTER), at the index
 * store_revision. A local write of that id still in flight applies after
 * it, in commit order. An alive record's PUT or DEL (REG_ALIVE_PREFIX)
 * turns its instance's TTL check passing or critical (REG_EV_HEALTH at
 * that index). Other ids starting with REG_META_PREFIX_CHAR (KV keys) are
 * not the core's: ignored. RESET starts a re-read; RESET_END removes
 * every instance not put since RESET. What cannot be applied (out of
 * memory, a bad document) is logged and counted in stats.lagged. */
void reg_apply_change(struct reg_registry *r, enum store_change kind, const char *id,
                      const char *doc, size_t len);

/* Register spec (borrowed; everything is copied): queue its write to the
 * store; done(arg, ...) runs once it is committed and applied (the instance
 * then replaces any of the same id), or failed (nothing changed). Copies the
 * id into id_out (LIM_ID_MAX + 1 bytes) and sets *created to whether no
 * instance of that id is known now. Returns 0 (done will be called), or a
 * negative enum reg_refusal with err when the write was not queued (done is
 * not called, nothing changed): over a cap (REG_E_FULL, REG_E_NAME_FULL,
 * REG_E_TOO_BIG) or REG_E_FAILED. Re-registering a known id never counts
 * against the instance caps (it replaces its instance). */
int reg_register(struct reg_registry *r, const struct reg_spec *spec, reg_done_fn done, void *arg,
                 char *id_out, bool *created, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Remove id (borrowed): queue its deletion; done runs like reg_register's,
 * the instance leaving memory on success. Returns 0 (done will be called),
 * 1 when id is unknown, -1 with err when the deletion could not be queued
 * (done is not called for 1 or -1). */
int reg_deregister(struct reg_registry *r, const char *id, reg_done_fn done, void *arg, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* Record a heartbeat for id: its TTL check passes (critical -> passing).
 * 0, 1 when unknown, 2 when it has no TTL check.
 * Never writes to the store: a revival is stored by the next reg_tick. A
 * revival is a change (the index advances and the observer hears it now);
 * a heartbeat of a passing instance is not. */
int reg_renew(struct reg_registry *r, const char *id) __attribute__((warn_unused_result));

/* A probe's result for the check check_id of instance id (both borrowed),
 * with its output (borrowed; cut at LIM_CHECK_OUTPUT_MAX bytes): moves the
 * check by its thresholds (check.h) and, when its status changes, the
 * instance's health (a change, reported as REG_EV_HEALTH). Never writes to
 * a local store: checks start again from their initial status after a
 * restart. On a shared store with leases only the leader's count, and a
 * status change is written as the check's record first and applied at its
 * commit (see the header comment). 0, or 1 when the instance or the check
 * is unknown (or is a TTL check). */
int reg_check_result(struct reg_registry *r, const char *id, const char *check_id,
                     enum reg_health result, const char *output);

/* Turn maintenance of id on (with reason, borrowed, at most
 * LIM_MAINT_REASON_MAX bytes) or off: queue the instance's document with it
 * to the store; once committed the instance is critical through a
 * "maintenance" check (out of discovery, still registered) or back to what
 * its checks say, the observer hears REG_EV_MAINTENANCE, and done runs
 * (like reg_register's). Returns 0 (done will be called), 1 when id is
 * unknown, 2 when another write of id is in flight (try again), -1 with err
 * (done is not called for 1, 2 or -1). */
int reg_maintenance(struct reg_registry *r, const char *id, bool enable, const char *reason,
                    reg_done_fn done, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Add the http or tcp check cs (borrowed; its id required) to instance
 * id, replacing a given check of the same id (which starts again), or
 * remove its given check check_id (borrowed; not its TTL check): a
 * committed write like reg_maintenance's. The other checks keep their
 * state; once committed the instance's health is the worst of its checks
 * again and the observer hears REG_EV_REGISTER (its registration changed).
 * Returns 0 (done will be called), 1 when id is unknown, 2 when another
 * write of id is in flight, -1 with err (done is not called but for 0);
 * reg_check_add 3 with err for a ttl check, no id, the TTL check's id or
 * one check too many; reg_check_remove 3 for an unknown check, 4 with err
 * for the TTL check. */
int reg_check_add(struct reg_registry *r, const char *id, const struct reg_check_spec *cs,
                  reg_done_fn done, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int reg_check_remove(struct reg_registry *r, const char *id, const char *check_id, reg_done_fn done,
                     void *arg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* An update of id's TTL check (the Consul agent's pass, warn, fail and
 * update): like a heartbeat it starts a new ttl window (a lapsed check
 * comes back), and the check's status is status (until it lapses) with
 * note (borrowed, cut at LIM_CHECK_OUTPUT_MAX bytes; NULL or "": none) as
 * its output. A status change is reported as REG_EV_HEALTH. Never writes
 * to the store but a revival's health (as reg_renew). 0, 1 when id is
 * unknown, 2 when it has no TTL check. reg_renew is this with passing. */
int reg_ttl_update(struct reg_registry *r, const char *id, enum reg_health status, const char *note)
    __attribute__((warn_unused_result));

/* Borrowed instance, valid until the next mutating call; NULL if unknown. */
const struct reg_instance *reg_get(const struct reg_registry *r, const char *id);

/* One passing instance chosen by strategy among those with the given name
 * and/or type (at least one non-NULL), or NULL when none is passing. */
const struct reg_instance *reg_discover(struct reg_registry *r, const char *name, const char *type,
                                        enum reg_strategy strategy);

/* Called by reg_foreach for each matching instance (borrowed for the
 * call; fn must not change the registry). Return 0 to go on, -1 to stop. */
typedef int (*reg_each_fn)(const struct reg_instance *in, void *arg);

/* Call fn on every instance matching f, in registration order. 0, or -1
 * when fn stopped. */
int reg_foreach(const struct reg_registry *r, const struct reg_filter *f, reg_each_fn fn, void *arg)
    __attribute__((warn_unused_result));

/* A position in the registration order, for reg_foreach_from; zeroed: the
 * start. It stays valid while instances come and go: one registered later
 * comes after it, and one removed is never met. */
struct reg_cursor {
    uint64_t seq;            /* of the last instance passed; 0: none yet */
    char id[LIM_ID_MAX + 1]; /* its id, to find it again at once */
};

/* Called by reg_foreach_from: 0 to go on, 1 to pause after this instance
 * (the cursor then points at it), -1 to fail. */
typedef int (*reg_step_fn)(const struct reg_instance *in, void *arg);

/* Call fn on the instances matching f that follow c in registration order
 * (the order reg_foreach uses), moving c along. Meant for answers written
 * over several loop turns: between calls the registry may change. Returns
 * 0 once the end was reached, 1 when fn paused, -1 when fn failed. */
int reg_foreach_from(const struct reg_registry *r, const struct reg_filter *f, struct reg_cursor *c,
                     reg_step_fn fn, void *arg) __attribute__((warn_unused_result));

/* One page in id order (bytewise): the first limit (>= 1) instances
 * matching f whose id sorts after `after` (borrowed; NULL: from the
 * first), into out, which has room for limit + 1 pointers (borrowed
 * instances, valid until the next mutating call). Sets *more to whether
 * more match. Returns the number in out (at most limit). Costs one pass
 * over every instance (n log limit), no allocation. */
size_t reg_page(const struct reg_registry *r, const struct reg_filter *f, const char *after,
                size_t limit, const struct reg_instance **out, bool *more);

/* Turn overdue instances critical, and queue the removal from the store of
 * those critical too long (they leave memory when the deletion is
 * committed; a failed one is tried again on a later tick). Then store the
 * health changes not stored yet (turned critical, revived by a renewal),
 * at most LIM_HEALTH_WRITES_PER_TICK a tick and none while the store holds
 * half of STORE_PENDING_MAX writes (the rest wait for a later tick), in the
 * order they happened. Returns the number of instances turned critical
 * plus removals queued. */
size_t reg_tick(struct reg_registry *r);

/* Set the deadline hook (NULL: none), told at once of the earliest
 * deadline of what is loaded. A caller runs reg_tick at the times told as
 * well as at its regular interval. */
void reg_set_wake(struct reg_registry *r, reg_wake_fn fn, void *arg);

void reg_get_stats(const struct reg_registry *r, struct reg_stats *out);

/* A number that moves with everything an instance shows but the time of
 * its last heartbeat: every change of the index that is an instance's,
 * and a check's output (a probe's, a TTL update's note), which changes no
 * index. Equal numbers: the same instances, checks and outputs, so an
 * answer built from them may be served again. */
uint64_t reg_generation(const struct reg_registry *r);

/* The registry-wide index: the number of the last committed change
 * (register, deregister, expiry removal, health change). It never goes
 * back, also across restarts: the store keeps a lease of it (the record
 * REG_META_INDEX_ID) and a restarted registry resumes from that lease,
 * which is at or above every index handed out before (a restart may skip
 * numbers; it never repeats one). On a shared store it is the store's
 * revision of the last commit applied (health changes do not move it),
 * the same on every replica. */
uint64_t reg_index(const struct reg_registry *r);

/* Other changes share the index: the KV store (registry/core/kv.h) takes
 * one number per committed write, under the same lease rule as
 * registrations. Before a write that will advance the index is queued,
 * reg_change_begin counts it (queuing a new lease first, in the same turn,
 * when the one queued falls short). 0, or -1 with err (nothing counted). */
int reg_change_begin(struct reg_registry *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The write counted by reg_change_begin could not be queued after all. */
void reg_change_cancel(struct reg_registry *r);

/* In the completion of a write counted by reg_change_begin: uncount it
 * and, when applied (the commit succeeded and changed something), take the
 * next index and return it (0 when not applied). The caller reports the
 * change itself (the core's observer hears only instance changes). */
uint64_t reg_change_end(struct reg_registry *r, bool applied);

/* The index a write counted just now takes if every counted write before
 * it commits and no health change comes between (the index plus the
 * counted writes): what a KV write stores before its commit. 0 on a
 * shared store: the revision is not known before the commit. On a shared
 * store reg_change_end returns store_revision (the commit's). */
uint64_t reg_change_predict(const struct reg_registry *r);

/* Another replica's commit (or a reset's) being applied on a shared store:
 * the index takes the store's revision, returned (for kv.c). */
uint64_t reg_change_remote(struct reg_registry *r);

/* Store records whose id starts with this character are not
 * registrations (the index lease, KV keys): reg_load skips them. */
#define REG_META_PREFIX_CHAR '!'

/* Shared store: the id of an instance's alive record is this prefix and
 * the instance id (see the header comment); its document is the lease id
 * in decimal. */
#define REG_ALIVE_PREFIX "!alive/"

/* Shared store: the lease of in's alive record as this replica last heard
 * it; 0 when none is known (not granted yet, or lapsed). */
int64_t reg_instance_lease(const struct reg_instance *in);

/* The check id of an instance's TTL heartbeat in health events:
 * "<instance-id>:ttl" into buf (LIM_ID_MAX + 5 bytes). */
#define REG_TTL_CHECK_SUFFIX ":ttl"
void reg_ttl_check_id(const struct reg_instance *in, char *buf, size_t len);

/* Accessors for the API and the tests. Strings are borrowed from the
 * instance, valid as long as it is (until the next mutating call). */
const char *reg_instance_id(const struct reg_instance *in);
const char *reg_instance_name(const struct reg_instance *in);
const char *reg_instance_host(const struct reg_instance *in);
const char *reg_instance_type(const struct reg_instance *in);
int reg_instance_port(const struct reg_instance *in);
int64_t reg_instance_ttl_ms(const struct reg_instance *in); /* 0: no TTL check */
enum reg_health reg_instance_health(const struct reg_instance *in);
int64_t reg_instance_heartbeat_ms(const struct reg_instance *in);

/* The index of the first registration of in's id (a re-registration keeps
 * it) and of in's last change (registration, health, maintenance). Not
 * stored: an instance loaded at start has both at the index then. */
uint64_t reg_instance_create_index(const struct reg_instance *in);
uint64_t reg_instance_modify_index(const struct reg_instance *in);

/* Since when the TTL check has its status (Unix ms; the registration's
 * time until it first changes). */
int64_t reg_instance_ttl_change_ms(const struct reg_instance *in);
/* Whether the TTL lapsed: REG_CRITICAL once no update came within the
 * ttl, else REG_PASSING (what the stored document keeps); the TTL check's
 * status is in its reg_instance_check view. */
enum reg_health reg_instance_ttl_health(const struct reg_instance *in);

/* One check of an instance as the API shows and stores it; the strings are
 * borrowed like the instance's (id may point into the view itself). */
struct reg_check_view {
    const char *id;
    enum reg_check_kind kind;
    const char *target;     /* "" for ttl */
    enum reg_health status; /* now */
    const char *output;     /* "" when none */
    int64_t last_change_ms;
    int64_t interval_ms, timeout_ms, deregister_after_ms; /* as given; 0: not given */
    struct chk_policy policy;
    enum reg_health initial;
    bool given; /* given in the registration's checks (else the default TTL check) */
    char id_buf[LIM_CHECK_ID_MAX + 1];
};

/* The instance's checks: the default TTL check first when it has one
 * (none was given), then those given, in their order; i below the count. */
size_t reg_instance_check_count(const struct reg_instance *in);
void reg_instance_check(const struct reg_instance *in, size_t i, struct reg_check_view *out);

/* Whether the instance is in maintenance; if so *reason (borrowed, "" for
 * none) and *since_ms (Unix ms) are set. NULL pointers are not set. */
bool reg_instance_maintenance(const struct reg_instance *in, const char **reason,
                              int64_t *since_ms);

/* Tags and metadata pairs, in the order they were registered; i below the
 * count. */
size_t reg_instance_tag_count(const struct reg_instance *in);
const char *reg_instance_tag(const struct reg_instance *in, size_t i);
size_t reg_instance_meta_count(const struct reg_instance *in);
const char *reg_instance_meta_key(const struct reg_instance *in, size_t i);
const char *reg_instance_meta_value(const struct reg_instance *in, size_t i);

/* One opaque slot per instance for the API's cache of its encoding. The
 * core never reads it; it frees it with the codec's cache_free when the
 * instance goes (a change of registration replaces the instance, so the
 * slot starts empty again). Not part of the instance's value, so it may be
 * set through a const pointer. set steals cache; the slot must be empty. */
void *reg_instance_cache(const struct reg_instance *in);
void reg_instance_set_cache(const struct reg_instance *in, void *cache);

#endif
