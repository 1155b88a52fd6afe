/* events.h: the registry's change events and their watchers (GET
 * /v1/events). Each committed change the core reports (reg_options.observer
 * = rev_observe) becomes one event, encoded once as JSON and as its
 * Server-Sent Event frame, and kept in a bounded history (count and bytes
 * capped, oldest dropped first). Watchers read it two ways:
 *   - long-poll: the events after an index, at once if there are any, else
 *     the request is parked (one timer for its deadline, nothing else) until
 *     a matching event comes or the wait ends;
 *   - SSE: a stream of the events after an index, with a heartbeat, ended
 *     at shutdown or when the client falls behind by the output cap.
 * An event wakes only the watchers its filter matches (one list per service
 * name, one for the watchers of every name); many watchers are answered
 * from the one encoding (evbuffer references).
 *
 * Other kinds of change (a check's health, maintenance, KV) plug in with one
 * call, rev_publish, with the index the core gave them. */
#ifndef REG_API_EVENTS_H
#define REG_API_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct svc;
struct hs_req;
struct reg_event;
struct rev_hub;

struct rev_options {
    size_t history_max;   /* events kept; 0: LIM_EVENTS_HISTORY_MAX */
    size_t history_bytes; /* bytes of them; 0: LIM_EVENTS_HISTORY_BYTES */
    uint64_t index;       /* the registry index at start (reg_index after load) */
};

/* A hub on svc (borrowed, must outlive it): its history, its watchers, and
 * a stop hook that answers the parked long-polls at shutdown. opt may be
 * NULL. Caller frees with rev_hub_free. NULL when out of memory. */
struct rev_hub *rev_hub_new(struct svc *svc, const struct rev_options *opt)
    __attribute__((warn_unused_result));

/* Answer the parked long-polls (an empty list), detach the open streams
 * (the server ends them), free the history. Before the server is freed.
 * Accepts NULL. */
void rev_hub_free(struct rev_hub *h);

/* Set the index a hub starts from (after the registry was loaded), before
 * any event. */
void rev_hub_set_index(struct rev_hub *h, uint64_t index);

/* The core's observer (reg_observer_fn; arg is the hub): encode the change
 * and publish it. */
void rev_observe(void *arg, const struct reg_event *ev);

/* Publish one event: {"type":type,"index":index,"timestamp":<s>,"data":
 * <data>} where data (borrowed, len bytes) is a JSON object's text without
 * line breaks, and name (borrowed; NULL: none) the service name the ?name=
 * filter matches. index must be the registry's next one (the last + 1).
 * 0, or -1 when out of memory: the history is then cleared past the event,
 * so watchers behind it are told to re-read the state (410 / reset) rather
 * than miss it. */
int rev_publish(struct rev_hub *h, const char *type, uint64_t index, int64_t time_ms,
                const char *name, const char *data, size_t len);

/* Publish as rev_publish, the event also naming the instance id (borrowed;
 * NULL: none) that the watchers parked with rev_park on that id match. */
int rev_publish_id(struct rev_hub *h, const char *type, uint64_t index, int64_t time_ms,
                   const char *name, const char *id, const char *data, size_t len);

/* A parked read's wake-up: answer req (now the callee's, to answer exactly
 * once) with the current state; arg is rev_park's. Called once, from the
 * loop: on a matching change, at the read's deadline, or at shutdown. */
typedef void (*rev_wake_fn)(void *arg, struct hs_req *req);

/* A blocking read of the catalog (not KV): park req, seen at index, until
 * an instance event (any type but "kv") that its filter matches is
 * published, or wait_ms (plus the jitter of /v1/events) ends. The filter:
 * id (borrowed, copied) given: events of that instance; else name
 * (borrowed, copied) given: events of that service name; else every
 * instance event. Returns 1: parked, wake(arg, req) follows later (arg
 * stays the caller's and must live until then); 0: answer now, the hub
 * did not take req (index older than the history, a matching event after
 * index already in it, wait_ms 0, shutdown begun); -1: out of memory, req
 * not taken. Index 0 is "seen nothing": any matching event wakes it (the
 * native reads answer ?index=0 at once themselves). */
int rev_park(struct rev_hub *h, struct hs_req *req, uint64_t index, int64_t wait_ms,
             const char *name, const char *id, rev_wake_fn wake, void *arg)
    __attribute__((warn_unused_result));

/* The query rules of a watch, shared by the KV blocking reads: ?index= a
 * decimal uint64 (digits only), ?wait= a duration (a bare number is
 * seconds) from 0 to LIM_WATCH_WAIT_MAX_MS. 0, or -1 when s breaks them. */
int rev_parse_index(const char *s, uint64_t *out) __attribute__((warn_unused_result));
int rev_parse_wait(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/* The index of the last event published (the registry's index). */
uint64_t rev_hub_index(const struct rev_hub *h);

/* GET /v1/events?index=N&wait=D[&type=T][&name=S], long-poll or (with
 * Accept: text/event-stream) SSE; answers req now or later (see the README
 * for the contract). The caller checked the access rights. */
void rev_watch(struct rev_hub *h, struct hs_req *req);

/* Watchers now open: parked long-polls and streams (for the tests and
 * /metrics). */
size_t rev_hub_watchers(const struct rev_hub *h);

/* The history as it is: events held and the oldest one's index (0 when
 * empty), for the tests. */
size_t rev_hub_held(const struct rev_hub *h, uint64_t *oldest);

#endif
