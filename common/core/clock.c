/* clock.c: see clock.h. */
#include "core/clock.h"

#include <event2/event.h>
#include <time.h>

/* Milliseconds of clock id. */
static int64_t clk_read_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds. */
int64_t clk_now_ms(void) { return clk_read_ms(CLOCK_MONOTONIC); }

/* Wall-clock milliseconds since the epoch. */
int64_t clk_wall_ms(void) { return clk_read_ms(CLOCK_REALTIME); }

/* event_add ev after ms (negative: 0). Borrows ev. */
int clk_timer_in(struct event *ev, int64_t ms)
{
    struct timeval tv;

    if (ms < 0)
        ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return event_add(ev, &tv);
}

/* Arm through the hook t, or the real clock when t or its arm is NULL.
 * Borrows t and ev. */
int clk_timers_arm(const struct clk_timers *t, struct event *ev, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (t == NULL || t->arm == NULL)
        return clk_timer_in(ev, ms);
    return t->arm(t->arg, ev, ms);
}

/* Disarm through the hook t (when it has one), then event_del. Borrows t
 * and ev; ev NULL does nothing. */
void clk_timers_disarm(const struct clk_timers *t, struct event *ev)
{
    if (ev == NULL)
        return;
    if (t != NULL && t->disarm != NULL)
        t->disarm(t->arg, ev);
    event_del(ev);
}
