/* regfix.h: what the registry's unit tests share: a registry core over the
 * memory store on a test event base, its clock a number the test moves,
 * and the loop run until the store has committed what was queued. */
#ifndef TEST_REGFIX_H
#define TEST_REGFIX_H

#include "registry/core/catalog.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct store;

struct regfix {
    struct event_base *base; /* owned */
    struct store *store;     /* owned: the memory store */
    struct reg_registry *reg;
    int64_t now_ms; /* the registry's clock: tests move it */
};

/* What a completion reported. */
struct regfix_outcome {
    int calls;
    int rc;
    char err[256];
};

/* A reg_done_fn filling a struct regfix_outcome. */
void regfix_outcome_cb(void *arg, int rc, const char *err);

/* Create the base, store and a registry with observer (NULL: none) and
 * the clock at 1700000000000 ms. NULL on failure. Free with regfix_free. */
struct regfix *regfix_new(reg_observer_fn observer, void *observer_arg);
void regfix_free(struct regfix *f);

/* Run the loop until every queued store write has completed. */
void regfix_settle(struct regfix *f);

/* Register the JSON body text and wait for its commit (asserting success);
 * the id into id (LIM_ID_MAX + 1 bytes). */
void regfix_register(struct regfix *f, const char *json, char *id);

#endif
