/* repair.c: the facade's anti-entropy timer (see repair.h).
 *
 * The walk: a cursor over the view (fan_under_next). It starts after a
 * sync round that read every listed instance and goes on, as re-sends end,
 * from the next loop turn (an event made active by their callbacks), so
 * RPR_INFLIGHT_MAX are kept in flight until the pass reaches the end of
 * the view; a round that misses an instance pauses it until the next
 * complete one. A message re-sent is not looked at again until the walk has
 * reached the end of the view and every re-send of that pass has ended
 * before a tick begins; only then does the next pass start from the
 * beginning, on a view synced after the copies were written, so a message
 * is re-sent again only when its copies are still missing. */
#include "repair.h"

#include "core/clock.h"
#include "core/log.h"
#include "fanout.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* A uuid an instance holds with another text (409): left alone. */
struct rpr_conflict {
    UT_hash_handle hh;
    char uuid[37];
};

struct rpr_ctx {
    struct fan_view *fo; /* borrowed */
    struct rpr_options opt;
    struct event *tick; /* owned; NULL when repair is off */
    struct event *walk; /* owned: goes on with the walk once re-sends end */
    bool syncing;       /* a tick's sync round has not ended yet */
    bool stopped;
    bool at_end;          /* the walk reached the end of the view */
    bool restart;         /* the tick in progress begins a new pass */
    bool walking;         /* the last round read every instance: the walk may go on */
    size_t sent;          /* re-sent since the last line */
    bool clean;           /* the last complete round found nothing below its copies */
    uint64_t stamp_tick;  /* opt.stamp when the round in progress began */
    uint64_t stamp_clean; /* opt.stamp when the clean round began */
    size_t cursor;
    size_t inflight;
    uint64_t repaired;
    struct rpr_conflict *conflicts; /* owned, uthash by uuid */
    size_t nconflicts;
    size_t last_under; /* what the last line said was below its copies */
};

/* Whether uuid was answered 409 before. */
static bool rpr_is_conflict(const struct rpr_ctx *r, const char *uuid)
{
    struct rpr_conflict *c = NULL;

    HASH_FIND_STR(r->conflicts, uuid, c);
    return c != NULL;
}

/* rpr_done_fn of one re-send (arg: the context). */
static void rpr_done(int status, int copies, const char *error, const char *uuid, void *arg)
{
    struct rpr_ctx *r = arg;
    struct rpr_conflict *c;

    r->inflight--;
    if (r->walk && r->walking && !r->at_end && !r->stopped)
        event_active(r->walk, EV_TIMEOUT, 1);
    if (status == 200) {
        r->repaired++;
        return;
    }
    if (status != 409) {
        /* the next pass tries it again */
        log_info("repair: re-sending %s failed (%d, %d copies): %s", uuid, status, copies,
                 error ? error : "");
        return;
    }
    if (rpr_is_conflict(r, uuid))
        return;
    log_warn("repair: message %s is held with another text by an instance: left as it is", uuid);
    if (r->nconflicts >= RPR_CONFLICTS_MAX)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    HASH_ADD_STR(r->conflicts, uuid, c);
    r->nconflicts++;
}

/* Re-send what is below its copies from the cursor while fewer than
 * RPR_INFLIGHT_MAX are in flight; returns how many are below. */
static size_t rpr_walk(struct rpr_ctx *r)
{
    size_t under = fan_under_count(r->fo);

    while (under > 0 && !r->at_end && r->inflight < RPR_INFLIGHT_MAX) {
        struct fan_under u;
        int rc = fan_under_next(r->fo, &r->cursor, &u);

        if (rc == 0) {
            r->at_end = true;
            break;
        }
        if (rc < 0) {
            log_warn("repair: out of memory reading a message: skipped until the next pass");
            continue;
        }
        if (!rpr_is_conflict(r, u.uuid)) {
            if (r->opt.store(r->opt.store_arg, u.uuid, u.msg, u.len, u.ts, u.trace, rpr_done, r) ==
                0) {
                r->inflight++;
                r->sent++;
            } else {
                log_warn("repair: cannot re-send %s (out of memory): next pass", u.uuid);
            }
        }
        free(u.msg);
    }
    if (under == 0)
        r->at_end = true;
    return under;
}

/* The walk event: re-sends ended, go on. */
static void rpr_walk_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpr_ctx *r = arg;

    (void)fd;
    (void)what;
    if (r->walking && !r->stopped)
        (void)rpr_walk(r);
}

/* fan_synced_fn of a tick's round (arg: the context): when the round read
 * every listed instance, re-send what is below its copies, from the
 * cursor, up to RPR_INFLIGHT_MAX in flight. */
static void rpr_synced(const struct fan_round_info *info, void *arg)
{
    struct rpr_ctx *r = arg;
    size_t under;

    r->syncing = false;
    r->walking = info->complete;
    r->clean = false;
    if (r->stopped)
        return;
    if (!info->complete) {
        log_debug("repair: %zu of %zu logging instances read: not this tick", info->answered,
                  info->listed);
        return;
    }
    if (r->restart) {
        r->cursor = 0;
        r->at_end = false;
    }
    under = rpr_walk(r);
    if (under == 0 && r->inflight == 0) {
        r->clean = true;
        r->stamp_clean = r->stamp_tick;
    }
    /* one line per tick that re-sent something or found things changed
     * (not one a tick for ever for a message left alone after a 409) */
    if (r->sent > 0 || under != r->last_under)
        log_info("repair: %zu messages below %d copies, re-sent %zu", under,
                 fan_copies_wanted(r->fo), r->sent);
    r->last_under = under;
    r->sent = 0;
}

/* The timer: one sync round at a time; a tick that comes while the last
 * one's round is running is skipped. */
static void rpr_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpr_ctx *r = arg;

    (void)fd;
    (void)what;
    if (r->stopped || r->syncing)
        return;
    if (r->opt.stamp) {
        r->stamp_tick = r->opt.stamp(r->opt.stamp_arg);
        if (r->clean && r->stamp_tick == r->stamp_clean)
            return; /* nothing can have gone missing since a clean round */
    }
    /* decided now: re-sends ended before this round began are in its view */
    r->restart = r->at_end && r->inflight == 0;
    r->syncing = true;
    if (fan_sync(r->fo, rpr_synced, r) != 0) {
        r->syncing = false;
        log_warn("repair: out of memory starting a sync round");
    }
}

struct rpr_ctx *rpr_new(struct event_base *base, struct fan_view *fo, const struct rpr_options *opt)
{
    struct rpr_ctx *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->fo = fo;
    r->opt = *opt;
    if (r->opt.interval_ms <= 0 || !r->opt.store)
        return r;
    r->tick = event_new(base, -1, EV_PERSIST, rpr_tick_cb, r);
    r->walk = event_new(base, -1, 0, rpr_walk_cb, r);
    if (!r->tick || !r->walk || clk_timers_arm(r->opt.timers, r->tick, r->opt.interval_ms) != 0) {
        rpr_free(r);
        return NULL;
    }
    return r;
}

void rpr_stop(struct rpr_ctx *r)
{
    if (!r || r->stopped)
        return;
    r->stopped = true;
    if (r->tick)
        clk_timers_disarm(r->opt.timers, r->tick);
    if (r->walk)
        event_del(r->walk);
}

uint64_t rpr_repaired(const struct rpr_ctx *r) { return r->repaired; }

size_t rpr_inflight(const struct rpr_ctx *r) { return r->inflight; }

void rpr_free(struct rpr_ctx *r)
{
    struct rpr_conflict *c, *tmp;

    if (!r)
        return;
    if (r->tick) {
        clk_timers_disarm(r->opt.timers, r->tick);
        event_free(r->tick);
    }
    if (r->walk)
        event_free(r->walk);
    HASH_ITER (hh, r->conflicts, c, tmp) {
        HASH_DEL(r->conflicts, c);
        free(c);
    }
    free(r);
}
