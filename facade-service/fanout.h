/* fanout.h: the facade's read path, GET /facade. The facade keeps a merged
 * view of the logs of every logging instance it has read, synced
 * incrementally: per instance it remembers the store epoch and the position
 * it has read up to (GET /logging?after=&limit=, proto/messages.h), so a
 * sync asks each instance only for what was stored since; an instance seen
 * for the first time or under a new epoch (restarted) is read in full once,
 * in pages. The view is ordered as GET /facade always was (the facade's
 * timestamp, then the earliest position any instance gives the message,
 * then the uuid), and its JSON encoding is cached and extended or rebuilt
 * only when the view changed.
 *
 * Each GET waits for a sync round that began after it arrived (so it shows
 * every message acknowledged before it, by any facade), rounds run one at a
 * time and serve every GET that waited for them. Sync calls go straight
 * through the HTTP client, never through the replicator's batch lanes. */
#ifndef FC_FANOUT_H
#define FC_FANOUT_H

#include <stddef.h>
#include <stdint.h>

struct hc_client;
struct hs_req;
struct up_table;
struct disc_instance;
struct fan_view;

/* The passing instances of service (e.g. "logging-service"): fills at most
 * max of out, returns how many. The production one reads the discovery
 * cache; tests give a fixed list. */
typedef size_t (*fan_list_fn)(void *arg, const char *service, struct disc_instance *out,
                              size_t max);

struct fan_options {
    int replicas;      /* copies of each message the replicator makes (status rule) */
    size_t page_limit; /* limit= of each sync call; 0: LIM_PAGE_MAX */
    long timeout_ms;   /* each sync call; <= 0: LIM_CALL_TIMEOUT_MS */
    const char *token; /* X-Registry-Token of each sync call to logging-service
                          (borrowed, outlives the view); NULL: none */
};

/* What one sync round found; borrowed by the callback for its duration. */
struct fan_round_info {
    size_t listed;             /* logging instances listed when the round began */
    size_t answered;           /* of them, read up to their end in this round */
    int complete;              /* 1: every instance listed (each once) was read */
    int status;                /* the GET status this round earns: 200, 206 or 502 */
    const char *const *errors; /* nerrors texts, one per part that is missing */
    size_t nerrors;
};

/* Called when the sync round a caller joined ends. */
typedef void (*fan_synced_fn)(const struct fan_round_info *info, void *arg);

/* A view reading logging and messages instances through hc, recording
 * outcomes in ups (all borrowed, must outlive the view). opt is copied.
 * NULL on failure; caller frees with fan_free. */
struct fan_view *fan_new(struct hc_client *hc, struct up_table *ups, fan_list_fn list,
                         void *list_arg, const struct fan_options *opt)
    __attribute__((warn_unused_result));

/* Drop the rounds in flight (waiting requests stay unanswered and are
 * dropped with the server; callbacks are not called) and free. Accepts
 * NULL. */
void fan_free(struct fan_view *v);

/* Sync: fn(info, arg) runs once the next round that begins after this call
 * has ended (maybe before fan_sync returns, when nothing had to be asked).
 * 0, or -1 when out of memory (fn is then never called). */
int fan_sync(struct fan_view *v, fan_synced_fn fn, void *arg) __attribute__((warn_unused_result));
/* fan_sync for a request of trace (borrowed W3C trace id; NULL or invalid:
 * none): a round started for it sends its calls with a traceparent of that
 * trace and logs with it (a round started for no trace sends a new trace
 * id on its calls and logs with none). */
int fan_sync_traced(struct fan_view *v, fan_synced_fn fn, void *arg, const char *trace)
    __attribute__((warn_unused_result));

/* GET /facade on req (answered exactly once, now or from a later round):
 * sync, then the merged list, whole or the page ?limit=&after=; trace as
 * for fan_sync_traced. */
void fan_serve(struct fan_view *v, struct hs_req *req, const char *trace);

/* GET /facade requests waiting for a round (for the shutdown drain). */
size_t fan_pending(const struct fan_view *v);

/* The replicas of the status rule from now on (the replicator's count,
 * followed live); below 1 is ignored. */
void fan_set_replicas(struct fan_view *v, int replicas);

/* Messages in the view, and the i-th of them in the view's order (its text
 * as a JSON string literal, borrowed until the next round; NULL past the
 * end). For tests and /stats. */
size_t fan_count(const struct fan_view *v);
const char *fan_at(const struct fan_view *v, size_t i, size_t *len);

/* What the view knows of one uuid (fan_lookup). */
#define FAN_LOOKUP_ERROR (-1) /* not a canonical UUID, or out of memory */
#define FAN_ABSENT       0    /* no instance read so far holds it */
#define FAN_SAME         1    /* held, with the text msg */
#define FAN_OTHER        2    /* held, with another text */

/* Whether a message under uuid (canonical, borrowed) is in the view, and
 * whether its text is msg (len bytes of UTF-8, borrowed). The view holds
 * what the last rounds read (call after a fan_sync round to include every
 * reachable instance's latest). One of FAN_*. */
int fan_lookup(const struct fan_view *v, const char *uuid, const char *msg, size_t len)
    __attribute__((warn_unused_result));

/* Repair (repair.h): which instances hold each message. The view marks
 * every message with the instances whose pages listed it (up to 64
 * instances have a mark; one beyond is not counted); an instance seen under
 * a new store epoch (restarted, maybe empty) loses its marks before it is
 * read again. The rule is judged against the last complete round (every
 * listed instance read): a message is under-replicated when fewer of the
 * instances listed then hold it than fan_copies_wanted. */

/* One under-replicated message (fan_under_next). */
struct fan_under {
    char uuid[37];  /* canonical, lower case */
    char trace[33]; /* the trace id it was stored with, "" when none is known */
    char *msg;      /* its text, len bytes and a NUL: owned by the caller (free) */
    size_t len;
    int64_t ts;  /* the facade's timestamp it was stored with */
    int holders; /* instances of the last complete round that hold it */
};

/* min(replicas, instances with a mark listed in the last complete round);
 * 0 before any round was complete. */
int fan_copies_wanted(const struct fan_view *v);

/* Messages held by fewer than fan_copies_wanted instances (0 when the last
 * round was not complete). O(messages). */
size_t fan_under_count(const struct fan_view *v);

/* The next under-replicated message at or after *cursor (an opaque
 * position in a walk over the view, 0 to begin; messages added later come
 * after the ones there now). 1 with out filled and *cursor past it; 0 at
 * the end (or when the last round was not complete); -1 when out of
 * memory (*cursor is past it all the same). */
int fan_under_next(const struct fan_view *v, size_t *cursor, struct fan_under *out)
    __attribute__((warn_unused_result));

/* How often the cached encoding was rebuilt from scratch (a message placed
 * before others, or reordered) and extended at its end. For tests. */
void fan_cache_stats(const struct fan_view *v, uint64_t *rebuilds, uint64_t *extends);

#endif
