/* replicate.h: the facade's write path. A message gets stored on `replicas`
 * distinct passing logging-service instances chosen by rendezvous hashing of
 * its uuid; a copy whose instance fails moves to the next instance in that
 * order; when no instance can take a copy the message waits with
 * exponential backoff and full jitter, up to its deadline. Copies waiting
 * for the same instance are sent together as one batch POST per loop turn
 * (group commit), at most REP_LANE_INFLIGHT batches in flight per instance. */
#ifndef FC_REPLICATE_H
#define FC_REPLICATE_H

#include "core/limits.h"
#include "proto/messages.h"
#include "resilience/backoff.h"

#include <stddef.h>
#include <stdint.h>

struct clk_timers;
struct event_base;
struct hc_client;
struct disc_client;
struct up_table;
struct rep_ctx;

/* A batch POST is one call to a peer (LIM_CALL_TIMEOUT_MS in all); a
 * replica that does not even accept the connection (host gone) is left
 * after LIM_CONNECT_TIMEOUT_MS. The service and its path are the wire
 * contract's (PM_SERVICE, PM_PATH of proto/messages.h). */
#define REP_REPLICAS_DEFAULT 2
#define REP_REPLICAS_MAX     8
/* Batches in flight per instance: with one, the copies that arrive meanwhile
 * make the next batch bigger (measured ~7% more POST throughput than with
 * two). */
#define REP_LANE_INFLIGHT 1
#define REP_INSTANCES_MAX 64 /* instances considered per message */
/* A batch outstanding this long marks its instance stuck (frozen, or far
 * slower than the others): the copies waiting for it, queued or in that
 * batch, move to the next instance in rendezvous order, and new copies
 * pass it by until the batch ends (its answer still counts if it comes).
 * Well above a loaded batch's round trip (a few ms), far below the call's
 * LIM_CALL_TIMEOUT_MS. */
#define REP_LANE_STUCK_MS 200

struct rep_options {
    int replicas;             /* copies per message, 1..REP_REPLICAS_MAX */
    int64_t deadline_ms;      /* per message, from rep_store */
    struct bo_policy backoff; /* waits when no instance can take a copy */
    /* How the backoff and deadline timers are armed (borrowed, must outlive
     * the context; NULL: libevent's own clock), and the monotonic clock in
     * ms the deadlines are read on (NULL: clk_now_ms). A test gives both a
     * virtual time of its own. */
    const struct clk_timers *timers;
    int64_t (*clock)(void);
    /* Sent as X-Registry-Token on every batch POST (the logging-service's
     * --peer-token); borrowed, must outlive the context; NULL: none. */
    const char *token;
};

/* Outcome of one message: status 200 (stored on `replicas` instances, or
 * on every instance that could be reached when fewer could: instances that
 * refused the connection or had their breaker open this round are not
 * waited for), 409 (the uuid holds another message), 502 (an instance
 * refused it) or 503 (deadline passed); copies is the number of instances
 * that stored it (0..replicas; below replicas on 200 or 503: under-
 * replicated, logged and counted); error is NULL on 200, else borrowed
 * text; uuid is the message's (borrowed). */
typedef void (*rep_done_fn)(int status, int copies, const char *error, const char *uuid, void *arg);

/* All pointers borrowed; they must outlive the context. Caller frees. */
struct rep_ctx *rep_new(struct event_base *base, struct hc_client *hc, struct disc_client *disc,
                        struct up_table *ups, const struct rep_options *opt)
    __attribute__((warn_unused_result));

/* Begin storing (uuid, msg, ts); uuid is a canonical UUID, msg valid UTF-8
 * without NUL bytes (the caller checks), both copied. done runs later from
 * the loop, exactly once, never before rep_store returns. 0, or -1 on OOM. */
int rep_store(struct rep_ctx *r, const char *uuid, const char *msg, size_t msg_len, int64_t ts,
              rep_done_fn done, void *arg) __attribute__((warn_unused_result));

/* rep_store for a message of a trace: trace (borrowed) is its W3C trace id
 * (32 lower-case hex digits; anything else or NULL: none). The batch item
 * carries it ("trace", proto/messages.h), a batch POST's traceparent names
 * its first item's trace, and the lines logged about the message (retries,
 * under-replication) carry trace=<id>. */
int rep_store_traced(struct rep_ctx *r, const char *uuid, const char *msg, size_t msg_len,
                     int64_t ts, const char *trace, rep_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Messages not finished yet (for the shutdown drain). */
size_t rep_pending(const struct rep_ctx *r);

/* The copies (1..REP_REPLICAS_MAX; others are ignored) and the retry
 * deadline (> 0 ms) of the messages stored from now on; those already
 * being stored keep theirs. */
void rep_set_replicas(struct rep_ctx *r, int replicas);
void rep_set_deadline(struct rep_ctx *r, int64_t deadline_ms);

/* The copies and the retry deadline new messages get (for /stats). */
int rep_replicas(const struct rep_ctx *r);
int64_t rep_deadline(const struct rep_ctx *r);

/* Messages answered 200 or 503 with at least one but fewer than replicas
 * copies, since rep_new (facade_under_replicated_total). */
uint64_t rep_under_replicated(const struct rep_ctx *r);

/* Why a copy failed and was retried (facade_retries_total{reason}). */
enum rep_reason {
    REP_REASON_CONNECT = 0, /* the connection was refused */
    REP_REASON_TIMEOUT,     /* no answer within the call's timeout */
    REP_REASON_5XX,         /* an HTTP 5xx answer */
    REP_REASON_429,         /* HTTP 429 */
    REP_REASON_BAD_ANSWER,  /* a 200 that was not a true answer for the item */
    REP_REASON_BREAKER,     /* the breaker was open: the copy went elsewhere or waits */
    REP_REASON_STUCK,       /* a batch outstanding over REP_LANE_STUCK_MS */
    REP_REASON_NO_INSTANCE, /* a wait: no passing instance known */
    REP_REASON_OTHER,       /* any other transport failure */
    REP_REASONS
};

/* Messages answered 200, copies stored (each instance of a message once),
 * and failed copies (or waits for an instance) of reason, since rep_new. */
uint64_t rep_replicated(const struct rep_ctx *r);
uint64_t rep_copies(const struct rep_ctx *r);
uint64_t rep_retries(const struct rep_ctx *r, enum rep_reason reason);
/* The label of reason ("connect", "timeout", "5xx", ...); a static string. */
const char *rep_reason_name(enum rep_reason reason);

/* Drop everything (callbacks are not called) and free. Accepts NULL. */
void rep_free(struct rep_ctx *r);

#endif
