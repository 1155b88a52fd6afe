/* members.h: the registry replicas on one shared store, and which of them
 * leads (prefix rmb_). No HTTP, no JSON: the store is the only I/O, time
 * comes through injected timers, so tests run it on virtual time.
 *
 * On a shared store with leases (store.h: store_follow and the lease ops)
 * each replica grants a lease of LIM_MEMBER_TTL_MS (the backend may raise
 * it) and puts the record RMB_RECORD_PREFIX<replica-id> bound to it (its
 * document: "<advertised url>\n<start time, Unix ms>"), then keeps the
 * lease alive every third of its TTL; when the lease is gone it grants a
 * new one and puts the record again. Every replica keeps the set of live
 * members from the store's stream (replica.c hands it the member records
 * at load and as they change). The leader is the live member whose record
 * was created at the lowest store revision (ties: the lower id). Every
 * replica sees the same stream, so at each revision they agree on the
 * leader without any compare-and-swap of their own; a replica that dies
 * stops its keepalives, its lease lapses, the store deletes its record,
 * and the next oldest member leads from that revision on.
 *
 * Any other store (not shared, or without lease ops): this replica is the
 * only member and the leader, from rmb_start on. */
#ifndef REG_CORE_MEMBERS_H
#define REG_CORE_MEMBERS_H

#include "../store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct clk_timers;
struct rmb_members;

/* The id of a replica's member record is this prefix and the replica's id
 * (a UUID); it starts with REG_META_PREFIX_CHAR, so the catalog skips it. */
#define RMB_RECORD_PREFIX "!member/"

/* Told when this replica gains (leading true) or loses leadership, on the
 * event loop, after the member set changed. It may read the member set but
 * not free it. */
typedef void (*rmb_change_fn)(void *arg, bool leading);

struct rmb_options {
    const char *url;                 /* advertised URL (copied; NULL: ""), cut at
                                        LIM_MEMBER_URL_MAX bytes */
    const char *self_id;             /* NULL: a fresh UUID (tests name their replicas) */
    int64_t ttl_ms;                  /* member lease; 0: LIM_MEMBER_TTL_MS */
    const struct clk_timers *timers; /* borrowed, must outlive the module; NULL: real clock */
    int64_t (*clock)(void *arg);     /* wall clock in Unix ms; NULL: the real one */
    void *clock_arg;
    rmb_change_fn on_change; /* NULL: nobody is told */
    void *change_arg;
    /* Called after each member record commit is applied (this replica's
     * put in its completion, another's or a lapse as followed), while
     * store_revision is that commit's: the registry's index follows every
     * commit, so that replicas that loaded at different revisions agree
     * (main: reg_change_remote). NULL: nobody. */
    void (*on_commit)(void *arg);
    void *commit_arg;
};

/* Create the member set of this replica over st (borrowed, must outlive
 * it) with its timer on base (borrowed). Nothing is written before
 * rmb_start. NULL when out of memory. Caller frees with rmb_free. */
struct rmb_members *rmb_new(struct store *st, struct event_base *base,
                            const struct rmb_options *opt) __attribute__((warn_unused_result));

/* Stop the keepalives and free everything; lease operations still on
 * their way complete into nothing. Accepts NULL. The member lease is left
 * to lapse (its record goes with it). */
void rmb_free(struct rmb_members *m);

/* During the store's load (store_load; replica.c): one member record (id
 * and doc borrowed), at its revision (store_revision: for a record never
 * put again while alive, its create revision). Records that are not
 * member records are ignored. 0, or -1 when out of memory. */
int rmb_load_record(struct rmb_members *m, const char *id, const char *doc, size_t len)
    __attribute__((warn_unused_result));

/* A change of the followed store (store_follow's, borrowed for the call):
 * member records join and leave the live set at store_revision; RESET and
 * RESET_END re-read it. Other ids are ignored. */
void rmb_apply_change(struct rmb_members *m, enum store_change kind, const char *id,
                      const char *doc, size_t len);

/* Set the advertised URL (copied, cut at LIM_MEMBER_URL_MAX bytes), before
 * rmb_start (the port may be known only once the server listens). */
void rmb_set_url(struct rmb_members *m, const char *url);

/* Start: on a store with leases, grant the member lease and put the record
 * (this replica joins the live set when that put commits); else this
 * replica is the only member and leads at once (on_change is not called
 * for that: read rmb_is_leader after this). 0, or -1 with err (out of
 * memory, or the timer could not be armed). */
int rmb_start(struct rmb_members *m, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A graceful stop: no more keepalives or grants, and this replica's member
 * record is deleted (a store write, committed by the store's drain), so
 * every replica sees it leave at that commit and the next oldest leads at
 * once instead of after the lease's TTL. Accepts NULL; only once. */
void rmb_leave(struct rmb_members *m);

/* Whether membership goes through the store (shared, with leases); when
 * it does not, why (borrowed, "" when it does). */
bool rmb_through_store(const struct rmb_members *m);
const char *rmb_local_reason(const struct rmb_members *m);

/* Whether this replica leads now. */
bool rmb_is_leader(const struct rmb_members *m);

/* The id of the leader now (borrowed until the next change; "" when no
 * member is live, e.g. before this replica's record committed), and this
 * replica's own id. */
const char *rmb_leader_id(const struct rmb_members *m);
const char *rmb_self_id(const struct rmb_members *m);

/* One live member as rmb_foreach shows it (strings borrowed for the
 * call). */
struct rmb_view {
    const char *id;
    const char *url;
    uint64_t create_revision; /* the store revision its record was created at */
    int64_t started_ms;       /* Unix ms, as the member wrote it */
    bool is_self, is_leader;
};

/* Called by rmb_foreach, view borrowed for the call: 0 to go on, -1 to
 * stop. It must not change the member set. */
typedef int (*rmb_each_fn)(const struct rmb_view *v, void *arg);

/* Call fn on every live member, oldest (lowest create revision) first. 0,
 * or -1 when fn stopped. */
int rmb_foreach(const struct rmb_members *m, rmb_each_fn fn, void *arg)
    __attribute__((warn_unused_result));

/* Live members known. */
size_t rmb_count(const struct rmb_members *m);

#endif
