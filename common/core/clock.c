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

int64_t clk_now_ms(void) { return clk_read_ms(CLOCK_MONOTONIC); }

int64_t clk_wall_ms(void) { return clk_read_ms(CLOCK_REALTIME); }

int clk_timer_in(struct event *ev, int64_t ms)
{
    struct timeval tv;

    if (ms < 0)
        ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return event_add(ev, &tv);
}
