/* kv_txn.h: Consul's PUT /v1/txn for KV operations over the KV core's
 * transactions (registry/core/kv.h, kv_txn): the JSON of the ops and of
 * the answer, the rights of every key, ?dc=. Only KV ops; the session
 * verbs (lock, unlock, check-session) are refused. See the README, "KV
 * config store", for the contract. */
#ifndef REG_API_KV_TXN_H
#define REG_API_KV_TXN_H

struct svc;
struct kv_store;
struct reg_registry;
struct acl;
struct kvt_api;

/* The /v1/txn API of svc over reg (its index), acl (NULL: open) and the
 * datacenter the Consul API answers for (copied; NULL or "": "dc1"); all
 * borrowed must outlive it. NULL when out of memory. */
struct kvt_api *kvt_new(struct svc *svc, struct reg_registry *reg, const struct acl *acl,
                        const char *datacenter) __attribute__((warn_unused_result));

/* Add the route over kv (borrowed, must outlive the API). 0 or -1. */
int kvt_start(struct kvt_api *t, struct kv_store *kv) __attribute__((warn_unused_result));

/* Free. After the store was drained (a transaction waiting for its commit
 * answers through the server, not through this). Accepts NULL. */
void kvt_free(struct kvt_api *t);

#endif
