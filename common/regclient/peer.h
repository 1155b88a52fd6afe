/* peer.h: what a service that lives among others needs beside its server:
 * the HTTP client, the registry addresses, its self-registration and a
 * discovery cache, wired into the service's life cycle (deregister on
 * SIGINT/SIGTERM, wait for those calls in the drain), and the graceful
 * drain before it: on the signal, enter maintenance and keep serving for
 * the drain delay so callers move off the instance, then stop. */
#ifndef SVC_REGCLIENT_PEER_H
#define SVC_REGCLIENT_PEER_H

#include "core/limits.h"
#include "http/service.h"
#include "regclient/register.h"
#include "regclient/urls.h"

#include <stddef.h>

struct cfg_common;
struct hc_client;
struct rc_client;
struct disc_client;

#define PEER_TTL_S_DEFAULT             10
#define PEER_REGISTRY_DEFAULT          "http://127.0.0.1:8500"
#define PEER_CHECK_DEFAULT             "http"
#define PEER_CHECK_INTERVAL_MS_DEFAULT 10000 /* --check-interval */
#define PEER_DRAIN_DELAY_MS_DEFAULT    1000  /* --drain-delay */
#define PEER_DRAIN_REASON              "shutting down"

struct peer {
    struct svc *svc;      /* borrowed */
    struct hc_client *hc; /* owned */
    struct ru_list urls;
    struct rc_client *rc;              /* owned */
    struct disc_client *disc;          /* owned */
    char advertise[256];               /* host registered for this instance */
    char token[LIM_ACL_TOKEN_MAX + 1]; /* the registry token (--token/--token-file); "": none */
};

/* The registry token of c into out (cap >= LIM_ACL_TOKEN_MAX + 1): --token,
 * or the first line of --token-file, or "" for none. 0, or -1 with err
 * (never quoting the token): both given, an invalid token, an unreadable
 * file. */
int peer_token_resolve(const struct cfg_common *c, char *out, size_t cap, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The check kind named by name (NULL or "": PEER_CHECK_DEFAULT) into
 * *out: "http", "ttl" or "none". 0, or -1 for any other name. */
int peer_check_kind(const char *name, enum rc_check *out) __attribute__((warn_unused_result));

/* Check the options peer_start will use (the registry URLs, the token, --check) before the
 * service binds or opens anything, so a bad one is a clean start-up error.
 * Returns 0, or -1 with err saying which option is wrong and why. */
int peer_check_options(const struct cfg_common *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parse the registry URLs of c (NULL or "": http://127.0.0.1:8500), create
 * the client and discovery cache, register s (already listening) as name
 * with ttl_s (<= 0: PEER_TTL_S_DEFAULT), and hook deregistration into s's
 * shutdown: a stop hook (deregister, stop refreshing) and a busy hook (the
 * registry and outgoing calls in flight), registered last so that they run
 * before the hooks of what the service set up earlier. The checks asked
 * for are c->check (NULL: http) with c->check_interval_ms (<= 0: 10 s).
 * With c->drain_delay_ms > 0 the peer also sets s's drain delay and a
 * drain hook: on the signal a registered instance enters maintenance
 * (PUT .../maintenance, its timeout bounded by the delay) and s serves on
 * for the delay; one never registered skips both, and a maintenance call
 * that fails ends the delay early (no point waiting: callers were not
 * told). The
 * advertised host is c->advertise if set, else c->bind unless it is a
 * wildcard, else the first non-loopback IPv4 address, else the host name.
 * A registry that is down is not an error: registration goes on in the
 * background. Borrows s, c and name (s must outlive p; c and name are not
 * kept). Returns 0, or -1 with err (bad URL or option, out of memory);
 * peer_free cleans up either way. */
int peer_start(struct peer *p, struct svc *s, const struct cfg_common *c, const char *name,
               int ttl_s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Free discovery, registration and the HTTP client, in that order (calls
 * still in flight are cancelled), and remove the peer's hooks from s. Call it
 * after the loop has stopped, before svc_free. Accepts a zeroed struct;
 * leaves p zeroed. */
void peer_free(struct peer *p);

/* What differs between the services that register with the registry; one
 * main (peer_main) does the rest the same way for all of them. */
struct peer_app {
    const char *name;              /* service name: log lines, registration */
    const char *summary;           /* the line under --help's usage */
    long port_default;             /* --port when not given */
    const struct cfg_option *opts; /* the service's own options (borrowed) */
    size_t nopts;
    /* After the options are parsed, before anything is bound: check the
     * service's own and prepare what must exist first. 0, or the exit code
     * with err filled (2: a bad option, 1: anything else). May be NULL. */
    int (*check)(void *arg, char *err, size_t errlen);
    /* Listening, registration started (it goes out once the loop runs),
     * the loop not running yet: set up routes and the rest, on svc and
     * peer (both borrowed). 0, or -1 with err (exit 1). */
    int (*start)(struct svc *svc, struct peer *peer, void *arg, char *err, size_t errlen);
    /* After the loop, before the peer and the service are freed: free
     * what start made (also after a failed start). May be NULL. */
    void (*stop)(void *arg);
    void *arg; /* passed to the three */
};

/* The main of a service that registers: options (the shared ones of
 * CFG_COMMON_OPTIONS, then app's), checks, svc_new, svc_listen, peer_start,
 * app->start, the loop, then app->stop and cleanup in reverse. Errors before
 * the loop print one line "NAME: what" on stderr. Returns the exit code: 0
 * (also after --help), 1 when the drain ran out or set-up failed, 2 on a bad
 * option. */
int peer_main(const struct peer_app *app, int argc, char **argv);

#endif
