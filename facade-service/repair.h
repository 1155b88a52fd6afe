/* repair.h: the facade's anti-entropy. Every --repair-interval a timer
 * syncs the merged view (fanout.h), and when that round read every listed
 * logging instance, walks the messages held by fewer of them than
 * min(--replicas, instances) from a cursor and re-sends each through a
 * store function (the replicator's rep_store in the service) with its
 * uuid, text and timestamp: the replicator places copies on the top-ranked
 * passing instances, and logging deduplicates by uuid, so an instance that
 * holds it answers 200 and one that lacks it stores it. At most
 * RPR_INFLIGHT_MAX re-sends are in flight; the walk goes on from its
 * cursor as they end, until the end of the view. A uuid an instance holds with another text
 * (409) is logged once and left alone; nothing is ever overwritten. */
#ifndef FC_REPAIR_H
#define FC_REPAIR_H

#include <stddef.h>
#include <stdint.h>

struct clk_timers;
struct event_base;
struct fan_view;
struct rpr_ctx;

#define RPR_INTERVAL_MS_DEFAULT 5000 /* --repair-interval */
#define RPR_INFLIGHT_MAX        256  /* re-sends in flight at once */
#define RPR_CONFLICTS_MAX       1024 /* uuids remembered as conflicting (409) */

/* The verdict of one store (rep_done_fn's shape, replicate.h). */
typedef void (*rpr_done_fn)(int status, int copies, const char *error, const char *uuid, void *arg);

/* Store (uuid, msg of len bytes, ts, trace: the W3C trace id it was first
 * stored with, "" when none is known), all borrowed for the call; done(arg)
 * runs later from the loop, exactly once, never before it returns. 0, or
 * -1 (done is then never called). rep_store_traced fits. */
typedef int (*rpr_store_fn)(void *store_arg, const char *uuid, const char *msg, size_t len,
                            int64_t ts, const char *trace, rpr_done_fn done, void *arg);

struct rpr_options {
    int64_t interval_ms; /* between ticks; 0: repair is off (rpr_new still works) */
    rpr_store_fn store;  /* how a message is re-sent */
    void *store_arg;     /* its first argument (borrowed) */
    /* How the tick timer is armed (borrowed, must outlive the context;
     * NULL: libevent's own clock). */
    const struct clk_timers *timers;
    /* A number that changes whenever copies may have gone missing (in the
     * service: messages acknowledged with fewer than --replicas copies,
     * plus the version of discovery's list of logging instances, which
     * changes when one joins, restarts or leaves). Once a pass found every
     * message with its copies, ticks skip their sync round until it
     * changes, so a facade whose copies are all made reads nothing for
     * repair. NULL: every tick syncs. */
    uint64_t (*stamp)(void *arg);
    void *stamp_arg;
};

/* A repairer of the view fo (borrowed, must outlive it), ticking on base.
 * opt is copied. NULL on failure; caller frees with rpr_free. */
struct rpr_ctx *rpr_new(struct event_base *base, struct fan_view *fo, const struct rpr_options *opt)
    __attribute__((warn_unused_result));

/* Stop ticking (the shutdown's stop hook): no new sync or re-send starts;
 * the re-sends in flight end on their own. */
void rpr_stop(struct rpr_ctx *r);

/* Messages re-sent and answered 200 since rpr_new (facade_repaired_total). */
uint64_t rpr_repaired(const struct rpr_ctx *r);

/* Re-sends in flight now. */
size_t rpr_inflight(const struct rpr_ctx *r);

/* Free. The store's done callbacks still pending hold r: free the store
 * (rep_free drops them uncalled) before the loop runs again. Accepts
 * NULL. */
void rpr_free(struct rpr_ctx *r);

#endif
