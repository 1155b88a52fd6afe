/* failover.h: the one client-side failover policy of the calls a service
 * makes to its registry list (registration and discovery share the list).
 * A caller records which URL each call went to; a failure moves the shared
 * cursor only if nobody moved it since that call was sent (two callers
 * failing on the same dead registry advance it once, not twice, which with
 * two URLs would land back on the dead one); an outage is logged once at
 * WARN, its further failures at DEBUG, and its end at INFO, so a registry
 * down for hours costs three lines, not thousands. */
#ifndef SVC_REGCLIENT_FAILOVER_H
#define SVC_REGCLIENT_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>

struct ru_list;

/* One caller's calls (a plain struct: embed it, no allocation). */
struct fo_caller {
    struct ru_list *urls; /* borrowed, shared with the other callers */
    size_t sent;          /* urls->current when the last call was sent */
    unsigned failures;    /* consecutive failures: the current outage */
    bool outage;          /* failing since the last success */
    bool quiet;           /* set after fo_init: an outage's first and last lines at DEBUG too,
                             for a caller beside one that warns for it (a KV watch beside the
                             registration), so an outage still costs one WARN */
};

/* Start with no outage, on urls (borrowed; must outlive c). */
void fo_init(struct fo_caller *c, struct ru_list *urls);

/* A call is being sent: remember the cursor. Returns the base URL to send
 * it to (borrowed from the list). */
const char *fo_send(struct fo_caller *c);

/* The base URL the last call went to (the cursor may have moved since). */
const char *fo_sent_url(const struct fo_caller *c);

/* The last call failed for why (borrowed): fail over if the cursor has not
 * moved since, count the failure, and log "registry URL: why; WHAT" where
 * WHAT is formatted from fmt (what the caller does about it): at WARN for
 * the first failure of an outage (naming the next URL when the cursor
 * moved), at DEBUG with the failure count after. */
void fo_failed(struct fo_caller *c, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The last call succeeded: if it ends an outage, log "registry URL answers
 * again after N failures" at INFO, followed by "; WHAT" when fmt is not
 * NULL. The count starts again from 0. */
void fo_succeeded(struct fo_caller *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
