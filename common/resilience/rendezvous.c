/* rendezvous.c: highest-random-weight hashing (see rendezvous.h). The
 * weight is FNV-1a 64 over key, a NUL separator and node, avalanched by the
 * splitmix64 finaliser: fixed constants, no seed, byte-wise, so every
 * process on every platform ranks a key's instances identically. */
#include "resilience/rendezvous.h"

#include <stdbool.h>
#include <string.h>

#define RV_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define RV_FNV_PRIME  UINT64_C(0x100000001b3)
#define RV_CACHE_MAX  64 /* nodes whose weights rv_rank keeps on the stack */

/* s, or "" for NULL, so a NULL name ranks like an empty one. */
static const char *rv_str(const char *s) { return s != NULL ? s : ""; }

/* Fold the bytes of s (borrowed) into the FNV-1a state h. */
static uint64_t rv_fnv1a(uint64_t h, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        h ^= *p++;
        h *= RV_FNV_PRIME;
    }
    return h;
}

/* The splitmix64 finaliser: FNV-1a alone mixes its last bytes poorly into
 * the high bits, which decide the comparisons. */
static uint64_t rv_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The weight of (key, node), both borrowed, NULL read as "". The NUL
 * separator makes the pair unambiguous ("ab","c" differs from "a","bc"),
 * as neither string can contain it. */
uint64_t rv_weight(const char *key, const char *node)
{
    uint64_t h = RV_FNV_OFFSET;

    h = rv_fnv1a(h, rv_str(key));
    h *= RV_FNV_PRIME; /* the separator byte 0x00: h ^= 0 is a no-op */
    h = rv_fnv1a(h, rv_str(node));
    return rv_mix64(h);
}

/* True when node index a ranks before index b: higher weight first, then
 * the smaller node string, then the smaller index, so the order is total
 * and deterministic even for duplicate names. wa and wb are their weights. */
static bool rv_before(const char *const *nodes, size_t a, uint64_t wa, size_t b, uint64_t wb)
{
    int c;

    if (wa != wb)
        return wa > wb;
    c = strcmp(rv_str(nodes[a]), rv_str(nodes[b]));
    if (c != 0)
        return c < 0;
    return a < b;
}

/* Fill order[0..n) (caller's array) with 0..n-1 sorted by descending weight
 * for key, ties by strcmp of the node names; key and nodes are borrowed.
 * An insertion sort: instance lists are short. Up to RV_CACHE_MAX weights
 * are computed once each; longer lists recompute them while sorting, which
 * is slower but needs no allocation. */
void rv_rank(const char *key, const char *const *nodes, size_t n, size_t *order)
{
    uint64_t cache[RV_CACHE_MAX];
    int cached = n <= RV_CACHE_MAX;
    size_t i;

    for (i = 0; i < n; i++) {
        order[i] = i;
        if (cached)
            cache[i] = rv_weight(key, nodes[i]);
    }
    for (i = 1; i < n; i++) {
        size_t cur = order[i];
        uint64_t wcur = cached ? cache[cur] : rv_weight(key, nodes[cur]);
        size_t j = i;

        while (j > 0) {
            size_t prev = order[j - 1];
            uint64_t wprev = cached ? cache[prev] : rv_weight(key, nodes[prev]);

            if (!rv_before(nodes, cur, wcur, prev, wprev))
                break;
            order[j] = prev;
            j--;
        }
        order[j] = cur;
    }
}
