/* rendezvous.h: highest-random-weight (rendezvous) hashing: every key ranks
 * the candidate instances the same way everywhere, so retries and resends of
 * one message land on the same replicas, and removing one instance only moves
 * the keys it held. */
#ifndef SVC_RENDEZVOUS_H
#define SVC_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* The weight of (key, node): a 64-bit hash of both. */
uint64_t rv_weight(const char *key, const char *node);

/* Sort order[0..n) (indexes into nodes) by descending weight for key;
 * ties broken by node string. nodes are borrowed. */
void rv_rank(const char *key, const char *const *nodes, size_t n, size_t *order);

#endif
