/* regworld.c: the registry unit tests' world of replicas over a group of
 * shared memory stores (see regworld.h). */
#include "regworld.h"

#include "registry/api/codec.h"
#include "registry/api/spec_json.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct rw_world *rw_new(void)
{
    struct rw_world *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->base = event_base_new();
    w->group = store_memory_group_new();
    if (!w->base || !w->group) {
        rw_free(w);
        return NULL;
    }
    vc_init(&w->vc, RW_START_MS);
    store_memory_group_set_timers(w->group, &w->vc.hook);
    return w;
}

void rw_free(struct rw_world *w)
{
    size_t i;

    if (!w)
        return;
    for (i = 0; i < w->nstores; i++)
        if (w->stores[i])
            store_close(w->stores[i]);
    if (w->group)
        store_memory_group_free(w->group);
    if (w->base)
        event_base_free(w->base);
    free(w);
}

struct store *rw_store_open(struct rw_world *w)
{
    struct store *st = NULL;

    assert_true(w->nstores < RW_STORES_MAX);
    st = store_memory_open_shared(w->base, w->group);
    assert_non_null(st);
    w->stores[w->nstores++] = st;
    return st;
}

void rw_store_close(struct rw_world *w, struct store *st)
{
    size_t i;

    for (i = 0; i < w->nstores; i++) {
        if (w->stores[i] == st) {
            store_close(st);
            w->stores[i] = NULL;
            return;
        }
    }
    fail_msg("rw_store_close: not a store of this world");
}

int64_t rw_clock(void *arg) { return ((struct rw_world *)arg)->vc.now; }

struct reg_registry *rw_registry_new(struct rw_world *w, struct store *st, reg_observer_fn observer,
                                     void *observer_arg)
{
    struct reg_options opt;
    struct reg_registry *reg = NULL;

    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = rw_clock;
    opt.clock_arg = w;
    opt.seed = 7;
    opt.observer = observer;
    opt.observer_arg = observer_arg;
    reg = reg_new(st, &opt);
    assert_non_null(reg);
    return reg;
}

void rw_settle(struct rw_world *w)
{
    size_t i, rounds;
    bool busy = true;

    for (rounds = 0; busy && rounds < 1000; rounds++) {
        assert_int_not_equal(event_base_loop(w->base, EVLOOP_NONBLOCK), -1);
        busy = false;
        for (i = 0; i < w->nstores; i++)
            busy = busy || (w->stores[i] && store_pending(w->stores[i]) > 0);
    }
    assert_false(busy);
    /* the followers' turns after the last completion */
    for (rounds = 0; rounds < 8; rounds++)
        assert_int_not_equal(event_base_loop(w->base, EVLOOP_NONBLOCK), -1);
}

void rw_advance(struct rw_world *w, int64_t ms)
{
    int64_t until = w->vc.now + ms;

    while (vc_fire_next(&w->vc, until) == 1)
        rw_settle(w);
    w->vc.now = until;
    rw_settle(w);
}

void rw_done_cb(void *arg, int rc, const char *err)
{
    (void)err;
    *(int *)arg = rc == 0 ? 1 : -1;
}

void rw_register(struct rw_world *w, struct reg_registry *reg, const char *json, char *id)
{
    struct reg_spec spec;
    char err[256];
    bool created = false;
    int outcome = 0;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(reg_register(reg, &spec, rw_done_cb, &outcome, id, &created, err, sizeof(err)),
                     0);
    reg_spec_clear(&spec);
    rw_settle(w);
    assert_int_equal(outcome, 1);
}

void rw_load(struct rw_world *w, store_load_fn fn, void *arg, struct store **during)
{
    struct store *st = store_memory_open_shared(w->base, w->group);
    char err[256];

    assert_non_null(st);
    if (during)
        *during = st;
    assert_int_equal(store_load(st, fn, arg, err, sizeof(err)), 0);
    store_close(st);
    if (during)
        *during = NULL;
}
