/* backoff.h: exponential backoff with full jitter, bounded by a deadline.
 *   delay(attempt) = random(0, min(cap, base * 2^attempt))
 * Pure arithmetic: randomness is injected so the tests check the bounds. */
#ifndef SVC_RESILIENCE_BACKOFF_H
#define SVC_RESILIENCE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define BO_BASE_MS_DEFAULT     100
#define BO_CAP_MS_DEFAULT      2000
#define BO_DEADLINE_MS_DEFAULT 10000

/* Uniform random number in [0, bound] inclusive (an answer above bound is
 * clamped to bound). */
typedef uint64_t (*bo_random_fn)(uint64_t bound, void *arg);

struct bo_policy {
    int64_t base_ms;     /* first ceiling */
    int64_t cap_ms;      /* largest ceiling */
    bo_random_fn random; /* NULL: a process-wide PRNG */
    void *random_arg;
};

/* The ceiling min(cap, base * 2^attempt), overflow-safe for any attempt
 * (100 gives the cap). base or cap <= 0 gives 0. p NULL: the defaults. */
int64_t bo_ceiling_ms(const struct bo_policy *p, unsigned attempt);

/* A delay drawn uniformly in [0, ceiling(attempt)]. p NULL: the defaults. */
int64_t bo_delay_ms(const struct bo_policy *p, unsigned attempt);

/* Delay before the next attempt given the time left before the deadline:
 * returns the drawn delay when now + delay <= deadline (equal is allowed),
 * or -1 when waiting it would pass the deadline (the caller gives up). A
 * drawn delay that does not fit is not shortened to the time left. */
int64_t bo_next_delay_ms(const struct bo_policy *p, unsigned attempt, int64_t now_ms,
                         int64_t deadline_ms);

#endif
