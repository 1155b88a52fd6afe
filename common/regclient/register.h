/* register.h: self-registration of a service with the registry. On start
 * it registers (name, advertised host, real port, ttl), then renews every
 * ttl/3. A renewal answered 404 (the registry forgot us) registers again
 * under the same id; a 403 (our token refused) is logged once at ERROR and
 * retried like any failure; a registry that is down is retried with backoff in the
 * background (the service serves meanwhile), failing over between the
 * registry URLs. rc_stop deregisters. Everything runs on the event loop
 * through the asynchronous HTTP client.
 *
 * How the registry checks the instance (rc_options.check): the TTL lease
 * alone, the lease plus an HTTP check of the instance's own /health, or no
 * check at all (the body says "checks": [] and no "ttl": nothing is ever
 * renewed). rc_maintenance takes the instance out of discovery without
 * deregistering it (the start of a graceful drain). */
#ifndef SVC_REGCLIENT_REGISTER_H
#define SVC_REGCLIENT_REGISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clk_timers;
struct event_base;
struct hc_client;
struct ru_list;
struct rc_client;

/* The checks a registration asks the registry for. */
enum rc_check {
    RC_CHECK_TTL = 0, /* the lease only, renewed every ttl/3 (the default) */
    RC_CHECK_HTTP,    /* the lease, plus GET http://host:port/health every check_interval_ms */
    RC_CHECK_NONE,    /* no check: passing until deregistered, nothing renewed (so a
                         registry that loses the instance is not noticed) */
};

/* Completion of rc_maintenance: ok when the registry answered 200. */
typedef void (*rc_maint_fn)(bool ok, void *arg);

struct rc_options {
    const char *name; /* service name, e.g. "logging-service" (copied) */
    const char *type; /* NULL: same as name (copied) */
    const char *host; /* advertised host (copied) */
    int port;         /* the real bound port */
    int ttl_s;        /* lease; renewed every ttl/3 (unused with RC_CHECK_NONE) */
    enum rc_check check;
    /* RC_CHECK_HTTP only: the check's period (LIM_CHECK_INTERVAL_MIN_MS..
     * LIM_CHECK_INTERVAL_MAX_MS) and timeout (0: min(LIM_CHECK_TIMEOUT_MAX_MS,
     * interval); else 1..interval). */
    int64_t check_interval_ms;
    int64_t check_timeout_ms;
    /* Access token sent as X-Registry-Token on every call (copied; NULL
     * or "": none; at most LIM_ACL_TOKEN_MAX bytes). */
    const char *token;
    /* How the renewal and retry timer is armed (borrowed, must outlive the
     * client). NULL: the real clock; tests pass a virtual one. */
    const struct clk_timers *timers;
};

/* Create the client; base, hc and urls are borrowed and must outlive it
 * (urls may be shared with a discovery cache: both move its cursor). The
 * strings of opt are copied. Nothing is sent before rc_start. NULL on
 * allocation failure or when opt is out of range (name empty or over
 * LIM_NAME_MAX, host empty, port outside 1..65535, ttl_s outside
 * LIM_TTL_MIN..LIM_TTL_MAX unless check is RC_CHECK_NONE, an HTTP check's
 * interval or timeout out of range). opt->timers is kept (borrowed). */
struct rc_client *rc_new(struct event_base *base, struct hc_client *hc, struct ru_list *urls,
                         const struct rc_options *opt) __attribute__((warn_unused_result));

/* Begin: register now (asynchronously) and keep the lease alive. Only the
 * first call does anything, and nothing after rc_stop. */
void rc_start(struct rc_client *rc);

/* Stop renewing and send the deregistration (asynchronously, with a short
 * timeout; only if rc_start ran). Calls in flight are counted by rc_busy
 * until they finish. A maintenance call in flight is cancelled (the DELETE
 * supersedes it). Only the first call does anything. */
void rc_stop(struct rc_client *rc);

/* Ask the registry to put the instance in maintenance (enable: out of
 * discovery, still registered, with reason, borrowed; may be NULL) or to
 * take it out again, as PUT /v1/services/{id}/maintenance with the token.
 * The call times out after timeout_ms (<= 0 or over LIM_CALL_TIMEOUT_MS:
 * LIM_CALL_TIMEOUT_MS); done (may be NULL) runs once with its outcome, arg
 * borrowed until then. A maintenance call still in flight is replaced, and
 * rc_stop and rc_free cancel one; its done does not run then.
 * Returns 0 when the call was sent, -1 when nothing was sent (not
 * registered, stopped, or the request could not start); done does not run
 * then. */
int rc_maintenance(struct rc_client *rc, bool enable, const char *reason, int64_t timeout_ms,
                   rc_maint_fn done, void *arg) __attribute__((warn_unused_result));

/* Registry calls in flight (for the shutdown drain). */
size_t rc_busy(const struct rc_client *rc);

/* The instance id ("<name>-<uuid>", chosen at rc_new; borrowed from rc) and
 * whether the registry has acknowledged it (false again after a renewal
 * answered 404 until the re-registration is acknowledged, and after the
 * deregistration). */
const char *rc_id(const struct rc_client *rc);
bool rc_registered(const struct rc_client *rc);

/* Cancel whatever is in flight and free. Accepts NULL. Call it before
 * hc_client_free of the client it uses, and not from inside a callback. */
void rc_free(struct rc_client *rc);

#endif
