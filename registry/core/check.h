/* check.h: the state machine of one health check, apart from any I/O: a
 * check's status moves with the results its probe reports (or a TTL's
 * renewals and lapses), under two thresholds so that one bad answer does
 * not flap an instance out of discovery. The catalog keeps one of these per
 * check; the unit tests drive it with made-up results and times. */
#ifndef REG_CORE_CHECK_H
#define REG_CORE_CHECK_H

#include <stdbool.h>
#include <stdint.h>

/* A check's (and an instance's) health, ordered from best to worst: an
 * instance is as healthy as its worst check. */
enum reg_health { REG_PASSING = 0, REG_WARNING = 1, REG_CRITICAL = 2 };

/* How a check reacts to results: failures_before_critical consecutive
 * failures turn it critical, successes_before_passing consecutive passes
 * turn it passing (both at least 1). */
struct chk_policy {
    uint8_t failures_before_critical;
    uint8_t successes_before_passing;
};

/* Where a check stands: its status since last_change_ms (Unix ms), and the
 * run of results that may move it. */
struct chk_state {
    unsigned char status; /* enum reg_health */
    uint8_t fails, oks;   /* consecutive non-passing and passing results */
    int64_t last_change_ms;
};

/* Start st at status, as of now. */
void chk_init(struct chk_state *st, enum reg_health status, int64_t now_ms);

/* Apply one result at now: a pass counts towards passing, a failure towards
 * critical, each resetting the other's run. A warning (an answer that says
 * "busy") counts as a failure for a passing check, so it leaves passing only
 * after the same run as a failure would, and moves a critical check to
 * warning at once (the target answers again). Returns whether the status
 * changed (last_change_ms is then now). */
bool chk_apply(struct chk_state *st, const struct chk_policy *p, enum reg_health result,
               int64_t now_ms);

#endif
