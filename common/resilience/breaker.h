/* breaker.h: a circuit breaker per upstream instance (closed, open,
 * half-open), with an injected clock so the state machine is tested without
 * sleeping. Defaults in the spirit of resilience4j:
 *   - opens after BRK_CONSECUTIVE_DEFAULT consecutive failures, or when the
 *     failure rate over the last BRK_WINDOW_DEFAULT calls is at least
 *     BRK_RATE_DEFAULT percent (once BRK_MIN_CALLS_DEFAULT calls are in it);
 *   - stays open BRK_OPEN_MS_DEFAULT, then half-open lets
 *     BRK_PROBES_DEFAULT calls through: all succeed -> closed, one fails ->
 *     open again. */
#ifndef SVC_RESILIENCE_BREAKER_H
#define SVC_RESILIENCE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BRK_CONSECUTIVE_DEFAULT 5
#define BRK_WINDOW_DEFAULT      20
#define BRK_MIN_CALLS_DEFAULT   10
#define BRK_RATE_DEFAULT        50
#define BRK_OPEN_MS_DEFAULT     5000
#define BRK_PROBES_DEFAULT      3
#define BRK_WINDOW_MAX          64

enum brk_state { BRK_CLOSED = 0, BRK_OPEN, BRK_HALF_OPEN };

struct brk_config {
    unsigned consecutive;  /* consecutive failures that open it */
    unsigned window;       /* calls in the rate window (<= BRK_WINDOW_MAX) */
    unsigned min_calls;    /* calls needed before the rate counts */
    unsigned rate_percent; /* failure rate that opens it */
    int64_t open_ms;       /* cool-down before half-open */
    unsigned probes;       /* calls let through half-open */
};

struct brk_breaker {
    struct brk_config cfg;
    enum brk_state state;
    unsigned consecutive_failures;
    uint64_t window_bits; /* 1 = failure, newest in bit 0 */
    unsigned window_fill; /* calls recorded in the window, <= cfg.window */
    int64_t opened_at_ms;
    unsigned probes_out; /* half-open calls admitted, not yet reported */
    unsigned probes_ok;  /* half-open successes */
};

/* Fill cfg with the defaults above. */
void brk_config_default(struct brk_config *cfg);

/* Initialise b closed with a copy of cfg (NULL: defaults). window is
 * clamped to [1, BRK_WINDOW_MAX], min_calls to [1, window], probes to at
 * least 1; consecutive 0 or rate_percent 0 disables that trigger. */
void brk_init(struct brk_breaker *b, const struct brk_config *cfg);

/* May a call go out now? Moves open -> half-open when the cool-down is
 * over and counts the admitted probe; half-open admits `probes` calls in
 * all (outstanding + succeeded) and refuses the rest. A caller told true
 * must report the call's outcome with brk_record, or a half-open breaker
 * waits for it forever. */
bool brk_allow(struct brk_breaker *b, int64_t now_ms);

/* Report the outcome of an admitted call. While open the result is late
 * (the call was admitted before the breaker opened) and is ignored; so is a
 * half-open result with no probe outstanding. */
void brk_record(struct brk_breaker *b, bool success, int64_t now_ms);

/* The state as seen at now (open reads half-open once the cool-down ends);
 * pure: b is not changed. */
enum brk_state brk_state_at(const struct brk_breaker *b, int64_t now_ms);

const char *brk_state_name(enum brk_state s); /* "closed", "open", "half_open" */

#endif
