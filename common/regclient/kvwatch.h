/* kvwatch.h: follow one key of the registry's KV store (Consul's
 * /v1/kv/<key>) with blocking reads on the shared asynchronous client:
 * GET ?raw&index=N&wait=LIM_KV_WATCH_WAIT_S s, where N is the
 * X-Registry-Index of the previous answer, so a write of the key is seen
 * as soon as it commits and an idle key costs one parked request a minute.
 * The callback hears the value when it is first read and whenever it
 * changes or goes. When the registry does not answer, the last value is
 * kept and the read is tried again with backoff, failing over along the
 * registry list by the shared policy (regclient/failover.h). */
#ifndef SVC_REGCLIENT_KVWATCH_H
#define SVC_REGCLIENT_KVWATCH_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct hc_client;
struct ru_list;
struct kvw;

/* The key is there with value (len bytes, borrowed for the call; also
 * NUL-terminated), or not (present false, value NULL). */
typedef void (*kvw_fn)(void *arg, bool present, const char *value, size_t len);

/* Start following key (copied; a KV key, sent percent-encoded but for
 * '/') through hc at the registry list urls, with token (copied; NULL or
 * "": none). base, hc and urls are borrowed and must outlive the watcher.
 * The first read goes out on the loop. NULL when out of memory or the key
 * is empty or too long. Caller frees with kvw_free. */
struct kvw *kvw_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                    const char *token, const char *key, kvw_fn fn, void *arg)
    __attribute__((warn_unused_result));

/* Stop: cancel the read in flight and the retry timer (fn is not called
 * again). For a service's stop hook, so the shutdown does not wait for a
 * parked read. */
void kvw_stop(struct kvw *w);

/* Stop and free. Accepts NULL. */
void kvw_free(struct kvw *w);

#endif
