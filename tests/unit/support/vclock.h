/* vclock.h: a virtual clock for the unit tests (prefix vc_), installed as
 * common/core/clock.h's struct clk_timers hook. It records each timer a
 * module arms (with the delay it asked for, in an arming log) instead of
 * adding it to libevent, and fires the due ones in order, with
 * event_active, when the test lets virtual time pass; a persistent timer
 * is re-armed a period later. Running the loop between firings is the
 * test's own (each knows when its I/O has settled). Test code only; no
 * cmocka here: functions return errors and the tests assert.
 *
 * The struct is open, not opaque: tests read now, narmed and the log
 * directly in their assertions, which is the point of the recorder. */
#ifndef TS_VCLOCK_H
#define TS_VCLOCK_H

#include "core/clock.h"

#include <stddef.h>
#include <stdint.h>

#define VC_TIMERS_MAX 128  /* timers armed at once on the virtual clock */
#define VC_LOG_MAX    4096 /* armings remembered, in order */

/* A timer armed on the virtual clock. */
struct vc_timer {
    struct event *ev; /* borrowed from the module that armed it */
    int64_t due;      /* virtual ms */
    int64_t every;    /* > 0: persistent, re-armed by this much when fired */
    uint64_t seq;     /* arming order: ties fire first armed, first fired */
};

/* One arming, as the module asked for it. */
struct vc_arming {
    const struct event *ev; /* only compared: it may be freed since */
    int64_t at;             /* virtual time of the arming */
    int64_t ms;             /* the delay asked for */
    int persistent;         /* ev was EV_PERSIST (fires every ms) */
};

/* The virtual clock: what is armed, and the log of every arming. A plain
 * struct the test owns (embed it; it is large, so not on the stack). */
struct vclock {
    struct clk_timers hook; /* what the modules are given (borrow it) */
    int64_t now;            /* virtual ms; the test may set it */
    uint64_t seq;
    struct vc_timer armed[VC_TIMERS_MAX];
    size_t narmed;
    struct vc_arming log[VC_LOG_MAX];
    size_t nlog; /* armings so far (only the first VC_LOG_MAX are kept) */
};

/* Start vc (borrowed, must outlive every module given vc->hook) at time
 * start with nothing armed and an empty log; vc->hook arms on it. */
void vc_init(struct vclock *vc, int64_t start);

/* Fire the timer that is next due by until (the earliest, first armed on
 * a tie), if any: the clock moves to its due time, a persistent one is
 * re-armed a period later (a one-shot is forgotten), and the event is
 * made active (event_active, EV_TIMEOUT) so it runs at the test's next
 * loop run. Returns 1 when a timer fired, 0 when none is due by until
 * (the clock is left where it is). */
int vc_fire_next(struct vclock *vc, int64_t until);

/* 0 when no armed timer is pending in libevent too, -1 when one is: a
 * module that armed it behind the hook's back (or a persistent event
 * re-added by libevent) would wait in real time. */
int vc_check_virtual(const struct vclock *vc) __attribute__((warn_unused_result));

#endif
