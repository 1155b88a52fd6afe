/* regworld.h: a "world" of registry replicas for the unit tests (prefix
 * rw_): one test event base, a group of shared memory stores over it, and
 * a virtual clock (tests/unit/support/vclock.h) that runs the group's
 * leases, any timer hook a test hands out (vc.hook) and the registries'
 * clock. What a replica is made of (catalog, KV, members) stays the
 * test's own; the world keeps the replicas' stores, so that it can run the
 * loop until none of them has writes waiting.
 *
 * The struct is open, as regfix's is: tests read base, group and vc.now. */
#ifndef TEST_REGWORLD_H
#define TEST_REGWORLD_H

#include "registry/core/catalog.h"
#include "registry/store/store.h"
#include "vclock.h"

#include <stddef.h>
#include <stdint.h>

#define RW_STORES_MAX 8               /* replica stores one world opens */
#define RW_START_MS   1700000000000LL /* where the virtual clock starts */

struct event_base;

struct rw_world {
    struct event_base *base;             /* owned */
    struct store_memory_group *group;    /* owned */
    struct vclock vc;                    /* owned; its now is the registries' clock */
    struct store *stores[RW_STORES_MAX]; /* owned: NULL once closed */
    size_t nstores;                      /* slots used in stores */
};

/* A world with no replica: the base, the group with its lease timers on
 * vc, the clock at RW_START_MS. NULL on failure. Caller frees with
 * rw_free. */
struct rw_world *rw_new(void) __attribute__((warn_unused_result));

/* Close every store still open, then free the group, the base and w.
 * Whatever was built on the stores (registries, KV, members) must be
 * freed before. NULL is fine. */
void rw_free(struct rw_world *w);

/* Open one more replica store on the group (asserting it opened). The
 * world owns it (borrowed by the caller until rw_store_close or
 * rw_free). */
struct store *rw_store_open(struct rw_world *w);

/* Close st, a store of rw_store_open, now (as a crash would: nothing is
 * deleted, its leases are left to lapse). */
void rw_store_close(struct rw_world *w, struct store *st);

/* A reg_options.clock reading w->vc.now (clock_arg: the world). */
int64_t rw_clock(void *arg);

/* A registry on st (borrowed, must outlive it) with the world's clock,
 * the codec, seed 7 and observer (NULL: none). Asserts it was made.
 * Caller frees with reg_free. */
struct reg_registry *rw_registry_new(struct rw_world *w, struct store *st, reg_observer_fn observer,
                                     void *observer_arg);

/* Run the loop until no open store has writes waiting, and a few turns
 * more for the followers (asserting it got there). */
void rw_settle(struct rw_world *w);

/* Let ms of virtual time pass, firing the timers due in order and
 * settling after each. */
void rw_advance(struct rw_world *w, int64_t ms);

/* A reg_done_fn / store_done_fn whose arg is an int: 1 on success, -1 on
 * failure. */
void rw_done_cb(void *arg, int rc, const char *err);

/* Register the JSON body text on reg and settle; asserts it committed.
 * The id into id (LIM_ID_MAX + 1 bytes). */
void rw_register(struct rw_world *w, struct reg_registry *reg, const char *json, char *id);

/* Read every record of the group through a fresh store of it (closed
 * again before returning), calling fn with arg for each (asserting the
 * load succeeded). during, if not NULL, is set to that store for fn's
 * calls (borrowed; it is gone after the call). */
void rw_load(struct rw_world *w, store_load_fn fn, void *arg, struct store **during);

#endif
