/* kv_api.h: the registry's KV routes, Consul's /v1/kv/<key> (GET with
 * ?raw, ?recurse, ?keys&separator=, blocking with ?index=&wait=; PUT with
 * ?flags=, ?cas=; DELETE with ?recurse, ?cas=) over the KV core
 * (registry/core/kv.h), and the "kv" change events (rev_publish). See the
 * README, "KV config store", for the contract. */
#ifndef REG_API_KV_API_H
#define REG_API_KV_API_H

#include <stdbool.h>
#include <stddef.h>

struct svc;
struct kv_store;
struct kv_change;
struct reg_registry;
struct rev_hub;
struct acl;
struct kv_api;
struct store;
struct kv_entry;
struct evbuffer;

/* An API with no routes yet (the KV core's observer needs it first: give
 * kv_api_observe with it as kv_options.observer). svc, reg, hub and acl
 * (NULL: open) are borrowed and must outlive it. NULL when out of memory. */
struct kv_api *kv_api_new(struct svc *svc, struct reg_registry *reg, struct rev_hub *hub,
                          const struct acl *acl) __attribute__((warn_unused_result));

/* Add the /v1/kv routes over kv (borrowed, must outlive the API) and the
 * stop hook that answers the parked reads. 0 or -1. */
int kv_api_start(struct kv_api *a, struct kv_store *kv) __attribute__((warn_unused_result));

/* The KV core's observer (arg: the API): publish the change as a "kv"
 * event and answer the parked reads it touches. */
void kv_api_observe(void *arg, const struct kv_change *ch);

/* Write the keys of the JSON object in the file at path (key -> string
 * value) that do not exist yet (cas=0), through kv and its store st, and
 * wait for their commits (store_drain: at start-up, before the loop runs).
 * Every entry is checked before any is written. The number written, or -1
 * with err (one line). */
long kv_api_seed(struct kv_store *kv, struct store *st, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Append the JSON object of entry e to out, in Consul's shape
 * ({"LockIndex":0,"Key":K,"Flags":F,"Value":<base64>|null,"CreateIndex":
 * C,"ModifyIndex":M}); with_value false writes Value null (what Consul's
 * transaction results give for verbs other than get). e and out borrowed.
 * 0 or -1 (out of memory). */
int kv_api_write_entry(struct evbuffer *out, const struct kv_entry *e, bool with_value)
    __attribute__((warn_unused_result));

/* Answer the parked reads, free. After the store was drained (the KV
 * core's last completions may still wake reads), before the KV core and
 * the server are freed. Accepts NULL. */
void kv_api_free(struct kv_api *a);

#endif
