/* regfix.c: the registry unit tests' shared fixture (see regfix.h). */
#include "regfix.h"

#include "registry/api/codec.h"
#include "registry/api/spec_json.h"
#include "registry/store/store.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void regfix_outcome_cb(void *arg, int rc, const char *err)
{
    struct regfix_outcome *o = arg;

    o->calls++;
    o->rc = rc;
    snprintf(o->err, sizeof(o->err), "%s", err ? err : "");
}

/* The registry's clock: the fixture's number. */
static int64_t regfix_clock(void *arg) { return ((struct regfix *)arg)->now_ms; }

struct regfix *regfix_new(reg_observer_fn observer, void *observer_arg)
{
    struct regfix *f = calloc(1, sizeof(*f));
    struct reg_options opt;

    if (!f)
        return NULL;
    f->now_ms = 1700000000000LL;
    f->base = event_base_new();
    f->store = f->base ? store_memory_open(f->base) : NULL;
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    opt.clock = regfix_clock;
    opt.clock_arg = f;
    opt.seed = 12345;
    opt.observer = observer;
    opt.observer_arg = observer_arg;
    f->reg = f->store ? reg_new(f->store, &opt) : NULL;
    if (!f->reg) {
        regfix_free(f);
        return NULL;
    }
    return f;
}

void regfix_free(struct regfix *f)
{
    if (!f)
        return;
    reg_free(f->reg);
    if (f->store)
        store_close(f->store);
    if (f->base)
        event_base_free(f->base);
    free(f);
}

void regfix_settle(struct regfix *f)
{
    int rounds = 0;

    while (store_pending(f->store) > 0) {
        assert_true(rounds++ < 1000);
        assert_int_not_equal(event_base_loop(f->base, EVLOOP_ONCE), -1);
    }
}

void regfix_register(struct regfix *f, const char *json, char *id)
{
    struct reg_spec spec;
    struct regfix_outcome o = {0};
    char err[256];
    bool created = false;

    assert_int_equal(reg_spec_parse_text(json, strlen(json), &spec, err, sizeof(err)), 0);
    assert_int_equal(
        reg_register(f->reg, &spec, regfix_outcome_cb, &o, id, &created, err, sizeof(err)), 0);
    reg_spec_clear(&spec);
    regfix_settle(f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
}
