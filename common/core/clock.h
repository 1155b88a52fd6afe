/* clock.h: the two clocks the services read (monotonic for timers and
 * elapsed times, wall for timestamps), the one conversion from
 * milliseconds to a libevent timer, and the hook through which a module
 * arms its timers so that a test can run them on a clock of its own. */
#ifndef SVC_CORE_CLOCK_H
#define SVC_CORE_CLOCK_H

#include <stdint.h>

struct event;

/* Monotonic milliseconds (for timers and elapsed times). */
int64_t clk_now_ms(void);

/* Wall-clock milliseconds since the Unix epoch (for timestamps). */
int64_t clk_wall_ms(void);

/* event_add ev (borrowed; a timer or a persistent timer) to fire after ms
 * milliseconds, a negative ms counting as 0. Returns event_add's 0 or -1. */
int clk_timer_in(struct event *ev, int64_t ms);

/* How a module arms and disarms its timers. NULL (the default everywhere)
 * is libevent's own clock: clk_timer_in and event_del. A test installs its
 * own pair to record each (event, delay) and fire the event itself, with
 * event_active, when its virtual time reaches it: then no timer of the
 * module waits in real time. A plain struct owned by whoever installs it;
 * modules borrow it for their whole life. */
struct clk_timers {
    /* Arm ev (borrowed) to fire after ms >= 0 milliseconds, replacing an
     * earlier arming of ev; a persistent event (EV_PERSIST) fires every ms
     * until disarmed. Returns 0, or -1 when it cannot be armed. */
    int (*arm)(void *arg, struct event *ev, int64_t ms);
    /* Disarm ev (borrowed): it does not fire until armed again. Modules
     * call it before they free ev, so ev may be forgotten then. */
    void (*disarm)(void *arg, struct event *ev);
    void *arg; /* passed to both */
};

/* Arm ev (borrowed) after ms (negative: 0) through t (borrowed; NULL: the
 * real clock, clk_timer_in). Returns 0 or -1. */
int clk_timers_arm(const struct clk_timers *t, struct event *ev, int64_t ms)
    __attribute__((warn_unused_result));

/* Disarm ev (borrowed; NULL: nothing) through t (NULL: the real clock). It
 * is event_del'ed either way, so an activation not yet run is dropped too. */
void clk_timers_disarm(const struct clk_timers *t, struct event *ev);

#endif
