/* discovery.h: a local cache of the passing instances of the services a
 * process calls, following the registry with blocking reads: GET
 * /v1/services?name=X&health=passing&index=N&wait=DISC_WAIT_S s, the next
 * one DISC_FLOOR_MS after each answer, so a change is seen within a loop
 * turn of its commit and an idle name costs one parked request. A registry
 * that does not hold reads is read every refresh interval (1 s by
 * default). When the registry cannot be reached the last list is kept
 * (retried with backoff, failing over along the list), so traffic between
 * services that are up survives a registry outage. */
#ifndef SVC_REGCLIENT_DISCOVERY_H
#define SVC_REGCLIENT_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct clk_timers;
struct event_base;
struct hc_client;
struct ru_list;
struct disc_client;

#define DISC_NAMES_MAX          8    /* services watched per process */
#define DISC_INSTANCES_MAX      256  /* instances kept per service */
#define DISC_REFRESH_MS_DEFAULT 1000 /* the pace of reads a registry does not hold */
#define DISC_WAIT_S             60   /* wait= of a blocking read */
#define DISC_FLOOR_MS           20   /* between an answer and the next read: no spin */

struct disc_instance {
    char id[LIM_ID_MAX + 1];
    char host[LIM_HOST_MAX + 1];
    int port;
};

/* base, hc and urls are borrowed and must outlive the client (urls may be
 * shared with the registry client). refresh_ms: how often a registry that
 * does not hold blocking reads (no X-Registry-Index, or one that answers
 * them at once) is read; <= 0 means DISC_REFRESH_MS_DEFAULT, below 10 ms
 * is 10 ms. NULL on allocation failure. */
struct disc_client *disc_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                             int64_t refresh_ms) __attribute__((warn_unused_result));

/* Arm the read timers of the names watched from now on through t
 * (borrowed, must outlive d; NULL: the real clock, the default). Call it
 * before the first disc_watch: tests pass a virtual clock. */
void disc_set_timers(struct disc_client *d, const struct clk_timers *t);

/* Send token (copied; "": none) as X-Registry-Token on every list call
 * from now on. 0, or -1 when it is over LIM_ACL_TOKEN_MAX bytes. */
int disc_set_token(struct disc_client *d, const char *token) __attribute__((warn_unused_result));

/* Keep a cache for service name (copied) from now on; the first refresh
 * starts at once. Watching a name again is a no-op. 0, or -1 when
 * DISC_NAMES_MAX are watched already, name is empty or over LIM_NAME_MAX,
 * or after disc_stop. */
int disc_watch(struct disc_client *d, const char *name) __attribute__((warn_unused_result));

/* Copy up to max cached instances of name into out (the caller's);
 * returns how many. 0 when none is known (yet) or none is passing. The
 * order is the registry's. */
size_t disc_list(const struct disc_client *d, const char *name, struct disc_instance *out,
                 size_t max);

/* A number that changes whenever the cached list of name changes (0 for
 * a name not watched): callers that derive something from the list
 * rebuild it only when this moves. */
uint64_t disc_version(const struct disc_client *d, const char *name);

/* Whether at least one refresh of name has succeeded. */
bool disc_known(const struct disc_client *d, const char *name);

/* Stop refreshing and cancel the refreshes in flight (for shutdown); the
 * cache stays readable. */
void disc_stop(struct disc_client *d);

/* Cancel refreshes in flight and free. Accepts NULL. Call it before
 * hc_client_free of the client it uses, and not from inside a callback. */
void disc_free(struct disc_client *d);

#endif
