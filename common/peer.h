/* peer.h: what a service that lives among others needs beside its server:
 * the HTTP client, the registry addresses, its self-registration and a
 * discovery cache, wired into the service's life cycle (deregister on
 * SIGINT/SIGTERM, wait for those calls in the drain). */
#ifndef SVC_PEER_H
#define SVC_PEER_H

#include "regurls.h"

#include <stddef.h>

struct svc;
struct cfg_common;
struct hc_client;
struct rc_client;
struct disc_client;

#define PEER_TTL_S_DEFAULT 10

struct peer {
    struct svc *svc;            /* borrowed */
    struct hc_client *hc;       /* owned */
    struct ru_list urls;
    struct rc_client *rc;       /* owned */
    struct disc_client *disc;   /* owned */
    char advertise[256];        /* host registered for this instance */
};

/* Parse the registry URLs of c, create the client and discovery cache,
 * register s (already listening) as name with ttl_s, and hook deregistration
 * into s's shutdown. A registry that is down is not an error: registration
 * goes on in the background. Returns 0, or -1 with err (bad URL). */
int peer_start(struct peer *p, struct svc *s, const struct cfg_common *c,
               const char *name, int ttl_s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free in reverse order. Accepts a zeroed struct. */
void peer_free(struct peer *p);

#endif
