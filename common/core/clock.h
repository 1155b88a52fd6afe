/* clock.h: the two clocks the services read (monotonic for timers and
 * elapsed times, wall for timestamps) and the one conversion from
 * milliseconds to a libevent timer. */
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

#endif
