/* vclock.c: the unit tests' virtual clock; see vclock.h. */
#include "vclock.h"

#include <event2/event.h>
#include <string.h>

/* Index of ev among the armed timers, or -1. */
static int vc_find(const struct vclock *vc, const struct event *ev)
{
    size_t i = 0;

    for (i = 0; i < vc->narmed; i++) {
        if (vc->armed[i].ev == ev)
            return (int)i;
    }
    return -1;
}

/* Drop armed timer i (the order of the others does not matter: seq does). */
static void vc_drop(struct vclock *vc, size_t i) { vc->armed[i] = vc->armed[--vc->narmed]; }

/* clk_timers.arm: record ev (borrowed) due ms from now, replacing an
 * earlier arming of it as event_add would; log the arming. 0, or -1 when
 * VC_TIMERS_MAX are armed. */
static int vc_arm(void *arg, struct event *ev, int64_t ms)
{
    struct vclock *vc = arg;
    int i = vc_find(vc, ev);
    struct vc_timer *t = NULL;

    if (i < 0) {
        if (vc->narmed == VC_TIMERS_MAX)
            return -1;
        i = (int)vc->narmed++;
    }
    t = &vc->armed[i];
    t->ev = ev;
    t->due = vc->now + ms;
    t->every = (event_get_events(ev) & EV_PERSIST) != 0 ? ms : 0;
    t->seq = ++vc->seq;
    if (vc->nlog < VC_LOG_MAX) {
        vc->log[vc->nlog].ev = ev;
        vc->log[vc->nlog].at = vc->now;
        vc->log[vc->nlog].ms = ms;
        vc->log[vc->nlog].persistent = t->every > 0;
    }
    vc->nlog++;
    return 0;
}

/* clk_timers.disarm: forget ev (borrowed) if it is armed. */
static void vc_disarm(void *arg, struct event *ev)
{
    struct vclock *vc = arg;
    int i = vc_find(vc, ev);

    if (i >= 0)
        vc_drop(vc, (size_t)i);
}

void vc_init(struct vclock *vc, int64_t start)
{
    memset(vc, 0, sizeof(*vc));
    vc->hook.arm = vc_arm;
    vc->hook.disarm = vc_disarm;
    vc->hook.arg = vc;
    vc->now = start;
}

/* Index of the timer that fires next if it is due by until (the earliest,
 * first armed on a tie), or -1. */
static int vc_next(const struct vclock *vc, int64_t until)
{
    int best = -1;
    size_t i = 0;

    for (i = 0; i < vc->narmed; i++) {
        const struct vc_timer *t = &vc->armed[i];

        if (t->due > until)
            continue;
        if (best < 0 || t->due < vc->armed[best].due ||
            (t->due == vc->armed[best].due && t->seq < vc->armed[best].seq))
            best = (int)i;
    }
    return best;
}

int vc_fire_next(struct vclock *vc, int64_t until)
{
    int i = vc_next(vc, until);
    struct event *ev = NULL;

    if (i < 0)
        return 0;
    ev = vc->armed[i].ev;
    vc->now = vc->armed[i].due;
    if (vc->armed[i].every > 0) {
        vc->armed[i].due += vc->armed[i].every;
        vc->armed[i].seq = ++vc->seq;
    } else {
        vc_drop(vc, (size_t)i);
    }
    event_active(ev, EV_TIMEOUT, 1);
    return 1;
}

int vc_check_virtual(const struct vclock *vc)
{
    size_t i = 0;

    for (i = 0; i < vc->narmed; i++) {
        if (event_pending(vc->armed[i].ev, EV_TIMEOUT, NULL))
            return -1;
    }
    return 0;
}
