/* check_api.h: the registry's health-check routes and the glue between the
 * core's checks and the runner that probes them:
 *   GET /v1/services/{id}/checks      the instance's checks with their status
 *   PUT /v1/services/{id}/maintenance {"enable": bool, "reason": "..."}
 * and, as the core's observer (in front of the change events), the http and
 * tcp checks of every instance registered handed to the runner, dropped
 * when it leaves; the runner's results go back to the core. Probes run
 * only while this replica leads (cka_set_leader; registry/core/members.h):
 * on one registry, always. */
#ifndef REG_API_CHECK_API_H
#define REG_API_CHECK_API_H

#include <stdbool.h>
#include <stddef.h>

struct svc;
struct acl;
struct rev_hub;
struct reg_event;
struct reg_registry;
struct check_api;
struct crun;

/* The glue on svc (borrowed, as are hub and acl; NULL acl: open). Its
 * observer is cka_observe (arg: the glue), which passes every change on to
 * the hub. NULL when out of memory. Caller frees with cka_free. */
struct check_api *cka_new(struct svc *svc, struct rev_hub *hub, const struct acl *acl)
    __attribute__((warn_unused_result));

/* The core's observer (reg_observer_fn): start and stop the probes of the
 * instance, then publish the change to the hub. */
void cka_observe(void *arg, const struct reg_event *ev);

/* Once the registry r (borrowed, outlives the glue) is loaded: add the
 * routes and start the probes of the instances loaded. 0, or -1. */
int cka_start(struct check_api *a, struct reg_registry *r) __attribute__((warn_unused_result));

/* This replica leads (leading true; the default) or no longer does: the
 * probes of every instance start, or all stop. Before cka_start it only
 * sets what cka_start does. */
void cka_set_leader(struct check_api *a, bool leading);

/* Probes configured and running now (for the tests and /metrics). */
size_t cka_probes(const struct check_api *a);

/* Stop every probe and free. Accepts NULL. Before the registry is freed. */
void cka_free(struct check_api *a);

#endif
