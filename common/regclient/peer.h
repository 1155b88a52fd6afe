/* peer.h: what a service that lives among others needs beside its server:
 * the HTTP client, the registry addresses, its self-registration and a
 * discovery cache, wired into the service's life cycle (deregister on
 * SIGINT/SIGTERM, wait for those calls in the drain). */
#ifndef SVC_REGCLIENT_PEER_H
#define SVC_REGCLIENT_PEER_H

#include "core/service.h"
#include "regclient/urls.h"

#include <stddef.h>

struct cfg_common;
struct hc_client;
struct rc_client;
struct disc_client;

#define PEER_TTL_S_DEFAULT    10
#define PEER_REGISTRY_DEFAULT "http://127.0.0.1:8500"

struct peer {
    struct svc *svc;      /* borrowed */
    struct hc_client *hc; /* owned */
    struct ru_list urls;
    struct rc_client *rc;     /* owned */
    struct disc_client *disc; /* owned */
    char advertise[256];      /* host registered for this instance */
    svc_stop_fn next_on_stop; /* s's hooks before peer_start, chained */
    svc_busy_fn next_busy;
    void *next_arg;
};

/* Check the options peer_start will use (the registry URLs) before the
 * service binds or opens anything, so a bad one is a clean start-up error.
 * Returns 0, or -1 with err saying which option is wrong and why. */
int peer_check_options(const struct cfg_common *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parse the registry URLs of c (NULL or "": http://127.0.0.1:8500), create
 * the client and discovery cache, register s (already listening) as name
 * with ttl_s (<= 0: PEER_TTL_S_DEFAULT), and hook deregistration into s's
 * shutdown: s->on_stop, s->busy and s->hook_arg point at p afterwards, and
 * the hooks s had before are chained (called after the peer's own). The
 * advertised host is c->advertise if set, else c->bind unless it is a
 * wildcard, else the first non-loopback IPv4 address, else the host name.
 * A registry that is down is not an error: registration goes on in the
 * background. Borrows s, c and name (s must outlive p; c and name are not
 * kept). Returns 0, or -1 with err (bad URL or option, out of memory);
 * peer_free cleans up either way. */
int peer_start(struct peer *p, struct svc *s, const struct cfg_common *c, const char *name,
               int ttl_s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Free discovery, registration and the HTTP client, in that order (calls
 * still in flight are cancelled), and give s its own hooks back. Call it
 * after the loop has stopped, before svc_free. Accepts a zeroed struct;
 * leaves p zeroed. */
void peer_free(struct peer *p);

#endif
