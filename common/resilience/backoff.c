/* backoff.c: exponential backoff with full jitter (see backoff.h). The
 * ceiling is pure integer arithmetic, overflow-safe for any attempt; the
 * draw uses the policy's injected random source or, by default, one
 * process-wide splitmix64 generator seeded once from the clock and the pid. */
#include "resilience/backoff.h"

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#define BO_GOLDEN_GAMMA UINT64_C(0x9e3779b97f4a7c15)

/* splitmix64 state: a counter advanced by the golden gamma. Atomic so the
 * default source stays sound even if a helper thread ever draws; the
 * services themselves are single-threaded. */
static _Atomic uint64_t bo_prng_state;
static atomic_int bo_prng_seeded;

/* The splitmix64 finaliser: a bijective 64-bit avalanche mix. */
static uint64_t bo_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Seed the default generator once from the wall clock, the pid and a stack
 * address (ASLR). Two threads racing here both compute a seed; the
 * compare-exchange keeps the first, so the race is harmless. */
static void bo_prng_seed(void)
{
    struct timespec ts = {0, 0};
    uint64_t seed;
    uint64_t expected = 0;
    int local = 0;

    if (atomic_load(&bo_prng_seeded))
        return;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    seed = bo_mix64((uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec);
    seed ^= bo_mix64(((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&local);
    if (seed == 0)
        seed = BO_GOLDEN_GAMMA;
    (void)atomic_compare_exchange_strong(&bo_prng_state, &expected, seed);
    atomic_store(&bo_prng_seeded, 1);
}

/* The next raw 64-bit output of the default generator. */
static uint64_t bo_prng_next(void)
{
    bo_prng_seed();
    return bo_mix64(atomic_fetch_add(&bo_prng_state, BO_GOLDEN_GAMMA) + BO_GOLDEN_GAMMA);
}

/* The default bo_random_fn: uniform in [0, bound] inclusive, unbiased by
 * rejection (OpenBSD arc4random_uniform): raw values below 2^64 mod range
 * are redrawn so every residue is equally likely. arg is unused. */
static uint64_t bo_prng_uniform(uint64_t bound, void *arg)
{
    uint64_t range;
    uint64_t threshold;
    uint64_t x;

    (void)arg;
    if (bound == UINT64_MAX)
        return bo_prng_next();
    range = bound + 1;
    threshold = (0 - range) % range; /* 2^64 mod range */
    do {
        x = bo_prng_next();
    } while (x < threshold);
    return x % range;
}

/* The policy to use: p (borrowed) or, for NULL, the defaults. */
static const struct bo_policy *bo_policy_or_default(const struct bo_policy *p)
{
    static const struct bo_policy defaults = {BO_BASE_MS_DEFAULT, BO_CAP_MS_DEFAULT, NULL, NULL};

    return p != NULL ? p : &defaults;
}

/* min(cap, base * 2^attempt) without ever forming the overflowing product:
 * base * 2^a <= cap exactly when base <= cap >> a. A base or cap <= 0 gives
 * 0 (no wait); a base above the cap gives the cap. p NULL: defaults. */
int64_t bo_ceiling_ms(const struct bo_policy *p, unsigned attempt)
{
    int64_t base;
    int64_t cap;

    p = bo_policy_or_default(p);
    base = p->base_ms;
    cap = p->cap_ms;
    if (base <= 0 || cap <= 0)
        return 0;
    if (attempt >= 63 || base > (cap >> attempt))
        return cap;
    return base << attempt;
}

/* A delay drawn uniformly in [0, ceiling(attempt)] from p's random source
 * (the default PRNG when it is NULL). A source answering above the bound
 * is clamped to the ceiling rather than trusted. p NULL: defaults. */
int64_t bo_delay_ms(const struct bo_policy *p, unsigned attempt)
{
    int64_t ceiling;
    uint64_t r;

    p = bo_policy_or_default(p);
    ceiling = bo_ceiling_ms(p, attempt);
    if (ceiling == 0)
        return 0;
    if (p->random != NULL)
        r = p->random((uint64_t)ceiling, p->random_arg);
    else
        r = bo_prng_uniform((uint64_t)ceiling, NULL);
    if (r > (uint64_t)ceiling)
        r = (uint64_t)ceiling;
    return (int64_t)r;
}

/* Draw a delay and return it when now + delay <= deadline (landing exactly
 * on the deadline is allowed), else -1. A drawn delay that does not fit is
 * not shortened to the time left: a retry squeezed against the deadline
 * would have no time to run, so giving up is the simpler and honest answer.
 * A deadline already passed gives -1 without drawing. Never overflows. */
int64_t bo_next_delay_ms(const struct bo_policy *p, unsigned attempt, int64_t now_ms,
                         int64_t deadline_ms)
{
    int64_t delay;

    if (now_ms > deadline_ms)
        return -1;
    delay = bo_delay_ms(p, attempt);
    /* now + delay <= deadline, rearranged; delay >= 0, so deadline - delay
     * only underflows when the deadline is within delay of INT64_MIN. */
    if (deadline_ms < INT64_MIN + delay || now_ms > deadline_ms - delay)
        return -1;
    return delay;
}
