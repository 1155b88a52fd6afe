/* breaker.c: the circuit breaker state machine (see breaker.h). Closed
 * counts consecutive failures and keeps the last cfg.window outcomes as a
 * bitmask; open refuses calls until the cool-down ends; half-open admits
 * cfg.probes calls and closes only when all of them succeed. Time is always
 * passed in, never read, so the machine is deterministic under test. */
#include "resilience/breaker.h"

#include <stddef.h>

/* Fill cfg (borrowed) with the defaults of breaker.h. */
void brk_config_default(struct brk_config *cfg)
{
    cfg->consecutive = BRK_CONSECUTIVE_DEFAULT;
    cfg->window = BRK_WINDOW_DEFAULT;
    cfg->min_calls = BRK_MIN_CALLS_DEFAULT;
    cfg->rate_percent = BRK_RATE_DEFAULT;
    cfg->open_ms = BRK_OPEN_MS_DEFAULT;
    cfg->probes = BRK_PROBES_DEFAULT;
}

/* The mask of the cfg.window low bits that form the window. */
static uint64_t brk_window_mask(const struct brk_breaker *b)
{
    if (b->cfg.window >= 64)
        return UINT64_MAX;
    return (UINT64_C(1) << b->cfg.window) - 1;
}

/* Number of set bits; portable (Kernighan), the window is at most 64. */
static unsigned brk_popcount(uint64_t x)
{
    unsigned n = 0;

    while (x != 0) {
        x &= x - 1;
        n++;
    }
    return n;
}

/* Forget the window, the consecutive count and the probe counters. */
static void brk_reset_counts(struct brk_breaker *b)
{
    b->consecutive_failures = 0;
    b->window_bits = 0;
    b->window_fill = 0;
    b->probes_out = 0;
    b->probes_ok = 0;
}

/* Enter the open state at now: the cool-down restarts from now. */
static void brk_trip(struct brk_breaker *b, int64_t now_ms)
{
    brk_reset_counts(b);
    b->state = BRK_OPEN;
    b->opened_at_ms = now_ms;
}

/* True once the cool-down of an open breaker has passed at now. A clock
 * earlier than opened_at (it should be monotonic) counts as not yet. */
static bool brk_cooled(const struct brk_breaker *b, int64_t now_ms)
{
    if (b->cfg.open_ms <= 0)
        return true;
    if (now_ms < b->opened_at_ms)
        return false;
    /* now >= opened_at, so the unsigned difference is exact. */
    return (uint64_t)now_ms - (uint64_t)b->opened_at_ms >= (uint64_t)b->cfg.open_ms;
}

/* Initialise b (borrowed) closed with a copy of cfg (borrowed; NULL: the
 * defaults). Values that would wedge the machine are sanitised: window is
 * clamped to [1, BRK_WINDOW_MAX], min_calls to [1, window], probes to at
 * least 1. consecutive 0 or rate_percent 0 disables that trigger. */
void brk_init(struct brk_breaker *b, const struct brk_config *cfg)
{
    if (cfg != NULL)
        b->cfg = *cfg;
    else
        brk_config_default(&b->cfg);
    if (b->cfg.window == 0)
        b->cfg.window = 1;
    if (b->cfg.window > BRK_WINDOW_MAX)
        b->cfg.window = BRK_WINDOW_MAX;
    if (b->cfg.min_calls == 0)
        b->cfg.min_calls = 1;
    if (b->cfg.min_calls > b->cfg.window)
        b->cfg.min_calls = b->cfg.window;
    if (b->cfg.probes == 0)
        b->cfg.probes = 1;
    b->state = BRK_CLOSED;
    b->opened_at_ms = 0;
    brk_reset_counts(b);
}

/* May a call go out at now? Closed: yes. Open: no until the cool-down has
 * passed, then the breaker turns half-open. Half-open: yes while fewer
 * than cfg.probes probes have been admitted (outstanding + succeeded), so
 * a recovering upstream sees exactly cfg.probes calls per trial. Every
 * true must be matched by one brk_record. */
bool brk_allow(struct brk_breaker *b, int64_t now_ms)
{
    if (b->state == BRK_CLOSED)
        return true;
    if (b->state == BRK_OPEN) {
        if (!brk_cooled(b, now_ms))
            return false;
        b->state = BRK_HALF_OPEN;
        b->probes_out = 0;
        b->probes_ok = 0;
    }
    if (b->probes_out + b->probes_ok >= b->cfg.probes)
        return false;
    b->probes_out++;
    return true;
}

/* Record one outcome while closed: shift it into the window, update the
 * consecutive count, and open when either trigger fires. The rate is
 * checked after every outcome, successes included (as resilience4j does):
 * the call that brings the window to min_calls may be a success and still
 * find the rate at the threshold. */
static void brk_record_closed(struct brk_breaker *b, bool success, int64_t now_ms)
{
    unsigned failures;

    b->window_bits = ((b->window_bits << 1) | (success ? 0u : 1u)) & brk_window_mask(b);
    if (b->window_fill < b->cfg.window)
        b->window_fill++;
    if (success)
        b->consecutive_failures = 0;
    else
        b->consecutive_failures++;
    if (b->cfg.consecutive > 0 && b->consecutive_failures >= b->cfg.consecutive) {
        brk_trip(b, now_ms);
        return;
    }
    if (b->cfg.rate_percent == 0 || b->window_fill < b->cfg.min_calls)
        return;
    failures = brk_popcount(b->window_bits);
    /* failures / fill >= rate / 100, in integers (both sides <= 6400). */
    if ((uint64_t)failures * 100 >= (uint64_t)b->cfg.rate_percent * b->window_fill)
        brk_trip(b, now_ms);
}

/* Report the outcome of an admitted call at now.
 * - closed: counted (a late result of a call from before a half-open ->
 *   closed transition counts too: it is a real observation);
 * - open: ignored; it is a late result of a call admitted before the
 *   breaker opened and says nothing about the upstream after it;
 * - half-open: a probe result; the last of cfg.probes successes closes the
 *   breaker with a fresh window, any failure reopens it with a fresh
 *   cool-down. With no probe outstanding the result is late and ignored; a
 *   late result arriving while probes are out cannot be told apart from a
 *   probe's and is counted as one. */
void brk_record(struct brk_breaker *b, bool success, int64_t now_ms)
{
    switch (b->state) {
    case BRK_CLOSED:
        brk_record_closed(b, success, now_ms);
        break;
    case BRK_OPEN:
        break;
    case BRK_HALF_OPEN:
        if (b->probes_out == 0)
            break;
        b->probes_out--;
        if (!success) {
            brk_trip(b, now_ms);
            break;
        }
        b->probes_ok++;
        if (b->probes_ok >= b->cfg.probes) {
            b->state = BRK_CLOSED;
            brk_reset_counts(b);
        }
        break;
    }
}

/* The state at now without changing b: an open breaker whose cool-down has
 * passed reads as half-open (brk_allow makes the move for real). */
enum brk_state brk_state_at(const struct brk_breaker *b, int64_t now_ms)
{
    if (b->state == BRK_OPEN && brk_cooled(b, now_ms))
        return BRK_HALF_OPEN;
    return b->state;
}

/* A static name for s: "closed", "open", "half_open", or "unknown". */
const char *brk_state_name(enum brk_state s)
{
    switch (s) {
    case BRK_CLOSED:
        return "closed";
    case BRK_OPEN:
        return "open";
    case BRK_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
