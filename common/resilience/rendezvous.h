/* rendezvous.h: highest-random-weight (rendezvous) hashing: every key ranks
 * the candidate instances the same way everywhere, so retries and resends of
 * one message land on the same replicas, and removing one instance only moves
 * the keys it held. */
#ifndef SVC_RESILIENCE_RENDEZVOUS_H
#define SVC_RESILIENCE_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* The weight of (key, node): a 64-bit hash of both (FNV-1a 64 over key,
 * a 0x00 byte and node, then the splitmix64 finaliser). Unseeded and
 * byte-wise, so stable across runs and platforms; NULL reads as "". */
uint64_t rv_weight(const char *key, const char *node);

/* Fill order[0..n) (the caller's array) with the indexes into nodes
 * sorted by descending weight for key; ties broken by strcmp of the node
 * strings, then by index. key and nodes are borrowed; no allocation. */
void rv_rank(const char *key, const char *const *nodes, size_t n, size_t *order);

#endif
